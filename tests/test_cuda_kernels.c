/* test_cuda_kernels.c: every kernel of the CUDA models (kernels/
 * model_kernels.cu) and the cuBLASLt matmuls (runtime/model/cuda_blas.c)
 * against the CPU reference on fresh random inputs (the seed is printed).
 * Bounds, per kernels/model_kernels.h:
 *  - bitwise: embedding forward and backward, the bias rows and the bias
 *    gradient, layernorm's weight and bias gradients, the loss mean (the
 *    same additions in the same order);
 *  - GELU and its derivative: 1e-6 x max(1, |ref|) (CUDA's tanhf against
 *    glibc's, 2 ulp each);
 *  - row reductions in a warp's order (layernorm, softmax, its backward,
 *    cross-entropy): 2e-5 of the row's largest magnitude; the MLP's
 *    double-precision cross-entropy 1e-6;
 *  - matmuls: fp32 1e-5 x K x max|a| max|b|; bf16 inputs 2^-7 x the same.
 * Skips (exit 77) without a GPU.
 */
#include "cuda_model.h"
#include "kernel_checks.h"
#include "model_kernels.h"
#include "model_refs.h"

#include <cblas.h>
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

/* Largest |got - want| / bound, where bound = abs_tol x max(1, |want|) (relative: of the largest |want|). */
static double worst_error(const float *got, const float *want, size_t n, double tol, bool of_largest)
{
    double largest = 0, worst = 0;
    for (size_t i = 0; i < n; i++) largest = fmax(largest, fabs(want[i]));
    for (size_t i = 0; i < n; i++) {
        double bound = tol * (of_largest ? fmax(largest, 1e-30) : fmax(1.0, fabs(want[i])));
        double e = fabs((double)got[i] - want[i]) / bound;
        if (!(e == e)) e = INFINITY; /* NaN */
        worst = fmax(worst, e);
    }
    return worst;
}

