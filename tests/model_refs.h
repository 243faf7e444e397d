/* model_refs.h: the CPU reference of every launcher in kernels/
 * model_kernels.h -- the same arguments on host memory, the math of the cpu
 * ops (runtime/model/nn_cpu.c: vecmath's scalar path, left-to-right sums)
 * written plainly. Three uses: test_nn_ops holds the cpu ops to them,
 * test_cuda_kernels holds the CUDA kernels to them on a GPU, and
 * test_model_emulated runs the cuda ops table on them in CI (no GPU there).
 * The parameter gradients' column sums come twice: in row order (the cpu
 * ops') and *_blocked, in kernels/colsum.h's two-stage order (the GPU's).
 */
#ifndef ZRT_TEST_MODEL_REFS_H
#define ZRT_TEST_MODEL_REFS_H

#include "colsum.h"
#include "vecmath.h"
#include "nn.h"
#include "rmsnorm.h"
#include "rope.h"
#include "swiglu.h"
#include "xent.h"
#include "zrt/internal/offload.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline const zrt_vecmath *ref_vm(void) { return zrt_vecmath_path(ZRT_SIMD_SCALAR); }

static inline void ref_embed_forward(float *out, const int32_t *tokens, const float *wte, const float *wpe, int N, int T,
                                     int C, int V, int32_t *bad)
{
    for (int i = 0; i < N; i++) {
        bool valid = tokens[i] >= 0 && tokens[i] < V;
        if (!valid) *bad = 1;
        for (int c = 0; c < C; c++)
            out[(int64_t)i * C + c] = !valid ? 0.0f
                                      : wpe ? wte[(int64_t)tokens[i] * C + c] + wpe[(int64_t)(i % T) * C + c]
                                            : wte[(int64_t)tokens[i] * C + c];
    }
}

static inline void ref_embed_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tokens, int N, int T,
                                      int C, int V)
{
    for (int i = 0; i < N; i++)
        for (int c = 0; c < C; c++) {
            float d = dout[(int64_t)i * C + c];
            if (tokens[i] >= 0 && tokens[i] < V) dwte[(int64_t)tokens[i] * C + c] += d;
            if (dwpe) dwpe[(int64_t)(i % T) * C + c] += d;
        }
}

static inline void ref_init_rows(float *out, const float *bias, const float *residual, int N, int OC)
{
    for (int64_t i = 0; i < (int64_t)N * OC && (bias || residual); i++)
        out[i] = residual && bias ? residual[i] + bias[i % OC] : residual ? residual[i] : bias[i % OC];
}

static inline void ref_bias_backward(float *db, const float *dout, int N, int OC)
{
    for (int i = 0; i < N; i++)
        for (int o = 0; o < OC; o++) db[o] += dout[(int64_t)i * OC + o];
}

/* The GPU's order (kernels/colsum.h's twin): what test_model_emulated runs
 * as the launchers and test_cuda_kernels holds the kernels to bitwise. */
static inline void ref_bias_backward_blocked(float *db, const float *dout, int N, int OC)
{
    zrt_colsum_args a = {ZRT_COLSUM_BIAS, 0, dout, NULL, NULL, NULL, N, OC};
    zrt_colsum_twin(&a, db, NULL);
}

static inline void ref_bias_gelu_forward(float *pre, float *out, const float *bias, int rows, int cols)
{
    if (bias) ref_vm()->bias_gelu_forward(pre, out, bias, rows, cols);
    else ref_vm()->gelu_forward(out, pre, (int64_t)rows * cols);
}

static inline void ref_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n)
{
    ref_vm()->gelu_backward(dinp, inp, dout, (int64_t)n);
}

static inline void ref_layernorm_forward(float *out, float *mean, float *rstd, const float *x, const float *w,
                                         const float *b, int N, int C)
{
    for (int i = 0; i < N; i++)
        ref_vm()->layernorm_forward(out + (int64_t)i * C, &mean[i], &rstd[i], x + (int64_t)i * C, w, b, C);
}

static inline void ref_layernorm_backward(float *dx, float *dw, float *db, const float *d, const float *x,
                                          const float *w, const float *mean, const float *rstd, int N, int C)
{
    for (int i = 0; i < N; i++) {
        int64_t row = (int64_t)i * C;
        ref_vm()->layernorm_backward(dx + row, dw, db, d + row, x + row, w, mean[i], rstd[i], C);
    }
}

