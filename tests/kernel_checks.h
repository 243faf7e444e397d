/* kernel_checks.h: every engine kernel of a device against the scalar
 * reference written here from kernels/cast.h and kernels/optim.h, on random
 * inputs of odd lengths: casts between every dtype pair (with and without
 * accumulate), fill, gradient statistics, Adam/AdamW (clipped, unclipped,
 * skipped on overflow). Bitwise, the statistics included: both backends sum
 * in kernels/grad_stats.h's blocked order.
 * Used by test_device_kernels.c (cpu) and test_cuda_device.c (cuda).
 */
#ifndef ZRT_TEST_KERNEL_CHECKS_H
#define ZRT_TEST_KERNEL_CHECKS_H

#include "cast.h"
#include "grad_stats.h"
#include "zrt/internal/kernels.h"
#include "device_common.h"
#include "optim.h"

#include <math.h>

static inline float ref_load(const void *p, size_t i, zrt_dtype dt) { return zrt_load_f32(p, i, (int)dt); }
static inline void ref_store(void *p, size_t i, zrt_dtype dt, float v) { zrt_store_f32(p, i, (int)dt, v); }

/* Random values of every magnitude the engine sees, a few inf/NaN when asked. */
static inline void random_fill(void *p, size_t n, zrt_dtype dt, uint64_t seed, bool specials)
{
    for (size_t i = 0; i < n; i++) {
        float v = zrt_random_normal(seed, 0, i) * powf(2.0f, (float)((int)(i % 17) - 8));
        if (specials && i % 97 == 5) v = i % 2 ? INFINITY : NAN;
        ref_store(p, i, dt, v);
    }
}

/* Copies host bytes to a new device buffer. */
static inline void *upload(zrt_device *d, const void *host, size_t bytes)
{
    void *p = device_alloc(d, bytes ? bytes : 1, "kernel input");
    CHECK_OK(zrt_device_write(d, p, host, bytes));
    return p;
}

static inline bool same_bytes(zrt_device *d, zrt_stream *s, const void *dev, const void *want, size_t bytes)
{
    void *got = malloc(bytes ? bytes : 1);
    CHECK_OK(zrt_stream_synchronize(s));
    CHECK_OK(zrt_device_read(d, got, dev, bytes));
    bool same = memcmp(got, want, bytes) == 0;
    free(got);
    return same;
}

static inline void check_casts(zrt_device *d, zrt_stream *s, size_t n)
{
    size_t bytes = n * 4;
    void *src = malloc(bytes + 4), *dst = malloc(bytes + 4), *want = malloc(bytes + 4);
    for (int dt = 0; dt < 3; dt++)
        for (int st = 0; st < 3; st++)
            for (int acc = 0; acc < 2; acc++) {
                random_fill(src, n, (zrt_dtype)st, 11 + (uint64_t)st, false);
                random_fill(dst, n, (zrt_dtype)dt, 12 + (uint64_t)dt, false);
                memcpy(want, dst, bytes);
                for (size_t i = 0; i < n; i++) {
                    float v = ref_load(src, i, (zrt_dtype)st);
                    ref_store(want, i, (zrt_dtype)dt, acc ? v + ref_load(want, i, (zrt_dtype)dt) : v);
                }
                void *dev_src = upload(d, src, n * zrt_dtype_size((zrt_dtype)st));
                void *dev_dst = upload(d, dst, n * zrt_dtype_size((zrt_dtype)dt));
                CHECK_OK(zrt_kernel_cast(s, dev_dst, (zrt_dtype)dt, dev_src, (zrt_dtype)st, n, acc));
                CHECK_MSG(same_bytes(d, s, dev_dst, want, n * zrt_dtype_size((zrt_dtype)dt)),
                          "%s: cast %s -> %s%s, n %zu differs from the reference", zrt_device_name(d),
                          zrt_dtype_name((zrt_dtype)st), zrt_dtype_name((zrt_dtype)dt), acc ? " (accumulate)" : "", n);
                zrt_device_free(d, dev_src, NULL);
                zrt_device_free(d, dev_dst, NULL);
            }
    free(src);
    free(dst);
    free(want);
}

