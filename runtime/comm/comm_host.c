/* comm_host.c: the "host" comm backend: ring collectives on CPU buffers over
 * channels (shared memory to a rank on this machine, TCP to one elsewhere).
 *
 * Why a ring: each rank sends (n-1)/n of the data once, whatever n is, and
 * talks only to two neighbours. Messages are pipelined pieces of at most
 * ZRT_CHANNEL_PAYLOAD bytes; for each piece a rank does all n-1 steps before
 * the next piece, so on every channel the messages arrive in the order they
 * are consumed.
 * Reduction order (fixed, so results are identical run to run): chunk c of a
 * reduce_scatter is summed starting at rank c+1: ((x[c+1] + x[c+2]) + ...)
 * + x[c], all ranks mod n. bf16/fp16 travel as fp32 partial sums and are
 * rounded once, at the end. all_reduce is reduce_scatter then all_gather of
 * the count padded to a multiple of n: bit for bit that pair.
 * On any failure the rank marks the shared segment broken and shuts its
 * sockets, so every other rank's collective fails too instead of hanging.
 */
#include "cast.h"
#include "comm_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define MAX_HOSTNAME 256

typedef struct {
    int rank, world;
    zrt_shm *shm;
    zrt_tcp *tcp;
    zrt_channel *to_next;
    zrt_channel *from_prev;
} host_state;

/* ---- per-element helpers (math in kernels/cast.h) ------------------------------------ */

static float f32_identity(float v) { return v; }
static float bf16_load(uint16_t h) { return zrt_bf16_to_f32(h); }
static float f16_load(uint16_t h) { return zrt_f16_to_f32(h); }

/* One definition, one loop per dtype (a switch per element would stop the
 * compiler from vectorizing):
 *  accumulate_T: out[i] = in[i] + x[i], or just x[i] without in (no +0.0
 *    that would turn -0.0 into +0.0); fp32 partial sums on the wire.
 *  finish_T: dst[i] = (partial[i] + x[i]) / divisor rounded once to T (the
 *    last ring step); without partial (one rank) x[i] / divisor. */
#define DEFINE_REDUCE_LOOPS(T, ELEM, LOAD, STORE)                                                        \
    static void accumulate_##T(float *restrict out, const float *restrict in, const ELEM *restrict x,    \
                               size_t n)                                                                 \
    {                                                                                                    \
        if (in) for (size_t i = 0; i < n; i++) out[i] = in[i] + LOAD(x[i]);                              \
        else for (size_t i = 0; i < n; i++) out[i] = LOAD(x[i]);                                         \
    }                                                                                                    \
    static void finish_##T(ELEM *restrict dst, const float *restrict partial, const ELEM *restrict x,    \
                           size_t n, int divisor)                                                        \
    {                                                                                                    \
        float d = (float)divisor;                                                                        \
        if (partial && divisor == 1) for (size_t i = 0; i < n; i++) dst[i] = STORE(partial[i] + LOAD(x[i])); \
        else if (partial) for (size_t i = 0; i < n; i++) dst[i] = STORE((partial[i] + LOAD(x[i])) / d);   \
        else if (divisor == 1) for (size_t i = 0; i < n; i++) dst[i] = STORE(LOAD(x[i]));                 \
        else for (size_t i = 0; i < n; i++) dst[i] = STORE(LOAD(x[i]) / d);                               \
    }

DEFINE_REDUCE_LOOPS(f32, float, f32_identity, f32_identity)
DEFINE_REDUCE_LOOPS(bf16, uint16_t, bf16_load, zrt_f32_to_bf16)
DEFINE_REDUCE_LOOPS(f16, uint16_t, f16_load, zrt_f32_to_f16)

static void accumulate(float *out, const float *in, const void *x, size_t n, zrt_dtype dtype)
{
    if (dtype == ZRT_DTYPE_F32) accumulate_f32(out, in, x, n);
    else if (dtype == ZRT_DTYPE_BF16) accumulate_bf16(out, in, x, n);
    else accumulate_f16(out, in, x, n);
}

