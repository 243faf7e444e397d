/* output.c: atomic outputs (zrt/output.h) -- a file or a directory is
 * written beside its target under a temporary name and renamed over it only
 * when complete and fsynced; a failure removes the temporary and leaves what
 * was there before untouched.
 *
 * Why renameat2(RENAME_EXCHANGE) for directories: rename() cannot replace a
 * non-empty directory, and "remove the old, then rename the new" has a
 * moment where neither exists; the exchange swaps both in one step, and the
 * old one (now under the temporary name) is removed after.
 */
#include "zrt.h"
#include "zrt/internal/error.h"
#include "zrt/internal/output.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* tmp = DIR/.BASE.tmp-TAG for path = DIR/BASE. */
static zrt_status temp_name(const char *path, const char *tag, char *tmp, size_t size)
{
    const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
    int dir_len = slash ? (int)(slash - path) + 1 : 0;
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
        return zrt_set_error(ZRT_ERR_INVALID, "%s: not a file or directory name to write", path);
    int n = snprintf(tmp, size, "%.*s.%s.tmp-%s", dir_len, path, base, tag ? tag : pid);
    return n > 0 && (size_t)n < size ? ZRT_OK : zrt_set_error(ZRT_ERR_INVALID, "%s: path too long", path);
}

static void fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* The directory that holds path. */
static void fsync_parent(const char *path)
{
    char copy[ZRT_OUT_PATH_MAX + 64];
    snprintf(copy, sizeof copy, "%s", path);
    fsync_path(dirname(copy));
}

/* ---- files ------------------------------------------------------------------------------------- */

zrt_status zrt_out_file_open(zrt_out_file *f, const char *path)
{
    f->fd = -1;
    if (snprintf(f->path, sizeof f->path, "%s", path) >= (int)sizeof f->path)
        return zrt_set_error(ZRT_ERR_INVALID, "%s: path too long", path);
    ZRT_CHECK(temp_name(path, NULL, f->tmp, sizeof f->tmp));
    f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (f->fd < 0) return zrt_set_error(ZRT_ERR_IO, "%s: cannot create: %s", f->tmp, strerror(errno));
    return ZRT_OK;
}

zrt_status zrt_write_all(int fd, const void *data, size_t len, const char *path)
{
    for (const char *p = data; len;) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return zrt_set_error(ZRT_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        p += n;
        len -= (size_t)n;
    }
    return ZRT_OK;
}

zrt_status zrt_out_file_write(zrt_out_file *f, const void *data, size_t len)
{
    return zrt_write_all(f->fd, data, len, f->tmp);
}

void zrt_out_file_abort(zrt_out_file *f)
{
    if (f->fd >= 0) close(f->fd);
    f->fd = -1;
    unlink(f->tmp);
}

zrt_status zrt_out_file_commit(zrt_out_file *f)
{
    zrt_status status = ZRT_OK;
    if (fsync(f->fd) != 0) status = zrt_set_error(ZRT_ERR_IO, "%s: fsync: %s", f->tmp, strerror(errno));
    if (close(f->fd) != 0 && status == ZRT_OK) status = zrt_set_error(ZRT_ERR_IO, "%s: close: %s", f->tmp, strerror(errno));
    f->fd = -1;
    if (status == ZRT_OK && rename(f->tmp, f->path) != 0)
        status = zrt_set_error(ZRT_ERR_IO, "%s: rename from %s: %s", f->path, f->tmp, strerror(errno));
    if (status != ZRT_OK) {
        unlink(f->tmp);
        return status;
    }
    fsync_parent(f->path);
    return ZRT_OK;
}

zrt_status zrt_out_write_text(const char *path, const char *text)
{
    zrt_out_file f;
    zrt_status status = zrt_out_file_open(&f, path);
    if (status == ZRT_OK) status = zrt_out_file_write(&f, text, strlen(text));
    if (status == ZRT_OK) return zrt_out_file_commit(&f);
    zrt_out_file_abort(&f);
    return status;
}

/* ---- directories ---------------------------------------------------------------------------------- */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)ftw;
    return (flag == FTW_DP ? rmdir(path) : unlink(path)) == 0 || errno == ENOENT ? 0 : -1;
}

zrt_status zrt_remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? ZRT_OK : zrt_set_error(ZRT_ERR_IO, "%s: %s", path, strerror(errno));
    if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return zrt_set_error(ZRT_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
    return ZRT_OK;
}

