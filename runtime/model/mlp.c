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
    zrt_mlp_acts a;                  /* model_shape.c's buffers */
} mlp;

static zrt_status forward(zrt_model *base, const zrt_cpu_op *op)
{
    mlp *m = (mlp *)base;
    int u = op->op, B = op->batch, in = (int)m->a.dims[u], out = (int)m->a.dims[u + 1];
    const float *W = op->params, *b = op->params + (int64_t)in * out;
    float *z = m->a.pre[u], *y = m->a.act[u + 1];
    for (int r = 0; r < B; r++) memcpy(z + (int64_t)r * out, b, (size_t)out * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, out, in, 1.0f, zrt_mlp_unit_input(&m->a, op->inputs, u), in, W, in, 1.0f, z,
                out);
    bool last = u == m->a.layers - 1;
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
    int B = op->batch, V = (int)m->a.dims[m->a.layers];
    const float *logits = m->a.act[m->a.layers];
    double total = 0;
    for (int r = 0; r < B; r++) {
        int label = op->labels[r];
        if (label < 0 || label >= V) return zrt_set_error(ZRT_ERR_INVALID, "mlp: label %d outside 0..%d", label, V - 1);
        const float *row = logits + (int64_t)r * V;
        float *drow = m->a.dact + (int64_t)r * V;
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
    int u = op->op, B = op->batch, in = (int)m->a.dims[u], out = (int)m->a.dims[u + 1];
    const float *W = op->params;
    float *dW = op->grads, *db = op->grads + (int64_t)in * out, *dz = m->a.dact;
    if (u != m->a.layers - 1)
        m->vm->gelu_backward(dz, m->a.pre[u], dz, (int64_t)B * out);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, B, 1.0f, dz, out, zrt_mlp_unit_input(&m->a, op->inputs, u), in, 1.0f, dW,
                in);
    for (int r = 0; r < B; r++)
        for (int c = 0; c < out; c++) db[c] += dz[(int64_t)r * out + c];
    if (u > 0) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, in, out, 1.0f, dz, out, W, in, 0.0f, m->a.dnext, in);
        zrt_mlp_swap(&m->a);
    }
    return ZRT_OK;
}

static void free_buffers(zrt_model *base) { zrt_mlp_acts_free(&((mlp *)base)->a, base->device); }

static const zrt_cpu_model_ops mlp_ops = {forward, loss, backward, free_buffers};

zrt_status zrt_model_mlp_create(const zrt_model_config *cfg, zrt_device *device, int micro_batch, zrt_model **out)
{
    mlp *m = calloc(1, sizeof *m);
    if (!m) return zrt_set_error(ZRT_ERR_NOMEM, "mlp: out of memory");
    zrt_cpu_model_init(&m->cpu, ZRT_MODEL_MLP, device, micro_batch, &mlp_ops);
    zrt_model *base = &m->cpu.base;
    m->vm = zrt_vecmath_best();
    zrt_status status = zrt_mlp_declare(base, cfg, micro_batch, &m->a);
    if (status == ZRT_OK) status = zrt_mlp_acts_alloc(&m->a, micro_batch, device);
    if (status != ZRT_OK) {
        base->destroy(base);
        return status;
    }
    *out = base;
    return ZRT_OK;
}
