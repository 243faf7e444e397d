/* test_vecmath.c: the CPU models' vector math (runtime/model/vecmath.h) on
 * every path this CPU runs (scalar, AVX2+FMA, AVX-512F) against the scalar
 * reference (kernels/gelu.h and libm) and against double precision, over
 * the whole input range the models feed them: GELU and its derivative on a
 * dense grid of [-20, 20] plus normal samples, large magnitudes, zeros and
 * NaN (and fused with a bias add); exp on (-104, 0] (softmax shifts by the row max, so its input is
 * never positive); lengths 1..67 and unaligned starts (the vector tails);
 * in-place GELU. Bounds are vecmath.h's.
 */
#include "check.h"
#include "error_bounds.h" /* gelu_exact, gelu_grad_exact */
#include "gelu.h"
#include "vecmath.h"
#include "zrt.h"
#include "zrt/internal/offload.h"

#include <float.h>
#include <math.h>

#define N_GRID 400001
#define BOUND_ULP (1.0f / (1 << 22)) /* 2^-22 */

static float *grid; /* N_GRID + extras, the GELU inputs */
static int64_t n_inputs;

static void make_inputs(void)
{
    grid = malloc((N_GRID + 4096) * sizeof(float));
    for (int64_t i = 0; i < N_GRID; i++) grid[n_inputs++] = -20.0f + 40.0f * (float)i / (N_GRID - 1);
    for (int64_t i = 0; i < 4000; i++) grid[n_inputs++] = 3.0f * zrt_random_normal(5, 1, (uint64_t)i);
    const float edges[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 50.0f, -50.0f, 1e3f, -1e3f, 1e6f, -1e6f, 88.0f, -88.0f};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) grid[n_inputs++] = edges[i];
}

/* |got - want| within 2^-22 * max(1, |x|) (vecmath.h's GELU bound); reports the first miss. */
static int gelu_misses(const char *what, const char *path, const float *x, const float *got, const float *want,
                       int64_t n, float bound_scale)
{
    int misses = 0;
    for (int64_t i = 0; i < n; i++) {
        float bound = bound_scale * BOUND_ULP * fmaxf(1.0f, fabsf(x[i]));
        bool ok = isnan(want[i]) ? isnan(got[i]) : fabsf(got[i] - want[i]) <= bound;
        if (!ok && misses++ == 0)
            fprintf(stderr, "%s %s: x %.9g: %.9g, want %.9g\n", path, what, x[i], got[i], want[i]);
    }
    return misses;
}

static void check_gelu(const zrt_vecmath *vm)
{
    int64_t n = n_inputs;
    float *out = malloc(n * sizeof(float)), *ref = malloc(n * sizeof(float)), *dout = malloc(n * sizeof(float));
    float *exact = malloc(n * sizeof(float));
    vm->gelu_forward(out, grid, n);
    for (int64_t i = 0; i < n; i++) ref[i] = zrt_gelu(grid[i]), exact[i] = (float)gelu_exact(grid[i]);
    CHECK(gelu_misses("gelu vs libm", vm->name, grid, out, ref, n, 1) == 0);
    CHECK(gelu_misses("gelu vs double", vm->name, grid, out, exact, n, 2) == 0);
    for (int64_t i = 0; i < n; i++) dout[i] = 1.0f + 0.25f * zrt_random_normal(6, 2, (uint64_t)i);
    vm->gelu_backward(out, grid, dout, n);
    for (int64_t i = 0; i < n; i++) {
        ref[i] = dout[i] * zrt_gelu_grad(grid[i]);
        exact[i] = (float)(dout[i] * gelu_grad_exact(grid[i]));
    }
    int64_t sane = n - 2; /* 1e6: x*x*x overflows float in both float paths; the double one does not */
    CHECK(gelu_misses("gelu' vs libm", vm->name, grid, out, ref, n, 2) == 0);
    CHECK(gelu_misses("gelu' vs double", vm->name, grid, out, exact, sane - 2, 4) == 0);
    float nan_in = NAN, nan_out = 0;
    vm->gelu_forward(&nan_out, &nan_in, 1);
    CHECK_MSG(isnan(nan_out), "%s: gelu(NaN) = %g", vm->name, nan_out);
    free(out), free(ref), free(dout), free(exact);
}

