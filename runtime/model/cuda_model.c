/* cuda_model.c: the runner behind every CUDA model (cuda_model.h says why):
 * the zrt_model table's set_batch, forward, loss, backward and destroy,
 * each op checked, its buffers declared to the check mode, and its kernels
 * enqueued on the stream's cudaStream_t by the model's own function.
 *
 * Invariants: as cpu_model.c -- set_batch records the batch host side and
 * each op takes its copy when enqueued. Declared accesses: the op's
 * parameters (read), gradients (read-write), the batch (read), the loss
 * slot (read-write); activations are touched only on the model's stream.
 */
#ifdef ZRT_HAVE_CUDA

#include "cuda_model.h"

#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>


typedef struct {
    volatile int32_t *bad;
    char message[160];
} flag_check;

/* A host function in stream order: the kernels before it have run. */
static zrt_status check_flag(void *arg)
{
    flag_check *c = arg;
    if (!*c->bad) return ZRT_OK;
    *c->bad = 0;
    return zrt_set_error(ZRT_ERR_INVALID, "%s", c->message);
}

zrt_status zrt_cuda_model_check_flag(zrt_cuda_model *m, const zrt_cuda_op *op, const char *what, int limit)
{
    flag_check c = {.bad = m->bad};
    snprintf(c.message, sizeof c.message, "%s: a %s outside the vocabulary of %d in the batch",
             zrt_model_type_name(m->type), what, limit);
    return zrt_stream_launch_host(op->on, "model input check", check_flag, &c, sizeof c, NULL, 0);
}

static zrt_status set_batch(zrt_model *base, const void *inputs, const int32_t *labels, int batch)
{
    zrt_cuda_model *m = (zrt_cuda_model *)base;
    return zrt_model_batch_set(&m->now, inputs, labels, batch);
}

static size_t input_bytes(const zrt_cuda_model *m) { return (size_t)m->now.batch * m->base.input_bytes_per_sample; }
static size_t label_bytes(const zrt_cuda_model *m)
{
    return (size_t)m->now.batch * (size_t)m->base.labels_per_sample * sizeof(int32_t);
}
static size_t unit_bytes(const zrt_cuda_model *m, int op)
{
    return (size_t)m->base.unit_numel[m->base.op_unit[op]] * sizeof(float);
}

/* Checks the op, declares its buffers and builds it from the current batch. */
static zrt_status begin(zrt_cuda_model *m, zrt_stream *s, int kind, int op, const float *params, float *grads,
                        zrt_cuda_op *out)
{
    ZRT_CHECK(zrt_model_check_op(&m->base, m->now.inputs, kind, op, params, grads));
    zrt_access access[3];
    int n = 0;
    if (kind != 1) access[n++] = (zrt_access){params, unit_bytes(m, op), ZRT_ACCESS_READ};
    if (kind == 2) access[n++] = (zrt_access){grads, unit_bytes(m, op), ZRT_ACCESS_READ_WRITE};
    access[n++] = kind == 1 ? (zrt_access){m->now.labels, label_bytes(m), ZRT_ACCESS_READ}
                            : (zrt_access){m->now.inputs, input_bytes(m), ZRT_ACCESS_READ};
    char what[64];
    snprintf(what, sizeof what, "%s %s op %d", zrt_model_type_name(m->type),
             kind == 0 ? "forward" : kind == 1 ? "loss" : "backward", op);
    ZRT_CHECK(zrt_stream_track(s, what, access, n));
    void *native = zrt_stream_native(s);
    if (!native)
        return zrt_set_error(ZRT_ERR_INVALID, "model: the CUDA %s model needs a stream of a cuda device, not %s",
                             zrt_model_type_name(m->type), zrt_device_name(zrt_stream_device(s)));
    *out = (zrt_cuda_op){.op = op, .batch = m->now.batch, .inputs = m->now.inputs, .labels = m->now.labels, .params = params,
                         .grads = grads, .stream = native, .on = s};
    return ZRT_OK;
}

static zrt_status forward(zrt_model *base, zrt_stream *s, int op, const float *params)
{
    zrt_cuda_model *m = (zrt_cuda_model *)base;
    zrt_cuda_op o;
    ZRT_CHECK(begin(m, s, 0, op, params, NULL, &o));
    return m->ops->forward(base, &o);
}

static zrt_status loss(zrt_model *base, zrt_stream *s, float scale, float divisor, float *loss_sum)
{
    zrt_cuda_model *m = (zrt_cuda_model *)base;
    if (!loss_sum || !(divisor > 0)) return zrt_set_error(ZRT_ERR_INVALID, "model: loss: NULL slot or divisor <= 0");
    zrt_cuda_op o;
    ZRT_CHECK(begin(m, s, 1, 0, NULL, NULL, &o));
    zrt_access slot = {loss_sum, sizeof(float), ZRT_ACCESS_READ_WRITE};
    ZRT_CHECK(zrt_stream_track(s, "model loss slot", &slot, 1));
    return m->ops->loss(base, &o, scale, divisor, loss_sum);
}

static zrt_status backward(zrt_model *base, zrt_stream *s, int op, const float *params, float *grads)
{
    zrt_cuda_model *m = (zrt_cuda_model *)base;
    zrt_cuda_op o;
    ZRT_CHECK(begin(m, s, 2, op, params, grads, &o));
    return m->ops->backward(base, &o);
}

static void destroy(zrt_model *base)
{
    if (!base) return;
    zrt_cuda_model *m = (zrt_cuda_model *)base;
    zrt_device_synchronize(base->device); /* nothing may still use the buffers */
    if (m->ops) m->ops->free_buffers(base);
    zrt_cuda_blas_destroy(m->blas, base->device);
    zrt_host_free(base->device, (void *)m->bad);
    zrt_device_free(base->device, m->losses, NULL);
    zrt_model_tables_free(base);
    free(m);
}

zrt_status zrt_cuda_model_init(zrt_cuda_model *m, zrt_model_type type, zrt_device *device, int max_batch,
                               int rows_per_sample, zrt_matmul_math math, const zrt_cuda_model_ops *ops)
{
    m->type = type;
    m->base.device = device;
    m->base.set_batch = set_batch;
    m->base.forward = forward;
    m->base.loss = loss;
    m->base.backward = backward;
    m->base.destroy = destroy;
    m->now.max_batch = max_batch;
    ZRT_CHECK(zrt_cuda_blas_create(device, math, &m->blas));
    ZRT_CHECK(zrt_host_alloc(device, ZRT_MEM_ACTIVATIONS, sizeof(int32_t), "model input flag", (void **)&m->bad));
    *m->bad = 0;
    ZRT_CHECK(zrt_device_alloc(device, ZRT_MEM_ACTIVATIONS, (size_t)max_batch * (size_t)rows_per_sample * sizeof(double),
                               "model loss rows", NULL, (void **)&m->losses));
    m->ops = ops; /* last: destroy frees the model's buffers only once they may exist */
    return ZRT_OK;
}

#else
typedef int zrt_cuda_model_absent; /* built without CUDA: the CUDA models are not registered */
#endif
