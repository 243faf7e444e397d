/* test_cuda_offload.c: offload on the GPU -- offload_optimizer cpu and nvme
 * (ZeRO 2 and 3) and offload_param cpu (ZeRO 3) with the cuda device: the
 * gradients go down and the half-precision copy comes up over the copy
 * streams, and the run is bitwise the GPU run without offload (bf16, world
 * 1 and 2 ranks sharing the GPU). Skips without a GPU (fails on a machine whose GPU it cannot open: gpu_present.h).
 */
#include "cuda_common.h"
#include "engine_common.h"

#define STEPS 5

int main(void)
{
    skip_without_gpu();
    for (int world = 1; world <= 2; world++)
        for (int stage = 2; stage <= 3; stage++) {
            static run_result none, off;
            run_spec s = {.world = world, .stage = stage, .steps = STEPS, .precision = ZRT_PRECISION_BF16,
                          .micro = 4 / world, .accum = 1, .persistence = 0, .gpt = true, .cuda = true};
            CHECK_MSG(run_training(&s, &none), "%s did not run", s.tag);
            const zrt_offload_device modes[] = {ZRT_OFFLOAD_CPU, ZRT_OFFLOAD_NVME};
            for (int m = 0; m < 2; m++) {
                run_spec o = s;
                o.offload = modes[m];
                o.tag[0] = '\0';
                CHECK_MSG(run_training(&o, &off), "%s did not run", o.tag);
                CHECK_MSG(same_run(&none, &off, STEPS), "%s: differs from no offload", o.tag);
            }
            if (stage == 3) {
                run_spec o = s;
                o.offload = ZRT_OFFLOAD_CPU;
                o.offload_param = ZRT_OFFLOAD_CPU;
                snprintf(o.tag, sizeof o.tag, "cuda-params-w%d", world);
                CHECK_MSG(run_training(&o, &off), "%s did not run", o.tag);
                CHECK_MSG(same_run(&none, &off, STEPS), "%s: offload_param cpu differs from no offload", o.tag);
            }
            printf("GPU world %d stage %d: offload cpu and nvme%s bitwise equal to none (loss %.6f -> %.6f)\n", world,
                   stage, stage == 3 ? " and offload_param cpu" : "", none.steps[0].loss, none.steps[STEPS - 1].loss);
        }
    return CHECK_DONE();
}
