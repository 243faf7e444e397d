/* test_cuda_kernels.c: every kernel of the CUDA models (kernels/
 * model_kernels.cu, flash_kernels.cu) and the cuBLASLt matmuls (runtime/model/cuda_blas.c)
 * against the CPU reference on fresh random inputs (the seed is printed).
 * Bounds, per kernels/model_kernels.h:
 *  - bitwise: embedding forward and backward, the bias rows, the loss mean,
 *    the fused residual add's h and its norm against the unfused kernel's;
 *    (the same additions in the same order); the bias gradient, layernorm's
 *    and rmsnorm's weight gradients against kernels/colsum.h's C twin (and
 *    row order per column within 2 N u sum |term|: check_colsums);
 *  - GELU and GELU backward: against GELU and its derivative in double,
 *    per element, tests/error_bounds.h's bound from CUDA's tanhf (2 ulp)
 *    and the fp32 roundings (gelu_bound, gelu_backward_bound; about 2 ulp
 *    of the result, more where the derivative amplifies tanhf's error:
 *    |x u'(x)| ~ 17 at |x| = 5, where the former 1e-6 x max(1, |ref|)
 *    rejected a conforming tanhf);
 *  - row reductions in a warp's order (layernorm, cross-entropy): 2e-5 of
 *    the row's largest magnitude; the MLP's double-precision cross-entropy
 *    1e-6;
 *  - flash attention (kernels/flash_kernels.cu): out, lse, dq, dk, dv
 *    against quadratic loops in double, 2e-5 of the largest (MHA, GQA with
 *    hs 128 -- shared memory above 48 KB --, a decode row);
 *  - matmuls (fp32 and bf16, each transpose pair, a strided batch):
 *    against the product in double, per element, error_bounds.h's
 *    gemm_bound: |alpha| (2u + u^2 + gamma_K) sum_k |a_ik b_kj| plus the
 *    output's roundings (u: 2^-9 for bf16 inputs, 0 for fp32; gamma_K of
 *    the fp32 accumulation). The former bf16 bound, 2^-7 K max|a| max|b|,
 *    let a dropped K-block pass, and a doubled alpha at K = 513
 *    (test_model_emulated shows both, through the fake cuBLASLt).
 *  - the gradient statistics (device_kernels.cu): bitwise grad_stats.h's
 *    C twin, whatever the grid they are launched on;
 *  - bf16 activations (kernel_checks_bf16.h): each kernel at act bf16 on
 *    bf16-exact inputs stores its fp32 run's results rounded, bitwise.
 * Skips (exit 77) without a GPU.
 */
#include "nn_device.h"
#include "error_bounds.h"
#include "kernel_checks.h"
#include "cuda_kernels.h"
#include "model_kernels.h"
#include "flash_cases.h"
#include "model_refs.h"

#include <math.h>
#include <time.h>

static zrt_device *dev;
static zrt_stream *stream;
static void *native;
static uint64_t seed;

static float *up(const float *host, size_t n) { return upload(dev, host, n * sizeof(float)); }
static float *zeros(size_t n)
{
    float *p = device_alloc(dev, n * sizeof(float), "kernel output");
    CHECK_OK(zrt_memset_async(stream, p, 0, n * sizeof(float)));
    return p;
}
static float *down(const float *d, size_t n)
{
    float *h = malloc(n * sizeof(float));
    CHECK_OK(zrt_stream_synchronize(stream));
    CHECK_OK(zrt_device_read(dev, h, d, n * sizeof(float)));
    return h;
}
static float *randoms(size_t n, float scale, uint64_t salt)
{
    float *h = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) h[i] = scale * zrt_random_normal(seed, salt, i);
    return h;
}

/* Largest |got - want| / bound, where bound = tol x the largest |want|. */
static double worst_error(const float *got, const float *want, size_t n, double tol)
{
    double largest = 0, worst = 0;
    for (size_t i = 0; i < n; i++) largest = fmax(largest, fabs(want[i]));
    for (size_t i = 0; i < n; i++) worst = fmax(worst, bound_ratio(got[i], want[i], tol * fmax(largest, 1e-30)));
    return worst;
}

