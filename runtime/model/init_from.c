/* init_from.c: initial weights from a file (zrt/model.h, zrt.model.init_from):
 * safetensors in zrt's names and layouts, in Hugging Face GPT-2's, or in
 * the Llama family's (Llama, Mistral, Qwen2: "model." before zrt's names,
 * lm_head.weight without it).
 *
 * Why here, beside the models: the names and layouts are the model's. GPT-2
 * stores its four projection weights with Conv1D, [in, out], the transpose
 * of zrt's (torch Linear's) [out, in]; everything else matches, including
 * the fused qkv order (q, k, v; heads contiguous). The Llama family's
 * Linear weights are zrt's layout already. Which naming a file uses is
 * decided once, by its embedding's name, because a square weight has the
 * same shape either way. Memory: a rank reads only the elements of its
 * range (safetensors_read.c), a transposed weight by the rows it needs.
 */
#include "zrt.h"

#include "safetensors_read.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The namings a file may use, found by its embedding's name; the last row
 * (no embedding to look for) is zrt's own. */
typedef struct {
    const char *embedding;
    const char *prefix; /* before every name but lm_head.weight */
    bool gpt2;          /* wte/wpe + ".weight"; Conv1D weights transposed */
} naming;
static const naming NAMINGS[] = {
    {"transformer.wte.weight", "transformer.", true},
    {"wte.weight", "", true},
    {"model.embed_tokens.weight", "model.", false},
    {NULL, "", false},
};

/* Buffers transformers saves beside the weights, and a tied head. */
static const char *const IGNORED_SUFFIXES[] = {".attn.bias", ".attn.masked_bias", "rotary_emb.inv_freq"};

static const naming *detect_naming(zrt_st_source *s)
{
    const naming *n = NAMINGS;
    zrt_st_tensor t;
    while (n->embedding && zrt_st_find(s, n->embedding, &t) != 1) n++;
    return n;
}

void zrt_model_gpt2_name(const char *zrt_name, const char *prefix, char *out, size_t size, bool *conv1d)
{
    static const char *const suffixes[] = {"attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight"};
    size_t n = strlen(zrt_name);
    *conv1d = false;
    for (int k = 0; k < 4; k++) {
        size_t m = strlen(suffixes[k]);
        *conv1d |= n > m && strcmp(zrt_name + n - m, suffixes[k]) == 0;
    }
    bool embedding = strcmp(zrt_name, "wte") == 0 || strcmp(zrt_name, "wpe") == 0;
    snprintf(out, size, "%s%s%s", prefix, zrt_name, embedding ? ".weight" : "");
}

static void name_in(const naming *n, const char *zrt_name, char *out, size_t size, bool *transpose)
{
    *transpose = false;
    if (n->gpt2) zrt_model_gpt2_name(zrt_name, n->prefix, out, size, transpose);
    else snprintf(out, size, "%s%s", strcmp(zrt_name, "lm_head.weight") == 0 ? "" : n->prefix, zrt_name);
}

void zrt_model_hf_name(zrt_model_type type, const char *zrt_name, char *out, size_t size, bool *transpose)
{
    name_in(type == ZRT_MODEL_GPT ? &NAMINGS[0] : &NAMINGS[2], zrt_name, out, size, transpose);
}

/* A tensor checked against the parameter: its shape (transposed for Conv1D). */
static zrt_status check_shape(const zrt_param_info *p, const char *name, const zrt_st_tensor *t, bool flip)
{
    bool same = t->ndim == (p->ndim ? p->ndim : 1);
    for (int d = 0; same && d < t->ndim; d++)
        same = t->shape[d] == (p->ndim ? p->shape[flip ? 1 - d : d] : p->numel);
    if (same) return ZRT_OK;
    char got[96] = "";
    for (int d = 0; d < t->ndim; d++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "", (long long)t->shape[d]);
    return zrt_set_error(ZRT_ERR_CONFIG, "init_from %s: %s has shape [%s]; zrt's %s is [%lld, %lld]%s", t->file, name,
                         got, p->name, (long long)p->shape[0], (long long)(p->ndim > 1 ? p->shape[1] : 0),
                         flip ? " (stored transposed, as GPT-2's Conv1D)" : "");
}

