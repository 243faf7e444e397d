/* cmd_estimate.c: `zrt estimate`: model-state memory per device for a model
 * size, ZeRO stage, offload and world size, like DeepSpeed's
 * estimate_zero*_model_states_mem_needs.
 *
 * Why these formulas: they are the ZeRO paper's for mixed-precision Adam --
 * 2 bytes of compute-copy parameters, 2 of gradients, 12 of optimizer state
 * (fp32 master, exp_avg, exp_avg_sq) per parameter -- which is exactly what
 * the engine allocates (tests/test_engine_memory.c checks the engine against
 * them); fp32 training keeps 4-byte parameters and gradients. Per device:
 *   stage 0: P + G + O        stage 1: P + G + O/N
 *   stage 2: P + (G + O)/N    stage 3: (P + G + O)/N (+ gathered layers)
 * Offloading moves the optimizer state (and in stage 3 the parameter shard)
 * to host memory: reported per device and per machine.
 * With --config, a second part gives what the engine itself will allocate
 * for that config and its model, per rank, byte for byte -- padding, the
 * gradients copied down with offload, NVMe's pinned slots, units kept
 * gathered (zrt_engine_estimate; tests/test_estimate.c checks it against
 * the engine's own report).
 */
#include "cli.h"
#include "estimate.h"
#include "format.h"
#include "zrt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: zrt estimate (--params N | --model-config HF_CONFIG.json | --config CFG) [--world N]\n"
    "                    [--gpus-per-node N] [--nodes N]\n"
    "                    [--precision bf16|fp16|fp32] [--offload-optimizer none|cpu|nvme]\n"
    "                    [--offload-param none|cpu|nvme] [--largest-layer N] [--json]\n"
    "\n"
    "Model-state bytes per device for ZeRO stages 0-3 (the ZeRO paper's 2+2+12\n"
    "bytes per parameter for mixed precision), and what offloading puts in host\n"
    "memory per device and per machine (NVMe-offloaded state in neither). --config\n"
    "takes the parameter count of zrt.model, and world, precision and offload from\n"
    "the config, and adds what the engine itself allocates per rank for it, byte\n"
    "for byte (padding, gradients copied down, NVMe slots, units kept gathered).\n"
    "Then the rows DeepSpeed's estimate_zero2/3_model_states_mem_needs print (per\n"
    "CPU node and per GPU, every offload option, zero_init 1/0). --model-config\n"
    "counts the parameters of a Hugging Face config.json (gpt2, llama-like).\n";

typedef struct {
    const zrt_config *cfg;  /* --config: its model's units, for the engine's own figures */
    int64_t unit_numel[ZRT_MAX_UNITS];
    int n_units;
    zrt_mem_estimate engine; /* --config: zrt_engine_estimate_model, the model made at the config's micro batch */
    int64_t data_bytes;      /* --config: the data loader's host memory */
    double params, largest_layer;
    int world, per_node;
    double p_bytes, g_bytes; /* per parameter */
    bool offload_optimizer, offload_param, json;
    bool nvme_optimizer, nvme_param; /* offloaded to NVMe: counted in neither place */
} estimate;

/* Bytes per device on the accelerator and in host memory, for one stage. */
static void stage_bytes(const estimate *e, int stage, double *device, double *host)
{
    double n = e->world, P = e->p_bytes * e->params, G = e->g_bytes * e->params, O = 12.0 * e->params;
    double opt = stage == 0 ? O : O / n;
    double params = stage == 3 ? P / n : P;
    double grads = stage >= 2 ? G / n : G;
    *host = 0;
    if (e->offload_optimizer && stage > 0) {
        *host += e->nvme_optimizer ? 0 : opt;
        opt = 0;
    }
    if (e->offload_param && stage == 3) {
        *host += e->nvme_param ? 0 : params;
        params = 0;
    }
    double gathered = stage == 3 ? e->p_bytes * e->largest_layer : 0; /* one layer gathered at a time */
    *device = params + grads + opt + gathered;
}

/* The model's parameter count (and unit sizes, and the engine's figures):
 * the model made at the config's micro batch on a cpu device. */
