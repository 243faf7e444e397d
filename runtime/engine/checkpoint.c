/* checkpoint.c: save and load the engine's state; loading re-slices it to any
 * world size and stage.
 *
 * Layout: DIR/step_NNNNNNN/meta.json (format, step, world size, stage, the
 * units with their parameters, the loss scaler, the config) and one
 * shard_RRRRR.bin per rank: a header, then per unit one section holding that
 * rank's shard [r * shard, (r + 1) * shard) of the flat layout -- fp32 master,
 * exp_avg, exp_avg_sq -- each header and section with a CRC32C. The files do
 * not depend on the stage (stage 0 ranks also write only their own shard).
 * DIR/latest names the newest complete checkpoint.
 * Crash safety: everything is written under DIR/.step_NNNNNNN.tmp, fsynced,
 * renamed to step_NNNNNNN, and only then is `latest` replaced (temporary
 * name, fsync, rename): a crash at any point leaves the previous checkpoint
 * and `latest` intact. Loading checks every CRC and the model's shape.
 * Both calls are collective; a failure on any rank fails them on every rank.
 */
#include "engine_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Nested path buffers: a step directory, a file in it, that file's .tmp. */
#define DIR_BUF (ZRT_PATH_MAX + 64)
#define FILE_BUF (DIR_BUF + 32)
#define TMP_BUF (FILE_BUF + 8)
#define STREAM_ELEMENTS ((int64_t)1 << 20) /* a shard is saved 4 MiB at a time */

/* ---- small file helpers ---------------------------------------------------------------------- */

static zrt_status write_all(int fd, const void *data, size_t len, const char *path)
{
    for (const char *p = data; len;) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return zrt_set_error(ZRT_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        p += n;
        len -= (size_t)n;
    }
    return ZRT_OK;
}

