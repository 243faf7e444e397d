/* agent.c: one per machine: joins the coordinator, starts this machine's
 * ranks, forwards their output as "[rank N] ...", heartbeats, and stops the
 * ranks (SIGTERM, then SIGKILL after a grace period) when the coordinator
 * says abort or cannot be reached for heartbeat_timeout_s.
 *
 * Ranks start through launcher.c: gRPC is initialised before they start (the
 * join says which ranks they are), so the child does nothing but system
 * calls between fork and exec, and the rank's environment is built as an
 * envp array, never with setenv beside gRPC's threads. Ranks get the environment
 * torchrun sets plus ZRT_COORDINATOR, ZRT_GENERATION, ZRT_JOB_TOKEN,
 * ZRT_STORE_SCOPE; a rank dies with its agent (launcher.c: no orphans).
 */
#include "rpc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_LOCAL 256
#define WAIT_NOTE_S 5.0 /* a waiting Join says who it waits for this often */

typedef struct {
    pid_t pid;
    int rank;
    int out_fd;          /* read end of the rank's stdout+stderr pipe, -1 once closed */
    char line[4096];
    size_t line_len;
    bool running;
    bool live;           /* the terminal shows this rank's in-place progress line */
    int exit_status;     /* 128 + signal when killed */
    int signal;          /* the signal that killed it, 0 if none */
} rank_proc;

typedef struct {
    const zrt_agent_options *o;
    zrt_rpc_client client;
    int machine_rank, rank_offset, world;
    int64_t generation;
    char master_addr[256];
    rank_proc ranks[MAX_LOCAL];
    int n_ranks;
    char progress[300];  /* local rank 0 writes "step loss" here (ZRT_PROGRESS_FILE) */
    double next_note;    /* when a waiting Join next says who it waits for (s) */
} agent;

/* Tells the coordinator we are gone (a signal), so it need not wait out our heartbeats. */
static void leave(agent *a, int machine_rank, const char *signal_name)
{
    char reason[64];
    snprintf(reason, sizeof reason, "its agent got %s", signal_name);
    Zrt__V1__LeaveRequest req = ZRT__V1__LEAVE_REQUEST__INIT;
    req.machine_rank = machine_rank;
    req.reason = reason;
    ProtobufCMessage *reply = NULL;
    if (zrt_rpc_call(&a->client, "Leave", &req.base, &zrt__v1__leave_reply__descriptor, 1, false, &reply, NULL) == ZRT_OK)
        protobuf_c_message_free_unpacked(reply, NULL);
}

/* Who a Join still waits for, from the coordinator's Status: the machine
 * ranks not joined yet, or the coordinator itself when it does not answer. */
static void waiting_for(agent *a, char *who, size_t size)
{
    Zrt__V1__StatusRequest req = ZRT__V1__STATUS_REQUEST__INIT;
    ProtobufCMessage *reply = NULL;
    if (zrt_rpc_call(&a->client, "Status", &req.base, &zrt__v1__status_reply__descriptor, 2, false, &reply, NULL) != ZRT_OK) {
        snprintf(who, size, "the coordinator at %s", a->o->coordinator);
        return;
    }
    Zrt__V1__StatusReply *r = (Zrt__V1__StatusReply *)reply;
    size_t used = (size_t)snprintf(who, size, "machine_rank(s)");
    for (int m = 0; m < r->expected_machines && used < size; m++) {
        bool joined = false;
        for (size_t i = 0; i < r->n_machines; i++) joined |= r->machines[i]->machine_rank == m;
        if (!joined) used += (size_t)snprintf(who + used, size - used, " %d", m);
    }
    if (used < size)
        snprintf(who + used, size - used, " (%zu of %d joined the coordinator at %s)", r->n_machines,
                 r->expected_machines, a->o->coordinator);
    protobuf_c_message_free_unpacked(reply, NULL);
}

/* While the Join waits: a signal cancels it; every WAIT_NOTE_S we say who we wait for. */
static bool join_waiting(void *arg, double waited_s)
{
    agent *a = arg;
    if (a->o->stop && *a->o->stop) return false;
    if (waited_s < a->next_note) return true;
    a->next_note = waited_s + WAIT_NOTE_S;
    char who[1024];
    waiting_for(a, who, sizeof who);
    fprintf(stderr, "zrt agent: waiting for %s (%.0f s of join_timeout_s %g)\n", who, waited_s,
            a->o->cfg->job.join_timeout_s);
    return true;
}

