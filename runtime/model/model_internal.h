/* model_internal.h: what the built-in models share: their constructors (for
 * the registry in model.c) and the cpu-backend runner (cpu_model.c) that
 * turns each model op into a host function on the caller's stream.
 *
 * Why a runner: the zrt_model table is asynchronous (ops are enqueued on a
 * stream, buffers are device memory); a CPU model's math is plain C on
 * pointers. The runner copies what an op needs (its batch, buffers, scale)
 * into the stream job when it is enqueued, declares the buffers it touches
 * for the device's check mode, and runs the model's function on the
 * stream's thread -- so mlp.c and gpt.c contain only math.
 */
#ifndef ZRT_MODEL_INTERNAL_H
#define ZRT_MODEL_INTERNAL_H

#include "zrt.h"

/* One op as the stream runs it: everything copied at enqueue time. */
typedef struct {
    int op, batch;
    const void *inputs;       /* batch samples, device memory */
    const int32_t *labels;
    const float *params;      /* forward, backward: the op's unit (numel) */
    float *grads;             /* backward: added to */
} zrt_cpu_op;

typedef struct {
    zrt_status (*forward)(zrt_model *m, const zrt_cpu_op *op);
    /* The batch's mean cross-entropy into *mean; seeds backward with d(scale * loss). */
    zrt_status (*loss)(zrt_model *m, const zrt_cpu_op *op, float scale, float *mean);
    zrt_status (*backward)(zrt_model *m, const zrt_cpu_op *op);
    void (*free_buffers)(zrt_model *m); /* activations (zrt_cpu_model_free each) */
} zrt_cpu_model_ops;

/* The batch every runner's set_batch records (host side; each op copies it). */
typedef struct {
    int max_batch, batch;
    const void *inputs;
    const int32_t *labels;
} zrt_model_batch;

/* set_batch's checks and record: ZRT_ERR_INVALID outside 1..max_batch or NULL. */
zrt_status zrt_model_batch_set(zrt_model_batch *now, const void *inputs, const int32_t *labels, int batch);

/* The first member of every cpu model. */
typedef struct {
    zrt_model base;
    const zrt_cpu_model_ops *ops;
    zrt_model_type type;
    zrt_model_batch now;           /* set_batch's */
} zrt_cpu_model;

/* Fills m->base's functions (set_batch, forward, loss, backward, destroy)
 * with the runner's; the model's own math goes in ops. */
void zrt_cpu_model_init(zrt_cpu_model *m, zrt_model_type type, zrt_device *device, int max_batch,
                        const zrt_cpu_model_ops *ops);
/* Activation memory on the model's device, charged to activations. */
zrt_status zrt_cpu_model_alloc(zrt_cpu_model *m, size_t bytes, const char *name, float **out);
void zrt_cpu_model_free(zrt_cpu_model *m, void *ptr);

zrt_status zrt_model_mlp_create(const zrt_model_config *cfg, zrt_device *device, int micro_batch, zrt_model **out);
zrt_status zrt_model_gpt_create(const zrt_model_config *cfg, zrt_device *device, int micro_batch, zrt_model **out);
zrt_status zrt_model_llama_create(const zrt_model_config *cfg, zrt_device *device, int micro_batch, zrt_model **out);

/* ---- the built-in models' shapes (model_shape.c): one declaration of their
 * units, parameters, ops and activations that every device's implementation
 * uses, so a checkpoint of one loads into the other. ---------------------- */

/* Appends parameter `name` to unit's table at the unit's current end: a
 * rows x cols matrix, or a vector of rows when cols is 0. */
void zrt_model_add_param(zrt_model *m, int unit, const char *name, int64_t rows, int64_t cols, zrt_init_kind init,
                         float std);

/* GPT: T seq_len, C d_model, NH heads, H MLP width, V vocab, L layers. */
typedef struct {
    int T, C, NH, H, V, L;
} zrt_gpt_dims;

