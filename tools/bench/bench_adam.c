/* bench_adam.c: `zrt bench adam`: the one-pass CPU optimizer (zrt/offload.h)
 * in Gparam/s, against yardsticks measured in the same run.
 *
 * Why these rows (issue #10): the Adam pass alone is at the memory bound
 * already in DeepSpeed; what the one pass saves is bytes. So the fused step
 * (unscale, clip, Adam, bf16 copy: 4 fp32 reads, 3 fp32 writes, one 2-byte
 * write = 30 B/param) is measured against (a) the memory bound for its bytes,
 * found by streaming the same arrays with trivial arithmetic, (b) the plain
 * scalar path of the same formula, and (c) the usual sequence -- a norm
 * pass, an unscale pass, the Adam pass, a copy-out pass (46 B/param) -- on
 * 1 thread and on every thread of a pinned pool. Each figure is the best of
 * --repeats runs over --params parameters (fp32 gradients).
 * The bound is never lower than an independent tool would measure (#28):
 * it is the faster of the streamed intrinsics (on the engine's pinned
 * memory) and a plain STREAM-shaped C loop the compiler vectorizes, on
 * ordinarily allocated (malloc) memory -- printed as its own row. The
 * optimizer runs on pinned memory from the cpu device (zrt_host_alloc), the
 * memory the engine gives it.
 */
#include "cli.h"
#include "zrt/internal/offload.h"
#include "zrt/internal/kernels.h"

#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: zrt bench adam [--params 32M] [--threads N] [--repeats 5] [--json]\n"
    "\n"
    "Gparam/s of the one-pass CPU optimizer step (1 thread and --threads, default\n"
    "every core), with and without the bf16 copy-out, on the engine's pinned memory,\n"
    "beside: the memory bound for the same bytes (the faster of a plain C loop on\n"
    "malloc'ed memory and the streamed intrinsics, both printed), the scalar path,\n"
    "and the usual sequence (norm pass, unscale pass, Adam pass, copy-out pass).\n";

typedef struct {
    size_t n;
    float *master, *exp_avg, *exp_avg_sq, *grads;
    uint16_t *copy;
    zrt_device *device; /* the pinned memory's, or NULL: malloc */
    bool with_copy;
    float unscale;
    double squares[256]; /* per thread */
} arrays;

/* The memory bound: the fused step's traffic (4 fp32 reads, 3 fp32 writes,
 * the 2-byte copy) with trivial arithmetic, as wide as the optimizer's own
 * vectors (so the yardstick is not instruction-bound where the step is not). */
__attribute__((target("avx512f"))) static void stream_avx512(float *restrict p, float *restrict m, float *restrict v,
                                                              const float *restrict g, uint16_t *restrict copy,
                                                              size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 x = _mm512_loadu_ps(g + i), y = _mm512_add_ps(_mm512_loadu_ps(p + i), x);
        _mm512_storeu_ps(p + i, y);
        _mm512_storeu_ps(m + i, _mm512_add_ps(_mm512_loadu_ps(m + i), x));
        _mm512_storeu_ps(v + i, _mm512_add_ps(_mm512_loadu_ps(v + i), x));
        if (copy) _mm256_storeu_si256((__m256i *)(copy + i), _mm512_cvtepi32_epi16(_mm512_castps_si512(y)));
    }
    for (; i < n; i++) p[i] += g[i];
}

__attribute__((target("avx2"))) static void stream_avx2(float *restrict p, float *restrict m, float *restrict v,
                                                         const float *restrict g, uint16_t *restrict copy, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(g + i), y = _mm256_add_ps(_mm256_loadu_ps(p + i), x);
        _mm256_storeu_ps(p + i, y);
        _mm256_storeu_ps(m + i, _mm256_add_ps(_mm256_loadu_ps(m + i), x));
        _mm256_storeu_ps(v + i, _mm256_add_ps(_mm256_loadu_ps(v + i), x));
        if (copy) {
            __m256i bits = _mm256_srli_epi32(_mm256_castps_si256(y), 16);
            __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(bits, bits), 0x08);
            _mm_storeu_si128((__m128i *)(copy + i), _mm256_castsi256_si128(packed));
        }
    }
    for (; i < n; i++) p[i] += g[i];
}

static void stream_range(float *restrict p, float *restrict m, float *restrict v, const float *restrict g,
                         uint16_t *restrict copy, size_t n)
{
    zrt_simd simd = zrt_simd_best();
    if (simd == ZRT_SIMD_AVX512) return stream_avx512(p, m, v, g, copy, n);
    if (simd == ZRT_SIMD_AVX2) return stream_avx2(p, m, v, g, copy, n);
    if (copy)
        for (size_t i = 0; i < n; i++) {
            float x = g[i], y = p[i] + x;
            p[i] = y;
            m[i] += x;
            v[i] += x;
            copy[i] = (uint16_t)(int)y;
        }
    else
        for (size_t i = 0; i < n; i++) {
            float x = g[i];
            p[i] += x;
            m[i] += x;
            v[i] += x;
        }
}

