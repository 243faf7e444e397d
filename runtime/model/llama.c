/* llama.c: the Llama family (Llama 2/3, Mistral, Qwen2) as Hugging Face's
 * transformers computes it, written once over the device ops of nn.h:
 * RMSNorm, rotary position embedding, grouped-query causal attention, a
 * SwiGLU MLP, optional q/k/v biases (Qwen2), a tied or untied LM head.
 *
 * Units and names: model_internal.h (zrt_llama_dims); declared below with
 * Hugging Face's names, shapes and init. Ops: 0 the embedding, 1..L the
 * blocks, L + 1 the final norm, L + 2 the head (on unit L + 2, or unit 0 when
 * tied). The RoPE tables follow transformers' fp32 arithmetic step by step
 * (each operation rounded to float as torch rounds it), so that a model
 * loaded from Hugging Face sees the angles LlamaRotaryEmbedding sees; only
 * cosf/sinf may differ from torch's by an ulp.
 *
 * One block, per row of the batch (N = B T rows):
 *   h   = x + o_proj(attention(rope(q), rope(k), v))   with q|k|v = qkv(rmsnorm(x))
 *   out = h + down_proj(silu(gate) * up)                with gate|up = gu(rmsnorm(h))
 * q, k and v are one matmul (their weights are adjacent in the unit), so are
 * gate and up. The KV cache of decode() is the qkv buffer itself: row p
 * holds position p's q, k and v, and a decode step appends rows.
 *
 * Activation checkpointing (cfg->activation_checkpointing): every block's
 * input is kept (res[l]) but the blocks share one set of the rest; a block's
 * backward first runs its forward again. The same ops in the same order: the
 * gradients are the same bits.
 */
#include "model_internal.h"
#include "nn_layers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* One block's activations (nn.h's act dtype) and statistics (fp32). */
typedef struct {
    zrt_act *ln1, *qkv, *atty, *mid, *ln2, *gu, *act;
    float *ln1_rstd, *ln2_rstd, *lse; /* lse (B, NH, T) */
} llama_block;

typedef struct {
    zrt_nn_model nn; /* first: the runner's */
    zrt_llama_dims d;
    int QKV;                         /* (NH + 2 NKV) hs: a qkv row */
    bool recompute;                  /* activation checkpointing */
    float *cos, *sin;                /* RoPE tables, T x hs/2 */
    zrt_act **res;                   /* L + 1: the input of block l, res[L] the last block's output */
    llama_block *blocks;             /* L (one shared set when recomputing) */
    zrt_act *lnf;
    float *lnf_rstd;
    zrt_act *logits; /* (B, T, V): the head's output; after the loss, d(scale * loss) in its place */
    zrt_act *dres, *dres_in, *dres2, *dln, *dqkv, *datty, *dgu, *dact;
    zrt_nn_buffers buffers;
} llama;

/* The rows one call computes: B sequences of T new positions after pos0
 * (training: pos0 0, S = T; a decode step: B 1). */
typedef struct {
    int B, T, S, pos0;
} rows;

static int param_index(const llama *g, int index)
{
    return g->d.qkv_bias || index < ZRT_LLAMA_QB ? index : index - 3;
}

static const float *param(const llama *g, int unit, int index, const float *p)
{
    return p + g->nn.base.params[unit][param_index(g, index)].offset;
}

static float *grad(const llama *g, int unit, int index, float *gr)
{
    return gr + g->nn.base.params[unit][param_index(g, index)].offset;
}

static int head_unit(const llama *g) { return g->d.tied ? 0 : g->d.L + 2; }

static zrt_attn_shape attn_shape(const llama *g, rows r)
{
    int hs = g->d.hs;
    return (zrt_attn_shape){.B = r.B, .T = r.T, .S = r.S, .NH = g->d.NH, .NKV = g->d.NKV, .hs = hs,
                            .ld_q = g->QKV, .ld_kv = g->QKV, .ld_out = g->d.NH * hs};
}

/* ---- forward ------------------------------------------------------------------------------------ */

