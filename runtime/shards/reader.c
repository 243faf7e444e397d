/* reader.c: opens a zrt checkpoint without an engine or a model (zrt/shards.h):
 * meta.json parsed and checked, ranges of any part read straight from the
 * shard files with pread, and a verifier that streams every section through
 * its CRC.
 *
 * Why offsets are computed, not scanned: every shard file has the same
 * layout (a header, then per unit a section header and 3 x shard floats), so
 * a range of unit i in rank q's file is at a known offset; the verifier
 * checks that the headers there say what meta.json says.
 */
#include "zrt.h"
#include "shards_internal.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define META_MAX (64 << 20) /* a meta.json larger than this is not ours */
#define VERIFY_CHUNK (1 << 20)

/* dir: path, or the step its `latest` names (*via_latest). */
static zrt_status resolve(const char *path, char *dir, size_t size, bool *via_latest)
{
    char probe[ZRT_PATH_MAX + 128];
    snprintf(probe, sizeof probe, "%s/meta.json", path);
    if (access(probe, F_OK) == 0) return snprintf(dir, size, "%s", path) < (int)size ? ZRT_OK : ZRT_ERR_INVALID;
    snprintf(probe, sizeof probe, "%s/latest", path);
    FILE *f = fopen(probe, "r");
    if (!f) return zrt_set_error(ZRT_ERR_IO, "%s: no meta.json and no `latest` (not a zrt checkpoint)", path);
    char name[256] = "";
    bool ok = fgets(name, sizeof name, f) != NULL;
    fclose(f);
    name[strcspn(name, "\r\n")] = '\0';
    *via_latest = true;
    snprintf(dir, size, "%s/%s", path, name);
    if (!ok || !name[0] || strchr(name, '/'))
        return zrt_set_error(ZRT_ERR_IO, "%s: does not name a step directory", probe);
    return ZRT_OK;
}

static zrt_status read_text(const char *file, char **out)
{
    FILE *f = fopen(file, "rb");
    if (!f) return zrt_set_error(ZRT_ERR_IO, "%s: cannot open: %s", file, strerror(errno));
    char *text = malloc(META_MAX + 1);
    size_t n = text ? fread(text, 1, META_MAX + 1, f) : 0;
    fclose(f);
    if (!text) return zrt_set_error(ZRT_ERR_NOMEM, "%s: out of memory", file);
    if (n > META_MAX) {
        free(text);
        return zrt_set_error(ZRT_ERR_CONFIG, "%s: larger than %d MiB (not a zrt meta.json)", file, META_MAX >> 20);
    }
    text[n] = '\0';
    *out = text;
    return ZRT_OK;
}

static bool integer(const cJSON *obj, const char *key, int64_t min, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v) || v->valuedouble < (double)min || v->valuedouble > 9e15 || v->valuedouble != (double)(int64_t)v->valuedouble)
        return false;
    *out = (int64_t)v->valuedouble;
    return true;
}

static zrt_status parse_param(const cJSON *json, const zrt_ckpt_unit *u, zrt_ckpt_param *p, const char *file, int unit)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(json, "name"), *shape = cJSON_GetObjectItemCaseSensitive(json, "shape");
    if (!cJSON_IsString(name) || strlen(name->valuestring) >= sizeof p->name || !integer(json, "numel", 1, &p->numel) ||
        !integer(json, "offset", 0, &p->offset) || p->offset + p->numel > u->numel)
        return zrt_set_error(ZRT_ERR_CONFIG, "%s: unit %d: a parameter without a name, numel or offset inside the unit", file,
                             unit);
    snprintf(p->name, sizeof p->name, "%s", name->valuestring);
    int64_t product = 1;
    p->ndim = cJSON_IsArray(shape) ? cJSON_GetArraySize(shape) : 0;
    if (p->ndim > ZRT_MAX_PARAM_DIMS) return zrt_set_error(ZRT_ERR_CONFIG, "%s: %s: more than %d dimensions", file, p->name, ZRT_MAX_PARAM_DIMS);
    for (int d = 0; d < p->ndim; d++) {
        const cJSON *dim = cJSON_GetArrayItem(shape, d);
        if (!cJSON_IsNumber(dim) || dim->valuedouble < 1) return zrt_set_error(ZRT_ERR_CONFIG, "%s: %s: bad shape", file, p->name);
        product *= (p->shape[d] = (int64_t)dim->valuedouble);
    }
    if (p->ndim && product != p->numel)
        return zrt_set_error(ZRT_ERR_CONFIG, "%s: %s: shape does not multiply to numel %lld", file, p->name, (long long)p->numel);
    return ZRT_OK;
}

