/* device_cpu.c: the cpu device backend: device memory is its own
 * allocations, each stream is a worker thread running its queue in order,
 * events are (stream, ticket) marks, and the engine's kernels are plain
 * loops over kernels/cast.h and kernels/optim.h.
 *
 * Why a real device and not a pass-through: work runs later, on another
 * thread, exactly as on a GPU, so a missing wait is a real race that the
 * tests can hit. Check mode adds what makes such a race visible: new and
 * freed memory holds NaN bytes, and every job may be delayed by up to
 * 100 us (half of them are), so an unordered reader sees poison, not the
 * value a lucky schedule left there.
 * Invariants: a stream's ring slot stays untouched until its job has
 * completed; `completed` only grows; after a failure every later job of the
 * stream is skipped (but counted) and the first error is kept; streams are
 * reference counted, so an event or a waiting stream may outlive them.
 * This file is compiled -O3: the kernel loops must vectorize.
 */
#include "device.h"
#include "zrt/internal/offload.h"
#include "zrt/internal/kernels.h"

#include "cast.h"
#include "grad_stats.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#define RING_SLOTS 256
#define JITTER_MAX_US 100

typedef enum {
    JOB_COPY, JOB_SET, JOB_CAST, JOB_FILL, JOB_STATS, JOB_COPY_STATS, JOB_SUM, JOB_ADAM, JOB_ADAM_MULTI, JOB_HOST,
    JOB_WAIT, JOB_FREE
} job_kind;

typedef struct cpu_stream cpu_stream;

typedef struct {
    job_kind kind;
    union {
        struct { void *dst; const void *src; size_t bytes; int value; } copy;
        struct { void *dst; const void *src; zrt_dtype dst_dtype, src_dtype; size_t n; bool accumulate; } cast;
        struct { void *dst; zrt_dtype dtype; float value; size_t n; } fill;
        struct { const void *grads; void *copy; zrt_dtype dtype; size_t n; float scale; float *stats; } stats;
        struct { const float *values; size_t n, stride; float *out; } sum;
        struct {
            float *master, *exp_avg, *exp_avg_sq;
            const void *grads;
            zrt_dtype dtype;
            size_t n;
            zrt_adam_hyper h;
            float unscale;
            double max_norm;
            const float *stats;
        } adam;
        struct {
            zrt_adam_tensor *t; /* malloc'ed copy, freed when the job has run (or is skipped) */
            int n, first;
            zrt_dtype grad_dtype, param_dtype;
            zrt_adam_hyper h;
            float unscale;
            double max_norm;
            const float *stats;
            uint32_t sr_seed, step;
        } multi;
        struct { zrt_status (*fn)(void *); _Alignas(16) unsigned char arg[ZRT_LAUNCH_ARG_MAX]; } host;
        struct { cpu_stream *other; uint64_t ticket; } wait;
        struct { void *ptr; size_t bytes; zrt_device *device; } free;
    } u;
} cpu_job;

struct cpu_stream {
    char name[32];
    pthread_mutex_t lock;
    pthread_cond_t work;    /* a job was enqueued, or stopping */
    pthread_cond_t done;    /* a job completed */
    cpu_job *ring;          /* RING_SLOTS */
    uint64_t enqueued;      /* jobs enqueued so far: the next job's ticket */
    uint64_t completed;     /* jobs run or skipped */
    zrt_status error;       /* the first failure, ZRT_OK until then */
    char message[ZRT_ERROR_MAX];
    bool stopping;
    bool check;
    uint64_t rng;           /* xorshift state for the delays */
    pthread_t thread;
    atomic_int refs;        /* the stream, its events' records, waiting jobs */
};

typedef struct {
    cpu_stream *stream; /* of the latest record, NULL if never recorded */
    uint64_t ticket;    /* done when stream->completed >= ticket */
} cpu_event;

static void stream_unref(cpu_stream *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1) return;
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->work);
    pthread_cond_destroy(&s->done);
    free(s->ring);
    free(s);
}

