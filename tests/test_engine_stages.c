/* test_engine_stages.c: 20 steps of the MLP for ZeRO stages 0-3 x world
 * sizes 1, 2, 4 x fp32 and bf16, with the same global batch (8):
 *  - at one world size every stage gives bitwise the same losses and the same
 *    final master weights (stage 3 also with every unit gathered on demand);
 *  - in fp32, world sizes 2 and 4 match world size 1 within 1e-5 relative;
 *  - the loss falls;
 *  - the transformer (its LM head tied to the token embedding, a unit used by
 *    two ops) is bitwise equal across stages at world size 2 too.
 */
#include "engine_common.h"

#define STEPS 20

int main(void)
{
    static run_result base[3], r;
    const int worlds[] = {1, 2, 4};
    const zrt_precision precisions[] = {ZRT_PRECISION_NO, ZRT_PRECISION_BF16};
    for (int p = 0; p < 2; p++) {
        for (int w = 0; w < 3; w++) {
            for (int stage = 0; stage <= 4; stage++) { /* 4: stage 3 with no persistent unit */
                run_spec s = {.world = worlds[w], .stage = stage > 3 ? 3 : stage, .steps = STEPS,
                              .precision = precisions[p], .micro = 8 / worlds[w], .accum = 1,
                              .persistence = stage == 4 ? 0 : 100000, .prefetch = stage == 4 ? 700 : 0};
                run_result *out = stage == 0 ? &base[w] : &r;
                bool ok = run_training(&s, out);
                CHECK_MSG(ok, "%s did not run", s.tag);
                if (!ok || stage == 0) continue;
                bool same = true;
                for (int i = 0; i < STEPS; i++) same &= memcmp(&out->steps[i].loss, &base[w].steps[i].loss, 4) == 0;
                CHECK_MSG(same, "%s: losses differ from stage 0 (step 20: %.9g vs %.9g)", s.tag,
                          out->steps[STEPS - 1].loss, base[w].steps[STEPS - 1].loss);
                CHECK_MSG(memcmp(out->master0, base[w].master0, sizeof out->master0) == 0,
                          "%s: final weights differ from stage 0", s.tag);
            }
            CHECK_MSG(base[w].steps[STEPS - 1].loss < 0.8 * base[w].steps[0].loss, "world %d: loss %.4f -> %.4f",
                      worlds[w], base[w].steps[0].loss, base[w].steps[STEPS - 1].loss);
            printf("%s world %d: loss %.6f -> %.6f, stages 0-3 bitwise equal\n", p ? "bf16" : "fp32", worlds[w],
                   base[w].steps[0].loss, base[w].steps[STEPS - 1].loss);
        }
        if (precisions[p] != ZRT_PRECISION_NO) continue;
        for (int w = 1; w < 3; w++) {
            double worst = 0;
            for (int i = 0; i < STEPS; i++) worst = fmax(worst, rel_diff(base[w].steps[i].loss, base[0].steps[i].loss));
            CHECK_MSG(worst <= 1e-5, "fp32 world %d vs 1: losses differ by %.3g relative", worlds[w], worst);
            printf("fp32 world %d vs world 1: largest relative loss difference %.3g\n", worlds[w], worst);
        }
    }
    for (int p = 0; p < 2; p++) {
        static run_result gbase, g;
        for (int stage = 0; stage <= 4; stage++) {
            run_spec s = {.world = 2, .stage = stage > 3 ? 3 : stage, .steps = 8, .precision = precisions[p], .micro = 2,
                          .accum = 1, .persistence = stage == 4 ? 0 : 100000, .gpt = true};
            run_result *out = stage == 0 ? &gbase : &g;
            CHECK_MSG(run_training(&s, out), "%s did not run", s.tag);
            if (stage == 0) continue;
            bool same = memcmp(out->master0, gbase.master0, sizeof out->master0) == 0;
            for (int i = 0; i < 8; i++) same &= memcmp(&out->steps[i].loss, &gbase.steps[i].loss, 4) == 0;
            CHECK_MSG(same, "%s: differs from stage 0", s.tag);
        }
        printf("gpt %s world 2: loss %.6f -> %.6f, stages 0-3 bitwise equal\n", p ? "bf16" : "fp32", gbase.steps[0].loss,
               gbase.steps[7].loss);
    }
    /* zrt.bf16_stochastic_rounding: the copy's random bits hash the element's index in its whole unit, so
     * stage 0 (which updates whole units) and stages 1-3 (shards) still agree bit for bit; and the run
     * differs from round-to-nearest's. */
    static run_result sr_base, sr;
    for (int stage = 0; stage <= 3; stage++) {
        run_spec s = {.world = 2, .stage = stage, .steps = 6, .precision = ZRT_PRECISION_BF16, .micro = 4, .accum = 1,
                      .persistence = 0, .stochastic = true};
        snprintf(s.tag, sizeof s.tag, "sr-s%d", stage);
        run_result *out = stage == 0 ? &sr_base : &sr;
        CHECK_MSG(run_training(&s, out), "%s did not run", s.tag);
        if (stage > 0) CHECK_MSG(same_run(&sr_base, out, 6), "stochastic rounding: stage %d differs from stage 0", stage);
    }
    run_spec nearest = {.world = 2, .stage = 0, .steps = 6, .precision = ZRT_PRECISION_BF16, .micro = 4, .accum = 1,
                        .persistence = 0, .tag = "sr-off"};
    CHECK(run_training(&nearest, &sr));
    CHECK_MSG(!same_run(&sr_base, &sr, 6), "stochastic rounding changed nothing");
    printf("bf16 stochastic rounding: stages 0-3 (world 2) bitwise equal, and not round-to-nearest's run\n");
    return CHECK_DONE();
}
