/* cmd_launch.c: `zrt launch`: start this machine's ranks and watch them.
 *
 * Through the control plane (the default): machine 0 runs the coordinator
 * in a thread plus an agent, the other machines an agent (control/agent.c).
 * With --file_store, one machine: each rank is a fresh `zrt train` (or the
 * program after `--`) started by the launcher (control/launcher.c: the
 * torchrun environment as an envp array; ranks die with us) with
 * ZRT_STORE_DIR/ZRT_STORE_SCOPE naming a file store in a private temporary
 * directory. Ranks share our stdout/stderr. If any rank fails, the others
 * get the launcher's stop sequence (SIGTERM, SIGKILL after
 * ZRT_STOP_GRACE_S) and launch exits non-zero naming every failed rank.
 *
 * Before anything starts, on both paths: what killed launches left is
 * removed (their pid is dead), main_process_port 0 becomes a free port
 * (the ranks' MASTER_PORT: two jobs never share a rendezvous), and machine 0
 * locks zrt.checkpoint_dir, so a second job there is refused naming the first.
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

/* As torchrun: Ctrl-C, SIGTERM or a closed terminal stops the ranks, then the job. */
static void catch_signals(void)
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

/* Starts local rank `local` of a file-store job. */
static zrt_status start_rank(const zrt_config *cfg, int local, int local_world, const char *store_dir, char **argv,
                             pid_t *pid)
{
    zrt_env_var extra[] = {{"ZRT_STORE_DIR", store_dir, false}, {"ZRT_STORE_SCOPE", "job/gen0", false}};
    zrt_rank_env r = {.rank = (int)cfg->machine_rank * local_world + local, .local_rank = local,
                      .world_size = (int)cfg->num_processes, .local_world_size = local_world,
                      .group_rank = (int)cfg->machine_rank, .master_addr = cfg->main_process_ip,
                      .master_port = (int)cfg->main_process_port, .extra = extra, .n_extra = 2};
    zrt_launch_env env;
    ZRT_CHECK(zrt_launcher_env(&r, &env));
    zrt_status status = zrt_launcher_spawn(argv, &env, -1, pid);
    zrt_launcher_env_free(&env);
    return status;
}

/* Names a rank that failed on its own (not by our stop sequence). */
static void name_failure(const zrt_config *cfg, int n, int local, int status, bool stopping)
{
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return;
    if (stopping && zrt_launcher_stopped_by_us(status)) return;
    char why[64];
    zrt_launcher_describe(WIFEXITED(status) ? WEXITSTATUS(status) : 0, WIFSIGNALED(status) ? WTERMSIG(status) : 0, why,
                          sizeof why);
    fprintf(stderr, "zrt launch: rank %lld %s\n", (long long)(cfg->machine_rank * n + local), why);
}

/* Reaps every rank that has ended (all of them: a rank that died first is
 * named even when its peer's failure is noticed first); false if one failed. */
static bool reap_ended(const zrt_config *cfg, pid_t *pids, int n, int *remaining)
{
    bool ok = true;
    int status;
    for (pid_t pid; (pid = waitpid(-1, &status, WNOHANG)) > 0;)
        for (int i = 0; i < n; i++) {
            if (pids[i] != pid) continue;
            pids[i] = 0;
            (*remaining)--;
            name_failure(cfg, n, i, status, false);
            ok &= WIFEXITED(status) && WEXITSTATUS(status) == 0;
        }
    return ok;
}

