/* engine.h: the ZeRO engine and what it stands on: memory accounting, the
 * model interface, the built-in data, the LR schedule and the loss scaler.
 *
 * Why one header: these pieces are used together by the trainer (tools/) and
 * the tests; the engine itself only sees a model through zrt_model's table,
 * so any model whose layers are units can be trained.
 * Layout (DESIGN.md): each unit's parameters lie end to end in one flat
 * buffer, padded to a multiple of world_size x 16 elements; rank r owns the
 * contiguous shard [r * shard, (r + 1) * shard). Every stage uses this
 * layout, so checkpoints do not depend on the stage.
 */
#ifndef ZRT_ENGINE_H
#define ZRT_ENGINE_H

#include "zrt.h"

/* ---- memory --------------------------------------------------------------------- */

typedef enum {
    ZRT_MEM_PARAMS,      /* compute-dtype parameters (full, shard or gathered) */
    ZRT_MEM_GRADS,       /* compute-dtype gradients (full or shard) */
    ZRT_MEM_OPTIMIZER,   /* fp32 master, exp_avg, exp_avg_sq */
    ZRT_MEM_COMM,        /* staging for collectives */
    ZRT_MEM_ACTIVATIONS, /* activations and fp32 work buffers */
    ZRT_MEM_CATEGORIES
} zrt_mem_category;

typedef struct {
    int64_t current[ZRT_MEM_CATEGORIES]; /* bytes */
    int64_t peak[ZRT_MEM_CATEGORIES];
} zrt_mem_stats;

/* Zeroed, 64-byte aligned; NULL when out of memory. */
void *zrt_mem_alloc(zrt_mem_stats *stats, zrt_mem_category c, size_t bytes);
void zrt_mem_free(zrt_mem_stats *stats, zrt_mem_category c, void *ptr);
/* Moves ptr's bytes from one category to another (a buffer changing role). */
void zrt_mem_recharge(zrt_mem_stats *stats, zrt_mem_category from, zrt_mem_category to, void *ptr);
/* params + grads + optimizer, now. */
int64_t zrt_mem_model_states(const zrt_mem_stats *stats);
const char *zrt_mem_category_name(zrt_mem_category c);

/* ---- models ------------------------------------------------------------------------ */

#define ZRT_MAX_UNITS 1024
#define ZRT_MAX_UNIT_PARAMS 16

typedef enum { ZRT_INIT_NORMAL, ZRT_INIT_ZEROS, ZRT_INIT_ONES } zrt_init_kind;

typedef struct {
    char name[48];
    int64_t numel;
    int64_t offset;       /* in the unit's flat buffer */
    zrt_init_kind init;
    float init_std;
} zrt_param_info;

typedef struct zrt_model zrt_model;

#define ZRT_MAX_OPS (ZRT_MAX_UNITS + 8)

/* A model: units (parameter groups, one flat buffer each) and ops, the steps
 * of its forward pass in order; op i uses the parameters of unit op_unit[i].
 * A unit may serve several ops -- a tied weight, like GPT's token embedding
 * and LM head -- and its gradient is then the sum over them. Backward runs the
 * ops in reverse. The model keeps its activations between the two passes. */
struct zrt_model {
    int n_units;
    int n_params[ZRT_MAX_UNITS];
    zrt_param_info params[ZRT_MAX_UNITS][ZRT_MAX_UNIT_PARAMS];
    int64_t unit_numel[ZRT_MAX_UNITS];
    int n_ops;
    int op_unit[ZRT_MAX_OPS];
    int64_t tokens_per_sample;
    double matmul_flops_per_sample; /* forward GEMM flops; backward is twice that */
    size_t input_bytes_per_sample;  /* what zrt_data_fill writes per sample */
    int64_t labels_per_sample;      /* int32 labels per sample */
    /* The micro batch: `batch` samples of inputs and labels. */
    zrt_status (*set_batch)(zrt_model *m, const void *inputs, const int32_t *labels, int batch);
    /* params: the op's unit's flat fp32 parameters (numel, unpadded). */
    zrt_status (*forward)(zrt_model *m, int op, const float *params);
    /* Mean cross-entropy of the batch; seeds the backward with
     * d(loss * scale)/d(output). */
    float (*loss)(zrt_model *m, float scale);
    /* Adds the op's gradient to grads (the unit's flat fp32 gradient). */
    zrt_status (*backward)(zrt_model *m, int op, const float *params, float *grads);
    void (*destroy)(zrt_model *m);
    zrt_mem_stats *mem; /* where activations are charged */
};

