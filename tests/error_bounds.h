/* error_bounds.h: how far a correct fp32 result of the CUDA models' math may
 * lie from the exact (double-precision) value, per element, derived from
 * the rounding errors of the operations the kernels perform: GELU and its
 * derivative (kernels/gelu.h, with CUDA's tanhf) and cuBLASLt's matmuls
 * (runtime/model/cuda_blas.c, each zrt_matmul_math). A bound that passes
 * every conforming implementation and fails wrong math, where a flat
 * tolerance does neither: GELU's derivative multiplies tanhf's error by
 * |x u'(x)| (about 17 at |x| = 5), so 1e-6 rejects a conforming tanhf; and
 * 2^-7 K max|a| max|b| grows with K while a matmul's error grows with each
 * element's sum |a||b|, so it let a dropped K-block pass, and a doubled
 * alpha too once K is a few hundred (test_model_emulated: K = 513).
 * Shared by test_cuda_kernels (the real kernels and cuBLASLt on a GPU),
 * test_model_emulated (cuda_blas.c through tests/fake_cublaslt.c) and
 * test_error_bounds (both ways on the CPU: the worst conforming tanhf
 * passes, wrong GELU math fails).
 */
#ifndef ZRT_TEST_ERROR_BOUNDS_H
#define ZRT_TEST_ERROR_BOUNDS_H

#include "nn_device.h" /* zrt_gemm, zrt_matmul_math, zrt_cuda_gemm: plain C, no CUDA header */

#include <math.h>

#define FP32_EPS 0x1p-24 /* fp32's unit roundoff (round to nearest) */
#define GELU_C 0.044715
#define GELU_S 0.7978845608028654 /* sqrt(2 / pi) */

/* |got - want| / bound: within when <= 1; 0 when equal (the bound is 0 too at GELU's x = 0), infinite for NaN. */
static inline double bound_ratio(double got, double want, double bound)
{
    if (got == want) return 0;
    double r = fabs(got - want) / bound;
    return r == r ? r : INFINITY;
}

/* ---- GELU: the tanh form, exact in double -------------------------------------------------- */

static inline double gelu_exact_u(double x) { return GELU_S * (x + GELU_C * x * x * x); }
static inline double gelu_exact_sech2(double x) { return 1.0 / (cosh(gelu_exact_u(x)) * cosh(gelu_exact_u(x))); }
static inline double gelu_exact(double x) { return 0.5 * x * (1.0 + tanh(gelu_exact_u(x))); }
static inline double gelu_exact_slope(double x) { return GELU_S * (1.0 + 3.0 * GELU_C * x * x); } /* u'(x) */

static inline double gelu_grad_exact(double x)
{
    return 0.5 * (1.0 + tanh(gelu_exact_u(x))) + 0.5 * x * gelu_exact_sech2(x) * gelu_exact_slope(x);
}

/* tanh(u), whose magnitude is below 1 even where double's tanh rounds to 1. */
static inline double tanh_below_one(double u) { return fmax(-1 + 0x1p-53, fmin(tanh(u), 1 - 0x1p-53)); }

/* fp32's spacing at magnitude y (2^-149 below the normal range). */
static inline double fp32_ulp(double y)
{
    y = fabs(y);
    return y < 0x1p-126 ? 0x1p-149 : ldexp(1.0, ilogb(y) - 23);
}

