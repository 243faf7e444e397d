/* test_swap_mounts.c: the swapper on filesystems that refuse: a full one (a
 * 1 MiB tmpfs, asked for 4 MiB: posix_fallocate gives ENOSPC) and a
 * read-only one. Each is an error naming the file and the reason, with
 * nothing left behind. The mounts are made in a mount namespace of this
 * process (unshare), so they need root or CAP_SYS_ADMIN: skipped, with
 * the reason, where that is refused.
 */
#include "swap_common.h"
#include "zrt/internal/offload.h"

#include <errno.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

static void must_refuse(const char *dir, size_t bytes, const char *expect)
{
    const char *dirs[] = {dir};
    zrt_swap *swap = NULL;
    zrt_status status = swap_open(dirs, 1, bytes, 64 * 1024, 4, &swap);
    char file[1200];
    snprintf(file, sizeof file, "%s/zrt-swap-%d-test.0", dir, (int)getpid());
    CHECK_MSG(status == ZRT_ERR_IO, "%s: created anyway", dir);
    CHECK_MSG(strstr(zrt_last_error(), file) && strstr(zrt_last_error(), expect), "%s", zrt_last_error());
    CHECK(access(file, F_OK) != 0);
    if (swap) zrt_swap_destroy(swap);
}

int main(void)
{
    if (unshare(CLONE_NEWNS) != 0) SKIP("unshare(CLONE_NEWNS): %s (needs root or CAP_SYS_ADMIN)", strerror(errno));
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) SKIP("mount --make-rprivate /: %s", strerror(errno));
    const char *full = swap_dir("full"), *readonly = swap_dir("readonly");
    if (mount("tmpfs", full, "tmpfs", 0, "size=1m") != 0) SKIP("mount tmpfs: %s", strerror(errno));
    if (mount("tmpfs", readonly, "tmpfs", MS_RDONLY, "size=1m") != 0) SKIP("mount tmpfs ro: %s", strerror(errno));
    must_refuse(full, 4 << 20, "No space left on device");
    must_refuse(readonly, 1 << 20, "Read-only file system");
    /* What fits still works there. */
    const char *dirs[] = {full};
    zrt_swap *swap = NULL;
    CHECK_OK(swap_open(dirs, 1, 256 * 1024, 64 * 1024, 4, &swap));
    zrt_swap_destroy(swap);
    umount(full);
    umount(readonly);
    return CHECK_DONE();
}
