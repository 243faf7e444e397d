/* bench_nvme.c: `zrt bench nvme`: read and write GB/s of the swapper
 * (zrt/offload.h) for block sizes x queue depths, beside fio on the same
 * directory, file size, block size and depth, run in the same command.
 *
 * Why fio as the baseline: it is what storage people trust for "what this
 * drive does with io_uring" (--ioengine=io_uring --direct=1 --fixedbufs
 * --registerfiles), so swapper / fio says how much of the drive the
 * swapper leaves on the table. The swapper is measured as the engine uses
 * it: one large request per sub-group from a registered pinned buffer,
 * split into block-sized chunks, queue_depth in flight. Each figure is the
 * best of --repeats passes over the whole file, the swapper's and fio's
 * passes interleaved (a shared drive's slow spells fall on both); with
 * several directories fio stripes over a file in each. The buffer is in
 * huge pages, as the engine's pinned slots are (MADV_HUGEPAGE): a 1 MiB
 * chunk of 4 KiB pages is 256 segments, over virtio-blk's 254, and the
 * block layer splits it in two. Without fio (tools/bootstrap installs it)
 * the fio columns say so.
 *
 * Why a second baseline, "loop": fio reads into a ring of block x depth
 * bytes, which stays in the CPU's cache; the swapper must land every chunk
 * at its own address in a sub-group's slot, and on a virtual disk (the
 * host copies each block into guest memory) reading into cold memory is
 * slower: a 1 MiB, depth 4 read reached 3.2 GB/s into a 4 MiB ring and 2.2
 * into a 512 MiB buffer, the same loop. The loop is fio's io_uring loop
 * (one thread filling the queue, submit and wait, registered buffer and
 * files, O_DIRECT, the swapper's striping) into the swapper's buffer: the
 * bound for where the data must go. Both baselines are printed.
 */
#include "cli.h"
#include "zrt/internal/offload.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_LIST 8
#define REQUEST_BYTES ((size_t)64 << 20) /* one sub-group of 16M fp32 */

static const char usage[] =
    "usage: zrt bench nvme [--dir DIR[,DIR...]] [--file-size 512M] [--block-sizes 1M,4M]\n"
    "                      [--depths 4,16,64] [--repeats 3] [--json]\n"
    "\n"
    "Sequential write and read GB/s of the NVMe swapper (io_uring, O_DIRECT, fixed\n"
    "buffers; striped when several directories are given) beside fio with the same\n"
    "file size, block size and queue depth (io_uring, direct, fixedbufs).\n"
    "--dir defaults to $TMPDIR or /tmp.\n";

typedef struct {
    const char *dirs[ZRT_MAX_NVME_PATHS];
    int n_dirs, repeats;
    size_t file_bytes, blocks[MAX_LIST], depths[MAX_LIST];
    int n_blocks, n_depths;
    bool json;
    char *buffer;
} nvme_bench;

/* One pass of the swapper over the whole file; seconds, or < 0 with the error printed. */
static double swapper_pass(zrt_swap *swap, nvme_bench *b, bool write)
{
    uint64_t tickets[64];
    int n = 0;
    double t = zrt_now();
    for (size_t at = 0; at < b->file_bytes; at += REQUEST_BYTES) {
        size_t bytes = b->file_bytes - at < REQUEST_BYTES ? b->file_bytes - at : REQUEST_BYTES;
        zrt_status s = write ? zrt_swap_write(swap, at, b->buffer + at, bytes, &tickets[n])
                             : zrt_swap_read(swap, at, b->buffer + at, bytes, &tickets[n]);
        if (s != ZRT_OK) return fprintf(stderr, "zrt bench nvme: %s\n", zrt_last_error()), -1;
        n++;
    }
    for (int i = 0; i < n; i++)
        if (zrt_swap_wait(swap, tickets[i]) != ZRT_OK) return fprintf(stderr, "zrt bench nvme: %s\n", zrt_last_error()), -1;
    return zrt_now() - t;
}

