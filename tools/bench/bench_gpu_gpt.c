/* bench_gpu_gpt.c: `zrt bench gpu`'s GPT rows: the CUDA GPT (GPT-2 small's
 * shape by default) trained in bf16 on forked ranks, per ZeRO stage: step
 * time, tokens/s, model FLOPs utilisation against the card's dense bf16
 * peak, and the overlap achieved -- the step against its compute and comm
 * parts measured separately in the same run.
 *
 * Parts: compute is the same stage on each rank alone (world 1, no comm;
 * ranks sharing a GPU run it together, as they share it in the step); comm
 * is the step's collectives alone on buffers of the units' sizes (stage 0:
 * all_reduce of the gradients; 1-2: reduce_scatter + all_gather; 3: two
 * all_gathers + reduce_scatter). hidden = (compute + comm - step) / comm:
 * 1 when the comm is wholly behind compute, 0 when nothing is.
 * Ranks use GPU rank % GPUs; NCCL when each has its own GPU, else the host
 * backend (hybrid mode). The parent never touches CUDA before the fork.
 */
#include "bench_engine.h"
#include "cli.h"
#include "format.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What `zrt bench gpu` asks of its GPT rows (cli.h's bench_gpu options). */
typedef struct {
    int world, steps, micro;
    double peak_tflops; /* 0: from the card's name */
    bool json;
    char store_dir[256];
} gpt_options;

/* Dense bf16 tensor-core peaks (NVIDIA's data sheets, without sparsity), by name. */
static double card_peak_tflops(const char *name)
{
    static const struct {
        const char *match;
        double tflops;
    } cards[] = {{"H100 PCIe", 756.0}, {"H100", 989.4}, {"H200", 989.4}, {"H800", 989.4}, {"GH200", 989.4},
                 {"B200", 2250.0}, {"A100", 312.0}, {"L40S", 362.1}, {"A10G", 70.0}};
    for (size_t i = 0; i < sizeof cards / sizeof cards[0]; i++)
        if (strstr(name, cards[i].match)) return cards[i].tflops;
    return 0;
}

static const zrt_config *base_config(const gpt_options *o, int world)
{
    static zrt_config cfg;
    zrt_config_init(&cfg);
    cfg.distributed_type = ZRT_DIST_DEEPSPEED;
    cfg.num_processes = world;
    cfg.mixed_precision = ZRT_PRECISION_BF16;
    cfg.zero.overlap_comm = true;
    cfg.zero.stage3_param_persistence_threshold = 0;
    cfg.batch_given.micro_batch_per_gpu = o->micro;
    cfg.job.device = ZRT_DEVICE_CUDA;
    cfg.job.model = (zrt_model_config){.type = ZRT_MODEL_GPT, .layers = 12, .d_model = 768, .heads = 12,
                                       .seq_len = 1024, .vocab = 50304, .hidden = 3072};
    zrt_config_validate(&cfg);
    return &cfg;
}

/* Model FLOPs of one step per rank: the matmuls and attention's two T x T
 * products, forward and backward (3x forward). */
static double step_flops(const zrt_config *cfg, const zrt_model *model)
{
    const zrt_model_config *m = &cfg->job.model;
    double attention = 4.0 * (double)m->layers * (double)m->seq_len * (double)m->seq_len * (double)m->d_model;
    return 3.0 * (model->matmul_flops_per_sample + attention) * (double)cfg->batch.micro_batch_per_gpu *
           (double)cfg->batch.gradient_accumulation_steps;
}

/* The step's collectives alone, per stage, on bf16 buffers of the widest
 * padded unit; median seconds over o->steps. */
