/* shards_out.c: `zrt shards consolidate` (the full weights as safetensors)
 * and `zrt shards reshard` (a checkpoint for another world size), both
 * streaming: a parameter goes from the shard files to the output
 * SHARDS_CHUNK elements at a time, so memory stays a few MiB whatever the
 * model (a test runs consolidate under an address-space limit smaller than
 * the checkpoint).
 *
 * safetensors (the format's spec): an 8-byte little-endian header length,
 * a JSON header padded with spaces to a multiple of 8, then the tensors'
 * bytes, contiguous, at the header's data_offsets. Tensors are written in
 * name order (the format's writers sort by dtype, then name; all ours have
 * one dtype). Over --max-shard-size, Hugging Face's layout:
 * model-0000K-of-0000N.safetensors and model.safetensors.index.json.
 * Every output directory is written under a temporary name beside it and
 * swapped in only when complete (zrt/output.h): a failure leaves the
 * previous output as it was.
 */
#include "cli.h"
#include "zrt/internal/fault.h"
#include "zrt/internal/output.h"
#include "format.h"
#include "shards.h"

#include "cast.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool zrt_shards_parse_dtype(const char *text, zrt_dtype *out)
{
    if (strcmp(text, "fp32") == 0) *out = ZRT_DTYPE_F32;
    else if (strcmp(text, "bf16") == 0) *out = ZRT_DTYPE_BF16;
    else if (strcmp(text, "fp16") == 0) *out = ZRT_DTYPE_F16;
    else return false;
    return true;
}

bool zrt_shards_parse_bytes(const char *text, long long *out)
{
    char *end;
    double v = strtod(text, &end);
    static const struct {
        const char *suffix;
        double scale;
    } units[] = {{"", 1}, {"B", 1}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"KiB", 1024.0}, {"MiB", 1048576.0},
                 {"GiB", 1073741824.0}};
    for (size_t k = 0; k < sizeof units / sizeof units[0]; k++)
        if (strcmp(end, units[k].suffix) == 0 && v > 0) {
            *out = (long long)(v * units[k].scale);
            return *out >= 1;
        }
    return false;
}

/* ---- consolidate ------------------------------------------------------------------------------- */

typedef shards_tensor tensor;

static int by_name(const void *a, const void *b) { return strcmp(((const tensor *)a)->name, ((const tensor *)b)->name); }

static const char *st_dtype(zrt_dtype d) { return d == ZRT_DTYPE_BF16 ? "BF16" : d == ZRT_DTYPE_F16 ? "F16" : "F32"; }

static void file_name(char *out, size_t size, int file, int files)
{
    if (files == 1) snprintf(out, size, "model.safetensors");
    else snprintf(out, size, "model-%05d-of-%05d.safetensors", file + 1, files);
}

/* The JSON header of one output file (its tensors), padded to 8 bytes. */
static char *file_header(const tensor *t, int n, int file, zrt_dtype dtype, size_t *len)
{
    long long es = (long long)zrt_dtype_size(dtype);
    cJSON *h = cJSON_CreateObject(), *meta = cJSON_AddObjectToObject(h, "__metadata__");
    cJSON_AddStringToObject(meta, "format", "pt");
    for (int i = 0; i < n; i++) {
        if (t[i].file != file) continue;
        cJSON *e = cJSON_AddObjectToObject(h, t[i].name), *shape = cJSON_AddArrayToObject(e, "shape"),
              *offsets = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddStringToObject(e, "dtype", st_dtype(dtype));
        int ndim = t[i].p->ndim ? t[i].p->ndim : 1;
        for (int d = 0; d < ndim; d++) {
            int k = t[i].transpose ? ndim - 1 - d : d;
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)(t[i].p->ndim ? t[i].p->shape[k] : t[i].p->numel)));
        }
        cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)t[i].begin));
        cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)(t[i].begin + t[i].p->numel * es)));
    }
    char *text = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    size_t n_text = text ? strlen(text) : 0, padded = (n_text + 7) / 8 * 8;
    char *out = text ? realloc(text, padded + 1) : NULL;
    if (!out) return free(text), NULL;
    memset(out + n_text, ' ', padded - n_text);
    out[padded] = '\0';
    *len = padded;
    return out;
}

