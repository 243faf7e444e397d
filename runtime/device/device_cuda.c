/* device_cuda.c: the cuda device backend: memory from a stream-ordered pool
 * (cudaMallocAsync with the release threshold at its maximum, so freed
 * memory stays cached and no step calls cudaMalloc or cudaFree), pinned
 * host memory (cudaHostRegister), non-blocking streams, events without
 * timing, and the kernels of kernels/device_kernels.cu.
 *
 * Why cudaHostRegister over cudaHostAlloc: memory the host allocated can
 * later be registered with io_uring as well (the NVMe offload), which memory
 * from cudaHostAlloc cannot on some kernels. Every CUDA call is checked; an
 * error names the call, the file and the line. Host functions
 * (cudaLaunchHostFunc) cannot return an error to CUDA, so the first one
 * that fails is kept with its stream and returned by the stream's
 * synchronize and query and by those of every event recorded on it (the
 * engine waits on events). zrt_device_read/write run on the device's own
 * stream and synchronize it: complete when they return, as on the cpu.
 * Built only where SCons found CUDA; elsewhere the backend is absent and
 * zrt_device_cuda_count says why.
 */
#include "device.h"
#include "zrt/internal/cuda_check.h"
#include "zrt/internal/kernels.h"

#ifndef ZRT_HAVE_CUDA

const zrt_device_ops *const zrt_device_cuda_ops = NULL;

int zrt_device_cuda_count(const char **why)
{
    if (why) *why = "this zrt was built without CUDA (see the CUDA: line of the build)";
    return 0;
}

#else

#include "cuda_kernels.h"
#include "grad_stats.h"

#include <cuda_runtime_api.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int index;
    cudaStream_t setup; /* allocations and frees not ordered on a stream of the caller's */
} cuda_device;

typedef struct cuda_stream {
    cudaStream_t stream;
    double *partial;    /* ZRT_STATS_BLOCKS doubles: the gradient statistics' pass-1 scratch, in stream order */
    pthread_mutex_t lock;
    zrt_status error;   /* the first failed host function */
    char message[1024];
    atomic_int refs;    /* the stream, the events recorded on it, the streams that waited for it */
    char name[32];
    struct cuda_stream *waited[ZRT_MAX_STREAMS]; /* streams this one has waited for (references): their failures are its own */
    int n_waited;
} cuda_stream;

typedef struct {
    cudaEvent_t event;
    cuda_stream *stream; /* of the latest record (a reference), NULL if never recorded */
} cuda_event;


int zrt_device_cuda_count(const char **why)
{
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
        if (why) *why = cudaGetErrorString(err);
        return 0;
    }
    if (count == 0 && why) *why = "the driver reports no CUDA device";
    return count;
}

static cuda_device *dev_of(zrt_device *d) { return d->impl; }
static cudaStream_t native(zrt_stream *s) { return ((cuda_stream *)s->impl)->stream; }

static zrt_status cuda_init(zrt_device *d, const zrt_device_options *o)
{
    int count = zrt_device_cuda_count(NULL);
    if (o->index < 0 || o->index >= count)
        return zrt_set_error(ZRT_ERR_INVALID, "device: cuda:%d does not exist (%d visible)", o->index, count);
    cuda_device *cd = calloc(1, sizeof *cd);
    if (!cd) return zrt_set_error(ZRT_ERR_NOMEM, "device: out of memory");
    d->impl = cd;
    cd->index = o->index;
    struct cudaDeviceProp prop;
    ZRT_CUDA_CHECK(cudaSetDevice(cd->index));
    ZRT_CUDA_CHECK(cudaGetDeviceProperties(&prop, cd->index));
    snprintf(d->name, sizeof d->name, "cuda:%d (%s)", cd->index, prop.name);
    int host_pointers = 0; /* kernels write registered (mapped) host memory through its host address */
    ZRT_CUDA_CHECK(cudaDeviceGetAttribute(&host_pointers, cudaDevAttrCanUseHostPointerForRegisteredMem, cd->index));
    if (!host_pointers)
        return zrt_set_error(ZRT_ERR_UNSUPPORTED, "device: %s cannot use host pointers of registered memory "
                                                  "(cudaDevAttrCanUseHostPointerForRegisteredMem is 0): zrt's kernels "
                                                  "write pinned host memory through them", d->name);
    cudaMemPool_t pool;
    ZRT_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, cd->index));
    uint64_t keep_all = UINT64_MAX;
    ZRT_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep_all));
    ZRT_CUDA_CHECK(cudaStreamCreateWithFlags(&cd->setup, cudaStreamNonBlocking));
    return ZRT_OK;
}

