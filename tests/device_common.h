/* device_common.h: what the device tests share: a device made with an
 * explicit check mode (not the environment's), and a host function that
 * records the order in which stream work ran.
 */
#ifndef ZRT_TEST_DEVICE_COMMON_H
#define ZRT_TEST_DEVICE_COMMON_H

#include "check.h"
#include "gpu_present.h"
#include "zrt.h"

#include <stdatomic.h>
#include <unistd.h>

static inline zrt_device *make_device(zrt_device_kind kind, bool check)
{
    zrt_device_options o;
    zrt_device_options_init(&o);
    o.kind = kind;
    o.check = check;
    zrt_device *device = NULL;
    zrt_status status = zrt_device_create(&o, &device);
    if (status != ZRT_OK && kind == ZRT_DEVICE_CUDA) no_cuda_device(zrt_last_error()); /* skip, or fail with a GPU */
    if (status != ZRT_OK) {
        fprintf(stderr, "cannot make the %s device: %s\n", zrt_device_kind_name(kind), zrt_last_error());
        exit(1);
    }
    return device;
}

/* A host function's argument: append `value` to log (in run order). */
typedef struct {
    atomic_int *count;
    int *log;
    int value;
    double sleep_s;
} log_job;

static inline zrt_status run_log_job(void *arg)
{
    log_job *job = arg;
    if (job->sleep_s > 0) zrt_sleep(job->sleep_s);
    job->log[atomic_fetch_add(job->count, 1)] = job->value;
    return ZRT_OK;
}

static inline zrt_status launch_log(zrt_stream *s, atomic_int *count, int *log, int value, double sleep_s)
{
    log_job job = {count, log, value, sleep_s};
    return zrt_stream_launch_host(s, "log", run_log_job, &job, sizeof job, NULL, 0);
}

static inline void *device_alloc(zrt_device *d, size_t bytes, const char *name)
{
    void *p = NULL;
    CHECK_OK(zrt_device_alloc(d, ZRT_MEM_COMM, bytes, name, NULL, &p));
    return p;
}

/* Unit u's parameters as the model declares their init (ones, zeros, normal
 * x std; seed 7), plus 0.01 noise so no symmetry hides a wrong gradient. */
static inline void init_unit(const zrt_model *m, int u, float *out)
{
    for (int p = 0; p < m->n_params[u]; p++) {
        const zrt_param_info *info = &m->params[u][p];
        for (int64_t i = 0; i < info->numel; i++) {
            float base = info->init == ZRT_INIT_ONES ? 1.0f
                         : info->init == ZRT_INIT_ZEROS ? 0.0f
                                                        : info->init_std * zrt_random_normal(7, (uint64_t)u, (uint64_t)i);
            out[info->offset + i] = base + 0.01f * zrt_random_normal(8, (uint64_t)u, (uint64_t)(info->offset + i));
        }
    }
}

/* A host function that holds its stream until *gate is set. */
static inline zrt_status hold_until(void *arg)
{
    atomic_int *gate = *(atomic_int **)arg;
    while (!atomic_load(gate)) usleep(1000);
    return ZRT_OK;
}

/* A free queued on a stream stays in the report (stats.all, as `freeing`)
 * until the stream gets there, whatever the device (the cpu device's worker,
 * the cuda device's host function): the stream is held behind a gate. */
static inline void check_stream_free_counted(zrt_device *d)
{
    const zrt_mem_stats *m = zrt_device_mem(d);
    zrt_stream *s = NULL;
    void *p = NULL;
    static atomic_int gate;
    atomic_int *gate_at = &gate;
    atomic_store(&gate, 0);
    CHECK_OK(zrt_stream_create(d, "held", &s));
    int64_t before = m->all;
    CHECK_OK(zrt_device_alloc(d, ZRT_MEM_ACTIVATIONS, 1 << 20, "freed on a stream", NULL, &p));
    CHECK_OK(zrt_stream_launch_host(s, "gate", hold_until, &gate_at, sizeof gate_at, NULL, 0));
    CHECK_OK(zrt_device_free(d, p, s));
    CHECK_MSG(m->all == before + (1 << 20) && m->freeing == 1 << 20,
              "%s: a free the stream has not reached left the report (all %+lld, freeing %lld)", zrt_device_name(d),
              (long long)(m->all - before), (long long)m->freeing);
    atomic_store(&gate, 1);
    CHECK_OK(zrt_stream_synchronize(s));
    usleep(10000); /* cuda: a host function may finish just after the stream's synchronize returns */
    CHECK_MSG(m->all == before && m->freeing == 0, "%s: the free, reached, is still in the report (%+lld)",
              zrt_device_name(d), (long long)(m->all - before));
    zrt_stream_destroy(s);
}

#endif
