/* zrt/tokenize.h: a BPE tokenizer read from a Hugging Face tokenizer.json,
 * ids equal to the `tokenizers` package's (tests/test_tokenize.sh checks it).
 *
 * Two kinds are read (anything else is refused, naming what):
 *  - byte-level BPE (GPT-2, Llama 3, Qwen2): pre_tokenizer ByteLevel, or a
 *    Sequence of Split(regex) and ByteLevel; the regex must be GPT-2's,
 *    Llama 3's or Qwen2's (hand-written scanners, no regex engine);
 *  - SentencePiece-style BPE with byte fallback (Llama 2, Mistral 7B v0.1):
 *    normalizer Prepend("▁") + Replace(" ", "▁"), or pre_tokenizer Metaspace;
 *    <0xNN> tokens for bytes outside the vocabulary.
 * added_tokens are matched in the text before anything else. Encoding takes
 * valid UTF-8 only: invalid bytes are an error naming their offset.
 * A tokenizer is not thread-safe (encode fills a cache of words).
 */
#ifndef ZRT_TOKENIZE_H
#define ZRT_TOKENIZE_H

#include "zrt/base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct zrt_tokenizer zrt_tokenizer;

/* A growing array of ids (zero-initialise it; free with zrt_ids_free). */
typedef struct {
    int32_t *ids;
    size_t n, cap;
} zrt_ids;
void zrt_ids_free(zrt_ids *ids);
/* Appends one id (ZRT_ERR_NOMEM when it cannot grow). */
zrt_status zrt_ids_push(zrt_ids *ids, int32_t id);

/* Reads path; ZRT_ERR_CONFIG naming the file and what is wrong (a missing
 * or unknown field, an unsupported pre-tokenizer, normalizer, decoder or
 * regex, a merge of tokens not in the vocabulary). */
zrt_status zrt_tokenizer_load(const char *path, zrt_tokenizer **out);
void zrt_tokenizer_free(zrt_tokenizer *t);
/* The highest id + 1 (added tokens included). */
int64_t zrt_tokenizer_vocab_size(const zrt_tokenizer *t);
/* "byte-level BPE (Llama 3 pattern)", ... */
const char *zrt_tokenizer_describe(const zrt_tokenizer *t);
/* The id of a token spelled as in tokenizer.json (added or in the vocab), or -1. */
int32_t zrt_tokenizer_token_id(const zrt_tokenizer *t, const char *token);

/* Appends the ids of text[0..len) to out (no BOS or EOS). ZRT_ERR_INVALID
 * for invalid UTF-8 ("invalid UTF-8 at byte N"). */
zrt_status zrt_tokenizer_encode(zrt_tokenizer *t, const char *text, size_t len, zrt_ids *out);
/* The text of ids[0..n) in *text (malloc'ed, NUL-terminated, length in
 * *len); ZRT_ERR_INVALID naming the position of an id out of range. */
zrt_status zrt_tokenizer_decode(const zrt_tokenizer *t, const int32_t *ids, size_t n, char **text, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
