/* engine.c: the ZeRO engine: stages 0-3 over the flat, padded per-unit layout.
 *
 * Why it is shaped like this (DESIGN.md, Engine):
 *  - Every unit has one flat buffer of `padded` elements (numel rounded up to
 *    world x 16); rank r owns [r * shard, (r + 1) * shard). The optimizer
 *    range is the whole buffer in stage 0 and the own shard otherwise.
 *  - Gradients are reduced with "avg" and AdamW is element-wise, so for one
 *    micro batch per step all stages produce the same bits: stage 0's
 *    all_reduce *is* reduce_scatter + all_gather (comm.h), and the grad norm is
 *    summed over each rank's own range, then across ranks, in every stage.
 *  - Stage 2/3 reduce each unit's gradients as soon as backward produced
 *    them, asynchronously (overlap_comm), while backward goes on with the
 *    previous unit. One reduce_scatter per unit: a unit is the bucket.
 *  - Stage 3 gathers a unit before its forward and backward and releases it
 *    after, prefetching the next units within stage3_prefetch_bucket_size and
 *    stage3_max_live_parameters; units up to stage3_param_persistence_threshold
 *    elements stay gathered.
 *  - Memory (mem.c): params, grads and optimizer state are charged as the
 *    ZeRO paper counts them: 2+2+12 bytes per parameter for bf16/fp16.
 * Dtypes: D is the compute dtype (fp32, bf16, fp16); master weights and
 * moments are fp32; the model computes in fp32 on views converted from D.
 */
#include "cast.h"
#include "engine_internal.h"
#include "optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- dtype helpers (math in kernels/cast.h) -------------------------------------------- */

static void to_f32(zrt_dtype dt, const void *src, int64_t n, float *dst)
{
    if (dt == ZRT_DTYPE_F32) memcpy(dst, src, (size_t)n * sizeof(float));
    else if (dt == ZRT_DTYPE_BF16) for (int64_t i = 0; i < n; i++) dst[i] = zrt_bf16_to_f32(((const uint16_t *)src)[i]);
    else for (int64_t i = 0; i < n; i++) dst[i] = zrt_f16_to_f32(((const uint16_t *)src)[i]);
}

/* dst = round(src), or round(dst + src) when accumulate. */
static void from_f32(zrt_dtype dt, const float *src, int64_t n, void *dst, bool accumulate)
{
    if (dt == ZRT_DTYPE_F32) {
        float *d = dst;
        if (accumulate) for (int64_t i = 0; i < n; i++) d[i] += src[i];
        else memcpy(d, src, (size_t)n * sizeof(float));
        return;
    }
    uint16_t *d = dst;
    bool bf16 = dt == ZRT_DTYPE_BF16;
    for (int64_t i = 0; i < n; i++) {
        float v = src[i];
        if (accumulate) v += bf16 ? zrt_bf16_to_f32(d[i]) : zrt_f16_to_f32(d[i]);
        d[i] = bf16 ? zrt_f32_to_bf16(v) : zrt_f32_to_f16(v);
    }
}

static void *at(const zrt_engine *e, void *base, int64_t index) { return (char *)base + index * (int64_t)e->es; }

static zrt_status oom(const char *what) { return zrt_set_error(ZRT_ERR_NOMEM, "engine: out of memory for %s", what); }

static zrt_status wait_request(zrt_comm_request **req)
{
    if (!*req) return ZRT_OK;
    zrt_status status = zrt_comm_wait(*req);
    *req = NULL;
    return status;
}

int64_t zrt_engine_opt_begin(const zrt_engine *e, const unit_state *u) { return e->stage == 0 ? 0 : e->rank * u->shard; }
int64_t zrt_engine_opt_count(const zrt_engine *e, const unit_state *u) { return e->stage == 0 ? u->padded : u->shard; }

/* ---- stage 3: gather, prefetch, release ---------------------------------------------------- */

