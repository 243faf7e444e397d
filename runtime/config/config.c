/* config.c: zrt_config's defaults, the load order, and the rules that span keys.
 *
 * Why here: the per-key work is table-driven (config_fields.c); what is left
 * is what no single key can check -- which file wins for what, Accelerate's
 * "set it in one place" rule for deepspeed_config_file, the batch-size trio,
 * ranks against machines, offload against stage -- and the defaults.
 * Invariant: zrt_config_load() either fills the whole struct or resets it to
 * the defaults and returns an error listing every problem found.
 */
#include "config_internal.h"

#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_MICRO_BATCH 8

void zrt_config_init(zrt_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->compute_environment, sizeof cfg->compute_environment, "LOCAL_MACHINE");
    cfg->distributed_type = ZRT_DIST_NO;
    cfg->num_machines = 1;
    cfg->num_processes = 1;
    cfg->main_process_port = 29500;
    cfg->same_network = true;
    snprintf(cfg->gpu_ids, sizeof cfg->gpu_ids, "all");
    snprintf(cfg->main_training_function, sizeof cfg->main_training_function, "main");
    snprintf(cfg->deepspeed_multinode_launcher, sizeof cfg->deepspeed_multinode_launcher, "standard");

    /* DeepSpeed 0.19: runtime/zero/config.py, offload_config.py, constants.py. */
    zrt_zero_config *z = &cfg->zero;
    z->stage = 0;
    z->contiguous_gradients = true;
    z->reduce_scatter = true;
    z->reduce_bucket_size = 500000000;
    z->allgather_bucket_size = 500000000;
    z->stage3_prefetch_bucket_size = 50000000;
    z->stage3_param_persistence_threshold = 100000;
    z->stage3_max_live_parameters = 1000000000;
    z->stage3_max_reuse_distance = 1000000000;
    z->sub_group_size = 1000000000;
    z->offload_optimizer.buffer_count = 4;
    z->offload_optimizer.ratio = 1.0;
    z->offload_param.buffer_count = 5;
    z->offload_param.buffer_size = 100000000;
    z->offload_param.max_in_cpu = 1000000000;
    cfg->aio = (zrt_aio_config){.block_size = 1048576, .queue_depth = 8, .intra_op_parallelism = 1,
                                .single_submit = false, .overlap_events = true};
    cfg->fp16 = (zrt_fp16_config){.loss_scale = 0, .initial_scale_power = 16,
                                  .loss_scale_window = 1000, .hysteresis = 2, .min_loss_scale = 1};
    cfg->optimizer = (zrt_optimizer_config){.type = ZRT_OPT_ADAMW, .lr = 1e-3, .betas = {0.9, 0.999},
                                            .eps = 1e-8, .weight_decay = 0, .adam_w_mode = true};
    cfg->scheduler = (zrt_scheduler_config){.type = ZRT_SCHED_NONE, .warmup_min_lr = 0,
                                            .warmup_max_lr = 1e-3, .warmup_num_steps = 1000,
                                            .warmup_type = ZRT_WARMUP_LOG, .cos_min_ratio = 1e-4};
    cfg->gradient_clipping = 0.0;
    cfg->steps_per_print = 10;
    snprintf(cfg->tensorboard.job_name, sizeof cfg->tensorboard.job_name, "DeepSpeedJobName");
    snprintf(cfg->csv_monitor.job_name, sizeof cfg->csv_monitor.job_name, "DeepSpeedJobName");

    zrt_job_config *j = &cfg->job;
    j->model = (zrt_model_config){.type = ZRT_MODEL_MLP, .layers = 4, .d_model = 64, .hidden = 0,
                                  .heads = 4, .seq_len = 32, .vocab = 256};
    j->data = (zrt_data_config){.type = ZRT_DATA_SYNTHETIC, .seed = 1234};
    j->eval_batches = 10;
    j->steps = 200;
    j->micro_batch_size = DEFAULT_MICRO_BATCH;
    j->seed = 42;
    j->comm_timeout_s = 600;
    j->heartbeat_interval_s = 1;
    j->heartbeat_timeout_s = 5;
    j->join_timeout_s = 300;
}

void zrt_config_fini(zrt_config *cfg) { (void)cfg; }

