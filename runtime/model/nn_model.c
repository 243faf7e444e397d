/* nn_model.c: the one runner behind every built-in model (nn.h): the
 * zrt_model table's set_batch, forward, loss, backward, decode and destroy
 * over a model's zrt_model_math, on whichever device's ops.
 *
 * Why one runner: the zrt_model table is asynchronous (ops are enqueued on
 * a stream, buffers are device memory); a model's math is calls to nn.h's
 * ops. On a device whose ops compute at once (cpu: host_function), each
 * model op runs as one host function on the stream's thread, with a copy of
 * everything it needs taken when it is enqueued; otherwise (cuda) the math
 * runs here and its ops enqueue kernels on the native stream.
 * Invariants: set_batch only records the batch (host side); each op takes
 * its own copy, so a later set_batch never changes queued work. Declared to
 * the check mode: the op's parameters (read), gradients (read-write), the
 * batch or labels (read) and the loss slot (read-write); activations are
 * touched only on the model's stream.
 */
#include "model_internal.h"
#include "zrt/internal/op_timer.h"

#include <stdio.h>
#include <stdlib.h>

typedef enum { RUN_FORWARD, RUN_LOSS, RUN_BACKWARD, RUN_DECODE } run_kind;
static const char *const run_names[] = {"forward", "loss", "backward", "decode"};

/* One op as it runs: everything copied at enqueue time. */
typedef struct {
    zrt_nn_model *model;
    zrt_nn nn; /* the model's, with the op's stream */
    run_kind kind;
    zrt_model_op op;
    float scale, divisor;
    float *loss_sum;
    const float *const *units; /* decode (the runner waits for it: units is the caller's) */
    int n, pos0;
    float *logits;
} nn_job;

static zrt_status run(void *arg)
{
    nn_job *job = arg;
    zrt_model *m = &job->model->base;
    const zrt_model_math *math = job->model->math;
    switch (job->kind) {
    case RUN_FORWARD: return math->forward(m, &job->nn, &job->op);
    case RUN_LOSS: return math->loss(m, &job->nn, &job->op, job->scale, job->divisor, job->loss_sum);
    case RUN_BACKWARD: return math->backward(m, &job->nn, &job->op);
    case RUN_DECODE: break;
    }
    return math->decode(m, &job->nn, job->units, (const int32_t *)job->op.inputs, job->n, job->pos0, job->logits);
}

zrt_matmul_math zrt_matmul_math_of(const zrt_model_config *cfg)
{
    if (cfg->precision == ZRT_PRECISION_BF16) return ZRT_MATMUL_BF16;
    if (cfg->precision == ZRT_PRECISION_FP16) return ZRT_MATMUL_FP16;
    return cfg->allow_tf32 ? ZRT_MATMUL_TF32 : ZRT_MATMUL_FP32;
}

const zrt_nn_ops *zrt_nn_ops_of(zrt_device_kind kind)
{
    static const zrt_nn_ops *const tables[] = {
        &zrt_nn_cpu,
#ifdef ZRT_HAVE_CUDA
        &zrt_nn_cuda,
#endif
    };
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++)
        if (tables[i]->kind == kind) return tables[i];
    return NULL;
}

static zrt_status set_batch(zrt_model *base, const void *inputs, const int32_t *labels, int batch)
{
    zrt_model_batch *now = &((zrt_nn_model *)base)->now;
    if (batch < 1 || batch > now->max_batch)
        return zrt_set_error(ZRT_ERR_INVALID, "model: batch %d outside 1..%d", batch, now->max_batch);
    if (!inputs || !labels) return zrt_set_error(ZRT_ERR_INVALID, "model: NULL inputs or labels");
    now->batch = batch;
    now->inputs = inputs;
    now->labels = labels;
    return ZRT_OK;
}

static size_t unit_bytes(const zrt_nn_model *m, int op)
{
    return (size_t)m->base.unit_numel[m->base.op_unit[op]] * sizeof(float);
}