static zrt_status issue_gather(zrt_engine *e, int index)
{
    unit_state *u = &e->units[index];
    if (u->param_full) return ZRT_OK;
    if (u->param_cache) {
        zrt_mem_recharge(e->mem, ZRT_MEM_COMM, ZRT_MEM_PARAMS, u->param_cache);
        u->param_full = u->param_cache;
        u->param_cache = NULL;
        e->cached_params -= u->padded;
    } else if (!(u->param_full = zrt_mem_alloc(e->mem, ZRT_MEM_PARAMS, (size_t)u->padded * e->es))) {
        return oom("gathered parameters");
    }
    e->live_params += u->padded;
    if (e->live_params > e->peak_live_params) e->peak_live_params = e->live_params;
    if (!e->comm) {
        memcpy(u->param_full, u->param_shard, (size_t)u->shard * e->es);
        return ZRT_OK;
    }
    return zrt_comm_all_gather(e->comm, u->param_shard, u->param_full, (size_t)u->shard, e->dtype, &u->gather);
}

static void release(zrt_engine *e, int index)
{
    unit_state *u = &e->units[index];
    if (e->stage != 3 || u->persistent || !u->param_full) return;
    e->live_params -= u->padded;
    /* Within stage3_max_live_parameters (live + cached), the buffer is kept
     * (as comm memory) for the next gather, so steps do not fault in fresh
     * pages; beyond it, it is freed. */
    if (e->live_params + e->cached_params + u->padded <= e->cfg.zero.stage3_max_live_parameters) {
        zrt_mem_recharge(e->mem, ZRT_MEM_PARAMS, ZRT_MEM_COMM, u->param_full);
        u->param_cache = u->param_full;
        e->cached_params += u->padded;
    } else {
        zrt_mem_free(e->mem, ZRT_MEM_PARAMS, u->param_full);
    }
    u->param_full = NULL;
}

/* Frees every cached buffer but the unit's own (room for a gather). */
static void drop_caches(zrt_engine *e, int keep)
{
    for (int i = 0; i < e->n_units; i++) {
        unit_state *u = &e->units[i];
        if (i == keep || !u->param_cache) continue;
        zrt_mem_free(e->mem, ZRT_MEM_COMM, u->param_cache);
        u->param_cache = NULL;
        e->cached_params -= u->padded;
    }
}

/* Gathers the units of the ops after `op` in direction `dir` while they fit
 * the prefetch bucket and the live-parameter budget. */
static zrt_status prefetch(zrt_engine *e, int op, int dir)
{
    int64_t budget = e->cfg.zero.stage3_prefetch_bucket_size;
    for (int next_op = op + dir; next_op >= 0 && next_op < e->model->n_ops && budget > 0; next_op += dir) {
        int next = e->model->op_unit[next_op];
        unit_state *u = &e->units[next];
        if (u->persistent || u->param_full) continue;
        if (e->live_params + u->padded > e->cfg.zero.stage3_max_live_parameters || u->padded > budget) break;
        if (!u->param_cache && e->live_params + e->cached_params + u->padded > e->cfg.zero.stage3_max_live_parameters)
            drop_caches(e, next);
        budget -= u->padded;
        ZRT_CHECK(issue_gather(e, next));
    }
    return ZRT_OK;
}

/* Makes the unit of op resident and returns its fp32 view. */
static zrt_status fetch_params(zrt_engine *e, int op, int dir, const float **params)
{
    int index = e->model->op_unit[op];
    unit_state *u = &e->units[index];
    if (e->stage == 3 && !u->persistent) {
        if (!u->param_full && e->live_params + u->padded > e->cfg.zero.stage3_max_live_parameters)
            for (int other = 0; other < e->n_units; other++)
                if (other != index) { /* make room: nothing else is in use now */
                    ZRT_CHECK(wait_request(&e->units[other].gather));
                    release(e, other);
                }
        if (!u->param_full && !u->param_cache &&
            e->live_params + e->cached_params + u->padded > e->cfg.zero.stage3_max_live_parameters)
            drop_caches(e, index);
        ZRT_CHECK(issue_gather(e, index));
        ZRT_CHECK(wait_request(&u->gather));
        ZRT_CHECK(prefetch(e, op, dir));
    }
    if (e->dtype == ZRT_DTYPE_F32) { /* the compute copy is the fp32 view: no copy */
        *params = u->param_full;
        return ZRT_OK;
    }
    to_f32(e->dtype, u->param_full, u->numel, e->params_f32);
    *params = e->params_f32;
    return ZRT_OK;
}