static inline void check_fill(zrt_device *d, zrt_stream *s, size_t n)
{
    uint16_t *want = malloc(n * 2 + 2);
    for (size_t i = 0; i < n; i++) want[i] = zrt_f32_to_bf16(-1.5f);
    void *dev = device_alloc(d, n * 2 + 2, "fill");
    CHECK_OK(zrt_kernel_fill(s, dev, ZRT_DTYPE_BF16, -1.5f, n));
    CHECK_MSG(same_bytes(d, s, dev, want, n * 2), "%s: fill, n %zu", zrt_device_name(d), n);
    zrt_device_free(d, dev, NULL);
    free(want);
}

/* stats start at {start, 0}; returns the device's {sum, flag}. The
 * gradients sit offset bytes into their device buffer (unaligned: no vector loads). */
static inline void run_stats_at(zrt_device *d, zrt_stream *s, const void *grads, zrt_dtype dt, size_t n, size_t offset,
                                float scale, float start, float out[2])
{
    float init[2] = {start, 0};
    size_t bytes = n * zrt_dtype_size(dt);
    uint8_t *dev_g = device_alloc(d, bytes + offset, "grad_stats input");
    CHECK_OK(zrt_device_write(d, dev_g + offset, grads, bytes));
    float *dev_stats = upload(d, init, sizeof init);
    CHECK_OK(zrt_kernel_grad_stats(s, dev_g + offset, dt, n, scale, dev_stats));
    CHECK_OK(zrt_stream_synchronize(s));
    CHECK_OK(zrt_device_read(d, out, dev_stats, 2 * sizeof(float)));
    zrt_device_free(d, dev_g, NULL);
    zrt_device_free(d, dev_stats, NULL);
}

static inline void run_stats(zrt_device *d, zrt_stream *s, const void *grads, zrt_dtype dt, size_t n, float scale,
                             float start, float out[2])
{
    run_stats_at(d, s, grads, dt, n, 0, scale, start, out);
}

static inline bool within_ulps(float a, float b, int ulps)
{
    return fabsf(a - b) <= (float)ulps * fmaxf(fabsf(a), fabsf(b)) * 1.2e-7f;
}

/* The statistics equal kernels/grad_stats.h's twin bitwise (both backends
 * sum in its blocked order), and the index-order sum within 2 ulp; sizes
 * around the vector, block and lane-round boundaries, unaligned starts. */
static inline void check_stats(zrt_device *d, zrt_stream *s)
{
    float golden[3] = {3, 4, -12}, got[2];
    run_stats(d, s, golden, ZRT_DTYPE_F32, 3, 2.0f, 1.0f, got); /* 1 + (9 + 16 + 144) / 4 */
    CHECK_MSG(got[0] == 43.25f && got[1] == 0, "%s: grad_stats golden: %g %g", zrt_device_name(d), got[0], got[1]);
    const size_t lanes = (size_t)ZRT_STATS_BLOCKS * ZRT_STATS_THREADS;
    const size_t sizes[] = {1, 9, 100003, 8 * lanes + 13, 3 * 4 * lanes + 5};
    const zrt_dtype dts[] = {ZRT_DTYPE_BF16, ZRT_DTYPE_F32, ZRT_DTYPE_F16};
    uint8_t *g = malloc(sizes[4] * 4);
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
        for (int with_specials = 0; with_specials < 2; with_specials++) {
            zrt_dtype dt = dts[(k + (size_t)with_specials) % 3];
            size_t n = sizes[k], offset = k % 2 ? zrt_dtype_size(dt) : 0; /* an unaligned start: no vector loads */
            random_fill(g, n, dt, 21 + k, with_specials);
            double ordered = 0;
            int nonfinite = 0, twin_flag = 0;
            for (size_t i = 0; i < n; i++) ordered += zrt_grad_square(ref_load(g, i, dt), 1024.0f, &nonfinite);
            float want = (float)zrt_stats_blocked_sum(g, (int)dt, n, 1024.0f, &twin_flag);
            CHECK(twin_flag == nonfinite);
            run_stats_at(d, s, g, dt, n, offset, 1024.0f, 0, got);
            CHECK_MSG(got[1] == (float)nonfinite, "%s: grad_stats flag %g, want %d", zrt_device_name(d), got[1], nonfinite);
            if (!nonfinite)
                CHECK_MSG(got[0] == want && within_ulps(got[0], (float)ordered, 2),
                          "%s: grad_stats of %zu %s: %.9g, the blocked twin's %.9g, index order's %.9g",
                          zrt_device_name(d), n, zrt_dtype_name(dt), got[0], want, (float)ordered);
        }
    free(g);
}