/* dx as ref_layernorm_backward; dw, db in colsum.h's order (the GPU's). */
static inline void ref_layernorm_backward_blocked(float *dx, float *dw, float *db, const float *d, const float *x,
                                                  const float *w, const float *mean, const float *rstd, int N, int C)
{
    float *dw_rows = calloc((size_t)C, sizeof(float)), *db_rows = calloc((size_t)C, sizeof(float));
    ref_layernorm_backward(dx, dw_rows, db_rows, d, x, w, mean, rstd, N, C);
    zrt_colsum_args a = {ZRT_COLSUM_LAYERNORM, 0, d, x, mean, rstd, N, C};
    zrt_colsum_twin(&a, dw, db);
    free(dw_rows);
    free(db_rows);
}

/* RMSNorm: sums left to right. */
static inline void ref_rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int N, int C, float eps)
{
    for (int64_t i = 0; i < N; i++) {
        float squares = 0.0f;
        for (int c = 0; c < C; c++) squares += x[i * C + c] * x[i * C + c];
        rstd[i] = zrt_rmsnorm_rstd(squares, C, eps);
        for (int c = 0; c < C; c++) out[i * C + c] = zrt_rmsnorm_out(x[i * C + c], rstd[i], w[c]);
    }
}

/* nn.h's residual_norm: h = (x + bias) + y, then the norm of h (rms: RMSNorm, else layernorm). */
static inline void ref_residual_norm(float *h, float *out, const float *x, const float *y, const float *bias, int N,
                                     int C, int rms, const float *w, const float *b, float *mean, float *rstd, float eps)
{
    for (int64_t i = 0; i < (int64_t)N * C; i++) h[i] = !x ? y[i] : (bias ? x[i] + bias[i % C] : x[i]) + y[i];
    if (rms)
        ref_rmsnorm_forward(out, rstd, h, w, N, C, eps);
    else
        ref_layernorm_forward(out, mean, rstd, h, w, b, N, C);
}

static inline void ref_rmsnorm_backward(float *dx, float *dw, const float *d, const float *x, const float *w,
                                        const float *rstd, int N, int C)
{
    for (int64_t i = 0; i < N; i++) {
        float sum = 0.0f;
        for (int c = 0; c < C; c++) sum += d[i * C + c] * w[c] * (x[i * C + c] * rstd[i]);
        for (int c = 0; c < C; c++) {
            float norm = x[i * C + c] * rstd[i];
            dx[i * C + c] += zrt_rmsnorm_dx(d[i * C + c] * w[c], norm, sum / (float)C, rstd[i]);
            dw[c] += d[i * C + c] * norm;
        }
    }
}

static inline void ref_rmsnorm_backward_blocked(float *dx, float *dw, const float *d, const float *x, const float *w,
                                                const float *rstd, int N, int C)
{
    float *dw_rows = calloc((size_t)C, sizeof(float));
    ref_rmsnorm_backward(dx, dw_rows, d, x, w, rstd, N, C);
    zrt_colsum_args a = {ZRT_COLSUM_RMSNORM, 0, d, x, NULL, rstd, N, C};
    zrt_colsum_twin(&a, dw, NULL);
    free(dw_rows);
}

static inline void ref_rope(float *x, int N, int T, int pos0, int heads, int hs, int ld, const float *cos,
                            const float *sin, int inverse)
{
    int half = hs / 2;
    for (int r = 0; r < N; r++)
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < half; i++) {
                int64_t at = (int64_t)(pos0 + r % T) * half + i;
                float *head = x + (int64_t)r * ld + (int64_t)h * hs;
                zrt_rope_turn(&head[i], &head[i + half], cos[at], inverse ? -sin[at] : sin[at]);
            }
}

static inline void ref_swiglu_forward(float *out, const float *gu, int N, int H)
{
    for (int64_t r = 0; r < N; r++)
        for (int i = 0; i < H; i++) out[r * H + i] = zrt_swiglu(gu[r * 2 * H + i], gu[r * 2 * H + H + i]);
}

