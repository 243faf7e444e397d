/* monitor.c: the files `zrt train` (rank 0) writes each step's metrics to.
 *
 * Why here, not in libzrt: these are the CLI trainer's records for people
 * (and their tools), not something a program linking libzrt needs.
 *  - zrt.metrics_file: one JSON line per step (what `zrt plot` reads);
 *  - DeepSpeed's tensorboard: event files TensorBoard reads (tfevents.c),
 *    tags train/loss, train/lr, train/grad_norm, train/tokens_per_s,
 *    train/loss_scale, train/model_state_bytes (and val/loss), x = step;
 *  - DeepSpeed's csv_monitor: one CSV with a header row and a row per step
 *    (DeepSpeed writes a file per tag; one table is what a spreadsheet or
 *    pandas opens in one go, and what a resumed run trims in one pass).
 * Every file is flushed each step, so a crashed run keeps what it trained.
 * A resumed run keeps the rows up to its checkpoint's step (train_resume.c)
 * and appends; TensorBoard gets a new event file that starts with a
 * SessionLog START, so TensorBoard drops the older file's later steps.
 */
#include "monitor.h"

#include "train.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CSV_HEADER "step,loss,lr,grad_norm,loss_scale,skipped,tokens_per_s,model_state_bytes\n"
#define CSV_COLUMNS 8

/* mkdir -p path. */
static zrt_status make_dir(const char *path)
{
    char buf[ZRT_PATH_MAX + ZRT_NAME_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = strchr(buf + 1, '/');; p = strchr(p + 1, '/')) {
        if (p) *p = '\0';
        if (buf[0] && mkdir(buf, 0755) != 0 && errno != EEXIST)
            return zrt_set_error(ZRT_ERR_IO, "cannot create the monitor folder %s: %s", buf, strerror(errno));
        if (!p) return ZRT_OK;
        *p = '/';
    }
}

/* OUTPUT_PATH/JOB_NAME (DeepSpeed's os.path.join: "" output_path is the
 * working directory), created. */
static zrt_status monitor_dir(const zrt_monitor_config *c, char *out, size_t size)
{
    const char *job = c->job_name[0] ? c->job_name : ".";
    if (c->output_path[0]) snprintf(out, size, "%s/%s", c->output_path, job);
    else snprintf(out, size, "%s", job);
    return make_dir(out);
}

/* A CSV line's step: 0 for the header, -1 for a line cut short. */
static int64_t csv_step(const char *line)
{
    if (strcmp(line, CSV_HEADER) == 0) return 0;
    int commas = 0;
    for (const char *p = line; *p; p++) commas += *p == ',';
    char *end;
    long long step = strtoll(line, &end, 10);
    bool whole = commas == CSV_COLUMNS - 1 && *end == ',' && line[strlen(line) - 1] == '\n';
    return whole && step >= 1 ? step : -1;
}

static zrt_status open_csv(zrt_monitor *m, const zrt_monitor_config *c, int64_t resumed, FILE *say)
{
    char dir[ZRT_PATH_MAX + ZRT_NAME_MAX], path[sizeof dir + 16];
    ZRT_CHECK(monitor_dir(c, dir, sizeof dir));
    snprintf(path, sizeof path, "%s/metrics.csv", dir);
    ZRT_CHECK(zrt_train_open_rows(path, "csv_monitor", csv_step, resumed, say, &m->csv));
    fseek(m->csv, 0, SEEK_END);
    if (ftell(m->csv) == 0 && (fputs(CSV_HEADER, m->csv) == EOF || fflush(m->csv) != 0))
        return zrt_set_error(ZRT_ERR_IO, "cannot write the csv_monitor file %s: %s", path, strerror(errno));
    return ZRT_OK;
}

static zrt_status open_tensorboard(zrt_monitor *m, const zrt_monitor_config *c, int64_t resumed)
{
    char dir[ZRT_PATH_MAX + ZRT_NAME_MAX];
    ZRT_CHECK(monitor_dir(c, dir, sizeof dir));
    ZRT_CHECK(zrt_tfevents_open(&m->tb, dir));
    return resumed > 0 ? zrt_tfevents_restart(&m->tb, resumed + 1) : ZRT_OK;
}