/* ---- gradients ----------------------------------------------------------------------------- */

/* The unit's fp32 gradient `grads` is complete. Stage 0/1: accumulate into
 * the full buffer. Stage 2/3: reduce-scatter now. */
static zrt_status store_grads(zrt_engine *e, int index, const float *grads, bool first_micro)
{
    unit_state *u = &e->units[index];
    if (e->stage <= 1) {
        from_f32(e->dtype, grads, u->numel, u->grad_full, !first_micro);
        return ZRT_OK;
    }
    from_f32(e->dtype, grads, u->numel, u->grad_send, false);
    if (!e->comm) {
        memcpy(u->grad_recv, u->grad_send, (size_t)u->shard * e->es);
        return ZRT_OK;
    }
    ZRT_CHECK(zrt_comm_reduce_scatter(e->comm, u->grad_send, u->grad_recv, (size_t)u->shard, e->dtype, ZRT_REDUCE_AVG,
                                  &u->reduce));
    return e->cfg.zero.overlap_comm ? ZRT_OK : wait_request(&u->reduce);
}

/* Stage 2/3, after backward: wait for the reductions, add them to the shard. */
static zrt_status collect_grads(zrt_engine *e, bool first_micro)
{
    for (int i = e->n_units - 1; i >= 0; i--) {
        unit_state *u = &e->units[i];
        ZRT_CHECK(wait_request(&u->reduce));
        to_f32(e->dtype, u->grad_recv, u->shard, e->grads_f32);
        from_f32(e->dtype, e->grads_f32, u->shard, u->grad_shard, !first_micro);
    }
    return ZRT_OK;
}

/* Stage 0: all_reduce; stage 1: reduce_scatter in place (own range). */
static zrt_status reduce_full_grads(zrt_engine *e)
{
    if (e->stage > 1 || !e->comm) return ZRT_OK;
    for (int i = 0; i < e->n_units; i++) {
        unit_state *u = &e->units[i];
        if (e->stage == 0)
            ZRT_CHECK(zrt_comm_all_reduce(e->comm, u->grad_full, u->grad_full, (size_t)u->padded, e->dtype, ZRT_REDUCE_AVG,
                                      &u->reduce));
        else
            ZRT_CHECK(zrt_comm_reduce_scatter(e->comm, u->grad_full, at(e, u->grad_full, e->rank * u->shard),
                                          (size_t)u->shard, e->dtype, ZRT_REDUCE_AVG, &u->reduce));
    }
    for (int i = 0; i < e->n_units; i++) ZRT_CHECK(wait_request(&e->units[i].reduce));
    return ZRT_OK;
}

/* ---- one micro batch ---------------------------------------------------------------------- */