/* Bitwise (tol 0), or within tol of the largest |want|. */
static void expect(const char *what, const float *dev_got, const float *want, size_t n, double tol)
{
    float *got = down(dev_got, n);
    if (tol == 0) {
        CHECK_MSG(memcmp(got, want, n * sizeof(float)) == 0, "%s: not bitwise equal to the CPU", what);
        printf("%-28s bitwise equal (%zu elements)\n", what, n);
    } else {
        double e = worst_error(got, want, n, tol);
        CHECK_MSG(e <= 1.0, "%s: error %.3g x the bound %.1g", what, e, tol);
        printf("%-28s within %.2f of the bound %.1g (%zu elements)\n", what, e, tol, n);
    }
    free(got);
}

/* Each element within its own bound of the exact value (error_bounds.h). */
static void expect_exact(const char *what, const float *dev_got, const double *exact, const double *bound, size_t n)
{
    float *got = down(dev_got, n);
    double worst = 0;
    for (size_t i = 0; i < n; i++) worst = fmax(worst, bound_ratio(got[i], exact[i], bound[i]));
    CHECK_MSG(worst <= 1.0, "%s: error %.3g x its bound", what, worst);
    printf("%-28s within %.2f of its per-element bound of double's (%zu elements)\n", what, worst, n);
    free(got);
}

#include "kernel_checks_bf16.h" /* check_bf16: every kernel at bf16 activations */

static void check_embed(void)
{
    enum { B = 3, T = 17, C = 40, V = 50, N = B * T };
    int32_t tokens[N];
    for (int i = 0; i < N; i++) tokens[i] = (int)((seed + (uint64_t)i * 7919u) % (i % 5 ? V : 3)); /* repeats */
    float *wte = randoms((size_t)V * C, 0.02f, 1), *wpe = randoms((size_t)T * C, 0.01f, 2);
    float *out = malloc(sizeof(float) * N * C), *dout = randoms((size_t)N * C, 1.0f, 3);
    float *dwte = calloc((size_t)V * C, sizeof(float)), *dwpe = calloc((size_t)T * C, sizeof(float));
    int32_t flag = 0;
    ref_embed_forward(out, tokens, wte, wpe, N, T, C, V, &flag);
    ref_embed_backward(dwte, dwpe, dout, tokens, N, T, C, V);
    int32_t *d_tokens = upload(dev, tokens, sizeof tokens), *bad = NULL;
    CHECK_OK(zrt_host_alloc(dev, ZRT_MEM_COMM, sizeof(int32_t), "flag", (void **)&bad));
    *bad = 0;
    float *d_out = zeros((size_t)N * C), *d_dwte = zeros((size_t)V * C), *d_dwpe = zeros((size_t)T * C);
    CHECK(zrt_cuda_embed_forward(native, 0, d_out, d_tokens, up(wte, (size_t)V * C), up(wpe, (size_t)T * C), N, T, C, V,
                                 bad) == 0);
    CHECK(zrt_cuda_embed_backward(native, 0, d_dwte, d_dwpe, up(dout, (size_t)N * C), d_tokens, N, T, C, V) == 0);
    expect("embed forward", d_out, out, (size_t)N * C, 0);
    expect("embed backward wte", d_dwte, dwte, (size_t)V * C, 0);
    expect("embed backward wpe", d_dwpe, dwpe, (size_t)T * C, 0);
    CHECK_MSG(*bad == 0, "the flag was set for tokens in range");
    tokens[5] = V; /* out of range: flagged */
    CHECK_OK(zrt_device_write(dev, d_tokens, tokens, sizeof tokens));
    CHECK(zrt_cuda_embed_forward(native, 0, d_out, d_tokens, up(wte, (size_t)V * C), up(wpe, (size_t)T * C), N, T, C, V,
                                 bad) == 0);
    CHECK_OK(zrt_stream_synchronize(stream));
    CHECK_MSG(*bad == 1, "a token outside the vocabulary did not set the flag");
    free(wte), free(wpe), free(out), free(dout), free(dwte), free(dwpe);
}

