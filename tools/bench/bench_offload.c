/* bench_offload.c: `zrt bench train`'s offload rows: a step with
 * offload_optimizer none, cpu and nvme against its parts measured alone in
 * the same run, and how much of the offload's own work the step hid (#28).
 *
 * The parts, each alone on this rank: compute (the step without offload:
 * forward, backward, stage 3's collectives and the device optimizer the
 * offload replaces; the model's forward + backward alone is printed too),
 * the gradient copies (the own shard, host memory to host memory: the cpu
 * device's copy down), the CPU optimizer over the own elements, and NVMe
 * reads and writes of what the engine moves per step (state 12 B and the
 * gradients per own element, each way) through the swapper with aio's
 * defaults -- and the same bytes at fio's rate, measured here. Then:
 *   serial = compute + copies + optimizer + I/O  (nothing hidden)
 *   hidden = (serial - step) / (copies + optimizer + I/O)
 *   goal   = max(compute, optimizer + I/O) x 1.15  (the target)
 * The engine runs the optimizer after the step's one wait (clipping needs
 * the global norm), so only the copies, the state reads and the writes
 * behind the optimizer can hide: the goal is printed, not assumed.
 */
#include "bench_engine.h"
#include "bench_offload.h"
#include "cli.h"
#include "zrt/internal/offload.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The base config of the rows (each run sets its stage's offload). */
static const zrt_config *offload_config(const zrt_bench_offload *o)
{
    static zrt_config cfg;
    zrt_bench_base_config(&cfg, o->world, o->micro);
    cfg.job.model = o->model;
    zrt_config_validate(&cfg);
    return &cfg;
}

/* This rank's own elements (every unit's shard), and the shards. */
static size_t own_elements(const zrt_bench_offload *o, zrt_device *device, size_t shards[ZRT_MAX_UNITS], int *n_units)
{
    zrt_model *model = NULL;
    size_t total = 0;
    *n_units = 0;
    if (zrt_model_create(&o->model, device, 1, &model) != ZRT_OK) return 0;
    int64_t align = 16 * o->world;
    for (int u = 0; u < model->n_units; u++) {
        shards[u] = (size_t)((model->unit_numel[u] + align - 1) / align * align / o->world);
        total += shards[u];
    }
    *n_units = model->n_units;
    model->destroy(model);
    return total;
}

/* The CPU optimizer alone over n own elements (fp32 grads and copy), on this rank's pool; median seconds. */
static zrt_status time_cpu_optimizer(const zrt_bench_offload *o, int rank, size_t n, double *seconds)
{
    static double times[ZRT_BENCH_MAX_STEPS];
    float *buf = calloc(5 * n, sizeof(float));
    zrt_cpu_pool *pool = NULL;
    int threads = zrt_cpu_threads_default(0, o->world);
    zrt_status status = buf ? zrt_cpu_pool_create(threads, rank * threads, &pool)
                            : zrt_set_error(ZRT_ERR_NOMEM, "bench: out of memory");
    zrt_adam_args args = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f,
                          .step = 1, .adamw = true, .unscale = 1.0f};
    zrt_adam_slice slice = {buf, buf + n, buf + 2 * n, buf + 3 * n, ZRT_DTYPE_F32, buf + 4 * n, ZRT_DTYPE_F32, n};
    for (int i = 0; status == ZRT_OK && i < o->steps; i++) {
        double t = zrt_now();
        status = zrt_cpu_adam(&args, 1.0f, &slice, ZRT_SIMD_AUTO, pool);
        times[i] = zrt_now() - t;
    }
    if (status == ZRT_OK) *seconds = zrt_bench_median(times, o->steps);
    zrt_cpu_pool_destroy(pool);
    free(buf);
    return status;
}

/* The gradient copies alone: the own shard (fp32) copied once; median seconds. */
static zrt_status time_copies(const zrt_bench_offload *o, size_t n, double *seconds)
{
    static double times[ZRT_BENCH_MAX_STEPS];
    float *from = calloc(n, sizeof(float)), *to = calloc(n, sizeof(float));
    if (!from || !to) {
        free(from);
        free(to);
        return zrt_set_error(ZRT_ERR_NOMEM, "bench: out of memory");
    }
    memset(to, 1, n * sizeof(float)); /* its pages in before timing */
    for (int i = 0; i < o->steps; i++) {
        double t = zrt_now();
        memcpy(to, from, n * sizeof(float));
        times[i] = zrt_now() - t;
    }
    *seconds = zrt_bench_median(times, o->steps);
    free(from);
    free(to);
    return ZRT_OK;
}

