/* bpe.c: byte-pair merges of one word, as `tokenizers`' BPE model does them:
 * the word's first symbols (bytes for byte-level, characters for
 * SentencePiece-style, <0xNN> byte fallback, a fused <unk>), then the
 * lowest-ranked adjacent pair merged, leftmost first, until none is left.
 *
 * Why a heap over a linked list: a word of n symbols costs O(n log n), so a
 * SentencePiece-style line (one word: no pre-tokenizer splits it) stays
 * fast; short words -- nearly all of byte-level text -- come from a cache.
 */
#include "tokenize_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    int32_t id, prev, next;
    uint32_t len; /* bytes of the word; 0 once merged into its left neighbour */
} symbol;

typedef struct {
    int32_t rank, pos, id;
} merge;

struct zrt_bpe_scratch {
    symbol *syms;
    merge *heap;
    size_t cap, heap_cap, n_heap;
};

#define CACHE_SLOTS (1u << 17)
#define CACHE_MAX_WORD 128

zrt_status zrt_ids_push(zrt_ids *ids, int32_t id)
{
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? 2 * ids->cap : 256;
        int32_t *grown = realloc(ids->ids, cap * sizeof *grown);
        if (!grown) return zrt_set_error(ZRT_ERR_NOMEM, "tokenizer: out of memory for %zu ids", cap);
        ids->ids = grown, ids->cap = cap;
    }
    ids->ids[ids->n++] = id;
    return ZRT_OK;
}

void zrt_ids_free(zrt_ids *ids)
{
    free(ids->ids);
    *ids = (zrt_ids){0};
}

static void *grow(void *p, size_t *cap, size_t want, size_t elem)
{
    if (want <= *cap) return p;
    size_t n = *cap ? *cap : 64;
    while (n < want) n *= 2;
    void *q = realloc(p, n * elem);
    if (q) *cap = n;
    return q;
}

/* ---- the heap of candidate merges, by (rank, position) ---- */

static bool before(merge a, merge b) { return a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos; }

static void heap_push(struct zrt_bpe_scratch *s, merge m)
{
    size_t i = s->n_heap++;
    while (i > 0 && before(m, s->heap[(i - 1) / 2])) s->heap[i] = s->heap[(i - 1) / 2], i = (i - 1) / 2;
    s->heap[i] = m;
}

static merge heap_pop(struct zrt_bpe_scratch *s)
{
    merge top = s->heap[0], last = s->heap[--s->n_heap];
    size_t i = 0, n = s->n_heap;
    for (size_t c; (c = 2 * i + 1) < n; i = c) {
        if (c + 1 < n && before(s->heap[c + 1], s->heap[c])) c++;
        if (!before(s->heap[c], last)) break;
        s->heap[i] = s->heap[c];
    }
    if (n) s->heap[i] = last;
    return top;
}

static void push_pair(const zrt_tokenizer *t, struct zrt_bpe_scratch *s, int32_t pos)
{
    const zrt_pair_slot *p = zrt_pairmap_get(&t->merges, s->syms[pos].id, s->syms[s->syms[pos].next].id);
    if (p) heap_push(s, (merge){p->rank, pos, p->id});
}

/* ---- the first symbols ---- */

static void add_symbol(struct zrt_bpe_scratch *s, size_t *n, int32_t id, uint32_t len)
{
    s->syms[*n] = (symbol){id, (int32_t)*n - 1, (int32_t)*n + 1, len};
    (*n)++;
}

/* One unit (a byte for byte-level, a character otherwise) as symbols. */
static void unit_symbols(const zrt_tokenizer *t, struct zrt_bpe_scratch *s, size_t *n, const char *u, uint32_t len,
                         bool *last_unk)
{
    int64_t id = t->byte_level ? t->byte_ids[(unsigned char)u[0]] : zrt_strmap_get(&t->vocab, u, len);
    bool fallback = id < 0 && t->byte_fallback;
    for (uint32_t k = 0; fallback && k < len; k++) fallback = t->fallback_ids[(unsigned char)u[k]] >= 0;
    if (id >= 0 || fallback) {
        if (id >= 0) add_symbol(s, n, (int32_t)id, len);
        else
            for (uint32_t k = 0; k < len; k++) add_symbol(s, n, t->fallback_ids[(unsigned char)u[k]], 1);
        *last_unk = false;
        return;
    }
    if (t->unk_id < 0) return; /* dropped, as `tokenizers` does without an unk_token */
    if (t->fuse_unk && *last_unk) s->syms[*n - 1].len += len;
    else add_symbol(s, n, t->unk_id, len);
    *last_unk = true;
}

static size_t first_symbols(const zrt_tokenizer *t, struct zrt_bpe_scratch *s, const char *word, size_t len)
{
    size_t n = 0;
    bool last_unk = false;
    for (size_t i = 0; i < len;) {
        uint32_t cp, u = 1;
        if (!t->byte_level) u = (uint32_t)zrt_utf8_decode((const unsigned char *)word + i, len - i, &cp);
        if (u == 0) u = 1; /* validated by the caller */
        unit_symbols(t, s, &n, word + i, u, &last_unk);
        i += u;
    }
    if (n) s->syms[n - 1].next = -1;
    return n;
}

/* ---- merging ---- */

