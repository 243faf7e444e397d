/* test_swap.c: the NVMe swapper (zrt/offload.h) on a real filesystem:
 * write then read back a pattern at sizes that are not a multiple of the
 * block, striped over one and three directories (each file holds its chunks:
 * checked by reading the files directly), many more requests than the queue
 * depth in flight at once, registered (fixed) and plain buffers, a read
 * ordered after a write of the same bytes, a write put before the queue, and bad
 * arguments refused by name. The files are gone after destroy.
 */
#include "swap_common.h"
#include "zrt/internal/offload.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#define BLOCK (64 * 1024)

static int swap_files_in(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += strncmp(e->d_name, "zrt-swap-", 9) == 0;
    if (d) closedir(d);
    return n;
}

/* Chunk c of the logical file is in file c % n at (c / n) * BLOCK. */
static void check_striping(const char *const *dirs, int n, size_t bytes, uint32_t salt)
{
    uint32_t *chunk = swap_buffer(BLOCK);
    for (int f = 0; f < n; f++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/zrt-swap-%d-test.%d", dirs[f], (int)getpid(), f);
        int fd = open(path, O_RDONLY);
        CHECK_MSG(fd >= 0, "%s missing", path);
        if (fd < 0) continue;
        for (size_t c = (size_t)f; c * BLOCK < bytes; c += (size_t)n) {
            size_t len = bytes - c * BLOCK < BLOCK ? bytes - c * BLOCK : BLOCK;
            ssize_t got = pread(fd, chunk, len, (off_t)((c / (size_t)n) * BLOCK));
            CHECK(got == (ssize_t)len);
            CHECK_MSG(swap_pattern_errors(chunk, c * BLOCK, len, salt) == 0, "file %d chunk %zu", f, c);
        }
        close(fd);
    }
    free(chunk);
}

static void roundtrip(const char *const *dirs, int n_dirs, size_t bytes, int depth, bool fixed)
{
    zrt_swap *swap = NULL;
    CHECK_OK(swap_open(dirs, n_dirs, bytes, BLOCK, depth, &swap));
    if (!swap) return;
    uint32_t *out = swap_buffer(bytes), *in = swap_buffer(bytes);
    swap_pattern(out, 0, bytes, 0xa5a5u);
    memset(in, 0, bytes);
    if (fixed) {
        void *bufs[2] = {out, in};
        size_t sizes[2] = {bytes, bytes};
        CHECK_OK(zrt_swap_register(swap, bufs, sizes, 2));
    }
    uint64_t ticket;
    CHECK_OK(zrt_swap_write(swap, 0, out, bytes, &ticket));
    CHECK_OK(zrt_swap_wait(swap, ticket));
    check_striping(dirs, n_dirs, bytes, 0xa5a5u);
    CHECK_OK(zrt_swap_read(swap, 0, in, bytes, &ticket));
    CHECK_OK(zrt_swap_wait(swap, ticket));
    CHECK_MSG(swap_pattern_errors(in, 0, bytes, 0xa5a5u) == 0, "%zu bytes over %d dirs, depth %d, fixed %d", bytes,
              n_dirs, depth, fixed);
    zrt_swap_destroy(swap);
    for (int i = 0; i < n_dirs; i++) CHECK_MSG(swap_files_in(dirs[i]) == 0, "files left in %s", dirs[i]);
    free(out);
    free(in);
}

/* 200 sub-group-sized requests queued at once on a depth-4 ring, waited in reverse order. */
static void many_requests(const char *const *dirs)
{
    enum { N = 200, PIECE = 3 * ZRT_SWAP_ALIGN };
    zrt_swap *swap = NULL;
    CHECK_OK(swap_open(dirs, 2, (size_t)N * PIECE, BLOCK, 4, &swap));
    if (!swap) return;
    uint32_t *out = swap_buffer((size_t)N * PIECE), *in = swap_buffer((size_t)N * PIECE);
    swap_pattern(out, 0, (size_t)N * PIECE, 7);
    memset(in, 0, (size_t)N * PIECE);
    uint64_t tickets[N];
    for (int i = 0; i < N; i++)
        CHECK_OK(zrt_swap_write(swap, (size_t)i * PIECE, (char *)out + (size_t)i * PIECE, PIECE, &tickets[i]));
    for (int i = N - 1; i >= 0; i--) CHECK_OK(zrt_swap_wait(swap, tickets[i]));
    for (int i = 0; i < N; i++)
        CHECK_OK(zrt_swap_read(swap, (size_t)i * PIECE, (char *)in + (size_t)i * PIECE, PIECE, &tickets[i]));
    for (int i = 0; i < N; i++) CHECK_OK(zrt_swap_wait(swap, tickets[i]));
    CHECK(swap_pattern_errors(in, 0, (size_t)N * PIECE, 7) == 0);
    CHECK(zrt_swap_wait(swap, tickets[0]) == ZRT_ERR_INVALID); /* already waited for */
    zrt_swap_destroy(swap);
    free(out);
    free(in);
}

