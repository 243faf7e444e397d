/* coordinator_internal.h: the coordinator's state and call contexts, shared
 * by coordinator.c (the loop, Join, Heartbeat, Status, health),
 * coordinator_kv.c (KvSet/KvGet/KvAdd, Barrier) and call.c (a call's
 * lifetime: replies, wait lists, cancellation). Single-threaded: only the
 * completion-queue loop touches any of it. Dependencies run one way:
 * coordinator.c -> coordinator_kv.c -> call.c.
 */
#ifndef ZRT_COORDINATOR_INTERNAL_H
#define ZRT_COORDINATOR_INTERNAL_H

#include "rpc.h"

#define MAX_MACHINES 4096
#define MAX_KEYS 65536
#define MAX_KEY_BYTES 512
#define MAX_VALUE_BYTES (1 << 20)

enum { M_JOIN, M_HEARTBEAT, M_KVSET, M_KVGET, M_KVADD, M_BARRIER, M_STATUS, M_LEAVE, M_SHUTDOWN, N_METHODS };
typedef struct coordinator coordinator;
typedef struct call_ctx call_ctx;
typedef void (*tag_fn)(coordinator *co, call_ctx *c, bool ok);
typedef struct {
    tag_fn fn;
    call_ctx *ctx;
} tag;

struct call_ctx {
    tag on_new, on_close, on_reply;
    int method;              /* -1: the generic (unknown method) request */
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array md;
    grpc_byte_buffer *payload;
    grpc_call_details details; /* generic only */
    ProtobufCMessage *request;
    grpc_byte_buffer *reply;
    int refs;                /* outstanding batches */
    int cancelled;
    bool replied;
    call_ctx *next_parked;   /* in a wait list */
    double expire;           /* parked: answer DEADLINE_EXCEEDED after this */
};

/* The job, as Status reports it (zrt_job_state_name). */
typedef enum { JOB_WAITING, JOB_RUNNING, JOB_ABORTED, JOB_SHUTDOWN, JOB_DONE } job_state;
/* A machine: joined and waiting for the others, running, its ranks all
 * finished, silent past the timeout, or gone on its own (Leave). */
typedef enum { MACHINE_ABSENT, MACHINE_JOINED, MACHINE_RUNNING, MACHINE_DONE, MACHINE_DEAD, MACHINE_LEFT } machine_state;
const char *zrt_job_state_name(job_state state);
const char *zrt_machine_state_name(machine_state state);

typedef struct {
    bool joined;
    char host[256];
    int local_ranks, rank_offset;
    double last_heartbeat;
    machine_state state;
    int64_t step;
    float loss;
    bool ranks_done;         /* every local rank exited 0 */
    bool told;               /* has heard the job's final command */
} machine;

typedef struct {
    char *key;
    uint8_t *value;
    size_t len;
} kv_entry;

typedef struct {
    char name[128];
    int count, arrived;
    call_ctx *waiting;
} barrier;

struct coordinator {
    const zrt_coordinator_options *o;
    grpc_server *server;
    grpc_completion_queue *cq;
    void *methods[N_METHODS];
    int expected, joined, world;
    int restarts_used;
    machine machines[MAX_MACHINES];
    int64_t generation;
    double first_join, started;
    job_state state;
    char reason[512];
    double end_at;           /* when the loop stops after the job ended */
    kv_entry *kv;
    int n_kv;
    barrier barriers[64];
    int n_barriers;
    call_ctx *parked_joins, *parked_gets;
    char config_hash[32];
    char config_keys[8192];
    int live_calls;
    int pending_replies;     /* reply batches not yet completed: drained before the server stops */
    bool stopping;           /* the server is shutting down: no new requests */
};

/* ---- call.c ---- */

/* Answers a call (reply NULL for an error status); once per call. */
void zrt_call_respond(coordinator *co, call_ctx *c, grpc_status_code status, const char *details,
                      const ProtobufCMessage *reply);
void zrt_call_error(coordinator *co, call_ctx *c, grpc_status_code status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Wait lists of calls answered later: park until timeout_s (or the call's
 * own deadline); unpark returns whether c was in the list. */
void zrt_call_park(call_ctx **list, call_ctx *c, double timeout_s);
bool zrt_call_unpark(call_ctx **list, call_ctx *c);
/* Takes a call out of every wait list (its client gave up). */
void zrt_call_forget(coordinator *co, call_ctx *c);
/* Answers DEADLINE_EXCEEDED to the calls of list whose time is up. */
void zrt_call_expire(coordinator *co, call_ctx **list, const char *what);
/* Drops a reference; the last frees the call. */
void zrt_call_unref(coordinator *co, call_ctx *c);
/* The RECV_CLOSE_ON_SERVER batch's tag function: a cancelled call is forgotten. */
void zrt_call_closed(coordinator *co, call_ctx *c, bool ok);

/* ---- coordinator_kv.c ---- */

void zrt_coord_handle_kv(coordinator *co, call_ctx *c);      /* KvSet, KvGet, KvAdd */
void zrt_coord_handle_barrier(coordinator *co, call_ctx *c);

#endif
