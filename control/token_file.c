/* token_file.c: where a one-machine `zrt launch` leaves its job token for
 * `zrt status` on the same machine: $XDG_RUNTIME_DIR/zrt/HOST_PORT.token, or
 * /tmp/zrt-UID/HOST_PORT.token without XDG_RUNTIME_DIR.
 *
 * Why a file: the token of such a job is random (nobody else needs it), so
 * without it the user could not ask the coordinator anything. Why it is safe:
 * the directory is made 0700 and must be ours and not a link; the file is
 * created 0600 with O_EXCL | O_NOFOLLOW, so another user can neither read
 * it nor plant one; the launch removes it when the job ends. Its second line
 * is the launch's pid: the next launch removes the file of a killed one.
 */
#include "control.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The directory; made (0700) when create, else it must be there. */
static zrt_status token_dir(char *out, size_t size, bool create)
{
    const char *runtime = getenv("XDG_RUNTIME_DIR");
    if (runtime && runtime[0]) snprintf(out, size, "%s/zrt", runtime);
    else snprintf(out, size, "/tmp/zrt-%d", (int)getuid());
    if (create && mkdir(out, 0700) != 0 && errno != EEXIST)
        return zrt_set_error(ZRT_ERR_IO, "%s: cannot create: %s", out, strerror(errno));
    struct stat st;
    if (lstat(out, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 077))
        return zrt_set_error(ZRT_ERR_IO, "%s: not a private directory of this user (mode 0700, owned by uid %d)", out,
                             (int)getuid());
    return ZRT_OK;
}

zrt_status zrt_control_token_dir(char *out, size_t size) { return token_dir(out, size, false); }

static zrt_status token_path(const char *address, char *out, size_t size, bool create)
{
    char dir[512], name[300];
    ZRT_CHECK(token_dir(dir, sizeof dir, create));
    snprintf(name, sizeof name, "%s", address);
    for (char *p = name; *p; p++)
        if (*p == ':' || *p == '/') *p = '_';
    snprintf(out, size, "%s/%s.token", dir, name);
    return ZRT_OK;
}

zrt_status zrt_control_token_path(const char *address, char *out, size_t size)
{
    return token_path(address, out, size, false);
}

zrt_status zrt_control_token_save(const char *address, const char *token, char *path, size_t size)
{
    ZRT_CHECK(token_path(address, path, size, true));
    unlink(path); /* a crashed launch's, for this address */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return zrt_set_error(ZRT_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    char text[300];
    int n = snprintf(text, sizeof text, "%s\n%d\n", token, (int)getpid()); /* the pid: a killed launch's file is found */
    bool ok = n < (int)sizeof text && write(fd, text, (size_t)n) == n;
    close(fd);
    return ok ? ZRT_OK : zrt_set_error(ZRT_ERR_IO, "%s: cannot write", path);
}

zrt_status zrt_control_token_load(const char *address, char *token, size_t size)
{
    char path[1024] = "";
    int fd = token_path(address, path, sizeof path, false) == ZRT_OK ? open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) : -1;
    if (fd < 0)
        return zrt_set_error(ZRT_ERR_CONFIG, "no job token: set zrt.token_file or ZRT_JOB_TOKEN (and no %s from a "
                             "one-machine zrt launch on this machine)", path[0] ? path : "token file");
    ssize_t n = read(fd, token, size - 1);
    close(fd);
    token[n > 0 ? n : 0] = '\0';
    token[strcspn(token, "\r\n")] = '\0';
    return token[0] ? ZRT_OK : zrt_set_error(ZRT_ERR_CONFIG, "%s is empty", path);
}
