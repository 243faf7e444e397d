/* tokenize.h: what `zrt tokenize`'s files share: cmd_tokenize.c (options,
 * encode, decode, the bench) and tokenize_shards.c (documents -> shards). */
#ifndef ZRT_TOOLS_TOKENIZE_H
#define ZRT_TOOLS_TOKENIZE_H

#include "zrt/tokenize.h"
#include "zrt/tokens.h"

#define ZRT_TOKENIZE_MAX_ROLES 16

typedef struct {
    const char *out;           /* DIR/train: shards DIR/train_NNNNNN.bin, DIR/val_NNNNNN.bin */
    double val_fraction;
    long long shard_tokens;
    const char *eos;           /* token text; NULL: the tokenizer's usual one */
    int n_roles;               /* --chat-template ROLE=TEMPLATE */
    const char *roles[ZRT_TOKENIZE_MAX_ROLES], *templates[ZRT_TOKENIZE_MAX_ROLES];
    const char *default_template;
} zrt_tokenize_options;

/* Writes the shards of inputs[0..n); ZRT_EXIT_OK, or ZRT_EXIT_FAIL with the
 * reason (file and line) on stderr. */
int zrt_tokenize_shards(zrt_tokenizer *t, const zrt_tokenize_options *o, int n, char **inputs);

/* The EOS id: of token want, else the tokenizer's usual one (<|endoftext|>,
 * <|end_of_text|>, </s>, <|im_end|>, the first it has); -1 when absent. What
 * the shard writer puts before each document, and where `zrt sample` stops. */
int32_t zrt_tokenize_eos_id(const zrt_tokenizer *t, const char *want);

#endif
