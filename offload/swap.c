/* swap.c: the NVMe swapper: one logical file striped over directories,
 * io_uring with O_DIRECT, fixed buffers, requests split into chunks with
 * queue_depth in flight (zrt/offload.h has the contract).
 *
 * Why a reaper thread: a request larger than queue_depth chunks must keep
 * the queue full while the caller computes (the optimizer on sub-group k
 * while k+1 is read and k-1 written), so completions are reaped, and the
 * rest submitted, by a thread of the swapper. Callers submit what fits at
 * once; every submission holds the lock (one SQ producer at a time), the
 * reaper is the only CQ consumer. Why per-file striping in chunks: several
 * drives serve one sub-group together, with no RAID0 to set up.
 * Invariants: inflight <= depth; a request is done when all its chunks
 * completed; the first failure (EIO, short transfer) breaks the swapper.
 * Per chunk the swapper does what fio --fixedbufs --registerfiles does:
 * registered buffers and files (no page pinning nor file lookup per
 * request), and its chunk records come from a pool of `depth`, not malloc.
 */
#include "offload_internal.h"
#include "zrt/internal/error.h"
#include "zrt/internal/fault.h"
#include "zrt/internal/offload.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_REGISTERED 64
#define WAKE_TAG 0 /* user_data of the NOP that wakes the reaper to stop */

typedef struct request {
    uint64_t ticket;
    bool write;
    size_t offset, bytes;     /* logical */
    char *buffer;
    size_t next;              /* bytes handed to the ring so far */
    int chunks_left;          /* submitted and not completed */
    bool done;
    bool inject, fault_eio;   /* ZRT_FAULT_SWAP: its first completed chunk fails, short or with EIO */
    uint64_t after;           /* 0, or an earlier ticket: every write up to it is done before a chunk of this one is submitted */
    struct request *next_pending;
} request;

typedef struct {
    request *req;
    size_t offset, bytes;     /* logical, within req */
} chunk;

struct zrt_swap {
    int n_files;
    int fds[ZRT_MAX_NVME_PATHS];
    char paths[ZRT_MAX_NVME_PATHS][ZRT_PATH_MAX + 64];
    size_t bytes, block, per_file;
    struct io_uring ring;
    bool files_registered;    /* sqes name files by index (IOSQE_FIXED_FILE) */
    int depth, inflight;
    chunk *chunks;            /* depth records; free ones on the stack below */
    int *free_chunks, n_free;
    void *reg_base[MAX_REGISTERED];
    size_t reg_bytes[MAX_REGISTERED];
    int n_registered;
    pthread_mutex_t lock;
    pthread_cond_t changed;   /* a request finished */
    pthread_t reaper;
    bool reaper_started, stopping;
    request *pending, *pending_tail;   /* with chunks left to submit */
    request **all;            /* every request not yet waited for, by ticket order */
    size_t n_all, cap_all;
    uint64_t next_ticket;
    zrt_status broken;
    char message[1024];
    char fault_kind[16];      /* ZRT_FAULT_SWAP */
    bool late_writes;         /* ZRT_FAULT_SWAP=late_writes:1: reads pass the writes queued before them */
    long fault_at, reads_seen, writes_seen; /* requests */
};

/* ---- files -------------------------------------------------------------------------------- */

static void file_of(const zrt_swap *s, size_t logical, int *file, size_t *file_offset)
{
    size_t c = logical / s->block;
    *file = (int)(c % (size_t)s->n_files);
    *file_offset = (c / (size_t)s->n_files) * s->block + logical % s->block;
}

