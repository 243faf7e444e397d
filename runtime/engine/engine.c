/* engine.c: the ZeRO engine: stages 0-3 over the flat, padded per-unit
 * layout, on a zrt_device.
 *
 * Why it is shaped like this:
 *  - Every unit has one flat buffer of `padded` elements (numel rounded up to
 *    world x 16); rank r owns [r * shard, (r + 1) * shard). The optimizer
 *    range is the whole buffer in stage 0 and the own shard otherwise.
 *  - Gradients are reduced with "avg" and AdamW is element-wise, so for one
 *    micro batch per step all stages produce the same bits: stage 0's
 *    all_reduce *is* reduce_scatter + all_gather (zrt.h), and the grad norm is
 *    summed over each rank's own range, then across ranks, in every stage.
 *  - The step reads like docs/engine.md's table: what a stage keeps full or
 *    sharded, which collective reduces the gradients and when, is the
 *    stage's stage_policy row (stages.c); where the optimizer runs and its
 *    state lives is a placement backend (place.h: device, cpu, nvme). The
 *    step calls both at fixed points and tests neither the stage nor the
 *    offload mode.
 *  - Everything lives on the device and runs on two streams: compute (casts,
 *    the model, gradient statistics, Adam) and comm (every collective, so
 *    they only ever see device buffers), ordered by events. Stage 2/3
 *    reduce each unit's gradients on comm as soon as backward produced them
 *    while compute goes on with the previous unit (overlap_comm); stage 3's
 *    gathers and prefetch are stage3.c's.
 *  - The host waits once per step: the loss, the sum of squares and the
 *    overflow flag are reduced together in a device scratch buffer and copied
 *    down once. Adam reads the reduced statistics on the device, so it skips
 *    an overflowed step and clips without that copy; the host learns of the
 *    skip from the result (and only then counts the Adam step).
 *  - Memory: params, grads and optimizer state are charged as the ZeRO paper
 *    counts them: 2+2+12 bytes per parameter for bf16/fp16.
 * Dtypes: D is the compute dtype (fp32, bf16, fp16); master weights and
 * moments are fp32; the model computes in fp32 on views cast from D (fp32
 * models read the compute copy directly).
 */
#include "engine_internal.h"
#include "zrt/internal/fault.h"
#include "zrt/internal/test_hooks.h"

#include "optim.h" /* the overflow rule the device's Adam follows */

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *at(const zrt_engine *e, void *base, int64_t index) { return (char *)base + index * (int64_t)e->es; }
static size_t scratch_bytes(const zrt_engine *e) { return (size_t)(SLOT_UNITS + 2 * e->n_units) * sizeof(float); }

int64_t zrt_engine_opt_begin(const zrt_engine *e, const unit_state *u)
{
    return e->policy->state_sharded ? e->rank * u->shard : 0;
}
int64_t zrt_engine_opt_count(const zrt_engine *e, const unit_state *u)
{
    return e->policy->state_sharded ? u->shard : u->padded;
}

zrt_status zrt_engine_order(zrt_engine *e, zrt_stream *from, zrt_stream *to) { return place_order(e->mark, from, to); }

zrt_status zrt_engine_wait_gathered(zrt_engine *e, unit_state *u)
{
    if (!u->gather_pending) return ZRT_OK;
    u->gather_pending = false;
    return zrt_stream_wait_event(e->compute, u->gathered);
}

/* Makes the unit of op resident and returns its fp32 view (on compute). */
static zrt_status fetch_params(zrt_engine *e, int op, int dir, const float **params)
{
    ZRT_CHECK(zrt_stage3_fetch(e, op, dir));
    unit_state *u = &e->units[e->model->op_unit[op]];
    if (e->fault_skip_gather_wait) u->gather_pending = false; /* the bug the check mode must find */
    ZRT_CHECK(zrt_engine_wait_gathered(e, u));
    if (e->dtype == ZRT_DTYPE_F32) { /* the compute copy is the fp32 view: no copy */
        *params = u->param_full;
        return ZRT_OK;
    }
    ZRT_CHECK(zrt_kernel_cast(e->compute, e->params_f32, ZRT_DTYPE_F32, u->param_full, e->dtype, (size_t)u->numel, false));
    *params = e->params_f32;
    return ZRT_OK;
}

/* ---- gradients (their path per stage: stages.c) ------------------------------------------- */

