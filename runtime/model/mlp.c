/* model_mlp.c: the built-in MLP: each layer is a unit, forward and backward in
 * C with OpenBLAS's cblas_sgemm; GELU (tanh form) between layers,
 * cross-entropy on the last.
 *
 * Layout of unit u's flat parameters: W (out x in, row-major) then b (out).
 * Activations (per unit, batch rows): in (B x in), pre-activation z (B x out),
 * out = gelu(z) (B x out); the last unit's out is the logits. All fp32.
 * Check: tests/test_model_grad.c (finite differences per op).
 */
#include "model_internal.h"
#include "gelu.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    zrt_model base;
    int layers, max_batch, batch;
    int64_t dims[ZRT_MAX_UNITS + 1]; /* dims[u] -> dims[u + 1] */
    float *act[ZRT_MAX_UNITS + 1];   /* act[0] = inputs; act[u + 1] = out of unit u (B x dims[u + 1]) */
    float *pre[ZRT_MAX_UNITS];       /* z of unit u (B x dims[u + 1]) */
    float *dact;                     /* d(out) of the unit being back-propagated */
    float *dnext;                    /* d(in), becomes the next dact */
    int32_t *labels;
} mlp;

static zrt_status set_batch(zrt_model *base, const void *inputs, const int32_t *labels, int batch)
{
    mlp *m = (mlp *)base;
    if (batch < 1 || batch > m->max_batch)
        return zrt_set_error(ZRT_ERR_INVALID, "mlp: batch %d outside 1..%d", batch, m->max_batch);
    m->batch = batch;
    memcpy(m->act[0], inputs, (size_t)batch * (size_t)m->dims[0] * sizeof(float));
    memcpy(m->labels, labels, (size_t)batch * sizeof *labels);
    return ZRT_OK;
}

static zrt_status forward(zrt_model *base, int u, const float *params)
{
    mlp *m = (mlp *)base;
    int B = m->batch, in = (int)m->dims[u], out = (int)m->dims[u + 1];
    const float *W = params, *b = params + (int64_t)in * out;
    float *z = m->pre[u], *y = m->act[u + 1];
    for (int r = 0; r < B; r++) memcpy(z + (int64_t)r * out, b, (size_t)out * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, out, in, 1.0f, m->act[u], in, W, in, 1.0f, z, out);
    bool last = u == m->layers - 1;
    for (int64_t i = 0; i < (int64_t)B * out; i++) y[i] = last ? z[i] : zrt_gelu(z[i]);
    return ZRT_OK;
}

/* Mean cross-entropy; dact = d(scale * loss)/d(logits). */
static float loss(zrt_model *base, float scale)
{
    mlp *m = (mlp *)base;
    int B = m->batch, V = (int)m->dims[m->layers];
    const float *logits = m->act[m->layers];
    double total = 0;
    for (int r = 0; r < B; r++) {
        const float *row = logits + (int64_t)r * V;
        float *drow = m->dact + (int64_t)r * V;
        float max = row[0];
        for (int c = 1; c < V; c++) max = fmaxf(max, row[c]);
        double sum = 0;
        for (int c = 0; c < V; c++) sum += exp((double)(row[c] - max));
        double log_sum = log(sum) + max;
        total += log_sum - row[m->labels[r]];
        for (int c = 0; c < V; c++) drow[c] = (float)(exp(row[c] - log_sum) * scale / B);
        drow[m->labels[r]] -= scale / (float)B;
    }
    return (float)(total / B);
}

static zrt_status backward(zrt_model *base, int u, const float *params, float *grads)
{
    mlp *m = (mlp *)base;
    int B = m->batch, in = (int)m->dims[u], out = (int)m->dims[u + 1];
    const float *W = params;
    float *dW = grads, *db = grads + (int64_t)in * out, *dz = m->dact;
    if (u != m->layers - 1)
        for (int64_t i = 0; i < (int64_t)B * out; i++) dz[i] *= zrt_gelu_grad(m->pre[u][i]);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, B, 1.0f, dz, out, m->act[u], in, 1.0f, dW, in);
    for (int r = 0; r < B; r++)
        for (int c = 0; c < out; c++) db[c] += dz[(int64_t)r * out + c];
    if (u > 0) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, in, out, 1.0f, dz, out, W, in, 0.0f, m->dnext, in);
        float *t = m->dact;
        m->dact = m->dnext;
        m->dnext = t;
    }
    return ZRT_OK;
}