/* ---- the kernels: loops over the shared per-element math -------------------------------------- */

static inline float load(const void *p, size_t i, zrt_dtype dt) { return zrt_load_f32(p, i, (int)dt); }
static inline void store(void *p, size_t i, zrt_dtype dt, float v) { zrt_store_f32(p, i, (int)dt, v); }

/* Inlined with constant dtypes from cast_any's switch, so each pair gets its own loop. */
static inline __attribute__((always_inline)) void cast_loop(void *dst, zrt_dtype dt, const void *src, zrt_dtype st,
                                                            size_t n, bool accumulate)
{
    if (accumulate)
        for (size_t i = 0; i < n; i++) store(dst, i, dt, load(src, i, st) + load(dst, i, dt));
    else
        for (size_t i = 0; i < n; i++) store(dst, i, dt, load(src, i, st));
}

static void cast_any(void *dst, zrt_dtype dt, const void *src, zrt_dtype st, size_t n, bool accumulate)
{
    if (dt == st && !accumulate) {
        memmove(dst, src, n * zrt_dtype_size(dt));
        return;
    }
#define PAIR(d, s) ((int)(d) * 3 + (int)(s))
#define CASE(d, s) \
    case PAIR(d, s): cast_loop(dst, d, src, s, n, accumulate); break
    switch (PAIR(dt, st)) {
        CASE(ZRT_DTYPE_F32, ZRT_DTYPE_F32);
        CASE(ZRT_DTYPE_F32, ZRT_DTYPE_BF16);
        CASE(ZRT_DTYPE_F32, ZRT_DTYPE_F16);
        CASE(ZRT_DTYPE_BF16, ZRT_DTYPE_F32);
        CASE(ZRT_DTYPE_BF16, ZRT_DTYPE_BF16);
        CASE(ZRT_DTYPE_BF16, ZRT_DTYPE_F16);
        CASE(ZRT_DTYPE_F16, ZRT_DTYPE_F32);
        CASE(ZRT_DTYPE_F16, ZRT_DTYPE_BF16);
        CASE(ZRT_DTYPE_F16, ZRT_DTYPE_F16);
    }
#undef CASE
#undef PAIR
}

/* The statistics in kernels/grad_stats.h's blocked order (the CUDA
 * kernels' order: the same bits), and with copy != NULL the elements copied
 * there first. */
static void grad_stats(const void *grads, void *copy, zrt_dtype dt, size_t n, float scale, float *stats)
{
    if (copy) memcpy(copy, grads, n * zrt_dtype_size(dt));
    int nonfinite = 0;
    stats[0] += (float)zrt_stats_blocked_sum(grads, (int)dt, n, scale, &nonfinite);
    if (nonfinite) stats[1] = 1.0f;
}

static void sum_in_order(const float *values, size_t n, size_t stride, float *out)
{
    float total = 0;
    for (size_t i = 0; i < n; i++) total += values[i * stride];
    *out = total;
}

/* The optimizer jobs run offload/'s one-pass CPU Adam (its SIMD paths give
 * the scalar formula's bits); only stochastic rounding of a bf16 copy stays
 * here, element by element. */
static zrt_status adam(float *p, float *m, float *v, const void *grads, zrt_dtype dt, size_t n,
                       const zrt_adam_hyper *h, float unscale, double max_norm, const float *stats)
{
    if (zrt_step_overflow(stats[0], stats[1])) return ZRT_OK;
    zrt_adam_slice slice = {p, m, v, grads, dt, NULL, ZRT_DTYPE_F32, n};
    return zrt_cpu_adam_hyper(h, unscale, zrt_clip_factor(stats[0], max_norm), &slice, ZRT_SIMD_AUTO, NULL);
}