/* Whether backward may add its fp32 gradients straight into the buffer
 * store_grads would copy them to: the copy is exact and alone in fp32 when
 * it overwrites (sharded gradients) or when one micro batch's sum starts at
 * 0 (full gradients). Else they go through the fp32 work buffer grads_f32. */
static bool grads_direct(const zrt_engine *e)
{
    return e->dtype == ZRT_DTYPE_F32 && (e->policy->grads_sharded || e->accum == 1);
}

/* Where a unit's backward adds its gradients; either way the same bits arrive. */
static float *backward_grads(const zrt_engine *e, const unit_state *u)
{
    if (u->grad_accum) return u->grad_accum; /* a tied unit: summed over its ops first */
    return grads_direct(e) ? u->grad_bucket : e->grads_f32;
}

/* ---- one micro batch ---------------------------------------------------------------------- */

/* This rank's micro batch from sample `first` of data, to the device, and set as the model's batch. */
static zrt_status load_samples(zrt_engine *e, const zrt_data *data, int64_t first)
{
    zrt_model *m = e->model;
    ZRT_CHECK(zrt_event_synchronize(e->batch_copied)); /* the last copy has read the pinned buffers */
    zrt_data_fill(data, first, e->micro, e->host_inputs, e->host_labels);
    size_t label_bytes = (size_t)e->micro * (size_t)m->labels_per_sample * sizeof(int32_t);
    ZRT_CHECK(zrt_memcpy_async(e->compute, e->inputs, e->host_inputs, (size_t)e->micro * m->input_bytes_per_sample,
                               ZRT_COPY_H2D));
    ZRT_CHECK(zrt_memcpy_async(e->compute, e->labels, e->host_labels, label_bytes, ZRT_COPY_H2D));
    ZRT_CHECK(zrt_event_record(e->batch_copied, e->compute));
    return m->set_batch(m, e->inputs, e->labels, e->micro);
}

/* Micro batch a of this step: every rank's slice of the next global batch. */
static zrt_status load_batch(zrt_engine *e, const zrt_data *data, int a)
{
    return load_samples(e, data, e->samples + ((int64_t)a * e->world + e->rank) * e->micro);
}

static zrt_status micro_step(zrt_engine *e, const zrt_data *data, int a)
{
    zrt_model *m = e->model;
    ZRT_CHECK(load_batch(e, data, a));
    const float *params;
    for (int op = 0; op < m->n_ops; op++) {
        ZRT_CHECK(fetch_params(e, op, +1, &params));
        ZRT_CHECK(m->forward(m, e->compute, op, params));
        if (op != m->n_ops - 1) ZRT_CHECK(zrt_stage3_release(e, m->op_unit[op]));
    }
    ZRT_CHECK(m->loss(m, e->compute, (float)(e->scaler.scale / e->accum), (float)e->accum, &e->scratch[SLOT_LOSS]));
    for (int op = m->n_ops - 1; op >= 0; op--) {
        unit_state *u = &e->units[m->op_unit[op]];
        bool into_bucket = grads_direct(e) && !u->grad_accum && e->policy->take_bucket;
        if (op == u->last_op && into_bucket) ZRT_CHECK(e->policy->take_bucket(e, m->op_unit[op]));
        float *grads = backward_grads(e, u);
        if (op == u->last_op) ZRT_CHECK(zrt_memset_async(e->compute, grads, 0, (size_t)u->numel * sizeof(float)));
        ZRT_CHECK(fetch_params(e, op, -1, &params));
        ZRT_CHECK(m->backward(m, e->compute, op, params, grads));
        if (e->inject_overflow && op == m->n_ops - 1) ZRT_CHECK(zrt_kernel_fill(e->compute, grads, ZRT_DTYPE_F32, INFINITY, 1));
        if (op == u->first_op)
            ZRT_CHECK(e->policy->store_grads(e, m->op_unit[op], grads, a == 0, a == e->accum - 1));
        ZRT_CHECK(zrt_stage3_release(e, m->op_unit[op]));
    }
    return e->policy->after_micro(e, a == 0, a == e->accum - 1);
}

/* ---- evaluation: the forward alone ------------------------------------------------------------- */

/* The mean loss of `batches` global batches of data (samples 0.. of its
 * order, the same every time), averaged over ranks: every op forward, each
 * unit released after it (stage 3: gathered, used, released, as in training),
 * the loss summed in its own scratch slot; nothing is written to gradients or
 * the optimizer state. Collective. */
