/* cmd_bench.c: `zrt bench comm`: collective bandwidth of the host backend,
 * against the single-core memcpy bandwidth measured in the same command.
 *
 * Why memcpy as the baseline: the machine is shared and noisy; a ratio to
 * something measured seconds earlier on the same cores means more than an
 * absolute number. Definitions follow nccl-tests: bytes is the all_gather
 * output, the reduce_scatter input, the all_reduce buffer; algbw = bytes /
 * time; busbw = algbw * (n-1)/n (all_gather, reduce_scatter) or
 * algbw * 2(n-1)/n (all_reduce), time the median of the timed iterations
 * (each between two barriers). Ranks are forked processes on this machine
 * that rendezvous through a file store in a private temporary directory.
 */
#include "cli.h"
#include "control.h"
#include "zrt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_LIST 16

typedef struct {
    int ranks[MAX_LIST], n_ranks;
    size_t min_bytes, max_bytes;
    zrt_dtype dtypes[3];
    int n_dtypes;
    bool json, tcp;
    double seconds; /* target time per row */
    char store_dir[256];
} bench_options;

static const char usage[] =
    "usage: zrt bench comm [--ranks 2,4] [--min-bytes 1M] [--max-bytes 256M] [--dtypes fp32,bf16]\n"
    "                      [--seconds 0.3] [--tcp] [--json]\n"
    "\n"
    "Measures reduce_scatter, all_gather and all_reduce of the host backend on\n"
    "this machine (sizes in steps of 4x) and the single-core memcpy bandwidth.\n"
    "--tcp puts every rank on TCP (loopback) instead of shared memory.\n";

/* Best of a few 64 MiB memcpys, in GB/s (1e9 bytes). */
static double memcpy_gbps(void)
{
    size_t bytes = 64u << 20;
    char *a = malloc(bytes), *b = malloc(bytes);
    if (!a || !b) return 0;
    memset(a, 1, bytes);
    memset(b, 2, bytes);
    double best = 1e9;
    for (int i = 0; i < 5; i++) {
        double t = zrt_now();
        memcpy(b, a, bytes);
        t = zrt_now() - t;
        if (t < best) best = t;
        a[i] = b[bytes - 1 - (size_t)i]; /* keep the copies observable */
    }
    free(a);
    free(b);
    return (double)bytes / best / 1e9;
}

typedef enum { OP_REDUCE_SCATTER, OP_ALL_GATHER, OP_ALL_REDUCE } bench_op;
static const char *const op_names[] = {"reduce_scatter", "all_gather", "all_reduce"};

static zrt_status run_op(zrt_comm *comm, bench_op op, char *send, char *recv, size_t count, zrt_dtype dt)
{
    switch (op) {
    case OP_REDUCE_SCATTER: return zrt_comm_reduce_scatter(comm, send, recv, count, dt, ZRT_REDUCE_SUM, NULL);
    case OP_ALL_GATHER: return zrt_comm_all_gather(comm, send, recv, count, dt, NULL);
    case OP_ALL_REDUCE: return zrt_comm_all_reduce(comm, send, recv, count, dt, ZRT_REDUCE_SUM, NULL);
    }
    return ZRT_ERR_INVALID;
}

static void print_row(const bench_options *o, bench_op op, zrt_dtype dt, int n, size_t bytes, double secs,
                      double memcpy_rate)
{
    double algbw = (double)bytes / secs / 1e9;
    double factor = op == OP_ALL_REDUCE ? 2.0 * (n - 1) / n : (double)(n - 1) / n;
    double busbw = algbw * factor;
    if (o->json) {
        printf("{\"op\": \"%s\", \"dtype\": \"%s\", \"ranks\": %d, \"bytes\": %zu, \"algbw_GBps\": %.3f, "
               "\"busbw_GBps\": %.3f, \"memcpy_GBps\": %.3f}\n",
               op_names[op], zrt_dtype_name(dt), n, bytes, algbw, busbw, memcpy_rate);
    } else {
        printf("%-15s %-5s %5d %10.1f MiB %9.2f %9.2f %9.2f\n", op_names[op], zrt_dtype_name(dt), n,
               (double)bytes / (1 << 20), algbw, busbw, busbw / memcpy_rate);
    }
    fflush(stdout);
}

