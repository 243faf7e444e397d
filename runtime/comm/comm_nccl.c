/* comm_nccl.c: the "nccl" comm backend: collectives on device buffers.
 *
 * Why these choices: rank 0 makes the ncclUniqueId and shares it through the
 * store; the communicator is non-blocking (ncclCommInitRankConfig with
 * blocking = 0) so that setup and every wait can be interrupted. The
 * request form runs on the backend's own stream and the comm worker polls
 * it. Stream-ordered collectives return once enqueued, so nothing on the
 * host waits for them -- except the engine's event synchronize, which a
 * dead peer would block forever: a watchdog thread (PyTorch's NCCL
 * watchdog) follows each one through an event recorded after it, polling
 * the event, the communicator's async error, the abort flag and the
 * deadline (comm_timeout_s); when one fires it calls ncclCommAbort (the
 * kernels end, so every wait returns) and keeps a message naming the
 * collective and its sequence number, which zrt_comm_status and every later
 * call return. all_reduce is reduce_scatter + all_gather (count padded to a
 * multiple of world), as in the host backend, so stages agree bit for bit.
 * Built only where SCons found CUDA and NCCL; elsewhere create() says so.
 */
#include "comm_internal.h"

#ifndef ZRT_HAVE_CUDA

zrt_status zrt_comm_nccl_create(const zrt_comm_options *options, const zrt_comm_backend **backend, void **state)
{
    (void)options;
    (void)backend;
    (void)state;
    return zrt_set_error(ZRT_ERR_UNSUPPORTED, "comm: this zrt was built without CUDA/NCCL (see the CUDA: line of "
                                              "the build); use the host backend");
}

#else

#include <cuda_runtime.h>
#include <nccl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A stream-ordered collective the watchdog follows until its event has passed. */
typedef struct {
    cudaEvent_t done; /* created once per slot, recorded after the collective */
    uint64_t seq;
    zrt_op_kind kind;
    double deadline;
} watched;

#define WATCH_SLOTS 256

typedef struct {
    int rank, world, device;
    double timeout_s;
    ncclComm_t comm;
    pthread_mutex_t lock; /* NCCL calls from the worker, callers and the watchdog (recursive: abort inside issue) */
    cudaStream_t stream;  /* the worker's */
    float *barrier_buf; /* one device float */
    bool broken;
    /* the watchdog */
    pthread_t watchdog;
    bool watchdog_running, stopping;
    pthread_mutex_t watch_lock;
    pthread_cond_t watch_changed;
    watched ring[WATCH_SLOTS];
    uint64_t head, tail;       /* ring[head..tail) are pending */
    const atomic_int *aborted; /* the communicator's abort flag (from the first zrt_wait) */
    zrt_status failed;         /* the watchdog's verdict, ZRT_OK until then */
    char message[1024];
} nccl_state;

static zrt_status nccl_error(nccl_state *s, ncclResult_t res, const char *what)
{
    const char *last = s->comm ? ncclGetLastError(s->comm) : "";
    return zrt_set_error(ZRT_ERR_PEER, "rank %d: nccl %s: %s%s%s", s->rank, what, ncclGetErrorString(res),
                         last && last[0] ? ": " : "", last ? last : "");
}

static zrt_status cuda_error(nccl_state *s, cudaError_t err, const char *what)
{
    return zrt_set_error(ZRT_ERR_IO, "rank %d: cuda %s: %s", s->rank, what, cudaGetErrorString(err));
}

/* Gives up on the communicator: no later call may block. ncclCommAbort
 * frees it, so s->comm is NULL afterwards and every later use checks. */
static void abort_comm(nccl_state *s)
{
    pthread_mutex_lock(&s->lock);
    if (s->comm && !s->broken) ncclCommAbort(s->comm);
    s->comm = NULL;
    s->broken = true;
    pthread_mutex_unlock(&s->lock);
}

/* The communicator's asynchronous error, under the lock (it may be aborted,
 * and freed, by another thread): ncclInvalidUsage once it is gone. With
 * wait false (the watchdog) a busy lock answers ncclInProgress: ask again. */
