/* vecmath_simd.h: the vector paths' bodies, written once over a vector type;
 * vecmath_avx2.c and vecmath_avx512.c define the macros below and include it.
 *
 * VEC, LANES: the type and its float count. LOAD/STORE (unaligned), SET1,
 * ADD, SUB, MUL, DIV, MAX; TANH, EXP: SLEEF's 1.0-ULP functions; HSUM, HMAX:
 * the lanes reduced; PATH_NAME: the table's name; TABLE: its symbol.
 * Built with -ffp-contract=off: GELU's ops are kernels/gelu.h's, in its
 * order, so tanh is the only difference from the scalar path.
 * Tails (n not a multiple of LANES) go through a LANES-float buffer filled
 * with a neutral pad: 0 for GELU, -inf for max and exp (exp(-inf) = 0).
 */
#include "layernorm.h"

#include <math.h>
#include <string.h>

static inline VEC load_tail(const float *p, int64_t count, float pad)
{
    float buf[LANES];
    for (int i = 0; i < LANES; i++) buf[i] = i < count ? p[i] : pad;
    return LOAD(buf);
}

static inline void store_tail(float *p, VEC v, int64_t count)
{
    float buf[LANES];
    STORE(buf, v);
    memcpy(p, buf, (size_t)count * sizeof(float));
}

/* The LANES floats at p[i..), or the tail padded with pad. */
#define LOAD_AT(p, i, n, pad) ((n) - (i) >= LANES ? LOAD((p) + (i)) : load_tail((p) + (i), (n) - (i), pad))
#define STORE_AT(p, i, n, v) ((n) - (i) >= LANES ? STORE((p) + (i), v) : store_tail((p) + (i), v, (n) - (i)))

/* tanh(sqrt(2/pi) * (x + 0.044715 x^3)), as kernels/gelu.h computes it. */
static inline VEC gelu_tanh(VEC x)
{
    VEC cube = MUL(MUL(MUL(SET1(0.044715f), x), x), x);
    return TANH(MUL(SET1(ZRT_GELU_SCALE), ADD(x, cube)));
}

static void gelu_forward(float *out, const float *in, int64_t n)
{
    const VEC half = SET1(0.5f), one = SET1(1.0f);
    for (int64_t i = 0; i < n; i += LANES) {
        VEC x = LOAD_AT(in, i, n, 0.0f);
        STORE_AT(out, i, n, MUL(MUL(half, x), ADD(one, gelu_tanh(x))));
    }
}

static void bias_gelu_forward(float *pre, float *out, const float *bias, int64_t rows, int64_t cols)
{
    const VEC half = SET1(0.5f), one = SET1(1.0f);
    for (int64_t r = 0; r < rows; r++) {
        float *p = pre + r * cols, *o = out + r * cols;
        for (int64_t c = 0; c < cols; c += LANES) {
            VEC x = ADD(LOAD_AT(p, c, cols, 0.0f), LOAD_AT(bias, c, cols, 0.0f));
            STORE_AT(p, c, cols, x);
            STORE_AT(o, c, cols, MUL(MUL(half, x), ADD(one, gelu_tanh(x))));
        }
    }
}

static void gelu_backward(float *dinp, const float *inp, const float *dout, int64_t n)
{
    const VEC half = SET1(0.5f), one = SET1(1.0f), scale = SET1(ZRT_GELU_SCALE), c3 = SET1(3.0f * 0.044715f);
    for (int64_t i = 0; i < n; i += LANES) {
        VEC x = LOAD_AT(inp, i, n, 0.0f), t = gelu_tanh(x);
        VEC sech2 = SUB(one, MUL(t, t));
        VEC slope = MUL(MUL(MUL(MUL(x, half), sech2), scale), ADD(one, MUL(MUL(c3, x), x)));
        VEC grad = ADD(MUL(half, ADD(one, t)), slope);
        STORE_AT(dinp, i, n, MUL(LOAD_AT(dout, i, n, 0.0f), grad));
    }
}

