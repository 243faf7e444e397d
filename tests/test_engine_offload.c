/* test_engine_offload.c: offload_optimizer: cpu -- the fp32 master and
 * moments in pinned host memory, the step on the CPU optimizer:
 *  - losses and final weights bitwise equal to no offload at stages 1-3,
 *    fp32, bf16 and fp16, world 1 and 2, one micro batch and accumulation
 *    of 2 (both copy-down paths), the transformer too;
 *  - the device holds no optimizer state; the host holds exactly the
 *    12 bytes per own element the paper says (and the grads' copy); at
 *    stages 2-3 with one micro batch the device keeps no gradient shard
 *    either (they go down from the reduce_scatter's output);
 *  - a checkpoint saved with offload loads without it and the other way,
 *    at another world size, and training goes on bitwise as the run
 *    that never stopped.
 * Runs under the device check mode (the copy streams' ordering is checked).
 */
#include "engine_common.h"

static void equal_to_none(bool gpt, int world, int stage, zrt_precision p, int accum)
{
    static run_result none, cpu;
    run_spec s = {.world = world, .stage = stage, .steps = 6, .precision = p, .micro = 4 / world / accum,
                  .accum = accum, .persistence = stage == 3 ? 0 : 100000, .gpt = gpt};
    CHECK_MSG(run_training(&s, &none), "%s did not run", s.tag);
    run_spec o = s;
    o.offload = ZRT_OFFLOAD_CPU;
    o.tag[0] = '\0';
    CHECK_MSG(run_training(&o, &cpu), "%s did not run", o.tag);
    CHECK_MSG(same_run(&none, &cpu, 6), "%s: offload cpu differs from none (step 6 loss %.9g vs %.9g)", o.tag,
              cpu.steps[5].loss, none.steps[5].loss);
    const int64_t *dev = cpu.mem.current[ZRT_MEM_DEVICE], *host = cpu.mem.current[ZRT_MEM_HOST];
    CHECK_MSG(dev[ZRT_MEM_OPTIMIZER] == 0, "%s: %lld optimizer bytes on the device", o.tag,
              (long long)dev[ZRT_MEM_OPTIMIZER]);
    int64_t want = none.mem.current[ZRT_MEM_DEVICE][ZRT_MEM_OPTIMIZER]; /* 12 B per own element */
    CHECK_MSG(host[ZRT_MEM_OPTIMIZER] == want, "%s: %lld optimizer bytes on the host, want %lld", o.tag,
              (long long)host[ZRT_MEM_OPTIMIZER], (long long)want);
    int64_t grads_kept = stage >= 2 && accum == 1 ? 0 : none.mem.current[ZRT_MEM_DEVICE][ZRT_MEM_GRADS];
    CHECK_MSG(dev[ZRT_MEM_GRADS] == grads_kept, "%s: %lld gradient bytes on the device, want %lld", o.tag,
              (long long)dev[ZRT_MEM_GRADS], (long long)grads_kept);
    int64_t states = none.model_state_bytes - want - none.mem.current[ZRT_MEM_DEVICE][ZRT_MEM_GRADS] + grads_kept;
    CHECK_MSG(cpu.model_state_bytes == states, "%s: device model states %lld, want %lld", o.tag,
              (long long)cpu.model_state_bytes, (long long)states);
}

int main(void)
{
    const zrt_precision precisions[] = {ZRT_PRECISION_NO, ZRT_PRECISION_BF16, ZRT_PRECISION_FP16};
    for (int p = 0; p < 3; p++)
        for (int stage = 1; stage <= 3; stage++)
            for (int world = 1; world <= 2; world++) equal_to_none(false, world, stage, precisions[p], 1);
    for (int stage = 1; stage <= 3; stage++) {
        equal_to_none(false, 2, stage, ZRT_PRECISION_BF16, 2); /* accumulation: down after the last micro batch */
        equal_to_none(true, 2, stage, ZRT_PRECISION_BF16, 1);
    }
    printf("offload cpu = none, bitwise: stages 1-3 x fp32/bf16/fp16 x world 1/2, accumulation, gpt\n");
    run_spec base = {.stage = 2, .precision = ZRT_PRECISION_NO, .accum = 1};
    checkpoint_across(base, ZRT_OFFLOAD_CPU, ZRT_OFFLOAD_NONE, 2, 2, 1e-5);
    checkpoint_across(base, ZRT_OFFLOAD_NONE, ZRT_OFFLOAD_CPU, 2, 2, 1e-5);
    checkpoint_across(base, ZRT_OFFLOAD_CPU, ZRT_OFFLOAD_CPU, 2, 1, 1e-5);
    return CHECK_DONE();
}