/* Waits for every rank; on the first failure (or a signal) stops the others. */
static int watch(const zrt_config *cfg, pid_t *pids, int *statuses, int n)
{
    int remaining = n, rc = ZRT_EXIT_OK;
    while (remaining > 0 && rc == ZRT_EXIT_OK) {
        if (!reap_ended(cfg, pids, n, &remaining)) {
            if (remaining > 0) fprintf(stderr, "zrt launch: stopping the other ranks\n");
            rc = ZRT_EXIT_FAIL;
        } else if (stop_signal) {
            char name[32];
            fprintf(stderr, "zrt launch: %s: stopping the ranks\n", zrt_signal_name(stop_signal, name, sizeof name));
            rc = ZRT_EXIT_FAIL;
        } else if (remaining > 0) {
            usleep(20000);
        }
    }
    if (remaining > 0) { /* every failure is named: which came first is not knowable here */
        bool running[n];
        for (int i = 0; i < n; i++) running[i] = pids[i] > 0;
        zrt_launcher_stop(pids, statuses, n, ZRT_STOP_GRACE_S, NULL, NULL);
        for (int i = 0; i < n; i++)
            if (running[i]) name_failure(cfg, n, i, statuses[i], true);
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
    static char exe[4096];
    out[n++] = (char *)zrt_cli_self_exe(exe, sizeof exe);
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
    bool one_machine = cfg->num_machines == 1, random = false;
    if (zrt_control_token(cfg->job.token_file, token, sizeof token) != ZRT_OK) {
        if (!one_machine || !(random = random_token(token, sizeof token))) {
            fprintf(stderr, "zrt launch: %s\n", zrt_last_error());
            return ZRT_EXIT_FAIL;
        }
    }
    if (one_machine && !cfg->main_process_ip[0]) snprintf(cfg->main_process_ip, sizeof cfg->main_process_ip, "127.0.0.1");
    int port = (int)cfg->main_process_port; /* prepare() made 0 a free port */
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
        if (pthread_create(&thread, NULL, coordinator_thread, &ec) != 0) {
            fprintf(stderr, "zrt launch: cannot start the coordinator's thread\n");
            return ZRT_EXIT_FAIL;
        }
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
    char token_path[1024] = "";
    if (random && zrt_control_token_save(coordinator, token, token_path, sizeof token_path) == ZRT_OK)
        printf("zrt launch: `zrt status %s` shows this job (its token: %s, this user only)\n", coordinator, token_path);
    else if (random)
        fprintf(stderr, "zrt launch: warning: %s; zrt status cannot reach this job\n", zrt_last_error());
    fflush(stdout);
    char exe[4096];
    const char *self = zrt_cli_self_exe(exe, sizeof exe);
    zrt_agent_options ao = {.cfg = cfg, .config_path = o->config, .coordinator = coordinator, .token = token,
                            .machine_rank = (int)cfg->machine_rank, .self_exe = self, .program = program,
                            .train_args = argv + 1, .master_port = one_machine ? port : port + 1, .stop = &stop_signal};
    argv[argc] = NULL; /* train_args end where our options end */
    catch_signals(); /* the agent leaves the job, which ends it */
    zrt_status status = zrt_agent_run(&ao);
    if (status != ZRT_OK) fprintf(stderr, "zrt launch: %s\n", zrt_last_error());
    if (hosting) {
        pthread_join(thread, NULL);
        if (ec.status != ZRT_OK) fprintf(stderr, "zrt launch: coordinator: %s\n", ec.message);
        if (status == ZRT_OK) status = ec.status;
    }
    if (token_path[0]) unlink(token_path);
    return status == ZRT_OK ? ZRT_EXIT_OK : ZRT_EXIT_FAIL;
}

/* main_process_port 0: a port free now, for the ranks' rendezvous (torch's
 * MASTER_PORT); several machines must agree on it, so there it is refused. */
static zrt_status choose_port(zrt_config *cfg)
{
    if (cfg->main_process_port != 0) return ZRT_OK;
    if (cfg->num_machines > 1)
        return zrt_set_error(ZRT_ERR_CONFIG, "main_process_port 0 (any free port) works on one machine only: the other "
                             "machines must know the port; give one");
    int port = 0;
    ZRT_CHECK(zrt_launcher_probe_port("0.0.0.0", &port));
    cfg->main_process_port = port;
    return ZRT_OK;
}

/* Before anything starts: leftovers, the port, the checkpoint_dir lock (held until we exit). */
static zrt_status prepare(zrt_config *cfg)
{
    char removed[2048] = "";
    const char *tmp = getenv("TMPDIR");
    zrt_launcher_clean_leftovers(tmp && *tmp ? tmp : "/tmp", removed, sizeof removed);
    zrt_launcher_clean_tokens(removed, sizeof removed);
    if (removed[0]) fprintf(stderr, "zrt launch: removed what a killed job left: %s\n", removed);
    ZRT_CHECK(choose_port(cfg));
    int lock_fd;
    if (cfg->machine_rank == 0 && cfg->job.checkpoint_dir[0]) {
        ZRT_CHECK(zrt_job_lock(cfg->job.checkpoint_dir, "zrt launch", &lock_fd));
        setenv("ZRT_JOB_LOCKED", "1", 1); /* the ranks' zrt train: the directory is this launch's already */
    }
    return ZRT_OK;
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
    if (prepare(&cfg) != ZRT_OK) {
        fprintf(stderr, "zrt launch: %s\n", zrt_last_error());
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
    snprintf(store_dir, sizeof store_dir, "%s/zrt-launch-%d-XXXXXX", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    char **child_argv = rank_argv(argc, full_argc, argv, program_at);
    pid_t *pids = calloc((size_t)local_world, sizeof *pids);
    int *statuses = calloc((size_t)local_world, sizeof *statuses);
    if (!child_argv || !pids || !statuses || !mkdtemp(store_dir)) {
        fprintf(stderr, "zrt launch: cannot prepare the ranks: %s\n", strerror(errno));
        return ZRT_EXIT_FAIL;
    }
    catch_signals();
    fflush(stdout);
    int rc = ZRT_EXIT_OK;
    for (int i = 0; i < local_world && rc == ZRT_EXIT_OK; i++)
        if (start_rank(&cfg, i, local_world, store_dir, child_argv, &pids[i]) != ZRT_OK) {
            fprintf(stderr, "zrt launch: %s\n", zrt_last_error());
            rc = ZRT_EXIT_FAIL;
        }
    if (rc == ZRT_EXIT_OK) rc = watch(&cfg, pids, statuses, local_world);
    else zrt_launcher_stop(pids, statuses, local_world, ZRT_STOP_GRACE_S, NULL, NULL);
    if (zrt_launcher_remove_tree(store_dir) != ZRT_OK) fprintf(stderr, "zrt launch: %s\n", zrt_last_error());
    free(pids);
    free(statuses);
    free(child_argv);
    return rc;
}