static float row_max(const float *in, int64_t n)
{
    VEC m = SET1(-INFINITY);
    for (int64_t i = 0; i < n; i += LANES) m = MAX(m, LOAD_AT(in, i, n, -INFINITY));
    return HMAX(m);
}

static float exp_sum(float *out, const float *in, float shift, int64_t n)
{
    VEC sum = SET1(0.0f), s = SET1(shift);
    for (int64_t i = 0; i < n; i += LANES) {
        VEC e = EXP(SUB(LOAD_AT(in, i, n, -INFINITY), s));
        sum = ADD(sum, e);
        STORE_AT(out, i, n, e);
    }
    return HSUM(sum);
}

static float dot(const float *a, const float *b, int64_t n)
{
    VEC sum = SET1(0.0f);
    for (int64_t i = 0; i < n; i += LANES) sum = ADD(sum, MUL(LOAD_AT(a, i, n, 0.0f), LOAD_AT(b, i, n, 0.0f)));
    return HSUM(sum);
}

static void layernorm_forward(float *out, float *mean, float *rstd, const float *x, const float *w, const float *b,
                              int64_t C)
{
    VEC acc = SET1(0.0f);
    for (int64_t c = 0; c < C; c += LANES) acc = ADD(acc, LOAD_AT(x, c, C, 0.0f));
    float m = HSUM(acc) / (float)C;
    VEC vm = SET1(m);
    acc = SET1(0.0f);
    for (int64_t c = 0; c < C; c += LANES) {
        VEC dev = SUB(LOAD_AT(x, c, C, m), vm); /* the pad m gives 0 */
        acc = ADD(acc, MUL(dev, dev));
    }
    float s = zrt_layernorm_rstd(HSUM(acc), (int)C);
    VEC vs = SET1(s);
    for (int64_t c = 0; c < C; c += LANES) {
        VEC norm = MUL(SUB(LOAD_AT(x, c, C, m), vm), vs);
        STORE_AT(out, c, C, ADD(MUL(norm, LOAD_AT(w, c, C, 0.0f)), LOAD_AT(b, c, C, 0.0f)));
    }
    *mean = m;
    *rstd = s;
}

static void layernorm_backward(float *dx, float *dw, float *db, const float *d, const float *x, const float *w,
                               float mean, float rstd, int64_t C)
{
    const VEC vm = SET1(mean), vs = SET1(rstd);
    VEC sum_dnorm = SET1(0.0f), sum_dnorm_norm = SET1(0.0f);
    for (int64_t c = 0; c < C; c += LANES) {
        VEC norm = MUL(SUB(LOAD_AT(x, c, C, mean), vm), vs), dnorm = MUL(LOAD_AT(w, c, C, 0.0f), LOAD_AT(d, c, C, 0.0f));
        sum_dnorm = ADD(sum_dnorm, dnorm);
        sum_dnorm_norm = ADD(sum_dnorm_norm, MUL(dnorm, norm));
    }
    const VEC dnorm_mean = SET1(HSUM(sum_dnorm) / (float)C), dnorm_norm_mean = SET1(HSUM(sum_dnorm_norm) / (float)C);
    for (int64_t c = 0; c < C; c += LANES) {
        VEC dc = LOAD_AT(d, c, C, 0.0f), norm = MUL(SUB(LOAD_AT(x, c, C, mean), vm), vs);
        VEC dnorm = MUL(LOAD_AT(w, c, C, 0.0f), dc);
        STORE_AT(db, c, C, ADD(LOAD_AT(db, c, C, 0.0f), dc));
        STORE_AT(dw, c, C, ADD(LOAD_AT(dw, c, C, 0.0f), MUL(norm, dc)));
        VEC step = MUL(SUB(SUB(dnorm, dnorm_mean), MUL(norm, dnorm_norm_mean)), vs);
        STORE_AT(dx, c, C, ADD(LOAD_AT(dx, c, C, 0.0f), step));
    }
}

const zrt_vecmath TABLE = {PATH_NAME, gelu_forward, bias_gelu_forward, gelu_backward, row_max, exp_sum, dot,
                           layernorm_forward, layernorm_backward};
