/* bench_tokenize.c: `zrt bench tokenize --tokenizer T.json FILE`: zrt's
 * encoder in MB/s over FILE's lines, beside the `tokenizers` package's on
 * the same lines in the same run (tools/bench/bench_peer_tokenizers.py; skipped,
 * with the reason, where it cannot be imported).
 *
 * Why one thread on both sides: zrt's encoder is single-threaded; the peer
 * runs encode_batch with RAYON_NUM_THREADS=1 (and, for reference, with all
 * its threads), so the ratio compares the encoders, not the core counts.
 */
#include "cli.h"
#include "tokenize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) free(buf), buf = NULL;
    fclose(f);
    if (buf) buf[n] = 0, *len = (size_t)n;
    return buf;
}

/* Seconds to encode every line of text once; -1 on an error (printed). */
static double encode_pass(zrt_tokenizer *t, const char *text, size_t len, size_t *n_ids)
{
    zrt_ids ids = {0};
    double t0 = zrt_now();
    *n_ids = 0;
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - text) : len;
        ids.n = 0;
        if (zrt_tokenizer_encode(t, text + i, end - i, &ids) != ZRT_OK)
            return zrt_ids_free(&ids), fprintf(stderr, "zrt bench tokenize: %s\n", zrt_last_error()), -1;
        *n_ids += ids.n;
        i = end + 1;
    }
    zrt_ids_free(&ids);
    return zrt_now() - t0;
}

static void peer(const char *tokenizer, const char *file, double zrt_rate)
{
    char args[4000], line[512];
    snprintf(args, sizeof args, "'%s' '%s'", tokenizer, file);
    bool ran = zrt_cli_run_peer("tools/bench/bench_peer_tokenizers.py", args, "tokenizers ", line, sizeof line);
    double one = 0, all = 0;
    char version[64] = "?";
    if (!ran || sscanf(line, "tokenizers %63s one_thread_mb_s %lf all_threads_mb_s %lf", version, &one, &all) != 3 || one <= 0) {
        printf("peer tokenizers: skipped: %s\n", line[0] ? line : "could not run /usr/bin/python3");
        return;
    }
    printf("peer tokenizers %s: %.1f MB/s one thread (encode_batch, RAYON_NUM_THREADS=1), %.1f MB/s all threads\n", version,
           one, all);
    printf("zrt / tokenizers (one thread each): %.2fx\n", zrt_rate / one);
}

int zrt_bench_tokenize(int argc, char **argv)
{
    const char *path = NULL, *file = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--tokenizer") == 0 && i + 1 < argc) path = argv[++i];
        else if (argv[i][0] != '-' && !file) file = argv[i];
        else return zrt_cli_usage_error("bench tokenize", "usage: zrt bench tokenize --tokenizer T.json FILE (unexpected %s)", argv[i]);
    }
    if (!path || !file) return zrt_cli_usage_error("bench tokenize", "usage: zrt bench tokenize --tokenizer T.json FILE");
    size_t len = 0, n_ids = 0;
    char *text = read_all(file, &len);
    if (!text) return fprintf(stderr, "zrt bench tokenize: %s: cannot read\n", file), ZRT_EXIT_FAIL;
    zrt_tokenizer *t = NULL;
    if (zrt_tokenizer_load(path, &t) != ZRT_OK) return free(text), fprintf(stderr, "zrt bench tokenize: %s\n", zrt_last_error()), ZRT_EXIT_FAIL;
    double first = encode_pass(t, text, len, &n_ids), best = first;
    for (int r = 0; r < 2 && best >= 0; r++) {
        double s = encode_pass(t, text, len, &n_ids);
        best = s < best ? s : best;
    }
    int rc = best > 0 ? ZRT_EXIT_OK : ZRT_EXIT_FAIL;
    if (rc == ZRT_EXIT_OK) {
        printf("zrt %s: %.1f MB, %zu tokens: %.1f MB/s (best of 3; first pass, cold word cache, %.1f MB/s)\n",
               zrt_tokenizer_describe(t), len / 1e6, n_ids, len / 1e6 / best, len / 1e6 / first);
        fflush(stdout);
        peer(path, file, len / 1e6 / best);
    }
    zrt_tokenizer_free(t);
    free(text);
    return rc;
}
