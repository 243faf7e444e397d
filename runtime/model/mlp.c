/* mlp.c: the built-in MLP, written once against nn.h's ops: each layer is a
 * unit, z = in W^T + b by a gemm onto the bias rows, GELU (tanh form)
 * between layers, the MLP's double-precision cross-entropy on the last.
 *
 * Layout of unit u's flat parameters: W (out x in, row-major) then b (out);
 * names "layers.<u>.weight", "layers.<u>.bias" (checkpoints rely on them).
 * Activations (per unit, batch rows): in (B x in; unit 0 reads the batch's
 * inputs), pre-activation z (B x out), out = gelu(z) (B x out); the last
 * unit's out is the logits. On the model's device in nn.h's act dtype
 * (the batch's features are fp32: unit 0's matmul names that type).
 * Check: tests/test_model_grad.c (finite differences per op).
 */
#include "model_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    zrt_nn_model nn; /* first: the runner's */
    int layers;
    int64_t dims[ZRT_MAX_UNITS + 1];
    zrt_act *act[ZRT_MAX_UNITS + 1]; /* act[u + 1] = out of unit u (B x dims[u + 1]); act[0] unused */
    zrt_act *pre[ZRT_MAX_UNITS];     /* z of unit u (B x dims[u + 1]) */
    zrt_act *dact;                   /* d(out) of the unit being back-propagated */
    zrt_act *dnext;                  /* d(in), becomes the next dact */
} mlp;

/* The input of unit u: the batch's fp32 features for unit 0; its element type. */
static const void *unit_input(const mlp *m, const void *inputs, int u) { return u == 0 ? inputs : (void *)m->act[u]; }
static zrt_dtype input_type(const zrt_nn *nn, int u) { return u == 0 ? ZRT_DTYPE_F32 : nn->act; }

static zrt_status forward(zrt_model *base, zrt_nn *nn, const zrt_model_op *op)
{
    mlp *m = (mlp *)base;
    int u = op->op, B = op->batch, in = (int)m->dims[u], out = (int)m->dims[u + 1];
    const float *W = op->params, *b = op->params + (int64_t)in * out;
    zrt_act *z = m->pre[u], *y = m->act[u + 1];
    zrt_gemm g = {.trans_b = true, .M = B, .N = out, .K = in, .alpha = 1.0f, .beta = 1.0f,
                  .A = unit_input(m, op->inputs, u), .lda = in, .B = W, .ldb = in, .C = z, .ldc = out,
                  .a_type = input_type(nn, u), .c_type = nn->act};
    ZRT_CHECK(nn->ops->init_rows(nn, z, b, NULL, B, out));
    ZRT_CHECK(nn->ops->gemm(nn, &g));
    if (u == m->layers - 1) return nn->ops->copy(nn, y, z, zrt_nn_act_bytes(nn, (int64_t)B * out));
    return nn->ops->bias_gelu_forward(nn, z, y, NULL, B, out);
}

/* Mean cross-entropy (log-sum-exp in double); dact = d(scale * loss)/d(logits): the logits copied there and
 * turned into their gradient in place (the MLP's logits are small; act[layers] stays the output). */
static zrt_status loss(zrt_model *base, zrt_nn *nn, const zrt_model_op *op, float scale, float divisor, float *loss_sum)
{
    mlp *m = (mlp *)base;
    int V = (int)m->dims[m->layers];
    ZRT_CHECK(nn->ops->copy(nn, m->dact, m->act[m->layers], zrt_nn_act_bytes(nn, (int64_t)op->batch * V)));
    return nn->ops->cross_entropy(nn, m->dact, op->labels, op->batch, V, scale, divisor, loss_sum, true);
}

static zrt_status backward(zrt_model *base, zrt_nn *nn, const zrt_model_op *op)
{
    mlp *m = (mlp *)base;
    int u = op->op, B = op->batch, in = (int)m->dims[u], out = (int)m->dims[u + 1];
    float *dW = op->grads, *db = op->grads + (int64_t)in * out;
    zrt_act *dz = m->dact;
    zrt_gemm dw = {.trans_a = true, .M = out, .N = in, .K = B, .alpha = 1.0f, .beta = 1.0f, .A = dz, .lda = out,
                   .B = unit_input(m, op->inputs, u), .ldb = in, .C = dW, .ldc = in, .a_type = nn->act,
                   .b_type = input_type(nn, u)};
    zrt_gemm dx = {.M = B, .N = in, .K = out, .alpha = 1.0f, .A = dz, .lda = out, .B = op->params, .ldb = in,
                   .C = m->dnext, .ldc = in, .a_type = nn->act, .c_type = nn->act};
    if (u != m->layers - 1) ZRT_CHECK(nn->ops->gelu_backward(nn, dz, m->pre[u], dz, (size_t)B * out));
    ZRT_CHECK(nn->ops->gemm(nn, &dw));
    ZRT_CHECK(nn->ops->bias_backward(nn, db, dz, B, out));
    if (u == 0) return ZRT_OK;
    ZRT_CHECK(nn->ops->gemm(nn, &dx));
    m->dact = m->dnext, m->dnext = dz; /* d(in) is the next unit's d(out) */
    return ZRT_OK;
}

