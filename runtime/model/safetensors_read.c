/* safetensors_read.c: safetensors files and sharded directories read by
 * element ranges (safetensors_read.h).
 *
 * Why this shape: a sharded Hugging Face checkpoint is an index
 * (model.safetensors.index.json: tensor -> file) and any number of files,
 * each an 8-byte header length, a JSON header (name -> dtype, shape,
 * data_offsets relative to the end of the header) and the data. A rank
 * parses the index once, a file's header when it first needs one of its
 * tensors, and preads only the bytes of the elements it asks for, through a
 * bounded bounce buffer for 2-byte types. Invariant: every entry handed out
 * has been checked to lie inside its file (a truncated file fails by name).
 */
#include "safetensors_read.h"

#include "cast.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEADER_MAX (100 << 20)
#define INDEX_MAX (64 << 20)
#define BOUNCE_ELEMS (1 << 18) /* 512 KiB of 2-byte values per pread */

typedef struct {
    char path[ZRT_PATH_MAX + 64];
    int fd;         /* -1 until its header is read */
    cJSON *header;
    int64_t data_start, size;
} st_file;

struct zrt_st_source {
    char path[ZRT_PATH_MAX];
    cJSON *index;   /* model.safetensors.index.json, or NULL for one file */
    const cJSON *map;
    st_file *files;
    int n_files;
};

static char *read_all(const char *path, int64_t limit, int64_t *len)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size > limit) {
        if (fd >= 0) close(fd);
        return NULL;
    }
    char *text = malloc((size_t)st.st_size + 1);
    ssize_t got = text ? pread(fd, text, (size_t)st.st_size, 0) : -1;
    close(fd);
    if (got != (ssize_t)st.st_size) {
        free(text);
        return NULL;
    }
    text[got] = '\0';
    *len = got;
    return text;
}

static zrt_status add_file(zrt_st_source *s, const char *path)
{
    st_file *grown = realloc(s->files, (size_t)(s->n_files + 1) * sizeof *grown);
    if (!grown) return zrt_set_error(ZRT_ERR_NOMEM, "init_from %s: out of memory", s->path);
    s->files = grown;
    st_file *f = &s->files[s->n_files++];
    memset(f, 0, sizeof *f);
    f->fd = -1;
    snprintf(f->path, sizeof f->path, "%s", path);
    return ZRT_OK;
}

static int file_named(const zrt_st_source *s, const char *path)
{
    for (int i = 0; i < s->n_files; i++)
        if (strcmp(s->files[i].path, path) == 0) return i;
    return -1;
}

/* The index's files, each once; a name with a '/' would leave the directory. */
static zrt_status open_index(zrt_st_source *s, const char *index_path)
{
    int64_t len = 0;
    char *text = read_all(index_path, INDEX_MAX, &len);
    s->index = text ? cJSON_Parse(text) : NULL;
    free(text);
    s->map = cJSON_GetObjectItemCaseSensitive(s->index, "weight_map");
    if (!cJSON_IsObject(s->map))
        return zrt_set_error(ZRT_ERR_CONFIG, "init_from %s: no model.safetensors and no readable "
                             "model.safetensors.index.json (with a weight_map)", s->path);
    char file[ZRT_PATH_MAX + 64];
    for (const cJSON *e = s->map->child; e; e = e->next) {
        if (!cJSON_IsString(e) || strchr(e->valuestring, '/'))
            return zrt_set_error(ZRT_ERR_CONFIG, "init_from %s: weight_map entry %s is not a file name here", index_path,
                                 e->string);
        snprintf(file, sizeof file, "%s/%s", s->path, e->valuestring);
        if (file_named(s, file) < 0) ZRT_CHECK(add_file(s, file));
    }
    return ZRT_OK;
}

