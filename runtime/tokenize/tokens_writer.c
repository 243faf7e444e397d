/* tokens_writer.c: writes token shards (zrt/tokens.h): numbered files of at
 * most shard_tokens tokens, each with a .mask when any of its tokens is not
 * a target.
 *
 * Why temp files renamed at the end: a crash or a full disk never leaves a
 * file with a valid header and missing tokens; readers see whole shards or
 * none. The tokens stream to disk; only the shard's mask bits (an eighth of
 * a byte per token) are held in memory.
 */
#include "zrt/tokens.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct zrt_tokens_writer {
    char prefix[ZRT_PATH_MAX];
    int version;
    int64_t vocab, shard_tokens;
    FILE *f;
    char tmp[ZRT_PATH_MAX + 32];
    int64_t in_shard, total, shards;
    uint8_t *mask;    /* bits of the open shard */
    bool any_masked;  /* in the open shard */
};

zrt_status zrt_tokens_writer_open(const char *prefix, int64_t vocab, int64_t shard_tokens, zrt_tokens_writer **out)
{
    *out = NULL;
    if (strlen(prefix) >= ZRT_PATH_MAX) return zrt_set_error(ZRT_ERR_INVALID, "shard prefix longer than %d bytes", ZRT_PATH_MAX);
    if (vocab <= 0 || vocab > ((int64_t)1 << 32) || shard_tokens <= 0 || shard_tokens > INT32_MAX)
        return zrt_set_error(ZRT_ERR_INVALID, "token shards: vocab %lld and shard size %lld must be positive (the size under 2^31)",
                             (long long)vocab, (long long)shard_tokens);
    zrt_tokens_writer *w = calloc(1, sizeof *w);
    if (!w) return zrt_set_error(ZRT_ERR_NOMEM, "token shards: out of memory");
    snprintf(w->prefix, sizeof w->prefix, "%s", prefix);
    w->version = vocab > 65536 ? 2 : 1;
    w->vocab = vocab, w->shard_tokens = shard_tokens;
    *out = w;
    return ZRT_OK;
}

static void shard_path(const zrt_tokens_writer *w, const char *ext, char *buf, size_t size)
{
    snprintf(buf, size, "%s_%06lld.%s", w->prefix, (long long)w->shards, ext);
}

static zrt_status start_shard(zrt_tokens_writer *w)
{
    char path[ZRT_PATH_MAX + 16];
    shard_path(w, "bin", path, sizeof path);
    snprintf(w->tmp, sizeof w->tmp, "%s.tmp", path);
    w->f = fopen(w->tmp, "wb");
    if (!w->f) return zrt_set_error(ZRT_ERR_IO, "%s: cannot create: %s", w->tmp, strerror(errno));
    int32_t header[ZRT_TOKENS_HEADER_INTS] = {0};
    if (fwrite(header, sizeof header, 1, w->f) != 1) return zrt_set_error(ZRT_ERR_IO, "%s: cannot write", w->tmp);
    if (!w->mask && !(w->mask = malloc((size_t)(w->shard_tokens + 7) / 8)))
        return zrt_set_error(ZRT_ERR_NOMEM, "token shards: out of memory for the mask");
    memset(w->mask, 0, (size_t)(w->shard_tokens + 7) / 8);
    w->in_shard = 0, w->any_masked = false;
    return ZRT_OK;
}

/* Writes header and data to path.tmp, then renames it to path. */
static zrt_status write_whole(const char *path, const int32_t *header, size_t header_bytes, const void *data, size_t n)
{
    char tmp[ZRT_PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return zrt_set_error(ZRT_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    bool ok = fwrite(header, header_bytes, 1, f) == 1 && fwrite(data, 1, n, f) == n && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) return unlink(tmp), zrt_set_error(ZRT_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    return ZRT_OK;
}

static zrt_status finish_shard(zrt_tokens_writer *w)
{
    char path[ZRT_PATH_MAX + 16];
    int32_t header[ZRT_TOKENS_HEADER_INTS] = {ZRT_TOKENS_MAGIC, w->version, (int32_t)w->in_shard};
    bool ok = fseek(w->f, 0, SEEK_SET) == 0 && fwrite(header, sizeof header, 1, w->f) == 1 && fflush(w->f) == 0 &&
              fsync(fileno(w->f)) == 0;
    ok = (fclose(w->f) == 0) && ok;
    w->f = NULL;
    if (w->any_masked) {
        int32_t mask_header[ZRT_TOKENS_MASK_HEADER_INTS] = {ZRT_TOKENS_MASK_MAGIC, 1, (int32_t)w->in_shard, 0};
        shard_path(w, "mask", path, sizeof path);
        zrt_status st = write_whole(path, mask_header, sizeof mask_header, w->mask, (size_t)(w->in_shard + 7) / 8);
        if (st != ZRT_OK) return unlink(w->tmp), st;
    }
    shard_path(w, "bin", path, sizeof path);
    if (!ok || rename(w->tmp, path) != 0) return unlink(w->tmp), zrt_set_error(ZRT_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    w->shards++;
    return ZRT_OK;
}

/* Appends ids[0..n) to the open shard (n fits in it). */
static zrt_status append(zrt_tokens_writer *w, const int32_t *ids, const uint8_t *targets, size_t n)
{
    unsigned char buf[4096 * 4];
    size_t width = w->version == 1 ? 2 : 4;
    for (size_t i = 0; i < n;) {
        size_t k = 0;
        for (; i < n && k < sizeof buf; i++, w->in_shard++) {
            if (ids[i] < 0 || ids[i] >= w->vocab)
                return zrt_set_error(ZRT_ERR_INVALID, "%s: token %d is not below the vocabulary size %lld", w->tmp, ids[i],
                                     (long long)w->vocab);
            uint32_t v = (uint32_t)ids[i];
            for (size_t b = 0; b < width; b++) buf[k++] = (unsigned char)(v >> (8 * b));
            if (!targets || targets[i]) w->mask[w->in_shard / 8] |= (uint8_t)(1u << (w->in_shard % 8));
            else w->any_masked = true;
        }
        if (fwrite(buf, 1, k, w->f) != k) return zrt_set_error(ZRT_ERR_IO, "%s: cannot write: %s", w->tmp, strerror(errno));
    }
    w->total += (int64_t)n;
    return ZRT_OK;
}

zrt_status zrt_tokens_writer_add(zrt_tokens_writer *w, const int32_t *ids, const uint8_t *targets, size_t n)
{
    while (n > 0) {
        if (!w->f) ZRT_CHECK(start_shard(w));
        size_t room = (size_t)(w->shard_tokens - w->in_shard), k = n < room ? n : room;
        ZRT_CHECK(append(w, ids, targets, k));
        if (w->in_shard == w->shard_tokens) ZRT_CHECK(finish_shard(w));
        ids += k, n -= k;
        if (targets) targets += k;
    }
    return ZRT_OK;
}

zrt_status zrt_tokens_writer_close(zrt_tokens_writer *w, int64_t *shards, int64_t *tokens)
{
    zrt_status st = w->f ? finish_shard(w) : ZRT_OK;
    if (shards) *shards = w->shards;
    if (tokens) *tokens = w->total;
    zrt_tokens_writer_abort(w);
    return st;
}

void zrt_tokens_writer_abort(zrt_tokens_writer *w)
{
    if (!w) return;
    if (w->f) fclose(w->f), unlink(w->tmp);
    free(w->mask);
    free(w);
}