static inline void ref_swiglu_backward(float *dgu, const float *dout, const float *gu, int N, int H)
{
    for (int64_t r = 0; r < N; r++)
        for (int i = 0; i < H; i++) {
            int64_t g = r * 2 * H + i;
            zrt_swiglu_grad(gu[g], gu[g + H], dout[r * H + i], &dgu[g], &dgu[g + H]);
        }
}

/* Causal grouped-query attention (kernels/flash.h's zrt_attn_shape) as
 * plain quadratic loops in double: the independent reference the blocked
 * forms (the cpu table's, the CUDA kernels) are held to, and the emulated
 * launchers of test_model_emulated. S up to REF_MAX_S. */
#define REF_MAX_S 4096

/* Query t of head h of sequence b: its probabilities w[0..n) and lse (scaled scores); returns n. */
static inline int ref_attention_row(const zrt_attn_shape *a, const float *q, const float *k, int b, int h, int t,
                                    double *w, double *lse)
{
    int n = zrt_flash_keys(a, t), g = h / (a->NH / a->NKV);
    double scale = 1.0 / sqrt((double)a->hs), max = -INFINITY, sum = 0;
    const float *qr = q + zrt_flash_q_at(a, b, t, h);
    for (int s = 0; s < n; s++) {
        const float *kr = k + zrt_flash_kv_at(a, b, s, g);
        double dot = 0;
        for (int i = 0; i < a->hs; i++) dot += (double)qr[i] * kr[i];
        max = fmax(max, w[s] = dot * scale);
    }
    for (int s = 0; s < n; s++) sum += (w[s] = exp(w[s] - max));
    for (int s = 0; s < n; s++) w[s] /= sum;
    *lse = max + log(sum);
    return n;
}

/* out and lse (B, NH, T; NULL: not wanted). */
static inline void ref_attention_forward(const zrt_attn_shape *a, float *out, float *lse, const float *q,
                                         const float *k, const float *v)
{
    static double w[REF_MAX_S];
    for (int b = 0; b < a->B; b++)
        for (int h = 0; h < a->NH; h++)
            for (int t = 0; t < a->T; t++) {
                double l;
                int n = ref_attention_row(a, q, k, b, h, t, w, &l), g = h / (a->NH / a->NKV);
                if (lse) lse[zrt_flash_lse_at(a, b, h, t)] = (float)l;
                float *o = out + zrt_flash_out_at(a, b, t, h);
                for (int i = 0; i < a->hs; i++) {
                    double acc = 0;
                    for (int s = 0; s < n; s++) acc += w[s] * v[zrt_flash_kv_at(a, b, s, g) + i];
                    o[i] = (float)acc;
                }
            }
}

/* One row's backward: dS = P (dP - rowsum(P dP)), dP = dout v; dq row, dk, dv (double, dense S x NKV hs) added. */
static inline void ref_attention_row_backward(const zrt_attn_shape *a, double *dq, double *dk, double *dv,
                                              const double *w, int n, const float *dout, const float *q,
                                              const float *k, const float *v, int b, int h, int t)
{
    static double dp[REF_MAX_S];
    int g = h / (a->NH / a->NKV), hs = a->hs;
    double scale = 1.0 / sqrt((double)hs), D = 0;
    const float *dor = dout + zrt_flash_out_at(a, b, t, h), *qr = q + zrt_flash_q_at(a, b, t, h);
    for (int s = 0; s < n; s++) {
        const float *vr = v + zrt_flash_kv_at(a, b, s, g);
        dp[s] = 0;
        for (int i = 0; i < hs; i++) dp[s] += (double)dor[i] * vr[i];
        D += w[s] * dp[s];
    }
    for (int s = 0; s < n; s++) {
        double ds = w[s] * (dp[s] - D) * scale;
        const float *kr = k + zrt_flash_kv_at(a, b, s, g);
        double *dkr = dk + ((int64_t)s * a->NKV + g) * hs, *dvr = dv + ((int64_t)s * a->NKV + g) * hs;
        for (int i = 0; i < hs; i++) dq[i] += ds * kr[i], dkr[i] += ds * qr[i], dvr[i] += w[s] * dor[i];
    }
}

