/* config_fields.c: every config key zrt knows, as tables for config_schema.c.
 *
 * Why tables: one line per key says its name, type, where it is stored, its
 * bounds and its allowed values; loading and `zrt config show` both read it.
 * Defaults are not here: they are in zrt_config_init() (config.c), which
 * follows DeepSpeed 0.19's code, Accelerate 1.x and docs/config.md.
 * Sections whose unknown keys are errors mirror DeepSpeed's pydantic models
 * (extra="forbid") and zrt's own section, where a typo must not pass.
 */
#include "config_internal.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#define OFF(member) offsetof(zrt_config, member)
#define BIG 9.3e18 /* "no upper bound" for int64 fields */

#define BOOL(k, m, fl) {k, ZRT_FT_BOOL, OFF(m), 0, 0, 0, NULL, fl, NULL, NULL}
#define INT(k, m, lo, hi, fl) {k, ZRT_FT_INT, OFF(m), 0, lo, hi, NULL, fl, NULL, NULL}
#define DBL(k, m, lo, hi, fl) {k, ZRT_FT_DOUBLE, OFF(m), 0, lo, hi, NULL, fl, NULL, NULL}
#define STR(k, m) {k, ZRT_FT_STRING, OFF(m), sizeof(((zrt_config *)0)->m), 0, 0, NULL, 0, NULL, NULL}
#define ENUM(k, m, names, fl) {k, ZRT_FT_ENUM, OFF(m), 0, 0, 0, names, fl, NULL, NULL}
#define PATHS(k, m, fl) {k, ZRT_FT_PATHS, OFF(m), 0, 0, 0, NULL, fl, NULL, NULL}
#define PAIR(k, m, lo, hi, fl) {k, ZRT_FT_PAIR, OFF(m), 0, lo, hi, NULL, fl, NULL, NULL}
#define SECTION(k, sec, fl) {k, ZRT_FT_SECTION, 0, 0, 0, 0, NULL, fl, &sec, NULL}
#define IGNORE(k) {k, ZRT_FT_IGNORE, 0, 0, 0, 0, NULL, 0, NULL, NULL}
#define UNSUPPORTED(k) {k, ZRT_FT_UNSUPPORTED, 0, 0, 0, 0, NULL, 0, NULL, NULL}
#define REFUSED(k, why) {k, ZRT_FT_UNSUPPORTED, 0, 0, 0, 0, NULL, 0, NULL, why}
#define END {NULL, ZRT_FT_IGNORE, 0, 0, 0, 0, NULL, 0, NULL, NULL}

#define AUTO ZRT_CFG_AUTO_KEEP
#define ALIAS ZRT_CFG_NO_DUMP

/* Enum names: index = the C enum's value (see zrt.h). */
const char *const zrt_cfg_precision_names[] = {"no", "fp16", "bf16", NULL};
const char *const zrt_cfg_offload_names[] = {"none", "cpu", "nvme", NULL};
static const char *const stage_names[] = {"0", "1", "2", "3", NULL};
static const char *const distributed_names[] = {"NO", "MULTI_CPU", "MULTI_GPU", "DEEPSPEED", NULL};
static const char *const rdzv_names[] = {"static", "c10d", NULL};
static const char *const optimizer_names[] = {"AdamW", "Adam", NULL};
static const char *const scheduler_names[] = {"none", "WarmupLR", "WarmupDecayLR", "WarmupCosineLR",
                                              NULL};
static const char *const warmup_names[] = {"log", "linear", NULL};
static const char *const model_names[] = {"mlp", "gpt", "llama", NULL};
static const char *const rope_type_names[] = {"default", "llama3", NULL};
static const char *const data_names[] = {"synthetic", "text", "tokens", NULL};
static const char *const device_names[] = {"auto", "cpu", "cuda", NULL};
static const char *const comm_names[] = {"auto", "host", "nccl", NULL};

/* ---- DeepSpeed JSON ---------------------------------------------------------- */