static ncclResult_t async_error(nccl_state *s, bool wait)
{
    if (wait) pthread_mutex_lock(&s->lock);
    else if (pthread_mutex_trylock(&s->lock) != 0) return ncclInProgress;
    ncclResult_t res = ncclInvalidUsage;
    if (s->comm && !s->broken) ncclCommGetAsyncError(s->comm, &res);
    pthread_mutex_unlock(&s->lock);
    return res;
}

/* A non-blocking communicator answers ncclInProgress until its state settles. */
static zrt_status settle(nccl_state *s, ncclResult_t res, const char *what, const zrt_wait *w)
{
    while (res == ncclInProgress) {
        zrt_status status = zrt_wait_check(w, -1);
        if (status != ZRT_OK) {
            abort_comm(s);
            return status;
        }
        zrt_sleep(0.0001);
        res = async_error(s, true);
    }
    return res == ncclSuccess ? ZRT_OK : nccl_error(s, res, what);
}

/* Polls the stream until the enqueued work is done. */
static zrt_status wait_stream(nccl_state *s, const char *what, const zrt_wait *w)
{
    for (;;) {
        zrt_status status = zrt_wait_check(w, -1); /* an abort wins over a finished stream */
        if (status != ZRT_OK) {
            abort_comm(s);
            return status;
        }
        cudaError_t err = cudaStreamQuery(s->stream);
        if (err == cudaSuccess) return ZRT_OK;
        if (err != cudaErrorNotReady) return cuda_error(s, err, what);
        ncclResult_t async = async_error(s, true);
        if (async != ncclSuccess && async != ncclInProgress) {
            zrt_status status = nccl_error(s, async, what);
            abort_comm(s);
            return status;
        }
        zrt_sleep(0.00005);
    }
}

static ncclDataType_t nccl_dtype(zrt_dtype d)
{
    return d == ZRT_DTYPE_F32 ? ncclFloat32 : d == ZRT_DTYPE_BF16 ? ncclBfloat16 : ncclFloat16;
}

static ncclRedOp_t nccl_op(zrt_reduce_op op) { return op == ZRT_REDUCE_AVG ? ncclAvg : ncclSum; }

static zrt_status all_reduce(nccl_state *s, const zrt_comm_op *op, cudaStream_t stream, const zrt_wait *w)
{
    size_t n = (size_t)s->world, es = zrt_dtype_size(op->dtype);
    size_t chunk = (op->count + n - 1) / n, padded = chunk * n;
    ncclDataType_t dt = nccl_dtype(op->dtype);
    char *work = op->recv;
    cudaError_t err = cudaSuccess;
    if (padded != op->count) {
        if ((err = cudaMallocAsync((void **)&work, padded * es, stream)) != cudaSuccess)
            return cuda_error(s, err, "all_reduce scratch");
        err = cudaMemsetAsync(work + op->count * es, 0, (padded - op->count) * es, stream);
    }
    if (err == cudaSuccess && work != op->send)
        err = cudaMemcpyAsync(work, op->send, op->count * es, cudaMemcpyDeviceToDevice, stream);
    char *mine = work + (size_t)s->rank * chunk * es;
    zrt_status status = err != cudaSuccess ? cuda_error(s, err, "all_reduce copy in")
                        : settle(s, ncclReduceScatter(work, mine, chunk, dt, nccl_op(op->reduce), s->comm, stream),
                                 "reduce_scatter", w);
    if (status == ZRT_OK) status = settle(s, ncclAllGather(mine, work, chunk, dt, s->comm, stream), "all_gather", w);
    if (status == ZRT_OK && work != op->recv &&
        (err = cudaMemcpyAsync(op->recv, work, op->count * es, cudaMemcpyDeviceToDevice, stream)) != cudaSuccess)
        status = cuda_error(s, err, "all_reduce copy out");
    if (work != op->recv) cudaFreeAsync(work, stream); /* stream-ordered: after what used it */
    return status;
}