static zrt_status open_file(zrt_swap *s, int i, const char *dir, const char *name)
{
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return zrt_set_error(ZRT_ERR_IO, "swap: %s is not a directory (nvme_path): %s", dir,
                             errno ? strerror(errno) : "not a directory");
    snprintf(s->paths[i], sizeof s->paths[i], "%s/zrt-swap-%d-%s.%d", dir, (int)getpid(), name, i);
    int fd = open(s->paths[i], O_RDWR | O_CREAT | O_EXCL | O_DIRECT | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EINVAL) fd = open(s->paths[i], O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600); /* no O_DIRECT here */
    if (fd < 0) return zrt_set_error(ZRT_ERR_IO, "swap: cannot create %s: %s", s->paths[i], strerror(errno));
    s->fds[i] = fd;
    int err = posix_fallocate(fd, 0, (off_t)s->per_file);
    if (err != 0)
        return zrt_set_error(ZRT_ERR_IO, "swap: cannot reserve %zu bytes for %s: %s", s->per_file, s->paths[i],
                             strerror(err));
    return ZRT_OK;
}

/* ---- the ring ------------------------------------------------------------------------------ */

static int registered_index(const zrt_swap *s, const char *buf, size_t bytes)
{
    for (int i = 0; i < s->n_registered; i++) {
        const char *base = s->reg_base[i];
        if (buf >= base && buf + bytes <= base + s->reg_bytes[i]) return i;
    }
    return -1;
}

static void fail(zrt_swap *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(zrt_swap *s, const char *fmt, ...)
{
    if (s->broken != ZRT_OK) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->message, sizeof s->message, fmt, ap);
    va_end(ap);
    s->broken = ZRT_ERR_IO;
}

/* With the lock: whether every write up to that ticket is done (or waited for already). */
static bool writes_done_through(const zrt_swap *s, uint64_t ticket)
{
    for (size_t i = 0; i < s->n_all && s->all[i]->ticket <= ticket; i++) /* in ticket order */
        if (s->all[i]->write && !s->all[i]->done) return false;
    return true;
}

static request *last_pending(const zrt_swap *s)
{
    request *last = s->pending;
    while (last && last->next_pending) last = last->next_pending;
    return last;
}

static bool may_start(const zrt_swap *s, const request *r)
{
    return r->next > 0 || !r->after || writes_done_through(s, r->after);
}

/* With the lock: where the request to submit from is linked -- the head, or
 * (ZRT_FAULT_SWAP=late_writes, a test's stand-in for a drive that lands
 * writes late) the first read when it may start: reads pass the writes
 * queued before them unless ordered after them, so an order a caller
 * relies on without asking for it (zrt_swap_read_after) breaks every time. */
static request **next_to_submit(zrt_swap *s)
{
    for (request **p = &s->pending; s->late_writes && *p; p = &(*p)->next_pending)
        if (!(*p)->write) return may_start(s, *p) ? p : &s->pending;
    return &s->pending;
}

/* With the lock: hands chunks of pending requests to the ring while there is
 * room, in queue order; a request ordered after another holds back itself and
 * what was queued behind it until that one is done (the reaper tries again). */
static void submit_pending(zrt_swap *s)
{
    int queued = 0;
    while (s->pending && s->inflight < s->depth && s->n_free > 0) {
        request **link = next_to_submit(s), *r = *link;
        if (!may_start(s, r)) break;
        struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
        if (!sqe) break;
        chunk *c = &s->chunks[s->free_chunks[--s->n_free]];
        size_t logical = r->offset + r->next, left = r->bytes - r->next;
        size_t in_block = s->block - logical % s->block, n = left < in_block ? left : in_block;
        int file;
        size_t at;
        file_of(s, logical, &file, &at);
        *c = (chunk){r, r->next, n};
        char *buf = r->buffer + r->next;
        int reg = registered_index(s, buf, n), fd = s->files_registered ? file : s->fds[file];
        if (r->write && reg >= 0) io_uring_prep_write_fixed(sqe, fd, buf, (unsigned)n, (off_t)at, reg);
        else if (r->write) io_uring_prep_write(sqe, fd, buf, (unsigned)n, (off_t)at);
        else if (reg >= 0) io_uring_prep_read_fixed(sqe, fd, buf, (unsigned)n, (off_t)at, reg);
        else io_uring_prep_read(sqe, fd, buf, (unsigned)n, (off_t)at);
        if (s->files_registered) sqe->flags |= IOSQE_FIXED_FILE;
        io_uring_sqe_set_data(sqe, c);
        r->next += n;
        r->chunks_left++;
        s->inflight++;
        queued++;
        if (r->next == r->bytes) {
            *link = r->next_pending;
            if (s->pending_tail == r) s->pending_tail = last_pending(s);
        }
    }
    if (queued) io_uring_submit(&s->ring);
}

