/* comm_common.h: what the comm tests share: deterministic per-rank data, the
 * serial reference of each collective (in the host backend's documented
 * reduction order), and a communicator built on a file store in $TMPDIR.
 */
#ifndef ZRT_TEST_COMM_COMMON_H
#define ZRT_TEST_COMM_COMMON_H

#include "cast.h"
#include "check.h"
#include "zrt.h"
#include "zrt/device.h"

/* A float in [-1, 1) with a full mantissa, from (rank, index, salt). */
static inline float gen(int rank, size_t i, int salt)
{
    uint32_t h = (uint32_t)i * 2654435761u ^ ((uint32_t)rank * 40503u + (uint32_t)salt * 977u);
    h ^= h >> 13;
    h *= 0x5bd1e995u;
    h ^= h >> 15;
    return (float)(h & 0xffffff) / 8388608.0f - 1.0f;
}

static inline float load_as_f32(const void *p, size_t i, zrt_dtype dt) { return zrt_load_f32(p, i, (int)dt); }
static inline void store_from_f32(void *p, size_t i, float v, zrt_dtype dt) { zrt_store_f32(p, i, (int)dt, v); }

/* v as a buffer of dtype dt holds it. */
static inline float as_held(float v, zrt_dtype dt)
{
    if (dt == ZRT_DTYPE_BF16) return zrt_bf16_to_f32(zrt_f32_to_bf16(v));
    if (dt == ZRT_DTYPE_F16) return zrt_f16_to_f32(zrt_f32_to_f16(v));
    return v;
}

/* Fills buf[n] (dtype dt) with rank's data, element i at index base + i. */
static inline void fill(void *buf, size_t n, size_t base, int rank, int salt, zrt_dtype dt)
{
    for (size_t i = 0; i < n; i++) store_from_f32(buf, i, gen(rank, base + i, salt), dt);
}

/* The reduction of element `index` over ranks in ring order starting at
 * rank (chunk + 1): ((x[c+1] + x[c+2]) + ...) + x[c], rounded once to dt. */
static inline void reference_reduce(void *out, size_t i, size_t index, int chunk, int world, int salt, zrt_dtype dt,
                                    zrt_reduce_op op)
{
    float acc = 0;
    for (int k = 1; k <= world; k++) {
        int q = (chunk + k) % world;
        float v = as_held(gen(q, index, salt), dt);
        acc = k == 1 ? v : acc + v;
    }
    store_from_f32(out, i, op == ZRT_REDUCE_AVG ? acc / (float)world : acc, dt);
}

/* A communicator among `world` processes, rendezvousing in $TMPDIR/SCOPE. */
/* Set by a test (before forking its ranks): open_comm's communicators stage
 * stream-ordered ops through pinned host memory, as on a GPU without NCCL. */
static bool open_comm_staged;

/* The backend open_comm makes: "host" unless a test says "nccl". */
static const char *open_comm_backend = "host";

/* NCCL refuses two ranks of one host on one GPU ("Duplicate GPU detected"),
 * and a GPU lease has one GPU: each rank (a process of its own) claims a
 * host of its own (NCCL_HOSTID) and talks over sockets on loopback, InfiniBand
 * off -- so reduce_scatter, all_gather and the padded all_reduce run with
 * several ranks on the one GPU. Set before the communicator is made. */
static inline void nccl_own_host(int rank)
{
    char host[64];
    snprintf(host, sizeof host, "zrt-test-rank-%d", rank);
    setenv("NCCL_HOSTID", host, 1);
    setenv("NCCL_SOCKET_IFNAME", "lo", 1);
    setenv("NCCL_IB_DISABLE", "1", 1);
    setenv("NCCL_NET", "Socket", 1);
}

static inline zrt_status open_comm(const char *scope, int rank, int world, bool force_tcp, double timeout_s,
                                   zrt_store **store, zrt_comm **comm)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/stores", test_tmpdir());
    zrt_status status = zrt_store_file_create(dir, scope, store);
    if (status != ZRT_OK) return status;
    zrt_comm_options o;
    zrt_comm_options_init(&o);
    o.rank = rank;
    o.world_size = world;
    o.store = *store;
    o.force_tcp = force_tcp;
    o.timeout_s = timeout_s;
    o.socket_ifname = "lo";
    o.stage_through_host = open_comm_staged;
    if (strcmp(open_comm_backend, "nccl") == 0 && world > 1) nccl_own_host(rank);
    return zrt_comm_create(open_comm_backend, &o, comm);
}

/* The abort contract, the same on every backend (test_comm_abort: host;
 * test_cuda_nccl: NCCL): after zrt_comm_abort every later collective fails
 * with ZRT_ERR_ABORTED -- blocking, request and stream-ordered forms, the
 * barrier -- and zrt_comm_status says so. send and recv: count fp32 of
 * stream's device, recv count * world. */
static inline void check_abort_is_final(zrt_comm *comm, const void *send, void *recv, size_t count,
                                        zrt_stream *stream)
{
    zrt_comm_abort(comm);
    zrt_status status = zrt_comm_all_gather(comm, send, recv, count, ZRT_DTYPE_F32, NULL);
    CHECK_MSG(status == ZRT_ERR_ABORTED, "blocking all_gather after abort: %s", status ? zrt_last_error() : "ok");
    zrt_comm_request *req = NULL;
    status = zrt_comm_all_reduce(comm, send, recv, count, ZRT_DTYPE_F32, ZRT_REDUCE_SUM, &req);
    if (status == ZRT_OK) status = zrt_comm_wait(req);
    CHECK_MSG(status == ZRT_ERR_ABORTED, "requested all_reduce after abort: %s", status ? zrt_last_error() : "ok");
    status = zrt_comm_all_gather_on(comm, send, recv, count, ZRT_DTYPE_F32, stream);
    if (status == ZRT_OK) status = zrt_stream_synchronize(stream);
    CHECK_MSG(status == ZRT_ERR_ABORTED, "all_gather on a stream after abort: %s", status ? zrt_last_error() : "ok");
    CHECK(zrt_comm_barrier(comm) == ZRT_ERR_ABORTED);
    CHECK(zrt_comm_status(comm) == ZRT_ERR_ABORTED);
    printf("after abort: %s\n", zrt_last_error());
}

#endif
