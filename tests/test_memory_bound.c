/* test_memory_bound.c: every byte a rank holds is in the memory report, and
 * with NVMe offload the settings bound it, not the model's size (#28).
 *
 *  - Accounting: GPT-shaped models at three sizes train (stage 3, 2 ranks,
 *    fp32, the cpu device, check mode off: it keeps shadow state of its own)
 *    and each rank's peak resident memory (VmHWM) equals the report's peak
 *    total (zrt_mem_stats.peak_all, every place and category, plus the data
 *    loader) within 10% + ALLOWANCE: the process's own code and libraries,
 *    OpenBLAS's buffers, the comm rings (what a rank holds before it makes
 *    a device). The report's peak is also under zrt_engine_estimate_model's
 *    bound (what `zrt estimate --config` prints). The check fires: a rank
 *    that holds 4 x ALLOWANCE outside the report fails it.
 *  - Offload frees memory: stage 3 with optimizer and parameters on NVMe,
 *    small settings (stage3_max_live_parameters, sub_group_size, buffer
 *    counts, max_in_cpu 0), a model 4 and 32 blocks deep: the bound is the
 *    same but for the activations; each rank's VmHWM is under it (+
 *    ALLOWANCE), and the deep model's is under the model states a rank would
 *    hold without offload. The shallow model's losses equal, bit for bit,
 *    the same run's without offload.
 */
#include "engine_common.h"

#define ALLOWANCE (32.0 * 1048576) /* bytes: code, libraries, OpenBLAS, comm rings (measured: 10-14 MiB) */
#define STEPS 3

typedef struct {
    int layers, d_model, vocab;
    bool nvme;
    double untracked; /* bytes a rank mallocs and touches outside the report (the checker's test) */
    char tag[48];
} job;

typedef struct {
    double rss, report, bound; /* bytes: VmHWM, the report's peak + data, the estimate's bound */
    double states;             /* bytes: the model states of this rank without offload (fp32 stage 3: 20 per own element) */
    float losses[STEPS];
} rank_mem;


static void job_config(const job *j, zrt_config *cfg)
{
    run_spec s = {.world = 2, .stage = 3, .steps = STEPS, .precision = ZRT_PRECISION_NO, .micro = 2, .accum = 1,
                  .persistence = 0, .gpt = true};
    if (j->nvme) s.offload = s.offload_param = ZRT_OFFLOAD_NVME;
    spec_config(&s, cfg);
    cfg->job.model = (zrt_model_config){.type = ZRT_MODEL_GPT, .layers = j->layers, .d_model = j->d_model,
                                        .heads = 4, .seq_len = 32, .vocab = j->vocab};
    if (!j->nvme) return;
    zrt_zero_config *z = &cfg->zero;
    z->stage3_max_live_parameters = z->stage3_prefetch_bucket_size = 3 * j->d_model * j->d_model * 12;
    z->sub_group_size = 1 << 18;
    z->offload_param.max_in_cpu = 0;
    z->offload_param.buffer_count = 4;
    z->offload_param.buffer_size = (int64_t)j->vocab * j->d_model;
    z->offload_optimizer.buffer_count = 4;
    cfg->aio.block_size = 1 << 20;
}

/* The bound, from a model made alone on its own device (before any engine). */
static bool bound_of(const zrt_config *cfg, double *bound)
{
    zrt_device_options o;
    zrt_device_options_init(&o);
    o.check = 0;
    zrt_device *device = NULL;
    zrt_model *model = NULL;
    zrt_mem_estimate m;
    bool ok = zrt_device_create(&o, &device) == ZRT_OK &&
              zrt_model_create(&cfg->job.model, device, (int)cfg->batch.micro_batch_per_gpu, &model) == ZRT_OK &&
              zrt_engine_estimate_model(cfg, model, &m) == ZRT_OK;
    *bound = 0;
    for (int p = 0; ok && p < ZRT_MEM_PLACES; p++)
        for (int c = 0; c < ZRT_MEM_CATEGORIES; c++) *bound += (double)m.peak[p][c];
    if (model) model->destroy(model);
    zrt_device_destroy(device);
    return ok;
}

static int train(int rank, int world, void *arg)
{
    const job *j = arg;
    static test_rank t;
    static rank_mem r;
    memset(&t, 0, sizeof t);
    memset(&r, 0, sizeof r);
    job_config(j, &t.cfg);
    if (!bound_of(&t.cfg, &r.bound)) return 10;
    setenv("ZRT_DEVICE_CHECK", "0", 1);
    if (!test_rank_open_config(&t, j->tag, rank, world)) return 11;
    const zrt_mem_stats *m = zrt_device_mem(t.device);
    for (int u = 0; u < t.model->n_units; u++)
        r.states += 20.0 * (double)((t.model->unit_numel[u] + 16 * world - 1) / (16 * world) * 16);
    char *untracked = j->untracked > 0 ? malloc((size_t)j->untracked) : NULL;
    if (untracked) memset(untracked, 1, (size_t)j->untracked);
    for (int i = 0; i < STEPS; i++) {
        zrt_step_result s;
        if (zrt_engine_step(t.e, &t.data, &s) != ZRT_OK) {
            fprintf(stderr, "rank %d step %d: %s\n", rank, i, zrt_last_error());
            return 12;
        }
        r.losses[i] = s.loss;
    }
    r.rss = zrt_mem_peak_resident();
    double data = (double)t.data.vocab * sizeof(int32_t); /* the data loader: gpt's successor table */
    r.report = (double)m->peak_all + data;
    r.bound += data;
    free(untracked);
    test_rank_close(&t);
    char path[1100];
    snprintf(path, sizeof path, "%s/mem-%s-%d", test_tmpdir(), j->tag, rank);
    FILE *f = fopen(path, "wb");
    bool ok = f && fwrite(&r, sizeof r, 1, f) == 1;
    if (f) fclose(f);
    return ok ? 0 : 13;
}