/* Every length 1..67 at offsets 0 and 1: tails, and the in-place forms. */
static void check_tails(const zrt_vecmath *vm)
{
    float in[80], out[80], ref[80], keep[80];
    for (int i = 0; i < 80; i++) in[i] = 4.0f * zrt_random_normal(7, 3, (uint64_t)i);
    for (int n = 1; n <= 67; n++)
        for (int off = 0; off < 2; off++) {
            for (int i = 0; i < 80; i++) out[i] = keep[i] = -7.0f;
            vm->gelu_forward(out + off, in + off, n);
            int bad = 0;
            for (int i = 0; i < 80; i++) {
                bool inside = i >= off && i < off + n;
                float want = inside ? zrt_gelu(in[i]) : keep[i];
                bad += fabsf(out[i] - want) > BOUND_ULP * fmaxf(1.0f, fabsf(in[i]));
            }
            CHECK_MSG(bad == 0, "%s: gelu length %d offset %d: %d wrong (or written outside)", vm->name, n, off, bad);
            memcpy(ref, in, sizeof in);
            vm->gelu_forward(ref + off, ref + off, n); /* in place */
            CHECK_MSG(memcmp(ref + off, out + off, (size_t)n * sizeof(float)) == 0, "%s: in-place gelu %d", vm->name, n);
            float pre[3 * 67], pre_ref[3 * 67], act[3 * 67];
            for (int i = 0; i < 3 * n; i++) pre[i] = pre_ref[i] = in[(i + off) % 80];
            vm->bias_gelu_forward(pre, act, in + off, 3, n); /* bias: in[off..off+n) */
            int bad_bias = 0;
            for (int i = 0; i < 3 * n; i++) {
                pre_ref[i] += in[off + i % n];
                bad_bias += pre[i] != pre_ref[i] ||
                            fabsf(act[i] - zrt_gelu(pre_ref[i])) > BOUND_ULP * fmaxf(1.0f, fabsf(pre_ref[i]));
            }
            CHECK_MSG(bad_bias == 0, "%s: bias_gelu 3 x %d: %d wrong", vm->name, n, bad_bias);
            float sum = vm->exp_sum(out + off, in + off, 12.0f, n), want_sum = 0;
            for (int i = 0; i < n; i++) want_sum += expf(in[off + i] - 12.0f);
            CHECK_MSG(fabsf(sum - want_sum) <= 1e-6f * want_sum, "%s: exp_sum length %d: %g want %g", vm->name, n, sum,
                      want_sum);
            float want_max = in[off];
            for (int i = 1; i < n; i++) want_max = fmaxf(want_max, in[off + i]);
            CHECK_MSG(vm->max(in + off, n) == want_max, "%s: max of %d", vm->name, n);
            double want_dot = 0, magnitude = 0;
            for (int i = 0; i < n; i++) want_dot += (double)in[off + i] * out[off + i], magnitude += fabs(in[off + i] * out[off + i]);
            float got_dot = vm->dot(in + off, out + off, n);
            CHECK_MSG(fabs(got_dot - want_dot) <= 1e-6 * magnitude + 1e-30, "%s: dot of %d: %g want %g", vm->name, n,
                      got_dot, want_dot);
        }
}

