/* offload.c: offload_optimizer: cpu and nvme -- the fp32 master and moments
 * of the own shard in pinned host memory (cpu) or in swap files streamed in
 * sub-groups (nvme: offload_nvme.c), the step on the CPU (zrt/offload.h).
 *
 * The pipeline, per step (DESIGN.md, Offload):
 *  - each unit's own gradients go down on the d2h stream as soon as they
 *    are reduced (stage 2/3: right after the unit's reduce_scatter, while
 *    backward goes on; stage 1: after its reduce_scatter), with their
 *    statistics taken in the same pass (zrt_kernel_copy_stats);
 *  - the statistics are summed in unit order, reduced over ranks and copied
 *    to the host with the loss, as without offload -- the same bits;
 *  - the host runs the one-pass optimizer unit by unit (waiting only for
 *    that unit's copy), writing the updated compute copy (bf16/fp16: half
 *    the bytes of fp32) into one of two pinned tiles; the h2d stream copies
 *    tile i up while the CPU works on tile i+1;
 *  - the gathers (stages 1-3) wait for the copies on the comm stream.
 * The host loop runs over sub-groups: with cpu one per unit (its state is
 * resident), with nvme the sub-groups of offload_nvme.c, each loaded ahead
 * and stored behind; an nvme step that fails on one rank (I/O) fails on
 * every rank before any gather, so no rank waits for another forever.
 * One pool per rank holds the state (cpu), one the gradients, one the two
 * tiles: sized exactly, pinned (zrt_host_alloc). The device holds no
 * optimizer state.
 */
#include "engine_internal.h"

#include "cast.h"
#include "optim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TILE_ELEMENTS (1 << 18) /* 512 KiB of bf16 per tile: cache-sized, many in flight */

struct zrt_offload_state {
    zrt_stream *d2h, *h2d;
    zrt_cpu_pool *pool;
    float *state;            /* pinned, per unit: [master | exp_avg | exp_avg_sq], shard each */
    void *grads;             /* pinned, per unit: the own gradients (D), shard */
    void *tiles[2];          /* pinned: tile elements of D each */
    zrt_event *tile_free[2]; /* h2d: the copy out of tiles[k] is done */
    size_t tile;             /* elements per tile */
    zrt_nvme_state *nvme;    /* offload_optimizer: nvme; NULL for cpu */
};

static int local_rank(const zrt_engine *e, int *local_ranks)
{
    *local_ranks = zrt_local_ranks(e->world, (int)e->cfg.num_machines);
    return e->rank % *local_ranks;
}

/* Points every unit into the pools. */
static void carve(zrt_engine *e)
{
    zrt_offload_state *o = e->offload;
    size_t state = 0, grads = 0;
    for (int i = 0; i < e->n_units; i++) {
        unit_state *u = &e->units[i];
        size_t shard = (size_t)u->shard;
        if (o->state) {
            u->master = o->state + state;
            u->exp_avg = u->master + shard;
            u->exp_avg_sq = u->exp_avg + shard;
            memset(u->exp_avg, 0, 2 * shard * sizeof(float));
        }
        u->host_grads = (char *)o->grads + grads;
        state += 3 * shard;
        grads += shard * e->es;
    }
}

