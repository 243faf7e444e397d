/* test_init_from.c: init_from in the Llama family's Hugging Face names,
 * streamed. A Llama of 66 MB of fp32 weights is written as 12 shard files
 * (more than the old limit of 8) with model.safetensors.index.json, the
 * embedding in BF16, the head in F16, the rest F32, plus a rotary inv_freq
 * buffer; each of 8 "ranks" reads its range of every unit and every value
 * is checked, while the process's peak resident memory (VmHWM) grows by
 * less than 12 MB (4.7 MB measured) -- under a fifth of the model, less
 * than one of its two 32 MB tensors: only the bytes of the range are read
 * (the peak reset before, and shown rising by 32 MB when one read holds a
 * whole tensor: the meter can fail). Then bad files fail
 * naming what is wrong: truncated, a wrong shape, a wrong dtype, a missing
 * tensor, an extra tensor; and a tied model's files need no lm_head.
 */
#include "check.h"
#include "model_internal.h"

#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#define V 16384
#define C 512

static char dir[512];

/* The value of element i of the tensor numbered k: exact in bf16 and f16. */
static float value(int k, int64_t i) { return (float)((i * 7 + k * 13) % 251 - 125) / 64.0f; }

static uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)(u >> 16); /* exact for these values */
}

static uint16_t to_f16(float f) /* |f| < 2, a multiple of 1/64: a normal f16 */
{
    if (f == 0) return 0;
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = u >> 31, exp = (u >> 23) & 0xff, man = u & 0x7fffff;
    return (uint16_t)(sign << 15 | (exp - 127 + 15) << 10 | man >> 13);
}

typedef struct {
    const char *dtype;
    int64_t rows, cols; /* cols 0: a vector */
} spec;

/* name's tensor number k as a one-tensor safetensors file, written in 1 MB pieces. */
static void write_file(const char *file, const char *name, int k, spec s, const char *shape_text)
{
    int es = strcmp(s.dtype, "F32") == 0 ? 4 : 2;
    int64_t numel = s.rows * (s.cols ? s.cols : 1);
    char header[512], shape[64];
    if (s.cols) snprintf(shape, sizeof shape, "[%lld, %lld]", (long long)s.rows, (long long)s.cols);
    else snprintf(shape, sizeof shape, "[%lld]", (long long)s.rows);
    snprintf(header, sizeof header, "{\"%s\": {\"dtype\": \"%s\", \"shape\": %s, \"data_offsets\": [0, %lld]}}", name,
             s.dtype, shape_text ? shape_text : shape, (long long)(numel * es));
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "wb");
    uint64_t n = strlen(header);
    fwrite(&n, 8, 1, f);
    fwrite(header, 1, n, f);
    static unsigned char buf[1 << 20];
    for (int64_t i = 0; i < numel;) {
        int64_t m = 0;
        for (; i < numel && (m + 1) * es <= (int64_t)sizeof buf; i++, m++) {
            float v = value(k, i);
            if (es == 4) memcpy(buf + m * 4, &v, 4);
            else {
                uint16_t h = s.dtype[0] == 'B' ? to_bf16(v) : to_f16(v);
                memcpy(buf + m * 2, &h, 2);
            }
        }
        fwrite(buf, (size_t)es, (size_t)m, f);
    }
    fclose(f);
}

/* Every parameter of m as its own file (HF names), the index, and an inv_freq buffer. */
static void write_model(const zrt_model *m, const char *skip, const char *extra)
{
    char index[65536] = "{\"metadata\": {\"total_size\": 0}, \"weight_map\": {";
    int k = 0;
    for (int u = 0; u < m->n_units; u++)
        for (int p = 0; p < m->n_params[u]; p++, k++) {
            const zrt_param_info *info = &m->params[u][p];
            char name[128], file[64];
            bool flip;
            zrt_model_hf_name(ZRT_MODEL_LLAMA, info->name, name, sizeof name, &flip);
            if (skip && strcmp(name, skip) == 0) continue;
            snprintf(file, sizeof file, "model-%05d.safetensors", k);
            const char *dtype = strcmp(info->name, "embed_tokens.weight") == 0 ? "BF16"
                                : strcmp(info->name, "lm_head.weight") == 0  ? "F16"
                                                                             : "F32";
            write_file(file, name, k, (spec){dtype, info->shape[0], info->ndim == 2 ? info->shape[1] : 0}, NULL);
            snprintf(index + strlen(index), sizeof index - strlen(index), "%s\"%s\": \"%s\"", k ? ", " : "", name, file);
        }
    write_file("rotary.safetensors", "model.layers.0.self_attn.rotary_emb.inv_freq", 99, (spec){"F32", 32, 0}, NULL);
    snprintf(index + strlen(index), sizeof index - strlen(index),
             ", \"model.layers.0.self_attn.rotary_emb.inv_freq\": \"rotary.safetensors\"");
    if (extra) {
        write_file("extra.safetensors", extra, 98, (spec){"F32", 4, 0}, NULL);
        snprintf(index + strlen(index), sizeof index - strlen(index), ", \"%s\": \"extra.safetensors\"", extra);
    }
    snprintf(index + strlen(index), sizeof index - strlen(index), "}}");
    test_write_file(dir, "model.safetensors.index.json", index, strlen(index));
}

static zrt_model_config config(bool tied)
{
    zrt_model_config c = {.type = ZRT_MODEL_LLAMA, .layers = 1, .d_model = C, .heads = 8, .kv_heads = 2, .hidden = 64,
                          .vocab = V, .seq_len = 16, .rope_theta = 10000, .norm_eps = 1e-6, .tie_embeddings = tied};
    snprintf(c.init_from, sizeof c.init_from, "%s", dir);
    return c;
}

