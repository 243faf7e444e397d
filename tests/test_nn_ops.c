/* test_nn_ops.c: every op of the cpu table (runtime/model/nn_cpu.c) against
 * its plain reference (tests/model_refs.h; attention -- the blocked
 * FlashAttention-2 form -- against quadratic loops in double: out, lse and
 * dq, dk, dv, over one and several 64-row blocks, MHA, GQA, MQA, T < S),
 * and the backward of each op no built-in model had before (rmsnorm, rope,
 * swiglu, grouped-query attention with T < S) against central finite
 * differences of sum(out * R), R random.
 * Tolerances: bitwise where the op and its reference do the same operations
 * in the same order (embeddings, rows, rope, swiglu, rmsnorm's backward on
 * the same rstd); 1e-5 of the largest element where vecmath's vector lanes
 * or OpenBLAS's blocking sum in another order; finite differences (h 1e-2
 * in fp32) within 1e-2 of the largest gradient element.
 * The checker fires: each finite-difference case also runs a deliberately
 * wrong backward (rmsnorm without its mean term, rope's forward turn used as
 * its backward, swiglu without sigmoid's derivative, a kv head's gradient
 * missing one of its query heads, attention's probabilities recomputed from
 * an lse off by 0.5) and asserts it lands outside the bound.
 */
#include "check.h"
#include "model_refs.h"
#include "nn.h"
#include "zrt.h"

#include <math.h>

static zrt_nn nn = {.ops = &zrt_nn_cpu, .model = "test"};

static float *randoms(size_t n, float scale, uint64_t salt)
{
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = scale * zrt_random_normal(7, salt, i);
    return x;
}

static float *copy_of(const float *x, size_t n)
{
    float *y = malloc(n * sizeof(float));
    memcpy(y, x, n * sizeof(float));
    return y;
}

/* Largest |got - want| over the largest |want| (0 for bitwise equal arrays). */
static double rel_error(const float *got, const float *want, size_t n)
{
    double largest = 1e-30, worst = 0;
    for (size_t i = 0; i < n; i++) largest = fmax(largest, fabs(want[i]));
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)got[i] - want[i]));
    return worst / largest;
}

static void expect(const char *what, const float *got, const float *want, size_t n, double tol)
{
    double e = rel_error(got, want, n);
    bool bitwise = memcmp(got, want, n * sizeof(float)) == 0;
    CHECK_MSG(tol == 0 ? bitwise : e <= tol, "%s: error %.3g of the largest (bound %.1g)", what, e, tol);
    if (bitwise)
        printf("%-34s bitwise equal to the reference\n", what);
    else
        printf("%-34s within %.2g of the largest (bound %.1g)\n", what, e, tol);
}

/* ---- the ops today's models use, against their references --------------------------------------- */

static void check_rows(void)
{
    enum { N = 13, C = 37, T = 5, V = 11 };
    size_t n = (size_t)N * C;
    int32_t tokens[N];
    for (int i = 0; i < N; i++) tokens[i] = (i * 7) % V;
    float *wte = randoms((size_t)V * C, 1, 1), *wpe = randoms((size_t)T * C, 1, 2), *d = randoms(n, 1, 3);
    float *got = calloc(n, 4), *want = calloc(n, 4), *gw = calloc((size_t)V * C, 4), *ww = calloc((size_t)V * C, 4);
    int32_t bad = 0;
    CHECK_OK(nn.ops->embed_forward(&nn, got, tokens, wte, wpe, N, T, C, V));
    ref_embed_forward(want, tokens, wte, wpe, N, T, C, V, &bad);
    expect("embed_forward", got, want, n, 0);
    CHECK_OK(nn.ops->embed_forward(&nn, got, tokens, wte, NULL, N, T, C, V));
    ref_embed_forward(want, tokens, wte, NULL, N, T, C, V, &bad);
    expect("embed_forward, no positions", got, want, n, 0);
    CHECK_OK(nn.ops->embed_backward(&nn, gw, NULL, d, tokens, N, T, C, V));
    ref_embed_backward(ww, NULL, d, tokens, N, T, C, V);
    expect("embed_backward", gw, ww, (size_t)V * C, 0);
    tokens[3] = V; /* outside the vocabulary: named */
    CHECK(nn.ops->embed_forward(&nn, got, tokens, wte, wpe, N, T, C, V) == ZRT_ERR_INVALID &&
          strstr(zrt_last_error(), "token 11 outside the vocabulary of 11"));
    float *bias = randoms(C, 1, 4), *res = randoms(n, 1, 5), *db = calloc(C, 4), *dbw = calloc(C, 4);
    CHECK_OK(nn.ops->init_rows(&nn, got, bias, res, N, C));
    ref_init_rows(want, bias, res, N, C);
    expect("init_rows", got, want, n, 0);
    CHECK_OK(nn.ops->bias_backward(&nn, db, d, N, C));
    ref_bias_backward(dbw, d, N, C);
    expect("bias_backward", db, dbw, C, 0);
    float *pre = randoms(n, 2, 6), *pre2 = copy_of(pre, n);
    CHECK_OK(nn.ops->bias_gelu_forward(&nn, pre, got, bias, N, C));
    ref_bias_gelu_forward(pre2, want, bias, N, C);
    expect("bias_gelu_forward", got, want, n, 1e-6); /* SLEEF's tanhf against libm's */
    CHECK_OK(nn.ops->gelu_backward(&nn, got, pre, d, n));
    ref_gelu_backward(want, pre, d, n);
    expect("gelu_backward", got, want, n, 1e-6);
    free(wte), free(wpe), free(d), free(got), free(want), free(gw), free(ww), free(bias), free(res), free(db);
    free(dbw), free(pre), free(pre2);
}

