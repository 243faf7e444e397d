/* cmd_launch.c: `zrt launch`: start this machine's ranks and watch them.
 *
 * Why fork+exec of ourselves: each rank is a fresh `zrt train` (or the
 * program after `--`) with the environment torchrun sets (RANK, LOCAL_RANK,
 * WORLD_SIZE, LOCAL_WORLD_SIZE, GROUP_RANK, MASTER_ADDR, MASTER_PORT) plus
 * ZRT_STORE_DIR/ZRT_STORE_SCOPE: a file store in a private temporary
 * directory for the rendezvous (the control plane replaces it later).
 * Ranks share our stdout/stderr. If any rank fails, the others get SIGTERM,
 * then SIGKILL after 5 s, and launch exits non-zero naming the rank.
 */
#include "control.h"
#include "overrides.h"

#include <pthread.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define GRACE_S 5.0

static const char usage[] =
    "usage: zrt launch --config CFG [options] [-- PROGRAM ARGS...]\n"
    "\n"
    "Starts num_processes / num_machines ranks of `zrt train` on this machine\n"
    "(or PROGRAM, with the torchrun environment), prefixes their output with\n"
    "[rank N] and exits non-zero if any rank fails, after stopping the others.\n"
    "Run the same command on every machine with its --machine_rank: machine 0\n"
    "also runs the coordinator at main_process_ip:main_process_port.\n"
    "\n";

static volatile sig_atomic_t stop_signal;
static void on_signal(int sig) { stop_signal = sig; }

static void set_env_int(const char *name, long long value)
{
    char text[32];
    snprintf(text, sizeof text, "%lld", value);
    setenv(name, text, 1);
}

/* The child: the torchrun environment, then exec. */
static void exec_rank(const zrt_config *cfg, int local, int local_world, const char *store_dir, char **argv)
{
    set_env_int("RANK", cfg->machine_rank * local_world + local);
    set_env_int("LOCAL_RANK", local);
    set_env_int("WORLD_SIZE", cfg->num_processes);
    set_env_int("LOCAL_WORLD_SIZE", local_world);
    set_env_int("GROUP_RANK", cfg->machine_rank);
    setenv("MASTER_ADDR", cfg->main_process_ip[0] ? cfg->main_process_ip : "127.0.0.1", 1);
    set_env_int("MASTER_PORT", cfg->main_process_port ? cfg->main_process_port : 29500);
    setenv("ZRT_STORE_DIR", store_dir, 1);
    setenv("ZRT_STORE_SCOPE", "job/gen0", 1);
    setenv("OPENBLAS_NUM_THREADS", "1", 0);
    execvp(argv[0], argv);
    fprintf(stderr, "zrt launch: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

static void signal_all(pid_t *pids, int n, int sig)
{
    for (int i = 0; i < n; i++)
        if (pids[i] > 0) kill(pids[i], sig);
}

static const char *describe(int status, char *buf, size_t size)
{
    if (WIFEXITED(status)) snprintf(buf, size, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status)) snprintf(buf, size, "was killed by signal %d", WTERMSIG(status));
    else snprintf(buf, size, "ended (status 0x%x)", status);
    return buf;
}

/* Waits for every rank; on the first failure stops the others. */
static int watch(const zrt_config *cfg, pid_t *pids, int n)
{
    int remaining = n, rc = ZRT_EXIT_OK;
    double stop_at = 0; /* when SIGKILL follows the SIGTERM; 0 = not pending */
    bool stopping = false;
    while (remaining > 0) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid < 0 && errno != EINTR) break;
        if (pid > 0) {
            for (int i = 0; i < n; i++) {
                if (pids[i] != pid) continue;
                pids[i] = 0;
                remaining--;
                bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
                bool stopped_by_us = stopping && WIFSIGNALED(status) &&
                                     (WTERMSIG(status) == SIGTERM || WTERMSIG(status) == SIGKILL);
                if (!ok && !stopped_by_us) { /* every failure is named: which came first is not knowable here */
                    char why[64];
                    fprintf(stderr, "zrt launch: rank %lld %s\n", (long long)(cfg->machine_rank * n + i),
                            describe(status, why, sizeof why));
                }
                if (!ok && rc == ZRT_EXIT_OK) {
                    fprintf(stderr, "zrt launch: stopping the other ranks\n");
                    rc = ZRT_EXIT_FAIL;
                    signal_all(pids, n, SIGTERM);
                    stop_at = zrt_now() + GRACE_S;
                    stopping = true;
                }
            }
            continue;
        }
        if (stop_signal && rc == ZRT_EXIT_OK) {
            fprintf(stderr, "zrt launch: signal %d: stopping the ranks\n", (int)stop_signal);
            rc = ZRT_EXIT_FAIL;
            signal_all(pids, n, SIGTERM);
            stop_at = zrt_now() + GRACE_S;
            stopping = true;
        }
        if (stop_at && zrt_now() > stop_at) {
            signal_all(pids, n, SIGKILL);
            stop_at = 0;
        }
        usleep(20000);
    }
    return rc;
}