static zrt_status micro_step(zrt_engine *e, const zrt_data *data, int a, float *loss)
{
    zrt_model *m = e->model;
    int64_t first = e->step * e->global_batch + ((int64_t)a * e->world + e->rank) * e->micro;
    zrt_data_fill(data, first, e->micro, e->inputs, e->labels);
    ZRT_CHECK(m->set_batch(m, e->inputs, e->labels, e->micro));
    const float *params;
    for (int op = 0; op < m->n_ops; op++) {
        ZRT_CHECK(fetch_params(e, op, +1, &params));
        ZRT_CHECK(m->forward(m, op, params));
        if (op != m->n_ops - 1) release(e, m->op_unit[op]);
    }
    *loss += m->loss(m, (float)(e->scaler.scale / e->accum)) / (float)e->accum;
    for (int op = m->n_ops - 1; op >= 0; op--) {
        unit_state *u = &e->units[m->op_unit[op]];
        float *grads = u->grad_accum ? u->grad_accum : e->grads_f32;
        if (op == u->last_op) memset(grads, 0, (size_t)u->numel * sizeof(float));
        ZRT_CHECK(fetch_params(e, op, -1, &params));
        ZRT_CHECK(m->backward(m, op, params, grads));
        if (e->inject_overflow && op == m->n_ops - 1) grads[0] = INFINITY;
        if (op == u->first_op) ZRT_CHECK(store_grads(e, m->op_unit[op], grads, a == 0));
        release(e, m->op_unit[op]);
    }
    return e->stage >= 2 ? collect_grads(e, a == 0) : ZRT_OK;
}

/* ---- the optimizer step --------------------------------------------------------------------- */

static void *own_grads(const zrt_engine *e, const unit_state *u)
{
    return e->stage <= 1 ? at(e, u->grad_full, e->rank * u->shard) : u->grad_shard;
}

/* Sum of squares of the own-range gradients (unscaled) and whether any is
 * not finite, then the same over all ranks. */
static zrt_status global_norm(zrt_engine *e, float *norm, bool *overflow)
{
    double sum = 0;
    float nonfinite = 0;
    for (int i = 0; i < e->n_units; i++) {
        unit_state *u = &e->units[i];
        to_f32(e->dtype, own_grads(e, u), u->shard, e->grads_f32);
        for (int64_t j = 0; j < u->shard; j++) {
            float g = e->grads_f32[j] / (float)e->scaler.scale;
            if (!isfinite(g)) nonfinite = 1;
            sum += (double)g * g;
        }
    }
    float totals[2] = {(float)sum, nonfinite};
    if (e->comm) ZRT_CHECK(zrt_comm_all_reduce(e->comm, totals, totals, 2, ZRT_DTYPE_F32, ZRT_REDUCE_SUM, NULL));
    *overflow = totals[1] > 0 || !isfinite(totals[0]);
    *norm = sqrtf(totals[0]);
    return ZRT_OK;
}

/* The compute copy from the master, then (stages 1-3) shared with the others. */
zrt_status zrt_engine_publish_params(zrt_engine *e)
{
    for (int i = 0; i < e->n_units; i++) {
        unit_state *u = &e->units[i];
        if (e->stage == 0) {
            from_f32(e->dtype, u->master, u->padded, u->param_full, false);
            continue;
        }
        void *own = e->stage == 3 ? u->param_shard : at(e, u->param_full, e->rank * u->shard);
        from_f32(e->dtype, u->master, u->shard, own, false);
        if (e->stage == 3 && !u->persistent) continue;
        if (e->stage == 3) ZRT_CHECK(wait_request(&u->gather));
        if (e->comm) ZRT_CHECK(zrt_comm_all_gather(e->comm, own, u->param_full, (size_t)u->shard, e->dtype, &u->gather));
        else if (own != u->param_full) memcpy(u->param_full, own, (size_t)u->shard * e->es);
    }
    for (int i = 0; i < e->n_units; i++) ZRT_CHECK(wait_request(&e->units[i].gather));
    return ZRT_OK;
}