/* q and k of rows r (qkv rows from pos0) turned to their positions. */
static zrt_status rope(llama *g, zrt_nn *nn, zrt_act *qkv_rows, rows r, bool inverse)
{
    int N = r.B * r.T, hs = g->d.hs;
    zrt_act *k_rows = zrt_nn_act_at(nn, qkv_rows, g->d.NH * hs);
    ZRT_CHECK(nn->ops->rope(nn, qkv_rows, N, r.T, r.pos0, g->d.NH, hs, g->QKV, g->cos, g->sin, inverse));
    return nn->ops->rope(nn, k_rows, N, r.T, r.pos0, g->d.NKV, hs, g->QKV, g->cos, g->sin, inverse);
}

static zrt_status block_forward(llama *g, zrt_nn *nn, int l, const float *p, rows r)
{
    llama_block *a = &g->blocks[l];
    const zrt_act *x = g->res[l];
    int N = r.B * r.T, C = g->d.C, H = g->d.H, u = l + 1, QKV = g->QKV, A = g->d.NH * g->d.hs;
    zrt_act *qkv = zrt_nn_act_at(nn, a->qkv, (int64_t)r.pos0 * QKV); /* decode: after the cached positions */
    const float *q_bias = g->d.qkv_bias ? param(g, u, ZRT_LLAMA_QB, p) : NULL;
    ZRT_CHECK(nn->ops->rmsnorm_forward(nn, a->ln1, a->ln1_rstd, x, param(g, u, ZRT_LLAMA_LN1W, p), N, C, g->d.eps));
    ZRT_CHECK(zrt_nn_linear_forward(nn, qkv, a->ln1, param(g, u, ZRT_LLAMA_QW, p), q_bias, NULL, N, C, QKV));
    ZRT_CHECK(rope(g, nn, qkv, r, false));
    zrt_attn_shape s = attn_shape(g, r);
    ZRT_CHECK(nn->ops->attention_forward(nn, &s, a->atty, a->lse, qkv, zrt_nn_act_at(nn, a->qkv, A),
                                         zrt_nn_act_at(nn, a->qkv, A + g->d.NKV * g->d.hs)));
    zrt_norm ln2 = {ZRT_NORM_RMS, param(g, u, ZRT_LLAMA_LN2W, p), NULL, NULL, a->ln2_rstd, g->d.eps};
    ZRT_CHECK(zrt_nn_linear_residual_norm(nn, a->mid, a->ln2, &ln2, a->atty, param(g, u, ZRT_LLAMA_OW, p), NULL, x, N,
                                          A, C)); /* mid = x + o_proj(atty); its RMSNorm */
    ZRT_CHECK(zrt_nn_linear_forward(nn, a->gu, a->ln2, param(g, u, ZRT_LLAMA_GATEW, p), NULL, NULL, N, C, 2 * H));
    ZRT_CHECK(nn->ops->swiglu_forward(nn, a->act, a->gu, N, H));
    return zrt_nn_linear_forward(nn, g->res[l + 1], a->act, param(g, u, ZRT_LLAMA_DOWNW, p), NULL, a->mid, N, H, C);
}

static zrt_status embed(llama *g, zrt_nn *nn, const int32_t *tokens, const float *p, rows r)
{
    return nn->ops->embed_forward(nn, g->res[0], tokens, param(g, 0, 0, p), NULL, r.B * r.T, r.T, g->d.C, g->d.V);
}

static zrt_status final_norm(llama *g, zrt_nn *nn, const float *p, int N)
{
    return nn->ops->rmsnorm_forward(nn, g->lnf, g->lnf_rstd, g->res[g->d.L], param(g, g->d.L + 1, 0, p), N, g->d.C,
                                    g->d.eps);
}

static rows training_rows(const llama *g, int batch) { return (rows){batch, g->d.T, g->d.T, 0}; }

