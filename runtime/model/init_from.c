/* init_from.c: initial weights from a file (zrt/model.h, zrt.model.init_from):
 * safetensors in zrt's names and layouts or in Hugging Face GPT-2's.
 *
 * Why here, beside the models: the names and layouts are the model's. GPT-2
 * stores its four projection weights with Conv1D, [in, out], the transpose
 * of zrt's (torch Linear's) [out, in]; everything else matches, including
 * the fused qkv order (q, k, v; heads contiguous). Which naming a file uses
 * is decided once, by its embedding's name ("wte" is zrt's; "wte.weight" or
 * "transformer.wte.weight" GPT-2's), because a square weight (c_proj) has
 * the same shape either way. Memory: one parameter at a time.
 */
#include "zrt.h"

#include "cast.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEADER_MAX (100 << 20)

typedef struct {
    char file[ZRT_PATH_MAX + 64];
    cJSON *header;
    long long data_start;
} st_file;

typedef struct {
    st_file files[8];
    int n_files;
    const char *prefix; /* GPT-2: "transformer." or ""; NULL: zrt's names */
} st_source;

static zrt_status open_file(const char *path, st_file *f)
{
    snprintf(f->file, sizeof f->file, "%s", path);
    FILE *fp = fopen(path, "rb");
    if (!fp) return zrt_set_error(ZRT_ERR_CONFIG, "init_from %s: cannot open: %s", path, strerror(errno));
    uint64_t n = 0;
    char *text = NULL;
    bool ok = fread(&n, 8, 1, fp) == 1 && n > 1 && n < HEADER_MAX && (text = malloc(n + 1)) && fread(text, 1, n, fp) == n;
    fclose(fp);
    if (ok) text[n] = '\0';
    f->header = ok ? cJSON_Parse(text) : NULL;
    free(text);
    f->data_start = 8 + (long long)n;
    if (!cJSON_IsObject(f->header))
        return zrt_set_error(ZRT_ERR_CONFIG, "init_from %s: not a safetensors file (bad header)", path);
    return ZRT_OK;
}

/* path: a file, or a directory with model.safetensors or model.safetensors.index.json. */
static zrt_status open_source(const char *path, st_source *s)
{
    memset(s, 0, sizeof *s);
    struct stat st;
    if (stat(path, &st) != 0) return zrt_set_error(ZRT_ERR_CONFIG, "init_from %s: %s", path, strerror(errno));
    char file[ZRT_PATH_MAX + 64];
    if (!S_ISDIR(st.st_mode)) return open_file(path, &s->files[s->n_files++]);
    snprintf(file, sizeof file, "%s/model.safetensors", path);
    if (access(file, F_OK) == 0) return open_file(file, &s->files[s->n_files++]);
    snprintf(file, sizeof file, "%s/model.safetensors.index.json", path);
    FILE *fp = fopen(file, "rb");
    char *text = fp ? calloc(1, 1 << 22) : NULL;
    if (fp && text && fread(text, 1, (1 << 22) - 1, fp) == 0) text[0] = '\0';
    if (fp) fclose(fp);
    cJSON *index = text ? cJSON_Parse(text) : NULL, *map = cJSON_GetObjectItemCaseSensitive(index, "weight_map");
    free(text);
    zrt_status status = cJSON_IsObject(map) ? ZRT_OK
                                            : zrt_set_error(ZRT_ERR_CONFIG, "init_from %s: no model.safetensors and no "
                                                                            "readable model.safetensors.index.json", path);
    for (const cJSON *e = map ? map->child : NULL; status == ZRT_OK && e; e = e->next) {
        bool seen = false;
        for (int i = 0; i < s->n_files && cJSON_IsString(e); i++)
            seen |= strstr(s->files[i].file, e->valuestring) != NULL;
        if (seen || !cJSON_IsString(e) || strchr(e->valuestring, '/')) continue;
        if (s->n_files == 8) status = zrt_set_error(ZRT_ERR_CONFIG, "init_from %s: more than 8 files", path);
        snprintf(file, sizeof file, "%s/%s", path, e->valuestring);
        if (status == ZRT_OK) status = open_file(file, &s->files[s->n_files++]);
    }
    cJSON_Delete(index);
    return status;
}

static void close_source(st_source *s)
{
    for (int i = 0; i < s->n_files; i++) cJSON_Delete(s->files[i].header);
}