static const zrt_cfg_field offload_optimizer_fields[] = {
    ENUM("device", zero.offload_optimizer.device, zrt_cfg_offload_names, 0),
    PATHS("nvme_path", zero.offload_optimizer, 0),
    BOOL("pin_memory", zero.offload_optimizer.pin_memory, 0),
    INT("buffer_count", zero.offload_optimizer.buffer_count, 1, 1024, 0),
    DBL("ratio", zero.offload_optimizer.ratio, 0, 1, 0),
    IGNORE("pipeline_read"), IGNORE("pipeline_write"), IGNORE("pipeline"), IGNORE("fast_init"),
    END};
static const zrt_cfg_section offload_optimizer = {offload_optimizer_fields, true, 0};

static const zrt_cfg_field offload_param_fields[] = {
    ENUM("device", zero.offload_param.device, zrt_cfg_offload_names, 0),
    PATHS("nvme_path", zero.offload_param, 0),
    BOOL("pin_memory", zero.offload_param.pin_memory, 0),
    INT("buffer_count", zero.offload_param.buffer_count, 1, 1024, 0),
    INT("buffer_size", zero.offload_param.buffer_size, 1, BIG, 0),
    INT("max_in_cpu", zero.offload_param.max_in_cpu, 0, BIG, 0),
    END};
static const zrt_cfg_section offload_param = {offload_param_fields, true, 0};

static const zrt_cfg_field zero_fields[] = {
    ENUM("stage", zero.stage, stage_names, 0),
    BOOL("overlap_comm", zero.overlap_comm, 0),
    BOOL("contiguous_gradients", zero.contiguous_gradients, 0),
    BOOL("reduce_scatter", zero.reduce_scatter, 0),
    INT("reduce_bucket_size", zero.reduce_bucket_size, 1, BIG, AUTO),
    INT("allgather_bucket_size", zero.allgather_bucket_size, 1, BIG, AUTO),
    INT("stage3_prefetch_bucket_size", zero.stage3_prefetch_bucket_size, 0, BIG, AUTO),
    INT("stage3_param_persistence_threshold", zero.stage3_param_persistence_threshold, 0, BIG, AUTO),
    INT("stage3_max_live_parameters", zero.stage3_max_live_parameters, 1, BIG, 0),
    INT("stage3_max_reuse_distance", zero.stage3_max_reuse_distance, 0, BIG, 0),
    BOOL("stage3_gather_16bit_weights_on_model_save", zero.stage3_gather_16bit_weights_on_model_save,
         AUTO),
    BOOL("stage3_gather_fp16_weights_on_model_save", zero.stage3_gather_16bit_weights_on_model_save,
         ALIAS),
    INT("sub_group_size", zero.sub_group_size, 1, BIG, 0),
    SECTION("offload_optimizer", offload_optimizer, 0),
    SECTION("offload_param", offload_param, 0),
    IGNORE("allgather_partitions"), IGNORE("round_robin_gradients"), IGNORE("load_from_fp32_weights"),
    IGNORE("elastic_checkpoint"), IGNORE("ignore_unused_parameters"), IGNORE("legacy_stage1"),
    IGNORE("memory_efficient_linear"), IGNORE("log_trace_cache_warnings"),
    UNSUPPORTED("cpu_offload"), UNSUPPORTED("cpu_offload_params"), UNSUPPORTED("cpu_offload_use_pin_memory"),
    UNSUPPORTED("zero_quantized_weights"), UNSUPPORTED("zero_quantized_nontrainable_weights"),
    UNSUPPORTED("zero_quantized_gradients"), UNSUPPORTED("zero_hpz_partition_size"),
    UNSUPPORTED("mics_shard_size"), UNSUPPORTED("mics_hierarchical_params_gather"),
    END};
static const zrt_cfg_section zero = {zero_fields, true, 0};

static const zrt_cfg_field aio_fields[] = {
    INT("block_size", aio.block_size, 4096, 1 << 30, 0),
    INT("queue_depth", aio.queue_depth, 1, 4096, 0),
    INT("intra_op_parallelism", aio.intra_op_parallelism, 1, 1024, 0),
    INT("thread_count", aio.intra_op_parallelism, 1, 1024, ALIAS),
    BOOL("single_submit", aio.single_submit, 0),
    BOOL("overlap_events", aio.overlap_events, 0),
    UNSUPPORTED("use_gds"),
    END};
