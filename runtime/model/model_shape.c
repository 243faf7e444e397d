/* model_shape.c: what the built-in models are, whatever device computes
 * them: their units, parameters (names, shapes, GPT-2's init), ops, FLOPs,
 * GPT's activation buffers, and the op checks every runner makes.
 *
 * Why one file: the cpu (gpt.c, mlp.c) and cuda (gpt_cuda.c, mlp_cuda.c)
 * implementations must agree on the flat layout to the element -- a
 * checkpoint, an init_from file or a ZeRO shard of one is the other's.
 */
#include "model_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

zrt_status zrt_gpt_dims_of(const zrt_model_config *cfg, int micro_batch, zrt_gpt_dims *d)
{
    if (cfg->layers < 1 || cfg->layers + 2 > ZRT_MAX_UNITS || cfg->heads < 1 || cfg->d_model % cfg->heads != 0 ||
        micro_batch < 1)
        return zrt_set_error(ZRT_ERR_INVALID, "gpt: %lld layers, d_model %lld, %lld heads, micro batch %d",
                             (long long)cfg->layers, (long long)cfg->d_model, (long long)cfg->heads, micro_batch);
    *d = (zrt_gpt_dims){.T = (int)cfg->seq_len, .C = (int)cfg->d_model, .NH = (int)cfg->heads,
                        .H = (int)(cfg->hidden ? cfg->hidden : 4 * cfg->d_model), .V = (int)cfg->vocab,
                        .L = (int)cfg->layers};
    return ZRT_OK;
}

zrt_status zrt_model_tables_alloc(zrt_model *m, int n_units, int max_params, int n_ops)
{
    if (n_units < 1 || n_units > ZRT_MAX_UNITS || max_params < 1 || max_params > ZRT_MAX_UNIT_PARAMS || n_ops < 1 ||
        n_ops > ZRT_MAX_OPS)
        return zrt_set_error(ZRT_ERR_INVALID, "model: %d units of %d parameters, %d ops (limits %d, %d, %d)", n_units,
                             max_params, n_ops, ZRT_MAX_UNITS, ZRT_MAX_UNIT_PARAMS, ZRT_MAX_OPS);
    size_t n = (size_t)n_units;
    /* One block, most aligned first: infos, row pointers, numels, then the ints. */
    size_t infos = n * (size_t)max_params * sizeof(zrt_param_info), rows = n * sizeof(zrt_param_info *);
    size_t numels = n * sizeof(int64_t), counts = n * sizeof(int);
    char *block = calloc(1, infos + rows + numels + counts + (size_t)n_ops * sizeof(int));
    if (!block) return zrt_set_error(ZRT_ERR_NOMEM, "model: out of memory for %d units' tables", n_units);
    m->params = (zrt_param_info **)(block + infos);
    for (int u = 0; u < n_units; u++) m->params[u] = (zrt_param_info *)block + (size_t)u * (size_t)max_params;
    m->unit_numel = (int64_t *)(block + infos + rows);
    m->n_params = (int *)(block + infos + rows + numels);
    m->op_unit = (int *)(block + infos + rows + numels + counts);
    m->n_units = n_units;
    m->n_ops = n_ops;
    return ZRT_OK;
}

void zrt_model_tables_free(zrt_model *m)
{
    if (!m || !m->params) return;
    free(m->params[0]); /* the block's start: its first row of infos */
    m->params = NULL, m->n_params = NULL, m->unit_numel = NULL, m->op_unit = NULL;
}

void zrt_model_add_param(zrt_model *m, int unit, const char *name, int64_t rows, int64_t cols, zrt_init_kind init,
                         float std)
{
    int i = m->n_params[unit]++;
    zrt_param_info *p = &m->params[unit][i];
    int64_t numel = rows * (cols ? cols : 1);
    *p = (zrt_param_info){.numel = numel, .offset = m->unit_numel[unit], .init = init, .init_std = std,
                          .ndim = cols ? 2 : 1, .shape = {rows, cols}};
    snprintf(p->name, sizeof p->name, "%s", name);
    m->unit_numel[unit] += numel;
}

