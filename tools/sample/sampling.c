/* sampling.c: the next token from logits (sampling.h has the semantics:
 * Hugging Face's temperature, top-k and top-p warpers, then a seeded draw).
 *
 * Why sorts and not partial selection: a vocabulary of 10^5 sorts in a few
 * milliseconds, nothing beside a model's decode step; one sorted order
 * serves top-k's threshold and top-p's cumulative sum alike, and ties are
 * settled by id, so the kept set never depends on the sort's stability. */
#include "sampling.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

bool zrt_sample_options_check(const zrt_sample_options *o, char *why, size_t size)
{
    if (!(o->temperature >= 0) || isinf(o->temperature))
        return snprintf(why, size, "--temperature %g: want a finite number >= 0 (0: greedy)", o->temperature), false;
    if (o->top_k < 0) return snprintf(why, size, "--top-k %lld: want 0 (off) or more", (long long)o->top_k), false;
    if (!(o->top_p > 0 && o->top_p <= 1))
        return snprintf(why, size, "--top-p %g: want a number in (0, 1] (1: off)", o->top_p), false;
    return true;
}

zrt_status zrt_sampler_init(zrt_sampler *s, const zrt_sample_options *o, int64_t vocab)
{
    *s = (zrt_sampler){.o = *o, .vocab = vocab};
    char why[128];
    if (!zrt_sample_options_check(o, why, sizeof why)) return zrt_set_error(ZRT_ERR_INVALID, "%s", why);
    if (vocab < 1) return zrt_set_error(ZRT_ERR_INVALID, "sampler: vocab %lld", (long long)vocab);
    s->scores = malloc((size_t)vocab * sizeof *s->scores);
    s->order = malloc((size_t)vocab * sizeof *s->order);
    if (!s->scores || !s->order) {
        zrt_sampler_fini(s);
        return zrt_set_error(ZRT_ERR_NOMEM, "sampler: out of memory for %lld ids", (long long)vocab);
    }
    zrt_sample_seed(s->rng, o->seed);
    return ZRT_OK;
}

void zrt_sampler_fini(zrt_sampler *s)
{
    free(s->scores);
    free(s->order);
    s->scores = NULL, s->order = NULL;
}

int32_t zrt_sample_argmax(const float *logits, int64_t n)
{
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (logits[i] > logits[best] || (isnan(logits[i]) && !isnan(logits[best]))) best = i; /* torch: NaN is the max */
    return (int32_t)best;
}

/* Descending score, then ascending id. */
static int by_score(const void *pa, const void *pb)
{
    const zrt_sample_entry *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

/* TopPLogitsWarper over order[0..n) (descending): walking up from the
 * smallest, what the cumulative probability leaves at or under 1 - top_p
 * goes; order[0], the largest, stays. */
static void top_p(double p, float *scores, const zrt_sample_entry *order, int64_t n)
{
    double sum = 0, cum = 0;
    float max = order[0].score, limit = (float)(1.0 - p);
    for (int64_t i = 0; i < n; i++) sum += expf(order[i].score - max);
    for (int64_t i = n - 1; i > 0; i--) {
        cum += (float)(expf(order[i].score - max) / sum);
        if ((float)cum <= limit) scores[order[i].id] = -INFINITY;
    }
}

int64_t zrt_sample_filter(const zrt_sample_options *o, const float *logits, float *scores, zrt_sample_entry *order,
                          int64_t n)
{
    float t = (float)o->temperature;
    for (int64_t i = 0; i < n; i++) scores[i] = logits[i] / t;
    bool k_on = o->top_k > 0 && o->top_k < n, p_on = o->top_p < 1;
    if (k_on || p_on) {
        for (int64_t i = 0; i < n; i++) order[i] = (zrt_sample_entry){scores[i], (int32_t)i};
        qsort(order, (size_t)n, sizeof *order, by_score);
    }
    if (k_on) {
        float kth = order[o->top_k - 1].score;
        for (int64_t i = 0; i < n; i++) {
            if (scores[i] < kth) scores[i] = -INFINITY;
            if (order[i].score < kth) order[i].score = -INFINITY; /* the tail: order stays sorted */
        }
    }
    if (p_on) top_p(o->top_p, scores, order, n);
    int64_t kept = 0;
    for (int64_t i = 0; i < n; i++) kept += scores[i] != -INFINITY;
    return kept;
}

/* splitmix64 (Steele, Lea and Flood), to fill xoshiro's state from one word. */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void zrt_sample_seed(uint64_t state[4], uint64_t seed)
{
    for (int i = 0; i < 4; i++) state[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

double zrt_sample_uniform(uint64_t s[4])
{
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0], s[3] ^= s[1], s[1] ^= s[2], s[0] ^= s[3];
    s[2] ^= t, s[3] = rotl(s[3], 45);
    return (double)(result >> 11) * 0x1.0p-53;
}

int32_t zrt_sampler_next(zrt_sampler *s, const float *logits)
{
    if (s->o.temperature == 0) return zrt_sample_argmax(logits, s->vocab);
    zrt_sample_filter(&s->o, logits, s->scores, s->order, s->vocab);
    float max = s->scores[zrt_sample_argmax(s->scores, s->vocab)];
    double total = 0;
    for (int64_t i = 0; i < s->vocab; i++) total += exp((double)s->scores[i] - max);
    double u = zrt_sample_uniform(s->rng) * total, cum = 0;
    int32_t last = 0;
    for (int64_t i = 0; i < s->vocab; i++) {
        if (s->scores[i] == -INFINITY) continue;
        cum += exp((double)s->scores[i] - max), last = (int32_t)i;
        if (u < cum) return last;
    }
    return last; /* u within rounding of the total */
}
