/* zrt/config.h: zrt_config, the one validated struct a run is described by,
 * loaded from an Accelerate YAML or a DeepSpeed JSON (docs/config.md). */
#ifndef ZRT_CONFIG_H
#define ZRT_CONFIG_H

#include "zrt/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- config ------------------------------------------------------------
 * One validated struct loaded from an Accelerate YAML file (which may point
 * at a DeepSpeed JSON with deepspeed_config_file) or from a DeepSpeed JSON
 * file. See docs/config.md for every key, its default and where it comes from.
 * Strings are fixed-size so that a config can be copied with `=`; paths
 * longer than ZRT_PATH_MAX are refused when loading. */

#define ZRT_MAX_NVME_PATHS 8
#define ZRT_WARNINGS_MAX 4096

typedef enum { ZRT_PRECISION_NO, ZRT_PRECISION_FP16, ZRT_PRECISION_BF16 } zrt_precision;
typedef enum { ZRT_OFFLOAD_NONE, ZRT_OFFLOAD_CPU, ZRT_OFFLOAD_NVME } zrt_offload_device;
typedef enum {
    ZRT_DIST_NO, ZRT_DIST_MULTI_CPU, ZRT_DIST_MULTI_GPU, ZRT_DIST_DEEPSPEED
} zrt_distributed_type;
typedef enum { ZRT_RDZV_STATIC, ZRT_RDZV_C10D } zrt_rdzv_backend;
typedef enum { ZRT_OPT_ADAMW, ZRT_OPT_ADAM } zrt_optimizer_type;
typedef enum {
    ZRT_SCHED_NONE, ZRT_SCHED_WARMUP_LR, ZRT_SCHED_WARMUP_DECAY_LR, ZRT_SCHED_WARMUP_COSINE_LR
} zrt_scheduler_type;
typedef enum { ZRT_WARMUP_LOG, ZRT_WARMUP_LINEAR } zrt_warmup_type;
typedef enum { ZRT_MODEL_MLP, ZRT_MODEL_GPT, ZRT_MODEL_LLAMA } zrt_model_type;
typedef enum { ZRT_DATA_SYNTHETIC, ZRT_DATA_TEXT, ZRT_DATA_TOKENS } zrt_data_type;
typedef enum { ZRT_DEVICE_AUTO, ZRT_DEVICE_CPU, ZRT_DEVICE_CUDA } zrt_device_kind;
typedef enum { ZRT_COMM_AUTO, ZRT_COMM_HOST, ZRT_COMM_NCCL } zrt_comm_kind;

typedef struct {
    zrt_offload_device device;
    char nvme_paths[ZRT_MAX_NVME_PATHS][ZRT_PATH_MAX]; /* striped across, in order */
    int n_nvme_paths;
    bool pin_memory;
    int64_t buffer_count;
    double ratio;          /* offload_optimizer only: fraction offloaded     */
    int64_t buffer_size;   /* offload_param only: elements per buffer        */
    int64_t max_in_cpu;    /* offload_param only: elements kept in host memory */
} zrt_offload_config;

typedef struct {
    int stage;                               /* 0..3 */
    bool overlap_comm;
    bool contiguous_gradients;
    bool reduce_scatter;
    int64_t reduce_bucket_size;              /* elements */
    int64_t allgather_bucket_size;           /* elements */
    int64_t stage3_prefetch_bucket_size;     /* elements */
    int64_t stage3_param_persistence_threshold; /* elements */
    int64_t stage3_max_live_parameters;      /* elements */
    int64_t stage3_max_reuse_distance;       /* elements */
    bool stage3_gather_16bit_weights_on_model_save;
    int64_t sub_group_size;                  /* elements */
    zrt_offload_config offload_optimizer;
    zrt_offload_config offload_param;
} zrt_zero_config;

typedef struct {
    int64_t block_size;       /* bytes */
    int64_t queue_depth;
    int64_t intra_op_parallelism;
    bool single_submit;
    bool overlap_events;
} zrt_aio_config;

typedef struct {
    bool enabled;                /* == (mixed_precision == fp16) once loaded */
    double loss_scale;           /* 0 = dynamic */
    int64_t initial_scale_power; /* dynamic scale starts at 2^this */
    int64_t loss_scale_window;
    int64_t hysteresis;
    double min_loss_scale;
} zrt_fp16_config;

typedef struct {
    zrt_optimizer_type type;
    double lr;
    double betas[2];
    double eps;
    double weight_decay;
    bool adam_w_mode;   /* DeepSpeed's "Adam" is AdamW unless this is false */
} zrt_optimizer_config;

typedef struct {
    zrt_scheduler_type type;
    double warmup_min_lr;
    double warmup_max_lr;
    int64_t warmup_num_steps;
    zrt_warmup_type warmup_type;
    int64_t total_num_steps;     /* WarmupDecayLR, WarmupCosineLR */
    double warmup_min_ratio;     /* WarmupCosineLR */
    double cos_min_ratio;        /* WarmupCosineLR */
} zrt_scheduler_config;