/* copy_stats: the bytes arrive (in device and in pinned host memory) and the
 * statistics are grad_stats's; sum: in index order, with a stride. */
static inline void check_copy_stats_and_sum(zrt_device *d, zrt_stream *s, size_t n)
{
    uint16_t *g = malloc(n * 2 + 2);
    random_fill(g, n, ZRT_DTYPE_F16, 41, false);
    float want[2], init[2] = {0.5f, 0}, got[2];
    run_stats(d, s, g, ZRT_DTYPE_F16, n, 8.0f, 0.5f, want);
    void *dev_g = upload(d, g, n * 2);
    for (int to_host = 0; to_host < 2; to_host++) {
        void *dst = NULL;
        if (to_host) CHECK_OK(zrt_host_alloc(d, ZRT_MEM_COMM, n * 2 + 2, "copy_stats dst", &dst));
        else dst = device_alloc(d, n * 2 + 2, "copy_stats dst");
        float *dev_stats = upload(d, init, sizeof init);
        CHECK_OK(zrt_kernel_copy_stats(s, dst, dev_g, ZRT_DTYPE_F16, n, 8.0f, dev_stats));
        CHECK_OK(zrt_stream_synchronize(s));
        CHECK_OK(zrt_device_read(d, got, dev_stats, sizeof got));
        uint16_t *back = malloc(n * 2 + 2);
        if (to_host) memcpy(back, dst, n * 2);
        else CHECK_OK(zrt_device_read(d, back, dst, n * 2));
        CHECK_MSG(memcmp(back, g, n * 2) == 0 && got[0] == want[0] && got[1] == want[1],
                  "%s: copy_stats to %s memory, n %zu: bytes or statistics (%g vs %g) differ", zrt_device_name(d),
                  to_host ? "pinned host" : "device", n, got[0], want[0]);
        free(back);
        if (to_host) zrt_host_free(d, dst);
        else zrt_device_free(d, dst, NULL);
        zrt_device_free(d, dev_stats, NULL);
    }
    zrt_device_free(d, dev_g, NULL);
    free(g);
    float values[7] = {1e8f, 1, -1e8f, 1, 3, 0.25f, 7}, total = 0;
    float *dev_v = upload(d, values, sizeof values), *dev_out = device_alloc(d, 4, "sum");
    CHECK_OK(zrt_kernel_sum(s, dev_v, 4, 2, dev_out)); /* 1e8 + -1e8 + 3 + 7: in order, not 3 + 7 + ... */
    CHECK_OK(zrt_stream_synchronize(s));
    CHECK_OK(zrt_device_read(d, &total, dev_out, 4));
    CHECK_MSG(total == ((1e8f + -1e8f) + 3.0f) + 7.0f, "%s: sum %g", zrt_device_name(d), total);
    CHECK_OK(zrt_kernel_sum(s, dev_v, 3, 1, dev_out)); /* (1e8 + 1) + -1e8 = 0 in fp32 */
    CHECK_OK(zrt_stream_synchronize(s));
    CHECK_OK(zrt_device_read(d, &total, dev_out, 4));
    CHECK_MSG(total == 0.0f, "%s: sum (1e8 + 1) - 1e8 gave %g, not fp32's 0", zrt_device_name(d), total);
    zrt_device_free(d, dev_v, NULL);
    zrt_device_free(d, dev_out, NULL);
}