static void apply_adam(zrt_engine *e, float clip, double lr)
{
    const zrt_optimizer_config *o = &e->cfg.optimizer;
    bool adamw = o->type == ZRT_OPT_ADAMW || o->adam_w_mode;
    zrt_adam_hyper h = zrt_adam_hyper_for((float)lr, (float)o->betas[0], (float)o->betas[1], (float)o->eps,
                                          (float)o->weight_decay, adamw, (long)e->adam_steps);
    float unscale = (float)(1.0 / e->scaler.scale);
    for (int i = 0; i < e->n_units; i++) {
        unit_state *u = &e->units[i];
        int64_t n = zrt_engine_opt_count(e, u);
        to_f32(e->dtype, e->stage == 0 ? u->grad_full : own_grads(e, u), n, e->grads_f32);
        for (int64_t j = 0; j < n; j++) {
            float g = e->grads_f32[j] * unscale;
            if (clip < 1.0f) g *= clip;
            zrt_adam_element(&u->master[j], &u->exp_avg[j], &u->exp_avg_sq[j], g, &h);
        }
    }
}

zrt_status zrt_engine_step(zrt_engine *e, const zrt_data *data, zrt_step_result *result)
{
    if (!e || !data || !result) return zrt_set_error(ZRT_ERR_INVALID, "zrt_engine_step: NULL argument");
    float loss = 0, norm = 0;
    bool overflow = false;
    double scale = e->scaler.scale;
    for (int a = 0; a < e->accum; a++) ZRT_CHECK(micro_step(e, data, a, &loss));
    e->inject_overflow = false;
    ZRT_CHECK(reduce_full_grads(e));
    ZRT_CHECK(global_norm(e, &norm, &overflow));
    double lr = zrt_schedule_lr(&e->cfg, e->step);
    if (!overflow) {
        double max_norm = e->cfg.gradient_clipping;
        float clip = max_norm > 0 ? (float)(max_norm / (norm + 1e-6)) : 1.0f;
        e->adam_steps++;
        apply_adam(e, clip, lr);
        ZRT_CHECK(zrt_engine_publish_params(e));
    }
    zrt_loss_scaler_update(&e->scaler, &e->cfg, overflow);
    if (e->comm) ZRT_CHECK(zrt_comm_all_reduce(e->comm, &loss, &loss, 1, ZRT_DTYPE_F32, ZRT_REDUCE_AVG, NULL));
    *result = (zrt_step_result){.loss = loss, .grad_norm = overflow ? 0 : norm, .lr = lr, .loss_scale = scale,
                                .skipped = overflow, .samples = e->global_batch};
    e->step++;
    return ZRT_OK;
}

/* ---- setup ----------------------------------------------------------------------------------- */

/* Initial master values of the optimizer range, from the model's init rule:
 * element j of parameter p of unit i is the same at any world size. */
static void init_master(zrt_engine *e, int index)
{
    unit_state *u = &e->units[index];
    int64_t begin = zrt_engine_opt_begin(e, u), end = begin + zrt_engine_opt_count(e, u);
    for (int p = 0; p < e->model->n_params[index]; p++) {
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
            u->master[pos - begin] = v;
        }
    }
}

