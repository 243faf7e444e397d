/* zrt/engine.h: the ZeRO engine: stages 0-3 over one flat, padded layout.
 *
 * Layout: each unit's parameters lie end to end in one flat
 * buffer, padded to a multiple of world_size x 16 elements; rank r owns the
 * contiguous shard [r * shard, (r + 1) * shard). Every stage uses this
 * layout, so checkpoints do not depend on the stage. */
#ifndef ZRT_ENGINE_H
#define ZRT_ENGINE_H

#include "zrt/base.h"
#include "zrt/config.h"
#include "zrt/comm.h"
#include "zrt/mem.h"
#include "zrt/model.h"
#include "zrt/data.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the engine ------------------------------------------------------------------------- */

typedef struct zrt_engine zrt_engine;

typedef struct {
    float loss;          /* mean over the global batch */
    float grad_norm;     /* global, before clipping (0 when skipped) */
    double lr;
    double loss_scale;   /* used for this step */
    bool skipped;        /* fp16 overflow: no update */
    int64_t samples;     /* in the global batch */
    int64_t samples_seen; /* every rank's samples so far, this step's included: the data's position, which a
                             checkpoint keeps, so a run resumed at any world size reads the next unseen ones */
} zrt_step_result;

/* The engine runs on the model's device: every parameter, gradient, optimizer
 * moment, staging buffer and activation is memory of it (charged to its
 * categories: zrt_device_mem), computed on its compute stream, reduced and
 * gathered on its comm stream, ordered by events. comm may be NULL for one
 * rank; its collectives then only see device buffers. The model and comm are
 * the caller's and must outlive the engine. */
zrt_status zrt_engine_create(const zrt_config *cfg, zrt_comm *comm, zrt_model *model, zrt_engine **out);
/* One optimizer step over the global batch of this step (all accumulation
 * micro batches), samples drawn from data. The host waits once, for the
 * step's result (loss, norm, overflow: one device-to-host copy); the
 * optimizer and the parameter gathers may still run when it returns. */
zrt_status zrt_engine_step(zrt_engine *e, const zrt_data *data, zrt_step_result *result);
/* Waits for everything the engine has enqueued; the first error. */
zrt_status zrt_engine_synchronize(zrt_engine *e);
/* The validation loss: the mean loss of `batches` global batches of data
 * (the same samples every call), averaged over ranks -- the forward alone,
 * nothing learned. Collective. */
zrt_status zrt_engine_eval(zrt_engine *e, const zrt_data *data, int64_t batches, double *loss);
/* The full fp32 master parameters of a unit (numel floats), gathered. */
zrt_status zrt_engine_get_master(zrt_engine *e, int unit, float *out);
/* Checkpoints (checkpoint.c; collective: every rank calls them).
 * save: DIR/step_NNNNNNN with meta.json and one shard file per rank, made
 * visible by renames, then DIR/latest. load: DIR/latest (or a step
 * directory), re-sliced to this engine's world size and stage; every CRC and
 * the model's shape are checked; *step (may be NULL) gets the step count. */
zrt_status zrt_engine_save(zrt_engine *e, const char *dir);
zrt_status zrt_engine_load(zrt_engine *e, const char *path, int64_t *step);
/* Whether DIR/latest exists. */
bool zrt_checkpoint_exists(const char *dir);
/* Model-state bytes -- params, grads, optimizer; the other categories are
 * 0 -- by place (device, pinned host memory) that zrt_engine_create will
 * allocate per rank for cfg (stage, offload, precision, num_processes) and
 * a model's unit sizes: what `zrt estimate --config` prints, equal to the
 * engine's own report right after creation (a test compares them). State
 * on NVMe is in no place; its pinned slots are host memory. */
typedef struct {
    int64_t bytes[ZRT_MEM_PLACES][ZRT_MEM_CATEGORIES];
    /* The most the engine holds at once while it trains, by place and
     * category -- what bounds a rank's memory, from the settings: the model
     * states above; stage 3's gathered parameters and their cache (within
     * stage3_max_live_parameters, or the widest unit), the offloaded
     * shards brought in for them; stages 2-3's two gradient buckets and
     * recv slots (the widest unit's); the CPU optimizer's two tiles; the
     * engine's fp32 views and scratch. zrt_engine_estimate_model adds the
     * model's own: its activations, the batch, tied units' fp32 gradients. */
    int64_t peak[ZRT_MEM_PLACES][ZRT_MEM_CATEGORIES];
    int64_t nvme_bytes; /* the swap files per rank (optimizer state and gradients, parameters) */
} zrt_mem_estimate;
zrt_status zrt_engine_estimate(const zrt_config *cfg, const int64_t *unit_numel, int n_units, zrt_mem_estimate *out);
/* The same for a model made on its device (before an engine on it): peak
 * gains the model's activations (zrt_model.activation_bytes, or the
 * device's activation bytes so far when the model leaves it 0), its batch
 * buffers and the fp32 gradients of units used by several ops. */
zrt_status zrt_engine_estimate_model(const zrt_config *cfg, const zrt_model *model, zrt_mem_estimate *out);
/* What the engine did that the user should hear of, one line each ("" if
 * nothing): swap files of a crashed run it removed. The library does not print it. */
const char *zrt_engine_warnings(const zrt_engine *e);
/* Peak bytes of gathered (non-persistent) stage-3 parameters, in elements. */
int64_t zrt_engine_peak_live_params(const zrt_engine *e);
void zrt_engine_destroy(zrt_engine *e);

#ifdef __cplusplus
}
#endif
#endif