const char *zrt_precision_name(zrt_precision p)
{
    return (unsigned)p <= ZRT_PRECISION_BF16 ? zrt_cfg_precision_names[p] : "?";
}

const char *zrt_offload_device_name(zrt_offload_device d)
{
    return (unsigned)d <= ZRT_OFFLOAD_NVME ? zrt_cfg_offload_names[d] : "?";
}

/* The node at a dotted path, or NULL when absent, null or "auto". */
static const cJSON *lookup(const cJSON *tree, const char *dotted)
{
    char path[256];
    snprintf(path, sizeof path, "%s", dotted);
    const cJSON *node = tree;
    for (char *save = NULL, *part = strtok_r(path, ".", &save); node && part;
         part = strtok_r(NULL, ".", &save))
        node = cJSON_IsObject(node) ? cJSON_GetObjectItemCaseSensitive(node, part) : NULL;
    if (!node || cJSON_IsNull(node)) return NULL;
    if (cJSON_IsString(node) && strcmp(node->valuestring, "auto") == 0) return NULL;
    return node;
}

/* ---- loading ------------------------------------------------------------------ */

/* Accelerate refuses these in the YAML once deepspeed_config_file is given:
 * the JSON is then the one place for them. */
static const char *const yaml_keys_owned_by_json[] = {
    "zero_stage", "offload_optimizer_device", "offload_param_device", "offload_optimizer_nvme_path",
    "offload_param_nvme_path", "gradient_accumulation_steps", "gradient_clipping",
    "zero3_save_16bit_model", NULL};

static void check_owned_by_json(const cJSON *yaml_ds, const char *yaml_path, const char *json_path,
                                zrt_cfg_errors *errs)
{
    for (int i = 0; yaml_keys_owned_by_json[i]; i++) {
        if (!lookup(yaml_ds, yaml_keys_owned_by_json[i])) continue;
        char key[96];
        snprintf(key, sizeof key, "deepspeed_config.%s", yaml_keys_owned_by_json[i]);
        zrt_cfg_error(errs, yaml_path, key,
                      "is set here and deepspeed_config_file %s is given: set it in that file only "
                      "(as Accelerate requires)", json_path);
    }
}

/* A key of zrt: may be in the YAML or in the JSON, not in both. */
static void check_zrt_overlap(const cJSON *a, const cJSON *b, const char *prefix, const char *file,
                              zrt_cfg_errors *errs)
{
    if (!cJSON_IsObject(a) || !cJSON_IsObject(b)) return;
    for (const cJSON *item = a->child; item; item = item->next) {
        const cJSON *other = cJSON_GetObjectItemCaseSensitive(b, item->string);
        if (!other) continue;
        char key[256];
        snprintf(key, sizeof key, "%s.%s", prefix, item->string);
        if (cJSON_IsObject(item) && cJSON_IsObject(other)) check_zrt_overlap(item, other, key, file, errs);
        else zrt_cfg_error(errs, file, key, "is set in both config files; keep one");
    }
}

/* fp16.enabled / bf16.enabled from the JSON against mixed_precision. */
static void settle_precision(zrt_config *cfg, const cJSON *json, bool yaml_has_precision,
                             const char *json_path, zrt_cfg_errors *errs)
{
    if (cfg->fp16.enabled && cfg->bf16_enabled) {
        zrt_cfg_error(errs, json_path, "fp16.enabled", "and bf16.enabled are both true; pick one");
        return;
    }
    bool json_sets = lookup(json, "fp16.enabled") || lookup(json, "bf16.enabled") ||
                     lookup(json, "bfloat16.enabled");
    if (!json_sets) return;
    zrt_precision from_json = cfg->fp16.enabled   ? ZRT_PRECISION_FP16
                              : cfg->bf16_enabled ? ZRT_PRECISION_BF16
                                                  : ZRT_PRECISION_NO;
    if (yaml_has_precision && cfg->mixed_precision != from_json) {
        zrt_cfg_error(errs, cfg->source_path, "mixed_precision",
                      "%s disagrees with %s, which asks for %s", zrt_precision_name(cfg->mixed_precision),
                      json_path, zrt_precision_name(from_json));
        return;
    }
    cfg->mixed_precision = from_json;
}

/* A monitor section (tensorboard, csv_monitor, wandb, comet) may be a
 * DeepSpeed key (top level of the JSON) or one of zrt's settings, not both. */
