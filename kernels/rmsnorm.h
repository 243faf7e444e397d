/* rmsnorm.h: RMSNorm's per-element math (Llama's: out = w * (x * rstd),
 * rstd = 1 / sqrt(mean(x^2) + eps)), shared by the cpu ops
 * (runtime/model/nn_cpu_llama.c) and the CUDA kernels (kernels/model_kernels.cu).
 * The row sums (of x^2, and backward's of d * w * norm) are in the order
 * each path chooses; these are what is done with them per element.
 * Check: tests/test_nn_ops.c (finite differences), test_cuda_kernels.c.
 */
#ifndef ZRT_KERNELS_RMSNORM_H
#define ZRT_KERNELS_RMSNORM_H

#include <math.h>

#include "hd.h"

/* rstd from the row's sum of squares over C elements. */
ZRT_HD float zrt_rmsnorm_rstd(float squares, int C, float eps) { return 1.0f / sqrtf(squares / (float)C + eps); }

ZRT_HD float zrt_rmsnorm_out(float x, float rstd, float w) { return w * (x * rstd); }

/* d(x) of one element from dnorm = d * w and the row's mean of dnorm * norm. */
ZRT_HD float zrt_rmsnorm_dx(float dnorm, float norm, float dnorm_norm_mean, float rstd)
{
    return (dnorm - norm * dnorm_norm_mean) * rstd;
}

#endif
