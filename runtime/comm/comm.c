/* comm.c: the zrt_comm API: argument checks, a FIFO of operations, and the
 * worker thread that runs them on the chosen backend.
 *
 * Why a worker thread: callers issue a collective and go on computing (the
 * engine overlaps gradient reduce-scatter with backward); operations still
 * run one at a time, in issue order, exactly like a CUDA stream. A
 * stream-ordered operation of the host backend is already on a thread of
 * its own (the stream's), so it runs there, inline, after what the worker
 * has queued -- no second hop. Invariants: one operation runs at a time
 * (`running`), in issue order; after the first failure the communicator is
 * broken and every queued or later operation fails with that first error;
 * zrt_comm_abort() only sets a flag and wakes waits, so it is safe from any
 * thread.
 */
#include "comm_internal.h"
#include "../device/host_work.h" /* the request form under the device check mode */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MESSAGE_MAX 1024

struct zrt_comm_request {
    zrt_comm *comm;
    zrt_comm_op op;
    bool done;
    zrt_status status;
    char message[MESSAGE_MAX];
    zrt_comm_request *next;
};

struct zrt_comm {
    int rank, world_size;
    double timeout_s;
    const zrt_comm_backend *backend;
    void *state;
    atomic_int aborted;
    pthread_mutex_t lock;
    pthread_cond_t changed;      /* queue grew, a request finished, or stopping */
    zrt_comm_request *head, *tail;
    bool running;                /* an operation runs now (on the worker or inline) */
    bool stopping;
    uint64_t next_seq;
    zrt_status broken;           /* ZRT_OK until the first failure */
    char broken_message[MESSAGE_MAX];
    pthread_t worker;
    bool stage;                  /* options.stage_through_host */
    struct {                     /* the hybrid mode's pinned staging (enqueue_staged) */
        zrt_device *device;
        zrt_stream *stream;      /* the stream its last op was ordered on (compared, never used: it may be gone) */
        char *buf;
        size_t bytes;
        uint64_t issued, done;   /* staged ops enqueued / finished with the area (under lock) */
    } staging;
};

size_t zrt_dtype_size(zrt_dtype dtype) { return dtype == ZRT_DTYPE_F32 ? 4 : 2; }

const char *zrt_dtype_name(zrt_dtype dtype)
{
    switch (dtype) {
    case ZRT_DTYPE_F32: return "fp32";
    case ZRT_DTYPE_BF16: return "bf16";
    case ZRT_DTYPE_F16: return "fp16";
    }
    return "?";
}

const char *zrt_op_name(zrt_op_kind kind)
{
    static const char *const names[] = {"all_gather", "reduce_scatter", "all_reduce", "broadcast", "barrier"};
    return (unsigned)kind <= ZRT_OP_BARRIER ? names[kind] : "?";
}

void zrt_comm_options_init(zrt_comm_options *options)
{
    memset(options, 0, sizeof *options);
    options->world_size = 1;
    options->name = "world";
    options->timeout_s = 600;
}

zrt_status zrt_wait_check(const zrt_wait *w, int peer)
{
    char what[64] = "setup";
    if (w->op) snprintf(what, sizeof what, "%s #%llu", zrt_op_name(w->op->kind), (unsigned long long)w->op->seq);
    if (atomic_load(w->aborted)) return zrt_set_error(ZRT_ERR_ABORTED, "rank %d: %s aborted", w->rank, what);
    if (zrt_now() <= w->deadline) return ZRT_OK;
    if (peer < 0) return zrt_set_error(ZRT_ERR_TIMEOUT, "rank %d: %s timed out", w->rank, what);
    return zrt_set_error(ZRT_ERR_TIMEOUT, "rank %d: %s timed out waiting for rank %d", w->rank, what, peer);
}

/* ---- the worker ------------------------------------------------------------------ */

/* Abort is final, on every backend: no operation starts after it. */
static zrt_status aborted_check(const zrt_comm *comm, const zrt_comm_op *op)
{
    if (!atomic_load(&comm->aborted)) return ZRT_OK;
    return zrt_set_error(ZRT_ERR_ABORTED, "rank %d: %s #%llu: the communicator was aborted", comm->rank,
                         zrt_op_name(op->kind), (unsigned long long)op->seq);
}