static zrt_status join(agent *a)
{
    const zrt_config *cfg = a->o->cfg;
    static char hash[32], keys[8192];
    ZRT_CHECK(zrt_control_config_identity(cfg, hash, sizeof hash, keys, sizeof keys));
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    Zrt__V1__JoinRequest req = ZRT__V1__JOIN_REQUEST__INIT;
    req.config_hash = hash;
    req.config_keys = keys;
    req.host = host;
    req.machine_rank = a->o->machine_rank;
    req.local_ranks = (int32_t)(cfg->num_processes / cfg->num_machines);
    ProtobufCMessage *reply = NULL;
    /* The coordinator times the rendezvous out and says who is missing; our own
     * deadline is a little later, for a coordinator that never answers. */
    a->client.waiting = join_waiting;
    a->client.waiting_arg = a;
    a->next_note = WAIT_NOTE_S;
    zrt_status status = zrt_rpc_call(&a->client, "Join", &req.base, &zrt__v1__join_reply__descriptor,
                                     cfg->job.join_timeout_s + 5, true, &reply, NULL);
    a->client.waiting = NULL;
    char name[32];
    if (status != ZRT_OK && a->o->stop && *a->o->stop) {
        leave(a, a->o->machine_rank, zrt_signal_name(*a->o->stop, name, sizeof name));
        return zrt_set_error(ZRT_ERR_ABORTED, "agent: %s while waiting to join: no rank started", name);
    }
    ZRT_CHECK(status);
    Zrt__V1__JoinReply *r = (Zrt__V1__JoinReply *)reply;
    a->machine_rank = r->machine_rank;
    a->rank_offset = r->rank_offset;
    a->world = r->world_size;
    a->generation = r->generation;
    snprintf(a->master_addr, sizeof a->master_addr, "%s", r->master_addr);
    a->n_ranks = req.local_ranks;
    protobuf_c_message_free_unpacked(reply, NULL);
    return ZRT_OK;
}

/* The rank's environment: torchrun's and zrt's variables. */
static zrt_status rank_env(const agent *a, int local, zrt_launch_env *env)
{
    char generation[24], scope[64];
    snprintf(generation, sizeof generation, "%lld", (long long)a->generation);
    snprintf(scope, sizeof scope, "job/gen%lld", (long long)a->generation);
    const zrt_config *cfg = a->o->cfg;
    zrt_env_var extra[] = {
        {"ZRT_COORDINATOR", a->o->coordinator, false},
        {"ZRT_GENERATION", generation, false},
        {"ZRT_JOB_TOKEN", a->o->token, false},
        {"ZRT_STORE_SCOPE", scope, false},
        {"ZRT_PROGRESS_FILE", local == 0 ? a->progress : NULL, false}, /* local rank 0 reports step and loss */
        {"ZRT_PROGRESS_TTY", isatty(STDOUT_FILENO) ? "1" : NULL, false}, /* their live line reaches a terminal */
    };
    zrt_rank_env r = {.rank = a->rank_offset + local, .local_rank = local, .world_size = a->world,
                      .local_world_size = a->n_ranks, .group_rank = a->machine_rank,
                      .master_addr = cfg->main_process_ip[0] ? cfg->main_process_ip : a->master_addr,
                      .master_port = a->o->master_port ? a->o->master_port : (int)cfg->main_process_port,
                      .extra = extra, .n_extra = (int)(sizeof extra / sizeof extra[0])};
    return zrt_launcher_env(&r, env);
}

static zrt_status spawn_rank(agent *a, int local)
{
    rank_proc *p = &a->ranks[local];
    p->rank = a->rank_offset + local;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return zrt_set_error(ZRT_ERR_IO, "agent: pipe: %s", strerror(errno));
    char *const *argv = a->o->program;
    char *train[64] = {(char *)a->o->self_exe, "train", "--config", (char *)a->o->config_path};
    if (!argv) {
        int n = 4;
        for (int i = 0; a->o->train_args && a->o->train_args[i] && n < 63; i++) train[n++] = a->o->train_args[i];
        argv = train;
    }
    zrt_launch_env env;
    zrt_status status = rank_env(a, local, &env);
    if (status == ZRT_OK) status = zrt_launcher_spawn(argv, &env, fds[1], &p->pid);
    zrt_launcher_env_free(&env);
    close(fds[1]);
    if (status != ZRT_OK) {
        close(fds[0]);
        return status;
    }
    p->out_fd = fds[0];
    p->running = true;
    fcntl(p->out_fd, F_SETFL, fcntl(p->out_fd, F_GETFL) | O_NONBLOCK);
    return ZRT_OK;
}