/* Runs the job on 2 ranks; out[rank] filled. */
static bool run_job(job *j, rank_mem out[2])
{
    snprintf(j->tag, sizeof j->tag, "L%d-d%d-v%d-%s%s", j->layers, j->d_model, j->vocab, j->nvme ? "nvme" : "none",
             j->untracked > 0 ? "-leak" : "");
    if (ranks_run(2, train, j, 300) != 0) return false;
    for (int rank = 0; rank < 2; rank++) {
        char path[1100];
        snprintf(path, sizeof path, "%s/mem-%s-%d", test_tmpdir(), j->tag, rank);
        FILE *f = fopen(path, "rb");
        bool ok = f && fread(&out[rank], sizeof out[rank], 1, f) == 1;
        if (f) fclose(f);
        if (!ok) return false;
    }
    return true;
}

static const double MIB = 1048576.0;

/* VmHWM within 10% + ALLOWANCE of the report's peak, on both ranks. */
static bool accounted(const job *j, const rank_mem *r)
{
    bool ok = true;
    for (int k = 0; k < 2; k++) {
        double gap = r[k].rss - r[k].report;
        printf("%s rank %d: peak resident %.1f MiB, report's peak %.1f MiB (gap %+.1f MiB), bound %.1f MiB, model "
               "states %.1f MiB\n",
               j->tag, k, r[k].rss / MIB, r[k].report / MIB, gap / MIB, r[k].bound / MIB, r[k].states / MIB);
        ok &= fabs(gap) <= 0.10 * r[k].report + ALLOWANCE;
    }
    return ok;
}

int main(void)
{
#ifdef UNDER_SANITIZER
    SKIP("a sanitizer's shadow memory is in the resident set (mode=debug, tsan)");
#endif
    openblas_set_num_threads(1);
    const job sizes[3] = {{2, 128, 4096, false, 0, ""}, {4, 256, 8192, false, 0, ""}, {6, 384, 16384, false, 0, ""}};
    static rank_mem r[2], off[2], deep[2];
    for (int i = 0; i < 3; i++) {
        job j = sizes[i];
        CHECK_MSG(run_job(&j, r), "%s did not run", j.tag);
        CHECK_MSG(accounted(&j, r), "%s: peak resident memory differs from the report by more than 10%% + %.0f MiB",
                  j.tag, ALLOWANCE / MIB);
        for (int k = 0; k < 2; k++)
            CHECK_MSG(r[k].report <= r[k].bound, "%s rank %d: the report's peak %.1f MiB is over the estimate's bound "
                      "%.1f MiB", j.tag, k, r[k].report / MIB, r[k].bound / MIB);
    }
    job leak = sizes[1];
    leak.untracked = 4 * ALLOWANCE;
    CHECK_MSG(run_job(&leak, r), "%s did not run", leak.tag);
    CHECK_MSG(!accounted(&leak, r), "%s: %.0f MiB outside the report went unnoticed", leak.tag, leak.untracked / MIB);

    job shallow = {4, 256, 4096, true, 0, ""}, plain = {4, 256, 4096, false, 0, ""}, long_ = {32, 256, 4096, true, 0, ""};
    CHECK_MSG(run_job(&plain, r), "%s did not run", plain.tag);
    CHECK_MSG(run_job(&shallow, off), "%s did not run", shallow.tag);
    CHECK_MSG(run_job(&long_, deep), "%s did not run", long_.tag);
    CHECK_MSG(memcmp(r[0].losses, off[0].losses, sizeof off[0].losses) == 0,
              "%s: losses differ from no offload (step %d: %.9g vs %.9g)", shallow.tag, STEPS,
              off[0].losses[STEPS - 1], r[0].losses[STEPS - 1]);
    CHECK(accounted(&shallow, off));
    CHECK(accounted(&long_, deep));
    for (int k = 0; k < 2; k++) {
        CHECK_MSG(off[k].rss <= off[k].bound + ALLOWANCE && deep[k].rss <= deep[k].bound + ALLOWANCE,
                  "rank %d: peak resident %.1f / %.1f MiB over the bounds %.1f / %.1f MiB (+ %.0f)", k,
                  off[k].rss / MIB, deep[k].rss / MIB, off[k].bound / MIB, deep[k].bound / MIB, ALLOWANCE / MIB);
        CHECK_MSG(deep[k].rss < deep[k].states, "rank %d: the deep model's peak %.1f MiB is not under the %.1f MiB of "
                  "model states it would hold without offload", k, deep[k].rss / MIB, deep[k].states / MIB);
    }
    printf("nvme offload: 4 -> 16 blocks: bound %.1f -> %.1f MiB, peak resident %.1f -> %.1f MiB (rank 0)\n",
           off[0].bound / MIB, deep[0].bound / MIB, off[0].rss / MIB, deep[0].rss / MIB);
    return CHECK_DONE();
}