static void declare(zrt_model *m, bool tied)
{
    zrt_model_config c = config(tied);
    zrt_llama_dims d;
    memset(m, 0, sizeof *m);
    CHECK_OK(zrt_llama_dims_of(&c, 1, &d));
    CHECK_OK(zrt_llama_declare(m, &d));
}

/* 8 ranks' ranges of every unit, each value checked. */
static void check_streamed(const zrt_model *m, const zrt_model_config *c)
{
    CHECK_MSG(test_reset_vm_hwm(), "cannot reset VmHWM through /proc/self/clear_refs"); /* the writes above may have raised it */
    long before = (long)(zrt_mem_peak_resident() / 1024);
    int64_t total = 0, wrong = 0;
    for (int u = 0; u < m->n_units; u++) {
        int64_t numel = m->unit_numel[u], part = (numel + 7) / 8;
        float *out = malloc((size_t)part * sizeof(float));
        for (int r = 0; r < 8; r++) {
            int64_t begin = r * part, n = begin + part <= numel ? part : numel - begin;
            if (n <= 0) continue;
            CHECK_OK(zrt_model_init_values(m, c, u, begin, n, out));
            for (int64_t i = 0; i < n; i++) {
                int p = 0, k = 0;
                while (p + 1 < m->n_params[u] && m->params[u][p + 1].offset <= begin + i) p++;
                for (int uu = 0; uu < u; uu++) k += m->n_params[uu];
                wrong += out[i] != value(k + p, begin + i - m->params[u][p].offset);
            }
            total += n;
        }
        free(out);
    }
    long grown = (long)(zrt_mem_peak_resident() / 1024) - before;
    printf("read %lld values in 8 ranges per unit; peak resident memory grew %ld kB (model: %lld kB of fp32)\n",
           (long long)total, grown, (long long)(total * 4 / 1024));
    CHECK_MSG(wrong == 0, "%lld values differ from the files'", (long long)wrong);
    CHECK_MSG(total * 4 > 60 << 20, "the model is %lld bytes", (long long)(total * 4));
#ifdef UNDER_SANITIZER
    printf("(the resident-memory checks are skipped under a sanitizer: its shadow memory is in the resident set)\n");
    return;
#endif
    CHECK_MSG(grown >= 0 && grown < 12 * 1024, "peak memory grew by %ld kB reading 8 ranges", grown);
    /* The meter sees a read that holds a whole 32 MB tensor: one rank's range of all of unit 0. */
    CHECK(test_reset_vm_hwm());
    before = (long)(zrt_mem_peak_resident() / 1024);
    float *whole = malloc((size_t)m->unit_numel[0] * sizeof(float));
    CHECK_OK(zrt_model_init_values(m, c, 0, 0, m->unit_numel[0], whole));
    grown = (long)(zrt_mem_peak_resident() / 1024) - before;
    free(whole);
    CHECK_MSG(grown > 30 * 1024, "reading all of unit 0 (%lld kB) raised the peak by %ld kB only: the meter is blind",
              (long long)(m->unit_numel[0] * 4 / 1024), grown);
}

static void refused(const zrt_model *m, const zrt_model_config *c, const char *expect)
{
    zrt_status s = zrt_model_init_check(m, c);
    CHECK_MSG(s == ZRT_ERR_CONFIG && strstr(zrt_last_error(), expect), "want '%s': %s", expect, zrt_last_error());
}

static void check_bad_files(const zrt_model *m, const zrt_model_config *c)
{
    char path[1200];
    /* a wrong shape, then a wrong dtype, then truncated: the norm's file (tensor number 10) */
    write_file("model-00010.safetensors", "model.norm.weight", 10, (spec){"F32", C, 0}, "[256, 2]");
    refused(m, c, "model.norm.weight has shape [256, 2]; zrt's norm.weight is [512, 0]");
    write_file("model-00010.safetensors", "model.norm.weight", 10, (spec){"I64", C / 2, 0}, NULL);
    refused(m, c, "model.norm.weight: dtype I64; zrt reads F32, BF16 and F16");
    write_file("model-00010.safetensors", "model.norm.weight", 10, (spec){"F32", C, 0}, NULL);
    CHECK_OK(zrt_model_init_check(m, c));
    snprintf(path, sizeof path, "%s/model-00010.safetensors", dir);
    CHECK(truncate(path, 100) == 0);
    refused(m, c, "model-00010.safetensors: truncated");
    write_file("model-00010.safetensors", "model.norm.weight", 10, (spec){"F32", C, 0}, NULL);
    /* an extra tensor, then a missing one */
    write_model(m, NULL, "model.layers.0.extra.weight");
    refused(m, c, "tensor model.layers.0.extra.weight is not a parameter of this model");
    write_model(m, "model.norm.weight", NULL);
    refused(m, c, "no tensor model.norm.weight (zrt's norm.weight)");
}

int main(void)
{
    snprintf(dir, sizeof dir, "%s/llama_shards", test_tmpdir());
    mkdir(dir, 0700);
    zrt_model m;
    declare(&m, false);
    write_model(&m, NULL, NULL);
    zrt_model_config c = config(false);
    CHECK_OK(zrt_model_init_check(&m, &c));
    check_streamed(&m, &c);
    check_bad_files(&m, &c);
    /* Tied: the files have no lm_head; that is complete. */
    zrt_model tied;
    declare(&tied, true);
    write_model(&tied, NULL, NULL);
    zrt_model_config ct = config(true);
    CHECK_OK(zrt_model_init_check(&tied, &ct));
    zrt_model_tables_free(&tied);
    zrt_model_tables_free(&m);
    return CHECK_DONE();
}
