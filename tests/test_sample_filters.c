/* test_sample_filters.c: `zrt sample`'s sampler (tools/sample/sampling.c):
 *  - greedy is torch.argmax (the lowest id of equal maxima);
 *  - hand-computed cases of top-k (ties with the k-th kept), top-p (the
 *    smallest set reaching top_p, at least one kept) and temperature before
 *    both;
 *  - the kept set equals Hugging Face's warpers' on 300 fixed cases
 *    (tests/sample_warpers.py runs TemperatureLogitsWarper, TopKLogitsWarper
 *    and TopPLogitsWarper themselves);
 *  - the generator is the documented one (splitmix64's first word of seed 0
 *    is 0xe220a8397b1dcdaf; xoshiro256**'s first draws), the same seed gives
 *    the same tokens and another seed others, and draws follow the kept
 *    probabilities (20000 draws within 0.015 of each);
 *  - bad options are refused by name.
 */
#include "check.h"
#include "sampling.h"

#include <math.h>
#include <stdint.h>

#define MAX_N 1000

/* The ids kept by o on logits[n], as a bitmap string "1101". */
static const char *kept(const zrt_sample_options *o, const float *logits, int n)
{
    static float scores[MAX_N];
    static zrt_sample_entry order[MAX_N];
    static char bits[MAX_N + 1];
    int64_t count = zrt_sample_filter(o, logits, scores, order, n), ones = 0;
    for (int i = 0; i < n; i++) bits[i] = scores[i] == -INFINITY ? '0' : '1', ones += bits[i] == '1';
    bits[n] = 0;
    CHECK_MSG(count == ones, "filter says %lld kept, scores have %lld", (long long)count, (long long)ones);
    return bits;
}

static void hand_cases(void)
{
    const float ties[] = {1, 3, 3, 2}, flat[] = {0, 0, 0};
    CHECK(zrt_sample_argmax(ties, 4) == 1);
    CHECK(zrt_sample_argmax(flat, 3) == 0);
    const float five[] = {5, 4, 4, 1};
    const float probs[] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)}; /* ascending cum: .05 .20 .50 1 */
    const float three[] = {2, 1, 0}; /* T 1: p .665 .245 .090; T 0.5: .867 .117 .016 */
    struct {
        zrt_sample_options o;
        const float *logits;
        int n;
        const char *want;
    } cases[] = {
        {{1, 2, 1, 0}, ties, 4, "0110"},   /* the 2 largest */
        {{1, 2, 1, 0}, five, 4, "1110"},   /* a tie with the 2nd largest stays */
        {{1, 1, 1, 0}, ties, 4, "0110"},   /* top-1 with a tie: both */
        {{1, 9, 1, 0}, ties, 4, "1111"},   /* k beyond the vocabulary */
        {{1, 0, 1, 0}, ties, 4, "1111"},   /* off */
        {{1, 0, 0.75, 0}, probs, 4, "1100"}, /* removes cum <= .25: .05, .20 */
        {{1, 0, 0.85, 0}, probs, 4, "1110"}, /* removes cum <= .15: .05 */
        {{1, 0, 0.01, 0}, probs, 4, "1000"}, /* all but the largest */
        {{1, 0, 0.7, 0}, three, 3, "110"},
        {{0.5, 0, 0.7, 0}, three, 3, "100"}, /* temperature first: sharper, fewer kept */
        {{1, 3, 0.6, 0}, probs, 4, "1100"},  /* top-k, then top-p over what is left (.53 .32 .16) */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = kept(&cases[i].o, cases[i].logits, cases[i].n);
        CHECK_MSG(strcmp(got, cases[i].want) == 0, "case %zu: kept %s, want %s", i, got, cases[i].want);
    }
    float scores[4];
    zrt_sample_entry order[4];
    zrt_sample_filter(&(zrt_sample_options){0.5, 0, 1, 0}, three, scores, order, 3);
    CHECK(scores[0] == 4 && scores[1] == 2 && scores[2] == 0); /* logits / temperature */
}

/* One line of sample_warpers.py: the options, the logits, HF's kept ids. */
static bool parse_case(char *line, zrt_sample_options *o, float *logits, int *n, char *want)
{
    char *p = line, *end;
    long long k;
    if (sscanf(p, "%lf %lld %lf %d", &o->temperature, &k, &o->top_p, n) != 4 || *n > MAX_N || !(p = strchr(p, '|')))
        return false;
    o->top_k = k, o->seed = 0;
    p++;
    for (int i = 0; i < *n; i++, p = end) logits[i] = strtof(p, &end);
    if (!(p = strchr(p, '|'))) return false;
    memset(want, '0', (size_t)*n), want[*n] = 0;
    for (p++; (k = strtoll(p, &end, 10)), end != p; p = end) want[k] = '1';
    return true;
}

