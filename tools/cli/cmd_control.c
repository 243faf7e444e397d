/* cmd_control.c: `zrt coordinator`, `zrt agent` and `zrt status`.
 *
 * The job token comes from zrt.token_file, else $ZRT_JOB_TOKEN; every call
 * carries it. `zrt agent` takes its machine_rank from --machine-rank, else
 * $SLURM_NODEID, else the coordinator assigns one in join order.
 */
#include "control.h"
#include "format.h"
#include "overrides.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char coordinator_usage[] =
    "usage: zrt coordinator --config CFG [--listen ADDR:PORT]\n"
    "\n"
    "Runs the control plane for one job: rendezvous of num_machines agents,\n"
    "health, the key-value store. Default address: main_process_ip:main_process_port\n"
    "(port 0 picks a free port; the address is printed). Exit 0 when every rank\n"
    "finished, 1 when the job was aborted (the reason is printed).\n";

static const char agent_usage[] =
    "usage: zrt agent --coordinator HOST:PORT --config CFG [--machine-rank R] [-- PROGRAM ARGS]\n"
    "\n"
    "Joins the coordinator, starts this machine's num_processes / num_machines ranks\n"
    "(`zrt train`, or PROGRAM with the torchrun environment), prefixes their output\n"
    "with [rank N], heartbeats, and stops them when the job is aborted.\n";

static const char status_usage[] =
    "usage: zrt status HOST:PORT [--json] [--config CFG]\n"
    "(--config: the job's config, for zrt.token_file and zrt.tls)\n"
    "\n"
    "The coordinator's table of machines: machine_rank, host, state, heartbeat age,\n"
    "local ranks, step, loss; and the job's generation and state.\n";

static void print_listening(const char *address, void *arg)
{
    (void)arg;
    printf("zrt coordinator: listening on %s\n", address);
    fflush(stdout);
}

static int load_config(const char *path, zrt_config *cfg, char *token, size_t token_size)
{
    if (zrt_config_load(cfg, path) != ZRT_OK || zrt_control_token(cfg->job.token_file, token, token_size) != ZRT_OK) {
        fprintf(stderr, "%s\n", zrt_last_error());
        return ZRT_EXIT_FAIL;
    }
    zrt_cli_print_warnings(cfg->warnings);
    return ZRT_EXIT_OK;
}

int zrt_cmd_coordinator(int argc, char **argv)
{
    static const struct option options[] = {{"help", no_argument, NULL, 'h'},
                                            {"config", required_argument, NULL, 'c'},
                                            {"config-file", required_argument, NULL, 'c'},
                                            {"listen", required_argument, NULL, 'l'},
                                            {NULL, 0, NULL, 0}};
    zrt_cli_normalize_options(argc, argv);
    const char *config = NULL, *listen = NULL;
    int c;
    while ((c = zrt_cli_next_option(argc, argv, options, "coordinator")) != -1) {
        if (c == 'h') return fputs(coordinator_usage, stdout), ZRT_EXIT_OK;
        if (c == 'c') config = optarg;
        else if (c == 'l') listen = optarg;
        else return ZRT_EXIT_USAGE;
    }
    if (!config || optind != argc) return zrt_cli_usage_error("coordinator", "--config CFG is required (see --help)");
    static zrt_config cfg;
    char token[256], address[300];
    if (load_config(config, &cfg, token, sizeof token) != ZRT_EXIT_OK) return ZRT_EXIT_FAIL;
    if (!listen) {
        snprintf(address, sizeof address, "%s:%lld", cfg.main_process_ip[0] ? cfg.main_process_ip : "0.0.0.0",
                 (long long)cfg.main_process_port);
        listen = address;
    }
    zrt_coordinator_options o = {.cfg = &cfg, .listen = listen, .token = token, .on_listening = print_listening};
    if (zrt_coordinator_run(&o) != ZRT_OK) {
        return zrt_cli_fail("coordinator", zrt_last_error()); /* "coordinator: ..." said once */
    }
    printf("zrt coordinator: the job finished\n");
    return ZRT_EXIT_OK;
}