static void check_monitor_twice(const cJSON *json, const char *json_path, const cJSON *zrt, const char *zrt_file,
                                zrt_cfg_errors *errs)
{
    static const char *const keys[] = {"tensorboard", "csv_monitor", "wandb", "comet", NULL};
    for (int i = 0; keys[i]; i++)
        if (cJSON_GetObjectItemCaseSensitive(json, keys[i]) && cJSON_GetObjectItemCaseSensitive(zrt, keys[i]))
            zrt_cfg_error(errs, json_path, keys[i], "is set here and as zrt.%s in %s: keep one", keys[i], zrt_file);
}

static void load_deepspeed_json(zrt_config *cfg, const cJSON *json, const char *json_path,
                                bool yaml_has_precision, zrt_cfg_errors *errs)
{
    const char *zrt_file = cfg->source_is_json ? zrt_cfg_zrt_file(cfg) : json_path; /* --zrt_config joins it */
    check_monitor_twice(json, json_path, cJSON_GetObjectItemCaseSensitive(json, "zrt"), zrt_file, errs);
    zrt_cfg_walk(cfg, errs, json_path, &zrt_cfg_deepspeed, json, "");
    cfg->activation_checkpointing.present = cJSON_GetObjectItemCaseSensitive(json, "activation_checkpointing") != NULL;
    if (!lookup(json, "zero_optimization.overlap_comm")) cfg->zero.overlap_comm = cfg->zero.stage == 3;
    settle_precision(cfg, json, yaml_has_precision, json_path, errs);
}

/* deepspeed_config_file is relative to the YAML's folder. */
static bool resolve_relative(zrt_config *cfg, zrt_cfg_errors *errs)
{
    char *file = cfg->deepspeed_config_file;
    if (file[0] == '/') return true;
    char dir_buf[ZRT_PATH_MAX];
    snprintf(dir_buf, sizeof dir_buf, "%s", cfg->source_path);
    char joined[2 * ZRT_PATH_MAX];
    snprintf(joined, sizeof joined, "%s/%s", dirname(dir_buf), file);
    if (strlen(joined) >= ZRT_PATH_MAX) {
        zrt_cfg_error(errs, cfg->source_path, "deepspeed_config.deepspeed_config_file", "path too long");
        return false;
    }
    memcpy(file, joined, strlen(joined) + 1);
    return true;
}

static void load_accelerate_yaml(zrt_config *cfg, const cJSON *yaml, zrt_cfg_errors *errs)
{
    const cJSON *yaml_ds = cJSON_GetObjectItemCaseSensitive(yaml, "deepspeed_config");
    bool has_json = lookup(yaml_ds, "deepspeed_config_file") != NULL;
    zrt_cfg_walk(cfg, errs, cfg->source_path, &zrt_cfg_accelerate, yaml, "");
    if (!lookup(yaml, "distributed_type") && yaml_ds) cfg->distributed_type = ZRT_DIST_DEEPSPEED;
    if (!has_json && cfg->distributed_type == ZRT_DIST_DEEPSPEED) {
        /* Accelerate's own defaults when it writes the DeepSpeed config. */
        if (!lookup(yaml_ds, "zero_stage")) cfg->zero.stage = 2;
        if (!lookup(yaml_ds, "gradient_clipping")) cfg->gradient_clipping = 1.0;
    }
    bool yaml_has_precision = lookup(yaml, "mixed_precision") != NULL;
    if (errs->count || !has_json) {
        cfg->zero.overlap_comm = cfg->zero.stage == 3;
        return;
    }
    if (!resolve_relative(cfg, errs)) return;
    check_owned_by_json(yaml_ds, cfg->source_path, cfg->deepspeed_config_file, errs);
    zrt_cfg_format format;
    cJSON *json = zrt_cfg_read_tree(cfg->deepspeed_config_file, &format, errs);
    if (!json) return;
    check_zrt_overlap(cJSON_GetObjectItemCaseSensitive(yaml, "zrt"),
                      cJSON_GetObjectItemCaseSensitive(json, "zrt"), "zrt", cfg->deepspeed_config_file,
                      errs);
    check_monitor_twice(json, cfg->deepspeed_config_file, cJSON_GetObjectItemCaseSensitive(yaml, "zrt"),
                        zrt_cfg_zrt_file(cfg), errs);
    load_deepspeed_json(cfg, json, cfg->deepspeed_config_file, yaml_has_precision, errs);
    cJSON_Delete(json);
}

