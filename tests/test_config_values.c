/* test_config_values.c: good configs load to the values DeepSpeed and
 * Accelerate would use (defaults, "auto", the batch trio, deepspeed_config_file,
 * warnings), and `zrt config show` round-trips what was loaded.
 */
#include "check.h"
#include "zrt.h"

#include <math.h>

static zrt_config cfg;

static const char *write(const char *name, const char *text)
{
    return test_write_file(test_tmpdir(), name, text, strlen(text));
}

static void load_ok(const char *name, const char *text)
{
    zrt_status status = zrt_config_load(&cfg, write(name, text));
    CHECK_MSG(status == ZRT_OK, "%s: %s", name, zrt_last_error());
}

/* DeepSpeed 0.19's code defaults for a JSON with nothing in it. */
static void test_deepspeed_defaults(void)
{
    load_ok("empty.json", "{}");
    CHECK(cfg.distributed_type == ZRT_DIST_DEEPSPEED);
    CHECK(cfg.zero.stage == 0);
    CHECK(cfg.zero.overlap_comm == false);
    CHECK(cfg.zero.contiguous_gradients && cfg.zero.reduce_scatter);
    CHECK(cfg.zero.reduce_bucket_size == 500000000 && cfg.zero.allgather_bucket_size == 500000000);
    CHECK(cfg.zero.stage3_prefetch_bucket_size == 50000000);
    CHECK(cfg.zero.stage3_param_persistence_threshold == 100000);
    CHECK(cfg.zero.stage3_max_live_parameters == 1000000000);
    CHECK(cfg.zero.sub_group_size == 1000000000);
    CHECK(cfg.zero.offload_optimizer.buffer_count == 4 && cfg.zero.offload_param.buffer_count == 5);
    CHECK(cfg.aio.block_size == 1048576 && cfg.aio.queue_depth == 8 && cfg.aio.overlap_events);
    CHECK(cfg.fp16.initial_scale_power == 16 && cfg.fp16.loss_scale_window == 1000 && cfg.fp16.hysteresis == 2);
    CHECK(cfg.gradient_clipping == 0.0);
    CHECK(cfg.steps_per_print == 10);
    CHECK(cfg.optimizer.type == ZRT_OPT_ADAMW && cfg.optimizer.lr == 1e-3 && cfg.optimizer.betas[1] == 0.999);
    CHECK(cfg.batch.micro_batch_per_gpu == 8 && cfg.batch.gradient_accumulation_steps == 1);
    CHECK(cfg.batch.train_batch_size == 8);
    CHECK(cfg.warnings[0] == '\0');
}

/* overlap_comm defaults to true only for stage 3 (DeepSpeed's validator). */
static void test_overlap_default(void)
{
    load_ok("s3.json", "{\"zero_optimization\": {\"stage\": 3}}");
    CHECK(cfg.zero.overlap_comm == true);
    load_ok("s3_off.json", "{\"zero_optimization\": {\"stage\": 3, \"overlap_comm\": false}}");
    CHECK(cfg.zero.overlap_comm == false);
    load_ok("s2.yaml", "distributed_type: DEEPSPEED\ndeepspeed_config:\n  zero_stage: 2\n");
    CHECK(cfg.zero.overlap_comm == false);
}

/* Accelerate: 'no' and bare no are both the string; inline comments; stage 2
 * by default; "auto" accumulation -> 1, "auto" clipping -> 1.0. */
static void test_accelerate_yaml(void)
{
    load_ok("bare_no.yaml", "distributed_type: DEEPSPEED  # the engine\nmixed_precision: no\n"
                            "deepspeed_config:\n  gradient_accumulation_steps: auto\n  gradient_clipping: auto\n");
    CHECK(cfg.mixed_precision == ZRT_PRECISION_NO);
    CHECK(cfg.zero.stage == 2);
    CHECK(cfg.batch.gradient_accumulation_steps == 1);
    CHECK(cfg.gradient_clipping == 1.0);
    CHECK(cfg.main_process_port == 29500);
    load_ok("quoted_no.yaml", "mixed_precision: 'no'\ndowncast_bf16: 'no'\nnum_processes: 4\n");
    CHECK(cfg.mixed_precision == ZRT_PRECISION_NO && !cfg.downcast_bf16 && cfg.num_processes == 4);
    CHECK(cfg.distributed_type == ZRT_DIST_NO && cfg.zero.stage == 0);
    CHECK(cfg.warnings[0] == '\0'); /* no deepspeed_config: nothing to ignore */
    load_ok("ds_no_section.yaml", "distributed_type: DEEPSPEED\n"); /* Accelerate's defaults */
    CHECK(cfg.zero.stage == 2 && cfg.gradient_clipping == 1.0);
    load_ok("bf16.yaml", "mixed_precision: bf16\n");
    CHECK(cfg.mixed_precision == ZRT_PRECISION_BF16 && cfg.bf16_enabled && !cfg.fp16.enabled);
}

