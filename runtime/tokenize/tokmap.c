/* tokmap.c: the tokenizer's hash maps -- token text -> id (the vocabulary)
 * and (left id, right id) -> (rank, merged id) (the merges).
 *
 * Why open addressing with power-of-two tables at most half full: the
 * encoder looks a pair up for every adjacent pair of symbols, so a probe
 * must be a multiply and a few compares.
 */
#include "tokenize_internal.h"

#include <stdlib.h>
#include <string.h>

uint64_t zrt_tok_hash(const void *data, size_t n)
{
    const unsigned char *p = data; /* FNV-1a, then a final mix */
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    h ^= h >> 29;
    return h * 0xbf58476d1ce4e5b9ull;
}

static size_t table_size(size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n + 2) cap *= 2;
    return cap;
}

zrt_status zrt_strmap_init(zrt_strmap *m, size_t n, const char **keys, const uint32_t *lens)
{
    m->cap = table_size(n);
    m->slots = calloc(m->cap, sizeof *m->slots);
    m->keys = keys;
    m->lens = lens;
    return m->slots ? ZRT_OK : zrt_set_error(ZRT_ERR_NOMEM, "tokenizer: out of memory for the vocabulary");
}

static size_t strmap_find(const zrt_strmap *m, const char *s, size_t n)
{
    size_t mask = m->cap - 1, i = zrt_tok_hash(s, n) & mask;
    for (;; i = (i + 1) & mask) {
        uint32_t e = m->slots[i];
        if (e == 0 || (m->lens[e - 1] == n && memcmp(m->keys[e - 1], s, n) == 0)) return i;
    }
}

void zrt_strmap_add(zrt_strmap *m, uint32_t e)
{
    size_t i = strmap_find(m, m->keys[e], m->lens[e]);
    if (m->slots[i] == 0) m->slots[i] = e + 1;
}

int64_t zrt_strmap_get(const zrt_strmap *m, const char *s, size_t n)
{
    if (!m->slots) return -1;
    return (int64_t)m->slots[strmap_find(m, s, n)] - 1;
}

void zrt_strmap_free(zrt_strmap *m)
{
    free(m->slots);
    m->slots = NULL;
}

static uint64_t pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }

static size_t pair_index(uint64_t key, size_t cap) { return (size_t)((key * 0x9e3779b97f4a7c15ull) >> 20) & (cap - 1); }

zrt_status zrt_pairmap_init(zrt_pairmap *m, size_t n)
{
    m->cap = table_size(n);
    m->slots = malloc(m->cap * sizeof *m->slots);
    if (!m->slots) return zrt_set_error(ZRT_ERR_NOMEM, "tokenizer: out of memory for the merges");
    for (size_t i = 0; i < m->cap; i++) m->slots[i].rank = -1;
    return ZRT_OK;
}

static size_t pair_find(const zrt_pairmap *m, uint64_t key)
{
    size_t i = pair_index(key, m->cap);
    while (m->slots[i].rank >= 0 && m->slots[i].key != key) i = (i + 1) & (m->cap - 1);
    return i;
}

/* A pair listed twice keeps its last merge, as `tokenizers` does. */
void zrt_pairmap_put(zrt_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t id)
{
    uint64_t key = pair_key(a, b);
    m->slots[pair_find(m, key)] = (zrt_pair_slot){key, rank, id};
}

const zrt_pair_slot *zrt_pairmap_get(const zrt_pairmap *m, int32_t a, int32_t b)
{
    const zrt_pair_slot *s = &m->slots[pair_find(m, pair_key(a, b))];
    return s->rank >= 0 ? s : NULL;
}

void zrt_pairmap_free(zrt_pairmap *m)
{
    free(m->slots);
    m->slots = NULL;
}
