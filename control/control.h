/* control.h: zrt's control plane as the tools see it: the coordinator, the
 * agent, the status query and the rank-side key-value store over gRPC.
 *
 * Why this boundary: no gRPC or protobuf type appears here (nor in zrt.h);
 * control/ knows nothing of ZeRO, and the runtime knows nothing of gRPC --
 * ranks get a zrt_store whose backend happens to be the coordinator.
 * All functions return a zrt_status with zrt_last_error() set, never exit.
 * Processes are started with posix_spawn, never with fork after grpc_init.
 */
#ifndef ZRT_CONTROL_H
#define ZRT_CONTROL_H

#include "zrt.h"

/* control/ is built with hidden visibility; what this header declares is its
 * whole exported API (tests/test_exports.sh checks libzrt_control.a). */
#pragma GCC visibility push(default)

/* The metadata key that carries the job token on every call. */
#define ZRT_TOKEN_METADATA "x-zrt-token"

typedef struct {
    const zrt_config *cfg;
    const char *listen;          /* "HOST:PORT"; port 0 picks one */
    const char *token;           /* required on every call */
    /* Called once the port is bound (may be NULL): the address to print. */
    void (*on_listening)(const char *address, void *arg);
    void *arg;
} zrt_coordinator_options;

/* Runs a coordinator until the job ends: ZRT_OK when every rank finished
 * (or Shutdown was called), ZRT_ERR_PEER when the job was aborted (a rank
 * failed, a machine died, rendezvous timed out), with the reason. */
zrt_status zrt_coordinator_run(const zrt_coordinator_options *options);

typedef struct {
    const zrt_config *cfg;
    const char *config_path;     /* handed to `zrt train` */
    const char *coordinator;     /* "HOST:PORT" */
    const char *token;
    int machine_rank;            /* -1: assigned by the coordinator */
    const char *self_exe;        /* the zrt binary ranks run */
    char *const *program;        /* NULL: `zrt train --config CFG`; else argv */
    char *const *train_args;     /* extra arguments for `zrt train` (overrides) */
    int master_port;             /* MASTER_PORT for the ranks (0: main_process_port or 29500) */
} zrt_agent_options;

/* Joins, starts this machine's ranks, heartbeats, and stops them when the
 * coordinator says so or cannot be reached. ZRT_OK when the job finished. */
zrt_status zrt_agent_run(const zrt_agent_options *options);

/* The coordinator's Status reply as JSON (malloc'ed; the caller frees).
 * tls: a config whose zrt.tls secures the call, or NULL for plaintext. */
zrt_status zrt_control_status(const char *coordinator, const char *token, const zrt_config *tls, double timeout_s,
                              char **json);

/* Ends the job: every agent is told to stop its ranks (reason in `zrt status`). */
zrt_status zrt_control_shutdown(const char *coordinator, const char *token, const zrt_config *tls, const char *reason,
                                double timeout_s);

/* A zrt_store whose keys live in the coordinator (KvSet/KvGet/KvAdd);
 * tls as for zrt_control_status. */
zrt_status zrt_store_grpc_create(const char *coordinator, const char *token, const char *scope, const zrt_config *tls,
                                 zrt_store **out);

/* `zrt bench control`: a coordinator process (self = the zrt binary) and
 * `agents` client threads; prints one row (or a JSON object). */
zrt_status zrt_bench_control(int agents, double seconds, const char *self, bool json);

/* Fuzzing (fuzz/fuzz_control.c): data[0] picks a method, the rest is its
 * request; decoded and handled by the real handlers, without gRPC. */
int zrt_coordinator_fuzz(const uint8_t *data, size_t size);

/* The job token: token_file if given, else $ZRT_JOB_TOKEN; into out. */
zrt_status zrt_control_token(const char *token_file, char *out, size_t size);

#pragma GCC visibility pop

#endif
