/* overrides.c: the flags `zrt launch` and `zrt train` share: the config
 * (--config / --config_file), accelerate launch's overrides, --metrics,
 * --steps and --resume_from. `zrt launch` hands its arguments to every
 * `zrt train` it starts, so both read them with this one table.
 */
#include "overrides.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct option zrt_override_options[] = {
    {"help", no_argument, NULL, 'h'},
    {"config", required_argument, NULL, 'c'},
    {"config-file", required_argument, NULL, 'c'},
    {"zrt-config", required_argument, NULL, 'Z'},
    {"num-processes", required_argument, NULL, 'n'},
    {"nproc-per-node", required_argument, NULL, 'P'},
    {"num-machines", required_argument, NULL, 'N'},
    {"machine-rank", required_argument, NULL, 'r'},
    {"main-process-ip", required_argument, NULL, 'i'},
    {"main-process-port", required_argument, NULL, 'p'},
    {"mixed-precision", required_argument, NULL, 'm'},
    {"gradient-accumulation-steps", required_argument, NULL, 'g'},
    {"zero-stage", required_argument, NULL, 'z'},
    {"offload-optimizer-device", required_argument, NULL, 'o'},
    {"offload-param-device", required_argument, NULL, 'O'},
    {"metrics", required_argument, NULL, 'M'},
    {"steps", required_argument, NULL, 's'},
    {"file-store", no_argument, NULL, 'F'},
    {"resume-from", required_argument, NULL, 'R'},
    {NULL, 0, NULL, 0}};

const char zrt_override_usage[] =
    "  --config CFG, --config_file CFG      Accelerate YAML or DeepSpeed JSON (required)\n"
    "  --zrt_config FILE                    zrt's own settings (the zrt: section's keys);\n"
    "                                       default: NAME.zrt.yaml beside NAME.yaml\n"
    "  --num_processes N, --nproc_per_node N (torchrun's: N per machine),\n"
    "  --num_machines N, --machine_rank R,\n"
    "  --main_process_ip IP, --main_process_port P, --mixed_precision no|fp16|bf16,\n"
    "  --gradient_accumulation_steps N, --zero_stage 0-3,\n"
    "  --offload_optimizer_device none|cpu|nvme, --offload_param_device none|cpu|nvme\n"
    "                                       override the config (as accelerate launch does)\n"
    "  --metrics FILE                       JSON lines of step metrics (rank 0)\n"
    "  --steps N                            override zrt.steps\n"
    "  --file_store                         launch: rendezvous through a private directory\n"
    "                                       instead of the control plane (one machine only)\n"
    "  --resume_from DIR/step_N             resume from this checkpoint step (default: the\n"
    "                                       newest, zrt.checkpoint_dir/latest)\n"
    "Options take dashes or underscores.\n";