static void check_layernorm_gemm(void)
{
    enum { N = 9, C = 70, M = 17, K = 33 };
    size_t n = (size_t)N * C;
    float *x = randoms(n, 2, 10), *w = randoms(C, 1, 11), *b = randoms(C, 1, 12), *d = randoms(n, 1, 13);
    float *out = calloc(n, 4), *want = calloc(n, 4), mean[N], rstd[N], wmean[N], wrstd[N];
    CHECK_OK(nn.ops->layernorm_forward(&nn, out, mean, rstd, x, w, b, N, C));
    ref_layernorm_forward(want, wmean, wrstd, x, w, b, N, C);
    expect("layernorm_forward", out, want, n, 1e-5);
    float *dx = calloc(n, 4), *dxw = calloc(n, 4), *dw = calloc(C, 4), *dww = calloc(C, 4), *dbb = calloc(C, 4);
    float *dbw = calloc(C, 4);
    CHECK_OK(nn.ops->layernorm_backward(&nn, dx, dw, dbb, d, x, w, wmean, wrstd, N, C));
    ref_layernorm_backward(dxw, dww, dbw, d, x, w, wmean, wrstd, N, C);
    expect("layernorm_backward dx", dx, dxw, n, 1e-5);
    expect("layernorm_backward dw", dw, dww, C, 1e-5);
    /* gemm, a strided batch of 2 with both transposes, against double loops */
    float *A = randoms(2 * M * K, 1, 14), *B = randoms(2 * K * C, 1, 15), *G = randoms(2 * M * C, 1, 16);
    float *Gw = copy_of(G, 2 * M * C);
    zrt_gemm g = {.trans_a = true, .trans_b = true, .M = M, .N = C, .K = K, .alpha = 0.5f, .beta = 1.0f, .A = A,
                  .lda = M, .B = B, .ldb = K, .C = G, .ldc = C, .batch = 2, .stride_a = M * K, .stride_b = K * C,
                  .stride_c = M * C};
    CHECK_OK(nn.ops->gemm(&nn, &g));
    for (int z = 0; z < 2; z++)
        for (int i = 0; i < M; i++)
            for (int j = 0; j < C; j++) {
                double s = 0;
                for (int k = 0; k < K; k++) s += (double)A[z * M * K + k * M + i] * B[z * K * C + j * K + k];
                Gw[z * M * C + i * C + j] = (float)(0.5 * s + Gw[z * M * C + i * C + j]);
            }
    expect("gemm (TT, strided batch)", G, Gw, 2 * M * C, 1e-5);
    free(x), free(w), free(b), free(d), free(out), free(want), free(dx), free(dxw), free(dw), free(dww), free(dbb);
    free(dbw), free(A), free(B), free(G), free(Gw);
}