static zrt_status alloc_unit(zrt_engine *e, int index)
{
    unit_state *u = &e->units[index];
    int64_t align = (int64_t)e->world * 16;
    u->numel = e->model->unit_numel[index];
    u->padded = (u->numel + align - 1) / align * align;
    u->shard = u->padded / e->world;
    u->persistent = e->stage == 3 && u->numel <= e->cfg.zero.stage3_param_persistence_threshold;
    size_t opt_bytes = (size_t)zrt_engine_opt_count(e, u) * sizeof(float);
    u->master = zrt_mem_alloc(e->mem, ZRT_MEM_OPTIMIZER, opt_bytes);
    u->exp_avg = zrt_mem_alloc(e->mem, ZRT_MEM_OPTIMIZER, opt_bytes);
    u->exp_avg_sq = zrt_mem_alloc(e->mem, ZRT_MEM_OPTIMIZER, opt_bytes);
    bool ok = u->master && u->exp_avg && u->exp_avg_sq;
    if (e->stage < 3 || u->persistent) {
        u->param_full = zrt_mem_alloc(e->mem, ZRT_MEM_PARAMS, (size_t)u->padded * e->es);
        ok &= u->param_full != NULL;
    }
    if (e->stage == 3) ok &= (u->param_shard = zrt_mem_alloc(e->mem, ZRT_MEM_PARAMS, (size_t)u->shard * e->es)) != NULL;
    if (e->stage <= 1) ok &= (u->grad_full = zrt_mem_alloc(e->mem, ZRT_MEM_GRADS, (size_t)u->padded * e->es)) != NULL;
    else ok &= (u->grad_shard = zrt_mem_alloc(e->mem, ZRT_MEM_GRADS, (size_t)u->shard * e->es)) != NULL;
    if (e->stage >= 2) { /* the unit's bucket: reused every step (pads stay zero) */
        ok &= (u->grad_send = zrt_mem_alloc(e->mem, ZRT_MEM_COMM, (size_t)u->padded * e->es)) != NULL;
        ok &= (u->grad_recv = zrt_mem_alloc(e->mem, ZRT_MEM_COMM, (size_t)u->shard * e->es)) != NULL;
    }
    u->first_op = -1;
    for (int op = 0; op < e->model->n_ops; op++) {
        if (e->model->op_unit[op] != index) continue;
        if (u->first_op < 0) u->first_op = op;
        u->last_op = op;
    }
    if (u->first_op < 0) return zrt_set_error(ZRT_ERR_INVALID, "engine: unit %d is used by no op of the model", index);
    if (u->first_op != u->last_op)
        ok &= (u->grad_accum = zrt_mem_alloc(e->mem, ZRT_MEM_ACTIVATIONS, (size_t)u->numel * sizeof(float))) != NULL;
    if (!ok) return oom("model states");
    init_master(e, index);
    return ZRT_OK;
}

static zrt_status check_supported(const zrt_config *cfg)
{
    if (cfg->zero.offload_optimizer.device == ZRT_OFFLOAD_NVME || cfg->zero.offload_param.device == ZRT_OFFLOAD_NVME)
        return zrt_set_error(ZRT_ERR_UNSUPPORTED, "engine: NVMe offload is not implemented yet (the offload work); "
                                                  "use offload device cpu or none");
    return ZRT_OK;
}

zrt_status zrt_engine_create(const zrt_config *cfg, zrt_comm *comm, zrt_model *model, zrt_mem_stats *mem,
                             zrt_engine **out)
{
    if (!cfg || !model || !mem || !out) return zrt_set_error(ZRT_ERR_INVALID, "zrt_engine_create: NULL argument");
    ZRT_CHECK(check_supported(cfg));
    zrt_engine *e = calloc(1, sizeof *e);
    if (!e) return oom("the engine");
    e->cfg = *cfg;
    e->comm = comm;
    e->rank = comm ? zrt_comm_rank(comm) : 0;
    e->world = comm ? zrt_comm_world_size(comm) : 1;
    e->stage = cfg->zero.stage;
    e->dtype = cfg->mixed_precision == ZRT_PRECISION_BF16   ? ZRT_DTYPE_BF16
               : cfg->mixed_precision == ZRT_PRECISION_FP16 ? ZRT_DTYPE_F16
                                                            : ZRT_DTYPE_F32;
    e->es = zrt_dtype_size(e->dtype);
    e->model = model;
    e->mem = mem;
    e->n_units = model->n_units;
    e->micro = (int)cfg->batch.micro_batch_per_gpu;
    e->accum = (int)cfg->batch.gradient_accumulation_steps;
    e->global_batch = (int64_t)e->micro * e->accum * e->world;
    zrt_loss_scaler_init(&e->scaler, cfg);
    zrt_status status = ZRT_OK;
    int64_t widest = 0;
    e->units = calloc((size_t)e->n_units, sizeof *e->units);
    if (!e->units) status = oom("units");
    for (int i = 0; status == ZRT_OK && i < e->n_units; i++) {
        status = alloc_unit(e, i);
        if (e->units[i].padded > widest) widest = e->units[i].padded;
    }
    if (status == ZRT_OK) {
        if (e->dtype != ZRT_DTYPE_F32) /* fp32 models read the compute copy directly */
            e->params_f32 = zrt_mem_alloc(mem, ZRT_MEM_ACTIVATIONS, (size_t)widest * sizeof(float));
        e->grads_f32 = zrt_mem_alloc(mem, ZRT_MEM_ACTIVATIONS, (size_t)widest * sizeof(float));
        e->inputs = zrt_mem_alloc(mem, ZRT_MEM_ACTIVATIONS, (size_t)e->micro * model->input_bytes_per_sample);
        e->labels = zrt_mem_alloc(mem, ZRT_MEM_ACTIVATIONS,
                                  (size_t)e->micro * (size_t)model->labels_per_sample * sizeof(int32_t));
        if ((e->dtype != ZRT_DTYPE_F32 && !e->params_f32) || !e->grads_f32 || !e->inputs || !e->labels)
            status = oom("work buffers");
    }
    if (status == ZRT_OK) status = zrt_engine_publish_params(e);
    if (status != ZRT_OK) {
        zrt_engine_destroy(e);
        return status;
    }
    *out = e;
    return ZRT_OK;
}

