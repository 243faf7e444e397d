/* zrt/internal/fault.h: fault injection by named site.
 *
 * Why one module: a test arms a site by setting its ZRT_FAULT_* variable
 * (a knob: zrt/internal/knobs.h, listed by `zrt report`, in docs/knobs.md);
 * the code at the site asks here by name and never reads the environment
 * itself. The sites:
 *   checkpoint.crash_in_save  ZRT_FAULT_CRASH_IN_SAVE=RANK:STEP
 *   engine.skip_wait          ZRT_FAULT_SKIP_WAIT=gather
 *   swap.io                   ZRT_FAULT_SWAP=KIND:N[:NAME] (zrt/internal/offload.h)
 *   shards.write              ZRT_FAULT_SHARDS_WRITE=BYTES
 *   train.exit, train.kill    ZRT_FAULT_EXIT, ZRT_FAULT_KILL=RANK:STEP */
#ifndef ZRT_INTERNAL_FAULT_H
#define ZRT_INTERNAL_FAULT_H

#include "zrt/base.h"
#include "zrt/internal/knobs.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The knob that arms a site, or -1 for a name that is no site. */
int zrt_fault_knob(const char *site);
/* The armed site's spec (its variable's value), else NULL (unset, or no such site). */
const char *zrt_fault_spec(const char *site);
bool zrt_fault_armed(const char *site);
/* Whether the site's spec is RANK:STEP naming this rank and step. */
bool zrt_fault_at(const char *site, int rank, int64_t step);

#ifdef __cplusplus
}
#endif
#endif
