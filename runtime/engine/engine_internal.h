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
} unit_state;

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
    int64_t live_params, peak_live_params; /* stage 3, elements gathered */
    int64_t cached_params;                 /* stage 3, elements in param_cache buffers */
    bool inject_overflow;
    bool fault_skip_gather_wait;           /* ZRT_FAULT_SKIP_WAIT=gather: the check mode's test */
};

int64_t zrt_engine_opt_begin(const zrt_engine *e, const unit_state *u);
int64_t zrt_engine_opt_count(const zrt_engine *e, const unit_state *u);
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

#endif
