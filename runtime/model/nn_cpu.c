/* nn_cpu.c: the cpu device's model ops (nn.h's zrt_nn_cpu): matmuls by
 * OpenBLAS's cblas_sgemm, elementwise and row math by vecmath.h's vector
 * path (the one this CPU runs best, chosen once), the rest plain loops.
 *
 * Why these exact loops: they are the math gpt.c and mlp.c had before the
 * ops were split out (after llm.c's CPU code), operation for operation, so
 * a model on the cpu device gives the bits it gave then (test_golden_torch,
 * test_engine_stages). Sums over rows (bias, embedding and norm weight
 * gradients) add rows in order; row statistics follow vecmath.h's lane
 * order. Attention is nn_attention.c's blocked FlashAttention-2 (its sums
 * are in another order than the former T x T softmax's: the models' bits
 * moved once, within test_golden_torch's 1e-5 of PyTorch). Every op
 * computes at once: the runner calls the model's function as one host
 * function on the stream's thread (host_function).
 * Activations are fp32 on this table (typed_acts false): each op names
 * its `void *` buffers as float at entry.
 * Check: tests/test_nn_ops.c holds each op to tests/model_refs.h.
 */
#include "nn_device.h"

#include "gelu.h"
#include "rmsnorm.h"
#include "rope.h"
#include "swiglu.h"
#include "vecmath.h"
#include "xent.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

static const zrt_vecmath *vm(void) { return zrt_vecmath_best(); }

static zrt_status init(zrt_nn *nn, zrt_matmul_math math, int64_t loss_rows)
{
    (void)math, (void)loss_rows; /* fp32 whatever is asked; losses are summed at once */
    nn->impl = NULL;
    return ZRT_OK;
}

static void fini(zrt_nn *nn) { (void)nn; }

static zrt_status copy(zrt_nn *nn, void *dst, const void *src, size_t bytes)
{
    (void)nn;
    memmove(dst, src, bytes);
    return ZRT_OK;
}

static zrt_status zero(zrt_nn *nn, void *dst, size_t bytes)
{
    (void)nn;
    memset(dst, 0, bytes);
    return ZRT_OK;
}

static zrt_status gemm(zrt_nn *nn, const zrt_gemm *g)
{
    int batch = g->batch > 1 ? g->batch : 1;
    if (g->M < 1 || g->N < 1 || g->K < 1)
        return zrt_set_error(ZRT_ERR_INVALID, "%s: a %dx%dx%d matmul", nn->model, g->M, g->N, g->K);
    if (g->a_type != ZRT_DTYPE_F32 || g->b_type != ZRT_DTYPE_F32 || g->c_type != ZRT_DTYPE_F32)
        return zrt_set_error(ZRT_ERR_UNSUPPORTED, "%s: the cpu table's matmuls are fp32 (A %s, B %s, C %s asked)",
                             nn->model, zrt_dtype_name(g->a_type), zrt_dtype_name(g->b_type),
                             zrt_dtype_name(g->c_type));
    const float *A = g->A, *B = g->B;
    float *C = g->C;
    for (int i = 0; i < batch; i++)
        cblas_sgemm(CblasRowMajor, g->trans_a ? CblasTrans : CblasNoTrans, g->trans_b ? CblasTrans : CblasNoTrans,
                    g->M, g->N, g->K, g->alpha, A + i * g->stride_a, g->lda, B + i * g->stride_b, g->ldb, g->beta,
                    C + i * g->stride_c, g->ldc);
    return ZRT_OK;
}

static zrt_status init_rows(zrt_nn *nn, void *out_, const float *bias, const void *residual_, int N, int OC)
{
    float *out = out_;
    const float *residual = residual_;
    (void)nn;
    for (int64_t i = 0; (bias || residual) && i < N; i++) {
        float *row = out + i * OC;
        const float *res = residual ? residual + i * OC : NULL;
        if (!res)
            memcpy(row, bias, (size_t)OC * sizeof(float));
        else if (bias)
            for (int o = 0; o < OC; o++) row[o] = res[o] + bias[o];
        else
            memcpy(row, res, (size_t)OC * sizeof(float));
    }
    return ZRT_OK;
}