zrt_status zrt_engine_eval(zrt_engine *e, const zrt_data *data, int64_t batches, double *loss)
{
    if (!e || !data || !loss || batches < 1) return zrt_set_error(ZRT_ERR_INVALID, "zrt_engine_eval: bad argument");
    zrt_model *m = e->model;
    float *slot = &e->scratch[SLOT_EVAL], sum = 0;
    ZRT_CHECK(zrt_memset_async(e->compute, slot, 0, sizeof *slot));
    for (int64_t b = 0; b < batches; b++) {
        ZRT_CHECK(load_samples(e, data, b * e->world * e->micro + (int64_t)e->rank * e->micro));
        const float *params;
        for (int op = 0; op < m->n_ops; op++) {
            ZRT_CHECK(fetch_params(e, op, +1, &params));
            ZRT_CHECK(m->forward(m, e->compute, op, params));
            ZRT_CHECK(zrt_stage3_release(e, m->op_unit[op]));
        }
        ZRT_CHECK(m->loss(m, e->compute, 1.0f, 1.0f, slot)); /* its backward seed is never used */
    }
    ZRT_CHECK(zrt_stream_synchronize(e->compute));
    ZRT_CHECK(zrt_device_read(e->device, &sum, slot, sizeof sum));
    ZRT_CHECK(zrt_engine_sum_over_ranks(e, &sum));
    *loss = (double)sum / (double)(batches * e->world);
    return ZRT_OK;
}

/* ---- the optimizer step --------------------------------------------------------------------- */

/* The placement's statistics (own ranges, summed over units), summed over
 * ranks with the loss on comm and copied to the host: result_ready. */
static zrt_status reduce_statistics(zrt_engine *e)
{
    ZRT_CHECK(e->place->statistics(e->place_state, e->scaler.scale));
    if (e->comm)
        ZRT_CHECK(zrt_comm_all_reduce_on(e->comm, e->scratch, e->scratch, SLOT_REDUCED, ZRT_DTYPE_F32, ZRT_REDUCE_SUM,
                                         e->comm_stream));
    ZRT_CHECK(zrt_memcpy_async(e->comm_stream, e->host_scratch, e->scratch, SLOT_REDUCED * sizeof(float), ZRT_COPY_D2H));
    return zrt_event_record(e->result_ready, e->comm_stream);
}

/* The step's Adam/AdamW constants (the step counted when it does not overflow). */
static zrt_adam_args adam_args(const zrt_engine *e, double lr)
{
    const zrt_optimizer_config *o = &e->cfg.optimizer;
    return (zrt_adam_args){.lr = (float)lr, .beta1 = (float)o->betas[0], .beta2 = (float)o->betas[1],
                           .eps = (float)o->eps, .weight_decay = (float)o->weight_decay,
                           .adamw = o->type == ZRT_OPT_ADAMW || o->adam_w_mode, .step = e->adam_steps + 1,
                           .unscale = (float)(1.0 / e->scaler.scale), .max_norm = e->cfg.gradient_clipping,
                           .stochastic_seed = e->cfg.job.bf16_stochastic_rounding && e->dtype == ZRT_DTYPE_BF16
                                                  ? (uint32_t)e->cfg.job.seed * 2654435761u | 1u
                                                  : 0};
}

/* The compute copies `wrote` has written (NULL: none changed), shared:
 * compute reads them (it waits for another stream's), and stages 1-3
 * all_gather the full buffers they keep (stage 3: persistent units; the
 * others are gathered when used, stage3.c). */
static zrt_status gather_published(zrt_engine *e, zrt_stream *wrote)
{
    if (!wrote) return ZRT_OK;
    ZRT_CHECK(zrt_event_record(e->published, wrote));
    /* Copies written by another stream (offload's h2d): compute reads the
     * ones no gather rewrites (one rank) directly -- it waits for them all. */
    if (wrote != e->compute) ZRT_CHECK(zrt_stream_wait_event(e->compute, e->published));
    if (!e->policy->state_sharded) return ZRT_OK; /* the optimizer wrote the full buffers */
    ZRT_CHECK(zrt_stream_wait_event(e->comm_stream, e->published));
    for (int i = 0; i < e->n_units; i++) {
        unit_state *u = &e->units[i];
        void *own = e->ranges[i].params;
        if (u->gathered_when_used) continue;
        if (e->comm)
            ZRT_CHECK(zrt_comm_all_gather_on(e->comm, own, u->param_full, (size_t)u->shard, e->dtype, e->comm_stream));
        else if (own != u->param_full)
            ZRT_CHECK(zrt_memcpy_async(e->comm_stream, u->param_full, own, (size_t)u->shard * e->es, ZRT_COPY_D2D));
        else
            continue;
        ZRT_CHECK(zrt_event_record(u->gathered, e->comm_stream));
        u->gather_pending = true;
    }
    return ZRT_OK;
}

