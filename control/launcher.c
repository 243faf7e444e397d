/* launcher.c: what `zrt agent` and `zrt launch` share to run ranks: the
 * rank's environment (torchrun's variables plus zrt's) as an envp array,
 * starting a rank that dies with its launcher, and the one stop sequence
 * (SIGTERM, a grace period, SIGKILL).
 *
 * Why an envp array: the agent runs beside the coordinator's thread (and
 * gRPC's), where setenv races with every getenv. Why fork, then only system
 * calls until exec: the child must ask the kernel to kill it when its
 * launcher dies (PR_SET_PDEATHSIG, which posix_spawn cannot do) and check
 * that the launcher did not die before it asked; between fork and exec it
 * touches no lock, no malloc and nothing of gRPC's. An exec that fails sends
 * its errno back through a close-on-exec pipe.
 */
#include "control.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Whether entry ("NAME=value") sets the variable name. */
static bool sets(const char *entry, const char *name)
{
    size_t n = strlen(name);
    return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

static bool in_environ(const char *name)
{
    for (char **e = environ; *e; e++)
        if (sets(*e, name)) return true;
    return false;
}

zrt_status zrt_launcher_env_vars(const zrt_env_var *vars, int n_vars, zrt_launch_env *out)
{
    memset(out, 0, sizeof *out);
    int n_env = 0;
    size_t bytes = 1;
    while (environ[n_env]) n_env++;
    for (int v = 0; v < n_vars; v++)
        if (vars[v].value) bytes += strlen(vars[v].name) + strlen(vars[v].value) + 2;
    out->envp = calloc((size_t)(n_env + n_vars + 1), sizeof *out->envp);
    out->strings = malloc(bytes);
    if (!out->envp || !out->strings) {
        zrt_launcher_env_free(out);
        return zrt_set_error(ZRT_ERR_NOMEM, "launcher: out of memory for a rank's environment");
    }
    int n = 0;
    for (int i = 0; i < n_env; i++) {
        bool replaced = false;
        for (int v = 0; v < n_vars && !replaced; v++) replaced = sets(environ[i], vars[v].name) && !vars[v].keep_existing;
        if (!replaced) out->envp[n++] = environ[i];
    }
    char *at = out->strings;
    for (int v = 0; v < n_vars; v++) {
        if (!vars[v].value || (vars[v].keep_existing && in_environ(vars[v].name))) continue; /* NULL: removed */
        out->envp[n++] = at;
        at += sprintf(at, "%s=%s", vars[v].name, vars[v].value) + 1;
    }
    out->envp[n] = NULL;
    return ZRT_OK;
}

zrt_status zrt_launcher_env(const zrt_rank_env *r, zrt_launch_env *out)
{
    memset(out, 0, sizeof *out);
    if (r->n_extra < 0 || r->n_extra > ZRT_LAUNCH_MAX_VARS || (r->n_extra && !r->extra))
        return zrt_set_error(ZRT_ERR_INVALID, "launcher: %d extra variables (at most %d)", r->n_extra,
                             ZRT_LAUNCH_MAX_VARS);
    char numbers[6][24];
    const int values[6] = {r->rank, r->local_rank, r->world_size, r->local_world_size, r->group_rank,
                           r->master_port ? r->master_port : ZRT_DEFAULT_PORT};
    for (int i = 0; i < 6; i++) snprintf(numbers[i], sizeof numbers[i], "%d", values[i]);
    zrt_env_var vars[8 + ZRT_LAUNCH_MAX_VARS] = {
        {"RANK", numbers[0], false},
        {"LOCAL_RANK", numbers[1], false},
        {"WORLD_SIZE", numbers[2], false},
        {"LOCAL_WORLD_SIZE", numbers[3], false},
        {"GROUP_RANK", numbers[4], false},
        {"MASTER_ADDR", r->master_addr && r->master_addr[0] ? r->master_addr : "127.0.0.1", false},
        {"MASTER_PORT", numbers[5], false},
        {"OPENBLAS_NUM_THREADS", "1", true}, /* one core per rank unless the user says otherwise */
    };
    for (int i = 0; i < r->n_extra; i++) vars[8 + i] = r->extra[i];
    return zrt_launcher_env_vars(vars, 8 + r->n_extra, out);
}

void zrt_launcher_env_free(zrt_launch_env *env)
{
    if (!env) return;
    free(env->envp);
    free(env->strings);
    memset(env, 0, sizeof *env);
}

/* The child between fork and exec: system calls only. */
static void exec_rank(char *const *argv, char *const *envp, int out_fd, pid_t launcher, int report_fd)
{
    int err = 0;
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != launcher) _exit(127); /* it died before we asked */
    if (out_fd >= 0 && (dup2(out_fd, STDOUT_FILENO) < 0 || dup2(out_fd, STDERR_FILENO) < 0)) err = errno;
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (!err) execvpe(argv[0], argv, envp);
    err = err ? err : errno;
    if (write(report_fd, &err, sizeof err) < 0) _exit(127);
    _exit(127);
}