zrt_status zrt_offload_create(zrt_engine *e)
{
    zrt_offload_state *o = calloc(1, sizeof *o);
    if (!o) return zrt_set_error(ZRT_ERR_NOMEM, "offload: out of memory");
    e->offload = o;
    size_t state = 0, grads = 0, widest = 0;
    for (int i = 0; i < e->n_units; i++) {
        size_t shard = (size_t)e->units[i].shard;
        state += 3 * shard * sizeof(float);
        grads += shard * e->es;
        if (shard > widest) widest = shard;
        ZRT_CHECK(zrt_event_create(e->device, "grads down", &e->units[i].down));
    }
    o->tile = widest < TILE_ELEMENTS ? widest : TILE_ELEMENTS;
    int local_ranks, local = local_rank(e, &local_ranks);
    int threads = zrt_cpu_threads_default((int)e->cfg.job.cpu_threads, local_ranks);
    ZRT_CHECK(zrt_cpu_pool_create(threads, local * threads, &o->pool));
    ZRT_CHECK(zrt_stream_create(e->device, "d2h", &o->d2h));
    ZRT_CHECK(zrt_stream_create(e->device, "h2d", &o->h2d));
    if (e->cfg.zero.offload_optimizer.device == ZRT_OFFLOAD_NVME) ZRT_CHECK(zrt_nvme_create(e, &o->nvme));
    else ZRT_CHECK(zrt_host_alloc(e->device, ZRT_MEM_OPTIMIZER, state, "optimizer state (host)", (void **)&o->state));
    ZRT_CHECK(zrt_host_alloc(e->device, ZRT_MEM_GRADS, grads, "grads (host)", &o->grads));
    for (int k = 0; k < 2; k++) {
        ZRT_CHECK(zrt_host_alloc(e->device, ZRT_MEM_COMM, o->tile * e->es, "param tile (host)", &o->tiles[k]));
        ZRT_CHECK(zrt_event_create(e->device, "tile free", &o->tile_free[k]));
    }
    carve(e);
    return ZRT_OK;
}

void zrt_offload_destroy(zrt_engine *e)
{
    zrt_offload_state *o = e->offload;
    if (!o) return;
    zrt_stream_destroy(o->d2h); /* runs what is queued first */
    zrt_stream_destroy(o->h2d);
    for (int i = 0; e->units && i < e->n_units; i++) zrt_event_destroy(e->units[i].down);
    for (int k = 0; k < 2; k++) {
        zrt_host_free(e->device, o->tiles[k]);
        zrt_event_destroy(o->tile_free[k]);
    }
    zrt_nvme_destroy(o->nvme);
    zrt_host_free(e->device, o->state);
    zrt_host_free(e->device, o->grads);
    zrt_cpu_pool_destroy(o->pool);
    free(o);
    e->offload = NULL;
}

zrt_status zrt_offload_synchronize(zrt_engine *e)
{
    if (!e->offload) return ZRT_OK;
    zrt_status d2h = zrt_stream_synchronize(e->offload->d2h);
    char message[ZRT_ERROR_MAX];
    snprintf(message, sizeof message, "%s", zrt_last_error());
    zrt_status h2d = zrt_stream_synchronize(e->offload->h2d);
    return d2h != ZRT_OK ? zrt_set_error(d2h, "%s", message) : h2d;
}

zrt_status zrt_offload_grads_down(zrt_engine *e, int index, const void *src, zrt_event *ready)
{
    zrt_offload_state *o = e->offload;
    unit_state *u = &e->units[index];
    if (ready) ZRT_CHECK(zrt_stream_wait_event(o->d2h, ready));
    ZRT_CHECK(zrt_kernel_copy_stats(o->d2h, u->host_grads, src, e->dtype, (size_t)u->shard, (float)e->scaler.scale,
                                    zrt_engine_unit_stats(e, index)));
    return zrt_event_record(u->down, o->d2h);
}

zrt_status zrt_offload_statistics(zrt_engine *e)
{
    zrt_offload_state *o = e->offload;
    ZRT_CHECK(zrt_kernel_sum(o->d2h, zrt_engine_unit_stats(e, 0), (size_t)e->n_units, 2, &e->scratch[SLOT_SQUARES]));
    ZRT_CHECK(zrt_kernel_sum(o->d2h, zrt_engine_unit_stats(e, 0) + 1, (size_t)e->n_units, 2, &e->scratch[SLOT_NONFINITE]));
    ZRT_CHECK(zrt_engine_order(e, o->d2h, e->comm_stream));
    ZRT_CHECK(zrt_engine_order(e, e->compute, e->comm_stream)); /* the loss */
    if (e->comm)
        ZRT_CHECK(zrt_comm_all_reduce_on(e->comm, e->scratch, e->scratch, SLOT_REDUCED, ZRT_DTYPE_F32, ZRT_REDUCE_SUM,
                                         e->comm_stream));
    ZRT_CHECK(zrt_memcpy_async(e->comm_stream, e->host_scratch, e->scratch, SLOT_REDUCED * sizeof(float), ZRT_COPY_D2H));
    return zrt_event_record(e->result_ready, e->comm_stream);
}

