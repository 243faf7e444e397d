/* config_hf.c: a Hugging Face config.json as the shape of zrt.model.type
 * llama (Llama 2/3, Mistral, Qwen2), and the Llama family's own rules.
 *
 * Why in the config: `zrt config check` and the start of training must see
 * the same shape, and a model that zrt would only approximate must be
 * refused before any rank starts. The file is read when zrt.model.hf_config
 * names it (a config.json or its directory) or when init_from is a directory
 * holding one.
 *
 * Rules: each zrt.model key a configuration file set must equal config.json's
 * value (an error names both); the keys it did not set are filled from it.
 * Anything zrt does not implement is refused by its config.json name, never
 * approximated: other architectures, mixtures of experts, q/k norms, a
 * sliding window shorter than seq_len, rope_scaling other than llama3, an
 * activation other than silu, MLP or o_proj biases, a head_dim other than
 * hidden_size / num_attention_heads, attention dropout, a padding row (which
 * transformers never updates).
 */
#include "config_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define OFF(member) offsetof(zrt_model_config, member)

/* The architectures zrt implements; qkv_bias: q, k and v always have biases;
 * window_flag: the key that switches sliding_window on ("" = its presence). */
static const struct {
    const char *name;
    bool qkv_bias;
    const char *window_flag;
} ARCHS[] = {
    {"LlamaForCausalLM", false, NULL},
    {"MistralForCausalLM", false, ""},
    {"Qwen2ForCausalLM", true, "use_sliding_window"},
};
#define N_ARCHS (int)(sizeof ARCHS / sizeof ARCHS[0])

/* zrt.model key <- config.json key; absent: `fallback` (NAN: required; for
 * kv_heads, the heads). */
typedef enum { KIND_INT, KIND_DOUBLE, KIND_BOOL, KIND_ENUM } kind; /* int64_t, double, bool, int */
static const struct {
    const char *zrt, *hf;
    kind kind;
    size_t offset;
    double fallback;
} KEYS[] = {
    {"layers", "num_hidden_layers", KIND_INT, OFF(layers), NAN},
    {"d_model", "hidden_size", KIND_INT, OFF(d_model), NAN},
    {"heads", "num_attention_heads", KIND_INT, OFF(heads), NAN},
    {"kv_heads", "num_key_value_heads", KIND_INT, OFF(kv_heads), 0},
    {"hidden", "intermediate_size", KIND_INT, OFF(hidden), NAN},
    {"vocab", "vocab_size", KIND_INT, OFF(vocab), NAN},
    {"rope_theta", "rope_theta", KIND_DOUBLE, OFF(rope_theta), 10000},
    {"norm_eps", "rms_norm_eps", KIND_DOUBLE, OFF(norm_eps), 1e-6},
    {"tie_embeddings", "tie_word_embeddings", KIND_BOOL, OFF(tie_embeddings), 0},
};

/* rope_scaling's keys, compared as one with zrt.model.rope_scaling. */
static const struct {
    const char *hf;
    kind kind;
    size_t offset;
} ROPE_KEYS[] = {
    {"factor", KIND_DOUBLE, OFF(rope_factor)},
    {"low_freq_factor", KIND_DOUBLE, OFF(rope_low_freq_factor)},
    {"high_freq_factor", KIND_DOUBLE, OFF(rope_high_freq_factor)},
    {"original_max_position_embeddings", KIND_INT, OFF(rope_original_max_positions)},
};

typedef struct {
    zrt_config *cfg;
    zrt_cfg_errors *errs;
    const char *path; /* the config.json */
    const cJSON *json;
    int arch;         /* into ARCHS */
} reader;

static double get(const zrt_model_config *m, kind k, size_t offset)
{
    const char *p = (const char *)m + offset;
    switch (k) {
    case KIND_INT: return (double)*(const int64_t *)p;
    case KIND_DOUBLE: return *(const double *)p;
    case KIND_BOOL: return *(const bool *)p;
    case KIND_ENUM: return *(const int *)p;
    }
    return 0;
}

static void set(zrt_model_config *m, kind k, size_t offset, double v)
{
    char *p = (char *)m + offset;
    switch (k) {
    case KIND_INT: *(int64_t *)p = (int64_t)v; break;
    case KIND_DOUBLE: *(double *)p = v; break;
    case KIND_BOOL: *(bool *)p = v != 0; break;
    case KIND_ENUM: *(int *)p = (int)v; break;
    }
}

static const cJSON *item(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNull(v) ? NULL : v;
}

