/* comm_shm.c: shared memory between the ranks of one machine: one segment per
 * communicator per machine, holding one single-producer single-consumer ring
 * of messages per local rank (to its ring successor).
 *
 * Why: a copy into shared memory and a copy (or fused reduce) out of it is
 * the least a CPU collective can do without kernel help.
 * Invariants:
 *  - The segment is unlinked as soon as every local rank has mapped it, so
 *    /dev/shm holds nothing afterwards, whatever happens to the processes.
 *    A creator that died before unlinking leaves a name with its pid in it;
 *    the next creator removes such names of dead pids.
 *  - Each rank holds an fcntl write lock on its own byte of the segment file
 *    for as long as it lives; the kernel drops it when the process dies, so
 *    F_GETLK tells a waiting peer "that rank is gone" (zombies included).
 *  - ring.head counts published messages, ring.tail consumed ones; waits spin
 *    briefly, then sleep on the ring's futex word `events`, bumped on every
 *    publish, consume and abort.
 *  - `broken` holds (first failing rank + 1); every wait checks it, so one
 *    failure ends the collective on every local rank.
 */
#include "comm_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SHM_MAGIC 0x7a727473686d3031ull /* "zrtshm01" */
#define MAX_LOCAL 256
#define SPINS 200
#define LIVENESS_CHECK_S 0.05

typedef struct {
    atomic_uint_fast64_t head;
    char pad0[56];
    atomic_uint_fast64_t tail;
    char pad1[56];
    atomic_uint events;   /* futex word */
    atomic_uint waiters;
    char pad2[56];
} shm_ring;

typedef struct {
    uint64_t magic;
    uint32_t n_local;
    atomic_uint broken;   /* 0, or failing rank + 1 */
    char reason[256];
    char pad[64];
} shm_header;

#define SLOT_BYTES (sizeof(zrt_msg_header) + ZRT_CHANNEL_PAYLOAD)
#define RING_BYTES (sizeof(shm_ring) + ZRT_CHANNEL_SLOTS * SLOT_BYTES)

struct zrt_shm {
    int fd;
    void *base;
    size_t size;
    int rank;
    int n_local;
    int local_ranks[MAX_LOCAL];
};

typedef struct {
    zrt_channel base;
    zrt_shm *shm;
    shm_ring *ring;
    int peer_local;      /* index of the peer in local_ranks */
    double next_liveness_check;
} shm_channel;

static shm_header *header_of(zrt_shm *shm) { return shm->base; }

static shm_ring *ring_of(zrt_shm *shm, int local)
{
    return (shm_ring *)((char *)shm->base + sizeof(shm_header) + (size_t)local * RING_BYTES);
}

static char *slot_of(shm_ring *ring, uint64_t n)
{
    return (char *)(ring + 1) + (n % ZRT_CHANNEL_SLOTS) * SLOT_BYTES;
}

static void futex_wait(atomic_uint *word, unsigned expected, double seconds)
{
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    syscall(SYS_futex, word, FUTEX_WAIT, expected, &ts, NULL, 0);
}

