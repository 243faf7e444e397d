/* offload_internal.h: what the CPU optimizer's files share: one job (the
 * step's constants and buffers) and one function per SIMD path over an
 * element range. Private to offload/.
 *
 * Why one file per path: each is compiled with its own -m flags (adam_avx2.c
 * -mavx2 -mf16c, adam_avx512.c -mavx512f) and -ffp-contract=off, so one
 * binary runs on any x86-64 and the dispatch (cpu_adam.c) picks by cpuid --
 * no -march=native, no JIT. Every path equals zrt_adam_range_scalar bit for
 * bit: the same operations in the same order, IEEE sqrt and division, no FMA.
 */
#ifndef ZRT_OFFLOAD_INTERNAL_H
#define ZRT_OFFLOAD_INTERNAL_H

#include "zrt.h"
#include "zrt/internal/offload.h"

#include "optim.h"

typedef struct {
    zrt_adam_hyper h;
    float unscale, clip;
    float *master, *exp_avg, *exp_avg_sq;
    const void *grads;
    int grad_dtype;     /* zrt_dtype */
    void *params;       /* NULL: no copy */
    int param_dtype;
} zrt_adam_job;

/* Elements [begin, end) of the job. */
void zrt_adam_range_scalar(const zrt_adam_job *job, size_t begin, size_t end);
void zrt_adam_range_avx2(const zrt_adam_job *job, size_t begin, size_t end);
void zrt_adam_range_avx512(const zrt_adam_job *job, size_t begin, size_t end);

#endif
