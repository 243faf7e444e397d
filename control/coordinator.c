/* coordinator.c: the control plane's server: rendezvous (Join), health
 * (Heartbeat), the key-value store (KvSet/KvGet/KvAdd), Barrier, Status,
 * Leave and Shutdown, on one completion-queue loop in one thread.
 *
 * Why this shape (gRPC core's C API: one completion queue): every method is
 * registered with its request payload delivered with the call; a call's
 * context is freed when its last batch completes; a call that must wait (a
 * Join before all machines arrived, a KvGet of a missing key, a Barrier) is
 * parked with a RECV_CLOSE batch outstanding -- no polling of the key -- and
 * answered when its condition holds or its deadline passes (checked every
 * loop turn, 50 ms). Every call must carry the job token (compared in constant
 * time); a malformed request gets INVALID_ARGUMENT, an unknown method
 * UNIMPLEMENTED. Limits: 64k keys, keys <= 512 bytes, values <= 1 MiB,
 * messages <= 4 MiB.
 */
#include "coordinator_internal.h"

#include <grpc/grpc_security.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The methods as zrt.proto's `service Control` declares them, in the order of
 * the M_* enum (coordinator_create checks both): one list, so a generated
 * client and this server cannot disagree on a name or a request type. */
#define SERVICE zrt__v1__control__descriptor
#define method_name(m) (SERVICE.methods[m].name)
#define request_type(m) (SERVICE.methods[m].input)

/* ---- states ------------------------------------------------------------------------------------ */

const char *zrt_job_state_name(job_state state)
{
    static const char *const names[] = {"waiting", "running", "aborted", "shutdown", "done"};
    return (unsigned)state <= JOB_DONE ? names[state] : "?";
}

const char *zrt_machine_state_name(machine_state state)
{
    static const char *const names[] = {"", "joined", "running", "done", "dead", "left"};
    return (unsigned)state <= MACHINE_LEFT ? names[state] : "?";
}

/* ---- the job ------------------------------------------------------------------------------- */

static bool ended(const coordinator *co)
{
    return co->state == JOB_ABORTED || co->state == JOB_DONE || co->state == JOB_SHUTDOWN;
}

/* The first cause ends the job; later failures are added to the reason, so
 * the root cause (a dead machine, a rank's own error) is named even when a
 * consequence (a rank that lost its peer) was reported first. */
static void end_job(coordinator *co, job_state state, const char *reason)
{
    if (ended(co)) {
        size_t used = strlen(co->reason);
        if (co->state == JOB_ABORTED && !strstr(co->reason, reason))
            snprintf(co->reason + used, sizeof co->reason - used, "; %s", reason);
        return;
    }
    co->state = state;
    snprintf(co->reason, sizeof co->reason, "%s", reason);
    co->generation++;
    /* Keep listening for a heartbeat timeout: agents hear the command, and
     * silent machines are still found and named. */
    const zrt_job_config *j = &co->o->cfg->job;
    co->end_at = zrt_now() + j->heartbeat_timeout_s + 2 * j->heartbeat_interval_s;
}

/* max_restarts: a failed rank starts every rank again in a new generation
 * (they resume from the latest checkpoint). False when none are left. */
static bool restart_job(coordinator *co, const char *reason)
{
    if (co->state != JOB_RUNNING || co->restarts_used >= co->o->cfg->job.max_restarts) return false;
    co->restarts_used++;
    co->generation++;
    snprintf(co->reason, sizeof co->reason, "restart %d of %lld (generation %lld) after: %s", co->restarts_used,
             (long long)co->o->cfg->job.max_restarts, (long long)co->generation, reason);
    for (int m = 0; m < co->expected; m++) {
        co->machines[m].ranks_done = false;
        co->machines[m].told = false;
    }
    return true;
}

static bool token_ok(const coordinator *co, const grpc_metadata_array *md)
{
    const char *want = co->o->token;
    size_t want_len = strlen(want);
    for (size_t i = 0; i < md->count; i++) {
        if (grpc_slice_str_cmp(md->metadata[i].key, ZRT_TOKEN_METADATA) != 0) continue;
        const unsigned char *got = GRPC_SLICE_START_PTR(md->metadata[i].value);
        size_t got_len = GRPC_SLICE_LENGTH(md->metadata[i].value);
        unsigned char diff = (unsigned char)(got_len != want_len);
        for (size_t k = 0; k < want_len; k++) diff |= (unsigned char)(want[k] ^ (k < got_len ? got[k] : 0));
        return diff == 0;
    }
    return false;
}

