/* comm_nccl.c: the "nccl" comm backend: collectives on device buffers.
 *
 * Why these choices: rank 0 makes the ncclUniqueId and shares it through the
 * store; the communicator is non-blocking (ncclCommInitRankConfig with
 * blocking = 0) so that setup and every wait can be interrupted; collectives
 * run on their own stream and the worker thread polls the stream, the
 * communicator's async error, the abort flag and the deadline, calling
 * ncclCommAbort when it must give up -- so no rank hangs in a collective.
 * all_reduce is reduce_scatter + all_gather (count padded to a multiple of
 * world), as in the host backend, so stages agree bit for bit.
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

typedef struct {
    int rank, world;
    ncclComm_t comm;
    pthread_mutex_t lock; /* NCCL calls from the worker (run) and from callers (run_on) */
    cudaStream_t stream;  /* the worker's */
    float *barrier_buf; /* one device float */
    bool broken;
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

/* Gives up on the communicator: no later call may block. */
static void abort_comm(nccl_state *s)
{
    if (s->comm && !s->broken) ncclCommAbort(s->comm);
    s->broken = true;
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
        ncclCommGetAsyncError(s->comm, &res);
    }
    return res == ncclSuccess ? ZRT_OK : nccl_error(s, res, what);
}

/* Polls the stream until the enqueued work is done. */
static zrt_status wait_stream(nccl_state *s, const char *what, const zrt_wait *w)
{
    for (;;) {
        cudaError_t err = cudaStreamQuery(s->stream);
        if (err == cudaSuccess) return ZRT_OK;
        if (err != cudaErrorNotReady) return cuda_error(s, err, what);
        ncclResult_t async;
        ncclCommGetAsyncError(s->comm, &async);
        if (async != ncclSuccess && async != ncclInProgress) {
            zrt_status status = nccl_error(s, async, what);
            abort_comm(s);
            return status;
        }
        zrt_status status = zrt_wait_check(w, -1);
        if (status != ZRT_OK) {
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
    if (padded != op->count) {
        cudaError_t err = cudaMallocAsync((void **)&work, padded * es, stream);
        if (err != cudaSuccess) return cuda_error(s, err, "all_reduce scratch");
        cudaMemsetAsync(work + op->count * es, 0, (padded - op->count) * es, stream);
    }
    if (work != op->send) cudaMemcpyAsync(work, op->send, op->count * es, cudaMemcpyDeviceToDevice, stream);
    char *mine = work + (size_t)s->rank * chunk * es;
    zrt_status status = settle(s, ncclReduceScatter(work, mine, chunk, dt, nccl_op(op->reduce), s->comm, stream),
                               "reduce_scatter", w);
    if (status == ZRT_OK) status = settle(s, ncclAllGather(mine, work, chunk, dt, s->comm, stream), "all_gather", w);
    if (work != op->recv) {
        cudaMemcpyAsync(op->recv, work, op->count * es, cudaMemcpyDeviceToDevice, stream);
        cudaFreeAsync(work, stream);
    }
    return status;
}

/* Enqueues the operation on stream (NCCL's own ordering) and returns. */
static zrt_status issue(nccl_state *s, const zrt_comm_op *op, cudaStream_t stream, const zrt_wait *w)
{
    if (s->broken) return zrt_set_error(ZRT_ERR_PEER, "rank %d: nccl communicator was aborted", s->rank);
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
    pthread_mutex_lock(&s->lock);
    zrt_status status = issue(s, op, s->stream, w);
    pthread_mutex_unlock(&s->lock);
    if (status == ZRT_OK) status = wait_stream(s, zrt_op_name(op->kind), w);
    return status;
}

/* Stream-ordered: on the caller's stream. Failures found later (a dead
 * peer) surface through ncclCommGetAsyncError in zrt_comm_status and as
 * the next operation's error; zrt_comm_abort ends waiting kernels. */
static zrt_status run_on(void *state, const zrt_comm_op *op, void *native_stream, const zrt_wait *w)
{
    nccl_state *s = state;
    pthread_mutex_lock(&s->lock);
    zrt_status status = issue(s, op, (cudaStream_t)native_stream, w);
    pthread_mutex_unlock(&s->lock);
    return status;
}

static void wake(void *state) { (void)state; /* the worker polls the abort flag */ }

static void destroy(void *state)
{
    nccl_state *s = state;
    if (s->comm && !s->broken) {
        ncclCommFinalize(s->comm);
        ncclResult_t res = ncclInProgress;
        double deadline = zrt_now() + 10;
        while (res == ncclInProgress && zrt_now() < deadline) ncclCommGetAsyncError(s->comm, &res);
        if (res == ncclSuccess) ncclCommDestroy(s->comm);
        else ncclCommAbort(s->comm);
    }
    if (s->barrier_buf) cudaFree(s->barrier_buf);
    if (s->stream) cudaStreamDestroy(s->stream);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static const zrt_comm_backend nccl_backend = {"nccl", run, run_on, wake, destroy};

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
    pthread_mutex_init(&s->lock, NULL);
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
    ZRT_CHECK_GOTO(share_id(o, &id), fail);
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    ZRT_CHECK_GOTO(settle(s, ncclCommInitRankConfig(&s->comm, o->world_size, id, o->rank, &config), "init", &w), fail);
    *backend = &nccl_backend;
    *state = s;
    return ZRT_OK;
fail:
    abort_comm(s);
    destroy(s);
    return status;
}

#endif
