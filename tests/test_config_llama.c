/* test_config_llama.c: zrt.model.type llama's configuration: the shape from
 * a Hugging Face config.json (zrt.model.hf_config, or init_from's directory)
 * for Llama, Mistral and Qwen2; zrt's own keys agreeing with it or refused
 * naming both; every architecture or setting zrt does not implement refused
 * by its config.json name; the Llama defaults and rules without a
 * config.json; activation checkpointing from zrt's key and from DeepSpeed's
 * section, each of that section's keys exact or refused.
 *
 * Runs in $TMPDIR (config.json paths are relative to the working directory,
 * as init_from's are). Each bad case is refused both by zrt_config_load and
 * by `zrt config check`, with its own message.
 */
#include "check.h"
#include "run_cmd.h"
#include "zrt.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static zrt_config cfg;

#define LLAMA_JSON(extra)                                                                                            \
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": 64, "                 \
    "\"intermediate_size\": 96, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2, " \
    "\"vocab_size\": 128, \"rms_norm_eps\": 1e-05, \"rope_theta\": 500000.0, \"tie_word_embeddings\": true, "        \
    "\"hidden_act\": \"silu\", \"attention_bias\": false, \"attention_dropout\": 0.0, \"pad_token_id\": null" extra "}"
#define WITH(arch, extra) "{\"architectures\": [\"" arch "\"], " extra "\"hidden_size\": 64, \"intermediate_size\": 96, " \
    "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 128}"
#define MODEL(keys) "zrt:\n  model: {type: llama, seq_len: 16" keys "}\n"

typedef struct {
    const char *json;     /* written as NAME.json; NULL: none */
    const char *yaml;     /* the config, hf_config: NAME.json appended to its model keys when json is set */
    const char *expected; /* substring of the error */
} bad_case;

static const bad_case bad[] = {
    {WITH("GPT2LMHeadModel", ""), "", "architectures: GPT2LMHeadModel: zrt.model.type llama implements"},
    {WITH("MixtralForCausalLM", ""), "", "architectures: MixtralForCausalLM"},
    {WITH("LlamaForCausalLM", "\"num_local_experts\": 8, "), "", "num_local_experts: 8: a mixture of experts"},
    {WITH("LlamaForCausalLM", "\"use_qk_norm\": true, "), "", "use_qk_norm: true: q/k norms"},
    {WITH("MistralForCausalLM", "\"sliding_window\": 8, "), "", "sliding_window: 8: shorter than zrt.model.seq_len"},
    {WITH("Qwen2ForCausalLM", "\"use_sliding_window\": true, \"sliding_window\": 4, "), "",
     "sliding_window: 4: shorter than"},
    {WITH("LlamaForCausalLM", "\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4}, "), "",
     "rope_scaling: rope_type yarn: zrt implements llama3's only"},
    {WITH("LlamaForCausalLM", "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2}, "), "", "rope_type linear"},
    {WITH("LlamaForCausalLM", "\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8}, "), "",
     "rope_scaling: low_freq_factor is required for llama3"},
    {WITH("LlamaForCausalLM", "\"hidden_act\": \"gelu\", "), "", "hidden_act: gelu: zrt implements SwiGLU with silu"},
    {WITH("LlamaForCausalLM", "\"mlp_bias\": true, "), "", "mlp_bias: true: MLP biases"},
    {WITH("LlamaForCausalLM", "\"head_dim\": 32, "), "", "head_dim: 32: zrt's head size is hidden_size"},
    {WITH("LlamaForCausalLM", "\"attention_dropout\": 0.1, "), "", "attention_dropout: 0.1: zrt does not implement dropout"},
    {WITH("LlamaForCausalLM", "\"attention_bias\": true, "), "", "attention_bias: true: this architecture then has an o_proj bias"},
    {WITH("LlamaForCausalLM", "\"pad_token_id\": 0, "), "", "pad_token_id: 0: transformers never updates that embedding row"},
    {WITH("LlamaForCausalLM", "\"initializer_range\": 0.01, "), "", "initializer_range: 0.01: zrt initialises with std 0.02"},
    {"{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64}", "", "intermediate_size: is required (zrt.model.hidden)"},
    {"[1, 2]", "", "expected a map of keys at the top level"},
    /* zrt's keys against config.json's */
    {LLAMA_JSON(""), ", kv_heads: 4", "zrt.model.kv_heads: 4 disagrees with num_key_value_heads 2 in hf"},
    {LLAMA_JSON(""), ", layers: 3", "zrt.model.layers: 3 disagrees with num_hidden_layers 2"},
    {LLAMA_JSON(""), ", tie_embeddings: false", "zrt.model.tie_embeddings: 0 disagrees with tie_word_embeddings 1"},
    {LLAMA_JSON(""), ", rope_theta: 10000", "zrt.model.rope_theta: 10000 disagrees with rope_theta 500000"},
    {LLAMA_JSON(""), ", attention_bias: true", "zrt.model.attention_bias: 1 disagrees with (its architecture's) q, k, v"},
    {LLAMA_JSON(""), ", architecture: MistralForCausalLM", "zrt.model.architecture: MistralForCausalLM disagrees with"},
    {LLAMA_JSON(""), ", rope_scaling: {rope_type: llama3, factor: 8, low_freq_factor: 1, high_freq_factor: 4, "
     "original_max_position_embeddings: 64}", "zrt.model.rope_scaling.rope_type: 1 disagrees with rope_scaling.rope_type 0"},
    /* without a config.json */
    {NULL, ", d_model: 64, heads: 4", "zrt.model.hidden: is required for llama"},
    {NULL, ", d_model: 64, heads: 4, hidden: 96, kv_heads: 3", "zrt.model.kv_heads: 3 does not divide zrt.model.heads 4"},
    {NULL, ", d_model: 64, heads: 4, hidden: 96, rope_scaling: {factor: 8}", "rope_type llama3 and factor go together"},
    {NULL, ", d_model: 64, heads: 4, hidden: 96, rope_scaling: {rope_type: yarn}", "rope_type: yarn is not one of default, llama3"},
    {NULL, ", d_model: 64, heads: 4, hidden: 96, architecture: Qwen2ForCausalLM",
     "zrt.model.architecture: Qwen2ForCausalLM has q, k and v biases: zrt.model.attention_bias must be true"},
    {NULL, ", d_model: 64, heads: 4, hidden: 96, architecture: GemmaForCausalLM", "GemmaForCausalLM: one of LlamaForCausalLM"},
    {NULL, ", hf_config: missing.json", "missing.json"},
    /* llama's keys on another model */
    {"", "zrt:\n  model: {type: gpt, kv_heads: 2}\n", "kv_heads is read only when zrt.model.type is llama"},
    /* activation checkpointing */
    {"", "zrt:\n  activation_checkpointing: true\n", "zrt.activation_checkpointing: needs a model of blocks"},
};
#define N_BAD (sizeof bad / sizeof bad[0])