/* One Adam step on the device and on the host reference; stats given. */
static inline void check_adam_case(zrt_device *d, zrt_stream *s, size_t n, zrt_dtype gdt, const zrt_adam_args *a,
                                   const float stats[2])
{
    size_t bytes = n * sizeof(float);
    float *p = malloc(bytes), *m = malloc(bytes), *v = malloc(bytes);
    void *g = malloc(n * zrt_dtype_size(gdt));
    random_fill(p, n, ZRT_DTYPE_F32, 31, false);
    random_fill(m, n, ZRT_DTYPE_F32, 32, false);
    random_fill(g, n, gdt, 34, false);
    for (size_t i = 0; i < n; i++) v[i] = fabsf(zrt_random_normal(33, 0, i)) * 0.01f;
    float *dp = upload(d, p, bytes), *dm = upload(d, m, bytes), *dv = upload(d, v, bytes);
    void *dg = upload(d, g, n * zrt_dtype_size(gdt));
    float *dstats = upload(d, stats, 2 * sizeof(float));
    CHECK_OK(zrt_kernel_adam(s, dp, dm, dv, dg, gdt, n, a, dstats));
    if (!zrt_step_overflow(stats[0], stats[1])) {
        zrt_adam_hyper h = zrt_adam_hyper_for(a->lr, a->beta1, a->beta2, a->eps, a->weight_decay, a->adamw, (long)a->step);
        float clip = zrt_clip_factor(stats[0], a->max_norm);
        for (size_t i = 0; i < n; i++)
            zrt_adam_element(&p[i], &m[i], &v[i], zrt_adam_grad(ref_load(g, i, gdt), a->unscale, clip), &h);
    }
    bool same = same_bytes(d, s, dp, p, bytes) && same_bytes(d, s, dm, m, bytes) && same_bytes(d, s, dv, v, bytes);
    CHECK_MSG(same, "%s: adam (n %zu, grads %s, clip %g, overflow %g) differs from the reference", zrt_device_name(d), n,
              zrt_dtype_name(gdt), a->max_norm, stats[1]);
    void *bufs[] = {dp, dm, dv, dg, dstats};
    for (int k = 0; k < 5; k++) zrt_device_free(d, bufs[k], NULL);
    free(p);
    free(m);
    free(v);
    free(g);
}

static inline void check_adam(zrt_device *d, zrt_stream *s, size_t n)
{
    zrt_adam_args a = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f, .adamw = true,
                       .step = 3, .unscale = 1.0f / 256, .max_norm = 1.0};
    const float clipped[2] = {16, 0}, unclipped[2] = {0.25f, 0}, overflow[2] = {16, 1};
    check_adam_case(d, s, n, ZRT_DTYPE_F32, &a, clipped);
    check_adam_case(d, s, n, ZRT_DTYPE_BF16, &a, unclipped);
    check_adam_case(d, s, n, ZRT_DTYPE_F16, &a, overflow);
    a.adamw = false;
    a.max_norm = 0;
    check_adam_case(d, s, n, ZRT_DTYPE_F32, &a, clipped);
    /* Golden: AdamW step 1, p 1, g 0.5, lr 0.1, wd 0.01: p = 0.999 - 0.1 * 0.05 / 0.5. */
    float one = 1, half = 0.5f, zero[2] = {0, 0}, got = 0;
    zrt_adam_args g = {.lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f, .adamw = true,
                       .step = 1, .unscale = 1, .max_norm = 0};
    float *dp = upload(d, &one, 4), *dm = upload(d, zero, 4), *dv = upload(d, zero, 4), *dg = upload(d, &half, 4),
          *ds = upload(d, zero, 8);
    CHECK_OK(zrt_kernel_adam(s, dp, dm, dv, dg, ZRT_DTYPE_F32, 1, &g, ds));
    CHECK_OK(zrt_stream_synchronize(s));
    CHECK_OK(zrt_device_read(d, &got, dp, 4));
    CHECK_MSG(fabsf(got - 0.899f) < 1e-6f, "%s: AdamW golden step: %.9g, want 0.899", zrt_device_name(d), got);
    float *bufs[] = {dp, dm, dv, dg, ds};
    for (int k = 0; k < 5; k++) zrt_device_free(d, bufs[k], NULL);
}

