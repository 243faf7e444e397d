/* cmd_config.c: `zrt config show CFG` and `zrt config check CFG`.
 *
 * show: the resolved config (defaults filled, batch sizes derived) as JSON on
 * stdout. check: "CFG: ok (...)" and exit 0, or every error and exit 1.
 * Warnings (unknown keys, ignored sections) go to stderr in both.
 */
#include "cli.h"
#include "zrt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: zrt config show CFG    print the resolved config as JSON\n"
    "       zrt config check CFG   validate CFG: exit 0 if good, 1 with the errors\n"
    "\n"
    "CFG is an Accelerate YAML (.yaml/.yml) or a DeepSpeed JSON (.json) file.\n";

static void print_summary(const zrt_config *cfg)
{
    printf("%s: ok (zero stage %d, %lld processes on %lld machine%s, mixed precision %s, "
           "offload optimizer %s, offload param %s, train batch %lld)\n",
           cfg->source_path, cfg->zero.stage, (long long)cfg->num_processes, (long long)cfg->num_machines,
           cfg->num_machines == 1 ? "" : "s", zrt_precision_name(cfg->mixed_precision),
           zrt_offload_device_name(cfg->zero.offload_optimizer.device),
           zrt_offload_device_name(cfg->zero.offload_param.device), (long long)cfg->batch.train_batch_size);
}

int zrt_cmd_config(int argc, char **argv)
{
    static const struct option options[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    zrt_cli_normalize_options(argc, argv);
    int c;
    while ((c = zrt_cli_next_option(argc, argv, options, "config")) != -1) {
        if (c == 'h') {
            fputs(usage, stdout);
            return ZRT_EXIT_OK;
        }
        return ZRT_EXIT_USAGE;
    }
    if (argc - optind != 2) {
        fputs(usage, stderr);
        return ZRT_EXIT_USAGE;
    }
    const char *action = argv[optind];
    const char *path = argv[optind + 1];
    if (strcmp(action, "show") != 0 && strcmp(action, "check") != 0)
        return zrt_cli_usage_error("config", "unknown action '%s' (show or check)", action);

    zrt_config *cfg = malloc(sizeof *cfg);
    if (!cfg) return ZRT_EXIT_FAIL;
    int rc = ZRT_EXIT_OK;
    if (zrt_config_load(cfg, path) != ZRT_OK) {
        fprintf(stderr, "%s\n", zrt_last_error());
        rc = ZRT_EXIT_FAIL;
    } else {
        zrt_cli_print_warnings(cfg->warnings);
        if (strcmp(action, "check") == 0) {
            print_summary(cfg);
        } else {
            char *json = zrt_config_to_json(cfg);
            if (json) printf("%s\n", json);
            else rc = ZRT_EXIT_FAIL;
            free(json);
        }
    }
    zrt_config_fini(cfg);
    free(cfg);
    return rc;
}
