/* place_host.c: the CPU optimizer's pipeline, shared by the cpu and nvme
 * backends (place_cpu.c, place_nvme.c) -- they differ only in where a
 * sub-group's fp32 state is while the CPU works on it (host_state_ops).
 *
 * The pipeline, per step:
 *  - each unit's own gradients go down on the d2h stream as soon as the
 *    engine says they are final (grads_ready: stage 2/3 right after the
 *    unit's reduce_scatter, while backward goes on; stage 1 after its
 *    reduce_scatter), with their statistics taken in the same pass
 *    (zrt_kernel_copy_stats);
 *  - the statistics are summed in unit order on d2h (the engine reduces them
 *    over ranks with the loss, as for the device backend -- the same bits);
 *  - after the step's host wait, the one-pass optimizer runs sub-group by
 *    sub-group (waiting only for that unit's copy), writing the updated
 *    compute copy (bf16/fp16: half the bytes of fp32) into one of two pinned
 *    tiles; the h2d stream copies tile i up while the CPU works on tile i+1;
 *    with offload_param the copy goes into the parameter store instead.
 * The engine gathers from the h2d stream (the stream `wrote`). One pool holds
 * the gradients, one the two tiles: sized exactly, pinned (zrt_host_alloc).
 * The device holds no optimizer state.
 */
#include "place_host.h"

#include "cast.h"
#include "optim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TILE_ELEMENTS (1 << 18) /* 512 KiB of bf16 per tile: cache-sized, many in flight */

typedef struct {
    const place_env *env;
    const host_state_ops *state_ops;
    void *state;             /* the state source (cpu: resident, nvme: swapped) */
    zrt_stream *d2h, *h2d;
    zrt_cpu_pool *pool;
    zrt_event **down;        /* per unit, d2h: the state source's host memory holds this step's gradients */
    void **store_open;       /* per unit: where the optimizer writes its new copy (offload_param) */
    void *tiles[2];          /* pinned: tile elements of D each */
    zrt_event *tile_free[2]; /* h2d: the copy out of tiles[k] is done */
    size_t tile;             /* elements per tile */
} host_place;

/* The optimizer's threads: this rank's share of the machine's cores. */
static zrt_status make_pool(host_place *o)
{
    const place_env *env = o->env;
    int local_ranks = zrt_local_ranks(env->world, (int)env->cfg->num_machines), local = env->rank % local_ranks;
    int threads = zrt_cpu_threads_default((int)env->cfg->job.cpu_threads, local_ranks);
    return zrt_cpu_pool_create(threads, local * threads, &o->pool);
}

static zrt_status alloc_tiles(host_place *o)
{
    const place_env *env = o->env;
    size_t widest = 0;
    for (int i = 0; i < env->n_units; i++) {
        if ((size_t)env->units[i].shard > widest) widest = (size_t)env->units[i].shard;
        ZRT_CHECK(zrt_event_create(env->device, "grads down", &o->down[i]));
    }
    o->tile = widest < TILE_ELEMENTS ? widest : TILE_ELEMENTS;
    for (int k = 0; k < 2; k++) {
        ZRT_CHECK(zrt_host_alloc(env->device, ZRT_MEM_COMM, o->tile * env->es, "param tile (host)", &o->tiles[k]));
        ZRT_CHECK(zrt_event_create(env->device, "tile free", &o->tile_free[k]));
    }
    return ZRT_OK;
}

zrt_status zrt_host_place_create(const place_env *env, const host_state_ops *ops, host_state_maker make_state,
                                 void **out)
{
    host_place *o = calloc(1, sizeof *o);
    *out = o;
    if (!o) return zrt_set_error(ZRT_ERR_NOMEM, "offload: out of memory");
    o->env = env;
    o->state_ops = ops;
    o->down = calloc((size_t)env->n_units, sizeof *o->down);
    o->store_open = calloc((size_t)env->n_units, sizeof *o->store_open);
    if (!o->down || !o->store_open) return zrt_set_error(ZRT_ERR_NOMEM, "offload: out of memory");
    ZRT_CHECK(make_pool(o));
    ZRT_CHECK(zrt_stream_create(env->device, "d2h", &o->d2h));
    ZRT_CHECK(zrt_stream_create(env->device, "h2d", &o->h2d));
    ZRT_CHECK(make_state(env, &o->state));
    return alloc_tiles(o);
}