/* Accelerate only hands deepspeed_config to DeepSpeed when distributed_type
 * is DEEPSPEED; otherwise it is plain data parallelism (stage 0). */
static void drop_zero_unless_deepspeed(zrt_config *cfg)
{
    if (cfg->distributed_type == ZRT_DIST_DEEPSPEED) return;
    bool asked = cfg->zero.stage != 0 || cfg->zero.offload_optimizer.device != ZRT_OFFLOAD_NONE ||
                 cfg->zero.offload_param.device != ZRT_OFFLOAD_NONE;
    if (!asked) return;
    zrt_cfg_warn(cfg, cfg->source_path, "deepspeed_config",
                 "ignored: distributed_type is not DEEPSPEED, so zrt runs plain data parallel (stage 0)");
    cfg->zero.stage = 0;
    cfg->zero.overlap_comm = false;
    cfg->zero.offload_optimizer.device = ZRT_OFFLOAD_NONE;
    cfg->zero.offload_param.device = ZRT_OFFLOAD_NONE;
}

static void validate_into(zrt_config *cfg, zrt_cfg_errors *errs);

/* ZRT_OK, or ZRT_ERR_CONFIG with every collected error as the message; frees errs. */
static zrt_status finish_errors(zrt_cfg_errors *errs)
{
    zrt_status status = ZRT_OK;
    if (errs->count) {
        size_t len = strlen(errs->text);
        if (len && errs->text[len - 1] == '\n') errs->text[len - 1] = '\0';
        status = zrt_set_error(ZRT_ERR_CONFIG, "%s", errs->text);
    }
    free(errs);
    return status;
}

/* NAME.zrt.yaml beside NAME.yaml (or .yml); "" when path has no YAML suffix. */
static void sibling_path(const char *path, char *out, size_t size)
{
    size_t n = strlen(path);
    size_t stem = n > 5 && strcmp(path + n - 5, ".yaml") == 0 ? n - 5 : n > 4 && strcmp(path + n - 4, ".yml") == 0 ? n - 4 : 0;
    if (stem == 0 || snprintf(out, size, "%.*s.zrt.yaml", (int)stem, path) >= (int)size) out[0] = '\0';
}

/* zrt's own settings kept beside an Accelerate YAML (which Accelerate's
 * loader refuses unknown keys in): zrt_path if given, else NAME.zrt.yaml next
 * to it when it exists; its top level is the `zrt:` section's content (or a
 * `zrt:` key holding it). Joined into the tree as "zrt"; a file with a `zrt:`
 * section of its own and such a file is an error naming both. */
static void join_zrt_file(zrt_config *cfg, cJSON *tree, const char *zrt_path, zrt_cfg_errors *errs)
{
    char sibling[ZRT_PATH_MAX + 16];
    if (zrt_path) snprintf(sibling, sizeof sibling, "%s", zrt_path);
    else sibling_path(cfg->source_path, sibling, sizeof sibling);
    if (!sibling[0] || (!zrt_path && access(sibling, F_OK) != 0)) return;
    if (cJSON_GetObjectItemCaseSensitive(tree, "zrt")) {
        zrt_cfg_error(errs, cfg->source_path, "zrt", "set here and in %s: keep one", sibling);
        return;
    }
    zrt_cfg_format format;
    cJSON *extra = zrt_cfg_read_tree(sibling, &format, errs);
    if (!extra) return;
    cJSON *inner = cJSON_DetachItemFromObjectCaseSensitive(extra, "zrt");
    if (inner && cJSON_GetArraySize(extra) > 0)
        zrt_cfg_error(errs, sibling, "zrt", "the file has keys beside its zrt: section");
    cJSON_AddItemToObject(tree, "zrt", inner ? inner : extra);
    if (inner) cJSON_Delete(extra);
    snprintf(cfg->zrt_config_path, sizeof cfg->zrt_config_path, "%s", sibling);
}

/* NAME.zrt.yaml holds only zrt's keys: given as the config, it would load as
 * an Accelerate YAML with none of its settings. Say which file to pass. */
