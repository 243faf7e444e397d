/* sample_model.c: the model `zrt sample` runs -- its config and its weights,
 * from a zrt checkpoint or a Hugging Face directory -- and its EOS ids.
 *
 * Why through zrt_config_load: the model's shape is a zrt.model section
 * either way (a checkpoint's meta.json keeps the job's, a Hugging Face
 * config.json maps to one), and loading it as a config file runs the same
 * defaults and validation as training, so every model type the config knows
 * (Llama's shape read from config.json by validation) works here unchanged.
 * The section is handed over in a memfd: nothing is written to disk.
 * Weights: a checkpoint's fp32 master copy through the shards reader (any
 * world size and stage: it reads each unit's range from the files that hold
 * it), or init_from's reader for a Hugging Face directory; one host buffer
 * of the largest unit, each unit written to the device in turn. */
#include "sample.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define JSON_MAX (16 << 20)

/* *out: path parsed (NULL on error, with the reason); *missing (may be
 * NULL): the file does not exist. */
static zrt_status read_json(const char *path, cJSON **out, bool *missing)
{
    FILE *f = fopen(path, "rb");
    *out = NULL;
    if (missing) *missing = !f && errno == ENOENT;
    if (!f) return zrt_set_error(ZRT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *text = malloc(JSON_MAX + 1);
    size_t n = text ? fread(text, 1, JSON_MAX, f) : 0;
    fclose(f);
    if (text) text[n] = 0;
    *out = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!*out) return zrt_set_error(ZRT_ERR_CONFIG, "%s: not a JSON file (or larger than %d MiB)", path, JSON_MAX >> 20);
    return ZRT_OK;
}

/* status again, its message led by "prefix: ". */
static zrt_status prefixed(zrt_status status, const char *prefix)
{
    char why[ZRT_ERROR_MAX];
    snprintf(why, sizeof why, "%s", zrt_last_error());
    return zrt_set_error(status, "%s: %s", prefix, why);
}

/* cfg from a zrt.model section (model: taken over), loaded as a DeepSpeed
 * JSON of micro batch 1; what names the section's origin in errors. */
static zrt_status config_of_model(zrt_config *cfg, cJSON *model, const char *what)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "train_micro_batch_size_per_gpu", 1);
    cJSON_AddItemToObject(cJSON_AddObjectToObject(root, "zrt"), "model", model);
    char *text = cJSON_PrintUnformatted(root), path[64];
    cJSON_Delete(root);
    int fd = text ? memfd_create("zrt-sample-model", MFD_CLOEXEC) : -1;
    size_t len = text ? strlen(text) : 0;
    bool written = fd >= 0 && write(fd, text, len) == (ssize_t)len;
    free(text);
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    zrt_status status = written ? zrt_config_load(cfg, path) : zrt_set_error(ZRT_ERR_IO, "memfd: %s", strerror(errno));
    if (fd >= 0) close(fd);
    if (status == ZRT_OK) return ZRT_OK;
    char why[ZRT_ERROR_MAX], *w = why;
    strcat(path, ": "); /* the memfd's name means nothing to the user: the messages lose it */
    size_t skip = strlen(path);
    for (const char *r = zrt_last_error(); *r;)
        if (strncmp(r, path, skip) == 0) r += skip;
        else *w++ = *r++;
    *w = 0;
    return zrt_set_error(status, "the model of %s: %s", what, why);
}

/* ---- a checkpoint ---- */

static zrt_status open_checkpoint(const char *dir, zrt_sample_source *s)
{
    char what[ZRT_PATH_MAX + 128];
    snprintf(what, sizeof what, "--checkpoint %s", dir);
    zrt_status status = zrt_ckpt_open(dir, &s->ckpt);
    if (status != ZRT_OK) return prefixed(status, what);
    const cJSON *zrt = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(s->ckpt->meta, "config"), "zrt");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(zrt, "model");
    if (!cJSON_IsObject(model))
        return zrt_set_error(ZRT_ERR_CONFIG, "%s/meta.json: no config.zrt.model (the model's shape)", s->ckpt->dir);
    cJSON *copy = cJSON_Duplicate(model, true);
    /* The weights are the checkpoint's: not the files the run started from. */
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "init_from");
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "hf_config");
    snprintf(what, sizeof what, "checkpoint %s (meta.json's config.zrt.model)", s->ckpt->dir);
    return config_of_model(&s->cfg, copy, what);
}