static void check_rows(void)
{
    enum { N = 37, OC = 300 };
    size_t n = (size_t)N * OC;
    float *bias = randoms(OC, 1.0f, 4), *res = randoms(n, 1.0f, 5), *x = randoms(n, 2.0f, 6), *d = randoms(n, 1.0f, 7);
    float *rows = malloc(n * 4), *db = calloc(OC, 4), *pre = malloc(n * 4), *gel = malloc(n * 4);
    double *gel_exact = malloc(n * 8), *gel_bound = malloc(n * 8), *dg_exact = malloc(n * 8), *dg_bound = malloc(n * 8);
    ref_init_rows(rows, bias, res, N, OC);
    ref_bias_backward_blocked(db, d, N, OC);
    memcpy(pre, x, n * 4);
    ref_bias_gelu_forward(pre, gel, bias, N, OC); /* pre: bitwise the GPU's, the input of its GELU */
    for (size_t i = 0; i < n; i++) {
        gel_exact[i] = gelu_exact(pre[i]), gel_bound[i] = gelu_bound(pre[i]);
        dg_exact[i] = d[i] * gelu_grad_exact(x[i]), dg_bound[i] = gelu_backward_bound(x[i], d[i]);
    }
    float *d_rows = zeros(n), *d_db = zeros(OC), *d_pre = up(x, n), *d_gel = zeros(n), *d_dg = zeros(n);
    CHECK(zrt_cuda_init_rows(native, 0, d_rows, up(bias, OC), up(res, n), N, OC) == 0);
    CHECK(zrt_cuda_bias_backward(native, 0, d_db, up(d, n), N, OC, zeros(zrt_colsum_scratch_floats(ZRT_COLSUM_BIAS, N, OC))) == 0);
    CHECK(zrt_cuda_bias_gelu_forward(native, 0, d_pre, d_gel, up(bias, OC), N, OC) == 0);
    CHECK(zrt_cuda_gelu_backward(native, 0, d_dg, up(x, n), up(d, n), n) == 0);
    expect("bias + residual rows", d_rows, rows, n, 0);
    expect("bias backward", d_db, db, OC, 0);
    expect("bias + GELU (pre)", d_pre, pre, n, 0);
    expect_exact("bias + GELU", d_gel, gel_exact, gel_bound, n);
    expect_exact("GELU backward", d_dg, dg_exact, dg_bound, n);
    free(bias), free(res), free(x), free(d), free(rows), free(db), free(pre), free(gel);
    free(gel_exact), free(gel_bound), free(dg_exact), free(dg_bound);
}

static void check_layernorm(void)
{
    enum { N = 29, C = 200 };
    size_t n = (size_t)N * C;
    float *x = randoms(n, 3.0f, 8), *w = randoms(C, 1.0f, 9), *b = randoms(C, 1.0f, 10), *d = randoms(n, 1.0f, 11);
    float *out = malloc(n * 4), *mean = malloc(N * 4), *rstd = malloc(N * 4), *dx = randoms(n, 1.0f, 12);
    float *dx0 = malloc(n * 4), *dw = calloc(C, 4), *db = calloc(C, 4);
    memcpy(dx0, dx, n * 4);
    ref_layernorm_forward(out, mean, rstd, x, w, b, N, C);
    float *d_out = zeros(n), *d_mean = zeros(N), *d_rstd = zeros(N);
    CHECK(zrt_cuda_layernorm_forward(native, 0, d_out, d_mean, d_rstd, up(x, n), up(w, C), up(b, C), N, C) == 0);
    expect("layernorm forward", d_out, out, n, 2e-5);
    expect("layernorm mean", d_mean, mean, N, 2e-5);
    expect("layernorm rstd", d_rstd, rstd, N, 2e-5);
    ref_layernorm_backward_blocked(dx, dw, db, d, x, w, mean, rstd, N, C); /* from the CPU's statistics, given to both */
    float *d_dx = up(dx0, n), *d_dw = zeros(C), *d_db = zeros(C);
    CHECK(zrt_cuda_layernorm_backward(native, 0, d_dx, d_dw, d_db, up(d, n), up(x, n), up(w, C), up(mean, N), up(rstd, N),
                                      N, C, zeros(zrt_colsum_scratch_floats(ZRT_COLSUM_LAYERNORM, N, C))) == 0);
    expect("layernorm backward dx", d_dx, dx, n, 2e-5);
    expect("layernorm backward dw", d_dw, dw, C, 0);
    expect("layernorm backward db", d_db, db, C, 0);
    free(x), free(w), free(b), free(d), free(out), free(mean), free(rstd), free(dx), free(dx0), free(dw), free(db);
}