/* The same traffic as a plain loop, as STREAM is written and built (-O3: vectorized by the compiler). */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("O3")))
#endif
static void plain_range(float *restrict p, float *restrict m, float *restrict v, const float *restrict g,
                        uint16_t *restrict copy, size_t n)
{
    if (!copy) {
        for (size_t i = 0; i < n; i++) {
            float x = g[i];
            p[i] += x;
            m[i] += x;
            v[i] += x;
        }
        return;
    }
    for (size_t i = 0; i < n; i++) {
        float x = g[i], y = p[i] + x;
        uint32_t bits;
        memcpy(&bits, &y, sizeof bits);
        p[i] = y;
        m[i] += x;
        v[i] += x;
        copy[i] = (uint16_t)(bits >> 16);
    }
}

static void share(size_t n, int t, int threads, size_t *begin, size_t *end);

static zrt_status plain_bytes(void *arg, int t, int threads)
{
    arrays *a = arg;
    size_t begin, end;
    share(a->n, t, threads, &begin, &end);
    if (begin < end)
        plain_range(a->master + begin, a->exp_avg + begin, a->exp_avg_sq + begin, a->grads + begin,
                    a->with_copy ? a->copy + begin : NULL, end - begin);
    return ZRT_OK;
}

static zrt_status stream_bytes(void *arg, int t, int threads)
{
    arrays *a = arg;
    size_t begin, end;
    share(a->n, t, threads, &begin, &end);
    if (begin < end)
        stream_range(a->master + begin, a->exp_avg + begin, a->exp_avg_sq + begin, a->grads + begin,
                     a->with_copy ? a->copy + begin : NULL, end - begin);
    return ZRT_OK;
}

/* Thread t's share [*begin, *end) of n. */
static void share(size_t n, int t, int threads, size_t *begin, size_t *end)
{
    size_t per = (n / (size_t)threads + 63) / 64 * 64;
    *begin = per * (size_t)t < n ? per * (size_t)t : n;
    *end = t == threads - 1 || *begin + per > n ? n : *begin + per;
}

/* The usual sequence's extra passes, each a loop the compiler vectorizes:
 * the norm, the unscale, the bf16 copy-out. */
static double squares(const float *restrict g, size_t n)
{
    float sum = 0; /* fp32 partials: vectorizable, as a framework's norm kernel is */
    for (size_t i = 0; i < n; i++) sum += g[i] * g[i];
    return sum;
}

static void unscale(float *restrict g, float s, size_t n)
{
    for (size_t i = 0; i < n; i++) g[i] *= s;
}

static void to_bf16(uint16_t *restrict out, const uint32_t *restrict bits, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = (uint16_t)((bits[i] + 0x7fffu + ((bits[i] >> 16) & 1u)) >> 16);
}

static zrt_status norm_pass(void *arg, int t, int threads)
{
    arrays *a = arg;
    size_t begin, end;
    share(a->n, t, threads, &begin, &end);
    a->squares[t] = squares(a->grads + begin, end - begin);
    return ZRT_OK;
}

static zrt_status unscale_pass(void *arg, int t, int threads)
{
    arrays *a = arg;
    size_t begin, end;
    share(a->n, t, threads, &begin, &end);
    unscale(a->grads + begin, a->unscale, end - begin);
    return ZRT_OK;
}

static zrt_status copy_pass(void *arg, int t, int threads)
{
    arrays *a = arg;
    size_t begin, end;
    share(a->n, t, threads, &begin, &end);
    to_bf16(a->copy + begin, (const uint32_t *)(const void *)(a->master + begin), end - begin);
    return ZRT_OK;
}

typedef enum { RUN_BOUND, RUN_PLAIN, RUN_FUSED, RUN_SCALAR, RUN_USUAL } run_kind;

static zrt_adam_args adam_args(void)
{
    return (zrt_adam_args){.lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f,
                           .adamw = true, .step = 10, .unscale = 1.0f};
}