static zrt_status bias_backward(zrt_nn *nn, float *db, const void *dout_, int N, int OC)
{
    const float *dout = dout_;
    (void)nn;
    for (int i = 0; i < N; i++)
        for (int o = 0; o < OC; o++) db[o] += dout[(int64_t)i * OC + o];
    return ZRT_OK;
}

/* Every token in 0..V-1; targets may also be ZRT_IGNORE_INDEX (no target). */
static zrt_status check_tokens(const zrt_nn *nn, const int32_t *tokens, int n, int V, const char *what, bool ignorable)
{
    for (int i = 0; i < n; i++)
        if ((tokens[i] < 0 || tokens[i] >= V) && !(ignorable && tokens[i] == ZRT_IGNORE_INDEX))
            return zrt_set_error(ZRT_ERR_INVALID, "%s: %s %d outside the vocabulary of %d", nn->model, what, tokens[i], V);
    return ZRT_OK;
}

static zrt_status embed_forward(zrt_nn *nn, void *out_, const int32_t *tokens, const float *wte, const float *wpe,
                                int N, int T, int C, int V)
{
    float *out = out_;
    ZRT_CHECK(check_tokens(nn, tokens, N, V, "token", false));
    for (int i = 0; i < N; i++) {
        const float *e = wte + (int64_t)tokens[i] * C, *p = wpe ? wpe + (int64_t)(i % T) * C : NULL;
        float *o = out + (int64_t)i * C;
        if (p)
            for (int c = 0; c < C; c++) o[c] = e[c] + p[c];
        else
            memcpy(o, e, (size_t)C * sizeof(float));
    }
    return ZRT_OK;
}

static zrt_status embed_backward(zrt_nn *nn, float *dwte, float *dwpe, const void *dout_, const int32_t *tokens, int N,
                                 int T, int C, int V)
{
    const float *dout = dout_;
    ZRT_CHECK(check_tokens(nn, tokens, N, V, "token", false));
    for (int i = 0; i < N; i++)
        for (int c = 0; c < C; c++) {
            float d = dout[(int64_t)i * C + c];
            dwte[(int64_t)tokens[i] * C + c] += d;
            if (dwpe) dwpe[(int64_t)(i % T) * C + c] += d;
        }
    return ZRT_OK;
}

static zrt_status layernorm_forward(zrt_nn *nn, void *out_, float *mean, float *rstd, const void *x_, const float *w,
                                    const float *b, int N, int C)
{
    float *out = out_;
    const float *x = x_;
    (void)nn;
    for (int i = 0; i < N; i++)
        vm()->layernorm_forward(out + (int64_t)i * C, &mean[i], &rstd[i], x + (int64_t)i * C, w, b, C);
    return ZRT_OK;
}

static zrt_status layernorm_backward(zrt_nn *nn, void *dx_, float *dw, float *db, const void *d_, const void *x_,
                                     const float *w, const float *mean, const float *rstd, int N, int C)
{
    float *dx = dx_;
    const float *d = d_;
    const float *x = x_;
    (void)nn;
    for (int i = 0; i < N; i++) {
        int64_t row = (int64_t)i * C;
        vm()->layernorm_backward(dx + row, dw, db, d + row, x + row, w, mean[i], rstd[i], C);
    }
    return ZRT_OK;
}

/* One row of RMSNorm (C elements); returns its rstd. */
static float rmsnorm_row(float *out, const float *x, const float *w, int C, float eps)
{
    float r = zrt_rmsnorm_rstd(vm()->dot(x, x, C), C, eps);
    for (int c = 0; c < C; c++) out[c] = zrt_rmsnorm_out(x[c], r, w[c]);
    return r;
}

static zrt_status rmsnorm_forward(zrt_nn *nn, void *out_, float *rstd, const void *x_, const float *w, int N, int C,
                                  float eps)
{
    float *out = out_;
    const float *x = x_;
    (void)nn;
    for (int i = 0; i < N; i++) rstd[i] = rmsnorm_row(out + (int64_t)i * C, x + (int64_t)i * C, w, C, eps);
    return ZRT_OK;
}

/* Row i of a zrt_norm, one function per kind: the rows layernorm_forward and rmsnorm_forward compute. */
static void layer_norm_row(const zrt_norm *n, float *out, const float *h, int i, int C)
{
    vm()->layernorm_forward(out, &n->mean[i], &n->rstd[i], h, n->w, n->b, C);
}