/* Parameter order inside a block unit's flat buffer. */
enum {
    ZRT_GPT_LN1W, ZRT_GPT_LN1B, ZRT_GPT_QKVW, ZRT_GPT_QKVB, ZRT_GPT_ATTPROJW, ZRT_GPT_ATTPROJB, ZRT_GPT_LN2W,
    ZRT_GPT_LN2B, ZRT_GPT_FCW, ZRT_GPT_FCB, ZRT_GPT_FCPROJW, ZRT_GPT_FCPROJB, ZRT_GPT_BLOCK_PARAMS
};

/* The dims of cfg; ZRT_ERR_INVALID naming the bad value. */
zrt_status zrt_gpt_dims_of(const zrt_model_config *cfg, int micro_batch, zrt_gpt_dims *dims);
/* Units, parameters (GPT-2's init), ops, FLOPs and sample sizes into m. */
zrt_status zrt_gpt_declare(zrt_model *m, const zrt_gpt_dims *dims);

/* One block's activations, then the model's (all fp32, B x T rows). */
typedef struct {
    float *ln1, *ln1_mean, *ln1_rstd, *qkv, *preatt, *att, *atty, *residual2;
    float *ln2, *ln2_mean, *ln2_rstd, *fch, *fch_gelu, *residual3;
} zrt_gpt_block_acts;

typedef struct {
    float *encoded;               /* (B, T, C) */
    zrt_gpt_block_acts *blocks;   /* L */
    float *lnf, *lnf_mean, *lnf_rstd, *logits, *probs;
    /* backward scratch */
    float *dres, *dres_in;        /* (B, T, C): d(op output), d(op input) */
    float *dln, *dqkv, *datty, *dpreatt, *datt, *dfch, *dfch_gelu, *dres2, *dlogits;
} zrt_gpt_acts;

/* Every buffer of acts for max_batch samples, on device (charged to activations). */
zrt_status zrt_gpt_acts_alloc(zrt_gpt_acts *acts, const zrt_gpt_dims *dims, int max_batch, zrt_device *device);
void zrt_gpt_acts_free(zrt_gpt_acts *acts, const zrt_gpt_dims *dims, zrt_device *device);
/* The input of block l (the embedding for l == 0, else block l - 1's output). */
const float *zrt_gpt_block_input(const zrt_gpt_acts *acts, int l);
/* d(op input) becomes the next op's d(op output). */
void zrt_gpt_swap_residual_grads(zrt_gpt_acts *acts);

/* Llama family (Llama 2/3, Mistral, Qwen2): T seq_len, C d_model, NH query
 * heads, NKV key/value heads, hs head size (C / NH), H SwiGLU width, V
 * vocab, L layers. Units: 0 the token embedding, 1..L the blocks, L + 1 the
 * final RMSNorm, L + 2 the LM head (absent when tied: the head is then an
 * op of unit 0). Parameter names are Hugging Face's without "model."
 * ("embed_tokens.weight", "layers.0.self_attn.q_proj.weight", "norm.weight",
 * "lm_head.weight"), shapes torch's ([out, in]). */
typedef struct {
    int T, C, NH, NKV, hs, H, V, L;
    bool tied, qkv_bias;
    float eps;
    double rope_theta, rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int64_t rope_original_max_positions;
} zrt_llama_dims;

/* Parameter order inside a block unit's flat buffer: q, k, v adjacent (one
 * fused matmul, rows [q | k | v]) and their biases adjacent (present only
 * with qkv_bias: the indices below are then as listed, else the bias rows
 * are left out and later indices shift down by 3); gate and up adjacent
 * (one matmul, rows [gate | up]). */
