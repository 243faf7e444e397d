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
 * Check: tests/test_optim.c (golden values).
 */
#ifndef ZRT_KERNELS_OPTIM_H
#define ZRT_KERNELS_OPTIM_H

#include <math.h>

#include "hd.h"

typedef struct {
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

#endif