static const zrt_cfg_section aio = {aio_fields, false, 0};

static const zrt_cfg_field fp16_fields[] = {
    BOOL("enabled", fp16.enabled, AUTO),
    DBL("loss_scale", fp16.loss_scale, 0, 1e38, 0),
    INT("initial_scale_power", fp16.initial_scale_power, 0, 64, 0),
    INT("loss_scale_window", fp16.loss_scale_window, 1, BIG, 0),
    INT("hysteresis", fp16.hysteresis, 1, BIG, 0),
    DBL("min_loss_scale", fp16.min_loss_scale, 1e-30, 1e38, 0),
    IGNORE("consecutive_hysteresis"), UNSUPPORTED("auto_cast"), IGNORE("fp16_master_weights_and_grads"),
    END};
static const zrt_cfg_section fp16 = {fp16_fields, false, 0};

static const zrt_cfg_field bf16_fields[] = {
    BOOL("enabled", bf16_enabled, AUTO),
    IGNORE("immediate_grad_update"),
    END};
static const zrt_cfg_section bf16 = {bf16_fields, false, 0};

static const zrt_cfg_field optimizer_param_fields[] = {
    DBL("lr", optimizer.lr, 0, 1e6, AUTO),
    PAIR("betas", optimizer.betas, 0, 0.999999999, AUTO),
    DBL("eps", optimizer.eps, 1e-30, 1, AUTO),
    DBL("weight_decay", optimizer.weight_decay, 0, 1e6, AUTO),
    BOOL("adam_w_mode", optimizer.adam_w_mode, 0),
    IGNORE("torch_adam"), IGNORE("bias_correction"), UNSUPPORTED("amsgrad"),
    END};
static const zrt_cfg_section optimizer_params = {optimizer_param_fields, false, 0};

static const zrt_cfg_field optimizer_fields[] = {
    ENUM("type", optimizer.type, optimizer_names, 0),
    SECTION("params", optimizer_params, 0),
    END};
static const zrt_cfg_section optimizer = {optimizer_fields, false, 0};

static const zrt_cfg_field scheduler_param_fields[] = {
    DBL("warmup_min_lr", scheduler.warmup_min_lr, 0, 1e6, AUTO),
    DBL("warmup_max_lr", scheduler.warmup_max_lr, 0, 1e6, ZRT_CFG_AUTO_NAN),
    INT("warmup_num_steps", scheduler.warmup_num_steps, 0, BIG, AUTO),
    ENUM("warmup_type", scheduler.warmup_type, warmup_names, 0),
    INT("total_num_steps", scheduler.total_num_steps, 0, BIG, AUTO),
    DBL("warmup_min_ratio", scheduler.warmup_min_ratio, 0, 1, 0),
    DBL("cos_min_ratio", scheduler.cos_min_ratio, 0, 1, 0),
    IGNORE("last_batch_iteration"),
    END};
static const zrt_cfg_section scheduler_params = {scheduler_param_fields, false, 0};

static const zrt_cfg_field scheduler_fields[] = {
    ENUM("type", scheduler.type, scheduler_names, 0),
    SECTION("params", scheduler_params, 0),
    END};
static const zrt_cfg_section scheduler = {scheduler_fields, false, 0};

/* DeepSpeed's monitors (deepspeed/monitor/config.py). tensorboard and
 * csv_monitor write files (tools/train/monitor.c); the two that send metrics over
 * the network are refused when enabled, naming the file-based alternative. */
#define MONITOR_FIELDS(m) \
    BOOL("enabled", m.enabled, 0), STR("output_path", m.output_path), STR("job_name", m.job_name), END
static const zrt_cfg_field tensorboard_fields[] = {MONITOR_FIELDS(tensorboard)};
static const zrt_cfg_section tensorboard = {tensorboard_fields, true, 0};
static const zrt_cfg_field csv_monitor_fields[] = {MONITOR_FIELDS(csv_monitor)};
static const zrt_cfg_section csv_monitor = {csv_monitor_fields, true, 0};