/* A read ordered after a write of the same bytes (zrt_swap_read_after)
 * sees what was written, though it is queued at once and the write's last
 * chunks are still in flight; rounds alternate the pattern. A ticket not yet
 * given out is refused. */
static void read_after_write(const char *const *dirs)
{
    enum { BYTES = 24 * BLOCK, ROUNDS = 6 };
    zrt_swap *swap = NULL;
    CHECK_OK(swap_open(dirs, 2, BYTES, BLOCK, 8, &swap));
    if (!swap) return;
    uint32_t *out = swap_buffer(BYTES), *in = swap_buffer(BYTES);
    for (uint32_t round = 0; round < ROUNDS; round++) {
        swap_pattern(out, 0, BYTES, 11 + round);
        memset(in, 0, BYTES);
        uint64_t w, r;
        CHECK_OK(zrt_swap_write(swap, 0, out, BYTES, &w));
        CHECK_OK(zrt_swap_read_after(swap, w, 0, in, BYTES, &r));
        CHECK_OK(zrt_swap_wait(swap, r));
        CHECK_OK(zrt_swap_wait(swap, w));
        CHECK_MSG(swap_pattern_errors(in, 0, BYTES, 11 + round) == 0, "round %u read older bytes", round);
    }
    uint64_t r;
    CHECK(zrt_swap_read_after(swap, 1000000, 0, in, BLOCK, &r) == ZRT_ERR_INVALID);
    CHECK_MSG(strstr(zrt_last_error(), "not queued yet") != NULL, "%s", zrt_last_error());
    zrt_swap_destroy(swap);
    free(out);
    free(in);
}

/* zrt_swap_write_first goes before the requests queued and not started:
 * at depth 1, behind a long write W, a read R of region Z ordered after W
 * (so held back) and then a first-write F of Z: R sees F's bytes (queued
 * after R, F is submitted before it). Appended, R would read Z's old bytes. */
static void write_first_jumps_the_queue(const char *const *dirs)
{
    enum { LONG = 256 * BLOCK, Z = LONG, BYTES = LONG + BLOCK };
    zrt_swap *swap = NULL;
    CHECK_OK(swap_open(dirs, 1, BYTES, BLOCK, 1, &swap));
    if (!swap) return;
    uint32_t *out = swap_buffer(BYTES), *in = swap_buffer(BLOCK), *first = swap_buffer(BLOCK);
    swap_pattern(out, 0, BYTES, 3);
    swap_pattern(first, Z, BLOCK, 4);
    uint64_t w, r, f, old;
    CHECK_OK(zrt_swap_write(swap, 0, out, BYTES, &old)); /* Z's old bytes: salt 3 */
    CHECK_OK(zrt_swap_wait(swap, old));
    CHECK_OK(zrt_swap_write(swap, 0, out, LONG, &w));
    CHECK_OK(zrt_swap_read_after(swap, w, Z, in, BLOCK, &r));
    CHECK_OK(zrt_swap_write_first(swap, Z, first, BLOCK, &f));
    CHECK_OK(zrt_swap_wait(swap, r));
    CHECK_OK(zrt_swap_wait(swap, f));
    CHECK_OK(zrt_swap_wait(swap, w));
    CHECK_MSG(swap_pattern_errors(in, Z, BLOCK, 4) == 0, "the read did not see the write queued first after it");
    zrt_swap_destroy(swap);
    free(out);
    free(in);
    free(first);
}

/* ZRT_FAULT_SWAP=late_writes:1 (the engine tests' stand-in for a drive
 * that lands writes late): at depth 1, behind a long write, a read of Z
 * queued after a write of Z passes it and sees Z's old bytes; ordered after
 * it (zrt_swap_read_after), it sees the new ones. */
