/* zrt/model.h: what the engine knows of a model: units (parameter groups,
 * one flat buffer each), ops (the steps of its forward pass) and a table of
 * functions; and the registry that makes the built-in models by name.
 *
 * Why a table: the engine trains any model whose layers are units; it never
 * names a concrete model (model/model.c does). */
#ifndef ZRT_MODEL_H
#define ZRT_MODEL_H

#include "zrt/base.h"
#include "zrt/config.h"
#include "zrt/device.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ZRT_MAX_UNITS 1024
#define ZRT_MAX_UNIT_PARAMS 16

typedef enum { ZRT_INIT_NORMAL, ZRT_INIT_ZEROS, ZRT_INIT_ONES } zrt_init_kind;

typedef struct {
    char name[48];
    int64_t numel;
    int64_t offset;       /* in the unit's flat buffer */
    zrt_init_kind init;
    float init_std;
    int ndim;             /* row-major shape, as torch stores it (a Linear's weight: out x in) */
    int64_t shape[ZRT_MAX_PARAM_DIMS];
} zrt_param_info;

typedef struct zrt_model zrt_model;

#define ZRT_MAX_OPS (ZRT_MAX_UNITS + 8)

/* A model: units (parameter groups, one flat buffer each) and ops, the steps
 * of its forward pass in order; op i uses the parameters of unit op_unit[i].
 * A unit may serve several ops -- a tied weight, like GPT's token embedding
 * and LM head -- and its gradient is then the sum over them. Backward runs the
 * ops in reverse. The model keeps its activations between the two passes, in
 * memory of its device.
 * Every pointer a function below takes is device memory of m->device, and
 * every function enqueues its work on the stream it is given and returns:
 * results are there once the stream has run (errors too: a token outside
 * the vocabulary fails the stream). One model runs on one stream at a time. */
struct zrt_model {
    int n_units;                /* at most ZRT_MAX_UNITS */
    int *n_params;              /* [n_units]: at most ZRT_MAX_UNIT_PARAMS each */
    zrt_param_info **params;    /* [n_units][n_params[u]] */
    int64_t *unit_numel;        /* [n_units] */
    int n_ops;                  /* at most ZRT_MAX_OPS */
    int *op_unit;               /* [n_ops] */
    int64_t tokens_per_sample;
    double matmul_flops_per_sample; /* forward GEMM flops; backward is twice that */
    size_t input_bytes_per_sample;  /* what zrt_data_fill writes per sample */
    int64_t labels_per_sample;      /* int32 labels per sample */
    zrt_device *device;             /* where its activations live and it computes */
    /* The micro batch the next ops use: `batch` samples of inputs (as
     * zrt_data_fill writes them) and int32 labels, in device memory that must
     * hold them until the batch's backward has run. ZRT_ERR_INVALID for a
     * batch outside 1..the micro batch the model was made for. */
    zrt_status (*set_batch)(zrt_model *m, const void *inputs, const int32_t *labels, int batch);
    /* params: the op's unit's flat fp32 parameters (numel, unpadded). */
    zrt_status (*forward)(zrt_model *m, zrt_stream *stream, int op, const float *params);
    /* Adds the batch's mean cross-entropy / divisor to *loss_sum (one fp32)
     * and seeds the backward with d(loss * scale)/d(output). */
    zrt_status (*loss)(zrt_model *m, zrt_stream *stream, float scale, float divisor, float *loss_sum);
    /* Adds the op's gradient to grads (the unit's flat fp32 gradient, numel). */
    zrt_status (*backward)(zrt_model *m, zrt_stream *stream, int op, const float *params, float *grads);
    /* Inference on one sequence (zrt sample): runs tokens[0..n) at positions
     * pos0..pos0 + n - 1 through every op, attending to the positions before
     * pos0 that earlier calls ran (the model's KV cache), and writes the
     * logits of the last one (vocab floats) to logits. units[u]: unit u's
     * flat fp32 parameters. pos0 + n <= tokens_per_sample; a call with pos0
     * 0 starts a new sequence. Not set (NULL) for a model that cannot
     * generate (mlp). Uses the training activations: not between a
     * forward and its backward. */
    zrt_status (*decode)(zrt_model *m, zrt_stream *stream, const float *const *units, const int32_t *tokens, int n,
                         int pos0, float *logits);
    /* The activation memory the model holds for its micro batch (bytes; with
     * activation checkpointing, what it keeps then). */
    int64_t activation_bytes;
    void (*destroy)(zrt_model *m);
};

