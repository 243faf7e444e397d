/* gpt.c: a decoder-only transformer in GPT-2's shape, written once against
 * nn.h's ops: its units, parameters (GPT-2's names and init), activations,
 * forward and backward. The device is whichever ops table the runner
 * (nn_model.c) hands it; the layout and math follow llm.c.
 *
 * Units and ops (zrt/model.h): unit 0 = token + position embeddings, units
 * 1..L = the blocks, unit L+1 = the final layernorm. Ops: 0 embed, 1..L the
 * blocks, L+1 final layernorm, L+2 the LM head -- which uses unit 0's token
 * embedding again (tied), so its gradient adds to the embedding's.
 * Block: x + attn(ln1(x)), then + mlp(ln2(x)); causal multi-head attention
 * scaled by 1/sqrt(head size); MLP d -> hidden -> d with GELU (tanh form);
 * layernorm eps 1e-5. Shapes: B batch (the op's), T seq_len, C d_model, NH
 * heads, H hidden, V vocab; activations (B, T, ...) row-major on the
 * model's device in nn.h's act dtype (views through zrt_nn_act_at). The layout is checkpoints' and Hugging Face GPT-2's
 * (init_from.c): it must not change.
 * Activation checkpointing and decode as in llama.c: the blocks' inputs
 * (res[l]) are kept per block and, when recomputing, one set of the rest
 * serves every block; decode's KV cache is the qkv rows of each block.
 * Check: tests/test_model_grad.c (finite differences per op),
 * test_golden_torch.c (against PyTorch), test_model_emulated.c (cuda ops).
 */
#include "model_internal.h"
#include "nn_layers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* Parameter order inside a block unit's flat buffer. */
enum { LN1W, LN1B, QKVW, QKVB, ATTPROJW, ATTPROJB, LN2W, LN2B, FCW, FCB, FCPROJW, FCPROJB, BLOCK_PARAMS };

/* One block's activations (B x T rows, nn.h's act dtype) and statistics
 * (fp32); its input and output are res[l], res[l + 1]. */
typedef struct {
    zrt_act *ln1, *qkv, *atty, *residual2, *ln2, *fch, *fch_gelu;
    float *ln1_mean, *ln1_rstd, *ln2_mean, *ln2_rstd, *lse; /* lse (B, NH, T): attention's row log-sum-exp */
} block_acts;

typedef struct {
    zrt_nn_model nn; /* first: the runner's */
    int T, C, NH, H, V, L;
    bool recompute;     /* activation checkpointing */
    zrt_act **res;      /* L + 1 of (B, T, C): res[0] the embedding, res[l + 1] block l's output */
    block_acts *blocks; /* L (one shared set when recomputing) */
    zrt_act *lnf;
    float *lnf_mean, *lnf_rstd;
    zrt_act *logits; /* (B, T, V): the head's output; after the loss, d(scale * loss) in its place */
    /* backward scratch */
    zrt_act *dres, *dres_in; /* (B, T, C): d(op output), d(op input) */
    zrt_act *dln, *dqkv, *datty, *dfch, *dfch_gelu, *dres2;
    zrt_nn_buffers buffers;
} gpt;

/* The rows one call computes: B sequences of T new positions after pos0
 * (training: pos0 0, S = T; a decode step: B 1). */
typedef struct {
    int B, T, S, pos0;
} rows;

static const float *param(const gpt *g, int unit, int index, const float *params)
{
    return params + g->nn.base.params[unit][index].offset;
}

static float *grad(const gpt *g, int unit, int index, float *grads)
{
    return grads + g->nn.base.params[unit][index].offset;
}

/* d(op input) becomes the next op's d(op output). */
static void swap_residual_grads(gpt *g)
{
    zrt_act *t = g->dres;
    g->dres = g->dres_in;
    g->dres_in = t;
}

/* ---- forward ------------------------------------------------------------------------------------ */

/* Q, K, V are views into qkv (rows of 3C: [q | k | v], head h at h hs). */
static zrt_attn_shape attn_shape(const gpt *g, rows r)
{
    return (zrt_attn_shape){.B = r.B, .T = r.T, .S = r.S, .NH = g->NH, .NKV = g->NH, .hs = g->C / g->NH,
                            .ld_q = 3 * g->C, .ld_kv = 3 * g->C, .ld_out = g->C};
}

static rows training_rows(const gpt *g, int batch) { return (rows){batch, g->T, g->T, 0}; }