#define NO_NETWORK(service)                                                                                   \
    service " sends metrics over the network, which zrt does not do: use tensorboard {enabled: true} (event " \
    "files TensorBoard reads) or csv_monitor {enabled: true} instead"
static const zrt_cfg_field wandb_fields[] = {
    REFUSED("enabled", NO_NETWORK("Weights & Biases")), IGNORE("group"), IGNORE("team"), IGNORE("project"),
    END};
static const zrt_cfg_section wandb = {wandb_fields, true, 0};
static const zrt_cfg_field comet_fields[] = {
    REFUSED("enabled", NO_NETWORK("Comet")), IGNORE("samples_log_interval"), IGNORE("project"),
    IGNORE("workspace"), IGNORE("api_key"), IGNORE("experiment_name"), IGNORE("experiment_key"), IGNORE("online"),
    IGNORE("mode"), END};
static const zrt_cfg_section comet = {comet_fields, true, 0};

/* The same four in zrt's own settings (NAME.zrt.yaml), for Accelerate users
 * without a DeepSpeed JSON; config.c refuses one set in both places. */
#define MONITOR_SECTIONS                                                                             \
    SECTION("tensorboard", tensorboard, ALIAS), SECTION("csv_monitor", csv_monitor, ALIAS),       \
        SECTION("wandb", wandb, ALIAS), SECTION("comet", comet, ALIAS)

/* DeepSpeed's activation checkpointing (runtime/activation_checkpointing/
 * config.py); config.c's rules say which values are exact for zrt. */
static const zrt_cfg_field activation_checkpointing_fields[] = {
    BOOL("partition_activations", activation_checkpointing.partition_activations, 0),
    BOOL("cpu_checkpointing", activation_checkpointing.cpu_checkpointing, 0),
    INT("number_checkpoints", activation_checkpointing.number_checkpoints, 1, BIG, 0),
    BOOL("contiguous_memory_optimization", activation_checkpointing.contiguous_memory_optimization, 0),
    BOOL("synchronize_checkpoint_boundary", activation_checkpointing.synchronize_checkpoint_boundary, 0),
    BOOL("profile", activation_checkpointing.profile, 0),
    END};
static const zrt_cfg_section activation_checkpointing = {activation_checkpointing_fields, true, 0};

static const zrt_cfg_field deepspeed_fields[] = {
    SECTION("zero_optimization", zero, 0),
    SECTION("aio", aio, 0),
    SECTION("fp16", fp16, 0),
    SECTION("bf16", bf16, 0),
    SECTION("bfloat16", bf16, ALIAS),
    SECTION("optimizer", optimizer, 0),
    SECTION("scheduler", scheduler, 0),
    /* The batch trio is stored as given; config.c dumps the resolved values. */
    INT("train_batch_size", batch_given.train_batch_size, 1, BIG, AUTO | ALIAS),
    INT("train_micro_batch_size_per_gpu", batch_given.micro_batch_per_gpu, 1, BIG, AUTO | ALIAS),
    INT("gradient_accumulation_steps", batch_given.gradient_accumulation_steps, 1, BIG, AUTO | ALIAS),
    DBL("gradient_clipping", gradient_clipping, 0, 1e30, AUTO),
    INT("steps_per_print", steps_per_print, 1, BIG, 0),
    SECTION("tensorboard", tensorboard, 0),
    SECTION("csv_monitor", csv_monitor, 0),
    SECTION("wandb", wandb, ALIAS), /* ALIAS: nothing to dump (refused when enabled) */
    SECTION("comet", comet, ALIAS),
    SECTION("activation_checkpointing", activation_checkpointing, 0),
    SECTION("zrt", zrt_cfg_zrt, ALIAS),
    END};
const zrt_cfg_section zrt_cfg_deepspeed = {deepspeed_fields, false, 0};

/* ---- zrt's own section --------------------------------------------------------- */

/* Llama 3's rope_scaling, as Hugging Face writes it (type: the older name of rope_type). */
static const zrt_cfg_field rope_scaling_fields[] = {
    ENUM("rope_type", job.model.rope_type, rope_type_names, 0),
    ENUM("type", job.model.rope_type, rope_type_names, ALIAS),
    DBL("factor", job.model.rope_factor, 1, 1e6, 0),
    DBL("low_freq_factor", job.model.rope_low_freq_factor, 1e-9, 1e6, 0),
    DBL("high_freq_factor", job.model.rope_high_freq_factor, 1e-9, 1e6, 0),
    INT("original_max_position_embeddings", job.model.rope_original_max_positions, 1, BIG, 0),
    END};
