/* shards_hf.c: `zrt shards export-hf CKPT OUT`: a zrt checkpoint as a
 * Hugging Face directory that AutoModelForCausalLM.from_pretrained loads:
 * config.json and the weights as safetensors under transformers' names, in
 * --dtype, one model.safetensors or, over --max-shard-size,
 * model-0000K-of-0000N.safetensors with model.safetensors.index.json
 * (shards_out.c writes them, one tensor chunk in memory at a time).
 *
 * The models are rows of a table: gpt -> GPT-2 (GPT2LMHeadModel: the four
 * projection weights transposed, Conv1D's layout; the LM head tied by
 * transformers on load), llama -> the architecture the checkpoint's config
 * names (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM: "model."
 * before zrt's names, lm_head.weight as it is, absent when tied).
 *
 * A llama's config.json starts from the config.json the run started from
 * (zrt.model.hf_config, or init_from's directory) when that file is still
 * there, so that what zrt does not model -- bos/eos token ids, a longer
 * max_position_embeddings, a Mistral's sliding_window -- is kept; every key
 * zrt trained with is then written over it from the checkpoint's config.
 * OUT appears whole or not at all (zrt_shards_output_begin/end).
 */
#include "cli.h"
#include "zrt/internal/output.h"
#include "shards.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const cJSON *item(const cJSON *o, const char *key) { return cJSON_GetObjectItemCaseSensitive(o, key); }

/* The checkpoint's zrt.model section. */
static const cJSON *model_of(const zrt_ckpt *c) { return item(item(item(c->meta, "config"), "zrt"), "model"); }

