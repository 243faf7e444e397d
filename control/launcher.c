/* launcher.c: what `zrt agent` and `zrt launch` share to run ranks: the
 * rank's environment (torchrun's variables plus zrt's) as an envp array,
 * posix_spawn, and the one stop sequence (SIGTERM, a grace period, SIGKILL).
 *
 * Why an envp array and posix_spawn: the agent runs beside the coordinator's
 * thread (and gRPC's), where setenv races with every getenv, and fork after
 * grpc_init leaves gRPC unusable in the child; posix_spawn execs the rank
 * with exactly the environment built here and touches nothing of ours.
 */
#include "control.h"

#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

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

zrt_status zrt_launcher_spawn(char *const *argv, const zrt_launch_env *env, int out_fd, pid_t *pid)
{
    if (!argv || !argv[0] || !env || !env->envp || !pid)
        return zrt_set_error(ZRT_ERR_INVALID, "launcher: nothing to start");
    posix_spawn_file_actions_t actions;
    if (posix_spawn_file_actions_init(&actions) != 0)
        return zrt_set_error(ZRT_ERR_NOMEM, "launcher: cannot prepare to start %s", argv[0]);
    if (out_fd >= 0) {
        posix_spawn_file_actions_adddup2(&actions, out_fd, STDOUT_FILENO);
        posix_spawn_file_actions_adddup2(&actions, out_fd, STDERR_FILENO);
    }
    int err = posix_spawnp(pid, argv[0], &actions, NULL, argv, env->envp);
    posix_spawn_file_actions_destroy(&actions);
    if (err != 0) return zrt_set_error(ZRT_ERR_IO, "launcher: cannot start %s: %s", argv[0], strerror(err));
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
