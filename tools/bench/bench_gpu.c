/* bench_gpu.c: `zrt bench gpu`: the optimizer kernel's bandwidth against a
 * device-to-device copy of the same bytes, measured in the same run, on the
 * GPU when there is one (else on the cpu device, said so in the first line).
 *
 * Why this yardstick: the multi-tensor Adam (zrt_kernel_adam_multi) is
 * memory bound; per parameter it reads master, exp_avg, exp_avg_sq (12 B)
 * and a bf16 gradient (2 B) and writes the three fp32 arrays and the bf16
 * copy (14 B): 28 B. A copy of 14 B per parameter moves the same 28 B, so
 * kernel GB/s / copy GB/s is how close the step is to the card's memory
 * speed (goal >= 0.85). The model rows (GPT-2 small and a 1.1 B Llama:
 * micro batch, step time, tokens/s, MFU, GPU time by op class, per stage)
 * are bench_gpu_models.c's; they run first, in forked ranks, since the
 * parent must not hold a CUDA context when it forks.
 */
#include "bench_engine.h"
#include "zrt/internal/kernels.h"
#include "cli.h"
#include "format.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TENSORS 8

static const char usage[] =
    "usage: zrt bench gpu [--model gpt2,llama1b|all] [--stages 03] [--micro max|N] [--ckpt] [--world 1]\n"
    "                     [--steps 10] [--peak TFLOPS] [--params 64M] [--repeats 10] [--no-models] [--json]\n"
    "\n"
    "Model rows (on a GPU; skipped, saying why, without one): GPT-2 small (gpt2: 124 M, seq 1024)\n"
    "and a Llama of 1.1 B (llama1b: seq 2048, 8 kv heads for 32), bf16, per ZeRO stage (--stages:\n"
    "digits 0-3): micro batch, step ms, tokens/s, TFLOP/s and MFU (llm.c's 6N + 12 L T d FLOPs\n"
    "per token against the card's dense bf16 peak, from its name or --peak), and the GPU ms per\n"
    "step in matmuls, attention, the model's other kernels, the optimizer, the gradient\n"
    "statistics and the rest. --micro max (the default at world 1; 4 otherwise): the largest\n"
    "micro batch that fits, per stage (1, 2, 4, ... until one does not). --ckpt: activation\n"
    "checkpointing. --world N > 1: N ranks (GPU rank %% GPUs; NCCL when\n"
    "each has a GPU, else host comm -- comm staging, not the GPU), with the step's compute and\n"
    "comm measured apart and the share of comm hidden.\n"
    "Optimizer row: GB/s of the multi-tensor optimizer step (bf16 gradients and\n"
    "compute copy, 28 bytes per parameter) beside a device-to-device copy of the\n"
    "same bytes, on the GPU (or, without one, on the cpu device, which it says).\n";

typedef struct {
    zrt_device *device;
    zrt_stream *stream;
    zrt_adam_tensor t[TENSORS];
    void *copy_src, *copy_dst;
    float *stats;
    size_t params;
} gpu_bench;

static zrt_status alloc_all(gpu_bench *b)
{
    size_t per = b->params / TENSORS;
    for (int k = 0; k < TENSORS; k++) {
        zrt_adam_tensor *t = &b->t[k];
        t->n = per;
        ZRT_CHECK(zrt_device_alloc(b->device, ZRT_MEM_OPTIMIZER, per * 4, "master", NULL, (void **)&t->master));
        ZRT_CHECK(zrt_device_alloc(b->device, ZRT_MEM_OPTIMIZER, per * 4, "exp_avg", NULL, (void **)&t->exp_avg));
        ZRT_CHECK(zrt_device_alloc(b->device, ZRT_MEM_OPTIMIZER, per * 4, "exp_avg_sq", NULL, (void **)&t->exp_avg_sq));
        ZRT_CHECK(zrt_device_alloc(b->device, ZRT_MEM_GRADS, per * 2, "grads", NULL, (void **)&t->grads));
        ZRT_CHECK(zrt_device_alloc(b->device, ZRT_MEM_PARAMS, per * 2, "params", NULL, &t->params));
        ZRT_CHECK(zrt_kernel_fill(b->stream, t->master, ZRT_DTYPE_F32, 0.5f, per));
        ZRT_CHECK(zrt_kernel_fill(b->stream, t->exp_avg, ZRT_DTYPE_F32, 0.0f, per));
        ZRT_CHECK(zrt_kernel_fill(b->stream, t->exp_avg_sq, ZRT_DTYPE_F32, 0.0f, per));
        ZRT_CHECK(zrt_kernel_fill(b->stream, (void *)t->grads, ZRT_DTYPE_BF16, 0.01f, per));
    }
    size_t bytes = b->params / TENSORS * TENSORS * 14;
    ZRT_CHECK(zrt_device_alloc(b->device, ZRT_MEM_COMM, bytes, "copy source", NULL, &b->copy_src));
    ZRT_CHECK(zrt_device_alloc(b->device, ZRT_MEM_COMM, bytes, "copy destination", NULL, &b->copy_dst));
    ZRT_CHECK(zrt_memset_async(b->stream, b->copy_src, 1, bytes));
    ZRT_CHECK(zrt_device_alloc(b->device, ZRT_MEM_ACTIVATIONS, 8, "stats", NULL, (void **)&b->stats));
    ZRT_CHECK(zrt_kernel_fill(b->stream, b->stats, ZRT_DTYPE_F32, 0.0f, 2));
    return zrt_stream_synchronize(b->stream);
}

