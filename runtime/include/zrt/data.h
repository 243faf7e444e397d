/* zrt/data.h: the built-in training data: the same samples at any world
 * size, so runs at different world sizes and stages can be compared. */
#ifndef ZRT_DATA_H
#define ZRT_DATA_H

#include "zrt/base.h"
#include "zrt/config.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- data ---------------------------------------------------------------------------- */

/* The built-in data, the same samples at any world size (a sample is a pure
 * function of the seed and its global index):
 *  - mlp, synthetic: x ~ N(0, 1)^d_model, label = argmax(T x) for a fixed
 *    random teacher T (vocab x d_model);
 *  - gpt, synthetic: token sequences of a fixed random "grammar" (each token
 *    is followed by its successor in a random permutation 3 times in 4);
 *  - gpt, text: windows of seq_len + 1 bytes of a file at hashed offsets
 *    (byte-level tokens; vocab must be at least 256);
 *  - gpt, tokens: the shards of zrt.data.train (zrt/tokens.h) cut into
 *    windows of seq_len + 1 tokens, each epoch in its own order from the
 *    seed; labels of tokens the shards' mask leaves out are -100 (no target).
 *    Sample i of the run is the same on every rank and at any world size,
 *    and the engine keeps the run's position (samples_seen) in checkpoints:
 *    a run resumed at another world size reads on from the next unseen. */
typedef struct {
    zrt_model_type model;
    int64_t d_model, vocab, seq_len, seed;
    float *teacher;      /* mlp: vocab x d_model */
    int32_t *successor;  /* gpt synthetic: vocab */
    unsigned char *text; /* gpt text: the file */
    int64_t text_len;
    struct zrt_token_set *tokens; /* gpt tokens: the shards (data_tokens.c) */
} zrt_data;

zrt_status zrt_data_init(zrt_data *data, const zrt_config *cfg);
/* The validation set: token shards of zrt.data.val, read as the training set is. */
zrt_status zrt_data_init_val(zrt_data *data, const zrt_config *cfg);
void zrt_data_fini(zrt_data *data);
/* Samples [first, first + count): inputs as the model takes them (floats for
 * mlp, int32 tokens for gpt) and int32 labels. */
void zrt_data_fill(const zrt_data *data, int64_t first, int count, void *inputs, int32_t *labels);

/* A normal float from (seed, stream, index): the same on every rank and at
 * every world size. */
float zrt_random_normal(uint64_t seed, uint64_t stream, uint64_t index);

#ifdef __cplusplus
}
#endif
#endif