/* Enqueues the operation on stream (NCCL's own ordering) and returns. */
static zrt_status issue(nccl_state *s, const zrt_comm_op *op, cudaStream_t stream, const zrt_wait *w)
{
    if (s->broken || atomic_load(w->aborted))
        return zrt_set_error(ZRT_ERR_ABORTED, "rank %d: nccl %s: the communicator was aborted", s->rank,
                             zrt_op_name(op->kind));
    ncclDataType_t dt = nccl_dtype(op->dtype);
    switch (op->kind) {
    case ZRT_OP_ALL_GATHER:
        return settle(s, ncclAllGather(op->send, op->recv, op->count, dt, s->comm, stream), "all_gather", w);
    case ZRT_OP_REDUCE_SCATTER:
        return settle(s, ncclReduceScatter(op->send, op->recv, op->count, dt, nccl_op(op->reduce), s->comm, stream),
                      "reduce_scatter", w);
    case ZRT_OP_ALL_REDUCE: return all_reduce(s, op, stream, w);
    case ZRT_OP_BROADCAST:
        return settle(s, ncclBroadcast(op->send, op->recv, op->count, dt, op->root, s->comm, stream), "broadcast", w);
    case ZRT_OP_BARRIER:
        return settle(s, ncclAllReduce(s->barrier_buf, s->barrier_buf, 1, ncclFloat32, ncclSum, s->comm, stream),
                      "barrier", w);
    }
    return zrt_set_error(ZRT_ERR_INTERNAL, "nccl: unknown operation %d", (int)op->kind);
}

/* The worker's blocking form: issue on our stream, then poll it (abort, deadline). */
static zrt_status run(void *state, const zrt_comm_op *op, const zrt_wait *w)
{
    nccl_state *s = state;
    cudaError_t err = cudaSetDevice(s->device); /* the comm worker's thread: its current device is ours */
    if (err != cudaSuccess) return cuda_error(s, err, "cudaSetDevice");
    pthread_mutex_lock(&s->lock);
    zrt_status status = issue(s, op, s->stream, w);
    pthread_mutex_unlock(&s->lock);
    if (status == ZRT_OK) status = wait_stream(s, zrt_op_name(op->kind), w);
    return status;
}

/* ---- the watchdog ------------------------------------------------------------------- */

/* Whether the watched collective at the head of the ring must be given up:
 * ZRT_OK while it may still finish, else the status and *why. */
static zrt_status verdict(nccl_state *s, const watched *w, cudaError_t query, char *why, size_t why_size)
{
    if (query != cudaErrorNotReady) {
        snprintf(why, why_size, "failed: %s", cudaGetErrorString(query));
        return ZRT_ERR_IO;
    }
    ncclResult_t async = async_error(s, false);
    if (async != ncclSuccess && async != ncclInProgress) {
        snprintf(why, why_size, "failed: %s", ncclGetErrorString(async));
        return ZRT_ERR_PEER;
    }
    if (s->aborted && atomic_load(s->aborted)) {
        snprintf(why, why_size, "was aborted (zrt_comm_abort)");
        return ZRT_ERR_ABORTED;
    }
    if (zrt_now() <= w->deadline) return ZRT_OK;
    snprintf(why, why_size, "did not finish within %.0f s (comm_timeout_s): a peer died or stalled", s->timeout_s);
    return ZRT_ERR_TIMEOUT;
}

/* Gives up: keeps the message, aborts NCCL (its kernels end, so every stream
 * and event wait returns) and forgets what is pending. Called with watch_lock held. */
static void watchdog_fail(nccl_state *s, const watched *w, zrt_status status, const char *why)
{
    s->failed = status;
    snprintf(s->message, sizeof s->message, "rank %d: nccl %s #%llu %s; the NCCL communicator was aborted", s->rank,
             zrt_op_name(w->kind), (unsigned long long)w->seq, why);
    pthread_mutex_unlock(&s->watch_lock);
    abort_comm(s);
    pthread_mutex_lock(&s->watch_lock);
    s->head = s->tail;
    pthread_cond_broadcast(&s->watch_changed);
}

