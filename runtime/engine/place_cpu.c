/* place_cpu.c: offload_optimizer: cpu -- the fp32 master and moments of the
 * own shard resident in pinned host memory (one pool per rank, sized
 * exactly), and every unit's own gradients beside them (they come down
 * there), one sub-group per unit; the CPU optimizer's pipeline is
 * place_host.c's.
 */
#include "place_host.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const place_env *env;
    float *pool;   /* pinned, per unit: [master | exp_avg | exp_avg_sq], shard each */
    float **units; /* per unit: its part of pool */
    char *grads;   /* pinned: every unit's own gradients (D), end to end */
    size_t *grads_at; /* per unit: its byte offset in grads */
} resident_state;

static void resident_destroy(void *src)
{
    resident_state *r = src;
    zrt_host_free(r->env->device, r->pool);
    zrt_host_free(r->env->device, r->grads);
    free(r->units);
    free(r->grads_at);
    free(r);
}

/* The moments zeroed (the engine writes the masters). */
static zrt_status resident_create(const place_env *env, void **out)
{
    resident_state *r = calloc(1, sizeof *r);
    *out = r;
    if (!r || !(r->units = calloc((size_t)env->n_units, sizeof *r->units)) ||
        !(r->grads_at = calloc((size_t)env->n_units, sizeof *r->grads_at)))
        return zrt_set_error(ZRT_ERR_NOMEM, "offload: out of memory");
    r->env = env;
    size_t elements = 0, grad_bytes = 0;
    for (int i = 0; i < env->n_units; i++) {
        elements += STATE_PARTS * (size_t)env->units[i].shard;
        r->grads_at[i] = grad_bytes;
        grad_bytes += (size_t)env->units[i].shard * env->es;
    }
    ZRT_CHECK(zrt_host_alloc(env->device, ZRT_MEM_GRADS, grad_bytes, "grads (host)", (void **)&r->grads));
    ZRT_CHECK(zrt_host_alloc(env->device, ZRT_MEM_OPTIMIZER, elements * sizeof(float), "optimizer state (host)",
                             (void **)&r->pool));
    size_t at = 0;
    for (int i = 0; i < env->n_units; at += STATE_PARTS * (size_t)env->units[i].shard, i++) {
        r->units[i] = r->pool + at;
        memset(r->units[i] + env->units[i].shard, 0, 2 * (size_t)env->units[i].shard * sizeof(float));
    }
    return ZRT_OK;
}

static size_t resident_groups(void *src) { return (size_t)((resident_state *)src)->env->n_units; }

static zrt_status resident_nothing(void *src)
{
    (void)src;
    return ZRT_OK;
}

static zrt_status resident_load(void *src, size_t k, zrt_subgroup *g, float *state[STATE_PARTS], const void **grads)
{
    resident_state *r = src;
    size_t shard = (size_t)r->env->units[k].shard;
    *g = (zrt_subgroup){.unit = (int)k, .n = shard};
    for (int p = 0; p < STATE_PARTS; p++) state[p] = r->units[k] + (size_t)p * shard;
    *grads = r->grads + r->grads_at[k];
    return ZRT_OK;
}

static zrt_status resident_grads_in(void *src, int unit, void **host)
{
    resident_state *r = src;
    *host = r->grads + r->grads_at[unit];
    return ZRT_OK;
}

/* They stay where they came down: the pipeline waits for `down` itself. */
static zrt_status resident_grads_down(void *src, int unit, zrt_event *down)
{
    (void)src, (void)unit, (void)down;
    return ZRT_OK;
}

static zrt_status resident_store(void *src, size_t k)
{
    (void)src, (void)k; /* the state was updated where it lives */
    return ZRT_OK;
}

/* Pinned host memory: the caller has synchronized. */
static zrt_status resident_state_io(void *src, int unit, int part, size_t begin, size_t n, void *host, bool write)
{
    resident_state *r = src;
    float *at = r->units[unit] + (size_t)part * (size_t)r->env->units[unit].shard + begin;
    if (write) memcpy(at, host, n * sizeof(float));
    else memcpy(host, at, n * sizeof(float));
    return ZRT_OK;
}

static const host_state_ops resident = {
    .groups = resident_groups,
    .start = resident_nothing,
    .load = resident_load,
    .grads_in = resident_grads_in,
    .grads_down = resident_grads_down,
    .flush_grads = resident_nothing,
    .store = resident_store,
    .finish = resident_nothing,
    .state_io = resident_state_io,
    .destroy = resident_destroy,
};

static zrt_status cpu_create(const place_env *env, void **out)
{
    return zrt_host_place_create(env, &resident, resident_create, out);
}

const place_ops zrt_place_cpu = {.name = "cpu", .create = cpu_create, HOST_PLACE_ENTRIES};
