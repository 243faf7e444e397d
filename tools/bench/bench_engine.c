/* bench_engine.c: the training benches' measurement (bench_engine.h): runs
 * opened from a base config, steps timed from an idle device, runs
 * interleaved (or in blocks), and the model alone.
 *
 * Why from a base config: bench train and bench gpu differ in the model,
 * the device and the precision; how a step is timed must not differ.
 */
#include "bench_engine.h"

#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void zrt_bench_config_with(const zrt_config *base, zrt_bench_kind kind, const char *nvme_dir, zrt_config *out)
{
    *out = *base;
    out->zero.stage = kind.stage;
    out->zero.offload_optimizer.device = kind.offload;
    if (kind.offload == ZRT_OFFLOAD_NVME) {
        out->zero.offload_optimizer.n_nvme_paths = 1;
        snprintf(out->zero.offload_optimizer.nvme_paths[0], ZRT_PATH_MAX, "%s", nvme_dir);
    }
    zrt_config_validate(out);
}

void zrt_bench_base_config(zrt_config *cfg, int world, int64_t micro)
{
    zrt_config_init(cfg);
    cfg->distributed_type = ZRT_DIST_DEEPSPEED;
    cfg->num_processes = world;
    cfg->zero.overlap_comm = true;
    cfg->zero.stage3_param_persistence_threshold = 0;
    cfg->batch_given.micro_batch_per_gpu = micro;
}

zrt_status zrt_bench_run_open(zrt_bench_run *r, const zrt_config *base, zrt_bench_kind kind, const char *nvme_dir,
                              zrt_device *device, zrt_comm *comm)
{
    memset(r, 0, sizeof *r);
    zrt_bench_config_with(base, kind, nvme_dir, &r->cfg);
    ZRT_CHECK(zrt_model_create(&r->cfg.job.model, device, (int)r->cfg.batch.micro_batch_per_gpu, &r->model));
    ZRT_CHECK(zrt_data_init(&r->data, &r->cfg));
    ZRT_CHECK(zrt_engine_create(&r->cfg, comm, r->model, &r->engine));
    return zrt_engine_synchronize(r->engine);
}

void zrt_bench_run_close(zrt_bench_run *r)
{
    zrt_engine_destroy(r->engine);
    if (r->model) r->model->destroy(r->model);
    zrt_data_fini(&r->data);
    memset(r, 0, sizeof *r);
}

zrt_status zrt_bench_run_step(zrt_bench_run *r, zrt_comm *comm, double *seconds)
{
    if (comm) ZRT_CHECK(zrt_engine_synchronize(r->engine));
    if (comm) ZRT_CHECK(zrt_comm_barrier(comm));
    double t = zrt_now();
    ZRT_CHECK(zrt_engine_step(r->engine, &r->data, &r->result));
    ZRT_CHECK(zrt_engine_synchronize(r->engine));
    *seconds = zrt_now() - t;
    return ZRT_OK;
}

/* The timing of a run whose steps are done; closes it. */
static void finish_run(zrt_bench_run *r, int steps, bool ok, zrt_bench_timing *out)
{
    if (ok)
        *out = (zrt_bench_timing){zrt_bench_median(r->times, steps),
                                  (double)r->result.samples * (double)r->model->tokens_per_sample,
                                  3.0 * r->model->matmul_flops_per_sample * (double)r->cfg.batch.micro_batch_per_gpu *
                                      (double)r->cfg.batch.gradient_accumulation_steps};
    zrt_bench_run_close(r);
}

/* steps + 3 steps of r (the first 3 untimed), from step `first` on, `count` of them. */
static zrt_status run_steps(zrt_bench_run *r, zrt_comm *comm, int first, int count)
{
    zrt_status status = ZRT_OK;
    for (int i = first; i < first + count && status == ZRT_OK; i++) {
        double t = 0;
        status = zrt_bench_run_step(r, comm, &t);
        if (i >= 3) r->times[i - 3] = t;
    }
    return status;
}

zrt_status zrt_bench_time_runs(const zrt_config *base, int steps, const char *nvme_dir, zrt_device *device,
                               zrt_comm *comm, bool blocks, int n, const zrt_bench_kind *kinds, zrt_bench_timing *out)
{
    static zrt_bench_run runs[4];
    if (n > 4 || steps > ZRT_BENCH_MAX_STEPS) return zrt_set_error(ZRT_ERR_INVALID, "bench: %d runs of %d steps", n, steps);
    zrt_status status = ZRT_OK;
    if (blocks) { /* one engine alive at a time: each run made, stepped and closed in turn */
        for (int k = 0; k < n && status == ZRT_OK; k++) {
            status = zrt_bench_run_open(&runs[k], base, kinds[k], nvme_dir, device, comm);
            if (status == ZRT_OK) status = run_steps(&runs[k], comm, 0, steps + 3);
            finish_run(&runs[k], steps, status == ZRT_OK, &out[k]);
        }
        return status;
    }
    for (int k = 0; k < n && status == ZRT_OK; k++) status = zrt_bench_run_open(&runs[k], base, kinds[k], nvme_dir, device, comm);
    for (int i = 0; status == ZRT_OK && i < steps + 3; i++) /* interleaved: a slow spell falls on all alike */
        for (int k = 0; k < n && status == ZRT_OK; k++) status = run_steps(&runs[k], comm, i, 1);
    for (int k = 0; k < n; k++) finish_run(&runs[k], steps, status == ZRT_OK, &out[k]);
    return status;
}