/* The differing keys between two "key=value" line lists, into out. */
static void diff_keys(const char *a, const char *b, char *out, size_t size)
{
    out[0] = '\0';
    char line[1024];
    for (const char *p = a; *p;) {
        size_t n = strcspn(p, "\n");
        snprintf(line, sizeof line, "%.*s\n", (int)n, p);
        if (!strstr(b, line)) {
            size_t eq = strcspn(line, "=");
            size_t used = strlen(out);
            snprintf(out + used, size - used, "%s%.*s", used ? ", " : "", (int)eq, line);
        }
        p += n + (p[n] == '\n');
    }
}

static void release_joins(coordinator *co)
{
    int offset = 0;
    for (int m = 0; m < co->expected; m++) {
        co->machines[m].rank_offset = offset;
        offset += co->machines[m].local_ranks;
        co->machines[m].state = MACHINE_RUNNING;
        co->machines[m].last_heartbeat = zrt_now();
    }
    co->world = offset;
    co->state = JOB_RUNNING;
    co->started = zrt_now();
    while (co->parked_joins) {
        call_ctx *c = co->parked_joins;
        co->parked_joins = c->next_parked;
        Zrt__V1__JoinRequest *req = (Zrt__V1__JoinRequest *)c->request;
        int m = req->machine_rank;
        Zrt__V1__JoinReply reply = ZRT__V1__JOIN_REPLY__INIT;
        reply.machine_rank = m;
        reply.rank_offset = co->machines[m].rank_offset;
        reply.world_size = co->world;
        reply.generation = co->generation;
        reply.master_addr = co->machines[0].host;
        zrt_call_respond(co, c, GRPC_STATUS_OK, NULL, &reply.base);
    }
}

/* The rendezvous failed: every waiting Join hears why (which tells its machine), the job is aborted. */
static void fail_joins(coordinator *co, grpc_status_code code, const char *reason)
{
    while (co->parked_joins) {
        call_ctx *c = co->parked_joins;
        co->parked_joins = c->next_parked;
        int m = ((Zrt__V1__JoinRequest *)c->request)->machine_rank;
        if (m >= 0 && m < co->expected) co->machines[m].told = true;
        zrt_call_error(co, c, code, "%s", reason);
    }
    end_job(co, JOB_ABORTED, reason);
}

static void handle_join(coordinator *co, call_ctx *c)
{
    Zrt__V1__JoinRequest *req = (Zrt__V1__JoinRequest *)c->request;
    if (co->state != JOB_WAITING)
        return zrt_call_error(co, c, GRPC_STATUS_FAILED_PRECONDITION, "the job is %s: no more joins",
                              zrt_job_state_name(co->state));
    if (strcmp(req->config_hash, co->config_hash) != 0) {
        char keys[2048];
        diff_keys(req->config_keys, co->config_keys, keys, sizeof keys);
        return zrt_call_error(co, c, GRPC_STATUS_FAILED_PRECONDITION,
                             "config mismatch: this machine's config differs from the coordinator's in: %s",
                             keys[0] ? keys : "(unknown keys)");
    }
    if (req->local_ranks < 1 || req->local_ranks > 4096)
        return zrt_call_error(co, c, GRPC_STATUS_INVALID_ARGUMENT, "local_ranks %d", req->local_ranks);
    int m = req->machine_rank;
    if (m >= co->expected || m < -1)
        return zrt_call_error(co, c, GRPC_STATUS_INVALID_ARGUMENT, "machine_rank %d is not in 0..%d", m, co->expected - 1);
    if (m >= 0 && co->machines[m].joined)
        return zrt_call_error(co, c, GRPC_STATUS_ALREADY_EXISTS, "machine_rank %d is already taken by %s", m,
                             co->machines[m].host);
    if (m < 0)
        for (m = 0; co->machines[m].joined; m++) {}
    req->machine_rank = m;
    machine *mc = &co->machines[m];
    mc->joined = true;
    snprintf(mc->host, sizeof mc->host, "%s", req->host);
    mc->local_ranks = req->local_ranks;
    mc->state = MACHINE_JOINED;
    if (co->joined++ == 0) co->first_join = zrt_now();
    zrt_call_park(&co->parked_joins, c, co->o->cfg->job.join_timeout_s);
    if (co->joined == co->expected) release_joins(co);
}