static void cuda_fini(zrt_device *d)
{
    cuda_device *cd = dev_of(d);
    if (!cd) return;
    if (cd->setup) {
        cudaStreamSynchronize(cd->setup);
        cudaStreamDestroy(cd->setup);
    }
    free(cd);
}

static zrt_status cuda_alloc(zrt_device *d, size_t bytes, zrt_stream *on, void **out)
{
    cuda_device *cd = dev_of(d);
    cudaStream_t stream = on ? native(on) : cd->setup;
    ZRT_CUDA_CHECK(cudaSetDevice(cd->index));
    ZRT_CUDA_CHECK(cudaMallocAsync(out, bytes ? bytes : 1, stream));
    if (d->check) ZRT_CUDA_CHECK(cudaMemsetAsync(*out, ZRT_POISON_BYTE, bytes, stream));
    if (!on) ZRT_CUDA_CHECK(cudaStreamSynchronize(stream)); /* usable on every stream */
    return ZRT_OK;
}

/* A stream-ordered free's bytes, handed back to the report when the stream gets there. */
typedef struct { zrt_device *device; size_t bytes; } cuda_freed;

static void CUDART_CB run_freed(void *arg)
{
    cuda_freed *f = arg;
    zrt_device_freed(f->device, f->bytes);
    free(f);
}

/* On a stream, the memory is the pool's again when the stream reaches the
 * free; until then the report keeps it (as `freeing`), so its peak is an
 * upper bound of the pool's used memory (test_cuda_memory). */
static zrt_status cuda_free(zrt_device *d, void *ptr, size_t bytes, zrt_stream *on)
{
    cudaStream_t stream = on ? native(on) : dev_of(d)->setup;
    if (d->check) ZRT_CUDA_CHECK(cudaMemsetAsync(ptr, ZRT_POISON_BYTE, bytes, stream));
    ZRT_CUDA_CHECK(cudaFreeAsync(ptr, stream));
    if (!on) return ZRT_OK;
    cuda_freed *f = malloc(sizeof *f);
    if (!f) {
        zrt_device_freed(d, bytes); /* the report cannot wait: let it go now rather than never */
        return zrt_set_error(ZRT_ERR_NOMEM, "cuda free: out of host memory");
    }
    *f = (cuda_freed){d, bytes};
    cudaError_t err = cudaLaunchHostFunc(stream, run_freed, f);
    if (err == cudaSuccess) return ZRT_OK;
    free(f);
    zrt_device_freed(d, bytes);
    return zrt_cuda_failed((int)err, "cudaLaunchHostFunc", __FILE__, __LINE__);
}

static zrt_status cuda_host_alloc(zrt_device *d, size_t bytes, void **out)
{
    (void)d;
    size_t page = 4096, rounded = (bytes + page - 1) / page * page;
    if (posix_memalign(out, page, rounded ? rounded : page) != 0) return zrt_set_error(ZRT_ERR_NOMEM, "out of memory");
    cudaError_t err = cudaHostRegister(*out, rounded ? rounded : page, cudaHostRegisterMapped | cudaHostRegisterPortable);
    if (err != cudaSuccess) {
        free(*out);
        return zrt_cuda_failed((int)err, "cudaHostRegister", __FILE__, __LINE__);
    }
    return ZRT_OK;
}

static void cuda_host_free(zrt_device *d, void *ptr, size_t bytes)
{
    (void)d;
    (void)bytes;
    cudaHostUnregister(ptr);
    free(ptr);
}