/* A number or bool of config.json; false (with an error) when it is another kind. */
static bool number(reader *r, const cJSON *obj, const char *key, double *out)
{
    const cJSON *v = item(obj, key);
    if (!v) return false;
    if (cJSON_IsBool(v)) *out = cJSON_IsTrue(v);
    else if (cJSON_IsNumber(v)) *out = v->valuedouble;
    else {
        zrt_cfg_error(r->errs, r->path, key, "expected a number or a boolean");
        return false;
    }
    return true;
}

/* Takes or compares one value: zrt's given one must equal config.json's. */
static void settle(reader *r, const char *zrt_key, bool given, const char *hf_key, kind k, size_t offset, double hf)
{
    zrt_model_config *m = &r->cfg->job.model;
    if (!given) {
        set(m, k, offset, hf);
        return;
    }
    double mine = get(m, k, offset);
    if (mine == hf || (k == KIND_DOUBLE && fabs(mine - hf) <= 1e-12 * fabs(hf))) return;
    zrt_cfg_error(r->errs, zrt_cfg_zrt_file(r->cfg), zrt_key, "%.17g disagrees with %s %.17g in %s", mine, hf_key,
                  hf, r->path);
}

static void read_shape(reader *r)
{
    zrt_model_config *m = &r->cfg->job.model;
    for (size_t i = 0; i < sizeof KEYS / sizeof KEYS[0]; i++) {
        double v = KEYS[i].fallback;
        if (!number(r, r->json, KEYS[i].hf, &v) && isnan(v)) {
            zrt_cfg_error(r->errs, r->path, KEYS[i].hf, "is required (zrt.model.%s)", KEYS[i].zrt);
            continue;
        }
        if (v == 0 && KEYS[i].offset == OFF(kv_heads)) number(r, r->json, "num_attention_heads", &v);
        char key[64];
        snprintf(key, sizeof key, "zrt.model.%s", KEYS[i].zrt);
        settle(r, key, zrt_cfg_model_given(r->cfg, KEYS[i].zrt), KEYS[i].hf, KEYS[i].kind, KEYS[i].offset, v);
    }
    settle(r, "zrt.model.attention_bias", zrt_cfg_model_given(r->cfg, "attention_bias"), "(its architecture's) q, k, v biases",
           KIND_BOOL, OFF(attention_bias), ARCHS[r->arch].qkv_bias);
    if (zrt_cfg_model_given(r->cfg, "architecture") && strcmp(m->architecture, ARCHS[r->arch].name) != 0)
        zrt_cfg_error(r->errs, zrt_cfg_zrt_file(r->cfg), "zrt.model.architecture", "%s disagrees with architectures "
                      "[%s] in %s", m->architecture, ARCHS[r->arch].name, r->path);
    snprintf(m->architecture, sizeof m->architecture, "%s", ARCHS[r->arch].name);
}

/* rope_scaling: null, {rope_type: default}, or Llama 3's. */
static void read_rope(reader *r)
{
    const cJSON *rs = item(r->json, "rope_scaling");
    const cJSON *type = rs ? item(rs, "rope_type") : NULL;
    if (rs && !type) type = item(rs, "type");
    const char *name = cJSON_IsString(type) ? type->valuestring : rs ? "(none given)" : "default";
    bool llama3 = strcmp(name, "llama3") == 0;
    if (!llama3 && strcmp(name, "default") != 0) {
        zrt_cfg_error(r->errs, r->path, "rope_scaling", "rope_type %s: zrt implements llama3's only", name);
        return;
    }
    bool given = zrt_cfg_model_given(r->cfg, "rope_scaling");
    settle(r, "zrt.model.rope_scaling.rope_type", given, "rope_scaling.rope_type", KIND_ENUM, OFF(rope_type), llama3);
    for (size_t i = 0; i < sizeof ROPE_KEYS / sizeof ROPE_KEYS[0]; i++) {
        double v = 0;
        if (llama3 && !number(r, rs, ROPE_KEYS[i].hf, &v))
            zrt_cfg_error(r->errs, r->path, "rope_scaling", "%s is required for llama3", ROPE_KEYS[i].hf);
        char zrt_key[80], hf_key[80];
        snprintf(zrt_key, sizeof zrt_key, "zrt.model.rope_scaling.%s", ROPE_KEYS[i].hf);
        snprintf(hf_key, sizeof hf_key, "rope_scaling.%s", ROPE_KEYS[i].hf);
        settle(r, zrt_key, given, hf_key, ROPE_KEYS[i].kind, ROPE_KEYS[i].offset, v);
    }
}