static zrt_status forward(zrt_model *base, zrt_nn *nn, const zrt_model_op *o)
{
    llama *g = (llama *)base;
    rows r = training_rows(g, o->batch);
    int N = r.B * r.T, L = g->d.L, op = o->op;
    if (op == 0) return embed(g, nn, o->inputs, o->params, r);
    if (op <= L) return block_forward(g, nn, op - 1, o->params, r);
    if (op == L + 1) return final_norm(g, nn, o->params, N);
    return zrt_nn_linear_forward(nn, g->logits, g->lnf, o->params + base->params[head_unit(g)][0].offset, NULL, NULL,
                                 N, g->d.C, g->d.V);
}

static zrt_status loss(zrt_model *base, zrt_nn *nn, const zrt_model_op *o, float scale, float divisor, float *loss_sum)
{
    llama *g = (llama *)base;
    int N = o->batch * g->d.T;
    return nn->ops->cross_entropy(nn, g->logits, o->labels, N, g->d.V, scale, divisor, loss_sum, false);
}

/* ---- backward ----------------------------------------------------------------------------------- */

static void swap_residual_grads(llama *g)
{
    zrt_act *t = g->dres;
    g->dres = g->dres_in, g->dres_in = t;
}

/* The attention half's backward: d(mid) in dres2, d(x) into dres_in. */
static zrt_status attention_backward(llama *g, zrt_nn *nn, int l, const float *p, float *gr, rows r)
{
    llama_block *a = &g->blocks[l];
    int N = r.B * r.T, C = g->d.C, u = l + 1, QKV = g->QKV, A = g->d.NH * g->d.hs, KV = g->d.NKV * g->d.hs;
    size_t nc = zrt_nn_act_bytes(nn, (int64_t)N * C);
    ZRT_CHECK(nn->ops->copy(nn, g->dres_in, g->dres2, nc)); /* mid = x + o_proj(...) */
    ZRT_CHECK(zrt_nn_linear_backward(nn, g->datty, grad(g, u, ZRT_LLAMA_OW, gr), NULL, g->dres2, a->atty,
                                     param(g, u, ZRT_LLAMA_OW, p), N, A, C));
    zrt_attn_shape s = attn_shape(g, r);
    ZRT_CHECK(nn->ops->attention_backward(nn, &s, g->dqkv, zrt_nn_act_at(nn, g->dqkv, A),
                                          zrt_nn_act_at(nn, g->dqkv, A + KV), g->datty, a->atty, a->lse, a->qkv,
                                          zrt_nn_act_at(nn, a->qkv, A), zrt_nn_act_at(nn, a->qkv, A + KV)));
    ZRT_CHECK(rope(g, nn, g->dqkv, r, true));
    float *dbias = g->d.qkv_bias ? grad(g, u, ZRT_LLAMA_QB, gr) : NULL;
    ZRT_CHECK(zrt_nn_linear_backward(nn, g->dln, grad(g, u, ZRT_LLAMA_QW, gr), dbias, g->dqkv, a->ln1,
                                     param(g, u, ZRT_LLAMA_QW, p), N, C, QKV));
    return nn->ops->rmsnorm_backward(nn, g->dres_in, grad(g, u, ZRT_LLAMA_LN1W, gr), g->dln, g->res[l],
                                     param(g, u, ZRT_LLAMA_LN1W, p), a->ln1_rstd, N, C);
}

/* dres: d(block output) in; dres_in: d(block input) out (overwritten). */
static zrt_status block_backward(llama *g, zrt_nn *nn, int l, const float *p, float *gr, rows r)
{
    llama_block *a = &g->blocks[l];
    int N = r.B * r.T, C = g->d.C, H = g->d.H, u = l + 1;
    ZRT_CHECK(nn->ops->copy(nn, g->dres2, g->dres, zrt_nn_act_bytes(nn, (int64_t)N * C))); /* out = mid + down(...) */
    ZRT_CHECK(zrt_nn_linear_backward(nn, g->dact, grad(g, u, ZRT_LLAMA_DOWNW, gr), NULL, g->dres, a->act,
                                     param(g, u, ZRT_LLAMA_DOWNW, p), N, H, C));
    ZRT_CHECK(nn->ops->swiglu_backward(nn, g->dgu, g->dact, a->gu, N, H));
    ZRT_CHECK(zrt_nn_linear_backward(nn, g->dln, grad(g, u, ZRT_LLAMA_GATEW, gr), NULL, g->dgu, a->ln2,
                                     param(g, u, ZRT_LLAMA_GATEW, p), N, C, 2 * H));
    ZRT_CHECK(nn->ops->rmsnorm_backward(nn, g->dres2, grad(g, u, ZRT_LLAMA_LN2W, gr), g->dln, a->mid,
                                        param(g, u, ZRT_LLAMA_LN2W, p), a->ln2_rstd, N, C));
    return attention_backward(g, nn, l, p, gr, r);
}

