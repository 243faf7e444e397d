/* config_checks.c: the checks that used to wait for a rank to start.
 *
 * Why here: `zrt config check` and the start of training must refuse the
 * same configs, so every check that needs no rank -- files the config names,
 * settings the engine or the data cannot honour, values zrt parses but does
 * not implement -- is part of config validation (validate_into in config.c),
 * which both run. Each error names the file, the dotted key and the value.
 */
#include "config_internal.h"

#include <errno.h>
#include <glob.h>
#include <string.h>
#include <sys/stat.h>

const char *zrt_cfg_deepspeed_file(const zrt_config *cfg)
{
    return cfg->deepspeed_config_file[0] ? cfg->deepspeed_config_file : cfg->source_path;
}

const char *zrt_cfg_zrt_file(const zrt_config *cfg)
{
    return cfg->zrt_config_path[0] ? cfg->zrt_config_path : cfg->source_path;
}

/* Settings zrt reads but does not implement: refused, not ignored. */
static void check_unimplemented(const zrt_config *cfg, zrt_cfg_errors *errs)
{
    const zrt_zero_config *z = &cfg->zero;
    if (z->offload_optimizer.ratio != 1.0)
        zrt_cfg_error(errs, zrt_cfg_deepspeed_file(cfg), "zero_optimization.offload_optimizer.ratio",
                      "%g asks for partial offload, which zrt does not implement: use 1.0 (all of the optimizer "
                      "state offloaded) or leave the key out", z->offload_optimizer.ratio);
}

/* What the engine refuses when it is built (param_store.c). */
static void check_engine(const zrt_config *cfg, zrt_cfg_errors *errs)
{
    const zrt_zero_config *z = &cfg->zero;
    if (z->offload_param.device != ZRT_OFFLOAD_NONE && z->offload_optimizer.device == ZRT_OFFLOAD_NONE)
        zrt_cfg_error(errs, zrt_cfg_deepspeed_file(cfg), "zero_optimization.offload_param.device",
                      "%s needs offload_optimizer.device cpu or nvme (it is none): the CPU optimizer writes the "
                      "offloaded parameters", zrt_offload_device_name(z->offload_param.device));
}

/* A path the config names must exist: "FILE: KEY: PATH: why". */
static bool check_path(const zrt_config *cfg, zrt_cfg_errors *errs, const char *key, const char *path,
                       struct stat *st)
{
    if (stat(path, st) == 0) return true;
    zrt_cfg_error(errs, zrt_cfg_zrt_file(cfg), key, "%s: %s", path, strerror(errno));
    return false;
}

/* What zrt_data_init() and the model's init_from refuse (model/data.c, init_from.c). */
static void check_data_and_model(const zrt_config *cfg, zrt_cfg_errors *errs)
{
    const char *file = zrt_cfg_zrt_file(cfg);
    const zrt_model_config *m = &cfg->job.model;
    const zrt_data_config *d = &cfg->job.data;
    struct stat st;
    if (m->init_from[0]) check_path(cfg, errs, "zrt.model.init_from", m->init_from, &st);
    const char *const globs[2][2] = {{"zrt.data.train", d->train}, {"zrt.data.val", d->val}};
    for (int g = 0; g < 2 && d->type == ZRT_DATA_TOKENS; g++) {
        glob_t found = {0};
        if (globs[g][1][0] && (glob(globs[g][1], 0, NULL, &found) != 0 || found.gl_pathc == 0))
            zrt_cfg_error(errs, file, globs[g][0], "%s matches no file (token shards: zrt tokenize writes them)",
                          globs[g][1]);
        globfree(&found);
    }
    if (d->type != ZRT_DATA_TEXT || d->path[0] == '\0') return;
    if (m->type == ZRT_MODEL_MLP)
        zrt_cfg_error(errs, file, "zrt.data.type", "text needs zrt.model.type gpt or llama (the mlp trains on the "
                      "synthetic task only)");
    if (m->vocab < 256)
        zrt_cfg_error(errs, file, "zrt.model.vocab", "%lld is too small for text data: text is byte-level, so "
                      "the vocab must be at least 256", (long long)m->vocab);
    if (check_path(cfg, errs, "zrt.data.path", d->path, &st) && (int64_t)st.st_size < m->seq_len + 2)
        zrt_cfg_error(errs, file, "zrt.data.path", "%s has %lld bytes; zrt.model.seq_len %lld needs at least %lld",
                      d->path, (long long)st.st_size, (long long)m->seq_len, (long long)m->seq_len + 2);
}

void zrt_cfg_check_start(const zrt_config *cfg, zrt_cfg_errors *errs)
{
    check_unimplemented(cfg, errs);
    check_engine(cfg, errs);
    check_data_and_model(cfg, errs);
}