zrt_status zrt_launcher_spawn(char *const *argv, const zrt_launch_env *env, int out_fd, pid_t *pid)
{
    if (!argv || !argv[0] || !env || !env->envp || !pid)
        return zrt_set_error(ZRT_ERR_INVALID, "launcher: nothing to start");
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) return zrt_set_error(ZRT_ERR_IO, "launcher: pipe: %s", strerror(errno));
    pid_t launcher = getpid(), child = fork();
    if (child == 0) exec_rank(argv, env->envp, out_fd, launcher, report[1]);
    close(report[1]);
    int err = child < 0 ? errno : 0;
    ssize_t got = child < 0 ? 0 : read(report[0], &err, sizeof err); /* 0 bytes: the exec happened */
    close(report[0]);
    if (child > 0 && got > 0) waitpid(child, NULL, 0);
    if (child < 0 || got > 0) return zrt_set_error(ZRT_ERR_IO, "launcher: cannot start %s: %s", argv[0], strerror(err));
    *pid = child;
    return ZRT_OK;
}

/* Reaps whichever of pids has ended (pids[i] becomes 0, statuses[i] its wait status); the number left. */
static int reap(pid_t *pids, int *statuses, int n)
{
    int left = 0;
    for (int i = 0; i < n; i++) {
        int status;
        if (pids[i] > 0 && waitpid(pids[i], &status, WNOHANG) == pids[i]) {
            statuses[i] = status;
            pids[i] = 0;
        }
        left += pids[i] > 0;
    }
    return left;
}

void zrt_launcher_stop(pid_t *pids, int *statuses, int n, double grace_s, void (*idle)(void *arg), void *arg)
{
    for (int i = 0; i < n; i++)
        if (pids[i] > 0) kill(pids[i], SIGTERM);
    double deadline = zrt_now() + grace_s;
    bool killed = false;
    while (reap(pids, statuses, n) > 0) {
        if (!killed && zrt_now() > deadline) {
            for (int i = 0; i < n; i++)
                if (pids[i] > 0) kill(pids[i], SIGKILL);
            killed = true;
        }
        if (idle) idle(arg);
        else zrt_sleep(0.02);
    }
}

bool zrt_launcher_stopped_by_us(int status)
{
    return WIFSIGNALED(status) && (WTERMSIG(status) == SIGTERM || WTERMSIG(status) == SIGKILL);
}

const char *zrt_signal_name(int sig, char *buf, size_t size)
{
    const char *abbrev = sigabbrev_np(sig);
    if (abbrev) snprintf(buf, size, "SIG%s", abbrev);
    else snprintf(buf, size, "signal %d", sig);
    return buf;
}

const char *zrt_launcher_describe(int exit_status, int signal, char *buf, size_t size)
{
    char name[32];
    if (signal > 0) snprintf(buf, size, "was killed by %s", zrt_signal_name(signal, name, sizeof name));
    else snprintf(buf, size, "exited with status %d", exit_status);
    return buf;
}

zrt_status zrt_launcher_probe_port(const char *host, int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)*port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) return ZRT_OK; /* a name or IPv6: gRPC says */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0) return zrt_set_error(ZRT_ERR_IO, "socket: %s", strerror(errno));
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one); /* as gRPC's listener: TIME_WAIT is no obstacle */
    socklen_t len = sizeof a;
    int err = bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0 ? 0 : errno;
    close(fd);
    if (err) return zrt_set_error(ZRT_ERR_IO, "cannot listen on %s:%d: %s", host, *port,
                                  err == EADDRINUSE ? "address in use (another job? choose another main_process_port)"
                                                    : strerror(err));
    *port = ntohs(a.sin_port);
    return ZRT_OK;
}