static void fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* Writes text to path via path.tmp + fsync + rename. */
static zrt_status write_file_atomic(const char *path, const char *text)
{
    char tmp[TMP_BUF];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return zrt_set_error(ZRT_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    zrt_status status = write_all(fd, text, strlen(text), tmp);
    if (status == ZRT_OK && fsync(fd) != 0) status = zrt_set_error(ZRT_ERR_IO, "%s: fsync: %s", tmp, strerror(errno));
    close(fd);
    if (status == ZRT_OK && rename(tmp, path) != 0)
        status = zrt_set_error(ZRT_ERR_IO, "%s: rename: %s", path, strerror(errno));
    return status;
}

static zrt_status remove_tree(const char *path)
{
    char cmd[DIR_BUF + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    return system(cmd) == 0 ? ZRT_OK : zrt_set_error(ZRT_ERR_IO, "cannot remove %s", path);
}

/* ---- save ------------------------------------------------------------------------------------- */

/* Test hook: ZRT_FAULT_CRASH_IN_SAVE=RANK:STEP kills that rank halfway
 * through its shard of the checkpoint of that step. */
static void maybe_crash(int rank, int64_t step)
{
    const char *spec = getenv("ZRT_FAULT_CRASH_IN_SAVE");
    int crash_rank;
    long long crash_step;
    if (spec && sscanf(spec, "%d:%lld", &crash_rank, &crash_step) == 2 && crash_rank == rank && crash_step == step)
        raise(SIGKILL);
}

/* Unit i's section: the header (its CRC filled in last), then the own
 * shard's master, exp_avg and exp_avg_sq, streamed STREAM_ELEMENTS at a time
 * (from NVMe, sub-group by sub-group: the shard is never staged in RAM). */
static zrt_status write_section(zrt_engine *e, int fd, const char *path, int i, float *chunk)
{
    unit_state *u = &e->units[i];
    int64_t begin = (int64_t)e->rank * u->shard, local = begin - zrt_engine_opt_begin(e, u);
    zrt_section_header s = {.unit = (uint32_t)i, .begin = (uint64_t)begin, .count = (uint64_t)u->shard};
    off_t at = lseek(fd, 0, SEEK_CUR);
    zrt_status status = at < 0 ? zrt_set_error(ZRT_ERR_IO, "%s: lseek: %s", path, strerror(errno))
                               : write_all(fd, &s, sizeof s, path);
    for (int part = 0; status == ZRT_OK && part < STATE_PARTS; part++)
        for (int64_t done = 0; status == ZRT_OK && done < u->shard; done += STREAM_ELEMENTS) {
            size_t n = (size_t)(u->shard - done < STREAM_ELEMENTS ? u->shard - done : STREAM_ELEMENTS);
            status = zrt_engine_state_io(e, i, part, (size_t)(local + done), n, chunk, false);
            if (status == ZRT_OK) s.crc = zrt_crc32c(s.crc, chunk, n * sizeof(float));
            if (status == ZRT_OK) status = write_all(fd, chunk, n * sizeof(float), path);
        }
    if (status == ZRT_OK && pwrite(fd, &s, sizeof s, at) != (ssize_t)sizeof s)
        status = zrt_set_error(ZRT_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    return status;
}

static zrt_status write_shard(zrt_engine *e, const char *dir)
{
    char path[FILE_BUF];
    snprintf(path, sizeof path, "%s/shard_%05d.bin", dir, e->rank);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return zrt_set_error(ZRT_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    zrt_shard_header h = {.version = ZRT_CKPT_VERSION, .rank = (uint32_t)e->rank, .world = (uint32_t)e->world,
                      .n_units = (uint32_t)e->n_units, .step = (uint64_t)e->step};
    memcpy(h.magic, ZRT_CKPT_SHARD_MAGIC, 8);
    h.crc = zrt_crc32c(0, &h, offsetof(zrt_shard_header, crc));
    zrt_status status = write_all(fd, &h, sizeof h, path);
    float *chunk = malloc(STREAM_ELEMENTS * sizeof(float));
    if (!chunk) status = zrt_set_error(ZRT_ERR_NOMEM, "checkpoint: out of host memory");
    for (int i = 0; status == ZRT_OK && i < e->n_units; i++) {
        status = write_section(e, fd, path, i, chunk);
        if (i == e->n_units / 2) maybe_crash(e->rank, e->step);
    }
    free(chunk);
    if (status == ZRT_OK && fsync(fd) != 0) status = zrt_set_error(ZRT_ERR_IO, "%s: fsync: %s", path, strerror(errno));
    close(fd);
    return status;
}

static cJSON *meta_json(const zrt_engine *e)
{
    cJSON *meta = cJSON_CreateObject(), *units = cJSON_AddArrayToObject(meta, "units");
    cJSON_AddStringToObject(meta, "format", "zrt-checkpoint");
    cJSON_AddNumberToObject(meta, "version", ZRT_CKPT_VERSION);
    cJSON_AddNumberToObject(meta, "step", (double)e->step);
    cJSON_AddNumberToObject(meta, "adam_steps", (double)e->adam_steps);
    cJSON_AddNumberToObject(meta, "world_size", e->world);
    cJSON_AddNumberToObject(meta, "stage", e->stage);
    cJSON_AddNumberToObject(meta, "train_batch_size", (double)e->global_batch); /* what a resume compares */
    cJSON_AddStringToObject(meta, "dtype", zrt_dtype_name(e->dtype));
    for (int i = 0; i < e->n_units; i++) {
        const unit_state *u = &e->units[i];
        cJSON *unit = cJSON_CreateObject(), *params = cJSON_AddArrayToObject(unit, "params");
        cJSON_AddNumberToObject(unit, "numel", (double)u->numel);
        cJSON_AddNumberToObject(unit, "padded", (double)u->padded);
        cJSON_AddNumberToObject(unit, "shard", (double)u->shard);
        for (int p = 0; p < e->model->n_params[i]; p++) {
            const zrt_param_info *info = &e->model->params[i][p];
            cJSON *param = cJSON_CreateObject();
            cJSON_AddStringToObject(param, "name", info->name);
            cJSON_AddNumberToObject(param, "numel", (double)info->numel);
            cJSON_AddNumberToObject(param, "offset", (double)info->offset);
            cJSON *shape = cJSON_AddArrayToObject(param, "shape");
            for (int d = 0; d < info->ndim; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)info->shape[d]));
            cJSON_AddItemToArray(params, param);
        }
        cJSON_AddItemToArray(units, unit);
    }
    cJSON *scaler = cJSON_AddObjectToObject(meta, "loss_scaler");
    cJSON_AddNumberToObject(scaler, "scale", e->scaler.scale);
    cJSON_AddNumberToObject(scaler, "hysteresis_left", (double)e->scaler.hysteresis_left);
    cJSON_AddNumberToObject(scaler, "last_overflow_step", (double)e->scaler.last_overflow_step);
    cJSON_AddNumberToObject(scaler, "step", (double)e->scaler.step);
    char *config = zrt_config_to_json(&e->cfg);
    if (config) cJSON_AddItemToObject(meta, "config", cJSON_Parse(config));
    free(config);
    return meta;
}

/* Rank 0: meta.json, then the renames that make the checkpoint visible. */
static zrt_status commit(zrt_engine *e, const char *dir, const char *tmp, const char *final_dir, const char *name)
{
    cJSON *meta = meta_json(e);
    char *text = meta ? cJSON_Print(meta) : NULL;
    cJSON_Delete(meta);
    if (!text) return zrt_set_error(ZRT_ERR_NOMEM, "checkpoint: out of memory for meta.json");
    char path[FILE_BUF];
    snprintf(path, sizeof path, "%s/meta.json", tmp);
    zrt_status status = write_file_atomic(path, text);
    free(text);
    if (status != ZRT_OK) return status;
    fsync_path(tmp);
    ZRT_CHECK(remove_tree(final_dir)); /* a re-save of the same step */
    if (rename(tmp, final_dir) != 0) return zrt_set_error(ZRT_ERR_IO, "%s: rename: %s", final_dir, strerror(errno));
    fsync_path(dir);
    char latest[FILE_BUF], line[64];
    snprintf(latest, sizeof latest, "%s/latest", dir);
    snprintf(line, sizeof line, "%s\n", name);
    ZRT_CHECK(write_file_atomic(latest, line));
    fsync_path(dir);
    return ZRT_OK;
}

zrt_status zrt_engine_save(zrt_engine *e, const char *dir)
{
    if (!e || !dir || !dir[0]) return zrt_set_error(ZRT_ERR_INVALID, "zrt_engine_save: no directory");
    char name[32], tmp[DIR_BUF], final_dir[DIR_BUF];
    snprintf(name, sizeof name, "step_%07lld", (long long)e->step);
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name);
    snprintf(final_dir, sizeof final_dir, "%s/%s", dir, name);
    ZRT_CHECK(zrt_engine_synchronize(e)); /* the optimizer state of the last step is final */
    zrt_status status = ZRT_OK;
    if (e->rank == 0) {
        if (mkdir(dir, 0755) != 0 && errno != EEXIST)
            status = zrt_set_error(ZRT_ERR_IO, "%s: cannot create: %s", dir, strerror(errno));
        if (status == ZRT_OK) status = remove_tree(tmp);
        if (status == ZRT_OK && mkdir(tmp, 0755) != 0)
            status = zrt_set_error(ZRT_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    }
    ZRT_CHECK(zrt_engine_agree(e, status, "checkpoint directory"));
    ZRT_CHECK(zrt_engine_agree(e, write_shard(e, tmp), "checkpoint shard"));
    return zrt_engine_agree(e, e->rank == 0 ? commit(e, dir, tmp, final_dir, name) : ZRT_OK, "checkpoint commit");
}

/* ---- load -------------------------------------------------------------------------------------- */

typedef struct {
    int64_t numel, padded, shard;
} saved_unit;

typedef struct {
    char dir[DIR_BUF];
    int world;
    int64_t step, adam_steps;
    saved_unit *units;
    zrt_loss_scaler scaler;
} saved_meta;

static double number(const cJSON *obj, const char *key, bool *ok)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v)) *ok = false;
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* The model in meta.json must be this model: same units, parameters, sizes. */
static zrt_status check_shape(const zrt_engine *e, const cJSON *units, const char *path, saved_meta *m)
{
    if (!cJSON_IsArray(units) || cJSON_GetArraySize(units) != e->n_units)
        return zrt_set_error(ZRT_ERR_CONFIG, "%s: the checkpoint has %d units; this model has %d (a different model)", path,
                             cJSON_GetArraySize(units), e->n_units);
    for (int i = 0; i < e->n_units; i++) {
        const cJSON *unit = cJSON_GetArrayItem(units, i), *params = cJSON_GetObjectItemCaseSensitive(unit, "params");
        bool ok = true;
        m->units[i] = (saved_unit){(int64_t)number(unit, "numel", &ok), (int64_t)number(unit, "padded", &ok),
                                   (int64_t)number(unit, "shard", &ok)};
        if (!ok || m->units[i].shard * m->world != m->units[i].padded || m->units[i].padded < m->units[i].numel)
            return zrt_set_error(ZRT_ERR_CONFIG, "%s: unit %d: malformed sizes", path, i);
        if (m->units[i].numel != e->units[i].numel)
            return zrt_set_error(ZRT_ERR_CONFIG, "%s: unit %d has %lld parameters; this model's has %lld (a different model)",
                                 path, i, (long long)m->units[i].numel, (long long)e->units[i].numel);
        for (int p = 0; p < e->model->n_params[i]; p++) {
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(params, p), "name");
            if (!cJSON_IsString(name) || strcmp(name->valuestring, e->model->params[i][p].name) != 0)
                return zrt_set_error(ZRT_ERR_CONFIG, "%s: unit %d parameter %d is %s; this model has %s", path, i, p,
                                     cJSON_IsString(name) ? name->valuestring : "missing", e->model->params[i][p].name);
        }
    }
    return ZRT_OK;
}

