/* emulated_launchers.h: kernels/model_kernels.h's launchers defined on host
 * memory as tests/model_refs.h's fp32 references, at any activation type --
 * the cuda ops table's CPU twin in tests/test_model_emulated.c (included
 * once there; the program's definitions take the place of the .cu kernels).
 *
 * Why a wrapper per launcher and not a dtype in every reference: a kernel
 * reads its activations as fp32 (kernels/cast.h's zrt_load_f32), computes
 * in fp32 and rounds where it stores (zrt_store_f32). So does each launcher
 * here: `to_f32` reads its activation inputs into fp32 copies, the
 * reference runs on them, `store_act` stores its outputs rounded to the type. At fp32 the
 * copies are exact: the same results as the references on the buffers.
 * Strided views (attention's q, k, v and their gradients, rope's heads) are
 * stored back only in their own columns: the views of one buffer overlap.
 * emulated_fault (a test's switch) names a launcher -- "residual_norm" or
 * "bias_gelu" -- that stores its output as the other 16-bit type (fp16 into
 * a bf16 buffer, bf16 into fp16: a kernel given the wrong type): the loss
 * bound must notice it.
 * emulated_recording: the backward launchers that meet a stored activation
 * and its complete gradient together add sum |x dL/dx| to emulated_xg (the
 * first-order loss bound's terms): attention (q, k, v), GELU's and SwiGLU's
 * inputs, the norms' inputs (the residual stream: dx is complete after the
 * norm's +=), the logits; the linear layers' inputs are paired by the
 * test's gemm (the dinp gemm, then the dW gemm reading the input).
 */
#ifndef ZRT_TESTS_EMULATED_LAUNCHERS_H
#define ZRT_TESTS_EMULATED_LAUNCHERS_H

#include "cast.h"
#include "model_kernels.h"
#include "model_refs.h"

#include <stdlib.h>
#include <string.h>

static const char *emulated_fault; /* NULL: none */

/* The type launcher `op` stores its output as: act, or the other 16-bit type when it is the fault. */
static int stored_as(int act, const char *op)
{
    bool wrong = emulated_fault && strcmp(emulated_fault, op) == 0;
    return !wrong ? act : act == ZRT_DTYPE_F16 ? ZRT_DTYPE_BF16 : ZRT_DTYPE_F16;
}
static bool emulated_recording;
static double emulated_xg, emulated_xg2; /* sum |x dL/dx|, sum (x dL/dx)^2 recorded */

/* Adds sum |x g| over `rows` rows of `width` (ld apart) when recording. */
static void record_rows(const float *x, const float *g, size_t rows, size_t ld, size_t width)
{
    for (size_t r = 0; emulated_recording && r < rows; r++)
        for (size_t c = 0; c < width; c++) {
            double a = (double)x[r * ld + c] * g[r * ld + c];
            emulated_xg += fabs(a), emulated_xg2 += a * a;
        }
}

static void record(const float *x, const float *g, size_t n) { record_rows(x, g, 1, n, n); }

/* n elements of p (type act) as a fresh fp32 array (NULL p: NULL). */
static float *to_f32(int act, const void *p, size_t n)
{
    if (!p) return NULL;
    float *f = malloc((n ? n : 1) * sizeof *f);
    if (!f) abort();
    for (size_t i = 0; i < n; i++) f[i] = zrt_load_f32(p, i, act);
    return f;
}

/* f (rows of `width` of every ld) stored into p rounded to act; f freed. */
static void store_rows(int act, void *p, float *f, size_t rows, size_t ld, size_t width)
{
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < width; c++)
            zrt_store_f32(p, r * ld + c, act, f[r * ld + c]);
    free(f);
}

static void store_act(int act, void *p, float *f, size_t n) { store_rows(act, p, f, 1, n, n); }

/* Elements a strided view of rows (ld apart) of width spans. */
static size_t span(size_t rows, size_t ld, size_t width) { return rows ? (rows - 1) * ld + width : 0; }

