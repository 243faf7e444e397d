/* control.h: zrt's control plane as the tools see it: the coordinator, the
 * agent, the status query and the rank-side key-value store over gRPC.
 *
 * Why this boundary: no gRPC or protobuf type appears here (nor in zrt.h);
 * control/ knows nothing of ZeRO, and the runtime knows nothing of gRPC --
 * ranks get a zrt_store whose backend happens to be the coordinator.
 * All functions return a zrt_status with zrt_last_error() set, never exit.
 * Ranks are started by fork and exec with nothing but system calls between
 * (launcher.c), so gRPC's state never matters in the child.
 */
#ifndef ZRT_CONTROL_H
#define ZRT_CONTROL_H

#include "zrt.h"

#include <signal.h>

#include <sys/types.h>

/* control/ is built with hidden visibility; what this header declares is its
 * whole exported API (tests/test_exports.sh checks libzrt_control.a). */
#pragma GCC visibility push(default)

/* The metadata key that carries the job token on every call. */
#define ZRT_TOKEN_METADATA "x-zrt-token"
/* torch's default MASTER_PORT, and the coordinator's when the config has none. */
#define ZRT_DEFAULT_PORT 29500
/* How long ranks get between SIGTERM and SIGKILL when a job stops. */
#define ZRT_STOP_GRACE_S 5.0

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
    volatile sig_atomic_t *stop; /* may be NULL; set (to a signal number) by a handler: stop the ranks, return */
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

/* ---- starting and stopping ranks (launcher.c, shared by zrt agent and zrt launch) ---- */

/* A variable of a rank's environment: value NULL removes it; keep_existing
 * sets it only when our environment has none. */
typedef struct {
    const char *name;
    const char *value;
    bool keep_existing;
} zrt_env_var;

#define ZRT_LAUNCH_MAX_VARS 16

/* What a rank gets: torchrun's RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE,
 * GROUP_RANK, MASTER_ADDR, MASTER_PORT (0: ZRT_DEFAULT_PORT), and
 * OPENBLAS_NUM_THREADS=1 unless set; then `extra` (zrt's own). */
typedef struct {
    int rank, local_rank, world_size, local_world_size, group_rank;
    const char *master_addr; /* NULL: 127.0.0.1 */
    int master_port;
    const zrt_env_var *extra;
    int n_extra;             /* at most ZRT_LAUNCH_MAX_VARS */
} zrt_rank_env;

/* An envp array (our environment, less what it replaces, plus its own) and
 * the strings it owns. */
typedef struct {
    char **envp;
    char *strings;
} zrt_launch_env;

/* Builds a rank's environment; free it with zrt_launcher_env_free. */
zrt_status zrt_launcher_env(const zrt_rank_env *rank, zrt_launch_env *out);
/* Our environment less what vars replace or remove, then vars (any process). */
zrt_status zrt_launcher_env_vars(const zrt_env_var *vars, int n_vars, zrt_launch_env *out);
void zrt_launcher_env_free(zrt_launch_env *env);
/* Starts argv (searched in PATH) with env; out_fd >= 0 becomes its stdout and
 * stderr. The child gets SIGKILL when the calling thread ends (PR_SET_PDEATHSIG:
 * call it from the thread that lives as long as the ranks, the main one). */
zrt_status zrt_launcher_spawn(char *const *argv, const zrt_launch_env *env, int out_fd, pid_t *pid);
/* Binds host:*port (an IPv4 address; port 0: any) and lets it go: "address
 * in use" in one line when it is taken, else *port is the port it got.
 * Names and IPv6 addresses are not probed (ZRT_OK, *port unchanged). */
zrt_status zrt_launcher_probe_port(const char *host, int *port);
/* "SIGKILL" (or "signal N"), into buf. */
const char *zrt_signal_name(int sig, char *buf, size_t size);
/* "exited with status N", or "was killed by SIGNAME" when signal > 0. */
const char *zrt_launcher_describe(int exit_status, int signal, char *buf, size_t size);
/* The stop sequence: SIGTERM to every pid > 0, SIGKILL grace_s later to what
 * still runs; reaps each (pids[i] = 0, statuses[i] = its wait status) and
 * calls idle(arg) between looks (or sleeps 20 ms when idle is NULL). */
void zrt_launcher_stop(pid_t *pids, int *statuses, int n, double grace_s, void (*idle)(void *arg), void *arg);
/* Whether a wait status is the stop sequence's doing (SIGTERM or SIGKILL). */
bool zrt_launcher_stopped_by_us(int status);

/* The job token: token_file if given, else $ZRT_JOB_TOKEN; into out. */
zrt_status zrt_control_token(const char *token_file, char *out, size_t size);
/* token_file.c: a one-machine launch's token, in a file only this user can
 * read ($XDG_RUNTIME_DIR/zrt/HOST_PORT.token or /tmp/zrt-UID/...), for
 * `zrt status HOST:PORT` on the same machine. */
zrt_status zrt_control_token_path(const char *address, char *out, size_t size);
zrt_status zrt_control_token_save(const char *address, const char *token, char *path, size_t size);
zrt_status zrt_control_token_load(const char *address, char *token, size_t size);
/* The token files' directory (it must exist and be private). */
zrt_status zrt_control_token_dir(char *out, size_t size);

/* ---- job_files.c: one job per checkpoint_dir, and what killed launches left ---- */

/* Takes DIR/.zrt-job.lock (making DIR, not its parents) for as long as this process lives or
 * *fd stays open; refused, naming the holder (pid, host, start time), while
 * another live process has it. */
zrt_status zrt_job_lock(const char *dir, const char *who, int *fd);
/* Whether pid is a process that no longer exists (not ours, not unknowable). */
bool zrt_launcher_pid_gone(int pid);
/* rm -rf path. */
zrt_status zrt_launcher_remove_tree(const char *path);
/* Removes tmpdir/zrt-launch-PID-* and tmpdir/zrt-progress-PID of dead PIDs;
 * the paths removed are appended to report (comma-separated). */
void zrt_launcher_clean_leftovers(const char *tmpdir, char *report, size_t size);
/* Removes the token files (zrt_control_token_dir) of launches that are gone. */
void zrt_launcher_clean_tokens(char *report, size_t size);

#pragma GCC visibility pop

#endif