static zrt_status parse_units(zrt_ckpt *c, const cJSON *units, const char *file)
{
    c->n_units = cJSON_IsArray(units) ? cJSON_GetArraySize(units) : 0;
    if (c->n_units < 1 || c->n_units > ZRT_MAX_UNITS) return zrt_set_error(ZRT_ERR_CONFIG, "%s: no units", file);
    if (!(c->units = calloc((size_t)c->n_units, sizeof *c->units))) return zrt_set_error(ZRT_ERR_NOMEM, "out of memory");
    for (int i = 0; i < c->n_units; i++) {
        const cJSON *unit = cJSON_GetArrayItem(units, i), *params = cJSON_GetObjectItemCaseSensitive(unit, "params");
        zrt_ckpt_unit *u = &c->units[i];
        if (!integer(unit, "numel", 1, &u->numel) || !integer(unit, "padded", 1, &u->padded) ||
            !integer(unit, "shard", 1, &u->shard) || u->shard > ((int64_t)1 << 40) || u->shard * c->world != u->padded ||
            u->padded < u->numel)
            return zrt_set_error(ZRT_ERR_CONFIG, "%s: unit %d: malformed sizes (numel, padded, shard x world_size)", file, i);
        u->n_params = cJSON_IsArray(params) ? cJSON_GetArraySize(params) : 0;
        if (u->n_params < 1 || u->n_params > ZRT_MAX_UNIT_PARAMS)
            return zrt_set_error(ZRT_ERR_CONFIG, "%s: unit %d: no parameters", file, i);
        if (!(u->params = calloc((size_t)u->n_params, sizeof *u->params))) return zrt_set_error(ZRT_ERR_NOMEM, "out of memory");
        for (int p = 0; p < u->n_params; p++) ZRT_CHECK(parse_param(cJSON_GetArrayItem(params, p), u, &u->params[p], file, i));
    }
    return ZRT_OK;
}

static void copy_string(const cJSON *obj, const char *key, char *out, size_t size, const char *fallback)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    snprintf(out, size, "%s", cJSON_IsString(v) ? v->valuestring : fallback);
}

static zrt_status parse_meta(zrt_ckpt *c, const char *file)
{
    char *text = NULL;
    ZRT_CHECK(read_text(file, &text));
    cJSON *meta = cJSON_Parse(text);
    free(text);
    c->meta = meta;
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(meta, "format");
    if (!meta || !cJSON_IsString(format) || strcmp(format->valuestring, "zrt-checkpoint") != 0)
        return zrt_set_error(ZRT_ERR_CONFIG, "%s: not a zrt checkpoint (unreadable JSON or another format)", file);
    int64_t version = 0, world = 0, stage = 0;
    if (!integer(meta, "version", 1, &version) || version != ZRT_CKPT_VERSION)
        return zrt_set_error(ZRT_ERR_CONFIG, "%s: format version %lld; this zrt reads %d", file, (long long)version,
                             ZRT_CKPT_VERSION);
    if (!integer(meta, "world_size", 1, &world) || world > 1 << 16 || !integer(meta, "step", 0, &c->step) ||
        !integer(meta, "adam_steps", 0, &c->adam_steps))
        return zrt_set_error(ZRT_ERR_CONFIG, "%s: missing or bad world_size, step or adam_steps", file);
    c->world = (int)world;
    c->stage = integer(meta, "stage", 0, &stage) ? (int)stage : -1;
    copy_string(meta, "dtype", c->dtype, sizeof c->dtype, "?");
    const cJSON *zrt = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(meta, "config"), "zrt");
    copy_string(cJSON_GetObjectItemCaseSensitive(zrt, "model"), "type", c->model, sizeof c->model, "?");
    return parse_units(c, cJSON_GetObjectItemCaseSensitive(meta, "units"), file);
}

static void first_problem(void *arg, const char *line)
{
    char *first = arg;
    if (!first[0]) snprintf(first, ZRT_ERROR_MAX, "%s", line);
}

/* The shard files against meta.json: the first problem becomes the error. */
static zrt_status check_files(const zrt_ckpt *c, zrt_ckpt_check check)
{
    char first[ZRT_ERROR_MAX] = "";
    int problems = zrt_ckpt_check_files(c, check == ZRT_CKPT_CHECK_ALL, first_problem, first);
    if (!problems) return ZRT_OK;
    if (problems == 1) return zrt_set_error(ZRT_ERR_IO, "%s", first);
    return zrt_set_error(ZRT_ERR_IO, "%s (and %d more problems: zrt shards verify lists them)", first, problems - 1);
}

