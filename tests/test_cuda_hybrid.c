/* test_cuda_hybrid.c: hybrid mode -- 2 and 4 ranks sharing one GPU (the
 * cuda device with the host comm backend, collectives staged through pinned
 * host memory): ZeRO stages 0-3 of the GPT in bf16 give bitwise the same
 * losses and final weights as stage 0 at the same world size, the loss
 * falls, and in fp32 worlds 2 and 4 follow world 1 within 1e-4 relative.
 * Skips without a GPU (fails on a machine whose GPU it cannot open: gpu_present.h).
 */
#include "cuda_common.h"
#include "engine_common.h"

#define STEPS 6

int main(void)
{
    skip_without_gpu();
    const int worlds[] = {2, 4};
    for (int p = 0; p < 2; p++) {
        zrt_precision precision = p ? ZRT_PRECISION_NO : ZRT_PRECISION_BF16;
        static run_result one, base, r;
        run_spec s1 = {.world = 1, .stage = 0, .steps = STEPS, .precision = precision, .micro = 4, .accum = 1,
                       .gpt = true, .cuda = true};
        CHECK_MSG(run_training(&s1, &one), "%s did not run", s1.tag);
        for (int w = 0; w < 2; w++) {
            for (int stage = 0; stage <= 3; stage++) {
                run_spec s = {.world = worlds[w], .stage = stage, .steps = STEPS, .precision = precision,
                              .micro = 4 / worlds[w], .accum = 1, .persistence = stage == 3 ? 0 : 100000, .gpt = true,
                              .cuda = true};
                run_result *out = stage == 0 ? &base : &r;
                CHECK_MSG(run_training(&s, out), "%s did not run", s.tag);
                if (stage > 0) CHECK_MSG(same_run(&base, out, STEPS), "%s: differs from stage 0", s.tag);
            }
            double worst = 0;
            for (int i = 0; i < STEPS; i++) worst = fmax(worst, rel_diff(base.steps[i].loss, one.steps[i].loss));
            if (precision == ZRT_PRECISION_NO)
                CHECK_MSG(worst <= 1e-4, "fp32 world %d on one GPU vs world 1: %.3g relative", worlds[w], worst);
            CHECK_MSG(base.steps[STEPS - 1].loss < base.steps[0].loss, "world %d: loss does not fall", worlds[w]);
            printf("%s: %d ranks on one GPU: loss %.6f -> %.6f, stages 0-3 bitwise equal, vs world 1 %.3g\n",
                   p ? "fp32" : "bf16", worlds[w], base.steps[0].loss, base.steps[STEPS - 1].loss, worst);
        }
    }
    return CHECK_DONE();
}
