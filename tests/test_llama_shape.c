/* test_llama_shape.c: the Llama family's declaration (llama.c): units,
 * parameter names, shapes, order and init as Hugging Face has them, ops with
 * the head tied or not, FLOPs; every bad dim refused naming its value; and
 * the RoPE tables against transformers' LlamaRotaryEmbedding (tests/hf_llama.py
 * rope), with and without Llama 3's rope_scaling, to 2 ulps of cos/sin.
 */
#include "check.h"
#include "model_internal.h"

#include <math.h>
#include <float.h>
#include <stdint.h>

static zrt_model_config small(void)
{
    return (zrt_model_config){.type = ZRT_MODEL_LLAMA, .layers = 2, .d_model = 64, .heads = 4, .kv_heads = 2,
                              .hidden = 96, .vocab = 128, .seq_len = 16, .rope_theta = 10000, .norm_eps = 1e-6};
}

static const zrt_param_info *find(const zrt_model *m, int unit, const char *name)
{
    for (int i = 0; i < m->n_params[unit]; i++)
        if (strcmp(m->params[unit][i].name, name) == 0) return &m->params[unit][i];
    return NULL;
}

static void check_param(const zrt_model *m, int unit, const char *name, int64_t rows, int64_t cols,
                        zrt_init_kind init)
{
    const zrt_param_info *p = find(m, unit, name);
    CHECK_MSG(p != NULL, "unit %d has no %s", unit, name);
    if (!p) return;
    CHECK_MSG(p->shape[0] == rows && (cols ? p->shape[1] == cols && p->ndim == 2 : p->ndim == 1),
              "%s: %lld x %lld", name, (long long)p->shape[0], (long long)p->shape[1]);
    CHECK_MSG(p->init == init && (init != ZRT_INIT_NORMAL || p->init_std == 0.02f), "%s: init %d std %g", name,
              (int)p->init, (double)p->init_std);
}

static void check_declared(bool tied, bool bias)
{
    zrt_model_config c = small();
    c.tie_embeddings = tied, c.attention_bias = bias;
    zrt_llama_dims d;
    zrt_model m = {0};
    CHECK_OK(zrt_llama_dims_of(&c, 2, &d));
    CHECK(d.NKV == 2 && d.hs == 16 && d.tied == tied && d.qkv_bias == bias);
    CHECK_OK(zrt_llama_declare(&m, &d));
    CHECK(m.n_units == (tied ? 4 : 5) && m.n_ops == 5);
    CHECK(m.op_unit[0] == 0 && m.op_unit[1] == 1 && m.op_unit[2] == 2 && m.op_unit[3] == 3);
    CHECK(m.op_unit[4] == (tied ? 0 : 4));
    check_param(&m, 0, "embed_tokens.weight", 128, 64, ZRT_INIT_NORMAL);
    check_param(&m, 3, "norm.weight", 64, 0, ZRT_INIT_ONES);
    if (!tied) check_param(&m, 4, "lm_head.weight", 128, 64, ZRT_INIT_NORMAL);
    CHECK(m.n_params[1] == (bias ? 12 : 9));
    /* The enum's order, the bias rows left out without qkv_bias. */
    static const char *order[] = {"input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
                                  "self_attn.v_proj.weight", "self_attn.q_proj.bias", "self_attn.k_proj.bias",
                                  "self_attn.v_proj.bias", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
                                  "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"};
    int64_t offset = 0;
    for (int i = 0, k = 0; i < ZRT_LLAMA_BLOCK_PARAMS; i++) {
        if (!bias && i >= ZRT_LLAMA_QB && i <= ZRT_LLAMA_VB) continue;
        char want[64];
        snprintf(want, sizeof want, "layers.1.%s", order[i]);
        const zrt_param_info *p = &m.params[2][k++];
        CHECK_MSG(strcmp(p->name, want) == 0 && p->offset == offset, "param %d: %s at %lld", i, p->name,
                  (long long)p->offset);
        offset += p->numel;
    }
    CHECK(m.unit_numel[2] == offset);
    check_param(&m, 2, "layers.1.self_attn.q_proj.weight", 64, 64, ZRT_INIT_NORMAL);
    check_param(&m, 2, "layers.1.self_attn.k_proj.weight", 32, 64, ZRT_INIT_NORMAL);
    check_param(&m, 2, "layers.1.self_attn.o_proj.weight", 64, 64, ZRT_INIT_NORMAL);
    check_param(&m, 2, "layers.1.mlp.down_proj.weight", 64, 96, ZRT_INIT_NORMAL);
    if (bias) check_param(&m, 1, "layers.0.self_attn.v_proj.bias", 32, 0, ZRT_INIT_ZEROS);
    CHECK(m.tokens_per_sample == 16 && m.labels_per_sample == 16 && m.input_bytes_per_sample == 64);
    double want = 2.0 * 16 * (2 * (2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 96) + 64 * 128);
    CHECK_MSG(m.matmul_flops_per_sample == want, "flops %g, want %g", m.matmul_flops_per_sample, want);
    zrt_model_tables_free(&m);
}