static void check_cross_entropy(bool double_math)
{
    enum { N = 7, V = 300 };
    size_t n = (size_t)N * V;
    float *z = randoms(n, 3, 20), *d = malloc(n * 4), *dw = malloc(n * 4);
    int32_t t[N] = {3, -100, 299, 0, 17, -100, 150};
    double losses[N];
    int32_t bad = 0;
    float sum = 0.25f, sumw = 0.25f;
    memcpy(d, z, n * 4), memcpy(dw, z, n * 4); /* in place: the logits become their gradient */
    CHECK_OK(nn.ops->cross_entropy(&nn, d, t, N, V, 8.0f, 2.0f, &sum, double_math));
    ref_cross_entropy(dw, losses, t, N, V, 8.0f, double_math, &bad);
    ref_loss_mean(&sumw, losses, t, N, 2.0f);
    expect(double_math ? "cross_entropy (double) dlogits" : "cross_entropy (fp32) dlogits", d, dw, n, 1e-6);
    expect(double_math ? "cross_entropy (double) loss" : "cross_entropy (fp32) loss", &sum, &sumw, 1, 1e-6);
    t[0] = V;
    CHECK(nn.ops->cross_entropy(&nn, d, t, N, V, 1, 1, &sum, double_math) == ZRT_ERR_INVALID &&
          strstr(zrt_last_error(), "target 300 outside"));
    free(z), free(d), free(dw);
}

/* residual_norm against the unfused ops on the same table -- init_rows (x + bias), the product added, the norm --
 * bitwise (its contract), for both norms, with and without a bias, in place (h == y); and against the reference.
 * A fused op that added in the other order ((x + y) + bias) would differ: shown. */
static void check_residual_norm(void)
{
    enum { N = 5, C = 67 };
    size_t n = (size_t)N * C;
    float *x = randoms(n, 1, 40), *y = randoms(n, 3, 41), *bias = randoms(C, 1, 42), *w = randoms(C, 1, 43);
    float *b = randoms(C, 1, 44), *h = malloc(n * 4), *out = malloc(n * 4), *h2 = malloc(n * 4), *out2 = malloc(n * 4);
    float st[4][N], *wrong = malloc(n * 4);
    for (int kind = 0; kind < 2; kind++)
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            const float *bi = with_bias ? bias : NULL;
            zrt_norm norm = {kind ? ZRT_NORM_RMS : ZRT_NORM_LAYER, w, b, st[0], st[1], 1e-6f};
            memcpy(h, y, n * 4);
            CHECK_OK(nn.ops->residual_norm(&nn, h, out, &norm, x, h, bi, N, C)); /* in place: h == y */
            CHECK_OK(nn.ops->init_rows(&nn, h2, bi, x, N, C));
            for (size_t i = 0; i < n; i++) h2[i] += y[i];
            if (kind)
                CHECK_OK(nn.ops->rmsnorm_forward(&nn, out2, st[3], h2, w, N, C, 1e-6f));
            else
                CHECK_OK(nn.ops->layernorm_forward(&nn, out2, st[2], st[3], h2, w, b, N, C));
            char what[64];
            snprintf(what, sizeof what, "residual_norm (%s%s) h", kind ? "rms" : "layer", with_bias ? ", bias" : "");
            expect(what, h, h2, n, 0);
            expect(kind ? "residual_norm (rms) out" : "residual_norm (layer) out", out, out2, n, 0);
            expect("residual_norm rstd", st[1], st[3], N, 0);
            if (!kind) expect("residual_norm mean", st[0], st[2], N, 0);
            ref_residual_norm(h2, out2, x, y, bi, N, C, kind, w, b, st[2], st[3], 1e-6f);
            expect("residual_norm vs reference", out, out2, n, 1e-6);
            for (size_t i = 0; i < n; i++) wrong[i] = (x[i] + y[i]) + (bi ? bi[i % C] : 0.0f);
            if (with_bias) CHECK_MSG(memcmp(wrong, h, n * 4) != 0, "residual_norm: the bitwise check cannot see the order");
        }
    zrt_norm ln = {ZRT_NORM_LAYER, w, b, st[0], st[1], 1e-6f}; /* x NULL: the norm alone (the unfused tables' use) */
    memcpy(h, y, n * 4);
    CHECK_OK(nn.ops->residual_norm(&nn, h, out, &ln, NULL, h, bias, N, C));
    CHECK_OK(nn.ops->layernorm_forward(&nn, out2, st[2], st[3], y, w, b, N, C));
    expect("residual_norm (no residual) h", h, y, n, 0);
    expect("residual_norm (no residual) out", out, out2, n, 0);
    zrt_norm bad = {(zrt_norm_kind)7, w, b, st[0], st[1], 1e-6f};
    CHECK(nn.ops->residual_norm(&nn, h, out, &bad, x, y, NULL, N, C) == ZRT_ERR_INVALID &&
          strstr(zrt_last_error(), "unknown norm kind 7"));
    free(x), free(y), free(bias), free(w), free(b), free(h), free(out), free(h2), free(out2), free(wrong);
}

