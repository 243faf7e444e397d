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
 * heads, H hidden, V vocab; activations (B, T, ...) row-major fp32 on the
 * model's device. The layout is checkpoints' and Hugging Face GPT-2's
 * (init_from.c): it must not change.
 * Check: tests/test_model_grad.c (finite differences per op),
 * test_golden_torch.c (against PyTorch), test_model_emulated.c (cuda ops).
 */
#include "model_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* Parameter order inside a block unit's flat buffer. */
enum { LN1W, LN1B, QKVW, QKVB, ATTPROJW, ATTPROJB, LN2W, LN2B, FCW, FCB, FCPROJW, FCPROJB, BLOCK_PARAMS };

/* One block's activations (all fp32, B x T rows). */
typedef struct {
    float *ln1, *ln1_mean, *ln1_rstd, *qkv, *preatt, *att, *atty, *residual2;
    float *ln2, *ln2_mean, *ln2_rstd, *fch, *fch_gelu, *residual3;
} block_acts;

typedef struct {
    zrt_nn_model nn; /* first: the runner's */
    int T, C, NH, H, V, L;
    float *encoded;     /* (B, T, C) */
    block_acts *blocks; /* L */
    float *lnf, *lnf_mean, *lnf_rstd, *logits, *probs;
    /* backward scratch */
    float *dres, *dres_in; /* (B, T, C): d(op output), d(op input) */
    float *dln, *dqkv, *datty, *dpreatt, *datt, *dfch, *dfch_gelu, *dres2, *dlogits;
} gpt;

static const float *param(const gpt *g, int unit, int index, const float *params)
{
    return params + g->nn.base.params[unit][index].offset;
}

static float *grad(const gpt *g, int unit, int index, float *grads)
{
    return grads + g->nn.base.params[unit][index].offset;
}

/* The input of block l (the embedding for l == 0, else block l - 1's output). */
static const float *block_input(const gpt *g, int l) { return l == 0 ? g->encoded : g->blocks[l - 1].residual3; }

/* d(op input) becomes the next op's d(op output). */
static void swap_residual_grads(gpt *g)
{
    float *t = g->dres;
    g->dres = g->dres_in;
    g->dres_in = t;
}

/* ---- forward ------------------------------------------------------------------------------------ */

/* out (N, OC) = inp (N, C) @ w^T (OC, C) + b (NULL: none) + residual (N, OC; NULL: none): the bias
 * and residual written first and the product added by the gemm (one pass, not a separate add). */
static zrt_status matmul_forward(zrt_nn *nn, float *out, const float *inp, const float *w, const float *b,
                                 const float *residual, int N, int C, int OC)
{
    ZRT_CHECK(nn->ops->init_rows(nn, out, b, residual, N, OC));
    zrt_gemm x = {.trans_b = true, .M = N, .N = OC, .K = C, .alpha = 1.0f, .beta = b || residual ? 1.0f : 0.0f,
                  .A = inp, .lda = C, .B = w, .ldb = C, .C = out, .ldc = OC};
    return nn->ops->gemm(nn, &x);
}

/* Q, K, V are views into qkv (rows of 3C: [q | k | v], head h at h hs). */
static zrt_attn_shape attn_shape(const gpt *g, int B)
{
    return (zrt_attn_shape){.B = B, .T = g->T, .S = g->T, .NH = g->NH, .NKV = g->NH, .hs = g->C / g->NH,
                            .ld_q = 3 * g->C, .ld_kv = 3 * g->C, .ld_out = g->C};
}

