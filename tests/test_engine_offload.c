/* test_engine_offload.c: offload_optimizer: cpu -- the fp32 master and
 * moments in pinned host memory, the step on the CPU optimizer:
 *  - losses and final weights bitwise equal to no offload at stages 1-3,
 *    fp32, bf16 and fp16, world 1 and 2, one micro batch and accumulation
 *    of 2 (both copy-down paths), the transformer too;
 *  - the device holds no optimizer state; the host holds exactly the
 *    12 bytes per own element the paper says (and the grads' copy);
 *  - a checkpoint saved with offload loads without it and the other way,
 *    at another world size, and training goes on bitwise as the run
 *    that never stopped.
 * Runs under the device check mode (the copy streams' ordering is checked).
 */
#include "engine_common.h"

static bool same_run(const run_result *a, const run_result *b, int steps)
{
    for (int i = 0; i < steps; i++)
        if (memcmp(&a->steps[i].loss, &b->steps[i].loss, 4) != 0) return false;
    return memcmp(a->master0, b->master0, sizeof a->master0) == 0;
}

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
    CHECK_MSG(cpu.model_state_bytes == none.model_state_bytes - want, "%s: device model states %lld, want %lld", o.tag,
              (long long)cpu.model_state_bytes, (long long)(none.model_state_bytes - want));
}

/* Saved at step 3 in one mode and world, resumed in the other. */
static void checkpoint_across(zrt_offload_device from, zrt_offload_device to, int from_world, int to_world)
{
    static run_result full, first, resumed;
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/ckpt-%d-%d-%d-%d", test_tmpdir(), (int)from, (int)to, from_world, to_world);
    run_spec s = {.world = from_world, .stage = 2, .steps = 6, .precision = ZRT_PRECISION_NO, .micro = 4 / from_world,
                  .accum = 1, .offload = from};
    snprintf(s.tag, sizeof s.tag, "full-%d-%d-%d-%d", (int)from, (int)to, from_world, to_world);
    CHECK(run_training(&s, &full));
    run_spec save = s;
    save.steps = 3;
    save.ckpt = dir;
    save.save_every = 3;
    snprintf(save.tag, sizeof save.tag, "save-%d-%d-%d-%d", (int)from, (int)to, from_world, to_world);
    CHECK(run_training(&save, &first));
    run_spec load = s;
    load.world = to_world;
    load.micro = 4 / to_world;
    load.offload = to;
    load.ckpt = dir;
    load.resume = true;
    snprintf(load.tag, sizeof load.tag, "load-%d-%d-%d-%d", (int)from, (int)to, from_world, to_world);
    CHECK(run_training(&load, &resumed));
    double worst = 0;
    bool bitwise = memcmp(resumed.master0, full.master0, sizeof full.master0) == 0;
    for (int i = 3; i < 6; i++) {
        worst = fmax(worst, rel_diff(resumed.steps[i].loss, full.steps[i].loss));
        bitwise &= memcmp(&resumed.steps[i].loss, &full.steps[i].loss, 4) == 0;
    }
    /* The same world size: bit for bit; another: the reduction order changes, so within rounding. */
    CHECK_MSG(from_world == to_world ? bitwise : worst < 1e-5, "checkpoint %s (world %d) -> %s (world %d): %.3g",
              zrt_offload_device_name(from), from_world, zrt_offload_device_name(to), to_world, worst);
    printf("checkpoint offload %s world %d -> %s world %d: resumed, largest difference %.3g\n",
           zrt_offload_device_name(from), from_world, zrt_offload_device_name(to), to_world, worst);
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
    checkpoint_across(ZRT_OFFLOAD_CPU, ZRT_OFFLOAD_NONE, 2, 2);
    checkpoint_across(ZRT_OFFLOAD_NONE, ZRT_OFFLOAD_CPU, 2, 2);
    checkpoint_across(ZRT_OFFLOAD_CPU, ZRT_OFFLOAD_CPU, 2, 1);
    return CHECK_DONE();
}