/* Fault site shards.write (BYTES) fails the write that passes that many bytes (a full disk midway). */
static bool injected_failure(size_t bytes)
{
    static long long written;
    const char *limit = zrt_fault_spec("shards.write");
    written += (long long)bytes;
    return limit && written > atoll(limit);
}

static int write_all(FILE *f, const void *data, size_t bytes, const char *path)
{
    bool injected = injected_failure(bytes);
    if (!injected && fwrite(data, 1, bytes, f) == bytes) return ZRT_EXIT_OK;
    fprintf(stderr, "zrt shards: %s: write failed: %s\n", path, injected ? "injected (ZRT_FAULT_SHARDS_WRITE)" : strerror(errno));
    return ZRT_EXIT_FAIL;
}

/* A transposed tensor: the parameter whole (the largest one bounds the memory), written column by column. */
static int write_transposed(FILE *f, const zrt_ckpt *c, const tensor *t, zrt_dtype dtype, float *buf, void *conv,
                            const char *path)
{
    int64_t rows = t->p->shape[0], cols = t->p->shape[1];
    float *whole = malloc((size_t)t->p->numel * sizeof(float));
    if (!whole || zrt_ckpt_read(c, t->unit, ZRT_CKPT_MASTER, t->p->offset, t->p->numel, whole) != ZRT_OK) {
        fprintf(stderr, "zrt shards: %s\n", whole ? zrt_last_error() : "out of memory");
        free(whole);
        return ZRT_EXIT_FAIL;
    }
    int rc = ZRT_EXIT_OK;
    for (int64_t col = 0; col < cols && rc == ZRT_EXIT_OK; col++) { /* the output's row `col` is the input's column */
        for (int64_t r = 0; r < rows; r++) buf[r] = whole[r * cols + col];
        for (int64_t r = 0; dtype != ZRT_DTYPE_F32 && r < rows; r++) zrt_store_f32(conv, (size_t)r, (int)dtype, buf[r]);
        rc = write_all(f, dtype == ZRT_DTYPE_F32 ? (void *)buf : conv, (size_t)rows * zrt_dtype_size(dtype), path);
    }
    free(whole);
    return rc;
}

/* One tensor's values, converted chunk by chunk. */
static int write_tensor(FILE *f, const zrt_ckpt *c, const tensor *t, zrt_dtype dtype, float *buf, void *conv, const char *path)
{
    if (t->transpose && t->p->ndim == 2 && t->p->shape[0] <= SHARDS_CHUNK) return write_transposed(f, c, t, dtype, buf, conv, path);
    for (int64_t done = 0; done < t->p->numel; done += SHARDS_CHUNK) {
        int64_t n = t->p->numel - done < SHARDS_CHUNK ? t->p->numel - done : SHARDS_CHUNK;
        if (zrt_ckpt_read(c, t->unit, ZRT_CKPT_MASTER, t->p->offset + done, n, buf) != ZRT_OK) {
            fprintf(stderr, "zrt shards: %s\n", zrt_last_error());
            return ZRT_EXIT_FAIL;
        }
        for (int64_t i = 0; dtype != ZRT_DTYPE_F32 && i < n; i++) zrt_store_f32(conv, (size_t)i, (int)dtype, buf[i]);
        if (write_all(f, dtype == ZRT_DTYPE_F32 ? (void *)buf : conv, (size_t)n * zrt_dtype_size(dtype), path)) return ZRT_EXIT_FAIL;
    }
    return ZRT_EXIT_OK;
}