/* The error analysis, per element, eps = 2^-24, exact u, t = tanh(u), sech2
 * = 1 - t^2, u' = du/dx; hats are the fp32 values gelu.h computes.
 *  u^ = fl(s (x + c x x x)): c and s rounded, 3 products, an add of two
 *    terms of one sign, the product by s: 7 roundings of |u|, so
 *    du = 8 eps |u|.
 *  t^ = tanhf(u^): CUDA's tanhf is within 2 ulp (Programming Guide,
 *    Mathematical Functions); u's error passes through tanh' = sech2:
 *    dt = 2 ulp(|t| + 1.01 sech2 du) + 1.01 sech2 du (1.01: sech2's change
 *    over [u - du, u + du], 2 du |t| relative, below 1e-3 for |x| <= 20).
 *    |t| < 1, so its ulp is at most 2^-24, also where double's tanh rounds
 *    to 1 (|x| > 7: tanh_below_one).
 *  GELU g = 0.5 x (1 + t), g^ = fl(fl(0.5 x) fl(1 + t^)): d/dt is 0.5 x,
 *    two roundings of |g|: |g^ - g| <= 0.5 |x| dt (1 + 3 eps) + 2.01 eps |g|.
 *  Its derivative g' = P + Q, P = 0.5 (1 + t), Q = 0.5 x sech2 u':
 *    P: d/dt = 0.5, one rounding (1 + t): dP = 0.5 dt (1 + eps) + eps P.
 *    sech2^ = fl(1 - fl(t^ t^)): d/dt = -2t, so dt (2|t| + dt), plus the
 *      rounding of t^2 (eps t^2, amplified like dt below: it is what makes
 *      the fp32 derivative itself differ from double's near |x| = 5) and of
 *      the difference (eps sech2).
 *    Q^ = x 0.5 sech2^ s (1 + 3c x x): d/d(sech2) = 0.5 x u', so
 *      dQ = 0.5 |x u'| dsech2 (1 + 12 eps) + 12 eps |Q| (9 roundings: the
 *      constants s, c and 3c, 5 products, the add in (1 + 3c x^2); 12 for
 *      margin).
 *    The sum: (dP + dQ)(1 + eps) + eps |g'|.
 *  The tanhf term dominates: through Q it is |x u' t| dt, |x u'| reaching
 *  17 at |x| = 5 and 115 at |x| = 10, where 1 - t^2 is tiny but this term
 *  is not. Products of the exact values (second order, ~eps^2) are inside
 *  the margins; the reference's own double error (~2^-50) too. */
static inline double gelu_t_error(float x)
{
    double du = 8 * FP32_EPS * fabs(gelu_exact_u(x)), shift = 1.01 * gelu_exact_sech2(x) * du;
    return 2 * fp32_ulp(fmin(fabs(tanh_below_one(gelu_exact_u(x))) + shift, 1 - 0x1p-53)) + shift;
}

/* |zrt_gelu(x) - gelu_exact(x)| with a tanhf within 2 ulp. */
static inline double gelu_bound(float x)
{
    return 0.5 * fabs(x) * gelu_t_error(x) * (1 + 3 * FP32_EPS) + 2.01 * FP32_EPS * fabs(gelu_exact(x));
}

/* |zrt_gelu_grad(x) - gelu_grad_exact(x)| with a tanhf within 2 ulp. */
static inline double gelu_grad_bound(float x)
{
    double t = fabs(tanh(gelu_exact_u(x))), dt = gelu_t_error(x), sech2 = gelu_exact_sech2(x);
    double p = 0.5 * (1.0 + tanh(gelu_exact_u(x))), q = fabs(0.5 * x * sech2 * gelu_exact_slope(x));
    double dp = 0.5 * dt * (1 + FP32_EPS) + FP32_EPS * p;
    double dsech2 = (1 + FP32_EPS) * (dt * (2 * t + dt) + FP32_EPS * (t + dt) * (t + dt)) + FP32_EPS * sech2;
    double dq = 0.5 * fabs(x * gelu_exact_slope(x)) * dsech2 * (1 + 12 * FP32_EPS) + 12 * FP32_EPS * q;
    return (dp + dq) * (1 + FP32_EPS) + FP32_EPS * fabs(gelu_grad_exact(x));
}

/* GELU backward's dout x zrt_gelu_grad(x): one more rounding. */
static inline double gelu_backward_bound(float x, float dout)
{
    return fabs(dout) * gelu_grad_bound(x) * (1 + FP32_EPS) + FP32_EPS * fabs(dout * gelu_grad_exact(x));
}

/* ---- matmuls: D = alpha op(A) op(B) + beta C, fp32 in and out ------------------------------ */

/* The unit roundoff of the inputs as the math reads them: fp32 as is; TF32
 * and fp16 keep 10 fraction bits, bf16 7 (round to nearest). cuBLAS may use
 * TF32 for FAST_16BF and FAST_16F: finer, inside the same bound. fp16: for
 * inputs in its normal range, |x| in [2^-14, 65504]. */
static inline double gemm_input_unit(zrt_matmul_math math)
{
    return math == ZRT_MATMUL_BF16 ? 0x1p-9 : math == ZRT_MATMUL_FP32 ? 0.0 : 0x1p-11;
}

/* The accumulation's unit: fp32 FMAs round to nearest (2^-24); the tensor
 * cores' fp32 accumulators truncate (Fasi, Higham, Mikaitis, Pranesh,
 * "Numerical behavior of NVIDIA tensor cores", 2021): one ulp, 2^-23. */
