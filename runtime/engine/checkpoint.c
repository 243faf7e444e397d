/* checkpoint.c: save and load the engine's state; loading re-slices it to any
 * world size and stage.
 *
 * Layout: DIR/step_NNNNNNN/meta.json (format, step, world size, stage, the
 * units with their parameters, the loss scaler, the config) and one
 * shard_RRRRR.bin per rank: a header, then per unit one section holding that
 * rank's shard [r * shard, (r + 1) * shard) of the flat layout -- fp32 master,
 * exp_avg, exp_avg_sq -- each header and section with a CRC32C, written by
 * the format's own writer in runtime/shards/ (zrt/internal/ckpt_writer.h),
 * beside the reader every load goes through. The files do
 * not depend on the stage (stage 0 ranks also write only their own shard).
 * DIR/latest names the newest complete checkpoint.
 * Crash safety: everything is written under DIR/.step_NNNNNNN.tmp-save
 * (zrt/output.h), fsynced, swapped in as step_NNNNNNN, and only then is
 * `latest` replaced atomically: a crash at any point leaves the previous
 * checkpoint and `latest` intact. zrt.checkpoint_keep then removes old steps.
 * Loading goes through the checkpoint reader (zrt/shards.h), as every tool
 * does: every size, header and CRC is checked before a byte is used.
 * Both calls are collective; a failure on any rank fails them on every rank.
 */
#include "zrt/internal/ckpt_writer.h"
#include "zrt/internal/fault.h"
#include "zrt/internal/output.h"
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

/* Nested path buffers: a step directory, a file in it. */
#define DIR_BUF (ZRT_PATH_MAX + 64)
#define FILE_BUF (ZRT_OUT_PATH_MAX + 128)
#define STREAM_ELEMENTS ((int64_t)1 << 20) /* a shard is saved 4 MiB at a time */

/* ---- save ------------------------------------------------------------------------------------- */

/* Fault site checkpoint.crash_in_save (RANK:STEP) kills that rank halfway
 * through its shard of the checkpoint of that step. */
static void maybe_crash(int rank, int64_t step)
{
    if (zrt_fault_at("checkpoint.crash_in_save", rank, step)) raise(SIGKILL);
}

/* Unit i's section (zrt/internal/ckpt_writer.h: the format's writer): the
 * own shard's master, exp_avg and exp_avg_sq, streamed STREAM_ELEMENTS at a
 * time (from NVMe, sub-group by sub-group: the shard is never staged in RAM). */
static zrt_status write_section(zrt_engine *e, zrt_shard_writer *w, int i, float *chunk)
{
    unit_state *u = &e->units[i];
    int64_t begin = (int64_t)e->rank * u->shard, local = begin - zrt_engine_opt_begin(e, u);
    ZRT_CHECK(zrt_shard_writer_section(w, i, begin, u->shard));
    for (int part = 0; part < STATE_PARTS; part++)
        for (int64_t done = 0; done < u->shard; done += STREAM_ELEMENTS) {
            size_t n = (size_t)(u->shard - done < STREAM_ELEMENTS ? u->shard - done : STREAM_ELEMENTS);
            ZRT_CHECK(zrt_engine_state_io(e, i, part, (size_t)(local + done), n, chunk, false));
            ZRT_CHECK(zrt_shard_writer_floats(w, chunk, n));
        }
    return ZRT_OK;
}

static zrt_status write_shard(zrt_engine *e, const char *dir)
{
    char path[FILE_BUF];
    snprintf(path, sizeof path, "%s/shard_%05d.bin", dir, e->rank);
    zrt_shard_writer w;
    ZRT_CHECK(zrt_shard_writer_open(&w, path, e->rank, e->world, e->n_units, e->step));
    float *chunk = malloc(STREAM_ELEMENTS * sizeof(float));
    zrt_status status = chunk ? ZRT_OK : zrt_set_error(ZRT_ERR_NOMEM, "checkpoint: out of host memory");
    for (int i = 0; status == ZRT_OK && i < e->n_units; i++) {
        status = write_section(e, &w, i, chunk);
        if (i == e->n_units / 2) maybe_crash(e->rank, e->step);
    }
    free(chunk);
    if (status != ZRT_OK) {
        zrt_shard_writer_abort(&w);
        return status;
    }
    return zrt_shard_writer_close(&w);
}

/* meta.json (composed by the format's writer, zrt/internal/ckpt_writer.h)
 * from a description of this engine's checkpoint: its units and parameters. */
