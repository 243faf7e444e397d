/* test_cpu_adam.c: the one-pass CPU optimizer (zrt/offload.h) against the
 * scalar formula of kernels/optim.h written out here, bit for bit, on every
 * path this CPU runs (scalar, AVX2, AVX-512) x gradient dtype x compute-copy
 * dtype (none, fp32, bf16, fp16) x AdamW/Adam x clipped/not, on odd lengths
 * and unaligned starts (the vector loops' tails), on 1 and 3 threads; with
 * values at the edges of fp16 (near 65504, subnormal) and a NaN master (the
 * vector paths' fp16 NaN lanes). A path the CPU lacks is refused by name.
 */
#include "cast.h"
#include "check.h"
#include "optim.h"
#include "zrt.h"
#include "zrt/internal/kernels.h"
#include "zrt/internal/offload.h"

#include <math.h>

#define N_MAX 4133

static float value(int salt, size_t i)
{
    float v = zrt_random_normal(77, (uint64_t)salt, i) * powf(2.0f, (float)((int)(i % 23) - 11));
    if (i % 331 == 7) v = 65500.0f * (i % 2 ? 1 : -1);  /* rounds to fp16 max or inf */
    if (i % 257 == 9) v = 3e-7f;                       /* an fp16 subnormal */
    return v;
}

typedef struct {
    float master[N_MAX], exp_avg[N_MAX], exp_avg_sq[N_MAX];
    uint16_t grads16[N_MAX], params16[N_MAX];
    float grads32[N_MAX], params32[N_MAX];
} state;

static void fill_state(state *s, zrt_dtype gdt)
{
    for (size_t i = 0; i < N_MAX; i++) {
        s->master[i] = value(1, i);
        s->exp_avg[i] = value(2, i) * 0.1f;
        s->exp_avg_sq[i] = fabsf(value(3, i)) * 0.01f;
        float g = value(4, i);
        s->grads32[i] = g;
        s->grads16[i] = gdt == ZRT_DTYPE_BF16 ? zrt_f32_to_bf16(g) : zrt_f32_to_f16(g);
        s->params32[i] = 0;
        s->params16[i] = 0;
    }
    s->master[101] = NAN; /* the copy of a NaN: canonical bits on every path */
}

/* The formula, element by element, straight from kernels/optim.h and cast.h. */
static void reference(state *s, const zrt_adam_args *a, float clip, zrt_dtype gdt, int pdt, size_t off, size_t n)
{
    zrt_adam_hyper h = zrt_adam_hyper_for(a->lr, a->beta1, a->beta2, a->eps, a->weight_decay, a->adamw, (long)a->step);
    for (size_t i = off; i < off + n; i++) {
        float raw = gdt == ZRT_DTYPE_F32 ? s->grads32[i] : gdt == ZRT_DTYPE_BF16 ? zrt_bf16_to_f32(s->grads16[i])
                                                                                 : zrt_f16_to_f32(s->grads16[i]);
        float g = raw * a->unscale;
        if (clip < 1.0f) g = g * clip;
        zrt_adam_element(&s->master[i], &s->exp_avg[i], &s->exp_avg_sq[i], g, &h);
        if (pdt == 0) s->params32[i] = s->master[i];
        if (pdt == 1) s->params16[i] = zrt_f32_to_bf16(s->master[i]);
        if (pdt == 2) s->params16[i] = zrt_f32_to_f16(s->master[i]);
    }
}