/* ---- attention against loops in double ------------------------------------------------------------ */

/* q (B T rows, ld_q), k and v (B S rows, ld_kv), random; padded rows (ld > the heads). */
typedef struct {
    zrt_attn_shape a;
    float *q, *k, *v, *out, *lse, *R;
    size_t nq, nkv, nout, nlse;
} attn_case;

static attn_case attn_make(int B, int T, int S, int NH, int NKV, int hs)
{
    attn_case c = {.a = {.B = B, .T = T, .S = S, .NH = NH, .NKV = NKV, .hs = hs, .ld_q = NH * hs + 3,
                         .ld_kv = NKV * hs + 5, .ld_out = NH * hs + 1}};
    c.nq = (size_t)B * T * c.a.ld_q, c.nkv = (size_t)B * S * c.a.ld_kv, c.nout = (size_t)B * T * c.a.ld_out;
    c.nlse = (size_t)B * NH * T;
    c.q = randoms(c.nq, 1, 30), c.k = randoms(c.nkv, 1, 31), c.v = randoms(c.nkv, 1, 32), c.R = randoms(c.nout, 1, 33);
    c.out = calloc(c.nout, 4), c.lse = calloc(c.nlse, 4);
    return c;
}

static void attn_free(attn_case *c)
{
    free(c->q), free(c->k), free(c->v), free(c->out), free(c->lse), free(c->R);
}

/* Zeroes the columns past the heads (nobody's) of rows ld apart. */
static void clear_padding(float *x, size_t n, int ld, int used)
{
    for (size_t i = 0; i < n; i++)
        if ((int)(i % ld) >= used) x[i] = 0;
}

/* The blocked forward (out, lse) and backward (dq, dk, dv of dout = R) against the double loops. */
static void check_attention(const char *what, int B, int T, int S, int NH, int NKV, int hs)
{
    attn_case c = attn_make(B, T, S, NH, NKV, hs);
    const zrt_attn_shape *a = &c.a;
    float *want = calloc(c.nout, 4), *wlse = calloc(c.nlse, 4), *g[3], *w[3];
    size_t n[3] = {c.nq, c.nkv, c.nkv};
    int ld[3] = {a->ld_q, a->ld_kv, a->ld_kv}, used[3] = {NH * hs, NKV * hs, NKV * hs};
    for (int i = 0; i < 3; i++) g[i] = calloc(n[i], 4), w[i] = calloc(n[i], 4);
    CHECK_OK(nn.ops->attention_forward(&nn, a, c.out, c.lse, c.q, c.k, c.v));
    ref_attention_forward(a, want, wlse, c.q, c.k, c.v);
    clear_padding(c.out, c.nout, a->ld_out, NH * hs), clear_padding(want, c.nout, a->ld_out, NH * hs);
    char name[96];
    snprintf(name, sizeof name, "%s: out", what), expect(name, c.out, want, c.nout, 1e-5);
    snprintf(name, sizeof name, "%s: lse", what), expect(name, c.lse, wlse, c.nlse, 1e-5);
    CHECK_OK(nn.ops->attention_backward(&nn, a, g[0], g[1], g[2], c.R, c.out, c.lse, c.q, c.k, c.v));
    ref_attention_backward(a, w[0], w[1], w[2], c.R, c.q, c.k, c.v);
    static const char *grads[3] = {"dq", "dk", "dv"};
    for (int i = 0; i < 3; i++) {
        clear_padding(g[i], n[i], ld[i], used[i]), clear_padding(w[i], n[i], ld[i], used[i]);
        snprintf(name, sizeof name, "%s: %s", what, grads[i]), expect(name, g[i], w[i], n[i], 2e-5);
    }
    zrt_attn_shape bad = c.a;
    bad.NKV = 3; /* NH heads on 3 kv heads: not a multiple (no case has NH 3 or 6) */
    CHECK(nn.ops->attention_backward(&nn, &bad, g[0], g[1], g[2], c.R, c.out, c.lse, c.q, c.k, c.v) == ZRT_ERR_INVALID);
    CHECK(nn.ops->attention_forward(&nn, &bad, c.out, c.lse, c.q, c.k, c.v) == ZRT_ERR_INVALID);
    snprintf(name, sizeof name, "%d heads on 3 kv heads", NH);
    CHECK_MSG(strstr(zrt_last_error(), name) != NULL, "the error names the shape: %s", zrt_last_error());
    for (int i = 0; i < 3; i++) free(g[i]), free(w[i]);
    free(want), free(wlse);
    attn_free(&c);
}

