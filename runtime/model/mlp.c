/* mlp.c: the built-in MLP on the cpu device: each layer is a unit, forward
 * and backward in C with OpenBLAS's cblas_sgemm; GELU (tanh form, vecmath.h)
 * between layers, cross-entropy on the last. The runner (cpu_model.c) runs these
 * functions on the stream's thread.
 *
 * Layout of unit u's flat parameters: W (out x in, row-major) then b (out).
 * Activations (per unit, batch rows): in (B x in; unit 0 reads the batch's
 * inputs), pre-activation z (B x out), out = gelu(z) (B x out); the last
 * unit's out is the logits. All fp32, device memory.
 * Check: tests/test_model_grad.c (finite differences per op).
 */
#include "model_internal.h"

#include "vecmath.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    zrt_cpu_model cpu;
    const zrt_vecmath *vm;           /* this CPU's vector path */
    int layers;
    int64_t dims[ZRT_MAX_UNITS + 1]; /* dims[u] -> dims[u + 1] */
    float *act[ZRT_MAX_UNITS + 1];   /* act[u + 1] = out of unit u (B x dims[u + 1]); act[0] unused */
    float *pre[ZRT_MAX_UNITS];       /* z of unit u (B x dims[u + 1]) */
    float *dact;                     /* d(out) of the unit being back-propagated */
    float *dnext;                    /* d(in), becomes the next dact */
} mlp;

/* The input of unit u: the batch for unit 0. */
static const float *unit_input(const mlp *m, const zrt_cpu_op *op, int u)
{
    return u == 0 ? (const float *)op->inputs : m->act[u];
}

static zrt_status forward(zrt_model *base, const zrt_cpu_op *op)
{
    mlp *m = (mlp *)base;
    int u = op->op, B = op->batch, in = (int)m->dims[u], out = (int)m->dims[u + 1];
    const float *W = op->params, *b = op->params + (int64_t)in * out;
    float *z = m->pre[u], *y = m->act[u + 1];
    for (int r = 0; r < B; r++) memcpy(z + (int64_t)r * out, b, (size_t)out * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, out, in, 1.0f, unit_input(m, op, u), in, W, in, 1.0f, z,
                out);
    bool last = u == m->layers - 1;
    if (last)
        memcpy(y, z, (size_t)B * (size_t)out * sizeof(float));
    else
        m->vm->gelu_forward(y, z, (int64_t)B * out);
    return ZRT_OK;
}

/* Mean cross-entropy; dact = d(scale * loss)/d(logits). */
static zrt_status loss(zrt_model *base, const zrt_cpu_op *op, float scale, float *mean)
{
    mlp *m = (mlp *)base;
    int B = op->batch, V = (int)m->dims[m->layers];
    const float *logits = m->act[m->layers];
    double total = 0;
    for (int r = 0; r < B; r++) {
        int label = op->labels[r];
        if (label < 0 || label >= V) return zrt_set_error(ZRT_ERR_INVALID, "mlp: label %d outside 0..%d", label, V - 1);
        const float *row = logits + (int64_t)r * V;
        float *drow = m->dact + (int64_t)r * V;
        float max = row[0];
        for (int c = 1; c < V; c++) max = fmaxf(max, row[c]);
        double sum = 0;
        for (int c = 0; c < V; c++) sum += exp((double)(row[c] - max));
        double log_sum = log(sum) + max;
        total += log_sum - row[label];
        for (int c = 0; c < V; c++) drow[c] = (float)(exp(row[c] - log_sum) * scale / B);
        drow[label] -= scale / (float)B;
    }
    *mean = (float)(total / B);
    return ZRT_OK;
}

static zrt_status backward(zrt_model *base, const zrt_cpu_op *op)
{
    mlp *m = (mlp *)base;
    int u = op->op, B = op->batch, in = (int)m->dims[u], out = (int)m->dims[u + 1];
    const float *W = op->params;
    float *dW = op->grads, *db = op->grads + (int64_t)in * out, *dz = m->dact;
    if (u != m->layers - 1)
        m->vm->gelu_backward(dz, m->pre[u], dz, (int64_t)B * out);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, B, 1.0f, dz, out, unit_input(m, op, u), in, 1.0f, dW,
                in);
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

static void free_buffers(zrt_model *base)
{
    mlp *m = (mlp *)base;
    for (int u = 1; u <= m->layers; u++) zrt_cpu_model_free(&m->cpu, m->act[u]);
    for (int u = 0; u < m->layers; u++) zrt_cpu_model_free(&m->cpu, m->pre[u]);
    zrt_cpu_model_free(&m->cpu, m->dact);
    zrt_cpu_model_free(&m->cpu, m->dnext);
}

static const zrt_cpu_model_ops mlp_ops = {forward, loss, backward, free_buffers};

static zrt_status alloc_buffers(mlp *m, int micro_batch)
{
    int64_t widest = 0;
    for (int u = 0; u <= m->layers; u++) widest = m->dims[u] > widest ? m->dims[u] : widest;
    char name[64];
    for (int u = 0; u < m->layers; u++) {
        size_t bytes = (size_t)(micro_batch * m->dims[u + 1]) * sizeof(float);
        snprintf(name, sizeof name, "mlp layer %d output", u);
        ZRT_CHECK(zrt_cpu_model_alloc(&m->cpu, bytes, name, &m->act[u + 1]));
        snprintf(name, sizeof name, "mlp layer %d pre-activation", u);
        ZRT_CHECK(zrt_cpu_model_alloc(&m->cpu, bytes, name, &m->pre[u]));
    }
    size_t bytes = (size_t)(micro_batch * widest) * sizeof(float);
    ZRT_CHECK(zrt_cpu_model_alloc(&m->cpu, bytes, "mlp output gradient", &m->dact));
    return zrt_cpu_model_alloc(&m->cpu, bytes, "mlp input gradient", &m->dnext);
}

zrt_status zrt_model_mlp_create(const zrt_model_config *cfg, zrt_device *device, int micro_batch, zrt_model **out)
{
    mlp *m = calloc(1, sizeof *m);
    if (!m) return zrt_set_error(ZRT_ERR_NOMEM, "mlp: out of memory");
    zrt_cpu_model_init(&m->cpu, ZRT_MODEL_MLP, device, micro_batch, &mlp_ops);
    zrt_model *base = &m->cpu.base;
    m->vm = zrt_vecmath_best();
    zrt_status status = zrt_mlp_declare(base, cfg, micro_batch, m->dims);
    if (status == ZRT_OK) {
        m->layers = (int)cfg->layers; /* valid now: free_buffers walks them */
        status = alloc_buffers(m, micro_batch);
    }
    if (status != ZRT_OK) {
        base->destroy(base);
        return status;
    }
    *out = base;
    return ZRT_OK;
}