static void rms_norm_row(const zrt_norm *n, float *out, const float *h, int i, int C)
{
    n->rstd[i] = rmsnorm_row(out, h, n->w, C, n->eps);
}

static void (*const norm_rows[])(const zrt_norm *n, float *out, const float *h, int i, int C) = {
    [ZRT_NORM_LAYER] = layer_norm_row, [ZRT_NORM_RMS] = rms_norm_row};

/* Row by row, so h is still in cache when the norm reads it. */
static zrt_status residual_norm(zrt_nn *nn, void *h_, void *out_, const zrt_norm *norm, const void *x_, const void *y_,
                                const float *bias, int N, int C)
{
    float *h = h_;
    float *out = out_;
    const float *x = x_;
    const float *y = y_;
    if (norm->kind != ZRT_NORM_LAYER && norm->kind != ZRT_NORM_RMS)
        return zrt_set_error(ZRT_ERR_INVALID, "%s: residual_norm of unknown norm kind %d", nn->model, (int)norm->kind);
    for (int i = 0; i < N; i++) {
        int64_t at = (int64_t)i * C;
        float *hr = h + at;
        for (int c = 0; x && c < C; c++) hr[c] = (bias ? x[at + c] + bias[c] : x[at + c]) + y[at + c];
        if (!x && hr != y + at) memcpy(hr, y + at, (size_t)C * sizeof(float));
        norm_rows[norm->kind](norm, out + at, hr, i, C);
    }
    return ZRT_OK;
}

static zrt_status rmsnorm_backward(zrt_nn *nn, void *dx_, float *dw, const void *d_, const void *x_, const float *w,
                                   const float *rstd, int N, int C)
{
    float *dx = dx_;
    const float *d = d_;
    const float *x = x_;
    (void)nn;
    for (int i = 0; i < N; i++) {
        const float *xr = x + (int64_t)i * C, *dr = d + (int64_t)i * C;
        float *dxr = dx + (int64_t)i * C, r = rstd[i], sum = 0.0f;
        for (int c = 0; c < C; c++) sum += dr[c] * w[c] * (xr[c] * r);
        float mean = sum / (float)C;
        for (int c = 0; c < C; c++) {
            float norm = xr[c] * r;
            dxr[c] += zrt_rmsnorm_dx(dr[c] * w[c], norm, mean, r);
            dw[c] += dr[c] * norm;
        }
    }
    return ZRT_OK;
}

static zrt_status rope(zrt_nn *nn, void *x_, int N, int T, int pos0, int heads, int hs, int ld, const float *cos,
                       const float *sin, bool inverse)
{
    float *x = x_;
    if (hs % 2) return zrt_set_error(ZRT_ERR_INVALID, "%s: rotary embedding of odd head size %d", nn->model, hs);
    int half = hs / 2;
    for (int r = 0; r < N; r++) {
        int64_t at = (int64_t)(pos0 + r % T) * half;
        for (int h = 0; h < heads; h++) {
            float *head = x + (int64_t)r * ld + (int64_t)h * hs;
            for (int i = 0; i < half; i++)
                zrt_rope_turn(&head[i], &head[i + half], cos[at + i], inverse ? -sin[at + i] : sin[at + i]);
        }
    }
    return ZRT_OK;
}

/* ---- activations --------------------------------------------------------------------------------- */

static zrt_status bias_gelu_forward(zrt_nn *nn, void *pre_, void *out_, const float *bias, int rows, int cols)
{
    float *pre = pre_;
    float *out = out_;
    (void)nn;
    if (bias)
        vm()->bias_gelu_forward(pre, out, bias, rows, cols);
    else
        vm()->gelu_forward(out, pre, (int64_t)rows * cols);
    return ZRT_OK;
}

static zrt_status gelu_backward(zrt_nn *nn, void *dinp_, const void *inp_, const void *dout_, size_t n)
{
    float *dinp = dinp_;
    const float *inp = inp_;
    const float *dout = dout_;
    (void)nn;
    vm()->gelu_backward(dinp, inp, dout, (int64_t)n);
    return ZRT_OK;
}