/* The op's buffers for the check mode (activations are the stream's own). */
static int accesses(const zrt_nn_model *m, const nn_job *job, zrt_access *access)
{
    int n = 0, batch = m->now.batch;
    const zrt_model_op *o = &job->op;
    if (job->kind == RUN_FORWARD || job->kind == RUN_BACKWARD)
        access[n++] = (zrt_access){o->params, unit_bytes(m, o->op), ZRT_ACCESS_READ};
    if (job->kind == RUN_BACKWARD) access[n++] = (zrt_access){o->grads, unit_bytes(m, o->op), ZRT_ACCESS_READ_WRITE};
    if (job->kind == RUN_LOSS) {
        size_t labels = (size_t)batch * (size_t)m->base.labels_per_sample * sizeof(int32_t);
        access[n++] = (zrt_access){o->labels, labels, ZRT_ACCESS_READ};
        access[n++] = (zrt_access){job->loss_sum, sizeof(float), ZRT_ACCESS_READ_WRITE};
    } else if (job->kind == RUN_DECODE) {
        access[n++] = (zrt_access){o->inputs, (size_t)job->n * sizeof(int32_t), ZRT_ACCESS_READ};
        /* The logits: one row of the head's output, as many as its weight (the last op's unit's first parameter) has rows. */
        const zrt_param_info *head = &m->base.params[m->base.op_unit[m->base.n_ops - 1]][0];
        access[n++] = (zrt_access){job->logits, (size_t)head->shape[0] * sizeof(float), ZRT_ACCESS_WRITE};
    } else {
        access[n++] = (zrt_access){o->inputs, (size_t)batch * m->base.input_bytes_per_sample, ZRT_ACCESS_READ};
    }
    return n;
}

/* Runs the job on s: one host function (cpu) or the math here, its ops on s's native stream. */
static zrt_status launch(zrt_nn_model *m, zrt_stream *s, nn_job *job)
{
    job->model = m;
    job->nn = m->nn;
    job->nn.on = s;
    job->nn.stream = zrt_stream_native(s);
    zrt_access access[3];
    int n = accesses(m, job, access);
    char what[64];
    snprintf(what, sizeof what, "%s %s op %d", zrt_model_type_name(m->type), run_names[job->kind], job->op.op);
    if (m->nn.ops->host_function) return zrt_stream_launch_host(s, what, run, job, sizeof *job, access, n);
    if (!job->nn.stream)
        return zrt_set_error(ZRT_ERR_INVALID, "model: the %s model on %s needs a stream of that device, not of %s",
                             zrt_model_type_name(m->type), zrt_device_name(m->base.device),
                             zrt_device_name(zrt_stream_device(s)));
    ZRT_CHECK(zrt_stream_track(s, what, access, n));
    int timed;
    ZRT_CHECK(zrt_op_timer_begin(s, ZRT_OP_MODEL, &timed));
    return zrt_op_timer_end(s, timed, run(job));
}

/* Checks the op and builds its job from the current batch. */
static zrt_status op_job(zrt_nn_model *m, run_kind kind, int op, const float *params, float *grads, nn_job *job)
{
    ZRT_CHECK(zrt_model_check_op(&m->base, m->now.inputs, (int)kind, op, params, grads));
    *job = (nn_job){.kind = kind,
                    .op = {.op = op, .batch = m->now.batch, .inputs = m->now.inputs, .labels = m->now.labels,
                           .params = params, .grads = grads}};
    return ZRT_OK;
}

static zrt_status forward(zrt_model *base, zrt_stream *s, int op, const float *params)
{
    nn_job job;
    ZRT_CHECK(op_job((zrt_nn_model *)base, RUN_FORWARD, op, params, NULL, &job));
    return launch((zrt_nn_model *)base, s, &job);
}

static zrt_status loss(zrt_model *base, zrt_stream *s, float scale, float divisor, float *loss_sum)
{
    if (!loss_sum || !(divisor > 0)) return zrt_set_error(ZRT_ERR_INVALID, "model: loss: NULL slot or divisor <= 0");
    nn_job job;
    ZRT_CHECK(op_job((zrt_nn_model *)base, RUN_LOSS, 0, NULL, NULL, &job));
    job.scale = scale, job.divisor = divisor, job.loss_sum = loss_sum;
    return launch((zrt_nn_model *)base, s, &job);
}

static zrt_status backward(zrt_model *base, zrt_stream *s, int op, const float *params, float *grads)
{
    nn_job job;
    ZRT_CHECK(op_job((zrt_nn_model *)base, RUN_BACKWARD, op, params, grads, &job));
    return launch((zrt_nn_model *)base, s, &job);
}