/* When `latest` led to a bad step: the error names the newest good one. */
static void name_newest_good(const char *path, const char *bad_dir)
{
    char message[ZRT_ERROR_MAX], good[256];
    const char *bad = strrchr(bad_dir, '/') ? strrchr(bad_dir, '/') + 1 : bad_dir;
    snprintf(message, sizeof message, "%s", zrt_last_error());
    if (zrt_ckpt_newest_good(path, bad, good, sizeof good) == ZRT_OK)
        zrt_set_error(ZRT_ERR_IO, "%s; %s/latest names %s, which is damaged: the newest good step is %s/%s (write %s "
                      "into %s/latest to use it)", message, path, bad, path, good, good, path);
    else
        zrt_set_error(ZRT_ERR_IO, "%s; %s/latest names %s, which is damaged, and no other step there is good", message,
                      path, bad);
}

zrt_status zrt_ckpt_open_checked(const char *path, zrt_ckpt_check check, zrt_ckpt **out)
{
    if (!path || !out) return zrt_set_error(ZRT_ERR_INVALID, "zrt_ckpt_open: NULL argument");
    zrt_ckpt *c = calloc(1, sizeof *c);
    if (!c) return zrt_set_error(ZRT_ERR_NOMEM, "out of memory");
    char file[sizeof c->dir + 16];
    bool via_latest = false;
    zrt_status status = resolve(path, c->dir, sizeof c->dir, &via_latest);
    snprintf(file, sizeof file, "%s/meta.json", c->dir);
    if (status == ZRT_OK) status = parse_meta(c, file);
    if (status == ZRT_OK && !(c->checked = calloc((size_t)c->world * (size_t)c->n_units, 1)))
        status = zrt_set_error(ZRT_ERR_NOMEM, "out of memory");
    if (status == ZRT_OK && check != ZRT_CKPT_CHECK_META) status = check_files(c, check);
    if (status != ZRT_OK) {
        if (via_latest) name_newest_good(path, c->dir);
        zrt_ckpt_close(c);
        return status;
    }
    *out = c;
    return ZRT_OK;
}

zrt_status zrt_ckpt_open(const char *path, zrt_ckpt **out)
{
    return zrt_ckpt_open_checked(path, ZRT_CKPT_CHECK_ALL, out);
}

void zrt_ckpt_close(zrt_ckpt *c)
{
    if (!c) return;
    for (int i = 0; c->units && i < c->n_units; i++) free(c->units[i].params);
    free(c->units);
    cJSON_Delete(c->meta);
    free(c->checked);
    free(c);
}

int64_t zrt_ckpt_section_offset(const zrt_ckpt *c, int unit)
{
    int64_t at = (int64_t)sizeof(zrt_shard_header);
    for (int i = 0; i < unit; i++) at += (int64_t)sizeof(zrt_section_header) + 3 * c->units[i].shard * 4;
    return at;
}

static void shard_path(const zrt_ckpt *c, int rank, char *out, size_t size)
{
    snprintf(out, size, "%s/shard_%05d.bin", c->dir, rank);
}

zrt_status zrt_ckpt_read(const zrt_ckpt *c, int unit, int part, int64_t begin, int64_t n, float *out)
{
    if (!c || unit < 0 || unit >= c->n_units || part < 0 || part >= ZRT_CKPT_PARTS || begin < 0 || n < 0 ||
        begin + n > c->units[unit].padded)
        return zrt_set_error(ZRT_ERR_INVALID, "zrt_ckpt_read: bad range");
    const zrt_ckpt_unit *u = &c->units[unit];
    int64_t section = zrt_ckpt_section_offset(c, unit) + (int64_t)sizeof(zrt_section_header);
    while (n > 0) {
        int q = (int)(begin / u->shard);
        int64_t from = begin - q * u->shard, take = u->shard - from < n ? u->shard - from : n;
        ZRT_CHECK(zrt_ckpt_check_section(c, q, unit));
        char path[sizeof c->dir + 32];
        shard_path(c, q, path, sizeof path);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) return zrt_set_error(ZRT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        off_t at = (off_t)(section + ((int64_t)part * u->shard + from) * 4);
        ssize_t got = pread(fd, out, (size_t)take * 4, at);
        close(fd);
        if (got != (ssize_t)(take * 4))
            return zrt_set_error(ZRT_ERR_IO, "%s: truncated: unit %d wants %lld bytes at offset %lld", path, unit,
                                 (long long)take * 4, (long long)at);
        out += take;
        begin += take;
        n -= take;
    }
    return ZRT_OK;
}

zrt_status zrt_ckpt_find(const zrt_ckpt *c, const char *name, int *unit, int *param)
{
    for (int i = 0; i < c->n_units; i++)
        for (int p = 0; p < c->units[i].n_params; p++)
            if (strcmp(c->units[i].params[p].name, name) == 0) {
                *unit = i;
                *param = p;
                return ZRT_OK;
            }
    return zrt_set_error(ZRT_ERR_INVALID, "%s: no parameter named %s", c->dir, name);
}
