/* test_cuda_memory.c: on the cuda device, every byte of device memory is in
 * the memory report (#28 item 1): a GPT trains (one GPU, stage 0 and stage 3
 * with every unit gathered and freed on the streams, fp32 and bf16, check
 * mode off) and the pool the device allocates from (the device's current
 * memory pool: cudaMallocAsync) reports its high-water mark of used memory
 * (cudaMemPoolAttrUsedMemHigh, reset after the device is made, before the
 * model allocates). Then:
 *  - pool high <= the report's peak total + ALLOWANCE: nothing the device
 *    holds is missing from the report (the pool rounds each allocation up;
 *    the CUDA context and cuBLASLt's own handle are outside the pool; the
 *    cuBLASLt workspace is in the report);
 *  - the report's device peak (its peak total less the pinned host memory)
 *    <= pool high x 1.1 + ALLOWANCE: the report does not count memory the
 *    pool has taken back (a free queued on a stream leaves the report when
 *    the stream reaches it: cuda_free's host function).
 * The check fires: 4 x ALLOWANCE taken from the same pool behind the
 * report's back (cudaMallocAsync, held over the steps) fails the first bound.
 * First, a free queued on a held stream stays in the report until the
 * stream gets there (device_common.h's check, as on the cpu device).
 * Skips without a GPU (fails on a machine whose GPU it cannot open:
 * gpu_present.h). Its CPU twin: test_device_memory's stream-ordered frees.
 */
#include "cuda_common.h"
#include "device_common.h"
#include "engine_common.h"

#include <cuda_runtime_api.h>

#define ALLOWANCE (8.0 * 1048576) /* bytes: the pool's rounding of a few hundred allocations */
#define STEPS 3

typedef struct {
    double pool_high, report_peak, host; /* bytes */
} measured;

static bool pool_of_device(cudaMemPool_t *pool)
{
    int dev = 0;
    return cudaGetDevice(&dev) == cudaSuccess && cudaDeviceGetDefaultMemPool(pool, dev) == cudaSuccess;
}

/* Trains spec s on the cuda device (untracked bytes held from the pool meanwhile); false if it did not run. */
static bool train(const run_spec *s, double untracked, measured *out)
{
    static test_rank t;
    memset(&t, 0, sizeof t);
    spec_config(s, &t.cfg);
    t.cfg.job.model = (zrt_model_config){.type = ZRT_MODEL_GPT, .layers = 4, .d_model = 256, .heads = 4,
                                         .seq_len = 64, .vocab = 4096};
    setenv("ZRT_DEVICE_CHECK", "0", 1);
    zrt_device_options o;
    zrt_device_options_init(&o);
    o.kind = ZRT_DEVICE_CUDA;
    cudaMemPool_t pool;
    uint64_t zero = 0, high = 0; /* the attribute is a cuuint64_t */
    void *hidden = NULL;
    bool ok = zrt_device_create(&o, &t.device) == ZRT_OK && pool_of_device(&pool) &&
              cudaMemPoolSetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &zero) == cudaSuccess &&
              (untracked == 0 || cudaMallocAsync(&hidden, (size_t)untracked, 0) == cudaSuccess) &&
              zrt_model_create(&t.cfg.job.model, t.device, (int)t.cfg.batch.micro_batch_per_gpu, &t.model) == ZRT_OK &&
              zrt_data_init(&t.data, &t.cfg) == ZRT_OK && zrt_engine_create(&t.cfg, NULL, t.model, &t.e) == ZRT_OK;
    for (int i = 0; ok && i < STEPS; i++) {
        zrt_step_result r;
        ok = zrt_engine_step(t.e, &t.data, &r) == ZRT_OK;
    }
    ok = ok && zrt_engine_synchronize(t.e) == ZRT_OK && cudaDeviceSynchronize() == cudaSuccess &&
         cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &high) == cudaSuccess;
    if (!ok) fprintf(stderr, "%s: %s\n", s->tag, zrt_last_error());
    const zrt_mem_stats *m = zrt_device_mem(t.device);
    *out = (measured){(double)high, (double)m->peak_all, (double)zrt_mem_total(m, ZRT_MEM_HOST)};
    if (hidden) cudaFreeAsync(hidden, 0);
    zrt_engine_destroy(t.e);
    if (t.model) t.model->destroy(t.model);
    zrt_data_fini(&t.data);
    zrt_device_destroy(t.device);
    return ok;
}

static bool within_report(const measured *m) { return m->pool_high <= m->report_peak + ALLOWANCE; }
static bool not_over(const measured *m) { return m->report_peak - m->host <= m->pool_high * 1.1 + ALLOWANCE; }

static void accounted(int stage, zrt_precision p)
{
    run_spec s = {.world = 1, .stage = stage, .steps = STEPS, .precision = p, .micro = 2, .accum = 1,
                  .persistence = 0, .gpt = true, .cuda = true};
    snprintf(s.tag, sizeof s.tag, "cuda-mem-s%d-%s", stage, p == ZRT_PRECISION_NO ? "fp32" : "bf16");
    measured m;
    CHECK_MSG(train(&s, 0, &m), "%s did not run", s.tag);
    printf("%s: pool's used high %.1f MiB, report's peak %.1f MiB (of which pinned host %.1f MiB)\n", s.tag,
           m.pool_high / 1048576, m.report_peak / 1048576, m.host / 1048576);
    CHECK_MSG(within_report(&m), "%s: the pool held %.1f MiB, over the report's peak %.1f MiB + %.0f MiB", s.tag,
              m.pool_high / 1048576, m.report_peak / 1048576, ALLOWANCE / 1048576);
    CHECK_MSG(not_over(&m), "%s: the report's device peak %.1f MiB is over the pool's %.1f MiB x 1.1 + %.0f MiB",
              s.tag, (m.report_peak - m.host) / 1048576, m.pool_high / 1048576, ALLOWANCE / 1048576);
}

/* The first bound fires on memory held outside the report. */
static void checker_fires(void)
{
    run_spec s = {.world = 1, .stage = 3, .steps = STEPS, .precision = ZRT_PRECISION_BF16, .micro = 2, .accum = 1,
                  .persistence = 0, .gpt = true, .cuda = true, .tag = "cuda-mem-hidden"};
    measured m;
    CHECK_MSG(train(&s, 4 * ALLOWANCE, &m), "%s did not run", s.tag);
    CHECK_MSG(!within_report(&m), "4 x %.0f MiB outside the report went unnoticed (pool %.1f MiB, report %.1f MiB)",
              ALLOWANCE / 1048576, m.pool_high / 1048576, m.report_peak / 1048576);
}

int main(void)
{
    skip_without_gpu();
    zrt_device *d = make_device(ZRT_DEVICE_CUDA, false);
    check_stream_free_counted(d);
    zrt_device_destroy(d);
    for (int stage = 0; stage <= 3; stage += 3) {
        accounted(stage, ZRT_PRECISION_NO);
        accounted(stage, ZRT_PRECISION_BF16);
    }
    checker_fires();
    return CHECK_DONE();
}