#define MAX_ITERS 4096

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One rank's whole run: every op, dtype and size; rank 0 prints. */
static int bench_rank(const bench_options *o, int rank, int n, double memcpy_rate)
{
    char scope[32];
    snprintf(scope, sizeof scope, "bench-%d", n);
    zrt_store *store = NULL;
    zrt_comm *comm = NULL;
    if (zrt_bench_open_comm(o->store_dir, scope, rank, n, o->tcp, &store, &comm) != ZRT_OK) {
        fprintf(stderr, "zrt bench: rank %d: %s\n", rank, zrt_last_error());
        return ZRT_EXIT_FAIL;
    }
    char *send = malloc(o->max_bytes), *recv = malloc(o->max_bytes);
    static double times[MAX_ITERS];
    if (!send || !recv) return ZRT_EXIT_FAIL;
    memset(send, 0, o->max_bytes);
    memset(recv, 0, o->max_bytes);
    for (int op = 0; op < 3; op++) {
        for (int d = 0; d < o->n_dtypes; d++) {
            size_t es = zrt_dtype_size(o->dtypes[d]);
            for (size_t bytes = o->min_bytes; bytes <= o->max_bytes; bytes *= 4) {
                size_t count = op == OP_ALL_REDUCE ? bytes / es : bytes / es / (size_t)n;
                if (run_op(comm, op, send, recv, count, o->dtypes[d]) != ZRT_OK) goto fail; /* warm up */
                int iters = 0;
                double start = zrt_now(), elapsed = 0;
                for (;;) { /* only rank 0's broadcast decision ends it, so every rank agrees */
                    if (zrt_comm_barrier(comm) != ZRT_OK) goto fail;
                    double t = zrt_now();
                    if (run_op(comm, op, send, recv, count, o->dtypes[d]) != ZRT_OK) goto fail;
                    times[iters] = zrt_now() - t;
                    elapsed += times[iters++];
                    float more = rank == 0 && (elapsed < o->seconds || iters < 5) && iters < MAX_ITERS &&
                                 zrt_now() - start < 30;
                    if (zrt_comm_broadcast(comm, &more, 1, ZRT_DTYPE_F32, 0, NULL) != ZRT_OK) goto fail;
                    if (more == 0) break;
                }
                if (rank == 0) print_row(o, op, o->dtypes[d], n, bytes, zrt_bench_median(times, iters), memcpy_rate);
            }
        }
    }
    zrt_comm_destroy(comm);
    zrt_store_destroy(store);
    return ZRT_EXIT_OK;
fail:
    fprintf(stderr, "zrt bench: rank %d: %s\n", rank, zrt_last_error());
    return ZRT_EXIT_FAIL;
}

zrt_status zrt_bench_open_backend(const char *store_dir, const char *scope, int rank, int world, const char *backend,
                                  bool force_tcp, int gpu, zrt_store **store, zrt_comm **comm)
{
    *store = NULL;
    *comm = NULL;
    zrt_comm_options co;
    zrt_comm_options_init(&co);
    co.rank = rank;
    co.world_size = world;
    co.force_tcp = force_tcp;
    co.device = gpu;
    co.timeout_s = 120;
    zrt_status status = world > 1 ? zrt_store_file_create(store_dir, scope, store) : ZRT_OK; /* one rank: no peers */
    co.store = *store;
    return status == ZRT_OK ? zrt_comm_create(backend, &co, comm) : status;
}

zrt_status zrt_bench_open_comm(const char *store_dir, const char *scope, int rank, int world, bool force_tcp,
                               zrt_store **store, zrt_comm **comm)
{
    return zrt_bench_open_backend(store_dir, scope, rank, world, "host", force_tcp, 0, store, comm);
}

int zrt_bench_run_ranks(int n, int (*fn)(int rank, int world, void *arg), void *arg)
{
    pid_t pids[64];
    fflush(stdout);
    for (int r = 0; r < n; r++) {
        pids[r] = fork();
        if (pids[r] == 0) {
            int rc = fn(r, n, arg);
            fflush(stdout);
            _exit(rc);
        }
    }
    int failed = 0;
    for (int r = 0; r < n; r++) {
        int status;
        if (pids[r] > 0 && waitpid(pids[r], &status, 0) > 0)
            failed += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        else failed++;
    }
    return failed ? ZRT_EXIT_FAIL : ZRT_EXIT_OK;
}

