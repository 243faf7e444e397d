/* vecmath_avx2.c: vecmath.h's AVX2 path, 8 floats a vector, SLEEF's u10
 * avx2 tanhf/expf (which use FMA: built with -mavx2 -mfma, run only when
 * cpuid has both).
 */
#include "vecmath.h"

#include "gelu.h"

#include <immintrin.h>
#include <sleef.h>

static inline float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

static inline float hmax(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
}

#define VEC __m256
#define LANES 8
#define LOAD _mm256_loadu_ps
#define STORE _mm256_storeu_ps
#define SET1 _mm256_set1_ps
#define ADD _mm256_add_ps
#define SUB _mm256_sub_ps
#define MUL _mm256_mul_ps
#define MAX _mm256_max_ps
#define TANH Sleef_tanhf8_u10avx2
#define EXP Sleef_expf8_u10avx2
#define HSUM hsum
#define HMAX hmax
#define PATH_NAME "avx2"
#define TABLE zrt_vecmath_avx2

#include "vecmath_simd.h"
