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
 * that fails is kept with its stream and returned by synchronize.
 * Built only where SCons found CUDA; elsewhere the backend is absent and
 * zrt_device_cuda_count says why.
 */
#include "device.h"

#ifndef ZRT_HAVE_CUDA

const zrt_device_ops *const zrt_device_cuda_ops = NULL;

int zrt_device_cuda_count(const char **why)
{
    if (why) *why = "this zrt was built without CUDA (see the CUDA: line of the build)";
    return 0;
}

#else

#include "cuda_kernels.h"

#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int index;
    cudaStream_t setup; /* allocations and frees not ordered on a stream of the caller's */
} cuda_device;

typedef struct {
    cudaStream_t stream;
    pthread_mutex_t lock;
    zrt_status error;   /* the first failed host function */
    char message[1024];
} cuda_stream;

static zrt_status cuda_failed(cudaError_t err, const char *call, const char *file, int line)
{
    zrt_status status = err == cudaErrorMemoryAllocation ? ZRT_ERR_NOMEM : ZRT_ERR_IO;
    return zrt_set_error(status, "cuda: %s failed: %s (%s:%d)", call, cudaGetErrorString(err), file, line);
}

/* Checks a CUDA call; on failure returns a status naming it. */
#define CU(call)                                                                   \
    do {                                                                           \
        cudaError_t cu_err_ = (call);                                              \
        if (cu_err_ != cudaSuccess) return cuda_failed(cu_err_, #call, __FILE__, __LINE__); \
    } while (0)

/* The same for the kernel launchers, which return a cudaError_t as an int. */
#define KERNEL(call) CU((cudaError_t)(call))

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
    CU(cudaSetDevice(cd->index));
    CU(cudaGetDeviceProperties(&prop, cd->index));
    snprintf(d->name, sizeof d->name, "cuda:%d (%s)", cd->index, prop.name);
    cudaMemPool_t pool;
    CU(cudaDeviceGetDefaultMemPool(&pool, cd->index));
    uint64_t keep_all = UINT64_MAX;
    CU(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep_all));
    CU(cudaStreamCreateWithFlags(&cd->setup, cudaStreamNonBlocking));
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
    CU(cudaSetDevice(cd->index));
    CU(cudaMallocAsync(out, bytes ? bytes : 1, stream));
    if (d->check) CU(cudaMemsetAsync(*out, ZRT_POISON_BYTE, bytes, stream));
    if (!on) CU(cudaStreamSynchronize(stream)); /* usable on every stream */
    return ZRT_OK;
}

static zrt_status cuda_free(zrt_device *d, void *ptr, size_t bytes, zrt_stream *on)
{
    cudaStream_t stream = on ? native(on) : dev_of(d)->setup;
    if (d->check) CU(cudaMemsetAsync(ptr, ZRT_POISON_BYTE, bytes, stream));
    CU(cudaFreeAsync(ptr, stream));
    return ZRT_OK;
}

