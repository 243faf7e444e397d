/* vecmath.c: the scalar reference of vecmath.h (kernels/gelu.h and libm,
 * left-to-right sums: the math the models ran before the vector paths) and
 * the run-time choice of a path by cpuid.
 */
#include "vecmath.h"
#include "zrt/internal/offload.h"

#include "gelu.h"
#include "layernorm.h"

#include <math.h>
#include <pthread.h>

static void gelu_forward(float *out, const float *in, int64_t n)
{
    for (int64_t i = 0; i < n; i++) out[i] = zrt_gelu(in[i]);
}

static void bias_gelu_forward(float *pre, float *out, const float *bias, int64_t rows, int64_t cols)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            int64_t i = r * cols + c;
            out[i] = zrt_gelu(pre[i] += bias[c]);
        }
}

static void gelu_backward(float *dinp, const float *inp, const float *dout, int64_t n)
{
    for (int64_t i = 0; i < n; i++) dinp[i] = dout[i] * zrt_gelu_grad(inp[i]);
}

static float row_max(const float *in, int64_t n)
{
    float m = in[0];
    for (int64_t i = 1; i < n; i++) m = fmaxf(m, in[i]);
    return m;
}

static float exp_sum(float *out, const float *in, float shift, int64_t n)
{
    float sum = 0;
    for (int64_t i = 0; i < n; i++) sum += (out[i] = expf(in[i] - shift));
    return sum;
}

static float dot(const float *a, const float *b, int64_t n)
{
    float sum = 0;
    for (int64_t i = 0; i < n; i++) sum += a[i] * b[i];
    return sum;
}

static void layernorm_forward(float *out, float *mean, float *rstd, const float *x, const float *w, const float *b,
                              int64_t C)
{
    float m = 0, v = 0;
    for (int64_t c = 0; c < C; c++) m += x[c];
    m /= (float)C;
    for (int64_t c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
    float s = zrt_layernorm_rstd(v, (int)C);
    for (int64_t c = 0; c < C; c++) out[c] = zrt_layernorm_out(x[c], m, s, w[c], b[c]);
    *mean = m;
    *rstd = s;
}

static void layernorm_backward(float *dx, float *dw, float *db, const float *d, const float *x, const float *w,
                               float mean, float rstd, int64_t C)
{
    float dnorm_mean = 0, dnorm_norm_mean = 0;
    for (int64_t c = 0; c < C; c++) {
        float norm = (x[c] - mean) * rstd, dnorm = w[c] * d[c];
        dnorm_mean += dnorm;
        dnorm_norm_mean += dnorm * norm;
    }
    dnorm_mean /= (float)C;
    dnorm_norm_mean /= (float)C;
    for (int64_t c = 0; c < C; c++) {
        float norm = zrt_layernorm_norm(x[c], mean, rstd), dnorm = w[c] * d[c];
        db[c] += d[c];
        dw[c] += norm * d[c];
        dx[c] += zrt_layernorm_dx(dnorm, norm, dnorm_mean, dnorm_norm_mean, rstd);
    }
}

static const zrt_vecmath scalar = {"scalar", gelu_forward, bias_gelu_forward, gelu_backward, row_max, exp_sum, dot,
                                   layernorm_forward, layernorm_backward};

static bool supported(zrt_simd simd)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    switch (simd) {
    case ZRT_SIMD_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case ZRT_SIMD_AVX512: return __builtin_cpu_supports("avx512f");
    default: return simd == ZRT_SIMD_SCALAR;
    }
#else
    return simd == ZRT_SIMD_SCALAR;
#endif
}

static const zrt_vecmath *best;
static pthread_once_t best_once = PTHREAD_ONCE_INIT;

static void choose_best(void)
{
    best = supported(ZRT_SIMD_AVX512) ? &zrt_vecmath_avx512 : supported(ZRT_SIMD_AVX2) ? &zrt_vecmath_avx2 : &scalar;
}

const zrt_vecmath *zrt_vecmath_best(void)
{
    pthread_once(&best_once, choose_best);
    return best;
}

const zrt_vecmath *zrt_vecmath_path(zrt_simd simd)
{
    if (simd == ZRT_SIMD_AUTO) return zrt_vecmath_best();
    if (!supported(simd)) return NULL;
    return simd == ZRT_SIMD_AVX512 ? &zrt_vecmath_avx512 : simd == ZRT_SIMD_AVX2 ? &zrt_vecmath_avx2 : &scalar;
}
