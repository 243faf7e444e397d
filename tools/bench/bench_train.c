/* bench_train.c: `zrt bench train`: training throughput of ZeRO stages 0-3
 * at one world size, as ratios to stage 0 measured in the same run.
 *
 * Why ratios: what a stage costs is the question (stage 3 must hide its
 * gathers behind compute); absolute samples/s on a shared machine say little.
 * All stages run in the same forked ranks with the same model, data and
 * batch, their engines alive together and their steps interleaved (a slow
 * spell of this shared machine falls on all alike); stage 3 gathers every
 * unit (persistence threshold 0). Time per step is the median over the
 * timed steps. Peak RSS per rank is measured per stage, alone, before.
 */
#include "bench_engine.h"
#include "bench_offload.h"
#include "format.h"
#include "cli.h"
#include "zrt.h"
#include "zrt/internal/kernels.h"
#include "zrt/internal/blas.h"
#include "zrt/internal/offload.h"

#include <cblas.h>

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void openblas_set_num_threads(int num_threads);

/* The offload rows' micro batch: small, so the optimizer's memory traffic and I/O
 * weigh against compute as they do for the large models offload is for. */
#define OFFLOAD_MICRO 8

typedef struct {
    int world, steps;
    bool json;
    bool want[3];        /* by zrt_model_type: mlp, gpt, llama */
    zrt_model_config shape; /* --shape: the transformers' dims (0: the default) */
    bool offload;        /* the offload rows (bench_offload.c) */
    zrt_model_config offload_model; /* --offload-model: the mlp (stage 2) or a GPT shape (stage 3, micro 1) */
    char offload_label[32];
    bool peer_torch;     /* --peer torch */
    double peer_rate[3]; /* the torch peer's tokens/s per model, measured before the ranks start; 0: none */
    int micro;           /* --shape's micro=: the transformers' micro batch (0: 8) */
    double sgemm_gflops; /* single thread, measured before the ranks start */
    char store_dir[256];
} train_options;

static const char usage[] =
    "usage: zrt bench train [--world 2] [--steps 30] [--model mlp|gpt|llama|all] [--shape SHAPE]\n"
    "                       [--peer torch] [--offload-model mlp|gpt:LAYERS:D_MODEL:VOCAB] [--json]\n"
    "\n"
    "Trains, for each ZeRO stage on --world forked CPU ranks:\n"
    "  mlp: 4 layers, d_model 256, hidden 1024, 64 classes, micro batch 64;\n"
    "  gpt: 4 blocks, d_model 256, 8 heads, seq_len 64, vocab 256, MLP 1024, micro batch 8;\n"
    "  llama: 4 blocks, d_model 256, 8 heads (4 kv heads), seq_len 64, vocab 256, SwiGLU 688,\n"
    "         micro batch 8;\n"
    "and prints samples/s (tokens/s for the transformers), the ratio to stage 0,\n"
    "and the GFLOP/s of the model's matmuls per rank against single-thread sgemm\n"
    "GFLOP/s measured in the same run. A row times the model's forward +\n"
    "backward alone (no engine); `engine ms` is a stage's step time less that.\n"
    "--shape sets the transformers' dims: gpt2-small (12 layers, d_model 768, 12\n"
    "heads, vocab 50304, seq_len 256; llama: 4 kv heads, SwiGLU 2048), or a list\n"
    "layers=N,d_model=N,heads=N,kv_heads=N,hidden=N,vocab=N,seq_len=N,micro=N.\n"
    "The mlp also runs stage 2 with offload_optimizer none, cpu and nvme (micro\n"
    "batch 8, so the optimizer's traffic weighs as it does for large models; in a\n"
    "temporary directory): step time against its parts measured alone in the same\n"
    "run (compute, gradient copies, CPU optimizer, NVMe reads and writes, and those\n"
    "bytes at fio's rate), the fraction of the offload's work hidden, and the goal\n"
    "max(compute, optimizer + I/O) x 1.15. --offload-model gpt:24:1024:50304 runs\n"
    "those rows alone for a GPT shape (GPT-2 medium's) at stage 3, micro batch 1.\n"
    "--peer torch first trains the same transformers in PyTorch (DDP over gloo,\n"
    "--world processes, one thread each, AdamW; the GPT written out, the Llama as\n"
    "transformers' LlamaForCausalLM; tools/bench/bench_peer_torch.py) and prints\n"
    "each stage's tokens/s as a ratio to it (skipped, with the reason, without torch).\n";

