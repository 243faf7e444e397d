/* test_engine_nvme.c: offload_optimizer: nvme -- the fp32 master and moments
 * in swap files striped over two directories, streamed in sub-groups:
 *  - losses and final weights bitwise equal to no offload and to cpu
 *    offload at stages 1-3, fp32 and bf16, world 1 and 2, with sub-groups
 *    smaller than a unit (many per unit) and as large as the shard, and
 *    fp16 with an overflowed (skipped) step; and so when the swapper lets
 *    reads pass every write they are not ordered after (late_writes);
 *  - the device holds no optimizer state, the host only the pinned slots
 *    (never the shard); the swap files are gone after the run;
 *  - a checkpoint saved with nvme loads without it and the other way, and
 *    at another world size;
 *  - swap files of a crashed run are removed at start and named in the
 *    engine's warnings; live ones stay.
 * Runs under the device check mode.
 */
#include "engine_common.h"

#include <sys/wait.h>

static void equal_modes(bool gpt, int world, int stage, zrt_precision p, int64_t sub_group)
{
    static run_result none, cpu, nvme;
    run_spec s = {.world = world, .stage = stage, .steps = 5, .precision = p, .micro = 4 / world, .accum = 1,
                  .persistence = stage == 3 ? 0 : 100000, .gpt = gpt, .sub_group = sub_group,
                  .overflow_at = p == ZRT_PRECISION_FP16 ? 2 : 0}; /* fp16: a skipped step (the reads ahead are dropped) */
    run_spec c = s, n = s;
    c.offload = ZRT_OFFLOAD_CPU;
    n.offload = ZRT_OFFLOAD_NVME;
    run_spec *specs[3] = {&s, &c, &n};
    run_result *results[3] = {&none, &cpu, &nvme};
    for (int k = 0; k < 3; k++) {
        snprintf(specs[k]->tag, sizeof specs[k]->tag, "%s-%s-w%d-s%d-p%d-g%lld%s",
                 zrt_offload_device_name(specs[k]->offload), gpt ? "gpt" : "mlp", world, stage, (int)p,
                 (long long)sub_group, getenv("ZRT_FAULT_SWAP") ? "-late" : ""); /* a run's tag names its files */
        CHECK_MSG(run_training(specs[k], results[k]), "%s did not run", specs[k]->tag);
    }
    CHECK_MSG(same_run(&none, &nvme, 5) && same_run(&cpu, &nvme, 5),
              "%s: nvme differs (step 5 loss %.9g, none %.9g, cpu %.9g)", n.tag, nvme.steps[4].loss, none.steps[4].loss,
              cpu.steps[4].loss);
    const int64_t *dev = nvme.mem.current[ZRT_MEM_DEVICE], *host = nvme.mem.current[ZRT_MEM_HOST];
    int64_t state = none.mem.current[ZRT_MEM_DEVICE][ZRT_MEM_OPTIMIZER];
    CHECK_MSG(dev[ZRT_MEM_OPTIMIZER] == 0, "%s: %lld optimizer bytes on the device", n.tag,
              (long long)dev[ZRT_MEM_OPTIMIZER]);
    /* The slots: 4 (buffer_count) x (3 parts of a sub-group rounded to 4096 bytes + its gradients' window:
     * rounded, and a block of slack). */
    int64_t group = sub_group ? sub_group : 200, es = p == ZRT_PRECISION_NO ? 4 : 2;
    int64_t slots = 4 * (3 * ((group * 4 + 4095) / 4096 * 4096) + (group * es + 4095) / 4096 * 4096 + 4096);
    if (sub_group > 100000) CHECK(host[ZRT_MEM_OPTIMIZER] <= 4 * (4 * (state / 3 + 4096) + 4096)); /* capped at the shard */
    else CHECK_MSG(host[ZRT_MEM_OPTIMIZER] == slots, "%s: %lld optimizer bytes on the host, want the %lld of the slots",
                   n.tag, (long long)host[ZRT_MEM_OPTIMIZER], (long long)slots);
    CHECK_MSG(swap_files_left() == 0, "%s: %d swap files left", n.tag, swap_files_left());
}

/* A dead process's file in nvme0 goes at start (named in the warnings); a live one's stays. */
static void stale_files(void)
{
    pid_t child = fork();
    if (child == 0) _exit(0);
    waitpid(child, NULL, 0);
    char dead[1200], live[1200];
    snprintf(dead, sizeof dead, "%s/nvme0/zrt-swap-%d-optimizer-rank0.0", test_tmpdir(), (int)child);
    snprintf(live, sizeof live, "%s/nvme0/zrt-swap-%d-optimizer-rank0.0", test_tmpdir(), (int)getppid());
    run_spec s = {.world = 1, .stage = 2, .steps = 1, .precision = ZRT_PRECISION_BF16, .micro = 4, .accum = 1,
                  .offload = ZRT_OFFLOAD_NVME};
    static zrt_config cfg;
    spec_config(&s, &cfg); /* makes the directories */
    fclose(fopen(dead, "w"));
    fclose(fopen(live, "w"));
    zrt_device *device = test_device();
    zrt_model *model = NULL;
    zrt_engine *e = NULL;
    CHECK_OK(zrt_model_create(&cfg.job.model, device, 4, &model));
    CHECK_OK(zrt_engine_create(&cfg, NULL, model, &e));
    CHECK_MSG(e && strstr(zrt_engine_warnings(e), dead) && strstr(zrt_engine_warnings(e), "removed"), "warnings: %s",
              e ? zrt_engine_warnings(e) : "");
    CHECK(access(dead, F_OK) != 0 && access(live, F_OK) == 0);
    zrt_engine_destroy(e);
    model->destroy(model);
    zrt_device_destroy(device);
    unlink(live);
}

int main(void)
{
    const zrt_precision precisions[] = {ZRT_PRECISION_NO, ZRT_PRECISION_BF16};
    for (int p = 0; p < 2; p++)
        for (int stage = 1; stage <= 3; stage++)
            for (int world = 1; world <= 2; world++) equal_modes(false, world, stage, precisions[p], 0);
    equal_modes(false, 2, 2, ZRT_PRECISION_BF16, 1 << 30); /* one sub-group per unit */
    equal_modes(false, 2, 2, ZRT_PRECISION_FP16, 0);
    equal_modes(true, 2, 3, ZRT_PRECISION_BF16, 0);
    /* A drive that lands writes late (the swapper's reads pass every write
     * they are not ordered after): the arena's ring, its reads ahead and
     * the writes behind across steps still give the same bits. */
    setenv("ZRT_FAULT_SWAP", "late_writes:1", 1);
    equal_modes(true, 2, 3, ZRT_PRECISION_BF16, 0);
    equal_modes(false, 1, 1, ZRT_PRECISION_NO, 1 << 30);
    unsetenv("ZRT_FAULT_SWAP");
    printf("offload nvme = cpu = none, bitwise: stages 1-3 x fp32/bf16 x world 1/2, sub-groups 200 and whole, gpt; "
           "with writes landing late\n");
    run_spec base = {.stage = 3, .precision = ZRT_PRECISION_BF16, .accum = 1};
    checkpoint_across(base, ZRT_OFFLOAD_NVME, ZRT_OFFLOAD_NONE, 2, 2, 1e-3);
    checkpoint_across(base, ZRT_OFFLOAD_NONE, ZRT_OFFLOAD_NVME, 2, 2, 1e-3);
    checkpoint_across(base, ZRT_OFFLOAD_NVME, ZRT_OFFLOAD_NVME, 2, 1, 1e-3);
    stale_files();
    return CHECK_DONE();
}