static void handle_heartbeat(coordinator *co, call_ctx *c)
{
    Zrt__V1__HeartbeatRequest *req = (Zrt__V1__HeartbeatRequest *)c->request;
    int m = req->machine_rank;
    if (m < 0 || m >= co->expected || !co->machines[m].joined)
        return zrt_call_error(co, c, GRPC_STATUS_INVALID_ARGUMENT, "machine_rank %d has not joined", m);
    machine *mc = &co->machines[m];
    mc->last_heartbeat = zrt_now();
    mc->step = req->step;
    mc->loss = req->loss;
    if (req->generation < co->generation && co->state == JOB_RUNNING) {
        /* Still the old generation's ranks: start them again (their failures
         * are the consequence of the restart's cause, not news). */
        Zrt__V1__HeartbeatReply reply = ZRT__V1__HEARTBEAT_REPLY__INIT;
        reply.command = ZRT__V1__COMMAND__RESTART;
        reply.generation = co->generation;
        reply.reason = co->reason;
        return zrt_call_respond(co, c, GRPC_STATUS_OK, NULL, &reply.base);
    }
    bool all_done = req->n_ranks > 0;
    for (size_t i = 0; i < req->n_ranks; i++) {
        Zrt__V1__RankHealth *h = req->ranks[i];
        if (!h->running && h->exit_status != 0) {
            char reason[256], how[64];
            snprintf(reason, sizeof reason, "rank %d on machine %d (%s) %s", h->rank, m, mc->host,
                     zrt_launcher_describe(h->exit_status, h->signal, how, sizeof how));
            if (restart_job(co, reason)) return handle_heartbeat(co, c); /* now answers RESTART */
            end_job(co, JOB_ABORTED, reason);
        }
        all_done &= !h->running && h->exit_status == 0;
    }
    if (all_done && !mc->ranks_done) {
        mc->ranks_done = true;
        mc->state = MACHINE_DONE;
        bool everyone = true;
        for (int k = 0; k < co->expected; k++) everyone &= co->machines[k].ranks_done;
        if (everyone) end_job(co, JOB_DONE, "every rank finished");
    }
    Zrt__V1__HeartbeatReply reply = ZRT__V1__HEARTBEAT_REPLY__INIT;
    bool stop = co->state == JOB_ABORTED || co->state == JOB_SHUTDOWN;
    reply.command = stop                      ? ZRT__V1__COMMAND__ABORT
                    : co->state == JOB_DONE ? ZRT__V1__COMMAND__SHUTDOWN
                                            : ZRT__V1__COMMAND__CONTINUE;
    reply.generation = co->generation;
    reply.reason = co->reason;
    if (reply.command != ZRT__V1__COMMAND__CONTINUE) mc->told = true;
    zrt_call_respond(co, c, GRPC_STATUS_OK, NULL, &reply.base);
}

static void handle_status(coordinator *co, call_ctx *c)
{
    Zrt__V1__StatusReply reply = ZRT__V1__STATUS_REPLY__INIT;
    Zrt__V1__MachineStatus rows[MAX_MACHINES], *ptrs[MAX_MACHINES];
    size_t n = 0;
    for (int m = 0; m < co->expected; m++) {
        machine *mc = &co->machines[m];
        if (!mc->joined) continue;
        zrt__v1__machine_status__init(&rows[n]);
        rows[n].machine_rank = m;
        rows[n].host = mc->host;
        rows[n].state = (char *)zrt_machine_state_name(mc->state);
        rows[n].heartbeat_age_s = mc->last_heartbeat > 0 ? zrt_now() - mc->last_heartbeat : -1;
        rows[n].local_ranks = mc->local_ranks;
        rows[n].step = mc->step;
        rows[n].loss = mc->loss;
        ptrs[n] = &rows[n];
        n++;
    }
    reply.generation = co->generation;
    reply.expected_machines = co->expected;
    reply.world_size = co->world;
    reply.state = (char *)zrt_job_state_name(co->state);
    reply.reason = co->reason;
    reply.n_machines = n;
    reply.machines = ptrs;
    reply.restarts_used = co->restarts_used;
    reply.max_restarts = (int32_t)co->o->cfg->job.max_restarts;
    zrt_call_respond(co, c, GRPC_STATUS_OK, NULL, &reply.base);
}