zrt_status zrt_engine_publish_params(zrt_engine *e)
{
    zrt_stream *wrote = NULL;
    ZRT_CHECK(e->place->publish(e->place_state, &wrote));
    return gather_published(e, wrote);
}

/* After the step's one wait: the host's part (cpu, nvme: the optimizer),
 * agreed over ranks where it can fail on one (nvme I/O), then gathered. */
static zrt_status host_step(zrt_engine *e, const place_step *s)
{
    zrt_stream *wrote = NULL;
    zrt_status status = e->place->host_step(e->place_state, s, &wrote);
    if (e->place->agree_step && !s->overflow) status = zrt_engine_agree(e, status, e->place->agree_step);
    ZRT_CHECK(status);
    return gather_published(e, wrote);
}

/* One step, as docs/engine.md's table reads: micro batches (parameters
 * gathered before use where the stage shards them; gradients stored and
 * reduced as the stage says), the statistics, the optimizer where it is
 * placed, the compute copies shared. */
zrt_status zrt_engine_step(zrt_engine *e, const zrt_data *data, zrt_step_result *result)
{
    if (!e || !data || !result) return zrt_set_error(ZRT_ERR_INVALID, "zrt_engine_step: NULL argument");
    double scale = e->scaler.scale;
    ZRT_CHECK(e->place->begin_step(e->place_state)); /* nvme: the first reads go on during backward */
    ZRT_CHECK(zrt_memset_async(e->compute, e->scratch, 0, scratch_bytes(e)));
    for (int a = 0; a < e->accum; a++) ZRT_CHECK(micro_step(e, data, a));
    e->inject_overflow = false;
    ZRT_CHECK(reduce_statistics(e));
    double lr = zrt_schedule_lr(&e->cfg, e->step);
    place_step s = {.adam = adam_args(e, lr), .scale = scale};
    zrt_stream *wrote = NULL;
    ZRT_CHECK(e->place->device_step(e->place_state, &s, &wrote)); /* device: Adam and the compute copies */
    ZRT_CHECK(gather_published(e, wrote));
    ZRT_CHECK(zrt_event_synchronize(e->result_ready)); /* the one wait of the step */
    if (e->comm) ZRT_CHECK(zrt_comm_status(e->comm)); /* a collective that failed after it was enqueued (NCCL) */
    float sum_squares = e->host_scratch[SLOT_SQUARES];
    s.overflow = zrt_step_overflow(sum_squares, e->host_scratch[SLOT_NONFINITE]);
    s.clip = zrt_clip_factor(sum_squares, e->cfg.gradient_clipping);
    ZRT_CHECK(host_step(e, &s)); /* cpu, nvme: the host's turn */
    if (!s.overflow) e->adam_steps++;
    zrt_loss_scaler_update(&e->scaler, &e->cfg, s.overflow);
    *result = (zrt_step_result){.loss = e->host_scratch[SLOT_LOSS] / (float)e->world,
                                .grad_norm = s.overflow ? 0 : sqrtf(sum_squares), .lr = lr, .loss_scale = scale,
                                .skipped = s.overflow, .samples = e->global_batch,
                                .samples_seen = e->samples + e->global_batch};
    e->step++;
    e->samples += e->global_batch;
    return ZRT_OK;
}

zrt_status zrt_engine_synchronize(zrt_engine *e)
{
    if (!e) return zrt_set_error(ZRT_ERR_INVALID, "zrt_engine_synchronize: NULL engine");
    zrt_first_error first = {0};
    zrt_first_error_keep(&first, zrt_stream_synchronize(e->compute));
    zrt_first_error_keep(&first, zrt_stream_synchronize(e->comm_stream));
    if (first.status == ZRT_OK && e->place_state) return e->place->synchronize(e->place_state);
    return zrt_first_error_restore(&first);
}

zrt_status zrt_engine_sum_over_ranks(zrt_engine *e, float *value)
{
    if (!e->comm) return ZRT_OK;
    float *slot = &e->scratch[SLOT_AGREE];
    ZRT_CHECK(zrt_engine_synchronize(e));
    ZRT_CHECK(zrt_device_write(e->device, slot, value, sizeof *value));
    ZRT_CHECK(zrt_comm_all_reduce_on(e->comm, slot, slot, 1, ZRT_DTYPE_F32, ZRT_REDUCE_SUM, e->comm_stream));
    ZRT_CHECK(zrt_stream_synchronize(e->comm_stream));
    return zrt_device_read(e->device, value, slot, sizeof *value);
}

