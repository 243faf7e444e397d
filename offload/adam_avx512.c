/* adam_avx512.c: the one-pass optimizer, 16 lanes at a time (AVX-512F;
 * built with -mavx512f -ffp-contract=off, run only when cpuid says so).
 *
 * Bit for bit zrt_adam_range_scalar, as adam_avx2.c explains: the same
 * operations in the same order, IEEE vsqrtps/vdivps, no FMA, bf16 rounding
 * in integers and vcvtps2ph for fp16 -- a vector with a NaN goes through
 * the scalar path, whose NaN bits are canonical --, a scalar tail.
 */
#include "offload_internal.h"

#include "cast.h"

#include <immintrin.h>

static inline __m512 load_grads(const void *g, int dtype, size_t i)
{
    if (dtype == ZRT_DTYPE_F32) return _mm512_loadu_ps((const float *)g + i);
    __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)g + i));
    if (dtype == ZRT_DTYPE_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* Round to nearest even (NaN lanes are the caller's: see store_params). */
static inline __m256i to_bf16(__m512 p)
{
    __m512i u = _mm512_castps_si512(p);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb)), 16);
    return _mm512_cvtepi32_epi16(rounded);
}

static inline bool store_params(void *out, int dtype, size_t i, __m512 p)
{
    if (dtype == ZRT_DTYPE_F32) {
        _mm512_storeu_ps((float *)out + i, p);
        return true;
    }
    if (_mm512_cmp_ps_mask(p, p, _CMP_UNORD_Q)) return false; /* NaN: kernels/cast.h's bits, by the scalar path */
    if (dtype == ZRT_DTYPE_BF16) {
        _mm256_storeu_si256((__m256i *)((uint16_t *)out + i), to_bf16(p));
        return true;
    }
    _mm256_storeu_si256((__m256i *)((uint16_t *)out + i), _mm512_cvtps_ph(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    return true;
}

void zrt_adam_range_avx512(const zrt_adam_job *j, size_t begin, size_t end)
{
    const zrt_adam_hyper *h = &j->h;
    const __m512 unscale = _mm512_set1_ps(j->unscale), clip = _mm512_set1_ps(j->clip);
    const __m512 decay = _mm512_set1_ps(1.0f - h->lr * h->weight_decay), wd = _mm512_set1_ps(h->weight_decay);
    const __m512 one_minus_b1 = _mm512_set1_ps(1.0f - h->beta1), b2 = _mm512_set1_ps(h->beta2);
    const __m512 one_minus_b2 = _mm512_set1_ps(1.0f - h->beta2), eps = _mm512_set1_ps(h->eps);
    const __m512 step = _mm512_set1_ps(h->step_size), bc2 = _mm512_set1_ps(h->bias_correction2_sqrt);
    const bool clipping = j->clip < 1.0f;
    size_t i = begin;
    for (; i + 16 <= end; i += 16) {
        __m512 g = _mm512_mul_ps(load_grads(j->grads, j->grad_dtype, i), unscale);
        if (clipping) g = _mm512_mul_ps(g, clip);
        __m512 p = _mm512_loadu_ps(j->master + i), m = _mm512_loadu_ps(j->exp_avg + i);
        __m512 v = _mm512_loadu_ps(j->exp_avg_sq + i);
        if (h->adamw) p = _mm512_mul_ps(p, decay);
        else g = _mm512_add_ps(g, _mm512_mul_ps(wd, p));
        m = _mm512_add_ps(m, _mm512_mul_ps(_mm512_sub_ps(g, m), one_minus_b1));
        v = _mm512_add_ps(_mm512_mul_ps(v, b2), _mm512_mul_ps(_mm512_mul_ps(one_minus_b2, g), g));
        __m512 denom = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(v), bc2), eps);
        p = _mm512_sub_ps(p, _mm512_mul_ps(step, _mm512_div_ps(m, denom)));
        _mm512_storeu_ps(j->master + i, p);
        _mm512_storeu_ps(j->exp_avg + i, m);
        _mm512_storeu_ps(j->exp_avg_sq + i, v);
        if (j->params && !store_params(j->params, j->param_dtype, i, p))
            for (size_t k = i; k < i + 16; k++) zrt_store_f32(j->params, k, j->param_dtype, j->master[k]);
    }
    zrt_adam_range_scalar(j, i, end);
}