/* Best seconds of `repeats` runs of the optimizer (copy false) or the copy. */
static zrt_status time_it(gpu_bench *b, bool copy, int repeats, double *best)
{
    zrt_adam_args args = {.lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f,
                          .adamw = true, .step = 1, .unscale = 1.0f, .max_norm = 0};
    size_t bytes = b->params / TENSORS * TENSORS * 14;
    *best = 1e30;
    for (int r = 0; r < repeats + 1; r++) { /* the first run warms up */
        double t0 = zrt_now();
        args.step = r + 1;
        ZRT_CHECK(copy ? zrt_memcpy_async(b->stream, b->copy_dst, b->copy_src, bytes, ZRT_COPY_D2D)
                       : zrt_kernel_adam_multi(b->stream, b->t, TENSORS, ZRT_DTYPE_BF16, ZRT_DTYPE_BF16, &args, b->stats));
        ZRT_CHECK(zrt_stream_synchronize(b->stream));
        double t = zrt_now() - t0;
        if (r > 0 && t < *best) *best = t;
    }
    return ZRT_OK;
}

static zrt_status run(gpu_bench *b, int repeats, bool json)
{
    zrt_device_options o;
    zrt_device_options_init(&o);
    o.check = 0;
    o.kind = ZRT_DEVICE_CUDA;
    char why[ZRT_ERROR_MAX] = "";
    if (zrt_device_create(&o, &b->device) != ZRT_OK) {
        snprintf(why, sizeof why, "%s", zrt_last_error());
        o.kind = ZRT_DEVICE_CPU;
        ZRT_CHECK(zrt_device_create(&o, &b->device));
    }
    ZRT_CHECK(zrt_stream_create(b->device, "bench", &b->stream));
    ZRT_CHECK(alloc_all(b));
    double adam_s, copy_s;
    ZRT_CHECK(time_it(b, false, repeats, &adam_s));
    ZRT_CHECK(time_it(b, true, repeats, &copy_s));
    double moved = 28.0 * (double)(b->params / TENSORS * TENSORS), adam = moved / adam_s / 1e9, copy = moved / copy_s / 1e9;
    if (json)
        zrt_json_line("bench", ZJ_STR("gpu"), "row", ZJ_STR("optimizer"), "device", ZJ_STR(zrt_device_name(b->device)),
                      "params", ZJ_INT(b->params), "optimizer_gbps", ZJ_NUM(adam), "copy_gbps", ZJ_NUM(copy),
                      "ratio", ZJ_NUM(adam / copy), NULL);
    else
        printf("device: %s%s%s%s\n%zu parameters in %d tensors, 28 B each, best of %d\n"
               "optimizer (multi-tensor, bf16 copy) %8.2f GB/s\ndevice-to-device copy, same bytes %8.2f GB/s\n"
               "ratio %.3f (goal >= 0.85 on a GPU)\n",
               zrt_device_name(b->device), why[0] ? " -- no GPU (" : "", why, why[0] ? ")" : "", b->params, TENSORS,
               repeats, adam, copy, adam / copy);
    return ZRT_OK;
}

/* --stages: digits 0-3 into a mask; 0 if anything else. */
static unsigned parse_stages(const char *text)
{
    unsigned mask = 0;
    for (const char *c = text; *c; c++) {
        if (*c < '0' || *c > '3') return 0;
        mask |= 1u << (*c - '0');
    }
    return mask;
}