static bool parse_int(const char *text, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    long long v = strtoll(text, &end, 10);
    if (end == text || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static bool parse_name(const char *text, const char *const *names, int *out)
{
    for (int i = 0; names[i]; i++)
        if (strcmp(text, names[i]) == 0) {
            *out = i;
            return true;
        }
    return false;
}

bool zrt_override_take(zrt_overrides *o, int c, const char *arg)
{
    static const char *const precisions[] = {"no", "fp16", "bf16", NULL};
    static const char *const devices[] = {"none", "cpu", "nvme", NULL};
    int64_t v;
    int e;
    zrt_override_item *item = o->n_items < ZRT_MAX_OVERRIDES ? &o->items[o->n_items] : NULL;
    switch (c) {
    case 'c': snprintf(o->config, sizeof o->config, "%s", arg); return true;
    case 'Z': snprintf(o->zrt_config, sizeof o->zrt_config, "%s", arg); return true;
    case 'M': snprintf(o->metrics, sizeof o->metrics, "%s", arg); return true;
    case 'F': o->file_store = true; return true;
    case 'R': snprintf(o->resume_from, sizeof o->resume_from, "%s", arg); return true;
    case 'i':
        if (!item || strlen(arg) >= sizeof item->text) return false;
        snprintf(item->text, sizeof item->text, "%s", arg);
        break;
    case 'n': case 'P': case 'N': case 'r': case 'p': case 'g': case 'z': case 's': {
        int64_t hi = c == 'p' ? 65535 : c == 'z' ? 3 : c == 'r' ? 65535 : (int64_t)1 << 40;
        int64_t lo = c == 'p' || c == 'z' || c == 'r' ? 0 : 1;
        if (!item || !parse_int(arg, lo, hi, &v)) return false;
        item->value = v;
        break;
    }
    case 'm':
        if (!item || !parse_name(arg, precisions, &e)) return false;
        item->value = e;
        break;
    case 'o': case 'O':
        if (!item || !parse_name(arg, devices, &e)) return false;
        item->value = e;
        break;
    default: return false;
    }
    item->option = c;
    o->n_items++;
    return true;
}

static void apply_one(zrt_config *cfg, const zrt_override_item *item)
{
    switch (item->option) {
    case 'n': cfg->num_processes = item->value; break;
    case 'N': cfg->num_machines = item->value; break;
    case 'r': cfg->machine_rank = item->value; break;
    case 'i': snprintf(cfg->main_process_ip, sizeof cfg->main_process_ip, "%s", item->text); break;
    case 'p': cfg->main_process_port = item->value; break;
    case 'm': cfg->mixed_precision = (zrt_precision)item->value; break;
    case 'g': cfg->batch_given.gradient_accumulation_steps = item->value; break;
    case 'z':
        cfg->zero.stage = (int)item->value;
        cfg->zero.overlap_comm = item->value == 3; /* DeepSpeed's default for the stage */
        if (cfg->distributed_type != ZRT_DIST_DEEPSPEED) cfg->distributed_type = ZRT_DIST_DEEPSPEED;
        break;
    case 'o': cfg->zero.offload_optimizer.device = (zrt_offload_device)item->value; break;
    case 'O': cfg->zero.offload_param.device = (zrt_offload_device)item->value; break;
    case 's': cfg->job.steps = item->value; break;
    }
}

zrt_status zrt_overrides_load(const zrt_overrides *o, zrt_config *cfg)
{
    if (!o->config[0]) {
        zrt_config_init(cfg);
        return ZRT_ERR_CONFIG;
    }
    zrt_status status = zrt_config_load_with(cfg, o->config, o->zrt_config[0] ? o->zrt_config : NULL);
    if (status != ZRT_OK) return status;
    for (int i = 0; i < o->n_items; i++) apply_one(cfg, &o->items[i]);
    for (int i = 0; i < o->n_items; i++) /* per machine, once num_machines is known */
        if (o->items[i].option == 'P') cfg->num_processes = o->items[i].value * cfg->num_machines;
    if (o->metrics[0]) snprintf(cfg->job.metrics_file, sizeof cfg->job.metrics_file, "%s", o->metrics);
    return o->n_items ? zrt_config_validate(cfg) : ZRT_OK;
}

int zrt_overrides_parse(int argc, char **argv, const char *command, const char *usage, zrt_overrides *o)
{
    zrt_cli_normalize_options(argc, argv);
    int c;
    while ((c = zrt_cli_next_option(argc, argv, zrt_override_options, command)) != -1) {
        if (c == 'h') {
            printf("%s%s", usage, zrt_override_usage);
            return ZRT_EXIT_OK;
        }
        if (c == '?') return ZRT_EXIT_USAGE;
        if (!zrt_override_take(o, c, optarg))
            return zrt_cli_usage_error(command, "bad value '%s' for %s", optarg,
                                       zrt_cli_option_name(zrt_override_options, c));
    }
    if (optind != argc && strcmp(command, "launch") == 0)
        return zrt_cli_usage_error(command, "unexpected argument '%s': a program goes after `--` (add it): "
                                   "zrt launch --config CFG [options] -- PROGRAM ARGS...", argv[optind]);
    if (optind != argc) return zrt_cli_usage_error(command, "unexpected argument '%s'", argv[optind]);
    if (!o->config[0]) return zrt_cli_usage_error(command, "--config CFG is required");
    return -1;
}
