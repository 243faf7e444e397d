/* zrt/comm.h: the rendezvous store the ranks of a job share and the
 * collectives among them (host and nccl backends). */
#ifndef ZRT_COMM_H
#define ZRT_COMM_H

#include "zrt/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- store ---------------------------------------------------------------
 * A small key-value store the ranks of a job share for bootstrap: endpoints,
 * the ncclUniqueId, counters. Keys are scoped: two stores with different
 * scopes (job id and generation, e.g. "job1/gen0") never see each other's
 * keys. Values are bytes. Keys: 1..255 bytes; values up to 1 MiB. */

typedef struct zrt_store zrt_store;

/* A store in a shared directory (created if missing; works across machines on
 * a shared filesystem, like torch's FileStore). set is atomic (write to a
 * temporary name, rename); add is atomic across processes (fcntl lock). */
zrt_status zrt_store_file_create(const char *dir, const char *scope, zrt_store **out);

/* A store backend (the control plane's gRPC store is one): zrt_store_*
 * check their arguments (keys 1..255 bytes, values up to 1 MiB) and call
 * these with the backend's state; contracts as for the calls below. */
typedef struct {
    zrt_status (*set)(void *state, const char *key, const void *value, size_t len);
    zrt_status (*get)(void *state, const char *key, double timeout_s, void **value, size_t *len);
    zrt_status (*add)(void *state, const char *key, int64_t delta, int64_t *result);
    zrt_status (*del)(void *state, const char *key);
    void (*destroy)(void *state); /* frees state */
} zrt_store_ops;

/* A store over a backend; takes ownership of state (destroyed with the
 * store, or at once when this fails). */
zrt_status zrt_store_create(const zrt_store_ops *ops, void *state, zrt_store **out);

zrt_status zrt_store_set(zrt_store *store, const char *key, const void *value, size_t len);
/* Blocks until key exists or timeout_s passes (ZRT_ERR_TIMEOUT naming the
 * key). On success *value is a malloc'ed copy (NUL-terminated for
 * convenience; the NUL is not counted in *len) that the caller frees. */
zrt_status zrt_store_get(zrt_store *store, const char *key, double timeout_s, void **value, size_t *len);
/* Atomically adds delta to the integer stored at key (0 if absent); the new
 * value goes to *result (may be NULL). */
zrt_status zrt_store_add(zrt_store *store, const char *key, int64_t delta, int64_t *result);
/* Removes key; ZRT_OK if it was absent too. */
zrt_status zrt_store_delete(zrt_store *store, const char *key);
void zrt_store_destroy(zrt_store *store);

/* ---- comm ----------------------------------------------------------------
 * Collectives among world_size ranks, as NCCL has them. Every rank must call
 * the same collectives in the same order with the same count and dtype; a
 * mismatch is detected and reported, never a silent wrong result.
 * Backends: "host" (CPU buffers: shared memory between ranks of one machine,
 * TCP between machines, ring algorithms, a fixed reduction order so results
 * are identical run to run) and "nccl" (device buffers; builds with CUDA).
 * Operations are asynchronous: with a non-NULL `request` the call enqueues
 * and returns; zrt_comm_wait() then blocks until done. Operations run in the
 * order they were issued. With request == NULL the call blocks.
 * After any failure (peer death, timeout, abort, mismatch) the communicator
 * is broken: every later operation fails at once with the first error. */

typedef enum { ZRT_REDUCE_SUM, ZRT_REDUCE_AVG } zrt_reduce_op;


typedef struct zrt_comm zrt_comm;
typedef struct zrt_comm_request zrt_comm_request;

typedef struct {
    int rank;
    int world_size;
    zrt_store *store;          /* for the bootstrap exchange; not owned */
    const char *name;          /* distinguishes communicators in one store ("world") */
    double timeout_s;          /* deadline of each operation and of setup (600) */
    const char *socket_ifname; /* interface for TCP (NULL: $ZRT_SOCKET_IFNAME, else any) */
    bool force_tcp;            /* host backend: TCP even between local ranks */
    int device;                /* nccl backend: the CUDA device index */
    bool stage_through_host;   /* host backend: stream-ordered ops go through pinned host staging (always on a
                                * cuda device's streams -- the hybrid mode; on the cpu device, for tests) */
} zrt_comm_options;