static zrt_status read_meta(const zrt_engine *e, const char *path, saved_meta *m)
{
    char file[FILE_BUF];
    snprintf(file, sizeof file, "%s/meta.json", path);
    FILE *f = fopen(file, "rb");
    if (!f) return zrt_set_error(ZRT_ERR_IO, "%s: cannot open: %s", file, strerror(errno));
    static char text[1 << 22];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    cJSON *meta = cJSON_Parse(text);
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(meta, "format");
    bool ok = meta && cJSON_IsString(format) && strcmp(format->valuestring, "zrt-checkpoint") == 0;
    if (!ok) {
        cJSON_Delete(meta);
        return zrt_set_error(ZRT_ERR_CONFIG, "%s: not a zrt checkpoint (unreadable JSON or wrong format)", file);
    }
    if (number(meta, "version", &ok) != ZRT_CKPT_VERSION) ok = false;
    m->world = (int)number(meta, "world_size", &ok);
    m->step = (int64_t)number(meta, "step", &ok);
    m->adam_steps = (int64_t)number(meta, "adam_steps", &ok);
    const cJSON *scaler = cJSON_GetObjectItemCaseSensitive(meta, "loss_scaler");
    m->scaler = e->scaler;
    m->scaler.scale = number(scaler, "scale", &ok);
    m->scaler.hysteresis_left = (int64_t)number(scaler, "hysteresis_left", &ok);
    m->scaler.last_overflow_step = (int64_t)number(scaler, "last_overflow_step", &ok);
    m->scaler.step = (int64_t)number(scaler, "step", &ok);
    zrt_status status = ok && m->world >= 1
                            ? check_shape(e, cJSON_GetObjectItemCaseSensitive(meta, "units"), file, m)
                            : zrt_set_error(ZRT_ERR_CONFIG, "%s: missing or bad fields (version, world_size, step, "
                                                            "loss_scaler)", file);
    cJSON_Delete(meta);
    return status;
}