static void against_hugging_face(void)
{
    char cmd[1200], line[32768], want[MAX_N + 1];
    const char *src = getenv("ZRT_SRC");
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/sample_warpers.py", src ? src : ".");
    FILE *f = popen(cmd, "r");
    int cases = 0, same = 0, n;
    float logits[MAX_N];
    zrt_sample_options o;
    while (f && fgets(line, sizeof line, f)) {
        if (!parse_case(line, &o, logits, &n, want)) {
            printf("%s", line); /* the skip's reason */
            continue;
        }
        const char *got = kept(&o, logits, n);
        cases++, same += strcmp(got, want) == 0;
        CHECK_MSG(strcmp(got, want) == 0, "T %g k %lld p %g n %d: kept %.40s..., HF %.40s...", o.temperature,
                  (long long)o.top_k, o.top_p, n, got, want);
    }
    int rc = f ? pclose(f) : -1;
    if (rc != 0 && cases == 0) SKIP("Hugging Face's warpers not run (no transformers): the hand cases passed");
    CHECK_MSG(rc == 0 && cases == 300, "sample_warpers.py: exit %d after %d cases", rc, cases);
    printf("kept sets equal to Hugging Face's warpers in %d of %d cases\n", same, cases);
}

static void generator(void)
{
    uint64_t s[4];
    zrt_sample_seed(s, 0);
    CHECK(s[0] == 0xe220a8397b1dcdafull);
    const double want[] = {0.6012629994179048, 0.7477740925472398, 0.10301998939503632};
    for (int i = 0; i < 3; i++) CHECK(zrt_sample_uniform(s) == want[i]);

    /* Same seed, same tokens; another seed, others. */
    float logits[64];
    for (int i = 0; i < 64; i++) logits[i] = (float)sin(i * 0.7) * 2;
    int32_t a[200], b[200], c[200];
    zrt_sampler sa, sb, sc;
    zrt_sample_options o = {0.9, 40, 0.95, 7}, other = o;
    other.seed = 8;
    CHECK_OK(zrt_sampler_init(&sa, &o, 64));
    CHECK_OK(zrt_sampler_init(&sb, &o, 64));
    CHECK_OK(zrt_sampler_init(&sc, &other, 64));
    for (int i = 0; i < 200; i++) a[i] = zrt_sampler_next(&sa, logits), b[i] = zrt_sampler_next(&sb, logits),
                                  c[i] = zrt_sampler_next(&sc, logits);
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(memcmp(a, c, sizeof a) != 0);
    zrt_sampler_fini(&sa), zrt_sampler_fini(&sb), zrt_sampler_fini(&sc);

    /* Draws follow the kept probabilities: .5 .3 .2 (and never the id top-k removed). */
    const float three[] = {logf(0.5f), logf(0.3f), logf(0.2f), logf(0.01f)};
    zrt_sampler s3;
    CHECK_OK(zrt_sampler_init(&s3, &(zrt_sample_options){1, 3, 1, 3}, 4));
    int count[4] = {0};
    for (int i = 0; i < 20000; i++) count[zrt_sampler_next(&s3, three)]++;
    zrt_sampler_fini(&s3);
    double kept_sum = 0.5 + 0.3 + 0.2;
    for (int i = 0; i < 3; i++)
        CHECK_MSG(fabs(count[i] / 20000.0 - expf(three[i]) / kept_sum) < 0.015, "id %d drawn %d of 20000", i, count[i]);
    CHECK(count[3] == 0);
    printf("draws of .5/.3/.2: %d %d %d of 20000\n", count[0], count[1], count[2]);
}

static void refusals(void)
{
    char why[128];
    struct {
        zrt_sample_options o;
        const char *want;
    } bad[] = {{{-1, 0, 1, 0}, "--temperature -1"}, {{INFINITY, 0, 1, 0}, "--temperature inf"},
               {{1, -2, 1, 0}, "--top-k -2"},       {{1, 0, 0, 0}, "--top-p 0:"},
               {{1, 0, 1.5, 0}, "--top-p 1.5"},     {{1, 0, NAN, 0}, "--top-p nan"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bool ok = zrt_sample_options_check(&bad[i].o, why, sizeof why);
        CHECK_MSG(!ok && strstr(why, bad[i].want), "case %zu: %s", i, ok ? "accepted" : why);
    }
    CHECK(zrt_sample_options_check(&(zrt_sample_options){0, 0, 1, 0}, why, sizeof why));
    zrt_sampler s;
    CHECK(zrt_sampler_init(&s, &bad[3].o, 4) == ZRT_ERR_INVALID);
    zrt_sampler_fini(&s);
}

int main(void)
{
    hand_cases();
    generator();
    refusals();
    against_hugging_face();
    return CHECK_DONE();
}