/* GPT-2's init: residual projections' std scaled by 1/sqrt(2 L). */
static void declare_block(zrt_model *m, const zrt_gpt_dims *d, int l)
{
    int64_t C = d->C, H = d->H;
    float proj_std = 0.02f / sqrtf(2.0f * (float)d->L);
    int u = l + 1;
    char name[48];
#define BLOCK_PARAM(suffix, rows, cols, init, std)  \
    snprintf(name, sizeof name, "h.%d." suffix, l); \
    zrt_model_add_param(m, u, name, rows, cols, init, std)
    BLOCK_PARAM("ln_1.weight", C, 0, ZRT_INIT_ONES, 0);
    BLOCK_PARAM("ln_1.bias", C, 0, ZRT_INIT_ZEROS, 0);
    BLOCK_PARAM("attn.c_attn.weight", 3 * C, C, ZRT_INIT_NORMAL, 0.02f);
    BLOCK_PARAM("attn.c_attn.bias", 3 * C, 0, ZRT_INIT_ZEROS, 0);
    BLOCK_PARAM("attn.c_proj.weight", C, C, ZRT_INIT_NORMAL, proj_std);
    BLOCK_PARAM("attn.c_proj.bias", C, 0, ZRT_INIT_ZEROS, 0);
    BLOCK_PARAM("ln_2.weight", C, 0, ZRT_INIT_ONES, 0);
    BLOCK_PARAM("ln_2.bias", C, 0, ZRT_INIT_ZEROS, 0);
    BLOCK_PARAM("mlp.c_fc.weight", H, C, ZRT_INIT_NORMAL, 0.02f);
    BLOCK_PARAM("mlp.c_fc.bias", H, 0, ZRT_INIT_ZEROS, 0);
    BLOCK_PARAM("mlp.c_proj.weight", C, H, ZRT_INIT_NORMAL, proj_std);
    BLOCK_PARAM("mlp.c_proj.bias", C, 0, ZRT_INIT_ZEROS, 0);
#undef BLOCK_PARAM
}