static zrt_status time_comm(const gpt_options *o, zrt_device *device, zrt_comm *comm, zrt_stream *stream,
                            const zrt_model *model, int stage, double *seconds)
{
    static double times[ZRT_BENCH_MAX_STEPS];
    int world = o->world;
    int64_t widest = 0, align = 16 * world;
    for (int u = 0; u < model->n_units; u++) widest = model->unit_numel[u] > widest ? model->unit_numel[u] : widest;
    widest = (widest + align - 1) / align * align;
    void *full = NULL, *shard = NULL;
    ZRT_CHECK(zrt_device_alloc(device, ZRT_MEM_COMM, (size_t)widest * 2, "bench full", NULL, &full));
    ZRT_CHECK(zrt_device_alloc(device, ZRT_MEM_COMM, (size_t)widest * 2 / (size_t)world, "bench shard", NULL, &shard));
    ZRT_CHECK(zrt_memset_async(stream, full, 0, (size_t)widest * 2));
    ZRT_CHECK(zrt_memset_async(stream, shard, 0, (size_t)widest * 2 / (size_t)world));
    zrt_status status = zrt_stream_synchronize(stream);
    for (int i = 0; status == ZRT_OK && i < o->steps + 1; i++) {
        status = zrt_comm_barrier(comm);
        double t = zrt_now();
        for (int u = 0; status == ZRT_OK && u < model->n_units; u++) {
            size_t padded = (size_t)((model->unit_numel[u] + align - 1) / align * align), part = padded / (size_t)world;
            if (stage == 0)
                status = zrt_comm_all_reduce_on(comm, full, full, padded, ZRT_DTYPE_BF16, ZRT_REDUCE_AVG, stream);
            for (int g = 0; stage > 0 && g < (stage == 3 ? 2 : 1) && status == ZRT_OK; g++)
                status = zrt_comm_all_gather_on(comm, shard, full, part, ZRT_DTYPE_BF16, stream);
            if (stage > 0 && status == ZRT_OK)
                status = zrt_comm_reduce_scatter_on(comm, full, shard, part, ZRT_DTYPE_BF16, ZRT_REDUCE_AVG, stream);
        }
        if (status == ZRT_OK) status = zrt_stream_synchronize(stream);
        if (i > 0) times[i - 1] = zrt_now() - t;
    }
    if (status == ZRT_OK) *seconds = zrt_bench_median(times, o->steps);
    zrt_device_free(device, full, NULL);
    zrt_device_free(device, shard, NULL);
    return status;
}

typedef struct {
    double step, compute, comm, tokens, flops;
} stage_figures;

static void print_row(const gpt_options *o, int stage, const stage_figures *f, double peak, int gpus_used)
{
    double rate = f->tokens / f->step, tflops = f->flops * o->world / f->step / 1e12;
    double mfu = peak > 0 ? tflops / (peak * gpus_used) : -1;
    double hidden = f->comm > 0 ? fmax(0.0, fmin(1.0, (f->compute + f->comm - f->step) / f->comm)) : 1.0;
    if (o->json) {
        printf("{\"bench\": \"gpu\", \"row\": \"gpt\", \"stage\": %d, \"world\": %d, \"step_ms\": %.3f, "
               "\"tokens_per_s\": %.1f, \"model_tflops\": %.2f, \"peak_tflops\": %.1f, \"mfu\": %.4f, "
               "\"compute_ms\": %.3f, \"comm_ms\": %.3f, \"comm_hidden\": %.3f}\n",
               stage, o->world, f->step * 1e3, rate, tflops, peak, mfu, f->compute * 1e3, f->comm * 1e3, hidden);
        return;
    }
    char mfu_text[16] = "-";
    if (mfu >= 0) snprintf(mfu_text, sizeof mfu_text, "%.3f", mfu);
    printf("%5d %9.2f %11.0f %9.1f %6s %11.2f %9.2f %11.3f %8.2f\n", stage, f->step * 1e3, rate, tflops, mfu_text,
           f->compute * 1e3, f->comm * 1e3, f->step / (f->compute + f->comm), hidden);
}

/* One stage on this rank: the step (all ranks), compute alone, comm alone. */
static zrt_status measure_stage(const gpt_options *o, zrt_device *device, zrt_comm *comm, zrt_stream *stream,
                                int stage, stage_figures *f)
{
    zrt_bench_kind kind = {stage, ZRT_OFFLOAD_NONE};
    zrt_bench_timing step, alone;
    ZRT_CHECK(zrt_bench_time_runs(base_config(o, o->world), o->steps, NULL, device, comm, 1, &kind, &step));
    if (comm) ZRT_CHECK(zrt_comm_barrier(comm));
    ZRT_CHECK(zrt_bench_time_runs(base_config(o, 1), o->steps, NULL, device, NULL, 1, &kind, &alone));
    f->step = step.seconds, f->compute = alone.seconds, f->tokens = step.tokens, f->comm = 0;
    zrt_model *model = NULL;
    const zrt_config *cfg = base_config(o, o->world);
    ZRT_CHECK(zrt_model_create(&cfg->job.model, device, 1, &model));
    f->flops = step_flops(cfg, model);
    zrt_status status = comm ? time_comm(o, device, comm, stream, model, stage, &f->comm) : ZRT_OK;
    model->destroy(model);
    return status;
}