static void handle_other(coordinator *co, call_ctx *c)
{
    if (c->method == M_LEAVE) { /* an agent stopped (a signal): a running job cannot go on without it */
        Zrt__V1__LeaveRequest *req = (Zrt__V1__LeaveRequest *)c->request;
        machine *mc = req->machine_rank >= 0 && req->machine_rank < co->expected ? &co->machines[req->machine_rank] : NULL;
        if (mc && mc->joined) {
            mc->state = MACHINE_LEFT;
            char reason[800];
            snprintf(reason, sizeof reason, "machine %d (%s) left: %s", req->machine_rank, mc->host,
                     req->reason[0] ? req->reason : "no reason given");
            if (co->state == JOB_RUNNING) end_job(co, JOB_ABORTED, reason);
            if (co->state == JOB_WAITING) fail_joins(co, GRPC_STATUS_ABORTED, reason);
        }
        Zrt__V1__LeaveReply reply = ZRT__V1__LEAVE_REPLY__INIT;
        return zrt_call_respond(co, c, GRPC_STATUS_OK, NULL, &reply.base);
    }
    Zrt__V1__ShutdownRequest *req = (Zrt__V1__ShutdownRequest *)c->request;
    char reason[600];
    snprintf(reason, sizeof reason, "shutdown requested: %s", req->reason[0] ? req->reason : "no reason given");
    end_job(co, JOB_SHUTDOWN, reason);
    Zrt__V1__ShutdownReply reply = ZRT__V1__SHUTDOWN_REPLY__INIT;
    zrt_call_respond(co, c, GRPC_STATUS_OK, NULL, &reply.base);
}

/* ---- dispatch ------------------------------------------------------------------------------------ */

static void request_next(coordinator *co, int method);

static void dispatch(coordinator *co, call_ctx *c)
{
    switch (c->method) {
    case M_JOIN: handle_join(co, c); break;
    case M_HEARTBEAT: handle_heartbeat(co, c); break;
    case M_KVSET: case M_KVGET: case M_KVADD: zrt_coord_handle_kv(co, c); break;
    case M_BARRIER: zrt_coord_handle_barrier(co, c); break;
    case M_STATUS: handle_status(co, c); break;
    default: handle_other(co, c); break;
    }
}

static void on_new_call(coordinator *co, call_ctx *c, bool ok)
{
    if (!ok) { /* shutting down: this request will never match a call */
        free(c);
        co->live_calls--;
        return;
    }
    request_next(co, c->method);
    c->refs = 1; /* the close batch */
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &c->cancelled;
    c->on_close = (tag){zrt_call_closed, c};
    if (grpc_call_start_batch(c->call, &op, 1, &c->on_close, NULL) != GRPC_CALL_OK) c->refs = 0;
    c->refs++; /* held while we handle it */
    if (c->method < 0) {
        zrt_call_error(co, c, GRPC_STATUS_UNIMPLEMENTED, "unknown method");
    } else if (!token_ok(co, &c->md)) {
        zrt_call_error(co, c, GRPC_STATUS_UNAUTHENTICATED, "missing or wrong job token");
    } else if (!(c->request = zrt_rpc_unpack(request_type(c->method), c->payload))) {
        zrt_call_error(co, c, GRPC_STATUS_INVALID_ARGUMENT, "malformed %s request", method_name(c->method));
    } else {
        dispatch(co, c);
    }
    zrt_call_unref(co, c);
}

static void request_next(coordinator *co, int method)
{
    if (co->stopping) return;
    call_ctx *c = calloc(1, sizeof *c);
    if (!c) return;
    c->method = method;
    c->on_new = (tag){on_new_call, c};
    grpc_metadata_array_init(&c->md);
    co->live_calls++;
    if (method < 0) {
        grpc_call_details_init(&c->details);
        grpc_server_request_call(co->server, &c->call, &c->details, &c->md, co->cq, co->cq, &c->on_new);
    } else {
        grpc_server_request_registered_call(co->server, co->methods[method], &c->call, &c->deadline, &c->md,
                                            &c->payload, co->cq, co->cq, &c->on_new);
    }
}

/* ---- timers: dead machines, the rendezvous timeout -------------------------------- */