static void finish_reduce(void *dst, const float *partial, const void *x, size_t n, zrt_dtype dtype, int divisor)
{
    if (dtype == ZRT_DTYPE_F32) finish_f32(dst, partial, x, n, divisor);
    else if (dtype == ZRT_DTYPE_BF16) finish_bf16(dst, partial, x, n, divisor);
    else finish_f16(dst, partial, x, n, divisor);
}

/* memcpy for output that is not read again soon: non-temporal stores skip
 * the read-for-ownership of every destination line (a third of the memory
 * traffic of a large copy). Plain memcpy where SSE2 is absent. */
static void copy_to_memory(void *dst, const void *src, size_t n)
{
#if defined(__SSE2__)
    char *d = dst;
    const char *s = src;
    size_t head = (16 - ((uintptr_t)d & 15)) & 15;
    if (n < 256 || head > n) {
        memcpy(d, s, n);
        return;
    }
    memcpy(d, s, head);
    d += head, s += head, n -= head;
    for (; n >= 64; d += 64, s += 64, n -= 64) {
        __m128i a = _mm_loadu_si128((const __m128i *)s), b = _mm_loadu_si128((const __m128i *)(s + 16));
        __m128i c = _mm_loadu_si128((const __m128i *)(s + 32)), e = _mm_loadu_si128((const __m128i *)(s + 48));
        _mm_stream_si128((__m128i *)d, a);
        _mm_stream_si128((__m128i *)(d + 16), b);
        _mm_stream_si128((__m128i *)(d + 32), c);
        _mm_stream_si128((__m128i *)(d + 48), e);
    }
    memcpy(d, s, n);
    _mm_sfence();
#else
    memcpy(dst, src, n);
#endif
}

static const char *elem(const void *base, size_t index, zrt_dtype dtype)
{
    return (const char *)base + index * zrt_dtype_size(dtype);
}

/* ---- messages --------------------------------------------------------------------------- */

static zrt_msg_header header_for(const host_state *s, const zrt_comm_op *op, size_t bytes)
{
    return (zrt_msg_header){.seq = op->seq, .kind = (uint32_t)op->kind, .dtype = (uint32_t)op->dtype,
                            .count = op->count, .bytes = (uint32_t)bytes, .sender = (uint32_t)s->rank};
}

static zrt_status receive(host_state *s, const zrt_comm_op *op, size_t bytes, const void **payload,
                          const zrt_wait *w)
{
    zrt_msg_header h;
    ZRT_CHECK(s->from_prev->ops->recv_acquire(s->from_prev, &h, payload, w));
    if (h.seq == op->seq && h.kind == op->kind && h.dtype == op->dtype && h.count == op->count && h.bytes == bytes)
        return ZRT_OK;
    return zrt_set_error(ZRT_ERR_INVALID,
                         "rank %d: collective #%llu mismatch: this rank called %s(count %zu, %s) but rank %u sent "
                         "collective #%llu %s(count %llu, %s): every rank must issue the same collectives",
                         s->rank, (unsigned long long)op->seq, zrt_op_name(op->kind), op->count,
                         zrt_dtype_name(op->dtype), h.sender, (unsigned long long)h.seq,
                         zrt_op_name((zrt_op_kind)h.kind), (unsigned long long)h.count,
                         zrt_dtype_name((zrt_dtype)h.dtype));
}

static zrt_status send_bytes(host_state *s, const zrt_comm_op *op, const void *data, size_t bytes, const zrt_wait *w)
{
    void *payload;
    ZRT_CHECK(s->to_next->ops->send_acquire(s->to_next, &payload, w));
    memcpy(payload, data, bytes);
    zrt_msg_header h = header_for(s, op, bytes);
    return s->to_next->ops->send_commit(s->to_next, &h, w);
}