/* The model's parameters, gradients and one batch in device memory. */
typedef struct {
    float *params[ZRT_MAX_UNITS], *grads[ZRT_MAX_UNITS], *loss;
    void *inputs;
    int32_t *labels;
} model_buffers;

static zrt_status fill_model_buffers(zrt_device *device, zrt_model *model, const zrt_data *data, int micro,
                                     model_buffers *b)
{
    size_t input_bytes = (size_t)micro * model->input_bytes_per_sample;
    size_t label_bytes = (size_t)micro * (size_t)model->labels_per_sample * sizeof(int32_t);
    void *host_inputs = malloc(input_bytes), *host_labels = malloc(label_bytes);
    float zero = 0;
    zrt_status status = host_inputs && host_labels ? ZRT_OK : zrt_set_error(ZRT_ERR_NOMEM, "bench: out of memory");
    if (status == ZRT_OK) {
        zrt_data_fill(data, 0, micro, host_inputs, host_labels);
        status = zrt_device_alloc(device, ZRT_MEM_ACTIVATIONS, input_bytes, "bench inputs", NULL, &b->inputs);
    }
    if (status == ZRT_OK) status = zrt_device_write(device, b->inputs, host_inputs, input_bytes);
    if (status == ZRT_OK)
        status = zrt_device_alloc(device, ZRT_MEM_ACTIVATIONS, label_bytes, "bench labels", NULL, (void **)&b->labels);
    if (status == ZRT_OK) status = zrt_device_write(device, b->labels, host_labels, label_bytes);
    if (status == ZRT_OK)
        status = zrt_device_alloc(device, ZRT_MEM_ACTIVATIONS, sizeof(float), "bench loss", NULL, (void **)&b->loss);
    if (status == ZRT_OK) status = zrt_device_write(device, b->loss, &zero, sizeof zero);
    for (int u = 0; status == ZRT_OK && u < model->n_units; u++) {
        size_t bytes = (size_t)model->unit_numel[u] * sizeof(float);
        float *values = calloc((size_t)model->unit_numel[u], sizeof(float));
        if (!values) status = zrt_set_error(ZRT_ERR_NOMEM, "bench: out of memory");
        for (int64_t j = 0; values && j < model->unit_numel[u]; j++)
            values[j] = 0.02f * zrt_random_normal(1, (uint64_t)u, (uint64_t)j);
        if (status == ZRT_OK)
            status = zrt_device_alloc(device, ZRT_MEM_PARAMS, bytes, "bench params", NULL, (void **)&b->params[u]);
        if (status == ZRT_OK) status = zrt_device_write(device, b->params[u], values, bytes);
        if (status == ZRT_OK) memset(values, 0, bytes); /* the gradients start at zero */
        if (status == ZRT_OK)
            status = zrt_device_alloc(device, ZRT_MEM_GRADS, bytes, "bench grads", NULL, (void **)&b->grads[u]);
        if (status == ZRT_OK) status = zrt_device_write(device, b->grads[u], values, bytes);
        free(values);
    }
    free(host_inputs);
    free(host_labels);
    return status;
}

zrt_status zrt_bench_time_model(const zrt_config *base, int steps, zrt_device *device, double *seconds)
{
    static zrt_config cfg;
    static double times[ZRT_BENCH_MAX_STEPS];
    static model_buffers b;
    memset(&b, 0, sizeof b);
    cfg = *base;
    zrt_model *model = NULL;
    zrt_data data = {0};
    zrt_stream *stream = NULL;
    int micro = (int)cfg.batch.micro_batch_per_gpu;
    zrt_status status = zrt_model_create(&cfg.job.model, device, micro, &model);
    if (status == ZRT_OK) status = zrt_data_init(&data, &cfg);
    if (status == ZRT_OK) status = zrt_stream_create(device, "model alone", &stream);
    if (status == ZRT_OK) status = fill_model_buffers(device, model, &data, micro, &b);
    if (status == ZRT_OK) status = model->set_batch(model, b.inputs, b.labels, micro);
    for (int i = 0; status == ZRT_OK && i < steps + 3; i++) {
        double t = zrt_now();
        for (int op = 0; status == ZRT_OK && op < model->n_ops; op++)
            status = model->forward(model, stream, op, b.params[model->op_unit[op]]);
        if (status == ZRT_OK) status = model->loss(model, stream, 1.0f, 1.0f, b.loss);
        for (int op = model->n_ops - 1; status == ZRT_OK && op >= 0; op--)
            status = model->backward(model, stream, op, b.params[model->op_unit[op]], b.grads[model->op_unit[op]]);
        if (status == ZRT_OK) status = zrt_stream_synchronize(stream);
        if (i >= 3) times[i - 3] = zrt_now() - t;
    }
    if (status == ZRT_OK) *seconds = zrt_bench_median(times, steps);
    zrt_stream_destroy(stream);
    for (int u = 0; model && u < model->n_units; u++) {
        zrt_device_free(device, b.params[u], NULL);
        zrt_device_free(device, b.grads[u], NULL);
    }
    zrt_device_free(device, b.inputs, NULL);
    zrt_device_free(device, b.labels, NULL);
    zrt_device_free(device, b.loss, NULL);
    if (model) model->destroy(model);
    zrt_data_fini(&data);
    return status;
}