static void destroy(zrt_model *base)
{
    mlp *m = (mlp *)base;
    if (!m) return;
    for (int u = 0; u <= m->layers; u++) zrt_mem_free(base->mem, ZRT_MEM_ACTIVATIONS, m->act[u]);
    for (int u = 0; u < m->layers; u++) zrt_mem_free(base->mem, ZRT_MEM_ACTIVATIONS, m->pre[u]);
    zrt_mem_free(base->mem, ZRT_MEM_ACTIVATIONS, m->dact);
    zrt_mem_free(base->mem, ZRT_MEM_ACTIVATIONS, m->dnext);
    zrt_mem_free(base->mem, ZRT_MEM_ACTIVATIONS, m->labels);
    free(m);
}

static void declare_unit(mlp *m, int u)
{
    int64_t in = m->dims[u], out = m->dims[u + 1];
    zrt_param_info *p = m->base.params[u];
    p[0] = (zrt_param_info){.numel = in * out, .offset = 0, .init = ZRT_INIT_NORMAL, .init_std = 1.0f / sqrtf((float)in)};
    snprintf(p[0].name, sizeof p[0].name, "layers.%d.weight", u);
    p[1] = (zrt_param_info){.numel = out, .offset = in * out, .init = ZRT_INIT_ZEROS};
    snprintf(p[1].name, sizeof p[1].name, "layers.%d.bias", u);
    m->base.n_params[u] = 2;
    m->base.unit_numel[u] = in * out + out;
}

zrt_status zrt_model_mlp_create(const zrt_model_config *cfg, int micro_batch, zrt_mem_stats *mem, zrt_model **out)
{
    if (cfg->layers < 1 || cfg->layers > ZRT_MAX_UNITS || micro_batch < 1)
        return zrt_set_error(ZRT_ERR_INVALID, "mlp: %lld layers, micro batch %d", (long long)cfg->layers, micro_batch);
    mlp *m = calloc(1, sizeof *m);
    if (!m) return zrt_set_error(ZRT_ERR_NOMEM, "mlp: out of memory");
    m->layers = (int)cfg->layers;
    m->max_batch = micro_batch;
    m->base.mem = mem;
    m->base.n_units = m->layers;
    m->base.n_ops = m->layers;
    for (int u = 0; u < m->layers; u++) m->base.op_unit[u] = u;
    m->base.tokens_per_sample = 1;
    m->base.input_bytes_per_sample = (size_t)cfg->d_model * sizeof(float);
    m->base.labels_per_sample = 1;
    m->dims[0] = cfg->d_model;
    for (int u = 1; u < m->layers; u++) m->dims[u] = cfg->hidden;
    m->dims[m->layers] = cfg->vocab;
    for (int u = 0; u < m->layers; u++) m->base.matmul_flops_per_sample += 2.0 * (double)(m->dims[u] * m->dims[u + 1]);
    int64_t widest = 0;
    for (int u = 0; u <= m->layers; u++) widest = m->dims[u] > widest ? m->dims[u] : widest;
    bool ok = true;
    for (int u = 0; u <= m->layers; u++) {
        m->act[u] = zrt_mem_alloc(mem, ZRT_MEM_ACTIVATIONS, (size_t)(micro_batch * m->dims[u]) * sizeof(float));
        ok &= m->act[u] != NULL;
        if (u < m->layers) {
            declare_unit(m, u);
            m->pre[u] = zrt_mem_alloc(mem, ZRT_MEM_ACTIVATIONS, (size_t)(micro_batch * m->dims[u + 1]) * sizeof(float));
            ok &= m->pre[u] != NULL;
        }
    }
    m->dact = zrt_mem_alloc(mem, ZRT_MEM_ACTIVATIONS, (size_t)(micro_batch * widest) * sizeof(float));
    m->dnext = zrt_mem_alloc(mem, ZRT_MEM_ACTIVATIONS, (size_t)(micro_batch * widest) * sizeof(float));
    m->labels = zrt_mem_alloc(mem, ZRT_MEM_ACTIVATIONS, (size_t)micro_batch * sizeof(int32_t));
    m->base.set_batch = set_batch;
    m->base.forward = forward;
    m->base.loss = loss;
    m->base.backward = backward;
    m->base.destroy = destroy;
    if (!ok || !m->dact || !m->dnext || !m->labels) {
        destroy(&m->base);
        return zrt_set_error(ZRT_ERR_NOMEM, "mlp: out of memory for activations");
    }
    *out = &m->base;
    return ZRT_OK;
}