static zrt_status block_forward(gpt *g, zrt_nn *nn, int B, int l, const float *p)
{
    block_acts *a = &g->blocks[l];
    const zrt_nn_ops *o = nn->ops;
    const float *x = block_input(g, l);
    int N = B * g->T, C = g->C, H = g->H, u = l + 1;
    zrt_attn_shape shape = attn_shape(g, B);
    ZRT_CHECK(o->layernorm_forward(nn, a->ln1, a->ln1_mean, a->ln1_rstd, x, param(g, u, LN1W, p), param(g, u, LN1B, p), N, C));
    ZRT_CHECK(matmul_forward(nn, a->qkv, a->ln1, param(g, u, QKVW, p), param(g, u, QKVB, p), NULL, N, C, 3 * C));
    ZRT_CHECK(o->attention_forward(nn, &shape, a->atty, a->att, a->preatt, a->qkv, a->qkv + C, a->qkv + 2 * C));
    ZRT_CHECK(matmul_forward(nn, a->residual2, a->atty, param(g, u, ATTPROJW, p), param(g, u, ATTPROJB, p), x, N, C, C));
    ZRT_CHECK(o->layernorm_forward(nn, a->ln2, a->ln2_mean, a->ln2_rstd, a->residual2, param(g, u, LN2W, p),
                                   param(g, u, LN2B, p), N, C));
    ZRT_CHECK(matmul_forward(nn, a->fch, a->ln2, param(g, u, FCW, p), NULL, NULL, N, C, H));
    ZRT_CHECK(o->bias_gelu_forward(nn, a->fch, a->fch_gelu, param(g, u, FCB, p), N, H)); /* fch += b; gelu */
    return matmul_forward(nn, a->residual3, a->fch_gelu, param(g, u, FCPROJW, p), param(g, u, FCPROJB, p),
                          a->residual2, N, H, C);
}

static zrt_status forward(zrt_model *base, zrt_nn *nn, const zrt_model_op *o)
{
    gpt *g = (gpt *)base;
    int N = o->batch * g->T, C = g->C, L = g->L, op = o->op;
    const float *p = o->params;
    if (op == 0) /* embed: wte[token] + wpe[t] */
        return nn->ops->embed_forward(nn, g->encoded, o->inputs, param(g, 0, 0, p), param(g, 0, 1, p), N, g->T, C, g->V);
    if (op <= L) return block_forward(g, nn, o->batch, op - 1, p);
    if (op == L + 1)
        return nn->ops->layernorm_forward(nn, g->lnf, g->lnf_mean, g->lnf_rstd, block_input(g, L), param(g, L + 1, 0, p),
                                          param(g, L + 1, 1, p), N, C);
    return matmul_forward(nn, g->logits, g->lnf, param(g, 0, 0, p), NULL, NULL, N, C, g->V); /* the head, tied to wte */
}

/* Mean cross-entropy over the B*T positions that are targets (kernels/xent.h); dlogits = d(scale * loss). */
static zrt_status loss(zrt_model *base, zrt_nn *nn, const zrt_model_op *o, float scale, float divisor, float *loss_sum)
{
    gpt *g = (gpt *)base;
    return nn->ops->cross_entropy(nn, g->dlogits, g->probs, g->logits, o->labels, o->batch * g->T, g->V, scale, divisor,
                                  loss_sum, false);
}

/* ---- backward ------------------------------------------------------------------------------------ */

/* dinp (N, C) = dout @ w (overwritten); dw (OC, C) += dout^T @ inp; db += column sums (NULL: none). */
static zrt_status matmul_backward(zrt_nn *nn, float *dinp, float *dw, float *db, const float *dout, const float *inp,
                                  const float *w, int N, int C, int OC)
{
    zrt_gemm dx = {.M = N, .N = C, .K = OC, .alpha = 1.0f, .A = dout, .lda = OC, .B = w, .ldb = C, .C = dinp, .ldc = C};
    zrt_gemm dwx = {.trans_a = true, .M = OC, .N = C, .K = N, .alpha = 1.0f, .beta = 1.0f, .A = dout, .lda = OC,
                    .B = inp, .ldb = C, .C = dw, .ldc = C};
    ZRT_CHECK(nn->ops->gemm(nn, &dx));
    ZRT_CHECK(nn->ops->gemm(nn, &dwx));
    return db ? nn->ops->bias_backward(nn, db, dout, N, OC) : ZRT_OK;
}