static double model_params(const zrt_config *cfg, estimate *e)
{
    zrt_device_options o;
    zrt_device_options_init(&o);
    o.check = 0;
    zrt_device *device = NULL;
    zrt_model *model = NULL;
    double total = -1;
    bool made = zrt_device_create(&o, &device) == ZRT_OK &&
                zrt_model_create(&cfg->job.model, device, (int)cfg->batch.micro_batch_per_gpu, &model) == ZRT_OK;
    if (made && zrt_engine_estimate_model(cfg, model, &e->engine) != ZRT_OK) {
        fprintf(stderr, "zrt estimate: %s\n", zrt_last_error());
        made = false;
        model->destroy(model);
    }
    if (made) {
        total = 0;
        for (int u = 0; u < model->n_units; u++) {
            total += (double)(e->unit_numel[u] = model->unit_numel[u]);
            for (int p = 0; p < model->n_params[u]; p++) /* DeepSpeed's largest layer: the largest parameter here */
                if ((double)model->params[u][p].numel > e->largest_layer) e->largest_layer = (double)model->params[u][p].numel;
        }
        e->n_units = model->n_units;
        model->destroy(model);
    }
    zrt_device_destroy(device);
    return total;
}

static bool from_config(const char *path, estimate *e)
{
    static zrt_config cfg;
    if (zrt_config_load(&cfg, path) != ZRT_OK) {
        fprintf(stderr, "%s\n", zrt_last_error()); /* it names the file and the keys */
        return false;
    }
    e->params = model_params(&cfg, e);
    e->cfg = &cfg;
    zrt_data data = {0};
    if (zrt_data_init(&data, &cfg) == ZRT_OK) e->data_bytes = zrt_cli_data_bytes(&data);
    zrt_data_fini(&data);
    e->world = (int)cfg.num_processes;
    e->per_node = (int)(cfg.num_processes / cfg.num_machines);
    bool fp32 = cfg.mixed_precision == ZRT_PRECISION_NO;
    e->p_bytes = e->g_bytes = fp32 ? 4 : 2;
    e->offload_optimizer = cfg.zero.offload_optimizer.device != ZRT_OFFLOAD_NONE;
    e->offload_param = cfg.zero.offload_param.device != ZRT_OFFLOAD_NONE;
    e->nvme_optimizer = cfg.zero.offload_optimizer.device == ZRT_OFFLOAD_NVME;
    e->nvme_param = cfg.zero.offload_param.device == ZRT_OFFLOAD_NVME;
    return e->params > 0;
}

static void print_rows(const estimate *e)
{
    if (!e->json)
        printf("%.0f parameters, %d devices (%d per machine), %s, offload optimizer %s, offload param %s\n"
               "%5s %18s %18s %18s\n",
               e->params, e->world, e->per_node, e->p_bytes == 4 ? "fp32" : "16-bit compute + fp32 master",
               e->offload_optimizer ? (e->nvme_optimizer ? "nvme" : "cpu") : "none",
               e->offload_param ? (e->nvme_param ? "nvme" : "cpu") : "none", "stage", "device",
               "host per device", "host per machine");
    for (int stage = 0; stage <= 3; stage++) {
        double device, host;
        stage_bytes(e, stage, &device, &host);
        char a[32], b[32], c[32];
        if (e->json)
            zrt_json_line("stage", ZJ_INT(stage), "params", ZJ_NUM(e->params), "world", ZJ_INT(e->world),
                          "device_bytes", ZJ_NUM(device), "host_bytes_per_device", ZJ_NUM(host),
                          "host_bytes_per_machine", ZJ_NUM(host * e->per_node), NULL);
        else
            printf("%5d %18s %18s %18s\n", stage, zrt_fmt_bytes(device, a, sizeof a), zrt_fmt_bytes(host, b, sizeof b),
                   zrt_fmt_bytes(host * e->per_node, c, sizeof c));
    }
}

/* The most a rank holds while training, by category, and the NVMe space:
 * the memory report's categories (zrt train prints its peak beside VmHWM). */
static void print_bound(const zrt_mem_estimate *m, int64_t data_bytes, int64_t bound)
{
    char b[32], line[512];
    int n = 0;
    for (int p = 0; p < ZRT_MEM_PLACES; p++)
        for (int c = 0; c < ZRT_MEM_CATEGORIES && n < (int)sizeof line; c++)
            if (m->peak[p][c])
                n += snprintf(line + n, sizeof line - (size_t)n, "%s %s %s, ", zrt_mem_place_name((zrt_mem_place)p),
                              zrt_mem_category_name((zrt_mem_category)c), zrt_fmt_bytes((double)m->peak[p][c], b, sizeof b));
    printf("  at most, while training: %s (%.*sdata %s) and the process's code and libraries\n",
           zrt_fmt_bytes((double)bound, b, sizeof b), n, line, zrt_fmt_bytes((double)data_bytes, b + 16, 16));
    if (m->nvme_bytes) printf("  NVMe: %s of swap files (%lld bytes)\n", zrt_fmt_bytes((double)m->nvme_bytes, b, sizeof b),
                              (long long)m->nvme_bytes);
}