/* With the lock held: the first failure breaks the communicator; the next operation may run. */
static void break_locked(zrt_comm *comm, zrt_status status, const char *message)
{
    if (status != ZRT_OK && comm->broken == ZRT_OK) {
        comm->broken = status;
        snprintf(comm->broken_message, sizeof comm->broken_message, "%s", message);
    }
}

static void ran(zrt_comm *comm, zrt_status status, const char *message)
{
    break_locked(comm, status, message);
    comm->running = false;
    pthread_cond_broadcast(&comm->changed);
}

/* The backend runs op now, on this thread; ZRT_OK or its error (message set). */
static zrt_status run_now(zrt_comm *comm, zrt_comm_op *op)
{
    zrt_wait w = {&comm->aborted, zrt_now() + comm->timeout_s, comm->rank, op};
    zrt_clear_error();
    ZRT_CHECK(aborted_check(comm, op));
    return comm->backend->run(comm->state, op, &w);
}

static void finish(zrt_comm *comm, zrt_comm_request *req, zrt_status status, const char *message)
{
    pthread_mutex_lock(&comm->lock);
    ran(comm, status, message);
    req->status = status;
    snprintf(req->message, sizeof req->message, "%s", message);
    req->done = true;
    pthread_cond_broadcast(&comm->changed);
    pthread_mutex_unlock(&comm->lock);
}

static void *worker_main(void *arg)
{
    zrt_comm *comm = arg;
    for (;;) {
        pthread_mutex_lock(&comm->lock);
        while ((!comm->head && !comm->stopping) || comm->running) pthread_cond_wait(&comm->changed, &comm->lock);
        zrt_comm_request *req = comm->head;
        if (!req) {
            pthread_mutex_unlock(&comm->lock);
            break;
        }
        comm->head = req->next;
        if (!comm->head) comm->tail = NULL;
        comm->running = true;
        zrt_status broken = comm->broken;
        char message[MESSAGE_MAX];
        snprintf(message, sizeof message, "%s", comm->broken_message);
        pthread_mutex_unlock(&comm->lock);

        zrt_status status = broken;
        if (status == ZRT_OK) {
            status = run_now(comm, &req->op);
            snprintf(message, sizeof message, "%s", zrt_last_error());
        }
        finish(comm, req, status, message);
    }
    /* The backend's per-thread resources (the shm liveness lock) end here. */
    comm->backend->destroy(comm->state);
    return NULL;
}

/* ---- issuing ------------------------------------------------------------------------ */

/* The buffers an operation reads and writes, for the device's check mode. */
static int op_accesses(const zrt_comm *comm, const zrt_comm_op *op, zrt_access *a)
{
    size_t bytes = op->count * zrt_dtype_size(op->dtype), all = bytes * (size_t)comm->world_size;
    switch (op->kind) {
    case ZRT_OP_ALL_GATHER:
        a[0] = (zrt_access){op->send, bytes, ZRT_ACCESS_READ};
        a[1] = (zrt_access){op->recv, all, ZRT_ACCESS_WRITE};
        return 2;
    case ZRT_OP_REDUCE_SCATTER:
        a[0] = (zrt_access){op->send, all, ZRT_ACCESS_READ};
        a[1] = (zrt_access){op->recv, bytes, ZRT_ACCESS_WRITE};
        return 2;
    case ZRT_OP_ALL_REDUCE:
        a[0] = (zrt_access){op->send, bytes, ZRT_ACCESS_READ};
        a[1] = (zrt_access){op->recv, bytes, ZRT_ACCESS_WRITE};
        return 2;
    case ZRT_OP_BROADCAST: a[0] = (zrt_access){op->recv, bytes, ZRT_ACCESS_READ_WRITE}; return 1;
    case ZRT_OP_BARRIER: return 0;
    }
    return 0;
}

/* The request form: the host's work on the buffers from now until the wait
 * (host_work.h: what the device check mode knows of it). */