zrt_status zrt_engine_get_master(zrt_engine *e, int index, float *out)
{
    if (!e || !out || index < 0 || index >= e->n_units)
        return zrt_set_error(ZRT_ERR_INVALID, "zrt_engine_get_master: bad argument");
    unit_state *u = &e->units[index];
    if (e->stage == 0 || !e->comm) {
        memcpy(out, u->master, (size_t)u->numel * sizeof(float));
        return ZRT_OK;
    }
    float *full = malloc((size_t)u->padded * sizeof(float));
    if (!full) return oom("a gathered master");
    zrt_status status = zrt_comm_all_gather(e->comm, u->master, full, (size_t)u->shard, ZRT_DTYPE_F32, NULL);
    if (status == ZRT_OK) memcpy(out, full, (size_t)u->numel * sizeof(float));
    free(full);
    return status;
}

void zrt_engine_inject_overflow(zrt_engine *e) { e->inject_overflow = true; }
int64_t zrt_engine_peak_live_params(const zrt_engine *e) { return e->peak_live_params; }

void zrt_engine_destroy(zrt_engine *e)
{
    if (!e) return;
    for (int i = 0; e->units && i < e->n_units; i++) {
        unit_state *u = &e->units[i];
        wait_request(&u->gather);
        wait_request(&u->reduce);
        float *fp32[] = {u->master, u->exp_avg, u->exp_avg_sq};
        for (int k = 0; k < 3; k++) zrt_mem_free(e->mem, ZRT_MEM_OPTIMIZER, fp32[k]);
        zrt_mem_free(e->mem, ZRT_MEM_PARAMS, u->param_full);
        zrt_mem_free(e->mem, ZRT_MEM_PARAMS, u->param_shard);
        zrt_mem_free(e->mem, ZRT_MEM_GRADS, u->grad_full);
        zrt_mem_free(e->mem, ZRT_MEM_GRADS, u->grad_shard);
        zrt_mem_free(e->mem, ZRT_MEM_COMM, u->grad_send);
        zrt_mem_free(e->mem, ZRT_MEM_COMM, u->grad_recv);
        zrt_mem_free(e->mem, ZRT_MEM_COMM, u->param_cache);
        zrt_mem_free(e->mem, ZRT_MEM_ACTIVATIONS, u->grad_accum);
    }
    zrt_mem_free(e->mem, ZRT_MEM_ACTIVATIONS, e->params_f32);
    zrt_mem_free(e->mem, ZRT_MEM_ACTIVATIONS, e->grads_f32);
    zrt_mem_free(e->mem, ZRT_MEM_ACTIVATIONS, e->inputs);
    zrt_mem_free(e->mem, ZRT_MEM_ACTIVATIONS, e->labels);
    free(e->units);
    free(e);
}