/* The tables of a model (n_params, params, unit_numel, op_unit), sized for
 * n_units units of up to max_params parameters each and n_ops ops, zeroed,
 * in one allocation; sets m->n_units and m->n_ops. ZRT_ERR_INVALID beyond
 * ZRT_MAX_UNITS, ZRT_MAX_UNIT_PARAMS or ZRT_MAX_OPS. A model's destroy
 * frees them with zrt_model_tables_free (NULL tables are fine). */
zrt_status zrt_model_tables_alloc(zrt_model *m, int n_units, int max_params, int n_ops);
void zrt_model_tables_free(zrt_model *m);

/* The built-in model zrt.model.type names (model/model.c), on device:
 *  - mlp: `layers` units, d_model -> hidden -> ... -> vocab classes, GELU
 *    between layers; inputs are d_model floats per sample, one label;
 *  - gpt: GPT-2's shape: token + position embeddings (unit 0), `layers`
 *    blocks (units 1..layers), the final layernorm (unit layers + 1) and the
 *    LM head tied to the token embedding (an op of unit 0); inputs are
 *    seq_len int32 tokens per sample, labels the next tokens.
 * micro_batch bounds the batch size. Each has a cpu and (in builds with
 * CUDA) a cuda implementation with the same units and layout; a device the
 * build has no implementation for is ZRT_ERR_UNSUPPORTED naming the model.
 * cfg->precision and cfg->allow_tf32 choose the CUDA matmuls' math. */
zrt_status zrt_model_create(const zrt_model_config *cfg, zrt_device *device, int micro_batch, zrt_model **out);

/* ---- initial weights from a file (cfg->init_from; init_from.c) ----------
 * A safetensors file (F32, BF16 or F16), a directory with model.safetensors
 * (or model.safetensors.index.json and any number of shard files) and
 * config.json, holding either zrt's own names and layouts (what `zrt shards
 * consolidate` writes), Hugging Face GPT-2's (transformer.h.N.attn.c_attn.weight,
 * ... in Conv1D's transposed layout) or the Llama family's (model.layers.N...,
 * lm_head.weight); a tied lm_head, the attention-mask and rotary inv_freq
 * buffers are ignored. values reads only the bytes of its range (pread). check: every parameter of the model is there with its shape,
 * nothing else is, and a config.json agrees with cfg -- else
 * ZRT_ERR_CONFIG naming the tensor or key. values: elements [begin, begin +
 * n) of a unit's flat layout (0 in the padding). */
zrt_status zrt_model_init_check(const zrt_model *model, const zrt_model_config *cfg);
/* The Hugging Face GPT-2 name of a zrt GPT parameter ("h.0.attn.c_attn.weight"
 * -> "transformer.h.0.attn.c_attn.weight", "wte" -> "transformer.wte.weight"),
 * with prefix in place of "transformer."; *conv1d: stored transposed there. */
void zrt_model_gpt2_name(const char *zrt_name, const char *prefix, char *out, size_t size, bool *conv1d);
/* The Hugging Face name of a zrt parameter of a model of this type: gpt as
 * zrt_model_gpt2_name with "transformer."; llama "model." + the name
 * ("layers.0.mlp.up_proj.weight" -> "model.layers.0.mlp.up_proj.weight"),
 * lm_head.weight as it is. *transpose: stored transposed there. */
void zrt_model_hf_name(zrt_model_type type, const char *zrt_name, char *out, size_t size, bool *transpose);
zrt_status zrt_model_init_values(const zrt_model *model, const zrt_model_config *cfg, int unit, int64_t begin,
                                 int64_t n, float *out);
/* "mlp", "gpt" ("?" for another value). */
const char *zrt_model_type_name(zrt_model_type type);

/* The cuBLASLt the CUDA models would load (they dlopen it when the first one
 * is made): $ZRT_CUBLASLT alone when set, else this toolkit's soname
 * ("libcublasLt.so.13"), then "libcublasLt.so". ZRT_OK with the path of the
 * library that loads in path (`zrt report` prints it); else
 * ZRT_ERR_UNSUPPORTED with dlopen's reason. Loads and unloads it to find out. */
zrt_status zrt_cublaslt_find(char *path, size_t size);

#ifdef __cplusplus
}
#endif
#endif