static void bump(shm_ring *ring)
{
    atomic_fetch_add(&ring->events, 1);
    if (atomic_load(&ring->waiters)) syscall(SYS_futex, &ring->events, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* ---- liveness ---------------------------------------------------------------------- */

static int lock_byte(int fd, int local, int cmd, struct flock *lk)
{
    *lk = (struct flock){.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = local, .l_len = 1};
    return fcntl(fd, cmd, lk);
}

static bool peer_alive(zrt_shm *shm, int local)
{
    struct flock lk;
    if (lock_byte(shm->fd, local, F_GETLK, &lk) != 0) return true; /* cannot tell: assume alive */
    return lk.l_type != F_UNLCK;
}

void zrt_shm_set_broken(zrt_shm *shm, int rank, const char *reason)
{
    if (!shm) return;
    shm_header *h = header_of(shm);
    unsigned expected = 0;
    if (atomic_compare_exchange_strong(&h->broken, &expected, (unsigned)rank + 1))
        snprintf(h->reason, sizeof h->reason, "%s", reason);
    zrt_shm_wake_all(shm);
}

void zrt_shm_wake_all(zrt_shm *shm)
{
    if (!shm) return;
    for (int i = 0; i < shm->n_local; i++) bump(ring_of(shm, i));
}

/* The checks every wait makes between sleeps. */
static zrt_status shm_wait_check(shm_channel *ch, const zrt_wait *w)
{
    zrt_shm *shm = ch->shm;
    shm_header *h = header_of(shm);
    unsigned broken = atomic_load(&h->broken);
    if (broken && (int)broken - 1 != shm->rank)
        return zrt_set_error(ZRT_ERR_PEER, "rank %d: %s failed: %s", shm->rank,
                             w->op ? zrt_op_name(w->op->kind) : "setup", h->reason);
    zrt_status status = zrt_wait_check(w, ch->base.peer);
    if (status != ZRT_OK) return status;
    double now = zrt_now();
    if (now >= ch->next_liveness_check) {
        ch->next_liveness_check = now + LIVENESS_CHECK_S;
        if (!peer_alive(shm, ch->peer_local))
            return zrt_set_error(ZRT_ERR_PEER, "rank %d: %s failed: peer rank %d is gone (process exited)",
                                 shm->rank, w->op ? zrt_op_name(w->op->kind) : "setup", ch->base.peer);
    }
    return ZRT_OK;
}

/* Waits until ready(ring) holds. */
static zrt_status shm_wait(shm_channel *ch, bool (*ready)(shm_ring *), const zrt_wait *w)
{
    shm_ring *ring = ch->ring;
    for (int spin = 0; spin < SPINS; spin++) {
        if (ready(ring)) return ZRT_OK;
        __builtin_ia32_pause();
    }
    for (;;) {
        atomic_fetch_add(&ring->waiters, 1);
        unsigned seen = atomic_load(&ring->events);
        bool ok = ready(ring);
        if (!ok) futex_wait(&ring->events, seen, 0.01);
        atomic_fetch_sub(&ring->waiters, 1);
        if (ok || ready(ring)) return ZRT_OK;
        zrt_status status = shm_wait_check(ch, w);
        if (status != ZRT_OK) return status;
    }
}

/* ---- the channel ops -------------------------------------------------------------------- */

static bool has_space(shm_ring *r) { return atomic_load(&r->head) - atomic_load(&r->tail) < ZRT_CHANNEL_SLOTS; }
static bool has_message(shm_ring *r) { return atomic_load(&r->head) != atomic_load(&r->tail); }

static zrt_status shm_send_acquire(zrt_channel *base, void **payload, const zrt_wait *w)
{
    shm_channel *ch = (shm_channel *)base;
    ZRT_CHECK(shm_wait(ch, has_space, w));
    *payload = slot_of(ch->ring, atomic_load(&ch->ring->head)) + sizeof(zrt_msg_header);
    return ZRT_OK;
}

static zrt_status shm_send_commit(zrt_channel *base, const zrt_msg_header *header, const zrt_wait *w)
{
    (void)w;
    shm_channel *ch = (shm_channel *)base;
    uint64_t head = atomic_load(&ch->ring->head);
    memcpy(slot_of(ch->ring, head), header, sizeof *header);
    atomic_store(&ch->ring->head, head + 1); /* release: the payload is visible first */
    bump(ch->ring);
    return ZRT_OK;
}

static zrt_status shm_recv_acquire(zrt_channel *base, zrt_msg_header *header, const void **payload,
                                   const zrt_wait *w)
{
    shm_channel *ch = (shm_channel *)base;
    ZRT_CHECK(shm_wait(ch, has_message, w));
    const char *slot = slot_of(ch->ring, atomic_load(&ch->ring->tail));
    memcpy(header, slot, sizeof *header);
    *payload = slot + sizeof *header;
    return ZRT_OK;
}

static void shm_recv_release(zrt_channel *base)
{
    shm_channel *ch = (shm_channel *)base;
    atomic_fetch_add(&ch->ring->tail, 1);
    bump(ch->ring);
}

static zrt_status shm_flush(zrt_channel *base, const zrt_wait *w)
{
    (void)base;
    (void)w;
    return ZRT_OK; /* a committed message is already in the segment */
}

static void shm_channel_destroy(zrt_channel *base) { free(base); }

static const zrt_channel_ops shm_channel_ops = {shm_send_acquire, shm_send_commit, shm_recv_acquire,
                                                shm_recv_release, shm_flush, shm_channel_destroy};

static int local_index(const zrt_shm *shm, int rank)
{
    for (int i = 0; i < shm->n_local; i++)
        if (shm->local_ranks[i] == rank) return i;
    return -1;
}

zrt_status zrt_shm_channel(zrt_shm *shm, int from, int to, bool sending, zrt_channel **out)
{
    int from_local = local_index(shm, from), to_local = local_index(shm, to);
    if (from_local < 0 || to_local < 0) return zrt_set_error(ZRT_ERR_INTERNAL, "shm: rank not on this machine");
    shm_channel *ch = calloc(1, sizeof *ch);
    if (!ch) return zrt_set_error(ZRT_ERR_NOMEM, "shm: out of memory");
    ch->base.ops = &shm_channel_ops;
    ch->base.peer = sending ? to : from;
    ch->shm = shm;
    ch->ring = ring_of(shm, from_local);
    ch->peer_local = sending ? to_local : from_local;
    *out = &ch->base;
    return ZRT_OK;
}

/* ---- the segment ----------------------------------------------------------------------------- */

/* Removes /dev/shm/zrt-UID-PID-* left by creators that died before unlinking. */
static void remove_stale_segments(void)
{
    DIR *dir = opendir("/dev/shm");
    if (!dir) return;
    char prefix[64];
    int n = snprintf(prefix, sizeof prefix, "zrt-%d-", (int)getuid());
    for (struct dirent *e; (e = readdir(dir));) {
        if (strncmp(e->d_name, prefix, (size_t)n) != 0) continue;
        int pid = atoi(e->d_name + n);
        if (pid > 0 && kill(pid, 0) != 0 && errno == ESRCH) {
            char name[300];
            snprintf(name, sizeof name, "/%s", e->d_name);
            shm_unlink(name);
        }
    }
    closedir(dir);
}

static zrt_status map_segment(zrt_shm *shm, const char *name, bool create)
{
    shm->size = sizeof(shm_header) + (size_t)shm->n_local * RING_BYTES;
    shm->fd = shm_open(name, O_RDWR | (create ? O_CREAT | O_EXCL : 0), 0600);
    if (shm->fd < 0) return zrt_set_error(ZRT_ERR_IO, "shm: open %s: %s", name, strerror(errno));
    if (create && ftruncate(shm->fd, (off_t)shm->size) != 0)
        return zrt_set_error(ZRT_ERR_IO, "shm: size %s to %zu bytes: %s", name, shm->size, strerror(errno));
    shm->base = mmap(NULL, shm->size, PROT_READ | PROT_WRITE, MAP_SHARED, shm->fd, 0);
    if (shm->base == MAP_FAILED) {
        shm->base = NULL;
        return zrt_set_error(ZRT_ERR_IO, "shm: map %s (%zu bytes): %s", name, shm->size, strerror(errno));
    }
    if (create) {
        shm_header *h = header_of(shm);
        h->n_local = (uint32_t)shm->n_local;
        h->magic = SHM_MAGIC;
    } else if (header_of(shm)->magic != SHM_MAGIC || header_of(shm)->n_local != (uint32_t)shm->n_local) {
        return zrt_set_error(ZRT_ERR_INTERNAL, "shm: %s is not this communicator's segment", name);
    }
    struct flock lk;
    if (lock_byte(shm->fd, local_index(shm, shm->rank), F_SETLK, &lk) != 0)
        return zrt_set_error(ZRT_ERR_IO, "shm: liveness lock: %s", strerror(errno));
    return ZRT_OK;
}

/* The leader creates and announces; the others map and say so; the leader
 * unlinks once everyone has mapped. */
static zrt_status rendezvous(zrt_shm *shm, zrt_store *store, const char *name, double timeout_s)
{
    char key[128], seg[128];
    int leader = shm->local_ranks[0];
    snprintf(key, sizeof key, "%s/shm/%d", name, leader);
    if (shm->rank == leader) {
        remove_stale_segments();
        snprintf(seg, sizeof seg, "/zrt-%d-%d-%lx", (int)getuid(), (int)getpid(), (unsigned long)random());
        ZRT_CHECK(map_segment(shm, seg, true));
        ZRT_CHECK(zrt_store_set(store, key, seg, strlen(seg)));
        for (int i = 1; i < shm->n_local; i++) {
            void *value;
            size_t len;
            snprintf(key, sizeof key, "%s/shm_mapped/%d", name, shm->local_ranks[i]);
            zrt_status status = zrt_store_get(store, key, timeout_s, &value, &len);
            if (status != ZRT_OK) {
                shm_unlink(seg);
                return status;
            }
            free(value);
        }
        shm_unlink(seg);
        return ZRT_OK;
    }
    void *value;
    size_t len;
    ZRT_CHECK(zrt_store_get(store, key, timeout_s, &value, &len));
    snprintf(seg, sizeof seg, "%s", (char *)value);
    free(value);
    ZRT_CHECK(map_segment(shm, seg, false));
    snprintf(key, sizeof key, "%s/shm_mapped/%d", name, shm->rank);
    return zrt_store_set(store, key, "1", 1);
}

zrt_status zrt_shm_create(zrt_store *store, const char *name, int rank, const int *local_ranks, int n_local,
                          double timeout_s, zrt_shm **out)
{
    if (n_local > MAX_LOCAL) return zrt_set_error(ZRT_ERR_UNSUPPORTED, "shm: more than %d ranks on one machine", MAX_LOCAL);
    zrt_shm *shm = calloc(1, sizeof *shm);
    if (!shm) return zrt_set_error(ZRT_ERR_NOMEM, "shm: out of memory");
    shm->fd = -1;
    shm->rank = rank;
    shm->n_local = n_local;
    memcpy(shm->local_ranks, local_ranks, (size_t)n_local * sizeof *local_ranks);
    zrt_status status = rendezvous(shm, store, name, timeout_s);
    if (status != ZRT_OK) {
        zrt_shm_destroy(shm);
        return status;
    }
    *out = shm;
    return ZRT_OK;
}

void zrt_shm_destroy(zrt_shm *shm)
{
    if (!shm) return;
    if (shm->base) munmap(shm->base, shm->size);
    if (shm->fd >= 0) close(shm->fd); /* also drops the liveness lock */
    free(shm);
}