typedef struct {
    int64_t train_batch_size;
    int64_t micro_batch_per_gpu;
    int64_t gradient_accumulation_steps;
} zrt_batch_config;

/* DeepSpeed's tensorboard and csv_monitor sections: rank 0 writes the step
 * metrics in output_path/job_name/ (docs/monitor.md). */
typedef struct {
    bool enabled;
    char output_path[ZRT_PATH_MAX]; /* "" = the working directory (DeepSpeed's os.path.join) */
    char job_name[ZRT_NAME_MAX];    /* DeepSpeed's default: DeepSpeedJobName */
} zrt_monitor_config;

typedef struct {
    zrt_model_type type;
    int64_t layers;
    int64_t d_model;
    int64_t hidden;      /* mlp: hidden width; gpt: MLP width (default 4*d_model) */
    int64_t heads;
    int64_t seq_len;
    int64_t vocab;
    char init_from[ZRT_PATH_MAX]; /* gpt, llama: start from these weights (safetensors, or a Hugging Face directory) */
    bool allow_tf32;     /* cuda, fp32 training: matmuls on TF32 tensor cores (torch's allow_tf32; off by default) */
    /* llama (Llama, Mistral, Qwen2; Hugging Face's names in brackets) */
    int64_t kv_heads;    /* [num_key_value_heads] grouped-query attention; 0: heads */
    double rope_theta;   /* [rope_theta] 10000 by default */
    double norm_eps;     /* [rms_norm_eps] 1e-6 by default */
    bool tie_embeddings; /* [tie_word_embeddings] the LM head is the token embedding */
    bool attention_bias; /* [attention_bias; Qwen2: always] q, k, v projections have biases */
    /* [rope_scaling] Llama 3's: factor 0 = none */
    double rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int64_t rope_original_max_positions;
    int rope_type;       /* [rope_scaling.rope_type] 0 default (none), 1 llama3 */
    /* A Hugging Face config.json (or the directory holding it) giving the
     * shape; "" = init_from's config.json when init_from is such a directory. */
    char hf_config[ZRT_PATH_MAX];
    /* [architectures] what export-hf names: "" = LlamaForCausalLM; or
     * MistralForCausalLM, Qwen2ForCausalLM (from hf_config when given there). */
    char architecture[ZRT_NAME_MAX];
    /* The zrt.model keys a configuration file set (bit i: the i-th key of
     * zrt.model's table, config_fields.c): those config.json must agree with,
     * the others it fills. */
    uint64_t given;
    /* zrt.activation_checkpointing or DeepSpeed's activation_checkpointing
     * section: keep each block's input only, recompute the block in backward. */
    bool activation_checkpointing;
    zrt_precision precision; /* the run's mixed_precision (filled by validation: the CUDA matmuls' math) */
} zrt_model_config;

typedef struct {
    zrt_data_type type;
    char path[ZRT_PATH_MAX];  /* text: a file of bytes (byte-level tokens) */
    char train[ZRT_PATH_MAX]; /* tokens: the training shards, a glob ("dir/train_*.bin"; zrt/tokens.h) */
    char val[ZRT_PATH_MAX];   /* tokens: the validation shards, a glob (eval_interval reads them) */
    int64_t seed;             /* the synthetic tasks, text offsets, the tokens' shuffle */
} zrt_data_config;

/* DeepSpeed's activation_checkpointing section (present: checkpointing on). */
typedef struct {
    bool present;
    bool partition_activations;          /* exact: zrt has one model-parallel rank */
    bool cpu_checkpointing;              /* zrt.device cpu only (the activations are in host memory there) */
    bool contiguous_memory_optimization; /* a buffer layout: exact */
    bool synchronize_checkpoint_boundary; /* a device synchronisation: exact */
    bool profile;                        /* refused when true: zrt does not time the checkpoints */
    int64_t number_checkpoints;          /* 0 = not given; else the layer count */
} zrt_activation_checkpointing_config;

typedef struct {
    zrt_model_config model;
    zrt_data_config data;
    int64_t steps;
    int64_t micro_batch_size;          /* per rank, when the DeepSpeed keys give none */
    int64_t seed;
    char checkpoint_dir[ZRT_PATH_MAX];
    int64_t checkpoint_interval;       /* steps; 0 = only at the end */
    int64_t checkpoint_keep;           /* complete steps kept in checkpoint_dir, older removed; 0 = all */
    int64_t eval_interval;             /* steps between validation losses (and one at the end); 0 = none */
    int64_t eval_batches;              /* global batches of the val set each evaluation reads */
    bool checkpoint_best;              /* keep the lowest validation loss's checkpoint in checkpoint_dir/best */
    bool bf16_stochastic_rounding;     /* the bf16 compute copy rounded stochastically (off: stages bitwise equal) */
    char metrics_file[ZRT_PATH_MAX];
    zrt_device_kind device;
    zrt_comm_kind comm_backend;
    double comm_timeout_s;
    char socket_ifname[ZRT_NAME_MAX];
    double heartbeat_interval_s;
    double heartbeat_timeout_s;
    double join_timeout_s;
    int64_t max_restarts;
    int64_t cpu_threads;               /* threads per rank: the CPU optimizer, the model's BLAS; 0 = cores / local ranks */
    char token_file[ZRT_PATH_MAX];
    char tls_cert[ZRT_PATH_MAX];
    char tls_key[ZRT_PATH_MAX];
    char tls_ca[ZRT_PATH_MAX];
    bool tls_require_client_cert;
    uint64_t given;                    /* the zrt keys a configuration file set (bit i: zrt's table's i-th key) */
} zrt_job_config;

