/* test_engine_param_offload.c: offload_param (stage 3) -- the own parameter
 * shards of the gathered units live in pinned host memory or on NVMe and
 * are brought to the device right before (prefetched with) their gathers:
 *  - losses and final weights bitwise equal to no offload, for offload_param
 *    cpu and nvme (everything on NVMe: max_in_cpu 0, and split: some units
 *    in host memory, the rest on NVMe), with offload_optimizer cpu and
 *    nvme, fp32 and bf16, world 1 and 2, the MLP and the transformer;
 *  - the device holds no parameter shard of an offloaded unit: its
 *    parameter bytes after a step are those of the persistent units only;
 *  - checkpoints saved with parameters and optimizer on NVMe resume with
 *    the optimizer on the CPU, at the same and another world size;
 *  - offload_param without optimizer offload, and a buffer_size smaller
 *    than a shard, are refused by name.
 * Runs under the device check mode.
 */
#include "engine_common.h"

static void equal_to_none(bool gpt, int world, zrt_precision p, zrt_offload_device opt, zrt_offload_device param,
                          int64_t max_in_cpu)
{
    static run_result none, off;
    static int calls; /* a tag is a rendezvous: one run each */
    run_spec s = {.world = world, .stage = 3, .steps = 4, .precision = p, .micro = 4 / world, .accum = 1,
                  .persistence = 0, .gpt = gpt};
    snprintf(s.tag, sizeof s.tag, "none-%d", calls++);
    CHECK_MSG(run_training(&s, &none), "%s did not run", s.tag);
    run_spec o = s;
    o.offload = opt;
    o.offload_param = param;
    o.max_in_cpu = max_in_cpu;
    snprintf(o.tag, sizeof o.tag, "param-%d-%d-%d-%d-%d-%lld", gpt, world, (int)p, (int)opt, (int)param,
             (long long)max_in_cpu);
    CHECK_MSG(run_training(&o, &off), "%s did not run", o.tag);
    CHECK_MSG(same_run(&none, &off, 4), "%s: differs from no offload (step 4 loss %.9g vs %.9g)", o.tag,
              off.steps[3].loss, none.steps[3].loss);
    int64_t dev_params = off.mem.current[ZRT_MEM_DEVICE][ZRT_MEM_PARAMS];
    CHECK_MSG(dev_params == 0, "%s: %lld parameter bytes on the device after the run (persistence 0: none kept)",
              o.tag, (long long)dev_params);
    int64_t host_params = off.mem.current[ZRT_MEM_HOST][ZRT_MEM_PARAMS];
    CHECK_MSG(host_params > 0, "%s: no parameter bytes in host memory", o.tag);
}

static void refused(void)
{
    zrt_config cfg;
    run_spec s = {.world = 1, .stage = 3, .steps = 1, .precision = ZRT_PRECISION_BF16, .micro = 4, .accum = 1,
                  .offload = ZRT_OFFLOAD_CPU, .offload_param = ZRT_OFFLOAD_CPU};
    spec_config(&s, &cfg);
    /* Config validation refuses it (config check and the start of training); the engine still
     * does for a caller that fills the struct itself. */
    cfg.zero.offload_optimizer.device = ZRT_OFFLOAD_NONE;
    CHECK(zrt_config_validate(&cfg) == ZRT_ERR_CONFIG);
    CHECK_MSG(strstr(zrt_last_error(), "offload_param.device: cpu needs offload_optimizer.device cpu or nvme"), "%s",
              zrt_last_error());
    zrt_device *device = test_device();
    zrt_model *model = NULL;
    zrt_engine *e = NULL;
    CHECK_OK(zrt_model_create(&cfg.job.model, device, 4, &model));
    CHECK(zrt_engine_create(&cfg, NULL, model, &e) == ZRT_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(zrt_last_error(), "offload_param (cpu) needs offload_optimizer cpu or nvme"), "%s",
              zrt_last_error());
    s.offload = ZRT_OFFLOAD_CPU;
    s.offload_param = ZRT_OFFLOAD_NVME;
    spec_config(&s, &cfg);
    cfg.zero.offload_param.buffer_size = 100;
    CHECK(zrt_engine_create(&cfg, NULL, model, &e) == ZRT_ERR_INVALID);
    CHECK_MSG(strstr(zrt_last_error(), "offload_param.buffer_size (100 elements) is smaller than unit 0's shard"), "%s",
              zrt_last_error());
    model->destroy(model);
    zrt_device_destroy(device);
}

int main(void)
{
    const zrt_precision precisions[] = {ZRT_PRECISION_NO, ZRT_PRECISION_BF16};
    for (int p = 0; p < 2; p++)
        for (int world = 1; world <= 2; world++) {
            equal_to_none(false, world, precisions[p], ZRT_OFFLOAD_CPU, ZRT_OFFLOAD_CPU, 0);
            equal_to_none(false, world, precisions[p], ZRT_OFFLOAD_NVME, ZRT_OFFLOAD_NVME, 0);
        }
    equal_to_none(false, 2, ZRT_PRECISION_BF16, ZRT_OFFLOAD_CPU, ZRT_OFFLOAD_NVME, 1000); /* unit 0 in host memory */
    equal_to_none(true, 2, ZRT_PRECISION_BF16, ZRT_OFFLOAD_NVME, ZRT_OFFLOAD_NVME, 0);
    printf("offload_param cpu/nvme = none, bitwise: fp32/bf16 x world 1/2 x optimizer cpu/nvme, split, gpt\n");
    /* Checkpoints with parameters on NVMe: saved with the optimizer there too, resumed with it on the CPU. */
    run_spec base = {.stage = 3, .precision = ZRT_PRECISION_BF16, .accum = 1, .offload_param = ZRT_OFFLOAD_NVME};
    checkpoint_across(base, ZRT_OFFLOAD_NVME, ZRT_OFFLOAD_CPU, 2, 2, 0);
    checkpoint_across(base, ZRT_OFFLOAD_NVME, ZRT_OFFLOAD_CPU, 2, 1, 1e-3);
    refused();
    return CHECK_DONE();
}