static int write_file(const shards_options *o, const zrt_ckpt *c, const tensor *t, int n, int file, int files,
                      const char *out_dir, float *buf, void *conv)
{
    char name[64], path[ZRT_OUT_PATH_MAX + 128];
    file_name(name, sizeof name, file, files);
    snprintf(path, sizeof path, "%s/%s", out_dir, name);
    size_t len = 0;
    char *header = file_header(t, n, file, o->dtype, &len);
    FILE *f = header ? fopen(path, "wb") : NULL;
    if (!f) {
        fprintf(stderr, "zrt shards: %s: cannot create: %s\n", path, strerror(errno));
        free(header);
        return ZRT_EXIT_FAIL;
    }
    uint64_t length = len; /* little-endian on every machine zrt builds for */
    int rc = write_all(f, &length, 8, path);
    if (rc == ZRT_EXIT_OK) rc = write_all(f, header, len, path);
    for (int i = 0; i < n && rc == ZRT_EXIT_OK; i++)
        if (t[i].file == file) rc = write_tensor(f, c, &t[i], o->dtype, buf, conv, path);
    if (fclose(f) != 0 && rc == ZRT_EXIT_OK) rc = ZRT_EXIT_FAIL;
    free(header);
    return rc;
}

/* model.safetensors.index.json, as transformers writes it. */
static int write_index(const tensor *t, int n, int files, long long total, const char *out_dir)
{
    cJSON *root = cJSON_CreateObject(), *meta = cJSON_AddObjectToObject(root, "metadata"),
          *map = cJSON_AddObjectToObject(root, "weight_map");
    cJSON_AddNumberToObject(meta, "total_size", (double)total);
    for (int i = 0; i < n; i++) {
        char name[64];
        file_name(name, sizeof name, t[i].file, files);
        cJSON_AddStringToObject(map, t[i].name, name);
    }
    char *text = cJSON_Print(root), path[ZRT_OUT_PATH_MAX + 128];
    cJSON_Delete(root);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", out_dir);
    FILE *f = text ? fopen(path, "w") : NULL;
    int rc = f && fputs(text, f) >= 0 ? ZRT_EXIT_OK : ZRT_EXIT_FAIL;
    if (f && fclose(f) != 0) rc = ZRT_EXIT_FAIL;
    if (rc != ZRT_EXIT_OK) fprintf(stderr, "zrt shards: %s: cannot write: %s\n", path, strerror(errno));
    free(text);
    return rc;
}

/* Whether name is one these writers write: config.json, model.safetensors,
 * model-NNNNN-of-NNNNN.safetensors, model.safetensors.index.json. */
static bool written_here(const char *name)
{
    int a, b, end = 0;
    if (strcmp(name, "config.json") == 0 || strcmp(name, "model.safetensors") == 0 ||
        strcmp(name, "model.safetensors.index.json") == 0)
        return true;
    return sscanf(name, "model-%5d-of-%5d.safetensors%n", &a, &b, &end) == 2 && end == (int)strlen(name) &&
           strlen(name) == strlen("model-00001-of-00001.safetensors");
}

/* An existing output directory is replaced only when it holds nothing but
 * what these writers write (a previous output): never a user's directory,
 * nor a Hugging Face download (its tokenizer.json, generation_config.json). */
static int check_replaceable(const char *action, const char *out_dir)
{
    struct stat st;
    if (lstat(out_dir, &st) != 0) return ZRT_EXIT_OK;
    DIR *d = S_ISDIR(st.st_mode) ? opendir(out_dir) : NULL;
    const char *odd = d ? NULL : "is not a directory";
    for (struct dirent *e; d && !odd && (e = readdir(d));) {
        bool ours = written_here(e->d_name) && e->d_type != DT_DIR;
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 && !ours) odd = e->d_name;
    }
    int rc = odd ? fprintf(stderr, "zrt shards %s: %s: exists and %s%s%s, which %s does not write: refusing to replace it\n",
                           action, out_dir, d ? "holds '" : "", odd, d ? "'" : "", action), ZRT_EXIT_FAIL : ZRT_EXIT_OK;
    if (d) closedir(d);
    return rc;
}

