/* engine_internal.h: the engine's state, shared by engine.c (the step),
 * stages.c (the stage policy rows and the gradients' path), stage3.c
 * (parameter residency: gather, prefetch, release), param_store.c and
 * checkpoint.c. Private to engine/. The optimizer's placement backends
 * (place_*.c) do not see it: they get place.h's place_env.
 *
 * Invariants: unit_state's buffers follow the layout of zrt/engine.h and are
 * all device memory, made and freed by the engine; the optimizer range of a
 * unit is e->ranges[u] (the whole padded buffer in stage 0, the own shard
 * otherwise), its fp32 state the placement backend's. Work is enqueued on
 * two streams: `compute` (casts, the model, statistics, Adam) and `comm`
 * (every collective); they meet only through events -- `mark` for an
 * ordering waited on at once, the per-unit events for orderings waited on
 * later.
 */
#ifndef ZRT_ENGINE_INTERNAL_H
#define ZRT_ENGINE_INTERNAL_H

#include "place.h"

/* The step's device scratch (fp32 slots), then 2 per unit. */
enum {
    SLOT_LOSS,     /* sum over micro batches of loss / accum; summed over ranks */
    SLOT_SQUARES,  /* sum of squares of the unscaled own gradients; summed over ranks */
    SLOT_NONFINITE,/* the number of units with an inf or NaN gradient; summed over ranks */
    SLOT_REDUCED,  /* the slots above are reduced together: 3 floats */
    SLOT_AGREE = 4,/* checkpoint agreement: failures summed over ranks */
    SLOT_EVAL = 5, /* zrt_engine_eval: this rank's sum of batch losses */
    SLOT_UNITS = 8 /* unit u: [8 + 2u] its sum of squares, [8 + 2u + 1] its non-finite flag: filled
                    * by whichever stream has its gradients, summed in unit order, so the total has
                    * the same bits in every stage and offload mode */
};

typedef struct {
    int64_t numel, padded, shard;
    void *param_full;   /* D, padded: stages 0-2; stage 3 while gathered */
    void *param_shard;  /* D, shard: stage 3 (NULL where the parameter store holds it) */
    void *grad_full;    /* D, padded: stages 0-1, accumulated, reduced in place */
    void *grad_shard;   /* D, shard: stages 2-3, the reduced shards added over micro batches (NULL where
                         * they go down from the reduce_scatter's output: offload, one micro batch) */
    void *grad_bucket;  /* what backward's gradients are stored into and the collective reads: grad_full |
                         * (2-3) one of the engine's buckets, taken for the unit's backward, NULL otherwise */
    void *grad_reduced; /* where the collective leaves the own shard: in grad_full | grad_shard | a recv slot */
    int bucket;         /* stages 2-3: which of e->buckets grad_bucket is */
    void *param_cache;  /* stage 3: a released unit's buffer, kept for the next gather */
    bool persistent;    /* stage 3: kept gathered */
    bool gathered_when_used; /* stage 3, not persistent: gathered before each use, released after */
    bool params_offloaded;   /* offload_param: the store holds the own shard (param_shard is NULL) */
    int first_op, last_op;   /* the ops using this unit: forward order */
    float *grad_accum;  /* fp32, numel: units used by several ops (tied weights) */
    zrt_event *gathered;   /* comm: param_full holds the gathered unit */
    zrt_event *used;       /* compute: the latest read of param_full (before a gather reuses it) */
    zrt_event *reduced;    /* comm: grad_reduced holds the reduced gradients */
    bool gather_pending;   /* `gathered` recorded and not yet waited for by compute */
} unit_state;

/* One row per ZeRO stage (stages.c): docs/engine.md's table, as the step
 * reads it. What is sharded decides the buffers a unit gets and the
 * optimizer range; `store_grads` and `after_micro` say which collective
 * reduces the gradients and when. */
typedef struct {
    int stage;
    bool params_sharded; /* parameters: the own shard, gathered before use (3) | full (0-2) */
    bool grads_sharded;  /* gradients: the own shard, a padded bucket per unit (2-3) | full (0-1) */
    bool state_sharded;  /* optimizer state: the own shard, compute copies all_gathered after the step (1-3) | full (0) */
    /* A unit's fp32 gradients are complete (its first op's backward):
     * 0-1: added into the full buffer, reduced at the last micro batch
     * (during backward, or after it when the gradients leave the device);
     * 2-3: reduce_scattered now, on comm. */
    zrt_status (*store_grads)(zrt_engine *e, int unit, const float *grads, bool first_micro, bool last_micro);
    /* After each micro batch's backward: 0-1: at the last one, wait for or issue
     * the reductions; 2-3: add the reduced shards. Then the gradients are ready. */
    zrt_status (*after_micro)(zrt_engine *e, bool first_micro, bool last_micro);
    /* The unit's gradient buffers (and grad_bucket, grad_reduced). */
    zrt_status (*alloc_grads)(zrt_engine *e, int unit);
    /* The buffers units share (2-3: the buckets and recv slots), sized to the widest unit; NULL: none. */
    zrt_status (*alloc_shared)(zrt_engine *e);
    /* Backward is about to add the unit's fp32 gradients into grad_bucket (2-3: a bucket is taken); NULL: none. */
    zrt_status (*take_bucket)(zrt_engine *e, int unit);
} stage_policy;