/* ---- finite differences ---------------------------------------------------------------------------- */

typedef double (*loss_fn)(void *ctx); /* sum(out * R) of the op at the current inputs */

/* Largest |fd - grad| over the largest |grad|, on 24 probed elements of x (n). */
static double fd_error(loss_fn f, void *ctx, float *x, size_t n, const float *grad)
{
    const float h = 1e-2f;
    double largest = 1e-6, worst = 0;
    for (size_t i = 0; i < n; i++) largest = fmax(largest, fabs(grad[i]));
    for (size_t p = 0; p < 24; p++) {
        size_t i = (p * 7919u + 3) % n;
        float saved = x[i];
        x[i] = saved + h;
        double up = f(ctx);
        x[i] = saved - h;
        double down = f(ctx);
        x[i] = saved;
        worst = fmax(worst, fabs((up - down) / (2 * h) - grad[i]));
    }
    return worst / largest;
}

static double dot_R(const float *out, const float *R, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)out[i] * R[i];
    return s;
}

/* The right backward within 1e-2, the wrong one outside it. */
static void expect_fd(const char *what, double right, double wrong)
{
    CHECK_MSG(right <= 1e-2, "%s: backward %.3g off finite differences", what, right);
    CHECK_MSG(wrong > 1e-2, "%s: a wrong backward passes (%.3g): the check cannot fail", what, wrong);
    printf("%-34s finite differences: %.2g (a wrong backward: %.2g)\n", what, right, wrong);
}

enum { FN = 6, FC = 24, FH = 10 };

typedef struct {
    float *x, *w, *R, *out, rstd[FN];
} rms_ctx;

static double rms_loss(void *p)
{
    rms_ctx *c = p;
    CHECK_OK(nn.ops->rmsnorm_forward(&nn, c->out, c->rstd, c->x, c->w, FN, FC, 1e-5f));
    return dot_R(c->out, c->R, FN * FC);
}

static void fd_rmsnorm(void)
{
    rms_ctx c = {.x = randoms(FN * FC, 1, 40), .w = randoms(FC, 1, 41), .R = randoms(FN * FC, 1, 42),
                 .out = calloc(FN * FC, 4)};
    float *dx = calloc(FN * FC, 4), *dw = calloc(FC, 4), *wrong = calloc(FN * FC, 4), *want = calloc(FN * FC, 4);
    float wrstd[FN], *wdx = calloc(FN * FC, 4), *wdw = calloc(FC, 4);
    rms_loss(&c);
    ref_rmsnorm_forward(want, wrstd, c.x, c.w, FN, FC, 1e-5f);
    expect("rmsnorm_forward", c.out, want, FN * FC, 1e-5);
    CHECK_OK(nn.ops->rmsnorm_backward(&nn, dx, dw, c.R, c.x, c.w, wrstd, FN, FC));
    ref_rmsnorm_backward(wdx, wdw, c.R, c.x, c.w, wrstd, FN, FC);
    expect("rmsnorm_backward dx", dx, wdx, FN * FC, 1e-6);
    expect("rmsnorm_backward dw", dw, wdw, FC, 0);
    memset(dx, 0, FN * FC * 4), memset(dw, 0, FC * 4);
    CHECK_OK(nn.ops->rmsnorm_backward(&nn, dx, dw, c.R, c.x, c.w, c.rstd, FN, FC));
    for (int i = 0; i < FN * FC; i++) wrong[i] = c.R[i] * c.w[i % FC] * c.rstd[i / FC]; /* no mean term */
    double ex = fd_error(rms_loss, &c, c.x, FN * FC, dx), ew = fd_error(rms_loss, &c, c.w, FC, dw);
    expect_fd("rmsnorm backward dx", ex, fd_error(rms_loss, &c, c.x, FN * FC, wrong));
    expect_fd("rmsnorm backward dw", ew, fd_error(rms_loss, &c, c.w, FC, wrong));
    free(c.x), free(c.w), free(c.R), free(c.out), free(dx), free(dw), free(wrong), free(want), free(wdx), free(wdw);
}