static const cJSON *find(const st_source *s, const char *name, const st_file **in)
{
    for (int i = 0; i < s->n_files; i++) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(s->files[i].header, name);
        if (t) return *in = &s->files[i], t;
    }
    return NULL;
}

/* ---- names and layouts ---------------------------------------------------------------------------- */

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

static bool conv1d(const char *zrt_name)
{
    char name[128];
    bool flip;
    zrt_model_gpt2_name(zrt_name, "", name, sizeof name, &flip);
    return flip;
}

/* The name of a zrt parameter in the file. */
static void file_name(const st_source *s, const char *zrt_name, char *out, size_t size)
{
    bool flip;
    if (!s->prefix) snprintf(out, size, "%s", zrt_name);
    else zrt_model_gpt2_name(zrt_name, s->prefix, out, size, &flip);
}

static void detect_naming(st_source *s)
{
    const st_file *in;
    s->prefix = find(s, "transformer.wte.weight", &in) ? "transformer." : find(s, "wte.weight", &in) ? "" : NULL;
}

/* A tensor's entry checked against the parameter: dtype, shape (transposed for Conv1D), bytes. */
static zrt_status check_tensor(const st_source *s, const zrt_param_info *p, const char *name, const cJSON *t,
                               const st_file *in)
{
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(t, "dtype"), *shape = cJSON_GetObjectItemCaseSensitive(t, "shape");
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
    const char *type = cJSON_IsString(dtype) ? dtype->valuestring : "";
    int es = strcmp(type, "F32") == 0 ? 4 : strcmp(type, "BF16") == 0 || strcmp(type, "F16") == 0 ? 2 : 0;
    if (!es) return zrt_set_error(ZRT_ERR_CONFIG, "init_from %s: %s: dtype must be F32, BF16 or F16", in->file, name);
    bool flip = s->prefix && conv1d(p->name) && p->ndim == 2;
    int ndim = cJSON_GetArraySize(shape);
    bool same = ndim == (p->ndim ? p->ndim : 1);
    for (int d = 0; same && d < ndim; d++) {
        int64_t want = p->ndim ? p->shape[flip ? 1 - d : d] : p->numel;
        same = cJSON_IsNumber(cJSON_GetArrayItem(shape, d)) && (int64_t)cJSON_GetArrayItem(shape, d)->valuedouble == want;
    }
    if (!same)
        return zrt_set_error(ZRT_ERR_CONFIG, "init_from %s: %s has another shape than zrt's %s [%lld, %lld]%s", in->file, name,
                             p->name, (long long)p->shape[0], (long long)(p->ndim > 1 ? p->shape[1] : 0),
                             flip ? " (stored transposed, as GPT-2's Conv1D)" : "");
    double begin = cJSON_GetArrayItem(offsets, 0) ? cJSON_GetArrayItem(offsets, 0)->valuedouble : -1;
    double end = cJSON_GetArrayItem(offsets, 1) ? cJSON_GetArrayItem(offsets, 1)->valuedouble : -1;
    if (begin < 0 || end - begin != (double)p->numel * es)
        return zrt_set_error(ZRT_ERR_CONFIG, "init_from %s: %s: data_offsets do not hold its %lld values", in->file, name,
                             (long long)p->numel);
    return ZRT_OK;
}

/* The parameter's values in zrt's layout. */
static zrt_status read_param(const st_source *s, const zrt_param_info *p, float *out)
{
    char name[128];
    file_name(s, p->name, name, sizeof name);
    const st_file *in = NULL;
    const cJSON *t = find(s, name, &in);
    if (!t) return zrt_set_error(ZRT_ERR_CONFIG, "init_from: no tensor %s (zrt's %s)", name, p->name);
    ZRT_CHECK(check_tensor(s, p, name, t, in));
    const char *dtype = cJSON_GetObjectItemCaseSensitive(t, "dtype")->valuestring;
    int kind = strcmp(dtype, "F32") == 0 ? ZRT_DTYPE_F32 : strcmp(dtype, "BF16") == 0 ? ZRT_DTYPE_BF16 : ZRT_DTYPE_F16;
    size_t es = kind == ZRT_DTYPE_F32 ? 4 : 2;
    void *raw = malloc((size_t)p->numel * es);
    FILE *fp = raw ? fopen(in->file, "rb") : NULL;
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
    long long at = in->data_start + (long long)cJSON_GetArrayItem(offsets, 0)->valuedouble;
    bool ok = fp && fseek(fp, (long)at, SEEK_SET) == 0 && fread(raw, es, (size_t)p->numel, fp) == (size_t)p->numel;
    if (fp) fclose(fp);
    bool flip = s->prefix && conv1d(p->name) && p->ndim == 2;
    int64_t rows = p->ndim == 2 ? p->shape[0] : 1, cols = p->ndim == 2 ? p->shape[1] : p->numel;
    for (int64_t i = 0; ok && i < p->numel; i++) { /* zrt's element i is (r, c); the file's Conv1D holds (c, r) */
        int64_t src = flip ? (i % cols) * rows + i / cols : i;
        out[i] = zrt_load_f32(raw, (size_t)src, kind);
    }
    free(raw);
    return ok ? ZRT_OK : zrt_set_error(ZRT_ERR_CONFIG, "init_from %s: %s: truncated", in->file, name);
}