/* One run of kind on pool; seconds. */
static double run_once(run_kind kind, arrays *a, zrt_cpu_pool *pool)
{
    zrt_adam_args args = adam_args();
    zrt_adam_slice s = {a->master, a->exp_avg, a->exp_avg_sq, a->grads, ZRT_DTYPE_F32,
                        a->with_copy ? a->copy : NULL, ZRT_DTYPE_BF16, a->n};
    double t = zrt_now();
    zrt_status status = ZRT_OK;
    if (kind == RUN_BOUND) {
        status = zrt_cpu_pool_run(pool, stream_bytes, a);
    } else if (kind == RUN_PLAIN) {
        status = zrt_cpu_pool_run(pool, plain_bytes, a);
    } else if (kind == RUN_FUSED) {
        args.unscale = a->unscale;
        status = zrt_cpu_adam(&args, 0.9f, &s, ZRT_SIMD_AUTO, pool);
    } else if (kind == RUN_SCALAR) {
        args.unscale = a->unscale;
        status = zrt_cpu_adam(&args, 0.9f, &s, ZRT_SIMD_SCALAR, pool);
    } else { /* the usual sequence: each its own pass */
        status = zrt_cpu_pool_run(pool, norm_pass, a);
        double sum = 0;
        for (int k = 0; k < zrt_cpu_pool_threads(pool); k++) sum += a->squares[k];
        float clip = sum >= 0 ? 0.9f : 1.0f; /* uses the norm, as a clip factor would */
        if (status == ZRT_OK) status = zrt_cpu_pool_run(pool, unscale_pass, a);
        s.params = NULL;
        if (status == ZRT_OK) status = zrt_cpu_adam(&args, clip, &s, ZRT_SIMD_AUTO, pool);
        if (status == ZRT_OK && a->with_copy) status = zrt_cpu_pool_run(pool, copy_pass, a);
    }
    t = zrt_now() - t;
    return status == ZRT_OK ? t : -1;
}

static void reset_arrays(arrays *a);

/* Best of repeats, each on freshly set state (the yardstick's arithmetic
 * would drive the moments out of Adam's range). */
static double best_of(run_kind kind, arrays *a, zrt_cpu_pool *pool, int repeats)
{
    double best = 1e30;
    reset_arrays(a);
    for (int r = 0; r < repeats; r++) {
        double t = run_once(kind, a, pool);
        if (t < 0) return -1;
        if (t < best) best = t;
    }
    return best;
}

static void print_row(bool json, const char *what, int threads, bool copy, double seconds, size_t n, double bytes,
                      double bound_s, double usual_s)
{
    double gps = (double)n / seconds / 1e9;
    if (json) {
        printf("{\"row\": \"%s\", \"threads\": %d, \"copy_out\": %s, \"gparam_per_s\": %.4f, \"bytes_per_param\": %.0f, "
               "\"gb_per_s\": %.2f, \"of_memory_bound\": %.3f",
               what, threads, copy ? "true" : "false", gps, bytes, gps * bytes, bound_s / seconds);
        if (usual_s > 0) printf(", \"vs_usual\": %.3f", usual_s / seconds);
        printf("}\n");
    } else {
        printf("%-28s %7d %5s %11.3f %6.0f %9.2f %10.3f", what, threads, copy ? "yes" : "no", gps, bytes, gps * bytes,
               bound_s / seconds);
        if (usual_s > 0) printf(" %10.3f", usual_s / seconds);
        printf("\n");
    }
    fflush(stdout);
}

static void reset_arrays(arrays *a)
{
    for (size_t i = 0; i < a->n; i++) { /* also touches every page before timing */
        a->master[i] = 0.01f * (float)(i % 97);
        a->exp_avg[i] = 0;
        a->exp_avg_sq[i] = 1e-4f;
        a->grads[i] = 1e-3f * (float)(i % 13) - 5e-3f;
        a->copy[i] = 0;
    }
    a->unscale = 1.0f;
}

/* The arrays from malloc (device NULL: ordinary memory) or the device's pinned host memory. */
static bool alloc_arrays(arrays *a, size_t n, zrt_device *device)
{
    a->n = n;
    a->device = device;
    void **parts[5] = {(void **)&a->master, (void **)&a->exp_avg, (void **)&a->exp_avg_sq, (void **)&a->grads,
                       (void **)&a->copy};
    for (int k = 0; k < 5; k++) {
        size_t bytes = n * (k == 4 ? 2 : 4);
        if (device ? zrt_host_alloc(device, ZRT_MEM_OPTIMIZER, bytes, "bench adam", parts[k]) != ZRT_OK
                   : !(*parts[k] = malloc(bytes)))
            return false;
    }
    reset_arrays(a);
    return true;
}

static void free_arrays(arrays *a)
{
    void *parts[5] = {a->master, a->exp_avg, a->exp_avg_sq, a->grads, a->copy};
    for (int k = 0; k < 5; k++) {
        if (a->device) zrt_host_free(a->device, parts[k]);
        else free(parts[k]);
    }
}

/* Every row for one pool size: a (pinned) for the optimizer and the
 * streamed bound, plain (malloc) for the plain loop; the bound is the
 * faster of the two. */