/* argv for each rank: `zrt train ARGS` or the program after `--`. */
static char **rank_argv(int argc, int full_argc, char **argv, int program_at)
{
    char **out = calloc((size_t)full_argc + 3, sizeof *out);
    if (!out) return NULL;
    int n = 0;
    if (program_at >= 0) {
        for (int i = program_at; i < full_argc; i++) out[n++] = argv[i];
        return out;
    }
    out[n++] = "/proc/self/exe"; /* resolved at exec: this zrt */
    out[n++] = "train";
    for (int i = 1; i < argc; i++) out[n++] = argv[i];
    return out;
}

/* ---- through the control plane ----------------------------------------------------------- */

typedef struct {
    zrt_coordinator_options options;
    pthread_mutex_t lock;
    pthread_cond_t bound;
    char address[300];
    bool done;
    zrt_status status;
    char message[1024];
} embedded_coordinator;

static void coordinator_bound(const char *address, void *arg)
{
    embedded_coordinator *ec = arg;
    pthread_mutex_lock(&ec->lock);
    snprintf(ec->address, sizeof ec->address, "%s", address);
    pthread_cond_broadcast(&ec->bound);
    pthread_mutex_unlock(&ec->lock);
}

static void *coordinator_thread(void *arg)
{
    embedded_coordinator *ec = arg;
    zrt_status status = zrt_coordinator_run(&ec->options);
    pthread_mutex_lock(&ec->lock);
    ec->status = status;
    snprintf(ec->message, sizeof ec->message, "%s", status == ZRT_OK ? "" : zrt_last_error());
    ec->done = true;
    pthread_cond_broadcast(&ec->bound);
    pthread_mutex_unlock(&ec->lock);
    return NULL;
}

/* A token for a one-machine job nobody else has to know: 128 random bits. */
static bool random_token(char *out, size_t size)
{
    unsigned char bytes[16];
    FILE *f = fopen("/dev/urandom", "rb");
    bool ok = f && fread(bytes, 1, sizeof bytes, f) == sizeof bytes;
    if (f) fclose(f);
    for (size_t i = 0; ok && i < sizeof bytes && 2 * i + 2 < size; i++) snprintf(out + 2 * i, 3, "%02x", bytes[i]);
    return ok;
}

/* Machine 0 runs the coordinator (a thread of this process) and an agent;
 * the others an agent only, as `accelerate launch` runs on every machine. */