/* Flash attention (kernels/flash_kernels.cu) on tests/flash_cases.h's cases (test_flash_sim runs the
 * same kernels on the CPU): out, lse, dq, dk, dv within 2e-5 of the largest of the double loops'. */
static void check_flash(const char *what, int B, int T, int S, int NH, int NKV, int hs)
{
    flash_case c = flash_case_make(B, T, S, NH, NKV, hs, seed);
    const zrt_attn_shape *a = &c.a;
    float *d_q = up(c.q, c.n[FLASH_DQ]), *d_k = up(c.k, c.n[FLASH_DK]), *d_v = up(c.v, c.n[FLASH_DV]);
    float *got[FLASH_OUTPUTS];
    for (int i = 0; i < FLASH_OUTPUTS; i++) got[i] = zeros(c.n[i]);
    CHECK(zrt_cuda_flash_forward(native, 0, a, got[FLASH_OUT], got[FLASH_LSE], d_q, d_k, d_v) == 0);
    CHECK(zrt_cuda_flash_backward(native, 0, a, got[FLASH_DQ], got[FLASH_DK], got[FLASH_DV], up(c.dout, c.n[FLASH_OUT]),
                                  got[FLASH_OUT], got[FLASH_LSE], d_q, d_k, d_v) == 0);
    for (int i = 0; i < FLASH_OUTPUTS; i++) {
        char name[64];
        snprintf(name, sizeof name, "flash %s %s", what, flash_output_names[i]);
        expect(name, got[i], c.want[i], c.n[i], FLASH_BOUND);
    }
    flash_case_free(&c);
}

/* RMSNorm: warp-order row sums (2e-5 of the row), dw bitwise colsum.h's twin. */
static void check_rmsnorm(void)
{
    enum { N = 37, C = 200 };
    size_t n = (size_t)N * C;
    float *x = randoms(n, 2.0f, 21), *w = randoms(C, 1.0f, 22), *d = randoms(n, 1.0f, 23), *dx0 = randoms(n, 1.0f, 24);
    float *out = calloc(n, 4), *rstd = calloc(N, 4), *dx = malloc(n * 4), *dw = calloc(C, 4);
    memcpy(dx, dx0, n * 4);
    ref_rmsnorm_forward(out, rstd, x, w, N, C, 1e-6f);
    ref_rmsnorm_backward_blocked(dx, dw, d, x, w, rstd, N, C);
    float *d_out = zeros(n), *d_rstd = zeros(N), *d_dw = zeros(C), *d_dx = up(dx0, n);
    CHECK(zrt_cuda_rmsnorm_forward(native, 0, d_out, d_rstd, up(x, n), up(w, C), N, C, 1e-6f) == 0);
    expect("rmsnorm", d_out, out, n, 2e-5);
    CHECK(zrt_cuda_rmsnorm_backward(native, 0, d_dx, d_dw, up(d, n), up(x, n), up(w, C), up(rstd, N), N, C,
                                    zeros(zrt_colsum_scratch_floats(ZRT_COLSUM_RMSNORM, N, C))) == 0);
    expect("rmsnorm backward dx", d_dx, dx, n, 2e-5);
    expect("rmsnorm backward dw", d_dw, dw, C, 0);
    free(x), free(w), free(d), free(dx0), free(out), free(rstd), free(dx), free(dw);
}

/* The fused residual add and norm: h bitwise the reference's (the same two additions), the in-place form
 * (h == y) included; the norm bitwise the unfused kernel's on that h (the same warp code), for both norms. */