enum { RT = 3, RHEADS = 2, RHS = 8, RLD = 19, RPOS0 = 4 };

typedef struct {
    float *x, *y, *R, *cos, *sin;
} rope_ctx;

static double rope_loss(void *p)
{
    rope_ctx *c = p;
    memcpy(c->y, c->x, FN * RLD * sizeof(float));
    CHECK_OK(nn.ops->rope(&nn, c->y, FN, RT, RPOS0, RHEADS, RHS, RLD, c->cos, c->sin, false));
    return dot_R(c->y, c->R, FN * RLD);
}

static void fd_rope(void)
{
    size_t table = (size_t)(RPOS0 + RT) * RHS / 2;
    rope_ctx c = {.x = randoms(FN * RLD, 1, 50), .R = randoms(FN * RLD, 1, 51),
                  .cos = malloc(table * 4), .sin = malloc(table * 4)};
    for (size_t i = 0; i < table; i++) { /* real angles: position x a frequency */
        double angle = (double)(i / (RHS / 2)) * pow(10000.0, -2.0 * (double)(i % (RHS / 2)) / RHS);
        c.cos[i] = (float)cos(angle), c.sin[i] = (float)sin(angle);
    }
    float *want = copy_of(c.x, FN * RLD);
    CHECK_OK(nn.ops->rope(&nn, c.y = copy_of(c.x, FN * RLD), FN, RT, RPOS0, RHEADS, RHS, RLD, c.cos, c.sin, false));
    ref_rope(want, FN, RT, RPOS0, RHEADS, RHS, RLD, c.cos, c.sin, 0);
    expect("rope", c.y, want, FN * RLD, 0);
    float *back = copy_of(c.R, FN * RLD), *wrong = copy_of(c.R, FN * RLD);
    CHECK_OK(nn.ops->rope(&nn, back, FN, RT, RPOS0, RHEADS, RHS, RLD, c.cos, c.sin, true));
    CHECK_OK(nn.ops->rope(&nn, wrong, FN, RT, RPOS0, RHEADS, RHS, RLD, c.cos, c.sin, false));
    expect_fd("rope inverse (its backward)", fd_error(rope_loss, &c, c.x, FN * RLD, back),
              fd_error(rope_loss, &c, c.x, FN * RLD, wrong));
    free(c.x), free(c.y), free(c.R), free(c.cos), free(c.sin), free(want), free(back), free(wrong);
}

typedef struct {
    float *gu, *out, *R;
} swiglu_ctx;

static double swiglu_loss(void *p)
{
    swiglu_ctx *c = p;
    CHECK_OK(nn.ops->swiglu_forward(&nn, c->out, c->gu, FN, FH));
    return dot_R(c->out, c->R, FN * FH);
}

static void fd_swiglu(void)
{
    swiglu_ctx c = {.gu = randoms(2 * FN * FH, 2, 60), .out = calloc(FN * FH, 4), .R = randoms(FN * FH, 1, 61)};
    float *dgu = calloc(2 * FN * FH, 4), *want = calloc(FN * FH, 4), *dwant = calloc(2 * FN * FH, 4);
    swiglu_loss(&c);
    ref_swiglu_forward(want, c.gu, FN, FH);
    expect("swiglu_forward", c.out, want, FN * FH, 0);
    CHECK_OK(nn.ops->swiglu_backward(&nn, dgu, c.R, c.gu, FN, FH));
    ref_swiglu_backward(dwant, c.R, c.gu, FN, FH);
    expect("swiglu_backward", dgu, dwant, 2 * FN * FH, 0);
    float *wrong = copy_of(dgu, 2 * FN * FH);
    for (int r = 0; r < FN; r++)
        for (int i = 0; i < FH; i++) { /* d(gate) without sigmoid's derivative: d * u * sigmoid(g) */
            float g = c.gu[r * 2 * FH + i];
            wrong[r * 2 * FH + i] = c.R[r * FH + i] * c.gu[r * 2 * FH + FH + i] * zrt_sigmoid(g);
        }
    expect_fd("swiglu backward", fd_error(swiglu_loss, &c, c.gu, 2 * FN * FH, dgu),
              fd_error(swiglu_loss, &c, c.gu, 2 * FN * FH, wrong));
    free(c.gu), free(c.out), free(c.R), free(dgu), free(want), free(dwant), free(wrong);
}

