/* bench_gpu_models.c: `zrt bench gpu`'s model rows: GPT-2 small (124 M,
 * seq 1024) and a Llama shape of 1.1 B (seq 2048, grouped-query attention)
 * trained in bf16 by the engine on the GPU, per ZeRO stage: the micro batch
 * (given, or the largest that fits), step time, tokens/s, MFU, and where
 * the step's GPU time goes -- matmuls, attention, the model's other
 * kernels, the optimizer, the gradient statistics, the rest (op timing:
 * zrt/internal/op_timer.h, timing events around each op class).
 *
 * One thing at a time: world 1 by default (no comm: the step is the GPU's).
 * With --world > 1 the rows say which comm they measured (NCCL when each
 * rank has a GPU; else host comm, ranks sharing a GPU -- comm staging, not
 * the GPU) and add the step's compute (each rank alone, world 1) and comm
 * (its collectives alone) measured apart, and the share of comm hidden.
 * MFU as llm.c counts it: 6 N + 12 L T d FLOPs per token (N parameters, L
 * layers, T the sequence, d the width) against the card's dense bf16 peak.
 * --micro max (the default at world 1): per stage, micro batches 1, 2, 4,
 * ... are opened and stepped until one does not fit (out of memory); the
 * largest that ran is used and printed. The parent never touches CUDA before the fork.
 */
#include "bench_engine.h"
#include "cli.h"
#include "format.h"
#include "zrt/internal/op_timer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The rows' models (bit k of zrt_bench_gpu_options.models: row k). */
static const struct {
    const char *name, *about;
    zrt_model_config shape;
} models[] = {
    {"gpt2", "GPT-2 small: 12 layers, d_model 768, seq 1024, vocab 50304",
     {.type = ZRT_MODEL_GPT, .layers = 12, .d_model = 768, .heads = 12, .seq_len = 1024, .vocab = 50304,
      .hidden = 3072}},
    {"llama1b", "Llama 1.1 B: 16 layers, d_model 2048, 32 heads / 8 kv heads, SwiGLU 8192, seq 2048, vocab 32000",
     {.type = ZRT_MODEL_LLAMA, .layers = 16, .d_model = 2048, .heads = 32, .kv_heads = 8, .hidden = 8192,
      .seq_len = 2048, .vocab = 32000, .rope_theta = 500000, .norm_eps = 1e-5}},
};
#define N_MODELS ((int)(sizeof models / sizeof models[0]))