/* exp over the softmax's inputs (-104, 0]: relative 2^-22 of libm's expf (2 subnormal steps below FLT_MIN). */
static void check_exp(const zrt_vecmath *vm)
{
    int64_t n = 1000001;
    float *in = malloc(n * sizeof(float)), *out = malloc(n * sizeof(float));
    for (int64_t i = 0; i < n; i++) in[i] = -104.0f * (float)i / (float)(n - 1);
    in[n - 1] = -INFINITY;
    vm->exp_sum(out, in, 0.0f, n);
    int misses = 0;
    for (int64_t i = 0; i < n; i++) {
        float want = expf(in[i]);
        bool ok = want >= FLT_MIN ? fabsf(out[i] - want) <= BOUND_ULP * want : fabsf(out[i] - want) <= 2 * FLT_TRUE_MIN;
        if (!ok && misses++ == 0) fprintf(stderr, "%s exp(%.9g) = %.9g, want %.9g\n", vm->name, in[i], out[i], want);
    }
    CHECK_MSG(misses == 0, "%s: %d exp values outside 2^-22", vm->name, misses);
    free(in), free(out);
}

/* One row of layernorm forward and backward against the scalar path (sums in another order: relative 1e-5). */
static void check_layernorm(const zrt_vecmath *vm, const zrt_vecmath *ref)
{
    enum { C = 77 };
    float x[C], w[C], b[C], d[C], out[2][C], dx[2][C], dw[2][C], db[2][C], mean[2], rstd[2];
    for (int c = 0; c < C; c++) {
        x[c] = 3.0f + 2.0f * zrt_random_normal(8, 1, c), w[c] = 1.0f + 0.1f * zrt_random_normal(8, 2, c);
        b[c] = 0.1f * zrt_random_normal(8, 3, c), d[c] = zrt_random_normal(8, 4, c);
    }
    const zrt_vecmath *paths[2] = {vm, ref};
    for (int p = 0; p < 2; p++) {
        for (int c = 0; c < C; c++) dx[p][c] = 0.5f, dw[p][c] = 0.25f, db[p][c] = -0.25f;
        paths[p]->layernorm_forward(out[p], &mean[p], &rstd[p], x, w, b, C);
        paths[p]->layernorm_backward(dx[p], dw[p], db[p], d, x, w, mean[p], rstd[p], C);
    }
    CHECK(fabsf(mean[0] - mean[1]) <= 1e-5f * fabsf(mean[1]) && fabsf(rstd[0] - rstd[1]) <= 1e-5f * rstd[1]);
    int bad = 0;
    for (int c = 0; c < C; c++) {
        bad += fabsf(out[0][c] - out[1][c]) > 1e-5f * (1.0f + fabsf(out[1][c]));
        bad += fabsf(dx[0][c] - dx[1][c]) > 1e-5f * (1.0f + fabsf(dx[1][c]));
        bad += fabsf(dw[0][c] - dw[1][c]) > 1e-5f * (1.0f + fabsf(dw[1][c]));
        bad += db[0][c] != db[1][c]; /* one add per element: exact */
    }
    CHECK_MSG(bad == 0, "%s: layernorm: %d values differ from the scalar path", vm->name, bad);
}

int main(void)
{
    make_inputs();
    const zrt_vecmath *scalar = zrt_vecmath_path(ZRT_SIMD_SCALAR);
    CHECK(scalar && zrt_vecmath_path(ZRT_SIMD_AUTO) == zrt_vecmath_best());
    const zrt_simd paths[] = {ZRT_SIMD_SCALAR, ZRT_SIMD_AVX2, ZRT_SIMD_AVX512};
    int ran = 0;
    for (size_t p = 0; p < sizeof paths / sizeof paths[0]; p++) {
        const zrt_vecmath *vm = zrt_vecmath_path(paths[p]);
        if (!vm) {
            printf("%s: not on this CPU\n", zrt_simd_name(paths[p]));
            continue;
        }
        CHECK(strcmp(vm->name, zrt_simd_name(paths[p])) == 0);
        check_gelu(vm);
        check_tails(vm);
        check_exp(vm);
        check_layernorm(vm, scalar);
        printf("%s: checked\n", vm->name);
        ran++;
    }
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx512f")) CHECK(strcmp(zrt_vecmath_best()->name, "avx512") == 0);
#endif
    printf("%d paths checked; best: %s\n", ran, zrt_vecmath_best()->name);
    free(grid);
    return CHECK_DONE();
}