/* The math's decode; on a host-function device the runner waits for it (units is the caller's array). */
static zrt_status decode(zrt_model *base, zrt_stream *s, const float *const *units, const int32_t *tokens, int n,
                         int pos0, float *logits)
{
    zrt_nn_model *m = (zrt_nn_model *)base;
    if (!units || !tokens || !logits || n < 1 || pos0 < 0 || pos0 + n > base->tokens_per_sample)
        return zrt_set_error(ZRT_ERR_INVALID, "%s: decode of %d tokens at %d (sequences of %lld; NULL buffers?)",
                             zrt_model_type_name(m->type), n, pos0, (long long)base->tokens_per_sample);
    nn_job job = {.kind = RUN_DECODE, .op = {.inputs = tokens}, .units = units, .n = n, .pos0 = pos0, .logits = logits};
    ZRT_CHECK(launch(m, s, &job));
    return m->nn.ops->host_function ? zrt_stream_synchronize(s) : ZRT_OK;
}

static void destroy(zrt_model *base)
{
    if (!base) return;
    zrt_nn_model *m = (zrt_nn_model *)base;
    if (m->nn.ops) zrt_device_synchronize(base->device); /* nothing may still use the buffers */
    if (m->math && m->math->free_buffers) m->math->free_buffers(base);
    if (m->nn.ops) m->nn.ops->fini(&m->nn);
    zrt_model_tables_free(base);
    free(m);
}

zrt_status zrt_nn_model_init(zrt_nn_model *m, zrt_model_type type, zrt_device *device, int max_batch,
                             int64_t loss_rows, zrt_matmul_math math, const zrt_model_math *math_ops)
{
    m->type = type;
    m->math = math_ops;
    m->base.device = device;
    m->base.set_batch = set_batch;
    m->base.forward = forward;
    m->base.loss = loss;
    m->base.backward = backward;
    m->base.decode = math_ops->decode ? decode : NULL;
    m->base.destroy = destroy;
    m->now.max_batch = max_batch;
    m->matmul = math;
    m->loss_rows = loss_rows;
    const zrt_nn_ops *ops = zrt_nn_ops_of(zrt_device_kind_of(device));
    if (!ops)
        return zrt_set_error(ZRT_ERR_UNSUPPORTED,
                             "model: the built-in %s model has no %s implementation in this build (built without "
                             "CUDA); train it on the cpu device: use_cpu: true or zrt.device: cpu",
                             zrt_model_type_name(type), zrt_device_kind_name(zrt_device_kind_of(device)));
    return zrt_nn_model_use_ops(m, ops);
}

/* The activations' element type a table gives a math: the compute dtype
 * where the table types its activations, else fp32. */
static zrt_dtype act_dtype(const zrt_nn_ops *ops, zrt_matmul_math math)
{
    static const zrt_dtype of_math[] = {[ZRT_MATMUL_FP32] = ZRT_DTYPE_F32, [ZRT_MATMUL_TF32] = ZRT_DTYPE_F32,
                                        [ZRT_MATMUL_BF16] = ZRT_DTYPE_BF16, [ZRT_MATMUL_FP16] = ZRT_DTYPE_F16};
    return ops->typed_acts ? of_math[math] : ZRT_DTYPE_F32;
}

zrt_status zrt_nn_model_use_ops(zrt_nn_model *m, const zrt_nn_ops *ops)
{
    if (m->buffers_made) { /* remade below at the new table's element size */
        m->math->free_buffers(&m->base);
        m->buffers_made = false;
        m->base.activation_bytes = 0;
    }
    if (m->nn.ops) m->nn.ops->fini(&m->nn);
    m->nn = (zrt_nn){.device = m->base.device, .model = zrt_model_type_name(m->type), .act = act_dtype(ops, m->matmul)};
    ZRT_CHECK(ops->init(&m->nn, m->matmul, m->loss_rows));
    m->nn.ops = ops; /* last: destroy fini's only what init made */
    m->buffers_made = true; /* even if it fails part way: destroy frees what it made */
    return m->math->alloc_buffers(&m->base, m->now.max_batch);
}

zrt_status zrt_nn_model_alloc(zrt_nn_model *m, size_t bytes, const char *name, void **out)
{
    ZRT_CHECK(zrt_device_alloc(m->base.device, ZRT_MEM_ACTIVATIONS, bytes, name, NULL, out));
    m->base.activation_bytes += (int64_t)bytes; /* what zrt_model.activation_bytes reports */
    return ZRT_OK;
}

void zrt_nn_model_free(zrt_nn_model *m, void *ptr) { zrt_device_free(m->base.device, ptr, NULL); }