/* zrt_kernel_adam_multi over n_tensors tensors of the sizes given (cycled),
 * bf16 gradients, the compute copy in param_dtype (sr: stochastically), against
 * the reference: Adam per element, then zrt_store_param -- bitwise. With an
 * overflow nothing may change, the copy included. */
static inline void check_adam_multi_case(zrt_device *d, zrt_stream *s, int n_tensors, zrt_dtype param_dtype,
                                         uint32_t sr, const float stats[2])
{
    static const size_t sizes[] = {1000, 7, 100003, 1};
    zrt_adam_args a = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f, .adamw = true,
                       .step = 5, .unscale = 1.0f / 64, .max_norm = 1.0, .stochastic_seed = sr};
    zrt_adam_hyper h = zrt_adam_hyper_for(a.lr, a.beta1, a.beta2, a.eps, a.weight_decay, a.adamw, (long)a.step);
    zrt_adam_tensor *t = calloc((size_t)n_tensors, sizeof *t);
    float *host[4 * 64];
    void *params_ref[64];
    size_t pes = zrt_dtype_size(param_dtype);
    float *dstats = upload(d, stats, 2 * sizeof(float));
    for (int k = 0; k < n_tensors; k++) {
        size_t n = sizes[k % 4], bytes = n * sizeof(float);
        float *p = host[4 * k] = malloc(bytes), *m = host[4 * k + 1] = malloc(bytes), *v = host[4 * k + 2] = malloc(bytes);
        uint16_t *g = (uint16_t *)(host[4 * k + 3] = malloc(n * 2));
        random_fill(p, n, ZRT_DTYPE_F32, 41 + k, false);
        random_fill(m, n, ZRT_DTYPE_F32, 42 + k, false);
        random_fill(g, n, ZRT_DTYPE_BF16, 44 + k, false);
        for (size_t i = 0; i < n; i++) v[i] = fabsf(zrt_random_normal(43, (uint64_t)k, i)) * 0.01f;
        params_ref[k] = calloc(n, pes);
        memset(params_ref[k], 0x5a, n * pes); /* a sentinel an overflowed step must leave */
        t[k] = (zrt_adam_tensor){upload(d, p, bytes), upload(d, m, bytes), upload(d, v, bytes), upload(d, g, n * 2),
                                 upload(d, params_ref[k], n * pes), n, 1000};
    }
    CHECK_OK(zrt_kernel_adam_multi(s, t, n_tensors, ZRT_DTYPE_BF16, param_dtype, &a, dstats));
    bool same = true;
    long rounded_up = 0, differs_from_nearest = 0;
    for (int k = 0; k < n_tensors; k++) {
        size_t n = t[k].n, bytes = n * sizeof(float);
        float *p = host[4 * k], *m = host[4 * k + 1], *v = host[4 * k + 2];
        for (size_t i = 0; !zrt_step_overflow(stats[0], stats[1]) && i < n; i++) {
            float clip = zrt_clip_factor(stats[0], a.max_norm);
            zrt_adam_element(&p[i], &m[i], &v[i], zrt_adam_grad(ref_load(host[4 * k + 3], i, ZRT_DTYPE_BF16), a.unscale, clip), &h);
            zrt_store_param(params_ref[k], i, (int)param_dtype, p[i], sr, (uint32_t)a.step, (uint32_t)k, 1000 + i);
            if (sr && param_dtype == ZRT_DTYPE_BF16) {
                uint16_t got = ((uint16_t *)params_ref[k])[i], nearest = zrt_f32_to_bf16(p[i]);
                differs_from_nearest += got != nearest;
                rounded_up += zrt_bf16_to_f32(got) > p[i];
            }
        }
        same &= same_bytes(d, s, t[k].master, p, bytes) && same_bytes(d, s, t[k].exp_avg, m, bytes) &&
                same_bytes(d, s, t[k].exp_avg_sq, v, bytes) && same_bytes(d, s, t[k].params, params_ref[k], n * pes);
    }
    CHECK_MSG(same, "%s: adam_multi (%d tensors, copy %s, sr %u, overflow %g) differs from the reference", zrt_device_name(d),
              n_tensors, zrt_dtype_name(param_dtype), sr, stats[1]);
    if (sr && param_dtype == ZRT_DTYPE_BF16 && !zrt_step_overflow(stats[0], stats[1]))
        CHECK_MSG(differs_from_nearest > 1000 && rounded_up > 1000, "%s: stochastic rounding: %ld differ from nearest, "
                  "%ld rounded up", zrt_device_name(d), differs_from_nearest, rounded_up);
    for (int k = 0; k < n_tensors; k++) {
        void *bufs[] = {t[k].master, t[k].exp_avg, t[k].exp_avg_sq, (void *)t[k].grads, t[k].params};
        for (int b = 0; b < 5; b++) zrt_device_free(d, bufs[b], NULL);
        for (int b = 0; b < 4; b++) free(host[4 * k + b]);
        free(params_ref[k]);
    }
    zrt_device_free(d, dstats, NULL);
    free(t);
}