static inline double gemm_sum_unit(zrt_matmul_math math) { return math == ZRT_MATMUL_FP32 ? 0x1p-24 : 0x1p-23; }

/* The bound of one element, with ab = sum_k a_ik b_kj and abs_sum = sum_k
 * |a_ik b_kj| (exact). The error analysis (Higham, Accuracy and Stability
 * of Numerical Algorithms, 3.1), u = gemm_input_unit, v = gemm_sum_unit:
 *  inputs rounded: a^ = a(1 + e1), b^ = b(1 + e2), |e| <= u, so each
 *    product is off by (2u + u^2)|a b| (bf16 and TF32 products are exact
 *    in fp32; fp32's own product rounding is inside gamma_K below);
 *  K terms summed in fp32 in any order (a tree, blocks, split K): at most
 *    gamma_K = K v / (1 - K v) of sum |a^ b^| <= (1 + u)^2 abs_sum;
 *    so |s^ - ab| <= E = (2u + u^2 + gamma_K (1 + u)^2) abs_sum;
 *  the epilogue fl(fl(alpha s^) + fl(beta c)): |alpha| E (1 + eps)^2 and
 *    two roundings of each of |alpha ab| and |beta c| (beta 0: C unread).
 * The bound is linear in |alpha| and in each term of abs_sum: a doubled
 * alpha is off by |alpha ab|, a dropped block by its terms' sum -- far
 * more than (2u + gamma_K) of the sum of their magnitudes. */
static inline double gemm_bound(zrt_matmul_math math, int K, double alpha, double ab, double abs_sum, double beta,
                                double c)
{
    double u = gemm_input_unit(math), kv = K * gemm_sum_unit(math), gamma = kv / (1 - kv);
    double e = (2 * u + u * u + gamma * (1 + u) * (1 + u)) * abs_sum;
    double prior = beta != 0 ? fabs(beta * c) : 0.0;
    return fabs(alpha) * e * (1 + 3 * FP32_EPS) + (2 * FP32_EPS + FP32_EPS * FP32_EPS) * (fabs(alpha * ab) + prior);
}

/* op(X)[row][col] of a row-major X with leading dimension ld. */
static inline float gemm_op_at(const float *x, int ld, bool trans, int row, int col)
{
    return trans ? x[(int64_t)col * ld + row] : x[(int64_t)row * ld + col];
}

typedef struct {
    double worst;     /* the largest |got - exact| / gemm_bound: within the bound when <= 1 */
    double max_error; /* the largest |got - exact| */
} gemm_error;

/* Element (i, j) of matrix n of the batch: the exact value and its bound. */
static inline void gemm_element(zrt_matmul_math math, const zrt_gemm *g, const float *a, const float *b, const float *c,
                                int n, int i, int j, double *want, double *bound)
{
    const float *an = a + n * g->stride_a, *bn = b + n * g->stride_b;
    double ab = 0, abs_sum = 0;
    for (int k = 0; k < g->K; k++) {
        double p = (double)gemm_op_at(an, g->lda, g->trans_a, i, k) * gemm_op_at(bn, g->ldb, g->trans_b, k, j);
        ab += p, abs_sum += fabs(p); /* exact products; the sum's 2^-53 K is far inside the bound */
    }
    float prior = c[n * g->stride_c + (int64_t)i * g->ldc + j];
    *want = g->alpha * ab + (g->beta != 0 ? (double)g->beta * prior : 0.0);
    *bound = gemm_bound(math, g->K, g->alpha, ab, abs_sum, g->beta, prior);
}

/* got, g's C after the call (host copies a, b, c of its inputs, g's
 * shapes and strides), against the exact product, element by element. */
static inline gemm_error gemm_check(zrt_matmul_math math, const zrt_gemm *g, const float *a, const float *b,
                                    const float *c, const float *got)
{
    gemm_error r = {0, 0};
    for (int n = 0; n < (g->batch > 1 ? g->batch : 1); n++)
        for (int i = 0; i < g->M; i++)
            for (int j = 0; j < g->N; j++) {
                double want, bound, value = got[n * g->stride_c + (int64_t)i * g->ldc + j];
                gemm_element(math, g, a, b, c, n, i, j, &want, &bound);
                r.worst = fmax(r.worst, bound_ratio(value, want, bound));
                r.max_error = fmax(r.max_error, value == value ? fabs(value - want) : INFINITY);
            }
    return r;
}

#endif
