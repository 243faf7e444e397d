/* bench.c: `zrt bench control --agents N`: the coordinator under N agents.
 *
 * The coordinator runs as its own process (`zrt coordinator`, started with
 * zrt_launcher_spawn) so its CPU time can be read from /proc; the agents are
 * lightweight clients: one thread and one channel each, that Join, then send
 * a Heartbeat every heartbeat_interval_s. Measured:
 *  - rendezvous: from the first Join sent to the last reply received;
 *  - coordinator CPU per heartbeat and as a share of one core, over a window
 *    of steady heartbeats;
 *  - failure detection: one agent stops; the time until another agent's
 *    heartbeat reply says abort (goal: heartbeat timeout + one interval).
 */
#include "rpc.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define INTERVAL_S 1.0
#define TIMEOUT_S 3.0

typedef struct bench bench;

typedef struct {
    bench *b;
    int index;
    pthread_t thread;
    double joined_at;
    bool ok;
} bench_agent;

struct bench {
    int agents;
    double seconds;
    char address[300];
    zrt_config cfg;
    char hash[32], keys[8192];
    double start;
    volatile int phase;      /* 0 joining/heartbeats, 1 one agent stops, 2 stop */
    volatile double abort_seen;
    pthread_mutex_t lock;
    int heartbeats;
};

static bool join_one(bench_agent *a, zrt_rpc_client *c)
{
    bench *b = a->b;
    char host[32];
    snprintf(host, sizeof host, "agent-%d", a->index);
    Zrt__V1__JoinRequest req = ZRT__V1__JOIN_REQUEST__INIT;
    req.config_hash = b->hash;
    req.config_keys = b->keys;
    req.host = host;
    req.machine_rank = -1;
    req.local_ranks = 1;
    ProtobufCMessage *reply = NULL;
    if (zrt_rpc_call(c, "Join", &req.base, &zrt__v1__join_reply__descriptor, 60, true, &reply, NULL) != ZRT_OK) {
        fprintf(stderr, "agent %d: %s\n", a->index, zrt_last_error());
        return false;
    }
    a->index = ((Zrt__V1__JoinReply *)reply)->machine_rank; /* heartbeats need the assigned rank */
    protobuf_c_message_free_unpacked(reply, NULL);
    a->joined_at = zrt_now();
    return true;
}

static void *agent_main(void *arg)
{
    bench_agent *a = arg;
    bench *b = a->b;
    zrt_rpc_client c;
    if (zrt_rpc_client_open(&c, b->address, "bench", NULL) != ZRT_OK || !join_one(a, &c)) return NULL;
    a->ok = true;
    bool victim = a->index == 0;
    double next = zrt_now() + INTERVAL_S * (double)(a->index % 100) / 100.0; /* spread over the interval */
    while (b->phase < 2) {
        if (victim && b->phase == 1) break; /* the failure: it just stops */
        double now = zrt_now();
        if (now < next) {
            usleep((useconds_t)((next - now) * 1e6 > 20000 ? 20000 : (next - now) * 1e6));
            continue;
        }
        next += INTERVAL_S;
        Zrt__V1__RankHealth health = ZRT__V1__RANK_HEALTH__INIT, *hp = &health;
        health.rank = a->index;
        health.running = true;
        Zrt__V1__HeartbeatRequest req = ZRT__V1__HEARTBEAT_REQUEST__INIT;
        req.machine_rank = a->index;
        req.n_ranks = 1;
        req.ranks = &hp;
        ProtobufCMessage *reply = NULL;
        if (zrt_rpc_call(&c, "Heartbeat", &req.base, &zrt__v1__heartbeat_reply__descriptor, 5, false, &reply, NULL) !=
            ZRT_OK)
            break;
        Zrt__V1__Command command = ((Zrt__V1__HeartbeatReply *)reply)->command;
        protobuf_c_message_free_unpacked(reply, NULL);
        pthread_mutex_lock(&b->lock);
        b->heartbeats++;
        if (command == ZRT__V1__COMMAND__ABORT && b->abort_seen == 0) b->abort_seen = zrt_now();
        pthread_mutex_unlock(&b->lock);
        if (command == ZRT__V1__COMMAND__ABORT) break;
    }
    zrt_rpc_client_close(&c);
    return NULL;
}

/* utime + stime of pid, in seconds. */
static double cpu_seconds(pid_t pid)
{
    char path[64], text[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    char *p = strrchr(text, ')');
    unsigned long utime = 0, stime = 0;
    if (p) sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime);
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* Starts `zrt coordinator` on a free port; its address comes on its stdout. */
static zrt_status start_coordinator(bench *b, const char *self, const char *config, pid_t *pid)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return zrt_set_error(ZRT_ERR_IO, "bench: pipe: %s", strerror(errno));
    char *argv[] = {(char *)self, "coordinator", "--config", (char *)config, "--listen", "127.0.0.1:0", NULL};
    zrt_env_var token = {"ZRT_JOB_TOKEN", "bench", false};
    zrt_launch_env env;
    zrt_status status = zrt_launcher_env_vars(&token, 1, &env);
    if (status == ZRT_OK) status = zrt_launcher_spawn(argv, &env, fds[1], pid);
    zrt_launcher_env_free(&env);
    close(fds[1]);
    if (status != ZRT_OK) {
        close(fds[0]);
        return status;
    }
    FILE *f = fdopen(fds[0], "r");
    char line[512];
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "zrt coordinator: listening on %299s", b->address) == 1) break;
    if (f) fclose(f); /* its later output goes nowhere */
    return b->address[0] ? ZRT_OK : zrt_set_error(ZRT_ERR_IO, "bench: the coordinator did not start");
}

