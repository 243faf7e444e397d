/* sampling.h: the next token from a model's logits, as Hugging Face's
 * generate picks it: greedy, or temperature -> top-k -> top-p -> a draw.
 * Private to tools/ (`zrt sample`; tests/test_sample_filters.c links it).
 *
 * Why a file of its own: the filters are the part a user compares with
 * transformers, so they are unit-tested apart from any model. Semantics:
 *  - temperature 0: argmax, the lowest id among equal maxima (torch.argmax);
 *  - else scores = logits / temperature (fp32), then
 *  - top_k > 0: every score below the k-th largest is removed (ties with the
 *    k-th are kept: TopKLogitsWarper's `scores < topk[-1]`);
 *  - top_p < 1: TopPLogitsWarper's: sorted ascending, the softmax's cumulative
 *    sum (fp32 values, summed in double as torch's CPU cumsum does) <= 1 -
 *    top_p is removed; the largest is always kept;
 *  - the draw: one uniform double u in [0, 1) from xoshiro256** (Blackman and
 *    Vigna's, its state filled by splitmix64 from the seed) -- the token where
 *    the kept probabilities, summed in id order, pass u. Same seed, same
 *    logits: the same token, on every machine.
 */
#ifndef ZRT_TOOLS_SAMPLING_H
#define ZRT_TOOLS_SAMPLING_H

#include "zrt/base.h"

typedef struct {
    double temperature; /* 0: greedy */
    int64_t top_k;      /* 0: off */
    double top_p;       /* (0, 1]; 1: off */
    uint64_t seed;
} zrt_sample_options;

/* One id and its score, for sorting. */
typedef struct {
    float score;
    int32_t id;
} zrt_sample_entry;

typedef struct {
    zrt_sample_options o;
    uint64_t rng[4];  /* xoshiro256** */
    int64_t vocab;
    float *scores;    /* [vocab] the filtered scores (-inf: removed) */
    zrt_sample_entry *order; /* [vocab] ids by score, a work array */
} zrt_sampler;

/* true when o is valid, else false with what is wrong in why ("--top-p 1.5:
 * want a number in (0, 1]"), naming the option as the command line spells it. */
bool zrt_sample_options_check(const zrt_sample_options *o, char *why, size_t size);
/* Allocates the work arrays for vocab ids; ZRT_ERR_NOMEM, or ZRT_ERR_INVALID
 * for options zrt_sample_options_check refuses. fini accepts a zeroed s. */
zrt_status zrt_sampler_init(zrt_sampler *s, const zrt_sample_options *o, int64_t vocab);
void zrt_sampler_fini(zrt_sampler *s);
/* The next id from logits[vocab] (read only). */
int32_t zrt_sampler_next(zrt_sampler *s, const float *logits);

/* The pieces, for the tests: the lowest id of the largest value; the filters
 * (temperature, top-k, top-p) from logits into scores[n] (removed: -inf),
 * order a work array of n; returns how many are kept (>= 1). */
int32_t zrt_sample_argmax(const float *logits, int64_t n);
int64_t zrt_sample_filter(const zrt_sample_options *o, const float *logits, float *scores, zrt_sample_entry *order,
                          int64_t n);
/* xoshiro256** seeded through splitmix64; uniform: 53 bits in [0, 1). */
void zrt_sample_seed(uint64_t state[4], uint64_t seed);
double zrt_sample_uniform(uint64_t state[4]);

#endif