/* ---- setup ----------------------------------------------------------------------------------- */

/* Initial master values of the optimizer range, from the model's init rule
 * (element j of parameter p of unit i is the same at any world size),
 * computed on the host and copied up once. */
static zrt_status init_master(zrt_engine *e, int index)
{
    unit_state *u = &e->units[index];
    int64_t begin = zrt_engine_opt_begin(e, u), count = zrt_engine_opt_count(e, u), end = begin + count;
    float *values = calloc((size_t)count, sizeof(float));
    if (!values) return zrt_set_error(ZRT_ERR_NOMEM, "engine: out of host memory for unit %d's initial values", index);
    const zrt_model_config *m = &e->cfg.job.model;
    zrt_status loaded = m->init_from[0] ? zrt_model_init_values(e->model, m, index, begin, count, values) : ZRT_OK;
    for (int p = 0; !m->init_from[0] && p < e->model->n_params[index]; p++) {
        const zrt_param_info *info = &e->model->params[index][p];
        for (int64_t j = 0; j < info->numel; j++) {
            int64_t pos = info->offset + j;
            if (pos < begin || pos >= end) continue;
            float v = info->init == ZRT_INIT_ONES ? 1.0f
                      : info->init == ZRT_INIT_ZEROS
                          ? 0.0f
                          : info->init_std * zrt_random_normal((uint64_t)e->cfg.job.seed,
                                                               (uint64_t)index * ZRT_MAX_UNIT_PARAMS + (uint64_t)p,
                                                               (uint64_t)j);
            values[pos - begin] = v;
        }
    }
    zrt_status status = loaded == ZRT_OK ? zrt_engine_state_io(e, index, STATE_MASTER, 0, (size_t)count, values, true) : loaded;
    free(values);
    return status;
}

zrt_status zrt_engine_state_io(zrt_engine *e, int unit, int part, size_t begin, size_t n, void *host, bool write)
{
    return e->place->state_io(e->place_state, unit, part, begin, n, host, write);
}

zrt_status zrt_engine_agree(zrt_engine *e, zrt_status status, const char *what)
{
    if (!e->comm) return status;
    zrt_first_error mine = {0};
    zrt_first_error_keep(&mine, status);
    float failed = status != ZRT_OK;
    zrt_status comm_status = zrt_engine_sum_over_ranks(e, &failed);
    if (comm_status != ZRT_OK) return comm_status;
    if (status != ZRT_OK) return zrt_first_error_restore(&mine);
    if (failed > 0) return zrt_set_error(ZRT_ERR_PEER, "%s failed on %.0f other rank(s)", what, failed);
    return ZRT_OK;
}

const char *zrt_engine_warnings(const zrt_engine *e) { return e ? e->warnings : ""; }

zrt_status zrt_engine_alloc(zrt_engine *e, zrt_mem_category c, size_t bytes, int unit, const char *what, void *out)
{
    char name[64];
    if (unit >= 0) snprintf(name, sizeof name, "unit %d %s", unit, what);
    else snprintf(name, sizeof name, "%s", what);
    return zrt_device_alloc(e->device, c, bytes, name, NULL, (void **)out);
}

static zrt_status alloc_events(zrt_engine *e, unit_state *u)
{
    ZRT_CHECK(zrt_event_create(e->device, "gathered", &u->gathered));
    ZRT_CHECK(zrt_event_create(e->device, "used", &u->used));
    return zrt_event_create(e->device, "reduced", &u->reduced);
}

/* The unit's sizes in the flat layout, and whether the store holds its parameters. */
static void size_unit(zrt_engine *e, int index)
{
    unit_state *u = &e->units[index];
    u->numel = e->model->unit_numel[index];
    zrt_engine_unit_layout(&e->cfg, u->numel, e->world, &u->padded, &u->shard, &u->persistent);
    u->gathered_when_used = e->policy->params_sharded && !u->persistent;
}