int zrt_cuda_copy(void *s, void *dst, const void *src, size_t bytes) { return (void)s, memmove(dst, src, bytes), 0; }
int zrt_cuda_zero(void *s, void *dst, size_t bytes) { return (void)s, memset(dst, 0, bytes), 0; }
int zrt_cuda_to_act(void *s, int act, void *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++) zrt_store_f32(dst, i, act, src[i]);
    return (void)s, 0;
}
int zrt_cuda_embed_forward(void *s, int act, void *out, const int32_t *tokens, const float *wte, const float *wpe,
                           int N, int T, int C, int V, int32_t *bad)
{
    size_t n = (size_t)N * C;
    float *o = to_f32(act, out, n);
    ref_embed_forward(o, tokens, wte, wpe, N, T, C, V, bad);
    return (void)s, store_act(act, out, o, n), 0;
}
int zrt_cuda_embed_backward(void *s, int act, float *dwte, float *dwpe, const void *dout, const int32_t *tokens, int N,
                            int T, int C, int V)
{
    float *d = to_f32(act, dout, (size_t)N * C);
    ref_embed_backward(dwte, dwpe, d, tokens, N, T, C, V);
    return (void)s, free(d), 0;
}
int zrt_cuda_init_rows(void *s, int act, void *out, const float *bias, const void *residual, int N, int OC)
{
    size_t n = (size_t)N * OC;
    float *o = to_f32(act, out, n), *r = to_f32(act, residual, n);
    ref_init_rows(o, bias, r, N, OC);
    return (void)s, free(r), store_act(act, out, o, n), 0;
}
int zrt_cuda_bias_backward(void *s, int act, float *db, const void *dout, int N, int OC, float *scratch)
{
    float *d = to_f32(act, dout, (size_t)N * OC);
    ref_bias_backward_blocked(db, d, N, OC);
    return (void)s, (void)scratch, free(d), 0;
}
int zrt_cuda_bias_gelu_forward(void *s, int act, void *pre, void *out, const float *bias, int rows, int cols)
{
    size_t n = (size_t)rows * cols;
    float *p = to_f32(act, pre, n), *o = to_f32(act, out, n);
    ref_bias_gelu_forward(p, o, bias, rows, cols);
    if (bias) store_act(act, pre, p, n);
    else free(p);
    return (void)s, store_act(stored_as(act, "bias_gelu"), out, o, n), 0;
}
int zrt_cuda_gelu_backward(void *s, int act, void *dinp, const void *inp, const void *dout, size_t n)
{
    float *x = to_f32(act, inp, n), *d = to_f32(act, dout, n), *o = to_f32(act, dinp, n);
    ref_gelu_backward(o, x, d, n);
    record(x, o, n);
    return (void)s, free(x), free(d), store_act(act, dinp, o, n), 0;
}
int zrt_cuda_layernorm_forward(void *s, int act, void *out, float *mean, float *rstd, const void *x, const float *w,
                               const float *b, int N, int C)
{
    size_t n = (size_t)N * C;
    float *xx = to_f32(act, x, n), *o = to_f32(act, out, n);
    ref_layernorm_forward(o, mean, rstd, xx, w, b, N, C);
    return (void)s, free(xx), store_act(act, out, o, n), 0;
}
int zrt_cuda_layernorm_backward(void *s, int act, void *dx, float *dw, float *db, const void *d, const void *x,
                                const float *w, const float *mean, const float *rstd, int N, int C, float *scratch)
{
    size_t n = (size_t)N * C;
    float *o = to_f32(act, dx, n), *dd = to_f32(act, d, n), *xx = to_f32(act, x, n);
    ref_layernorm_backward_blocked(o, dw, db, dd, xx, w, mean, rstd, N, C);
    record(xx, o, n);
    return (void)s, (void)scratch, free(dd), free(xx), store_act(act, dx, o, n), 0;
}
int zrt_cuda_flash_forward(void *s, int act, const zrt_attn_shape *a, void *out, float *lse, const void *q,
                           const void *k, const void *v)
{
    size_t rq = (size_t)a->B * a->T, rk = (size_t)a->B * a->S, wq = (size_t)a->NH * a->hs, wk = (size_t)a->NKV * a->hs;
    float *qq = to_f32(act, q, span(rq, a->ld_q, wq)), *kk = to_f32(act, k, span(rk, a->ld_kv, wk));
    float *vv = to_f32(act, v, span(rk, a->ld_kv, wk)), *o = to_f32(act, out, span(rq, a->ld_out, wq));
    ref_attention_forward(a, o, lse, qq, kk, vv);
    free(qq), free(kk), free(vv);
    return (void)s, store_rows(act, out, o, rq, a->ld_out, wq), 0;
}
int zrt_cuda_flash_backward(void *s, int act, const zrt_attn_shape *a, void *dq, void *dk, void *dv, const void *dout,
                            const void *out, const float *lse, const void *q, const void *k, const void *v)
{
    size_t rq = (size_t)a->B * a->T, rk = (size_t)a->B * a->S, wq = (size_t)a->NH * a->hs, wk = (size_t)a->NKV * a->hs;
    size_t nq = span(rq, a->ld_q, wq), nk = span(rk, a->ld_kv, wk);
    float *qq = to_f32(act, q, nq), *kk = to_f32(act, k, nk), *vv = to_f32(act, v, nk);
    float *d = to_f32(act, dout, span(rq, a->ld_out, wq));
    float *gq = to_f32(act, dq, nq), *gk = to_f32(act, dk, nk), *gv = to_f32(act, dv, nk);
    ref_attention_backward(a, gq, gk, gv, d, qq, kk, vv);
    record_rows(qq, gq, rq, a->ld_q, wq), record_rows(kk, gk, rk, a->ld_kv, wk), record_rows(vv, gv, rk, a->ld_kv, wk);
    free(qq), free(kk), free(vv), free(d);
    store_rows(act, dq, gq, rq, a->ld_q, wq), store_rows(act, dk, gk, rk, a->ld_kv, wk);
    return (void)s, (void)out, (void)lse, store_rows(act, dv, gv, rk, a->ld_kv, wk), 0;
}
int zrt_cuda_rmsnorm_forward(void *s, int act, void *out, float *rstd, const void *x, const float *w, int N, int C,
                             float eps)
{
    size_t n = (size_t)N * C;
    float *xx = to_f32(act, x, n), *o = to_f32(act, out, n);
    ref_rmsnorm_forward(o, rstd, xx, w, N, C, eps);
    return (void)s, free(xx), store_act(act, out, o, n), 0;
}
/* h stored, then the norm of h as stored (the kernel reads it back). */
int zrt_cuda_residual_norm(void *s, int act, void *h, void *out, const void *x, const void *y, const float *bias, int N,
                           int C, int rms, const float *w, const float *b, float *mean, float *rstd, float eps)
{
    size_t n = (size_t)N * C;
    float *xx = to_f32(act, x, n), *yy = to_f32(act, y, n), *hh = to_f32(act, h, n), *o = to_f32(act, out, n);
    ref_residual_norm(hh, o, xx, yy, bias, N, C, rms, w, b, mean, rstd, eps);
    free(xx), free(yy), store_act(act, h, hh, n);
    hh = to_f32(act, h, n);
    if (rms) ref_rmsnorm_forward(o, rstd, hh, w, N, C, eps);
    else ref_layernorm_forward(o, mean, rstd, hh, w, b, N, C);
    return (void)s, free(hh), store_act(stored_as(act, "residual_norm"), out, o, n), 0;
}
int zrt_cuda_rmsnorm_backward(void *s, int act, void *dx, float *dw, const void *d, const void *x, const float *w,
                              const float *rstd, int N, int C, float *scratch)
{
    size_t n = (size_t)N * C;
    float *o = to_f32(act, dx, n), *dd = to_f32(act, d, n), *xx = to_f32(act, x, n);
    ref_rmsnorm_backward_blocked(o, dw, dd, xx, w, rstd, N, C);
    record(xx, o, n);
    return (void)s, (void)scratch, free(dd), free(xx), store_act(act, dx, o, n), 0;
}
int zrt_cuda_rope(void *s, int act, void *x, int N, int T, int pos0, int heads, int hs, int ld, const float *cos,
                  const float *sin, int inverse)
{
    size_t w = (size_t)heads * hs;
    float *xx = to_f32(act, x, span((size_t)N, (size_t)ld, w));
    ref_rope(xx, N, T, pos0, heads, hs, ld, cos, sin, inverse);
    return (void)s, store_rows(act, x, xx, (size_t)N, (size_t)ld, w), 0;
}
int zrt_cuda_swiglu_forward(void *s, int act, void *out, const void *gu, int N, int H)
{
    size_t n = (size_t)N * H;
    float *g = to_f32(act, gu, 2 * n), *o = to_f32(act, out, n);
    ref_swiglu_forward(o, g, N, H);
    return (void)s, free(g), store_act(act, out, o, n), 0;
}
int zrt_cuda_swiglu_backward(void *s, int act, void *dgu, const void *dout, const void *gu, int N, int H)
{
    size_t n = (size_t)N * H;
    float *g = to_f32(act, gu, 2 * n), *d = to_f32(act, dout, n), *o = to_f32(act, dgu, 2 * n);
    ref_swiglu_backward(o, d, g, N, H);
    record(g, o, 2 * n);
    return (void)s, free(g), free(d), store_act(act, dgu, o, 2 * n), 0;
}
int zrt_cuda_cross_entropy(void *s, int act, void *logits, double *losses, const int32_t *targets, int N, int V,
                           float scale, int double_math, int32_t *bad)
{
    size_t n = (size_t)N * V;
    float *z = to_f32(act, logits, n), *before = to_f32(act, logits, n);
    ref_cross_entropy(z, losses, targets, N, V, scale, double_math, bad);
    record(before, z, n);
    return (void)s, free(before), store_act(act, logits, z, n), 0;
}
int zrt_cuda_loss_mean(void *s, float *loss_sum, const double *losses, const int32_t *targets, int N, float divisor)
{
    return (void)s, ref_loss_mean(loss_sum, losses, targets, N, divisor), 0;
}

#endif