static void bench_pool(arrays *a, arrays *plain, zrt_cpu_pool *pool, int repeats, bool json)
{
    int threads = zrt_cpu_pool_threads(pool);
    for (int copy = 1; copy >= 0; copy--) {
        a->with_copy = plain->with_copy = copy;
        double bytes = copy ? 30 : 28;
        double streamed = best_of(RUN_BOUND, a, pool, repeats), loop = best_of(RUN_PLAIN, plain, pool, repeats);
        double bound = streamed < loop ? streamed : loop;
        double usual = best_of(RUN_USUAL, a, pool, repeats);
        double fused = best_of(RUN_FUSED, a, pool, repeats);
        print_row(json, "plain C loop (malloc)", threads, copy, loop, a->n, bytes, bound, 0);
        print_row(json, "streamed (pinned)", threads, copy, streamed, a->n, bytes, bound, 0);
        print_row(json, copy ? "usual sequence (46 B)" : "usual sequence (40 B)", threads, copy, usual, a->n,
                  copy ? 46 : 40, bound, 0);
        char what[64];
        snprintf(what, sizeof what, "one pass (%s)", zrt_simd_name(zrt_simd_best()));
        print_row(json, what, threads, copy, fused, a->n, bytes, bound, usual);
        if (threads == 1) print_row(json, "scalar path", threads, copy, best_of(RUN_SCALAR, a, pool, repeats), a->n,
                                    bytes, bound, usual);
    }
}

int zrt_bench_adam(int argc, char **argv)
{
    static const struct option options[] = {{"help", no_argument, NULL, 'h'},   {"params", required_argument, NULL, 'p'},
                                            {"threads", required_argument, NULL, 't'},
                                            {"repeats", required_argument, NULL, 'r'},
                                            {"json", no_argument, NULL, 'j'},   {NULL, 0, NULL, 0}};
    double params = 32 * 1024 * 1024;
    int threads = zrt_cpu_threads_default(0, 1), repeats = 5;
    bool json = false;
    int c;
    while ((c = zrt_cli_next_option(argc, argv, options, "bench adam")) != -1) {
        char *end = NULL;
        if (c == 'h') return fputs(usage, stdout), ZRT_EXIT_OK;
        if (c == 'p') {
            params = strtod(optarg, &end);
            if (end && (*end == 'M' || *end == 'm')) params *= 1024 * 1024, end++;
            else if (end && (*end == 'K' || *end == 'k')) params *= 1024, end++;
            if (!end || *end || params < 1024 || params > 4e9)
                return zrt_cli_usage_error("bench adam", "bad value '%s' for --params (1K .. 4G)", optarg);
        } else if (c == 't') {
            if ((threads = atoi(optarg)) < 1 || threads > 256)
                return zrt_cli_usage_error("bench adam", "bad value '%s' for --threads", optarg);
        } else if (c == 'r') {
            if ((repeats = atoi(optarg)) < 1 || repeats > 100)
                return zrt_cli_usage_error("bench adam", "bad value '%s' for --repeats", optarg);
        } else if (c == 'j') {
            json = true;
        } else {
            return ZRT_EXIT_USAGE;
        }
    }
    if (optind != argc) return zrt_cli_usage_error("bench adam", "unexpected argument '%s'", argv[optind]);
    static arrays a, plain;
    zrt_device_options o;
    zrt_device_options_init(&o);
    o.check = 0;
    zrt_device *device = NULL;
    if (zrt_device_create(&o, &device) != ZRT_OK || !alloc_arrays(&a, (size_t)params, device) ||
        !alloc_arrays(&plain, (size_t)params, NULL)) {
        fprintf(stderr, "zrt bench adam: out of memory for %.0f parameters (%s)\n", params, zrt_last_error());
        return ZRT_EXIT_FAIL;
    }
    if (!json)
        printf("%.0f parameters, fp32 gradients, bf16 copy-out; best of %d; %s path\n%-28s %7s %5s %11s %6s %9s %10s "
               "%10s\n",
               params, repeats, zrt_simd_name(zrt_simd_best()), "row", "threads", "copy", "Gparam/s", "B/par", "GB/s",
               "of bound", "vs usual");
    int sizes[2] = {1, threads}, rc = ZRT_EXIT_OK;
    for (int k = 0; k < (threads > 1 ? 2 : 1) && rc == ZRT_EXIT_OK; k++) {
        zrt_cpu_pool *pool = NULL;
        if (zrt_cpu_pool_create(sizes[k], 0, &pool) != ZRT_OK) {
            fprintf(stderr, "zrt bench adam: %s\n", zrt_last_error());
            rc = ZRT_EXIT_FAIL;
            break;
        }
        bench_pool(&a, &plain, pool, repeats, json);
        zrt_cpu_pool_destroy(pool);
    }
    free_arrays(&a);
    free_arrays(&plain);
    zrt_device_destroy(device);
    return rc;
}
