/* cpu_model.c: the runner behind every cpu-backend model: the zrt_model
 * table's set_batch, forward, loss, backward and destroy, each op enqueued
 * as a host function on the caller's stream (model_internal.h says why).
 *
 * Invariants: set_batch only records the batch (host side); each enqueued op
 * carries its own copy of it, so a later set_batch never changes work
 * already queued. Accesses declared for the check mode: the op's parameters
 * (read), gradients (read-write), the batch (read) and the loss slot
 * (read-write); activations are touched only on the model's stream.
 */
#include "model_internal.h"

#include <stdio.h>
#include <stdlib.h>

typedef enum { RUN_FORWARD, RUN_LOSS, RUN_BACKWARD } run_kind;

typedef struct {
    zrt_cpu_model *model;
    run_kind kind;
    zrt_cpu_op op;
    float scale, divisor;
    float *loss_sum;
} cpu_job;

/* On the stream's thread. */
static zrt_status run(void *arg)
{
    cpu_job *job = arg;
    zrt_model *m = &job->model->base;
    const zrt_cpu_model_ops *ops = job->model->ops;
    if (job->kind == RUN_FORWARD) return ops->forward(m, &job->op);
    if (job->kind == RUN_BACKWARD) return ops->backward(m, &job->op);
    float mean = 0;
    ZRT_CHECK(ops->loss(m, &job->op, job->scale, &mean));
    *job->loss_sum += mean / job->divisor;
    return ZRT_OK;
}

static zrt_status set_batch(zrt_model *base, const void *inputs, const int32_t *labels, int batch)
{
    zrt_cpu_model *m = (zrt_cpu_model *)base;
    return zrt_model_batch_set(&m->now, inputs, labels, batch);
}

/* Checks the op and builds its job from the current batch. */
static zrt_status make_job(zrt_cpu_model *m, run_kind kind, int op, const float *params, float *grads, cpu_job *job)
{
    ZRT_CHECK(zrt_model_check_op(&m->base, m->now.inputs, (int)kind, op, params, grads));
    *job = (cpu_job){.model = m, .kind = kind,
                     .op = {.op = op, .batch = m->now.batch, .inputs = m->now.inputs, .labels = m->now.labels, .params = params,
                            .grads = grads}};
    return ZRT_OK;
}

/* "mlp forward op 2", for check-mode errors. */
static const char *describe(const zrt_cpu_model *m, const char *what, int op, char *buf, size_t size)
{
    snprintf(buf, size, "%s %s op %d", zrt_model_type_name(m->type), what, op);
    return buf;
}

static size_t input_bytes(const zrt_cpu_model *m) { return (size_t)m->now.batch * m->base.input_bytes_per_sample; }
static size_t unit_bytes(const zrt_cpu_model *m, int op)
{
    return (size_t)m->base.unit_numel[m->base.op_unit[op]] * sizeof(float);
}

static zrt_status forward(zrt_model *base, zrt_stream *s, int op, const float *params)
{
    zrt_cpu_model *m = (zrt_cpu_model *)base;
    cpu_job job;
    ZRT_CHECK(make_job(m, RUN_FORWARD, op, params, NULL, &job));
    zrt_access access[2] = {{params, unit_bytes(m, op), ZRT_ACCESS_READ}, {m->now.inputs, input_bytes(m), ZRT_ACCESS_READ}};
    char what[64];
    return zrt_stream_launch_host(s, describe(m, "forward", op, what, sizeof what), run, &job, sizeof job, access, 2);
}

static zrt_status loss(zrt_model *base, zrt_stream *s, float scale, float divisor, float *loss_sum)
{
    zrt_cpu_model *m = (zrt_cpu_model *)base;
    if (!loss_sum || !(divisor > 0)) return zrt_set_error(ZRT_ERR_INVALID, "model: loss: NULL slot or divisor <= 0");
    cpu_job job;
    ZRT_CHECK(make_job(m, RUN_LOSS, 0, NULL, NULL, &job));
    job.scale = scale;
    job.divisor = divisor;
    job.loss_sum = loss_sum;
    size_t label_bytes = (size_t)m->now.batch * (size_t)base->labels_per_sample * sizeof(int32_t);
    zrt_access access[2] = {{m->now.labels, label_bytes, ZRT_ACCESS_READ}, {loss_sum, sizeof(float), ZRT_ACCESS_READ_WRITE}};
    return zrt_stream_launch_host(s, "model loss", run, &job, sizeof job, access, 2);
}

static zrt_status backward(zrt_model *base, zrt_stream *s, int op, const float *params, float *grads)
{
    zrt_cpu_model *m = (zrt_cpu_model *)base;
    cpu_job job;
    ZRT_CHECK(make_job(m, RUN_BACKWARD, op, params, grads, &job));
    zrt_access access[3] = {{params, unit_bytes(m, op), ZRT_ACCESS_READ},
                            {grads, unit_bytes(m, op), ZRT_ACCESS_READ_WRITE},
                            {m->now.inputs, input_bytes(m), ZRT_ACCESS_READ}};
    char what[64];
    return zrt_stream_launch_host(s, describe(m, "backward", op, what, sizeof what), run, &job, sizeof job, access, 3);
}

static void destroy(zrt_model *base)
{
    if (!base) return;
    zrt_cpu_model *m = (zrt_cpu_model *)base;
    m->ops->free_buffers(base);
    zrt_model_tables_free(base);
    free(m);
}

void zrt_cpu_model_init(zrt_cpu_model *m, zrt_model_type type, zrt_device *device, int max_batch,
                        const zrt_cpu_model_ops *ops)
{
    m->type = type;
    m->base.device = device;
    m->base.set_batch = set_batch;
    m->base.forward = forward;
    m->base.loss = loss;
    m->base.backward = backward;
    m->base.destroy = destroy;
    m->ops = ops;
    m->now.max_batch = max_batch;
}

zrt_status zrt_cpu_model_alloc(zrt_cpu_model *m, size_t bytes, const char *name, float **out)
{
    void *ptr = NULL;
    ZRT_CHECK(zrt_device_alloc(m->base.device, ZRT_MEM_ACTIVATIONS, bytes, name, NULL, &ptr));
    *out = ptr;
    return ZRT_OK;
}

void zrt_cpu_model_free(zrt_cpu_model *m, void *ptr) { zrt_device_free(m->base.device, ptr, NULL); }