typedef struct {
    /* Where it came from. */
    char source_path[ZRT_PATH_MAX];        /* the file given to load         */
    char zrt_config_path[ZRT_PATH_MAX + 16]; /* where zrt: came from if another file (NAME.zrt.yaml) */
    char deepspeed_config_file[ZRT_PATH_MAX]; /* resolved path, "" if none   */
    bool source_is_json;                   /* source_path is a DeepSpeed JSON (messages name its keys) */

    /* Accelerate's launcher settings. num_processes is the total. */
    char compute_environment[ZRT_NAME_MAX];
    zrt_distributed_type distributed_type;
    zrt_precision mixed_precision;
    int64_t num_machines;
    int64_t num_processes;
    int64_t machine_rank;
    char main_process_ip[ZRT_NAME_MAX];
    int64_t main_process_port;              /* 0 = pick a free port */
    zrt_rdzv_backend rdzv_backend;
    bool same_network;
    bool use_cpu;
    char gpu_ids[ZRT_NAME_MAX];             /* "all" or "0,1,..." */
    bool downcast_bf16;
    bool debug;
    char main_training_function[ZRT_NAME_MAX];
    bool zero3_init_flag;
    char deepspeed_multinode_launcher[ZRT_NAME_MAX];
    char deepspeed_hostfile[ZRT_PATH_MAX];

    /* DeepSpeed's engine settings. */
    zrt_zero_config zero;
    zrt_aio_config aio;
    zrt_fp16_config fp16;
    bool bf16_enabled;               /* == (mixed_precision == bf16) once loaded */
    zrt_optimizer_config optimizer;
    zrt_scheduler_config scheduler;
    zrt_batch_config batch_given;    /* as written; 0 = not given or "auto" */
    zrt_batch_config batch;          /* resolved: train = micro * accum * world */
    double gradient_clipping;        /* 0 = off */
    int64_t steps_per_print;
    zrt_monitor_config tensorboard;  /* event files TensorBoard reads */
    zrt_monitor_config csv_monitor;  /* one CSV of every step's metrics */
    zrt_activation_checkpointing_config activation_checkpointing;

    /* zrt's own section. */
    zrt_job_config job;

    /* Warnings found while loading (unknown keys, ignored sections), one per
     * line; "" if none. The library does not print them: the CLI does. */
    char warnings[ZRT_WARNINGS_MAX];
} zrt_config;

/* Fills cfg with the defaults (DeepSpeed's, Accelerate's and zrt's; see
 * docs/config.md). Never fails. */
void zrt_config_init(zrt_config *cfg);

/* Loads an Accelerate YAML (.yaml/.yml) or DeepSpeed JSON (.json; other
 * names are sniffed: '{' first means JSON) into cfg, defaults filled and
 * validated. On error returns ZRT_ERR_CONFIG (or ZRT_ERR_INVALID for NULL
 * arguments) and zrt_last_error() lists every problem found, one per line,
 * each naming the file, the dotted key, the value and what was expected;
 * syntax errors give file:line:column. cfg is then reset to the defaults:
 * never a partly loaded config. */
zrt_status zrt_config_load(zrt_config *cfg, const char *path);
/* The same, with zrt's own settings from zrt_path (the content of a `zrt:`
 * section); zrt_config_load uses NAME.zrt.yaml beside an Accelerate
 * NAME.yaml when there is one, so the YAML stays one Accelerate accepts. */
zrt_status zrt_config_load_with(zrt_config *cfg, const char *path, const char *zrt_path);

/* Re-checks the cross-key rules (divisibility, ranks, offload paths, batch
 * sizes) after a caller changed fields (e.g. CLI overrides). Recomputes the
 * derived batch sizes. ZRT_ERR_CONFIG with a message on failure. */
zrt_status zrt_config_validate(zrt_config *cfg);

/* The resolved config as pretty-printed JSON, in three sections: accelerate,
 * deepspeed and zrt. Returns a malloc'ed string the caller frees, or NULL
 * on allocation failure (zrt_last_error says so). */
char *zrt_config_to_json(const zrt_config *cfg);

/* Nothing to free today; kept so callers need not change when that changes. */
void zrt_config_fini(zrt_config *cfg);

/* The names of enum values as they appear in config files ("bf16", "nvme"). */
const char *zrt_precision_name(zrt_precision p);
const char *zrt_offload_device_name(zrt_offload_device d);

#ifdef __cplusplus
}
#endif
#endif