static zrt_status enqueue(zrt_comm *comm, const zrt_comm_op *op, zrt_comm_request **request)
{
    zrt_access access[2];
    int n = op_accesses(comm, op, access);
    ZRT_CHECK(zrt_host_work_begin(zrt_op_name(op->kind), access, n));
    zrt_comm_request *req = calloc(1, sizeof *req);
    if (!req) {
        zrt_host_work_end(access, n, false);
        return zrt_set_error(ZRT_ERR_NOMEM, "comm: out of memory");
    }
    req->comm = comm;
    req->op = *op;
    pthread_mutex_lock(&comm->lock);
    req->op.seq = comm->next_seq++;
    if (comm->tail) comm->tail->next = req;
    else comm->head = req;
    comm->tail = req;
    pthread_cond_broadcast(&comm->changed);
    pthread_mutex_unlock(&comm->lock);
    if (request) {
        *request = req;
        return ZRT_OK;
    }
    return zrt_comm_wait(req);
}

zrt_status zrt_comm_wait(zrt_comm_request *req)
{
    if (!req) return zrt_set_error(ZRT_ERR_INVALID, "zrt_comm_wait: NULL request");
    zrt_comm *comm = req->comm;
    pthread_mutex_lock(&comm->lock);
    while (!req->done) pthread_cond_wait(&comm->changed, &comm->lock);
    pthread_mutex_unlock(&comm->lock);
    zrt_status status = req->status;
    zrt_access access[2];
    zrt_host_work_end(access, op_accesses(comm, &req->op, access), status == ZRT_OK);
    if (status != ZRT_OK) zrt_set_error(status, "%s", req->message);
    free(req);
    return status;
}

/* count * world * element size must fit; buffers must exist when count > 0. */
static zrt_status check_args(const zrt_comm *comm, const char *what, const void *send, const void *recv,
                             size_t count, zrt_dtype dtype, size_t send_mult, size_t recv_mult)
{
    if (!comm) return zrt_set_error(ZRT_ERR_INVALID, "%s: NULL communicator", what);
    if ((unsigned)dtype > ZRT_DTYPE_F16) return zrt_set_error(ZRT_ERR_INVALID, "%s: unknown dtype %d", what, dtype);
    size_t limit = SIZE_MAX / 8 / (size_t)comm->world_size;
    if (count > limit) return zrt_set_error(ZRT_ERR_INVALID, "%s: count %zu overflows the buffer size", what, count);
    if (count > 0 && ((send_mult && !send) || (recv_mult && !recv)))
        return zrt_set_error(ZRT_ERR_INVALID, "%s: NULL buffer with count %zu", what, count);
    return ZRT_OK;
}

/* ---- on a device stream ---------------------------------------------------------------- */

typedef struct {
    zrt_comm *comm;
    zrt_comm_op op;
} stream_job;

/* On the stream's thread: after what the worker has queued, run the
 * operation here (the worker waits meanwhile). */
static zrt_status run_stream_job(void *arg)
{
    stream_job *job = arg;
    zrt_comm *comm = job->comm;
    pthread_mutex_lock(&comm->lock);
    while (comm->head || comm->running) pthread_cond_wait(&comm->changed, &comm->lock);
    comm->running = true;
    job->op.seq = comm->next_seq++;
    zrt_status status = comm->broken;
    char message[MESSAGE_MAX];
    snprintf(message, sizeof message, "%s", comm->broken_message);
    pthread_mutex_unlock(&comm->lock);
    if (status == ZRT_OK) {
        status = run_now(comm, &job->op);
        snprintf(message, sizeof message, "%s", zrt_last_error());
    }
    pthread_mutex_lock(&comm->lock);
    ran(comm, status, message);
    pthread_mutex_unlock(&comm->lock);
    return status == ZRT_OK ? ZRT_OK : zrt_set_error(status, "%s", message);
}