/* The compute copy: full (stages 0-2, stage 3's persistent units), the own shard (stage 3). */
static zrt_status alloc_params(zrt_engine *e, int index)
{
    unit_state *u = &e->units[index];
    u->params_offloaded = zrt_param_store_holds(e->params, index);
    if (!u->gathered_when_used)
        ZRT_CHECK(zrt_engine_alloc(e, ZRT_MEM_PARAMS, (size_t)u->padded * e->es, index, "params", &u->param_full));
    if (e->policy->params_sharded && !u->params_offloaded)
        ZRT_CHECK(zrt_engine_alloc(e, ZRT_MEM_PARAMS, (size_t)u->shard * e->es, index, "params (shard)", &u->param_shard));
    return ZRT_OK;
}

/* The unit's optimizer range, as the placement backend sees it. */
static void set_range(zrt_engine *e, int index)
{
    unit_state *u = &e->units[index];
    int64_t begin = zrt_engine_opt_begin(e, u);
    e->ranges[index] = (place_unit){
        .begin = begin, .count = zrt_engine_opt_count(e, u), .shard = u->shard,
        .grads = e->ranges[index].grads, .shard_grads = e->ranges[index].shard_grads, /* alloc_grads's */
        .params = e->policy->params_sharded ? u->param_shard : at(e, u->param_full, begin)};
}

/* The unit's first and last op; a unit used by several (tied) sums its fp32 gradients first. */
static zrt_status find_ops(zrt_engine *e, int index)
{
    unit_state *u = &e->units[index];
    u->first_op = -1;
    for (int op = 0; op < e->model->n_ops; op++) {
        if (e->model->op_unit[op] != index) continue;
        if (u->first_op < 0) u->first_op = op;
        u->last_op = op;
    }
    if (u->first_op < 0) return zrt_set_error(ZRT_ERR_INVALID, "engine: unit %d is used by no op of the model", index);
    if (u->first_op == u->last_op) return ZRT_OK;
    return zrt_engine_alloc(e, ZRT_MEM_ACTIVATIONS, (size_t)u->numel * sizeof(float), index, "grads (fp32, tied)",
                            &u->grad_accum);
}

static zrt_status alloc_unit(zrt_engine *e, int index)
{
    ZRT_CHECK(alloc_params(e, index));
    ZRT_CHECK(e->policy->alloc_grads(e, index));
    set_range(e, index);
    ZRT_CHECK(find_ops(e, index));
    return alloc_events(e, &e->units[index]);
}

/* Streams, events, and the buffers that are not a unit's. */
static zrt_status alloc_engine(zrt_engine *e, int64_t widest)
{
    zrt_model *m = e->model;
    ZRT_CHECK(zrt_stream_create(e->device, "compute", &e->compute));
    ZRT_CHECK(zrt_stream_create(e->device, "comm", &e->comm_stream));
    ZRT_CHECK(zrt_event_create(e->device, "mark", &e->mark));
    ZRT_CHECK(zrt_event_create(e->device, "result ready", &e->result_ready));
    ZRT_CHECK(zrt_event_create(e->device, "batch copied", &e->batch_copied));
    ZRT_CHECK(zrt_event_create(e->device, "published", &e->published));
    for (int k = 0; k < 2; k++) ZRT_CHECK(zrt_event_create(e->device, "freed", &e->freed[k]));
    if (e->dtype != ZRT_DTYPE_F32) /* fp32 models read the compute copy directly */
        ZRT_CHECK(zrt_engine_alloc(e, ZRT_MEM_ACTIVATIONS, (size_t)widest * sizeof(float), -1, "params (fp32 view)", &e->params_f32));
    if (!grads_direct(e)) /* else backward_grads never picks it */
        ZRT_CHECK(zrt_engine_alloc(e, ZRT_MEM_ACTIVATIONS, (size_t)widest * sizeof(float), -1, "grads (fp32)", &e->grads_f32));
    size_t input_bytes = (size_t)e->micro * m->input_bytes_per_sample;
    size_t label_bytes = (size_t)e->micro * (size_t)m->labels_per_sample * sizeof(int32_t);
    ZRT_CHECK(zrt_engine_alloc(e, ZRT_MEM_ACTIVATIONS, input_bytes, -1, "batch inputs", &e->inputs));
    ZRT_CHECK(zrt_engine_alloc(e, ZRT_MEM_ACTIVATIONS, label_bytes, -1, "batch labels", &e->labels));
    ZRT_CHECK(zrt_engine_alloc(e, ZRT_MEM_ACTIVATIONS, scratch_bytes(e), -1, "step scratch", &e->scratch));
    ZRT_CHECK(zrt_host_alloc(e->device, ZRT_MEM_ACTIVATIONS, input_bytes, "batch inputs (host)", &e->host_inputs));
    ZRT_CHECK(zrt_host_alloc(e->device, ZRT_MEM_ACTIVATIONS, label_bytes, "batch labels (host)",
                             (void **)&e->host_labels));
    return zrt_host_alloc(e->device, ZRT_MEM_ACTIVATIONS, SLOT_REDUCED * sizeof(float), "step result (host)",
                          (void **)&e->host_scratch);
}