/* What the engine allocates for the config: model states per rank, by place. */
static bool print_engine(const estimate *e)
{
    const zrt_mem_estimate m = e->engine;
    const zrt_zero_config *z = &e->cfg->zero;
    int64_t total[ZRT_MEM_PLACES] = {0}, bound = e->data_bytes;
    for (int p = 0; p < ZRT_MEM_PLACES; p++)
        for (int c = 0; c < ZRT_MEM_CATEGORIES; c++) {
            if (c <= ZRT_MEM_OPTIMIZER) total[p] += m.bytes[p][c];
            bound += m.peak[p][c];
        }
    const int64_t *d = m.bytes[ZRT_MEM_DEVICE], *h = m.bytes[ZRT_MEM_HOST];
    if (e->json) {
        zrt_json_line("engine", ZJ_BOOL(true), "stage", ZJ_INT(z->stage),
                      "offload_optimizer", ZJ_STR(zrt_offload_device_name(z->offload_optimizer.device)),
                      "offload_param", ZJ_STR(zrt_offload_device_name(z->offload_param.device)),
                      "device_params", ZJ_INT(d[ZRT_MEM_PARAMS]), "device_grads", ZJ_INT(d[ZRT_MEM_GRADS]),
                      "device_optimizer", ZJ_INT(d[ZRT_MEM_OPTIMIZER]), "host_params", ZJ_INT(h[ZRT_MEM_PARAMS]),
                      "host_grads", ZJ_INT(h[ZRT_MEM_GRADS]), "host_optimizer", ZJ_INT(h[ZRT_MEM_OPTIMIZER]),
                      "device_bytes", ZJ_INT(total[ZRT_MEM_DEVICE]), "host_bytes", ZJ_INT(total[ZRT_MEM_HOST]),
                      "bound_bytes", ZJ_INT(bound), "nvme_bytes", ZJ_INT(m.nvme_bytes), NULL);
        return true;
    }
    printf("the engine, for this config (stage %d, offload optimizer %s, param %s), per rank:\n", z->stage,
           zrt_offload_device_name(z->offload_optimizer.device), zrt_offload_device_name(z->offload_param.device));
    for (int p = 0; p < ZRT_MEM_PLACES; p++) {
        const int64_t *b = m.bytes[p];
        char pa[32], gr[32], op[32], all[32];
        printf("  %-7s params %s, grads %s, optimizer %s = %s (%lld bytes)%s\n", zrt_mem_place_name((zrt_mem_place)p),
               zrt_fmt_bytes((double)b[ZRT_MEM_PARAMS], pa, sizeof pa), zrt_fmt_bytes((double)b[ZRT_MEM_GRADS], gr, sizeof gr),
               zrt_fmt_bytes((double)b[ZRT_MEM_OPTIMIZER], op, sizeof op), zrt_fmt_bytes((double)total[p], all, sizeof all),
               (long long)total[p], p == ZRT_MEM_HOST ? " (pinned; state on NVMe not counted)" : "");
    }
    print_bound(&m, e->data_bytes, bound);
    return true;
}

/* --world, --nodes, --gpus-per-node (0 = not given): any two give the third,
 * one alone means one machine; a contradiction is a usage error naming the
 * flags, never a per-device figure for a world nobody asked for. */
static int resolve_world(estimate *e, int world, int nodes, int per_node)
{
    if (world && nodes && per_node && world != nodes * per_node)
        return zrt_cli_usage_error("estimate", "--world %d contradicts --nodes %d x --gpus-per-node %d = %d", world, nodes,
                                   per_node, nodes * per_node);
    if (world && nodes && world % nodes != 0)
        return zrt_cli_usage_error("estimate", "--world %d is not divisible by --nodes %d", world, nodes);
    if (world && per_node && world % per_node != 0)
        return zrt_cli_usage_error("estimate", "--world %d is not a multiple of --gpus-per-node %d", world, per_node);
    if (!world) world = (nodes ? nodes : 1) * (per_node ? per_node : 1);
    if (!per_node) per_node = nodes ? world / nodes : world;
    e->world = world;
    e->per_node = per_node;
    return 0;
}

