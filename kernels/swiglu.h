/* swiglu.h: SwiGLU's per-element math (Llama's MLP: silu(gate) * up, silu(g)
 * = g * sigmoid(g)) and its derivatives, shared by the cpu ops and the CUDA
 * kernels. Check: tests/test_nn_ops.c (finite differences).
 */
#ifndef ZRT_KERNELS_SWIGLU_H
#define ZRT_KERNELS_SWIGLU_H

#include <math.h>

#include "hd.h"

ZRT_HD float zrt_sigmoid(float g) { return 1.0f / (1.0f + expf(-g)); }

ZRT_HD float zrt_swiglu(float g, float u) { return g * zrt_sigmoid(g) * u; }

/* d(gate) and d(up) of d(out) = d. */
ZRT_HD void zrt_swiglu_grad(float g, float u, float d, float *dg, float *du)
{
    float sig = zrt_sigmoid(g);
    *dg = d * u * sig * (1.0f + g * (1.0f - sig));
    *du = d * g * sig;
}

#endif
