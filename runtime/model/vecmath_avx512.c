/* vecmath_avx512.c: vecmath.h's AVX-512F path, 16 floats a vector, SLEEF's
 * u10 avx512f tanhf/expf (built with -mavx512f; run only when cpuid says so).
 */
#include "vecmath.h"

#include "gelu.h"

#include <immintrin.h>
#include <sleef.h>

#define VEC __m512
#define LANES 16
#define LOAD _mm512_loadu_ps
#define STORE _mm512_storeu_ps
#define SET1 _mm512_set1_ps
#define ADD _mm512_add_ps
#define SUB _mm512_sub_ps
#define MUL _mm512_mul_ps
#define MAX _mm512_max_ps
#define TANH Sleef_tanhf16_u10avx512f
#define EXP Sleef_expf16_u10avx512f
#define HSUM _mm512_reduce_add_ps
#define HMAX _mm512_reduce_max_ps
#define PATH_NAME "avx512"
#define TABLE zrt_vecmath_avx512

#include "vecmath_simd.h"