enum {
    ZRT_LLAMA_LN1W, ZRT_LLAMA_QW, ZRT_LLAMA_KW, ZRT_LLAMA_VW, ZRT_LLAMA_QB, ZRT_LLAMA_KB, ZRT_LLAMA_VB,
    ZRT_LLAMA_OW, ZRT_LLAMA_LN2W, ZRT_LLAMA_GATEW, ZRT_LLAMA_UPW, ZRT_LLAMA_DOWNW, ZRT_LLAMA_BLOCK_PARAMS
};

/* The dims of cfg (kv_heads 0: heads); ZRT_ERR_INVALID naming the bad value
 * (hidden is required: Llama has no rule for it). */
zrt_status zrt_llama_dims_of(const zrt_model_config *cfg, int micro_batch, zrt_llama_dims *dims);
/* Units, parameters (Hugging Face's init: normal 0.02 for the matrices,
 * ones for the norms, zeros for the biases), ops (0 embed, 1..L blocks,
 * L + 1 final norm, L + 2 the head, on unit L + 2 or 0 when tied), FLOPs
 * and sample sizes into m (llama_shape.c). */
zrt_status zrt_llama_declare(zrt_model *m, const zrt_llama_dims *dims);
/* RoPE's tables as transformers computes them: cos and sin of position t
 * times inv_freq[i] at [t * hs / 2 + i], T x hs / 2 floats each (caller's
 * host memory). inv_freq in fp32 as LlamaRotaryEmbedding makes it, with
 * Llama 3's rope_scaling when rope_factor is not 0. */
void zrt_llama_rope_tables(const zrt_llama_dims *dims, float *cos_table, float *sin_table);

/* MLP: `layers` units, dims[u] -> dims[u + 1]; its activations (fp32, batch rows). */
typedef struct {
    int layers;
    int64_t dims[ZRT_MAX_UNITS + 1];
    float *act[ZRT_MAX_UNITS + 1]; /* act[u + 1] = out of unit u (B x dims[u + 1]); act[0] unused */
    float *pre[ZRT_MAX_UNITS];     /* z of unit u (B x dims[u + 1]) */
    float *dact;                   /* d(out) of the unit being back-propagated */
    float *dnext;                  /* d(in), becomes the next dact (zrt_mlp_swap) */
} zrt_mlp_acts;

/* Units, parameters, ops into m and the dims (and layers, once valid) into acts. */
zrt_status zrt_mlp_declare(zrt_model *m, const zrt_model_config *cfg, int micro_batch, zrt_mlp_acts *acts);
zrt_status zrt_mlp_acts_alloc(zrt_mlp_acts *acts, int max_batch, zrt_device *device);
void zrt_mlp_acts_free(zrt_mlp_acts *acts, zrt_device *device);
/* The input of unit u: the batch for unit 0. */
const float *zrt_mlp_unit_input(const zrt_mlp_acts *acts, const void *inputs, int u);
void zrt_mlp_swap(zrt_mlp_acts *acts);

/* The checks every runner makes before it enqueues an op (kind: 0 forward,
 * 1 loss, 2 backward): a batch is set, op in range, pointers there. */
zrt_status zrt_model_check_op(const zrt_model *m, const void *inputs, int kind, int op, const float *params,
                              const float *grads);

/* ---- token shards as training samples (data_tokens.c) ---- */

struct zrt_token_set;
/* The shards matching pattern (sorted by name), each checked (zrt/tokens.h). */
zrt_status zrt_data_tokens_open(const char *pattern, int64_t vocab, int64_t seq_len, uint64_t seed,
                                struct zrt_token_set **out);
void zrt_data_tokens_close(struct zrt_token_set *set);
/* Windows of seq_len + 1 tokens: the samples of one epoch. */
int64_t zrt_data_tokens_windows(const struct zrt_token_set *set);
/* Samples [first, first + count): seq_len input tokens and labels each
 * (ZRT_IGNORE_INDEX where the mask has no target). */
void zrt_data_tokens_fill(const struct zrt_token_set *set, int64_t first, int count, int32_t *inputs, int32_t *labels);

#endif