/* The parameter's tensor, found and checked; *flip: stored transposed. */
static zrt_status find_param(zrt_st_source *s, const naming *n, const zrt_param_info *p, const char *from,
                             zrt_st_tensor *t, bool *flip)
{
    char name[128];
    name_in(n, p->name, name, sizeof name, flip);
    *flip = *flip && p->ndim == 2;
    int found = zrt_st_find(s, name, t);
    if (found < 0) return ZRT_ERR_CONFIG;
    if (!found)
        return zrt_set_error(ZRT_ERR_CONFIG, "init_from %s: no tensor %s (zrt's %s)%s", from, name, p->name,
                             n->embedding ? "" : "; the file has neither zrt's nor Hugging Face's names");
    return check_shape(p, name, t, *flip);
}

/* Elements [lo, hi) of p (zrt's layout) into out. A transposed weight is
 * read by the file rows that hold them: one pread per row, the rows of the
 * range only (memory: the range and two rows). */
static zrt_status read_range(const zrt_st_tensor *t, const zrt_param_info *p, bool flip, int64_t lo, int64_t hi,
                             float *out)
{
    if (!flip) return zrt_st_read(t, lo, hi - lo, out);
    int64_t rows = p->shape[0], cols = p->shape[1], r0 = lo / cols, r1 = (hi - 1) / cols + 1, span = r1 - r0;
    float *part = malloc((size_t)(span * cols) * sizeof(float)); /* [c][r - r0] */
    if (!part) return zrt_set_error(ZRT_ERR_NOMEM, "init_from: out of memory");
    zrt_status status = ZRT_OK;
    for (int64_t c = 0; status == ZRT_OK && c < cols; c++) status = zrt_st_read(t, c * rows + r0, span, part + c * span);
    for (int64_t i = lo; status == ZRT_OK && i < hi; i++) out[i - lo] = part[(i % cols) * span + (i / cols - r0)];
    free(part);
    return status;
}

/* ---- the API --------------------------------------------------------------------------------------- */

typedef struct {
    const zrt_model *model;
    const naming *naming;
    int known;
} tensor_walk;

static bool ignorable(const zrt_model *m, const char *name)
{
    size_t n = strlen(name);
    for (size_t k = 0; k < sizeof IGNORED_SUFFIXES / sizeof IGNORED_SUFFIXES[0]; k++) {
        size_t len = strlen(IGNORED_SUFFIXES[k]);
        if (n >= len && strcmp(name + n - len, IGNORED_SUFFIXES[k]) == 0) return true;
    }
    if (strcmp(name, "lm_head.weight") != 0) return false;
    for (int u = 0; u < m->n_units; u++) /* the head is a parameter only when untied */
        for (int p = 0; p < m->n_params[u]; p++)
            if (strcmp(m->params[u][p].name, "lm_head.weight") == 0) return false;
    return true;
}

static zrt_status known_tensor(void *ctx, const char *file, const char *name)
{
    tensor_walk *w = ctx;
    if (ignorable(w->model, name)) return ZRT_OK;
    for (int u = 0; u < w->model->n_units; u++)
        for (int p = 0; p < w->model->n_params[u]; p++) {
            char mine[128];
            bool flip;
            name_in(w->naming, w->model->params[u][p].name, mine, sizeof mine, &flip);
            if (strcmp(mine, name) == 0) return w->known++, ZRT_OK;
        }
    return zrt_set_error(ZRT_ERR_CONFIG, "init_from %s: tensor %s is not a parameter of this model", file, name);
}

