/* engine_internal.h: the engine's state, shared by engine.c (the step),
 * stage3.c (parameter residency: gather, prefetch, release) and
 * checkpoint.c. Private to engine/.
 *
 * Invariants: unit_state's buffers follow the layout of zrt/engine.h and are
 * all device memory; the optimizer range of a unit is [zrt_engine_opt_begin,
 * + opt_count) of its padded flat buffer (the whole buffer in stage 0, the
 * own shard otherwise). Work is enqueued on two streams: `compute` (casts,
 * the model, statistics, Adam) and `comm` (every collective); they meet only
 * through events -- `mark` for an ordering waited on at once, the per-unit
 * events for orderings waited on later.
 */
#ifndef ZRT_ENGINE_INTERNAL_H
#define ZRT_ENGINE_INTERNAL_H

#include "zrt.h"

/* The step's device scratch (fp32 slots), then 2 per unit. */
enum {
    SLOT_LOSS,     /* sum over micro batches of loss / accum; summed over ranks */
    SLOT_SQUARES,  /* sum of squares of the unscaled own gradients; summed over ranks */
    SLOT_NONFINITE,/* the number of units with an inf or NaN gradient; summed over ranks */
    SLOT_REDUCED,  /* the slots above are reduced together: 3 floats */
    SLOT_AGREE = 4,/* checkpoint agreement: failures summed over ranks */
    SLOT_UNITS = 8 /* unit u: [8 + 2u] its sum of squares, [8 + 2u + 1] its non-finite flag: filled
                    * by whichever stream has its gradients, summed in unit order, so the total has
                    * the same bits in every stage and offload mode */
};

typedef struct {
    int64_t numel, padded, shard;
    float *master, *exp_avg, *exp_avg_sq; /* fp32, the optimizer range */
    void *param_full;   /* D, padded: stages 0-2; stage 3 while gathered */
    void *param_shard;  /* D, shard: stage 3 */
    void *grad_full;    /* D, padded: stages 0-1 */
    void *grad_shard;   /* D, shard: stages 2-3 */
    void *grad_send;    /* D, padded: stages 2-3, the reduce_scatter input (pads zeroed once) */
    void *grad_recv;    /* D, shard: stages 2-3, its output */
    void *param_cache;  /* stage 3: a released unit's buffer, kept for the next gather */
    bool persistent;    /* stage 3: kept gathered */
    int first_op, last_op; /* the ops using this unit: forward order */
    float *grad_accum;  /* fp32, numel: units used by several ops (tied weights) */
    zrt_event *gathered;   /* comm: param_full holds the gathered unit */
    zrt_event *used;       /* compute: the latest read of param_full (before a gather reuses it) */
    zrt_event *reduced;    /* comm: grad_recv holds the reduced gradients (stages 2-3) */
    bool gather_pending;   /* `gathered` recorded and not yet waited for by compute */
    /* offload_optimizer: master, exp_avg and exp_avg_sq above are pinned host
     * memory (carved from one pool), and: */
    void *host_grads;      /* D, shard: the own gradients, copied down (pinned) */
    zrt_event *down;       /* d2h: host_grads holds this step's gradients */
    /* offload_param (param_store.c): the own shard is not on the device but in */
    bool params_offloaded; /* the store (then param_shard is NULL) */
    bool params_in_cpu;    /* pinned host memory at host_params (else NVMe at params_at) */
    void *host_params;
    size_t params_at;      /* byte offset in the host pool or the swap file */
    void *store_open;      /* offload.c: where the CPU optimizer writes its new copy (begin_write) */
} unit_state;

typedef struct zrt_param_store zrt_param_store;

typedef struct zrt_offload_state zrt_offload_state;

struct zrt_engine {
    zrt_config cfg;
    zrt_comm *comm;
    zrt_device *device;
    zrt_stream *compute, *comm_stream;
    zrt_event *mark;            /* recorded on one stream and waited on by the other at once */
    zrt_event *result_ready;    /* comm: the step result reached host_scratch */
    zrt_event *batch_copied;    /* compute: host_inputs/host_labels may be refilled */
    zrt_event *published;       /* compute: stage 3's param_shard hold this step's parameters */
    int rank, world, stage, n_units;
    zrt_dtype dtype;
    size_t es;
    zrt_model *model;
    unit_state *units;
    float *params_f32;   /* bf16/fp16: fp32 view of the unit in use (the widest padded unit); NULL in fp32 */
    float *grads_f32;    /* work: the widest padded unit */
    void *inputs;        /* the micro batch on the device, as the model takes it */
    int32_t *labels;
    void *host_inputs;   /* pinned: zrt_data_fill writes here, copied to inputs */
    int32_t *host_labels;
    float *scratch;      /* SLOT_UNITS + 2 * n_units fp32 on the device */
    float *host_scratch; /* SLOT_REDUCED fp32, pinned: the step result */
    int micro, accum;
    int64_t global_batch, step, adam_steps;
    zrt_loss_scaler scaler;
    char resumed_from[ZRT_PATH_MAX + 64]; /* the step directory zrt_engine_load read: checkpoint_keep never removes it */
    int64_t live_params, peak_live_params; /* stage 3, elements gathered */
    int64_t cached_params;                 /* stage 3, elements in param_cache buffers */
    bool inject_overflow;
    bool fault_skip_gather_wait;           /* ZRT_FAULT_SKIP_WAIT=gather: the check mode's test */
    zrt_offload_state *offload;            /* offload_optimizer: cpu or nvme (offload.c); NULL otherwise */
    zrt_param_store *params;               /* offload_param (param_store.c); NULL otherwise */
    char warnings[2048];                   /* zrt_engine_warnings */
};