static int launch_with_control_plane(zrt_config *cfg, const zrt_overrides *o, int argc, char **argv,
                                     char *const *program)
{
    static char token[256];
    bool one_machine = cfg->num_machines == 1;
    if (zrt_control_token(cfg->job.token_file, token, sizeof token) != ZRT_OK) {
        if (!one_machine || !random_token(token, sizeof token)) {
            fprintf(stderr, "zrt launch: %s\n", zrt_last_error());
            return ZRT_EXIT_FAIL;
        }
    }
    if (one_machine && !cfg->main_process_ip[0]) snprintf(cfg->main_process_ip, sizeof cfg->main_process_ip, "127.0.0.1");
    int port = cfg->main_process_port ? (int)cfg->main_process_port : 29500;
    static embedded_coordinator ec;
    char listen[300], coordinator[300];
    /* One machine: the coordinator takes any free port and leaves
     * main_process_port to the ranks (torch's MASTER_PORT); several: it is
     * at main_process_ip:main_process_port and the ranks get port + 1. */
    snprintf(listen, sizeof listen, one_machine ? "127.0.0.1:0" : "0.0.0.0:%d", port);
    snprintf(coordinator, sizeof coordinator, "%s:%d", cfg->main_process_ip, port);
    pthread_t thread;
    bool hosting = cfg->machine_rank == 0;
    if (hosting) {
        ec.options = (zrt_coordinator_options){.cfg = cfg, .listen = listen, .token = token,
                                               .on_listening = coordinator_bound, .arg = &ec};
        pthread_mutex_init(&ec.lock, NULL);
        pthread_cond_init(&ec.bound, NULL);
        pthread_create(&thread, NULL, coordinator_thread, &ec);
        pthread_mutex_lock(&ec.lock);
        while (!ec.address[0] && !ec.done) pthread_cond_wait(&ec.bound, &ec.lock);
        pthread_mutex_unlock(&ec.lock);
        if (ec.done) {
            fprintf(stderr, "zrt launch: coordinator: %s\n", ec.message);
            pthread_join(thread, NULL);
            return ZRT_EXIT_FAIL;
        }
        if (one_machine) snprintf(coordinator, sizeof coordinator, "%s", ec.address);
    }
    char exe[4096];
    const char *self = zrt_cli_self_exe(exe, sizeof exe);
    zrt_agent_options ao = {.cfg = cfg, .config_path = o->config, .coordinator = coordinator, .token = token,
                            .machine_rank = (int)cfg->machine_rank, .self_exe = self, .program = program,
                            .train_args = argv + 1, .master_port = one_machine ? port : port + 1};
    argv[argc] = NULL; /* train_args end where our options end */
    zrt_status status = zrt_agent_run(&ao);
    if (status != ZRT_OK) fprintf(stderr, "zrt launch: %s\n", zrt_last_error());
    if (hosting) {
        pthread_join(thread, NULL);
        if (ec.status != ZRT_OK) fprintf(stderr, "zrt launch: coordinator: %s\n", ec.message);
        if (status == ZRT_OK) status = ec.status;
    }
    return status == ZRT_OK ? ZRT_EXIT_OK : ZRT_EXIT_FAIL;
}

int zrt_cmd_launch(int argc, char **argv)
{
    int program_at = -1, full_argc = argc;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--") == 0) {
            program_at = i + 1;
            argc = i; /* our options end here */
            break;
        }
    zrt_overrides o = {0};
    int parsed = zrt_overrides_parse(argc, argv, "launch", usage, &o);
    if (parsed >= 0) return parsed;
    if (program_at >= full_argc) return zrt_cli_usage_error("launch", "no program after --");
    static zrt_config cfg;
    if (zrt_overrides_load(&o, &cfg) != ZRT_OK) {
        fprintf(stderr, "%s\n", zrt_last_error());
        return ZRT_EXIT_FAIL;
    }
    if (!o.file_store) return launch_with_control_plane(&cfg, &o, argc, argv, program_at >= 0 ? argv + program_at : NULL);
    if (cfg.num_machines > 1) {
        fprintf(stderr, "zrt launch: --file_store works on one machine only (num_machines is %lld)\n",
                (long long)cfg.num_machines);
        return ZRT_EXIT_FAIL;
    }
    int local_world = (int)(cfg.num_processes / cfg.num_machines);
    char store_dir[512];
    const char *tmp = getenv("TMPDIR");
    snprintf(store_dir, sizeof store_dir, "%s/zrt-launch-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    char **child_argv = rank_argv(argc, full_argc, argv, program_at);
    pid_t *pids = calloc((size_t)local_world, sizeof *pids);
    if (!child_argv || !pids || !mkdtemp(store_dir)) {
        fprintf(stderr, "zrt launch: cannot prepare the ranks: %s\n", strerror(errno));
        return ZRT_EXIT_FAIL;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    fflush(stdout);
    for (int i = 0; i < local_world; i++) {
        pids[i] = fork();
        if (pids[i] == 0) exec_rank(&cfg, i, local_world, store_dir, child_argv);
    }
    int rc = watch(&cfg, pids, local_world);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", store_dir);
    if (system(cmd) != 0) fprintf(stderr, "zrt launch: could not remove %s\n", store_dir);
    free(pids);
    free(child_argv);
    return rc;
}
