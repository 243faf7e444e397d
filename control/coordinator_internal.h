/* coordinator_internal.h: the coordinator's state and call contexts, shared
 * by coordinator.c (the loop, Join, Heartbeat, Status, health) and
 * coordinator_kv.c (KvSet/KvGet/KvAdd, Barrier). Single-threaded: only the
 * completion-queue loop touches any of it.
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

typedef struct {
    bool joined;
    char host[256];
    int local_ranks, rank_offset;
    double last_heartbeat;
    char state[16];
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
    char state[16];          /* waiting, running, aborted, shutdown, done */
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
    bool stopping;           /* the server is shutting down: no new requests */
};

/* Answer a call (reply NULL for an error status); once per call. */
void respond(coordinator *co, call_ctx *c, grpc_status_code status, const char *details, const ProtobufCMessage *reply);
void respond_error(coordinator *co, call_ctx *c, grpc_status_code status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Wait lists of calls answered later: park until timeout_s (or the call's
 * own deadline); unpark returns whether c was in the list. */
void park(call_ctx **list, call_ctx *c, double timeout_s);
bool unpark(call_ctx **list, call_ctx *c);
void ctx_unref(coordinator *co, call_ctx *c);
double now_s(void);

void handle_kv(coordinator *co, call_ctx *c);      /* KvSet, KvGet, KvAdd */
void handle_barrier(coordinator *co, call_ctx *c);

#endif