/* What the placement backend is given (the units' ranges are filled as they are made). */
static void describe_place(zrt_engine *e)
{
    e->place_env = (place_env){.cfg = &e->cfg, .device = e->device, .compute = e->compute, .comm = e->comm_stream,
                               .mark = e->mark, .rank = e->rank, .world = e->world, .n_units = e->n_units,
                               .dtype = e->dtype, .es = e->es, .units = e->ranges,
                               .unit_stats = &e->scratch[SLOT_UNITS], .totals = &e->scratch[SLOT_SQUARES],
                               .params = e->params, .warnings = e->warnings, .warnings_size = sizeof e->warnings};
}

/* offload_optimizer.device -> the placement backend. */
static const place_ops *const placements[] = {
    [ZRT_OFFLOAD_NONE] = &zrt_place_device, [ZRT_OFFLOAD_CPU] = &zrt_place_cpu, [ZRT_OFFLOAD_NVME] = &zrt_place_nvme};

static zrt_status setup(zrt_engine *e)
{
    int64_t widest = 0;
    e->units = calloc((size_t)e->n_units, sizeof *e->units);
    e->ranges = calloc((size_t)e->n_units, sizeof *e->ranges);
    if (!e->units || !e->ranges) return zrt_set_error(ZRT_ERR_NOMEM, "engine: out of memory");
    for (int i = 0; i < e->n_units; i++) {
        size_unit(e, i);
        if (e->units[i].padded > widest) widest = e->units[i].padded;
    }
    if (e->cfg.job.model.init_from[0]) ZRT_CHECK(zrt_model_init_check(e->model, &e->cfg.job.model)); /* every name and shape */
    ZRT_CHECK(alloc_engine(e, widest));
    describe_place(e);
    if (e->policy->params_sharded && e->cfg.zero.offload_param.device != ZRT_OFFLOAD_NONE)
        ZRT_CHECK(zrt_param_store_create(e));
    e->place_env.params = e->params;
    e->place = placements[e->cfg.zero.offload_optimizer.device]; /* the gradients' buffers depend on it */
    if (e->policy->alloc_shared) ZRT_CHECK(e->policy->alloc_shared(e));
    for (int i = 0; i < e->n_units; i++) ZRT_CHECK(alloc_unit(e, i));
    ZRT_CHECK(e->place->create(&e->place_env, &e->place_state));
    for (int i = 0; i < e->n_units; i++) ZRT_CHECK(init_master(e, i));
    return zrt_engine_publish_params(e);
}

zrt_status zrt_engine_create(const zrt_config *cfg, zrt_comm *comm, zrt_model *model, zrt_engine **out)
{
    if (!cfg || !model || !model->device || !out)
        return zrt_set_error(ZRT_ERR_INVALID, "zrt_engine_create: NULL argument");
    zrt_engine *e = calloc(1, sizeof *e);
    if (!e) return zrt_set_error(ZRT_ERR_NOMEM, "engine: out of memory");
    e->cfg = *cfg;
    e->comm = comm;
    e->device = model->device;
    e->rank = comm ? zrt_comm_rank(comm) : 0;
    e->world = comm ? zrt_comm_world_size(comm) : 1;
    e->stage = cfg->zero.stage;
    e->policy = &zrt_stage_policies[e->stage];
    e->dtype = cfg->mixed_precision == ZRT_PRECISION_BF16   ? ZRT_DTYPE_BF16
               : cfg->mixed_precision == ZRT_PRECISION_FP16 ? ZRT_DTYPE_F16
                                                            : ZRT_DTYPE_F32;
    e->es = zrt_dtype_size(e->dtype);
    e->model = model;
    e->n_units = model->n_units;
    e->micro = (int)cfg->batch.micro_batch_per_gpu;
    e->accum = (int)cfg->batch.gradient_accumulation_steps;
    e->global_batch = (int64_t)e->micro * e->accum * e->world;
    const char *fault = zrt_fault_spec("engine.skip_wait");
    e->fault_skip_gather_wait = fault && strcmp(fault, "gather") == 0;
    zrt_loss_scaler_init(&e->scaler, cfg);
    zrt_status status = setup(e);
    if (status != ZRT_OK) {
        zrt_first_error first = {0};
        zrt_first_error_keep(&first, status);
        zrt_engine_destroy(e);
        return zrt_first_error_restore(&first);
    }
    *out = e;
    return ZRT_OK;
}