static void merge_all(const zrt_tokenizer *t, struct zrt_bpe_scratch *s, size_t n)
{
    s->n_heap = 0;
    for (size_t i = 0; i + 1 < n; i++) push_pair(t, s, (int32_t)i);
    while (s->n_heap) {
        merge m = heap_pop(s);
        symbol *left = &s->syms[m.pos];
        if (left->len == 0 || left->next < 0) continue;
        symbol *right = &s->syms[left->next];
        const zrt_pair_slot *p = zrt_pairmap_get(&t->merges, left->id, right->id);
        if (!p || p->id != m.id) continue; /* stale: a neighbour changed */
        left->id = m.id;
        left->len += right->len;
        right->len = 0;
        left->next = right->next;
        if (left->next >= 0) s->syms[left->next].prev = m.pos;
        if (left->prev >= 0) push_pair(t, s, left->prev);
        if (left->next >= 0) push_pair(t, s, m.pos);
    }
}

static zrt_status scratch_fit(zrt_tokenizer *t, size_t len)
{
    if (!t->scratch && !(t->scratch = calloc(1, sizeof *t->scratch)))
        return zrt_set_error(ZRT_ERR_NOMEM, "tokenizer: out of memory");
    struct zrt_bpe_scratch *s = t->scratch;
    size_t cap = s->cap, heap_cap = s->heap_cap;
    symbol *syms = grow(s->syms, &cap, len, sizeof *syms);
    if (syms) s->syms = syms, s->cap = cap;
    /* each merge pushes at most two pairs */
    merge *heap = grow(s->heap, &heap_cap, 3 * len + 1, sizeof *heap);
    if (heap) s->heap = heap, s->heap_cap = heap_cap;
    if (!syms || !heap) return zrt_set_error(ZRT_ERR_NOMEM, "tokenizer: out of memory for a word of %zu bytes", len);
    return ZRT_OK;
}

static zrt_status merge_word(zrt_tokenizer *t, const char *word, size_t len, zrt_ids *out)
{
    ZRT_CHECK(scratch_fit(t, len));
    struct zrt_bpe_scratch *s = t->scratch;
    size_t n = first_symbols(t, s, word, len);
    merge_all(t, s, n);
    for (int32_t i = n ? 0 : -1; i >= 0; i = s->syms[i].next) ZRT_CHECK(zrt_ids_push(out, s->syms[i].id));
    return ZRT_OK;
}

/* ---- the cache of short words: hash -> [word length][n ids][ids][word bytes] in a pool ---- */

static void cache_clear(zrt_word_cache *c)
{
    if (c->hashes) memset(c->hashes, 0, CACHE_SLOTS * sizeof *c->hashes);
    c->used = 0, c->pool_len = 0;
}

static const int32_t *cache_get(const zrt_word_cache *c, uint64_t h, const char *word, size_t len, size_t *slot)
{
    size_t mask = CACHE_SLOTS - 1, i = h & mask;
    for (; c->hashes[i]; i = (i + 1) & mask) {
        const int32_t *e = c->pool + c->offsets[i];
        if (c->hashes[i] == h && (size_t)e[0] == len && memcmp(e + 2 + e[1], word, len) == 0) return e;
    }
    *slot = i;
    return NULL;
}

static void cache_put(zrt_word_cache *c, uint64_t h, size_t slot, const char *word, size_t len, const int32_t *ids,
                      size_t n)
{
    size_t need = 2 + n + (len + 3) / 4, cap = c->pool_cap;
    int32_t *pool = grow(c->pool, &cap, c->pool_len + need, sizeof *pool);
    if (!pool) return; /* a cache miss next time; no error */
    c->pool = pool, c->pool_cap = cap;
    int32_t *e = pool + c->pool_len;
    e[0] = (int32_t)len, e[1] = (int32_t)n;
    memcpy(e + 2, ids, n * sizeof *ids);
    memcpy(e + 2 + n, word, len);
    c->hashes[slot] = h;
    c->offsets[slot] = (uint32_t)c->pool_len;
    c->pool_len += need;
    c->used++;
}

static bool cache_ready(zrt_word_cache *c)
{
    if (!c->hashes) {
        c->hashes = calloc(CACHE_SLOTS, sizeof *c->hashes);
        c->offsets = malloc(CACHE_SLOTS * sizeof *c->offsets);
        if (!c->hashes || !c->offsets) return false;
    }
    if (c->used > CACHE_SLOTS / 2 || c->pool_len > (1u << 26)) cache_clear(c);
    return true;
}

zrt_status zrt_bpe_word(zrt_tokenizer *t, const char *word, size_t len, zrt_ids *out)
{
    if (t->ignore_merges) {
        int64_t id = zrt_strmap_get(&t->vocab, word, len);
        if (id >= 0) return zrt_ids_push(out, (int32_t)id);
    }
    zrt_word_cache *c = &t->cache;
    if (len > CACHE_MAX_WORD || !cache_ready(c)) return merge_word(t, word, len, out);
    uint64_t h = zrt_tok_hash(word, len) | 1;
    size_t slot = 0;
    const int32_t *hit = cache_get(c, h, word, len, &slot);
    if (hit) {
        for (int32_t k = 0; k < hit[1]; k++) ZRT_CHECK(zrt_ids_push(out, hit[2 + k]));
        return ZRT_OK;
    }
    size_t first = out->n;
    ZRT_CHECK(merge_word(t, word, len, out));
    cache_put(c, h, slot, word, len, out->ids + first, out->n - first);
    return ZRT_OK;
}

void zrt_bpe_free(zrt_tokenizer *t)
{
    free(t->cache.hashes);
    free(t->cache.offsets);
    free(t->cache.pool);
    if (t->scratch) free(t->scratch->syms), free(t->scratch->heap);
    free(t->scratch);
}