static zrt_status block_forward(gpt *g, zrt_nn *nn, rows r, int l, const float *p)
{
    block_acts *a = &g->blocks[l];
    const zrt_nn_ops *o = nn->ops;
    const zrt_act *x = g->res[l];
    int N = r.B * r.T, C = g->C, H = g->H, u = l + 1;
    zrt_act *qkv = zrt_nn_act_at(nn, a->qkv, (int64_t)r.pos0 * 3 * C); /* decode: after the cached positions */
    zrt_attn_shape shape = attn_shape(g, r);
    ZRT_CHECK(o->layernorm_forward(nn, a->ln1, a->ln1_mean, a->ln1_rstd, x, param(g, u, LN1W, p), param(g, u, LN1B, p), N, C));
    ZRT_CHECK(zrt_nn_linear_forward(nn, qkv, a->ln1, param(g, u, QKVW, p), param(g, u, QKVB, p), NULL, N, C, 3 * C));
    ZRT_CHECK(o->attention_forward(nn, &shape, a->atty, a->lse, qkv, zrt_nn_act_at(nn, a->qkv, C),
                                   zrt_nn_act_at(nn, a->qkv, 2 * C)));
    zrt_norm ln2 = {ZRT_NORM_LAYER, param(g, u, LN2W, p), param(g, u, LN2B, p), a->ln2_mean, a->ln2_rstd, 1e-5f};
    ZRT_CHECK(zrt_nn_linear_residual_norm(nn, a->residual2, a->ln2, &ln2, a->atty, param(g, u, ATTPROJW, p),
                                          param(g, u, ATTPROJB, p), x, N, C, C)); /* residual2 = x + attn proj; ln_2 */
    ZRT_CHECK(zrt_nn_linear_forward(nn, a->fch, a->ln2, param(g, u, FCW, p), NULL, NULL, N, C, H));
    ZRT_CHECK(o->bias_gelu_forward(nn, a->fch, a->fch_gelu, param(g, u, FCB, p), N, H)); /* fch += b; gelu */
    return zrt_nn_linear_forward(nn, g->res[l + 1], a->fch_gelu, param(g, u, FCPROJW, p), param(g, u, FCPROJB, p),
                                 a->residual2, N, H, C);
}

/* wte[token] + wpe[pos0 + t]: the position table from pos0 on. */
static zrt_status embed(gpt *g, zrt_nn *nn, const int32_t *tokens, const float *p, rows r)
{
    const float *wpe = param(g, 0, 1, p) + (int64_t)r.pos0 * g->C;
    return nn->ops->embed_forward(nn, g->res[0], tokens, param(g, 0, 0, p), wpe, r.B * r.T, r.T, g->C, g->V);
}

static zrt_status final_norm(gpt *g, zrt_nn *nn, const float *p, int N)
{
    return nn->ops->layernorm_forward(nn, g->lnf, g->lnf_mean, g->lnf_rstd, g->res[g->L], param(g, g->L + 1, 0, p),
                                      param(g, g->L + 1, 1, p), N, g->C);
}

static zrt_status forward(zrt_model *base, zrt_nn *nn, const zrt_model_op *o)
{
    gpt *g = (gpt *)base;
    rows r = training_rows(g, o->batch);
    int N = r.B * r.T, L = g->L, op = o->op;
    const float *p = o->params;
    if (op == 0) return embed(g, nn, o->inputs, p, r);
    if (op <= L) return block_forward(g, nn, r, op - 1, p);
    if (op == L + 1) return final_norm(g, nn, p, N);
    return zrt_nn_linear_forward(nn, g->logits, g->lnf, param(g, 0, 0, p), NULL, NULL, N, g->C, g->V); /* tied head */
}

/* Mean cross-entropy over the B*T positions that are targets (kernels/xent.h); the logits become d(scale * loss). */
static zrt_status loss(zrt_model *base, zrt_nn *nn, const zrt_model_op *o, float scale, float divisor, float *loss_sum)
{
    gpt *g = (gpt *)base;
    return nn->ops->cross_entropy(nn, g->logits, o->labels, o->batch * g->T, g->V, scale, divisor, loss_sum, false);
}

/* ---- backward ------------------------------------------------------------------------------------ */

