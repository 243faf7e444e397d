/* test_estimate.c: zrt_engine_estimate (what `zrt estimate --config`
 * prints) equals the engine's own report -- params, grads and optimizer
 * bytes on the device and in pinned host memory right after creation -- for
 * every stage x offload_optimizer none/cpu/nvme x offload_param none/cpu/nvme
 * (stage 3; all on NVMe, and split by max_in_cpu), fp32 and bf16, the MLP
 * and the transformer, on 2 ranks, with units both below and above the
 * persistence threshold. And `zrt estimate --config --json` prints the
 * same figures as the engine made from that config file.
 */
#include "engine_common.h"

typedef struct {
    int stage;
    zrt_offload_device opt, param;
    int64_t max_in_cpu;
} combo;

static const combo combos[] = {
    {0, ZRT_OFFLOAD_NONE, ZRT_OFFLOAD_NONE, 0}, {1, ZRT_OFFLOAD_NONE, ZRT_OFFLOAD_NONE, 0},
    {1, ZRT_OFFLOAD_CPU, ZRT_OFFLOAD_NONE, 0},  {1, ZRT_OFFLOAD_NVME, ZRT_OFFLOAD_NONE, 0},
    {2, ZRT_OFFLOAD_NONE, ZRT_OFFLOAD_NONE, 0}, {2, ZRT_OFFLOAD_CPU, ZRT_OFFLOAD_NONE, 0},
    {2, ZRT_OFFLOAD_NVME, ZRT_OFFLOAD_NONE, 0}, {3, ZRT_OFFLOAD_NONE, ZRT_OFFLOAD_NONE, 0},
    {3, ZRT_OFFLOAD_CPU, ZRT_OFFLOAD_NONE, 0},  {3, ZRT_OFFLOAD_NVME, ZRT_OFFLOAD_NONE, 0},
    {3, ZRT_OFFLOAD_CPU, ZRT_OFFLOAD_CPU, 0},   {3, ZRT_OFFLOAD_NVME, ZRT_OFFLOAD_CPU, 0},
    {3, ZRT_OFFLOAD_CPU, ZRT_OFFLOAD_NVME, 0},  {3, ZRT_OFFLOAD_NVME, ZRT_OFFLOAD_NVME, 0},
    {3, ZRT_OFFLOAD_NVME, ZRT_OFFLOAD_NVME, 1000},
};
#define N_COMBOS (int)(sizeof combos / sizeof combos[0])

/* The engine's model-state bytes by place, for cfg, made on this rank; -1 on failure. */
static bool engine_report(const zrt_config *cfg, zrt_comm *comm, zrt_mem_estimate *out)
{
    zrt_device *device = test_device();
    zrt_model *model = NULL;
    zrt_engine *e = NULL;
    bool ok = zrt_model_create(&cfg->job.model, device, (int)cfg->batch.micro_batch_per_gpu, &model) == ZRT_OK;
    zrt_mem_stats before = *zrt_device_mem(device);
    ok = ok && zrt_engine_create(cfg, comm, model, &e) == ZRT_OK && zrt_engine_synchronize(e) == ZRT_OK;
    if (!ok) fprintf(stderr, "engine: %s\n", zrt_last_error());
    const zrt_mem_stats *after = zrt_device_mem(device);
    memset(out, 0, sizeof *out);
    for (int p = 0; ok && p < ZRT_MEM_PLACES; p++)
        for (int c = ZRT_MEM_PARAMS; c <= ZRT_MEM_OPTIMIZER; c++) out->bytes[p][c] = after->current[p][c] - before.current[p][c];
    bool estimated = ok && zrt_engine_estimate(cfg, model->unit_numel, model->n_units, &out[1]) == ZRT_OK;
    zrt_engine_destroy(e);
    if (model) model->destroy(model);
    zrt_device_destroy(device);
    return estimated;
}

static bool same(const zrt_mem_estimate *a, const zrt_mem_estimate *b, const char *what)
{
    bool equal = true;
    for (int p = 0; p < ZRT_MEM_PLACES; p++)
        for (int c = ZRT_MEM_PARAMS; c <= ZRT_MEM_OPTIMIZER; c++)
            if (a->bytes[p][c] != b->bytes[p][c]) {
                fprintf(stderr, "%s: %s %s: engine %lld, estimate %lld\n", what, zrt_mem_place_name((zrt_mem_place)p),
                        zrt_mem_category_name((zrt_mem_category)c), (long long)a->bytes[p][c], (long long)b->bytes[p][c]);
                equal = false;
            }
    return equal;
}