/* What the engine's nvme backend reads and writes per step, alone: each
 * unit's state and gradients (fp32: 16 B per own element) as one request,
 * in and out, with aio's defaults (1 MiB, depth 8); median seconds of each. */
static zrt_status time_io(const zrt_bench_offload *o, int rank, const size_t *shards, int n_units, double io_s[2])
{
    static double times[2][ZRT_BENCH_MAX_STEPS];
    char name[32];
    snprintf(name, sizeof name, "bench-io-rank%d", rank);
    size_t offsets[ZRT_MAX_UNITS + 1] = {0};
    for (int u = 0; u < n_units; u++) offsets[u + 1] = offsets[u] + 4 * ((shards[u] * 4 + 4095) / 4096 * 4096);
    const char *paths[1] = {o->nvme_dir};
    zrt_swap_options so = {.paths = paths, .n_paths = 1, .name = name, .bytes = offsets[n_units],
                           .block_size = 1 << 20, .queue_depth = 8};
    zrt_swap *swap = NULL;
    zrt_device_options d;
    zrt_device_options_init(&d);
    d.check = 0;
    zrt_device *device = NULL;
    char *buffer = NULL; /* pinned, as the engine's slots (huge pages) */
    zrt_status status = zrt_device_create(&d, &device);
    if (status == ZRT_OK) status = zrt_host_alloc(device, ZRT_MEM_OPTIMIZER, offsets[n_units], "bench io", (void **)&buffer);
    if (status == ZRT_OK) status = zrt_swap_create(&so, &swap);
    if (status == ZRT_OK) memset(buffer, 0, offsets[n_units]);
    for (int i = 0; status == ZRT_OK && i < o->steps; i++)
        for (int write = 1; write >= 0 && status == ZRT_OK; write--) {
            uint64_t tickets[ZRT_MAX_UNITS];
            double t = zrt_now();
            for (int u = 0; u < n_units && status == ZRT_OK; u++) {
                size_t at = offsets[u], bytes = offsets[u + 1] - at;
                status = write ? zrt_swap_write(swap, at, buffer + at, bytes, &tickets[u])
                               : zrt_swap_read(swap, at, buffer + at, bytes, &tickets[u]);
            }
            for (int u = 0; u < n_units && status == ZRT_OK; u++) status = zrt_swap_wait(swap, tickets[u]);
            times[write][i] = zrt_now() - t;
        }
    for (int k = 0; status == ZRT_OK && k < 2; k++) io_s[k] = zrt_bench_median(times[k], o->steps);
    zrt_swap_destroy(swap);
    zrt_host_free(device, buffer);
    zrt_device_destroy(device);
    return status;
}

/* fio's GB/s for rw (read | write) on a file of `bytes` under dir, 1 MiB, depth 8; 0 without fio. */
static double fio_gbps(const char *dir, const char *rw, size_t bytes)
{
    char cmd[1400], line[4096];
    snprintf(cmd, sizeof cmd,
             "fio --name=zrt --filename=%s/zrt-bench-fio --size=%zu --bs=1M --iodepth=8 --rw=%s --ioengine=io_uring "
             "--direct=1 --fixedbufs --registerfiles --minimal 2>/dev/null",
             dir, bytes, rw);
    FILE *p = popen(cmd, "r");
    double gbps = 0;
    if (p && fgets(line, sizeof line, p)) {
        /* terse format: field 7 is read KB/s, field 48 write KB/s (fio's --minimal, version 3) */
        int field = 1;
        for (char *c = line; *c; c++)
            if (*c == ';' && ++field == (strcmp(rw, "read") == 0 ? 7 : 48)) {
                gbps = atof(c + 1) * 1024 / 1e9;
                break;
            }
    }
    if (p) pclose(p);
    return gbps;
}