int64_t zrt_engine_opt_begin(const zrt_engine *e, const unit_state *u);
int64_t zrt_engine_opt_count(const zrt_engine *e, const unit_state *u);
/* Where the optimizer range's compute copy lives (D): the padded buffer in
 * stage 0, the own shard of it in stages 1-2, the shard buffer in stage 3. */
void *zrt_engine_own_params(zrt_engine *e, unit_state *u);
/* Compute copies from the masters, gathered where the stage keeps them full. */
zrt_status zrt_engine_publish_params(zrt_engine *e);
/* Compute waits for the unit's pending gather, if any. */
zrt_status zrt_engine_wait_gathered(zrt_engine *e, unit_state *u);
/* `to` waits for what `from` has enqueued so far. */
zrt_status zrt_engine_order(zrt_engine *e, zrt_stream *from, zrt_stream *to);

/* stage3.c: the unit of op resident (gathered, waited for) before compute
 * uses it, prefetching the next units in direction dir (+1 forward, -1
 * backward); release gives it back once compute has enqueued its use. Both
 * are no-ops outside stage 3 and for persistent units. */
zrt_status zrt_stage3_fetch(zrt_engine *e, int op, int dir);
zrt_status zrt_stage3_release(zrt_engine *e, int unit);

/* A sum over ranks of one host value, through the device scratch (collectives
 * only see device buffers). */
zrt_status zrt_engine_sum_over_ranks(zrt_engine *e, float *value);
/* The unit's statistics slot (2 fp32 of the device scratch). */
float *zrt_engine_unit_stats(zrt_engine *e, int unit);
/* The step's Adam/AdamW constants (the step counted when it does not overflow). */
zrt_adam_args zrt_engine_adam_args(const zrt_engine *e, double lr);
/* Records `published` on the stream that wrote the compute copies, then
 * (stages 1-3) the gathers of what the stage keeps full, on comm. */
zrt_status zrt_engine_gather_published(zrt_engine *e, zrt_stream *wrote);
/* Host access to elements [begin, begin + n) of the optimizer range of a
 * unit's fp32 state, part 0 master, 1 exp_avg, 2 exp_avg_sq, wherever it
 * lives (device, pinned host memory, NVMe); outside a step. */
enum { STATE_MASTER, STATE_EXP_AVG, STATE_EXP_AVG_SQ, STATE_PARTS };
zrt_status zrt_engine_state_io(zrt_engine *e, int unit, int part, size_t begin, size_t n, void *host, bool write);
/* Every rank learns whether any rank failed (status); the first local error
 * is kept, the others get ZRT_ERR_PEER saying `what` failed elsewhere. */