/* dq, dk, dv overwritten in the heads' columns (a kv head's gradient sums its query heads'). */
static inline void ref_attention_backward(const zrt_attn_shape *a, float *dq, float *dk, float *dv, const float *dout,
                                          const float *q, const float *k, const float *v)
{
    static double w[REF_MAX_S];
    size_t kv = (size_t)a->S * a->NKV * a->hs;
    double *dkb = calloc(kv, sizeof(double)), *dvb = calloc(kv, sizeof(double)), dqr[1024];
    for (int b = 0; b < a->B; b++) {
        memset(dkb, 0, kv * sizeof(double)), memset(dvb, 0, kv * sizeof(double));
        for (int h = 0; h < a->NH; h++)
            for (int t = 0; t < a->T; t++) {
                double l;
                int n = ref_attention_row(a, q, k, b, h, t, w, &l);
                memset(dqr, 0, sizeof dqr);
                ref_attention_row_backward(a, dqr, dkb, dvb, w, n, dout, q, k, v, b, h, t);
                for (int i = 0; i < a->hs; i++) dq[zrt_flash_q_at(a, b, t, h) + i] = (float)dqr[i];
            }
        for (int s = 0; s < a->S; s++)
            for (int j = 0; j < a->NKV * a->hs; j++) {
                int64_t at = zrt_flash_kv_at(a, b, s, 0) + j, from = (int64_t)s * a->NKV * a->hs + j;
                dk[at] = (float)dkb[from], dv[at] = (float)dvb[from];
            }
    }
    free(dkb), free(dvb);
}

/* One row of GPT's cross-entropy (gpt.c's loss), in place: z holds the
 * logits, then the exponentials, then the gradient. N: the rows that are
 * targets. */
static inline double ref_xent_row_gpt(float *z, int target, int N, int V, float scale)
{
    const zrt_vecmath *vm = ref_vm();
    float inv = 1.0f / vm->exp_sum(z, z, vm->max(z, V), V), dscale = scale / (float)N;
    float p_target = z[target] * inv;
    for (int v = 0; v < V; v++) {
        float p = z[v] * inv;
        z[v] = p * dscale;
    }
    z[target] = (p_target - 1.0f) * dscale;
    return -log((double)p_target);
}

/* One row of the MLP's (mlp.c's loss), in place. */
static inline double ref_xent_row_mlp(float *z, int target, int N, int V, float scale)
{
    float max = z[0];
    for (int v = 1; v < V; v++) max = fmaxf(max, z[v]);
    double sum = 0;
    for (int v = 0; v < V; v++) sum += exp((double)(z[v] - max));
    double log_sum = log(sum) + max, loss = log_sum - z[target];
    for (int v = 0; v < V; v++) z[v] = (float)(exp(z[v] - log_sum) * scale / N);
    z[target] -= scale / (float)N;
    return loss;
}

/* The targets that are not ZRT_IGNORE_INDEX (kernels/xent.h). */
static inline int ref_count_targets(const int32_t *targets, int N)
{
    int n = 0;
    for (int i = 0; i < N; i++) n += targets[i] != ZRT_IGNORE_INDEX;
    return n;
}

/* The fused cross-entropy (nn.h): each row of logits overwritten with its gradient; losses per row. */
static inline void ref_cross_entropy(float *logits, double *losses, const int32_t *targets, int N, int V, float scale,
                                     int double_math, int32_t *bad)
{
    int n = ref_count_targets(targets, N);
    for (int i = 0; i < N; i++) {
        float *z = logits + (int64_t)i * V;
        if (targets[i] == ZRT_IGNORE_INDEX) {
            memset(z, 0, (size_t)V * sizeof(float));
            losses[i] = 0;
            continue;
        }
        if (targets[i] < 0 || targets[i] >= V) {
            *bad = 1;
            losses[i] = 0;
            continue;
        }
        losses[i] = double_math ? ref_xent_row_mlp(z, targets[i], n, V, scale)
                                : ref_xent_row_gpt(z, targets[i], n, V, scale);
    }
}

static inline void ref_loss_mean(float *loss_sum, const double *losses, const int32_t *targets, int N, float divisor)
{
    double total = 0;
    for (int i = 0; i < N; i++) total += losses[i];
    int n = ref_count_targets(targets, N);
    if (n > 0) *loss_sum += (float)(total / n) / divisor;
}

#endif