static inline void check_adam_multi(zrt_device *d, zrt_stream *s)
{
    const float clipped[2] = {16, 0}, overflow[2] = {16, 1};
    check_adam_multi_case(d, s, 4, ZRT_DTYPE_BF16, 0, clipped);
    check_adam_multi_case(d, s, 4, ZRT_DTYPE_F16, 0, clipped);
    check_adam_multi_case(d, s, 4, ZRT_DTYPE_F32, 0, clipped);
    check_adam_multi_case(d, s, 4, ZRT_DTYPE_BF16, 0x9e3779b9u, clipped);   /* stochastic rounding */
    check_adam_multi_case(d, s, 4, ZRT_DTYPE_BF16, 0x9e3779b9u, overflow);  /* skipped: nothing written */
    check_adam_multi_case(d, s, ZRT_ADAM_MULTI_MAX + 5, ZRT_DTYPE_BF16, 7, clipped); /* two backend calls */
}

static inline void check_bad_kernel_args(zrt_device *d, zrt_stream *s)
{
    void *buf = device_alloc(d, 64, "args");
    CHECK(zrt_kernel_cast(s, NULL, ZRT_DTYPE_F32, buf, ZRT_DTYPE_F32, 4, false) == ZRT_ERR_INVALID);
    CHECK(zrt_kernel_cast(s, buf, (zrt_dtype)5, buf, ZRT_DTYPE_F32, 4, false) == ZRT_ERR_INVALID);
    CHECK(zrt_kernel_fill(NULL, buf, ZRT_DTYPE_F32, 0, 4) == ZRT_ERR_INVALID);
    CHECK(zrt_kernel_grad_stats(s, buf, ZRT_DTYPE_F32, 4, 0.0f, buf) == ZRT_ERR_INVALID); /* scale must be > 0 */
    zrt_adam_args a = {.step = 0};
    CHECK(zrt_kernel_adam(s, buf, buf, buf, buf, ZRT_DTYPE_F32, 4, &a, buf) == ZRT_ERR_INVALID); /* step from 1 */
    zrt_device_free(d, buf, NULL);
}

/* Everything above on one device. */
static inline void check_all_kernels(zrt_device *d)
{
    zrt_stream *s;
    CHECK_OK(zrt_stream_create(d, "kernels", &s));
    const size_t sizes[] = {0, 1, 7, 1000, 100003};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        check_casts(d, s, sizes[k]);
        check_fill(d, s, sizes[k]);
        if (sizes[k]) check_adam(d, s, sizes[k]);
    }
    check_adam_multi(d, s);
    check_stats(d, s);
    check_copy_stats_and_sum(d, s, 100003);
    check_copy_stats_and_sum(d, s, 5);
    check_bad_kernel_args(d, s);
    zrt_stream_destroy(s);
}

#endif