/* Moves what the ranks printed to our stdout, a line at a time, prefixed. */
static void forward_output(agent *a, int timeout_ms)
{
    struct pollfd fds[MAX_LOCAL];
    int n = 0, which[MAX_LOCAL];
    for (int i = 0; i < a->n_ranks; i++)
        if (a->ranks[i].out_fd >= 0) {
            fds[n] = (struct pollfd){.fd = a->ranks[i].out_fd, .events = POLLIN};
            which[n++] = i;
        }
    if (n == 0) {
        usleep((useconds_t)timeout_ms * 1000);
        return;
    }
    if (poll(fds, (nfds_t)n, timeout_ms) <= 0) return;
    for (int k = 0; k < n; k++) {
        if (!(fds[k].revents & (POLLIN | POLLHUP))) continue;
        rank_proc *p = &a->ranks[which[k]];
        char buf[4096];
        ssize_t got = read(p->out_fd, buf, sizeof buf);
        if (got <= 0) {
            if (p->line_len) printf("[rank %d] %.*s\n", p->rank, (int)p->line_len, p->line);
            p->line_len = 0;
            close(p->out_fd);
            p->out_fd = -1;
            continue;
        }
        for (ssize_t i = 0; i < got; i++) {
            /* '\r' is a live progress line: redraw it in place on a terminal. */
            if (buf[i] == '\r' && isatty(STDOUT_FILENO)) {
                if (p->line_len) printf("\r[rank %d] %.*s\033[K", p->rank, (int)p->line_len, p->line);
                p->live = p->line_len > 0 || p->live;
                p->line_len = 0;
                continue;
            }
            if (buf[i] == '\n' || buf[i] == '\r' || p->line_len == sizeof p->line - 1) {
                if (p->line_len)
                    printf("%s[rank %d] %.*s%s\n", p->live ? "\r" : "", p->rank, (int)p->line_len, p->line,
                           p->live ? "\033[K" : "");
                p->live = false;
                p->line_len = 0;
                if (buf[i] == '\n' || buf[i] == '\r') continue;
            }
            p->line[p->line_len++] = buf[i];
        }
    }
    fflush(stdout);
}

static void ended(rank_proc *p, int status)
{
    p->running = false;
    p->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    p->exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + p->signal;
}

static int running_ranks(agent *a)
{
    int running = 0;
    for (int i = 0; i < a->n_ranks; i++) {
        rank_proc *p = &a->ranks[i];
        int status;
        if (p->running && waitpid(p->pid, &status, WNOHANG) == p->pid) ended(p, status);
        running += p->running;
    }
    return running;
}

static void forward_while_stopping(void *arg) { forward_output(arg, 20); }

/* The launcher's stop sequence, forwarding the ranks' last words meanwhile. */
static void stop_ranks(agent *a)
{
    pid_t pids[MAX_LOCAL];
    int statuses[MAX_LOCAL];
    running_ranks(a);
    for (int i = 0; i < a->n_ranks; i++) pids[i] = a->ranks[i].running ? a->ranks[i].pid : 0;
    zrt_launcher_stop(pids, statuses, a->n_ranks, ZRT_STOP_GRACE_S, forward_while_stopping, a);
    for (int i = 0; i < a->n_ranks; i++) {
        rank_proc *p = &a->ranks[i];
        if (p->running) ended(p, statuses[i]);
    }
    forward_output(a, 0);
}

/* One heartbeat: the command, or an error if the coordinator did not answer. */
static zrt_status heartbeat(agent *a, Zrt__V1__Command *command, int64_t *generation, char *reason, size_t reason_size)
{
    Zrt__V1__RankHealth health[MAX_LOCAL], *ptrs[MAX_LOCAL];
    for (int i = 0; i < a->n_ranks; i++) {
        zrt__v1__rank_health__init(&health[i]);
        health[i].rank = a->ranks[i].rank;
        health[i].running = a->ranks[i].running;
        health[i].exit_status = a->ranks[i].exit_status;
        health[i].signal = a->ranks[i].signal;
        ptrs[i] = &health[i];
    }
    Zrt__V1__HeartbeatRequest req = ZRT__V1__HEARTBEAT_REQUEST__INIT;
    FILE *f = fopen(a->progress, "r");
    if (f) {
        long long step = 0;
        float loss = 0;
        if (fscanf(f, "%lld %f", &step, &loss) == 2) {
            req.step = step;
            req.loss = loss;
        }
        fclose(f);
    }
    req.machine_rank = a->machine_rank;
    req.generation = a->generation;
    req.n_ranks = (size_t)a->n_ranks;
    req.ranks = ptrs;
    ProtobufCMessage *reply = NULL;
    double timeout = a->o->cfg->job.heartbeat_interval_s * 2;
    ZRT_CHECK(zrt_rpc_call(&a->client, "Heartbeat", &req.base, &zrt__v1__heartbeat_reply__descriptor, timeout, false, &reply,
                       NULL));
    Zrt__V1__HeartbeatReply *r = (Zrt__V1__HeartbeatReply *)reply;
    *command = r->command;
    *generation = r->generation;
    snprintf(reason, reason_size, "%s", r->reason);
    protobuf_c_message_free_unpacked(reply, NULL);
    return ZRT_OK;
}