/* dres: d(block output) in; dres_in: d(block input) out (overwritten). */
static zrt_status block_backward(gpt *g, zrt_nn *nn, rows r, int l, const float *p, float *gr)
{
    block_acts *a = &g->blocks[l];
    const zrt_nn_ops *o = nn->ops;
    int N = r.B * r.T, C = g->C, H = g->H, u = l + 1;
    size_t nc = zrt_nn_act_bytes(nn, (int64_t)N * C);
    zrt_attn_shape shape = attn_shape(g, r);
    zrt_act *dq = g->dqkv, *dk = zrt_nn_act_at(nn, g->dqkv, C), *dv = zrt_nn_act_at(nn, g->dqkv, 2 * C);
    ZRT_CHECK(o->copy(nn, g->dres2, g->dres, nc)); /* out = residual2 + fcproj */
    ZRT_CHECK(zrt_nn_linear_backward(nn, g->dfch_gelu, grad(g, u, FCPROJW, gr), grad(g, u, FCPROJB, gr), g->dres, a->fch_gelu,
                              param(g, u, FCPROJW, p), N, H, C));
    ZRT_CHECK(o->gelu_backward(nn, g->dfch, a->fch, g->dfch_gelu, (size_t)N * H));
    ZRT_CHECK(zrt_nn_linear_backward(nn, g->dln, grad(g, u, FCW, gr), grad(g, u, FCB, gr), g->dfch, a->ln2, param(g, u, FCW, p),
                              N, C, H));
    ZRT_CHECK(o->layernorm_backward(nn, g->dres2, grad(g, u, LN2W, gr), grad(g, u, LN2B, gr), g->dln, a->residual2,
                                    param(g, u, LN2W, p), a->ln2_mean, a->ln2_rstd, N, C));
    ZRT_CHECK(o->copy(nn, g->dres_in, g->dres2, nc)); /* residual2 = x + attproj */
    ZRT_CHECK(zrt_nn_linear_backward(nn, g->datty, grad(g, u, ATTPROJW, gr), grad(g, u, ATTPROJB, gr), g->dres2, a->atty,
                              param(g, u, ATTPROJW, p), N, C, C));
    ZRT_CHECK(o->attention_backward(nn, &shape, dq, dk, dv, g->datty, a->atty, a->lse, a->qkv,
                                    zrt_nn_act_at(nn, a->qkv, C), zrt_nn_act_at(nn, a->qkv, 2 * C)));
    ZRT_CHECK(zrt_nn_linear_backward(nn, g->dln, grad(g, u, QKVW, gr), grad(g, u, QKVB, gr), g->dqkv, a->ln1,
                              param(g, u, QKVW, p), N, C, 3 * C));
    return o->layernorm_backward(nn, g->dres_in, grad(g, u, LN1W, gr), grad(g, u, LN1B, gr), g->dln, g->res[l],
                                 param(g, u, LN1W, p), a->ln1_mean, a->ln1_rstd, N, C);
}

static zrt_status backward(zrt_model *base, zrt_nn *nn, const zrt_model_op *o)
{
    gpt *g = (gpt *)base;
    rows r = training_rows(g, o->batch);
    int N = r.B * r.T, C = g->C, L = g->L, op = o->op;
    const float *p = o->params;
    float *gr = o->grads;
    if (op == L + 2) /* head: d(lnf) into dres, d(wte) += d(logits)^T lnf; the loss left d(logits) in logits */
        return zrt_nn_linear_backward(nn, g->dres, grad(g, 0, 0, gr), NULL, g->logits, g->lnf, param(g, 0, 0, p), N, C,
                                      g->V);
    if (op == 0)
        return nn->ops->embed_backward(nn, grad(g, 0, 0, gr), grad(g, 0, 1, gr), g->dres, o->inputs, N, g->T, C, g->V);
    if (op == L + 1) {
        ZRT_CHECK(nn->ops->zero(nn, g->dres_in, zrt_nn_act_bytes(nn, (int64_t)N * C)));
        ZRT_CHECK(nn->ops->layernorm_backward(nn, g->dres_in, grad(g, L + 1, 0, gr), grad(g, L + 1, 1, gr), g->dres,
                                              g->res[L], param(g, L + 1, 0, p), g->lnf_mean, g->lnf_rstd, N, C));
    } else {
        if (g->recompute) ZRT_CHECK(block_forward(g, nn, r, op - 1, p));
        ZRT_CHECK(block_backward(g, nn, r, op - 1, p, gr));
    }
    swap_residual_grads(g);
    return ZRT_OK;
}

/* ---- decode: one sequence through every op, the qkv rows as the KV cache ------------------------ */