int zrt_bench_gpu_parse_models(const char *list, unsigned *mask)
{
    char copy[128];
    snprintf(copy, sizeof copy, "%s", list);
    *mask = 0;
    for (char *save = NULL, *name = strtok_r(copy, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        int k = 0;
        while (k < N_MODELS && strcmp(models[k].name, name) != 0) k++;
        if (k == N_MODELS && strcmp(name, "all") != 0) return -1;
        *mask |= k == N_MODELS ? (1u << N_MODELS) - 1 : 1u << k;
    }
    return *mask ? 0 : -1;
}

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

typedef struct {
    const zrt_bench_gpu_options *o;
    char store_dir[256];
} rank_args;

/* The engine's config for a row; NULL (the error set) if it does not validate. */
static const zrt_config *config_for(const zrt_bench_gpu_options *o, int model, int world, int micro)
{
    static zrt_config cfg;
    zrt_config_init(&cfg);
    cfg.distributed_type = ZRT_DIST_DEEPSPEED;
    cfg.num_processes = world;
    cfg.mixed_precision = ZRT_PRECISION_BF16;
    cfg.zero.overlap_comm = true;
    cfg.zero.stage3_param_persistence_threshold = 0;
    cfg.batch_given.micro_batch_per_gpu = micro;
    cfg.job.device = ZRT_DEVICE_CUDA;
    cfg.job.model = models[model].shape;
    cfg.job.model.activation_checkpointing = o->ckpt;
    return zrt_config_validate(&cfg) == ZRT_OK ? &cfg : NULL;
}

/* One row's figures (this rank's). */
typedef struct {
    int micro;
    double step, compute, comm;          /* median seconds per step; compute and comm apart only with world > 1 */
    double tokens;                       /* per step, all ranks */
    double flops_per_token;              /* 6 N + 12 L T d */
    double params;                       /* N */
    double classes[ZRT_OP_CLASSES];      /* mean GPU seconds per step by op class */
} row_figures;

static double flops_per_token(const zrt_model *m, const zrt_model_config *shape, double *params)
{
    *params = 0;
    for (int u = 0; u < m->n_units; u++) *params += (double)m->unit_numel[u];
    return 6.0 * *params + 12.0 * (double)shape->layers * (double)shape->seq_len * (double)shape->d_model;
}

/* 3 warm-up steps, then o->steps timed: the median step and the op classes' mean. */
static zrt_status time_steps(const zrt_config *cfg, int stage, int steps, zrt_device *device, zrt_comm *comm,
                             row_figures *f)
{
    static zrt_bench_run run;
    if (!cfg) return ZRT_ERR_INVALID;
    zrt_bench_kind kind = {stage, ZRT_OFFLOAD_NONE};
    zrt_status status = zrt_bench_run_open(&run, cfg, kind, NULL, device, comm);
    double warm[ZRT_OP_CLASSES] = {0};
    memset(f->classes, 0, sizeof f->classes);
    for (int i = 0; status == ZRT_OK && i < steps + 3; i++) {
        if (i == 3) status = zrt_op_timer_collect(device, warm); /* the warm-up's ops: dropped */
        double t = 0;
        if (status == ZRT_OK) status = zrt_bench_run_step(&run, comm, &t);
        if (i >= 3) run.times[i - 3] = t;
    }
    if (status == ZRT_OK) status = zrt_op_timer_collect(device, f->classes);
    if (status == ZRT_OK) {
        for (int c = 0; c < ZRT_OP_CLASSES; c++) f->classes[c] /= steps;
        f->step = zrt_bench_median(run.times, steps);
        f->tokens = (double)run.result.samples * (double)run.model->tokens_per_sample;
        f->flops_per_token = flops_per_token(run.model, &cfg->job.model, &f->params);
    }
    zrt_bench_run_close(&run);
    return status;
}

/* --micro max: the largest of 1, 2, 4, ... that opens and steps at world 1. */
static zrt_status largest_micro(const zrt_bench_gpu_options *o, int model, int stage, zrt_device *device, int *micro)
{
    static zrt_bench_run run;
    *micro = 0;
    for (int m = 1; m <= 1024; m *= 2) {
        const zrt_config *cfg = config_for(o, model, 1, m);
        if (!cfg) return ZRT_ERR_INVALID;
        zrt_status status = zrt_bench_run_open(&run, cfg, (zrt_bench_kind){stage, ZRT_OFFLOAD_NONE}, NULL, device, NULL);
        double t;
        if (status == ZRT_OK) status = zrt_bench_run_step(&run, NULL, &t);
        zrt_bench_run_close(&run);
        if (status == ZRT_ERR_NOMEM) break;
        ZRT_CHECK(status);
        *micro = m;
    }
    if (*micro == 0)
        return zrt_set_error(ZRT_ERR_NOMEM, "bench gpu: %s, stage %d: not even a micro batch of 1 fits (%s)",
                             models[model].name, stage, zrt_last_error());
    return ZRT_OK;
}

/* The step's collectives alone, per stage, on bf16 buffers of the widest
 * padded unit; median seconds over steps. */
static zrt_status time_comm(int steps, int world, zrt_device *device, zrt_comm *comm, zrt_stream *stream,
                            const zrt_model *model, int stage, double *seconds)
{
    static double times[ZRT_BENCH_MAX_STEPS];
    int64_t widest = 0, align = 16 * world;
    for (int u = 0; u < model->n_units; u++) widest = model->unit_numel[u] > widest ? model->unit_numel[u] : widest;
    widest = (widest + align - 1) / align * align;
    void *full = NULL, *shard = NULL;
    ZRT_CHECK(zrt_device_alloc(device, ZRT_MEM_COMM, (size_t)widest * 2, "bench full", NULL, &full));
    ZRT_CHECK(zrt_device_alloc(device, ZRT_MEM_COMM, (size_t)widest * 2 / (size_t)world, "bench shard", NULL, &shard));
    ZRT_CHECK(zrt_memset_async(stream, full, 0, (size_t)widest * 2));
    ZRT_CHECK(zrt_memset_async(stream, shard, 0, (size_t)widest * 2 / (size_t)world));
    zrt_status status = zrt_stream_synchronize(stream);
    for (int i = 0; status == ZRT_OK && i < steps + 1; i++) {
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
    if (status == ZRT_OK) *seconds = zrt_bench_median(times, steps);
    zrt_device_free(device, full, NULL);
    zrt_device_free(device, shard, NULL);
    return status;
}

/* With world > 1: compute (this stage on each rank alone) and comm (the collectives alone). */
static zrt_status measure_parts(const zrt_bench_gpu_options *o, int model, int stage, zrt_device *device,
                                zrt_comm *comm, zrt_stream *stream, row_figures *f)
{
    row_figures alone = {0};
    ZRT_CHECK(zrt_comm_barrier(comm));
    ZRT_CHECK(time_steps(config_for(o, model, 1, f->micro), stage, o->steps, device, NULL, &alone));
    f->compute = alone.step;
    zrt_model *m = NULL;
    ZRT_CHECK(zrt_model_create(&models[model].shape, device, 1, &m));
    zrt_status status = time_comm(o->steps, o->world, device, comm, stream, m, stage, &f->comm);
    m->destroy(m);
    return status;
}

/* Milliseconds per step by class: matmul, attention, the model's other kernels, optimizer, stats, the rest. */
static void split_ms(const row_figures *f, double ms[6])
{
    const double *c = f->classes;
    ms[0] = c[ZRT_OP_MATMUL], ms[1] = c[ZRT_OP_ATTENTION];
    ms[2] = c[ZRT_OP_MODEL] - c[ZRT_OP_MATMUL] - c[ZRT_OP_ATTENTION];
    ms[3] = c[ZRT_OP_OPTIMIZER], ms[4] = c[ZRT_OP_STATS];
    ms[5] = f->step - c[ZRT_OP_MODEL] - c[ZRT_OP_OPTIMIZER] - c[ZRT_OP_STATS];
    for (int k = 0; k < 6; k++) ms[k] *= 1e3;
}

static void print_row(const zrt_bench_gpu_options *o, int model, int stage, const row_figures *f, double peak,
                      int gpus)
{
    double rate = f->tokens / f->step, tflops = f->flops_per_token * rate / 1e12;
    double mfu = peak > 0 ? tflops / (peak * gpus) : -1, ms[6];
    double hidden = f->comm > 0 ? fmax(0.0, fmin(1.0, (f->compute + f->comm - f->step) / f->comm)) : 1.0;
    split_ms(f, ms);
    if (o->json) {
        printf("{\"bench\": \"gpu\", \"row\": \"%s\", \"stage\": %d, \"world\": %d, \"micro\": %d, \"step_ms\": %.3f, "
               "\"tokens_per_s\": %.1f, \"model_tflops\": %.2f, \"peak_tflops\": %.1f, \"mfu\": %.4f, "
               "\"matmul_ms\": %.3f, \"attention_ms\": %.3f, \"model_other_ms\": %.3f, \"optimizer_ms\": %.3f, "
               "\"stats_ms\": %.3f, \"rest_ms\": %.3f, \"compute_ms\": %.3f, \"comm_ms\": %.3f, \"comm_hidden\": %.3f}\n",
               models[model].name, stage, o->world, f->micro, f->step * 1e3, rate, tflops, peak, mfu, ms[0], ms[1],
               ms[2], ms[3], ms[4], ms[5], f->compute * 1e3, f->comm * 1e3, hidden);
        return;
    }
    char mfu_text[16] = "-";
    if (mfu >= 0) snprintf(mfu_text, sizeof mfu_text, "%.3f", mfu);
    printf("%5d %5d %9.2f %10.0f %8.1f %6s | %8.2f %8.2f %8.2f %8.2f %7.2f %8.2f", stage, f->micro, f->step * 1e3, rate,
           tflops, mfu_text, ms[0], ms[1], ms[2], ms[3], ms[4], ms[5]);
    if (o->world > 1) printf(" | %9.2f %8.2f %6.2f", f->compute * 1e3, f->comm * 1e3, hidden);
    printf("\n");
}

static void print_header(const zrt_bench_gpu_options *o, int model, zrt_device *device, bool nccl, int gpus,
                         double peak)
{
    if (o->json) return;
    printf("%s (%s), bf16%s, %d rank%s on %d GPU%s (%s), %s\nMFU: 6N + 12 L T d FLOPs per token against %.1f TFLOP/s "
           "dense bf16 per GPU%s; GPU ms per step by op class (timing events), rest = step - classes\n"
           "stage micro   step ms   tokens/s  TFLOP/s    MFU |   matmul     attn  model-o    optim   stats     rest%s\n",
           models[model].name, models[model].about, o->ckpt ? ", activation checkpointing" : "", o->world,
           o->world == 1 ? "" : "s", gpus, gpus == 1 ? "" : "s", zrt_device_name(device),
           o->world == 1 ? "no comm" : nccl ? "NCCL" : "host comm (hybrid: ranks share GPUs; comm staging, not the GPU)",
           peak, o->peak_tflops > 0 ? " (--peak)" : peak > 0 ? " (the card's data sheet)" : " (unknown card: pass --peak)",
           o->world > 1 ? " | compute ms  comm ms hidden" : "");
}

/* Every requested stage of one model on this rank. */
static zrt_status model_rows(const zrt_bench_gpu_options *o, int model, int rank, zrt_device *device, zrt_comm *comm,
                             zrt_stream *stream, double peak, int gpus, bool nccl)
{
    if (rank == 0) print_header(o, model, device, nccl, gpus, peak);
    for (int stage = 0; stage <= 3; stage++) {
        if (!(o->stages & (1u << stage))) continue;
        row_figures f = {.micro = o->micro};
        if (f.micro == 0) ZRT_CHECK(largest_micro(o, model, stage, device, &f.micro));
        ZRT_CHECK(time_steps(config_for(o, model, o->world, f.micro), stage, o->steps, device, comm, &f));
        if (comm) ZRT_CHECK(measure_parts(o, model, stage, device, comm, stream, &f));
        if (rank == 0) print_row(o, model, stage, &f, peak, gpus);
        fflush(stdout);
    }
    return ZRT_OK;
}

static void print_skip(const zrt_bench_gpu_options *o, const char *why)
{
    if (o->json) zrt_json_line("bench", ZJ_STR("gpu"), "row", ZJ_STR("models"), "skipped", ZJ_BOOL(true), "reason", ZJ_STR(why), NULL);
    else printf("model rows: skipped -- no GPU (%s)\n", why);
}

static int models_rank(int rank, int world, void *arg)
{
    const rank_args *a = arg;
    const zrt_bench_gpu_options *o = a->o;
    zrt_device_options d;
    zrt_device_options_init(&d);
    d.kind = ZRT_DEVICE_CUDA;
    d.check = 0;
    int gpus = zrt_device_count(ZRT_DEVICE_CUDA);
    d.index = gpus > 0 ? rank % gpus : 0;
    zrt_device *device = NULL;
    if (zrt_device_create(&d, &device) != ZRT_OK) {
        if (rank == 0) print_skip(o, zrt_last_error());
        return ZRT_EXIT_OK;
    }
    bool nccl = world <= gpus;
    zrt_store *store = NULL;
    zrt_comm *comm = NULL;
    zrt_stream *stream = NULL;
    zrt_status status = world > 1 ? zrt_bench_open_backend(a->store_dir, "bench-gpu", rank, world, nccl ? "nccl" : "host",
                                                           false, d.index, &store, &comm)
                                  : ZRT_OK;
    if (status == ZRT_OK) status = zrt_stream_create(device, "bench comm", &stream);
    if (status == ZRT_OK) status = zrt_op_timer_enable(device);
    double peak = o->peak_tflops > 0 ? o->peak_tflops : card_peak_tflops(zrt_device_name(device));
    int gpus_used = world < gpus ? world : gpus;
    for (int k = 0; k < N_MODELS && status == ZRT_OK; k++)
        if (o->models & (1u << k)) status = model_rows(o, k, rank, device, comm, stream, peak, gpus_used, nccl);
    if (status != ZRT_OK) fprintf(stderr, "zrt bench gpu: rank %d: %s\n", rank, zrt_last_error());
    zrt_stream_destroy(stream);
    zrt_comm_destroy(comm);
    zrt_store_destroy(store);
    zrt_device_destroy(device);
    return status == ZRT_OK ? ZRT_EXIT_OK : ZRT_EXIT_FAIL;
}

int zrt_bench_gpu_models(const zrt_bench_gpu_options *o)
{
    static rank_args a;
    a.o = o;
    const char *tmp = getenv("TMPDIR");
    snprintf(a.store_dir, sizeof a.store_dir, "%s/zrt-bench-gpu-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(a.store_dir)) {
        perror("zrt bench gpu: mkdtemp");
        return ZRT_EXIT_FAIL;
    }
    int rc = zrt_bench_run_ranks(o->world, models_rank, &a);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", a.store_dir);
    if (system(cmd) != 0) fprintf(stderr, "zrt bench gpu: could not remove %s\n", a.store_dir);
    return rc;
}