static void test_numbers(void)
{
    load_ok("sci.json", "{\"zero_optimization\": {\"reduce_bucket_size\": 5e8, \"allgather_bucket_size\": \"2e8\","
                        " \"stage3_prefetch_bucket_size\": \"auto\"}}");
    CHECK(cfg.zero.reduce_bucket_size == 500000000);
    CHECK(cfg.zero.allgather_bucket_size == 200000000);
    CHECK(cfg.zero.stage3_prefetch_bucket_size == 50000000);
    load_ok("sci.yaml", "zrt:\n  steps: 1e3\n  seed: 9223372036854775807\n");
    CHECK(cfg.job.steps == 1000);
    CHECK(cfg.job.seed == INT64_MAX);
}

/* train = micro * accumulation * world; any two give the third. */
static void test_batch_trio(void)
{
    load_ok("b1.yaml", "num_processes: 4\nzrt: {}\n");
    CHECK(cfg.batch.train_batch_size == 32);
    load_ok("b2.json", "{\"train_batch_size\": 64, \"train_micro_batch_size_per_gpu\": 4}");
    CHECK(cfg.batch.gradient_accumulation_steps == 16);
    load_ok("b3.json", "{\"train_batch_size\": 64, \"gradient_accumulation_steps\": 4}");
    CHECK(cfg.batch.micro_batch_per_gpu == 16);
    load_ok("b4.json", "{\"train_batch_size\": 12}");
    CHECK(cfg.batch.micro_batch_per_gpu == 12 && cfg.batch.gradient_accumulation_steps == 1);
    load_ok("b5.json", "{\"train_micro_batch_size_per_gpu\": 3, \"gradient_accumulation_steps\": 5}");
    CHECK(cfg.batch.train_batch_size == 15);
    /* A caller override (e.g. --num_processes) re-derives from what was given. */
    cfg.num_processes = 2;
    CHECK_OK(zrt_config_validate(&cfg));
    CHECK(cfg.batch.train_batch_size == 30);
    /* A DeepSpeed JSON alone: the whole trio names the world size (configs/ds/ twins). */
    load_ok("b6.json", "{\"train_batch_size\": 64, \"train_micro_batch_size_per_gpu\": 16, "
                       "\"gradient_accumulation_steps\": 2}");
    CHECK(cfg.num_processes == 2 && cfg.batch.micro_batch_per_gpu == 16);
}

static void test_deepspeed_config_file(void)
{
    write("inner_ds.json", "{\"zero_optimization\": {\"stage\": 3, \"offload_optimizer\": {\"device\": \"nvme\","
                           " \"nvme_path\": [\"/a\", \"/b\"]}}, \"bf16\": {\"enabled\": \"auto\"},"
                           " \"gradient_accumulation_steps\": 2, \"zrt\": {\"steps\": 7}}");
    load_ok("outer.yaml", "distributed_type: DEEPSPEED\nmixed_precision: bf16\nnum_processes: 2\n"
                          "deepspeed_config:\n  deepspeed_config_file: inner_ds.json\n  zero3_init_flag: true\n");
    CHECK(cfg.zero.stage == 3);
    CHECK(cfg.zero.offload_optimizer.device == ZRT_OFFLOAD_NVME);
    CHECK(cfg.zero.offload_optimizer.n_nvme_paths == 2 && strcmp(cfg.zero.offload_optimizer.nvme_paths[1], "/b") == 0);
    CHECK(cfg.mixed_precision == ZRT_PRECISION_BF16); /* "auto" in the JSON takes Accelerate's value */
    CHECK(cfg.batch.gradient_accumulation_steps == 2 && cfg.batch.train_batch_size == 32);
    CHECK(cfg.gradient_clipping == 0.0); /* the JSON is the DeepSpeed config: its default */
    CHECK(cfg.job.steps == 7);
    CHECK(cfg.zero3_init_flag);
    CHECK(strstr(cfg.deepspeed_config_file, "/inner_ds.json") != NULL);

    /* Same precision in both places is fine. */
    write("prec_ds.json", "{\"bf16\": {\"enabled\": true}}");
    load_ok("prec.yaml", "mixed_precision: bf16\ndeepspeed_config:\n  deepspeed_config_file: prec_ds.json\n");
    CHECK(cfg.mixed_precision == ZRT_PRECISION_BF16);
}

