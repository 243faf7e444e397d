/* test_engine_fp16.c: fp16 dynamic loss scaling: a forced overflow (one
 * rank's gradients made non-finite at step 4) skips exactly that step on
 * every rank -- weights unchanged -- and halves the scale (hysteresis 1);
 * with DeepSpeed's default hysteresis 2 the first overflow keeps the scale.
 */
#include "engine_common.h"

int main(void)
{
    for (int stage = 0; stage <= 3; stage += 3) {
        static run_result with, without, short_run, four;
        run_spec s = {.world = 2, .stage = stage, .steps = 6, .precision = ZRT_PRECISION_FP16, .micro = 2, .accum = 1,
                      .overflow_at = 4, .hysteresis = 1};
        run_spec clean = s, three = s;
        clean.overflow_at = 0;
        snprintf(clean.tag, sizeof clean.tag, "fp16-clean-%d", stage);
        three.steps = 3;
        three.overflow_at = 0;
        snprintf(three.tag, sizeof three.tag, "fp16-three-%d", stage);
        run_spec skip_last = s;
        skip_last.steps = 4;
        snprintf(skip_last.tag, sizeof skip_last.tag, "fp16-four-%d", stage);
        CHECK(run_training(&s, &with) && run_training(&clean, &without) && run_training(&three, &short_run) &&
              run_training(&skip_last, &four));
        for (int i = 0; i < 6; i++) CHECK_MSG(with.steps[i].skipped == (i == 3), "stage %d step %d skipped=%d", stage,
                                              i + 1, with.steps[i].skipped);
        CHECK(with.steps[3].loss_scale == 65536.0 && with.steps[4].loss_scale == 32768.0);
        CHECK(without.steps[4].loss_scale == 65536.0);
        printf("stage %d: step 4 skipped, scale %.0f -> %.0f\n", stage, with.steps[3].loss_scale, with.steps[4].loss_scale);
        /* Up to the overflow it is the clean run, bit for bit; the skipped step
         * leaves the weights as they were after step 3. */
        for (int i = 0; i < 3; i++) CHECK(memcmp(&with.steps[i].loss, &short_run.steps[i].loss, 4) == 0);
        CHECK_MSG(memcmp(four.master0, short_run.master0, sizeof four.master0) == 0,
                  "stage %d: the skipped step changed the weights", stage);
    }
    /* Default hysteresis (2): the first overflow does not change the scale. */
    static run_result h2;
    run_spec s = {.world = 1, .stage = 0, .steps = 5, .precision = ZRT_PRECISION_FP16, .micro = 2, .accum = 1,
                  .overflow_at = 2};
    CHECK(run_training(&s, &h2));
    CHECK(h2.steps[1].skipped && h2.steps[2].loss_scale == 65536.0);
    return CHECK_DONE();
}