static void late_writes_hook(const char *const *dirs)
{
    enum { LONG = 256 * BLOCK, Z = LONG, BYTES = LONG + BLOCK };
    setenv("ZRT_FAULT_SWAP", "late_writes:1", 1);
    zrt_swap *swap = NULL;
    CHECK_OK(swap_open(dirs, 1, BYTES, BLOCK, 1, &swap));
    unsetenv("ZRT_FAULT_SWAP");
    if (!swap) return;
    uint32_t *out = swap_buffer(BYTES), *in = swap_buffer(BLOCK), *z = swap_buffer(BLOCK);
    swap_pattern(out, 0, BYTES, 5);
    for (int ordered = 0; ordered < 2; ordered++) {
        uint64_t old, w, z_write, r;
        swap_pattern(z, Z, BLOCK, 6 + (uint32_t)ordered);
        CHECK_OK(zrt_swap_write(swap, 0, out, BYTES, &old)); /* Z's old bytes: salt 5 */
        CHECK_OK(zrt_swap_wait(swap, old));
        CHECK_OK(zrt_swap_write(swap, 0, out, LONG, &w));
        CHECK_OK(zrt_swap_write(swap, Z, z, BLOCK, &z_write));
        CHECK_OK(zrt_swap_read_after(swap, ordered ? z_write : 0, Z, in, BLOCK, &r));
        CHECK_OK(zrt_swap_wait(swap, r));
        CHECK_OK(zrt_swap_wait(swap, z_write));
        CHECK_OK(zrt_swap_wait(swap, w));
        if (ordered) CHECK_MSG(swap_pattern_errors(in, Z, BLOCK, 7) == 0, "a read ordered after a late write missed it");
        else CHECK_MSG(swap_pattern_errors(in, Z, BLOCK, 5) == 0, "late_writes: the read did not pass the write");
    }
    zrt_swap_destroy(swap);
    free(out);
    free(in);
    free(z);
}

static void bad_arguments(const char *const *dirs)
{
    zrt_swap *swap = NULL;
    CHECK(swap_open(dirs, 1, 1 << 20, 1000, 4, &swap) == ZRT_ERR_INVALID); /* block not 4096-aligned */
    CHECK(strstr(zrt_last_error(), "block size") != NULL);
    CHECK(swap_open(dirs, 1, 1 << 20, BLOCK, 0, &swap) == ZRT_ERR_INVALID);
    const char *missing[] = {"/nonexistent/zrt-swap-dir"};
    CHECK(swap_open(missing, 1, 1 << 20, BLOCK, 4, &swap) == ZRT_ERR_IO);
    CHECK_MSG(strstr(zrt_last_error(), "/nonexistent/zrt-swap-dir") != NULL, "%s", zrt_last_error());
    CHECK_OK(swap_open(dirs, 1, 1 << 20, BLOCK, 4, &swap));
    if (!swap) return;
    char *buf = swap_buffer(2 * ZRT_SWAP_ALIGN);
    uint64_t ticket;
    CHECK(zrt_swap_read(swap, 100, buf, ZRT_SWAP_ALIGN, &ticket) == ZRT_ERR_INVALID);     /* offset */
    CHECK(zrt_swap_read(swap, 0, buf + 8, ZRT_SWAP_ALIGN, &ticket) == ZRT_ERR_INVALID);   /* buffer */
    CHECK(zrt_swap_write(swap, 1 << 20, buf, ZRT_SWAP_ALIGN, &ticket) == ZRT_ERR_INVALID); /* past the end */
    CHECK(strstr(zrt_last_error(), "outside") != NULL);
    void *unaligned = buf + 8;
    size_t bytes = ZRT_SWAP_ALIGN;
    CHECK(zrt_swap_register(swap, &unaligned, &bytes, 1) == ZRT_ERR_INVALID);
    zrt_swap_destroy(swap);
    free(buf);
}

int main(void)
{
    const char *one[] = {swap_dir("one")};
    const char *three[] = {swap_dir("a"), swap_dir("b"), swap_dir("c")};
    size_t odd = 5 * BLOCK + 3 * ZRT_SWAP_ALIGN; /* the last chunk is short */
    roundtrip(one, 1, odd, 8, false);
    roundtrip(three, 3, odd, 8, true);
    roundtrip(three, 3, 40 * BLOCK, 1, false);
    roundtrip(three, 2, ZRT_SWAP_ALIGN, 64, true);
    many_requests(three);
    read_after_write(three);
    write_first_jumps_the_queue(one);
    late_writes_hook(one);
    bad_arguments(one);
    return CHECK_DONE();
}
