/* layernorm.h: layernorm's per-element math (eps 1e-5, as torch's default
 * and GPT-2's), shared by the CPU models' scalar reference
 * (runtime/model/vecmath.c) and the CUDA kernels (kernels/model_kernels.cu).
 * The row statistics (mean, rstd, and backward's two means) are sums whose
 * order each path chooses; these are what is done with them per element.
 */
#ifndef ZRT_KERNELS_LAYERNORM_H
#define ZRT_KERNELS_LAYERNORM_H

#include <math.h>

#include "hd.h"

#define ZRT_LAYERNORM_EPS 1e-5f

/* rstd from the row's sum of squared deviations over C elements. */
ZRT_HD float zrt_layernorm_rstd(float squares, int C) { return 1.0f / sqrtf(squares / (float)C + ZRT_LAYERNORM_EPS); }

ZRT_HD float zrt_layernorm_norm(float x, float mean, float rstd) { return (x - mean) * rstd; }

ZRT_HD float zrt_layernorm_out(float x, float mean, float rstd, float w, float b)
{
    return zrt_layernorm_norm(x, mean, rstd) * w + b;
}

/* d(x) of one element, from the row's means of dnorm = w * d and of dnorm * norm. */
ZRT_HD float zrt_layernorm_dx(float dnorm, float norm, float dnorm_mean, float dnorm_norm_mean, float rstd)
{
    return (dnorm - dnorm_mean - norm * dnorm_norm_mean) * rstd;
}

#endif