static void check_health(coordinator *co)
{
    const zrt_job_config *j = &co->o->cfg->job;
    double now = zrt_now();
    if (co->state == JOB_WAITING && co->joined > 0 && now - co->first_join > j->join_timeout_s) {
        char missing[1024] = "";
        for (int m = 0; m < co->expected; m++)
            if (!co->machines[m].joined)
                snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s%d", missing[0] ? ", " : "", m);
        char reason[1200];
        snprintf(reason, sizeof reason, "rendezvous timed out after %.0f s: machine_rank(s) %s never joined",
                 j->join_timeout_s, missing);
        fail_joins(co, GRPC_STATUS_DEADLINE_EXCEEDED, reason);
        return;
    }
    if (co->state != JOB_RUNNING && co->state != JOB_ABORTED) return;
    for (int m = 0; m < co->expected; m++) {
        machine *mc = &co->machines[m];
        if (mc->told || mc->state != MACHINE_RUNNING || now - mc->last_heartbeat <= j->heartbeat_timeout_s) continue;
        mc->state = MACHINE_DEAD;
        char reason[512];
        snprintf(reason, sizeof reason, "machine %d (%s) sent no heartbeat for %.1f s (timeout %.1f s)", m, mc->host,
                 now - mc->last_heartbeat, j->heartbeat_timeout_s);
        end_job(co, JOB_ABORTED, reason);
    }
}

/* The job has ended and every machine has heard so (or is dead, or left). */
static bool everyone_told(const coordinator *co)
{
    for (int m = 0; m < co->expected; m++) {
        const machine *mc = &co->machines[m];
        if (mc->joined && !mc->told && mc->state != MACHINE_DEAD && mc->state != MACHINE_LEFT) return false;
    }
    return true;
}

/* ---- setup and the loop ---------------------------------------------------------------------------- */

/* A taken port in one line ("address in use"), not gRPC's error dump. */
static zrt_status probe_listen(const char *listen)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    int port = colon ? atoi(colon + 1) : 0;
    snprintf(host, sizeof host, "%.*s", colon ? (int)(colon - listen) : 0, listen);
    return port == 0 ? ZRT_OK : zrt_launcher_probe_port(host, &port);
}

static zrt_status start_server(coordinator *co)
{
    grpc_arg args[] = {
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_ALLOW_REUSEPORT, .value.integer = 0},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, .value.integer = ZRT_RPC_MAX_MESSAGE},
    };
    grpc_channel_args channel_args = {sizeof args / sizeof args[0], args};
    static const char *const expected[N_METHODS] = {"Join",    "Heartbeat", "KvSet", "KvGet",   "KvAdd",
                                                    "Barrier", "Status",    "Leave", "Shutdown"}; /* the M_* order */
    if (SERVICE.n_methods != N_METHODS)
        return zrt_set_error(ZRT_ERR_INTERNAL, "coordinator: zrt.proto's service has %u methods, the coordinator %d",
                             SERVICE.n_methods, N_METHODS);
    for (int m = 0; m < N_METHODS; m++)
        if (strcmp(method_name(m), expected[m]) != 0)
            return zrt_set_error(ZRT_ERR_INTERNAL, "coordinator: zrt.proto's method %d is %s, the coordinator's %s", m,
                                 method_name(m), expected[m]);
    co->cq = grpc_completion_queue_create_for_next(NULL);
    co->server = grpc_server_create(&channel_args, NULL);
    grpc_server_register_completion_queue(co->server, co->cq, NULL);
    for (int m = 0; m < N_METHODS; m++) {
        char path[64];
        snprintf(path, sizeof path, "/%s/%s", SERVICE.name, method_name(m));
        co->methods[m] = grpc_server_register_method(co->server, path, NULL, GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
    }
    ZRT_CHECK(probe_listen(co->o->listen));
    grpc_server_credentials *creds = NULL;
    ZRT_CHECK(zrt_rpc_server_credentials(co->o->cfg, &creds));
    int port = grpc_server_add_http2_port(co->server, co->o->listen, creds);
    grpc_server_credentials_release(creds);
    if (port == 0) return zrt_set_error(ZRT_ERR_IO, "coordinator: cannot listen on %s", co->o->listen);
    grpc_server_start(co->server);
    for (int m = -1; m < N_METHODS; m++) request_next(co, m);
    char address[300], host[256];
    snprintf(host, sizeof host, "%.*s", (int)strcspn(co->o->listen, ":"), co->o->listen);
    snprintf(address, sizeof address, "%s:%d", host, port);
    if (co->o->on_listening) co->o->on_listening(address, co->o->arg);
    return ZRT_OK;
}

