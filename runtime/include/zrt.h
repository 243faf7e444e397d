/* zrt.h: the public API of libzrt, the ZeRO training runtime.
 *
 * Why one header: a C program linking libzrt needs this file and nothing else.
 * It includes the rest of the API from zrt/ (mem, device, model, data,
 * schedule, engine); together they are everything libzrt.so exports
 * (runtime/libzrt.map lists it; tests/test_exports.sh keeps the two equal).
 * No gRPC, YAML or JSON type appears here; the control plane and the parsers
 * stay behind the library boundary.
 *
 * Conventions (every function below follows them):
 *  - Functions return a zrt_status. ZRT_OK is 0; anything else is an error and
 *    zrt_last_error() then holds a message for this thread saying what failed.
 *  - The library never prints and never exits.
 *  - Structs named in _init/_fini pairs are owned by the caller; _fini accepts
 *    a struct that was only _init'ed or failed to load, and NULL.
 */
#ifndef ZRT_H
#define ZRT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ZRT_VERSION "0.1.0"

/* ---- status ------------------------------------------------------------ */

typedef enum {
    ZRT_OK = 0,
    ZRT_ERR_INVALID,     /* a bad argument from the caller (NULL, range)  */
    ZRT_ERR_CONFIG,      /* a config file or value is wrong               */
    ZRT_ERR_IO,          /* a file or socket operation failed             */
    ZRT_ERR_NOMEM,       /* an allocation failed                          */
    ZRT_ERR_TIMEOUT,     /* a deadline passed                             */
    ZRT_ERR_ABORTED,     /* the operation was aborted on request          */
    ZRT_ERR_PEER,        /* another rank or machine failed                */
    ZRT_ERR_UNSUPPORTED, /* valid, but not available in this build        */
    ZRT_ERR_INTERNAL     /* a bug in zrt                                  */
} zrt_status;

/* The message of the last error on this thread ("" if none). The pointer
 * stays valid until the next zrt call on this thread. Config errors may span
 * several lines, one error per line. */
const char *zrt_last_error(void);

/* A short name for a status: "ok", "invalid argument", ... */
const char *zrt_status_name(zrt_status status);

/* Longest message zrt_last_error() holds, NUL included (longer ones are cut). */
#define ZRT_ERROR_MAX 8192

/* Sets this thread's last error to a printf-style message and returns
 * status, so `return zrt_set_error(ZRT_ERR_IO, "...")` reads naturally. For
 * code that extends zrt (a model, a store backend) as much as for zrt. */
zrt_status zrt_set_error(zrt_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Empties this thread's last error. */
void zrt_clear_error(void);

/* Propagates a failing status (the callee has set the message). */
#define ZRT_CHECK(expr)                                   \
    do {                                                  \
        zrt_status zrt_check_status_ = (expr);            \
        if (zrt_check_status_ != ZRT_OK) return zrt_check_status_; \
    } while (0)

/* The same, but jumps to a cleanup label with `status` set. */
#define ZRT_CHECK_GOTO(expr, label)                       \
    do {                                                  \
        status = (expr);                                  \
        if (status != ZRT_OK) goto label;                 \
    } while (0)

/* ---- clock --------------------------------------------------------------- */

/* Monotonic seconds (CLOCK_MONOTONIC): the one clock of zrt, its tools and tests. */
double zrt_now(void);
/* Sleeps, resuming after signals. */
void zrt_sleep(double seconds);

/* ---- config ------------------------------------------------------------
 * One validated struct loaded from an Accelerate YAML file (which may point
 * at a DeepSpeed JSON with deepspeed_config_file) or from a DeepSpeed JSON
 * file. See docs/config.md for every key, its default and where it comes from.
 * Strings are fixed-size so that a config can be copied with `=`; paths
 * longer than ZRT_PATH_MAX are refused when loading. */

#define ZRT_PATH_MAX 1024
#define ZRT_NAME_MAX 128
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
typedef enum { ZRT_MODEL_MLP, ZRT_MODEL_GPT } zrt_model_type;
typedef enum { ZRT_DATA_SYNTHETIC, ZRT_DATA_TEXT } zrt_data_type;
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
    char init_from[ZRT_PATH_MAX]; /* gpt: start from these weights (safetensors, or a Hugging Face GPT-2 directory) */
    bool allow_tf32;     /* cuda, fp32 training: matmuls on TF32 tensor cores (torch's allow_tf32; off by default) */
    zrt_precision precision; /* the run's mixed_precision (filled by validation: the CUDA matmuls' math) */
} zrt_model_config;