static int run_case(zrt_simd simd, zrt_cpu_pool *pool, zrt_dtype gdt, int pdt, bool adamw, float clip, size_t off,
                    size_t n)
{
    static state got, want;
    fill_state(&got, gdt);
    fill_state(&want, gdt);
    zrt_adam_args a = {.lr = 3e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f, .adamw = adamw,
                       .step = 7, .unscale = 1.0f / 1024};
    reference(&want, &a, clip, gdt, pdt, off, n);
    zrt_adam_slice sl = {got.master + off, got.exp_avg + off, got.exp_avg_sq + off,
                         gdt == ZRT_DTYPE_F32 ? (void *)(got.grads32 + off) : (void *)(got.grads16 + off), gdt,
                         pdt < 0 ? NULL : pdt == 0 ? (void *)(got.params32 + off) : (void *)(got.params16 + off),
                         pdt < 0 ? ZRT_DTYPE_F32 : (zrt_dtype)pdt, n};
    CHECK_OK(zrt_cpu_adam(&a, clip, &sl, simd, pool));
    bool same = memcmp(got.master, want.master, sizeof got.master) == 0 &&
                memcmp(got.exp_avg, want.exp_avg, sizeof got.exp_avg) == 0 &&
                memcmp(got.exp_avg_sq, want.exp_avg_sq, sizeof got.exp_avg_sq) == 0 &&
                memcmp(got.params32, want.params32, sizeof got.params32) == 0 &&
                memcmp(got.params16, want.params16, sizeof got.params16) == 0;
    CHECK_MSG(same, "%s, %d threads, grads %s, copy %d, %s, clip %g, [%zu, +%zu): differs from the formula",
              zrt_simd_name(simd), zrt_cpu_pool_threads(pool), zrt_dtype_name(gdt), pdt, adamw ? "adamw" : "adam", clip,
              off, n);
    return same;
}

int main(void)
{
    zrt_cpu_pool *pool1, *pool3;
    CHECK_OK(zrt_cpu_pool_create(1, -1, &pool1));
    CHECK_OK(zrt_cpu_pool_create(3, 0, &pool3));
    const size_t lengths[] = {1, 7, 15, 17, 64, 1000, 4099, 4131};
    int cases = 0;
    for (int simd = ZRT_SIMD_SCALAR; simd <= ZRT_SIMD_AVX512; simd++) {
        if (!zrt_simd_supported((zrt_simd)simd)) {
            zrt_adam_args a = {.step = 1};
            zrt_adam_slice sl = {0};
            CHECK(zrt_cpu_adam(&a, 1, &sl, (zrt_simd)simd, NULL) == ZRT_ERR_UNSUPPORTED);
            printf("%s: not on this CPU (refused by name: %s)\n", zrt_simd_name((zrt_simd)simd), zrt_last_error());
            continue;
        }
        for (int gdt = 0; gdt < 3; gdt++)
            for (int pdt = -1; pdt < 3; pdt++)
                for (int variant = 0; variant < 4; variant++)
                    for (size_t k = 0; k < sizeof lengths / sizeof lengths[0]; k++) {
                        size_t off = k % 2 ? 1 : 0; /* unaligned starts too */
                        zrt_cpu_pool *pool = variant % 2 ? pool3 : pool1;
                        cases += run_case((zrt_simd)simd, pool, (zrt_dtype)gdt, pdt, variant < 2,
                                          variant & 2 ? 0.37f : 1.0f, off, lengths[k]);
                    }
        printf("%s: bitwise equal to the formula\n", zrt_simd_name((zrt_simd)simd));
    }
    printf("%d cases; the best path here: %s\n", cases, zrt_simd_name(zrt_simd_best()));
    CHECK(zrt_cpu_threads_default(5, 2) == 5 && zrt_cpu_threads_default(0, 1 << 20) == 1);
    unsetenv("LOCAL_WORLD_SIZE");
    CHECK(zrt_local_ranks(8, 2) == 4 && zrt_local_ranks(1, 4) == 1 && zrt_local_ranks(6, 0) == 6);
    setenv("LOCAL_WORLD_SIZE", "3", 1); /* the launcher's word wins */
    CHECK(zrt_local_ranks(8, 2) == 3);
    setenv("LOCAL_WORLD_SIZE", "0", 1);
    CHECK(zrt_local_ranks(8, 2) == 4);
    unsetenv("LOCAL_WORLD_SIZE");
    zrt_cpu_pool_destroy(pool1);
    zrt_cpu_pool_destroy(pool3);
    return CHECK_DONE();
}