/* The fault hook's verdict for a completed chunk: res as the kernel said, or altered. */
static int injected(request *r, int res)
{
    if (!r->inject) return res;
    r->inject = false;
    return r->fault_eio ? -EIO : res / 2;
}

static void complete(zrt_swap *s, chunk *c, int res)
{
    request *r = c->req;
    res = injected(r, res);
    if (res < 0 || (size_t)res != c->bytes) {
        int file;
        size_t at;
        file_of(s, r->offset + c->offset, &file, &at);
        if (res < 0)
            fail(s, "swap: %s of %zu bytes at offset %zu of %s: %s", r->write ? "write" : "read", c->bytes, at,
                 s->paths[file], strerror(-res));
        else
            fail(s, "swap: short %s: %d of %zu bytes at offset %zu of %s", r->write ? "write" : "read", res, c->bytes,
                 at, s->paths[file]);
    }
    s->inflight--;
    if (--r->chunks_left == 0 && r->next == r->bytes) r->done = true;
    s->free_chunks[s->n_free++] = (int)(c - s->chunks);
}

static void *reaper_main(void *arg)
{
    zrt_swap *s = arg;
    for (;;) {
        struct io_uring_cqe *cqe;
        int err = io_uring_wait_cqe(&s->ring, &cqe);
        if (err == -EINTR) continue;
        pthread_mutex_lock(&s->lock);
        if (err < 0) {
            fail(s, "swap: io_uring_wait_cqe: %s", strerror(-err));
            s->stopping = true;
        }
        bool wake = false;
        while (err == 0) {
            void *data = io_uring_cqe_get_data(cqe);
            if (data) complete(s, data, cqe->res);
            else wake = true;
            io_uring_cqe_seen(&s->ring, cqe);
            if (io_uring_peek_cqe(&s->ring, &cqe) != 0) break;
        }
        submit_pending(s);
        pthread_cond_broadcast(&s->changed);
        bool done = (s->stopping && s->inflight == 0) || wake;
        pthread_mutex_unlock(&s->lock);
        if (done) return NULL;
    }
}

/* ---- the API ---------------------------------------------------------------------------------- */

static void read_fault_hook(zrt_swap *s, const char *name)
{
    const char *spec = zrt_fault_spec("swap.io");
    char only[64] = "";
    int got = spec ? sscanf(spec, "%15[a-z_]:%ld:%63s", s->fault_kind, &s->fault_at, only) : 0;
    if (got < 2 || (got == 3 && strcmp(only, name) != 0)) s->fault_kind[0] = '\0';
    s->late_writes = strcmp(s->fault_kind, "late_writes") == 0;
}

