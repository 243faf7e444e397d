/* rope.h: one rotary-embedding turn (Hugging Face's rotate_half pairing:
 * element i of a head with element i + hs/2), shared by the cpu ops and
 * the CUDA kernel. The inverse turn (sin negated) is the backward.
 * Check: tests/test_nn_ops.c (against a plain reference, inverse of forward).
 */
#ifndef ZRT_KERNELS_ROPE_H
#define ZRT_KERNELS_ROPE_H

#include "hd.h"

/* (a, b) = (x[i], x[i + hs/2]) turned by the angle of (c, s). */
ZRT_HD void zrt_rope_turn(float *a, float *b, float c, float s)
{
    float x1 = *a, x2 = *b;
    *a = x1 * c - x2 * s;
    *b = x2 * c + x1 * s;
}

#endif
