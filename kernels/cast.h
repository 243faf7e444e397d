/* cast.h: per-element fp32 <-> bf16 / fp16 conversions, shared by the CPU
 * backend and the CUDA kernels (compiled __host__ __device__ under nvcc).
 *
 * Why bit manipulation, not intrinsics: the CPU and the GPU must give the same
 * bits. fp32 -> bf16 rounds to nearest, ties to even; NaN stays NaN (quiet),
 * +-inf stays inf, values past bf16's range round to inf as IEEE says.
 * fp32 -> fp16 does the same for binary16, with subnormals.
 * Check: tests/test_cast.c (CPU, golden bits), tests/test_cuda_cast.c (GPU
 * against this CPU reference, all 2^32 fp32 patterns in slices).
 */
#ifndef ZRT_KERNELS_CAST_H
#define ZRT_KERNELS_CAST_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "hd.h"

ZRT_HD uint32_t zrt_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

ZRT_HD float zrt_bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* fp32 -> bf16 bits, round to nearest even. */
ZRT_HD uint16_t zrt_f32_to_bf16(float f)
{
    uint32_t u = zrt_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u); /* quiet NaN */
    uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)((u + rounding) >> 16);
}

ZRT_HD float zrt_bf16_to_f32(uint16_t h) { return zrt_bits_f32((uint32_t)h << 16); }

/* fp32 -> fp16 bits, round to nearest even, with subnormals and overflow to inf. */
ZRT_HD uint16_t zrt_f32_to_f16(float f)
{
    uint32_t u = zrt_f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t abs = u & 0x7fffffffu;
    if (abs > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);           /* NaN */
    if (abs >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);          /* >= 65520: inf */
    if (abs < 0x38800000u) {                                            /* below 2^-14: subnormal */
        if (abs < 0x33000000u) return sign;                             /* below 2^-25: zero */
        uint32_t exp = abs >> 23;
        uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126u - exp;                                    /* 14..24 */
        uint32_t half = mant >> shift;
        uint32_t rest = mant & ((1u << shift) - 1u);
        uint32_t halfway = 1u << (shift - 1u);
        if (rest > halfway || (rest == halfway && (half & 1u))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t rounded = abs + 0xfffu + ((abs >> 13) & 1u);
    return (uint16_t)(sign | ((rounded - 0x38000000u) >> 13));
}

ZRT_HD float zrt_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0x1fu) return zrt_bits_f32(sign | 0x7f800000u | (mant << 13)); /* inf, NaN */
    if (exp == 0) {
        if (mant == 0) return zrt_bits_f32(sign);
        /* subnormal: mant * 2^-24 */
        float v = (float)mant * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    return zrt_bits_f32(sign | ((exp + 112u) << 23) | (mant << 13));
}

/* A well-mixed 32-bit hash of three words (the bf16 stochastic rounding's
 * random bits: the same on every backend, so runs stay reproducible). */
ZRT_HD uint32_t zrt_hash3(uint32_t a, uint32_t b, uint32_t c)
{
    uint32_t h = a * 0x9e3779b1u ^ (b + 0x85ebca77u) * 0xc2b2ae3du ^ (c + 0x27d4eb2fu) * 0x165667b1u;
    h ^= h >> 15;
    h *= 0x2c1b3c6du;
    h ^= h >> 12;
    h *= 0x297a2d39u;
    return h ^ (h >> 15);
}

/* fp32 -> bf16 rounded stochastically: up with probability equal to the
 * dropped fraction (random in the low 16 bits); NaN and inf as in
 * zrt_f32_to_bf16. Unbiased on average, as llm.c rounds its bf16 weights. */
ZRT_HD uint16_t zrt_f32_to_bf16_stochastic(float f, uint32_t random)
{
    uint32_t bits = zrt_f32_bits(f);
    if ((bits & 0x7fffffffu) >= 0x7f800000u) return zrt_f32_to_bf16(f);
    uint32_t up = bits + (random & 0xffffu);
    if ((up & 0x7fffffffu) >= 0x7f800000u) return zrt_f32_to_bf16(f); /* would round past the largest finite */
    return (uint16_t)(up >> 16);
}

/* Element i of a buffer of `dtype` -- zrt_dtype's values: 0 fp32, 1 bf16,
 * 2 fp16 -- as fp32; and v stored there, rounded to nearest even. Every
 * kernel loop reads and writes mixed-precision buffers through these. */
ZRT_HD float zrt_load_f32(const void *p, size_t i, int dtype)
{
    if (dtype == 0) return ((const float *)p)[i];
    uint16_t h = ((const uint16_t *)p)[i];
    return dtype == 1 ? zrt_bf16_to_f32(h) : zrt_f16_to_f32(h);
}

ZRT_HD void zrt_store_f32(void *p, size_t i, int dtype, float v)
{
    if (dtype == 0) ((float *)p)[i] = v;
    else ((uint16_t *)p)[i] = dtype == 1 ? zrt_f32_to_bf16(v) : zrt_f32_to_f16(v);
}

#endif