zrt_status zrt_swap_create(const zrt_swap_options *o, zrt_swap **out)
{
    if (!o || !out || !o->paths || o->n_paths < 1 || o->n_paths > ZRT_MAX_NVME_PATHS || !o->name ||
        o->block_size < ZRT_SWAP_ALIGN || o->block_size % ZRT_SWAP_ALIGN || o->queue_depth < 1 || o->queue_depth > 4096)
        return zrt_set_error(ZRT_ERR_INVALID, "swap: bad options (1..%d paths, block size a multiple of %d, queue "
                                              "depth 1..4096)", ZRT_MAX_NVME_PATHS, ZRT_SWAP_ALIGN);
    zrt_swap *s = calloc(1, sizeof *s);
    if (!s) return zrt_set_error(ZRT_ERR_NOMEM, "swap: out of memory");
    for (int i = 0; i < ZRT_MAX_NVME_PATHS; i++) s->fds[i] = -1;
    s->n_files = o->n_paths;
    s->bytes = o->bytes;
    s->block = o->block_size;
    s->depth = o->queue_depth;
    size_t chunks = (o->bytes + s->block - 1) / s->block;
    s->per_file = ((chunks + (size_t)s->n_files - 1) / (size_t)s->n_files) * s->block;
    if (s->per_file == 0) s->per_file = s->block;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->changed, NULL);
    read_fault_hook(s, o->name);
    zrt_status status = ZRT_OK;
    for (int i = 0; i < s->n_files && status == ZRT_OK; i++) status = open_file(s, i, o->paths[i], o->name);
    s->chunks = calloc((size_t)s->depth, sizeof *s->chunks);
    s->free_chunks = calloc((size_t)s->depth, sizeof *s->free_chunks);
    if (status == ZRT_OK && (!s->chunks || !s->free_chunks)) status = zrt_set_error(ZRT_ERR_NOMEM, "swap: out of memory");
    for (int i = 0; s->free_chunks && i < s->depth; i++) s->free_chunks[s->n_free++] = i;
    int err = status == ZRT_OK ? io_uring_queue_init((unsigned)s->depth + 1, &s->ring, 0) : 0;
    if (err < 0) status = zrt_set_error(ZRT_ERR_IO, "swap: io_uring_queue_init: %s", strerror(-err));
    if (status == ZRT_OK) s->files_registered = io_uring_register_files(&s->ring, s->fds, (unsigned)s->n_files) == 0;
    if (status == ZRT_OK && pthread_create(&s->reaper, NULL, reaper_main, s) != 0) {
        io_uring_queue_exit(&s->ring);
        status = zrt_set_error(ZRT_ERR_NOMEM, "swap: cannot start the reaper thread");
    }
    if (status != ZRT_OK) {
        zrt_first_error first = {0};
        zrt_first_error_keep(&first, status);
        for (int i = 0; i < s->n_files; i++)
            if (s->fds[i] >= 0) {
                close(s->fds[i]);
                unlink(s->paths[i]);
            }
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->changed);
        free(s->chunks);
        free(s->free_chunks);
        free(s);
        return zrt_first_error_restore(&first);
    }
    s->reaper_started = true;
    *out = s;
    return ZRT_OK;
}

zrt_status zrt_swap_register(zrt_swap *s, void *const *buffers, const size_t *bytes, int n)
{
    if (!s || n < 0 || n > MAX_REGISTERED || (n && (!buffers || !bytes)))
        return zrt_set_error(ZRT_ERR_INVALID, "swap: register: 0..%d buffers", MAX_REGISTERED);
    struct iovec iov[MAX_REGISTERED];
    for (int i = 0; i < n; i++) {
        if ((uintptr_t)buffers[i] % ZRT_SWAP_ALIGN || bytes[i] == 0)
            return zrt_set_error(ZRT_ERR_INVALID, "swap: register: buffer %d is not %d-aligned", i, ZRT_SWAP_ALIGN);
        iov[i] = (struct iovec){buffers[i], bytes[i]};
    }
    pthread_mutex_lock(&s->lock);
    zrt_status status = ZRT_OK;
    if (s->inflight) status = zrt_set_error(ZRT_ERR_INVALID, "swap: register while requests are in flight");
    if (status == ZRT_OK && s->n_registered) io_uring_unregister_buffers(&s->ring);
    s->n_registered = 0;
    int err = status == ZRT_OK && n ? io_uring_register_buffers(&s->ring, iov, (unsigned)n) : 0;
    if (err < 0) status = zrt_set_error(ZRT_ERR_IO, "swap: io_uring_register_buffers: %s", strerror(-err));
    else if (status == ZRT_OK) {
        for (int i = 0; i < n; i++) {
            s->reg_base[i] = buffers[i];
            s->reg_bytes[i] = bytes[i];
        }
        s->n_registered = n;
    }
    pthread_mutex_unlock(&s->lock);
    return status;
}