/* A stream's last word on a staged op: the area is free again. */
static zrt_status staging_done(void *arg)
{
    zrt_comm *comm = *(zrt_comm **)arg;
    pthread_mutex_lock(&comm->lock);
    comm->staging.done++;
    pthread_cond_broadcast(&comm->changed);
    pthread_mutex_unlock(&comm->lock);
    return ZRT_OK;
}

/* The staging area for an op of `bytes` on stream: grown when too small, and
 * before that -- or before an op on another stream than the last -- every
 * staged op so far has finished with it, so one area serves them all in order. */
static zrt_status stage_reserve(zrt_comm *comm, zrt_stream *stream, size_t bytes, char **buf)
{
    zrt_device *d = zrt_stream_device(stream);
    bool grow = comm->staging.bytes < bytes || comm->staging.device != d;
    if (grow || comm->staging.stream != stream) { /* until the area is free, the comm breaks, or its timeout */
        double deadline = zrt_now() + comm->timeout_s;
        pthread_mutex_lock(&comm->lock);
        while (comm->staging.done < comm->staging.issued && comm->broken == ZRT_OK && zrt_now() < deadline) {
            pthread_mutex_unlock(&comm->lock);
            zrt_sleep(0.0005);
            pthread_mutex_lock(&comm->lock);
        }
        bool busy = comm->staging.done < comm->staging.issued;
        pthread_mutex_unlock(&comm->lock);
        if (busy)
            return zrt_set_error(ZRT_ERR_TIMEOUT, "comm: the staging area is still in use by %llu operation(s) "
                                 "(a stream that failed or stalled)",
                                 (unsigned long long)(comm->staging.issued - comm->staging.done));
    }
    if (grow) {
        if (comm->staging.buf) zrt_host_free(comm->staging.device, comm->staging.buf);
        comm->staging.buf = NULL;
        comm->staging.bytes = 0;
        ZRT_CHECK(zrt_host_alloc(d, ZRT_MEM_COMM, bytes, "comm staging (host)", (void **)&comm->staging.buf));
        comm->staging.bytes = bytes;
        comm->staging.device = d;
    }
    comm->staging.stream = stream;
    *buf = comm->staging.buf;
    return ZRT_OK;
}

/* The hybrid mode: the host backend on streams whose memory the host cannot
 * read (a cuda device's): send goes down to pinned staging, the collective
 * runs on the stream's host function over the staging, recv comes up -- all
 * three in stream order, so the ordering is the stream's as without staging. */
static zrt_status enqueue_staged(zrt_comm *comm, const zrt_comm_op *op, zrt_stream *stream)
{
    size_t bytes = op->count * zrt_dtype_size(op->dtype), all = bytes * (size_t)comm->world_size;
    bool broadcast = op->kind == ZRT_OP_BROADCAST;
    size_t in = op->kind == ZRT_OP_REDUCE_SCATTER ? all : bytes, out = op->kind == ZRT_OP_ALL_GATHER ? all : bytes;
    stream_job job = {comm, *op};
    if (op->kind != ZRT_OP_BARRIER && bytes > 0) {
        char *buf = NULL;
        ZRT_CHECK(stage_reserve(comm, stream, broadcast ? bytes : in + out, &buf));
        ZRT_CHECK(zrt_memcpy_async(stream, buf, broadcast ? op->recv : op->send, in, ZRT_COPY_D2H));
        job.op.send = buf;
        job.op.recv = broadcast ? buf : buf + in;
    }
    ZRT_CHECK(zrt_stream_launch_host(stream, zrt_op_name(op->kind), run_stream_job, &job, sizeof job, NULL, 0));
    if (op->kind == ZRT_OP_BARRIER || bytes == 0) return ZRT_OK;
    ZRT_CHECK(zrt_memcpy_async(stream, op->recv, job.op.recv, out, ZRT_COPY_H2D));
    pthread_mutex_lock(&comm->lock);
    comm->staging.issued++;
    pthread_mutex_unlock(&comm->lock);
    zrt_status status = zrt_stream_launch_host(stream, "comm staging free", staging_done, &comm, sizeof comm, NULL, 0);
    if (status != ZRT_OK) {
        pthread_mutex_lock(&comm->lock);
        comm->staging.issued--;
        pthread_mutex_unlock(&comm->lock);
    }
    return status;
}

