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

/* The next bucket for the unit's padded gradients, once the reduce_scatter
 * that last read it is done; its pads (numel..padded) zeroed, as another
 * unit may have left values there. */
static zrt_status take_bucket(zrt_engine *e, int index)
{
    unit_state *u = &e->units[index];
    if (u->grad_bucket) return ZRT_OK;
    u->bucket = e->next_bucket++ % GRAD_RING;
    u->grad_bucket = e->buckets[u->bucket];
    ZRT_CHECK(zrt_stream_wait_event(e->compute, e->bucket_free[u->bucket]));
    if (u->padded == u->numel) return ZRT_OK;
    return zrt_memset_async(e->compute, at(e, u->grad_bucket, u->numel), 0, (size_t)(u->padded - u->numel) * e->es);
}

/* Where the unit's reduce_scatter writes: the shard itself (its first micro
 * batch), or a recv slot -- added to the shard on comm, or going down from
 * there (once the placement has taken the gradients its last user left). */
static zrt_status pick_reduced(zrt_engine *e, int index, bool first_micro, void **slot)
{
    unit_state *u = &e->units[index];
    *slot = NULL;
    if (first_micro && !down_from_reduce(e)) {
        u->grad_reduced = u->grad_shard;
        return ZRT_OK;
    }
    int k = e->next_recv++ % GRAD_RING;
    if (down_from_reduce(e) && e->recv_unit[k] >= 0)
        ZRT_CHECK(e->place->grads_taken(e->place_state, e->recv_unit[k], e->comm_stream));
    e->recv_unit[k] = index;
    u->grad_reduced = *slot = e->recv[k];
    return ZRT_OK;
}

static zrt_status store_sharded(zrt_engine *e, int index, const float *grads, bool first_micro, bool last_micro)
{
    (void)last_micro;
    unit_state *u = &e->units[index];
    ZRT_CHECK(take_bucket(e, index));
    if (grads != u->grad_bucket)
        ZRT_CHECK(zrt_kernel_cast(e->compute, u->grad_bucket, e->dtype, grads, ZRT_DTYPE_F32, (size_t)u->numel, false));
    ZRT_CHECK(zrt_engine_order(e, e->compute, e->comm_stream));
    void *slot;
    ZRT_CHECK(pick_reduced(e, index, first_micro, &slot));
    ZRT_CHECK(reduce_unit(e, u));
    ZRT_CHECK(zrt_event_record(e->bucket_free[u->bucket], e->comm_stream));
    u->grad_bucket = NULL;
    if (slot && !down_from_reduce(e)) /* a later micro batch: added to the shard, in order, on comm */
        ZRT_CHECK(zrt_kernel_cast(e->comm_stream, u->grad_shard, e->dtype, slot, e->dtype, (size_t)u->shard, true));
    ZRT_CHECK(zrt_event_record(u->reduced, e->comm_stream));
    if (down_from_reduce(e))
        ZRT_CHECK(e->place->grads_ready(e->place_state, index, slot, u->reduced, e->scaler.scale));
    return e->cfg.zero.overlap_comm ? ZRT_OK : zrt_stream_wait_event(e->compute, u->reduced);
}

/* Compute waits for the micro batch's reductions (each added to its shard
 * on comm); at the last micro batch the shards are ready. */
static zrt_status after_micro_sharded(zrt_engine *e, bool first_micro, bool last_micro)
{
    (void)first_micro;
    if (down_from_reduce(e)) return ZRT_OK; /* already on their way down */
    for (int i = e->n_units - 1; i >= 0; i--) ZRT_CHECK(zrt_stream_wait_event(e->compute, e->units[i].reduced));
    return last_micro ? all_grads_ready(e, e->compute, true) : ZRT_OK;
}

static zrt_status alloc_sharded(zrt_engine *e, int index)
{
    unit_state *u = &e->units[index];
    if (!down_from_reduce(e))
        ZRT_CHECK(zrt_engine_alloc(e, ZRT_MEM_GRADS, (size_t)u->shard * e->es, index, "grads (shard)", &u->grad_shard));
    e->ranges[index].grads = e->ranges[index].shard_grads = u->grad_shard;
    return ZRT_OK;
}

/* Two buckets of the widest padded unit (pads zeroed by take_bucket) and
 * two recv slots of the widest shard, zeroed now so that their pages are
 * resident from the start: the memory report counts them whole. */
static zrt_status alloc_rings(zrt_engine *e)
{
    int64_t padded = 0, shard = 0;
    for (int i = 0; i < e->n_units; i++) {
        if (e->units[i].padded > padded) padded = e->units[i].padded;
        if (e->units[i].shard > shard) shard = e->units[i].shard;
    }
    for (int k = 0; k < GRAD_RING; k++) {
        e->recv_unit[k] = -1;
        ZRT_CHECK(zrt_engine_alloc(e, ZRT_MEM_COMM, (size_t)padded * e->es, -1, "grads bucket (reduce_scatter input)",
                                   &e->buckets[k]));
        ZRT_CHECK(zrt_engine_alloc(e, ZRT_MEM_COMM, (size_t)shard * e->es, -1, "grads (reduce_scatter output)",
                                   &e->recv[k]));
        ZRT_CHECK(zrt_event_create(e->device, "bucket free", &e->bucket_free[k]));
        ZRT_CHECK(zrt_memset_async(e->compute, e->buckets[k], 0, (size_t)padded * e->es));
        ZRT_CHECK(zrt_memset_async(e->compute, e->recv[k], 0, (size_t)shard * e->es));
    }
    return ZRT_OK;
}

/* ---- the table ----------------------------------------------------------------------------- */

#define FULL_GRADS .store_grads = store_full, .after_micro = after_micro_full, .alloc_grads = alloc_full
#define SHARDED_GRADS                                                                                                  \
    .store_grads = store_sharded, .after_micro = after_micro_sharded, .alloc_grads = alloc_sharded,                   \
    .alloc_shared = alloc_rings, .take_bucket = take_bucket

const stage_policy zrt_stage_policies[4] = {
    {.stage = 0, .params_sharded = false, .grads_sharded = false, .state_sharded = false, FULL_GRADS},
    {.stage = 1, .params_sharded = false, .grads_sharded = false, .state_sharded = true, FULL_GRADS},
    {.stage = 2, .params_sharded = false, .grads_sharded = true, .state_sharded = true, SHARDED_GRADS},
    {.stage = 3, .params_sharded = true, .grads_sharded = true, .state_sharded = true, SHARDED_GRADS},
};