zrt_status zrt_bench_offload_rows(const zrt_bench_offload *o, zrt_device *device, zrt_comm *comm, int rank)
{
    static const char *const names[] = {"none", "cpu", "nvme"};
    mkdir(o->nvme_dir, 0700);
    zrt_bench_timing t[3];
    const zrt_bench_kind kinds[3] = {{o->stage, ZRT_OFFLOAD_NONE}, {o->stage, ZRT_OFFLOAD_CPU}, {o->stage, ZRT_OFFLOAD_NVME}};
    ZRT_CHECK(zrt_bench_time_runs(offload_config(o), o->steps, o->nvme_dir, device, comm, true, 3, kinds, t));
    size_t shards[ZRT_MAX_UNITS];
    int n_units;
    size_t own = own_elements(o, device, shards, &n_units);
    double opt_s = 0, copy_s = 0, io_s[2] = {0, 0}, model_s = 0;
    ZRT_CHECK(zrt_bench_time_model(offload_config(o), o->steps, device, &model_s));
    ZRT_CHECK(time_cpu_optimizer(o, rank, own, &opt_s));
    ZRT_CHECK(time_copies(o, own, &copy_s));
    ZRT_CHECK(time_io(o, rank, shards, n_units, io_s));
    if (rank != 0) return ZRT_OK;
    double moved = 16.0 * (double)own; /* bytes each way per step: state 12 B + fp32 gradients */
    double fio_w = fio_gbps(o->nvme_dir, "write", 256u << 20); /* first: fio reads the file it wrote */
    double fio_r = fio_gbps(o->nvme_dir, "read", 256u << 20);
    char fio_path[1200];
    snprintf(fio_path, sizeof fio_path, "%s/zrt-bench-fio", o->nvme_dir);
    remove(fio_path);
    double at_fio = fio_r > 0 && fio_w > 0 ? moved / (fio_r * 1e9) + moved / (fio_w * 1e9) : 0;
    double io = io_s[0] + io_s[1], compute = t[0].seconds;
    double host[3] = {0, copy_s + opt_s, copy_s + opt_s + io}, goal[3] = {compute * 1.15, fmax(compute, opt_s) * 1.15,
                                                                        fmax(compute, opt_s + io) * 1.15};
    if (!o->json)
        printf("     offload_optimizer, stage %d, %s, micro batch %d, %zu own elements per rank; alone: compute (the step "
               "without offload) %.1f ms (of which the model's forward + backward %.1f ms), gradient copies %.1f ms, CPU "
               "optimizer %.1f ms, NVMe read %.1f ms + write %.1f ms (%.0f MB each way; at fio's %.2f / %.2f GB/s: %.1f "
               "ms)\n     %8s %9s %10s %8s %9s %9s\n",
               o->stage, o->label, o->micro, own, compute * 1e3, model_s * 1e3, copy_s * 1e3, opt_s * 1e3, io_s[0] * 1e3,
               io_s[1] * 1e3, moved / 1e6, fio_r, fio_w, at_fio * 1e3, "offload", "step ms", "parts ms", "hidden",
               "goal ms", "vs goal");
    for (int k = 0; k < 3; k++) {
        double serial = compute + host[k], hidden = host[k] > 0 ? (serial - t[k].seconds) / host[k] : 0;
        if (o->json)
            printf("{\"bench\": \"offload\", \"model\": \"%s\", \"stage\": %d, \"world\": %d, \"offload\": \"%s\", "
                   "\"step_ms\": %.3f, \"compute_ms\": %.3f, \"copies_ms\": %.3f, \"optimizer_ms\": %.3f, "
                   "\"nvme_read_ms\": %.3f, \"nvme_write_ms\": %.3f, \"nvme_at_fio_ms\": %.3f, \"parts_ms\": %.3f, "
                   "\"hidden\": %.3f, \"goal_ms\": %.3f, \"ratio_to_goal\": %.3f}\n",
                   o->label, o->stage, o->world, names[k], t[k].seconds * 1e3, compute * 1e3, copy_s * 1e3, opt_s * 1e3,
                   io_s[0] * 1e3, io_s[1] * 1e3, at_fio * 1e3, serial * 1e3, hidden, goal[k] * 1e3,
                   t[k].seconds / goal[k]);
        else
            printf("     %8s %9.1f %10.1f %8.2f %9.1f %9.3f\n", names[k], t[k].seconds * 1e3, serial * 1e3, hidden,
                   goal[k] * 1e3, t[k].seconds / goal[k]);
    }
    return ZRT_OK;
}
