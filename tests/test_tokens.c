/* test_tokens.c: the token shard format (zrt/tokens.h): what the writer
 * writes the reader reads back (uint16 and uint32 tokens, mask bits, shards
 * split at the size limit, no temp file left), and every bad file is
 * refused naming the file and the offset: a wrong magic, a bad version, a
 * truncated file, trailing bytes, a token >= vocab, a mask whose count
 * differs -- never a crash.
 */
#include "check.h"
#include "zrt/tokens.h"

#include <stdint.h>
#include <unistd.h>

static char dir[1024];

static void path_of(char *buf, size_t size, const char *name) { snprintf(buf, size, "%s/%s", dir, name); }

/* Writes n tokens (i * 7 % vocab) with every third one masked to PREFIX shards of shard tokens. */
static void write_shards(const char *prefix, int64_t vocab, int64_t shard, int n, bool mask)
{
    zrt_tokens_writer *w = NULL;
    CHECK_OK(zrt_tokens_writer_open(prefix, vocab, shard, &w));
    for (int i = 0; i < n && w; i++) {
        int32_t id = (int32_t)((int64_t)i * 7 % vocab);
        uint8_t target = !mask || i % 3 != 0;
        CHECK_OK(zrt_tokens_writer_add(w, &id, &target, 1));
    }
    int64_t shards = 0, tokens = 0;
    if (w) CHECK_OK(zrt_tokens_writer_close(w, &shards, &tokens));
    CHECK(shards == (n + shard - 1) / shard && tokens == n);
}

static void round_trip(int64_t vocab, bool mask)
{
    char prefix[1100], bin[1200];
    path_of(prefix, sizeof prefix, mask ? "rt_mask" : "rt");
    write_shards(prefix, vocab, 1000, 2500, mask);
    for (int s = 0; s < 3; s++) {
        snprintf(bin, sizeof bin, "%s_%06d.bin", prefix, s);
        zrt_tokens *t = NULL;
        CHECK_OK(zrt_tokens_open(bin, vocab, &t));
        if (!t) continue;
        CHECK(zrt_tokens_count(t) == (s < 2 ? 1000 : 500));
        CHECK(zrt_tokens_has_mask(t) == mask);
        int bad = 0;
        for (int64_t i = 0; i < zrt_tokens_count(t); i++) {
            int64_t g = s * 1000 + i;
            bad += zrt_tokens_get(t, i) != (uint32_t)(g * 7 % vocab);
            bad += zrt_tokens_target(t, i) != (!mask || g % 3 != 0);
        }
        CHECK_MSG(bad == 0, "%s: %d tokens or bits differ", bin, bad);
        zrt_tokens_close(t);
        snprintf(bin, sizeof bin, "%s_%06d.bin.tmp", prefix, s);
        CHECK(access(bin, F_OK) != 0);
    }
}

/* A copy of good with bytes [at, at + n) replaced by what (what NULL: the file cut at at). */
static void corrupt(const char *good, const char *bad, long at, const void *what, size_t n)
{
    FILE *in = fopen(good, "rb"), *out = fopen(bad, "wb");
    char buf[1 << 16];
    size_t got = in ? fread(buf, 1, sizeof buf, in) : 0;
    if (!what) got = (size_t)at < got ? (size_t)at : got;
    else memcpy(buf + at, what, n);
    if (out) fwrite(buf, 1, got, out), fclose(out);
    if (in) fclose(in);
}

static void refused(const char *path, int64_t vocab, const char *want)
{
    zrt_tokens *t = NULL;
    zrt_status st = zrt_tokens_open(path, vocab, &t);
    CHECK_MSG(st == ZRT_ERR_CONFIG && t == NULL, "%s opened", path);
    CHECK_MSG(strstr(zrt_last_error(), want) && strstr(zrt_last_error(), path), "error '%s', want '%s' and the path",
              zrt_last_error(), want);
    printf("refused: %s\n", zrt_last_error());
}

static void bad_files(void)
{
    char prefix[1100], good[1200], bad[1200], mask[1200];
    path_of(prefix, sizeof prefix, "small");
    write_shards(prefix, 100, 1000, 10, true);
    snprintf(good, sizeof good, "%s_000000.bin", prefix);
    path_of(bad, sizeof bad, "bad.bin");
    int32_t v = 12345;
    corrupt(good, bad, 0, &v, 4);
    refused(bad, 100, "offset 0: magic 12345, want 20240520");
    v = 3;
    corrupt(good, bad, 4, &v, 4);
    refused(bad, 100, "offset 4: version 3");
    corrupt(good, bad, 1024 + 9, NULL, 0);
    refused(bad, 100, "truncated: 1033 bytes, the header's 10 tokens need 1044");
    corrupt(good, bad, 100, NULL, 0);
    refused(bad, 100, "truncated: 100 bytes, less than the 1024-byte header");
    uint16_t big = 100;
    corrupt(good, bad, 1024 + 2 * 6, &big, 2);
    refused(bad, 100, "offset 1036 (token 6): token 100 >= vocab 100");
    zrt_tokens *t = NULL;
    CHECK_OK(zrt_tokens_open(bad, 0, &t)); /* vocab 0: no token check */
    zrt_tokens_close(t);
    snprintf(mask, sizeof mask, "%s_000000.mask", prefix);
    path_of(bad, sizeof bad, "badmask.bin");
    corrupt(good, bad, 1 << 20, NULL, 0); /* a whole copy */
    path_of(bad, sizeof bad, "badmask.mask");
    v = 11;
    corrupt(mask, bad, 8, &v, 4);
    path_of(bad, sizeof bad, "badmask.bin");
    refused(bad, 100, "offset 8: 11 tokens, but");
    path_of(bad, sizeof bad, "missing.bin");
    CHECK(zrt_tokens_open(bad, 100, &t) == ZRT_ERR_IO && strstr(zrt_last_error(), "missing.bin: cannot open"));
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/tokens-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) return perror("mkdtemp"), 1;
    round_trip(50257, false);
    round_trip(128256, true); /* uint32 tokens */
    bad_files();
    zrt_tokens_writer *w = NULL;
    CHECK(zrt_tokens_writer_open(dir, 0, 10, &w) == ZRT_ERR_INVALID && !w);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_failures ? 1 : 0;
}