static int find_arch(reader *r)
{
    const cJSON *archs = item(r->json, "architectures");
    const cJSON *first = cJSON_IsArray(archs) && cJSON_GetArraySize(archs) == 1 ? archs->child : NULL;
    const char *name = cJSON_IsString(first) ? first->valuestring : NULL;
    for (int a = 0; name && a < N_ARCHS; a++)
        if (strcmp(name, ARCHS[a].name) == 0) return a;
    zrt_cfg_error(r->errs, r->path, "architectures", "%s: zrt.model.type llama implements LlamaForCausalLM, "
                  "MistralForCausalLM and Qwen2ForCausalLM (one of them, as a list of one)",
                  name ? name : "not a list of one name");
    return -1;
}

/* A key of config.json whose value zrt does not implement: "KEY VALUE: why". */
static void refuse_if(reader *r, bool cond, const char *key, const char *why)
{
    if (!cond) return;
    char value[64] = "";
    const cJSON *v = item(r->json, key);
    if (cJSON_IsNumber(v)) snprintf(value, sizeof value, " %g", v->valuedouble);
    else if (cJSON_IsString(v)) snprintf(value, sizeof value, " %.48s", v->valuestring);
    else if (cJSON_IsBool(v)) snprintf(value, sizeof value, " %s", cJSON_IsTrue(v) ? "true" : "false");
    zrt_cfg_error(r->errs, r->path, key, "%s%s", value + (value[0] ? 1 : 0), why);
}

static bool truthy(const cJSON *json, const char *key)
{
    const cJSON *v = item(json, key);
    return cJSON_IsTrue(v) || (cJSON_IsNumber(v) && v->valuedouble != 0);
}

static void refuse_unimplemented(reader *r)
{
    const cJSON *j = r->json;
    const zrt_model_config *m = &r->cfg->job.model;
    const cJSON *act = item(j, "hidden_act"), *window = item(j, "sliding_window"), *hd = item(j, "head_dim");
    refuse_if(r, truthy(j, "num_local_experts") || truthy(j, "num_experts"), item(j, "num_experts") ? "num_experts" : "num_local_experts",
              ": a mixture of experts, which zrt does not implement (dense models only)");
    refuse_if(r, truthy(j, "use_qk_norm") || truthy(j, "qk_norm"), item(j, "qk_norm") ? "qk_norm" : "use_qk_norm",
              ": q/k norms, which zrt does not implement");
    refuse_if(r, act && (!cJSON_IsString(act) || strcmp(act->valuestring, "silu") != 0), "hidden_act",
              ": zrt implements SwiGLU with silu only");
    refuse_if(r, truthy(j, "mlp_bias"), "mlp_bias", ": MLP biases, which zrt does not implement");
    refuse_if(r, truthy(j, "attention_dropout"), "attention_dropout", ": zrt does not implement dropout (0 only)");
    refuse_if(r, !ARCHS[r->arch].qkv_bias && truthy(j, "attention_bias"), "attention_bias",
              ": this architecture then has an o_proj bias too, which zrt does not implement (zrt's attention_bias "
              "is q, k and v only, as Qwen2 has)");
    refuse_if(r, item(j, "pad_token_id") != NULL, "pad_token_id",
              ": transformers never updates that embedding row (nn.Embedding padding_idx), which zrt does not "
              "implement; set it to null");
    refuse_if(r, hd && m->heads > 0 && (!cJSON_IsNumber(hd) || hd->valuedouble != (double)(m->d_model / m->heads)),
              "head_dim", ": zrt's head size is hidden_size / num_attention_heads");
    const char *flag = ARCHS[r->arch].window_flag;
    bool window_on = flag && (!flag[0] || truthy(j, flag));
    refuse_if(r, window_on && cJSON_IsNumber(window) && window->valuedouble < (double)m->seq_len, "sliding_window",
              ": shorter than zrt.model.seq_len, so the window would mask, which zrt does not implement (null, or "
              "at least seq_len, is exact)");
    double range = 0.02;
    number(r, j, "initializer_range", &range);
    refuse_if(r, range != 0.02 && !m->init_from[0], "initializer_range",
              ": zrt initialises with std 0.02 (give init_from weights, or 0.02)");
}

/* The config.json to read: hf_config (a file or a directory), else
 * init_from's when it is a directory holding one; "" when none. */
static void find_json(const zrt_config *cfg, char *out, size_t size)
{
    const zrt_model_config *m = &cfg->job.model;
    struct stat st;
    out[0] = '\0';
    const char *dir = m->hf_config[0] ? m->hf_config : m->init_from;
    if (!dir[0] || stat(dir, &st) != 0) {
        if (m->hf_config[0]) snprintf(out, size, "%s", m->hf_config); /* read_tree names the error */
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        if (m->hf_config[0]) snprintf(out, size, "%s", dir);
        return;
    }
    snprintf(out, size, "%s/config.json", dir);
    if (!m->hf_config[0] && stat(out, &st) != 0) out[0] = '\0';
}