/* zrt_device_read/write: on the device's own stream, then synchronized, so
 * the copy has completed when they return -- also from pageable memory, where
 * a plain cudaMemcpy to the device may return while the DMA is still in
 * flight, and on the legacy default stream, which zrt's non-blocking streams
 * do not order against. */
static zrt_status copy_now(zrt_device *d, void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind)
{
    cuda_device *cd = dev_of(d);
    ZRT_CUDA_CHECK(cudaSetDevice(cd->index));
    ZRT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, cd->setup));
    ZRT_CUDA_CHECK(cudaStreamSynchronize(cd->setup));
    return ZRT_OK;
}

static zrt_status cuda_read(zrt_device *d, void *host, const void *src, size_t bytes)
{
    return copy_now(d, host, src, bytes, cudaMemcpyDeviceToHost);
}

static zrt_status cuda_write(zrt_device *d, void *dst, const void *host, size_t bytes)
{
    return copy_now(d, dst, host, bytes, cudaMemcpyHostToDevice);
}

/* ---- streams and events ------------------------------------------------------------------------ */

static zrt_status cuda_stream_create(zrt_stream *s)
{
    cuda_stream *cs = calloc(1, sizeof *cs);
    if (!cs) return zrt_set_error(ZRT_ERR_NOMEM, "device: out of memory for a stream");
    pthread_mutex_init(&cs->lock, NULL);
    atomic_init(&cs->refs, 1);
    snprintf(cs->name, sizeof cs->name, "%s", s->name);
    cudaError_t err = cudaSetDevice(dev_of(s->device)->index);
    if (err == cudaSuccess) err = cudaStreamCreateWithFlags(&cs->stream, cudaStreamNonBlocking);
    if (err == cudaSuccess) err = cudaMallocAsync((void **)&cs->partial, ZRT_STATS_BLOCKS * sizeof(double), cs->stream);
    if (err != cudaSuccess) {
        if (cs->stream) cudaStreamDestroy(cs->stream);
        pthread_mutex_destroy(&cs->lock);
        free(cs);
        return zrt_cuda_failed((int)err, "cudaStreamCreateWithFlags / cudaMallocAsync", __FILE__, __LINE__);
    }
    s->impl = cs;
    return ZRT_OK;
}

static void stream_unref(cuda_stream *cs)
{
    if (!cs || atomic_fetch_sub(&cs->refs, 1) != 1) return;
    pthread_mutex_destroy(&cs->lock);
    free(cs);
}

static void cuda_stream_destroy(zrt_stream *s)
{
    cuda_stream *cs = s->impl;
    cudaFreeAsync(cs->partial, cs->stream);
    cudaStreamSynchronize(cs->stream);
    cudaStreamDestroy(cs->stream);
    pthread_mutex_lock(&cs->lock);
    int n = cs->n_waited;
    cs->n_waited = 0;
    pthread_mutex_unlock(&cs->lock);
    for (int i = 0; i < n; i++) stream_unref(cs->waited[i]); /* no cycles of references stay behind */
    stream_unref(cs); /* events recorded on it may still ask for its error */
}

/* The stream whose host function failed first, among cs and, as a cpu
 * stream's wait inherits a failure, the streams it waited for (each once:
 * waits may cycle); NULL if none. */
static cuda_stream *find_error(cuda_stream *cs, cuda_stream **seen, int *n_seen, zrt_status *status, char *message,
                               size_t size)
{
    for (int i = 0; i < *n_seen; i++)
        if (seen[i] == cs) return NULL;
    if (*n_seen == 2 * ZRT_MAX_STREAMS) return NULL;
    seen[(*n_seen)++] = cs;
    pthread_mutex_lock(&cs->lock);
    cuda_stream *found = cs->error != ZRT_OK ? cs : NULL;
    if (found) *status = cs->error, snprintf(message, size, "%s", cs->message);
    cuda_stream *waited[ZRT_MAX_STREAMS];
    int n = cs->n_waited;
    memcpy(waited, cs->waited, (size_t)n * sizeof *waited);
    pthread_mutex_unlock(&cs->lock);
    for (int i = 0; i < n && !found; i++) found = find_error(waited[i], seen, n_seen, status, message, size);
    return found;
}