zrt_status zrt_engine_agree(zrt_engine *e, zrt_status status, const char *what);
/* Adds a line to the engine's warnings (zrt_engine_warnings). */
void zrt_engine_warn(zrt_engine *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- estimate.c: the sizing rules the engine and zrt_engine_estimate share --------------- */
void zrt_engine_unit_layout(const zrt_config *cfg, int64_t numel, int world, int64_t *padded, int64_t *shard,
                            bool *persistent);
/* offload_param: whether a shard goes to host memory (counting it in *in_cpu) rather than NVMe. */
bool zrt_engine_param_in_cpu(const zrt_config *cfg, int64_t shard, int64_t *in_cpu);
/* offload_optimizer nvme: the pinned slots and the sub-group size. */
void zrt_engine_nvme_slots(const zrt_config *cfg, int64_t widest_shard, int *n_slots, size_t *group_elements,
                           size_t *slot_bytes);

/* ---- offload.c: offload_optimizer: cpu ----------------------------------------------------
 * The fp32 state of the own shard lives in pinned host memory; the own
 * gradients go down (d2h stream, with their statistics) as soon as they are
 * reduced; after the step's statistics the CPU optimizer (zrt/offload.h)
 * updates each unit and writes the compute copy into double-buffered pinned
 * tiles that go up on the h2d stream while it works on the next tile. */

/* Streams, the thread pool and the host pool; points every unit's master,
 * exp_avg, exp_avg_sq and host_grads into it. Units' sizes must be set. */
zrt_status zrt_offload_create(zrt_engine *e);
void zrt_offload_destroy(zrt_engine *e);
/* The unit's own gradients at `src` (device, D) go down once `ready` (an
 * event of another stream, may be NULL) has passed. */
zrt_status zrt_offload_grads_down(zrt_engine *e, int unit, const void *src, zrt_event *ready);
/* At the start of a step: nvme queues the first sub-groups' reads. */
zrt_status zrt_offload_begin_step(zrt_engine *e);
/* The statistics (summed on d2h once every unit is down), reduced over ranks
 * on comm and copied to the host: result_ready. */
zrt_status zrt_offload_statistics(zrt_engine *e);
/* The host's part of the step, after result_ready: the CPU optimizer unit by
 * unit and the compute copies up, then the gathers. Nothing on overflow. */
zrt_status zrt_offload_step(zrt_engine *e, double lr, bool overflow, float sum_squares);
/* The compute copies from the (host) masters, then the gathers: at creation and after a load. */
zrt_status zrt_offload_publish(zrt_engine *e);
/* Waits for the copy streams (ZRT_OK without offload). */
zrt_status zrt_offload_synchronize(zrt_engine *e);
/* zrt_engine_state_io with offload. */
zrt_status zrt_offload_state_io(zrt_engine *e, int unit, int part, size_t begin, size_t n, void *host, bool write);

/* ---- offload_nvme.c: offload_optimizer: nvme ----------------------------------------------
 * The state of the own shard in swap files, in sub-groups (a piece of one
 * unit's shard: elements [begin, begin + n), at file_offset), streamed
 * through a few pinned slots: start (queues the first reads; again is a
 * no-op), then for k in order load(k) (which reads further ahead) and, when
 * the state changed, store(k); finish waits for every transfer (and is what
 * an error path calls before the slots are reused). */
typedef struct { int unit; size_t begin, n, file_offset; } zrt_subgroup;
typedef struct zrt_nvme_state zrt_nvme_state;

/* *out is set even on failure (destroy it). */
zrt_status zrt_nvme_create(zrt_engine *e, zrt_nvme_state **out);
void zrt_nvme_destroy(zrt_nvme_state *s);
size_t zrt_nvme_groups(const zrt_nvme_state *s);
const zrt_subgroup *zrt_nvme_group(const zrt_nvme_state *s, size_t k);
zrt_status zrt_nvme_start(zrt_nvme_state *s);
/* state[STATE_MASTER..] of sub-group k, in a pinned slot, until store(k) or load(k + n_slots - 1). */
zrt_status zrt_nvme_load(zrt_nvme_state *s, size_t k, float *state[3]);
zrt_status zrt_nvme_store(zrt_nvme_state *s, size_t k);
zrt_status zrt_nvme_finish(zrt_nvme_state *s);
zrt_status zrt_nvme_state_io(zrt_nvme_state *s, int unit, int part, size_t begin, size_t n, void *host, bool write);
/* Makes the directories (as DeepSpeed does) and removes a crashed run's swap
 * files from them, saying so in the engine's warnings. */
zrt_status zrt_engine_swap_dirs(zrt_engine *e, const char *const *paths, int n_paths);
/* A swapper of `bytes` over c's nvme paths (made, stale files removed), its
 * files named after `what` and the rank ("optimizer-rank0"), aio's block
 * size and queue depth. */
zrt_status zrt_engine_open_swap(zrt_engine *e, const zrt_offload_config *c, const char *what, size_t bytes,
                                zrt_swap **out);

/* ---- param_store.c: offload_param (stage 3, with offload_optimizer) -----------------------
 * create decides where each non-persistent unit's shard lives (sets
 * params_offloaded, params_in_cpu, host_params, params_at; before the units'
 * buffers are made). The CPU optimizer writes a unit's new compute copy into
 * the host memory begin_write gives and calls end_write (NVMe: the write is
 * queued); flush waits for every write (before the gathers). stage, on the
 * comm stream, puts the shard in a device buffer (the caller frees it on comm). */
zrt_status zrt_param_store_create(zrt_engine *e);
void zrt_param_store_destroy(zrt_engine *e);
zrt_status zrt_param_store_begin_write(zrt_engine *e, int unit, void **host);
zrt_status zrt_param_store_end_write(zrt_engine *e, int unit);
zrt_status zrt_param_store_flush(zrt_engine *e);
zrt_status zrt_param_store_stage(zrt_engine *e, int unit, void **shard);

#endif
