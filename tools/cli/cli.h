/* cli.h: what the zrt subcommands share: the table they register in, and
 * die-free helpers for options and messages.
 *
 * Why: each subcommand is one file (cmd_*.c) with one entry point; zrt.c only
 * dispatches. Exit codes for every subcommand: 0 ok, 1 failure, 2 usage error.
 */
#ifndef ZRT_CLI_H
#define ZRT_CLI_H

#include <getopt.h>
#include <stdbool.h>

#include "zrt.h"

#define ZRT_EXIT_OK 0
#define ZRT_EXIT_FAIL 1
#define ZRT_EXIT_USAGE 2

typedef struct {
    const char *name;
    const char *summary;                   /* one line for `zrt --help` */
    int (*run)(int argc, char **argv);     /* argv[0] is the subcommand's name */
} zrt_cli_command;

/* Rewrites "--num_processes" to "--num-processes" in place (only the option
 * name, not a value after '='), so every long option takes dashes or
 * underscores as `accelerate launch` does. */
void zrt_cli_normalize_options(int argc, char **argv);

/* Parses long options with getopt_long (opterr off). Returns the option's
 * val, -1 at the end, or '?' after printing a usage error naming the option
 * (unknown, or missing its value) to stderr. */
int zrt_cli_next_option(int argc, char **argv, const struct option *options, const char *command);
/* The same with getopt's short options (shorts starts with ':', e.g. ":ho:"). */
int zrt_cli_next_option_short(int argc, char **argv, const char *shorts, const struct option *options,
                              const char *command);

/* "--name" of the long option whose val is val (a static buffer). */
const char *zrt_cli_option_name(const struct option *options, int val);

/* Prints "zrt COMMAND: message" to stderr and returns ZRT_EXIT_USAGE. */
int zrt_cli_usage_error(const char *command, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The path of the running zrt binary (what ranks and benchmarks exec), in buf. */
const char *zrt_cli_self_exe(char *buf, size_t size);

/* The path of rel (e.g. "tools/bench/bench_peer_torch.py") in the source tree: under
 * $ZRT_SOURCE_DIR, else above this binary's build/, else rel itself; in buf. */
const char *zrt_cli_source_path(const char *rel, char *buf, size_t size);

/* Runs `/usr/bin/python3 SCRIPT ARGS` (script: a source path, as above) for a
 * bench's peer; true when it exits 0 and prints a line starting with prefix,
 * which is then in line; otherwise line holds its last line (the reason). */
bool zrt_cli_run_peer(const char *script, const char *args, const char *prefix, char *line, size_t size);

/* Why OpenBLAS runs zrt_blas_core()'s kernels: "" (its own choice), " (chosen by
 * zrt for this CPU)" or " ($OPENBLAS_CORETYPE)"; for --version and `zrt report`. */
const char *zrt_cli_blas_core_origin(void);

/* Prints each line of text (e.g. a config's warnings) as "zrt: warning: LINE". */
void zrt_cli_print_warnings(const char *text);
/* The data loader's host memory (zrt_data): the mlp teacher, the gpt
 * successor table or the text file it read (token shards are mapped files). */
int64_t zrt_cli_data_bytes(const zrt_data *d);

int zrt_cmd_config(int argc, char **argv);
int zrt_cmd_bench(int argc, char **argv);
int zrt_cmd_train(int argc, char **argv);
int zrt_cmd_launch(int argc, char **argv);
int zrt_bench_train(int argc, char **argv);
int zrt_bench_adam(int argc, char **argv);
int zrt_bench_nvme(int argc, char **argv);
int zrt_bench_gpu(int argc, char **argv);
int zrt_cmd_coordinator(int argc, char **argv);
int zrt_cmd_agent(int argc, char **argv);
int zrt_cmd_status(int argc, char **argv);
int zrt_cmd_estimate(int argc, char **argv);
int zrt_cmd_shards(int argc, char **argv);
int zrt_cmd_report(int argc, char **argv);
int zrt_cmd_tokenize(int argc, char **argv);
int zrt_bench_tokenize(int argc, char **argv);
int zrt_cmd_plot(int argc, char **argv);
int zrt_cmd_sample(int argc, char **argv);

/* The benches' rendezvous: a file store in store_dir/scope (none for one
 * rank) and a host comm. */
zrt_status zrt_bench_open_comm(const char *store_dir, const char *scope, int rank, int world, bool force_tcp,
                               zrt_store **store, zrt_comm **comm);
/* The same with a backend ("host", "nccl") on GPU gpu (nccl). */
zrt_status zrt_bench_open_backend(const char *store_dir, const char *scope, int rank, int world, const char *backend,
                                  bool force_tcp, int gpu, zrt_store **store, zrt_comm **comm);
/* Forks n ranks running fn(rank, n, arg); ZRT_EXIT_OK if all exit 0. */
int zrt_bench_run_ranks(int n, int (*fn)(int rank, int world, void *arg), void *arg);
/* What `zrt bench gpu` asks of its model rows (bench_gpu_models.c). */
typedef struct {
    int world, steps;
    int micro;          /* 0: the largest that fits, per stage (world 1) */
    unsigned stages;    /* bit s: ZeRO stage s */
    unsigned models;    /* bit k: the k-th model (zrt_bench_gpu_parse_models) */
    bool ckpt, json;    /* activation checkpointing; JSON lines */
    double peak_tflops; /* 0: from the card's name */
} zrt_bench_gpu_options;
/* Model rows on forked ranks; ZRT_EXIT_OK when every rank ran. */
int zrt_bench_gpu_models(const zrt_bench_gpu_options *o);
/* "gpt2,llama1b" or "all" into a mask of models; -1 on a name it does not know. */
int zrt_bench_gpu_parse_models(const char *list, unsigned *mask);
/* Sorts times[n] and returns the median. */
double zrt_bench_median(double *times, int n);

#endif
