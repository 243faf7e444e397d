/* gelu.h: GELU (tanh form, as GPT-2 and torch's approximate='tanh') and its
 * derivative, per element, shared by the CPU models and CUDA kernels.
 * Check: tests/test_model_grad.c (finite differences through both models).
 */
#ifndef ZRT_KERNELS_GELU_H
#define ZRT_KERNELS_GELU_H

#include <math.h>

#include "hd.h"

#define ZRT_GELU_SCALE 0.7978845608028654f /* sqrt(2 / pi) */

ZRT_HD float zrt_gelu(float x)
{
    float cube = 0.044715f * x * x * x;
    return 0.5f * x * (1.0f + tanhf(ZRT_GELU_SCALE * (x + cube)));
}

ZRT_HD float zrt_gelu_grad(float x)
{
    float cube = 0.044715f * x * x * x;
    float t = tanhf(ZRT_GELU_SCALE * (x + cube));
    float sech2 = 1.0f - t * t;
    return 0.5f * (1.0f + t) + x * 0.5f * sech2 * ZRT_GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
}

#endif