static void check_residual_norm(void)
{
    enum { N = 37, C = 200 };
    size_t n = (size_t)N * C;
    float *x = randoms(n, 1.0f, 50), *y = randoms(n, 3.0f, 51), *bias = randoms(C, 1.0f, 52), *w = randoms(C, 1.0f, 53);
    float *b = randoms(C, 1.0f, 54), *h = malloc(n * 4), *out = malloc(n * 4), *mean = malloc(N * 4), *rstd = malloc(N * 4);
    for (int rms = 0; rms < 2; rms++) {
        ref_residual_norm(h, out, x, y, rms ? NULL : bias, N, C, rms, w, b, mean, rstd, 1e-6f);
        float *d_w = up(w, C), *d_b = up(b, C), *d_h = up(y, n), *d_out = zeros(n), *d_mean = zeros(N), *d_rstd = zeros(N);
        CHECK(zrt_cuda_residual_norm(native, 0, d_h, d_out, up(x, n), d_h, rms ? NULL : up(bias, C), N, C, rms, d_w, d_b,
                                     d_mean, d_rstd, 1e-6f) == 0);
        expect(rms ? "residual + rmsnorm h" : "residual + bias + layernorm h", d_h, h, n, 0);
        expect(rms ? "residual + rmsnorm out" : "residual + bias + layernorm out", d_out, out, n, 2e-5);
        float *unfused = zeros(n), *u_mean = zeros(N), *u_rstd = zeros(N), *got = down(d_out, n);
        if (rms)
            CHECK(zrt_cuda_rmsnorm_forward(native, 0, unfused, u_rstd, d_h, d_w, N, C, 1e-6f) == 0);
        else
            CHECK(zrt_cuda_layernorm_forward(native, 0, unfused, u_mean, u_rstd, d_h, d_w, d_b, N, C) == 0);
        expect("  the same bits as unfused", unfused, got, n, 0);
        free(got);
    }
    free(x), free(y), free(bias), free(w), free(b), free(h), free(out), free(mean), free(rstd);
}

/* Rope (both turns): the same products, bitwise. SwiGLU: the same formula
 * but CUDA's expf against libm's (2 ulp): 2e-6 of the largest. */
static void check_rope_swiglu(void)
{
    enum { N = 24, T = 8, POS0 = 5, HEADS = 3, HS = 16, LD = 56, H = 70 };
    size_t n = (size_t)N * LD, table = (size_t)(POS0 + T) * HS / 2;
    float *x = randoms(n, 1.0f, 31), *cosv = randoms(table, 1.0f, 32), *sinv = randoms(table, 1.0f, 33);
    float *d_cos = up(cosv, table), *d_sin = up(sinv, table);
    for (int inverse = 0; inverse < 2; inverse++) {
        float *want = malloc(n * 4), *d_x = up(x, n);
        memcpy(want, x, n * 4);
        ref_rope(want, N, T, POS0, HEADS, HS, LD, cosv, sinv, inverse);
        CHECK(zrt_cuda_rope(native, 0, d_x, N, T, POS0, HEADS, HS, LD, d_cos, d_sin, inverse) == 0);
        expect(inverse ? "rope inverse" : "rope", d_x, want, n, 0);
        free(want);
    }
    size_t m = (size_t)N * H;
    float *gu = randoms(2 * m, 3.0f, 34), *dout = randoms(m, 1.0f, 35), *out = malloc(m * 4), *dgu = malloc(2 * m * 4);
    ref_swiglu_forward(out, gu, N, H);
    ref_swiglu_backward(dgu, dout, gu, N, H);
    float *d_out = zeros(m), *d_dgu = zeros(2 * m), *d_gu = up(gu, 2 * m);
    CHECK(zrt_cuda_swiglu_forward(native, 0, d_out, d_gu, N, H) == 0);
    expect("swiglu", d_out, out, m, 2e-6);
    CHECK(zrt_cuda_swiglu_backward(native, 0, d_dgu, up(dout, m), d_gu, N, H) == 0);
    expect("swiglu backward", d_dgu, dgu, 2 * m, 2e-6);
    free(x), free(cosv), free(sinv), free(gu), free(dout), free(out), free(dgu);
}

