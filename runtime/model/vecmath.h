/* vecmath.h: the CPU models' elementwise and row math as vector loops --
 * GELU (tanh form) and its derivative, a row's max, exp and sum (softmax,
 * cross-entropy), a dot product, layernorm forward and backward of one row.
 *
 * Why: scalar libm tanhf/expf were a third of a GPT step on the CPU (a
 * profile of `zrt bench train`); SLEEF (libsleef-dev) gives vectorised
 * tanhf/expf with a 1.0-ULP bound for AVX2 and AVX-512. The path is chosen
 * once by cpuid (never -march=native); the scalar path, which is
 * kernels/gelu.h and libm, is the reference the others are tested against
 * and what a CPU without AVX2+FMA runs.
 *
 * Accuracy (tests/test_vecmath.c checks each on every path this CPU has):
 * gelu and its derivative differ from the scalar reference only by SLEEF's
 * tanhf against libm's (the rest is the same operations in the same order,
 * no FMA contraction): |vector - scalar| <= 2^-22 * max(1, |x|). exp:
 * relative 2^-22. Sums, dots and layernorm add in vector-lane order, not
 * left to right: relative 1e-5 of the row's magnitude. A path gives the
 * same bits on every call, so ZeRO stages stay bitwise equal to each other.
 *
 * In-place: gelu_forward (out == in) and gelu_backward (dinp == dout) are
 * allowed; the rest take distinct buffers.
 */
#ifndef ZRT_MODEL_VECMATH_H
#define ZRT_MODEL_VECMATH_H

#include "zrt/internal/offload.h" /* zrt_simd */

#include <stdint.h>

typedef struct {
    const char *name;
    /* out[i] = gelu(in[i]) */
    void (*gelu_forward)(float *out, const float *in, int64_t n);
    /* Bias + GELU in one pass over (rows, cols): pre[r][c] += bias[c], out[r][c] = gelu(pre[r][c]). */
    void (*bias_gelu_forward)(float *pre, float *out, const float *bias, int64_t rows, int64_t cols);
    /* dinp[i] = dout[i] * gelu'(inp[i]) */
    void (*gelu_backward)(float *dinp, const float *inp, const float *dout, int64_t n);
    /* max of in[0..n) (n >= 1) */
    float (*max)(const float *in, int64_t n);
    /* out[i] = exp(in[i] - shift); returns the sum of out (out == in allowed: each lane is read before written) */
    float (*exp_sum)(float *out, const float *in, float shift, int64_t n);
    /* sum of a[i] * b[i] */
    float (*dot)(const float *a, const float *b, int64_t n);
    /* One row of C: out = (x - mean) * rstd * w + b, eps 1e-5; *mean, *rstd of x. */
    void (*layernorm_forward)(float *out, float *mean, float *rstd, const float *x, const float *w, const float *b,
                              int64_t C);
    /* One row's backward: dx += ..., dw += norm * d, db += d (all added to). */
    void (*layernorm_backward)(float *dx, float *dw, float *db, const float *d, const float *x, const float *w,
                               float mean, float rstd, int64_t C);
} zrt_vecmath;

/* The fastest path this CPU runs (chosen once, thread-safe). */
const zrt_vecmath *zrt_vecmath_best(void);
/* A given path (ZRT_SIMD_SCALAR, _AVX2: AVX2 + FMA, _AVX512: AVX-512F), or
 * NULL when this CPU or build lacks it; _AUTO is zrt_vecmath_best(). */
const zrt_vecmath *zrt_vecmath_path(zrt_simd simd);

/* The vector paths (vecmath_avx2.c, vecmath_avx512.c). */
extern const zrt_vecmath zrt_vecmath_avx2, zrt_vecmath_avx512;

#endif