/* fio's bandwidth for one job (rw = write or read), GB/s; 0 when fio is not there or fails. */
static double fio_rate(const nvme_bench *b, const char *rw, size_t block, size_t depth)
{
    char files[2400] = "", cmd[4096];
    for (int i = 0; i < b->n_dirs; i++) /* fio stripes over several files named a:b */
        snprintf(files + strlen(files), sizeof files - strlen(files), "%s%s/zrt-bench-fio-%d", i ? ":" : "",
                 b->dirs[i], (int)getpid());
    snprintf(cmd, sizeof cmd,
             "fio --name=zrt --filename=%s --size=%zu --bs=%zu --iodepth=%zu --rw=%s --ioengine=io_uring --direct=1 "
             "--fixedbufs --registerfiles --output-format=json 2>/dev/null",
             files, b->file_bytes, block, depth, rw);
    FILE *p = popen(cmd, "r");
    if (!p) return 0;
    size_t cap = 1 << 20, used = 0;
    char *out = malloc(cap);
    for (size_t n; out && (n = fread(out + used, 1, cap - 1 - used, p)) > 0;) used += n;
    int rc = pclose(p);
    double gbps = 0;
    if (out && rc == 0) {
        out[used] = '\0';
        cJSON *root = cJSON_Parse(strchr(out, '{') ? strchr(out, '{') : out);
        cJSON *job = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "jobs"), 0);
        cJSON *bw = cJSON_GetObjectItem(cJSON_GetObjectItem(job, rw), "bw_bytes");
        if (cJSON_IsNumber(bw)) gbps = bw->valuedouble / 1e9;
        cJSON_Delete(root);
    }
    free(out);
    return gbps;
}

/* One pass of the plain loop over the whole file (chunk c in file c % n at
 * (c / n) x block, as the swapper stripes); seconds, or < 0. */
static double loop_pass(const nvme_bench *b, struct io_uring *ring, size_t block, size_t depth, bool write)
{
    size_t next = 0, done = 0, inflight = 0;
    double t = zrt_now();
    while (done < b->file_bytes) {
        for (; inflight < depth && next < b->file_bytes; next += block, inflight++) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
            size_t c = next / block, n = b->file_bytes - next < block ? b->file_bytes - next : block;
            int file = (int)(c % (size_t)b->n_dirs);
            off_t at = (off_t)(c / (size_t)b->n_dirs * block);
            if (write) io_uring_prep_write_fixed(sqe, file, b->buffer + next, (unsigned)n, at, 0);
            else io_uring_prep_read_fixed(sqe, file, b->buffer + next, (unsigned)n, at, 0);
            sqe->flags |= IOSQE_FIXED_FILE;
        }
        if (io_uring_submit_and_wait(ring, 1) < 0) return -1;
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(ring, head, cqe)
        {
            if (cqe->res <= 0) return fprintf(stderr, "zrt bench nvme: loop: %s\n", strerror(-cqe->res)), -1;
            done += (size_t)cqe->res;
            seen++;
        }
        io_uring_cq_advance(ring, seen);
        inflight -= seen;
    }
    return zrt_now() - t;
}

/* The loop's files, ring and registrations; false with the error printed. */
static bool loop_open(const nvme_bench *b, size_t block, size_t depth, struct io_uring *ring, int fds[])
{
    size_t chunks = (b->file_bytes + block - 1) / block, per_file = (chunks + (size_t)b->n_dirs - 1) / (size_t)b->n_dirs * block;
    *ring = (struct io_uring){.ring_fd = -1};
    bool ok = io_uring_queue_init((unsigned)depth, ring, 0) == 0;
    if (!ok) ring->ring_fd = -1;
    for (int i = 0; i < b->n_dirs; i++) {
        char file[1200];
        snprintf(file, sizeof file, "%s/zrt-bench-loop-%d", b->dirs[i], (int)getpid());
        fds[i] = open(file, O_RDWR | O_CREAT | O_TRUNC | O_DIRECT | O_CLOEXEC, 0600);
        if (fds[i] < 0 && errno == EINVAL) fds[i] = open(file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600); /* as the swapper */
        unlink(file); /* gone with the descriptor */
        ok = ok && fds[i] >= 0 && posix_fallocate(fds[i], 0, (off_t)per_file) == 0;
    }
    struct iovec iov = {b->buffer, b->file_bytes};
    ok = ok && io_uring_register_buffers(ring, &iov, 1) == 0 && io_uring_register_files(ring, fds, (unsigned)b->n_dirs) == 0;
    if (!ok) fprintf(stderr, "zrt bench nvme: loop: cannot set up io_uring with O_DIRECT files in %s\n", b->dirs[0]);
    return ok;
}

static void fio_remove(const nvme_bench *b)
{
    for (int i = 0; i < b->n_dirs; i++) {
        char file[1200];
        snprintf(file, sizeof file, "%s/zrt-bench-fio-%d", b->dirs[i], (int)getpid());
        unlink(file);
    }
}

/* One row: the best of --repeats of the swapper's write and read passes,
 * the loop's and fio's, interleaved; rate = {write, read} x {swapper, loop, fio} GB/s. */
enum { SWAP_W, SWAP_R, LOOP_W, LOOP_R, FIO_W, FIO_R, N_RATES };