/* The built-in MLP: `layers` units, d_model -> hidden -> ... -> vocab classes,
 * GELU between layers; inputs are d_model floats per sample, one label.
 * micro_batch bounds the batch size. */
zrt_status zrt_model_mlp_create(const zrt_model_config *cfg, int micro_batch, zrt_mem_stats *mem, zrt_model **out);
/* GPT-2's shape: token + position embeddings (unit 0), `layers` blocks
 * (units 1..layers), the final layernorm (unit layers + 1) and the LM head
 * tied to the token embedding (an op of unit 0). Inputs are seq_len int32
 * tokens per sample, labels the next tokens. */
zrt_status zrt_model_gpt_create(const zrt_model_config *cfg, int micro_batch, zrt_mem_stats *mem, zrt_model **out);
/* The model zrt.model.type names. */
zrt_status zrt_model_create(const zrt_model_config *cfg, int micro_batch, zrt_mem_stats *mem, zrt_model **out);

/* ---- data ---------------------------------------------------------------------------- */

/* The built-in data, the same samples at any world size (a sample is a pure
 * function of the seed and its global index):
 *  - mlp, synthetic: x ~ N(0, 1)^d_model, label = argmax(T x) for a fixed
 *    random teacher T (vocab x d_model);
 *  - gpt, synthetic: token sequences of a fixed random "grammar" (each token
 *    is followed by its successor in a random permutation 3 times in 4);
 *  - gpt, text: windows of seq_len + 1 bytes of a file at hashed offsets
 *    (byte-level tokens; vocab must be at least 256). */
typedef struct {
    zrt_model_type model;
    int64_t d_model, vocab, seq_len, seed;
    float *teacher;      /* mlp: vocab x d_model */
    int32_t *successor;  /* gpt synthetic: vocab */
    unsigned char *text; /* gpt text: the file */
    int64_t text_len;
} zrt_data;

zrt_status zrt_data_init(zrt_data *data, const zrt_config *cfg);
void zrt_data_fini(zrt_data *data);
/* Samples [first, first + count): inputs as the model takes them (floats for
 * mlp, int32 tokens for gpt) and int32 labels. */
void zrt_data_fill(const zrt_data *data, int64_t first, int count, void *inputs, int32_t *labels);

/* A normal float from (seed, stream, index): the same on every rank and at
 * every world size. */
float zrt_random_normal(uint64_t seed, uint64_t stream, uint64_t index);

/* ---- schedule and loss scale ---------------------------------------------------------- */

/* The learning rate of step (from 0), DeepSpeed's schedulers. */
double zrt_schedule_lr(const zrt_config *cfg, int64_t step);

typedef struct {
    double scale;
    int64_t hysteresis_left;
    int64_t last_overflow_step;
    int64_t step;
    bool dynamic;
} zrt_loss_scaler;

void zrt_loss_scaler_init(zrt_loss_scaler *s, const zrt_config *cfg);
/* DeepSpeed's DynamicLossScaler.update_scale. */
void zrt_loss_scaler_update(zrt_loss_scaler *s, const zrt_config *cfg, bool overflow);

/* ---- the engine ------------------------------------------------------------------------- */

typedef struct zrt_engine zrt_engine;

typedef struct {
    float loss;          /* mean over the global batch */
    float grad_norm;     /* global, before clipping (0 when skipped) */
    double lr;
    double loss_scale;   /* used for this step */
    bool skipped;        /* fp16 overflow: no update */
    int64_t samples;     /* in the global batch */
} zrt_step_result;

/* comm may be NULL for one rank. The model is owned by the caller. */
zrt_status zrt_engine_create(const zrt_config *cfg, zrt_comm *comm, zrt_model *model, zrt_mem_stats *mem,
                             zrt_engine **out);
/* One optimizer step over the global batch of this step (all accumulation
 * micro batches), samples drawn from data. */
zrt_status zrt_engine_step(zrt_engine *e, const zrt_data *data, zrt_step_result *result);
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
/* Test hook: make the next step's gradients of this rank non-finite. */
void zrt_engine_inject_overflow(zrt_engine *e);
/* Peak bytes of gathered (non-persistent) stage-3 parameters, in elements. */
int64_t zrt_engine_peak_live_params(const zrt_engine *e);
void zrt_engine_destroy(zrt_engine *e);

#endif
