/* shards_hf.c: `zrt shards export-hf CKPT OUT`: a zrt GPT checkpoint as a
 * Hugging Face GPT-2 directory -- config.json and model.safetensors with
 * GPT-2's names (transformer.h.N.attn.c_attn.weight, ...) and its Conv1D
 * layout (the four projection weights transposed against zrt's Linear
 * layout), the LM head left to transformers to tie to wte, as
 * save_pretrained writes it. transformers.GPT2LMHeadModel.from_pretrained(OUT)
 * loads it (tests/test_hf_gpt2.sh); zrt.model.init_from reads it back.
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

static double model_key(const zrt_ckpt *c, const char *key)
{
    const cJSON *zrt = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c->meta, "config"), "zrt");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(zrt, "model"), key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static int write_config(const zrt_ckpt *c, const char *out_dir)
{
    double C = model_key(c, "d_model"), hidden = model_key(c, "hidden");
    cJSON *cfg = cJSON_CreateObject(), *arch = cJSON_AddArrayToObject(cfg, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString("GPT2LMHeadModel"));
    cJSON_AddStringToObject(cfg, "model_type", "gpt2");
    cJSON_AddNumberToObject(cfg, "n_layer", model_key(c, "layers"));
    cJSON_AddNumberToObject(cfg, "n_embd", C);
    cJSON_AddNumberToObject(cfg, "n_head", model_key(c, "heads"));
    cJSON_AddNumberToObject(cfg, "n_positions", model_key(c, "seq_len"));
    cJSON_AddNumberToObject(cfg, "n_ctx", model_key(c, "seq_len"));
    cJSON_AddNumberToObject(cfg, "vocab_size", model_key(c, "vocab"));
    cJSON_AddNumberToObject(cfg, "n_inner", hidden > 0 ? hidden : 4 * C);
    cJSON_AddStringToObject(cfg, "activation_function", "gelu_new");
    cJSON_AddNumberToObject(cfg, "layer_norm_epsilon", 1e-5);
    cJSON_AddBoolToObject(cfg, "tie_word_embeddings", true);
    static const char *const zero[] = {"resid_pdrop", "embd_pdrop", "attn_pdrop"};
    for (int k = 0; k < 3; k++) cJSON_AddNumberToObject(cfg, zero[k], 0);
    cJSON_AddStringToObject(cfg, "torch_dtype", "float32");
    char *text = cJSON_Print(cfg), path[ZRT_OUT_PATH_MAX + 128];
    cJSON_Delete(cfg);
    snprintf(path, sizeof path, "%s/config.json", out_dir);
    FILE *f = text ? fopen(path, "w") : NULL;
    int rc = f && fputs(text, f) >= 0 && fclose(f) == 0 ? ZRT_EXIT_OK : ZRT_EXIT_FAIL;
    if (rc != ZRT_EXIT_OK) fprintf(stderr, "zrt shards export-hf: %s: cannot write: %s\n", path, strerror(errno));
    free(text);
    return rc;
}

int zrt_shards_export_hf(const shards_options *o, const zrt_ckpt *c, const char *out_dir)
{
    if (strcmp(c->model, "gpt") != 0 || model_key(c, "d_model") <= 0)
        return fprintf(stderr, "zrt shards export-hf: %s: a %s checkpoint; only zrt's GPT maps to GPT-2\n", c->dir, c->model),
               ZRT_EXIT_FAIL;
    int n = 0;
    for (int i = 0; i < c->n_units; i++) n += c->units[i].n_params;
    shards_tensor *t = calloc((size_t)n, sizeof *t);
    if (!t) return fprintf(stderr, "zrt shards export-hf: out of memory\n"), ZRT_EXIT_FAIL;
    n = 0;
    for (int i = 0; i < c->n_units; i++)
        for (int k = 0; k < c->units[i].n_params; k++, n++) {
            t[n] = (shards_tensor){.p = &c->units[i].params[k], .unit = i};
            zrt_model_gpt2_name(t[n].p->name, "transformer.", t[n].name, sizeof t[n].name, &t[n].transpose);
        }
    shards_options one = *o;
    one.max_shard_bytes = (long long)1 << 62; /* one model.safetensors */
    zrt_out_dir out;
    int rc = zrt_shards_output_begin("export-hf", out_dir, &out);
    if (rc == ZRT_EXIT_OK) {
        rc = write_config(c, out.tmp);
        if (rc == ZRT_EXIT_OK) rc = zrt_shards_write_safetensors(&one, c, t, n, &out);
        rc = zrt_shards_output_end("export-hf", &out, rc);
    }
    free(t);
    return rc;
}