/* gpt.c's and mlp.c's cross-entropy, and the loss mean (bitwise: the same sum of the same losses). */
static void check_cross_entropy(bool double_math)
{
    enum { N = 19, V = 1000 };
    size_t n = (size_t)N * V;
    float *z = randoms(n, 3.0f, 15), *d = malloc(n * 4), scale = 1024.0f;
    int32_t targets[N];
    double losses[N];
    for (int i = 0; i < N; i++) targets[i] = (int)((seed + (uint64_t)i * 104729u) % V);
    targets[3] = targets[11] = ZRT_IGNORE_INDEX; /* no targets: loss 0, d 0, the mean over the other 17 */
    int32_t flag = 0;
    memcpy(d, z, n * 4);
    ref_cross_entropy(d, losses, targets, N, V, scale, double_math, &flag); /* in place: d holds the gradient */
    float want_mean = 0.0f, got_mean = 0.0f;
    ref_loss_mean(&want_mean, losses, targets, N, 2.0f);
    int32_t *bad = NULL;
    CHECK_OK(zrt_host_alloc(dev, ZRT_MEM_COMM, sizeof(int32_t), "flag", (void **)&bad));
    *bad = 0;
    float *d_d = up(z, n), *d_mean = zeros(1);
    double *d_losses = device_alloc(dev, sizeof losses, "losses");
    int32_t *d_targets = upload(dev, targets, sizeof targets);
    CHECK(zrt_cuda_cross_entropy(native, 0, d_d, d_losses, d_targets, N, V, scale, double_math, bad) == 0);
    CHECK(zrt_cuda_loss_mean(native, d_mean, d_losses, d_targets, N, 2.0f) == 0);
    const char *what = double_math ? "cross-entropy (mlp)" : "cross-entropy (gpt)";
    expect(what, d_d, d, n, double_math ? 1e-6 : 2e-5);
    double got_losses[N];
    CHECK_OK(zrt_device_read(dev, got_losses, d_losses, sizeof got_losses));
    CHECK_OK(zrt_device_read(dev, &got_mean, d_mean, sizeof got_mean));
    double worst = 0; /* over each row's bound: 2e-5 relative (fp32); double: 2^-23 of the row's range (test_xent_sim) */
    for (int i = 0; i < N; i++) {
        float lo = z[i * V], hi = lo;
        for (int v = 1; v < V; v++) lo = fminf(lo, z[i * V + v]), hi = fmaxf(hi, z[i * V + v]);
        double bound = double_math ? ldexp(hi - lo, -23) : 2e-5 * fabs(losses[i]);
        worst = fmax(worst, targets[i] == ZRT_IGNORE_INDEX ? fabs(got_losses[i]) * 1e30
                                                          : fabs(got_losses[i] - losses[i]) / bound);
    }
    CHECK_MSG(worst <= 1.0, "%s: losses off by %.3g x their bound", what, worst);
    CHECK_MSG(fabsf(got_mean - want_mean) <= 2e-5f * want_mean, "%s: mean %.9g vs %.9g", what, got_mean, want_mean);
    printf("%-28s losses within %.3g of their bound, mean %.9g vs %.9g\n", what, worst, got_mean, want_mean);
    CHECK_MSG(*bad == 0, "the flag was set for targets in range");
    zrt_host_free(dev, bad);
    free(z), free(d);
}