/* ---- declaration: units, parameters, activations ------------------------------------------------- */

static zrt_status declare(mlp *m, const zrt_model_config *cfg, int micro_batch)
{
    zrt_model *base = &m->nn.base;
    if (cfg->layers < 1 || cfg->layers > ZRT_MAX_UNITS || micro_batch < 1)
        return zrt_set_error(ZRT_ERR_INVALID, "mlp: %lld layers, micro batch %d", (long long)cfg->layers, micro_batch);
    int layers = (int)cfg->layers;
    ZRT_CHECK(zrt_model_tables_alloc(base, layers, 2, layers));
    base->tokens_per_sample = 1;
    base->input_bytes_per_sample = (size_t)cfg->d_model * sizeof(float);
    base->labels_per_sample = 1;
    m->dims[0] = cfg->d_model;
    for (int u = 1; u < layers; u++) m->dims[u] = cfg->hidden;
    m->dims[layers] = cfg->vocab;
    char name[48];
    for (int u = 0; u < layers; u++) {
        int64_t in = m->dims[u], out = m->dims[u + 1];
        base->op_unit[u] = u;
        base->matmul_flops_per_sample += 2.0 * (double)(in * out);
        snprintf(name, sizeof name, "layers.%d.weight", u);
        zrt_model_add_param(base, u, name, out, in, ZRT_INIT_NORMAL, 1.0f / sqrtf((float)in));
        snprintf(name, sizeof name, "layers.%d.bias", u);
        zrt_model_add_param(base, u, name, out, 0, ZRT_INIT_ZEROS, 0);
    }
    m->layers = layers; /* valid now: free_buffers walks them */
    return ZRT_OK;
}

static zrt_status alloc_buffers(zrt_model *base, int max_batch)
{
    mlp *m = (mlp *)base;
    const zrt_nn *nn = &m->nn.nn;
    int64_t widest = 0;
    for (int u = 0; u <= m->layers; u++) widest = m->dims[u] > widest ? m->dims[u] : widest;
    char name[64];
    for (int u = 0; u < m->layers; u++) {
        size_t bytes = zrt_nn_act_bytes(nn, max_batch * m->dims[u + 1]);
        snprintf(name, sizeof name, "mlp layer %d output", u);
        ZRT_CHECK(zrt_nn_model_alloc(&m->nn, bytes, name, (void **)&m->act[u + 1]));
        snprintf(name, sizeof name, "mlp layer %d pre-activation", u);
        ZRT_CHECK(zrt_nn_model_alloc(&m->nn, bytes, name, (void **)&m->pre[u]));
    }
    size_t bytes = zrt_nn_act_bytes(nn, max_batch * widest);
    ZRT_CHECK(zrt_nn_model_alloc(&m->nn, bytes, "mlp output gradient", (void **)&m->dact));
    return zrt_nn_model_alloc(&m->nn, bytes, "mlp input gradient", (void **)&m->dnext);
}

static void free_buffers(zrt_model *base)
{
    mlp *m = (mlp *)base;
    for (int u = 1; u <= m->layers; u++) zrt_nn_model_free(&m->nn, m->act[u]), m->act[u] = NULL;
    for (int u = 0; u < m->layers; u++) zrt_nn_model_free(&m->nn, m->pre[u]), m->pre[u] = NULL;
    zrt_nn_model_free(&m->nn, m->dact);
    zrt_nn_model_free(&m->nn, m->dnext);
    m->dact = m->dnext = NULL;
}

static const zrt_model_math mlp_math = {.forward = forward, .loss = loss, .backward = backward,
                                        .free_buffers = free_buffers, .alloc_buffers = alloc_buffers};

zrt_status zrt_model_mlp_create(const zrt_model_config *cfg, zrt_device *device, int micro_batch, zrt_model **out)
{
    mlp *m = calloc(1, sizeof *m);
    if (!m) return zrt_set_error(ZRT_ERR_NOMEM, "mlp: out of memory");
    zrt_model *base = &m->nn.base;
    base->device = device;
    zrt_status status = declare(m, cfg, micro_batch);
    if (status == ZRT_OK)
        status = zrt_nn_model_init(&m->nn, ZRT_MODEL_MLP, device, micro_batch, micro_batch, zrt_matmul_math_of(cfg),
                                   &mlp_math); /* and the activations */
    if (status != ZRT_OK) {
        if (base->destroy) {
            base->destroy(base);
        } else { /* declaring failed: its tables (if any) */
            zrt_model_tables_free(base);
            free(m);
        }
        return status;
    }
    *out = base;
    return ZRT_OK;
}