static const zrt_cfg_section rope_scaling = {rope_scaling_fields, true, 0};

/* The given mask (zrt_model_config.given) has a bit per entry: at most 64. */
static const zrt_cfg_field model_fields[] = {
    ENUM("type", job.model.type, model_names, 0),
    INT("layers", job.model.layers, 1, 1024, 0),
    INT("d_model", job.model.d_model, 1, 65536, 0),
    INT("hidden", job.model.hidden, 0, 1 << 20, 0),
    INT("heads", job.model.heads, 1, 1024, 0),
    INT("seq_len", job.model.seq_len, 1, 65536, 0),
    INT("vocab", job.model.vocab, 2, 1 << 20, 0),
    STR("init_from", job.model.init_from),
    BOOL("allow_tf32", job.model.allow_tf32, 0),
    INT("kv_heads", job.model.kv_heads, 0, 1024, 0),
    DBL("rope_theta", job.model.rope_theta, 0, 1e12, 0),
    DBL("norm_eps", job.model.norm_eps, 0, 1, 0),
    BOOL("tie_embeddings", job.model.tie_embeddings, 0),
    BOOL("attention_bias", job.model.attention_bias, 0),
    SECTION("rope_scaling", rope_scaling, 0),
    STR("hf_config", job.model.hf_config),
    STR("architecture", job.model.architecture),
    END};
static const zrt_cfg_section model = {model_fields, true, OFF(job.model.given)};

static const zrt_cfg_field data_fields[] = {
    ENUM("type", job.data.type, data_names, 0),
    STR("path", job.data.path),
    STR("train", job.data.train),
    STR("val", job.data.val),
    INT("seed", job.data.seed, 0, BIG, 0),
    END};
static const zrt_cfg_section data = {data_fields, true, 0};

static const zrt_cfg_field tls_fields[] = {
    STR("cert", job.tls_cert),
    STR("key", job.tls_key),
    STR("ca", job.tls_ca),
    BOOL("require_client_cert", job.tls_require_client_cert, 0),
    END};
static const zrt_cfg_section tls = {tls_fields, true, 0};

static const zrt_cfg_field zrt_fields[] = {
    SECTION("model", model, 0),
    SECTION("data", data, 0),
    INT("steps", job.steps, 1, BIG, 0),
    INT("micro_batch_size", job.micro_batch_size, 1, 1 << 20, 0),
    INT("seed", job.seed, 0, BIG, 0),
    STR("checkpoint_dir", job.checkpoint_dir),
    BOOL("bf16_stochastic_rounding", job.bf16_stochastic_rounding, 0),
    INT("checkpoint_interval", job.checkpoint_interval, 0, BIG, 0),
    INT("checkpoint_keep", job.checkpoint_keep, 0, BIG, 0),
    INT("eval_interval", job.eval_interval, 0, BIG, 0),
    INT("eval_batches", job.eval_batches, 1, BIG, 0),
    BOOL("checkpoint_best", job.checkpoint_best, 0),
    STR("metrics_file", job.metrics_file),
    ENUM("device", job.device, device_names, 0),
    ENUM("comm_backend", job.comm_backend, comm_names, 0),
    DBL("comm_timeout_s", job.comm_timeout_s, 0.001, 1e7, 0),
    STR("socket_ifname", job.socket_ifname),
    DBL("heartbeat_interval_s", job.heartbeat_interval_s, 0.01, 3600, 0),
    DBL("heartbeat_timeout_s", job.heartbeat_timeout_s, 0.02, 86400, 0),
    DBL("join_timeout_s", job.join_timeout_s, 0.1, 1e6, 0),
    INT("max_restarts", job.max_restarts, 0, 1000, 0),
    INT("cpu_threads", job.cpu_threads, 0, 1024, 0),
    STR("token_file", job.token_file),
    SECTION("tls", tls, 0),
    BOOL("activation_checkpointing", job.model.activation_checkpointing, 0),
    MONITOR_SECTIONS,
    END};