/* dres: d(block output) in; dres_in: d(block input) out (overwritten). */
static zrt_status block_backward(gpt *g, zrt_nn *nn, int B, int l, const float *p, float *gr)
{
    block_acts *a = &g->blocks[l];
    const zrt_nn_ops *o = nn->ops;
    int N = B * g->T, C = g->C, H = g->H, u = l + 1;
    size_t nc = (size_t)N * C * sizeof(float);
    zrt_attn_shape shape = attn_shape(g, B);
    ZRT_CHECK(o->copy(nn, g->dres2, g->dres, nc)); /* residual3 = residual2 + fcproj */
    ZRT_CHECK(matmul_backward(nn, g->dfch_gelu, grad(g, u, FCPROJW, gr), grad(g, u, FCPROJB, gr), g->dres, a->fch_gelu,
                              param(g, u, FCPROJW, p), N, H, C));
    ZRT_CHECK(o->gelu_backward(nn, g->dfch, a->fch, g->dfch_gelu, (size_t)N * H));
    ZRT_CHECK(matmul_backward(nn, g->dln, grad(g, u, FCW, gr), grad(g, u, FCB, gr), g->dfch, a->ln2, param(g, u, FCW, p),
                              N, C, H));
    ZRT_CHECK(o->layernorm_backward(nn, g->dres2, grad(g, u, LN2W, gr), grad(g, u, LN2B, gr), g->dln, a->residual2,
                                    param(g, u, LN2W, p), a->ln2_mean, a->ln2_rstd, N, C));
    ZRT_CHECK(o->copy(nn, g->dres_in, g->dres2, nc)); /* residual2 = x + attproj */
    ZRT_CHECK(matmul_backward(nn, g->datty, grad(g, u, ATTPROJW, gr), grad(g, u, ATTPROJB, gr), g->dres2, a->atty,
                              param(g, u, ATTPROJW, p), N, C, C));
    ZRT_CHECK(o->attention_backward(nn, &shape, g->dqkv, g->dqkv + C, g->dqkv + 2 * C, g->datt, g->dpreatt, g->datty,
                                    a->qkv, a->qkv + C, a->qkv + 2 * C, a->att));
    ZRT_CHECK(matmul_backward(nn, g->dln, grad(g, u, QKVW, gr), grad(g, u, QKVB, gr), g->dqkv, a->ln1,
                              param(g, u, QKVW, p), N, C, 3 * C));
    return o->layernorm_backward(nn, g->dres_in, grad(g, u, LN1W, gr), grad(g, u, LN1B, gr), g->dln, block_input(g, l),
                                 param(g, u, LN1W, p), a->ln1_mean, a->ln1_rstd, N, C);
}