static zrt_status host_function_error(cuda_stream *cs)
{
    cuda_stream *seen[2 * ZRT_MAX_STREAMS];
    int n_seen = 0;
    zrt_status status = ZRT_OK;
    char message[1024] = "";
    cuda_stream *failed = find_error(cs, seen, &n_seen, &status, message, sizeof message);
    if (!failed) return ZRT_OK;
    if (failed == cs) return zrt_set_error(status, "%s", message);
    return zrt_set_error(status, "%s (stream '%s' failed; stream '%s' waited for it)", message, failed->name, cs->name);
}

static zrt_status cuda_stream_synchronize(zrt_stream *s)
{
    ZRT_CUDA_CHECK(cudaStreamSynchronize(native(s)));
    return host_function_error(s->impl);
}

static zrt_status cuda_stream_query(zrt_stream *s, bool *idle)
{
    cudaError_t err = cudaStreamQuery(native(s));
    *idle = err == cudaSuccess;
    if (err != cudaSuccess && err != cudaErrorNotReady) return zrt_cuda_failed((int)err, "cudaStreamQuery", __FILE__, __LINE__);
    return host_function_error(s->impl);
}

static void *cuda_stream_native(zrt_stream *s) { return native(s); }

static zrt_status cuda_event_create(zrt_event *e)
{
    cuda_event *ev = calloc(1, sizeof *ev);
    if (!ev) return zrt_set_error(ZRT_ERR_NOMEM, "device: out of memory for an event");
    cudaError_t err = cudaEventCreateWithFlags(&ev->event, cudaEventDisableTiming);
    if (err != cudaSuccess) {
        free(ev);
        return zrt_cuda_failed((int)err, "cudaEventCreateWithFlags", __FILE__, __LINE__);
    }
    e->impl = ev;
    return ZRT_OK;
}

static void cuda_event_destroy(zrt_event *e)
{
    cuda_event *ev = e->impl;
    cudaEventDestroy(ev->event);
    stream_unref(ev->stream);
    free(ev);
}

static zrt_status cuda_event_record(zrt_event *e, zrt_stream *s)
{
    cuda_event *ev = e->impl;
    ZRT_CUDA_CHECK(cudaEventRecord(ev->event, native(s)));
    cuda_stream *cs = s->impl;
    atomic_fetch_add(&cs->refs, 1);
    stream_unref(ev->stream);
    ev->stream = cs;
    return ZRT_OK;
}

static zrt_status cuda_stream_wait(zrt_stream *s, zrt_event *e)
{
    cuda_event *ev = e->impl;
    ZRT_CUDA_CHECK(cudaStreamWaitEvent(native(s), ev->event, 0));
    cuda_stream *cs = s->impl, *other = ev->stream;
    if (!other || other == cs) return ZRT_OK;
    pthread_mutex_lock(&cs->lock);
    bool known = false;
    for (int i = 0; i < cs->n_waited; i++) known |= cs->waited[i] == other;
    if (!known && cs->n_waited < ZRT_MAX_STREAMS) {
        atomic_fetch_add(&other->refs, 1);
        cs->waited[cs->n_waited++] = other;
    }
    pthread_mutex_unlock(&cs->lock);
    return ZRT_OK;
}

/* As on the cpu device: a passed event answers with its stream's error (a
 * host function that failed -- a hybrid collective, a bad token). */
static zrt_status cuda_event_synchronize(zrt_event *e)
{
    cuda_event *ev = e->impl;
    ZRT_CUDA_CHECK(cudaEventSynchronize(ev->event));
    return ev->stream ? host_function_error(ev->stream) : ZRT_OK;
}

static zrt_status cuda_event_query(zrt_event *e, bool *done)
{
    cuda_event *ev = e->impl;
    cudaError_t err = cudaEventQuery(ev->event);
    *done = err == cudaSuccess;
    if (err != cudaSuccess && err != cudaErrorNotReady) return zrt_cuda_failed((int)err, "cudaEventQuery", __FILE__, __LINE__);
    return *done && ev->stream ? host_function_error(ev->stream) : ZRT_OK;
}