/* ---- the ring algorithms ------------------------------------------------------------------ */

/* recv[count] = ring-ordered sum of chunk `rank` of send[world * count]. */
static zrt_status reduce_scatter(host_state *s, const zrt_comm_op *op, const void *send, void *recv, size_t count,
                                 const zrt_wait *w)
{
    int n = s->world, r = s->rank;
    zrt_dtype dt = op->dtype;
    bool avg = op->reduce == ZRT_REDUCE_AVG; /* the fp32 sum divided by n, then rounded */
    const size_t piece = ZRT_CHANNEL_PAYLOAD / sizeof(float);
    for (size_t off = 0; off < count; off += piece) {
        size_t len = count - off < piece ? count - off : piece;
        for (int step = 0; step < n - 1; step++) {
            size_t chunk = (size_t)((r - 1 - step + 2 * n) % n);
            const void *in = NULL;
            if (step > 0) ZRT_CHECK(receive(s, op, len * sizeof(float), &in, w));
            void *out;
            ZRT_CHECK(s->to_next->ops->send_acquire(s->to_next, &out, w));
            accumulate(out, in, elem(send, chunk * count + off, dt), len, dt);
            zrt_msg_header h = header_for(s, op, len * sizeof(float));
            ZRT_CHECK(s->to_next->ops->send_commit(s->to_next, &h, w));
            if (step > 0) s->from_prev->ops->recv_release(s->from_prev);
        }
        const float *partial = NULL;
        if (n > 1) ZRT_CHECK(receive(s, op, len * sizeof(float), (const void **)&partial, w));
        const void *own = elem(send, (size_t)r * count + off, dt);
        void *dst = (char *)recv + off * zrt_dtype_size(dt);
        finish_reduce(dst, partial, own, len, dt, avg ? n : 1);
        if (n > 1) s->from_prev->ops->recv_release(s->from_prev);
    }
    return n > 1 ? s->to_next->ops->flush(s->to_next, w) : ZRT_OK;
}

/* recv[world * count] = every rank's send[count] in rank order. Each piece of
 * our own chunk is read once, into the outgoing message, and copied to recv
 * from there while it is still in cache. */
static zrt_status all_gather(host_state *s, const zrt_comm_op *op, const void *send, void *recv, size_t count,
                             const zrt_wait *w)
{
    int n = s->world, r = s->rank;
    size_t es = zrt_dtype_size(op->dtype);
    char *own = (char *)recv + (size_t)r * count * es;
    if (n == 1) {
        if (own != send) memmove(own, send, count * es);
        return ZRT_OK;
    }
    const size_t piece = ZRT_CHANNEL_PAYLOAD / es;
    for (size_t off = 0; off < count; off += piece) {
        size_t len = count - off < piece ? count - off : piece, bytes = len * es;
        void *out;
        ZRT_CHECK(s->to_next->ops->send_acquire(s->to_next, &out, w));
        memcpy(out, (const char *)send + off * es, bytes);
        if (own != send) copy_to_memory(own + off * es, out, bytes);
        zrt_msg_header h = header_for(s, op, bytes);
        ZRT_CHECK(s->to_next->ops->send_commit(s->to_next, &h, w));
        for (int step = 1; step < n; step++) {
            size_t chunk = (size_t)((r - step + n) % n);
            const void *in;
            ZRT_CHECK(receive(s, op, bytes, &in, w));
            copy_to_memory((char *)recv + (chunk * count + off) * es, in, bytes);
            if (step < n - 1) ZRT_CHECK(send_bytes(s, op, in, bytes, w));
            s->from_prev->ops->recv_release(s->from_prev);
        }
    }
    return s->to_next->ops->flush(s->to_next, w);
}