void zrt_host_place_destroy(void *self)
{
    host_place *o = self;
    if (!o) return;
    const place_env *env = o->env;
    zrt_stream_destroy(o->d2h); /* runs what is queued first */
    zrt_stream_destroy(o->h2d);
    for (int i = 0; o->down && i < env->n_units; i++) zrt_event_destroy(o->down[i]);
    for (int k = 0; k < 2; k++) {
        zrt_host_free(env->device, o->tiles[k]);
        zrt_event_destroy(o->tile_free[k]);
    }
    if (o->state) o->state_ops->destroy(o->state);
    zrt_cpu_pool_destroy(o->pool);
    free(o->down);
    free(o->store_open);
    free(o);
}

zrt_status zrt_host_place_synchronize(void *self)
{
    host_place *o = self;
    zrt_first_error first = {0};
    zrt_first_error_keep(&first, zrt_stream_synchronize(o->d2h));
    zrt_first_error_keep(&first, zrt_stream_synchronize(o->h2d));
    return zrt_first_error_restore(&first);
}

zrt_status zrt_host_place_begin_step(void *self)
{
    host_place *o = self;
    return o->state_ops->start(o->state);
}

zrt_status zrt_host_place_grads_ready(void *self, int unit, const void *grads, zrt_event *ready, double scale)
{
    host_place *o = self;
    const place_env *env = o->env;
    void *host;
    ZRT_CHECK(o->state_ops->grads_in(o->state, unit, &host));
    if (ready) ZRT_CHECK(zrt_stream_wait_event(o->d2h, ready));
    ZRT_CHECK(zrt_kernel_copy_stats(o->d2h, host, grads, env->dtype, (size_t)env->units[unit].shard, (float)scale,
                                    &env->unit_stats[2 * unit]));
    ZRT_CHECK(zrt_event_record(o->down[unit], o->d2h));
    return o->state_ops->grads_down(o->state, unit, o->down[unit]);
}

zrt_status zrt_host_place_grads_taken(void *self, int unit, zrt_stream *stream)
{
    host_place *o = self;
    return zrt_stream_wait_event(stream, o->down[unit]);
}

zrt_status zrt_host_place_statistics(void *self, double scale)
{
    host_place *o = self;
    const place_env *env = o->env;
    (void)scale; /* taken on the way down */
    ZRT_CHECK(zrt_kernel_sum(o->d2h, env->unit_stats, (size_t)env->n_units, 2, env->totals));
    ZRT_CHECK(zrt_kernel_sum(o->d2h, env->unit_stats + 1, (size_t)env->n_units, 2, env->totals + 1));
    ZRT_CHECK(place_order(env->mark, o->d2h, env->comm));
    return place_order(env->mark, env->compute, env->comm); /* the loss */
}

/* Nothing before the host wait: the CPU needs the step's statistics. */
zrt_status zrt_host_place_before_wait(void *self, const place_step *s, zrt_stream **wrote)
{
    (void)self, (void)s;
    *wrote = NULL;
    return ZRT_OK;
}

/* A sub-group in the CPU's hands: where it is in its unit, its fp32 state
 * and its gradients (D; NULL when only rounding). */
typedef struct {
    zrt_subgroup g;
    float *state[STATE_PARTS];
    const void *grads;
} loaded;

/* Elements [at, at + n) of the sub-group's new compute copy (args NULL: the
 * master only rounded) into `dst` (host memory). */
static zrt_status fill(host_place *o, const loaded *l, size_t at, size_t n, void *dst, const zrt_adam_args *args,
                       float clip)
{
    const place_env *env = o->env;
    float *const *state = l->state;
    if (!args) {
        for (size_t i = 0; i < n; i++) zrt_store_f32(dst, i, (int)env->dtype, state[STATE_MASTER][at + i]);
        return ZRT_OK;
    }
    zrt_adam_slice s = {state[STATE_MASTER] + at, state[STATE_EXP_AVG] + at, state[STATE_EXP_AVG_SQ] + at,
                        (const char *)l->grads + at * env->es, env->dtype, dst, env->dtype, n};
    return zrt_cpu_adam(args, clip, &s, ZRT_SIMD_AUTO, o->pool);
}

/* The sub-group's copy, tile by tile, up into the unit's device range. *k
 * counts tiles, for the double buffer. */