static zrt_status backward(zrt_model *base, zrt_nn *nn, const zrt_model_op *o)
{
    llama *g = (llama *)base;
    rows r = training_rows(g, o->batch);
    int N = r.B * r.T, C = g->d.C, L = g->d.L, op = o->op;
    const float *p = o->params;
    float *gr = o->grads;
    if (op == L + 2) { /* head: d(lnf) into dres, d(W) += d(logits)^T lnf; the loss left d(logits) in logits */
        int64_t w = base->params[head_unit(g)][0].offset;
        return zrt_nn_linear_backward(nn, g->dres, gr + w, NULL, g->logits, g->lnf, p + w, N, C, g->d.V);
    }
    if (op == L + 1) {
        ZRT_CHECK(nn->ops->zero(nn, g->dres_in, zrt_nn_act_bytes(nn, (int64_t)N * C)));
        ZRT_CHECK(nn->ops->rmsnorm_backward(nn, g->dres_in, grad(g, L + 1, 0, gr), g->dres, g->res[L],
                                            param(g, L + 1, 0, p), g->lnf_rstd, N, C));
    } else if (op >= 1) {
        if (g->recompute) ZRT_CHECK(block_forward(g, nn, op - 1, p, r));
        ZRT_CHECK(block_backward(g, nn, op - 1, p, gr, r));
    } else {
        return nn->ops->embed_backward(nn, grad(g, 0, 0, gr), NULL, g->dres, o->inputs, N, g->d.T, C, g->d.V);
    }
    swap_residual_grads(g);
    return ZRT_OK;
}

/* ---- decode: one sequence through every op, the qkv rows as the KV cache ------------------------ */

static zrt_status decode(zrt_model *base, zrt_nn *nn, const float *const *units, const int32_t *tokens, int n,
                         int pos0, float *logits)
{
    llama *g = (llama *)base;
    if (g->recompute) return zrt_nn_decode_needs_cache("llama");
    rows r = {1, n, pos0 + n, pos0};
    int L = g->d.L, C = g->d.C;
    ZRT_CHECK(embed(g, nn, tokens, units[0], r));
    for (int l = 0; l < L; l++) ZRT_CHECK(block_forward(g, nn, l, units[l + 1], r));
    ZRT_CHECK(final_norm(g, nn, units[L + 1], n));
    const float *w = units[head_unit(g)] + base->params[head_unit(g)][0].offset;
    return zrt_nn_linear_forward_f32(nn, logits, zrt_nn_act_at(nn, g->lnf, (int64_t)(n - 1) * C), w, 1, C, g->d.V);
}

/* ---- declaration: dims, units, parameters, RoPE tables ---------------------------------------- */

#define REQUIRE(cond, ...) \
    if (!(cond)) return zrt_set_error(ZRT_ERR_INVALID, "llama: " __VA_ARGS__)

static zrt_status check_rope(const zrt_model_config *c)
{
    REQUIRE(c->rope_theta > 0, "rope_theta %g: must be > 0", c->rope_theta);
    if (c->rope_factor == 0) return ZRT_OK; /* no rope_scaling */
    REQUIRE(c->rope_factor >= 1, "rope_scaling factor %g: must be >= 1 (0: none)", c->rope_factor);
    REQUIRE(c->rope_low_freq_factor > 0 && c->rope_high_freq_factor > c->rope_low_freq_factor,
            "rope_scaling low_freq_factor %g, high_freq_factor %g: need 0 < low < high", c->rope_low_freq_factor,
            c->rope_high_freq_factor);
    REQUIRE(c->rope_original_max_positions > 0, "rope_scaling original_max_position_embeddings %lld: must be > 0",
            (long long)c->rope_original_max_positions);
    return ZRT_OK;
}

