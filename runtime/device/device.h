/* device.h: what the device layer's files share: the backend ops table (one
 * per backend: cpu in device_cpu.c, cuda in device_cuda.c), the structs
 * behind zrt_device, zrt_stream and zrt_event, the allocation side table
 * (mem.c) and the check mode's tracker (device_check.c). Private to device/.
 *
 * Why this split: device.c checks arguments, charges memory and asks the
 * tracker before it calls a backend, so a backend only moves bytes and runs
 * kernels -- the same signature for every backend, as the comm backends.
 * Invariants: every live allocation is one row of the table, sorted by base;
 * a backend never sees an access the tracker refused.
 */
#ifndef ZRT_DEVICE_PRIVATE_H
#define ZRT_DEVICE_PRIVATE_H

#include "zrt.h"
#include "zrt/internal/kernels.h"
#include "zrt/device.h"
#include "zrt/internal/offload.h" /* zrt_cpu_adam_hyper: the cpu backend's optimizer jobs */

#include "optim.h"

#include <pthread.h>

/* Streams one device can have at a time (slot 0 is the host). */
#define ZRT_MAX_STREAMS 32
#define ZRT_NAME_LEN 48
/* The byte check mode fills never-written and freed memory with: NaN as fp32, bf16 and fp16. */
#define ZRT_POISON_BYTE 0xff

/* ---- the side table (mem.c) ------------------------------------------------------ */

/* One allocation, and what the tracker knows of it: the last write (stream
 * slot and that stream's clock) and, since then, each stream's last read. */
typedef struct {
    char *base;
    size_t bytes;
    zrt_mem_category category;
    zrt_mem_place place;
    char name[ZRT_NAME_LEN];
    bool written;
    int writer;                           /* stream slot, 0 = host */
    uint64_t write_time;
    uint64_t read_time[ZRT_MAX_STREAMS];  /* 0 = no read since the write */
    int pending;                          /* host work writing it, begun and not yet ended (host_work.h) */
} zrt_mem_block;

typedef struct {
    zrt_mem_block *blocks; /* sorted by base */
    size_t n, cap;
    zrt_mem_stats stats;
} zrt_mem_table;

zrt_status zrt_mem_table_add(zrt_mem_table *t, void *base, size_t bytes, zrt_mem_category c, zrt_mem_place p,
                             const char *name);
/* The block containing [ptr, ptr + bytes), or NULL. */
zrt_mem_block *zrt_mem_table_find(const zrt_mem_table *t, const void *ptr, size_t bytes);
/* The block starting exactly at ptr, or NULL. */
zrt_mem_block *zrt_mem_table_exact(const zrt_mem_table *t, const void *ptr);
void zrt_mem_table_remove(zrt_mem_table *t, zrt_mem_block *b);
/* The same for a free enqueued on a stream: the bytes stay in stats.all
 * (as `freeing`) until the backend says they are given back (zrt_device_freed). */
void zrt_mem_table_remove_deferred(zrt_mem_table *t, zrt_mem_block *b);
/* The backend gave back `bytes` of a stream-ordered free (any thread). */
void zrt_device_freed(zrt_device *d, size_t bytes);
void zrt_mem_table_recharge(zrt_mem_table *t, zrt_mem_block *b, zrt_mem_category c);
void zrt_mem_table_fini(zrt_mem_table *t);

/* ---- the structs behind the handles -------------------------------------------------- */

typedef struct zrt_device_ops zrt_device_ops;

struct zrt_device {
    const zrt_device_ops *ops;
    void *impl;                 /* the backend's */
    zrt_device_kind kind;
    char name[320];             /* "cpu", "cuda:0 (NVIDIA H200)" */
    bool check;
    uint64_t seed;
    pthread_mutex_t lock;       /* the table, the tracker and the stream slots */
    zrt_mem_table table;
    zrt_stream *streams[ZRT_MAX_STREAMS]; /* by slot; [0] unused (the host) */
    zrt_event **events;         /* live events, for destroy */
    size_t n_events, cap_events;
    uint64_t host_clock[ZRT_MAX_STREAMS]; /* what the host has waited for, per stream slot */
    char warnings[2048];        /* zrt_device_warnings */
    zrt_device *next_checked;   /* the registry of check-mode devices (host work, device.c) */
    struct zrt_op_timer *timer; /* op timing (op_timer.c), NULL when off */
};

/* Adds a line to the device's warnings unless it is there already. */
void zrt_device_warn(zrt_device *d, const char *line);

struct zrt_stream {
    zrt_device *device;
    void *impl;
    char name[32];
    int slot;
    uint64_t clock[ZRT_MAX_STREAMS];      /* vector clock: what this stream's next op follows */
};

struct zrt_event {
    zrt_device *device;
    void *impl;
    char name[32];
    bool recorded;
    char stream_name[32];                 /* of the latest record */
    uint64_t clock[ZRT_MAX_STREAMS];      /* the recording stream's clock then */
};

/* ---- the backend ops table ------------------------------------------------------------
 * Arguments arrive checked (non-NULL, sizes in range, dtypes valid); the
 * backend sets the error message on failure. Kernels get zrt_adam_hyper
 * (kernels/optim.h) made from zrt_adam_args once, in device.c. */
