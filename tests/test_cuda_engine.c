/* test_cuda_engine.c: the engine on one GPU (the cuda device, the CUDA
 * GPT), ZeRO stages 0-3 in bf16 and fp32:
 *  - every stage gives bitwise the same losses and final master weights as
 *    stage 0 on the GPU (stage 3 also with every unit gathered on demand);
 *  - the GPU's losses follow the CPU run of the same config: fp32 (exact
 *    fp32 matmuls) within 1e-3 relative per step, bf16 (bf16 tensor-core
 *    matmuls against the CPU's fp32 math on the bf16 weights) within 5e-2;
 *  - the loss falls;
 *  - over a one-rank NCCL communicator (the engine's collectives through
 *    NCCL end to end) every stage is bitwise the run without comm.
 * Skips without a GPU (fails on a machine whose GPU it cannot open: gpu_present.h).
 */
#include "cuda_common.h"
#include "engine_common.h"

#define STEPS 8

static void stages_on_gpu(zrt_precision p, double tolerance)
{
    static run_result cpu, base, r;
    run_spec c = {.world = 1, .stage = 0, .steps = STEPS, .precision = p, .micro = 4, .accum = 1, .gpt = true};
    CHECK_MSG(run_training(&c, &cpu), "%s did not run", c.tag);
    for (int stage = 0; stage <= 4; stage++) {
        run_spec s = {.world = 1, .stage = stage > 3 ? 3 : stage, .steps = STEPS, .precision = p, .micro = 4,
                      .accum = 1, .persistence = stage == 4 ? 0 : 100000, .gpt = true, .cuda = true};
        run_result *out = stage == 0 ? &base : &r;
        CHECK_MSG(run_training(&s, out), "%s did not run", s.tag);
        if (stage > 0) CHECK_MSG(same_run(&base, out, STEPS), "%s: differs from stage 0 on the GPU", s.tag);
    }
    double worst = 0;
    for (int i = 0; i < STEPS; i++) worst = fmax(worst, rel_diff(base.steps[i].loss, cpu.steps[i].loss));
    const char *name = p == ZRT_PRECISION_NO ? "fp32" : "bf16";
    CHECK_MSG(worst <= tolerance, "%s: GPU losses differ from the CPU's by %.3g relative", name, worst);
    CHECK_MSG(base.steps[STEPS - 1].loss < base.steps[0].loss, "%s: loss %.4f -> %.4f", name, base.steps[0].loss,
              base.steps[STEPS - 1].loss);
    printf("gpt %s on one GPU: loss %.6f -> %.6f, stages 0-3 bitwise equal; vs the CPU run: %.3g relative "
           "(bound %.0e)\n", name, base.steps[0].loss, base.steps[STEPS - 1].loss, worst, tolerance);
}

static void one_rank_nccl(void)
{
    static run_result none, nccl;
    for (int stage = 0; stage <= 3; stage++) {
        run_spec s = {.world = 1, .stage = stage, .steps = 4, .precision = ZRT_PRECISION_BF16, .micro = 4, .accum = 1,
                      .persistence = 0, .gpt = true, .cuda = true};
        CHECK_MSG(run_training(&s, &none), "%s did not run", s.tag);
        run_spec n = s;
        n.nccl = true;
        n.tag[0] = '\0';
        CHECK_MSG(run_training(&n, &nccl), "%s did not run", n.tag);
        CHECK_MSG(same_run(&none, &nccl, 4), "stage %d: a one-rank NCCL communicator changed the run", stage);
    }
    printf("one-rank NCCL communicator: stages 0-3 bitwise equal to the run without comm\n");
}

int main(void)
{
    skip_without_gpu();
    check_host_failure_fails_step(true);
    one_rank_nccl();
    stages_on_gpu(ZRT_PRECISION_BF16, 5e-2);
    stages_on_gpu(ZRT_PRECISION_NO, 1e-3);
    return CHECK_DONE();
}