zrt_status zrt_llama_dims_of(const zrt_model_config *c, int micro_batch, zrt_llama_dims *d)
{
    int64_t kv = c->kv_heads ? c->kv_heads : c->heads;
    REQUIRE(c->layers >= 1 && c->layers + 3 <= ZRT_MAX_UNITS, "layers %lld outside 1..%d", (long long)c->layers,
            ZRT_MAX_UNITS - 3);
    REQUIRE(c->heads >= 1 && c->d_model >= 1 && c->d_model % c->heads == 0,
            "d_model %lld is not a multiple of heads %lld", (long long)c->d_model, (long long)c->heads);
    REQUIRE((c->d_model / c->heads) % 2 == 0, "head size %lld (d_model / heads) is odd: RoPE rotates pairs",
            (long long)(c->d_model / c->heads));
    REQUIRE(kv >= 1 && kv <= c->heads && c->heads % kv == 0, "kv_heads %lld does not divide heads %lld",
            (long long)kv, (long long)c->heads);
    REQUIRE(c->hidden >= 1, "hidden (the MLP width, intermediate_size) %lld: required, >= 1", (long long)c->hidden);
    REQUIRE(c->vocab >= 1 && c->seq_len >= 1, "vocab %lld, seq_len %lld: must be >= 1", (long long)c->vocab,
            (long long)c->seq_len);
    REQUIRE(c->norm_eps > 0, "norm_eps %g: must be > 0", c->norm_eps);
    REQUIRE(micro_batch >= 1, "micro batch %d: must be >= 1", micro_batch);
    ZRT_CHECK(check_rope(c));
    *d = (zrt_llama_dims){.T = (int)c->seq_len, .C = (int)c->d_model, .NH = (int)c->heads, .NKV = (int)kv,
                          .hs = (int)(c->d_model / c->heads), .H = (int)c->hidden, .V = (int)c->vocab,
                          .L = (int)c->layers, .tied = c->tie_embeddings, .qkv_bias = c->attention_bias,
                          .eps = (float)c->norm_eps, .rope_theta = c->rope_theta, .rope_factor = c->rope_factor,
                          .rope_low_freq_factor = c->rope_low_freq_factor,
                          .rope_high_freq_factor = c->rope_high_freq_factor,
                          .rope_original_max_positions = c->rope_original_max_positions};
    return ZRT_OK;
}

/* A block's parameters in the order of ZRT_LLAMA_*: rows and cols in units
 * of the dims (C d_model, Q query rows NH * hs, K key/value rows NKV * hs,
 * H MLP width; cols 0: a vector). */
typedef enum { DIM_0, DIM_C, DIM_Q, DIM_K, DIM_H } dim_code;
static const struct {
    const char *suffix;
    dim_code rows, cols;
    zrt_init_kind init;
    bool bias; /* present only with qkv_bias */
} BLOCK[ZRT_LLAMA_BLOCK_PARAMS] = {
    [ZRT_LLAMA_LN1W] = {"input_layernorm.weight", DIM_C, DIM_0, ZRT_INIT_ONES, false},
    [ZRT_LLAMA_QW] = {"self_attn.q_proj.weight", DIM_Q, DIM_C, ZRT_INIT_NORMAL, false},
    [ZRT_LLAMA_KW] = {"self_attn.k_proj.weight", DIM_K, DIM_C, ZRT_INIT_NORMAL, false},
    [ZRT_LLAMA_VW] = {"self_attn.v_proj.weight", DIM_K, DIM_C, ZRT_INIT_NORMAL, false},
    [ZRT_LLAMA_QB] = {"self_attn.q_proj.bias", DIM_Q, DIM_0, ZRT_INIT_ZEROS, true},
    [ZRT_LLAMA_KB] = {"self_attn.k_proj.bias", DIM_K, DIM_0, ZRT_INIT_ZEROS, true},
    [ZRT_LLAMA_VB] = {"self_attn.v_proj.bias", DIM_K, DIM_0, ZRT_INIT_ZEROS, true},
    [ZRT_LLAMA_OW] = {"self_attn.o_proj.weight", DIM_C, DIM_Q, ZRT_INIT_NORMAL, false},
    [ZRT_LLAMA_LN2W] = {"post_attention_layernorm.weight", DIM_C, DIM_0, ZRT_INIT_ONES, false},
    [ZRT_LLAMA_GATEW] = {"mlp.gate_proj.weight", DIM_H, DIM_C, ZRT_INIT_NORMAL, false},
    [ZRT_LLAMA_UPW] = {"mlp.up_proj.weight", DIM_H, DIM_C, ZRT_INIT_NORMAL, false},
    [ZRT_LLAMA_DOWNW] = {"mlp.down_proj.weight", DIM_C, DIM_H, ZRT_INIT_NORMAL, false},
};