static bool row_rates(nvme_bench *b, bool fio, size_t block, size_t depth, double rate[N_RATES])
{
    zrt_swap_options o = {.paths = b->dirs, .n_paths = b->n_dirs, .name = "bench", .bytes = b->file_bytes,
                          .block_size = block, .queue_depth = (int)depth};
    zrt_swap *swap = NULL;
    if (zrt_swap_create(&o, &swap) != ZRT_OK) return fprintf(stderr, "zrt bench nvme: %s\n", zrt_last_error()), false;
    void *buffers[1] = {b->buffer};
    size_t sizes[1] = {b->file_bytes};
    zrt_swap_register(swap, buffers, sizes, 1);
    struct io_uring ring;
    int fds[ZRT_MAX_NVME_PATHS];
    for (int i = 0; i < ZRT_MAX_NVME_PATHS; i++) fds[i] = -1;
    bool ok = loop_open(b, block, depth, &ring, fds);
    double best[N_RATES] = {1e30, 1e30, 1e30, 1e30, 0, 0};
    for (int r = 0; r < b->repeats && ok; r++) {
        double t[4] = {swapper_pass(swap, b, true), swapper_pass(swap, b, false), loop_pass(b, &ring, block, depth, true),
                       loop_pass(b, &ring, block, depth, false)};
        for (int k = 0; k < 4; k++) {
            ok = ok && t[k] >= 0;
            if (ok && t[k] < best[k]) best[k] = t[k];
        }
        for (int k = 0; ok && fio && k < 2; k++) {
            double gbps = fio_rate(b, k == 0 ? "write" : "read", block, depth);
            if (gbps > best[FIO_W + k]) best[FIO_W + k] = gbps;
        }
    }
    if (ring.ring_fd >= 0) io_uring_queue_exit(&ring);
    for (int i = 0; i < b->n_dirs; i++)
        if (fds[i] >= 0) close(fds[i]);
    zrt_swap_destroy(swap);
    fio_remove(b);
    for (int k = 0; k < 4; k++) rate[k] = (double)b->file_bytes / best[k] / 1e9;
    rate[FIO_W] = best[FIO_W];
    rate[FIO_R] = best[FIO_R];
    return ok;
}

static double ratio(double a, double b) { return b > 0 ? a / b : 0; }

static void print_row(const nvme_bench *b, size_t block, size_t depth, const double rate[N_RATES])
{
    if (b->json) {
        printf("{\"bench\": \"nvme\", \"dirs\": %d, \"file_bytes\": %zu, \"block_bytes\": %zu, \"queue_depth\": %zu, "
               "\"write_gbps\": %.3f, \"read_gbps\": %.3f, \"loop_write_gbps\": %.3f, \"loop_read_gbps\": %.3f, "
               "\"fio_write_gbps\": %.3f, \"fio_read_gbps\": %.3f, \"write_vs_loop\": %.3f, \"read_vs_loop\": %.3f, "
               "\"write_vs_fio\": %.3f, \"read_vs_fio\": %.3f}\n",
               b->n_dirs, b->file_bytes, block, depth, rate[SWAP_W], rate[SWAP_R], rate[LOOP_W], rate[LOOP_R],
               rate[FIO_W], rate[FIO_R], ratio(rate[SWAP_W], rate[LOOP_W]), ratio(rate[SWAP_R], rate[LOOP_R]),
               ratio(rate[SWAP_W], rate[FIO_W]), ratio(rate[SWAP_R], rate[FIO_R]));
        return;
    }
    printf("%6zuK %5zu", block >> 10, depth);
    for (int k = 0; k < 2; k++) {
        char fio[32] = "    n/a", vs_fio[32] = "";
        if (rate[FIO_W + k] > 0)
            snprintf(fio, sizeof fio, "%7.3f", rate[FIO_W + k]),
                snprintf(vs_fio, sizeof vs_fio, "%.2f", ratio(rate[SWAP_W + k], rate[FIO_W + k]));
        printf(" | %7.3f %7.3f %5.2f %s %5s", rate[SWAP_W + k], rate[LOOP_W + k], ratio(rate[SWAP_W + k], rate[LOOP_W + k]),
               fio, vs_fio);
    }
    printf("\n");
}

static bool parse_sizes(const char *text, size_t *out, int *n, bool bytes)
{
    *n = 0;
    for (const char *p = text; *p && *n < MAX_LIST;) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || v <= 0) return false;
        if (bytes && (*end == 'K' || *end == 'k')) v *= 1024, end++;
        else if (bytes && (*end == 'M' || *end == 'm')) v *= 1 << 20, end++;
        else if (bytes && (*end == 'G' || *end == 'g')) v *= 1 << 30, end++;
        out[(*n)++] = (size_t)v;
        if (*end == ',') end++;
        else if (*end) return false;
        p = end;
    }
    return *n > 0;
}