/* Reads shard q's section for unit i whole and checks it; data = 3 x count floats. */
static zrt_status read_section(const saved_meta *m, int q, int unit, float **data)
{
    char path[FILE_BUF];
    snprintf(path, sizeof path, "%s/shard_%05d.bin", m->dir, q);
    FILE *f = fopen(path, "rb");
    if (!f)
        return zrt_set_error(ZRT_ERR_IO, "%s: cannot open: %s (the checkpoint was written by %d ranks)", path,
                             strerror(errno), m->world);
    zrt_shard_header h;
    zrt_status status = ZRT_OK;
    if (fread(&h, sizeof h, 1, f) != 1) status = zrt_set_error(ZRT_ERR_IO, "%s: truncated in the header", path);
    else if (memcmp(h.magic, ZRT_CKPT_SHARD_MAGIC, 8) != 0 || h.crc != zrt_crc32c(0, &h, offsetof(zrt_shard_header, crc)))
        status = zrt_set_error(ZRT_ERR_IO, "%s: header: bad magic or CRC32C mismatch", path);
    else if (h.rank != (uint32_t)q || h.world != (uint32_t)m->world || h.step != (uint64_t)m->step)
        status = zrt_set_error(ZRT_ERR_IO, "%s: header says rank %u of %u at step %llu, meta.json rank %d of %d at %lld",
                               path, h.rank, h.world, (unsigned long long)h.step, q, m->world, (long long)m->step);
    for (int i = 0; status == ZRT_OK && i <= unit; i++) {
        zrt_section_header s;
        size_t count = (size_t)m->units[i].shard, bytes = 3 * count * sizeof(float);
        if (fread(&s, sizeof s, 1, f) != 1) {
            status = zrt_set_error(ZRT_ERR_IO, "%s: truncated in the unit %d section", path, i);
            break;
        }
        if (s.unit != (uint32_t)i || s.count != count || s.begin != (uint64_t)q * count) {
            status = zrt_set_error(ZRT_ERR_IO, "%s: unit %d section: header does not match meta.json", path, i);
            break;
        }
        if (i < unit) {
            if (fseek(f, (long)bytes, SEEK_CUR) != 0) status = zrt_set_error(ZRT_ERR_IO, "%s: seek failed", path);
            continue;
        }
        *data = malloc(bytes ? bytes : 1);
        if (!*data) status = zrt_set_error(ZRT_ERR_NOMEM, "checkpoint: out of memory");
        else if (fread(*data, 1, bytes, f) != bytes)
            status = zrt_set_error(ZRT_ERR_IO, "%s: truncated in the unit %d section", path, i);
        else if (zrt_crc32c(0, *data, bytes) != s.crc)
            status = zrt_set_error(ZRT_ERR_IO, "%s: unit %d section: CRC32C mismatch (stored 0x%08x, computed 0x%08x)",
                                   path, i, s.crc, zrt_crc32c(0, *data, bytes));
    }
    fclose(f);
    return status;
}