static zrt_status broadcast(host_state *s, const zrt_comm_op *op, void *buf, size_t count, const zrt_wait *w)
{
    int n = s->world;
    if (n == 1) return ZRT_OK;
    int distance = (s->rank - op->root + n) % n; /* hops from the root */
    size_t es = zrt_dtype_size(op->dtype), piece = ZRT_CHANNEL_PAYLOAD / es;
    for (size_t off = 0; off < count; off += piece) {
        size_t len = count - off < piece ? count - off : piece;
        char *at = (char *)buf + off * es;
        if (distance == 0) {
            ZRT_CHECK(send_bytes(s, op, at, len * es, w));
            continue;
        }
        const void *in;
        ZRT_CHECK(receive(s, op, len * es, &in, w));
        memcpy(at, in, len * es);
        if (distance < n - 1) ZRT_CHECK(send_bytes(s, op, in, len * es, w));
        s->from_prev->ops->recv_release(s->from_prev);
    }
    return s->to_next->ops->flush(s->to_next, w);
}

/* reduce_scatter + all_gather on count padded to a multiple of world. */
static zrt_status all_reduce(host_state *s, const zrt_comm_op *op, const zrt_wait *w)
{
    size_t n = (size_t)s->world, es = zrt_dtype_size(op->dtype);
    size_t chunk = (op->count + n - 1) / n, padded = chunk * n;
    if (padded == op->count) {
        char *mine = (char *)op->recv + (size_t)s->rank * chunk * es;
        ZRT_CHECK(reduce_scatter(s, op, op->send, mine, chunk, w));
        return all_gather(s, op, mine, op->recv, chunk, w);
    }
    char *scratch = calloc(padded * 2, es);
    if (!scratch) return zrt_set_error(ZRT_ERR_NOMEM, "all_reduce: no memory for %zu elements", padded);
    char *gathered = scratch + padded * es;
    memcpy(scratch, op->send, op->count * es);
    char *mine = gathered + (size_t)s->rank * chunk * es;
    zrt_status status = reduce_scatter(s, op, scratch, mine, chunk, w);
    if (status == ZRT_OK) status = all_gather(s, op, mine, gathered, chunk, w);
    if (status == ZRT_OK) memcpy(op->recv, gathered, op->count * es);
    free(scratch);
    return status;
}

static zrt_status run(void *state, const zrt_comm_op *op, const zrt_wait *w)
{
    host_state *s = state;
    if (op->count == 0 && op->kind != ZRT_OP_BARRIER) return ZRT_OK; /* nothing moves; buffers may be NULL */
    zrt_status status = ZRT_OK;
    float token = (float)s->rank, tokens[1024]; /* world <= 1024, checked at create */
    switch (op->kind) {
    case ZRT_OP_ALL_GATHER: status = all_gather(s, op, op->send, op->recv, op->count, w); break;
    case ZRT_OP_REDUCE_SCATTER: status = reduce_scatter(s, op, op->send, op->recv, op->count, w); break;
    case ZRT_OP_ALL_REDUCE: status = all_reduce(s, op, w); break;
    case ZRT_OP_BROADCAST: status = broadcast(s, op, op->recv, op->count, w); break;
    case ZRT_OP_BARRIER: {
        zrt_comm_op gather = *op;
        gather.count = 1;
        status = all_gather(s, &gather, &token, tokens, 1, w);
        break;
    }
    }
    if (status != ZRT_OK) {
        /* Tell the others: they fail now instead of at their deadline. */
        zrt_shm_set_broken(s->shm, s->rank, zrt_last_error());
        zrt_tcp_shutdown(s->tcp);
    }
    return status;
}

static void wake(void *state) { zrt_shm_wake_all(((host_state *)state)->shm); }

static void destroy(void *state)
{
    host_state *s = state;
    if (s->to_next) s->to_next->ops->destroy(s->to_next);
    if (s->from_prev) s->from_prev->ops->destroy(s->from_prev);
    zrt_tcp_destroy(s->tcp);
    zrt_shm_destroy(s->shm);
    free(s);
}

