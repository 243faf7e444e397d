/* kernel_checks_bf16.h: test_cuda_kernels' bf16 activations check (included
 * once there, after its helpers). Every model kernel computes in fp32
 * between kernels/cast.h's loads and stores, so on inputs that bf16 holds
 * exactly, a kernel run at act bf16 must store exactly its fp32 run's
 * results rounded to nearest even -- bitwise, whatever the kernel's order
 * of operations (each kernel's inputs are bf16-exact here, never another
 * kernel's rounded output). The exception is a kernel that stores and
 * reads back (residual_norm's h): its norm is held to the unfused kernel.
 * The fp32 statistics and parameter gradients (lse, dw, db) must be the
 * same bits at both types. The CPU twin of the same rule is
 * tests/emulated_launchers.h (test_model_emulated).
 */
#ifndef ZRT_TESTS_KERNEL_CHECKS_BF16_H
#define ZRT_TESTS_KERNEL_CHECKS_BF16_H

#include "cast.h"

/* The same values on the device as fp32 (p[0]) and as bf16 (p[1]). */
typedef struct {
    void *p[2];
    size_t n;
} typed_pair;

/* n normals of scale, rounded to bf16 (exact in both types). */
static float *bf16_randoms(size_t n, float scale, uint64_t salt)
{
    float *h = randoms(n, scale, salt);
    for (size_t i = 0; i < n; i++) h[i] = zrt_bf16_to_f32(zrt_f32_to_bf16(h[i]));
    return h;
}

static typed_pair pair_of(const float *host, size_t n)
{
    uint16_t *h16 = malloc(n * sizeof *h16);
    for (size_t i = 0; i < n; i++) h16[i] = zrt_f32_to_bf16(host[i]);
    typed_pair t = {{upload(dev, host, n * 4), upload(dev, h16, n * 2)}, n};
    free(h16);
    return t;
}

static typed_pair pair_randoms(size_t n, float scale, uint64_t salt)
{
    float *h = bf16_randoms(n, scale, salt);
    typed_pair t = pair_of(h, n);
    free(h);
    return t;
}

static typed_pair pair_zeros(size_t n)
{
    float *h = calloc(n, sizeof *h);
    typed_pair t = pair_of(h, n);
    free(h);
    return t;
}

/* Every bf16 element is the fp32 run's rounded to nearest even. */
static void expect_rounded(const char *what, const typed_pair *t)
{
    float *f = malloc(t->n * 4);
    uint16_t *b = malloc(t->n * 2);
    CHECK_OK(zrt_stream_synchronize(stream));
    CHECK_OK(zrt_device_read(dev, f, t->p[0], t->n * 4));
    CHECK_OK(zrt_device_read(dev, b, t->p[1], t->n * 2));
    size_t bad = 0;
    for (size_t i = 0; i < t->n; i++) bad += b[i] != zrt_f32_to_bf16(f[i]);
    CHECK_MSG(bad == 0, "%s at bf16: %zu of %zu elements are not the fp32 run's rounded", what, bad, t->n);
    printf("%-28s bf16: the fp32 run's bits rounded (%zu elements)\n", what, t->n);
    free(f), free(b);
}

/* Two fp32 device buffers (a statistic or parameter gradient of both runs) bitwise equal. */
static void expect_same(const char *what, const float *a, const float *b, size_t n)
{
    float *x = down(a, n), *y = down(b, n);
    CHECK_MSG(memcmp(x, y, n * 4) == 0, "%s: the fp32 and bf16 runs differ", what);
    free(x), free(y);
}

static void check_bf16_rows(void)
{
    enum { N = 37, C = 70, H = 33 };
    size_t n = (size_t)N * C;
    float *w = randoms(C, 1.0f, 301), *b = randoms(C, 0.1f, 302);
    float *dw_w = up(w, C), *dw_b = up(b, C), *scratch = zeros(zrt_colsum_scratch_floats(ZRT_COLSUM_LAYERNORM, N, C));
    typed_pair x = pair_randoms(n, 1.0f, 303), d = pair_randoms(n, 1.0f, 304), out = pair_zeros(n), dx = pair_zeros(n);
    typed_pair gu = pair_randoms(2 * (size_t)N * H, 1.0f, 305), sw = pair_zeros((size_t)N * H);
    typed_pair dgu = pair_zeros(2 * (size_t)N * H), gel = pair_zeros(n), pre = pair_randoms(n, 1.0f, 306);
    typed_pair dsw = pair_randoms((size_t)N * H, 1.0f, 307);
    float *mean[2] = {zeros(N), zeros(N)}, *rstd[2] = {zeros(N), zeros(N)}, *dw[2] = {zeros(C), zeros(C)};
    float *db[2] = {zeros(C), zeros(C)};
    for (int act = 0; act <= 1; act++) {
        CHECK(zrt_cuda_layernorm_forward(native, act, out.p[act], mean[act], rstd[act], x.p[act], dw_w, dw_b, N, C) ==
              0);
        CHECK(zrt_cuda_layernorm_backward(native, act, dx.p[act], dw[act], db[act], d.p[act], x.p[act], dw_w,
                                          mean[act], rstd[act], N, C, scratch) == 0);
        CHECK(zrt_cuda_swiglu_forward(native, act, sw.p[act], gu.p[act], N, H) == 0);
        CHECK(zrt_cuda_swiglu_backward(native, act, dgu.p[act], dsw.p[act], gu.p[act], N, H) == 0);
        CHECK(zrt_cuda_bias_gelu_forward(native, act, pre.p[act], gel.p[act], dw_b, N, C) == 0);
        CHECK(zrt_cuda_gelu_backward(native, act, d.p[act], x.p[act], d.p[act], n) == 0); /* in place */
    }
    expect_rounded("layernorm", &out), expect_rounded("layernorm dx", &dx);
    expect_same("layernorm mean", mean[0], mean[1], N), expect_same("layernorm rstd", rstd[0], rstd[1], N);
    expect_same("layernorm dw", dw[0], dw[1], C), expect_same("layernorm db", db[0], db[1], C);
    expect_rounded("swiglu", &sw), expect_rounded("swiglu backward", &dgu);
    expect_rounded("bias + gelu: pre", &pre), expect_rounded("bias + gelu: out", &gel);
    expect_rounded("gelu backward (in place)", &d);
    free(w), free(b);
}

