/* model_refs.h: the CPU reference of every launcher in kernels/
 * model_kernels.h -- the same arguments on host memory, the math of the CPU
 * models (gpt.c, mlp.c: vecmath's scalar path, left-to-right sums). Two
 * uses: test_cuda_kernels holds the CUDA kernels to them on a GPU, and
 * test_model_emulated runs the CUDA models on them in CI (where no GPU is).
 */
#ifndef ZRT_TEST_MODEL_REFS_H
#define ZRT_TEST_MODEL_REFS_H

#include "vecmath.h"
#include "xent.h"
#include "zrt/internal/offload.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline const zrt_vecmath *ref_vm(void) { return zrt_vecmath_path(ZRT_SIMD_SCALAR); }

static inline void ref_embed_forward(float *out, const int32_t *tokens, const float *wte, const float *wpe, int N, int T,
                                     int C, int V, int32_t *bad)
{
    for (int i = 0; i < N; i++) {
        bool valid = tokens[i] >= 0 && tokens[i] < V;
        if (!valid) *bad = 1;
        for (int c = 0; c < C; c++)
            out[(int64_t)i * C + c] = valid ? wte[(int64_t)tokens[i] * C + c] + wpe[(int64_t)(i % T) * C + c] : 0.0f;
    }
}

static inline void ref_embed_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tokens, int N, int T,
                                      int C, int V)
{
    for (int i = 0; i < N; i++)
        for (int c = 0; c < C; c++) {
            float d = dout[(int64_t)i * C + c];
            if (tokens[i] >= 0 && tokens[i] < V) dwte[(int64_t)tokens[i] * C + c] += d;
            dwpe[(int64_t)(i % T) * C + c] += d;
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

static inline void ref_causal_softmax_forward(float *att, const float *pre, int squares, int T)
{
    const zrt_vecmath *vm = ref_vm();
    for (int64_t r = 0; r < (int64_t)squares * T; r++) {
        int n = (int)(r % T) + 1;
        float *a = att + r * T;
        float inv = 1.0f / vm->exp_sum(a, pre + r * T, vm->max(pre + r * T, n), n);
        for (int i = 0; i < n; i++) a[i] *= inv;
        memset(a + n, 0, (size_t)(T - n) * sizeof(float));
    }
}

static inline void ref_causal_softmax_backward(float *dpre, const float *att, const float *datt, int squares, int T)
{
    for (int64_t r = 0; r < (int64_t)squares * T; r++) {
        int n = (int)(r % T) + 1;
        const float *a = att + r * T, *da = datt + r * T;
        float *d = dpre + r * T, dot = ref_vm()->dot(a, da, n);
        for (int i = 0; i < T; i++) d[i] = i < n ? a[i] * (da[i] - dot) : 0.0f;
    }
}

/* One row of GPT's cross-entropy (gpt.c's loss); N: the rows that are targets. */
static inline double ref_xent_row_gpt(float *d, float *p, const float *z, int target, int N, int V, float scale)
{
    const zrt_vecmath *vm = ref_vm();
    float inv = 1.0f / vm->exp_sum(p, z, vm->max(z, V), V), dscale = scale / (float)N;
    for (int v = 0; v < V; v++) {
        p[v] *= inv;
        d[v] = p[v] * dscale;
    }
    d[target] = (p[target] - 1.0f) * dscale;
    return -log((double)p[target]);
}

/* One row of the MLP's (mlp.c's loss). */
static inline double ref_xent_row_mlp(float *d, const float *z, int target, int N, int V, float scale)
{
    float max = z[0];
    for (int v = 1; v < V; v++) max = fmaxf(max, z[v]);
    double sum = 0;
    for (int v = 0; v < V; v++) sum += exp((double)(z[v] - max));
    double log_sum = log(sum) + max;
    for (int v = 0; v < V; v++) d[v] = (float)(exp(z[v] - log_sum) * scale / N);
    d[target] -= scale / (float)N;
    return log_sum - z[target];
}

/* The targets that are not ZRT_IGNORE_INDEX (kernels/xent.h). */
static inline int ref_count_targets(const int32_t *targets, int N)
{
    int n = 0;
    for (int i = 0; i < N; i++) n += targets[i] != ZRT_IGNORE_INDEX;
    return n;
}

static inline void ref_cross_entropy(float *dlogits, float *probs, double *losses, const float *logits,
                                     const int32_t *targets, int N, int V, float scale, int double_math, int32_t *bad)
{
    int n = ref_count_targets(targets, N);
    for (int i = 0; i < N; i++) {
        int64_t row = (int64_t)i * V;
        if (targets[i] == ZRT_IGNORE_INDEX) {
            memset(dlogits + row, 0, (size_t)V * sizeof(float));
            losses[i] = 0;
            continue;
        }
        if (targets[i] < 0 || targets[i] >= V) {
            *bad = 1;
            losses[i] = 0;
            continue;
        }
        losses[i] = double_math ? ref_xent_row_mlp(dlogits + row, logits + row, targets[i], n, V, scale)
                                : ref_xent_row_gpt(dlogits + row, probs + row, logits + row, targets[i], n, V, scale);
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