static zrt_status push_tiles(host_place *o, const loaded *l, const zrt_adam_args *args, float clip, int *k)
{
    const place_env *env = o->env;
    const zrt_subgroup *g = &l->g;
    for (size_t at = 0; at < g->n; at += o->tile) {
        size_t n = g->n - at < o->tile ? g->n - at : o->tile;
        int b = (*k)++ % 2;
        ZRT_CHECK(zrt_event_synchronize(o->tile_free[b])); /* the copy out of this tile has read it */
        ZRT_CHECK(fill(o, l, at, n, o->tiles[b], args, clip));
        char *dst = (char *)env->units[g->unit].params + (g->begin + at) * env->es;
        ZRT_CHECK(zrt_memcpy_async(o->h2d, dst, o->tiles[b], n * env->es, ZRT_COPY_H2D));
        ZRT_CHECK(zrt_event_record(o->tile_free[b], o->h2d));
    }
    return ZRT_OK;
}

/* A unit whose parameters the store holds (offload_param): the optimizer
 * writes the new copy straight into the store's host memory, opened at the
 * unit's first sub-group and closed at its last. */
static zrt_status write_store(host_place *o, const loaded *l, const zrt_adam_args *args, float clip)
{
    zrt_param_store *store = o->env->params;
    const zrt_subgroup *g = &l->g;
    if (g->begin == 0) ZRT_CHECK(zrt_param_store_begin_write(store, g->unit, &o->store_open[g->unit]));
    void *host = (char *)o->store_open[g->unit] + g->begin * o->env->es;
    ZRT_CHECK(fill(o, l, 0, g->n, host, args, clip));
    return g->begin + g->n == (size_t)o->env->units[g->unit].shard ? zrt_param_store_end_write(store, g->unit) : ZRT_OK;
}

/* The host loop: every sub-group updated (args NULL: only rounded) and its
 * compute copy pushed up (or into the parameter store). */
static zrt_status update(host_place *o, const zrt_adam_args *args, float clip)
{
    const host_state_ops *src = o->state_ops;
    if (args) ZRT_CHECK(src->flush_grads(o->state)); /* every unit's gradients where load finds them */
    ZRT_CHECK(src->start(o->state));
    int k_tile = 0, waited = -1;
    for (size_t k = 0; k < src->groups(o->state); k++) {
        loaded l;
        ZRT_CHECK(src->load(o->state, k, &l.g, l.state, &l.grads));
        if (args && l.g.unit != waited) ZRT_CHECK(zrt_event_synchronize(o->down[l.g.unit])); /* its gradients are here */
        waited = l.g.unit;
        if (o->env->units[l.g.unit].params) ZRT_CHECK(push_tiles(o, &l, args, clip, &k_tile));
        else ZRT_CHECK(write_store(o, &l, args, clip));
        if (args) ZRT_CHECK(src->store(o->state, k));
    }
    return o->env->params ? zrt_param_store_flush(o->env->params) : ZRT_OK;
}

/* Every unit's compute copy up (args NULL: no update); every transfer of
 * the state source is done when it returns, even after an error. */
static zrt_status push_params(host_place *o, const zrt_adam_args *args, float clip, zrt_stream **wrote)
{
    const place_env *env = o->env;
    /* What the copies overwrite: read by compute (stages 1-2) and the gathers (stage 3). */
    ZRT_CHECK(place_order(env->mark, env->compute, o->h2d));
    ZRT_CHECK(place_order(env->mark, env->comm, o->h2d));
    zrt_first_error first = {0};
    zrt_first_error_keep(&first, update(o, args, clip));
    zrt_first_error_keep(&first, o->state_ops->finish(o->state)); /* the I/O ends even after a failure */
    *wrote = o->h2d;
    return zrt_first_error_restore(&first);
}

zrt_status zrt_host_place_step(void *self, const place_step *s, zrt_stream **wrote)
{
    host_place *o = self;
    *wrote = NULL;
    if (s->overflow) return o->state_ops->finish(o->state); /* the masters did not change; nor do the copies */
    return push_params(o, &s->adam, s->clip, wrote);
}

zrt_status zrt_host_place_publish(void *self, zrt_stream **wrote) { return push_params(self, NULL, 1.0f, wrote); }

zrt_status zrt_host_place_state_io(void *self, int unit, int part, size_t begin, size_t n, void *host, bool write)
{
    host_place *o = self;
    return o->state_ops->state_io(o->state, unit, part, begin, n, host, write);
}