static void expect(const char *what, const float *dev_got, const float *want, size_t n, double tol, bool of_largest)
{
    float *got = down(dev_got, n);
    if (tol == 0) {
        CHECK_MSG(memcmp(got, want, n * sizeof(float)) == 0, "%s: not bitwise equal to the CPU", what);
        printf("%-28s bitwise equal (%zu elements)\n", what, n);
    } else {
        double e = worst_error(got, want, n, tol, of_largest);
        CHECK_MSG(e <= 1.0, "%s: error %.3g x the bound %.1g", what, e, tol);
        printf("%-28s within %.2f of the bound %.1g (%zu elements)\n", what, e, tol, n);
    }
    free(got);
}

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
    CHECK(zrt_cuda_embed_forward(native, d_out, d_tokens, up(wte, (size_t)V * C), up(wpe, (size_t)T * C), N, T, C, V,
                                 bad) == 0);
    CHECK(zrt_cuda_embed_backward(native, d_dwte, d_dwpe, up(dout, (size_t)N * C), d_tokens, N, T, C, V) == 0);
    expect("embed forward", d_out, out, (size_t)N * C, 0, false);
    expect("embed backward wte", d_dwte, dwte, (size_t)V * C, 0, false);
    expect("embed backward wpe", d_dwpe, dwpe, (size_t)T * C, 0, false);
    CHECK_MSG(*bad == 0, "the flag was set for tokens in range");
    tokens[5] = V; /* out of range: flagged */
    CHECK_OK(zrt_device_write(dev, d_tokens, tokens, sizeof tokens));
    CHECK(zrt_cuda_embed_forward(native, d_out, d_tokens, up(wte, (size_t)V * C), up(wpe, (size_t)T * C), N, T, C, V,
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
    float *rows = malloc(n * 4), *db = calloc(OC, 4), *pre = malloc(n * 4), *gel = malloc(n * 4), *dg = malloc(n * 4);
    ref_init_rows(rows, bias, res, N, OC);
    ref_bias_backward(db, d, N, OC);
    memcpy(pre, x, n * 4);
    ref_bias_gelu_forward(pre, gel, bias, N, OC);
    ref_gelu_backward(dg, x, d, n);
    float *d_rows = zeros(n), *d_db = zeros(OC), *d_pre = up(x, n), *d_gel = zeros(n), *d_dg = zeros(n);
    CHECK(zrt_cuda_init_rows(native, d_rows, up(bias, OC), up(res, n), N, OC) == 0);
    CHECK(zrt_cuda_bias_backward(native, d_db, up(d, n), N, OC) == 0);
    CHECK(zrt_cuda_bias_gelu_forward(native, d_pre, d_gel, up(bias, OC), N, OC) == 0);
    CHECK(zrt_cuda_gelu_backward(native, d_dg, up(x, n), up(d, n), n) == 0);
    expect("bias + residual rows", d_rows, rows, n, 0, false);
    expect("bias backward", d_db, db, OC, 0, false);
    expect("bias + GELU (pre)", d_pre, pre, n, 0, false);
    expect("bias + GELU", d_gel, gel, n, 1e-6, false);
    expect("GELU backward", d_dg, dg, n, 1e-6, false);
    free(bias), free(res), free(x), free(d), free(rows), free(db), free(pre), free(gel), free(dg);
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
    CHECK(zrt_cuda_layernorm_forward(native, d_out, d_mean, d_rstd, up(x, n), up(w, C), up(b, C), N, C) == 0);
    expect("layernorm forward", d_out, out, n, 2e-5, true);
    expect("layernorm mean", d_mean, mean, N, 2e-5, true);
    expect("layernorm rstd", d_rstd, rstd, N, 2e-5, true);
    ref_layernorm_backward(dx, dw, db, d, x, w, mean, rstd, N, C); /* from the CPU's statistics, given to both */
    float *d_dx = up(dx0, n), *d_dw = zeros(C), *d_db = zeros(C);
    CHECK(zrt_cuda_layernorm_backward(native, d_dx, d_dw, d_db, up(d, n), up(x, n), up(w, C), up(mean, N), up(rstd, N),
                                      N, C) == 0);
    expect("layernorm backward dx", d_dx, dx, n, 2e-5, true);
    expect("layernorm backward dw", d_dw, dw, C, 0, false);
    expect("layernorm backward db", d_db, db, C, 0, false);
    free(x), free(w), free(b), free(d), free(out), free(mean), free(rstd), free(dx), free(dx0), free(dw), free(db);
}

static void check_softmax(void)
{
    enum { SQUARES = 6, T = 45 };
    size_t n = (size_t)SQUARES * T * T;
    float *pre = randoms(n, 4.0f, 13), *datt = randoms(n, 1.0f, 14), *att = calloc(n, 4), *dpre = calloc(n, 4);
    ref_causal_softmax_forward(att, pre, SQUARES, T);
    ref_causal_softmax_backward(dpre, att, datt, SQUARES, T);
    float *d_att = zeros(n), *d_dpre = zeros(n);
    CHECK(zrt_cuda_causal_softmax_forward(native, d_att, up(pre, n), SQUARES, T) == 0);
    expect("causal softmax", d_att, att, n, 2e-5, true);
    CHECK(zrt_cuda_causal_softmax_backward(native, d_dpre, up(att, n), up(datt, n), SQUARES, T) == 0);
    expect("causal softmax backward", d_dpre, dpre, n, 2e-5, true);
    free(pre), free(datt), free(att), free(dpre);
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
    float *probs = malloc(n * 4);
    int32_t flag = 0;
    ref_cross_entropy(d, probs, losses, z, targets, N, V, scale, double_math, &flag);
    free(probs);
    float want_mean = 0.0f, got_mean = 0.0f;
    ref_loss_mean(&want_mean, losses, N, 2.0f);
    int32_t *bad = NULL;
    CHECK_OK(zrt_host_alloc(dev, ZRT_MEM_COMM, sizeof(int32_t), "flag", (void **)&bad));
    *bad = 0;
    float *d_d = zeros(n), *d_probs = zeros(n), *d_mean = zeros(1);
    double *d_losses = device_alloc(dev, sizeof losses, "losses");
    CHECK(zrt_cuda_cross_entropy(native, d_d, double_math ? NULL : d_probs, d_losses, up(z, n), upload(dev, targets, sizeof targets),
                                 N, V, scale, double_math, bad) == 0);
    CHECK(zrt_cuda_loss_mean(native, d_mean, d_losses, N, 2.0f) == 0);
    const char *what = double_math ? "cross-entropy (mlp)" : "cross-entropy (gpt)";
    expect(what, d_d, d, n, double_math ? 1e-6 : 2e-5, true);
    double got_losses[N];
    CHECK_OK(zrt_device_read(dev, got_losses, d_losses, sizeof got_losses));
    CHECK_OK(zrt_device_read(dev, &got_mean, d_mean, sizeof got_mean));
    double worst = 0;
    for (int i = 0; i < N; i++) worst = fmax(worst, fabs(got_losses[i] - losses[i]) / fabs(losses[i]));
    CHECK_MSG(worst <= (double_math ? 1e-9 : 2e-5), "%s: losses differ by %.3g relative", what, worst);
    CHECK_MSG(fabsf(got_mean - want_mean) <= 2e-5f * want_mean, "%s: mean %.9g vs %.9g", what, got_mean, want_mean);
    printf("%-28s losses within %.3g relative, mean %.9g vs %.9g\n", what, worst, got_mean, want_mean);
    CHECK_MSG(*bad == 0, "the flag was set for targets in range");
    zrt_host_free(dev, bad);
    free(z), free(d);
}

/* One matmul (and a strided batch of 3) against cblas_sgemm, per transpose pair. */
static void check_gemm(zrt_matmul_math math, double tol)
{
    zrt_cuda_blas *blas;
    CHECK_OK(zrt_cuda_blas_create(dev, math, &blas));
    enum { M = 67, N = 45, K = 129, BATCH = 3 };
    for (int t = 0; t < 4; t++) {
        bool ta = t & 1, tb = t & 2;
        int lda = ta ? M : K, ldb = tb ? K : N;
        size_t sa = (size_t)M * K, sb = (size_t)K * N, sc = (size_t)M * N;
        float *a = randoms(sa * BATCH, 1.0f, 20 + t), *b = randoms(sb * BATCH, 1.0f, 30 + t);
        float *c = randoms(sc * BATCH, 1.0f, 40 + t), *want = malloc(sc * BATCH * 4);
        memcpy(want, c, sc * BATCH * 4);
        for (int i = 0; i < BATCH; i++)
            cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, 0.5f,
                        a + i * sa, lda, b + i * sb, ldb, 1.0f, want + i * sc, N);
        float *d_c = up(c, sc * BATCH);
        CHECK_OK(zrt_cuda_gemm(blas, native,
                               &(zrt_gemm){.trans_a = ta, .trans_b = tb, .M = M, .N = N, .K = K, .alpha = 0.5f,
                                           .beta = 1.0f, .A = up(a, sa * BATCH), .lda = lda, .B = up(b, sb * BATCH),
                                           .ldb = ldb, .C = d_c, .ldc = N, .batch = BATCH, .stride_a = (int64_t)sa,
                                           .stride_b = (int64_t)sb, .stride_c = (int64_t)sc}));
        char what[64];
        snprintf(what, sizeof what, "matmul %s%s %s", ta ? "T" : "N", tb ? "T" : "N",
                 math == ZRT_MATMUL_BF16 ? "bf16" : "fp32");
        double largest_a = 0, largest_b = 0;
        for (size_t i = 0; i < sa * BATCH; i++) largest_a = fmax(largest_a, fabs(a[i]));
        for (size_t i = 0; i < sb * BATCH; i++) largest_b = fmax(largest_b, fabs(b[i]));
        float *got = down(d_c, sc * BATCH);
        double bound = tol * K * largest_a * largest_b, worst = 0;
        for (size_t i = 0; i < sc * BATCH; i++) worst = fmax(worst, fabs((double)got[i] - want[i]) / bound);
        CHECK_MSG(worst <= 1.0, "%s: error %.3g x the bound", what, worst);
        printf("%-28s within %.2f of the bound %.1g x K x max|a| max|b|\n", what, worst, tol);
        free(a), free(b), free(c), free(want), free(got);
    }
    zrt_cuda_blas_destroy(blas, dev);
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
    check_softmax();
    check_cross_entropy(false);
    check_cross_entropy(true);
    check_gemm(ZRT_MATMUL_FP32, 1e-5);
    check_gemm(ZRT_MATMUL_BF16, 1.0 / 128);
    zrt_stream_destroy(stream);
    zrt_device_destroy(dev);
    printf("model kernels and matmuls: every one within its bound of the CPU reference\n");
    return CHECK_DONE();
}
