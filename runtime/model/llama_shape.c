/* llama_shape.c: what the Llama family (Llama 2/3, Mistral, Qwen2) is,
 * whatever device computes it: its dims from the configuration, its units,
 * parameters (Hugging Face's names, shapes and init), ops and FLOPs, and
 * RoPE's cos/sin tables.
 *
 * Why here and not in llama.c: the flat layout is what a checkpoint, an
 * init_from directory and every device's implementation share, element for
 * element; the math lives elsewhere (llama.c over nn.h).
 *
 * The RoPE tables follow transformers' fp32 arithmetic step by step (each
 * operation rounded to float as torch rounds it), so that a model loaded
 * from Hugging Face sees the angles transformers' LlamaRotaryEmbedding sees;
 * only cosf/sinf themselves may differ from torch's by an ulp.
 */
#include "model_internal.h"

#include <math.h>
#include <stdio.h>

#define REQUIRE(cond, ...) \
    if (!(cond)) return zrt_set_error(ZRT_ERR_INVALID, "llama: " __VA_ARGS__)

static zrt_status check_rope(const zrt_model_config *c)
{
    REQUIRE(c->rope_theta > 0, "rope_theta %g: must be > 0", c->rope_theta);
    if (c->rope_factor == 0) return ZRT_OK; /* no rope_scaling */
    REQUIRE(c->rope_factor >= 1, "rope_scaling factor %g: must be >= 1 (0: none)", c->rope_factor);
    REQUIRE(c->rope_low_freq_factor > 0 && c->rope_high_freq_factor > c->rope_low_freq_factor,
            "rope_scaling low_freq_factor %g, high_freq_factor %g: need 0 < low < high", c->rope_low_freq_factor,
            c->rope_high_freq_factor);
    REQUIRE(c->rope_original_max_positions > 0, "rope_scaling original_max_position_embeddings %lld: must be > 0",
            (long long)c->rope_original_max_positions);
    return ZRT_OK;
}

zrt_status zrt_llama_dims_of(const zrt_model_config *c, int micro_batch, zrt_llama_dims *d)
{
    int64_t kv = c->kv_heads ? c->kv_heads : c->heads;
    REQUIRE(c->layers >= 1 && c->layers + 3 <= ZRT_MAX_UNITS, "layers %lld outside 1..%d", (long long)c->layers,
            ZRT_MAX_UNITS - 3);
    REQUIRE(c->heads >= 1 && c->d_model >= 1 && c->d_model % c->heads == 0,
            "d_model %lld is not a multiple of heads %lld", (long long)c->d_model, (long long)c->heads);
    REQUIRE((c->d_model / c->heads) % 2 == 0, "head size %lld (d_model / heads) is odd: RoPE rotates pairs",
            (long long)(c->d_model / c->heads));
    REQUIRE(kv >= 1 && kv <= c->heads && c->heads % kv == 0, "kv_heads %lld does not divide heads %lld",
            (long long)kv, (long long)c->heads);
    REQUIRE(c->hidden >= 1, "hidden (the MLP width, intermediate_size) %lld: required, >= 1", (long long)c->hidden);
    REQUIRE(c->vocab >= 1 && c->seq_len >= 1, "vocab %lld, seq_len %lld: must be >= 1", (long long)c->vocab,
            (long long)c->seq_len);
    REQUIRE(c->norm_eps > 0, "norm_eps %g: must be > 0", c->norm_eps);
    REQUIRE(micro_batch >= 1, "micro batch %d: must be >= 1", micro_batch);
    ZRT_CHECK(check_rope(c));
    *d = (zrt_llama_dims){.T = (int)c->seq_len, .C = (int)c->d_model, .NH = (int)c->heads, .NKV = (int)kv,
                          .hs = (int)(c->d_model / c->heads), .H = (int)c->hidden, .V = (int)c->vocab,
                          .L = (int)c->layers, .tied = c->tie_embeddings, .qkv_bias = c->attention_bias,
                          .eps = (float)c->norm_eps, .rope_theta = c->rope_theta, .rope_factor = c->rope_factor,
                          .rope_low_freq_factor = c->rope_low_freq_factor,
                          .rope_high_freq_factor = c->rope_high_freq_factor,
                          .rope_original_max_positions = c->rope_original_max_positions};
    return ZRT_OK;
}