static zrt_status write_config(bench *b, char *path, size_t size)
{
    snprintf(path, size, "%s/zrt-bench-control-%d.yaml", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    FILE *f = fopen(path, "w");
    if (!f) return zrt_set_error(ZRT_ERR_IO, "bench: cannot write %s", path);
    fprintf(f, "num_machines: %d\nnum_processes: %d\nmain_process_ip: 127.0.0.1\nzrt:\n  heartbeat_interval_s: %g\n"
               "  heartbeat_timeout_s: %g\n  join_timeout_s: 120\n",
            b->agents, b->agents, INTERVAL_S, TIMEOUT_S);
    fclose(f);
    ZRT_CHECK(zrt_config_load(&b->cfg, path));
    return zrt_control_config_identity(&b->cfg, b->hash, sizeof b->hash, b->keys, sizeof b->keys);
}

zrt_status zrt_bench_control(int agents, double seconds, const char *self, bool json)
{
    bench *b = calloc(1, sizeof *b);
    bench_agent *list = calloc((size_t)agents, sizeof *list);
    if (!b || !list) return zrt_set_error(ZRT_ERR_NOMEM, "bench: out of memory");
    b->agents = agents;
    b->seconds = seconds;
    pthread_mutex_init(&b->lock, NULL);
    char config[600];
    pid_t pid = 0;
    zrt_status status = write_config(b, config, sizeof config);
    if (status == ZRT_OK) status = start_coordinator(b, self, config, &pid);
    zrt_rpc_init();
    double start = zrt_now();
    int started = 0;
    for (int i = 0; status == ZRT_OK && i < agents; i++) {
        list[i] = (bench_agent){.b = b, .index = i};
        if (pthread_create(&list[i].thread, NULL, agent_main, &list[i]) != 0)
            status = zrt_set_error(ZRT_ERR_NOMEM, "bench: cannot start agent thread %d", i);
        else started++;
    }
    /* Rendezvous: wait until every agent has its reply. */
    double joined = 0;
    for (int done = 0; status == ZRT_OK && done < agents && zrt_now() - start < 120;) {
        usleep(2000);
        done = 0;
        for (int i = 0; i < agents; i++)
            if (list[i].joined_at > 0) {
                done++;
                if (list[i].joined_at > joined) joined = list[i].joined_at;
            }
    }
    double rendezvous = joined - start;
    /* Steady heartbeats: skip one interval, then measure. */
    usleep((useconds_t)(INTERVAL_S * 1.5e6));
    pthread_mutex_lock(&b->lock);
    int beats0 = b->heartbeats;
    pthread_mutex_unlock(&b->lock);
    double cpu0 = cpu_seconds(pid), t0 = zrt_now();
    usleep((useconds_t)(seconds * 1e6));
    double cpu = cpu_seconds(pid) - cpu0, window = zrt_now() - t0;
    pthread_mutex_lock(&b->lock);
    int beats = b->heartbeats - beats0;
    pthread_mutex_unlock(&b->lock);
    /* Failure: agent 0 stops heartbeating. */
    double failed_at = zrt_now();
    b->phase = 1;
    while (b->abort_seen == 0 && zrt_now() - failed_at < 4 * TIMEOUT_S) usleep(5000);
    double detection = b->abort_seen > 0 ? b->abort_seen - failed_at : -1;
    b->phase = 2;
    for (int i = 0; i < started; i++) pthread_join(list[i].thread, NULL);
    if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
    unlink(config);
    if (status == ZRT_OK) {
        double per_beat_us = beats ? cpu / beats * 1e6 : 0, share = cpu / window * 100;
        if (json)
            printf("{\"agents\": %d, \"rendezvous_s\": %.4f, \"heartbeats\": %d, \"coordinator_cpu_per_heartbeat_us\": "
                   "%.1f, \"coordinator_cpu_percent\": %.2f, \"detection_s\": %.3f, \"heartbeat_interval_s\": %g, "
                   "\"heartbeat_timeout_s\": %g}\n",
                   agents, rendezvous, beats, per_beat_us, share, detection, INTERVAL_S, TIMEOUT_S);
        else
            printf("%6d %14.3f %10d %18.1f %12.2f%% %14.3f   (timeout %g s + interval %g s = %g s)\n", agents,
                   rendezvous, beats, per_beat_us, share, detection, TIMEOUT_S, INTERVAL_S, TIMEOUT_S + INTERVAL_S);
    }
    free(list);
    free(b);
    return status;
}