/* This rank's optimizer range of unit i (host copies of master, exp_avg,
 * exp_avg_sq, zero where nothing was saved: the pads) from the saved shards
 * that overlap it. */
static zrt_status gather_unit(zrt_engine *e, const saved_meta *m, int i, float *const dst[3])
{
    unit_state *u = &e->units[i];
    int64_t begin = zrt_engine_opt_begin(e, u), count = zrt_engine_opt_count(e, u);
    int64_t end = begin + count < u->numel ? begin + count : u->numel, old_shard = m->units[i].shard;
    for (int64_t pos = begin; pos < end;) {
        int q = (int)(pos / old_shard);
        int64_t q_end = ((int64_t)q + 1) * old_shard < end ? ((int64_t)q + 1) * old_shard : end;
        float *data = NULL;
        zrt_status status = read_section(m, q, i, &data);
        if (status == ZRT_OK) {
            int64_t from = pos - (int64_t)q * old_shard, n = q_end - pos;
            for (int k = 0; k < 3; k++)
                memcpy(dst[k] + (pos - begin), data + (int64_t)k * old_shard + from, (size_t)n * sizeof(float));
        }
        free(data);
        ZRT_CHECK(status);
        pos = q_end;
    }
    return ZRT_OK;
}

/* Reads unit i's range on the host, then writes it to the device. */
static zrt_status load_unit(zrt_engine *e, const saved_meta *m, int i)
{
    unit_state *u = &e->units[i];
    size_t count = (size_t)zrt_engine_opt_count(e, u);
    float *host = calloc(3 * count + 1, sizeof(float));
    if (!host) return zrt_set_error(ZRT_ERR_NOMEM, "checkpoint: out of host memory for unit %d", i);
    float *const parts[3] = {host, host + count, host + 2 * count};
    zrt_status status = gather_unit(e, m, i, parts);
    for (int k = 0; status == ZRT_OK && k < STATE_PARTS; k++)
        status = zrt_engine_state_io(e, i, k, 0, count, parts[k], true);
    free(host);
    return status;
}

