/* zrt.c: the `zrt` command line: global flags and dispatch to subcommands.
 *
 * Why one binary: users type `zrt launch`, `zrt config check`, ... as they
 * type `accelerate launch`; each subcommand lives in its own cmd_*.c file.
 */
#include "cli.h"
#include "zrt.h"
#include "zrt/internal/blas.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const zrt_cli_command commands[] = {
    {"launch", "start this machine's ranks: zrt launch --config CFG [-- PROGRAM ARGS]", zrt_cmd_launch},
    {"train", "train the built-in model as one rank: zrt train --config CFG", zrt_cmd_train},
    {"coordinator", "the control plane for one job: zrt coordinator --config CFG [--listen ADDR:PORT]",
     zrt_cmd_coordinator},
    {"agent", "one per machine: zrt agent --coordinator HOST:PORT --config CFG [--machine-rank R]", zrt_cmd_agent},
    {"status", "the coordinator's table of machines: zrt status HOST:PORT [--json]", zrt_cmd_status},
    {"config", "show or check a config: zrt config show|check CFG", zrt_cmd_config},
    {"shards", "checkpoints: zrt shards ls|show|verify|diff|consolidate|reshard|export-hf", zrt_cmd_shards},
    {"tokenize", "text -> token shards, or encode/decode lines: zrt tokenize --tokenizer T.json --out DIR/train INPUT...",
     zrt_cmd_tokenize},
    {"sample", "generate text from a checkpoint or a Hugging Face model: zrt sample --hf DIR --prompt TEXT",
     zrt_cmd_sample},
    {"plot", "draw the loss against steps from a metrics file: zrt plot METRICS.jsonl -o loss.png", zrt_cmd_plot},
    {"estimate", "model-state memory per device: zrt estimate --params N --world N", zrt_cmd_estimate},
    {"report", "what this machine and build offer zrt (driver, GPUs, NCCL, ...): zrt report [--json]", zrt_cmd_report},
    {"bench", "benchmarks: zrt bench comm|train|control|adam|nvme|gpu (ratios against a baseline in the same run)", zrt_cmd_bench},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void print_help(FILE *out)
{
    fprintf(out,
            "usage: zrt [--help] [--version] COMMAND [ARGS]\n"
            "\n"
            "zrt is a ZeRO (stages 0-3) data-parallel training runtime. It reads\n"
            "Accelerate YAML and DeepSpeed JSON configs.\n"
            "\n"
            "commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++) fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n`zrt COMMAND --help` describes each command. Docs: docs/ in the source tree.\n");
}

/* OpenBLAS chose kernels narrower than this CPU (zrt/model.h: zrt_blas_core_wanted):
 * run again with $OPENBLAS_CORETYPE set, before any thread exists; the copy in
 * $ZRT_OPENBLAS_CORETYPE says zrt set it. Children (zrt launch's ranks, bench's
 * torch peer) inherit both. */
static void rerun_with_blas_core(char **argv)
{
    const char *wanted = zrt_blas_core_wanted();
    if (!wanted) return;
    setenv("OPENBLAS_CORETYPE", wanted, 1);
    setenv("ZRT_OPENBLAS_CORETYPE", wanted, 1);
    execv("/proc/self/exe", argv);
    unsetenv("OPENBLAS_CORETYPE"); /* exec failed: carry on with OpenBLAS's own choice */
}

int main(int argc, char **argv)
{
    rerun_with_blas_core(argv);
    if (argc < 2) {
        print_help(stderr);
        return ZRT_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        print_help(stdout);
        return ZRT_EXIT_OK;
    }
    if (strcmp(name, "--version") == 0) {
        printf("zrt %s\nOpenBLAS kernels: %s%s\n", ZRT_VERSION, zrt_blas_core(), zrt_cli_blas_core_origin());
        return ZRT_EXIT_OK;
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(name, commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    if (name[0] == '-') fprintf(stderr, "zrt: unknown option %s (see zrt --help)\n", name);
    else fprintf(stderr, "zrt: unknown command '%s' (see zrt --help)\n", name);
    return ZRT_EXIT_USAGE;
}
