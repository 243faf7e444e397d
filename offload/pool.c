/* pool.c: the CPU optimizer's thread pool: threads - 1 workers pinned to
 * cores, the caller as thread 0, one run at a time.
 *
 * Why pinned and sized per rank: 8 ranks on a machine each starting a
 * thread per core starve each other (DeepSpeed's cpu_adam does); a rank's
 * workers take the cores [first_core + 1, first_core + threads) of the
 * ones this process may use, so local ranks given first_core = local_rank *
 * threads get disjoint cores. Invariants: `generation` counts runs; a worker
 * runs each generation once; `pending` counts workers still in the current run.
 */
#include "offload_internal.h"
#include "zrt/internal/knobs.h"
#include "zrt/internal/offload.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    zrt_cpu_pool *pool;
    int index;
    pthread_t thread;
} worker;

struct zrt_cpu_pool {
    int threads;
    pthread_mutex_t lock;
    pthread_cond_t start, done;
    uint64_t generation;
    int pending;
    bool stopping;
    zrt_status (*fn)(void *arg, int thread, int threads);
    void *arg;
    zrt_status first_error;
    char message[ZRT_ERROR_MAX];
    worker *workers;
};

static void record(zrt_cpu_pool *p, zrt_status status)
{
    if (status != ZRT_OK && p->first_error == ZRT_OK) {
        p->first_error = status;
        memcpy(p->message, zrt_last_error(), sizeof p->message);
    }
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    zrt_cpu_pool *p = w->pool;
    uint64_t seen = 0;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        while (p->generation == seen && !p->stopping) pthread_cond_wait(&p->start, &p->lock);
        if (p->stopping) {
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
        seen = p->generation;
        pthread_mutex_unlock(&p->lock);
        zrt_clear_error();
        zrt_status status = p->fn(p->arg, w->index, p->threads);
        pthread_mutex_lock(&p->lock);
        record(p, status);
        if (--p->pending == 0) pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->lock);
    }
}

/* Pins a thread to the k-th core this process may use (modulo their number). */
static void pin(pthread_t thread, int k)
{
    cpu_set_t allowed, one;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return;
    int n = CPU_COUNT(&allowed);
    if (n <= 0) return;
    k %= n;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
        if (CPU_ISSET(cpu, &allowed) && k-- == 0) {
            CPU_ZERO(&one);
            CPU_SET(cpu, &one);
            pthread_setaffinity_np(thread, sizeof one, &one);
            return;
        }
}

zrt_status zrt_cpu_pool_create(int threads, int first_core, zrt_cpu_pool **out)
{
    if (threads < 1 || threads > 1024 || !out) return zrt_set_error(ZRT_ERR_INVALID, "cpu pool: %d threads", threads);
    zrt_cpu_pool *p = calloc(1, sizeof *p);
    if (!p || !(p->workers = calloc((size_t)threads, sizeof *p->workers))) {
        free(p);
        return zrt_set_error(ZRT_ERR_NOMEM, "cpu pool: out of memory");
    }
    p->threads = 1;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->start, NULL);
    pthread_cond_init(&p->done, NULL);
    for (int t = 1; t < threads; t++) {
        p->workers[t] = (worker){.pool = p, .index = t};
        if (pthread_create(&p->workers[t].thread, NULL, worker_main, &p->workers[t]) != 0) {
            zrt_cpu_pool_destroy(p);
            return zrt_set_error(ZRT_ERR_NOMEM, "cpu pool: cannot start thread %d of %d", t, threads);
        }
        p->threads = t + 1;
        if (first_core >= 0) pin(p->workers[t].thread, first_core + t);
    }
    *out = p;
    return ZRT_OK;
}

int zrt_cpu_pool_threads(const zrt_cpu_pool *p) { return p ? p->threads : 1; }

zrt_status zrt_cpu_pool_run(zrt_cpu_pool *p, zrt_status (*fn)(void *arg, int thread, int threads), void *arg)
{
    if (!p || !fn) return zrt_set_error(ZRT_ERR_INVALID, "zrt_cpu_pool_run: NULL argument");
    pthread_mutex_lock(&p->lock);
    p->fn = fn;
    p->arg = arg;
    p->first_error = ZRT_OK;
    p->pending = p->threads - 1;
    p->generation++;
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->lock);
    zrt_status mine = fn(arg, 0, p->threads);
    pthread_mutex_lock(&p->lock);
    record(p, mine);
    while (p->pending > 0) pthread_cond_wait(&p->done, &p->lock);
    zrt_status status = p->first_error;
    pthread_mutex_unlock(&p->lock);
    return status == ZRT_OK ? ZRT_OK : zrt_set_error(status, "%s", p->message);
}

void zrt_cpu_pool_destroy(zrt_cpu_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->lock);
    for (int t = 1; t < p->threads; t++) pthread_join(p->workers[t].thread, NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->start);
    pthread_cond_destroy(&p->done);
    free(p->workers);
    free(p);
}

int zrt_local_ranks(int world, int num_machines)
{
    const char *env = getenv("LOCAL_WORLD_SIZE");
    if (env && atoi(env) > 0) return atoi(env);
    int per_machine = world / (num_machines > 0 ? num_machines : 1);
    return per_machine > 0 ? per_machine : 1;
}

int zrt_cpu_threads_default(int configured, int local_ranks)
{
    if (configured > 0) return configured;
    int64_t env = zrt_knob_int(ZRT_KNOB_CPU_THREADS);
    if (env > 0 && env <= 1 << 20) return (int)env;
    cpu_set_t allowed;
    int cores = sched_getaffinity(0, sizeof allowed, &allowed) == 0 ? CPU_COUNT(&allowed) : 1;
    int threads = cores / (local_ranks > 0 ? local_ranks : 1);
    return threads > 0 ? threads : 1;
}