static void read_json(zrt_config *cfg, const char *path, zrt_cfg_errors *errs)
{
    zrt_cfg_format format;
    int before = errs->count;
    cJSON *json = zrt_cfg_read_tree(path, &format, errs);
    if (!json) return;
    reader r = {cfg, errs, path, json, 0};
    if ((r.arch = find_arch(&r)) >= 0) {
        read_shape(&r);
        read_rope(&r);
        if (errs->count == before) refuse_unimplemented(&r);
    }
    cJSON_Delete(json);
}

/* architecture: "" resolves by attention_bias; a named one must fit it. */
static void settle_architecture(zrt_config *cfg, zrt_cfg_errors *errs)
{
    zrt_model_config *m = &cfg->job.model;
    if (!m->architecture[0])
        snprintf(m->architecture, sizeof m->architecture, "%s", m->attention_bias ? "Qwen2ForCausalLM" : "LlamaForCausalLM");
    for (int a = 0; a < N_ARCHS; a++) {
        if (strcmp(m->architecture, ARCHS[a].name) != 0) continue;
        if (ARCHS[a].qkv_bias != m->attention_bias)
            zrt_cfg_error(errs, zrt_cfg_zrt_file(cfg), "zrt.model.architecture", "%s %s q, k and v biases: "
                          "zrt.model.attention_bias must be %s", m->architecture, ARCHS[a].qkv_bias ? "has" : "has no",
                          ARCHS[a].qkv_bias ? "true" : "false");
        return;
    }
    zrt_cfg_error(errs, zrt_cfg_zrt_file(cfg), "zrt.model.architecture", "%s: one of LlamaForCausalLM, "
                  "MistralForCausalLM, Qwen2ForCausalLM", m->architecture);
}

/* The zrt.model keys only a llama reads. */
static const char *const llama_only[] = {"hf_config", "kv_heads", "rope_theta", "norm_eps", "tie_embeddings",
                                         "attention_bias", "rope_scaling", "architecture"};
#define N_LLAMA_ONLY (sizeof llama_only / sizeof llama_only[0])

void zrt_cfg_hf_dump_prune(const zrt_config *cfg, cJSON *zrt_section)
{
    cJSON *model = cJSON_GetObjectItemCaseSensitive(zrt_section, "model");
    for (size_t i = 0; cfg->job.model.type != ZRT_MODEL_LLAMA && i < N_LLAMA_ONLY; i++)
        cJSON_DeleteItemFromObjectCaseSensitive(model, llama_only[i]);
    if (cfg->job.model.rope_factor == 0) /* no scaling: the section's zeros are not values it accepts */
        cJSON_DeleteItemFromObjectCaseSensitive(model, "rope_scaling");
}

void zrt_cfg_hf_llama(zrt_config *cfg, zrt_cfg_errors *errs)
{
    zrt_model_config *m = &cfg->job.model;
    const char *file = zrt_cfg_zrt_file(cfg);
    if (m->type != ZRT_MODEL_LLAMA) {
        for (size_t i = 0; i < N_LLAMA_ONLY; i++)
            if (zrt_cfg_model_given(cfg, llama_only[i]))
                zrt_cfg_error(errs, file, "zrt.model", "%s is read only when zrt.model.type is llama", llama_only[i]);
        return;
    }
    char path[ZRT_PATH_MAX + 16];
    find_json(cfg, path, sizeof path);
    int before = errs->count;
    if (path[0]) read_json(cfg, path, errs);
    if (errs->count != before) return;
    if (m->rope_theta == 0) m->rope_theta = 10000;
    if (m->norm_eps == 0) m->norm_eps = 1e-6;
    if (m->hidden == 0)
        zrt_cfg_error(errs, file, "zrt.model.hidden", "is required for llama (the MLP width, intermediate_size), or "
                      "give zrt.model.hf_config");
    if (m->d_model % m->heads != 0)
        zrt_cfg_error(errs, file, "zrt.model.d_model", "%lld is not divisible by zrt.model.heads %lld",
                      (long long)m->d_model, (long long)m->heads);
    else if (m->kv_heads && m->heads % m->kv_heads != 0)
        zrt_cfg_error(errs, file, "zrt.model.kv_heads", "%lld does not divide zrt.model.heads %lld",
                      (long long)m->kv_heads, (long long)m->heads);
    if ((m->rope_type == 1) != (m->rope_factor != 0))
        zrt_cfg_error(errs, file, "zrt.model.rope_scaling", "rope_type llama3 and factor go together (rope_type %s, "
                      "factor %g)", m->rope_type ? "llama3" : "default", m->rope_factor);
    settle_architecture(cfg, errs);
}