static const zrt_comm_backend host_backend = {"host", run, NULL, wake, destroy, NULL};

/* ---- setup ---------------------------------------------------------------------------------- */

typedef struct {
    char host[MAX_HOSTNAME + 16]; /* ranks with the same host share memory */
    char endpoint[64];
} rank_info;

static zrt_status exchange(const zrt_comm_options *o, const char *self, rank_info *all)
{
    char key[128];
    snprintf(key, sizeof key, "%s/host/%d", o->name, o->rank);
    ZRT_CHECK(zrt_store_set(o->store, key, self, strlen(self)));
    for (int q = 0; q < o->world_size; q++) {
        void *value;
        size_t len;
        snprintf(key, sizeof key, "%s/host/%d", o->name, q);
        ZRT_CHECK(zrt_store_get(o->store, key, o->timeout_s, &value, &len));
        int fields = sscanf(value, "%271s %63s", all[q].host, all[q].endpoint);
        free(value);
        if (fields != 2) return zrt_set_error(ZRT_ERR_PEER, "comm: rank %d published a malformed endpoint", q);
    }
    return ZRT_OK;
}

static zrt_status connect_ring(host_state *s, const zrt_comm_options *o, const rank_info *all)
{
    int next = (s->rank + 1) % s->world, prev = (s->rank - 1 + s->world) % s->world;
    const char *mine = all[s->rank].host;
    int local[1024], n_local = 0;
    for (int q = 0; q < s->world && n_local < 1024; q++)
        if (strcmp(all[q].host, mine) == 0) local[n_local++] = q;
    if (n_local > 1) ZRT_CHECK(zrt_shm_create(o->store, o->name, s->rank, local, n_local, o->timeout_s, &s->shm));
    if (strcmp(all[next].host, mine) == 0) ZRT_CHECK(zrt_shm_channel(s->shm, s->rank, next, true, &s->to_next));
    else ZRT_CHECK(zrt_tcp_connect(s->tcp, next, all[next].endpoint, o->timeout_s, &s->to_next));
    if (strcmp(all[prev].host, mine) == 0) return zrt_shm_channel(s->shm, prev, s->rank, false, &s->from_prev);
    return zrt_tcp_accept(s->tcp, prev, o->timeout_s, &s->from_prev);
}

zrt_status zrt_comm_host_create(const zrt_comm_options *o, const zrt_comm_backend **backend, void **state)
{
    if (o->world_size > 1024)
        return zrt_set_error(ZRT_ERR_UNSUPPORTED, "comm host: at most 1024 ranks (asked for %d)", o->world_size);
    host_state *s = calloc(1, sizeof *s);
    rank_info *all = calloc((size_t)o->world_size, sizeof *all);
    zrt_status status = ZRT_OK;
    if (!s || !all) {
        status = zrt_set_error(ZRT_ERR_NOMEM, "comm host: out of memory");
        goto done;
    }
    s->rank = o->rank;
    s->world = o->world_size;
    if (s->world > 1) {
        char hostname[MAX_HOSTNAME] = "localhost", self[MAX_HOSTNAME + 96], endpoint[64];
        gethostname(hostname, sizeof hostname - 1);
        ZRT_CHECK_GOTO(status, zrt_tcp_create(s->rank, o->socket_ifname, &s->tcp, endpoint, sizeof endpoint), done);
        /* force_tcp: every rank its own "machine". */
        if (o->force_tcp) snprintf(self, sizeof self, "%s#%d %s", hostname, s->rank, endpoint);
        else snprintf(self, sizeof self, "%s %s", hostname, endpoint);
        ZRT_CHECK_GOTO(status, exchange(o, self, all), done);
        ZRT_CHECK_GOTO(status, connect_ring(s, o, all), done);
    }
    *backend = &host_backend;
    *state = s;
    s = NULL;
done:
    if (s) destroy(s);
    free(all);
    return status;
}