static const char *const model_names[3] = {"mlp", "gpt", "llama"};

/* Best of 5 single-thread 512^3 sgemms, in GFLOP/s. */
static double sgemm_gflops(void)
{
    int n = 512;
    float *a = calloc((size_t)n * n, sizeof(float)), *b = calloc((size_t)n * n, sizeof(float)),
          *c = calloc((size_t)n * n, sizeof(float));
    if (!a || !b || !c) return 0;
    for (int i = 0; i < n * n; i++) a[i] = b[i] = (float)(i % 7) * 0.1f;
    openblas_set_num_threads(1);
    double best = 1e9;
    for (int k = 0; k < 5; k++) {
        double t = zrt_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        t = zrt_now() - t;
        if (t < best) best = t;
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * n * n * n / best / 1e9;
}

/* The base config of a row: stage 0, no offload (each run sets its own);
 * micro 0 for the model's usual micro batch (or --shape's). One at a time (static). */
static const zrt_config *base_config(const train_options *o, zrt_model_type type, int micro)
{
    static zrt_config cfg;
    zrt_bench_base_config(&cfg, o->world, micro ? micro : type == ZRT_MODEL_MLP ? 64 : o->micro ? o->micro : 8);
    zrt_model_config *m = &cfg.job.model;
    *m = (zrt_model_config){.type = ZRT_MODEL_MLP, .layers = 4, .d_model = 256, .hidden = 1024, .vocab = 64};
    if (type != ZRT_MODEL_MLP) {
        *m = (zrt_model_config){.type = type, .layers = 4, .d_model = 256, .heads = 8, .seq_len = 64, .vocab = 256,
                                .hidden = type == ZRT_MODEL_GPT ? 1024 : 688, .kv_heads = type == ZRT_MODEL_LLAMA ? 4 : 0,
                                .rope_theta = 10000, .norm_eps = 1e-6};
        const zrt_model_config *s = &o->shape;
        if (s->layers) m->layers = s->layers;
        if (s->d_model) m->d_model = s->d_model;
        if (s->heads) m->heads = s->heads;
        if (s->vocab) m->vocab = s->vocab;
        if (s->seq_len) m->seq_len = s->seq_len;
        if (s->kv_heads && type == ZRT_MODEL_LLAMA) m->kv_heads = s->kv_heads;
        if (s->hidden) m->hidden = s->hidden;
        else if (s->d_model) m->hidden = type == ZRT_MODEL_GPT ? 4 * s->d_model : (8 * s->d_model / 3 + 63) / 64 * 64;
    }
    zrt_config_validate(&cfg);
    return &cfg;
}

/* The torch peer of a transformer row (tools/bench/bench_peer_torch.py,
 * found from this binary's build/bin/ or $ZRT_SOURCE_DIR): its tokens/s, or
 * 0 with the reason printed. */
static double peer_torch_rate(const train_options *o, zrt_model_type type)
{
    const zrt_config *cfg = base_config(o, type, 0);
    const zrt_model_config *m = &cfg->job.model;
    char args[200], line[512];
    snprintf(args, sizeof args, "%d %d %s %lld %lld %lld %lld %lld %lld %lld %lld", o->world, o->steps, model_names[type],
             (long long)m->layers, (long long)m->d_model, (long long)m->heads, (long long)(m->kv_heads ? m->kv_heads : m->heads),
             (long long)m->hidden, (long long)m->vocab, (long long)m->seq_len, (long long)cfg->batch.micro_batch_per_gpu);
    bool ran = zrt_cli_run_peer("tools/bench/bench_peer_torch.py", args, "torch ", line, sizeof line);
    double rate = 0, step_ms = 0;
    char version[64] = "?";
    if (ran && sscanf(line, "torch %63s tokens_per_s %lf step_ms %lf", version, &rate, &step_ms) != 3) rate = 0;
    if (rate <= 0) {
        const char *reason = line[0] ? line : "could not run python3";
        if (o->json)
            zrt_json_line("peer", ZJ_STR("torch"), "model", ZJ_STR(model_names[type]), "skipped", ZJ_BOOL(true), "reason",
                          ZJ_STR(reason), NULL);
        else
            printf("peer torch (%s): skipped: %s\n", model_names[type], reason);
        return 0;
    }
    if (o->json)
        zrt_json_line("peer", ZJ_STR("torch"), "model", ZJ_STR(model_names[type]), "version", ZJ_STR(version), "world",
                      ZJ_INT(o->world), "tokens_per_s", ZJ_NUM(rate), "step_ms", ZJ_NUM(step_ms), NULL);
    else printf("peer torch %s (%s, DDP, gloo, world %d, one thread per rank): %.1f tokens/s, %.2f ms per step\n", version,
           model_names[type], o->world, rate, step_ms);
    return rate;
}

/* Where the nvme offload rows keep their files. */
static const char *nvme_dir(const train_options *o)
{
    static char dir[300];
    snprintf(dir, sizeof dir, "%s/nvme", o->store_dir);
    return dir;
}

/* The peak RSS of a rank while one stage alone trains 3 steps: the peak is
 * reset first (/proc/self/clear_refs 5), so it is what the process holds
 * then -- libraries, comm buffers, what earlier runs left in the heap -- plus
 * this stage's model, engine and activations: an upper bound of a rank that
 * trains only this stage. */
static zrt_status stage_rss(const train_options *o, zrt_device *device, zrt_comm *comm, int stage, zrt_model_type type,
                            double *mb)
{
    static zrt_bench_run run;
    FILE *f = fopen("/proc/self/clear_refs", "w");
    bool reset = f && fputs("5", f) >= 0;
    if (f) reset = fclose(f) == 0 && reset;
    zrt_status status = zrt_bench_run_open(&run, base_config(o, type, 0), (zrt_bench_kind){stage, ZRT_OFFLOAD_NONE}, NULL,
                                           device, comm);
    for (int i = 0; status == ZRT_OK && i < 3; i++) {
        double t;
        status = zrt_bench_run_step(&run, comm, &t);
    }
    double rss = zrt_mem_peak_resident();
    *mb = reset && rss >= 0 ? rss / 1048576.0 : -1;
    zrt_bench_run_close(&run);
    return status;
}

/* --offload-model mlp | gpt:LAYERS:D_MODEL:VOCAB (heads of 64, seq_len 64). */
static bool parse_offload_model(const char *text, train_options *o)
{
    int layers, d, vocab;
    if (strcmp(text, "mlp") == 0) return true;
    if (sscanf(text, "gpt:%d:%d:%d", &layers, &d, &vocab) != 3 || layers < 1 || d < 64 || d % 64 || vocab < 2) return false;
    o->offload_model = (zrt_model_config){.type = ZRT_MODEL_GPT, .layers = layers, .d_model = d, .heads = d / 64,
                                          .seq_len = 64, .vocab = vocab};
    snprintf(o->offload_label, sizeof o->offload_label, "gpt %dx%d", layers, d);
    return true;
}

/* ", \"ratio_to_torch\": R" for a JSON row, or "" without a peer. */
static const char *peer_field(double ratio)
{
    static char field[48];
    if (ratio > 0) snprintf(field, sizeof field, ", \"ratio_to_torch\": %.3f", ratio);
    else field[0] = 0;
    return field;
}

/* "gpt (4 layers, d_model 256, 8 heads, seq_len 64, vocab 256, hidden 1024, micro batch 8)". */
static const char *shape_text(const train_options *o, zrt_model_type type)
{
    static char text[200];
    const zrt_config *cfg = base_config(o, type, 0);
    const zrt_model_config *m = &cfg->job.model;
    int n = snprintf(text, sizeof text, "%s (%lld layers, d_model %lld", model_names[type], (long long)m->layers,
                     (long long)m->d_model);
    if (type != ZRT_MODEL_MLP)
        n += snprintf(text + n, sizeof text - (size_t)n, ", %lld heads%s, seq_len %lld", (long long)m->heads,
                      type == ZRT_MODEL_LLAMA ? " (GQA)" : "", (long long)m->seq_len);
    snprintf(text + n, sizeof text - (size_t)n, ", vocab %lld, hidden %lld, micro batch %lld)", (long long)m->vocab,
             (long long)m->hidden, (long long)cfg->batch.micro_batch_per_gpu);
    return text;
}

/* One stage row (rank 0 prints it). */
static void print_stage(const train_options *o, zrt_model_type type, int stage, int world, zrt_bench_timing t,
                        double base, double model_s, double rss)
{
    double rate = t.tokens / t.seconds, gflops = t.flops / t.seconds / 1e9, peer = o->peer_rate[type];
    bool tokens = type != ZRT_MODEL_MLP;
    if (o->json) {
        printf("{\"model\": \"%s\", \"stage\": %d, \"world\": %d, \"%s\": %.2f, \"ratio_to_stage0\": %.3f, "
               "\"matmul_gflops\": %.3f, \"sgemm_gflops\": %.3f, \"step_ms\": %.3f, \"model_ms\": %.3f, "
               "\"engine_ms\": %.3f, \"peak_rss_mb\": %.1f, \"blas_core\": \"%s\"%s}\n",
               model_names[type], stage, world, tokens ? "tokens_per_s" : "samples_per_s", rate, rate / base, gflops,
               o->sgemm_gflops, t.seconds * 1e3, model_s * 1e3, (t.seconds - model_s) * 1e3, rss, zrt_blas_core(),
               peer_field(peer > 0 ? rate / peer : 0));
        return;
    }
    char peak[32];
    if (rss < 0) snprintf(peak, sizeof peak, "?");
    else zrt_fmt_bytes(rss * 1024 * 1024, peak, sizeof peak); /* MiB, as /proc's kB / 1024 */
    printf("     %5d %5d %14.1f %8.3f %14.2f %10.2f %9.2f %9.2f %8s", stage, world, rate, rate / base, gflops,
           gflops / o->sgemm_gflops, t.seconds * 1e3, (t.seconds - model_s) * 1e3, peak);
    if (peer > 0) printf(" %10.3f", rate / peer);
    printf("\n");
}

/* A model's rows: the forward+backward alone, then each stage. */
static zrt_status model_rows(const train_options *o, zrt_model_type type, zrt_device *device, zrt_comm *comm, int rank,
                             int world)
{
    if (rank == 0 && !o->json)
        printf("%s:\n     %5s %5s %14s %8s %14s %10s %9s %9s %8s%s\n", shape_text(o, type), "stage", "world",
               type != ZRT_MODEL_MLP ? "tokens/s" : "samples/s", "ratio", "matmul GFLOP/s", "of sgemm", "step ms",
               "engine ms", "peak RSS", o->peer_rate[type] > 0 ? "  vs torch" : "");
    double model_s = 0;
    ZRT_CHECK(zrt_bench_time_model(base_config(o, type, 0), o->steps, device, &model_s));
    if (rank == 0 && o->json)
        printf("{\"model\": \"%s\", \"row\": \"forward+backward alone\", \"model_ms\": %.3f}\n", model_names[type],
               model_s * 1e3);
    else if (rank == 0)
        printf("     forward+backward alone (the model, no engine): %.2f ms per micro batch\n", model_s * 1e3);
    zrt_bench_timing timings[4];
    double rss[4];
    const zrt_bench_kind kinds[4] = {{0, ZRT_OFFLOAD_NONE}, {1, ZRT_OFFLOAD_NONE}, {2, ZRT_OFFLOAD_NONE}, {3, ZRT_OFFLOAD_NONE}};
    for (int stage = 0; stage <= 3; stage++) ZRT_CHECK(stage_rss(o, device, comm, stage, type, &rss[stage]));
    ZRT_CHECK(zrt_bench_time_runs(base_config(o, type, 0), o->steps, NULL, device, comm, false, 4, kinds, timings));
    for (int stage = 0; stage <= 3 && rank == 0; stage++) {
        print_stage(o, type, stage, world, timings[stage], timings[0].tokens / timings[0].seconds, model_s, rss[stage]);
        fflush(stdout);
    }
    return ZRT_OK;
}

/* --shape: gpt2-small or key=value,... into o->shape and o->micro; false on a bad one. */
static bool parse_shape(train_options *o, const char *text)
{
    if (strcmp(text, "gpt2-small") == 0) {
        o->shape = (zrt_model_config){.layers = 12, .d_model = 768, .heads = 12, .kv_heads = 4, .vocab = 50304,
                                      .seq_len = 256};
        return true;
    }
    static const struct {
        const char *key;
        size_t offset;
    } keys[] = {{"layers", offsetof(zrt_model_config, layers)},   {"d_model", offsetof(zrt_model_config, d_model)},
                {"heads", offsetof(zrt_model_config, heads)},     {"kv_heads", offsetof(zrt_model_config, kv_heads)},
                {"hidden", offsetof(zrt_model_config, hidden)},   {"vocab", offsetof(zrt_model_config, vocab)},
                {"seq_len", offsetof(zrt_model_config, seq_len)}, {"micro", 0}};
    char copy[256];
    snprintf(copy, sizeof copy, "%s", text);
    for (char *save = NULL, *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '='), *end = NULL;
        long long v = eq ? strtoll(eq + 1, &end, 10) : 0;
        if (!eq || end == eq + 1 || *end || v < 1 || v > (1 << 20)) return false;
        *eq = 0;
        size_t k = 0;
        while (k < sizeof keys / sizeof keys[0] && strcmp(keys[k].key, item) != 0) k++;
        if (k == sizeof keys / sizeof keys[0]) return false;
        if (strcmp(item, "micro") == 0) o->micro = (int)v;
        else *(int64_t *)((char *)&o->shape + keys[k].offset) = v;
    }
    return true;
}