static int every_combo(int rank, int world, void *arg)
{
    (void)arg;
    zrt_store *store = NULL;
    zrt_comm *comm = NULL;
    if (open_comm("estimate", rank, world, false, 60, &store, &comm) != ZRT_OK) return 10;
    int bad = 0;
    for (int gpt = 0; gpt < 2; gpt++)
        for (int p = 0; p < 2; p++)
            for (int k = 0; k < N_COMBOS; k++) {
                const combo *c = &combos[k];
                run_spec s = {.world = world, .stage = c->stage, .steps = 1,
                              .precision = p ? ZRT_PRECISION_BF16 : ZRT_PRECISION_NO, .micro = 2, .accum = 1,
                              .persistence = 400, .gpt = gpt, .offload = c->opt, .offload_param = c->param,
                              .max_in_cpu = c->max_in_cpu};
                static zrt_config cfg;
                spec_config(&s, &cfg);
                zrt_mem_estimate m[2];
                char what[128];
                snprintf(what, sizeof what, "%s %s stage %d optimizer %s param %s max_in_cpu %lld", gpt ? "gpt" : "mlp",
                         p ? "bf16" : "fp32", c->stage, zrt_offload_device_name(c->opt),
                         zrt_offload_device_name(c->param), (long long)c->max_in_cpu);
                if (!engine_report(&cfg, comm, m) || !same(&m[0], &m[1], what)) bad++;
            }
    zrt_comm_destroy(comm);
    zrt_store_destroy(store);
    return bad ? 1 : 0;
}

/* The CLI's JSON row against the engine made from the same file (rank 0 compares). */
static int one_config(int rank, int world, void *arg)
{
    const char *path = arg;
    static zrt_config cfg;
    zrt_store *store = NULL;
    zrt_comm *comm = NULL;
    char tag[64];
    snprintf(tag, sizeof tag, "estimate-%.40s", strrchr(path, '/') ? strrchr(path, '/') + 1 : path); /* one rendezvous per file */
    if (zrt_config_load(&cfg, path) != ZRT_OK || open_comm(tag, rank, world, false, 60, &store, &comm) != ZRT_OK)
        return 10;
    zrt_mem_estimate m[2];
    bool ok = engine_report(&cfg, comm, m);
    zrt_comm_destroy(comm);
    zrt_store_destroy(store);
    if (!ok || rank != 0) return ok ? 0 : 11;
    char cmd[2400], line[2048];
    snprintf(cmd, sizeof cmd, "'%s' estimate --config '%s' --json", getenv("ZRT_BIN"), path);
    FILE *p = popen(cmd, "r");
    long long dev = -1, host = -1;
    while (p && fgets(line, sizeof line, p)) {
        const char *d = strstr(line, "\"device_bytes\": "), *h = strstr(line, "\"host_bytes\": ");
        if (strstr(line, "\"engine\": true") && d && h) dev = atoll(d + 16), host = atoll(h + 14);
    }
    if (p) pclose(p);
    long long want_dev = 0, want_host = 0;
    for (int c = ZRT_MEM_PARAMS; c <= ZRT_MEM_OPTIMIZER; c++) {
        want_dev += m[0].bytes[ZRT_MEM_DEVICE][c];
        want_host += m[0].bytes[ZRT_MEM_HOST][c];
    }
    printf("%s: zrt estimate says device %lld, host %lld bytes; the engine made %lld, %lld\n", path, dev, host, want_dev,
           want_host);
    return dev == want_dev && host == want_host ? 0 : 1;
}

int main(void)
{
    CHECK_MSG(ranks_run(2, every_combo, NULL, 120) == 0, "the estimate differs from the engine (above)");
    char paths[2][1100];
    snprintf(paths[0], sizeof paths[0], "%s/configs/zero2_offload_cpu.yaml", getenv("ZRT_SRC") ? getenv("ZRT_SRC") : ".");
    snprintf(paths[1], sizeof paths[1], "%s/configs/zero3_offload_nvme.yaml", getenv("ZRT_SRC") ? getenv("ZRT_SRC") : ".");
    for (int i = 0; i < 2; i++) CHECK_MSG(ranks_run(2, one_config, paths[i], 60) == 0, "zrt estimate --config %s", paths[i]);
    return CHECK_DONE();
}
