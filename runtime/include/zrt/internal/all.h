/* zrt/internal/all.h: the whole internal tier at once.
 *
 * Why: runtime/SConscript force-includes it (-include) into the engine
 * files that still include only zrt.h for what moved to the internal tier
 * (kernels, offload, output); each of them should include the internal
 * headers it uses instead, and then the force-include goes. */
#ifndef ZRT_INTERNAL_ALL_H
#define ZRT_INTERNAL_ALL_H

#include "zrt/internal/blas.h"
#include "zrt/internal/kernels.h"
#include "zrt/internal/offload.h"
#include "zrt/internal/output.h"
#include "zrt/internal/test_hooks.h"

#endif