static char *meta_text(const zrt_engine *e)
{
    zrt_ckpt c = {.world = e->world, .stage = e->stage, .step = e->step, .adam_steps = e->adam_steps,
                  .n_units = e->n_units};
    snprintf(c.dtype, sizeof c.dtype, "%s", zrt_dtype_name(e->dtype));
    c.units = calloc((size_t)e->n_units, sizeof *c.units);
    for (int i = 0; c.units && i < e->n_units; i++) {
        const unit_state *u = &e->units[i];
        zrt_ckpt_unit *cu = &c.units[i];
        *cu = (zrt_ckpt_unit){.numel = u->numel, .padded = u->padded, .shard = u->shard,
                              .n_params = e->model->n_params[i]};
        cu->params = calloc((size_t)(cu->n_params ? cu->n_params : 1), sizeof *cu->params);
        for (int p = 0; cu->params && p < cu->n_params; p++) {
            const zrt_param_info *info = &e->model->params[i][p];
            zrt_ckpt_param *cp = &cu->params[p];
            snprintf(cp->name, sizeof cp->name, "%s", info->name);
            cp->numel = info->numel, cp->offset = info->offset, cp->ndim = info->ndim;
            memcpy(cp->shape, info->shape, sizeof cp->shape);
        }
    }
    char *config = zrt_config_to_json(&e->cfg), *text = NULL;
    zrt_ckpt_meta_extra x = {.scale = e->scaler.scale, .hysteresis_left = e->scaler.hysteresis_left,
                             .last_overflow_step = e->scaler.last_overflow_step, .scaler_step = e->scaler.step,
                             .train_batch_size = e->global_batch, .samples = e->samples, .config_json = config};
    bool complete = c.units != NULL;
    for (int i = 0; complete && i < e->n_units; i++) complete = c.units[i].params != NULL;
    if (complete) text = zrt_ckpt_meta_text(&c, &x);
    for (int i = 0; c.units && i < e->n_units; i++) free(c.units[i].params);
    free(c.units);
    free(config);
    return text;
}

/* Rank 0: meta.json, the step directory swapped in, `latest`, then old steps pruned. */
static zrt_status commit(zrt_engine *e, const char *dir, zrt_out_dir *step, const char *name)
{
    char *text = meta_text(e);
    if (!text) return zrt_set_error(ZRT_ERR_NOMEM, "checkpoint: out of memory for meta.json");
    char path[FILE_BUF], line[64];
    snprintf(path, sizeof path, "%s/meta.json", step->tmp);
    zrt_status status = zrt_out_write_text(path, text);
    free(text);
    ZRT_CHECK(status);
    ZRT_CHECK(zrt_out_dir_commit(step)); /* a re-save of the same step replaces it in one exchange */
    snprintf(path, sizeof path, "%s/latest", dir);
    snprintf(line, sizeof line, "%s\n", name);
    ZRT_CHECK(zrt_out_write_text(path, line));
    return zrt_ckpt_prune(dir, e->cfg.job.checkpoint_keep, e->resumed_from[0] ? e->resumed_from : NULL);
}

zrt_status zrt_engine_save(zrt_engine *e, const char *dir)
{
    if (!e || !dir || !dir[0]) return zrt_set_error(ZRT_ERR_INVALID, "zrt_engine_save: no directory");
    char name[32], final_dir[DIR_BUF];
    snprintf(name, sizeof name, "step_%07lld", (long long)e->step);
    snprintf(final_dir, sizeof final_dir, "%s/%s", dir, name);
    zrt_out_dir step;
    ZRT_CHECK(zrt_out_dir_name(&step, final_dir, "save")); /* one name every rank agrees on */
    ZRT_CHECK(zrt_engine_synchronize(e)); /* the optimizer state of the last step is final */
    zrt_status status = ZRT_OK;
    if (e->rank == 0) {
        if (mkdir(dir, 0755) != 0 && errno != EEXIST)
            status = zrt_set_error(ZRT_ERR_IO, "%s: cannot create: %s", dir, strerror(errno));
        if (status == ZRT_OK) status = zrt_out_dir_create(&step);
    }
    ZRT_CHECK(zrt_engine_agree(e, status, "checkpoint directory"));
    status = zrt_engine_agree(e, write_shard(e, step.tmp), "checkpoint shard");
    if (status == ZRT_OK) status = zrt_engine_agree(e, e->rank == 0 ? commit(e, dir, &step, name) : ZRT_OK, "checkpoint commit");
    if (status != ZRT_OK && e->rank == 0) zrt_out_dir_abort(&step); /* no-op once committed */
    return status;
}

/* ---- load -------------------------------------------------------------------------------------- */

/* The model in meta.json must be this model: same units, parameters, sizes. */
static zrt_status check_shape(const zrt_engine *e, const zrt_ckpt *c)
{
    if (c->n_units != e->n_units)
        return zrt_set_error(ZRT_ERR_CONFIG, "%s/meta.json: the checkpoint has %d units; this model has %d (a different "
                             "model)", c->dir, c->n_units, e->n_units);
    for (int i = 0; i < e->n_units; i++) {
        const zrt_ckpt_unit *u = &c->units[i];
        if (u->numel != e->units[i].numel)
            return zrt_set_error(ZRT_ERR_CONFIG, "%s/meta.json: unit %d has %lld parameters; this model's has %lld (a "
                                 "different model)", c->dir, i, (long long)u->numel, (long long)e->units[i].numel);
        for (int p = 0; p < e->model->n_params[i]; p++)
            if (p >= u->n_params || strcmp(u->params[p].name, e->model->params[i][p].name) != 0)
                return zrt_set_error(ZRT_ERR_CONFIG, "%s/meta.json: unit %d parameter %d is %s; this model has %s", c->dir, i,
                                     p, p < u->n_params ? u->params[p].name : "missing", e->model->params[i][p].name);
    }
    return ZRT_OK;
}

