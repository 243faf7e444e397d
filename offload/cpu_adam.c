/* cpu_adam.c: the one-pass CPU optimizer: the scalar reference, the run-time
 * choice of a SIMD path (cpuid), and the split of a slice over the pool.
 *
 * Why one pass: a step's gradients are read once -- unscaled, clipped, used
 * by Adam -- and the updated master is rounded into the compute copy in the
 * same loop, so a parameter costs 4 fp32 reads, 3 fp32 writes and one
 * 2-byte write (30 B in bf16) instead of the usual sequence's 46 B (a norm
 * pass, an unscale pass, Adam, a copy-out pass); the norm comes with the
 * copy-down (zrt_kernel_copy_stats). Threads take contiguous chunks of 64
 * elements' multiples; the result does not depend on the split.
 */
#include "offload_internal.h"
#include "zrt/internal/offload.h"
#include "zrt/internal/kernels.h"

#include "cast.h"

#include <stdio.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif

void zrt_adam_range_scalar(const zrt_adam_job *j, size_t begin, size_t end)
{
    for (size_t i = begin; i < end; i++) {
        float g = zrt_adam_grad(zrt_load_f32(j->grads, i, j->grad_dtype), j->unscale, j->clip);
        zrt_adam_element(&j->master[i], &j->exp_avg[i], &j->exp_avg_sq[i], g, &j->h);
        if (j->params) zrt_store_f32(j->params, i, j->param_dtype, j->master[i]);
    }
}

const char *zrt_simd_name(zrt_simd simd)
{
    static const char *const names[] = {"scalar", "avx2", "avx512", "auto"};
    return (unsigned)simd <= ZRT_SIMD_AUTO ? names[simd] : "?";
}

#if defined(__x86_64__)
/* F16C from cpuid leaf 1 (ECX bit 29): clang 14's __builtin_cpu_supports does not know "f16c". */
static bool has_f16c(void)
{
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}
#endif

bool zrt_simd_supported(zrt_simd simd)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    switch (simd) {
    case ZRT_SIMD_SCALAR: return true;
    case ZRT_SIMD_AVX2: return __builtin_cpu_supports("avx2") && has_f16c(); /* both need the OS's AVX state: avx2 says so */
    case ZRT_SIMD_AVX512: return __builtin_cpu_supports("avx512f");
    case ZRT_SIMD_AUTO: return true;
    }
    return false;
#else
    return simd == ZRT_SIMD_SCALAR || simd == ZRT_SIMD_AUTO;
#endif
}

zrt_simd zrt_simd_best(void)
{
    if (zrt_simd_supported(ZRT_SIMD_AVX512)) return ZRT_SIMD_AVX512;
    if (zrt_simd_supported(ZRT_SIMD_AVX2)) return ZRT_SIMD_AVX2;
    return ZRT_SIMD_SCALAR;
}

typedef struct {
    const zrt_adam_job *job;
    void (*range)(const zrt_adam_job *job, size_t begin, size_t end);
    size_t n;
} adam_run;

/* Thread t's chunk of n: multiples of 64 elements, the last takes the tail. */
static zrt_status run_chunk(void *arg, int t, int threads)
{
    adam_run *r = arg;
    size_t per = (r->n / (size_t)threads + 63) / 64 * 64;
    size_t begin = per * (size_t)t, end = begin + per > r->n || t == threads - 1 ? r->n : begin + per;
    if (begin < end) r->range(r->job, begin, end);
    return ZRT_OK;
}

zrt_status zrt_cpu_adam(const zrt_adam_args *a, float clip, const zrt_adam_slice *s, zrt_simd simd,
                        zrt_cpu_pool *pool)
{
    if (!a || a->step < 1) return zrt_set_error(ZRT_ERR_INVALID, "zrt_cpu_adam: bad argument");
    zrt_adam_hyper h = zrt_adam_hyper_for(a->lr, a->beta1, a->beta2, a->eps, a->weight_decay, a->adamw, (long)a->step);
    return zrt_cpu_adam_hyper(&h, a->unscale, clip, s, simd, pool);
}

zrt_status zrt_cpu_adam_hyper(const zrt_adam_hyper *h, float unscale, float clip, const zrt_adam_slice *s,
                              zrt_simd simd, zrt_cpu_pool *pool)
{
    if (!h || !s || (s->n && (!s->master || !s->exp_avg || !s->exp_avg_sq || !s->grads)) ||
        (unsigned)s->grad_dtype > ZRT_DTYPE_F16 || (unsigned)s->param_dtype > ZRT_DTYPE_F16)
        return zrt_set_error(ZRT_ERR_INVALID, "zrt_cpu_adam: bad argument");
    if (simd == ZRT_SIMD_AUTO) simd = zrt_simd_best();
    if (!zrt_simd_supported(simd))
        return zrt_set_error(ZRT_ERR_UNSUPPORTED, "cpu adam: this CPU has no %s", zrt_simd_name(simd));
    zrt_adam_job job = {.h = *h, .unscale = unscale, .clip = clip, .master = s->master, .exp_avg = s->exp_avg,
                        .exp_avg_sq = s->exp_avg_sq, .grads = s->grads, .grad_dtype = (int)s->grad_dtype,
                        .params = s->params, .param_dtype = (int)s->param_dtype};
    adam_run run = {&job, zrt_adam_range_scalar, s->n};
    if (simd == ZRT_SIMD_AVX2) run.range = zrt_adam_range_avx2;
    if (simd == ZRT_SIMD_AVX512) run.range = zrt_adam_range_avx512;
    if (!pool || s->n < 4096) return run_chunk(&run, 0, 1);
    return zrt_cpu_pool_run(pool, run_chunk, &run);
}
