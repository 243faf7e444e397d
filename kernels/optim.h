/* optim.h: per-element optimizer math, shared by the CPU backend and the CUDA
 * kernels (compiled __host__ __device__ under nvcc).
 *
 * Why this exact formula: it is torch.optim.AdamW's (and Adam's with L2 when
 * adamw is 0), operation for operation, so a run can be checked against
 * PyTorch. DeepSpeed's "Adam" is AdamW unless adam_w_mode is false.
 *   p = p * (1 - lr * wd)                        (AdamW only)
 *   g = g + wd * p                               (Adam only)
 *   m = m + (g - m) * (1 - beta1)                (torch's lerp, weight < 0.5)
 *   v = v * beta2 + (1 - beta2) * g * g
 *   p = p - (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps)
 * with bc1 = 1 - beta1^step, bc2 = 1 - beta2^step. All fp32.
 * Around it, the step's gradient handling, the same on every backend: the
 * statistics (g / loss scale, squared in double, and a non-finite flag), the
 * overflow rule (skip the step) and the clip factor from the global norm.
 * Check: tests/test_device.c (golden values, both backends' kernels).
 */
#ifndef ZRT_KERNELS_OPTIM_H
#define ZRT_KERNELS_OPTIM_H

#include <math.h>

#include "cast.h"
#include "hd.h"

typedef struct zrt_adam_hyper {
    float lr, beta1, beta2, eps, weight_decay;
    float step_size;            /* lr / bc1 */
    float bias_correction2_sqrt; /* sqrt(bc2) */
    int adamw;                  /* 1: decoupled weight decay */
} zrt_adam_hyper;

/* The per-step constants for step (from 1). */
static inline zrt_adam_hyper zrt_adam_hyper_for(float lr, float beta1, float beta2, float eps, float weight_decay,
                                                int adamw, long step)
{
    double bc1 = 1.0 - pow((double)beta1, (double)step), bc2 = 1.0 - pow((double)beta2, (double)step);
    zrt_adam_hyper h = {lr, beta1, beta2, eps, weight_decay, (float)(lr / bc1), (float)sqrt(bc2), adamw};
    return h;
}

ZRT_HD void zrt_adam_element(float *p, float *m, float *v, float g, const zrt_adam_hyper *h)
{
    float param = *p;
    if (h->adamw) param = param * (1.0f - h->lr * h->weight_decay);
    else g = g + h->weight_decay * param;
    float exp_avg = *m + (g - *m) * (1.0f - h->beta1);
    float exp_avg_sq = *v * h->beta2 + (1.0f - h->beta2) * g * g;
    float denom = sqrtf(exp_avg_sq) / h->bias_correction2_sqrt + h->eps;
    *p = param - h->step_size * (exp_avg / denom);
    *m = exp_avg;
    *v = exp_avg_sq;
}

/* zrt_kernel_grad_stats per element: the square of g / scale (in double),
 * setting *nonfinite when g / scale is inf or NaN. */
ZRT_HD double zrt_grad_square(float raw, float scale, int *nonfinite)
{
    float g = raw / scale;
    if (!isfinite(g)) *nonfinite = 1;
    return (double)g * g;
}

/* The step is skipped when any rank saw a non-finite gradient or the sum overflowed. */
ZRT_HD int zrt_step_overflow(float sum_squares, float nonfinite) { return nonfinite > 0 || !isfinite(sum_squares); }

/* max_norm / (norm + 1e-6) with norm = sqrt(sum_squares) (1 when clipping is off),
 * as DeepSpeed clips; a factor >= 1 leaves the gradients alone. */
ZRT_HD float zrt_clip_factor(float sum_squares, double max_norm)
{
    float norm = sqrtf(sum_squares);
    return max_norm > 0 ? (float)(max_norm / (norm + 1e-6)) : 1.0f;
}

/* The gradient Adam sees: unscaled, then clipped. */
ZRT_HD float zrt_adam_grad(float raw, float unscale, float clip)
{
    float g = raw * unscale;
    return clip < 1.0f ? g * clip : g;
}

/* The compute copy of an updated master, element i (index `index` of the
 * whole tensor, whatever the sharding) of tensor `tensor`: rounded to
 * nearest even, or (bf16 with sr_seed != 0) stochastically with the bits of
 * zrt_hash3(sr_seed ^ step, tensor, index). params NULL: no copy. */
ZRT_HD void zrt_store_param(void *params, size_t i, int param_dtype, float master, uint32_t sr_seed, uint32_t step,
                            uint32_t tensor, uint64_t index)
{
    if (!params) return;
    if (sr_seed && param_dtype == 1)
        ((uint16_t *)params)[i] = zrt_f32_to_bf16_stochastic(master, zrt_hash3(sr_seed ^ step, tensor, (uint32_t)index));
    else
        zrt_store_f32(params, i, param_dtype, master);
}

#endif
