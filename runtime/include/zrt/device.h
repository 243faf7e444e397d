/* zrt/device.h: zrt_device, where every buffer the engine and the models
 * touch lives: device memory charged to a category, pinned host memory,
 * streams and events, asynchronous copies and host functions in stream
 * order. The few kernels the engine needs (casts, gradient statistics, Adam,
 * fill) are the internal tier's (zrt/internal/kernels.h).
 *
 * Why a device layer (DeepSpeed's accelerator, NCCL's transports): the same
 * engine runs on a GPU (the cuda backend) and on the CPU (the cpu backend),
 * and the CPU run is a real test of the GPU's ordering. The cpu backend's
 * device memory is its own allocations and each stream is a worker thread
 * that runs its queue in order, so a missing wait is a real race. Its check
 * mode (ZRT_DEVICE_CHECK=1, on in the tests) fills never-written and freed
 * memory with NaN bytes (0xff), delays stream work by small random amounts,
 * and follows every access through vector clocks: an operation that touches
 * a buffer written (or still read) by another stream it has not waited for,
 * or a host read of a buffer whose writing stream was not synchronized, fails
 * with an error naming the buffer and both sides. The checks are logical
 * (at enqueue time), so they fire on every run, not only when timing loses.
 *
 * Contracts, for every call below:
 *  - Work on a stream runs in the order it was enqueued; work on different
 *    streams is unordered unless an event orders it (record on one, wait on
 *    the other), as in CUDA. An event wait waits for the event's latest
 *    record at the time of the wait call; an event never recorded is done.
 *  - A stream whose work failed stays failed: later work on it is skipped
 *    and synchronize returns the first error (with its message).
 *  - "Device buffer" means memory from zrt_device_alloc (or inside it);
 *    kernels take only device buffers, copies take the side their kind says.
 *  - Buffers are not zeroed; zrt_memset_async or a kernel writes them first.
 */
#ifndef ZRT_DEVICE_H
#define ZRT_DEVICE_H

#include "zrt/base.h"
#include "zrt/config.h"
#include "zrt/mem.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct zrt_device zrt_device;
typedef struct zrt_stream zrt_stream;
typedef struct zrt_event zrt_event;

/* ---- the device ---------------------------------------------------------- */

typedef struct {
    zrt_device_kind kind; /* ZRT_DEVICE_CPU or ZRT_DEVICE_CUDA */
    int index;            /* cuda: the device ordinal */
    int check;            /* 1 on, 0 off, -1: from $ZRT_DEVICE_CHECK (the default) */
    uint64_t seed;        /* the check mode's delays */
} zrt_device_options;

/* kind cpu, index 0, check -1, seed 1. */
void zrt_device_options_init(zrt_device_options *options);

/* The device a config asks for: use_cpu: true -> cpu; zrt.device cpu or
 * cuda -> that; otherwise cuda when this build has CUDA and a GPU is
 * visible, else cpu -- and then *why (when why_size > 0) gets one line
 * saying why, naming the setting as the config file spells it (use_cpu in a
 * YAML, "zrt": {"device"} in a DeepSpeed JSON). zrt.device cuda with no GPU:
 * cuda, and *why is the error to report if the device cannot be made. ""
 * in every other case. */
zrt_device_kind zrt_device_select(const zrt_config *cfg, char *why, size_t why_size);

/* ZRT_ERR_UNSUPPORTED naming the reason for cuda without a GPU or in a build
 * without CUDA. */
zrt_status zrt_device_create(const zrt_device_options *options, zrt_device **out);
/* Synchronizes and frees every stream, event and buffer still there. NULL is fine. */
void zrt_device_destroy(zrt_device *device);
/* "cpu", "cuda:0 (NVIDIA H200)". */
const char *zrt_device_name(const zrt_device *device);
zrt_device_kind zrt_device_kind_of(const zrt_device *device);
bool zrt_device_check_mode(const zrt_device *device);
/* Bytes by place and category, now and at peak. */
const zrt_mem_stats *zrt_device_mem(const zrt_device *device);
/* Waits for every stream; the first stream error, if any. */
zrt_status zrt_device_synchronize(zrt_device *device);
/* What the device had to do differently from what was asked, one line each,
 * each said once ("" if nothing): pinned memory that could not be locked
 * (RLIMIT_MEMLOCK) and is pageable instead. The library does not print it. */
const char *zrt_device_warnings(const zrt_device *device);

/* How many devices of a kind this process can open: cpu 1; cuda the GPUs
 * visible (0 in a build without CUDA or without a driver). */
int zrt_device_count(zrt_device_kind kind);

/* "cpu", "cuda", "auto". */
const char *zrt_device_kind_name(zrt_device_kind kind);

/* ---- memory ---------------------------------------------------------------
 * name (copied, up to 47 bytes) is what check-mode errors call the buffer.
 * on: NULL for memory usable on every stream at once; else the allocation
 * (free) is ordered on that stream -- free releases the memory once the work
 * enqueued on `on` before it is done (the cuda backend's stream-ordered
 * pool: no cudaMalloc or cudaFree in a step). */

/* 64-byte aligned device memory; ZRT_ERR_NOMEM naming the buffer. */
zrt_status zrt_device_alloc(zrt_device *device, zrt_mem_category category, size_t bytes, const char *name,
                            zrt_stream *on, void **out);