zrt_status zrt_out_dir_name(zrt_out_dir *d, const char *path, const char *tag)
{
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') len--; /* "out/" names out */
    if (len >= sizeof d->path) return zrt_set_error(ZRT_ERR_INVALID, "%s: path too long", path);
    snprintf(d->path, sizeof d->path, "%.*s", (int)len, path);
    return temp_name(d->path, tag, d->tmp, sizeof d->tmp);
}

zrt_status zrt_out_dir_create(zrt_out_dir *d)
{
    ZRT_CHECK(zrt_remove_tree(d->tmp));
    if (mkdir(d->tmp, 0755) != 0) return zrt_set_error(ZRT_ERR_IO, "%s: cannot create: %s", d->tmp, strerror(errno));
    return ZRT_OK;
}

void zrt_out_dir_abort(zrt_out_dir *d)
{
    zrt_first_error first = {0};
    zrt_first_error_keep(&first, ZRT_ERR_IO); /* the error that made us abort */
    zrt_remove_tree(d->tmp);
    zrt_first_error_restore(&first);
}

/* Every regular file directly in dir, then dir itself, on disk. */
static void fsync_tree(const char *dir)
{
    DIR *dp = opendir(dir);
    for (struct dirent *e; dp && (e = readdir(dp));) {
        char path[ZRT_OUT_PATH_MAX + 384];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISREG(st.st_mode)) fsync_path(path);
    }
    if (dp) closedir(dp);
    fsync_path(dir);
}

zrt_status zrt_out_dir_commit(zrt_out_dir *d)
{
    fsync_tree(d->tmp);
    struct stat st;
    bool exists = lstat(d->path, &st) == 0;
    if (!exists && rename(d->tmp, d->path) != 0) {
        zrt_set_error(ZRT_ERR_IO, "%s: rename from %s: %s", d->path, d->tmp, strerror(errno));
        zrt_out_dir_abort(d);
        return ZRT_ERR_IO;
    }
    if (exists && renameat2(AT_FDCWD, d->tmp, AT_FDCWD, d->path, RENAME_EXCHANGE) != 0) {
        zrt_set_error(ZRT_ERR_IO, "%s: cannot replace it with %s: %s", d->path, d->tmp, strerror(errno));
        zrt_out_dir_abort(d);
        return ZRT_ERR_IO;
    }
    fsync_parent(d->path);
    return exists ? zrt_remove_tree(d->tmp) : ZRT_OK; /* the old one, now under the temporary name */
}

/* ---- outputs apart from inputs ------------------------------------------------------------------ */

/* realpath of path, or of its parent plus its last name when path does not exist yet. */
static zrt_status resolve(const char *path, char *out)
{
    if (realpath(path, out)) return ZRT_OK;
    char copy[PATH_MAX], parent[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", path);
    size_t len = strlen(copy);
    while (len > 1 && copy[len - 1] == '/') copy[--len] = '\0';
    char *slash = strrchr(copy, '/'), *base = slash ? slash + 1 : copy;
    const char *dir = !slash ? "." : slash == copy ? "/" : copy;
    if (slash) *slash = '\0';
    if (!realpath(dir, parent))
        return zrt_set_error(ZRT_ERR_IO, "%s: its directory does not exist: %s", path, strerror(errno));
    int n = snprintf(out, PATH_MAX, "%s/%s", strcmp(parent, "/") ? parent : "", base);
    return n < PATH_MAX ? ZRT_OK : zrt_set_error(ZRT_ERR_INVALID, "%s: path too long", path);
}

static bool within(const char *inner, const char *outer)
{
    size_t n = strlen(outer);
    return strcmp(outer, "/") == 0 || (strncmp(inner, outer, n) == 0 && (inner[n] == '\0' || inner[n] == '/'));
}

zrt_status zrt_out_check_apart(const char *out, const char *in)
{
    char o[PATH_MAX], i[PATH_MAX];
    if (!realpath(in, i)) return zrt_set_error(ZRT_ERR_IO, "%s: %s", in, strerror(errno));
    ZRT_CHECK(resolve(out, o));
    if (strcmp(o, i) == 0) return zrt_set_error(ZRT_ERR_INVALID, "%s: is the input itself: refusing to write it", out);
    if (within(o, i)) return zrt_set_error(ZRT_ERR_INVALID, "%s: is inside the input %s: refusing to write it", out, in);
    if (within(i, o)) return zrt_set_error(ZRT_ERR_INVALID, "%s: contains the input %s: refusing to write it", out, in);
    return ZRT_OK;
}
