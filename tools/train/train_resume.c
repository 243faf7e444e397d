/* train_resume.c: what `zrt train` says and keeps when a run continues
 * another: the lines that name the checkpoint it loaded (its step, world
 * size, stage and batch, and what this run changes), the initial weights
 * it read, and the files of rows per step (the metrics file, csv_monitor's),
 * which keep the earlier run's rows.
 *
 * Why apart from cmd_train.c: these are the user's record of a run -- a
 * resumed job must not silently truncate the history it continues, nor
 * hide that a different world size changed the global batch -- and they
 * read the checkpoint's meta.json through the shards reader, which the
 * training loop never needs.
 */
#include "train.h"

#include "zrt/internal/output.h"
#include "zrt/shards.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The global batch a checkpoint was saved with (meta.json's train_batch_size;
 * 0 when it predates the key). */
static int64_t saved_batch(const zrt_ckpt *c)
{
    const cJSON *batch = cJSON_GetObjectItemCaseSensitive((const cJSON *)c->meta, "train_batch_size");
    return cJSON_IsNumber(batch) ? (int64_t)batch->valuedouble : 0;
}

zrt_status zrt_train_describe_resume(const zrt_config *cfg, int world, int64_t batch, const char *path, FILE *out)
{
    zrt_ckpt *c = NULL; /* meta.json is all this says; the load that follows checks every shard and CRC */
    ZRT_CHECK(zrt_ckpt_open_checked(path, ZRT_CKPT_CHECK_META, &c));
    int64_t steps = cfg->job.steps, old_batch = saved_batch(c);
    fprintf(out, "zrt train: resuming from %s: step %lld, saved by %d rank%s at ZeRO stage %d (%s)\n", c->dir,
            (long long)c->step, c->world, c->world == 1 ? "" : "s", c->stage, c->dtype);
    bool batch_changes = old_batch && old_batch != batch;
    if (c->world != world)
        fprintf(out, "zrt train: the world size changes from %d to %d ranks (the optimizer state is re-sliced)\n",
                c->world, world);
    if (batch_changes)
        fprintf(out, "zrt train: the global batch changes from %lld to %lld samples per step%s\n",
                (long long)old_batch, (long long)batch, c->world != world ? " (micro batch x accumulation x ranks)" : "");
    if (c->stage != cfg->zero.stage)
        fprintf(out, "zrt train: the ZeRO stage changes from %d to %d (the checkpoint is re-sliced)\n", c->stage,
                cfg->zero.stage);
    if (c->step >= steps)
        fprintf(out, "zrt train: the checkpoint is at step %lld and the run has %lld steps: nothing to train (raise "
                     "--steps or zrt.steps to go on)\n", (long long)c->step, (long long)steps);
    zrt_ckpt_close(c);
    return ZRT_OK;
}

void zrt_train_describe_init(const zrt_config *cfg, const zrt_model *model, bool resuming, FILE *out)
{
    const char *from = cfg->job.model.init_from;
    if (!from[0]) return;
    if (resuming) {
        fprintf(out, "zrt train: init_from %s is not read: the checkpoint's weights replace it\n", from);
        return;
    }
    int tensors = 0;
    int64_t params = 0;
    for (int u = 0; u < model->n_units; u++) {
        tensors += model->n_params[u];
        params += model->unit_numel[u];
    }
    fprintf(out, "zrt train: initial weights from %s: all %d tensors (%lld parameters) of the %s model\n", from,
            tensors, (long long)params, zrt_model_type_name(cfg->job.model.type));
}

int64_t zrt_train_json_step(const char *line)
{
    cJSON *row = cJSON_Parse(line);
    const cJSON *step = cJSON_GetObjectItemCaseSensitive(row, "step");
    int64_t value = cJSON_IsNumber(step) ? (int64_t)step->valuedouble : -1;
    cJSON_Delete(row);
    return value;
}

/* Rewrites path with its header and its rows up to step `kept`, atomically
 * (zrt/output.h: a failure leaves the old file as it was); *dropped gets the
 * rows left out. */
static zrt_status keep_rows(const char *path, const char *what, zrt_row_step step_of, int64_t kept, int *dropped)
{
    FILE *in = fopen(path, "r");
    *dropped = 0;
    if (!in) return errno == ENOENT ? ZRT_OK : zrt_set_error(ZRT_ERR_IO, "%s file %s: %s", what, path, strerror(errno));
    zrt_out_file out;
    zrt_status status = zrt_out_file_open(&out, path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while (status == ZRT_OK && (len = getline(&line, &cap, in)) > 0) {
        int64_t step = step_of(line);
        if (step >= 0 && step <= kept) status = zrt_out_file_write(&out, line, (size_t)len);
        else *dropped += 1;
    }
    free(line);
    fclose(in);
    if (status != ZRT_OK) {
        zrt_out_file_abort(&out);
        return status;
    }
    return zrt_out_file_commit(&out);
}

zrt_status zrt_train_open_rows(const char *path, const char *what, zrt_row_step step_of, int64_t resumed, FILE *say,
                               FILE **out)
{
    *out = NULL;
    if (!path[0]) return ZRT_OK;
    int dropped = 0;
    if (resumed > 0) ZRT_CHECK(keep_rows(path, what, step_of, resumed, &dropped));
    if (resumed > 0 && dropped > 0)
        fprintf(say, "zrt train: %s %s: kept steps 1-%lld, left out %d row%s after the checkpoint\n", what, path,
                (long long)resumed, dropped, dropped == 1 ? "" : "s");
    if (!(*out = fopen(path, resumed > 0 ? "a" : "w")))
        return zrt_set_error(ZRT_ERR_IO, "cannot write the %s file %s: %s", what, path, strerror(errno));
    return ZRT_OK;
}
