/* engine_internal.h: the engine's state, shared by engine.c and checkpoint.c.
 *
 * Why a separate header: checkpoints read and write the optimizer ranges and
 * counters directly; nothing outside runtime/ includes this.
 * Invariant: unit_state's buffers follow the layout described in engine.h;
 * the optimizer range of a unit is [zrt_engine_opt_begin, + opt_count) of its
 * padded flat buffer (the whole buffer in stage 0, the own shard otherwise).
 */
#ifndef ZRT_ENGINE_INTERNAL_H
#define ZRT_ENGINE_INTERNAL_H

#include "zrt.h"

typedef struct {
    int64_t numel, padded, shard;
    float *master, *exp_avg, *exp_avg_sq; /* fp32, the optimizer range */
    void *param_full;   /* D, padded: stages 0-2; stage 3 while gathered */
    void *param_shard;  /* D, shard: stage 3 */
    void *grad_full;    /* D, padded: stages 0-1 */
    void *grad_shard;   /* D, shard: stages 2-3 */
    void *grad_send;    /* D, padded: stages 2-3, the reduce_scatter input */
    void *grad_recv;    /* D, shard: stages 2-3, its output */
    void *param_cache;  /* stage 3: a released unit's buffer, kept for the next gather */
    bool persistent;    /* stage 3: kept gathered */
    int first_op, last_op; /* the ops using this unit: forward order */
    float *grad_accum;  /* fp32, numel: units used by several ops (tied weights) */
    zrt_comm_request *gather, *reduce;
} unit_state;

struct zrt_engine {
    zrt_config cfg;
    zrt_comm *comm;
    int rank, world, stage, n_units;
    zrt_dtype dtype;
    size_t es;
    zrt_model *model;
    zrt_mem_stats *mem;
    unit_state *units;
    float *params_f32;   /* bf16/fp16: fp32 view of the unit in use (the widest padded unit); NULL in fp32 */
    float *grads_f32;    /* work: the widest padded unit */
    void *inputs;     /* micro batch, as the model takes it */
    int32_t *labels;
    int micro, accum;
    int64_t global_batch, step, adam_steps;
    zrt_loss_scaler scaler;
    int64_t live_params, peak_live_params; /* stage 3, elements gathered */
    int64_t cached_params;                 /* stage 3, elements in param_cache buffers */
    bool inject_overflow;
};

int64_t zrt_engine_opt_begin(const zrt_engine *e, const unit_state *u);
int64_t zrt_engine_opt_count(const zrt_engine *e, const unit_state *u);
/* Compute copies from the masters, gathered where the stage keeps them full. */
zrt_status zrt_engine_publish_params(zrt_engine *e);

#endif