static void refused(void (*edit)(zrt_model_config *), const char *expect)
{
    zrt_model_config c = small();
    edit(&c);
    zrt_llama_dims d;
    CHECK_MSG(zrt_llama_dims_of(&c, 1, &d) == ZRT_ERR_INVALID && strstr(zrt_last_error(), expect),
              "want '%s': %s", expect, zrt_last_error());
}

static void odd_heads(zrt_model_config *c) { c->heads = 3; }
static void odd_head_size(zrt_model_config *c) { c->heads = 64; } /* head size 1 */
static void bad_kv(zrt_model_config *c) { c->kv_heads = 3; }
static void no_hidden(zrt_model_config *c) { c->hidden = 0; }
static void bad_eps(zrt_model_config *c) { c->norm_eps = 0; }
static void bad_theta(zrt_model_config *c) { c->rope_theta = -1; }
static void bad_factors(zrt_model_config *c)
{
    c->rope_factor = 8, c->rope_low_freq_factor = 4, c->rope_high_freq_factor = 1, c->rope_original_max_positions = 8;
}

/* zrt's tables against transformers'; 77 when transformers is missing. */
static int compare_rope(const zrt_llama_dims *d, const char *extra)
{
    const char *src = getenv("ZRT_SRC") ? getenv("ZRT_SRC") : ".";
    char path[1100], cmd[3000];
    snprintf(path, sizeof path, "%s/rope.bin", test_tmpdir());
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/tests/hf_llama.py' rope %d %d %.17g %s '%s'", src, d->T, d->hs,
             d->rope_theta, extra, path);
    if (system(cmd) != 0) return TEST_EXIT_SKIP;
    size_t n = (size_t)d->T * (size_t)d->hs / 2;
    float *mine = malloc(4 * n * sizeof(float)), *theirs = mine + 2 * n;
    zrt_llama_rope_tables(d, mine, mine + n);
    FILE *f = fopen(path, "rb");
    CHECK(f && fread(theirs, sizeof(float), 2 * n, f) == 2 * n);
    if (f) fclose(f);
    float worst = 0;
    for (size_t i = 0; i < 2 * n; i++) {
        float err = fabsf(mine[i] - theirs[i]) / (2 * FLT_EPSILON);
        worst = err > worst ? err : worst;
    }
    printf("rope %s: worst difference %.3g x 2 eps\n", extra[0] ? extra : "default", (double)worst);
    CHECK_MSG(worst <= 1, "rope tables differ from transformers' by %g x 2 eps", (double)worst);
    free(mine);
    return 0;
}

int main(void)
{
    check_declared(false, false);
    check_declared(true, true);
    refused(odd_heads, "heads 3");
    refused(odd_head_size, "head size 1");
    refused(bad_kv, "kv_heads 3");
    refused(no_hidden, "hidden");
    refused(bad_eps, "norm_eps 0");
    refused(bad_theta, "rope_theta -1");
    refused(bad_factors, "low_freq_factor 4");
    zrt_model_config c = small();
    c.seq_len = 600, c.rope_theta = 500000;
    zrt_llama_dims d;
    CHECK_OK(zrt_llama_dims_of(&c, 1, &d));
    int skipped = compare_rope(&d, "");
    /* Llama 3.1's scaling on a short original context, so that all three bands occur among 8 frequencies. */
    c.rope_factor = 8, c.rope_low_freq_factor = 1, c.rope_high_freq_factor = 4, c.rope_original_max_positions = 64;
    c.d_model = 64, c.heads = 4;
    CHECK_OK(zrt_llama_dims_of(&c, 1, &d));
    if (!skipped) compare_rope(&d, "8 1 4 64");
    if (skipped && !check_failures) SKIP("transformers is not installed for /usr/bin/python3: rope tables not compared");
    return CHECK_DONE();
}
