/* gpt.c: a decoder-only transformer in GPT-2's shape, forward and
 * backward in C (the layout and the per-op math follow llm.c's CPU code),
 * matmuls through OpenBLAS's cblas_sgemm, elementwise and row math through
 * vecmath.h's vector paths.
 *
 * Units and ops (zrt/model.h): unit 0 = token + position embeddings, units
 * 1..L = the blocks, unit L+1 = the final layernorm. Ops: 0 embed, 1..L the
 * blocks, L+1 final layernorm, L+2 the LM head -- which uses unit 0's token
 * embedding again (tied), so its gradient adds to the embedding's.
 * Block: x + attn(ln1(x)), then + mlp(ln2(x)); causal multi-head attention
 * scaled by 1/sqrt(head size); MLP d -> hidden -> d with GELU (tanh form);
 * layernorm eps 1e-5. Shapes: B batch, T seq_len, C d_model, NH heads,
 * H hidden, V vocab; activations (B, T, ...) row-major, fp32, device memory
 * of the cpu device; the runner (cpu_model.c) runs these functions on the
 * stream's thread, B being the batch of the op at hand.
 * Check: tests/test_model_grad.c (finite differences per op).
 */
#include "model_internal.h"

#include "vecmath.h"
#include "xent.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    zrt_cpu_model cpu;
    const zrt_vecmath *vm;       /* this CPU's vector path */
    int B, T, C, NH, H, V, L;    /* B: the running op's batch */
    zrt_gpt_dims dims;
    zrt_gpt_acts a;              /* model_shape.c's buffers */
} gpt;

/* ---- forward ops (llm.c) -------------------------------------------------------------- */

static void layernorm_forward(const gpt *g, float *out, float *mean, float *rstd, const float *inp, const float *w,
                              const float *b, int N, int C)
{
    for (int i = 0; i < N; i++)
        g->vm->layernorm_forward(out + (int64_t)i * C, &mean[i], &rstd[i], inp + (int64_t)i * C, w, b, C);
}

/* A causal row of att: the first n of pre, softmaxed, the rest of the T zero. */
static void causal_softmax_row(const gpt *g, float *att, const float *pre, int n, int T)
{
    float sum = g->vm->exp_sum(att, pre, g->vm->max(pre, n), n), inv = 1.0f / sum;
    for (int i = 0; i < n; i++) att[i] *= inv;
    memset(att + n, 0, (size_t)(T - n) * sizeof(float));
}

/* out (N, OC) = inp (N, C) @ w^T (OC, C) + b (NULL: none) + residual (N, OC; NULL: none),
 * the bias and residual written first and the product added by the sgemm:
 * one pass where a separate residual add would be two. */
static void matmul_forward(float *out, const float *inp, const float *w, const float *b, const float *residual, int N,
                           int C, int OC)
{
    bool init = b || residual;
    for (int64_t i = 0; init && i < N; i++) {
        float *row = out + i * OC;
        const float *res = residual ? residual + i * OC : NULL;
        if (!res)
            memcpy(row, b, (size_t)OC * sizeof(float));
        else if (b)
            for (int o = 0; o < OC; o++) row[o] = res[o] + b[o];
        else
            memcpy(row, res, (size_t)OC * sizeof(float));
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, w, C, init ? 1.0f : 0.0f, out, OC);
}

/* Causal self-attention per (batch, head) as two sgemms around a row softmax:
 * preatt = scale * Q K^T, att = causal softmax(preatt), out = att V. Q, K, V
 * are strided views into qkv (ld 3C). The full T x T product is computed and
 * the upper triangle zeroed in the softmax: at these sequence lengths one
 * square sgemm is cheaper than T ragged dot-product loops. */
static void attention_forward(gpt *g, float *out, float *preatt, float *att, const float *qkv)
{
    int B = g->B, T = g->T, C = g->C, NH = g->NH, hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *q = qkv + (int64_t)b * T * 3 * C + h * hs, *k = q + C, *v = q + 2 * C;
            float *pre = preatt + ((int64_t)b * NH + h) * T * T, *a = att + ((int64_t)b * NH + h) * T * T;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, scale, q, 3 * C, k, 3 * C, 0.0f, pre, T);
            for (int t = 0; t < T; t++) causal_softmax_row(g, a + (int64_t)t * T, pre + (int64_t)t * T, t + 1, T);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, a, T, v, 3 * C, 0.0f,
                        out + (int64_t)b * T * C + h * hs, C);
        }
}

static const float *param(const gpt *g, int unit, int index, const float *params)
{
    return params + g->cpu.base.params[unit][index].offset;
}