/* transformers' initializer_range: every Linear and Embedding weight. */
#define INIT_STD 0.02f

static int64_t dim_value(const zrt_llama_dims *d, dim_code code)
{
    const int64_t values[] = {[DIM_0] = 0, [DIM_C] = d->C, [DIM_Q] = (int64_t)d->NH * d->hs,
                              [DIM_K] = (int64_t)d->NKV * d->hs, [DIM_H] = d->H};
    return values[code];
}

static void declare_block(zrt_model *m, const zrt_llama_dims *d, int l)
{
    char name[48];
    for (int i = 0; i < ZRT_LLAMA_BLOCK_PARAMS; i++) {
        if (BLOCK[i].bias && !d->qkv_bias) continue;
        snprintf(name, sizeof name, "layers.%d.%s", l, BLOCK[i].suffix);
        float std = BLOCK[i].init == ZRT_INIT_NORMAL ? INIT_STD : 0;
        zrt_model_add_param(m, l + 1, name, dim_value(d, BLOCK[i].rows), dim_value(d, BLOCK[i].cols), BLOCK[i].init,
                            std);
    }
}

zrt_status zrt_llama_declare(zrt_model *m, const zrt_llama_dims *d)
{
    int L = d->L, head_unit = d->tied ? 0 : L + 2;
    ZRT_CHECK(zrt_model_tables_alloc(m, d->tied ? L + 2 : L + 3, ZRT_LLAMA_BLOCK_PARAMS, L + 3));
    zrt_model_add_param(m, 0, "embed_tokens.weight", d->V, d->C, ZRT_INIT_NORMAL, INIT_STD);
    for (int l = 0; l < L; l++) declare_block(m, d, l);
    zrt_model_add_param(m, L + 1, "norm.weight", d->C, 0, ZRT_INIT_ONES, 0);
    if (!d->tied) zrt_model_add_param(m, L + 2, "lm_head.weight", d->V, d->C, ZRT_INIT_NORMAL, INIT_STD);
    for (int op = 0; op <= L + 1; op++) m->op_unit[op] = op;
    m->op_unit[L + 2] = head_unit;
    m->tokens_per_sample = d->T;
    /* Per sample: q and o (C x C each), k and v (C x NKV hs each), gate, up
     * and down (C x H each) per block; the head (C x V). Attention's own
     * products are left out, as GPT's count leaves them. */
    double C = d->C, Q = (double)d->NH * d->hs, K = (double)d->NKV * d->hs, H = d->H, T = d->T;
    m->matmul_flops_per_sample = 2.0 * T * (L * (2 * C * Q + 2 * C * K + 3 * C * H) + C * d->V);
    m->input_bytes_per_sample = (size_t)d->T * sizeof(int32_t);
    m->labels_per_sample = d->T;
    return ZRT_OK;
}

/* _compute_llama3_parameters on one frequency: wavelengths shorter than
 * original / high_freq_factor kept, longer than original / low_freq_factor
 * divided by factor, those between interpolated. Every step in fp32 as
 * torch does it (a Python scalar is rounded to float first; x / tensor is
 * reciprocal(tensor) * x). */