/* DeepSpeed JSON cases: the zrt section inside the JSON. */
#define DS_LLAMA "\"zrt\": {\"model\": {\"type\": \"llama\", \"d_model\": 64, \"heads\": 4, \"hidden\": 96}"
static const bad_case bad_json[] = {
    {NULL, "{\"activation_checkpointing\": {\"cpu_checkpointing\": true}, " DS_LLAMA "}}",
     "activation_checkpointing.cpu_checkpointing: true is implemented with zrt.device cpu only"},
    {NULL, "{\"activation_checkpointing\": {\"number_checkpoints\": 3}, " DS_LLAMA "}}",
     "activation_checkpointing.number_checkpoints: 3: zrt checkpoints every block, so it must equal zrt.model.layers 4"},
    {NULL, "{\"activation_checkpointing\": {\"profile\": true}, " DS_LLAMA "}}",
     "activation_checkpointing.profile: true: zrt does not time"},
    {NULL, "{\"activation_checkpointing\": {\"partition_activation\": true}, " DS_LLAMA "}}",
     "activation_checkpointing.partition_activation: unknown key"},
    {NULL, "{\"activation_checkpointing\": {}, " DS_LLAMA ", \"activation_checkpointing\": false}}",
     "activation_checkpointing: is given (checkpointing on) and zrt.activation_checkpointing is false"},
};


static void put(const char *name, const char *text)
{
    FILE *f = fopen(name, "w");
    CHECK(f && fputs(text, f) >= 0);
    if (f) fclose(f);
}

static void refused(const char *name, const char *text, const char *expected)
{
    put(name, text);
    CHECK_MSG(zrt_config_load(&cfg, name) == ZRT_ERR_CONFIG && strstr(zrt_last_error(), expected),
              "%s:\n  expected: %s\n  got:      %s", name, expected, zrt_last_error());
    char out[8192];
    int rc = run_config_check(name, out, sizeof out);
    CHECK_MSG(rc == 1 && strstr(out, expected), "%s: zrt config check exited %d:\n%s", name, rc, out);
}

static void check_bad(void)
{
    for (size_t i = 0; i < N_BAD; i++) {
        char yaml[64], json[64], text[4096];
        snprintf(yaml, sizeof yaml, "bad%zu.yaml", i);
        snprintf(json, sizeof json, "hf%zu.json", i);
        const bad_case *c = &bad[i];
        if (c->json && c->json[0]) put(json, c->json);
        if (c->yaml[0] == 'z') snprintf(text, sizeof text, "%s", c->yaml);
        else if (c->json) snprintf(text, sizeof text, MODEL("%s, hf_config: %s"), c->yaml, json);
        else snprintf(text, sizeof text, MODEL("%s"), c->yaml);
        refused(yaml, text, c->expected);
    }
    for (size_t i = 0; i < sizeof bad_json / sizeof bad_json[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "bad_ds%zu.json", i);
        refused(name, bad_json[i].yaml, bad_json[i].expected);
    }
}

static void load_ok(const char *name, const char *text)
{
    put(name, text);
    CHECK_MSG(zrt_config_load(&cfg, name) == ZRT_OK, "%s: %s", name, zrt_last_error());
}