static int train_rank(int rank, int world, void *arg)
{
    const train_options *o = arg;
    openblas_set_num_threads(1);
    zrt_store *store = NULL;
    zrt_comm *comm = NULL;
    zrt_device *device = NULL;
    zrt_device_options device_options;
    zrt_device_options_init(&device_options);
    device_options.check = 0; /* a benchmark measures the real thing */
    if (zrt_device_create(&device_options, &device) != ZRT_OK ||
        zrt_bench_open_comm(o->store_dir, "bench-train", rank, world, false, &store, &comm) != ZRT_OK) {
        fprintf(stderr, "zrt bench train: rank %d: %s\n", rank, zrt_last_error());
        return ZRT_EXIT_FAIL;
    }
    for (int type = 0; type < 3; type++) {
        if (o->want[type] && model_rows(o, (zrt_model_type)type, device, comm, rank, world) != ZRT_OK) {
            fprintf(stderr, "zrt bench train: rank %d %s: %s\n", rank, model_names[type], zrt_last_error());
            return ZRT_EXIT_FAIL;
        }
    }
    bool mlp_rows = o->offload_model.type == ZRT_MODEL_MLP;
    zrt_bench_offload off = {.world = world, .steps = o->steps, .stage = mlp_rows ? 2 : 3,
                             .micro = mlp_rows ? OFFLOAD_MICRO : 1, .json = o->json, .model = o->offload_model,
                             .label = o->offload_label, .nvme_dir = nvme_dir(o)};
    if (o->offload && zrt_bench_offload_rows(&off, device, comm, rank) != ZRT_OK) {
        fprintf(stderr, "zrt bench train: rank %d offload: %s\n", rank, zrt_last_error());
        return ZRT_EXIT_FAIL;
    }
    zrt_comm_destroy(comm);
    zrt_store_destroy(store);
    zrt_device_destroy(device);
    return ZRT_EXIT_OK;
}