zrt_status zrt_st_open(const char *path, zrt_st_source **out)
{
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0) return zrt_set_error(ZRT_ERR_CONFIG, "init_from %s: %s", path, strerror(errno));
    zrt_st_source *s = calloc(1, sizeof *s);
    if (!s) return zrt_set_error(ZRT_ERR_NOMEM, "init_from: out of memory");
    snprintf(s->path, sizeof s->path, "%s", path);
    char file[ZRT_PATH_MAX + 64];
    zrt_status status;
    if (!S_ISDIR(st.st_mode)) status = add_file(s, path);
    else if (snprintf(file, sizeof file, "%s/model.safetensors", path), access(file, F_OK) == 0) status = add_file(s, file);
    else {
        snprintf(file, sizeof file, "%s/model.safetensors.index.json", path);
        status = open_index(s, file);
    }
    if (status != ZRT_OK) zrt_st_close(s);
    else *out = s;
    return status;
}

void zrt_st_close(zrt_st_source *s)
{
    if (!s) return;
    for (int i = 0; i < s->n_files; i++) {
        if (s->files[i].fd >= 0) close(s->files[i].fd);
        cJSON_Delete(s->files[i].header);
    }
    free(s->files);
    cJSON_Delete(s->index);
    free(s);
}

static int64_t entry_end(const cJSON *t)
{
    const cJSON *end = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(t, "data_offsets"), 1);
    return cJSON_IsNumber(end) ? (int64_t)end->valuedouble : 0;
}

/* The header of f, once; its data must fit in the file. */
static zrt_status load_header(st_file *f)
{
    if (f->fd >= 0) return ZRT_OK;
    struct stat st;
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0) close(fd);
        return zrt_set_error(ZRT_ERR_CONFIG, "init_from %s: cannot open: %s", f->path, strerror(errno));
    }
    uint64_t n = 0;
    char *text = NULL;
    bool ok = pread(fd, &n, 8, 0) == 8 && n > 1 && n < HEADER_MAX && (int64_t)(8 + n) <= (int64_t)st.st_size &&
              (text = malloc(n + 1)) && pread(fd, text, n, 8) == (ssize_t)n;
    if (ok) text[n] = '\0';
    f->header = ok ? cJSON_Parse(text) : NULL;
    free(text);
    f->fd = fd;
    f->data_start = 8 + (int64_t)n;
    f->size = (int64_t)st.st_size;
    if (!cJSON_IsObject(f->header))
        return zrt_set_error(ZRT_ERR_CONFIG, "init_from %s: not a safetensors file (bad header)", f->path);
    int64_t end = 0;
    for (const cJSON *t = f->header->child; t; t = t->next)
        end = entry_end(t) > end ? entry_end(t) : end;
    if (f->data_start + end > f->size)
        return zrt_set_error(ZRT_ERR_CONFIG, "init_from %s: truncated: its header places data up to byte %lld, the file "
                             "has %lld", f->path, (long long)(f->data_start + end), (long long)f->size);
    return ZRT_OK;
}

static const struct {
    const char *name;
    zrt_dtype dtype;
    int size;
} DTYPES[] = {{"F32", ZRT_DTYPE_F32, 4}, {"BF16", ZRT_DTYPE_BF16, 2}, {"F16", ZRT_DTYPE_F16, 2}};

static int dtype_size(zrt_dtype d) { return d == ZRT_DTYPE_F32 ? 4 : 2; }