/* With the lock: r behind the pending requests, or (first) before every one not started yet. */
static void add_pending(zrt_swap *s, request *r, bool first)
{
    request **at = &s->pending;
    if (!first && s->pending_tail) at = &s->pending_tail->next_pending;
    else if (first && s->pending && s->pending->next > 0) at = &s->pending->next_pending; /* it goes on */
    r->next_pending = *at;
    *at = r;
    if (!r->next_pending) s->pending_tail = r;
}

static zrt_status queue(zrt_swap *s, bool write, bool first, uint64_t after, size_t offset, void *buffer, size_t bytes,
                        uint64_t *ticket)
{
    if (!s || !ticket || (bytes && !buffer)) return zrt_set_error(ZRT_ERR_INVALID, "swap: NULL argument");
    if (offset % ZRT_SWAP_ALIGN || bytes % ZRT_SWAP_ALIGN || (uintptr_t)buffer % ZRT_SWAP_ALIGN || offset > s->bytes ||
        bytes > s->bytes - offset)
        return zrt_set_error(ZRT_ERR_INVALID, "swap: %s of %zu bytes at %zu: outside the %zu-byte file or not %d-aligned",
                             write ? "write" : "read", bytes, offset, s->bytes, ZRT_SWAP_ALIGN);
    request *r = calloc(1, sizeof *r);
    if (!r) return zrt_set_error(ZRT_ERR_NOMEM, "swap: out of memory");
    *r = (request){.write = write, .offset = offset, .bytes = bytes, .buffer = buffer, .done = bytes == 0, .after = after};
    pthread_mutex_lock(&s->lock);
    zrt_status status = after > s->next_ticket ? zrt_set_error(ZRT_ERR_INVALID, "swap: request %llu is not queued yet",
                                                               (unsigned long long)after)
                                               : ZRT_OK;
    if (status == ZRT_OK && s->n_all == s->cap_all) {
        size_t cap = s->cap_all ? 2 * s->cap_all : 64;
        request **grown = realloc(s->all, cap * sizeof *grown);
        if (grown) {
            s->all = grown;
            s->cap_all = cap;
        } else {
            status = zrt_set_error(ZRT_ERR_NOMEM, "swap: out of memory");
        }
    }
    if (status == ZRT_OK) {
        long seen = write ? ++s->writes_seen : ++s->reads_seen;
        const char *kind = s->fault_kind;
        if (seen == s->fault_at && strcmp(kind, "kill_write") == 0 && write) raise(SIGKILL); /* kill -9 mid-step */
        if (seen == s->fault_at && kind[0] && !s->late_writes && (strstr(kind, "write") != NULL) == write) {
            r->inject = bytes > 0;
            r->fault_eio = strncmp(kind, "eio", 3) == 0;
        }
        r->ticket = ++s->next_ticket;
        s->all[s->n_all++] = r;
        if (bytes) {
            add_pending(s, r, first);
            submit_pending(s);
        }
        *ticket = r->ticket;
    }
    pthread_mutex_unlock(&s->lock);
    if (status != ZRT_OK) free(r);
    return status;
}

zrt_status zrt_swap_read(zrt_swap *s, size_t offset, void *buffer, size_t bytes, uint64_t *ticket)
{
    return queue(s, false, false, 0, offset, buffer, bytes, ticket);
}

zrt_status zrt_swap_read_after(zrt_swap *s, uint64_t after, size_t offset, void *buffer, size_t bytes, uint64_t *ticket)
{
    return queue(s, false, false, after, offset, buffer, bytes, ticket);
}