static double attn_loss(void *p)
{
    attn_case *c = p;
    CHECK_OK(nn.ops->attention_forward(&nn, &c->a, c->out, c->lse, c->q, c->k, c->v));
    double s = 0;
    for (size_t i = 0; i < c->nout; i++)
        if ((int)(i % c->a.ld_out) < c->a.NH * c->a.hs) s += (double)c->out[i] * c->R[i];
    return s;
}

/* Grouped-query (4 heads on 2 kv heads), T queries against S keys: dq, dk, dv against finite
 * differences; the wrong ones: a kv head's gradient missing query head 0 of its group (dk, dv),
 * and the probabilities recomputed from an lse off by 0.5 (dq). */
static void fd_attention(const char *what, int T, int S)
{
    attn_case c = attn_make(2, T, S, 4, 2, 8);
    float *dq = calloc(c.nq, 4), *dk = calloc(c.nkv, 4), *dv = calloc(c.nkv, 4);
    float *wdq = calloc(c.nq, 4), *wdk = calloc(c.nkv, 4), *wdv = calloc(c.nkv, 4);
    attn_loss(&c);
    CHECK_OK(nn.ops->attention_backward(&nn, &c.a, dq, dk, dv, c.R, c.out, c.lse, c.q, c.k, c.v));
    float *partial = copy_of(c.R, c.nout), *off = copy_of(c.lse, c.nlse);
    for (size_t i = 0; i < c.nout; i++)
        if ((int)(i % c.a.ld_out) / c.a.hs % (c.a.NH / c.a.NKV) == 0) partial[i] = 0;
    CHECK_OK(nn.ops->attention_backward(&nn, &c.a, wdq, wdk, wdv, partial, c.out, c.lse, c.q, c.k, c.v));
    char name[64];
    snprintf(name, sizeof name, "%s: dk", what);
    expect_fd(name, fd_error(attn_loss, &c, c.k, c.nkv, dk), fd_error(attn_loss, &c, c.k, c.nkv, wdk));
    snprintf(name, sizeof name, "%s: dv", what);
    expect_fd(name, fd_error(attn_loss, &c, c.v, c.nkv, dv), fd_error(attn_loss, &c, c.v, c.nkv, wdv));
    for (size_t i = 0; i < c.nlse; i++) off[i] += 0.5f;
    CHECK_OK(nn.ops->attention_backward(&nn, &c.a, wdq, wdk, wdv, c.R, c.out, off, c.q, c.k, c.v));
    snprintf(name, sizeof name, "%s: dq", what);
    expect_fd(name, fd_error(attn_loss, &c, c.q, c.nq, dq), fd_error(attn_loss, &c, c.q, c.nq, wdq));
    free(dq), free(dk), free(dv), free(wdq), free(wdk), free(wdv), free(partial), free(off);
    attn_free(&c);
}

int main(void)
{
    CHECK_OK(nn.ops->init(&nn, ZRT_MATMUL_FP32, 0));
    check_rows();
    check_layernorm_gemm();
    check_cross_entropy(false);
    check_cross_entropy(true);
    check_residual_norm();
    check_attention("MHA 4, T = S 9", 2, 9, 9, 4, 4, 8);
    check_attention("MHA 2, T = S 150 (3 blocks)", 1, 150, 150, 2, 2, 16);
    check_attention("GQA 4 on 2, T 3 < S 9", 2, 3, 9, 4, 2, 8);
    check_attention("GQA 4 on 2, T 70 < S 200", 2, 70, 200, 4, 2, 8);
    check_attention("MQA 4 on 1, decode T 1 < S 130", 1, 1, 130, 4, 1, 16);
    fd_rmsnorm();
    fd_rope();
    fd_swiglu();
    fd_attention("GQA T 3 < S 7", 3, 7);
    fd_attention("GQA T 70 < S 140 (blocks)", 70, 140);
    nn.ops->fini(&nn);
    return CHECK_DONE();
}
