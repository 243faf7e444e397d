/* stages.c: the ZeRO stages as data -- one stage_policy row per stage, the
 * table of docs/engine.md -- and the gradients' path each row names:
 *
 *   stage | parameters | gradients | optimizer state | gradients reduced by
 *   0     | full       | full      | full            | all_reduce (avg), once per step
 *   1     | full       | full      | own shard       | reduce_scatter in place, once per step
 *   2     | full       | own shard | own shard       | reduce_scatter per unit, every micro batch
 *   3     | own shard  | own shard | own shard       | as 2; parameters gathered before use
 *
 * Why here: the step (engine.c) calls the row's functions at fixed points
 * and never tests the stage. Full gradients (0-1) accumulate over micro
 * batches and are reduced once, as each unit's last micro batch ends (on
 * comm while backward goes on: DDP's overlap) -- or, when the optimizer
 * takes the gradients off the device (place_ops.grads_leave_device), unit
 * by unit after backward, each going down while the next reduces. Sharded
 * gradients (2-3) are reduce_scattered per unit as backward produces them
 * (overlap_comm) and the shards added, as DeepSpeed does.
 */
#include "engine_internal.h"

static void *at(const zrt_engine *e, void *base, int64_t index) { return (char *)base + index * (int64_t)e->es; }

/* The unit's collective on comm: stage 0 all_reduces the whole buffer; the
 * others reduce_scatter the bucket into grad_reduced (stage 1: in place).
 * One rank: the bucket is already reduced (copied where it is wanted). */
static zrt_status reduce_unit(zrt_engine *e, unit_state *u)
{
    if (!e->comm)
        return u->grad_reduced == u->grad_bucket
                   ? ZRT_OK
                   : zrt_memcpy_async(e->comm_stream, u->grad_reduced, u->grad_bucket, (size_t)u->shard * e->es,
                                      ZRT_COPY_D2D);
    if (!e->policy->state_sharded)
        return zrt_comm_all_reduce_on(e->comm, u->grad_bucket, u->grad_bucket, (size_t)u->padded, e->dtype,
                                      ZRT_REDUCE_AVG, e->comm_stream);
    return zrt_comm_reduce_scatter_on(e->comm, u->grad_bucket, u->grad_reduced, (size_t)u->shard, e->dtype,
                                      ZRT_REDUCE_AVG, e->comm_stream);
}

/* Every unit's own gradients are final once `stream` reaches this point. */
static zrt_status all_grads_ready(zrt_engine *e, zrt_stream *stream, bool backward_order)
{
    ZRT_CHECK(zrt_event_record(e->mark, stream));
    for (int k = 0; k < e->n_units; k++) {
        int i = backward_order ? e->n_units - 1 - k : k;
        ZRT_CHECK(e->place->grads_ready(e->place_state, i, e->ranges[i].shard_grads, e->mark, e->scaler.scale));
    }
    return ZRT_OK;
}

/* ---- full gradients (stages 0-1) ----------------------------------------------------------- */

static bool reduce_during_backward(const zrt_engine *e) { return e->comm && !e->place->grads_leave_device; }

static zrt_status store_full(zrt_engine *e, int index, const float *grads, bool first_micro, bool last_micro)
{
    unit_state *u = &e->units[index];
    if (grads != u->grad_full)
        ZRT_CHECK(zrt_kernel_cast(e->compute, u->grad_full, e->dtype, grads, ZRT_DTYPE_F32, (size_t)u->numel,
                                  !first_micro));
    if (!last_micro || !reduce_during_backward(e)) return ZRT_OK;
    ZRT_CHECK(zrt_engine_order(e, e->compute, e->comm_stream));
    return reduce_unit(e, u);
}

/* After the last micro batch: wait for the reductions issued during
 * backward; or reduce unit by unit, each unit's shard going down while the
 * next reduces; one rank has nothing to reduce. */
static zrt_status after_micro_full(zrt_engine *e, bool first_micro, bool last_micro)
{
    (void)first_micro;
    if (!last_micro) return ZRT_OK;
    if (reduce_during_backward(e)) return zrt_engine_order(e, e->comm_stream, e->compute);
    if (!e->comm) return all_grads_ready(e, e->compute, false);
    ZRT_CHECK(zrt_engine_order(e, e->compute, e->comm_stream));
    for (int i = 0; i < e->n_units; i++) {
        unit_state *u = &e->units[i];
        ZRT_CHECK(reduce_unit(e, u));
        ZRT_CHECK(zrt_event_record(u->reduced, e->comm_stream));
        ZRT_CHECK(e->place->grads_ready(e->place_state, i, e->ranges[i].shard_grads, u->reduced, e->scaler.scale));
    }
    return zrt_engine_order(e, e->comm_stream, e->compute);
}