zrt_status zrt_swap_write(zrt_swap *s, size_t offset, const void *buffer, size_t bytes, uint64_t *ticket)
{
    return queue(s, true, false, 0, offset, (void *)buffer, bytes, ticket);
}

zrt_status zrt_swap_write_first(zrt_swap *s, size_t offset, const void *buffer, size_t bytes, uint64_t *ticket)
{
    return queue(s, true, true, 0, offset, (void *)buffer, bytes, ticket);
}

zrt_status zrt_swap_wait(zrt_swap *s, uint64_t ticket)
{
    if (!s) return zrt_set_error(ZRT_ERR_INVALID, "zrt_swap_wait: NULL swap");
    pthread_mutex_lock(&s->lock);
    request *r = NULL;
    size_t at = 0;
    for (; at < s->n_all && !r; at++)
        if (s->all[at]->ticket == ticket) r = s->all[at];
    while (r && !r->done && s->broken == ZRT_OK) pthread_cond_wait(&s->changed, &s->lock);
    while (r && !r->done && r->chunks_left > 0) pthread_cond_wait(&s->changed, &s->lock); /* its buffer is ours again */
    if (r) {
        memmove(&s->all[at - 1], &s->all[at], (s->n_all - at) * sizeof *s->all);
        s->n_all--;
        if (!r->done) { /* broken: what was never submitted never will be */
            for (request **p = &s->pending; *p; p = &(*p)->next_pending)
                if (*p == r) {
                    *p = r->next_pending;
                    break;
                }
            s->pending_tail = last_pending(s);
        }
        free(r);
    }
    zrt_status status = s->broken;
    char message[sizeof s->message];
    snprintf(message, sizeof message, "%s", s->message);
    pthread_mutex_unlock(&s->lock);
    if (!r && status == ZRT_OK) return zrt_set_error(ZRT_ERR_INVALID, "swap: no request %llu", (unsigned long long)ticket);
    return status == ZRT_OK ? ZRT_OK : zrt_set_error(status, "%s", message);
}

void zrt_swap_destroy(zrt_swap *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->lock);
    while (s->inflight > 0) pthread_cond_wait(&s->changed, &s->lock);
    s->stopping = true;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
    if (sqe) {
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data(sqe, NULL); /* WAKE_TAG */
        io_uring_submit(&s->ring);
    }
    pthread_mutex_unlock(&s->lock);
    if (s->reaper_started) pthread_join(s->reaper, NULL);
    io_uring_queue_exit(&s->ring);
    for (size_t i = 0; i < s->n_all; i++) free(s->all[i]);
    free(s->all);
    for (int i = 0; i < s->n_files; i++) {
        close(s->fds[i]);
        unlink(s->paths[i]);
    }
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->changed);
    free(s->chunks);
    free(s->free_chunks);
    free(s);
}

zrt_status zrt_swap_clean_stale(const char *const *paths, int n_paths, char *report, size_t report_size)
{
    if (report_size) report[0] = '\0';
    size_t used = 0;
    for (int i = 0; i < n_paths; i++) {
        DIR *dir = opendir(paths[i]);
        if (!dir) continue; /* zrt_swap_create names a missing directory */
        for (struct dirent *d; (d = readdir(dir));) {
            int pid = 0, end = 0;
            if (sscanf(d->d_name, "zrt-swap-%d-%n", &pid, &end) != 1 || end == 0 || pid <= 0) continue;
            if (pid == (int)getpid() || kill(pid, 0) == 0 || errno != ESRCH) continue; /* alive (or not ours to judge) */
            char path[ZRT_PATH_MAX + 300];
            snprintf(path, sizeof path, "%s/%s", paths[i], d->d_name);
            if (unlink(path) == 0 && used + 1 < report_size)
                used += (size_t)snprintf(report + used, report_size - used, "%s\n", path);
        }
        closedir(dir);
    }
    return ZRT_OK;
}
