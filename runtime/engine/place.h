/* place.h: where the optimizer runs and its fp32 state (master, exp_avg,
 * exp_avg_sq of the own range) lives -- one ops table, three backends:
 *   device (place_device.c): device memory, Adam as one multi-tensor kernel
 *          on the compute stream (offload_optimizer: none);
 *   cpu    (place_cpu.c):    pinned host memory, the CPU optimizer;
 *   nvme   (place_nvme.c):   swap files streamed in sub-groups through the
 *          same CPU optimizer (place_host.c is that shared pipeline).
 *
 * Why a table: the step (engine.c) calls a backend at fixed points --
 * gradients ready, statistics, the step (before and after the step's one
 * host wait), publish, checkpoint state in/out -- and never asks which one it
 * has. A backend calls down (device, kernels, swap, the parameter store) and
 * never back up into the engine: what it needs is the place_env given at
 * create and the arguments of each call. Each backend frees what it made.
 *
 * Partial offload (offload_optimizer.ratio < 1: part of every shard's state
 * on the device, the rest on the CPU) would be a backend composing device and
 * cpu here; config validation refuses the ratio, as it is not implemented.
 */
#ifndef ZRT_PLACE_H
#define ZRT_PLACE_H

#include "zrt.h"
#include "zrt/internal/kernels.h" /* zrt_adam_args, the device kernels */
#include "zrt/internal/offload.h" /* zrt_swap, the CPU optimizer, the pinned pool */
#include "zrt/internal/error.h"   /* zrt_first_error */

enum { STATE_MASTER, STATE_EXP_AVG, STATE_EXP_AVG_SQ, STATE_PARTS };

/* A unit's optimizer range, as the stage lays it out (stage_policy). */
typedef struct {
    int64_t begin, count; /* elements [begin, begin + count) of the unit's padded flat buffer */
    int64_t shard;        /* elements of the own shard (the whole range in stages 1-3) */
    void *grads;          /* D: the range's gradients (the device Adam reads them) */
    void *shard_grads;    /* D: the own shard's gradients (statistics; what goes down) */
    void *params;         /* D: the range's compute copy; NULL where the parameter store holds it */
} place_unit;

typedef struct zrt_param_store zrt_param_store;

/* What a backend is given by the engine at create; it keeps the pointer. */
typedef struct {
    const zrt_config *cfg;
    zrt_device *device;
    zrt_stream *compute, *comm; /* the engine's streams */
    zrt_event *mark;            /* recorded on one stream and waited on by another at once */
    int rank, world, n_units;
    zrt_dtype dtype;
    size_t es;
    const place_unit *units;    /* n_units, filled before create */
    float *unit_stats;          /* device: 2 fp32 per unit: its sum of squares, its non-finite flag */
    float *totals;              /* device: the sums of those over units (2 fp32) */
    zrt_param_store *params;    /* offload_param's store (the CPU optimizer writes into it), or NULL */
    char *warnings;             /* the engine's warnings (zrt_warnings_add) */
    size_t warnings_size;
} place_env;

/* One step's arguments. */
typedef struct {
    zrt_adam_args adam;
    double scale;  /* the loss scale the gradients carry */
    bool overflow; /* after the wait: the reduced statistics say skip */
    float clip;    /* after the wait: the clip factor of the global norm */
} place_step;

/* `wrote` returns the stream that wrote the compute copies of the own ranges
 * (the engine gathers them from there), or NULL when none changed. */
typedef struct {
    const char *name;
    bool grads_leave_device;  /* each unit's reduced gradients go to the host as soon as they are final */
    const char *agree_step;   /* non-NULL: the host step can fail on one rank (I/O); every rank learns it before a gather */
    zrt_status (*create)(const place_env *env, void **out); /* *out is set even on failure (destroy it) */
    zrt_status (*begin_step)(void *self);                   /* nvme: the first reads, during backward */
    zrt_status (*grads_ready)(void *self, int unit, const void *grads, zrt_event *ready, double scale);
    /* `stream` waits until the gradients grads_ready last handed in for `unit` have been read (the engine
     * then reuses that buffer); a backend whose gradients do not leave the device never gets the call. */
    zrt_status (*grads_taken)(void *self, int unit, zrt_stream *stream);
    zrt_status (*statistics)(void *self, double scale);     /* totals written; comm ordered after them */
    zrt_status (*device_step)(void *self, const place_step *s, zrt_stream **wrote); /* before the host wait */
    zrt_status (*host_step)(void *self, const place_step *s, zrt_stream **wrote);   /* after it */
    zrt_status (*publish)(void *self, zrt_stream **wrote);  /* compute copies from the masters */
    /* Host access to elements [begin, begin + n) of the range's part (STATE_*), outside a step. */
    zrt_status (*state_io)(void *self, int unit, int part, size_t begin, size_t n, void *host, bool write);
    zrt_status (*synchronize)(void *self);
    void (*destroy)(void *self);
} place_ops;

extern const place_ops zrt_place_device, zrt_place_cpu, zrt_place_nvme;

/* `to` waits for what `from` has enqueued so far. */
static inline zrt_status place_order(zrt_event *mark, zrt_stream *from, zrt_stream *to)
{
    ZRT_CHECK(zrt_event_record(mark, from));
    return zrt_stream_wait_event(to, mark);
}

/* ---- place_files.c: what the backends and the parameter store share ----------------------- */
/* Adds a line to a warnings buffer (the engine's: zrt_engine_warnings). */
void zrt_warnings_add(char *warnings, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A swapper of `bytes` over c's nvme paths (made as DeepSpeed does; a crashed
 * run's swap files removed and named in the warnings), its files named after
 * `what` and the rank ("optimizer-rank0"), aio's block size and queue depth. */
zrt_status zrt_place_open_swap(const place_env *env, const zrt_offload_config *c, const char *what, size_t bytes,
                               zrt_swap **out);
/* Makes the directories and removes a crashed run's swap files from them. */
zrt_status zrt_place_swap_dirs(const place_env *env, const char *const *paths, int n_paths);
/* estimate.c: the nvme sub-groups' pinned slots and size (the engine and zrt_engine_estimate share it). */
void zrt_engine_nvme_slots(const zrt_config *cfg, int64_t widest_shard, int *n_slots, size_t *group_elements,
                           size_t *slot_bytes);

/* ---- param_store.c: what the CPU optimizer calls (offload_param) ---------------------------
 * begin_write gives the host memory where a unit's new compute copy goes;
 * end_write queues it (NVMe); flush waits for every write (before the gathers). */
zrt_status zrt_param_store_begin_write(zrt_param_store *p, int unit, void **host);
zrt_status zrt_param_store_end_write(zrt_param_store *p, int unit);
zrt_status zrt_param_store_flush(zrt_param_store *p);
bool zrt_param_store_holds(const zrt_param_store *p, int unit);

#endif