zrt_status zrt_monitor_open(zrt_monitor *m, const zrt_config *cfg, int64_t resumed, FILE *say)
{
    memset(m, 0, sizeof *m);
    ZRT_CHECK(zrt_train_open_rows(cfg->job.metrics_file, "metrics", zrt_train_json_step, resumed, say, &m->metrics));
    if (cfg->csv_monitor.enabled) ZRT_CHECK(open_csv(m, &cfg->csv_monitor, resumed, say));
    if (cfg->tensorboard.enabled) ZRT_CHECK(open_tensorboard(m, &cfg->tensorboard, resumed));
    return ZRT_OK;
}

static zrt_status written(FILE *f, bool ok, const char *what)
{
    if (ok && fflush(f) == 0) return ZRT_OK;
    return zrt_set_error(ZRT_ERR_IO, "cannot write the %s file: %s", what, strerror(errno));
}

/* A JSON number, or null where JSON has none (a diverged loss: nan, inf). */
static const char *json_number(double v, char *out, size_t size)
{
    if (isfinite(v)) snprintf(out, size, "%.9g", v);
    else snprintf(out, size, "null");
    return out;
}

static zrt_status write_json(FILE *f, const zrt_train_row *r)
{
    char loss[32], lr[32], norm[32], scale[32], val[64] = "";
    if (r->has_val) snprintf(val, sizeof val, ", \"val_loss\": %.9g", r->val_loss);
    int n = fprintf(f,
                    "{\"step\": %lld, \"loss\": %s, \"lr\": %s, \"grad_norm\": %s, \"loss_scale\": %s, "
                    "\"skipped\": %s, \"tokens_per_s\": %.3f, \"model_state_bytes\": %lld, \"samples_seen\": %lld%s}\n",
                    (long long)r->step, json_number(r->loss, loss, sizeof loss), json_number(r->lr, lr, sizeof lr),
                    json_number(r->grad_norm, norm, sizeof norm), json_number(r->loss_scale, scale, sizeof scale),
                    r->skipped ? "true" : "false", r->tokens_per_s, (long long)r->model_state_bytes,
                    (long long)r->samples_seen, val);
    return written(f, n > 0, "metrics");
}

static zrt_status write_csv(FILE *f, const zrt_train_row *r)
{
    int n = fprintf(f, "%lld,%.9g,%.9g,%.9g,%.9g,%d,%.3f,%lld\n", (long long)r->step, r->loss, r->lr, r->grad_norm,
                    r->loss_scale, r->skipped ? 1 : 0, r->tokens_per_s, (long long)r->model_state_bytes);
    return written(f, n > 0, "csv_monitor");
}

static zrt_status write_tensorboard(zrt_tfevents *tb, const zrt_train_row *r)
{
    static const char *const tags[] = {"train/loss",         "train/lr",         "train/grad_norm",
                                       "train/tokens_per_s", "train/loss_scale", "train/model_state_bytes"};
    const float values[] = {(float)r->loss,         (float)r->lr,         (float)r->grad_norm,
                            (float)r->tokens_per_s, (float)r->loss_scale, (float)r->model_state_bytes};
    return zrt_tfevents_scalars(tb, r->step, tags, values, 6);
}

zrt_status zrt_monitor_step(zrt_monitor *m, const zrt_train_row *row)
{
    if (m->metrics) ZRT_CHECK(write_json(m->metrics, row));
    if (m->csv) ZRT_CHECK(write_csv(m->csv, row));
    if (m->tb.file) ZRT_CHECK(write_tensorboard(&m->tb, row));
    return ZRT_OK;
}

zrt_status zrt_monitor_val_loss(zrt_monitor *m, int64_t step, double loss)
{
    static const char *const tag[] = {"val/loss"};
    const float value[] = {(float)loss};
    return m->tb.file ? zrt_tfevents_scalars(&m->tb, step, tag, value, 1) : ZRT_OK;
}

void zrt_monitor_close(zrt_monitor *m)
{
    if (m->metrics) fclose(m->metrics);
    if (m->csv) fclose(m->csv);
    zrt_tfevents_close(&m->tb);
    m->metrics = m->csv = NULL;
}