static zrt_status swiglu_forward(zrt_nn *nn, void *out_, const void *gu_, int N, int H)
{
    float *out = out_;
    const float *gu = gu_;
    (void)nn;
    for (int64_t r = 0; r < N; r++)
        for (int i = 0; i < H; i++) out[r * H + i] = zrt_swiglu(gu[r * 2 * H + i], gu[r * 2 * H + H + i]);
    return ZRT_OK;
}

static zrt_status swiglu_backward(zrt_nn *nn, void *dgu_, const void *dout_, const void *gu_, int N, int H)
{
    float *dgu = dgu_;
    const float *dout = dout_;
    const float *gu = gu_;
    (void)nn;
    for (int64_t r = 0; r < N; r++)
        for (int i = 0; i < H; i++) {
            int64_t g = r * 2 * H + i;
            zrt_swiglu_grad(gu[g], gu[g + H], dout[r * H + i], &dgu[g], &dgu[g + H]);
        }
    return ZRT_OK;
}

/* ---- cross-entropy ---------------------------------------------------------------------------------- */

/* One row in GPT's form (fp32 exp and sum), in place: the exponentials
 * overwrite the logits they come from (the row is its own scratch), then
 * become the gradient -- the same roundings, hence the same bits, as a
 * separate probabilities buffer gave. n: the rows that are targets.
 * Returns -log p[target]. */
static double xent_row_float(float *z, int target, int n, int V, float scale)
{
    float inv = 1.0f / vm()->exp_sum(z, z, vm()->max(z, V), V), dscale = scale / (float)n;
    float p_target = z[target] * inv;
    for (int v = 0; v < V; v++) {
        float p = z[v] * inv;
        z[v] = p * dscale;
    }
    z[target] = (p_target - 1.0f) * dscale;
    return -log((double)p_target);
}

/* One row in the MLP's form (log-sum-exp in double), in place. */
static double xent_row_double(float *z, int target, int n, int V, float scale)
{
    float max = z[0];
    for (int v = 1; v < V; v++) max = fmaxf(max, z[v]);
    double sum = 0;
    for (int v = 0; v < V; v++) sum += exp((double)(z[v] - max));
    double log_sum = log(sum) + max, loss = log_sum - z[target];
    for (int v = 0; v < V; v++) z[v] = (float)(exp(z[v] - log_sum) * scale / n);
    z[target] -= scale / (float)n;
    return loss;
}

static zrt_status cross_entropy(zrt_nn *nn, void *logits_, const int32_t *targets, int N, int V, float scale,
                                float divisor, float *loss_sum, bool double_math)
{
    float *logits = logits_;
    ZRT_CHECK(check_tokens(nn, targets, N, V, "target", true));
    int n = 0;
    for (int i = 0; i < N; i++) n += targets[i] != ZRT_IGNORE_INDEX;
    double total = 0;
    for (int i = 0; i < N; i++) {
        float *z = logits + (int64_t)i * V;
        if (targets[i] == ZRT_IGNORE_INDEX)
            memset(z, 0, (size_t)V * sizeof(float));
        else
            total += (double_math ? xent_row_double : xent_row_float)(z, targets[i], n, V, scale);
    }
    float mean = n ? (float)(total / n) : 0.0f;
    *loss_sum += mean / divisor;
    return ZRT_OK;
}

const zrt_nn_ops zrt_nn_cpu = {
    .kind = ZRT_DEVICE_CPU, .host_function = true, .fuse_residual = false, .typed_acts = false, .init = init,
    .fini = fini, .copy = copy, .zero = zero,
    .gemm = gemm, .init_rows = init_rows, .bias_backward = bias_backward, .embed_forward = embed_forward,
    .embed_backward = embed_backward, .layernorm_forward = layernorm_forward, .layernorm_backward = layernorm_backward,
    .rmsnorm_forward = rmsnorm_forward, .rmsnorm_backward = rmsnorm_backward, .residual_norm = residual_norm, .rope = rope,
    .attention_forward = zrt_nn_flash_forward, .attention_backward = zrt_nn_flash_backward,
    .bias_gelu_forward = bias_gelu_forward, .gelu_backward = gelu_backward, .swiglu_forward = swiglu_forward,
    .swiglu_backward = swiglu_backward, .cross_entropy = cross_entropy,
};