/* The shape taken from config.json; zrt's agreeing keys accepted. */
static void check_from_json(void)
{
    put("llama.json", LLAMA_JSON(", \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": "
                                   "1.0, \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 64}"));
    load_ok("llama.yaml", MODEL(", kv_heads: 2, tie_embeddings: true, hf_config: llama.json"));
    const zrt_model_config *m = &cfg.job.model;
    CHECK(m->layers == 2 && m->d_model == 64 && m->heads == 4 && m->kv_heads == 2 && m->hidden == 96);
    CHECK(m->vocab == 128 && m->seq_len == 16 && m->rope_theta == 500000 && m->norm_eps == 1e-5);
    CHECK(m->tie_embeddings && !m->attention_bias && strcmp(m->architecture, "LlamaForCausalLM") == 0);
    CHECK(m->rope_type == 1 && m->rope_factor == 8 && m->rope_low_freq_factor == 1 && m->rope_high_freq_factor == 4);
    CHECK(m->rope_original_max_positions == 64);
    /* init_from's directory: its config.json is read without hf_config. */
    mkdir("qwen", 0700);
    put("qwen/config.json", WITH("Qwen2ForCausalLM", "\"num_key_value_heads\": 2, \"use_sliding_window\": false, "
                                   "\"sliding_window\": 4, \"tie_word_embeddings\": false, "));
    load_ok("qwen.yaml", MODEL(", init_from: qwen"));
    CHECK(m->attention_bias && m->kv_heads == 2 && !m->tie_embeddings && m->rope_theta == 10000 && m->norm_eps == 1e-6);
    CHECK(strcmp(m->architecture, "Qwen2ForCausalLM") == 0 && m->rope_type == 0 && m->rope_factor == 0);
    mkdir("mistral", 0700);
    put("mistral/config.json", WITH("MistralForCausalLM", "\"sliding_window\": null, \"num_key_value_heads\": 4, "));
    load_ok("mistral.yaml", MODEL(", hf_config: mistral, layers: 2"));
    CHECK(strcmp(m->architecture, "MistralForCausalLM") == 0 && m->kv_heads == 4 && m->layers == 2);
    put("mistral/config.json", WITH("MistralForCausalLM", "\"sliding_window\": 16, "));
    load_ok("mistral16.yaml", MODEL(", hf_config: mistral")); /* a window of seq_len masks nothing */
    char *dumped = zrt_config_to_json(&cfg);
    CHECK(dumped && strstr(dumped, "\"architecture\":\t\"MistralForCausalLM\""));
    free(dumped);
}

static void check_defaults(void)
{
    load_ok("plain.yaml", MODEL(", d_model: 64, heads: 8, hidden: 100, attention_bias: true"));
    const zrt_model_config *m = &cfg.job.model;
    CHECK(m->rope_theta == 10000 && m->norm_eps == 1e-6 && m->kv_heads == 0 && m->hidden == 100);
    CHECK(strcmp(m->architecture, "Qwen2ForCausalLM") == 0); /* q, k, v biases: Qwen2's */
    load_ok("tokens.yaml", "zrt:\n  model: {type: llama, d_model: 64, heads: 4, hidden: 96, vocab: 128}\n"
                           "  data: {type: tokens, train: llama.json}\n");
    /* DeepSpeed's section: present turns it on; exact keys accepted. */
    load_ok("ac.json", "{\"activation_checkpointing\": {\"partition_activations\": true, \"number_checkpoints\": 4, "
                       "\"contiguous_memory_optimization\": true, \"synchronize_checkpoint_boundary\": true}, " DS_LLAMA
                       "}}");
    CHECK(m->activation_checkpointing && cfg.activation_checkpointing.number_checkpoints == 4);
    load_ok("ac_cpu.json", "{\"activation_checkpointing\": {\"cpu_checkpointing\": true}, " DS_LLAMA
                           ", \"activation_checkpointing\": true, \"device\": \"cpu\"}}");
    CHECK(m->activation_checkpointing);
    load_ok("no_ac.json", "{" DS_LLAMA "}}");
    CHECK(!m->activation_checkpointing);
    load_ok("zrt_ac.yaml", MODEL(", d_model: 64, heads: 4, hidden: 96") "  activation_checkpointing: true\n");
    CHECK(m->activation_checkpointing);
}

int main(void)
{
    const char *dir = test_tmpdir();
    char bin[2048];
    const char *env = getenv("ZRT_BIN");
    if (env && env[0] != '/') { /* the CLI path stays valid after the chdir */
        char cwd[1024];
        snprintf(bin, sizeof bin, "%s/%s", getcwd(cwd, sizeof cwd) ? cwd : ".", env);
        setenv("ZRT_BIN", bin, 1);
    }
    if (chdir(dir) != 0) return 1;
    check_bad();
    check_from_json();
    check_defaults();
    printf("%zu bad llama configs refused\n", N_BAD + sizeof bad_json / sizeof bad_json[0]);
    return CHECK_DONE();
}