/* An entry of f's header as a tensor, checked. */
static int entry(const st_file *f, const char *name, const cJSON *e, zrt_st_tensor *t)
{
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(e, "dtype"), *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    *t = (zrt_st_tensor){.file = f->path, .fd = f->fd, .numel = 1};
    int d = 0, n = (int)(sizeof DTYPES / sizeof DTYPES[0]);
    while (d < n && !(cJSON_IsString(dtype) && strcmp(dtype->valuestring, DTYPES[d].name) == 0)) d++;
    if (d == n)
        return zrt_set_error(ZRT_ERR_CONFIG, "init_from %s: %s: dtype %s; zrt reads F32, BF16 and F16", f->path, name,
                             cJSON_IsString(dtype) ? dtype->valuestring : "missing"), -1;
    t->dtype = DTYPES[d].dtype;
    t->ndim = cJSON_GetArraySize(shape);
    bool ok = cJSON_IsArray(shape) && t->ndim <= ZRT_MAX_PARAM_DIMS;
    for (int i = 0; ok && i < t->ndim; i++) {
        const cJSON *dim = cJSON_GetArrayItem(shape, i);
        ok = cJSON_IsNumber(dim) && dim->valuedouble >= 0;
        t->shape[i] = ok ? (int64_t)dim->valuedouble : 0;
        t->numel *= t->shape[i];
    }
    const cJSON *begin = cJSON_GetArrayItem(offsets, 0);
    ok = ok && cJSON_IsNumber(begin) && begin->valuedouble >= 0 &&
         entry_end(e) - (int64_t)begin->valuedouble == t->numel * DTYPES[d].size;
    if (!ok)
        return zrt_set_error(ZRT_ERR_CONFIG, "init_from %s: %s: shape and data_offsets disagree", f->path, name), -1;
    t->at = f->data_start + (int64_t)begin->valuedouble;
    return 1;
}

int zrt_st_find(zrt_st_source *s, const char *name, zrt_st_tensor *t)
{
    int i = 0;
    if (s->map) {
        const cJSON *where = cJSON_GetObjectItemCaseSensitive(s->map, name);
        if (!cJSON_IsString(where)) return 0;
        char file[ZRT_PATH_MAX + 64];
        snprintf(file, sizeof file, "%s/%s", s->path, where->valuestring);
        i = file_named(s, file);
    }
    st_file *f = &s->files[i];
    if (load_header(f) != ZRT_OK) return -1;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(f->header, name);
    if (!e && s->map)
        return zrt_set_error(ZRT_ERR_CONFIG, "init_from %s: the index places %s here; the file has no such tensor",
                             f->path, name), -1;
    return e ? entry(f, name, e, t) : 0;
}

zrt_status zrt_st_read(const zrt_st_tensor *t, int64_t first, int64_t count, float *out)
{
    int es = dtype_size(t->dtype);
    if (first < 0 || count < 0 || first + count > t->numel)
        return zrt_set_error(ZRT_ERR_INVALID, "init_from %s: elements [%lld, %lld) outside %lld", t->file,
                             (long long)first, (long long)(first + count), (long long)t->numel);
    uint16_t *bounce = es == 2 ? malloc(BOUNCE_ELEMS * sizeof *bounce) : NULL;
    if (es == 2 && !bounce) return zrt_set_error(ZRT_ERR_NOMEM, "init_from: out of memory");
    zrt_status status = ZRT_OK;
    for (int64_t done = 0; status == ZRT_OK && done < count;) {
        int64_t n = es == 4 ? count - done : (count - done < BOUNCE_ELEMS ? count - done : BOUNCE_ELEMS);
        void *to = es == 4 ? (void *)(out + done) : (void *)bounce;
        ssize_t got = pread(t->fd, to, (size_t)(n * es), (off_t)(t->at + (first + done) * es));
        if (got <= 0 || got % es) {
            status = zrt_set_error(ZRT_ERR_IO, "init_from %s: read failed: %s", t->file, got < 0 ? strerror(errno) : "short");
            break;
        }
        n = got / es;
        for (int64_t i = 0; es == 2 && i < n; i++) out[done + i] = zrt_load_f32(bounce, (size_t)i, (int)t->dtype);
        done += n;
    }
    free(bounce);
    return status;
}

zrt_status zrt_st_each(zrt_st_source *s, zrt_status (*fn)(void *ctx, const char *file, const char *name), void *ctx)
{
    for (int i = 0; i < s->n_files; i++) {
        ZRT_CHECK(load_header(&s->files[i]));
        for (const cJSON *e = s->files[i].header->child; e; e = e->next)
            if (strcmp(e->string, "__metadata__") != 0) ZRT_CHECK(fn(ctx, s->files[i].path, e->string));
    }
    return ZRT_OK;
}