static zrt_status adam_multi(const cpu_job *job)
{
    const float *stats = job->u.multi.stats;
    if (zrt_step_overflow(stats[0], stats[1])) return ZRT_OK;
    float clip = zrt_clip_factor(stats[0], job->u.multi.max_norm);
    bool stochastic = job->u.multi.sr_seed && job->u.multi.param_dtype == ZRT_DTYPE_BF16;
    for (int k = 0; k < job->u.multi.n; k++) {
        const zrt_adam_tensor *t = &job->u.multi.t[k];
        if (!stochastic) {
            zrt_adam_slice slice = {t->master, t->exp_avg, t->exp_avg_sq, t->grads, job->u.multi.grad_dtype,
                                    t->params, job->u.multi.param_dtype, t->n};
            ZRT_CHECK(zrt_cpu_adam_hyper(&job->u.multi.h, job->u.multi.unscale, clip, &slice, ZRT_SIMD_AUTO, NULL));
            continue;
        }
        for (size_t i = 0; i < t->n; i++) {
            zrt_adam_element(&t->master[i], &t->exp_avg[i], &t->exp_avg_sq[i],
                             zrt_adam_grad(load(t->grads, i, job->u.multi.grad_dtype), job->u.multi.unscale, clip),
                             &job->u.multi.h);
            zrt_store_param(t->params, i, (int)job->u.multi.param_dtype, t->master[i], job->u.multi.sr_seed,
                            job->u.multi.step, (uint32_t)(job->u.multi.first + k), t->first_index + i);
        }
    }
    return ZRT_OK;
}

/* ---- the stream worker ------------------------------------------------------------------------------ */

static void jitter(cpu_stream *s)
{
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    if (s->rng & 1) zrt_sleep((double)((s->rng >> 8) % JITTER_MAX_US) * 1e-6);
}

/* Waits until other has completed ticket jobs; its failure becomes ours. */
static zrt_status wait_other(cpu_stream *other, uint64_t ticket, const char *waiter)
{
    pthread_mutex_lock(&other->lock);
    while (other->completed < ticket) pthread_cond_wait(&other->done, &other->lock);
    zrt_status status = other->error;
    char message[ZRT_ERROR_MAX];
    snprintf(message, sizeof message, "%s", other->message);
    pthread_mutex_unlock(&other->lock);
    if (status == ZRT_OK) return ZRT_OK;
    if (!waiter) return zrt_set_error(status, "%s", message);
    return zrt_set_error(status, "%s (stream '%s' failed; stream '%s' waited for it)", message, other->name, waiter);
}

/* Device memory: buffers of MAPPED_BYTES and more are mappings of their
 * own, so a free gives the pages back to the system at once (from the heap,
 * glibc keeps them: the memory report would then undercount what the
 * process holds); smaller ones come from malloc. Mappings ask for
 * transparent huge pages (MADV_HUGEPAGE: THP in "madvise" mode gives them
 * none otherwise), as the optimizer streams them: TLB misses cost it. */
enum { MAPPED_BYTES = 256 * 1024 };

static size_t pages(size_t bytes)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return (bytes ? bytes + page - 1 : page) / page * page;
}

static void release(void *ptr, size_t bytes)
{
    if (bytes >= MAPPED_BYTES) munmap(ptr, pages(bytes));
    else free(ptr);
}

/* A stream-ordered free, run (or skipped after a failure): the memory back, the report told. */
static void give_back(const cpu_job *job)
{
    release(job->u.free.ptr, job->u.free.bytes);
    zrt_device_freed(job->u.free.device, job->u.free.bytes);
}