static void block_forward(gpt *g, int l, const float *p, const float *x)
{
    zrt_gpt_block_acts *a = &g->a.blocks[l];
    int N = g->B * g->T, C = g->C, H = g->H, u = l + 1;
    layernorm_forward(g, a->ln1, a->ln1_mean, a->ln1_rstd, x, param(g, u, ZRT_GPT_LN1W, p), param(g, u, ZRT_GPT_LN1B, p), N, C);
    matmul_forward(a->qkv, a->ln1, param(g, u, ZRT_GPT_QKVW, p), param(g, u, ZRT_GPT_QKVB, p), NULL, N, C, 3 * C);
    attention_forward(g, a->atty, a->preatt, a->att, a->qkv);
    matmul_forward(a->residual2, a->atty, param(g, u, ZRT_GPT_ATTPROJW, p), param(g, u, ZRT_GPT_ATTPROJB, p), x, N, C, C);
    layernorm_forward(g, a->ln2, a->ln2_mean, a->ln2_rstd, a->residual2, param(g, u, ZRT_GPT_LN2W, p), param(g, u, ZRT_GPT_LN2B, p), N, C);
    matmul_forward(a->fch, a->ln2, param(g, u, ZRT_GPT_FCW, p), NULL, NULL, N, C, H);
    g->vm->bias_gelu_forward(a->fch, a->fch_gelu, param(g, u, ZRT_GPT_FCB, p), N, H); /* fch += b; fch_gelu = gelu(fch) */
    matmul_forward(a->residual3, a->fch_gelu, param(g, u, ZRT_GPT_FCPROJW, p), param(g, u, ZRT_GPT_FCPROJB, p), a->residual2, N, H, C);
}

static const float *block_input(const gpt *g, int l) { return zrt_gpt_block_input(&g->a, l); }

/* Every token of the batch is in the vocabulary (checked where they are read). */
/* Every token in the vocabulary; targets may also be ZRT_IGNORE_INDEX (no target). */
static zrt_status check_tokens(const gpt *g, const int32_t *tokens, int n, const char *what, bool ignorable)
{
    for (int i = 0; i < n; i++)
        if ((tokens[i] < 0 || tokens[i] >= g->V) && !(ignorable && tokens[i] == ZRT_IGNORE_INDEX))
            return zrt_set_error(ZRT_ERR_INVALID, "gpt: %s %d outside the vocabulary of %d", what, tokens[i], g->V);
    return ZRT_OK;
}

static zrt_status forward(zrt_model *base, const zrt_cpu_op *o)
{
    gpt *g = (gpt *)base;
    g->B = o->batch;
    int N = g->B * g->T, C = g->C, L = g->L, op = o->op;
    const float *p = o->params;
    if (op == 0) { /* embed: wte[token] + wpe[t] */
        const int32_t *tokens = o->inputs;
        ZRT_CHECK(check_tokens(g, tokens, N, "token", false));
        const float *wte = param(g, 0, 0, p), *wpe = param(g, 0, 1, p);
        for (int i = 0; i < N; i++)
            for (int c = 0; c < C; c++)
                g->a.encoded[(int64_t)i * C + c] = wte[(int64_t)tokens[i] * C + c] + wpe[(int64_t)(i % g->T) * C + c];
    } else if (op <= L) {
        block_forward(g, op - 1, p, block_input(g, op - 1));
    } else if (op == L + 1) {
        layernorm_forward(g, g->a.lnf, g->a.lnf_mean, g->a.lnf_rstd, block_input(g, L), param(g, L + 1, 0, p),
                          param(g, L + 1, 1, p), N, C);
    } else { /* the LM head, tied to wte */
        matmul_forward(g->a.logits, g->a.lnf, param(g, 0, 0, p), NULL, NULL, N, C, g->V);
    }
    return ZRT_OK;
}

/* Mean cross-entropy over the B*T positions that are targets (kernels/xent.h:
 * ZRT_IGNORE_INDEX rows add nothing); dlogits = d(scale * loss). */
static zrt_status loss(zrt_model *base, const zrt_cpu_op *o, float scale, float *mean)
{
    gpt *g = (gpt *)base;
    g->B = o->batch;
    int N = g->B * g->T, V = g->V, n = 0;
    const int32_t *targets = o->labels;
    ZRT_CHECK(check_tokens(g, targets, N, "target", true));
    for (int i = 0; i < N; i++) n += targets[i] != ZRT_IGNORE_INDEX;
    double total = 0;
    for (int i = 0; i < N; i++) {
        const float *z = g->a.logits + (int64_t)i * V;
        float *pr = g->a.probs + (int64_t)i * V, *d = g->a.dlogits + (int64_t)i * V;
        if (targets[i] == ZRT_IGNORE_INDEX) {
            memset(d, 0, (size_t)V * sizeof *d);
            continue;
        }
        float inv = 1.0f / g->vm->exp_sum(pr, z, g->vm->max(z, V), V), dscale = scale / (float)n;
        for (int v = 0; v < V; v++) {
            pr[v] *= inv;
            d[v] = pr[v] * dscale;
        }
        total += -log((double)pr[targets[i]]);
        d[targets[i]] = (pr[targets[i]] - 1.0f) * dscale;
    }
    *mean = n ? (float)(total / n) : 0.0f;
    return ZRT_OK;
}