static zrt_status check_config_json(const char *dir, const zrt_model_config *cfg)
{
    char path[ZRT_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *fp = fopen(path, "rb");
    if (!fp) return ZRT_OK; /* a bare weights directory */
    char *text = calloc(1, 1 << 20);
    if (text && fread(text, 1, (1 << 20) - 1, fp) == 0) text[0] = '\0';
    fclose(fp);
    cJSON *c = text ? cJSON_Parse(text) : NULL;
    free(text);
    int64_t inner = cfg->hidden ? cfg->hidden : 4 * cfg->d_model;
    struct {
        const char *key;
        int64_t want;
    } keys[] = {{"n_layer", cfg->layers},     {"n_embd", cfg->d_model}, {"n_head", cfg->heads},
                {"n_positions", cfg->seq_len}, {"vocab_size", cfg->vocab}, {"n_inner", inner}};
    zrt_status status = c ? ZRT_OK : zrt_set_error(ZRT_ERR_CONFIG, "init_from %s: not JSON", path);
    for (size_t k = 0; status == ZRT_OK && k < sizeof keys / sizeof keys[0]; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, keys[k].key);
        int64_t got = cJSON_IsNumber(v) ? (int64_t)v->valuedouble : k == 5 ? 4 * cfg->d_model : -1; /* n_inner null: 4C */
        if (got != keys[k].want)
            status = zrt_set_error(ZRT_ERR_CONFIG, "init_from %s: %s is %lld; zrt.model says %lld", path, keys[k].key,
                                   (long long)got, (long long)keys[k].want);
    }
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(c, "activation_function");
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(c, "layer_norm_epsilon");
    bool tanh_gelu = !cJSON_IsString(act) || strcmp(act->valuestring, "gelu_new") == 0 ||
                     strcmp(act->valuestring, "gelu_pytorch_tanh") == 0;
    if (status == ZRT_OK && !tanh_gelu)
        status = zrt_set_error(ZRT_ERR_CONFIG, "init_from %s: activation_function %s; zrt's GPT uses gelu_new (tanh)",
                               path, act->valuestring);
    if (status == ZRT_OK && cJSON_IsNumber(eps) && eps->valuedouble != 1e-5)
        status = zrt_set_error(ZRT_ERR_CONFIG, "init_from %s: layer_norm_epsilon %g; zrt's GPT uses 1e-5", path,
                               eps->valuedouble);
    cJSON_Delete(c);
    return status;
}

zrt_status zrt_model_init_check(const zrt_model *model, const zrt_model_config *cfg)
{
    struct stat st;
    if (cfg->type == ZRT_MODEL_GPT && stat(cfg->init_from, &st) == 0 && S_ISDIR(st.st_mode))
        ZRT_CHECK(check_config_json(cfg->init_from, cfg));
    zrt_st_source *s;
    ZRT_CHECK(zrt_st_open(cfg->init_from, &s));
    tensor_walk w = {model, detect_naming(s), 0};
    zrt_status status = ZRT_OK;
    int used = 0;
    for (int u = 0; status == ZRT_OK && u < model->n_units; u++)
        for (int p = 0; status == ZRT_OK && p < model->n_params[u]; p++, used++) {
            zrt_st_tensor t;
            bool flip;
            status = find_param(s, w.naming, &model->params[u][p], cfg->init_from, &t, &flip);
        }
    if (status == ZRT_OK) status = zrt_st_each(s, known_tensor, &w);
    if (status == ZRT_OK && w.known != used)
        status = zrt_set_error(ZRT_ERR_CONFIG, "init_from %s: %d tensors for %d parameters", cfg->init_from, w.known, used);
    zrt_st_close(s);
    return status;
}

zrt_status zrt_model_init_values(const zrt_model *model, const zrt_model_config *cfg, int unit, int64_t begin, int64_t n,
                                 float *out)
{
    zrt_st_source *s;
    ZRT_CHECK(zrt_st_open(cfg->init_from, &s));
    const naming *naming = detect_naming(s);
    memset(out, 0, (size_t)n * sizeof(float));
    zrt_status status = ZRT_OK;
    for (int p = 0; status == ZRT_OK && p < model->n_params[unit]; p++) {
        const zrt_param_info *info = &model->params[unit][p];
        int64_t lo = info->offset > begin ? info->offset : begin;
        int64_t hi = info->offset + info->numel < begin + n ? info->offset + info->numel : begin + n;
        if (lo >= hi) continue;
        zrt_st_tensor t;
        bool flip;
        status = find_param(s, naming, info, cfg->init_from, &t, &flip);
        if (status == ZRT_OK) status = read_range(&t, info, flip, lo - info->offset, hi - info->offset, out + (lo - begin));
    }
    zrt_st_close(s);
    return status;
}
