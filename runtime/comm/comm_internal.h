/* comm_internal.h: what comm.c (the public API and its worker thread) shares
 * with the backends (comm_host.c, comm_nccl.c) and the host backend's
 * transports (comm_shm.c, comm_tcp.c).
 *
 * Why this shape: comm.c validates arguments and runs operations one at a
 * time, in issue order, on a worker thread (so callers can overlap
 * communication with compute); a backend only implements a blocking `run`.
 * The host backend moves data through channels -- one-way message queues to
 * the next rank of the ring and from the previous one -- so its ring
 * algorithms do not care whether a peer is behind shared memory or TCP.
 */
#ifndef ZRT_COMM_INTERNAL_H
#define ZRT_COMM_INTERNAL_H


#include "zrt.h"

#include <stdatomic.h>
#include <stdint.h>

typedef enum {
    ZRT_OP_ALL_GATHER,
    ZRT_OP_REDUCE_SCATTER,
    ZRT_OP_ALL_REDUCE,
    ZRT_OP_BROADCAST,
    ZRT_OP_BARRIER
} zrt_op_kind;

const char *zrt_op_name(zrt_op_kind kind);

typedef struct {
    zrt_op_kind kind;
    const void *send;
    void *recv;          /* broadcast: the buffer */
    size_t count;        /* as in the public call */
    zrt_dtype dtype;
    zrt_reduce_op reduce;
    int root;
    uint64_t seq;        /* the n-th operation on this communicator */
} zrt_comm_op;

/* What a blocking wait inside a backend must honour. */
typedef struct {
    const atomic_int *aborted; /* set by zrt_comm_abort() */
    double deadline;           /* zrt_now() seconds */
    int rank;
    const zrt_comm_op *op;
} zrt_wait;

/* Returns ZRT_ERR_ABORTED or ZRT_ERR_TIMEOUT (with a message naming the peer
 * waited on) when the wait must end, else ZRT_OK. */
zrt_status zrt_wait_check(const zrt_wait *w, int peer);

typedef struct {
    const char *name;
    zrt_status (*run)(void *state, const zrt_comm_op *op, const zrt_wait *w);
    /* Stream-ordered: enqueue the operation on a native (CUDA) stream and
     * return; NULL for backends that run on the host (comm.c then runs `run`
     * from a host function on the stream). */
    zrt_status (*run_on)(void *state, const zrt_comm_op *op, void *native_stream, const zrt_wait *w);
    void (*wake)(void *state);      /* after abort: unblock waits promptly */
    void (*destroy)(void *state);
    /* A failure found after run_on returned (NCCL's watchdog: a deadline, an
     * async error), ZRT_OK while none; NULL where every failure is returned. */
    zrt_status (*status)(void *state);
} zrt_comm_backend;

zrt_status zrt_comm_host_create(const zrt_comm_options *options, const zrt_comm_backend **backend, void **state);
zrt_status zrt_comm_nccl_create(const zrt_comm_options *options, const zrt_comm_backend **backend, void **state);

/* ---- channels (host backend) ------------------------------------------------ */

/* Payload bytes per message: big enough to amortize synchronisation, small
 * enough that a message stays in L2 between the write and the read. */
#define ZRT_CHANNEL_PAYLOAD (256 * 1024)
#define ZRT_CHANNEL_SLOTS 8

/* Every message carries what it belongs to, so a rank that called another
 * collective, count or dtype is caught at the first message. 64 bytes. */
typedef struct {
    uint64_t seq;
    uint32_t kind;
    uint32_t dtype;
    uint64_t count;
    uint32_t bytes;   /* payload bytes in this message */
    uint32_t sender;  /* rank */
    uint8_t reserved[32];
} zrt_msg_header;

typedef struct zrt_channel zrt_channel;

typedef struct {
    /* A payload buffer (ZRT_CHANNEL_PAYLOAD bytes) for the next message. */
    zrt_status (*send_acquire)(zrt_channel *ch, void **payload, const zrt_wait *w);
    zrt_status (*send_commit)(zrt_channel *ch, const zrt_msg_header *header, const zrt_wait *w);
    /* The next message, valid until recv_release. */
    zrt_status (*recv_acquire)(zrt_channel *ch, zrt_msg_header *header, const void **payload, const zrt_wait *w);
    void (*recv_release)(zrt_channel *ch);
    /* Blocks until everything committed has left this process. */
    zrt_status (*flush)(zrt_channel *ch, const zrt_wait *w);
    void (*destroy)(zrt_channel *ch);
} zrt_channel_ops;

struct zrt_channel {
    const zrt_channel_ops *ops;
    int peer; /* the rank at the other end */
};

/* Shared memory among the ranks of one machine (comm_shm.c). */
typedef struct zrt_shm zrt_shm;

/* local_ranks: the global ranks on this machine, ascending; the first creates
 * the segment. Everyone maps it, then it is unlinked: nothing stays in
 * /dev/shm even if a process dies later. */
zrt_status zrt_shm_create(zrt_store *store, const char *name, int rank, const int *local_ranks, int n_local,
                          double timeout_s, zrt_shm **out);
/* The channel carrying messages from local rank `from` to its ring successor `to`. */
zrt_status zrt_shm_channel(zrt_shm *shm, int from, int to, bool sending, zrt_channel **out);
/* Marks the segment broken (the first failing rank's reason wins) and wakes
 * every waiter; a no-op when shm is NULL. */
void zrt_shm_set_broken(zrt_shm *shm, int rank, const char *reason);
void zrt_shm_wake_all(zrt_shm *shm);
/* Called from the thread that owns this rank's liveness lock. */
void zrt_shm_destroy(zrt_shm *shm);

/* TCP between machines (comm_tcp.c). */
typedef struct zrt_tcp zrt_tcp;

/* Opens a listener on ifname's address (NULL: any) and returns "host:port". */
zrt_status zrt_tcp_create(int rank, const char *ifname, zrt_tcp **out, char *endpoint, size_t endpoint_size);
/* Connects to `to` at endpoint (sending side) / accepts from `from`. */
zrt_status zrt_tcp_connect(zrt_tcp *tcp, int to, const char *endpoint, double timeout_s, zrt_channel **out);
zrt_status zrt_tcp_accept(zrt_tcp *tcp, int from, double timeout_s, zrt_channel **out);
/* Shuts every connection down, so the peers' waits fail at once; NULL is fine. */
void zrt_tcp_shutdown(zrt_tcp *tcp);
void zrt_tcp_destroy(zrt_tcp *tcp);

#endif