/* ---- copies, kernels, host functions ---------------------------------------------------------------- */

static zrt_status cuda_memcpy(zrt_stream *s, void *dst, const void *src, size_t bytes, zrt_copy_kind kind)
{
    static const enum cudaMemcpyKind kinds[] = {cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost,
                                                cudaMemcpyDeviceToDevice};
    ZRT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kinds[kind], native(s)));
    return ZRT_OK;
}

static zrt_status cuda_memset(zrt_stream *s, void *dst, int value, size_t bytes)
{
    ZRT_CUDA_CHECK(cudaMemsetAsync(dst, value, bytes, native(s)));
    return ZRT_OK;
}

static zrt_status cuda_cast(zrt_stream *s, void *dst, zrt_dtype dst_dtype, const void *src, zrt_dtype src_dtype,
                            size_t n, bool accumulate)
{
    ZRT_CUDA_CHECK(zrt_cuda_cast(native(s), dst, (int)dst_dtype, src, (int)src_dtype, n, accumulate));
    return ZRT_OK;
}

static zrt_status cuda_fill(zrt_stream *s, void *dst, zrt_dtype dtype, float value, size_t n)
{
    ZRT_CUDA_CHECK(zrt_cuda_fill(native(s), dst, (int)dtype, value, n));
    return ZRT_OK;
}

static zrt_status cuda_grad_stats(zrt_stream *s, const void *grads, zrt_dtype dtype, size_t n, float scale,
                                  float *stats)
{
    ZRT_CUDA_CHECK(zrt_cuda_grad_stats(native(s), grads, (int)dtype, n, scale, stats, ((cuda_stream *)s->impl)->partial, 0));
    return ZRT_OK;
}

/* The copy-down is the copy engine's (device or pinned host memory: unified
 * addressing tells which), then the statistics read the device copy; no
 * kernel writes mapped host memory. */
static zrt_status cuda_copy_stats(zrt_stream *s, void *dst, const void *src, zrt_dtype dtype, size_t n, float scale,
                                  float *stats)
{
    ZRT_CUDA_CHECK(cudaMemcpyAsync(dst, src, n * zrt_dtype_size(dtype), cudaMemcpyDefault, native(s)));
    return cuda_grad_stats(s, src, dtype, n, scale, stats);
}

static zrt_status cuda_sum(zrt_stream *s, const float *values, size_t n, size_t stride, float *out)
{
    ZRT_CUDA_CHECK(zrt_cuda_sum(native(s), values, n, stride, out));
    return ZRT_OK;
}

static zrt_status cuda_adam(zrt_stream *s, float *master, float *exp_avg, float *exp_avg_sq, const void *grads,
                            zrt_dtype grad_dtype, size_t n, const zrt_adam_hyper *h, float unscale, double max_norm,
                            const float *stats)
{
    ZRT_CUDA_CHECK(zrt_cuda_adam(native(s), master, exp_avg, exp_avg_sq, grads, (int)grad_dtype, n, *h, unscale, max_norm,
                         stats));
    return ZRT_OK;
}

static zrt_status cuda_adam_multi(zrt_stream *s, const zrt_adam_tensor *t, int n, int first, zrt_dtype grad_dtype,
                                  zrt_dtype param_dtype, const zrt_adam_hyper *h, float unscale, double max_norm,
                                  const float *stats, uint32_t sr_seed, uint32_t step)
{
    _Static_assert(sizeof(zrt_cuda_tensor) == sizeof(zrt_adam_tensor) && ZRT_CUDA_MULTI_MAX >= ZRT_ADAM_MULTI_MAX,
                   "the kernel's tensor table mirrors zrt_adam_tensor");
    ZRT_CUDA_CHECK(zrt_cuda_adam_multi(native(s), (const zrt_cuda_tensor *)t, n, first, (int)grad_dtype, (int)param_dtype, *h,
                               unscale, max_norm, stats, sr_seed, step));
    return ZRT_OK;
}