static zrt_status refuse_settings_file(const char *path)
{
    size_t n = strlen(path);
    size_t suffix = n > 9 && strcmp(path + n - 9, ".zrt.yaml") == 0  ? 9
                    : n > 8 && strcmp(path + n - 8, ".zrt.yml") == 0 ? 8
                                                                     : 0;
    if (!suffix) return ZRT_OK;
    return zrt_set_error(ZRT_ERR_CONFIG, "%s: this is zrt's settings file for %.*s.yaml, read with it: pass %.*s.yaml "
                         "(or give this one as --zrt_config)", path, (int)(n - suffix), path, (int)(n - suffix), path);
}

/* A DeepSpeed JSON alone has no world size (DeepSpeed takes it from its
 * launcher, then requires train = micro * accumulation * world): when all
 * three are given and divide, they name it, so `zrt launch x.json` starts
 * the ranks the file was written for. --num_processes still overrides (and a
 * contradiction is then an error). */
static void world_from_batch(zrt_config *cfg)
{
    const zrt_batch_config *b = &cfg->batch_given;
    int64_t per_rank = b->micro_batch_per_gpu * b->gradient_accumulation_steps;
    if (b->train_batch_size && per_rank && b->train_batch_size % per_rank == 0)
        cfg->num_processes = b->train_batch_size / per_rank;
}

zrt_status zrt_config_load(zrt_config *cfg, const char *path) { return zrt_config_load_with(cfg, path, NULL); }

zrt_status zrt_config_load_with(zrt_config *cfg, const char *path, const char *zrt_path)
{
    if (!cfg || !path) return zrt_set_error(ZRT_ERR_INVALID, "zrt_config_load: NULL argument");
    zrt_config_init(cfg);
    if (strlen(path) >= ZRT_PATH_MAX)
        return zrt_set_error(ZRT_ERR_CONFIG, "%.64s...: path longer than %d bytes", path, ZRT_PATH_MAX - 1);
    ZRT_CHECK(refuse_settings_file(path));
    snprintf(cfg->source_path, sizeof cfg->source_path, "%s", path);
    zrt_cfg_errors *errs = calloc(1, sizeof *errs);
    if (!errs) return zrt_set_error(ZRT_ERR_NOMEM, "zrt_config_load: out of memory");
    zrt_cfg_format format;
    cJSON *tree = zrt_cfg_read_tree(path, &format, errs);
    cfg->source_is_json = tree && format == ZRT_CFG_JSON;
    if (tree && (format == ZRT_CFG_YAML || zrt_path)) join_zrt_file(cfg, tree, zrt_path, errs);
    if (tree && format == ZRT_CFG_YAML) load_accelerate_yaml(cfg, tree, errs);
    else if (tree) {
        cfg->distributed_type = ZRT_DIST_DEEPSPEED; /* a DeepSpeed file means DeepSpeed */
        load_deepspeed_json(cfg, tree, path, false, errs);
        world_from_batch(cfg);
    }
    cJSON_Delete(tree);
    if (errs->count == 0) {
        drop_zero_unless_deepspeed(cfg);
        validate_into(cfg, errs);
    }
    zrt_status status = finish_errors(errs);
    if (status != ZRT_OK) zrt_config_init(cfg);
    return status;
}

/* ---- rules across keys ----------------------------------------------------------- */

static int64_t divide_exactly(int64_t total, int64_t by) { return by > 0 && total % by == 0 ? total / by : 0; }

/* DeepSpeed's rule: train_batch_size = micro * accumulation * world size;
 * any two give the third. Neither train nor micro: zrt.micro_batch_size (8). */
