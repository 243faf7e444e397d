/* bench_gpu.c: `zrt bench gpu`: the optimizer kernel's bandwidth against a
 * device-to-device copy of the same bytes, measured in the same run, on the
 * GPU when there is one (else on the cpu device, said so in the first line).
 *
 * Why this yardstick: the multi-tensor Adam (zrt_kernel_adam_multi) is
 * memory bound; per parameter it reads master, exp_avg, exp_avg_sq (12 B)
 * and a bf16 gradient (2 B) and writes the three fp32 arrays and the bf16
 * copy (14 B): 28 B. A copy of 14 B per parameter moves the same 28 B, so
 * kernel GB/s / copy GB/s is how close the step is to the card's memory
 * speed (goal >= 0.85). The GPT rows (step time, tokens/s, MFU, overlap
 * per stage) are bench_gpu_gpt.c's; they run first, in forked ranks, since
 * the parent must not hold a CUDA context when it forks.
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
    "usage: zrt bench gpu [--params 64M] [--repeats 10] [--world 2] [--steps 10] [--micro 4] [--peak TFLOPS]\n"
    "                     [--no-gpt] [--json]\n"
    "\n"
    "GPT rows: the CUDA GPT in GPT-2 small's shape, bf16, on --world ranks (GPU rank %% GPUs;\n"
    "NCCL when each rank has a GPU, else host comm: ranks share GPUs), per ZeRO stage:\n"
    "step ms, tokens/s, model TFLOP/s and MFU against the card's dense bf16 peak (from\n"
    "its name, or --peak), the step's compute (each rank alone) and comm (its\n"
    "collectives alone) measured apart, and the share of comm hidden behind compute.\n"
    "Skipped, saying why, without a GPU.\n"
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

int zrt_bench_gpu(int argc, char **argv)
{
    static const struct option options[] = {{"help", no_argument, NULL, 'h'}, {"params", required_argument, NULL, 'p'},
                                            {"repeats", required_argument, NULL, 'r'}, {"json", no_argument, NULL, 'j'},
                                            {"world", required_argument, NULL, 'w'}, {"steps", required_argument, NULL, 's'},
                                            {"micro", required_argument, NULL, 'm'}, {"peak", required_argument, NULL, 'k'},
                                            {"no-gpt", no_argument, NULL, 'n'}, {NULL, 0, NULL, 0}};
    double params = 64.0 * 1024 * 1024, peak = 0;
    int repeats = 10, world = 2, steps = 10, micro = 4, c;
    bool json = false, gpt = true;
    while ((c = zrt_cli_next_option(argc, argv, options, "bench gpu")) != -1) {
        char *end = NULL;
        if (c == 'h') return fputs(usage, stdout), ZRT_EXIT_OK;
        if (c == 'j') json = true;
        else if (c == 'p') {
            params = strtod(optarg, &end);
            if (end && (*end == 'M' || *end == 'm')) params *= 1024 * 1024, end++;
            else if (end && (*end == 'K' || *end == 'k')) params *= 1024, end++;
            if (!end || *end || params < TENSORS * 64.0 || params > 4e9)
                return zrt_cli_usage_error("bench gpu", "bad value '%s' for --params (512 .. 4G)", optarg);
        } else if (c == 'r') {
            if ((repeats = atoi(optarg)) < 1 || repeats > 1000)
                return zrt_cli_usage_error("bench gpu", "bad value '%s' for --repeats", optarg);
        } else if (c == 'n') {
            gpt = false;
        } else if (c == 'w' || c == 's' || c == 'm') {
            int value = atoi(optarg), *slot = c == 'w' ? &world : c == 's' ? &steps : &micro;
            if (value < 1 || value > (c == 'w' ? 64 : c == 's' ? ZRT_BENCH_MAX_STEPS : 1024))
                return zrt_cli_usage_error("bench gpu", "bad value '%s' for %s", optarg, zrt_cli_option_name(options, c));
            *slot = value;
        } else if (c == 'k') {
            if ((peak = strtod(optarg, &end)) <= 0 || *end)
                return zrt_cli_usage_error("bench gpu", "bad value '%s' for --peak (TFLOP/s)", optarg);
        } else {
            return ZRT_EXIT_USAGE;
        }
    }
    if (optind != argc) return zrt_cli_usage_error("bench gpu", "unexpected argument '%s'", argv[optind]);
    if (gpt && zrt_bench_gpu_gpt(world, steps, micro, peak, json) != ZRT_EXIT_OK) return ZRT_EXIT_FAIL;
    static gpu_bench b;
    b.params = (size_t)params;
    zrt_status status = run(&b, repeats, json);
    if (status != ZRT_OK) fprintf(stderr, "zrt bench gpu: %s\n", zrt_last_error());
    zrt_device_destroy(b.device); /* frees what is left */
    return status == ZRT_OK ? ZRT_EXIT_OK : ZRT_EXIT_FAIL;
}
