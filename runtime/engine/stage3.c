/* stage3.c: ZeRO stage 3's parameter residency: a unit is all_gathered (on
 * the comm stream) before compute uses it and released after, the next
 * units are prefetched within stage3_prefetch_bucket_size and
 * stage3_max_live_parameters, and units up to
 * stage3_param_persistence_threshold elements stay gathered.
 *
 * Why its own file: this is where parameter offload plugs in: with
 * offload_param a shard is brought in from host memory or NVMe
 * (param_store.c) right before its gather, on the comm stream, so the
 * prefetch below brings it in ahead too. Ordering, all on
 * the device's streams: a gather waits (on comm) for `published` -- the
 * shard holds this step's values -- and for the unit's `used` event, when it
 * reuses the unit's cached buffer; compute waits for `gathered` before its
 * first use; a buffer beyond the budget is freed on the compute stream, so
 * the memory returns only after compute is done with it. The budget's
 * bookkeeping (live, cached, peak) is host-side and exact; memory freed on
 * a stream is still held until the stream gets there, so a gather that
 * would take live + cached + freeing over the budget first waits for the
 * streams to reach their latest frees (the host runs at most that far
 * ahead): the device holds stage3_max_live_parameters, not the model.
 */
#include "engine_internal.h"

#include <stdio.h>

/* Frees device buffer `ptr` of `elements` (stage 3's budget counts them) once `stream` is done with it. */
static zrt_status free_on(zrt_engine *e, void *ptr, int64_t elements, zrt_stream *stream)
{
    ZRT_CHECK(zrt_device_free(e->device, ptr, stream));
    e->freeing_params += elements;
    return zrt_event_record(e->freed[stream == e->compute ? 0 : 1], stream);
}

/* Room for `elements` more within the budget, counting what is being freed. */
static zrt_status make_room(zrt_engine *e, int64_t elements)
{
    if (e->freeing_params == 0 ||
        e->live_params + e->cached_params + e->freeing_params + elements <= e->cfg.zero.stage3_max_live_parameters)
        return ZRT_OK;
    for (int k = 0; k < 2; k++) ZRT_CHECK(zrt_event_synchronize(e->freed[k]));
    e->freeing_params = 0;
    return ZRT_OK;
}

static zrt_status issue_gather(zrt_engine *e, int index)
{
    unit_state *u = &e->units[index];
    if (u->param_full) return ZRT_OK;
    if (u->param_cache) {
        ZRT_CHECK(zrt_device_recharge(e->device, u->param_cache, ZRT_MEM_PARAMS));
        u->param_full = u->param_cache;
        u->param_cache = NULL;
        e->cached_params -= u->padded;
        ZRT_CHECK(zrt_stream_wait_event(e->comm_stream, u->used)); /* compute's last read of it */
    } else {
        char name[64];
        ZRT_CHECK(make_room(e, u->padded + (u->params_offloaded ? u->shard : 0)));
        snprintf(name, sizeof name, "unit %d params (gathered)", index);
        ZRT_CHECK(zrt_device_alloc(e->device, ZRT_MEM_PARAMS, (size_t)u->padded * e->es, name, e->comm_stream,
                                   &u->param_full));
    }
    e->live_params += u->padded;
    if (e->live_params > e->peak_live_params) e->peak_live_params = e->live_params;
    ZRT_CHECK(zrt_stream_wait_event(e->comm_stream, e->published));
    void *shard = u->param_shard;
    if (u->params_offloaded) ZRT_CHECK(zrt_param_store_stage(e->params, e->comm_stream, index, &shard)); /* offload_param: in from host or NVMe */
    if (e->comm)
        ZRT_CHECK(zrt_comm_all_gather_on(e->comm, shard, u->param_full, (size_t)u->shard, e->dtype, e->comm_stream));
    else
        ZRT_CHECK(zrt_memcpy_async(e->comm_stream, u->param_full, shard, (size_t)u->shard * e->es, ZRT_COPY_D2D));
    if (u->params_offloaded) ZRT_CHECK(free_on(e, shard, u->shard, e->comm_stream));
    ZRT_CHECK(zrt_event_record(u->gathered, e->comm_stream));
    u->gather_pending = true;
    return ZRT_OK;
}

zrt_status zrt_stage3_release(zrt_engine *e, int index)
{
    unit_state *u = &e->units[index];
    if (!u->gathered_when_used || !u->param_full) return ZRT_OK;
    ZRT_CHECK(zrt_engine_wait_gathered(e, u)); /* a prefetch nobody used yet: compute frees it after the gather */
    ZRT_CHECK(zrt_event_record(u->used, e->compute));
    e->live_params -= u->padded;
    /* Within stage3_max_live_parameters (live + cached), the buffer is kept
     * (as comm memory) for the next gather, so steps do not fault in fresh
     * pages; beyond it, it is freed once compute is done with it. */
    if (e->live_params + e->cached_params + u->padded <= e->cfg.zero.stage3_max_live_parameters) {
        ZRT_CHECK(zrt_device_recharge(e->device, u->param_full, ZRT_MEM_COMM));
        u->param_cache = u->param_full;
        e->cached_params += u->padded;
    } else {
        ZRT_CHECK(free_on(e, u->param_full, u->padded, e->compute));
    }
    u->param_full = NULL;
    return ZRT_OK;
}

/* Frees every cached buffer but the unit's own (room for a gather). */
static zrt_status drop_caches(zrt_engine *e, int keep)
{
    for (int i = 0; i < e->n_units; i++) {
        unit_state *u = &e->units[i];
        if (i == keep || !u->param_cache) continue;
        ZRT_CHECK(free_on(e, u->param_cache, u->padded, e->compute)); /* after compute's last read */
        u->param_cache = NULL;
        e->cached_params -= u->padded;
    }
    return ZRT_OK;
}

/* Gathers the units of the ops after `op` in direction `dir` while they fit
 * the prefetch bucket and the live-parameter budget. */
static zrt_status prefetch(zrt_engine *e, int op, int dir)
{
    int64_t budget = e->cfg.zero.stage3_prefetch_bucket_size;
    for (int next_op = op + dir; next_op >= 0 && next_op < e->model->n_ops && budget > 0; next_op += dir) {
        int next = e->model->op_unit[next_op];
        unit_state *u = &e->units[next];
        if (!u->gathered_when_used || u->param_full) continue;
        if (e->live_params + u->padded > e->cfg.zero.stage3_max_live_parameters || u->padded > budget) break;
        if (!u->param_cache && e->live_params + e->cached_params + u->padded > e->cfg.zero.stage3_max_live_parameters)
            ZRT_CHECK(drop_caches(e, next));
        budget -= u->padded;
        ZRT_CHECK(issue_gather(e, next));
    }
    return ZRT_OK;
}

zrt_status zrt_stage3_fetch(zrt_engine *e, int op, int dir)
{
    int index = e->model->op_unit[op];
    unit_state *u = &e->units[index];
    if (!u->gathered_when_used) return ZRT_OK;
    if (!u->param_full && e->live_params + u->padded > e->cfg.zero.stage3_max_live_parameters)
        for (int other = 0; other < e->n_units; other++)
            if (other != index) ZRT_CHECK(zrt_stage3_release(e, other)); /* make room: nothing else is in use now */
    if (!u->param_full && !u->param_cache &&
        e->live_params + e->cached_params + u->padded > e->cfg.zero.stage3_max_live_parameters)
        ZRT_CHECK(drop_caches(e, index));
    ZRT_CHECK(issue_gather(e, index));
    return prefetch(e, op, dir);
}