static void resolve_batch(zrt_config *cfg, zrt_cfg_errors *errs)
{
    const char *file = zrt_cfg_deepspeed_file(cfg);
    int64_t world = cfg->num_processes;
    int64_t train = cfg->batch_given.train_batch_size;
    int64_t micro = cfg->batch_given.micro_batch_per_gpu;
    int64_t accum = cfg->batch_given.gradient_accumulation_steps;
    if (train && micro && accum) {
        if (train != micro * accum * world)
            zrt_cfg_error(errs, file, "train_batch_size",
                          "%lld != train_micro_batch_size_per_gpu %lld * gradient_accumulation_steps %lld * "
                          "world size %lld", (long long)train, (long long)micro, (long long)accum,
                          (long long)world);
    } else if (train && (micro || accum)) {
        int64_t known = micro ? micro : accum;
        int64_t other = divide_exactly(train, known * world);
        if (other == 0)
            zrt_cfg_error(errs, file, "train_batch_size",
                          "%lld is not divisible by %s %lld * world size %lld", (long long)train,
                          micro ? "train_micro_batch_size_per_gpu" : "gradient_accumulation_steps",
                          (long long)known, (long long)world);
        if (micro) accum = other;
        else micro = other;
    } else if (train) {
        accum = 1;
        micro = divide_exactly(train, world);
        if (micro == 0)
            zrt_cfg_error(errs, file, "train_batch_size", "%lld is not divisible by world size %lld",
                          (long long)train, (long long)world);
    } else {
        if (!micro) micro = cfg->job.micro_batch_size;
        if (!accum) accum = 1;
        train = micro * accum * world;
    }
    cfg->batch = (zrt_batch_config){train, micro, accum};
}

static void check_offload(zrt_config *cfg, zrt_cfg_errors *errs, const zrt_offload_config *off,
                          const char *name)
{
    char key[96];
    snprintf(key, sizeof key, "zero_optimization.%s.nvme_path", name);
    if (off->device == ZRT_OFFLOAD_NVME && off->n_nvme_paths == 0)
        zrt_cfg_error(errs, zrt_cfg_deepspeed_file(cfg), key, "is required when %s.device is nvme", name);
}

static bool valid_gpu_ids(const char *ids)
{
    if (strcmp(ids, "all") == 0) return true;
    if (ids[0] == '\0') return false;
    for (const char *p = ids; *p; p++)
        if (!(*p >= '0' && *p <= '9') && *p != ',' && *p != ' ') return false;
    return true;
}

static void check_launch(zrt_config *cfg, zrt_cfg_errors *errs)
{
    const char *file = cfg->source_path;
    if (cfg->num_processes % cfg->num_machines != 0)
        zrt_cfg_error(errs, file, "num_processes", "%lld is not divisible by num_machines %lld",
                      (long long)cfg->num_processes, (long long)cfg->num_machines);
    if (cfg->machine_rank >= cfg->num_machines)
        zrt_cfg_error(errs, file, "machine_rank", "%lld must be below num_machines %lld",
                      (long long)cfg->machine_rank, (long long)cfg->num_machines);
    if (cfg->num_machines > 1 && cfg->main_process_ip[0] == '\0')
        zrt_cfg_error(errs, file, "main_process_ip", "is required when num_machines is %lld",
                      (long long)cfg->num_machines);
    if (!valid_gpu_ids(cfg->gpu_ids))
        zrt_cfg_error(errs, file, "gpu_ids", "\"%s\" is not \"all\" or a list like \"0,1\"", cfg->gpu_ids);
    else if (strcmp(cfg->gpu_ids, "all") != 0) /* parsed, not honoured: refused rather than ignored */
        zrt_cfg_error(errs, file, "gpu_ids", "\"%s\": zrt does not restrict its ranks to listed GPUs; use \"all\" "
                      "and choose them with CUDA_VISIBLE_DEVICES", cfg->gpu_ids);
}

static void check_zero(zrt_config *cfg, zrt_cfg_errors *errs)
{
    const char *file = zrt_cfg_deepspeed_file(cfg);
    const zrt_zero_config *z = &cfg->zero;
    check_offload(cfg, errs, &z->offload_optimizer, "offload_optimizer");
    check_offload(cfg, errs, &z->offload_param, "offload_param");
    if (z->offload_param.device != ZRT_OFFLOAD_NONE && z->stage != 3)
        zrt_cfg_error(errs, file, "zero_optimization.offload_param.device",
                      "%s needs zero stage 3 (the stage is %d)", zrt_offload_device_name(z->offload_param.device),
                      z->stage);
    if (z->offload_optimizer.device != ZRT_OFFLOAD_NONE && z->stage == 0)
        zrt_cfg_error(errs, file, "zero_optimization.offload_optimizer.device",
                      "%s needs zero stage 1, 2 or 3 (the stage is 0)",
                      zrt_offload_device_name(z->offload_optimizer.device));
    if (cfg->aio.block_size % 4096 != 0)
        zrt_cfg_error(errs, file, "aio.block_size", "%lld is not a multiple of 4096 (O_DIRECT and the io_uring swapper "
                      "need page-aligned requests)", (long long)cfg->aio.block_size);
}