#define TWO_PI 6.283185307179586 /* Python's 2 * math.pi */
static float llama3_inv_freq(const zrt_llama_dims *d, float inv_freq)
{
    float factor = (float)d->rope_factor, low = (float)d->rope_low_freq_factor;
    double original = (double)d->rope_original_max_positions;
    float low_freq_wavelen = (float)(original / d->rope_low_freq_factor);
    float high_freq_wavelen = (float)(original / d->rope_high_freq_factor);
    float wavelen = (1.0f / inv_freq) * (float)TWO_PI;
    float scaled = wavelen > low_freq_wavelen ? inv_freq / factor : inv_freq;
    if (wavelen < high_freq_wavelen || wavelen > low_freq_wavelen) return scaled;
    float smooth = ((1.0f / wavelen) * (float)original - low) /
                   (float)(d->rope_high_freq_factor - d->rope_low_freq_factor);
    return (1.0f - smooth) * scaled / factor + smooth * scaled;
}

void zrt_llama_rope_tables(const zrt_llama_dims *d, float *cos_table, float *sin_table)
{
    int half = d->hs / 2;
    for (int i = 0; i < half; i++) {
        /* 1.0 / (base ** (arange(0, dim, 2).float() / dim)) */
        float exponent = (float)(2 * i) / (float)d->hs;
        float inv_freq = 1.0f / powf((float)d->rope_theta, exponent);
        if (d->rope_factor != 0) inv_freq = llama3_inv_freq(d, inv_freq);
        for (int t = 0; t < d->T; t++) {
            float angle = (float)t * inv_freq; /* torch.outer in fp32 */
            cos_table[(size_t)t * half + i] = cosf(angle);
            sin_table[(size_t)t * half + i] = sinf(angle);
        }
    }
}

/* ---- setup -------------------------------------------------------------------------------------- */

static void list_block(llama *g, llama_block *a, int64_t BT)
{
    zrt_nn_buffers *b = &g->buffers;
    int64_t C = g->d.C, H = g->d.H;
    zrt_nn_buffers_act(b, &a->ln1, BT * C, "llama ln1"), zrt_nn_buffers_stat(b, &a->ln1_rstd, BT, "llama ln1 rstd");
    zrt_nn_buffers_act(b, &a->qkv, BT * g->QKV, "llama qkv");
    zrt_nn_buffers_stat(b, &a->lse, BT * g->d.NH, "llama lse");
    zrt_nn_buffers_act(b, &a->atty, BT * g->d.NH * g->d.hs, "llama atty");
    zrt_nn_buffers_act(b, &a->mid, BT * C, "llama mid"), zrt_nn_buffers_act(b, &a->ln2, BT * C, "llama ln2");
    zrt_nn_buffers_stat(b, &a->ln2_rstd, BT, "llama ln2 rstd"), zrt_nn_buffers_act(b, &a->gu, BT * 2 * H, "llama gu");
    zrt_nn_buffers_act(b, &a->act, BT * H, "llama act");
}

/* The RoPE tables, computed on the host as transformers does and copied over. */
static zrt_status upload_rope(llama *g)
{
    size_t bytes = (size_t)g->d.T * (size_t)(g->d.hs / 2) * sizeof(float);
    float *cos = malloc(bytes), *sin = malloc(bytes);
    zrt_status status = cos && sin ? ZRT_OK : zrt_set_error(ZRT_ERR_NOMEM, "llama: out of memory for RoPE tables");
    if (status == ZRT_OK) zrt_llama_rope_tables(&g->d, cos, sin);
    if (status == ZRT_OK) status = zrt_device_write(g->nn.base.device, g->cos, cos, bytes);
    if (status == ZRT_OK) status = zrt_device_write(g->nn.base.device, g->sin, sin, bytes);
    free(cos), free(sin);
    return status;
}

/* Every activation buffer for max_batch samples (statistics and the RoPE
 * tables fp32); with recompute, block 0's set serves every block. */