zrt_status zrt_engine_get_master(zrt_engine *e, int index, float *out)
{
    if (!e || !out || index < 0 || index >= e->n_units)
        return zrt_set_error(ZRT_ERR_INVALID, "zrt_engine_get_master: bad argument");
    unit_state *u = &e->units[index];
    ZRT_CHECK(zrt_engine_synchronize(e));
    if (!e->policy->state_sharded || !e->comm)
        return zrt_engine_state_io(e, index, STATE_MASTER, 0, (size_t)u->numel, out, false);
    /* The own shard up (from wherever it lives, through the host), gathered in place. */
    float *full = NULL, *host = malloc((size_t)u->shard * sizeof(float));
    if (!host) return zrt_set_error(ZRT_ERR_NOMEM, "zrt_engine_get_master: out of host memory");
    zrt_status status = zrt_engine_alloc(e, ZRT_MEM_COMM, (size_t)u->padded * sizeof(float), index, "master (gathered)", &full);
    float *mine = full + (size_t)e->rank * (size_t)u->shard;
    if (status == ZRT_OK) status = zrt_engine_state_io(e, index, STATE_MASTER, 0, (size_t)u->shard, host, false);
    if (status == ZRT_OK) status = zrt_device_write(e->device, mine, host, (size_t)u->shard * sizeof(float));
    if (status == ZRT_OK)
        status = zrt_comm_all_gather_on(e->comm, mine, full, (size_t)u->shard, ZRT_DTYPE_F32, e->comm_stream);
    if (status == ZRT_OK) status = zrt_stream_synchronize(e->comm_stream);
    if (status == ZRT_OK) status = zrt_device_read(e->device, out, full, (size_t)u->numel * sizeof(float));
    zrt_device_free(e->device, full, NULL);
    free(host);
    return status;
}

void zrt_engine_inject_overflow(zrt_engine *e) { e->inject_overflow = true; }
int64_t zrt_engine_peak_live_params(const zrt_engine *e) { return e->peak_live_params; }

/* Each owner frees what it made: the placement backend its state, the
 * parameter store its memory and files, the engine its buffers below. */
static void free_unit(zrt_engine *e, unit_state *u)
{
    void *buffers[] = {u->param_full, u->param_shard, u->grad_full, u->grad_shard, u->param_cache, u->grad_accum};
    for (size_t k = 0; k < sizeof buffers / sizeof buffers[0]; k++) zrt_device_free(e->device, buffers[k], NULL);
    zrt_event_destroy(u->gathered);
    zrt_event_destroy(u->used);
    zrt_event_destroy(u->reduced);
}

void zrt_engine_destroy(zrt_engine *e)
{
    if (!e) return;
    if (e->compute && e->comm_stream) zrt_engine_synchronize(e); /* nothing may still run on what we free */
    zrt_device *d = e->device;
    if (e->place) e->place->destroy(e->place_state);
    zrt_param_store_destroy(e->params);
    for (int i = 0; e->units && i < e->n_units; i++) free_unit(e, &e->units[i]);
    void *buffers[] = {e->params_f32, e->grads_f32, e->inputs, e->labels, e->scratch};
    for (size_t k = 0; k < sizeof buffers / sizeof buffers[0]; k++) zrt_device_free(d, buffers[k], NULL);
    for (int k = 0; k < GRAD_RING; k++) {
        zrt_device_free(d, e->buckets[k], NULL);
        zrt_device_free(d, e->recv[k], NULL);
        zrt_event_destroy(e->bucket_free[k]);
    }
    zrt_host_free(d, e->host_inputs);
    zrt_host_free(d, e->host_labels);
    zrt_host_free(d, e->host_scratch);
    zrt_event_destroy(e->mark);
    zrt_event_destroy(e->result_ready);
    zrt_event_destroy(e->batch_copied);
    zrt_event_destroy(e->published);
    for (int k = 0; k < 2; k++) zrt_event_destroy(e->freed[k]);
    zrt_stream_destroy(e->compute);
    zrt_stream_destroy(e->comm_stream);
    free(e->ranges);
    free(e->units);
    free(e);
}