static void check_job(zrt_config *cfg, zrt_cfg_errors *errs)
{
    const char *file = zrt_cfg_zrt_file(cfg);
    zrt_job_config *j = &cfg->job;
    if (j->model.type == ZRT_MODEL_GPT && j->model.d_model % j->model.heads != 0)
        zrt_cfg_error(errs, file, "zrt.model.d_model", "%lld is not divisible by zrt.model.heads %lld",
                      (long long)j->model.d_model, (long long)j->model.heads);
    if (j->data.type == ZRT_DATA_TEXT && j->data.path[0] == '\0')
        zrt_cfg_error(errs, file, "zrt.data.path", "is required when zrt.data.type is text");
    if (j->data.type == ZRT_DATA_TOKENS && j->data.train[0] == '\0')
        zrt_cfg_error(errs, file, "zrt.data.train", "is required when zrt.data.type is tokens (a glob of token "
                      "shards: dir/train_*.bin)");
    if (j->data.type != ZRT_DATA_TOKENS && j->data.train[0])
        zrt_cfg_error(errs, file, "zrt.data.train", "is read only when zrt.data.type is tokens");
    if (j->data.type == ZRT_DATA_TOKENS && j->model.type == ZRT_MODEL_MLP)
        zrt_cfg_error(errs, file, "zrt.data.type", "tokens needs zrt.model.type gpt or llama");
    if (j->checkpoint_interval > 0 && j->checkpoint_dir[0] == '\0')
        zrt_cfg_error(errs, file, "zrt.checkpoint_interval", "%lld needs zrt.checkpoint_dir",
                      (long long)j->checkpoint_interval);
    if (j->checkpoint_keep > 0 && j->checkpoint_dir[0] == '\0')
        zrt_cfg_error(errs, file, "zrt.checkpoint_keep", "%lld needs zrt.checkpoint_dir", (long long)j->checkpoint_keep);
    if (j->eval_interval > 0 && (j->data.type != ZRT_DATA_TOKENS || !j->data.val[0]))
        zrt_cfg_error(errs, file, "zrt.eval_interval", "%lld needs a validation set: zrt.data.type tokens with "
                      "zrt.data.val (a glob of token shards; zrt tokenize --val-fraction writes them)",
                      (long long)j->eval_interval);
    if (j->data.val[0] && j->data.type != ZRT_DATA_TOKENS)
        zrt_cfg_error(errs, file, "zrt.data.val", "is read only when zrt.data.type is tokens");
    if (j->checkpoint_best && (j->eval_interval == 0 || j->checkpoint_dir[0] == '\0'))
        zrt_cfg_error(errs, file, "zrt.checkpoint_best", "needs zrt.eval_interval (a validation loss to compare) and "
                      "zrt.checkpoint_dir");
    if (j->heartbeat_timeout_s <= j->heartbeat_interval_s)
        zrt_cfg_error(errs, file, "zrt.heartbeat_timeout_s", "%g must be longer than heartbeat_interval_s %g",
                      j->heartbeat_timeout_s, j->heartbeat_interval_s);
    if ((j->tls_cert[0] == '\0') != (j->tls_key[0] == '\0'))
        zrt_cfg_error(errs, file, "zrt.tls", "cert and key go together: give both or neither");
    if (j->tls_require_client_cert && j->tls_ca[0] == '\0')
        zrt_cfg_error(errs, file, "zrt.tls.require_client_cert", "needs zrt.tls.ca to check clients against");
}

/* DeepSpeed's activation_checkpointing section turns checkpointing on; each
 * of its keys is exact for zrt or refused (docs/config.md). */
