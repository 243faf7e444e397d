/* test_engine_memory.c: model-state bytes per rank match the ZeRO paper's
 * formulas for mixed-precision Adam (2 + 2 + 12 bytes per parameter):
 * stage 0 16P, stage 1 4P + 12P/N, stage 2 2P + 14P/N, stage 3 16P/N, for
 * N = 1, 2, 4 -- exactly with the padded sizes, and within the padding of the
 * unpadded count. And stage 3's peak of gathered parameters stays under
 * stage3_max_live_parameters while training.
 */
#include "engine_common.h"

/* Expected bytes from per-unit padded sizes. */
static int64_t expected(int stage, int world, const int64_t *padded, int n_units)
{
    int64_t total = 0;
    for (int u = 0; u < n_units; u++) {
        int64_t p = padded[u], shard = p / world;
        switch (stage) {
        case 0: total += 16 * p; break;
        case 1: total += 4 * p + 12 * shard; break;
        case 2: total += 2 * p + 14 * shard; break;
        default: total += 16 * shard; break;
        }
    }
    return total;
}

static double formula(int stage, int world, double psi)
{
    const double n = world;
    return stage == 0 ? 16 * psi : stage == 1 ? 4 * psi + 12 * psi / n : stage == 2 ? 2 * psi + 14 * psi / n : 16 * psi / n;
}

int main(void)
{
    /* The test model: 3 units of 16*40+40, 40*40+40, 40*8+8 parameters. */
    const int64_t numel[3] = {680, 1640, 328};
    const int worlds[] = {1, 2, 4};
    for (int w = 0; w < 3; w++) {
        int64_t padded[3], pad_total = 0;
        double psi = 0;
        for (int u = 0; u < 3; u++) {
            int64_t align = 16 * worlds[w];
            padded[u] = (numel[u] + align - 1) / align * align;
            pad_total += padded[u] - numel[u];
            psi += (double)numel[u];
        }
        for (int stage = 0; stage <= 3; stage++) {
            run_spec s = {.world = worlds[w], .stage = stage, .steps = 2, .precision = ZRT_PRECISION_BF16,
                          .micro = 2, .accum = 1, .persistence = 0};
            snprintf(s.tag, sizeof s.tag, "mem-w%d-s%d", worlds[w], stage);
            static run_result r;
            CHECK_MSG(run_training(&s, &r), "%s did not run", s.tag);
            int64_t want = expected(stage, worlds[w], padded, 3);
            CHECK_MSG(r.model_state_bytes == want, "%s: %lld bytes, expected %lld", s.tag,
                      (long long)r.model_state_bytes, (long long)want);
            double paper = formula(stage, worlds[w], psi);
            CHECK_MSG(fabs((double)r.model_state_bytes - paper) <= 16.0 * (double)pad_total, "%s: %lld vs paper %.0f",
                      s.tag, (long long)r.model_state_bytes, paper);
            printf("N=%d stage %d: %lld bytes (paper: %.0f; padding %lld elements)\n", worlds[w], stage,
                   (long long)r.model_state_bytes, paper, (long long)pad_total);
        }
    }
    /* Stage 3 with room for about two units: the peak stays under the budget. */
    run_spec s = {.world = 2, .stage = 3, .steps = 3, .precision = ZRT_PRECISION_BF16, .micro = 2, .accum = 1,
                  .persistence = 0, .max_live = 2400, .prefetch = 5000};
    snprintf(s.tag, sizeof s.tag, "mem-live");
    static run_result r;
    CHECK(run_training(&s, &r));
    CHECK_MSG(r.peak_live > 0 && r.peak_live <= 2400, "peak gathered %lld elements, budget 2400", (long long)r.peak_live);
    printf("stage 3 peak gathered parameters: %lld elements (budget 2400)\n", (long long)r.peak_live);
    return CHECK_DONE();
}