double zrt_bench_median(double *times, int n)
{
    qsort(times, (size_t)n, sizeof *times, compare_double);
    return n % 2 ? times[n / 2] : (times[n / 2 - 1] + times[n / 2]) / 2;
}

typedef struct {
    const bench_options *options;
    double memcpy_rate;
} comm_args;

static int comm_rank(int rank, int world, void *arg)
{
    const comm_args *a = arg;
    return bench_rank(a->options, rank, world, a->memcpy_rate);
}

/* "64M", "1G", "4096": bytes. */
static bool parse_size(const char *text, size_t *out)
{
    char *end;
    double v = strtod(text, &end);
    size_t mult = *end == 'K' || *end == 'k' ? 1u << 10 : *end == 'M' || *end == 'm' ? 1u << 20
                : *end == 'G' || *end == 'g' ? 1u << 30 : 1;
    if (end == text || v <= 0 || (mult > 1 && end[1] != '\0') || (mult == 1 && *end != '\0')) return false;
    *out = (size_t)(v * (double)mult);
    return true;
}

static bool parse_ranks(char *text, bench_options *o)
{
    o->n_ranks = 0;
    for (char *save = NULL, *t = strtok_r(text, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int n = atoi(t);
        if (n < 1 || n > 64 || o->n_ranks == MAX_LIST) return false;
        o->ranks[o->n_ranks++] = n;
    }
    return o->n_ranks > 0;
}

static bool parse_dtypes(char *text, bench_options *o)
{
    o->n_dtypes = 0;
    for (char *save = NULL, *t = strtok_r(text, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (o->n_dtypes == 3) return false;
        if (strcmp(t, "fp32") == 0) o->dtypes[o->n_dtypes++] = ZRT_DTYPE_F32;
        else if (strcmp(t, "bf16") == 0) o->dtypes[o->n_dtypes++] = ZRT_DTYPE_BF16;
        else if (strcmp(t, "fp16") == 0) o->dtypes[o->n_dtypes++] = ZRT_DTYPE_F16;
        else return false;
    }
    return o->n_dtypes > 0;
}

static int bench_comm(int argc, char **argv)
{
    static const struct option options[] = {
        {"help", no_argument, NULL, 'h'},           {"ranks", required_argument, NULL, 'r'},
        {"min-bytes", required_argument, NULL, 'm'}, {"max-bytes", required_argument, NULL, 'M'},
        {"dtypes", required_argument, NULL, 'd'},    {"seconds", required_argument, NULL, 's'},
        {"tcp", no_argument, NULL, 't'},             {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0}};
    bench_options o = {.ranks = {2, 4}, .n_ranks = 2, .min_bytes = 1u << 20, .max_bytes = 256u << 20,
                       .dtypes = {ZRT_DTYPE_F32, ZRT_DTYPE_BF16}, .n_dtypes = 2, .seconds = 0.3};
    int c;
    while ((c = zrt_cli_next_option(argc, argv, options, "bench comm")) != -1) {
        bool ok = true;
        switch (c) {
        case 'h': fputs(usage, stdout); return ZRT_EXIT_OK;
        case 'r': ok = parse_ranks(optarg, &o); break;
        case 'm': ok = parse_size(optarg, &o.min_bytes); break;
        case 'M': ok = parse_size(optarg, &o.max_bytes); break;
        case 'd': ok = parse_dtypes(optarg, &o); break;
        case 's': o.seconds = atof(optarg); ok = o.seconds > 0; break;
        case 't': o.tcp = true; break;
        case 'j': o.json = true; break;
        default: return ZRT_EXIT_USAGE;
        }
        if (!ok)
            return zrt_cli_usage_error("bench comm", "bad value '%s' for %s", optarg, zrt_cli_option_name(options, c));
    }
    if (optind != argc) return zrt_cli_usage_error("bench comm", "unexpected argument '%s'", argv[optind]);
    if (o.min_bytes > o.max_bytes) return zrt_cli_usage_error("bench comm", "--min-bytes is above --max-bytes");
    snprintf(o.store_dir, sizeof o.store_dir, "%s/zrt-bench-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(o.store_dir)) {
        perror("zrt bench: mkdtemp");
        return ZRT_EXIT_FAIL;
    }
    double memcpy_rate = memcpy_gbps();
    if (!o.json) {
        printf("single-core memcpy (64 MiB, best of 5): %.2f GB/s; transport: %s\n", memcpy_rate,
               o.tcp ? "TCP (loopback)" : "shared memory");
        printf("%-15s %-5s %5s %14s %9s %9s %9s\n", "op", "dtype", "ranks", "bytes", "algbw", "busbw", "bus/memcpy");
    }
    int rc = ZRT_EXIT_OK;
    comm_args args = {&o, memcpy_rate};
    for (int i = 0; i < o.n_ranks && rc == ZRT_EXIT_OK; i++) rc = zrt_bench_run_ranks(o.ranks[i], comm_rank, &args);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", o.store_dir);
    if (system(cmd) != 0) fprintf(stderr, "zrt bench: could not remove %s\n", o.store_dir);
    return rc;
}

static int bench_control(int argc, char **argv)
{
    static const struct option options[] = {{"help", no_argument, NULL, 'h'},
                                            {"agents", required_argument, NULL, 'a'},
                                            {"seconds", required_argument, NULL, 's'},
                                            {"json", no_argument, NULL, 'j'},
                                            {NULL, 0, NULL, 0}};
    char agents_list[256] = "16,64,256";
    double seconds = 5;
    bool json = false;
    int c;
    while ((c = zrt_cli_next_option(argc, argv, options, "bench control")) != -1) {
        if (c == 'h') {
            fputs("usage: zrt bench control [--agents 16,64,256] [--seconds 5] [--json]\n\n"
                  "A coordinator process and N lightweight agents (client threads) on 127.0.0.1:\n"
                  "time to rendezvous, coordinator CPU per heartbeat (1 Hz per agent), and the\n"
                  "time to detect an agent that stops (heartbeat timeout 3 s).\n",
                  stdout);
            return ZRT_EXIT_OK;
        }
        if (c == 'a') snprintf(agents_list, sizeof agents_list, "%s", optarg);
        else if (c == 's' && (seconds = atof(optarg)) > 0) continue;
        else if (c == 'j') json = true;
        else return c == '?' ? ZRT_EXIT_USAGE
                             : zrt_cli_usage_error("bench control", "bad value '%s' for %s", optarg,
                                                   zrt_cli_option_name(options, c));
    }
    if (optind != argc) return zrt_cli_usage_error("bench control", "unexpected argument '%s'", argv[optind]);
    char exe[4096];
    const char *self = zrt_cli_self_exe(exe, sizeof exe);
    if (!json)
        printf("%6s %14s %10s %18s %13s %14s\n", "agents", "rendezvous_s", "heartbeats", "cpu/heartbeat_us",
               "coordinator", "detection_s");
    for (char *save = NULL, *t = strtok_r(agents_list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int agents = atoi(t);
        if (agents < 1 || agents > 4096) return zrt_cli_usage_error("bench control", "bad agent count '%s'", t);
        if (zrt_bench_control(agents, seconds, self, json) != ZRT_OK) {
            fprintf(stderr, "zrt bench control: %s\n", zrt_last_error());
            return ZRT_EXIT_FAIL;
        }
        fflush(stdout);
    }
    return ZRT_EXIT_OK;
}

int zrt_cmd_bench(int argc, char **argv)
{
    zrt_cli_normalize_options(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "comm") == 0) return bench_comm(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "train") == 0) return zrt_bench_train(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "control") == 0) return bench_control(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "adam") == 0) return zrt_bench_adam(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "nvme") == 0) return zrt_bench_nvme(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "gpu") == 0) return zrt_bench_gpu(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "tokenize") == 0) return zrt_bench_tokenize(argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs("usage: zrt bench comm|train|control|adam|nvme|gpu [...]   (zrt bench NAME --help)\n", stdout);
        return ZRT_EXIT_OK;
    }
    return zrt_cli_usage_error("bench", "unknown benchmark '%s' (available: comm, train, control, adam, nvme, gpu)",
                               argc >= 2 ? argv[1] : "");
}