static zrt_status alloc_buffers(zrt_model *base, int max_batch)
{
    llama *g = (llama *)base;
    const zrt_llama_dims *d = &g->d;
    int64_t BT = (int64_t)max_batch * d->T, C = d->C, H = d->H, A = (int64_t)d->NH * d->hs;
    zrt_nn_buffers *b = &g->buffers;
    g->res = calloc((size_t)d->L + 1, sizeof *g->res);
    g->blocks = calloc((size_t)d->L, sizeof *g->blocks);
    if (!g->res || !g->blocks) return zrt_set_error(ZRT_ERR_NOMEM, "llama: out of memory");
    for (int l = 0; l <= d->L; l++) zrt_nn_buffers_act(b, &g->res[l], BT * C, "llama residual");
    for (int l = 0; l < (g->recompute ? 1 : d->L); l++) list_block(g, &g->blocks[l], BT);
    zrt_nn_buffers_act(b, &g->lnf, BT * C, "llama lnf"), zrt_nn_buffers_stat(b, &g->lnf_rstd, BT, "llama lnf rstd");
    zrt_nn_buffers_act(b, &g->logits, BT * d->V, "llama logits");
    zrt_nn_buffers_act(b, &g->dres, BT * C, "llama dres"), zrt_nn_buffers_act(b, &g->dres_in, BT * C, "llama dres_in");
    zrt_nn_buffers_act(b, &g->dres2, BT * C, "llama dres2"), zrt_nn_buffers_act(b, &g->dln, BT * C, "llama dln");
    zrt_nn_buffers_act(b, &g->dqkv, BT * g->QKV, "llama dqkv"), zrt_nn_buffers_act(b, &g->datty, BT * A, "llama datty");
    zrt_nn_buffers_act(b, &g->dgu, BT * 2 * H, "llama dgu"), zrt_nn_buffers_act(b, &g->dact, BT * H, "llama dact");
    int64_t half = (int64_t)d->T * (d->hs / 2);
    zrt_nn_buffers_stat(b, &g->cos, half, "llama rope cos"), zrt_nn_buffers_stat(b, &g->sin, half, "llama rope sin");
    ZRT_CHECK(zrt_nn_buffers_alloc(b, &g->nn));
    for (int l = 1; g->recompute && l < d->L; l++) g->blocks[l] = g->blocks[0];
    return upload_rope(g);
}

static void free_buffers(zrt_model *base)
{
    llama *g = (llama *)base;
    zrt_nn_buffers_free(&g->buffers, &g->nn);
    free(g->res), free(g->blocks);
    g->res = NULL, g->blocks = NULL;
}

static const zrt_model_math llama_math = {forward, loss, backward, decode, free_buffers, alloc_buffers};

zrt_status zrt_model_llama_create(const zrt_model_config *cfg, zrt_device *device, int micro_batch, zrt_model **out)
{
    zrt_llama_dims dims;
    ZRT_CHECK(zrt_llama_dims_of(cfg, micro_batch, &dims));
    llama *g = calloc(1, sizeof *g);
    if (!g) return zrt_set_error(ZRT_ERR_NOMEM, "llama: out of memory");
    g->d = dims;
    g->QKV = (dims.NH + 2 * dims.NKV) * dims.hs;
    g->recompute = cfg->activation_checkpointing;
    zrt_model *m = &g->nn.base;
    zrt_status status = zrt_llama_declare(m, &dims);
    if (status != ZRT_OK) {
        free(g); /* the tables are not there when declaring fails */
        return status;
    }
    status = zrt_nn_model_init(&g->nn, ZRT_MODEL_LLAMA, device, micro_batch, (int64_t)micro_batch * dims.T,
                               zrt_matmul_math_of(cfg), &llama_math); /* and the activations, the RoPE tables */
    if (status != ZRT_OK) {
        m->destroy ? m->destroy(m) : (free_buffers(m), zrt_model_tables_free(m), free(g));
        return status;
    }
    *out = m;
    return ZRT_OK;
}