/* A block's parameters in the order of ZRT_LLAMA_*: rows and cols in units
 * of the dims (C d_model, Q query rows NH * hs, K key/value rows NKV * hs,
 * H MLP width; cols 0: a vector). */
typedef enum { DIM_0, DIM_C, DIM_Q, DIM_K, DIM_H } dim_code;
static const struct {
    const char *suffix;
    dim_code rows, cols;
    zrt_init_kind init;
    bool bias; /* present only with qkv_bias */
} BLOCK[ZRT_LLAMA_BLOCK_PARAMS] = {
    [ZRT_LLAMA_LN1W] = {"input_layernorm.weight", DIM_C, DIM_0, ZRT_INIT_ONES, false},
    [ZRT_LLAMA_QW] = {"self_attn.q_proj.weight", DIM_Q, DIM_C, ZRT_INIT_NORMAL, false},
    [ZRT_LLAMA_KW] = {"self_attn.k_proj.weight", DIM_K, DIM_C, ZRT_INIT_NORMAL, false},
    [ZRT_LLAMA_VW] = {"self_attn.v_proj.weight", DIM_K, DIM_C, ZRT_INIT_NORMAL, false},
    [ZRT_LLAMA_QB] = {"self_attn.q_proj.bias", DIM_Q, DIM_0, ZRT_INIT_ZEROS, true},
    [ZRT_LLAMA_KB] = {"self_attn.k_proj.bias", DIM_K, DIM_0, ZRT_INIT_ZEROS, true},
    [ZRT_LLAMA_VB] = {"self_attn.v_proj.bias", DIM_K, DIM_0, ZRT_INIT_ZEROS, true},
    [ZRT_LLAMA_OW] = {"self_attn.o_proj.weight", DIM_C, DIM_Q, ZRT_INIT_NORMAL, false},
    [ZRT_LLAMA_LN2W] = {"post_attention_layernorm.weight", DIM_C, DIM_0, ZRT_INIT_ONES, false},
    [ZRT_LLAMA_GATEW] = {"mlp.gate_proj.weight", DIM_H, DIM_C, ZRT_INIT_NORMAL, false},
    [ZRT_LLAMA_UPW] = {"mlp.up_proj.weight", DIM_H, DIM_C, ZRT_INIT_NORMAL, false},
    [ZRT_LLAMA_DOWNW] = {"mlp.down_proj.weight", DIM_C, DIM_H, ZRT_INIT_NORMAL, false},
};

/* transformers' initializer_range: every Linear and Embedding weight. */
#define INIT_STD 0.02f

static int64_t dim_value(const zrt_llama_dims *d, dim_code code)
{
    const int64_t values[] = {[DIM_0] = 0, [DIM_C] = d->C, [DIM_Q] = (int64_t)d->NH * d->hs,
                              [DIM_K] = (int64_t)d->NKV * d->hs, [DIM_H] = d->H};
    return values[code];
}

static void declare_block(zrt_model *m, const zrt_llama_dims *d, int l)
{
    char name[48];
    for (int i = 0; i < ZRT_LLAMA_BLOCK_PARAMS; i++) {
        if (BLOCK[i].bias && !d->qkv_bias) continue;
        snprintf(name, sizeof name, "layers.%d.%s", l, BLOCK[i].suffix);
        float std = BLOCK[i].init == ZRT_INIT_NORMAL ? INIT_STD : 0;
        zrt_model_add_param(m, l + 1, name, dim_value(d, BLOCK[i].rows), dim_value(d, BLOCK[i].cols), BLOCK[i].init,
                            std);
    }
}