int zrt_cmd_agent(int argc, char **argv)
{
    static const struct option options[] = {{"help", no_argument, NULL, 'h'},
                                            {"config", required_argument, NULL, 'c'},
                                            {"config-file", required_argument, NULL, 'c'},
                                            {"coordinator", required_argument, NULL, 'a'},
                                            {"machine-rank", required_argument, NULL, 'r'},
                                            {NULL, 0, NULL, 0}};
    int program_at = -1, full_argc = argc;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--") == 0) {
            program_at = i + 1;
            argc = i;
            break;
        }
    zrt_cli_normalize_options(argc, argv);
    const char *config = NULL, *coordinator = NULL;
    int machine_rank = getenv("SLURM_NODEID") ? atoi(getenv("SLURM_NODEID")) : -1, c;
    while ((c = zrt_cli_next_option(argc, argv, options, "agent")) != -1) {
        if (c == 'h') return fputs(agent_usage, stdout), ZRT_EXIT_OK;
        if (c == 'c') config = optarg;
        else if (c == 'a') coordinator = optarg;
        else if (c == 'r' && (machine_rank = atoi(optarg)) >= 0) continue;
        else return c == 'r' ? zrt_cli_usage_error("agent", "bad value '%s' for --machine-rank", optarg) : ZRT_EXIT_USAGE;
    }
    if (!config || !coordinator || optind != argc)
        return zrt_cli_usage_error("agent", "--coordinator HOST:PORT and --config CFG are required (see --help)");
    if (program_at >= full_argc) return zrt_cli_usage_error("agent", "no program after --");
    static zrt_config cfg;
    char token[256];
    if (load_config(config, &cfg, token, sizeof token) != ZRT_EXIT_OK) return ZRT_EXIT_FAIL;
    zrt_agent_options o = {.cfg = &cfg, .config_path = config, .coordinator = coordinator, .token = token,
                           .machine_rank = machine_rank, .program = program_at >= 0 ? argv + program_at : NULL};
    char exe[4096];
    o.self_exe = zrt_cli_self_exe(exe, sizeof exe);
    if (zrt_agent_run(&o) != ZRT_OK) {
        return zrt_cli_fail("agent", zrt_last_error()); /* "agent: ..." is not said twice */
    }
    return ZRT_EXIT_OK;
}

/* The status JSON as the table people read. */
static void print_table(const char *text)
{
    cJSON *root = cJSON_Parse(text);
#define FIELD(obj, key) cJSON_GetObjectItemCaseSensitive(obj, key)
    printf("job: %s, generation %.0f, %.0f machines expected, world size %.0f, restarts %.0f of %.0f%s%s\n",
           cJSON_GetStringValue(FIELD(root, "state")), cJSON_GetNumberValue(FIELD(root, "generation")),
           cJSON_GetNumberValue(FIELD(root, "expected_machines")), cJSON_GetNumberValue(FIELD(root, "world_size")),
           cJSON_GetNumberValue(FIELD(root, "restarts_used")), cJSON_GetNumberValue(FIELD(root, "max_restarts")),
           *cJSON_GetStringValue(FIELD(root, "reason")) ? ": " : "", cJSON_GetStringValue(FIELD(root, "reason")));
    printf("%-8s %-24s %-8s %14s %6s %8s %10s\n", "machine", "host", "state", "heartbeat_age", "ranks", "step",
           "loss");
    const cJSON *row;
    cJSON_ArrayForEach(row, FIELD(root, "machines"))
    printf("%-8.0f %-24s %-8s %13.1fs %6.0f %8.0f %10.4f\n", cJSON_GetNumberValue(FIELD(row, "machine_rank")),
           cJSON_GetStringValue(FIELD(row, "host")), cJSON_GetStringValue(FIELD(row, "state")),
           cJSON_GetNumberValue(FIELD(row, "heartbeat_age_s")), cJSON_GetNumberValue(FIELD(row, "local_ranks")),
           cJSON_GetNumberValue(FIELD(row, "step")), cJSON_GetNumberValue(FIELD(row, "loss")));
#undef FIELD
    cJSON_Delete(root);
}

int zrt_cmd_status(int argc, char **argv)
{
    static const struct option options[] = {{"help", no_argument, NULL, 'h'},
                                            {"json", no_argument, NULL, 'j'},
                                            {"config", required_argument, NULL, 'c'},
                                            {NULL, 0, NULL, 0}};
    zrt_cli_normalize_options(argc, argv);
    bool json = false;
    const char *config = NULL;
    int c;
    while ((c = zrt_cli_next_option(argc, argv, options, "status")) != -1) {
        if (c == 'h') return fputs(status_usage, stdout), ZRT_EXIT_OK;
        if (c == 'j') json = true;
        else if (c == 'c') config = optarg;
        else return ZRT_EXIT_USAGE;
    }
    if (optind != argc - 1) return zrt_cli_usage_error("status", "HOST:PORT is required (see --help)");
    static zrt_config cfg;
    char token[256];
    char *text = NULL;
    bool have_config = config && zrt_config_load(&cfg, config) == ZRT_OK;
    bool have_token = (!config || have_config) &&
                      (zrt_control_token(have_config ? cfg.job.token_file : NULL, token, sizeof token) == ZRT_OK ||
                       (!(have_config && cfg.job.token_file[0]) && /* a one-machine launch's, on this machine */
                        zrt_control_token_load(argv[optind], token, sizeof token) == ZRT_OK));
    if (!have_token || zrt_control_status(argv[optind], token, have_config ? &cfg : NULL, 5, &text) != ZRT_OK) {
        return zrt_cli_fail("status", zrt_last_error()); /* "agent: ..." is not said twice */
    }
    if (json) printf("%s\n", text);
    else print_table(text);
    free(text);
    return ZRT_EXIT_OK;
}