/* With --config the world is the config's (num_processes over num_machines):
 * the flags may repeat it, not change it. */
static int check_config_world(const estimate *e, int world, int nodes, int per_node, const char *config)
{
    int machines = e->world / e->per_node;
    if ((world && world != e->world) || (nodes && nodes != machines) || (per_node && per_node != e->per_node))
        return zrt_cli_usage_error("estimate", "--world/--nodes/--gpus-per-node contradict %s (num_processes %d on "
                                   "num_machines %d); leave them out or use --params", config, e->world, machines);
    return 0;
}

/* none | cpu | nvme (nvme: off the device and, but for its pinned slots, out of host memory too). */
static bool parse_offload(const char *value, bool *offloaded, bool *nvme)
{
    *offloaded = strcmp(value, "cpu") == 0 || strcmp(value, "nvme") == 0;
    *nvme = strcmp(value, "nvme") == 0;
    return *offloaded || strcmp(value, "none") == 0;
}

int zrt_cmd_estimate(int argc, char **argv)
{
    static const struct option options[] = {
        {"help", no_argument, NULL, 'h'},           {"params", required_argument, NULL, 'p'},
        {"config", required_argument, NULL, 'c'},   {"world", required_argument, NULL, 'w'},
        {"gpus-per-node", required_argument, NULL, 'g'}, {"precision", required_argument, NULL, 'r'},
        {"offload-optimizer", required_argument, NULL, 'o'}, {"offload-param", required_argument, NULL, 'O'},
        {"largest-layer", required_argument, NULL, 'l'}, {"json", no_argument, NULL, 'j'},
        {"nodes", required_argument, NULL, 'n'},    {"model-config", required_argument, NULL, 'M'},
        {NULL, 0, NULL, 0}};
    int nodes = 0;
    const char *model_config = NULL;
    zrt_cli_normalize_options(argc, argv);
    estimate e = {.world = 0, .per_node = 0, .p_bytes = 2, .g_bytes = 2};
    const char *config = NULL;
    int c;
    while ((c = zrt_cli_next_option(argc, argv, options, "estimate")) != -1) {
        bool ok = true;
        switch (c) {
        case 'h': fputs(usage, stdout); return ZRT_EXIT_OK;
        case 'p': ok = (e.params = strtod(optarg, NULL)) >= 1; break;
        case 'c': config = optarg; break;
        case 'w': ok = (e.world = atoi(optarg)) >= 1; break;
        case 'g': ok = (e.per_node = atoi(optarg)) >= 1; break;
        case 'r':
            ok = strcmp(optarg, "bf16") == 0 || strcmp(optarg, "fp16") == 0 || strcmp(optarg, "fp32") == 0;
            e.p_bytes = e.g_bytes = strcmp(optarg, "fp32") == 0 ? 4 : 2;
            break;
        case 'o': ok = parse_offload(optarg, &e.offload_optimizer, &e.nvme_optimizer); break;
        case 'O': ok = parse_offload(optarg, &e.offload_param, &e.nvme_param); break;
        case 'l': ok = (e.largest_layer = strtod(optarg, NULL)) >= 0; break;
        case 'j': e.json = true; break;
        case 'n': ok = (nodes = atoi(optarg)) >= 1; break;
        case 'M': model_config = optarg; break;
        default: return ZRT_EXIT_USAGE;
        }
        if (!ok) return zrt_cli_usage_error("estimate", "bad value '%s' for %s", optarg, zrt_cli_option_name(options, c));
    }
    if (optind != argc) return zrt_cli_usage_error("estimate", "unexpected argument '%s'", argv[optind]);
    if (model_config && !zrt_estimate_hf_config(model_config, &e.params, &e.largest_layer)) return ZRT_EXIT_FAIL;
    if (!config && e.params < 1)
        return zrt_cli_usage_error("estimate", "--params N, --model-config FILE or --config CFG is required");
    int world = e.world, per_node = e.per_node;
    if (config && !from_config(config, &e)) return ZRT_EXIT_FAIL;
    int bad = config ? check_config_world(&e, world, nodes, per_node, config) : resolve_world(&e, world, nodes, per_node);
    if (bad) return bad;
    print_rows(&e);
    zrt_estimate_deepspeed(e.params, e.largest_layer, e.world / e.per_node, e.per_node, e.json);
    return e.cfg && !print_engine(&e) ? ZRT_EXIT_FAIL : ZRT_EXIT_OK;
}