static void test_warnings(void)
{
    load_ok("warn.yaml", "num_processes: 2\nenable_cpu_affinity: false\nmystery_key: 1\ntpu_name: x\n"
                         "deepspeed_config:\n  zero_stage: 1\n  what_is_this: 2\n");
    CHECK(strstr(cfg.warnings, "warn.yaml: mystery_key: unknown key, ignored") != NULL);
    CHECK(strstr(cfg.warnings, "deepspeed_config.what_is_this: unknown key, ignored") != NULL);
    CHECK(strstr(cfg.warnings, "tpu_name") == NULL && strstr(cfg.warnings, "enable_cpu_affinity") == NULL);
    CHECK(cfg.zero.stage == 1); /* no distributed_type, but deepspeed_config: DeepSpeed */
    load_ok("multi.yaml", "distributed_type: MULTI_CPU\ndeepspeed_config:\n  zero_stage: 3\n");
    CHECK(cfg.zero.stage == 0);
    CHECK(strstr(cfg.warnings, "ignored: distributed_type is not DEEPSPEED") != NULL);
}

static void test_scheduler_and_optimizer(void)
{
    load_ok("sched.json", "{\"optimizer\": {\"type\": \"adam\", \"params\": {\"lr\": 3e-4, \"betas\": [0.8, 0.95]}},"
                          " \"scheduler\": {\"type\": \"WarmupDecayLR\", \"params\": {\"warmup_max_lr\": \"auto\","
                          " \"warmup_num_steps\": 5, \"total_num_steps\": 100, \"warmup_type\": \"linear\"}}}");
    CHECK(cfg.optimizer.type == ZRT_OPT_ADAM && cfg.optimizer.adam_w_mode);
    CHECK(cfg.optimizer.lr == 3e-4 && cfg.optimizer.betas[0] == 0.8 && cfg.optimizer.betas[1] == 0.95);
    CHECK(cfg.scheduler.type == ZRT_SCHED_WARMUP_DECAY_LR);
    CHECK(cfg.scheduler.warmup_max_lr == 3e-4); /* "auto" = the optimizer's lr */
    CHECK(cfg.scheduler.warmup_type == ZRT_WARMUP_LINEAR && cfg.scheduler.total_num_steps == 100);
}

/* `config show` prints what was loaded: a JSON that names the resolved values. */
static void test_to_json(void)
{
    load_ok("show.yaml", "distributed_type: DEEPSPEED\nnum_processes: 2\nmixed_precision: fp16\n"
                         "deepspeed_config:\n  zero_stage: 3\n  offload_optimizer_device: cpu\n  offload_param_device: cpu\n"
                         "zrt:\n  model: {type: gpt, d_model: 32, heads: 4}\n");
    char *json = zrt_config_to_json(&cfg);
    CHECK(json != NULL);
    if (!json) return;
    CHECK(strstr(json, "\"stage\":\t3") != NULL);
    CHECK(strstr(json, "\"train_batch_size\":\t16") != NULL);
    CHECK(strstr(json, "\"type\":\t\"gpt\"") != NULL);
    CHECK(strstr(json, "\"hidden\":\t128") != NULL);
    CHECK(strstr(json, "\"enabled\":\ttrue") != NULL); /* fp16.enabled mirrors mixed_precision */
    free(json);
}

int main(void)
{
    test_deepspeed_defaults();
    test_overlap_default();
    test_accelerate_yaml();
    test_numbers();
    test_batch_trio();
    test_deepspeed_config_file();
    test_warnings();
    test_scheduler_and_optimizer();
    test_to_json();
    return CHECK_DONE();
}
