/* data_tokens.c: training samples from token shards (zrt/tokens.h, written
 * by `zrt tokenize`): `data: {type: tokens, train: "dir/train_*.bin"}`.
 *
 * Why this shape: a sample is a window of seq_len + 1 tokens (inputs, then
 * labels shifted by one, as llm.c and Hugging Face cut them); windows never
 * cross a shard, so a shard is the unit of I/O and of checking. Sample i of
 * the run is window perm_e(i mod W) of epoch e = i / W, where perm_e is a
 * bijection on [0, W) keyed by (seed, e) -- a 4-round Feistel network with
 * cycle walking -- so the order is shuffled, every window is seen once per
 * epoch, and a sample is a pure function of its index: the same at any world
 * size and on every rank, with nothing to store but how many samples were
 * used. Shards are memory-mapped and checked when opened (magic, size, every
 * token < vocab), so filling a batch cannot fail.
 */
#include "model_internal.h"

#include "xent.h"
#include "zrt/tokens.h"

#include <glob.h>
#include <stdlib.h>
#include <string.h>

struct zrt_token_set {
    zrt_tokens **shards;
    int n_shards;
    int64_t *first_window; /* n_shards + 1 prefix sums: shard s holds windows [first[s], first[s+1]) */
    int64_t seq_len;
    uint64_t seed;
};

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* A bijection on [0, n), keyed: Feistel rounds on the smallest even number of
 * bits covering n, walking the cycle until the value falls inside [0, n). */
static uint64_t permute(uint64_t x, uint64_t n, uint64_t key)
{
    if (n <= 1) return 0;
    int bits = 2;
    while (bits < 64 && (1ull << bits) < n) bits += 2;
    int half = bits / 2;
    uint64_t mask = (1ull << half) - 1;
    do {
        uint64_t left = x >> half, right = x & mask;
        for (int round = 0; round < 4; round++) {
            uint64_t next = left ^ (mix(key ^ ((uint64_t)round << 56) ^ right) & mask);
            left = right;
            right = next;
        }
        x = (left << half) | right;
    } while (x >= n);
    return x;
}

void zrt_data_tokens_close(struct zrt_token_set *set)
{
    if (!set) return;
    for (int i = 0; i < set->n_shards; i++) zrt_tokens_close(set->shards[i]);
    free(set->shards);
    free(set->first_window);
    free(set);
}

static zrt_status open_shards(struct zrt_token_set *set, const glob_t *found, int64_t vocab)
{
    set->shards = calloc(found->gl_pathc, sizeof *set->shards);
    set->first_window = calloc(found->gl_pathc + 1, sizeof *set->first_window);
    if (!set->shards || !set->first_window) return zrt_set_error(ZRT_ERR_NOMEM, "data: out of memory");
    for (size_t i = 0; i < found->gl_pathc; i++) {
        ZRT_CHECK(zrt_tokens_open(found->gl_pathv[i], vocab, &set->shards[i]));
        set->n_shards++;
        int64_t windows = (zrt_tokens_count(set->shards[i]) - 1) / set->seq_len;
        set->first_window[i + 1] = set->first_window[i] + (windows > 0 ? windows : 0);
    }
    if (set->first_window[set->n_shards] == 0)
        return zrt_set_error(ZRT_ERR_CONFIG, "data: the token shards of %s hold no window of seq_len %lld + 1 tokens",
                             found->gl_pathv[0], (long long)set->seq_len);
    return ZRT_OK;
}

zrt_status zrt_data_tokens_open(const char *pattern, int64_t vocab, int64_t seq_len, uint64_t seed,
                                struct zrt_token_set **out)
{
    glob_t found = {0};
    if (glob(pattern, 0, NULL, &found) != 0 || found.gl_pathc == 0) {
        globfree(&found);
        return zrt_set_error(ZRT_ERR_CONFIG, "data: zrt.data.train %s matches no file", pattern);
    }
    struct zrt_token_set *set = calloc(1, sizeof *set);
    zrt_status status = set ? ZRT_OK : zrt_set_error(ZRT_ERR_NOMEM, "data: out of memory");
    if (set) {
        set->seq_len = seq_len;
        set->seed = seed;
        status = open_shards(set, &found, vocab); /* glob sorts: shard order is the names' */
    }
    globfree(&found);
    if (status != ZRT_OK) {
        zrt_data_tokens_close(set);
        return status;
    }
    *out = set;
    return ZRT_OK;
}

int64_t zrt_data_tokens_windows(const struct zrt_token_set *set) { return set->first_window[set->n_shards]; }

/* The shard holding window w, by binary search of the prefix sums. */
static int shard_of(const struct zrt_token_set *set, int64_t w)
{
    int lo = 0, hi = set->n_shards - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (set->first_window[mid] <= w) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

void zrt_data_tokens_fill(const struct zrt_token_set *set, int64_t first, int count, int32_t *inputs, int32_t *labels)
{
    int64_t T = set->seq_len, W = zrt_data_tokens_windows(set);
    for (int s = 0; s < count; s++) {
        int64_t index = first + s, epoch = index / W;
        int64_t w = (int64_t)permute((uint64_t)(index % W), (uint64_t)W, mix(set->seed ^ mix((uint64_t)epoch)));
        int shard = shard_of(set, w);
        const zrt_tokens *t = set->shards[shard];
        int64_t start = (w - set->first_window[shard]) * T;
        for (int64_t k = 0; k < T; k++) {
            inputs[s * T + k] = (int32_t)zrt_tokens_get(t, start + k);
            labels[s * T + k] = zrt_tokens_target(t, start + k + 1) ? (int32_t)zrt_tokens_get(t, start + k + 1)
                                                                     : ZRT_IGNORE_INDEX;
        }
    }
}
