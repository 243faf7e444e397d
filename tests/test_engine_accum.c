/* test_engine_accum.c: gradient accumulation: 4 micro batches of 1 give the
 * same training as 1 micro batch of 4 (the same global batch) within 1e-6,
 * losses and weights, at world size 1 (stage 0) and 2 (stages 1 and 2). The
 * loss is scaled by 1/accumulation exactly once.
 */
#include "engine_common.h"

int main(void)
{
    struct { int world, stage; } cases[] = {{1, 0}, {2, 1}, {2, 2}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        static run_result a, b;
        int world = cases[c].world;
        run_spec sa = {.world = world, .stage = cases[c].stage, .steps = 10, .micro = 1, .accum = 4};
        run_spec sb = {.world = world, .stage = cases[c].stage, .steps = 10, .micro = 4, .accum = 1};
        CHECK(run_training(&sa, &a) && run_training(&sb, &b));
        double worst = 0;
        for (int i = 0; i < 10; i++) worst = fmax(worst, rel_diff(a.steps[i].loss, b.steps[i].loss));
        for (int j = 0; j < 64; j++) worst = fmax(worst, fabs(a.master0[j] - b.master0[j]));
        CHECK_MSG(worst <= 1e-6, "world %d stage %d: accumulation 4x1 vs 1x4 differ by %.3g", world, cases[c].stage, worst);
        CHECK(a.steps[0].samples == b.steps[0].samples);
        printf("world %d stage %d: 4x1 vs 1x4 largest difference %.3g\n", world, cases[c].stage, worst);
    }
    return CHECK_DONE();
}