static void stop_server(coordinator *co)
{
    tag shutdown_tag = {NULL, NULL};
    co->stopping = true; /* calls that still arrive are not re-armed */
    grpc_server_shutdown_and_notify(co->server, co->cq, &shutdown_tag);
    grpc_server_cancel_all_calls(co->server);
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(co->cq, zrt_rpc_deadline(5), NULL);
        if (ev.type != GRPC_OP_COMPLETE || ev.tag == &shutdown_tag) break;
        tag *t = ev.tag; /* unmatched requests come back with !success: on_new_call frees them */
        t->fn(co, t->ctx, ev.success);
    }
    grpc_server_destroy(co->server);
    grpc_completion_queue_shutdown(co->cq);
    while (grpc_completion_queue_next(co->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN) {}
    grpc_completion_queue_destroy(co->cq);
}

zrt_status zrt_coordinator_run(const zrt_coordinator_options *o)
{
    if (!o || !o->cfg || !o->listen || !o->token || !o->token[0])
        return zrt_set_error(ZRT_ERR_INVALID, "coordinator: config, listen address and token are required");
    zrt_rpc_init();
    coordinator *co = calloc(1, sizeof *co);
    if (!co || !(co->kv = calloc(MAX_KEYS, sizeof *co->kv))) {
        free(co);
        return zrt_set_error(ZRT_ERR_NOMEM, "coordinator: out of memory");
    }
    co->o = o;
    co->expected = (int)o->cfg->num_machines;
    co->state = JOB_WAITING;
    zrt_status status = zrt_control_config_identity(o->cfg, co->config_hash, sizeof co->config_hash, co->config_keys,
                                                      sizeof co->config_keys);
    if (status == ZRT_OK) status = start_server(co);
    /* After the job ended: until every machine has heard it -- and its reply
     * has left (stopping the server would cancel a reply still in flight) --
     * or the grace period is over. */
    while (status == ZRT_OK &&
           !(co->end_at > 0 && (zrt_now() > co->end_at || (everyone_told(co) && co->pending_replies == 0)))) {
        grpc_event ev = grpc_completion_queue_next(co->cq, zrt_rpc_deadline(0.05), NULL);
        if (ev.type == GRPC_OP_COMPLETE) {
            tag *t = ev.tag;
            t->fn(co, t->ctx, ev.success);
        }
        zrt_call_expire(co, &co->parked_gets, "KvGet");
        check_health(co);
    }
    bool failed = co->state == JOB_ABORTED;
    char reason[sizeof co->reason];
    snprintf(reason, sizeof reason, "%s", co->reason);
    if (co->server) stop_server(co);
    for (int i = 0; i < co->n_kv; i++) {
        free(co->kv[i].key);
        free(co->kv[i].value);
    }
    free(co->kv);
    free(co);
    if (status != ZRT_OK) return status;
    return failed ? zrt_set_error(ZRT_ERR_PEER, "job aborted: %s", reason) : ZRT_OK;
}

/* ---- fuzzing: the decoders and handlers without gRPC ------------------------------------------- */

int zrt_coordinator_fuzz(const uint8_t *data, size_t size)
{
    static coordinator *co;
    static zrt_config cfg;
    static zrt_coordinator_options o;
    if (!co) { /* one coordinator for the whole run: state carries over, as in a real job */
        zrt_config_init(&cfg);
        cfg.num_machines = 4;
        cfg.num_processes = 4;
        o = (zrt_coordinator_options){.cfg = &cfg, .listen = "-", .token = "t"};
        co = calloc(1, sizeof *co);
        if (!co || !(co->kv = calloc(MAX_KEYS, sizeof *co->kv))) abort(); /* a fuzzer without memory has no finding */
        co->o = &o;
        co->expected = 4;
        co->state = JOB_WAITING;
        zrt_control_config_identity(&cfg, co->config_hash, sizeof co->config_hash, co->config_keys,
                                    sizeof co->config_keys);
    }
    call_ctx *c = size < 1 ? NULL : calloc(1, sizeof *c);
    if (!c) return 0;
    c->method = data[0] % N_METHODS;
    c->refs = 1;
    c->deadline = gpr_inf_future(GPR_CLOCK_MONOTONIC);
    grpc_metadata_array_init(&c->md);
    co->live_calls++;
    c->request = protobuf_c_message_unpack(request_type(c->method), NULL, size - 1, data + 1);
    if (c->request) dispatch(co, c);
    zrt_call_forget(co, c); /* only this input's call can be parked: forget it, as a client that gave up */
    zrt_call_unref(co, c);
    return 0;
}