typedef struct {
    zrt_data_type type;
    char path[ZRT_PATH_MAX];  /* text: a file of bytes (byte-level tokens) */
    int64_t seed;
} zrt_data_config;

typedef struct {
    zrt_model_config model;
    zrt_data_config data;
    int64_t steps;
    int64_t micro_batch_size;          /* per rank, when the DeepSpeed keys give none */
    int64_t seed;
    char checkpoint_dir[ZRT_PATH_MAX];
    int64_t checkpoint_interval;       /* steps; 0 = only at the end */
    int64_t checkpoint_keep;           /* complete steps kept in checkpoint_dir, older removed; 0 = all */
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

/* ---- store ---------------------------------------------------------------
 * A small key-value store the ranks of a job share for bootstrap: endpoints,
 * the ncclUniqueId, counters. Keys are scoped: two stores with different
 * scopes (job id and generation, e.g. "job1/gen0") never see each other's
 * keys. Values are bytes. Keys: 1..255 bytes; values up to 1 MiB. */

typedef struct zrt_store zrt_store;

/* A store in a shared directory (created if missing; works across machines on
 * a shared filesystem, like torch's FileStore). set is atomic (write to a
 * temporary name, rename); add is atomic across processes (fcntl lock). */
zrt_status zrt_store_file_create(const char *dir, const char *scope, zrt_store **out);

/* A store backend (the control plane's gRPC store is one): zrt_store_*
 * check their arguments (keys 1..255 bytes, values up to 1 MiB) and call
 * these with the backend's state; contracts as for the calls below. */
typedef struct {
    zrt_status (*set)(void *state, const char *key, const void *value, size_t len);
    zrt_status (*get)(void *state, const char *key, double timeout_s, void **value, size_t *len);
    zrt_status (*add)(void *state, const char *key, int64_t delta, int64_t *result);
    zrt_status (*del)(void *state, const char *key);
    void (*destroy)(void *state); /* frees state */
} zrt_store_ops;

/* A store over a backend; takes ownership of state (destroyed with the
 * store, or at once when this fails). */
zrt_status zrt_store_create(const zrt_store_ops *ops, void *state, zrt_store **out);

zrt_status zrt_store_set(zrt_store *store, const char *key, const void *value, size_t len);
/* Blocks until key exists or timeout_s passes (ZRT_ERR_TIMEOUT naming the
 * key). On success *value is a malloc'ed copy (NUL-terminated for
 * convenience; the NUL is not counted in *len) that the caller frees. */
zrt_status zrt_store_get(zrt_store *store, const char *key, double timeout_s, void **value, size_t *len);
/* Atomically adds delta to the integer stored at key (0 if absent); the new
 * value goes to *result (may be NULL). */
zrt_status zrt_store_add(zrt_store *store, const char *key, int64_t delta, int64_t *result);
/* Removes key; ZRT_OK if it was absent too. */
zrt_status zrt_store_delete(zrt_store *store, const char *key);
void zrt_store_destroy(zrt_store *store);

/* ---- comm ----------------------------------------------------------------
 * Collectives among world_size ranks, as NCCL has them. Every rank must call
 * the same collectives in the same order with the same count and dtype; a
 * mismatch is detected and reported, never a silent wrong result.
 * Backends: "host" (CPU buffers: shared memory between ranks of one machine,
 * TCP between machines, ring algorithms, a fixed reduction order so results
 * are identical run to run) and "nccl" (device buffers; builds with CUDA).
 * Operations are asynchronous: with a non-NULL `request` the call enqueues
 * and returns; zrt_comm_wait() then blocks until done. Operations run in the
 * order they were issued. With request == NULL the call blocks.
 * After any failure (peer death, timeout, abort, mismatch) the communicator
 * is broken: every later operation fails at once with the first error. */

typedef enum { ZRT_DTYPE_F32, ZRT_DTYPE_BF16, ZRT_DTYPE_F16 } zrt_dtype;
typedef enum { ZRT_REDUCE_SUM, ZRT_REDUCE_AVG } zrt_reduce_op;

/* Bytes per element of dtype (4 or 2). */
size_t zrt_dtype_size(zrt_dtype dtype);
const char *zrt_dtype_name(zrt_dtype dtype);

typedef struct zrt_comm zrt_comm;
typedef struct zrt_comm_request zrt_comm_request;

typedef struct {
    int rank;
    int world_size;
    zrt_store *store;          /* for the bootstrap exchange; not owned */
    const char *name;          /* distinguishes communicators in one store ("world") */
    double timeout_s;          /* deadline of each operation and of setup (600) */
    const char *socket_ifname; /* interface for TCP (NULL: $ZRT_SOCKET_IFNAME, else any) */
    bool force_tcp;            /* host backend: TCP even between local ranks */
    int device;                /* nccl backend: the CUDA device index */
    bool stage_through_host;   /* host backend: stream-ordered ops go through pinned host staging (always on a
                                * cuda device's streams -- the hybrid mode; on the cpu device, for tests) */
} zrt_comm_options;

/* Fills defaults: rank 0 of 1, name "world", timeout 600 s. */
void zrt_comm_options_init(zrt_comm_options *options);

/* Creates the communicator with every other rank (blocks until they all
 * arrive or timeout_s passes). backend: "host" or "nccl".
 * ZRT_ERR_UNSUPPORTED for nccl in a build without CUDA. */
zrt_status zrt_comm_create(const char *backend, const zrt_comm_options *options, zrt_comm **out);

/* recv[world_size * count] = every rank's send[count], in rank order.
 * In place when send == recv + rank * count. */
zrt_status zrt_comm_all_gather(zrt_comm *comm, const void *send, void *recv, size_t count, zrt_dtype dtype,
                               zrt_comm_request **request);
/* recv[count] = reduction over ranks of send[rank * count .. +count]
 * (send holds world_size * count). bf16/fp16 accumulate in fp32 and round
 * once. In place when recv == send + rank * count. */
zrt_status zrt_comm_reduce_scatter(zrt_comm *comm, const void *send, void *recv, size_t count, zrt_dtype dtype,
                                   zrt_reduce_op op, zrt_comm_request **request);
/* recv[count] = reduction over ranks of send[count]: reduce_scatter then
 * all_gather (count padded to a multiple of world_size inside), so it is
 * bit for bit that pair. send == recv is allowed. */
zrt_status zrt_comm_all_reduce(zrt_comm *comm, const void *send, void *recv, size_t count, zrt_dtype dtype,
                               zrt_reduce_op op, zrt_comm_request **request);
/* buf[count] on every rank = buf on root. */
zrt_status zrt_comm_broadcast(zrt_comm *comm, void *buf, size_t count, zrt_dtype dtype, int root,
                              zrt_comm_request **request);
/* Blocks until every rank has called it. */
zrt_status zrt_comm_barrier(zrt_comm *comm);
/* Waits for a request and frees it; returns the operation's status. */
zrt_status zrt_comm_wait(zrt_comm_request *request);
/* Stream-ordered forms, for device buffers (what the engine uses): the
 * operation runs after the work enqueued on `stream` before the call, and
 * work enqueued on it later waits for the operation -- NCCL's model. On the
 * cpu device with the host backend, the stream's thread runs the operation
 * (through the communicator's worker); a failure fails the stream, and
 * zrt_stream_synchronize returns it. The nccl backend enqueues on the CUDA
 * stream itself. Every rank must issue the same operations in the same
 * order, as above; use one stream per communicator (or order them). */
typedef struct zrt_stream zrt_stream;
zrt_status zrt_comm_all_gather_on(zrt_comm *comm, const void *send, void *recv, size_t count, zrt_dtype dtype,
                                  zrt_stream *stream);
zrt_status zrt_comm_reduce_scatter_on(zrt_comm *comm, const void *send, void *recv, size_t count, zrt_dtype dtype,
                                      zrt_reduce_op op, zrt_stream *stream);
zrt_status zrt_comm_all_reduce_on(zrt_comm *comm, const void *send, void *recv, size_t count, zrt_dtype dtype,
                                  zrt_reduce_op op, zrt_stream *stream);
zrt_status zrt_comm_broadcast_on(zrt_comm *comm, void *buf, size_t count, zrt_dtype dtype, int root,
                                 zrt_stream *stream);
/* The communicator's first failure (ZRT_OK while it works), with its message. */
zrt_status zrt_comm_status(zrt_comm *comm);
/* Makes every pending and future operation fail with ZRT_ERR_ABORTED; a
 * waiting operation returns within a second. Safe from any thread, and
 * from a signal handler's thread while another thread waits. */
void zrt_comm_abort(zrt_comm *comm);
int zrt_comm_rank(const zrt_comm *comm);
int zrt_comm_world_size(const zrt_comm *comm);
/* Waits for queued operations, then frees everything (also the shared
 * memory and sockets). NULL is fine. */
void zrt_comm_destroy(zrt_comm *comm);

#ifdef __cplusplus
}
#endif

#include "zrt/mem.h"
#include "zrt/device.h"
#include "zrt/model.h"
#include "zrt/data.h"
#include "zrt/schedule.h"
#include "zrt/engine.h"
#include "zrt/offload.h"
#include "zrt/shards.h"
#include "zrt/output.h"

#endif /* ZRT_H */