/* A strided batch of 3 matmuls against the product in double, per element, per transpose pair. */
static void check_gemm(zrt_matmul_math math)
{
    zrt_cuda_blas *blas;
    CHECK_OK(zrt_cuda_blas_create(dev, math, &blas));
    enum { M = 67, N = 45, K = 129, BATCH = 3 };
    for (int t = 0; t < 4; t++) {
        bool ta = t & 1, tb = t & 2;
        size_t sa = (size_t)M * K, sb = (size_t)K * N, sc = (size_t)M * N;
        float *a = randoms(sa * BATCH, 1.0f, 20 + t), *b = randoms(sb * BATCH, 1.0f, 30 + t);
        float *c = randoms(sc * BATCH, 1.0f, 40 + t);
        zrt_gemm g = {.trans_a = ta, .trans_b = tb, .M = M, .N = N, .K = K, .alpha = 0.5f, .beta = 1.0f,
                      .A = up(a, sa * BATCH), .lda = ta ? M : K, .B = up(b, sb * BATCH), .ldb = tb ? K : N,
                      .C = up(c, sc * BATCH), .ldc = N, .batch = BATCH, .stride_a = (int64_t)sa,
                      .stride_b = (int64_t)sb, .stride_c = (int64_t)sc};
        CHECK_OK(zrt_cuda_gemm(blas, native, &g));
        char what[64];
        snprintf(what, sizeof what, "matmul %s%s %s", ta ? "T" : "N", tb ? "T" : "N",
                 math == ZRT_MATMUL_BF16 ? "bf16" : "fp32");
        float *got = down(g.C, sc * BATCH);
        gemm_error e = gemm_check(math, &g, a, b, c, got);
        CHECK_MSG(e.worst <= 1.0, "%s: error %.3g x its bound", what, e.worst);
        printf("%-28s within %.2f of its per-element bound of double's (largest error %.3g)\n", what, e.worst,
               e.max_error);
        free(a), free(b), free(c), free(got);
    }
    zrt_cuda_blas_destroy(blas, dev);
}

/* The column sums over several chunks (the last short) and a partial
 * column block: bitwise colsum.h's twin; against row order (the CPU ops'),
 * per column within the two orders' worst case, 2 N u sum |term| (u = 2^-24). */
static void check_colsums(void)
{
    enum { N = 1000, C = 300 };
    size_t n = (size_t)N * C;
    float *d = randoms(n, 1.0f, 50), *x = randoms(n, 2.0f, 51), *mean = randoms(N, 0.5f, 52), *rstd = randoms(N, 1.0f, 53);
    float *twin[2] = {calloc(C, 4), calloc(C, 4)}, *rows = calloc(C, 4);
    double *mass = calloc(C, 8);
    static const char *names[3] = {"bias gradient", "layernorm dw", "rmsnorm dw"};
    for (int kind = 0; kind < 3; kind++) {
        zrt_colsum_args a = {(zrt_colsum_kind)kind, 0, d, x, mean, rstd, N, C};
        memset(twin[0], 0, C * 4), memset(twin[1], 0, C * 4), memset(rows, 0, C * 4), memset(mass, 0, C * 8);
        zrt_colsum_twin(&a, twin[0], twin[1]);
        for (int r = 0; r < N; r++)
            for (int c = 0; c < C; c++) {
                float v[2];
                zrt_colsum_terms(&a, r, c, v);
                rows[c] += v[0], mass[c] += fabs(v[0]);
            }
        float *d_out[2] = {zeros(C), zeros(C)}, *d_d = up(d, n), *d_x = up(x, n), *d_dx = zeros(n);
        float *scratch = zeros(zrt_colsum_scratch_floats(a.kind, N, C));
        if (kind == ZRT_COLSUM_BIAS) CHECK(zrt_cuda_bias_backward(native, 0, d_out[0], d_d, N, C, scratch) == 0);
        if (kind == ZRT_COLSUM_LAYERNORM)
            CHECK(zrt_cuda_layernorm_backward(native, 0, d_dx, d_out[0], d_out[1], d_d, d_x, up(x, C), up(mean, N),
                                              up(rstd, N), N, C, scratch) == 0);
        if (kind == ZRT_COLSUM_RMSNORM)
            CHECK(zrt_cuda_rmsnorm_backward(native, 0, d_dx, d_out[0], d_d, d_x, up(x, C), up(rstd, N), N, C, scratch) == 0);
        expect(names[kind], d_out[0], twin[0], C, 0);
        if (kind == ZRT_COLSUM_LAYERNORM) expect("layernorm db", d_out[1], twin[1], C, 0);
        float *got = down(d_out[0], C);
        double worst = 0;
        for (int c = 0; c < C; c++) worst = fmax(worst, fabs((double)got[c] - rows[c]) / (2.0 * N * 0x1p-24 * mass[c]));
        CHECK_MSG(worst <= 1.0, "%s: %.3g x the bound of row order's", names[kind], worst);
        printf("%-28s within %.3f of the bound of the CPU's row order\n", names[kind], worst);
        free(got);
    }
    free(d), free(x), free(mean), free(rstd), free(twin[0]), free(twin[1]), free(rows), free(mass);
}