/* A backend with its own stream ordering (NCCL): issued on the native stream
 * after the same checks as a queued operation -- broken or aborted, it fails;
 * its failure breaks the communicator. */
static zrt_status issue_native(zrt_comm *comm, const zrt_comm_op *op, void *native)
{
    zrt_comm_op issued = *op;
    pthread_mutex_lock(&comm->lock);
    issued.seq = comm->next_seq++;
    pthread_mutex_unlock(&comm->lock);
    ZRT_CHECK(aborted_check(comm, &issued));
    ZRT_CHECK(zrt_comm_status(comm)); /* broken: the first failure, found by the backend too */
    zrt_wait w = {&comm->aborted, zrt_now() + comm->timeout_s, comm->rank, &issued};
    zrt_status status = comm->backend->run_on(comm->state, &issued, native, &w);
    if (status == ZRT_OK) return ZRT_OK;
    char message[MESSAGE_MAX];
    snprintf(message, sizeof message, "%s", zrt_last_error());
    pthread_mutex_lock(&comm->lock);
    break_locked(comm, status, message);
    pthread_mutex_unlock(&comm->lock);
    return zrt_set_error(status, "%s", message);
}

static zrt_status enqueue_on(zrt_comm *comm, const zrt_comm_op *op, zrt_stream *stream)
{
    zrt_access access[2];
    int n = op_accesses(comm, op, access);
    void *native = zrt_stream_native(stream);
    if (comm->backend->run_on) {
        if (!native)
            return zrt_set_error(ZRT_ERR_INVALID, "%s: the %s backend needs a stream of a cuda device, not %s",
                                 zrt_op_name(op->kind), comm->backend->name, zrt_device_name(zrt_stream_device(stream)));
        ZRT_CHECK(zrt_stream_track(stream, zrt_op_name(op->kind), access, n));
        return issue_native(comm, op, native);
    }
    if (native || comm->stage) return enqueue_staged(comm, op, stream);
    stream_job job = {comm, *op};
    return zrt_stream_launch_host(stream, zrt_op_name(op->kind), run_stream_job, &job, sizeof job, access, n);
}

/* Host-side (request) or stream-ordered (stream), after the checks. */
static zrt_status submit(zrt_comm *comm, const zrt_comm_op *op, zrt_comm_request **request, zrt_stream *stream)
{
    return stream ? enqueue_on(comm, op, stream) : enqueue(comm, op, request);
}

static zrt_status all_gather(zrt_comm *comm, const void *send, void *recv, size_t count, zrt_dtype dtype,
                             zrt_comm_request **request, zrt_stream *stream)
{
    ZRT_CHECK(check_args(comm, "all_gather", send, recv, count, dtype, 1, 1));
    zrt_comm_op op = {.kind = ZRT_OP_ALL_GATHER, .send = send, .recv = recv, .count = count, .dtype = dtype};
    return submit(comm, &op, request, stream);
}

/* reduce_scatter and all_reduce: the same checks, then the queue. */
static zrt_status reduction(zrt_comm *comm, zrt_op_kind kind, const void *send, void *recv, size_t count,
                            zrt_dtype dtype, zrt_reduce_op reduce, zrt_comm_request **request, zrt_stream *stream)
{
    const char *what = zrt_op_name(kind);
    ZRT_CHECK(check_args(comm, what, send, recv, count, dtype, 1, 1));
    if (reduce != ZRT_REDUCE_SUM && reduce != ZRT_REDUCE_AVG)
        return zrt_set_error(ZRT_ERR_INVALID, "%s: unknown reduction %d", what, reduce);
    zrt_comm_op op = {.kind = kind, .send = send, .recv = recv, .count = count, .dtype = dtype, .reduce = reduce};
    return submit(comm, &op, request, stream);
}