static void *watchdog_main(void *arg)
{
    nccl_state *s = arg;
    cudaSetDevice(s->device);
    pthread_mutex_lock(&s->watch_lock);
    while (!s->stopping) {
        if (s->head == s->tail || s->failed != ZRT_OK) {
            pthread_cond_wait(&s->watch_changed, &s->watch_lock);
            continue;
        }
        watched *head = &s->ring[s->head % WATCH_SLOTS];
        if (head->deadline == 0) head->deadline = zrt_now() + s->timeout_s; /* from when the one before it ended */
        watched w = *head;
        pthread_mutex_unlock(&s->watch_lock);
        cudaError_t query = cudaEventQuery(w.done);
        char why[256];
        zrt_status status = query == cudaSuccess ? ZRT_OK : verdict(s, &w, query, why, sizeof why);
        if (query != cudaSuccess && status == ZRT_OK) zrt_sleep(0.0002);
        pthread_mutex_lock(&s->watch_lock);
        if (query == cudaSuccess) {
            s->head++;
            pthread_cond_broadcast(&s->watch_changed);
        } else if (status != ZRT_OK) {
            watchdog_fail(s, &w, status, why);
        }
    }
    pthread_mutex_unlock(&s->watch_lock);
    return NULL;
}

/* Follows the collective just enqueued on stream: an event after it, in the ring. */
static zrt_status watch(nccl_state *s, const zrt_comm_op *op, cudaStream_t stream, const zrt_wait *w)
{
    pthread_mutex_lock(&s->watch_lock);
    s->aborted = w->aborted;
    while (s->tail - s->head >= WATCH_SLOTS && s->failed == ZRT_OK) /* the oldest is still running */
        pthread_cond_wait(&s->watch_changed, &s->watch_lock);
    zrt_status status = s->failed;
    watched *slot = &s->ring[s->tail % WATCH_SLOTS];
    cudaError_t err = cudaSuccess;
    if (status == ZRT_OK && !slot->done) err = cudaEventCreateWithFlags(&slot->done, cudaEventDisableTiming);
    if (status == ZRT_OK && err == cudaSuccess) err = cudaEventRecord(slot->done, stream);
    if (status == ZRT_OK && err == cudaSuccess) {
        slot->seq = op->seq;
        slot->kind = op->kind;
        slot->deadline = 0; /* set when it reaches the head: GPU work queued before it is not its time */
        s->tail++;
        pthread_cond_broadcast(&s->watch_changed);
    }
    char message[sizeof s->message];
    snprintf(message, sizeof message, "%s", s->message);
    pthread_mutex_unlock(&s->watch_lock);
    if (status != ZRT_OK) return zrt_set_error(status, "%s", message);
    return err == cudaSuccess ? ZRT_OK : cuda_error(s, err, "the watchdog's event");
}

static zrt_status watch_status(void *state)
{
    nccl_state *s = state;
    pthread_mutex_lock(&s->watch_lock);
    zrt_status status = s->failed;
    char message[sizeof s->message];
    snprintf(message, sizeof message, "%s", s->message);
    pthread_mutex_unlock(&s->watch_lock);
    return status == ZRT_OK ? ZRT_OK : zrt_set_error(status, "%s", message);
}

/* Stream-ordered: on the caller's stream, then followed by the watchdog; a
 * failure it finds comes back through zrt_comm_status and every later call. */
static zrt_status run_on(void *state, const zrt_comm_op *op, void *native_stream, const zrt_wait *w)
{
    nccl_state *s = state;
    ZRT_CHECK(watch_status(s));
    pthread_mutex_lock(&s->lock);
    zrt_status status = issue(s, op, (cudaStream_t)native_stream, w);
    pthread_mutex_unlock(&s->lock);
    return status == ZRT_OK ? watch(s, op, (cudaStream_t)native_stream, w) : status;
}

static void wake(void *state)
{
    nccl_state *s = state; /* the watchdog sees the abort flag at its next poll */
    pthread_mutex_lock(&s->watch_lock);
    pthread_cond_broadcast(&s->watch_changed);
    pthread_mutex_unlock(&s->watch_lock);
}

static void watchdog_stop(nccl_state *s)
{
    if (!s->watchdog_running) return;
    pthread_mutex_lock(&s->watch_lock);
    s->stopping = true;
    pthread_cond_broadcast(&s->watch_changed);
    pthread_mutex_unlock(&s->watch_lock);
    pthread_join(s->watchdog, NULL);
    s->watchdog_running = false;
}