static zrt_status backward(zrt_model *base, zrt_nn *nn, const zrt_model_op *o)
{
    gpt *g = (gpt *)base;
    int N = o->batch * g->T, C = g->C, L = g->L, op = o->op;
    const float *p = o->params;
    float *gr = o->grads;
    if (op == L + 2) /* head: d(lnf) into dres, d(wte) += dlogits^T lnf */
        return matmul_backward(nn, g->dres, grad(g, 0, 0, gr), NULL, g->dlogits, g->lnf, param(g, 0, 0, p), N, C, g->V);
    if (op == L + 1) {
        ZRT_CHECK(nn->ops->zero(nn, g->dres_in, (size_t)N * C * sizeof(float)));
        ZRT_CHECK(nn->ops->layernorm_backward(nn, g->dres_in, grad(g, L + 1, 0, gr), grad(g, L + 1, 1, gr), g->dres,
                                              block_input(g, L), param(g, L + 1, 0, p), g->lnf_mean, g->lnf_rstd, N, C));
        swap_residual_grads(g);
        return ZRT_OK;
    }
    if (op >= 1) {
        ZRT_CHECK(block_backward(g, nn, o->batch, op - 1, p, gr));
        swap_residual_grads(g);
        return ZRT_OK;
    }
    return nn->ops->embed_backward(nn, grad(g, 0, 0, gr), grad(g, 0, 1, gr), g->dres, o->inputs, N, g->T, C, g->V);
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

/* Every activation buffer, in one table so that allocation and freeing agree. */
#define MAX_BUFFERS (16 * ZRT_MAX_UNITS + 32)
typedef struct {
    float **slots[MAX_BUFFERS];
    size_t sizes[MAX_BUFFERS];
    const char *names[MAX_BUFFERS];
    int n;
} buffer_table;

static void buffers(gpt *g, int max_batch, buffer_table *t)
{
    int64_t BT = (int64_t)max_batch * g->T, C = g->C, H = g->H, att = (int64_t)max_batch * g->NH * g->T * g->T;
    int n = 0;
#define BUF(ptr, count) (t->slots[n] = &(ptr), t->names[n] = "gpt " #ptr, t->sizes[n++] = (size_t)(count) * sizeof(float))
    BUF(g->encoded, BT * C);
    for (int l = 0; l < g->L; l++) {
        block_acts *a = &g->blocks[l];
        BUF(a->ln1, BT * C), BUF(a->ln1_mean, BT), BUF(a->ln1_rstd, BT), BUF(a->qkv, BT * 3 * C);
        BUF(a->preatt, att), BUF(a->att, att), BUF(a->atty, BT * C);
        BUF(a->residual2, BT * C), BUF(a->ln2, BT * C), BUF(a->ln2_mean, BT), BUF(a->ln2_rstd, BT);
        BUF(a->fch, BT * H), BUF(a->fch_gelu, BT * H), BUF(a->residual3, BT * C);
    }
    BUF(g->lnf, BT * C), BUF(g->lnf_mean, BT), BUF(g->lnf_rstd, BT);
    BUF(g->logits, BT * g->V), BUF(g->probs, BT * g->V), BUF(g->dlogits, BT * g->V);
    BUF(g->dres, BT * C), BUF(g->dres_in, BT * C), BUF(g->dln, BT * C), BUF(g->dqkv, BT * 3 * C);
    BUF(g->datty, BT * C), BUF(g->dpreatt, att), BUF(g->datt, att), BUF(g->dfch, BT * H), BUF(g->dfch_gelu, BT * H);
    BUF(g->dres2, BT * C);
#undef BUF
    t->n = n;
}

static zrt_status alloc_buffers(gpt *g, int max_batch)
{
    if (!(g->blocks = calloc((size_t)g->L, sizeof *g->blocks))) return zrt_set_error(ZRT_ERR_NOMEM, "gpt: out of memory");
    buffer_table *t = malloc(sizeof *t);
    if (!t) return zrt_set_error(ZRT_ERR_NOMEM, "gpt: out of memory");
    buffers(g, max_batch, t);
    zrt_status status = ZRT_OK;
    for (int i = 0; i < t->n && status == ZRT_OK; i++)
        status = zrt_nn_model_alloc(&g->nn, t->sizes[i], t->names[i], t->slots[i]);
    free(t);
    return status;
}

static void free_buffers(zrt_model *base)
{
    gpt *g = (gpt *)base;
    if (g->blocks) {
        buffer_table *t = malloc(sizeof *t);
        if (t) buffers(g, 1, t);
        for (int i = 0; t && i < t->n; i++) zrt_nn_model_free(&g->nn, *t->slots[i]);
        free(t);
    }
    free(g->blocks);
    g->blocks = NULL;
}

static const zrt_model_math gpt_math = {.forward = forward, .loss = loss, .backward = backward,
                                        .free_buffers = free_buffers};

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
    zrt_model *m = &g->nn.base;
    m->device = device;
    zrt_status status = declare(m, g);
    if (status == ZRT_OK)
        status = zrt_nn_model_init(&g->nn, ZRT_MODEL_GPT, device, micro_batch, (int64_t)micro_batch * g->T,
                                   zrt_matmul_math_of(cfg), &gpt_math);
    if (status == ZRT_OK) status = alloc_buffers(g, micro_batch);
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