/* One tile: elements [at, at + n) of a sub-group's state, [begin, begin + n)
 * of the unit's shard. Fill it (the optimizer, or a plain rounding of the
 * master), then copy it up. *k counts tiles, for the double buffer. */
static zrt_status push_tile(zrt_engine *e, unit_state *u, float *const state[3], size_t at, size_t begin, size_t n,
                            const zrt_adam_args *args, float clip, int *k)
{
    zrt_offload_state *o = e->offload;
    int b = (*k)++ % 2;
    ZRT_CHECK(zrt_event_synchronize(o->tile_free[b])); /* the copy out of this tile has read it */
    if (args) {
        zrt_adam_slice s = {state[0] + at, state[1] + at, state[2] + at, (char *)u->host_grads + begin * e->es,
                            e->dtype, o->tiles[b], e->dtype, n};
        ZRT_CHECK(zrt_cpu_adam(args, clip, &s, ZRT_SIMD_AUTO, o->pool));
    } else {
        for (size_t i = 0; i < n; i++) zrt_store_f32(o->tiles[b], i, (int)e->dtype, state[0][at + i]);
    }
    char *dst = (char *)zrt_engine_own_params(e, u) + begin * e->es;
    ZRT_CHECK(zrt_memcpy_async(o->h2d, dst, o->tiles[b], n * e->es, ZRT_COPY_H2D));
    return zrt_event_record(o->tile_free[b], o->h2d);
}

static size_t n_groups(const zrt_engine *e)
{
    return e->offload->nvme ? zrt_nvme_groups(e->offload->nvme) : (size_t)e->n_units;
}

/* Sub-group k and its state (cpu: unit k, resident). */
static zrt_status load_group(zrt_engine *e, size_t k, zrt_subgroup *g, float *state[3])
{
    zrt_offload_state *o = e->offload;
    if (o->nvme) {
        *g = *zrt_nvme_group(o->nvme, k);
        return zrt_nvme_load(o->nvme, k, state);
    }
    unit_state *u = &e->units[k];
    *g = (zrt_subgroup){.unit = (int)k, .n = (size_t)u->shard};
    state[0] = u->master;
    state[1] = u->exp_avg;
    state[2] = u->exp_avg_sq;
    return ZRT_OK;
}

/* A sub-group whose unit's parameters are offloaded (offload_param): the
 * optimizer writes the new compute copy straight into the store's host
 * memory, opened at the unit's first sub-group and closed at its last. */
static zrt_status update_offloaded(zrt_engine *e, const zrt_subgroup *g, float *const state[3],
                                   const zrt_adam_args *args, float clip)
{
    unit_state *u = &e->units[g->unit];
    void *host;
    if (g->begin == 0) ZRT_CHECK(zrt_param_store_begin_write(e, g->unit, &u->store_open));
    host = (char *)u->store_open + g->begin * e->es;
    if (args) {
        zrt_adam_slice s = {state[0], state[1], state[2], (char *)u->host_grads + g->begin * e->es, e->dtype, host,
                            e->dtype, g->n};
        ZRT_CHECK(zrt_cpu_adam(args, clip, &s, ZRT_SIMD_AUTO, e->offload->pool));
    } else {
        for (size_t i = 0; i < g->n; i++) zrt_store_f32(host, i, (int)e->dtype, state[0][i]);
    }
    return g->begin + g->n == (size_t)u->shard ? zrt_param_store_end_write(e, g->unit) : ZRT_OK;
}

