/* tokens_reader.c: opens a token shard (zrt/tokens.h) with mmap and checks
 * it before anyone trains on it.
 *
 * Why check every token at open: a token >= vocab would index past the
 * embedding table far into a run; a scan of a 100M-token shard takes well
 * under a second, and the error names the file and the byte offset.
 */
#include "zrt/tokens.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    const unsigned char *data;
    size_t size;
} mapping;

struct zrt_tokens {
    mapping bin, mask;
    int version;
    int64_t count;
};

static zrt_status map_file(const char *path, mapping *m)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return zrt_set_error(ZRT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) return close(fd), zrt_set_error(ZRT_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    m->size = (size_t)st.st_size;
    m->data = m->size ? mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    close(fd);
    if (m->data == MAP_FAILED) return m->data = NULL, zrt_set_error(ZRT_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
    return ZRT_OK;
}

static void unmap(mapping *m)
{
    if (m->data) munmap((void *)m->data, m->size);
    m->data = NULL;
}

static int32_t header_int(const mapping *m, int i)
{
    int32_t v;
    memcpy(&v, m->data + 4 * i, 4);
    return v;
}

/* The header of a .bin or .mask: its size, magic and count. */
static zrt_status check_header(const char *path, const mapping *m, int ints, int32_t magic, int64_t *count)
{
    size_t header = (size_t)ints * 4;
    if (m->size < header)
        return zrt_set_error(ZRT_ERR_CONFIG, "%s: truncated: %zu bytes, less than the %zu-byte header", path, m->size, header);
    if (header_int(m, 0) != magic)
        return zrt_set_error(ZRT_ERR_CONFIG, "%s: offset 0: magic %d, want %d (not a zrt/llm.c token %s)", path,
                             header_int(m, 0), magic, magic == ZRT_TOKENS_MAGIC ? "shard" : "mask");
    *count = header_int(m, 2);
    if (*count < 0) return zrt_set_error(ZRT_ERR_CONFIG, "%s: offset 8: negative token count %lld", path, (long long)*count);
    return ZRT_OK;
}

static zrt_status check_size(const char *path, size_t size, size_t want, int64_t count)
{
    if (size == want) return ZRT_OK;
    return zrt_set_error(ZRT_ERR_CONFIG, "%s: %s: %zu bytes, the header's %lld tokens need %zu", path,
                         size < want ? "truncated" : "trailing bytes", size, (long long)count, want);
}

static zrt_status check_bin(const char *path, zrt_tokens *t)
{
    ZRT_CHECK(check_header(path, &t->bin, ZRT_TOKENS_HEADER_INTS, ZRT_TOKENS_MAGIC, &t->count));
    t->version = header_int(&t->bin, 1);
    if (t->version != 1 && t->version != 2)
        return zrt_set_error(ZRT_ERR_CONFIG, "%s: offset 4: version %d, want 1 (uint16 tokens) or 2 (uint32)", path, t->version);
    size_t width = t->version == 1 ? 2 : 4;
    return check_size(path, t->bin.size, ZRT_TOKENS_HEADER_INTS * 4 + (size_t)t->count * width, t->count);
}

static zrt_status check_vocab(const char *path, const zrt_tokens *t, int64_t vocab)
{
    for (int64_t i = 0; vocab > 0 && i < t->count; i++) {
        uint32_t tok = zrt_tokens_get(t, i);
        if ((int64_t)tok >= vocab)
            return zrt_set_error(ZRT_ERR_CONFIG, "%s: offset %lld (token %lld): token %u >= vocab %lld", path,
                                 (long long)(ZRT_TOKENS_HEADER_INTS * 4 + i * (t->version == 1 ? 2 : 4)), (long long)i, tok,
                                 (long long)vocab);
    }
    return ZRT_OK;
}

/* PATH.bin's PATH.mask, if it exists. */
static zrt_status open_mask(const char *path, zrt_tokens *t)
{
    size_t n = strlen(path);
    if (n < 4 || strcmp(path + n - 4, ".bin") != 0) return ZRT_OK;
    char mask_path[ZRT_PATH_MAX + 8];
    snprintf(mask_path, sizeof mask_path, "%.*s.mask", (int)(n - 4), path);
    if (access(mask_path, F_OK) != 0) return ZRT_OK;
    ZRT_CHECK(map_file(mask_path, &t->mask));
    int64_t count;
    ZRT_CHECK(check_header(mask_path, &t->mask, ZRT_TOKENS_MASK_HEADER_INTS, ZRT_TOKENS_MASK_MAGIC, &count));
    if (count != t->count)
        return zrt_set_error(ZRT_ERR_CONFIG, "%s: offset 8: %lld tokens, but %s has %lld", mask_path, (long long)count, path,
                             (long long)t->count);
    return check_size(mask_path, t->mask.size, ZRT_TOKENS_MASK_HEADER_INTS * 4 + (size_t)(count + 7) / 8, count);
}

zrt_status zrt_tokens_open(const char *path, int64_t vocab, zrt_tokens **out)
{
    *out = NULL;
    if (strlen(path) > ZRT_PATH_MAX) return zrt_set_error(ZRT_ERR_INVALID, "token shard path longer than %d bytes", ZRT_PATH_MAX);
    zrt_tokens *t = calloc(1, sizeof *t);
    if (!t) return zrt_set_error(ZRT_ERR_NOMEM, "%s: out of memory", path);
    zrt_status st = map_file(path, &t->bin);
    if (st == ZRT_OK) st = check_bin(path, t);
    if (st == ZRT_OK) st = check_vocab(path, t, vocab);
    if (st == ZRT_OK) st = open_mask(path, t);
    if (st != ZRT_OK) return zrt_tokens_close(t), st;
    *out = t;
    return ZRT_OK;
}

void zrt_tokens_close(zrt_tokens *t)
{
    if (!t) return;
    unmap(&t->bin);
    unmap(&t->mask);
    free(t);
}

int64_t zrt_tokens_count(const zrt_tokens *t) { return t->count; }

uint32_t zrt_tokens_get(const zrt_tokens *t, int64_t i)
{
    const unsigned char *p = t->bin.data + ZRT_TOKENS_HEADER_INTS * 4;
    if (t->version == 1) return (uint32_t)p[2 * i] | (uint32_t)p[2 * i + 1] << 8;
    uint32_t v;
    memcpy(&v, p + 4 * i, 4);
    return v;
}

bool zrt_tokens_has_mask(const zrt_tokens *t) { return t->mask.data != NULL; }

bool zrt_tokens_target(const zrt_tokens *t, int64_t i)
{
    if (!t->mask.data) return true;
    return (t->mask.data[ZRT_TOKENS_MASK_HEADER_INTS * 4 + i / 8] >> (i % 8)) & 1;
}