/* Every unit and parameter of the checkpoint is the model's, in the same place. */
static zrt_status check_units(const zrt_ckpt *c, const zrt_model *m)
{
    if (c->n_units != m->n_units)
        return zrt_set_error(ZRT_ERR_CONFIG, "checkpoint %s has %d units; its model has %d", c->dir, c->n_units, m->n_units);
    for (int u = 0; u < m->n_units; u++) {
        const zrt_ckpt_unit *cu = &c->units[u];
        bool same = cu->numel == m->unit_numel[u] && cu->n_params == m->n_params[u];
        for (int k = 0; same && k < cu->n_params; k++)
            same = strcmp(cu->params[k].name, m->params[u][k].name) == 0 && cu->params[k].offset == m->params[u][k].offset &&
                   cu->params[k].numel == m->params[u][k].numel;
        if (!same)
            return zrt_set_error(ZRT_ERR_CONFIG, "checkpoint %s: unit %d (%s, %lld values) is not its model's (%s, %lld)",
                                 c->dir, u, cu->n_params ? cu->params[0].name : "-", (long long)cu->numel,
                                 m->n_params[u] ? m->params[u][0].name : "-", (long long)m->unit_numel[u]);
    }
    return ZRT_OK;
}

/* ---- a Hugging Face directory ---- */

/* model_type -> zrt.model.type; gpt2's shape is mapped here, the Llama
 * family's is read from config.json by the config's validation. */
static const struct {
    const char *hf, *zrt;
    bool gpt2;
} families[] = {{"gpt2", "gpt", true}, {"llama", "llama", false}, {"mistral", "llama", false}, {"qwen2", "llama", false}};

static const char *const gpt2_keys[][2] = {{"n_layer", "layers"},      {"n_embd", "d_model"},    {"n_head", "heads"},
                                           {"n_positions", "seq_len"}, {"vocab_size", "vocab"}, {"n_inner", "hidden"}};

static zrt_status hf_model(const char *dir, const cJSON *config, const char *path, cJSON *model)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(config, "model_type");
    size_t f = 0;
    while (f < sizeof families / sizeof families[0] && !(cJSON_IsString(type) && strcmp(type->valuestring, families[f].hf) == 0))
        f++;
    if (f == sizeof families / sizeof families[0])
        return zrt_set_error(ZRT_ERR_CONFIG, "%s: model_type %s: zrt has no model for it (gpt2, llama, mistral, qwen2)",
                             path, cJSON_IsString(type) ? type->valuestring : "(missing)");
    cJSON_AddStringToObject(model, "type", families[f].zrt);
    cJSON_AddStringToObject(model, "init_from", dir);
    for (size_t k = 0; families[f].gpt2 && k < sizeof gpt2_keys / sizeof gpt2_keys[0]; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(config, gpt2_keys[k][0]);
        if (cJSON_IsNumber(v)) cJSON_AddNumberToObject(model, gpt2_keys[k][1], v->valuedouble);
    }
    return ZRT_OK;
}

/* eos_token_id: a number or a list of them. */
static void eos_of(const cJSON *j, zrt_sample_source *s)
{
    const cJSON *eos = cJSON_GetObjectItemCaseSensitive(j, "eos_token_id"), *e;
    const cJSON *list = cJSON_IsArray(eos) ? eos : NULL;
    if (cJSON_IsNumber(eos) && s->n_eos < ZRT_SAMPLE_MAX_EOS) s->eos[s->n_eos++] = (int32_t)eos->valuedouble;
    cJSON_ArrayForEach(e, list)
        if (cJSON_IsNumber(e) && s->n_eos < ZRT_SAMPLE_MAX_EOS) s->eos[s->n_eos++] = (int32_t)e->valuedouble;
}

static zrt_status open_hf(const char *hf, zrt_sample_source *s)
{
    char dir[PATH_MAX], path[PATH_MAX + 32];
    if (!realpath(hf, dir)) return zrt_set_error(ZRT_ERR_IO, "--hf %s: %s", hf, strerror(errno));
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *config = NULL, *model = cJSON_CreateObject(), *generation = NULL;
    zrt_status status = read_json(path, &config, NULL);
    if (status == ZRT_OK) status = hf_model(dir, config, path, model);
    if (status != ZRT_OK) cJSON_Delete(model);
    else status = config_of_model(&s->cfg, model, path);
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    bool missing = false; /* optional: config.json's eos_token_id then; a damaged one is an error */
    zrt_status g = status == ZRT_OK ? read_json(path, &generation, &missing) : ZRT_OK;
    if (g != ZRT_OK && !missing) status = g;
    eos_of(generation ? generation : config, s);
    cJSON_Delete(generation);
    cJSON_Delete(config);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (access(path, R_OK) == 0) snprintf(s->tokenizer, sizeof s->tokenizer, "%s", path);
    return status;
}