zrt_status zrt_llama_declare(zrt_model *m, const zrt_llama_dims *d)
{
    int L = d->L, head_unit = d->tied ? 0 : L + 2;
    ZRT_CHECK(zrt_model_tables_alloc(m, d->tied ? L + 2 : L + 3, ZRT_LLAMA_BLOCK_PARAMS, L + 3));
    zrt_model_add_param(m, 0, "embed_tokens.weight", d->V, d->C, ZRT_INIT_NORMAL, INIT_STD);
    for (int l = 0; l < L; l++) declare_block(m, d, l);
    zrt_model_add_param(m, L + 1, "norm.weight", d->C, 0, ZRT_INIT_ONES, 0);
    if (!d->tied) zrt_model_add_param(m, L + 2, "lm_head.weight", d->V, d->C, ZRT_INIT_NORMAL, INIT_STD);
    for (int op = 0; op <= L + 1; op++) m->op_unit[op] = op;
    m->op_unit[L + 2] = head_unit;
    m->tokens_per_sample = d->T;
    /* Per sample: q and o (C x C each), k and v (C x NKV hs each), gate, up
     * and down (C x H each) per block; the head (C x V). Attention's own
     * products are left out, as GPT's count leaves them. */
    double C = d->C, Q = (double)d->NH * d->hs, K = (double)d->NKV * d->hs, H = d->H, T = d->T;
    m->matmul_flops_per_sample = 2.0 * T * (L * (2 * C * Q + 2 * C * K + 3 * C * H) + C * d->V);
    m->input_bytes_per_sample = (size_t)d->T * sizeof(int32_t);
    m->labels_per_sample = d->T;
    return ZRT_OK;
}

/* _compute_llama3_parameters on one frequency: wavelengths shorter than
 * original / high_freq_factor kept, longer than original / low_freq_factor
 * divided by factor, those between interpolated. Every step in fp32 as
 * torch does it (a Python scalar is rounded to float first; x / tensor is
 * reciprocal(tensor) * x). */
#define TWO_PI 6.283185307179586 /* Python's 2 * math.pi */
static float llama3_inv_freq(const zrt_llama_dims *d, float inv_freq)
{
    float factor = (float)d->rope_factor, low = (float)d->rope_low_freq_factor;
    double original = (double)d->rope_original_max_positions;
    float low_freq_wavelen = (float)(original / d->rope_low_freq_factor);
    float high_freq_wavelen = (float)(original / d->rope_high_freq_factor);
    float wavelen = (1.0f / inv_freq) * (float)TWO_PI;
    float scaled = wavelen > low_freq_wavelen ? inv_freq / factor : inv_freq;
    if (wavelen < high_freq_wavelen || wavelen > low_freq_wavelen) return scaled;
    float smooth = ((1.0f / wavelen) * (float)original - low) /
                   (float)(d->rope_high_freq_factor - d->rope_low_freq_factor);
    return (1.0f - smooth) * scaled / factor + smooth * scaled;
}

void zrt_llama_rope_tables(const zrt_llama_dims *d, float *cos_table, float *sin_table)
{
    int half = d->hs / 2;
    for (int i = 0; i < half; i++) {
        /* 1.0 / (base ** (arange(0, dim, 2).float() / dim)) */
        float exponent = (float)(2 * i) / (float)d->hs;
        float inv_freq = 1.0f / powf((float)d->rope_theta, exponent);
        if (d->rope_factor != 0) inv_freq = llama3_inv_freq(d, inv_freq);
        for (int t = 0; t < d->T; t++) {
            float angle = (float)t * inv_freq; /* torch.outer in fp32 */
            cos_table[(size_t)t * half + i] = cosf(angle);
            sin_table[(size_t)t * half + i] = sinf(angle);
        }
    }
}