/* ---- backward ops (llm.c) ----------------------------------------------------------------- */

/* dinp += d(inp); dw, db added to. */
static void layernorm_backward(const gpt *g, float *dinp, float *dw, float *db, const float *dout, const float *inp,
                               const float *w, const float *mean, const float *rstd, int N, int C)
{
    for (int i = 0; i < N; i++) {
        int64_t row = (int64_t)i * C;
        g->vm->layernorm_backward(dinp + row, dw, db, dout + row, inp + row, w, mean[i], rstd[i], C);
    }
}

/* dinp (N, C) = dout @ w (overwritten); dw (OC, C) += dout^T @ inp; db += column sums. */
static void matmul_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w, int N,
                            int C, int OC)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, w, C, 0.0f, dinp, C);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dw, C);
    if (db)
        for (int i = 0; i < N; i++)
            for (int o = 0; o < OC; o++) db[o] += dout[(int64_t)i * OC + o];
}

/* The backward of attention_forward, per (batch, head), overwriting its slice
 * of dqkv: datt = dout V^T, dV = att^T dout, dpre = softmax backward
 * (att * (datt - rowsum(att * datt)); zero above the diagonal since att is),
 * dQ = scale * dpre K, dK = scale * dpre^T Q. */
static void attention_backward(gpt *g, float *dqkv, float *dpreatt, float *datt, const float *dout, const float *qkv,
                               const float *att)
{
    int B = g->B, T = g->T, C = g->C, NH = g->NH, hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            int64_t base = (int64_t)b * T * 3 * C + h * hs, square = ((int64_t)b * NH + h) * T * T;
            const float *q = qkv + base, *k = q + C, *v = q + 2 * C, *a = att + square;
            const float *d = dout + (int64_t)b * T * C + h * hs;
            float *dq = dqkv + base, *dk = dq + C, *dv = dq + 2 * C, *da = datt + square, *dpre = dpreatt + square;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, 1.0f, d, C, v, 3 * C, 0.0f, da, T);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, a, T, d, C, 0.0f, dv, 3 * C);
            for (int t = 0; t < T; t++) {
                const float *arow = a + (int64_t)t * T, *darow = da + (int64_t)t * T;
                float *drow = dpre + (int64_t)t * T, dot = g->vm->dot(arow, darow, t + 1);
                for (int t2 = 0; t2 <= t; t2++) drow[t2] = arow[t2] * (darow[t2] - dot);
                memset(drow + t + 1, 0, (size_t)(T - t - 1) * sizeof(float));
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, scale, dpre, T, k, 3 * C, 0.0f, dq, 3 * C);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, scale, dpre, T, q, 3 * C, 0.0f, dk, 3 * C);
        }
}

static float *grad(const gpt *g, int unit, int index, float *grads)
{
    return grads + g->cpu.base.params[unit][index].offset;
}

