/* zrt/model.h: what the engine knows of a model: units (parameter groups,
 * one flat buffer each), ops (the steps of its forward pass) and a table of
 * functions; and the registry that makes the built-in models by name.
 *
 * Why a table: the engine trains any model whose layers are units; it never
 * names a concrete model (model/model.c does). */
#ifndef ZRT_MODEL_H
#define ZRT_MODEL_H

#include "zrt.h"

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

/* The built-in model zrt.model.type names (model/model.c):
 *  - mlp: `layers` units, d_model -> hidden -> ... -> vocab classes, GELU
 *    between layers; inputs are d_model floats per sample, one label;
 *  - gpt: GPT-2's shape: token + position embeddings (unit 0), `layers`
 *    blocks (units 1..layers), the final layernorm (unit layers + 1) and the
 *    LM head tied to the token embedding (an op of unit 0); inputs are
 *    seq_len int32 tokens per sample, labels the next tokens.
 * micro_batch bounds the batch size. */
zrt_status zrt_model_create(const zrt_model_config *cfg, int micro_batch, zrt_mem_stats *mem, zrt_model **out);
/* "mlp", "gpt" ("?" for another value). */
const char *zrt_model_type_name(zrt_model_type type);

#ifdef __cplusplus
}
#endif
#endif