static zrt_status run_job(cpu_stream *s, cpu_job *job)
{
    switch (job->kind) {
    case JOB_COPY: memcpy(job->u.copy.dst, job->u.copy.src, job->u.copy.bytes); break;
    case JOB_SET: memset(job->u.copy.dst, job->u.copy.value, job->u.copy.bytes); break;
    case JOB_CAST:
        cast_any(job->u.cast.dst, job->u.cast.dst_dtype, job->u.cast.src, job->u.cast.src_dtype, job->u.cast.n,
                 job->u.cast.accumulate);
        break;
    case JOB_FILL:
        for (size_t i = 0; i < job->u.fill.n; i++) store(job->u.fill.dst, i, job->u.fill.dtype, job->u.fill.value);
        break;
    case JOB_STATS:
    case JOB_COPY_STATS:
        grad_stats(job->u.stats.grads, job->u.stats.copy, job->u.stats.dtype, job->u.stats.n, job->u.stats.scale,
                   job->u.stats.stats);
        break;
    case JOB_SUM: sum_in_order(job->u.sum.values, job->u.sum.n, job->u.sum.stride, job->u.sum.out); break;
    case JOB_ADAM:
        return adam(job->u.adam.master, job->u.adam.exp_avg, job->u.adam.exp_avg_sq, job->u.adam.grads,
                    job->u.adam.dtype, job->u.adam.n, &job->u.adam.h, job->u.adam.unscale, job->u.adam.max_norm,
                    job->u.adam.stats);
    case JOB_ADAM_MULTI: {
        zrt_status status = adam_multi(job);
        free(job->u.multi.t);
        return status;
    }
    case JOB_HOST: return job->u.host.fn(job->u.host.arg);
    case JOB_WAIT: {
        zrt_status status = wait_other(job->u.wait.other, job->u.wait.ticket, s->name);
        stream_unref(job->u.wait.other);
        return status;
    }
    case JOB_FREE:
        if (s->check) memset(job->u.free.ptr, ZRT_POISON_BYTE, job->u.free.bytes);
        give_back(job);
        break;
    }
    return ZRT_OK;
}

static void *stream_main(void *arg)
{
    cpu_stream *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        while (s->completed == s->enqueued && !s->stopping) pthread_cond_wait(&s->work, &s->lock);
        if (s->completed == s->enqueued) {
            pthread_mutex_unlock(&s->lock);
            break;
        }
        cpu_job *job = &s->ring[s->completed % RING_SLOTS];
        bool skip = s->error != ZRT_OK;
        pthread_mutex_unlock(&s->lock);
        zrt_status status = ZRT_OK;
        if (skip && job->kind == JOB_WAIT) stream_unref(job->u.wait.other);
        if (skip && job->kind == JOB_FREE) give_back(job); /* still ours to give back */
        if (skip && job->kind == JOB_ADAM_MULTI) free(job->u.multi.t);
        if (!skip) {
            if (s->check) jitter(s);
            zrt_clear_error();
            status = run_job(s, job);
        }
        pthread_mutex_lock(&s->lock);
        if (status != ZRT_OK && s->error == ZRT_OK) {
            s->error = status;
            snprintf(s->message, sizeof s->message, "%s", zrt_last_error()[0] ? zrt_last_error() : "a stream job failed");
        }
        s->completed++;
        pthread_cond_broadcast(&s->done);
        pthread_mutex_unlock(&s->lock);
    }
    return NULL;
}

static zrt_status enqueue(zrt_stream *stream, const cpu_job *job, size_t job_bytes)
{
    cpu_stream *s = stream->impl;
    pthread_mutex_lock(&s->lock);
    while (s->enqueued - s->completed >= RING_SLOTS) pthread_cond_wait(&s->done, &s->lock);
    memcpy(&s->ring[s->enqueued % RING_SLOTS], job, job_bytes);
    s->enqueued++;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->lock);
    return ZRT_OK;
}

/* Most jobs are small: copy only up to the end of the union member used. */
#define ENQUEUE(stream, job, member) enqueue(stream, &(job), offsetof(cpu_job, u) + sizeof((job).u.member))

/* ---- the ops ------------------------------------------------------------------------------------------ */

static zrt_status cpu_init(zrt_device *d, const zrt_device_options *o)
{
    (void)o;
    snprintf(d->name, sizeof d->name, "cpu");
    return ZRT_OK;
}

static void cpu_fini(zrt_device *d) { (void)d; }