/* dres: d(block output) in; dres_in: d(block input) out (overwritten). */
static void block_backward(gpt *g, int l, const float *p, float *gr)
{
    zrt_gpt_block_acts *a = &g->a.blocks[l];
    int B = g->B, T = g->T, N = B * T, C = g->C, H = g->H, u = l + 1;
    size_t nc = (size_t)N * C * sizeof(float);
    const float *x = block_input(g, l);
    memcpy(g->a.dres2, g->a.dres, nc); /* residual3 = residual2 + fcproj */
    matmul_backward(g->a.dfch_gelu, grad(g, u, ZRT_GPT_FCPROJW, gr), grad(g, u, ZRT_GPT_FCPROJB, gr), g->a.dres, a->fch_gelu,
                    param(g, u, ZRT_GPT_FCPROJW, p), N, H, C);
    g->vm->gelu_backward(g->a.dfch, a->fch, g->a.dfch_gelu, (int64_t)N * H);
    matmul_backward(g->a.dln, grad(g, u, ZRT_GPT_FCW, gr), grad(g, u, ZRT_GPT_FCB, gr), g->a.dfch, a->ln2, param(g, u, ZRT_GPT_FCW, p), N, C, H);
    layernorm_backward(g, g->a.dres2, grad(g, u, ZRT_GPT_LN2W, gr), grad(g, u, ZRT_GPT_LN2B, gr), g->a.dln, a->residual2, param(g, u, ZRT_GPT_LN2W, p),
                       a->ln2_mean, a->ln2_rstd, N, C);
    memcpy(g->a.dres_in, g->a.dres2, nc); /* residual2 = x + attproj */
    matmul_backward(g->a.datty, grad(g, u, ZRT_GPT_ATTPROJW, gr), grad(g, u, ZRT_GPT_ATTPROJB, gr), g->a.dres2, a->atty,
                    param(g, u, ZRT_GPT_ATTPROJW, p), N, C, C);
    attention_backward(g, g->a.dqkv, g->a.dpreatt, g->a.datt, g->a.datty, a->qkv, a->att);
    matmul_backward(g->a.dln, grad(g, u, ZRT_GPT_QKVW, gr), grad(g, u, ZRT_GPT_QKVB, gr), g->a.dqkv, a->ln1, param(g, u, ZRT_GPT_QKVW, p), N, C,
                    3 * C);
    layernorm_backward(g, g->a.dres_in, grad(g, u, ZRT_GPT_LN1W, gr), grad(g, u, ZRT_GPT_LN1B, gr), g->a.dln, x, param(g, u, ZRT_GPT_LN1W, p),
                       a->ln1_mean, a->ln1_rstd, N, C);
}

static void swap_residual_grads(gpt *g) { zrt_gpt_swap_residual_grads(&g->a); }

static zrt_status backward(zrt_model *base, const zrt_cpu_op *o)
{
    gpt *g = (gpt *)base;
    g->B = o->batch;
    int N = g->B * g->T, C = g->C, L = g->L, op = o->op;
    const float *p = o->params;
    float *gr = o->grads;
    size_t nc = (size_t)N * C * sizeof(float);
    if (op == L + 2) { /* head: d(lnf) into dres, d(wte) += dlogits^T lnf */
        matmul_backward(g->a.dres, grad(g, 0, 0, gr), NULL, g->a.dlogits, g->a.lnf, param(g, 0, 0, p), N, C, g->V);
    } else if (op == L + 1) {
        memset(g->a.dres_in, 0, nc);
        layernorm_backward(g, g->a.dres_in, grad(g, L + 1, 0, gr), grad(g, L + 1, 1, gr), g->a.dres, block_input(g, L),
                           param(g, L + 1, 0, p), g->a.lnf_mean, g->a.lnf_rstd, N, C);
        swap_residual_grads(g);
    } else if (op >= 1) {
        block_backward(g, op - 1, p, gr);
        swap_residual_grads(g);
    } else { /* embed */
        float *dwte = grad(g, 0, 0, gr), *dwpe = grad(g, 0, 1, gr);
        const int32_t *tokens = o->inputs;
        for (int i = 0; i < N; i++)
            for (int c = 0; c < C; c++) {
                float d = g->a.dres[(int64_t)i * C + c];
                dwte[(int64_t)tokens[i] * C + c] += d;
                dwpe[(int64_t)(i % g->T) * C + c] += d;
            }
    }
    return ZRT_OK;
}

/* ---- setup --------------------------------------------------------------------------------- */

static void free_buffers(zrt_model *base)
{
    gpt *g = (gpt *)base;
    zrt_gpt_acts_free(&g->a, &g->dims, base->device);
}

static const zrt_cpu_model_ops gpt_ops = {forward, loss, backward, free_buffers};

zrt_status zrt_model_gpt_create(const zrt_model_config *cfg, zrt_device *device, int micro_batch, zrt_model **out)
{
    zrt_gpt_dims dims;
    ZRT_CHECK(zrt_gpt_dims_of(cfg, micro_batch, &dims));
    gpt *g = calloc(1, sizeof *g);
    if (!g) return zrt_set_error(ZRT_ERR_NOMEM, "gpt: out of memory");
    g->dims = dims;
    g->T = dims.T, g->C = dims.C, g->NH = dims.NH, g->H = dims.H, g->V = dims.V, g->L = dims.L;
    g->vm = zrt_vecmath_best();
    zrt_cpu_model_init(&g->cpu, ZRT_MODEL_GPT, device, micro_batch, &gpt_ops);
    zrt_model *m = &g->cpu.base;
    zrt_status status = zrt_gpt_declare(m, &dims);
    if (status == ZRT_OK) status = zrt_gpt_acts_alloc(&g->a, &dims, micro_batch, device);
    if (status != ZRT_OK) {
        m->destroy(m);
        return status;
    }
    *out = m;
    return ZRT_OK;
}
