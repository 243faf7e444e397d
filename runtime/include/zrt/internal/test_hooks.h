/* zrt/internal/test_hooks.h: calls that exist only so tests can reach a
 * state a real run reaches rarely (an fp16 overflow on one rank).
 *
 * Why internal: no program linking libzrt.so should call them; tests/ link
 * libzrt.a, where they stay reachable. Faults a run itself can be made to
 * hit (a crash mid-save, a failed read) are fault sites instead
 * (zrt/internal/fault.h). */
#ifndef ZRT_INTERNAL_TEST_HOOKS_H
#define ZRT_INTERNAL_TEST_HOOKS_H

#include "zrt/engine.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Test hook: make the next step's gradients of this rank non-finite. */
void zrt_engine_inject_overflow(zrt_engine *e);

#ifdef __cplusplus
}
#endif
#endif