static zrt_status cpu_alloc(zrt_device *d, size_t bytes, zrt_stream *on, void **out)
{
    (void)on;
    if (bytes >= MAPPED_BYTES) {
        void *p = mmap(NULL, pages(bytes), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return zrt_set_error(ZRT_ERR_NOMEM, "mmap of %zu bytes: %s", bytes, strerror(errno));
        (void)madvise(p, pages(bytes), MADV_HUGEPAGE); /* a hint: refused where THP is off */
        *out = p;
    } else if (posix_memalign(out, 64, bytes ? bytes : 1) != 0) {
        return zrt_set_error(ZRT_ERR_NOMEM, "out of memory");
    }
    if (d->check) memset(*out, ZRT_POISON_BYTE, bytes);
    return ZRT_OK;
}

static zrt_status cpu_free(zrt_device *d, void *ptr, size_t bytes, zrt_stream *on)
{
    if (on) {
        cpu_job job = {.kind = JOB_FREE, .u.free = {ptr, bytes, d}};
        return ENQUEUE(on, job, free);
    }
    if (d->check) memset(ptr, ZRT_POISON_BYTE, bytes);
    release(ptr, bytes);
    return ZRT_OK;
}


/* Pinned host memory: mapped and locked; pageable (with one warning) where
 * RLIMIT_MEMLOCK refuses the lock. */
static zrt_status cpu_host_alloc(zrt_device *d, size_t bytes, void **out)
{
    void *p = mmap(NULL, pages(bytes), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return zrt_set_error(ZRT_ERR_NOMEM, "mmap of %zu bytes: %s", bytes, strerror(errno));
    (void)madvise(p, pages(bytes), MADV_HUGEPAGE); /* before mlock faults the pages in */
    if (mlock(p, pages(bytes)) != 0) {
        struct rlimit limit = {0, 0};
        getrlimit(RLIMIT_MEMLOCK, &limit);
        char line[300];
        snprintf(line, sizeof line,
                 "pinned host memory is pageable: mlock was refused (%s; RLIMIT_MEMLOCK is %llu KiB -- raise it with "
                 "ulimit -l or limits.conf to pin it)",
                 strerror(errno), (unsigned long long)(limit.rlim_cur == RLIM_INFINITY ? 0 : limit.rlim_cur / 1024));
        zrt_device_warn(d, line);
    }
    if (d->check) memset(p, ZRT_POISON_BYTE, bytes);
    *out = p;
    return ZRT_OK;
}

static void cpu_host_free(zrt_device *d, void *ptr, size_t bytes)
{
    (void)d;
    munmap(ptr, pages(bytes)); /* also unlocks */
}

static zrt_status cpu_copy_now(zrt_device *d, void *dst, const void *src, size_t bytes)
{
    (void)d;
    memcpy(dst, src, bytes);
    return ZRT_OK;
}

static zrt_status cpu_stream_create(zrt_stream *stream)
{
    cpu_stream *s = calloc(1, sizeof *s);
    if (!s || !(s->ring = malloc(RING_SLOTS * sizeof *s->ring))) {
        free(s);
        return zrt_set_error(ZRT_ERR_NOMEM, "device cpu: out of memory for stream '%s'", stream->name);
    }
    snprintf(s->name, sizeof s->name, "%s", stream->name);
    s->check = stream->device->check;
    s->rng = (stream->device->seed * 0x9e3779b97f4a7c15ull) ^ (uint64_t)stream->slot ^ 0x5851f42d4c957f2dull;
    atomic_init(&s->refs, 1);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->work, NULL);
    pthread_cond_init(&s->done, NULL);
    if (pthread_create(&s->thread, NULL, stream_main, s) != 0) {
        stream_unref(s);
        return zrt_set_error(ZRT_ERR_NOMEM, "device cpu: cannot start the thread of stream '%s'", stream->name);
    }
    stream->impl = s;
    return ZRT_OK;
}

static void cpu_stream_destroy(zrt_stream *stream)
{
    cpu_stream *s = stream->impl;
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    stream_unref(s);
}

static zrt_status stream_error(cpu_stream *s)
{
    if (s->error == ZRT_OK) return ZRT_OK;
    return zrt_set_error(s->error, "%s", s->message);
}

static zrt_status cpu_stream_synchronize(zrt_stream *stream)
{
    cpu_stream *s = stream->impl;
    pthread_mutex_lock(&s->lock);
    uint64_t target = s->enqueued;
    while (s->completed < target) pthread_cond_wait(&s->done, &s->lock);
    zrt_status status = stream_error(s);
    pthread_mutex_unlock(&s->lock);
    return status;
}

static zrt_status cpu_stream_query(zrt_stream *stream, bool *idle)
{
    cpu_stream *s = stream->impl;
    pthread_mutex_lock(&s->lock);
    *idle = s->completed == s->enqueued;
    zrt_status status = stream_error(s);
    pthread_mutex_unlock(&s->lock);
    return status;
}

static void *cpu_stream_native(zrt_stream *stream)
{
    (void)stream;
    return NULL;
}

static zrt_status cpu_event_create(zrt_event *e)
{
    if (!(e->impl = calloc(1, sizeof(cpu_event))))
        return zrt_set_error(ZRT_ERR_NOMEM, "device cpu: out of memory for an event");
    return ZRT_OK;
}

static void cpu_event_destroy(zrt_event *e)
{
    cpu_event *ev = e->impl;
    stream_unref(ev->stream);
    free(ev);
}

static zrt_status cpu_event_record(zrt_event *e, zrt_stream *stream)
{
    cpu_event *ev = e->impl;
    cpu_stream *s = stream->impl;
    atomic_fetch_add(&s->refs, 1);
    stream_unref(ev->stream);
    pthread_mutex_lock(&s->lock);
    ev->ticket = s->enqueued;
    pthread_mutex_unlock(&s->lock);
    ev->stream = s;
    return ZRT_OK;
}

static zrt_status cpu_stream_wait(zrt_stream *stream, zrt_event *e)
{
    cpu_event *ev = e->impl;
    if (!ev->stream) return ZRT_OK; /* never recorded: nothing to wait for */
    atomic_fetch_add(&ev->stream->refs, 1);
    cpu_job job = {.kind = JOB_WAIT, .u.wait = {ev->stream, ev->ticket}};
    return ENQUEUE(stream, job, wait);
}

static zrt_status cpu_event_synchronize(zrt_event *e)
{
    cpu_event *ev = e->impl;
    return ev->stream ? wait_other(ev->stream, ev->ticket, NULL) : ZRT_OK;
}

static zrt_status cpu_event_query(zrt_event *e, bool *done)
{
    cpu_event *ev = e->impl;
    *done = true;
    if (!ev->stream) return ZRT_OK;
    pthread_mutex_lock(&ev->stream->lock);
    *done = ev->stream->completed >= ev->ticket;
    zrt_status status = *done ? stream_error(ev->stream) : ZRT_OK;
    pthread_mutex_unlock(&ev->stream->lock);
    return status;
}

static zrt_status cpu_memcpy(zrt_stream *s, void *dst, const void *src, size_t bytes, zrt_copy_kind kind)
{
    (void)kind;
    cpu_job job = {.kind = JOB_COPY, .u.copy = {dst, src, bytes, 0}};
    return ENQUEUE(s, job, copy);
}

static zrt_status cpu_memset(zrt_stream *s, void *dst, int value, size_t bytes)
{
    cpu_job job = {.kind = JOB_SET, .u.copy = {dst, NULL, bytes, value}};
    return ENQUEUE(s, job, copy);
}

static zrt_status cpu_cast(zrt_stream *s, void *dst, zrt_dtype dst_dtype, const void *src, zrt_dtype src_dtype, size_t n,
                           bool accumulate)
{
    cpu_job job = {.kind = JOB_CAST, .u.cast = {dst, src, dst_dtype, src_dtype, n, accumulate}};
    return ENQUEUE(s, job, cast);
}

static zrt_status cpu_fill(zrt_stream *s, void *dst, zrt_dtype dtype, float value, size_t n)
{
    cpu_job job = {.kind = JOB_FILL, .u.fill = {dst, dtype, value, n}};
    return ENQUEUE(s, job, fill);
}

static zrt_status cpu_grad_stats(zrt_stream *s, const void *grads, zrt_dtype dtype, size_t n, float scale, float *stats)
{
    cpu_job job = {.kind = JOB_STATS, .u.stats = {grads, NULL, dtype, n, scale, stats}};
    return ENQUEUE(s, job, stats);
}

static zrt_status cpu_copy_stats(zrt_stream *s, void *dst, const void *src, zrt_dtype dtype, size_t n, float scale,
                                 float *stats)
{
    cpu_job job = {.kind = JOB_COPY_STATS, .u.stats = {src, dst, dtype, n, scale, stats}};
    return ENQUEUE(s, job, stats);
}

static zrt_status cpu_sum(zrt_stream *s, const float *values, size_t n, size_t stride, float *out)
{
    cpu_job job = {.kind = JOB_SUM, .u.sum = {values, n, stride, out}};
    return ENQUEUE(s, job, sum);
}

static zrt_status cpu_adam_multi(zrt_stream *s, const zrt_adam_tensor *t, int n, int first, zrt_dtype grad_dtype,
                                 zrt_dtype param_dtype, const zrt_adam_hyper *h, float unscale, double max_norm,
                                 const float *stats, uint32_t sr_seed, uint32_t step)
{
    zrt_adam_tensor *copy = malloc((size_t)(n ? n : 1) * sizeof *copy);
    if (!copy) return zrt_set_error(ZRT_ERR_NOMEM, "cpu device: out of memory for adam (multi-tensor)");
    memcpy(copy, t, (size_t)n * sizeof *copy);
    cpu_job job = {.kind = JOB_ADAM_MULTI,
                   .u.multi = {copy, n, first, grad_dtype, param_dtype, *h, unscale, max_norm, stats, sr_seed, step}};
    zrt_status status = ENQUEUE(s, job, multi);
    if (status != ZRT_OK) free(copy);
    return status;
}

static zrt_status cpu_adam(zrt_stream *s, float *master, float *exp_avg, float *exp_avg_sq, const void *grads,
                           zrt_dtype grad_dtype, size_t n, const zrt_adam_hyper *h, float unscale, double max_norm,
                           const float *stats)
{
    cpu_job job = {.kind = JOB_ADAM,
                   .u.adam = {master, exp_avg, exp_avg_sq, grads, grad_dtype, n, *h, unscale, max_norm, stats}};
    return ENQUEUE(s, job, adam);
}

static zrt_status cpu_launch_host(zrt_stream *s, zrt_status (*fn)(void *arg), const void *arg, size_t arg_bytes)
{
    cpu_job job;
    job.kind = JOB_HOST;
    job.u.host.fn = fn;
    if (arg_bytes) memcpy(job.u.host.arg, arg, arg_bytes);
    return enqueue(s, &job, offsetof(cpu_job, u.host.arg) + arg_bytes);
}

const zrt_device_ops zrt_device_cpu_ops = {
    .init = cpu_init,
    .fini = cpu_fini,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .host_alloc = cpu_host_alloc,
    .host_free = cpu_host_free,
    .read = cpu_copy_now,
    .write = cpu_copy_now,
    .stream_create = cpu_stream_create,
    .stream_destroy = cpu_stream_destroy,
    .stream_synchronize = cpu_stream_synchronize,
    .stream_query = cpu_stream_query,
    .stream_native = cpu_stream_native,
    .event_create = cpu_event_create,
    .event_destroy = cpu_event_destroy,
    .event_record = cpu_event_record,
    .stream_wait = cpu_stream_wait,
    .event_synchronize = cpu_event_synchronize,
    .event_query = cpu_event_query,
    .memcpy = cpu_memcpy,
    .memset = cpu_memset,
    .cast = cpu_cast,
    .fill = cpu_fill,
    .grad_stats = cpu_grad_stats,
    .copy_stats = cpu_copy_stats,
    .sum = cpu_sum,
    .adam = cpu_adam,
    .adam_multi = cpu_adam_multi,
    .launch_host = cpu_launch_host,
};