/* path: a step directory, or a directory with `latest`. */
static zrt_status resolve(const char *path, char *dir, size_t size)
{
    char probe[FILE_BUF];
    snprintf(probe, sizeof probe, "%s/meta.json", path);
    if (access(probe, F_OK) == 0) {
        snprintf(dir, size, "%s", path);
        return ZRT_OK;
    }
    snprintf(probe, sizeof probe, "%s/latest", path);
    FILE *f = fopen(probe, "r");
    char name[64] = "";
    if (!f) return zrt_set_error(ZRT_ERR_IO, "%s: no checkpoint here (no meta.json, no latest)", path);
    bool ok = fgets(name, sizeof name, f) != NULL;
    fclose(f);
    name[strcspn(name, "\r\n")] = '\0';
    if (!ok || strncmp(name, "step_", 5) != 0 || strchr(name, '/'))
        return zrt_set_error(ZRT_ERR_IO, "%s: does not name a checkpoint", probe);
    snprintf(dir, size, "%s/%s", path, name);
    return ZRT_OK;
}

static zrt_status load_local(zrt_engine *e, const char *path, saved_meta *m)
{
    ZRT_CHECK(resolve(path, m->dir, sizeof m->dir));
    m->units = calloc((size_t)e->n_units, sizeof *m->units);
    if (!m->units) return zrt_set_error(ZRT_ERR_NOMEM, "checkpoint: out of memory");
    ZRT_CHECK(read_meta(e, m->dir, m));
    for (int i = 0; i < e->n_units; i++) ZRT_CHECK(load_unit(e, m, i));
    return ZRT_OK;
}

zrt_status zrt_engine_load(zrt_engine *e, const char *path, int64_t *step)
{
    if (!e || !path) return zrt_set_error(ZRT_ERR_INVALID, "zrt_engine_load: NULL argument");
    ZRT_CHECK(zrt_engine_synchronize(e)); /* nothing may still read the state we overwrite */
    saved_meta m = {0};
    zrt_status status = zrt_engine_agree(e, load_local(e, path, &m), "checkpoint load");
    free(m.units);
    ZRT_CHECK(status);
    e->step = m.step;
    e->adam_steps = m.adam_steps;
    e->scaler = m.scaler;
    if (step) *step = m.step;
    return zrt_engine_publish_params(e);
}

bool zrt_checkpoint_exists(const char *dir)
{
    char probe[FILE_BUF];
    snprintf(probe, sizeof probe, "%s/latest", dir);
    return access(probe, F_OK) == 0;
}