static double number(const cJSON *obj, const char *key, bool *ok)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v)) *ok = false;
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static zrt_status read_scaler(const zrt_ckpt *c, zrt_loss_scaler *s)
{
    const cJSON *scaler = cJSON_GetObjectItemCaseSensitive(c->meta, "loss_scaler");
    bool ok = true;
    s->scale = number(scaler, "scale", &ok);
    s->hysteresis_left = (int64_t)number(scaler, "hysteresis_left", &ok);
    s->last_overflow_step = (int64_t)number(scaler, "last_overflow_step", &ok);
    s->step = (int64_t)number(scaler, "step", &ok);
    return ok ? ZRT_OK : zrt_set_error(ZRT_ERR_CONFIG, "%s/meta.json: missing or bad loss_scaler", c->dir);
}

/* This rank's optimizer range of unit i (master, exp_avg, exp_avg_sq on the
 * host, zero past numel: the pads) from the saved shards, then to the device. */
static zrt_status load_unit(zrt_engine *e, const zrt_ckpt *c, int i)
{
    unit_state *u = &e->units[i];
    int64_t begin = zrt_engine_opt_begin(e, u), count = zrt_engine_opt_count(e, u);
    int64_t have = begin >= u->numel ? 0 : begin + count < u->numel ? count : u->numel - begin;
    float *host = calloc(3 * (size_t)count + 1, sizeof(float));
    if (!host) return zrt_set_error(ZRT_ERR_NOMEM, "checkpoint: out of host memory for unit %d", i);
    zrt_status status = ZRT_OK;
    for (int k = 0; status == ZRT_OK && k < STATE_PARTS; k++)
        if (have > 0) status = zrt_ckpt_read(c, i, k, begin, have, host + (size_t)k * (size_t)count);
    for (int k = 0; status == ZRT_OK && k < STATE_PARTS; k++)
        status = zrt_engine_state_io(e, i, k, 0, (size_t)count, host + (size_t)k * (size_t)count, true);
    free(host);
    return status;
}

static zrt_status load_local(zrt_engine *e, const char *path, zrt_ckpt **c)
{
    ZRT_CHECK(zrt_ckpt_open(path, c));
    ZRT_CHECK(check_shape(e, *c));
    for (int i = 0; i < e->n_units; i++) ZRT_CHECK(load_unit(e, *c, i));
    return ZRT_OK;
}

/* The samples a checkpoint's run had used; a checkpoint from before the key:
 * its steps times the batch it was saved with (else this run's). */
static int64_t saved_samples(const zrt_ckpt *c, int64_t batch)
{
    const cJSON *samples = cJSON_GetObjectItemCaseSensitive((const cJSON *)c->meta, "samples");
    const cJSON *saved = cJSON_GetObjectItemCaseSensitive((const cJSON *)c->meta, "train_batch_size");
    if (cJSON_IsNumber(samples)) return (int64_t)samples->valuedouble;
    return c->step * (cJSON_IsNumber(saved) ? (int64_t)saved->valuedouble : batch);
}

zrt_status zrt_engine_load(zrt_engine *e, const char *path, int64_t *step)
{
    if (!e || !path) return zrt_set_error(ZRT_ERR_INVALID, "zrt_engine_load: NULL argument");
    ZRT_CHECK(zrt_engine_synchronize(e)); /* nothing may still read the state we overwrite */
    zrt_ckpt *c = NULL;
    zrt_loss_scaler scaler = e->scaler;
    zrt_status status = load_local(e, path, &c);
    if (status == ZRT_OK) status = read_scaler(c, &scaler);
    status = zrt_engine_agree(e, status, "checkpoint load");
    if (status == ZRT_OK) {
        e->step = c->step;
        e->adam_steps = c->adam_steps;
        e->samples = saved_samples(c, e->global_batch);
        e->scaler = scaler;
        const char *slash = strrchr(c->dir, '/');
        snprintf(e->resumed_from, sizeof e->resumed_from, "%s", slash ? slash + 1 : c->dir);
        if (step) *step = c->step;
    }
    zrt_ckpt_close(c);
    ZRT_CHECK(status);
    return zrt_engine_publish_params(e);
}

bool zrt_checkpoint_exists(const char *dir)
{
    char probe[FILE_BUF];
    snprintf(probe, sizeof probe, "%s/latest", dir);
    return access(probe, F_OK) == 0;
}