static zrt_status broadcast(zrt_comm *comm, void *buf, size_t count, zrt_dtype dtype, int root,
                            zrt_comm_request **request, zrt_stream *stream)
{
    ZRT_CHECK(check_args(comm, "broadcast", buf, buf, count, dtype, 1, 1));
    if (root < 0 || root >= comm->world_size)
        return zrt_set_error(ZRT_ERR_INVALID, "broadcast: root %d is not a rank of %d", root, comm->world_size);
    zrt_comm_op op = {.kind = ZRT_OP_BROADCAST, .send = buf, .recv = buf, .count = count, .dtype = dtype,
                      .root = root};
    return submit(comm, &op, request, stream);
}

zrt_status zrt_comm_all_gather(zrt_comm *comm, const void *send, void *recv, size_t count, zrt_dtype dtype,
                               zrt_comm_request **request)
{
    return all_gather(comm, send, recv, count, dtype, request, NULL);
}

zrt_status zrt_comm_reduce_scatter(zrt_comm *comm, const void *send, void *recv, size_t count, zrt_dtype dtype,
                                   zrt_reduce_op reduce, zrt_comm_request **request)
{
    return reduction(comm, ZRT_OP_REDUCE_SCATTER, send, recv, count, dtype, reduce, request, NULL);
}

zrt_status zrt_comm_all_reduce(zrt_comm *comm, const void *send, void *recv, size_t count, zrt_dtype dtype,
                               zrt_reduce_op reduce, zrt_comm_request **request)
{
    return reduction(comm, ZRT_OP_ALL_REDUCE, send, recv, count, dtype, reduce, request, NULL);
}

zrt_status zrt_comm_broadcast(zrt_comm *comm, void *buf, size_t count, zrt_dtype dtype, int root,
                              zrt_comm_request **request)
{
    return broadcast(comm, buf, count, dtype, root, request, NULL);
}

/* The _on forms need a stream; without one they would silently block on the host. */
#define NEED_STREAM(what)                                                                       \
    do {                                                                                        \
        if (!stream) return zrt_set_error(ZRT_ERR_INVALID, "%s: NULL stream", what);            \
    } while (0)

zrt_status zrt_comm_all_gather_on(zrt_comm *comm, const void *send, void *recv, size_t count, zrt_dtype dtype,
                                  zrt_stream *stream)
{
    NEED_STREAM("zrt_comm_all_gather_on");
    return all_gather(comm, send, recv, count, dtype, NULL, stream);
}

zrt_status zrt_comm_reduce_scatter_on(zrt_comm *comm, const void *send, void *recv, size_t count, zrt_dtype dtype,
                                      zrt_reduce_op reduce, zrt_stream *stream)
{
    NEED_STREAM("zrt_comm_reduce_scatter_on");
    return reduction(comm, ZRT_OP_REDUCE_SCATTER, send, recv, count, dtype, reduce, NULL, stream);
}

zrt_status zrt_comm_all_reduce_on(zrt_comm *comm, const void *send, void *recv, size_t count, zrt_dtype dtype,
                                  zrt_reduce_op reduce, zrt_stream *stream)
{
    NEED_STREAM("zrt_comm_all_reduce_on");
    return reduction(comm, ZRT_OP_ALL_REDUCE, send, recv, count, dtype, reduce, NULL, stream);
}

zrt_status zrt_comm_broadcast_on(zrt_comm *comm, void *buf, size_t count, zrt_dtype dtype, int root, zrt_stream *stream)
{
    NEED_STREAM("zrt_comm_broadcast_on");
    return broadcast(comm, buf, count, dtype, root, NULL, stream);
}

zrt_status zrt_comm_status(zrt_comm *comm)
{
    if (!comm) return zrt_set_error(ZRT_ERR_INVALID, "zrt_comm_status: NULL communicator");
    pthread_mutex_lock(&comm->lock);
    zrt_status status = comm->broken;
    char message[MESSAGE_MAX];
    snprintf(message, sizeof message, "%s", comm->broken_message);
    pthread_mutex_unlock(&comm->lock);
    if (status == ZRT_OK && comm->backend->status && (status = comm->backend->status(comm->state)) != ZRT_OK) {
        snprintf(message, sizeof message, "%s", zrt_last_error());
        pthread_mutex_lock(&comm->lock);
        break_locked(comm, status, message);
        pthread_mutex_unlock(&comm->lock);
    }
    if (status == ZRT_OK && atomic_load(&comm->aborted))
        return zrt_set_error(ZRT_ERR_ABORTED, "rank %d: the communicator was aborted", comm->rank);
    return status == ZRT_OK ? ZRT_OK : zrt_set_error(status, "%s", message);
}