static zrt_status cuda_host_alloc(zrt_device *d, size_t bytes, void **out)
{
    (void)d;
    size_t page = 4096, rounded = (bytes + page - 1) / page * page;
    if (posix_memalign(out, page, rounded ? rounded : page) != 0) return zrt_set_error(ZRT_ERR_NOMEM, "out of memory");
    cudaError_t err = cudaHostRegister(*out, rounded ? rounded : page, cudaHostRegisterMapped | cudaHostRegisterPortable);
    if (err != cudaSuccess) {
        free(*out);
        return cuda_failed(err, "cudaHostRegister", __FILE__, __LINE__);
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

static zrt_status cuda_read(zrt_device *d, void *host, const void *src, size_t bytes)
{
    (void)d;
    CU(cudaMemcpy(host, src, bytes, cudaMemcpyDeviceToHost));
    return ZRT_OK;
}

static zrt_status cuda_write(zrt_device *d, void *dst, const void *host, size_t bytes)
{
    (void)d;
    CU(cudaMemcpy(dst, host, bytes, cudaMemcpyHostToDevice));
    return ZRT_OK;
}

/* ---- streams and events ------------------------------------------------------------------------ */

static zrt_status cuda_stream_create(zrt_stream *s)
{
    cuda_stream *cs = calloc(1, sizeof *cs);
    if (!cs) return zrt_set_error(ZRT_ERR_NOMEM, "device: out of memory for a stream");
    pthread_mutex_init(&cs->lock, NULL);
    cudaError_t err = cudaSetDevice(dev_of(s->device)->index);
    if (err == cudaSuccess) err = cudaStreamCreateWithFlags(&cs->stream, cudaStreamNonBlocking);
    if (err != cudaSuccess) {
        pthread_mutex_destroy(&cs->lock);
        free(cs);
        return cuda_failed(err, "cudaStreamCreateWithFlags", __FILE__, __LINE__);
    }
    s->impl = cs;
    return ZRT_OK;
}

static void cuda_stream_destroy(zrt_stream *s)
{
    cuda_stream *cs = s->impl;
    cudaStreamSynchronize(cs->stream);
    cudaStreamDestroy(cs->stream);
    pthread_mutex_destroy(&cs->lock);
    free(cs);
}

static zrt_status host_function_error(cuda_stream *cs)
{
    pthread_mutex_lock(&cs->lock);
    zrt_status status = cs->error;
    char message[sizeof cs->message];
    snprintf(message, sizeof message, "%s", cs->message);
    pthread_mutex_unlock(&cs->lock);
    return status == ZRT_OK ? ZRT_OK : zrt_set_error(status, "%s", message);
}

static zrt_status cuda_stream_synchronize(zrt_stream *s)
{
    CU(cudaStreamSynchronize(native(s)));
    return host_function_error(s->impl);
}

static zrt_status cuda_stream_query(zrt_stream *s, bool *idle)
{
    cudaError_t err = cudaStreamQuery(native(s));
    *idle = err == cudaSuccess;
    if (err != cudaSuccess && err != cudaErrorNotReady) return cuda_failed(err, "cudaStreamQuery", __FILE__, __LINE__);
    return host_function_error(s->impl);
}

static void *cuda_stream_native(zrt_stream *s) { return native(s); }

static zrt_status cuda_event_create(zrt_event *e)
{
    cudaEvent_t *ev = calloc(1, sizeof *ev);
    if (!ev) return zrt_set_error(ZRT_ERR_NOMEM, "device: out of memory for an event");
    cudaError_t err = cudaEventCreateWithFlags(ev, cudaEventDisableTiming);
    if (err != cudaSuccess) {
        free(ev);
        return cuda_failed(err, "cudaEventCreateWithFlags", __FILE__, __LINE__);
    }
    e->impl = ev;
    return ZRT_OK;
}

static void cuda_event_destroy(zrt_event *e)
{
    cudaEventDestroy(*(cudaEvent_t *)e->impl);
    free(e->impl);
}

static zrt_status cuda_event_record(zrt_event *e, zrt_stream *s)
{
    CU(cudaEventRecord(*(cudaEvent_t *)e->impl, native(s)));
    return ZRT_OK;
}

static zrt_status cuda_stream_wait(zrt_stream *s, zrt_event *e)
{
    CU(cudaStreamWaitEvent(native(s), *(cudaEvent_t *)e->impl, 0));
    return ZRT_OK;
}

static zrt_status cuda_event_synchronize(zrt_event *e)
{
    CU(cudaEventSynchronize(*(cudaEvent_t *)e->impl));
    return ZRT_OK;
}

static zrt_status cuda_event_query(zrt_event *e, bool *done)
{
    cudaError_t err = cudaEventQuery(*(cudaEvent_t *)e->impl);
    *done = err == cudaSuccess;
    if (err != cudaSuccess && err != cudaErrorNotReady) return cuda_failed(err, "cudaEventQuery", __FILE__, __LINE__);
    return ZRT_OK;
}

/* ---- copies, kernels, host functions ---------------------------------------------------------------- */

static zrt_status cuda_memcpy(zrt_stream *s, void *dst, const void *src, size_t bytes, zrt_copy_kind kind)
{
    static const enum cudaMemcpyKind kinds[] = {cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost,
                                                cudaMemcpyDeviceToDevice};
    CU(cudaMemcpyAsync(dst, src, bytes, kinds[kind], native(s)));
    return ZRT_OK;
}

static zrt_status cuda_memset(zrt_stream *s, void *dst, int value, size_t bytes)
{
    CU(cudaMemsetAsync(dst, value, bytes, native(s)));
    return ZRT_OK;
}

static zrt_status cuda_cast(zrt_stream *s, void *dst, zrt_dtype dst_dtype, const void *src, zrt_dtype src_dtype,
                            size_t n, bool accumulate)
{
    KERNEL(zrt_cuda_cast(native(s), dst, (int)dst_dtype, src, (int)src_dtype, n, accumulate));
    return ZRT_OK;
}

static zrt_status cuda_fill(zrt_stream *s, void *dst, zrt_dtype dtype, float value, size_t n)
{
    KERNEL(zrt_cuda_fill(native(s), dst, (int)dtype, value, n));
    return ZRT_OK;
}

static zrt_status cuda_grad_stats(zrt_stream *s, const void *grads, zrt_dtype dtype, size_t n, float scale,
                                  float *stats)
{
    KERNEL(zrt_cuda_grad_stats(native(s), grads, (int)dtype, n, scale, stats));
    return ZRT_OK;
}

static zrt_status cuda_copy_stats(zrt_stream *s, void *dst, const void *src, zrt_dtype dtype, size_t n, float scale,
                                  float *stats)
{
    KERNEL(zrt_cuda_copy_stats(native(s), dst, src, (int)dtype, n, scale, stats));
    return ZRT_OK;
}

static zrt_status cuda_sum(zrt_stream *s, const float *values, size_t n, size_t stride, float *out)
{
    KERNEL(zrt_cuda_sum(native(s), values, n, stride, out));
    return ZRT_OK;
}

static zrt_status cuda_adam(zrt_stream *s, float *master, float *exp_avg, float *exp_avg_sq, const void *grads,
                            zrt_dtype grad_dtype, size_t n, const zrt_adam_hyper *h, float unscale, double max_norm,
                            const float *stats)
{
    KERNEL(zrt_cuda_adam(native(s), master, exp_avg, exp_avg_sq, grads, (int)grad_dtype, n, *h, unscale, max_norm,
                         stats));
    return ZRT_OK;
}

static zrt_status cuda_adam_multi(zrt_stream *s, const zrt_adam_tensor *t, int n, int first, zrt_dtype grad_dtype,
                                  zrt_dtype param_dtype, const zrt_adam_hyper *h, float unscale, double max_norm,
                                  const float *stats, uint32_t sr_seed, uint32_t step)
{
    _Static_assert(sizeof(zrt_cuda_tensor) == sizeof(zrt_adam_tensor) && ZRT_CUDA_MULTI_MAX >= ZRT_ADAM_MULTI_MAX,
                   "the kernel's tensor table mirrors zrt_adam_tensor");
    KERNEL(zrt_cuda_adam_multi(native(s), (const zrt_cuda_tensor *)t, n, first, (int)grad_dtype, (int)param_dtype, *h,
                               unscale, max_norm, stats, sr_seed, step));
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
        return cuda_failed(err, "cudaLaunchHostFunc", __FILE__, __LINE__);
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
};

const zrt_device_ops *const zrt_device_cuda_ops = &cuda_ops;

#endif
