/* writer.c: a checkpoint shard file, written as the reader (reader.c,
 * verify.c) checks it: the header with its CRC, then each unit's section
 * header -- its CRC over the section's floats, filled in when the section
 * ends -- and the floats (zrt/internal/ckpt_writer.h).
 *
 * Why a writer here: the format had two writers (the engine's save and
 * `zrt shards reshard`) that each spelled the headers and CRCs out; one
 * folder now owns the format, and both stream through these calls. meta.json
 * is composed here too, from the same zrt_ckpt description the reader makes.
 */
#include "zrt/internal/ckpt_writer.h"
#include "zrt/internal/output.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static zrt_status write_all(zrt_shard_writer *w, const void *data, size_t len)
{
    return zrt_write_all(w->fd, data, len, w->path);
}

zrt_status zrt_shard_writer_open(zrt_shard_writer *w, const char *path, int rank, int world, int n_units, int64_t step)
{
    memset(w, 0, sizeof *w);
    w->section_at = -1;
    snprintf(w->path, sizeof w->path, "%s", path);
    w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) return zrt_set_error(ZRT_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    zrt_shard_header h = {.version = ZRT_CKPT_VERSION, .rank = (uint32_t)rank, .world = (uint32_t)world,
                          .n_units = (uint32_t)n_units, .step = (uint64_t)step};
    memcpy(h.magic, ZRT_CKPT_SHARD_MAGIC, 8);
    h.crc = zrt_crc32c(0, &h, offsetof(zrt_shard_header, crc));
    zrt_status status = write_all(w, &h, sizeof h);
    if (status != ZRT_OK) zrt_shard_writer_abort(w);
    return status;
}

/* The open section's header, its CRC now complete, over its placeholder. */
static zrt_status end_section(zrt_shard_writer *w)
{
    if (w->section_at < 0) return ZRT_OK;
    if (w->floats_left != 0)
        return zrt_set_error(ZRT_ERR_INTERNAL, "%s: unit %u's section is %lld floats short", w->path, w->section.unit,
                             (long long)w->floats_left);
    if (pwrite(w->fd, &w->section, sizeof w->section, w->section_at) != (ssize_t)sizeof w->section)
        return zrt_set_error(ZRT_ERR_IO, "%s: write failed: %s", w->path, strerror(errno));
    w->section_at = -1;
    return ZRT_OK;
}

zrt_status zrt_shard_writer_section(zrt_shard_writer *w, int unit, int64_t begin, int64_t count)
{
    ZRT_CHECK(end_section(w));
    off_t at = lseek(w->fd, 0, SEEK_CUR);
    if (at < 0) return zrt_set_error(ZRT_ERR_IO, "%s: lseek: %s", w->path, strerror(errno));
    w->section = (zrt_section_header){.unit = (uint32_t)unit, .begin = (uint64_t)begin, .count = (uint64_t)count};
    w->section_at = at;
    w->floats_left = 3 * count;
    return write_all(w, &w->section, sizeof w->section); /* a placeholder until its CRC is known */
}

zrt_status zrt_shard_writer_floats(zrt_shard_writer *w, const float *values, size_t n)
{
    if (w->section_at < 0 || (int64_t)n > w->floats_left)
        return zrt_set_error(ZRT_ERR_INTERNAL, "%s: %zu floats more than unit %u's section holds", w->path, n,
                             w->section.unit);
    w->section.crc = zrt_crc32c(w->section.crc, values, n * sizeof(float));
    w->floats_left -= (int64_t)n;
    return write_all(w, values, n * sizeof(float));
}

zrt_status zrt_shard_writer_close(zrt_shard_writer *w)
{
    zrt_status status = end_section(w);
    if (status == ZRT_OK && fsync(w->fd) != 0)
        status = zrt_set_error(ZRT_ERR_IO, "%s: fsync: %s", w->path, strerror(errno));
    if (close(w->fd) != 0 && status == ZRT_OK)
        status = zrt_set_error(ZRT_ERR_IO, "%s: close: %s", w->path, strerror(errno));
    w->fd = -1;
    return status;
}

void zrt_shard_writer_abort(zrt_shard_writer *w)
{
    if (w->fd >= 0) close(w->fd);
    w->fd = -1;
}

/* ---- meta.json ------------------------------------------------------------------------------ */

static cJSON *unit_json(const zrt_ckpt_unit *u)
{
    cJSON *unit = cJSON_CreateObject(), *params = cJSON_AddArrayToObject(unit, "params");
    cJSON_AddNumberToObject(unit, "numel", (double)u->numel);
    cJSON_AddNumberToObject(unit, "padded", (double)u->padded);
    cJSON_AddNumberToObject(unit, "shard", (double)u->shard);
    for (int p = 0; p < u->n_params; p++) {
        const zrt_ckpt_param *info = &u->params[p];
        cJSON *param = cJSON_CreateObject(), *shape;
        cJSON_AddStringToObject(param, "name", info->name);
        cJSON_AddNumberToObject(param, "numel", (double)info->numel);
        cJSON_AddNumberToObject(param, "offset", (double)info->offset);
        shape = cJSON_AddArrayToObject(param, "shape");
        for (int d = 0; d < info->ndim; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)info->shape[d]));
        cJSON_AddItemToArray(params, param);
    }
    return unit;
}

char *zrt_ckpt_meta_text(const zrt_ckpt *c, const zrt_ckpt_meta_extra *x)
{
    cJSON *meta = cJSON_CreateObject(), *units = cJSON_AddArrayToObject(meta, "units");
    cJSON_AddStringToObject(meta, "format", "zrt-checkpoint");
    cJSON_AddNumberToObject(meta, "version", ZRT_CKPT_VERSION);
    cJSON_AddNumberToObject(meta, "step", (double)c->step);
    cJSON_AddNumberToObject(meta, "adam_steps", (double)c->adam_steps);
    cJSON_AddNumberToObject(meta, "world_size", c->world);
    cJSON_AddNumberToObject(meta, "stage", c->stage);
    cJSON_AddNumberToObject(meta, "train_batch_size", (double)x->train_batch_size); /* what a resume compares */
    cJSON_AddNumberToObject(meta, "samples", (double)x->samples); /* the data's position: any world size goes on */
    cJSON_AddStringToObject(meta, "dtype", c->dtype);
    for (int i = 0; i < c->n_units; i++) cJSON_AddItemToArray(units, unit_json(&c->units[i]));
    cJSON *scaler = cJSON_AddObjectToObject(meta, "loss_scaler");
    cJSON_AddNumberToObject(scaler, "scale", x->scale);
    cJSON_AddNumberToObject(scaler, "hysteresis_left", (double)x->hysteresis_left);
    cJSON_AddNumberToObject(scaler, "last_overflow_step", (double)x->last_overflow_step);
    cJSON_AddNumberToObject(scaler, "step", (double)x->scaler_step);
    if (x->config_json) cJSON_AddItemToObject(meta, "config", cJSON_Parse(x->config_json));
    char *text = cJSON_Print(meta);
    cJSON_Delete(meta);
    return text;
}