static int gpt_rank(int rank, int world, void *arg)
{
    const gpt_options *o = arg;
    zrt_device_options d;
    zrt_device_options_init(&d);
    d.kind = ZRT_DEVICE_CUDA;
    d.check = 0;
    int gpus = zrt_device_count(ZRT_DEVICE_CUDA);
    d.index = gpus > 0 ? rank % gpus : 0;
    zrt_device *device = NULL;
    if (zrt_device_create(&d, &device) != ZRT_OK) {
        if (rank == 0 && o->json) {
            zrt_json_line("bench", ZJ_STR("gpu"), "row", ZJ_STR("gpt"), "skipped", ZJ_BOOL(true),
                          "reason", ZJ_STR(zrt_last_error()), NULL);
        } else if (rank == 0) {
            printf("gpt rows: skipped -- no GPU (%s)\n", zrt_last_error());
        }
        return ZRT_EXIT_OK;
    }
    bool nccl = world <= gpus;
    zrt_store *store = NULL;
    zrt_comm *comm = NULL;
    zrt_stream *stream = NULL;
    zrt_status status = world > 1 ? zrt_bench_open_backend(o->store_dir, "bench-gpu", rank, world, nccl ? "nccl" : "host",
                                                           false, d.index, &store, &comm)
                                  : ZRT_OK;
    if (status == ZRT_OK) status = zrt_stream_create(device, "bench comm", &stream);
    double peak = o->peak_tflops > 0 ? o->peak_tflops : card_peak_tflops(zrt_device_name(device));
    int gpus_used = world < gpus ? world : gpus;
    if (status == ZRT_OK && rank == 0 && !o->json)
        printf("gpt: 12 layers, d_model 768, seq_len 1024, vocab 50304 (GPT-2 small), bf16, micro batch %d, %d rank%s "
               "on %d GPU%s (%s), %s; MFU against %.1f TFLOP/s dense bf16 per GPU%s\n"
               "stage   step ms    tokens/s   TFLOP/s    MFU  compute ms   comm ms step/(c+c) hidden\n",
               o->micro, world, world == 1 ? "" : "s", gpus_used, gpus_used == 1 ? "" : "s", zrt_device_name(device),
               world == 1 ? "no comm" : nccl ? "NCCL" : "host comm (hybrid: ranks share GPUs)", peak,
               o->peak_tflops > 0 ? " (--peak)" : peak > 0 ? " (the card's data sheet)" : " (unknown card: pass --peak)");
    for (int stage = 0; stage <= 3 && status == ZRT_OK; stage++) {
        stage_figures f;
        status = measure_stage(o, device, comm, stream, stage, &f);
        if (status == ZRT_OK && rank == 0) print_row(o, stage, &f, peak, gpus_used);
        fflush(stdout);
    }
    if (status != ZRT_OK) fprintf(stderr, "zrt bench gpu: rank %d: %s\n", rank, zrt_last_error());
    zrt_stream_destroy(stream);
    zrt_comm_destroy(comm);
    zrt_store_destroy(store);
    zrt_device_destroy(device);
    return status == ZRT_OK ? ZRT_EXIT_OK : ZRT_EXIT_FAIL;
}

int zrt_bench_gpu_gpt(int world, int steps, int micro, double peak_tflops, bool json)
{
    static gpt_options o;
    o = (gpt_options){.world = world, .steps = steps, .micro = micro, .peak_tflops = peak_tflops, .json = json};
    const char *tmp = getenv("TMPDIR");
    snprintf(o.store_dir, sizeof o.store_dir, "%s/zrt-bench-gpu-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(o.store_dir)) {
        perror("zrt bench gpu: mkdtemp");
        return ZRT_EXIT_FAIL;
    }
    int rc = zrt_bench_run_ranks(world, gpt_rank, &o);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", o.store_dir);
    if (system(cmd) != 0) fprintf(stderr, "zrt bench gpu: could not remove %s\n", o.store_dir);
    return rc;
}