/* The gradient statistics' launch does not change their bits: grids of 1,
 * 3 and the default, aligned (16-byte loads) and not, several lane rounds,
 * all equal to grad_stats.h's C twin. */
static void check_stats_grids(void)
{
    const size_t n = 3 * (size_t)ZRT_STATS_BLOCKS * ZRT_STATS_THREADS * 8 + 11;
    uint16_t *g = malloc(n * 2);
    random_fill(g, n, ZRT_DTYPE_BF16, seed, false);
    int flag = 0;
    double *partial = device_alloc(dev, ZRT_STATS_BLOCKS * sizeof(double), "partials");
    uint16_t *d_g = device_alloc(dev, n * 2 + 2, "grads");
    for (int offset = 0; offset < 2; offset++) {
        float want = (float)zrt_stats_blocked_sum(g, 1, n - (size_t)offset, 1.0f, &flag), got[2];
        CHECK_OK(zrt_device_write(dev, d_g + offset, g, (n - (size_t)offset) * 2));
        const unsigned grids[] = {1, 3, 0};
        for (int k = 0; k < 3; k++) {
            float *d_stats = zeros(2);
            CHECK(zrt_cuda_grad_stats(native, d_g + offset, 1, n - (size_t)offset, 1.0f, d_stats, partial, grids[k]) == 0);
            float *h = down(d_stats, 2);
            memcpy(got, h, sizeof got);
            free(h);
            CHECK_MSG(got[0] == want && got[1] == 0, "grad_stats grid %u, %s: %.9g, the twin's %.9g", grids[k],
                      offset ? "unaligned" : "aligned", got[0], want);
            zrt_device_free(dev, d_stats, NULL);
        }
    }
    printf("%-28s bitwise the C twin's on grids 1, 3, default; aligned and not (%zu elements)\n", "gradient statistics", n);
    zrt_device_free(dev, partial, NULL);
    zrt_device_free(dev, d_g, NULL);
    free(g);
}

int main(void)
{
    const char *env_seed = getenv("ZRT_TEST_SEED");
    seed = env_seed ? strtoull(env_seed, NULL, 10) : (uint64_t)time(NULL);
    dev = make_device(ZRT_DEVICE_CUDA, false);
    printf("device: %s; seed %llu (ZRT_TEST_SEED repeats it)\n", zrt_device_name(dev), (unsigned long long)seed);
    CHECK_OK(zrt_stream_create(dev, "kernels", &stream));
    native = zrt_stream_native(stream);
    check_embed();
    check_rows();
    check_layernorm();
    check_flash("MHA T = S 100", 2, 100, 100, 4, 4, 64);
    check_flash("GQA 8 on 2, T 45 < S 130, hs 128", 1, 45, 130, 8, 2, 128);
    check_flash("MQA decode T 1 < S 77", 1, 1, 77, 4, 1, 32);
    check_flash("GQA 2 on 1, T = S 33, hs 6", 2, 33, 33, 2, 1, 6);
    check_rmsnorm();
    check_residual_norm();
    check_rope_swiglu();
    check_cross_entropy(false);
    check_cross_entropy(true);
    check_gemm(ZRT_MATMUL_FP32);
    check_gemm(ZRT_MATMUL_BF16);
    check_stats_grids();
    check_colsums();
    check_bf16();
    zrt_stream_destroy(stream);
    zrt_device_destroy(dev);
    printf("model kernels and matmuls: every one within its bound of the CPU reference\n");
    return CHECK_DONE();
}