static zrt_status decode(zrt_model *base, zrt_nn *nn, const float *const *units, const int32_t *tokens, int n,
                         int pos0, float *logits)
{
    gpt *g = (gpt *)base;
    if (g->recompute) return zrt_nn_decode_needs_cache("gpt");
    rows r = {1, n, pos0 + n, pos0};
    ZRT_CHECK(embed(g, nn, tokens, units[0], r));
    for (int l = 0; l < g->L; l++) ZRT_CHECK(block_forward(g, nn, r, l, units[l + 1]));
    ZRT_CHECK(final_norm(g, nn, units[g->L + 1], n));
    return zrt_nn_linear_forward_f32(nn, logits, zrt_nn_act_at(nn, g->lnf, (int64_t)(n - 1) * g->C),
                                     param(g, 0, 0, units[0]), 1, g->C, g->V);
}

/* ---- declaration: units, parameters, activations ------------------------------------------------- */

/* Adds block l's parameters to unit l + 1; init std per GPT-2 (residual projections scaled by 1/sqrt(2 L)). */
static void declare_block(zrt_model *m, const gpt *g, int l)
{
    int64_t C = g->C, H = g->H;
    float proj_std = 0.02f / sqrtf(2.0f * (float)g->L);
    static const struct {
        const char *suffix;
        int rows, cols; /* multiples: 1 C, 3 3C, -1 H; cols 0: a vector */
        zrt_init_kind init;
        bool proj;
    } rows[BLOCK_PARAMS] = {
        {"ln_1.weight", 1, 0, ZRT_INIT_ONES, false},     {"ln_1.bias", 1, 0, ZRT_INIT_ZEROS, false},
        {"attn.c_attn.weight", 3, 1, ZRT_INIT_NORMAL, false}, {"attn.c_attn.bias", 3, 0, ZRT_INIT_ZEROS, false},
        {"attn.c_proj.weight", 1, 1, ZRT_INIT_NORMAL, true}, {"attn.c_proj.bias", 1, 0, ZRT_INIT_ZEROS, false},
        {"ln_2.weight", 1, 0, ZRT_INIT_ONES, false},     {"ln_2.bias", 1, 0, ZRT_INIT_ZEROS, false},
        {"mlp.c_fc.weight", -1, 1, ZRT_INIT_NORMAL, false}, {"mlp.c_fc.bias", -1, 0, ZRT_INIT_ZEROS, false},
        {"mlp.c_proj.weight", 1, -1, ZRT_INIT_NORMAL, true}, {"mlp.c_proj.bias", 1, 0, ZRT_INIT_ZEROS, false},
    };
    char name[48];
    for (int i = 0; i < BLOCK_PARAMS; i++) {
        int64_t r = rows[i].rows == -1 ? H : rows[i].rows * C, c = rows[i].cols == -1 ? H : rows[i].cols * C;
        float std = rows[i].init != ZRT_INIT_NORMAL ? 0 : rows[i].proj ? proj_std : 0.02f;
        snprintf(name, sizeof name, "h.%d.%s", l, rows[i].suffix);
        zrt_model_add_param(m, l + 1, name, r, c, rows[i].init, std);
    }
}

static zrt_status declare(zrt_model *m, const gpt *g)
{
    ZRT_CHECK(zrt_model_tables_alloc(m, g->L + 2, BLOCK_PARAMS, g->L + 3));
    zrt_model_add_param(m, 0, "wte", g->V, g->C, ZRT_INIT_NORMAL, 0.02f);
    zrt_model_add_param(m, 0, "wpe", g->T, g->C, ZRT_INIT_NORMAL, 0.01f);
    for (int l = 0; l < g->L; l++) declare_block(m, g, l);
    zrt_model_add_param(m, g->L + 1, "ln_f.weight", g->C, 0, ZRT_INIT_ONES, 0);
    zrt_model_add_param(m, g->L + 1, "ln_f.bias", g->C, 0, ZRT_INIT_ZEROS, 0);
    for (int op = 0; op <= g->L + 1; op++) m->op_unit[op] = op;
    m->op_unit[g->L + 2] = 0; /* the LM head: tied to wte */
    m->tokens_per_sample = g->T;
    double C = g->C, H = g->H, T = g->T; /* per sample: qkv, attn proj, fc, fc proj per block; the head */
    m->matmul_flops_per_sample = 2.0 * T * (g->L * (3 * C * C + C * C + 2 * C * H) + C * g->V);
    m->input_bytes_per_sample = (size_t)g->T * sizeof(int32_t);
    m->labels_per_sample = g->T;
    return ZRT_OK;
}