const zrt_cfg_section zrt_cfg_zrt = {zrt_fields, true, OFF(job.given)};

static bool given(const zrt_cfg_section *sec, uint64_t mask, const char *key)
{
    for (int i = 0; sec->fields[i].key && i < 64; i++)
        if (strcmp(sec->fields[i].key, key) == 0) return mask >> i & 1;
    return false;
}

bool zrt_cfg_model_given(const zrt_config *cfg, const char *key) { return given(&model, cfg->job.model.given, key); }
bool zrt_cfg_zrt_given(const zrt_config *cfg, const char *key) { return given(&zrt_cfg_zrt, cfg->job.given, key); }

/* ---- Accelerate YAML ---------------------------------------------------------- */

/* Accelerate's deepspeed_config: keys. Those that DeepSpeed's JSON also has
 * are ALIASes: `zrt config show` prints them once, in the deepspeed part. */
static const zrt_cfg_field yaml_deepspeed_fields[] = {
    ENUM("zero_stage", zero.stage, stage_names, ALIAS),
    ENUM("offload_optimizer_device", zero.offload_optimizer.device, zrt_cfg_offload_names, ALIAS),
    ENUM("offload_param_device", zero.offload_param.device, zrt_cfg_offload_names, ALIAS),
    PATHS("offload_optimizer_nvme_path", zero.offload_optimizer, ALIAS),
    PATHS("offload_param_nvme_path", zero.offload_param, ALIAS),
    INT("gradient_accumulation_steps", batch_given.gradient_accumulation_steps, 1, BIG, AUTO | ALIAS),
    DBL("gradient_clipping", gradient_clipping, 0, 1e30, AUTO | ALIAS),
    BOOL("zero3_init_flag", zero3_init_flag, 0),
    BOOL("zero3_save_16bit_model", zero.stage3_gather_16bit_weights_on_model_save, ALIAS),
    STR("deepspeed_config_file", deepspeed_config_file),
    STR("deepspeed_multinode_launcher", deepspeed_multinode_launcher),
    STR("deepspeed_hostfile", deepspeed_hostfile),
    IGNORE("deepspeed_exclusion_filter"), IGNORE("deepspeed_inclusion_filter"),
    IGNORE("deepspeed_moe_layer_cls_names"),
    END};
const zrt_cfg_section zrt_cfg_yaml_deepspeed = {yaml_deepspeed_fields, false, 0};

static const zrt_cfg_field accelerate_fields[] = {
    STR("compute_environment", compute_environment),
    ENUM("distributed_type", distributed_type, distributed_names, 0),
    ENUM("mixed_precision", mixed_precision, zrt_cfg_precision_names, 0),
    INT("num_machines", num_machines, 1, 65536, 0),
    INT("num_processes", num_processes, 1, 1 << 20, 0),
    INT("machine_rank", machine_rank, 0, 65535, 0),
    STR("main_process_ip", main_process_ip),
    INT("main_process_port", main_process_port, 0, 65535, 0),
    ENUM("rdzv_backend", rdzv_backend, rdzv_names, 0),
    BOOL("same_network", same_network, 0),
    BOOL("use_cpu", use_cpu, 0),
    STR("gpu_ids", gpu_ids),
    BOOL("downcast_bf16", downcast_bf16, 0),
    BOOL("debug", debug, 0),
    STR("main_training_function", main_training_function),
    SECTION("deepspeed_config", zrt_cfg_yaml_deepspeed, 0),
    SECTION("zrt", zrt_cfg_zrt, ALIAS),
    IGNORE("tpu_*"), IGNORE("enable_cpu_affinity"), IGNORE("num_cpu_threads_per_process"),
    IGNORE("dynamo_config"), IGNORE("fsdp_config"), IGNORE("megatron_lm_config"), IGNORE("ipex_config"),
    IGNORE("mpirun_config"), IGNORE("commands"), IGNORE("command_file"),
    END};
const zrt_cfg_section zrt_cfg_accelerate = {accelerate_fields, false, 0};
