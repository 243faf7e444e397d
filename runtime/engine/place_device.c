/* place_device.c: the optimizer on the device (offload_optimizer: none).
 *
 * The fp32 state of each unit's optimizer range lives in device memory
 * (charged to optimizer). Statistics are taken on the compute stream once
 * the gradients are reduced; the step is one multi-tensor kernel over every
 * unit (zrt_kernel_adam_multi) that also writes the compute copy, enqueued
 * before the host knows whether the step overflowed: the kernel reads the
 * reduced statistics on the device and skips itself then. So this backend
 * works before the step's one host wait (device_step) and not after it.
 */
#include "place.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct {
    const place_env *env;
    float **state; /* per unit: [STATE_MASTER..] (n_units x STATE_PARTS) */
} device_place;

static const char *const part_names[STATE_PARTS] = {"master", "exp_avg", "exp_avg_sq"};

static void device_destroy(void *self)
{
    device_place *p = self;
    if (!p) return;
    for (int i = 0; p->state && i < p->env->n_units * STATE_PARTS; i++) zrt_device_free(p->env->device, p->state[i], NULL);
    free(p->state);
    free(p);
}

/* The master uninitialised (the engine writes it), the moments zeroed. */
static zrt_status alloc_unit_state(device_place *p, int unit)
{
    const place_env *env = p->env;
    size_t bytes = (size_t)env->units[unit].count * sizeof(float);
    float **state = &p->state[unit * STATE_PARTS];
    for (int k = 0; k < STATE_PARTS; k++) {
        char name[64];
        snprintf(name, sizeof name, "unit %d %s", unit, part_names[k]);
        ZRT_CHECK(zrt_device_alloc(env->device, ZRT_MEM_OPTIMIZER, bytes, name, NULL, (void **)&state[k]));
    }
    ZRT_CHECK(zrt_memset_async(env->compute, state[STATE_EXP_AVG], 0, bytes));
    return zrt_memset_async(env->compute, state[STATE_EXP_AVG_SQ], 0, bytes);
}

static zrt_status device_create(const place_env *env, void **out)
{
    device_place *p = calloc(1, sizeof *p);
    *out = p;
    if (!p || !(p->state = calloc((size_t)env->n_units * STATE_PARTS, sizeof *p->state)))
        return zrt_set_error(ZRT_ERR_NOMEM, "engine: out of memory");
    p->env = env;
    for (int i = 0; i < env->n_units; i++) ZRT_CHECK(alloc_unit_state(p, i));
    return ZRT_OK;
}

static zrt_status device_nothing(void *self)
{
    (void)self;
    return ZRT_OK;
}

/* The gradients stay where they are: statistics and Adam read them there. */
static zrt_status device_grads_ready(void *self, int unit, const void *grads, zrt_event *ready, double scale)
{
    (void)self, (void)unit, (void)grads, (void)ready, (void)scale;
    return ZRT_OK;
}

/* Never asked (the gradients are read here, on compute): nothing to wait for. */
static zrt_status device_grads_taken(void *self, int unit, zrt_stream *stream)
{
    (void)self, (void)unit, (void)stream;
    return ZRT_OK;
}

static zrt_status device_statistics(void *self, double scale)
{
    const place_env *env = ((device_place *)self)->env;
    for (int i = 0; i < env->n_units; i++)
        ZRT_CHECK(zrt_kernel_grad_stats(env->compute, env->units[i].shard_grads, env->dtype,
                                        (size_t)env->units[i].shard, (float)scale, &env->unit_stats[2 * i]));
    ZRT_CHECK(zrt_kernel_sum(env->compute, env->unit_stats, (size_t)env->n_units, 2, env->totals));
    ZRT_CHECK(zrt_kernel_sum(env->compute, env->unit_stats + 1, (size_t)env->n_units, 2, env->totals + 1));
    return place_order(env->mark, env->compute, env->comm);
}

/* Every unit's Adam step and its compute copy in one multi-tensor kernel
 * (one launch on cuda), once the statistics are reduced over ranks (it
 * reads them on the device: skip on overflow, the clip factor). */
static zrt_status device_step(void *self, const place_step *s, zrt_stream **wrote)
{
    device_place *p = self;
    const place_env *env = p->env;
    ZRT_CHECK(place_order(env->mark, env->comm, env->compute));
    zrt_adam_tensor *t = calloc((size_t)env->n_units, sizeof *t);
    if (!t) return zrt_set_error(ZRT_ERR_NOMEM, "engine: out of memory");
    for (int i = 0; i < env->n_units; i++) {
        const place_unit *u = &env->units[i];
        float **state = &p->state[i * STATE_PARTS];
        t[i] = (zrt_adam_tensor){state[STATE_MASTER], state[STATE_EXP_AVG], state[STATE_EXP_AVG_SQ], u->grads,
                                 u->params, (size_t)u->count, (uint64_t)u->begin};
    }
    zrt_status status = zrt_kernel_adam_multi(env->compute, t, env->n_units, env->dtype, env->dtype, &s->adam, env->totals);
    free(t);
    *wrote = env->compute;
    return status;
}

static zrt_status device_after_wait(void *self, const place_step *s, zrt_stream **wrote)
{
    (void)self, (void)s;
    *wrote = NULL; /* all enqueued before the wait */
    return ZRT_OK;
}

static zrt_status device_publish(void *self, zrt_stream **wrote)
{
    device_place *p = self;
    const place_env *env = p->env;
    for (int i = 0; i < env->n_units; i++)
        ZRT_CHECK(zrt_kernel_cast(env->compute, env->units[i].params, env->dtype, p->state[i * STATE_PARTS + STATE_MASTER],
                                  ZRT_DTYPE_F32, (size_t)env->units[i].count, false));
    *wrote = env->compute;
    return ZRT_OK;
}

static zrt_status device_state_io(void *self, int unit, int part, size_t begin, size_t n, void *host, bool write)
{
    device_place *p = self;
    float *at = p->state[unit * STATE_PARTS + part] + begin;
    return write ? zrt_device_write(p->env->device, at, host, n * sizeof(float))
                 : zrt_device_read(p->env->device, host, at, n * sizeof(float));
}

const place_ops zrt_place_device = {
    .name = "device",
    .create = device_create,
    .begin_step = device_nothing,
    .grads_ready = device_grads_ready,
    .grads_taken = device_grads_taken,
    .statistics = device_statistics,
    .device_step = device_step,
    .host_step = device_after_wait,
    .publish = device_publish,
    .state_io = device_state_io,
    .synchronize = device_nothing,
    .destroy = device_destroy,
};