static double number(const cJSON *o, const char *key)
{
    const cJSON *v = item(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static const char *text(const cJSON *o, const char *key)
{
    const cJSON *v = item(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* key = value in cfg, replacing what was there (value NULL: JSON null). */
static void set(cJSON *cfg, const char *key, cJSON *value)
{
    cJSON_DeleteItemFromObjectCaseSensitive(cfg, key);
    cJSON_AddItemToObject(cfg, key, value ? value : cJSON_CreateNull());
}

static void set_number(cJSON *cfg, const char *key, double v) { set(cfg, key, cJSON_CreateNumber(v)); }

static const char *torch_dtype(zrt_dtype d) { return d == ZRT_DTYPE_BF16 ? "bfloat16" : d == ZRT_DTYPE_F16 ? "float16" : "float32"; }

/* ---- GPT-2 ---------------------------------------------------------------------------------------- */

static cJSON *gpt2_config(const shards_options *o, const zrt_ckpt *c, const cJSON *m)
{
    (void)c;
    double C = number(m, "d_model"), hidden = number(m, "hidden");
    cJSON *cfg = cJSON_CreateObject(), *arch = cJSON_AddArrayToObject(cfg, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString("GPT2LMHeadModel"));
    cJSON_AddStringToObject(cfg, "model_type", "gpt2");
    cJSON_AddNumberToObject(cfg, "n_layer", number(m, "layers"));
    cJSON_AddNumberToObject(cfg, "n_embd", C);
    cJSON_AddNumberToObject(cfg, "n_head", number(m, "heads"));
    cJSON_AddNumberToObject(cfg, "n_positions", number(m, "seq_len"));
    cJSON_AddNumberToObject(cfg, "n_ctx", number(m, "seq_len"));
    cJSON_AddNumberToObject(cfg, "vocab_size", number(m, "vocab"));
    cJSON_AddNumberToObject(cfg, "n_inner", hidden > 0 ? hidden : 4 * C);
    cJSON_AddStringToObject(cfg, "activation_function", "gelu_new");
    cJSON_AddNumberToObject(cfg, "layer_norm_epsilon", 1e-5);
    cJSON_AddBoolToObject(cfg, "tie_word_embeddings", true);
    static const char *const zero[] = {"resid_pdrop", "embd_pdrop", "attn_pdrop"};
    for (int k = 0; k < 3; k++) cJSON_AddNumberToObject(cfg, zero[k], 0);
    cJSON_AddStringToObject(cfg, "torch_dtype", torch_dtype(o->dtype));
    return cfg;
}

/* ---- the Llama family ----------------------------------------------------------------------------- */

/* Each architecture's model_type and the keys that say what zrt trained
 * (no o_proj or MLP biases; no sliding window unless the original had one:
 * those keys are written only where the original config.json lacks them). */
static const struct {
    const char *arch, *model_type, *defaults;
} ARCHS[] = {
    {"LlamaForCausalLM", "llama", "{\"attention_bias\": false, \"mlp_bias\": false}"},
    {"MistralForCausalLM", "mistral", "{\"sliding_window\": null}"},
    {"Qwen2ForCausalLM", "qwen2", "{\"use_sliding_window\": false, \"sliding_window\": null}"},
};

/* The config.json the run started from, parsed; NULL when there is none (or it is gone). */
static cJSON *original_config(const cJSON *m, char *path, size_t size)
{
    const char *from = text(m, "hf_config")[0] ? text(m, "hf_config") : text(m, "init_from");
    struct stat st;
    if (!from[0] || stat(from, &st) != 0) return NULL;
    if (S_ISDIR(st.st_mode)) snprintf(path, size, "%s/config.json", from);
    else if (text(m, "hf_config")[0]) snprintf(path, size, "%s", from);
    else return NULL; /* init_from a safetensors file: no config.json */
    FILE *f = fopen(path, "r");
    char *buf = f ? malloc(1 << 20) : NULL;
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    if (f) fclose(f);
    if (buf) buf[n] = '\0';
    cJSON *json = buf ? cJSON_Parse(buf) : NULL;
    free(buf);
    if (json && !cJSON_IsObject(json)) cJSON_Delete(json), json = NULL;
    return json;
}

static void set_rope_scaling(cJSON *cfg, const cJSON *m)
{
    const cJSON *rs = item(m, "rope_scaling");
    if (strcmp(text(rs, "rope_type"), "llama3") != 0) return set(cfg, "rope_scaling", NULL);
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "rope_type", "llama3");
    static const char *const keys[] = {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"};
    for (int k = 0; k < 4; k++) cJSON_AddNumberToObject(out, keys[k], number(rs, keys[k]));
    set(cfg, "rope_scaling", out);
}

/* The architecture's row: the checkpoint's model.architecture ("": by attention_bias). */
static int arch_row(const cJSON *m)
{
    const char *name = text(m, "architecture");
    if (!name[0]) name = cJSON_IsTrue(item(m, "attention_bias")) ? "Qwen2ForCausalLM" : "LlamaForCausalLM";
    for (size_t k = 0; k < sizeof ARCHS / sizeof ARCHS[0]; k++)
        if (strcmp(ARCHS[k].arch, name) == 0) return (int)k;
    return -1;
}

static cJSON *llama_config(const shards_options *o, const zrt_ckpt *c, const cJSON *m)
{
    int row = arch_row(m);
    if (row < 0)
        return fprintf(stderr, "zrt shards export-hf: %s: model.architecture %s is none of LlamaForCausalLM, "
                               "MistralForCausalLM, Qwen2ForCausalLM\n", c->dir, text(m, "architecture")), NULL;
    char path[ZRT_PATH_MAX + 16] = "";
    cJSON *cfg = original_config(m, path, sizeof path);
    if (cfg && !o->json) printf("config.json: keys zrt does not model (token ids, sliding_window, ...) kept from %s\n", path);
    cfg = cfg ? cfg : cJSON_CreateObject();
    cJSON *defaults = cJSON_Parse(ARCHS[row].defaults);
    for (cJSON *d = defaults ? defaults->child : NULL; d; d = d->next)
        if (!item(cfg, d->string)) cJSON_AddItemToObject(cfg, d->string, cJSON_Duplicate(d, true));
    cJSON_Delete(defaults);
    cJSON *arch = cJSON_CreateArray();
    cJSON_AddItemToArray(arch, cJSON_CreateString(ARCHS[row].arch));
    set(cfg, "architectures", arch);
    set(cfg, "model_type", cJSON_CreateString(ARCHS[row].model_type));
    double C = number(m, "d_model"), heads = number(m, "heads"), kv = number(m, "kv_heads");
    static const struct {
        const char *hf, *zrt;
    } same[] = {{"hidden_size", "d_model"}, {"intermediate_size", "hidden"}, {"num_attention_heads", "heads"},
                {"num_hidden_layers", "layers"}, {"vocab_size", "vocab"}, {"rms_norm_eps", "norm_eps"},
                {"rope_theta", "rope_theta"}};
    for (size_t k = 0; k < sizeof same / sizeof same[0]; k++) set_number(cfg, same[k].hf, number(m, same[k].zrt));
    set_number(cfg, "num_key_value_heads", kv > 0 ? kv : heads);
    set_number(cfg, "head_dim", C / heads);
    if (number(cfg, "max_position_embeddings") < number(m, "seq_len")) /* an original's longer context is kept */
        set_number(cfg, "max_position_embeddings", number(m, "seq_len"));
    set_rope_scaling(cfg, m);
    set(cfg, "tie_word_embeddings", cJSON_CreateBool(cJSON_IsTrue(item(m, "tie_embeddings"))));
    set(cfg, "hidden_act", cJSON_CreateString("silu"));
    set_number(cfg, "attention_dropout", 0);
    set(cfg, "torch_dtype", cJSON_CreateString(torch_dtype(o->dtype)));
    return cfg;
}

/* ---- the command ---------------------------------------------------------------------------------- */

static const struct {
    const char *model;
    zrt_model_type type;
    cJSON *(*config)(const shards_options *o, const zrt_ckpt *c, const cJSON *m);
} MODELS[] = {
    {"gpt", ZRT_MODEL_GPT, gpt2_config},
    {"llama", ZRT_MODEL_LLAMA, llama_config},
};

static int write_config(cJSON *cfg, const char *out_dir)
{
    char *json = cfg ? cJSON_Print(cfg) : NULL, path[ZRT_OUT_PATH_MAX + 128];
    cJSON_Delete(cfg);
    if (!json) return ZRT_EXIT_FAIL;
    snprintf(path, sizeof path, "%s/config.json", out_dir);
    FILE *f = fopen(path, "w");
    int rc = f && fputs(json, f) >= 0 && fputc('\n', f) != EOF ? ZRT_EXIT_OK : ZRT_EXIT_FAIL;
    if (f && fclose(f) != 0) rc = ZRT_EXIT_FAIL;
    if (rc != ZRT_EXIT_OK) fprintf(stderr, "zrt shards export-hf: %s: cannot write: %s\n", path, strerror(errno));
    free(json);
    return rc;
}

/* Every parameter of the checkpoint under its Hugging Face name; NULL when out of memory. */
static shards_tensor *hf_tensors(const zrt_ckpt *c, zrt_model_type type, int *n)
{
    *n = 0;
    for (int i = 0; i < c->n_units; i++) *n += c->units[i].n_params;
    shards_tensor *t = calloc((size_t)*n, sizeof *t);
    for (int i = 0, k = 0; t && i < c->n_units; i++)
        for (int j = 0; j < c->units[i].n_params; j++, k++) {
            t[k] = (shards_tensor){.p = &c->units[i].params[j], .unit = i};
            zrt_model_hf_name(type, t[k].p->name, t[k].name, sizeof t[k].name, &t[k].transpose);
            t[k].transpose = t[k].transpose && t[k].p->ndim == 2;
        }
    return t;
}

int zrt_shards_export_hf(const shards_options *o, const zrt_ckpt *c, const char *out_dir)
{
    size_t row = 0;
    while (row < sizeof MODELS / sizeof MODELS[0] && strcmp(MODELS[row].model, c->model) != 0) row++;
    if (row == sizeof MODELS / sizeof MODELS[0] || number(model_of(c), "d_model") <= 0)
        return fprintf(stderr, "zrt shards export-hf: %s: a %s checkpoint; export-hf writes gpt (as GPT-2) and llama "
                               "(Llama, Mistral, Qwen2) ones\n", c->dir, c->model), ZRT_EXIT_FAIL;
    int n;
    shards_tensor *t = hf_tensors(c, MODELS[row].type, &n);
    if (!t) return fprintf(stderr, "zrt shards export-hf: out of memory\n"), ZRT_EXIT_FAIL;
    zrt_out_dir out;
    int rc = zrt_shards_output_begin("export-hf", out_dir, &out);
    if (rc == ZRT_EXIT_OK) {
        rc = write_config(MODELS[row].config(o, c, model_of(c)), out.tmp);
        if (rc == ZRT_EXIT_OK) rc = zrt_shards_write_safetensors(o, c, t, n, &out);
        rc = zrt_shards_output_end("export-hf", &out, rc);
    }
    free(t);
    return rc;
}