zrt_status zrt_sample_source_open(const char *checkpoint, const char *hf, zrt_sample_source *s)
{
    memset(s, 0, sizeof *s);
    return checkpoint ? open_checkpoint(checkpoint, s) : open_hf(hf, s);
}

void zrt_sample_source_close(zrt_sample_source *s)
{
    zrt_ckpt_close(s->ckpt);
    s->ckpt = NULL;
}

/* ---- the prompt's frame ---- */

/* The TemplateProcessing among a post_processor (itself, or in a Sequence's processors), or NULL. */
static const cJSON *template_of(const cJSON *pp)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(pp, "type"), *p;
    if (cJSON_IsString(type) && strcmp(type->valuestring, "TemplateProcessing") == 0) return pp;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(pp, "processors"), *found;
    cJSON_ArrayForEach(p, list)
        if ((found = template_of(p))) return found;
    return NULL;
}

/* Appends the ids of a template piece: a SpecialToken's (from the
 * template's special_tokens), or the text's for the Sequence. */
static zrt_status frame_piece(const cJSON *tpl, const cJSON *piece, const zrt_ids *text, zrt_ids *out)
{
    const cJSON *special = cJSON_GetObjectItemCaseSensitive(piece, "SpecialToken"), *id;
    if (!special) {
        for (size_t i = 0; i < text->n; i++) ZRT_CHECK(zrt_ids_push(out, text->ids[i]));
        return ZRT_OK;
    }
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(special, "id");
    const char *spelled = cJSON_IsString(name) ? name->valuestring : "";
    const cJSON *entry = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(tpl, "special_tokens"), spelled);
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(entry, "ids");
    if (!cJSON_IsArray(ids))
        return zrt_set_error(ZRT_ERR_CONFIG, "post_processor: special token '%s' is not in its special_tokens", spelled);
    cJSON_ArrayForEach(id, ids) ZRT_CHECK(zrt_ids_push(out, (int32_t)id->valuedouble));
    return ZRT_OK;
}

zrt_status zrt_sample_frame(const char *tokenizer, zrt_ids *ids, size_t *lead)
{
    cJSON *root;
    *lead = 0;
    ZRT_CHECK(read_json(tokenizer, &root, NULL));
    const cJSON *tpl = template_of(cJSON_GetObjectItemCaseSensitive(root, "post_processor")), *piece;
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(tpl, "single");
    zrt_ids out = {0};
    zrt_status status = ZRT_OK;
    bool text_seen = false;
    cJSON_ArrayForEach(piece, single) {
        if (!text_seen && !cJSON_GetObjectItemCaseSensitive(piece, "SpecialToken")) *lead = out.n, text_seen = true;
        if (status == ZRT_OK) status = frame_piece(tpl, piece, ids, &out);
    }
    cJSON_Delete(root);
    if (status != ZRT_OK || !text_seen) { /* an error, or no template: the ids as they are */
        zrt_ids_free(&out);
        *lead = 0;
        return status;
    }
    zrt_ids_free(ids);
    *ids = out;
    return ZRT_OK;
}

zrt_status zrt_sample_upload(const zrt_sample_source *s, zrt_model *m, float **units)
{
    ZRT_CHECK(s->ckpt ? check_units(s->ckpt, m) : zrt_model_init_check(m, &s->cfg.job.model));
    int64_t most = 0;
    for (int u = 0; u < m->n_units; u++) most = m->unit_numel[u] > most ? m->unit_numel[u] : most;
    float *host = malloc((size_t)most * sizeof *host);
    if (!host) return zrt_set_error(ZRT_ERR_NOMEM, "zrt sample: out of memory for a unit of %lld values", (long long)most);
    zrt_status status = ZRT_OK;
    for (int u = 0; status == ZRT_OK && u < m->n_units; u++) {
        int64_t n = m->unit_numel[u];
        char name[32];
        snprintf(name, sizeof name, "unit %d", u);
        status = zrt_device_alloc(m->device, ZRT_MEM_PARAMS, (size_t)n * sizeof(float), name, NULL, (void **)&units[u]);
        if (status == ZRT_OK)
            status = s->ckpt ? zrt_ckpt_read(s->ckpt, u, ZRT_CKPT_MASTER, 0, n, host)
                             : zrt_model_init_values(m, &s->cfg.job.model, u, 0, n, host);
        if (status == ZRT_OK) status = zrt_device_write(m->device, units[u], host, (size_t)n * sizeof(float));
    }
    free(host);
    return status;
}
