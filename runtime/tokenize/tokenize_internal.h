/* tokenize_internal.h: what the tokenizer's files share (runtime/tokenize/):
 * the Unicode classes (unicode_classes.c, generated), the pre-tokenizer
 * scanners (pretokenize.c), the hash maps and the tokenizer itself
 * (tokenizer_json.c loads it, bpe.c encodes and decodes).
 *
 * Why one struct for both kinds: a byte-level BPE (GPT-2, Llama 3, Qwen2)
 * and a SentencePiece-style BPE (Llama 2, Mistral) differ only before the
 * merges (bytes or characters as the first symbols, a regex split or a ▁
 * normalizer) and in decoding; the merge loop is the same.
 */
#ifndef ZRT_TOKENIZE_INTERNAL_H
#define ZRT_TOKENIZE_INTERNAL_H

#include "zrt/tokenize.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- Unicode classes (unicode_classes.c) ---- */
enum {
    ZRT_UC_OTHER = 0, ZRT_UC_LETTER = 1, ZRT_UC_NUMBER = 2, ZRT_UC_SPACE = 3, /* the class: flags & 3 */
    ZRT_UC_NFC_UNSAFE = 4, /* NFC_Quick_Check No or Maybe */
    ZRT_UC_COMBINING = 8   /* a non-zero canonical combining class */
};
typedef struct {
    uint32_t lo, hi;
    int flags; /* zrt_uc_ranges: a class | flags; zrt_uc_ccc: the combining class */
} zrt_uc_range;
extern const zrt_uc_range zrt_uc_ranges[], zrt_uc_ccc[];
extern const int zrt_uc_n_ranges, zrt_uc_n_ccc;
/* The flags of code point cp (binary search; ASCII without). */
int zrt_uc_flags(uint32_t cp);
/* The canonical combining class of cp (0 for most). */
int zrt_uc_combining_class(uint32_t cp);

/* Decodes the UTF-8 character at s[0..n): its code point in *cp, its length
 * as the result, 0 when it is invalid (overlong, surrogate, truncated). */
int zrt_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);

/* ---- pre-tokenizer scanners (pretokenize.c) ---- */
typedef enum {
    ZRT_PRETOK_NONE,   /* the whole text is one word */
    ZRT_PRETOK_GPT2,   /* 's|'t|...| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
    ZRT_PRETOK_LLAMA3, /* (?i:'s|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|... */
    ZRT_PRETOK_QWEN2,  /* Llama 3's with \p{N} (one digit) for \p{N}{1,3} */
} zrt_pretok_pattern;

/* The pattern whose regex (as tokenizer.json spells it) is regex, or -1. */
int zrt_pretok_pattern_of(const char *regex);
/* The end of the pattern's match that starts at s[i] (i < n): every position
 * starts a match, so the words are s[0..e1), s[e1..e2), ... The text is
 * valid UTF-8. */
size_t zrt_pretok_next(zrt_pretok_pattern p, const unsigned char *s, size_t n, size_t i);

/* ---- hash maps (tokmap.c) ---- */
/* Byte strings -> int32 (the vocabulary), open addressing. */
typedef struct {
    uint32_t *slots; /* entry index + 1, 0 = empty */
    size_t cap;      /* a power of two */
    const char **keys;
    const uint32_t *lens; /* the keys live in the tokenizer's tables */
} zrt_strmap;
zrt_status zrt_strmap_init(zrt_strmap *m, size_t n, const char **keys, const uint32_t *lens);
/* Adds entry e (its key is keys[e]); a key already present keeps its entry. */
void zrt_strmap_add(zrt_strmap *m, uint32_t e);
/* The entry whose key is s[0..n), or -1. */
int64_t zrt_strmap_get(const zrt_strmap *m, const char *s, size_t n);
void zrt_strmap_free(zrt_strmap *m);

/* (left id, right id) -> (rank, merged id). */
typedef struct {
    uint64_t key;
    int32_t rank, id; /* rank -1: empty */
} zrt_pair_slot;
typedef struct {
    zrt_pair_slot *slots;
    size_t cap;
} zrt_pairmap;
zrt_status zrt_pairmap_init(zrt_pairmap *m, size_t n);
void zrt_pairmap_put(zrt_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t id);
const zrt_pair_slot *zrt_pairmap_get(const zrt_pairmap *m, int32_t a, int32_t b);
void zrt_pairmap_free(zrt_pairmap *m);

uint64_t zrt_tok_hash(const void *data, size_t n);

/* ---- the tokenizer ---- */
typedef struct {
    char *text;
    uint32_t len;
    int32_t id;
} zrt_added_token;

typedef struct {
    uint64_t *hashes; /* 0 = empty */
    uint32_t *offsets; /* into pool: [len][key bytes padded][n ids][ids] */
    size_t cap, used;
    int32_t *pool;
    size_t pool_len, pool_cap;
} zrt_word_cache;

struct zrt_tokenizer {
    char path[ZRT_PATH_MAX];
    bool byte_level;          /* else SentencePiece-style */
    zrt_pretok_pattern pattern;
    bool add_prefix_space;    /* ByteLevel's */
    bool nfc;                 /* the NFC normalizer: refuse what it would change */
    int sp_prepend;           /* 0 never, 1 every segment, 2 the first (Metaspace "first") */
    bool sp_prepend_unless_space; /* Metaspace: not before a segment that starts with a space */
    bool sp_split;            /* Metaspace split: a word starts at each ▁ */
    bool sp_strip_space;      /* the decoder drops the first leading space */
    bool byte_fallback, fuse_unk, ignore_merges;
    int32_t unk_id;           /* -1: none */
    int32_t byte_ids[256];    /* byte-level: the id of each byte's character; -1 none */
    int32_t fallback_ids[256]; /* byte_fallback: the id of <0xNN>; -1 none */
    int32_t n_ids;            /* highest id + 1 */
    char **id_text;           /* per id: the model's form (raw bytes for byte-level, ▁ for SP) */
    uint32_t *id_len;
    char **out_text;          /* per id: what decoding writes */
    uint32_t *out_len;
    zrt_strmap vocab;         /* model form -> id */
    zrt_pairmap merges;
    zrt_added_token *added;   /* longest first */
    int n_added;
    uint8_t added_first[256]; /* 1 when an added token starts with this byte */
    zrt_word_cache cache;
    struct zrt_bpe_scratch *scratch; /* bpe.c's buffers, reused across words */
    char *norm;               /* a segment in the model's form (▁, a prefix space) */
    size_t norm_cap;
    const char *describe;     /* "byte-level BPE, GPT-2 pattern", ... */
};

/* tokenizer_kind.c: the layout of a parsed tokenizer.json (root) and its model. */
struct cJSON;
zrt_status zrt_tokenizer_kind(zrt_tokenizer *t, const struct cJSON *root, const struct cJSON *model);

/* bpe.c: the ids of one word (a pre-token in the model's form), appended. */
zrt_status zrt_bpe_word(zrt_tokenizer *t, const char *word, size_t len, zrt_ids *out);
void zrt_bpe_free(zrt_tokenizer *t); /* the cache and scratch buffers */
/* Sets the id's texts (model form and decoded form, copied). */
zrt_status zrt_tok_set_id(zrt_tokenizer *t, int32_t id, const char *model, size_t n, const char *out, size_t out_n);

#endif