int zrt_bench_train(int argc, char **argv)
{
    static const struct option options[] = {{"help", no_argument, NULL, 'h'},
                                            {"world", required_argument, NULL, 'w'},
                                            {"steps", required_argument, NULL, 's'},
                                            {"json", no_argument, NULL, 'j'},
                                            {"model", required_argument, NULL, 'm'},
                                            {"peer", required_argument, NULL, 'p'},
                                            {"shape", required_argument, NULL, 'S'},
                                            {"offload-model", required_argument, NULL, 'o'},
                                            {NULL, 0, NULL, 0}};
    train_options o = {.world = 2, .steps = 30, .want = {true, true, true}, .offload_label = "mlp",
                       .offload_model = {.type = ZRT_MODEL_MLP, .layers = 4, .d_model = 256, .hidden = 1024, .vocab = 64}};
    bool offload_given = false;
    int c;
    while ((c = zrt_cli_next_option(argc, argv, options, "bench train")) != -1) {
        if (c == 'h') {
            fputs(usage, stdout);
            return ZRT_EXIT_OK;
        }
        if (c == 'j') o.json = true;
        else if (c == 'm' && (strcmp(optarg, "mlp") == 0 || strcmp(optarg, "gpt") == 0 ||
                              strcmp(optarg, "llama") == 0 || strcmp(optarg, "all") == 0)) {
            for (int t = 0; t < 3; t++) o.want[t] = strcmp(optarg, "all") == 0 || strcmp(optarg, model_names[t]) == 0;
        } else if (c == 'S' && parse_shape(&o, optarg)) {
            continue;
        } else if (c == 'o' && parse_offload_model(optarg, &o)) {
            offload_given = true;
        } else if (c == 'p' && strcmp(optarg, "torch") == 0) {
            o.peer_torch = true;
        } else if (c == 'w' && (o.world = atoi(optarg)) >= 1 && o.world <= 64) continue;
        else if (c == 's' && (o.steps = atoi(optarg)) >= 1 && o.steps <= ZRT_BENCH_MAX_STEPS) continue;
        else if (c != 'j')
            return c == '?' ? ZRT_EXIT_USAGE
                            : zrt_cli_usage_error("bench train", "bad value '%s' for %s", optarg,
                                                  zrt_cli_option_name(options, c));
    }
    if (optind != argc) return zrt_cli_usage_error("bench train", "unexpected argument '%s'", argv[optind]);
    o.offload = o.want[ZRT_MODEL_MLP] || offload_given;
    if (offload_given && o.offload_model.type == ZRT_MODEL_GPT) /* the big shape alone */
        for (int t = 0; t < 3; t++) o.want[t] = false;
    const char *tmp = getenv("TMPDIR");
    snprintf(o.store_dir, sizeof o.store_dir, "%s/zrt-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(o.store_dir)) {
        perror("zrt bench train: mkdtemp");
        return ZRT_EXIT_FAIL;
    }
    o.sgemm_gflops = sgemm_gflops();
    if (!o.json)
        printf("single-thread sgemm (512^3, best of 5, OpenBLAS %s kernels): %.2f GFLOP/s\n", zrt_blas_core(),
               o.sgemm_gflops);
    for (int t = ZRT_MODEL_GPT; o.peer_torch && t <= ZRT_MODEL_LLAMA; t++)
        if (o.want[t]) o.peer_rate[t] = peer_torch_rate(&o, (zrt_model_type)t);
    fflush(stdout);
    int rc = zrt_bench_run_ranks(o.world, train_rank, &o);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", o.store_dir);
    if (system(cmd) != 0) fprintf(stderr, "zrt bench train: could not remove %s\n", o.store_dir);
    return rc;
}