/* The host loop: every sub-group updated (args NULL: only rounded) and its
 * compute copy pushed up tile by tile (or into the parameter store). */
static zrt_status update(zrt_engine *e, const zrt_adam_args *args, float clip)
{
    zrt_offload_state *o = e->offload;
    if (o->nvme) ZRT_CHECK(zrt_nvme_start(o->nvme));
    int k_tile = 0, waited = -1;
    for (size_t k = 0; k < n_groups(e); k++) {
        zrt_subgroup g;
        float *state[3];
        ZRT_CHECK(load_group(e, k, &g, state));
        unit_state *u = &e->units[g.unit];
        if (args && g.unit != waited) ZRT_CHECK(zrt_event_synchronize(u->down)); /* this unit's gradients are here */
        waited = g.unit;
        if (u->params_offloaded) ZRT_CHECK(update_offloaded(e, &g, state, args, clip));
        for (size_t at = 0; at < g.n && !u->params_offloaded; at += o->tile) {
            size_t n = g.n - at < o->tile ? g.n - at : o->tile;
            ZRT_CHECK(push_tile(e, u, state, at, g.begin + at, n, args, clip, &k_tile));
        }
        if (o->nvme && args) ZRT_CHECK(zrt_nvme_store(o->nvme, k));
    }
    return e->params ? zrt_param_store_flush(e) : ZRT_OK;
}

/* Every unit's compute copy up (args NULL: no update), then the gathers. */
static zrt_status push_params(zrt_engine *e, const zrt_adam_args *args, float clip)
{
    zrt_offload_state *o = e->offload;
    /* What the copies overwrite: read by compute (stages 1-2) and the gathers (stage 3). */
    ZRT_CHECK(zrt_engine_order(e, e->compute, o->h2d));
    ZRT_CHECK(zrt_engine_order(e, e->comm_stream, o->h2d));
    zrt_status status = update(e, args, clip);
    if (o->nvme) {
        char message[ZRT_ERROR_MAX];
        snprintf(message, sizeof message, "%s", zrt_last_error());
        zrt_status io = zrt_nvme_finish(o->nvme); /* every transfer done, even after an error */
        status = status != ZRT_OK ? zrt_set_error(status, "%s", message) : io;
        if (args) ZRT_CHECK(zrt_engine_agree(e, status, "the optimizer step (nvme offload)"));
    }
    ZRT_CHECK(status);
    return zrt_engine_gather_published(e, o->h2d);
}

zrt_status zrt_offload_begin_step(zrt_engine *e)
{
    return e->offload->nvme ? zrt_nvme_start(e->offload->nvme) : ZRT_OK;
}

zrt_status zrt_offload_step(zrt_engine *e, double lr, bool overflow, float sum_squares)
{
    if (overflow) /* the masters did not change; neither do the compute copies */
        return e->offload->nvme ? zrt_nvme_finish(e->offload->nvme) : ZRT_OK;
    zrt_adam_args args = zrt_engine_adam_args(e, lr);
    return push_params(e, &args, zrt_clip_factor(sum_squares, e->cfg.gradient_clipping));
}

zrt_status zrt_offload_publish(zrt_engine *e) { return push_params(e, NULL, 1.0f); }

zrt_status zrt_offload_state_io(zrt_engine *e, int unit, int part, size_t begin, size_t n, void *host, bool write)
{
    zrt_offload_state *o = e->offload;
    if (o->nvme) return zrt_nvme_state_io(o->nvme, unit, part, begin, n, host, write);
    unit_state *u = &e->units[unit];
    float *parts[STATE_PARTS] = {u->master, u->exp_avg, u->exp_avg_sq}, *at = parts[part] + begin;
    if (write) memcpy(at, host, n * sizeof(float)); /* pinned host memory: the caller has synchronized */
    else memcpy(host, at, n * sizeof(float));
    return ZRT_OK;
}
