/* test_swap_faults.c: the swapper when I/O goes wrong (ZRT_FAULT_SWAP, the
 * test hook): a short read, a short write, EIO on a read and on a write --
 * each fails its request with an error naming the file, the offset in that
 * file and what happened, and every later request fails too (the swapper is
 * broken; the engine fails the step). And stale files: zrt-swap-* files of a
 * process that is gone are removed and named; those of a live one stay.
 */
#include "swap_common.h"
#include "zrt/internal/offload.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#define BLOCK (16 * 1024)
#define BYTES (8 * BLOCK)

/* The 3rd request of the kind fails: one block each, so logical chunk 2, in file 0 of two at offset BLOCK. */
static void fault(const char *const *dirs, const char *kind, bool write, const char *expect)
{
    char spec[64];
    snprintf(spec, sizeof spec, "%s:3", kind);
    setenv("ZRT_FAULT_SWAP", spec, 1);
    zrt_swap *swap = NULL;
    CHECK_OK(swap_open(dirs, 2, BYTES, BLOCK, 1, &swap)); /* depth 1: chunks complete in order */
    unsetenv("ZRT_FAULT_SWAP");
    if (!swap) return;
    uint32_t *buf = swap_buffer(BYTES);
    swap_pattern(buf, 0, BYTES, 1);
    uint64_t ticket, tickets[BYTES / BLOCK];
    if (!write) {
        CHECK_OK(zrt_swap_write(swap, 0, buf, BYTES, &ticket));
        CHECK_OK(zrt_swap_wait(swap, ticket));
    }
    for (int i = 0; i < BYTES / BLOCK; i++) {
        char *at = (char *)buf + (size_t)i * BLOCK;
        CHECK_OK(write ? zrt_swap_write(swap, (size_t)i * BLOCK, at, BLOCK, &tickets[i])
                       : zrt_swap_read(swap, (size_t)i * BLOCK, at, BLOCK, &tickets[i]));
    }
    for (int i = 0; i < 2; i++) zrt_swap_wait(swap, tickets[i]); /* done before the failure; may already say it */
    CHECK_MSG(zrt_swap_wait(swap, tickets[2]) == ZRT_ERR_IO, "%s not reported", kind);
    char file[1200];
    snprintf(file, sizeof file, "%s/zrt-swap-%d-test.0", dirs[0], (int)getpid());
    const char *msg = zrt_last_error();
    CHECK_MSG(strstr(msg, file) && strstr(msg, "at offset 16384") && strstr(msg, expect), "%s: %s", kind, msg);
    /* Broken: the next request fails with the same message. */
    zrt_status later = zrt_swap_read(swap, 0, buf, BLOCK, &ticket);
    if (later == ZRT_OK) later = zrt_swap_wait(swap, ticket);
    CHECK_MSG(later == ZRT_ERR_IO && strstr(zrt_last_error(), file), "%s: after the failure: %s", kind,
              zrt_last_error());
    for (int i = 3; i < BYTES / BLOCK; i++) CHECK(zrt_swap_wait(swap, tickets[i]) == ZRT_ERR_IO);
    zrt_swap_destroy(swap);
    CHECK(access(file, F_OK) != 0);
    free(buf);
}

static int dead_pid(void)
{
    pid_t child = fork();
    if (child == 0) _exit(0);
    waitpid(child, NULL, 0);
    return (int)child;
}

static void stale(const char *dir)
{
    char dead[1200], live[1200], other[1200];
    snprintf(dead, sizeof dead, "%s/zrt-swap-%d-rank0.0", dir, dead_pid());
    snprintf(live, sizeof live, "%s/zrt-swap-%d-rank1.0", dir, (int)getppid());
    snprintf(other, sizeof other, "%s/notes.txt", dir);
    const char *made[] = {dead, live, other};
    for (int i = 0; i < 3; i++) close(open(made[i], O_CREAT | O_WRONLY, 0600));
    char report[4096];
    const char *dirs[] = {dir};
    CHECK_OK(zrt_swap_clean_stale(dirs, 1, report, sizeof report));
    CHECK_MSG(strstr(report, dead) != NULL, "report: %s", report);
    CHECK(strstr(report, live) == NULL);
    CHECK(access(dead, F_OK) != 0);
    CHECK(access(live, F_OK) == 0 && access(other, F_OK) == 0);
    CHECK_OK(zrt_swap_clean_stale(dirs, 1, report, sizeof report));
    CHECK(report[0] == '\0');
    unlink(live);
    unlink(other);
}

int main(void)
{
    const char *dirs[] = {swap_dir("a"), swap_dir("b")};
    fault(dirs, "short_read", false, "short read: 8192 of 16384 bytes");
    fault(dirs, "short_write", true, "short write: 8192 of 16384 bytes");
    fault(dirs, "eio_read", false, "Input/output error");
    fault(dirs, "eio_write", true, "Input/output error");
    stale(swap_dir("stale"));
    return CHECK_DONE();
}
