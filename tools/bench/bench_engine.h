/* bench_engine.h: what the training benches share (bench_engine.c): an
 * engine run under measurement, stages timed interleaved, the model timed
 * alone -- on any device. `zrt bench train` (CPU ranks) and `zrt bench gpu`
 * (the CUDA GPT) both use it, so both measure a step the same way.
 */
#ifndef ZRT_TOOLS_BENCH_ENGINE_H
#define ZRT_TOOLS_BENCH_ENGINE_H

#include "zrt.h"

#define ZRT_BENCH_MAX_STEPS 1000

/* What varies between the runs of one bench: the stage and the offload. */
typedef struct {
    int stage;
    zrt_offload_device offload;
} zrt_bench_kind;

/* One stage's figures. */
typedef struct {
    double seconds; /* median per step */
    double tokens;  /* per step, all ranks */
    double flops;   /* matmul flops per step per rank, forward + backward */
} zrt_bench_timing;

/* A configuration under measurement: its model and engine live while it is timed. */
typedef struct {
    zrt_config cfg;
    zrt_model *model;
    zrt_engine *engine;
    zrt_data data;
    zrt_step_result result;
    double times[ZRT_BENCH_MAX_STEPS];
} zrt_bench_run;

/* base (validated) with kind's stage and offload (nvme under nvme_dir), validated. */
void zrt_bench_config_with(const zrt_config *base, zrt_bench_kind kind, const char *nvme_dir, zrt_config *out);
/* The bench's base config: DeepSpeed's, `world` ranks, overlap_comm, stage 3
 * gathering every unit (persistence 0), micro batch `micro`; the caller sets
 * the model and validates. */
void zrt_bench_base_config(zrt_config *cfg, int world, int64_t micro);
/* The run's model, data and engine on device; the engine's setup collectives
 * are done on return, so another run's may follow. */
zrt_status zrt_bench_run_open(zrt_bench_run *r, const zrt_config *base, zrt_bench_kind kind, const char *nvme_dir,
                              zrt_device *device, zrt_comm *comm);
void zrt_bench_run_close(zrt_bench_run *r);
/* One step from an idle device, as at a barrier; its seconds. */
zrt_status zrt_bench_run_step(zrt_bench_run *r, zrt_comm *comm, double *seconds);
/* Times n (<= 4) configurations: 3 warm-up steps, then the median of
 * `steps` steps each; interleaved step by step, so a slow spell of a shared
 * machine falls on all alike, or (blocks) one run after another, each made,
 * stepped and closed before the next is made -- where a run leaves work
 * going behind its step (nvme offload's last writes, which its next step
 * waits for) that would otherwise finish in another's step, and so that only
 * one engine's memory is held at a time (GPT-2 medium's shape at stage 3). */
zrt_status zrt_bench_time_runs(const zrt_config *base, int steps, const char *nvme_dir, zrt_device *device,
                               zrt_comm *comm, bool blocks, int n, const zrt_bench_kind *kinds, zrt_bench_timing *out);
/* The model alone: forward, loss and backward of one micro batch on fp32
 * parameters, no engine, on one stream of device; median seconds. */
zrt_status zrt_bench_time_model(const zrt_config *base, int steps, zrt_device *device, double *seconds);

#endif
