/* store.c: zrt_store, the bootstrap key-value store, and its file backend.
 *
 * Why a file store: ranks on one machine (and on machines sharing a
 * filesystem) can rendezvous with nothing running, like torch's FileStore.
 * The control-plane store (gRPC, control/store_grpc.c) plugs into the same
 * ops table (zrt_store_ops in zrt.h) through zrt_store_create.
 * Layout: DIR/SCOPE/KEY, one file per key, names escaped (%XX) so any key
 * is a safe file name. set writes a temporary file and renames it (readers
 * never see half a value); add holds an fcntl lock on KEY.lock around its
 * read-modify-write (fcntl locks also work over NFS); get polls with a
 * growing sleep (1 ms to 20 ms) until the key appears or the deadline passes.
 */

#include "zrt.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_KEY_BYTES 255
#define MAX_VALUE_BYTES (1 << 20)

struct zrt_store {
    const zrt_store_ops *ops;
    void *state; /* the backend's */
};

typedef struct {
    char dir[ZRT_PATH_MAX]; /* DIR/SCOPE */
    unsigned tmp_counter;
} file_store;

/* ---- the ops table: argument checks, then the backend ------------------------- */

static zrt_status check_key(const char *key)
{
    if (!key || key[0] == '\0') return zrt_set_error(ZRT_ERR_INVALID, "store: empty key");
    if (strlen(key) > MAX_KEY_BYTES)
        return zrt_set_error(ZRT_ERR_INVALID, "store: key of %zu bytes is over the limit of %d", strlen(key),
                             MAX_KEY_BYTES);
    return ZRT_OK;
}

zrt_status zrt_store_set(zrt_store *store, const char *key, const void *value, size_t len)
{
    if (!store || (!value && len)) return zrt_set_error(ZRT_ERR_INVALID, "zrt_store_set: NULL argument");
    ZRT_CHECK(check_key(key));
    if (len > MAX_VALUE_BYTES)
        return zrt_set_error(ZRT_ERR_INVALID, "store: value of %zu bytes for '%s' is over the limit of %d", len,
                             key, MAX_VALUE_BYTES);
    return store->ops->set(store->state, key, value, len);
}

zrt_status zrt_store_get(zrt_store *store, const char *key, double timeout_s, void **value, size_t *len)
{
    if (!store || !value || !len) return zrt_set_error(ZRT_ERR_INVALID, "zrt_store_get: NULL argument");
    ZRT_CHECK(check_key(key));
    return store->ops->get(store->state, key, timeout_s, value, len);
}

zrt_status zrt_store_add(zrt_store *store, const char *key, int64_t delta, int64_t *result)
{
    if (!store) return zrt_set_error(ZRT_ERR_INVALID, "zrt_store_add: NULL store");
    ZRT_CHECK(check_key(key));
    int64_t ignored;
    return store->ops->add(store->state, key, delta, result ? result : &ignored);
}

zrt_status zrt_store_delete(zrt_store *store, const char *key)
{
    if (!store) return zrt_set_error(ZRT_ERR_INVALID, "zrt_store_delete: NULL store");
    ZRT_CHECK(check_key(key));
    return store->ops->del(store->state, key);
}

zrt_status zrt_store_create(const zrt_store_ops *ops, void *state, zrt_store **out)
{
    if (!ops || !ops->set || !ops->get || !ops->add || !ops->del || !ops->destroy || !out) {
        if (ops && ops->destroy) ops->destroy(state);
        return zrt_set_error(ZRT_ERR_INVALID, "zrt_store_create: NULL ops, function or out");
    }
    zrt_store *store = malloc(sizeof *store);
    if (!store) {
        ops->destroy(state);
        return zrt_set_error(ZRT_ERR_NOMEM, "store: out of memory");
    }
    *store = (zrt_store){ops, state};
    *out = store;
    return ZRT_OK;
}

void zrt_store_destroy(zrt_store *store)
{
    if (!store) return;
    store->ops->destroy(store->state);
    free(store);
}

/* ---- file backend ---------------------------------------------------------------- */

/* DIR/NAME with NAME escaped: [A-Za-z0-9_-] and inner dots stay, the rest %XX. */
static void escaped_path(const char *dir, const char *name, const char *suffix, char *out, size_t size)
{
    size_t n = (size_t)snprintf(out, size, "%s/", dir);
    for (const unsigned char *p = (const unsigned char *)name; *p && n + 4 < size; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                     *p == '_' || *p == '-' || (*p == '.' && p != (const unsigned char *)name);
        n += plain ? (size_t)snprintf(out + n, size - n, "%c", *p) : (size_t)snprintf(out + n, size - n, "%%%02X", *p);
    }
    snprintf(out + n, size - n, "%s", suffix);
}

static zrt_status mkdir_p(const char *path)
{
    char buf[ZRT_PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1;; p++) {
        bool end = *p == '\0';
        if (*p != '/' && !end) continue;
        *p = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return zrt_set_error(ZRT_ERR_IO, "store: cannot create %s: %s", buf, strerror(errno));
        if (end) return ZRT_OK;
        *p = '/';
    }
}

static zrt_status write_all(int fd, const void *data, size_t len, const char *path)
{
    for (const char *p = data; len > 0;) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return zrt_set_error(ZRT_ERR_IO, "store: write %s: %s", path, strerror(errno));
        p += n;
        len -= (size_t)n;
    }
    return ZRT_OK;
}

