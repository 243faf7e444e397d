/* job_files.c: what a launch leaves on disk, and who owns it: the lock that
 * keeps a second job out of a checkpoint_dir, and the removal of what a
 * killed launch left behind (its file-store directory, its progress file,
 * its token file).
 *
 * Why flock: the kernel drops it when the holder dies, however it dies, so a
 * job killed by -9 never keeps the directory; the file's text (who holds it)
 * is only for the message. Why "the owner pid is dead": the same rule as swap
 * files (offload/swap.c) -- names carry the pid of the process that made
 * them, and a name whose process no longer exists is a leftover.
 */
#include "control.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOCK_NAME ".zrt-job.lock"

bool zrt_launcher_pid_gone(int pid)
{
    return pid > 0 && pid != (int)getpid() && kill(pid, 0) != 0 && errno == ESRCH;
}

/* "zrt launch pid P on HOST since TIME" (or zrt train's), into the locked file. */
static void say_who(int fd, const char *who)
{
    char host[256] = "?", when[64];
    gethostname(host, sizeof host - 1);
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime(&now));
    char text[400];
    int n = snprintf(text, sizeof text, "%s pid %d on %s since %s\n", who, (int)getpid(), host, when);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t)n, 0) != n) return; /* the lock holds without its text */
}

zrt_status zrt_job_lock(const char *dir, const char *who, int *fd_out)
{
    *fd_out = -1;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) /* as a checkpoint save makes it: its parent must exist */
        return zrt_set_error(ZRT_ERR_IO, "checkpoint_dir %s: cannot create: %s", dir, strerror(errno));
    char path[ZRT_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/" LOCK_NAME, dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) return zrt_set_error(ZRT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char who[400] = "";
        ssize_t n = pread(fd, who, sizeof who - 1, 0);
        close(fd);
        who[n > 0 ? n : 0] = '\0';
        who[strcspn(who, "\n")] = '\0';
        return zrt_set_error(ZRT_ERR_CONFIG, "checkpoint_dir %s is in use by %s (lock %s): two jobs would interleave "
                             "their steps; wait for it, stop it, or give this job another checkpoint_dir", dir,
                             who[0] ? who : "another job", path);
    }
    say_who(fd, who);
    *fd_out = fd;
    return ZRT_OK;
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st, (void)type, (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

zrt_status zrt_launcher_remove_tree(const char *path)
{
    if (nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT)
        return zrt_set_error(ZRT_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
    return ZRT_OK;
}

/* Appends path to report (comma-separated). */
static void noted(char *report, size_t size, const char *path)
{
    size_t used = strlen(report);
    if (used + 1 < size) snprintf(report + used, size - used, "%s%s", used ? ", " : "", path);
}

void zrt_launcher_clean_leftovers(const char *tmpdir, char *report, size_t size)
{
    static const char *const prefixes[] = {"zrt-launch-", "zrt-progress-"}; /* then the owner's pid */
    DIR *dir = opendir(tmpdir);
    if (!dir) return;
    for (struct dirent *d; (d = readdir(dir));) {
        for (int i = 0; i < 2; i++) {
            size_t n = strlen(prefixes[i]);
            char *end;
            long pid = strncmp(d->d_name, prefixes[i], n) == 0 ? strtol(d->d_name + n, &end, 10) : 0;
            if (pid <= 0 || (*end != '\0' && *end != '-') || !zrt_launcher_pid_gone((int)pid)) continue;
            char path[ZRT_PATH_MAX + 300];
            snprintf(path, sizeof path, "%s/%s", tmpdir, d->d_name);
            if (zrt_launcher_remove_tree(path) == ZRT_OK) noted(report, size, path);
        }
    }
    closedir(dir);
}

/* A token file's second line: the pid of the launch that wrote it (0: none). */
static int token_owner(const char *path)
{
    char text[512] = "";
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, text, sizeof text - 1) : 0;
    if (fd >= 0) close(fd);
    text[n > 0 ? n : 0] = '\0';
    char *line = strchr(text, '\n');
    return line ? atoi(line + 1) : 0;
}

void zrt_launcher_clean_tokens(char *report, size_t size)
{
    char dir_path[ZRT_PATH_MAX];
    DIR *dir = zrt_control_token_dir(dir_path, sizeof dir_path) == ZRT_OK ? opendir(dir_path) : NULL;
    if (!dir) return; /* none yet, or not a private directory: not ours to clean */
    for (struct dirent *d; (d = readdir(dir));) {
        size_t n = strlen(d->d_name);
        if (n < 7 || strcmp(d->d_name + n - 6, ".token") != 0) continue;
        char path[ZRT_PATH_MAX + 300];
        snprintf(path, sizeof path, "%s/%s", dir_path, d->d_name);
        if (zrt_launcher_pid_gone(token_owner(path)) && unlink(path) == 0) noted(report, size, path);
    }
    closedir(dir);
}