static void destroy(void *state)
{
    nccl_state *s = state;
    watchdog_stop(s);
    cudaSetDevice(s->device); /* the comm worker's thread ends the communicator */
    if (s->comm && !s->broken) {
        ncclCommFinalize(s->comm);
        ncclResult_t res = ncclInProgress;
        double deadline = zrt_now() + 10;
        while (res == ncclInProgress && zrt_now() < deadline) {
            ncclCommGetAsyncError(s->comm, &res);
            if (res == ncclInProgress) zrt_sleep(0.0005);
        }
        if (res == ncclSuccess) ncclCommDestroy(s->comm);
        else ncclCommAbort(s->comm);
    }
    for (int i = 0; i < WATCH_SLOTS; i++)
        if (s->ring[i].done) cudaEventDestroy(s->ring[i].done);
    if (s->barrier_buf) cudaFree(s->barrier_buf);
    if (s->stream) cudaStreamDestroy(s->stream);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->watch_lock);
    pthread_cond_destroy(&s->watch_changed);
    free(s);
}

static const zrt_comm_backend nccl_backend = {"nccl", run, run_on, wake, destroy, watch_status};

static zrt_status share_id(const zrt_comm_options *o, ncclUniqueId *id)
{
    char key[128];
    snprintf(key, sizeof key, "%s/nccl_unique_id", o->name);
    if (o->rank == 0) {
        ncclResult_t res = ncclGetUniqueId(id);
        if (res != ncclSuccess) return zrt_set_error(ZRT_ERR_IO, "nccl: ncclGetUniqueId: %s", ncclGetErrorString(res));
        return zrt_store_set(o->store, key, id, sizeof *id);
    }
    void *value;
    size_t len;
    ZRT_CHECK(zrt_store_get(o->store, key, o->timeout_s, &value, &len));
    if (len != sizeof *id) {
        free(value);
        return zrt_set_error(ZRT_ERR_PEER, "nccl: the unique id in the store has %zu bytes, not %zu", len, sizeof *id);
    }
    memcpy(id, value, sizeof *id);
    free(value);
    return ZRT_OK;
}

zrt_status zrt_comm_nccl_create(const zrt_comm_options *o, const zrt_comm_backend **backend, void **state)
{
    int devices = 0;
    cudaError_t err = cudaGetDeviceCount(&devices);
    if (err != cudaSuccess || devices == 0)
        return zrt_set_error(ZRT_ERR_UNSUPPORTED, "nccl: no CUDA device (%s)",
                             err != cudaSuccess ? cudaGetErrorString(err) : "none visible");
    if (o->device < 0 || o->device >= devices)
        return zrt_set_error(ZRT_ERR_INVALID, "nccl: device %d does not exist (%d visible)", o->device, devices);
    nccl_state *s = calloc(1, sizeof *s);
    if (!s) return zrt_set_error(ZRT_ERR_NOMEM, "nccl: out of memory");
    s->rank = o->rank;
    s->world = o->world_size;
    s->device = o->device;
    s->timeout_s = o->timeout_s;
    pthread_mutexattr_t recursive;
    pthread_mutexattr_init(&recursive);
    pthread_mutexattr_settype(&recursive, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&s->lock, &recursive);
    pthread_mutexattr_destroy(&recursive);
    pthread_mutex_init(&s->watch_lock, NULL);
    pthread_cond_init(&s->watch_changed, NULL);
    zrt_status status = ZRT_OK;
    ncclUniqueId id;
    atomic_int never = 0;
    zrt_wait w = {&never, zrt_now() + o->timeout_s, o->rank, NULL};
    if ((err = cudaSetDevice(o->device)) != cudaSuccess ||
        (err = cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking)) != cudaSuccess ||
        (err = cudaMalloc((void **)&s->barrier_buf, sizeof(float))) != cudaSuccess) {
        status = cuda_error(s, err, "setup");
        goto fail;
    }
    ZRT_CHECK_GOTO(status, share_id(o, &id), fail);
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    ZRT_CHECK_GOTO(status, settle(s, ncclCommInitRankConfig(&s->comm, o->world_size, id, o->rank, &config), "init", &w), fail);
    if (pthread_create(&s->watchdog, NULL, watchdog_main, s) != 0) {
        status = zrt_set_error(ZRT_ERR_NOMEM, "nccl: cannot start the watchdog thread");
        goto fail;
    }
    s->watchdog_running = true;
    *backend = &nccl_backend;
    *state = s;
    return ZRT_OK;
fail:
    abort_comm(s);
    destroy(s);
    return status;
}

#endif