/* residual_norm at bf16: h rounded as the fp32 run's; the norm the unfused kernel's of that h, bitwise. */
static void check_bf16_residual_norm(void)
{
    enum { N = 29, C = 96 };
    size_t n = (size_t)N * C;
    float *w = randoms(C, 1.0f, 311), *dw_w = up(w, C), *rstd = zeros(N), *u_rstd = zeros(N);
    typed_pair x = pair_randoms(n, 1.0f, 312), y = pair_randoms(n, 1.0f, 313), out = pair_zeros(n);
    typed_pair unfused = pair_zeros(n);
    for (int act = 0; act <= 1; act++)
        CHECK(zrt_cuda_residual_norm(native, act, y.p[act], out.p[act], x.p[act], y.p[act], NULL, N, C, 1, dw_w, NULL,
                                     NULL, rstd, 1e-6f) == 0); /* h == y */
    expect_rounded("residual + rmsnorm: h", &y);
    CHECK(zrt_cuda_rmsnorm_forward(native, 1, unfused.p[1], u_rstd, y.p[1], dw_w, N, C, 1e-6f) == 0);
    uint16_t *a = malloc(n * 2), *b = malloc(n * 2);
    CHECK_OK(zrt_stream_synchronize(stream));
    CHECK_OK(zrt_device_read(dev, a, out.p[1], n * 2));
    CHECK_OK(zrt_device_read(dev, b, unfused.p[1], n * 2));
    CHECK_MSG(memcmp(a, b, n * 2) == 0, "residual + rmsnorm at bf16: not the unfused norm's bits of its h");
    printf("%-28s bf16: the unfused norm's bits of its h\n", "residual + rmsnorm");
    free(a), free(b), free(w);
}

/* Attention (GQA, T < S), rope and the cross-entropy at both types. */
static void check_bf16_attention_xent(void)
{
    enum { B = 2, T = 37, S = 50, NH = 4, NKV = 2, HS = 16, V = 77 };
    zrt_attn_shape a = {.B = B, .T = T, .S = S, .NH = NH, .NKV = NKV, .hs = HS, .ld_q = NH * HS, .ld_kv = NKV * HS,
                        .ld_out = NH * HS};
    size_t nq = (size_t)B * T * NH * HS, nk = (size_t)B * S * NKV * HS, nl = (size_t)B * NH * T;
    typed_pair q = pair_randoms(nq, 1.0f, 321), k = pair_randoms(nk, 1.0f, 322), v = pair_randoms(nk, 1.0f, 323);
    typed_pair out = pair_zeros(nq), dout = pair_randoms(nq, 1.0f, 324), dq = pair_zeros(nq), dk = pair_zeros(nk);
    typed_pair dv = pair_zeros(nk), z = pair_randoms((size_t)B * T * V, 2.0f, 325), r = pair_randoms(nq, 1.0f, 327);
    typed_pair o_in = pair_randoms(nq, 1.0f, 328); /* the backward's out: the same values at both types */
    float *lse[2] = {zeros(nl), zeros(nl)}, *half = randoms((size_t)S * HS / 2, 1.0f, 326);
    float *cs = up(half, (size_t)S * HS / 2), *sn = up(half, (size_t)S * HS / 2);
    int32_t targets[B * T];
    for (int i = 0; i < B * T; i++) targets[i] = i % 5 == 0 ? ZRT_IGNORE_INDEX : (int32_t)((i * 31) % V);
    int32_t *d_targets = upload(dev, targets, sizeof targets), *bad = device_alloc(dev, 4, "bad flag");
    double *losses[2] = {(double *)zeros(2 * B * T), (double *)zeros(2 * B * T)};
    for (int act = 0; act <= 1; act++) {
        CHECK(zrt_cuda_rope(native, act, r.p[act], B * T, T, S - T, NH, HS, NH * HS, cs, sn, 0) == 0);
        CHECK(zrt_cuda_flash_forward(native, act, &a, out.p[act], lse[act], q.p[act], k.p[act], v.p[act]) == 0);
        CHECK(zrt_cuda_flash_backward(native, act, &a, dq.p[act], dk.p[act], dv.p[act], dout.p[act], o_in.p[act],
                                      lse[0], q.p[act], k.p[act], v.p[act]) == 0); /* one lse: the same bits */
        CHECK(zrt_cuda_cross_entropy(native, act, z.p[act], losses[act], d_targets, B * T, V, 1.0f, 0, bad) == 0);
    }
    expect_rounded("rope", &r), expect_rounded("flash out", &out), expect_same("flash lse", lse[0], lse[1], nl);
    expect_rounded("flash dq", &dq), expect_rounded("flash dk", &dk), expect_rounded("flash dv", &dv);
    expect_rounded("cross-entropy gradient", &z);
    expect_same("cross-entropy losses", (float *)losses[0], (float *)losses[1], 2 * B * T);
    free(half);
}

static void check_bf16(void)
{
    check_bf16_rows();
    check_bf16_residual_norm();
    check_bf16_attention_xent();
}

#endif