static zrt_status file_set(void *state, const char *key, const void *value, size_t len)
{
    file_store *s = state;
    char path[ZRT_PATH_MAX + 1024], tmp[ZRT_PATH_MAX + 1100], tmp_name[64];
    escaped_path(s->dir, key, "", path, sizeof path);
    snprintf(tmp_name, sizeof tmp_name, ".tmp.%d.%u.", (int)getpid(), __atomic_fetch_add(&s->tmp_counter, 1, 0));
    snprintf(tmp, sizeof tmp, "%s/%s%s", s->dir, tmp_name, strrchr(path, '/') + 1);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return zrt_set_error(ZRT_ERR_IO, "store: cannot create %s: %s", tmp, strerror(errno));
    zrt_status status = write_all(fd, value, len, tmp);
    close(fd);
    if (status == ZRT_OK && rename(tmp, path) != 0)
        status = zrt_set_error(ZRT_ERR_IO, "store: rename to %s: %s", path, strerror(errno));
    if (status != ZRT_OK) unlink(tmp);
    return status;
}

/* Reads path whole; ZRT_ERR_TIMEOUT (no message) when it does not exist. */
static zrt_status read_value(const char *path, void **value, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) return ZRT_ERR_TIMEOUT;
    if (fd < 0) return zrt_set_error(ZRT_ERR_IO, "store: open %s: %s", path, strerror(errno));
    struct stat st;
    char *buf = NULL;
    zrt_status status = ZRT_OK;
    if (fstat(fd, &st) != 0 || st.st_size > MAX_VALUE_BYTES) {
        status = zrt_set_error(ZRT_ERR_IO, "store: %s is unreadable or too large", path);
    } else if (!(buf = malloc((size_t)st.st_size + 1))) {
        status = zrt_set_error(ZRT_ERR_NOMEM, "store: out of memory");
    } else if (read(fd, buf, (size_t)st.st_size) != st.st_size) {
        status = zrt_set_error(ZRT_ERR_IO, "store: short read of %s", path);
    }
    close(fd);
    if (status != ZRT_OK) {
        free(buf);
        return status;
    }
    buf[st.st_size] = '\0';
    *value = buf;
    *len = (size_t)st.st_size;
    return ZRT_OK;
}

static zrt_status file_get(void *state, const char *key, double timeout_s, void **value, size_t *len)
{
    file_store *s = state;
    char path[ZRT_PATH_MAX + 1024];
    escaped_path(s->dir, key, "", path, sizeof path);
    double deadline = zrt_now() + timeout_s, pause = 0.001;
    for (;;) {
        zrt_status status = read_value(path, value, len);
        if (status != ZRT_ERR_TIMEOUT) return status;
        if (zrt_now() >= deadline)
            return zrt_set_error(ZRT_ERR_TIMEOUT, "store: key '%s' did not appear within %.1f s", key, timeout_s);
        zrt_sleep(pause);
        pause = pause * 2 < 0.02 ? pause * 2 : 0.02;
    }
}

static zrt_status file_add(void *state, const char *key, int64_t delta, int64_t *result)
{
    file_store *s = state;
    char lock_path[ZRT_PATH_MAX + 1024], path[ZRT_PATH_MAX + 1024];
    escaped_path(s->dir, key, ".lock", lock_path, sizeof lock_path);
    escaped_path(s->dir, key, "", path, sizeof path);
    int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return zrt_set_error(ZRT_ERR_IO, "store: open %s: %s", lock_path, strerror(errno));
    struct flock lock = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    while (fcntl(fd, F_SETLKW, &lock) != 0) {
        if (errno == EINTR) continue;
        close(fd);
        return zrt_set_error(ZRT_ERR_IO, "store: lock %s: %s", lock_path, strerror(errno));
    }
    void *old = NULL;
    size_t old_len = 0;
    int64_t value = 0;
    zrt_status status = read_value(path, &old, &old_len);
    if (status == ZRT_OK) {
        char *end;
        value = strtoll(old, &end, 10);
        if (end == (char *)old || *end != '\0')
            status = zrt_set_error(ZRT_ERR_INVALID, "store: key '%s' holds a non-integer value", key);
        free(old);
    } else if (status == ZRT_ERR_TIMEOUT) {
        status = ZRT_OK; /* absent: starts at 0 */
    }
    if (status == ZRT_OK) {
        char text[32];
        value += delta;
        int n = snprintf(text, sizeof text, "%" PRId64, value);
        status = file_set(state, key, text, (size_t)n);
        *result = value;
    }
    close(fd); /* releases the lock */
    return status;
}

static zrt_status file_delete(void *state, const char *key)
{
    file_store *s = state;
    char path[ZRT_PATH_MAX + 1024];
    escaped_path(s->dir, key, "", path, sizeof path);
    if (unlink(path) != 0 && errno != ENOENT)
        return zrt_set_error(ZRT_ERR_IO, "store: delete %s: %s", path, strerror(errno));
    return ZRT_OK;
}

static void file_destroy(void *state) { free(state); }

static const zrt_store_ops file_ops = {file_set, file_get, file_add, file_delete, file_destroy};

zrt_status zrt_store_file_create(const char *dir, const char *scope, zrt_store **out)
{
    if (!dir || !scope || !out) return zrt_set_error(ZRT_ERR_INVALID, "zrt_store_file_create: NULL argument");
    file_store *s = calloc(1, sizeof *s);
    if (!s) return zrt_set_error(ZRT_ERR_NOMEM, "store: out of memory");
    char scoped[ZRT_PATH_MAX + 1024];
    escaped_path(dir, scope, "", scoped, sizeof scoped);
    if (strlen(scoped) >= sizeof s->dir) {
        free(s);
        return zrt_set_error(ZRT_ERR_INVALID, "store: directory path too long");
    }
    memcpy(s->dir, scoped, strlen(scoped) + 1); /* fits: checked above */
    zrt_status status = mkdir_p(s->dir);
    if (status != ZRT_OK) {
        free(s);
        return status;
    }
    return zrt_store_create(&file_ops, s, out);
}
