/* model_internal.h: what the built-in models share, private to model/:
 * their constructors (for the registry in model.c), the parameter
 * declaration helper and the op checks of the runner (nn_model.c, nn.h).
 *
 * Why: a model is one file written against nn.h's ops (gpt.c, mlp.c,
 * llama.c) that declares its units, parameters and activations and holds
 * its math; everything device-specific is an ops table (nn_cpu.c,
 * nn_cuda.c), everything asynchronous is the runner's.
 */
#ifndef ZRT_MODEL_INTERNAL_H
#define ZRT_MODEL_INTERNAL_H

#include "nn.h"
#include "zrt.h"

zrt_status zrt_model_mlp_create(const zrt_model_config *cfg, zrt_device *device, int micro_batch, zrt_model **out);
zrt_status zrt_model_gpt_create(const zrt_model_config *cfg, zrt_device *device, int micro_batch, zrt_model **out);
zrt_status zrt_model_llama_create(const zrt_model_config *cfg, zrt_device *device, int micro_batch, zrt_model **out);

/* Appends a parameter to unit `unit` (after zrt_model_tables_alloc): its name,
 * shape (rows, or rows x cols; cols 0: a vector), init and init std; its
 * offset is the unit's numel so far. */
void zrt_model_add_param(zrt_model *m, int unit, const char *name, int64_t rows, int64_t cols, zrt_init_kind init,
                         float std);

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
 * and sample sizes into m (llama.c). */
zrt_status zrt_llama_declare(zrt_model *m, const zrt_llama_dims *dims);
/* RoPE's tables as transformers computes them: cos and sin of position t
 * times inv_freq[i] at [t * hs / 2 + i], T x hs / 2 floats each (caller's
 * host memory). inv_freq in fp32 as LlamaRotaryEmbedding makes it, with
 * Llama 3's rope_scaling when rope_factor is not 0. */
void zrt_llama_rope_tables(const zrt_llama_dims *dims, float *cos_table, float *sin_table);

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