static void check_activation_checkpointing(zrt_config *cfg, zrt_cfg_errors *errs)
{
    const zrt_activation_checkpointing_config *ac = &cfg->activation_checkpointing;
    zrt_model_config *m = &cfg->job.model;
    const char *file = zrt_cfg_deepspeed_file(cfg);
    if (ac->present && zrt_cfg_zrt_given(cfg, "activation_checkpointing") && !m->activation_checkpointing)
        zrt_cfg_error(errs, file, "activation_checkpointing", "is given (checkpointing on) and "
                      "zrt.activation_checkpointing is false in %s: keep one", zrt_cfg_zrt_file(cfg));
    if (ac->present) m->activation_checkpointing = true;
    if (ac->cpu_checkpointing && cfg->job.device != ZRT_DEVICE_CPU)
        zrt_cfg_error(errs, file, "activation_checkpointing.cpu_checkpointing", "true is implemented with "
                      "zrt.device cpu only (where the checkpoints are in host memory already); zrt does not move "
                      "them off the GPU");
    if (ac->number_checkpoints && ac->number_checkpoints != m->layers)
        zrt_cfg_error(errs, file, "activation_checkpointing.number_checkpoints", "%lld: zrt checkpoints every block, "
                      "so it must equal zrt.model.layers %lld (or be left out)", (long long)ac->number_checkpoints,
                      (long long)m->layers);
    if (ac->profile)
        zrt_cfg_error(errs, file, "activation_checkpointing.profile", "true: zrt does not time the checkpointed "
                      "blocks (false or leave it out)");
    if (m->activation_checkpointing && m->type == ZRT_MODEL_MLP)
        zrt_cfg_error(errs, zrt_cfg_zrt_file(cfg), "zrt.activation_checkpointing", "needs a model of blocks (gpt or "
                      "llama); the mlp has none");
}

static void validate_into(zrt_config *cfg, zrt_cfg_errors *errs)
{
    check_launch(cfg, errs);
    check_zero(cfg, errs);
    zrt_cfg_hf_llama(cfg, errs);
    check_job(cfg, errs);
    check_activation_checkpointing(cfg, errs);
    zrt_cfg_check_start(cfg, errs);
    resolve_batch(cfg, errs);
    if (isnan(cfg->scheduler.warmup_max_lr)) cfg->scheduler.warmup_max_lr = cfg->optimizer.lr;
    if (cfg->job.model.hidden == 0) cfg->job.model.hidden = 4 * cfg->job.model.d_model; /* llama: required */
    cfg->fp16.enabled = cfg->mixed_precision == ZRT_PRECISION_FP16;
    cfg->bf16_enabled = cfg->mixed_precision == ZRT_PRECISION_BF16;
    cfg->job.model.precision = (int)cfg->mixed_precision;
}

zrt_status zrt_config_validate(zrt_config *cfg)
{
    if (!cfg) return zrt_set_error(ZRT_ERR_INVALID, "zrt_config_validate: NULL config");
    zrt_cfg_errors *errs = calloc(1, sizeof *errs);
    if (!errs) return zrt_set_error(ZRT_ERR_NOMEM, "zrt_config_validate: out of memory");
    validate_into(cfg, errs);
    return finish_errors(errs);
}

/* ---- dump -------------------------------------------------------------------------- */

char *zrt_config_to_json(const zrt_config *cfg)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *accelerate = zrt_cfg_dump(cfg, &zrt_cfg_accelerate);
    cJSON *deepspeed = zrt_cfg_dump(cfg, &zrt_cfg_deepspeed);
    cJSON *zrt = zrt_cfg_dump(cfg, &zrt_cfg_zrt);
    char *text = NULL;
    if (root && accelerate && deepspeed && zrt) {
        zrt_cfg_hf_dump_prune(cfg, zrt); /* a dump loads back: no keys of another model type */
        cJSON_AddNumberToObject(deepspeed, "train_batch_size", (double)cfg->batch.train_batch_size);
        cJSON_AddNumberToObject(deepspeed, "train_micro_batch_size_per_gpu",
                                (double)cfg->batch.micro_batch_per_gpu);
        cJSON_AddNumberToObject(deepspeed, "gradient_accumulation_steps",
                                (double)cfg->batch.gradient_accumulation_steps);
        cJSON_AddStringToObject(root, "source", cfg->source_path);
        cJSON_AddItemToObject(root, "accelerate", accelerate);
        cJSON_AddItemToObject(root, "deepspeed", deepspeed);
        cJSON_AddItemToObject(root, "zrt", zrt);
        accelerate = deepspeed = zrt = NULL;
        text = cJSON_Print(root);
    }
    cJSON_Delete(root);
    cJSON_Delete(accelerate);
    cJSON_Delete(deepspeed);
    cJSON_Delete(zrt);
    if (!text) zrt_set_error(ZRT_ERR_NOMEM, "zrt_config_to_json: out of memory");
    return text;
}
