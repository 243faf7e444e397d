/* zrt/tokens.h: token shards on disk -- llm.c's layout, plus an optional
 * loss mask -- and a reader that checks them (docs/data.md).
 *
 * Format: PREFIX_NNNNNN.bin is a header of 256 int32 (little-endian):
 * [0] magic 20240520, [1] version (1: uint16 tokens, 2: uint32 tokens, for
 * vocabularies over 65,536), [2] the number of tokens, the rest 0; then the
 * tokens. PREFIX_NNNNNN.mask, when present, holds one bit per token (1: the
 * token is a target of the loss; bit i is bit i % 8 of byte i / 8): a
 * header of 4 int32 -- magic 20240521, version 1, the number of tokens, 0
 * -- then the bits. A shard without a .mask has every token a target.
 * `zrt tokenize` writes them, each file beside its target and renamed when
 * complete.
 */
#ifndef ZRT_TOKENS_H
#define ZRT_TOKENS_H

#include "zrt/base.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ZRT_TOKENS_MAGIC 20240520
#define ZRT_TOKENS_MASK_MAGIC 20240521
#define ZRT_TOKENS_HEADER_INTS 256
#define ZRT_TOKENS_MASK_HEADER_INTS 4

typedef struct zrt_tokens zrt_tokens;

/* Maps path (a .bin shard) and its .mask if there is one, and checks them:
 * magic, version, the size the header implies, and -- when vocab > 0 --
 * every token < vocab. ZRT_ERR_CONFIG naming the file, the byte offset and
 * what is wrong; ZRT_ERR_IO when it cannot be read. */
zrt_status zrt_tokens_open(const char *path, int64_t vocab, zrt_tokens **out);
void zrt_tokens_close(zrt_tokens *t);
int64_t zrt_tokens_count(const zrt_tokens *t);
/* Token i (0 <= i < count). */
uint32_t zrt_tokens_get(const zrt_tokens *t, int64_t i);
/* Whether token i is a target (true without a .mask). */
bool zrt_tokens_target(const zrt_tokens *t, int64_t i);
bool zrt_tokens_has_mask(const zrt_tokens *t);

/* ---- writing: numbered shards of at most shard_tokens tokens ---- */
typedef struct zrt_tokens_writer zrt_tokens_writer;

/* Shards PREFIX_000000.bin, ...; uint32 tokens when vocab > 65,536. */
zrt_status zrt_tokens_writer_open(const char *prefix, int64_t vocab, int64_t shard_tokens, zrt_tokens_writer **out);
/* Appends ids[0..n) with their targets (NULL: all targets). */
zrt_status zrt_tokens_writer_add(zrt_tokens_writer *w, const int32_t *ids, const uint8_t *targets, size_t n);
/* Completes the last shard; *shards and *tokens (either may be NULL) say
 * how many were written. Frees w, also on error. */
zrt_status zrt_tokens_writer_close(zrt_tokens_writer *w, int64_t *shards, int64_t *tokens);
/* Drops w and its incomplete shard (after an error). */
void zrt_tokens_writer_abort(zrt_tokens_writer *w);

#ifdef __cplusplus
}
#endif
#endif