/* Every activation buffer for max_batch samples; with recompute, block 0's set serves every block. */
static zrt_status alloc_buffers(zrt_model *base, int max_batch)
{
    gpt *g = (gpt *)base;
    g->res = calloc((size_t)g->L + 1, sizeof *g->res);
    g->blocks = calloc((size_t)g->L, sizeof *g->blocks);
    if (!g->res || !g->blocks) return zrt_set_error(ZRT_ERR_NOMEM, "gpt: out of memory");
    int64_t BT = (int64_t)max_batch * g->T, C = g->C, H = g->H;
    zrt_nn_buffers *t = &g->buffers;
#define BUF(ptr, count) zrt_nn_buffers_act(t, &(ptr), count, "gpt " #ptr)
#define STAT(ptr, count) zrt_nn_buffers_stat(t, &(ptr), count, "gpt " #ptr)
    for (int l = 0; l <= g->L; l++) BUF(g->res[l], BT * C);
    for (int l = 0; l < (g->recompute ? 1 : g->L); l++) {
        block_acts *a = &g->blocks[l];
        BUF(a->ln1, BT * C), STAT(a->ln1_mean, BT), STAT(a->ln1_rstd, BT), BUF(a->qkv, BT * 3 * C);
        STAT(a->lse, BT * g->NH), BUF(a->atty, BT * C), BUF(a->residual2, BT * C), BUF(a->ln2, BT * C);
        STAT(a->ln2_mean, BT), STAT(a->ln2_rstd, BT), BUF(a->fch, BT * H), BUF(a->fch_gelu, BT * H);
    }
    BUF(g->lnf, BT * C), STAT(g->lnf_mean, BT), STAT(g->lnf_rstd, BT);
    BUF(g->logits, BT * g->V);
    BUF(g->dres, BT * C), BUF(g->dres_in, BT * C), BUF(g->dln, BT * C), BUF(g->dqkv, BT * 3 * C);
    BUF(g->datty, BT * C), BUF(g->dfch, BT * H), BUF(g->dfch_gelu, BT * H);
    BUF(g->dres2, BT * C);
#undef BUF
#undef STAT
    ZRT_CHECK(zrt_nn_buffers_alloc(t, &g->nn));
    for (int l = 1; g->recompute && l < g->L; l++) g->blocks[l] = g->blocks[0];
    return ZRT_OK;
}

static void free_buffers(zrt_model *base)
{
    gpt *g = (gpt *)base;
    zrt_nn_buffers_free(&g->buffers, &g->nn);
    free(g->res), free(g->blocks);
    g->res = NULL, g->blocks = NULL;
}

static const zrt_model_math gpt_math = {.forward = forward, .loss = loss, .backward = backward, .decode = decode,
                                        .free_buffers = free_buffers, .alloc_buffers = alloc_buffers};

zrt_status zrt_model_gpt_create(const zrt_model_config *cfg, zrt_device *device, int micro_batch, zrt_model **out)
{
    if (cfg->layers < 1 || cfg->layers + 2 > ZRT_MAX_UNITS || cfg->heads < 1 || cfg->d_model % cfg->heads != 0 ||
        micro_batch < 1)
        return zrt_set_error(ZRT_ERR_INVALID, "gpt: %lld layers, d_model %lld, %lld heads, micro batch %d",
                             (long long)cfg->layers, (long long)cfg->d_model, (long long)cfg->heads, micro_batch);
    gpt *g = calloc(1, sizeof *g);
    if (!g) return zrt_set_error(ZRT_ERR_NOMEM, "gpt: out of memory");
    g->T = (int)cfg->seq_len, g->C = (int)cfg->d_model, g->NH = (int)cfg->heads;
    g->H = (int)(cfg->hidden ? cfg->hidden : 4 * cfg->d_model), g->V = (int)cfg->vocab, g->L = (int)cfg->layers;
    g->recompute = cfg->activation_checkpointing;
    zrt_model *m = &g->nn.base;
    m->device = device;
    zrt_status status = declare(m, g);
    if (status == ZRT_OK)
        status = zrt_nn_model_init(&g->nn, ZRT_MODEL_GPT, device, micro_batch, (int64_t)micro_batch * g->T,
                                   zrt_matmul_math_of(cfg), &gpt_math); /* and the activations */
    if (status != ZRT_OK) {
        if (m->destroy) {
            m->destroy(m);
        } else { /* declaring failed: no tables, no runner */
            free(g);
        }
        return status;
    }
    *out = m;
    return ZRT_OK;
}
