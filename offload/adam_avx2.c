/* adam_avx2.c: the one-pass optimizer, 8 lanes at a time (AVX2 + F16C;
 * built with -mavx2 -mf16c -ffp-contract=off, run only when cpuid says so).
 *
 * Bit for bit zrt_adam_range_scalar: the same operations in the same order
 * (kernels/optim.h), vsqrtps and vdivps are IEEE, and no FMA. bf16 rounds to
 * nearest even with integer arithmetic, as kernels/cast.h does; fp16 uses
 * vcvtps2ph (IEEE round to nearest even, subnormals included). A vector with
 * a NaN, whose bits the scalar code canonicalises, goes through the scalar
 * path; so does the tail (n % 8).
 */
#include "offload_internal.h"

#include "cast.h"

#include <immintrin.h>

static inline __m256 load_grads(const void *g, int dtype, size_t i)
{
    if (dtype == ZRT_DTYPE_F32) return _mm256_loadu_ps((const float *)g + i);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)g + i));
    if (dtype == ZRT_DTYPE_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* fp32 -> bf16 bits, round to nearest even (NaN lanes are the caller's). */
static inline __m128i to_bf16(__m256 p)
{
    __m256i u = _mm256_castps_si256(p);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb)), 16);
    __m256i packed = _mm256_packus_epi32(rounded, rounded); /* per 128-bit lane: r0..3 r0..3 | r4..7 r4..7 */
    return _mm256_castsi256_si128(_mm256_permute4x64_epi64(packed, 0x08));
}

/* Stores 8 updated masters as the compute copy; false when the scalar path
 * must: a NaN, whose bits kernels/cast.h canonicalises. */
static inline bool store_params(void *out, int dtype, size_t i, __m256 p)
{
    if (dtype == ZRT_DTYPE_F32) {
        _mm256_storeu_ps((float *)out + i, p);
        return true;
    }
    if (_mm256_movemask_ps(_mm256_cmp_ps(p, p, _CMP_UNORD_Q))) return false;
    if (dtype == ZRT_DTYPE_BF16) {
        _mm_storeu_si128((__m128i *)((uint16_t *)out + i), to_bf16(p));
        return true;
    }
    _mm_storeu_si128((__m128i *)((uint16_t *)out + i), _mm256_cvtps_ph(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    return true;
}

void zrt_adam_range_avx2(const zrt_adam_job *j, size_t begin, size_t end)
{
    const zrt_adam_hyper *h = &j->h;
    const __m256 unscale = _mm256_set1_ps(j->unscale), clip = _mm256_set1_ps(j->clip);
    const __m256 decay = _mm256_set1_ps(1.0f - h->lr * h->weight_decay), wd = _mm256_set1_ps(h->weight_decay);
    const __m256 one_minus_b1 = _mm256_set1_ps(1.0f - h->beta1), b2 = _mm256_set1_ps(h->beta2);
    const __m256 one_minus_b2 = _mm256_set1_ps(1.0f - h->beta2), eps = _mm256_set1_ps(h->eps);
    const __m256 step = _mm256_set1_ps(h->step_size), bc2 = _mm256_set1_ps(h->bias_correction2_sqrt);
    const bool clipping = j->clip < 1.0f;
    size_t i = begin;
    for (; i + 8 <= end; i += 8) {
        __m256 g = _mm256_mul_ps(load_grads(j->grads, j->grad_dtype, i), unscale);
        if (clipping) g = _mm256_mul_ps(g, clip);
        __m256 p = _mm256_loadu_ps(j->master + i), m = _mm256_loadu_ps(j->exp_avg + i);
        __m256 v = _mm256_loadu_ps(j->exp_avg_sq + i);
        if (h->adamw) p = _mm256_mul_ps(p, decay);
        else g = _mm256_add_ps(g, _mm256_mul_ps(wd, p));
        m = _mm256_add_ps(m, _mm256_mul_ps(_mm256_sub_ps(g, m), one_minus_b1));
        v = _mm256_add_ps(_mm256_mul_ps(v, b2), _mm256_mul_ps(_mm256_mul_ps(one_minus_b2, g), g));
        __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(v), bc2), eps);
        p = _mm256_sub_ps(p, _mm256_mul_ps(step, _mm256_div_ps(m, denom)));
        _mm256_storeu_ps(j->master + i, p);
        _mm256_storeu_ps(j->exp_avg + i, m);
        _mm256_storeu_ps(j->exp_avg_sq + i, v);
        if (j->params && !store_params(j->params, j->param_dtype, i, p))
            for (size_t k = i; k < i + 8; k++) zrt_store_f32(j->params, k, j->param_dtype, j->master[k]);
    }
    zrt_adam_range_scalar(j, i, end);
}