/* ---- timing marks (op_timer.c): events with timing ----------------------------------------------- */

static zrt_status cuda_mark_create(zrt_device *d, void **mark)
{
    ZRT_CUDA_CHECK(cudaSetDevice(dev_of(d)->index));
    ZRT_CUDA_CHECK(cudaEventCreate((cudaEvent_t *)mark));
    return ZRT_OK;
}

static void cuda_mark_destroy(void *mark)
{
    if (mark) cudaEventDestroy((cudaEvent_t)mark);
}

static zrt_status cuda_mark_record(void *mark, zrt_stream *s)
{
    ZRT_CUDA_CHECK(cudaEventRecord((cudaEvent_t)mark, native(s)));
    return ZRT_OK;
}

static zrt_status cuda_mark_elapsed(void *start, void *end, double *seconds)
{
    float ms = 0;
    ZRT_CUDA_CHECK(cudaEventSynchronize((cudaEvent_t)end));
    ZRT_CUDA_CHECK(cudaEventElapsedTime(&ms, (cudaEvent_t)start, (cudaEvent_t)end));
    *seconds = ms * 1e-3;
    return ZRT_OK;
}

typedef struct {
    zrt_status (*fn)(void *arg);
    cuda_stream *stream;
    _Alignas(16) unsigned char arg[];
} host_call;

static void CUDART_CB run_host_call(void *data)
{
    host_call *call = data;
    zrt_clear_error();
    zrt_status status = call->fn(call->arg);
    if (status != ZRT_OK) {
        pthread_mutex_lock(&call->stream->lock);
        if (call->stream->error == ZRT_OK) {
            call->stream->error = status;
            snprintf(call->stream->message, sizeof call->stream->message, "%s", zrt_last_error());
        }
        pthread_mutex_unlock(&call->stream->lock);
    }
    free(call);
}

static zrt_status cuda_launch_host(zrt_stream *s, zrt_status (*fn)(void *arg), const void *arg, size_t arg_bytes)
{
    host_call *call = malloc(sizeof *call + arg_bytes);
    if (!call) return zrt_set_error(ZRT_ERR_NOMEM, "device: out of memory for a host function");
    call->fn = fn;
    call->stream = s->impl;
    if (arg_bytes) memcpy(call->arg, arg, arg_bytes);
    cudaError_t err = cudaLaunchHostFunc(native(s), run_host_call, call);
    if (err != cudaSuccess) {
        free(call);
        return zrt_cuda_failed((int)err, "cudaLaunchHostFunc", __FILE__, __LINE__);
    }
    return ZRT_OK;
}

static const zrt_device_ops cuda_ops = {
    .init = cuda_init,
    .fini = cuda_fini,
    .alloc = cuda_alloc,
    .free = cuda_free,
    .host_alloc = cuda_host_alloc,
    .host_free = cuda_host_free,
    .read = cuda_read,
    .write = cuda_write,
    .stream_create = cuda_stream_create,
    .stream_destroy = cuda_stream_destroy,
    .stream_synchronize = cuda_stream_synchronize,
    .stream_query = cuda_stream_query,
    .stream_native = cuda_stream_native,
    .event_create = cuda_event_create,
    .event_destroy = cuda_event_destroy,
    .event_record = cuda_event_record,
    .stream_wait = cuda_stream_wait,
    .event_synchronize = cuda_event_synchronize,
    .event_query = cuda_event_query,
    .memcpy = cuda_memcpy,
    .memset = cuda_memset,
    .cast = cuda_cast,
    .fill = cuda_fill,
    .grad_stats = cuda_grad_stats,
    .copy_stats = cuda_copy_stats,
    .sum = cuda_sum,
    .adam = cuda_adam,
    .adam_multi = cuda_adam_multi,
    .launch_host = cuda_launch_host,
    .mark_create = cuda_mark_create,
    .mark_destroy = cuda_mark_destroy,
    .mark_record = cuda_mark_record,
    .mark_elapsed = cuda_mark_elapsed,
};

const zrt_device_ops *const zrt_device_cuda_ops = &cuda_ops;

#endif