zrt_status zrt_gpt_declare(zrt_model *m, const zrt_gpt_dims *d)
{
    ZRT_CHECK(zrt_model_tables_alloc(m, d->L + 2, 12, d->L + 3)); /* a block has 12 parameters */
    zrt_model_add_param(m, 0, "wte", d->V, d->C, ZRT_INIT_NORMAL, 0.02f);
    zrt_model_add_param(m, 0, "wpe", d->T, d->C, ZRT_INIT_NORMAL, 0.01f);
    for (int l = 0; l < d->L; l++) declare_block(m, d, l);
    zrt_model_add_param(m, d->L + 1, "ln_f.weight", d->C, 0, ZRT_INIT_ONES, 0);
    zrt_model_add_param(m, d->L + 1, "ln_f.bias", d->C, 0, ZRT_INIT_ZEROS, 0);
    for (int op = 0; op <= d->L + 1; op++) m->op_unit[op] = op;
    m->op_unit[d->L + 2] = 0; /* the LM head: tied to wte */
    m->tokens_per_sample = d->T;
    double C = d->C, H = d->H, T = d->T; /* per sample: qkv, attn proj, fc, fc proj per block; the head */
    m->matmul_flops_per_sample = 2.0 * T * (d->L * (3 * C * C + C * C + 2 * C * H) + C * d->V);
    m->input_bytes_per_sample = (size_t)d->T * sizeof(int32_t);
    m->labels_per_sample = d->T;
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

static void buffers(zrt_gpt_acts *g, const zrt_gpt_dims *d, int max_batch, buffer_table *t)
{
    int64_t BT = (int64_t)max_batch * d->T, C = d->C, H = d->H, att = (int64_t)max_batch * d->NH * d->T * d->T;
    int n = 0;
#define BUF(ptr, count) (t->slots[n] = &(ptr), t->names[n] = "gpt " #ptr, t->sizes[n++] = (size_t)(count) * sizeof(float))
    BUF(g->encoded, BT * C);
    for (int l = 0; l < d->L; l++) {
        zrt_gpt_block_acts *a = &g->blocks[l];
        BUF(a->ln1, BT * C), BUF(a->ln1_mean, BT), BUF(a->ln1_rstd, BT), BUF(a->qkv, BT * 3 * C);
        BUF(a->preatt, att), BUF(a->att, att), BUF(a->atty, BT * C);
        BUF(a->residual2, BT * C), BUF(a->ln2, BT * C), BUF(a->ln2_mean, BT), BUF(a->ln2_rstd, BT);
        BUF(a->fch, BT * H), BUF(a->fch_gelu, BT * H), BUF(a->residual3, BT * C);
    }
    BUF(g->lnf, BT * C), BUF(g->lnf_mean, BT), BUF(g->lnf_rstd, BT);
    BUF(g->logits, BT * d->V), BUF(g->probs, BT * d->V), BUF(g->dlogits, BT * d->V);
    BUF(g->dres, BT * C), BUF(g->dres_in, BT * C), BUF(g->dln, BT * C), BUF(g->dqkv, BT * 3 * C);
    BUF(g->datty, BT * C), BUF(g->dpreatt, att), BUF(g->datt, att), BUF(g->dfch, BT * H), BUF(g->dfch_gelu, BT * H);
    BUF(g->dres2, BT * C);
#undef BUF
    t->n = n;
}

zrt_status zrt_gpt_acts_alloc(zrt_gpt_acts *acts, const zrt_gpt_dims *d, int max_batch, zrt_device *device)
{
    if (!(acts->blocks = calloc((size_t)d->L, sizeof *acts->blocks)))
        return zrt_set_error(ZRT_ERR_NOMEM, "gpt: out of memory");
    buffer_table *t = malloc(sizeof *t);
    if (!t) return zrt_set_error(ZRT_ERR_NOMEM, "gpt: out of memory");
    buffers(acts, d, max_batch, t);
    zrt_status status = ZRT_OK;
    for (int i = 0; i < t->n && status == ZRT_OK; i++)
        status = zrt_device_alloc(device, ZRT_MEM_ACTIVATIONS, t->sizes[i], t->names[i], NULL, (void **)t->slots[i]);
    free(t);
    return status;
}

void zrt_gpt_acts_free(zrt_gpt_acts *acts, const zrt_gpt_dims *d, zrt_device *device)
{
    if (acts->blocks) {
        buffer_table *t = malloc(sizeof *t);
        if (t) buffers(acts, d, 1, t);
        for (int i = 0; t && i < t->n; i++) zrt_device_free(device, *t->slots[i], NULL);
        free(t);
    }
    free(acts->blocks);
    acts->blocks = NULL;
}

const float *zrt_gpt_block_input(const zrt_gpt_acts *acts, int l)
{
    return l == 0 ? acts->encoded : acts->blocks[l - 1].residual3;
}

void zrt_gpt_swap_residual_grads(zrt_gpt_acts *acts)
{
    float *t = acts->dres;
    acts->dres = acts->dres_in;
    acts->dres_in = t;
}

/* ---- MLP ------------------------------------------------------------------------------------- */

static void declare_mlp_unit(zrt_model *m, const int64_t *dims, int u)
{
    int64_t in = dims[u], out = dims[u + 1];
    zrt_param_info *p = m->params[u];
    p[0] = (zrt_param_info){.numel = in * out, .offset = 0, .init = ZRT_INIT_NORMAL, .init_std = 1.0f / sqrtf((float)in),
                            .ndim = 2, .shape = {out, in}};
    snprintf(p[0].name, sizeof p[0].name, "layers.%d.weight", u);
    p[1] = (zrt_param_info){.numel = out, .offset = in * out, .init = ZRT_INIT_ZEROS, .ndim = 1, .shape = {out}};
    snprintf(p[1].name, sizeof p[1].name, "layers.%d.bias", u);
    m->n_params[u] = 2;
    m->unit_numel[u] = in * out + out;
}

zrt_status zrt_mlp_declare(zrt_model *m, const zrt_model_config *cfg, int micro_batch, zrt_mlp_acts *acts)
{
    int64_t *dims = acts->dims;
    if (cfg->layers < 1 || cfg->layers > ZRT_MAX_UNITS || micro_batch < 1)
        return zrt_set_error(ZRT_ERR_INVALID, "mlp: %lld layers, micro batch %d", (long long)cfg->layers, micro_batch);
    int layers = (int)cfg->layers;
    ZRT_CHECK(zrt_model_tables_alloc(m, layers, 2, layers));
    for (int u = 0; u < layers; u++) m->op_unit[u] = u;
    m->tokens_per_sample = 1;
    m->input_bytes_per_sample = (size_t)cfg->d_model * sizeof(float);
    m->labels_per_sample = 1;
    dims[0] = cfg->d_model;
    for (int u = 1; u < layers; u++) dims[u] = cfg->hidden;
    dims[layers] = cfg->vocab;
    for (int u = 0; u < layers; u++) {
        m->matmul_flops_per_sample += 2.0 * (double)(dims[u] * dims[u + 1]);
        declare_mlp_unit(m, dims, u);
    }
    acts->layers = layers; /* valid now: zrt_mlp_acts_free walks them */
    return ZRT_OK;
}

zrt_status zrt_mlp_acts_alloc(zrt_mlp_acts *a, int max_batch, zrt_device *device)
{
    int64_t widest = 0;
    for (int u = 0; u <= a->layers; u++) widest = a->dims[u] > widest ? a->dims[u] : widest;
    char name[64];
    for (int u = 0; u < a->layers; u++) {
        size_t bytes = (size_t)(max_batch * a->dims[u + 1]) * sizeof(float);
        snprintf(name, sizeof name, "mlp layer %d output", u);
        ZRT_CHECK(zrt_device_alloc(device, ZRT_MEM_ACTIVATIONS, bytes, name, NULL, (void **)&a->act[u + 1]));
        snprintf(name, sizeof name, "mlp layer %d pre-activation", u);
        ZRT_CHECK(zrt_device_alloc(device, ZRT_MEM_ACTIVATIONS, bytes, name, NULL, (void **)&a->pre[u]));
    }
    size_t bytes = (size_t)(max_batch * widest) * sizeof(float);
    ZRT_CHECK(zrt_device_alloc(device, ZRT_MEM_ACTIVATIONS, bytes, "mlp output gradient", NULL, (void **)&a->dact));
    return zrt_device_alloc(device, ZRT_MEM_ACTIVATIONS, bytes, "mlp input gradient", NULL, (void **)&a->dnext);
}

void zrt_mlp_acts_free(zrt_mlp_acts *a, zrt_device *device)
{
    for (int u = 1; u <= a->layers; u++) zrt_device_free(device, a->act[u], NULL);
    for (int u = 0; u < a->layers; u++) zrt_device_free(device, a->pre[u], NULL);
    zrt_device_free(device, a->dact, NULL);
    zrt_device_free(device, a->dnext, NULL);
}

const float *zrt_mlp_unit_input(const zrt_mlp_acts *a, const void *inputs, int u)
{
    return u == 0 ? (const float *)inputs : a->act[u];
}

void zrt_mlp_swap(zrt_mlp_acts *a)
{
    float *t = a->dact;
    a->dact = a->dnext;
    a->dnext = t;
}

/* ---- what every runner checks ------------------------------------------------------------------ */

zrt_status zrt_model_batch_set(zrt_model_batch *now, const void *inputs, const int32_t *labels, int batch)
{
    if (batch < 1 || batch > now->max_batch)
        return zrt_set_error(ZRT_ERR_INVALID, "model: batch %d outside 1..%d", batch, now->max_batch);
    if (!inputs || !labels) return zrt_set_error(ZRT_ERR_INVALID, "model: NULL inputs or labels");
    now->batch = batch;
    now->inputs = inputs;
    now->labels = labels;
    return ZRT_OK;
}

/* ---- the runners' op checks ------------------------------------------------------------------- */

zrt_status zrt_model_check_op(const zrt_model *m, const void *inputs, int kind, int op, const float *params,
                              const float *grads)
{
    if (!inputs) return zrt_set_error(ZRT_ERR_INVALID, "model: no batch (set_batch first)");
    if (kind == 1) return ZRT_OK;
    if (op < 0 || op >= m->n_ops) return zrt_set_error(ZRT_ERR_INVALID, "model: op %d outside 0..%d", op, m->n_ops - 1);
    if (!params || (kind == 2 && !grads))
        return zrt_set_error(ZRT_ERR_INVALID, "model: op %d: NULL parameters or gradients", op);
    return ZRT_OK;
}