/* NULL is fine. With on == NULL the caller guarantees no stream still uses it. */
zrt_status zrt_device_free(zrt_device *device, void *ptr, zrt_stream *on);
/* Charges the buffer's bytes to another category (a buffer changing role). */
zrt_status zrt_device_recharge(zrt_device *device, void *ptr, zrt_mem_category category);
/* The allocation containing ptr: its base (may be NULL), size and name. */
zrt_status zrt_device_lookup(const zrt_device *device, const void *ptr, void **base, size_t *bytes,
                             const char **name);

/* Pinned host memory, charged to the host place, sized exactly (pages):
 * the cpu backend maps and mlocks it (falling back to pageable memory with
 * one warning naming RLIMIT_MEMLOCK when the lock is refused), the cuda
 * backend registers it (cudaHostRegister, mapped: kernels may write it, and
 * io_uring may register it too). The host reads and writes it directly. */
zrt_status zrt_host_alloc(zrt_device *device, zrt_mem_category category, size_t bytes, const char *name, void **out);
void zrt_host_free(zrt_device *device, void *ptr);

/* Synchronous host access to device memory: the copy has completed when the
 * call returns (the cuda backend copies on a stream of its own and
 * synchronizes it -- never the legacy default stream, never a DMA still in
 * flight from pageable memory), so work enqueued afterwards on any stream
 * sees the bytes. It is not ordered with the device's streams: the caller
 * must have synchronized the streams that wrote (for write: that read or
 * wrote) the buffer -- the check mode reports it otherwise, naming buffer
 * and stream, on every backend. */
zrt_status zrt_device_read(zrt_device *device, void *host_dst, const void *device_src, size_t bytes);
zrt_status zrt_device_write(zrt_device *device, void *device_dst, const void *host_src, size_t bytes);

/* ---- streams and events -------------------------------------------------- */

/* name (up to 31 bytes) names the stream in check-mode errors. */
zrt_status zrt_stream_create(zrt_device *device, const char *name, zrt_stream **out);
/* Waits for its work, then frees it. NULL is fine. */
void zrt_stream_destroy(zrt_stream *stream);
/* Blocks until everything enqueued so far has run; the stream's error. */
zrt_status zrt_stream_synchronize(zrt_stream *stream);
/* *idle = everything enqueued so far has run; the stream's error. */
zrt_status zrt_stream_query(zrt_stream *stream, bool *idle);
const char *zrt_stream_name(const zrt_stream *stream);
zrt_device *zrt_stream_device(const zrt_stream *stream);
/* The backend's own handle (cudaStream_t on cuda; NULL on cpu), for work
 * enqueued by other libraries -- declare its buffers with zrt_stream_track. */
void *zrt_stream_native(zrt_stream *stream);

zrt_status zrt_event_create(zrt_device *device, const char *name, zrt_event **out);
void zrt_event_destroy(zrt_event *event);
/* Marks the point reached by the work enqueued on stream so far. */
zrt_status zrt_event_record(zrt_event *event, zrt_stream *stream);
/* Later work on stream waits until the event's latest record has passed. */
zrt_status zrt_stream_wait_event(zrt_stream *stream, zrt_event *event);
/* Blocks the host until the event's latest record has passed; that stream's
 * error (a failed host function's too: the step waits on events). */
zrt_status zrt_event_synchronize(zrt_event *event);
zrt_status zrt_event_query(zrt_event *event, bool *done);

/* ---- copies ---------------------------------------------------------------- */

typedef enum { ZRT_COPY_H2D, ZRT_COPY_D2H, ZRT_COPY_D2D } zrt_copy_kind;

/* The host side of H2D and D2H must stay valid (and, for D2H, unread) until
 * the copy has run: pinned memory and an event or a synchronize. */
zrt_status zrt_memcpy_async(zrt_stream *stream, void *dst, const void *src, size_t bytes, zrt_copy_kind kind);
/* Sets bytes of a device buffer to the byte value. */
zrt_status zrt_memset_async(zrt_stream *stream, void *dst, int value, size_t bytes);

/* ---- host functions in stream order ---------------------------------------- */

typedef enum { ZRT_ACCESS_READ = 1, ZRT_ACCESS_WRITE = 2, ZRT_ACCESS_READ_WRITE = 3 } zrt_access_mode;

/* A device buffer range some work reads or writes, for the check mode. */
typedef struct {
    const void *ptr;
    size_t bytes;
    zrt_access_mode mode;
} zrt_access;

#define ZRT_LAUNCH_ARG_MAX 512

/* Runs fn(copy of arg) in stream order, on the cpu backend's stream thread
 * (a CUDA host function on cuda: it must not call CUDA). arg_bytes <=
 * ZRT_LAUNCH_ARG_MAX. what names the work in check-mode errors ("mlp
 * forward"); access lists the device buffers fn reads and writes (buffers
 * only this stream ever touches may be left out). An error fn returns fails
 * the stream with fn's zrt_last_error() message. This is how the cpu
 * backend's models and the host comm backend run on streams. */
zrt_status zrt_stream_launch_host(zrt_stream *stream, const char *what, zrt_status (*fn)(void *arg), const void *arg,
                                  size_t arg_bytes, const zrt_access *access, int n_access);
/* Declares, for the check mode, the buffers of work (named what) enqueued
 * on the native stream by other code (NCCL, cuBLAS) at this point of the
 * stream's order; a hazard fails here. A no-op outside check mode. */
zrt_status zrt_stream_track(zrt_stream *stream, const char *what, const zrt_access *access, int n_access);

#ifdef __cplusplus
}
#endif
#endif