int zrt_shards_output_begin(const char *action, const char *out_dir, zrt_out_dir *d)
{
    if (check_replaceable(action, out_dir) != ZRT_EXIT_OK) return ZRT_EXIT_FAIL;
    if (zrt_out_dir_name(d, out_dir, NULL) == ZRT_OK && zrt_out_dir_create(d) == ZRT_OK) return ZRT_EXIT_OK;
    fprintf(stderr, "zrt shards %s: %s\n", action, zrt_last_error());
    return ZRT_EXIT_FAIL;
}

int zrt_shards_output_end(const char *action, zrt_out_dir *d, int rc)
{
    if (rc != ZRT_EXIT_OK) {
        zrt_out_dir_abort(d);
        return rc;
    }
    if (zrt_out_dir_commit(d) == ZRT_OK) return ZRT_EXIT_OK;
    fprintf(stderr, "zrt shards %s: %s\n", action, zrt_last_error());
    return ZRT_EXIT_FAIL;
}

int zrt_shards_write_safetensors(const shards_options *o, const zrt_ckpt *c, tensor *t, int n, const zrt_out_dir *out)
{
    float *buf = malloc(SHARDS_CHUNK * sizeof(float));
    void *conv = malloc(SHARDS_CHUNK * 2);
    if (!buf || !conv) {
        fprintf(stderr, "zrt shards: out of memory\n");
        free(buf), free(conv);
        return ZRT_EXIT_FAIL;
    }
    qsort(t, (size_t)n, sizeof *t, by_name);
    long long es = (long long)zrt_dtype_size(o->dtype), in_file = 0, total = 0;
    int files = 1;
    for (int i = 0; i < n; i++) { /* a new file when this tensor would push the current one over the limit */
        long long bytes = t[i].p->numel * es;
        if (in_file > 0 && in_file + bytes > o->max_shard_bytes) files++, in_file = 0;
        t[i].file = files - 1;
        t[i].begin = in_file;
        in_file += bytes;
        total += bytes;
    }
    int rc = ZRT_EXIT_OK;
    for (int file = 0; file < files && rc == ZRT_EXIT_OK; file++) rc = write_file(o, c, t, n, file, files, out->tmp, buf, conv);
    if (rc == ZRT_EXIT_OK && files > 1) rc = write_index(t, n, files, total, out->tmp);
    if (rc == ZRT_EXIT_OK && o->json)
        zrt_json_line("out", ZJ_STR(out->path), "tensors", ZJ_INT(n), "files", ZJ_INT(files), "total_bytes", ZJ_INT(total),
                      "dtype", ZJ_STR(st_dtype(o->dtype)), NULL);
    else if (rc == ZRT_EXIT_OK)
        printf("%s: %d tensors, %lld bytes of %s in %d file%s\n", out->path, n, total, st_dtype(o->dtype), files,
               files > 1 ? "s" : "");
    free(buf), free(conv);
    return rc;
}

int zrt_shards_consolidate(const shards_options *o, const zrt_ckpt *c, const char *out_dir)
{
    int n = 0;
    for (int i = 0; i < c->n_units; i++) n += c->units[i].n_params;
    tensor *t = calloc((size_t)n, sizeof *t);
    if (!t) return fprintf(stderr, "zrt shards consolidate: out of memory\n"), ZRT_EXIT_FAIL;
    n = 0;
    for (int i = 0; i < c->n_units; i++)
        for (int k = 0; k < c->units[i].n_params; k++) {
            t[n] = (tensor){.p = &c->units[i].params[k], .unit = i};
            snprintf(t[n++].name, sizeof t->name, "%s", c->units[i].params[k].name);
        }
    zrt_out_dir out;
    int rc = zrt_shards_output_begin("consolidate", out_dir, &out);
    if (rc == ZRT_EXIT_OK) rc = zrt_shards_output_end("consolidate", &out, zrt_shards_write_safetensors(o, c, t, n, &out));
    free(t);
    return rc;
}