static int parse(int argc, char **argv, nvme_bench *b, char *dirs)
{
    static const struct option options[] = {
        {"help", no_argument, NULL, 'h'},          {"dir", required_argument, NULL, 'd'},
        {"file-size", required_argument, NULL, 'f'}, {"block-sizes", required_argument, NULL, 'b'},
        {"depths", required_argument, NULL, 'q'},  {"repeats", required_argument, NULL, 'r'},
        {"json", no_argument, NULL, 'j'},          {NULL, 0, NULL, 0}};
    int n, c;
    size_t one[MAX_LIST];
    while ((c = zrt_cli_next_option(argc, argv, options, "bench nvme")) != -1) {
        if (c == 'h') return fputs(usage, stdout), -1;
        bool ok = true;
        if (c == 'd') snprintf(dirs, 4096, "%s", optarg);
        else if (c == 'f') ok = parse_sizes(optarg, one, &n, true) && n == 1 && (b->file_bytes = one[0]) % 4096 == 0 &&
                             b->file_bytes <= ((size_t)1 << 30); /* io_uring registers up to 1 GiB */
        else if (c == 'b') {
            ok = parse_sizes(optarg, b->blocks, &b->n_blocks, true);
            for (int i = 0; ok && i < b->n_blocks; i++) ok = b->blocks[i] % 4096 == 0;
        } else if (c == 'q') {
            ok = parse_sizes(optarg, b->depths, &b->n_depths, false);
            for (int i = 0; ok && i < b->n_depths; i++) ok = b->depths[i] <= 4096;
        } else if (c == 'r') ok = (b->repeats = atoi(optarg)) >= 1 && b->repeats <= 100;
        else if (c == 'j') b->json = true;
        else return ZRT_EXIT_USAGE;
        if (!ok)
            return zrt_cli_usage_error("bench nvme", "bad value '%s' for %s (sizes are multiples of 4096; a file at most 1G)", optarg,
                                       zrt_cli_option_name(options, c));
    }
    if (optind != argc) return zrt_cli_usage_error("bench nvme", "unexpected argument '%s'", argv[optind]);
    for (char *save = NULL, *d = strtok_r(dirs, ",", &save); d && b->n_dirs < ZRT_MAX_NVME_PATHS; d = strtok_r(NULL, ",", &save))
        b->dirs[b->n_dirs++] = d;
    return b->n_dirs ? ZRT_EXIT_OK : zrt_cli_usage_error("bench nvme", "--dir names no directory");
}

int zrt_bench_nvme(int argc, char **argv)
{
    static nvme_bench b = {.repeats = 3, .file_bytes = (size_t)512 << 20, .blocks = {1 << 20, 4 << 20},
                           .n_blocks = 2, .depths = {4, 16, 64}, .n_depths = 3};
    static char dirs[4096];
    const char *tmp = getenv("TMPDIR");
    snprintf(dirs, sizeof dirs, "%s", tmp && tmp[0] ? tmp : "/tmp");
    int rc = parse(argc, argv, &b, dirs);
    if (rc != ZRT_EXIT_OK) return rc < 0 ? ZRT_EXIT_OK : rc;
    b.buffer = mmap(NULL, b.file_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (b.buffer == MAP_FAILED) return fprintf(stderr, "zrt bench nvme: out of memory\n"), ZRT_EXIT_FAIL;
    (void)madvise(b.buffer, b.file_bytes, MADV_HUGEPAGE); /* as the engine's pinned slots */
    for (size_t i = 0; i < b.file_bytes; i += 4096) b.buffer[i] = (char)i;
    bool fio = system("fio --version >/dev/null 2>&1") == 0;
    if (!b.json)
        printf("%zu MiB over %d director%s (%s), best of %d, GB/s; loop: fio's io_uring loop into the swapper's "
               "buffer;\nfio %s\n%7s %5s | %7s %7s %5s %7s %5s | %7s %7s %5s %7s %5s\n",
               b.file_bytes >> 20, b.n_dirs, b.n_dirs > 1 ? "ies" : "y", b.dirs[0], b.repeats,
               fio ? "(same file size, block, depth) reads into a block x depth ring, which stays in cache"
                   : "not installed (tools/bootstrap installs it)",
               "block", "depth", "write", "loop", "/loop", "fio", "/fio", "read", "loop", "/loop", "fio", "/fio");
    for (int i = 0; i < b.n_blocks && rc == ZRT_EXIT_OK; i++)
        for (int k = 0; k < b.n_depths && rc == ZRT_EXIT_OK; k++) {
            double rate[N_RATES] = {0};
            if (!row_rates(&b, fio, b.blocks[i], b.depths[k], rate)) rc = ZRT_EXIT_FAIL;
            if (rc == ZRT_EXIT_OK) print_row(&b, b.blocks[i], b.depths[k], rate);
        }
    munmap(b.buffer, b.file_bytes);
    return rc;
}