struct zrt_device_ops {
    zrt_status (*init)(zrt_device *d, const zrt_device_options *o);
    void (*fini)(zrt_device *d);
    zrt_status (*alloc)(zrt_device *d, size_t bytes, zrt_stream *on, void **out);
    /* on: stream-ordered; the backend calls zrt_device_freed(d, bytes) once the memory is given back. */
    zrt_status (*free)(zrt_device *d, void *ptr, size_t bytes, zrt_stream *on);
    zrt_status (*host_alloc)(zrt_device *d, size_t bytes, void **out);
    void (*host_free)(zrt_device *d, void *ptr, size_t bytes);
    zrt_status (*read)(zrt_device *d, void *host, const void *src, size_t bytes);
    zrt_status (*write)(zrt_device *d, void *dst, const void *host, size_t bytes);

    zrt_status (*stream_create)(zrt_stream *s);
    void (*stream_destroy)(zrt_stream *s);
    zrt_status (*stream_synchronize)(zrt_stream *s);
    zrt_status (*stream_query)(zrt_stream *s, bool *idle);
    void *(*stream_native)(zrt_stream *s);
    zrt_status (*event_create)(zrt_event *e);
    void (*event_destroy)(zrt_event *e);
    zrt_status (*event_record)(zrt_event *e, zrt_stream *s);
    zrt_status (*stream_wait)(zrt_stream *s, zrt_event *e);
    zrt_status (*event_synchronize)(zrt_event *e);
    zrt_status (*event_query)(zrt_event *e, bool *done);

    zrt_status (*memcpy)(zrt_stream *s, void *dst, const void *src, size_t bytes, zrt_copy_kind kind);
    zrt_status (*memset)(zrt_stream *s, void *dst, int value, size_t bytes);
    zrt_status (*cast)(zrt_stream *s, void *dst, zrt_dtype dst_dtype, const void *src, zrt_dtype src_dtype, size_t n,
                       bool accumulate);
    zrt_status (*fill)(zrt_stream *s, void *dst, zrt_dtype dtype, float value, size_t n);
    zrt_status (*grad_stats)(zrt_stream *s, const void *grads, zrt_dtype dtype, size_t n, float scale, float *stats);
    zrt_status (*copy_stats)(zrt_stream *s, void *dst, const void *src, zrt_dtype dtype, size_t n, float scale,
                             float *stats);
    zrt_status (*sum)(zrt_stream *s, const float *values, size_t n, size_t stride, float *out);
    zrt_status (*adam)(zrt_stream *s, float *master, float *exp_avg, float *exp_avg_sq, const void *grads,
                       zrt_dtype grad_dtype, size_t n, const zrt_adam_hyper *h, float unscale, double max_norm,
                       const float *stats);
    /* n <= ZRT_ADAM_MULTI_MAX; tensor numbers for the rounding's hash start at first. */
    zrt_status (*adam_multi)(zrt_stream *s, const zrt_adam_tensor *t, int n, int first, zrt_dtype grad_dtype,
                             zrt_dtype param_dtype, const zrt_adam_hyper *h, float unscale, double max_norm,
                             const float *stats, uint32_t sr_seed, uint32_t step);
    zrt_status (*launch_host)(zrt_stream *s, zrt_status (*fn)(void *arg), const void *arg, size_t arg_bytes);
    /* Timing marks (op_timer.c); NULL where the device cannot time its ops.
     * mark_elapsed waits for `end` and gives the seconds since `start`. */
    zrt_status (*mark_create)(zrt_device *d, void **mark);
    void (*mark_destroy)(void *mark);
    zrt_status (*mark_record)(void *mark, zrt_stream *s);
    zrt_status (*mark_elapsed)(void *start, void *end, double *seconds);
};

extern const zrt_device_ops zrt_device_cpu_ops;
/* NULL in builds without CUDA (zrt_device_cuda_unavailable says why). */
extern const zrt_device_ops *const zrt_device_cuda_ops;
/* Visible CUDA devices (0 without a GPU, a driver or CUDA in the build);
 * *why gets the reason then. */
int zrt_device_cuda_count(const char **why);

/* ---- the check mode's tracker (device_check.c), called with d->lock held ------------------- */

/* The block holding ptr..+bytes, or an error saying why there is none
 * (past the end of one, or no memory of this device). */
zrt_status zrt_track_find(zrt_device *d, const char *what, const void *ptr, size_t bytes, zrt_mem_block **out);
/* An operation enqueued on s touching accesses: advances s's clock and
 * checks every access against what s has waited for. */
zrt_status zrt_track_enqueue(zrt_stream *s, const char *what, const zrt_access *access, int n_access);
/* The host touching buffers now (zrt_device_read/write, free without a stream). */
zrt_status zrt_track_host(zrt_device *d, const char *what, const zrt_access *access, int n_access);
void zrt_track_record(zrt_event *e, zrt_stream *s);
void zrt_track_wait(zrt_stream *s, const zrt_event *e);
void zrt_track_host_waited(zrt_device *d, const uint64_t *clock);
/* Host work outside streams (host_work.h) on block b: check the access as
 * the host's; begin marks a write pending; end records it (if completed). */
zrt_status zrt_track_work_check(zrt_device *d, const char *what, const zrt_mem_block *b, zrt_access_mode mode);
void zrt_track_work_begin(zrt_device *d, zrt_mem_block *b, zrt_access_mode mode);
void zrt_track_work_end(zrt_device *d, zrt_mem_block *b, zrt_access_mode mode, bool completed);

#endif