static zrt_status alloc_full(zrt_engine *e, int index)
{
    unit_state *u = &e->units[index];
    size_t full = (size_t)u->padded * e->es;
    ZRT_CHECK(zrt_engine_alloc(e, ZRT_MEM_GRADS, full, index, "grads", &u->grad_full));
    u->grad_bucket = u->grad_full;
    u->grad_reduced = at(e, u->grad_full, e->policy->state_sharded ? e->rank * u->shard : 0);
    e->ranges[index].grads = at(e, u->grad_full, zrt_engine_opt_begin(e, u));
    e->ranges[index].shard_grads = at(e, u->grad_full, e->rank * u->shard);
    return zrt_memset_async(e->compute, u->grad_full, 0, full); /* the pads stay zero */
}

/* ---- sharded gradients (stages 2-3) -------------------------------------------------------- */

/* The reduced shards of a single micro batch go down straight from the
 * reduce_scatter's output when the optimizer takes them off the device. */
static bool down_from_reduce(const zrt_engine *e) { return e->place->grads_leave_device && e->accum == 1; }

static zrt_status store_sharded(zrt_engine *e, int index, const float *grads, bool first_micro, bool last_micro)
{
    (void)first_micro, (void)last_micro;
    unit_state *u = &e->units[index];
    if (grads != u->grad_send)
        ZRT_CHECK(zrt_kernel_cast(e->compute, u->grad_send, e->dtype, grads, ZRT_DTYPE_F32, (size_t)u->numel, false));
    ZRT_CHECK(zrt_engine_order(e, e->compute, e->comm_stream));
    ZRT_CHECK(reduce_unit(e, u));
    ZRT_CHECK(zrt_event_record(u->reduced, e->comm_stream));
    if (down_from_reduce(e))
        ZRT_CHECK(e->place->grads_ready(e->place_state, index, u->grad_recv, u->reduced, e->scaler.scale));
    return e->cfg.zero.overlap_comm ? ZRT_OK : zrt_stream_wait_event(e->compute, u->reduced);
}

/* Wait for the micro batch's reductions and add them to the shard; at the
 * last micro batch the shards are ready. */
static zrt_status after_micro_sharded(zrt_engine *e, bool first_micro, bool last_micro)
{
    if (down_from_reduce(e)) return ZRT_OK; /* already on their way down */
    for (int i = e->n_units - 1; i >= 0; i--) {
        unit_state *u = &e->units[i];
        ZRT_CHECK(zrt_stream_wait_event(e->compute, u->reduced));
        ZRT_CHECK(zrt_kernel_cast(e->compute, u->grad_shard, e->dtype, u->grad_recv, e->dtype, (size_t)u->shard,
                                  !first_micro));
    }
    return last_micro ? all_grads_ready(e, e->compute, true) : ZRT_OK;
}

static zrt_status alloc_sharded(zrt_engine *e, int index)
{
    unit_state *u = &e->units[index];
    size_t full = (size_t)u->padded * e->es, shard = (size_t)u->shard * e->es;
    ZRT_CHECK(zrt_engine_alloc(e, ZRT_MEM_GRADS, shard, index, "grads (shard)", &u->grad_shard));
    ZRT_CHECK(zrt_engine_alloc(e, ZRT_MEM_COMM, full, index, "grads (reduce_scatter input)", &u->grad_send));
    ZRT_CHECK(zrt_engine_alloc(e, ZRT_MEM_COMM, shard, index, "grads (reduce_scatter output)", &u->grad_recv));
    u->grad_bucket = u->grad_send;
    u->grad_reduced = u->grad_recv;
    e->ranges[index].grads = e->ranges[index].shard_grads = u->grad_shard;
    return zrt_memset_async(e->compute, u->grad_send, 0, full); /* the unit's bucket: pads stay zero */
}

/* ---- the table ----------------------------------------------------------------------------- */

#define FULL_GRADS .store_grads = store_full, .after_micro = after_micro_full, .alloc_grads = alloc_full
#define SHARDED_GRADS .store_grads = store_sharded, .after_micro = after_micro_sharded, .alloc_grads = alloc_sharded

const stage_policy zrt_stage_policies[4] = {
    {.stage = 0, .params_sharded = false, .grads_sharded = false, .state_sharded = false, FULL_GRADS},
    {.stage = 1, .params_sharded = false, .grads_sharded = false, .state_sharded = true, FULL_GRADS},
    {.stage = 2, .params_sharded = false, .grads_sharded = true, .state_sharded = true, SHARDED_GRADS},
    {.stage = 3, .params_sharded = true, .grads_sharded = true, .state_sharded = true, SHARDED_GRADS},
};