/* One model option into o; ZRT_EXIT_OK or the usage error. */
static int model_option(int c, const struct option *options, zrt_bench_gpu_options *o)
{
    char *end = NULL;
    if (c == 'c') o->ckpt = true;
    else if (c == 'S' && !(o->stages = parse_stages(optarg)))
        return zrt_cli_usage_error("bench gpu", "bad value '%s' for --stages (digits 0-3, e.g. 03)", optarg);
    else if (c == 'M' && zrt_bench_gpu_parse_models(optarg, &o->models) != 0)
        return zrt_cli_usage_error("bench gpu", "bad value '%s' for --model (gpt2, llama1b, all)", optarg);
    else if (c == 'm' && strcmp(optarg, "max") == 0) o->micro = 0;
    else if (c == 'w' || c == 's' || c == 'm') {
        int value = atoi(optarg), *slot = c == 'w' ? &o->world : c == 's' ? &o->steps : &o->micro;
        if (value < 1 || value > (c == 'w' ? 64 : c == 's' ? ZRT_BENCH_MAX_STEPS : 1024))
            return zrt_cli_usage_error("bench gpu", "bad value '%s' for %s", optarg, zrt_cli_option_name(options, c));
        *slot = value;
    } else if (c == 'k' && ((o->peak_tflops = strtod(optarg, &end)) <= 0 || *end))
        return zrt_cli_usage_error("bench gpu", "bad value '%s' for --peak (TFLOP/s)", optarg);
    return ZRT_EXIT_OK;
}

int zrt_bench_gpu(int argc, char **argv)
{
    static const struct option options[] = {
        {"help", no_argument, NULL, 'h'},          {"params", required_argument, NULL, 'p'},
        {"repeats", required_argument, NULL, 'r'}, {"json", no_argument, NULL, 'j'},
        {"world", required_argument, NULL, 'w'},   {"steps", required_argument, NULL, 's'},
        {"micro", required_argument, NULL, 'm'},   {"peak", required_argument, NULL, 'k'},
        {"model", required_argument, NULL, 'M'},   {"stages", required_argument, NULL, 'S'},
        {"ckpt", no_argument, NULL, 'c'},          {"no-models", no_argument, NULL, 'n'},
        {NULL, 0, NULL, 0}};
    double params = 64.0 * 1024 * 1024;
    int repeats = 10, c;
    bool rows = true;
    zrt_bench_gpu_options o = {.world = 1, .steps = 10, .micro = -1, .stages = 0x9, .models = 0x3};
    while ((c = zrt_cli_next_option(argc, argv, options, "bench gpu")) != -1) {
        char *end = NULL;
        if (c == 'h') return fputs(usage, stdout), ZRT_EXIT_OK;
        if (c == 'j') o.json = true;
        else if (c == 'n') rows = false;
        else if (c == 'p') {
            params = strtod(optarg, &end);
            if (end && (*end == 'M' || *end == 'm')) params *= 1024 * 1024, end++;
            else if (end && (*end == 'K' || *end == 'k')) params *= 1024, end++;
            if (!end || *end || params < TENSORS * 64.0 || params > 4e9)
                return zrt_cli_usage_error("bench gpu", "bad value '%s' for --params (512 .. 4G)", optarg);
        } else if (c == 'r') {
            if ((repeats = atoi(optarg)) < 1 || repeats > 1000)
                return zrt_cli_usage_error("bench gpu", "bad value '%s' for --repeats", optarg);
        } else if (strchr("cSMmwsk", c)) {
            int rc = model_option(c, options, &o);
            if (rc != ZRT_EXIT_OK) return rc;
        } else {
            return ZRT_EXIT_USAGE;
        }
    }
    if (o.micro < 0) o.micro = o.world == 1 ? 0 : 4; /* unset: the largest that fits (world 1), else 4 */
    if (o.micro == 0 && o.world > 1)
        return zrt_cli_usage_error("bench gpu", "--micro max needs --world 1 (every rank must agree on the batch)");
    if (optind != argc) return zrt_cli_usage_error("bench gpu", "unexpected argument '%s'", argv[optind]);
    if (rows && zrt_bench_gpu_models(&o) != ZRT_EXIT_OK) return ZRT_EXIT_FAIL;
    static gpu_bench b;
    b.params = (size_t)params;
    zrt_status status = run(&b, repeats, o.json);
    if (status != ZRT_OK) fprintf(stderr, "zrt bench gpu: %s\n", zrt_last_error());
    zrt_device_destroy(b.device); /* frees what is left */
    return status == ZRT_OK ? ZRT_EXIT_OK : ZRT_EXIT_FAIL;
}