/* A signal: stop the ranks and leave (Ctrl-C returns at once; the
 * coordinator names why the job ended). */
static zrt_status stopped_by_signal(agent *a, int sig)
{
    char name[32];
    zrt_signal_name(sig, name, sizeof name);
    stop_ranks(a);
    leave(a, a->machine_rank, name);
    return zrt_set_error(ZRT_ERR_ABORTED, "agent: %s: ranks stopped", name);
}

static zrt_status watch(agent *a)
{
    const zrt_job_config *j = &a->o->cfg->job;
    double last_ok = zrt_now(), next_beat = 0;
    for (;;) {
        forward_output(a, 50);
        running_ranks(a);
        if (a->o->stop && *a->o->stop) return stopped_by_signal(a, (int)*a->o->stop);
        if (zrt_now() < next_beat) continue;
        next_beat = zrt_now() + j->heartbeat_interval_s;
        Zrt__V1__Command command = ZRT__V1__COMMAND__CONTINUE;
        char reason[512] = "";
        int64_t generation = a->generation;
        if (heartbeat(a, &command, &generation, reason, sizeof reason) != ZRT_OK) {
            if (zrt_now() - last_ok <= j->heartbeat_timeout_s) continue;
            char why[512];
            snprintf(why, sizeof why, "%s", zrt_last_error());
            stop_ranks(a);
            return zrt_set_error(ZRT_ERR_PEER, "agent: the coordinator %s did not answer for %.1f s (%s); ranks stopped",
                                 a->o->coordinator, zrt_now() - last_ok, why);
        }
        last_ok = zrt_now();
        if (command == ZRT__V1__COMMAND__ABORT) {
            stop_ranks(a);
            return zrt_set_error(ZRT_ERR_PEER, "agent: the job was aborted: %s", reason);
        }
        if (command == ZRT__V1__COMMAND__RESTART) {
            printf("zrt agent: %s: restarting the ranks\n", reason);
            fflush(stdout);
            stop_ranks(a);
            a->generation = generation;
            for (int i = 0; i < a->n_ranks; i++) {
                a->ranks[i].exit_status = a->ranks[i].signal = 0;
                ZRT_CHECK(spawn_rank(a, i));
            }
            continue;
        }
        if (command == ZRT__V1__COMMAND__SHUTDOWN) {
            stop_ranks(a); /* they have all exited by now */
            return ZRT_OK;
        }
    }
}

zrt_status zrt_agent_run(const zrt_agent_options *o)
{
    if (!o || !o->cfg || !o->coordinator || !o->token || !o->self_exe)
        return zrt_set_error(ZRT_ERR_INVALID, "agent: missing options");
    if (o->cfg->num_processes / o->cfg->num_machines > MAX_LOCAL)
        return zrt_set_error(ZRT_ERR_UNSUPPORTED, "agent: at most %d ranks per machine", MAX_LOCAL);
    agent *a = calloc(1, sizeof *a);
    if (!a) return zrt_set_error(ZRT_ERR_NOMEM, "agent: out of memory");
    a->o = o;
    for (int i = 0; i < MAX_LOCAL; i++) a->ranks[i].out_fd = -1;
    const char *tmp = getenv("TMPDIR");
    snprintf(a->progress, sizeof a->progress, "%s/zrt-progress-%d", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    zrt_status status = zrt_rpc_client_open(&a->client, o->coordinator, o->token, o->cfg);
    if (status == ZRT_OK) status = join(a);
    for (int i = 0; status == ZRT_OK && i < a->n_ranks; i++) status = spawn_rank(a, i);
    if (status == ZRT_OK) status = watch(a);
    else stop_ranks(a);
    zrt_rpc_client_close(&a->client);
    unlink(a->progress);
    free(a);
    return status;
}