/* ---- the API --------------------------------------------------------------------------------------- */

static bool ignorable(const char *name)
{
    size_t n = strlen(name);
    return strcmp(name, "__metadata__") == 0 || strcmp(name, "lm_head.weight") == 0 || /* tied to wte */
           (n > 10 && strcmp(name + n - 10, ".attn.bias") == 0) || (n > 17 && strcmp(name + n - 17, ".attn.masked_bias") == 0);
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
    st_source s;
    struct stat st;
    if (stat(cfg->init_from, &st) == 0 && S_ISDIR(st.st_mode)) ZRT_CHECK(check_config_json(cfg->init_from, cfg));
    zrt_status status = open_source(cfg->init_from, &s);
    if (status == ZRT_OK) detect_naming(&s);
    int used = 0, total = 0;
    for (int u = 0; status == ZRT_OK && u < model->n_units; u++)
        for (int p = 0; status == ZRT_OK && p < model->n_params[u]; p++, used++) {
            char name[128];
            const st_file *in;
            file_name(&s, model->params[u][p].name, name, sizeof name);
            const cJSON *t = find(&s, name, &in);
            status = t ? check_tensor(&s, &model->params[u][p], name, t, in)
                       : zrt_set_error(ZRT_ERR_CONFIG, "init_from %s: no tensor %s (zrt's %s)%s", cfg->init_from, name,
                                       model->params[u][p].name,
                                       s.prefix ? "" : "; the file has neither zrt's nor GPT-2's names");
        }
    for (int i = 0; status == ZRT_OK && i < s.n_files; i++)
        for (const cJSON *t = s.files[i].header->child; status == ZRT_OK && t; t = t->next) {
            total += !ignorable(t->string);
            bool known = ignorable(t->string);
            for (int u = 0; !known && u < model->n_units; u++)
                for (int p = 0; !known && p < model->n_params[u]; p++) {
                    char name[128];
                    file_name(&s, model->params[u][p].name, name, sizeof name);
                    known = strcmp(name, t->string) == 0;
                }
            if (!known)
                status = zrt_set_error(ZRT_ERR_CONFIG, "init_from %s: tensor %s is not a parameter of this model",
                                       s.files[i].file, t->string);
        }
    if (status == ZRT_OK && total != used)
        status = zrt_set_error(ZRT_ERR_CONFIG, "init_from %s: %d tensors for %d parameters", cfg->init_from, total, used);
    close_source(&s);
    return status;
}

zrt_status zrt_model_init_values(const zrt_model *model, const zrt_model_config *cfg, int unit, int64_t begin, int64_t n,
                                 float *out)
{
    st_source s;
    ZRT_CHECK(open_source(cfg->init_from, &s));
    detect_naming(&s);
    memset(out, 0, (size_t)n * sizeof(float));
    zrt_status status = ZRT_OK;
    for (int p = 0; status == ZRT_OK && p < model->n_params[unit]; p++) {
        const zrt_param_info *info = &model->params[unit][p];
        int64_t lo = info->offset > begin ? info->offset : begin;
        int64_t hi = info->offset + info->numel < begin + n ? info->offset + info->numel : begin + n;
        if (lo >= hi) continue;
        float *values = malloc((size_t)info->numel * sizeof(float));
        status = values ? read_param(&s, info, values) : zrt_set_error(ZRT_ERR_NOMEM, "init_from: out of memory");
        if (status == ZRT_OK) memcpy(out + (lo - begin), values + (lo - info->offset), (size_t)(hi - lo) * sizeof(float));
        free(values);
    }
    close_source(&s);
    return status;
}