/* Stages 2-3's gradient buckets (reduce_scatter inputs) and recv slots
 * (outputs that are not a unit's grad_shard): two of each, taken in turn,
 * so a rank holds two units' padded gradients for the collectives, never
 * the model's (DeepSpeed's reduce_bucket_size, per unit). */
enum { GRAD_RING = 2 };

extern const stage_policy zrt_stage_policies[4];

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
    const stage_policy *policy;  /* zrt_stage_policies[stage] */
    const place_ops *place;      /* where the optimizer runs: device, cpu or nvme (place.h) */
    void *place_state;           /* the backend's own state */
    place_env place_env;         /* what the backend was given */
    place_unit *ranges;          /* per unit: its optimizer range (place_env.units) */
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
    int64_t samples; /* the global index of the next step's first sample: every rank's batches so far (checkpointed) */
    zrt_loss_scaler scaler;
    char resumed_from[ZRT_PATH_MAX + 64]; /* the step directory zrt_engine_load read: checkpoint_keep never removes it */
    int64_t live_params, peak_live_params; /* stage 3, elements gathered */
    int64_t cached_params;                 /* stage 3, elements in param_cache buffers */
    int64_t freeing_params;                /* stage 3, elements freed on a stream that has not reached the free */
    zrt_event *freed[2];                   /* stage 3: compute, comm reached the latest free */
    bool inject_overflow;
    bool fault_skip_gather_wait;           /* ZRT_FAULT_SKIP_WAIT=gather: the check mode's test */
    zrt_param_store *params;               /* offload_param (param_store.c); NULL otherwise */
    void *buckets[GRAD_RING];              /* D, the widest padded unit: stages 2-3's reduce_scatter inputs */
    zrt_event *bucket_free[GRAD_RING];     /* comm: the reduce_scatter that read buckets[k] is done */
    void *recv[GRAD_RING];                 /* D, the widest shard: reduce_scatter outputs on their way elsewhere */
    int recv_unit[GRAD_RING];              /* the unit whose gradients recv[k] last held (-1: none) */
    int next_bucket, next_recv;
    char warnings[2048];                   /* zrt_engine_warnings */
};

int64_t zrt_engine_opt_begin(const zrt_engine *e, const unit_state *u);
int64_t zrt_engine_opt_count(const zrt_engine *e, const unit_state *u);
/* Compute copies from the masters (the placement's publish), then gathered
 * where the stage keeps them full. */
zrt_status zrt_engine_publish_params(zrt_engine *e);
/* Compute waits for the unit's pending gather, if any. */
zrt_status zrt_engine_wait_gathered(zrt_engine *e, unit_state *u);
/* `to` waits for what `from` has enqueued so far. */
zrt_status zrt_engine_order(zrt_engine *e, zrt_stream *from, zrt_stream *to);

/* stage3.c: the unit of op resident (gathered, waited for) before compute
 * uses it, prefetching the next units in direction dir (+1 forward, -1
 * backward); release gives it back once compute has enqueued its use. Both
 * are no-ops for units not gathered_when_used. */
zrt_status zrt_stage3_fetch(zrt_engine *e, int op, int dir);
zrt_status zrt_stage3_release(zrt_engine *e, int unit);

/* A sum over ranks of one host value, through the device scratch (collectives
 * only see device buffers). */
zrt_status zrt_engine_sum_over_ranks(zrt_engine *e, float *value);
/* Host access to elements [begin, begin + n) of the optimizer range of a
 * unit's fp32 state, part STATE_MASTER.. (place.h), wherever it lives; outside a step. */
zrt_status zrt_engine_state_io(zrt_engine *e, int unit, int part, size_t begin, size_t n, void *host, bool write);
/* Every rank learns whether any rank failed (status); the first local error
 * is kept, the others get ZRT_ERR_PEER saying `what` failed elsewhere. */
zrt_status zrt_engine_agree(zrt_engine *e, zrt_status status, const char *what);
/* Adds a line to the engine's warnings (zrt_engine_warnings). */
void zrt_engine_warn(zrt_engine *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Device memory charged to c, named "unit U what" (unit < 0: "what"). */
zrt_status zrt_engine_alloc(zrt_engine *e, zrt_mem_category c, size_t bytes, int unit, const char *what, void *out);

/* ---- estimate.c: the sizing rules the engine and zrt_engine_estimate share --------------- */
void zrt_engine_unit_layout(const zrt_config *cfg, int64_t numel, int world, int64_t *padded, int64_t *shard,
                            bool *persistent);
/* offload_param: whether a shard goes to host memory (counting it in *in_cpu) rather than NVMe. */
bool zrt_engine_param_in_cpu(const zrt_config *cfg, int64_t shard, int64_t *in_cpu);

/* ---- param_store.c: offload_param (stage 3, with offload_optimizer) -----------------------
 * create decides where each non-persistent unit's shard lives (before the
 * units' buffers are made; zrt_param_store_holds says which). The CPU
 * optimizer writes into it (place.h); stage, on the comm stream, puts the
 * shard in a device buffer (the caller frees it on comm). */
zrt_status zrt_param_store_create(zrt_engine *e);
void zrt_param_store_destroy(zrt_param_store *p);
zrt_status zrt_param_store_stage(zrt_param_store *p, zrt_stream *comm, int unit, void **shard);

#endif