/* Fills defaults: rank 0 of 1, name "world", timeout 600 s. */
void zrt_comm_options_init(zrt_comm_options *options);

/* Creates the communicator with every other rank (blocks until they all
 * arrive or timeout_s passes). backend: "host" or "nccl".
 * ZRT_ERR_UNSUPPORTED for nccl in a build without CUDA. */
zrt_status zrt_comm_create(const char *backend, const zrt_comm_options *options, zrt_comm **out);

/* recv[world_size * count] = every rank's send[count], in rank order.
 * In place when send == recv + rank * count. */
zrt_status zrt_comm_all_gather(zrt_comm *comm, const void *send, void *recv, size_t count, zrt_dtype dtype,
                               zrt_comm_request **request);
/* recv[count] = reduction over ranks of send[rank * count .. +count]
 * (send holds world_size * count). bf16/fp16 accumulate in fp32 and round
 * once. In place when recv == send + rank * count. */
zrt_status zrt_comm_reduce_scatter(zrt_comm *comm, const void *send, void *recv, size_t count, zrt_dtype dtype,
                                   zrt_reduce_op op, zrt_comm_request **request);
/* recv[count] = reduction over ranks of send[count]: reduce_scatter then
 * all_gather (count padded to a multiple of world_size inside), so it is
 * bit for bit that pair. send == recv is allowed. */
zrt_status zrt_comm_all_reduce(zrt_comm *comm, const void *send, void *recv, size_t count, zrt_dtype dtype,
                               zrt_reduce_op op, zrt_comm_request **request);
/* buf[count] on every rank = buf on root. */
zrt_status zrt_comm_broadcast(zrt_comm *comm, void *buf, size_t count, zrt_dtype dtype, int root,
                              zrt_comm_request **request);
/* Blocks until every rank has called it. */
zrt_status zrt_comm_barrier(zrt_comm *comm);
/* Waits for a request and frees it; returns the operation's status. */
zrt_status zrt_comm_wait(zrt_comm_request *request);
/* Stream-ordered forms, for device buffers (what the engine uses): the
 * operation runs after the work enqueued on `stream` before the call, and
 * work enqueued on it later waits for the operation -- NCCL's model. On the
 * cpu device with the host backend, the stream's thread runs the operation
 * (through the communicator's worker); a failure fails the stream, and
 * zrt_stream_synchronize returns it. The nccl backend enqueues on the CUDA
 * stream itself. Every rank must issue the same operations in the same
 * order, as above; use one stream per communicator (or order them). */
typedef struct zrt_stream zrt_stream;
zrt_status zrt_comm_all_gather_on(zrt_comm *comm, const void *send, void *recv, size_t count, zrt_dtype dtype,
                                  zrt_stream *stream);
zrt_status zrt_comm_reduce_scatter_on(zrt_comm *comm, const void *send, void *recv, size_t count, zrt_dtype dtype,
                                      zrt_reduce_op op, zrt_stream *stream);
zrt_status zrt_comm_all_reduce_on(zrt_comm *comm, const void *send, void *recv, size_t count, zrt_dtype dtype,
                                  zrt_reduce_op op, zrt_stream *stream);
zrt_status zrt_comm_broadcast_on(zrt_comm *comm, void *buf, size_t count, zrt_dtype dtype, int root,
                                 zrt_stream *stream);
/* The communicator's first failure (ZRT_OK while it works), with its message. */
zrt_status zrt_comm_status(zrt_comm *comm);
/* Makes every pending and future operation fail with ZRT_ERR_ABORTED; a
 * waiting operation returns within a second. Safe from any thread, and
 * from a signal handler's thread while another thread waits. */
void zrt_comm_abort(zrt_comm *comm);
int zrt_comm_rank(const zrt_comm *comm);
int zrt_comm_world_size(const zrt_comm *comm);
/* Waits for queued operations, then frees everything (also the shared
 * memory and sockets). NULL is fine. */
void zrt_comm_destroy(zrt_comm *comm);

#ifdef __cplusplus
}
#endif
#endif