zrt_status zrt_comm_barrier(zrt_comm *comm)
{
    if (!comm) return zrt_set_error(ZRT_ERR_INVALID, "barrier: NULL communicator");
    zrt_comm_op op = {.kind = ZRT_OP_BARRIER, .dtype = ZRT_DTYPE_F32};
    return enqueue(comm, &op, NULL);
}

void zrt_comm_abort(zrt_comm *comm)
{
    if (!comm) return;
    atomic_store(&comm->aborted, 1);
    comm->backend->wake(comm->state);
}

int zrt_comm_rank(const zrt_comm *comm) { return comm ? comm->rank : -1; }
int zrt_comm_world_size(const zrt_comm *comm) { return comm ? comm->world_size : 0; }

/* ---- backends ---------------------------------------------------------------------------- */

/* The backends, by the name zrt_comm_create takes. */
static const struct {
    const char *name;
    zrt_status (*create)(const zrt_comm_options *options, const zrt_comm_backend **backend, void **state);
} backends[] = {
    {"host", zrt_comm_host_create},
    {"nccl", zrt_comm_nccl_create},
};

/* ---- create and destroy ------------------------------------------------------------------ */

zrt_status zrt_comm_create(const char *backend, const zrt_comm_options *options, zrt_comm **out)
{
    if (!backend || !options || !out) return zrt_set_error(ZRT_ERR_INVALID, "zrt_comm_create: NULL argument");
    if (options->world_size < 1 || options->rank < 0 || options->rank >= options->world_size)
        return zrt_set_error(ZRT_ERR_INVALID, "comm: rank %d is not in a world of %d", options->rank,
                             options->world_size);
    if (options->world_size > 1 && !options->store)
        return zrt_set_error(ZRT_ERR_INVALID, "comm: a store is needed for %d ranks", options->world_size);
    if (!(options->timeout_s > 0)) return zrt_set_error(ZRT_ERR_INVALID, "comm: timeout must be positive");
    zrt_comm *comm = calloc(1, sizeof *comm);
    if (!comm) return zrt_set_error(ZRT_ERR_NOMEM, "comm: out of memory");
    comm->rank = options->rank;
    comm->world_size = options->world_size;
    comm->timeout_s = options->timeout_s;
    comm->stage = options->stage_through_host;
    zrt_status status = zrt_set_error(ZRT_ERR_INVALID, "comm: unknown backend '%s' (host or nccl)", backend);
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
        if (strcmp(backend, backends[i].name) == 0) status = backends[i].create(options, &comm->backend, &comm->state);
    if (status != ZRT_OK) {
        free(comm);
        return status;
    }
    pthread_mutex_init(&comm->lock, NULL);
    pthread_cond_init(&comm->changed, NULL);
    if (pthread_create(&comm->worker, NULL, worker_main, comm) != 0) {
        comm->backend->destroy(comm->state);
        free(comm);
        return zrt_set_error(ZRT_ERR_NOMEM, "comm: cannot start the worker thread");
    }
    *out = comm;
    return ZRT_OK;
}

void zrt_comm_destroy(zrt_comm *comm)
{
    if (!comm) return;
    pthread_mutex_lock(&comm->lock);
    comm->stopping = true;
    pthread_cond_broadcast(&comm->changed);
    pthread_mutex_unlock(&comm->lock);
    pthread_join(comm->worker, NULL);
    if (comm->staging.buf) zrt_host_free(comm->staging.device, comm->staging.buf); /* its streams are done: the caller's contract */
    pthread_mutex_destroy(&comm->lock);
    pthread_cond_destroy(&comm->changed);
    free(comm);
}
