/* test_cast.c: the fp32 <-> bf16/fp16 math of kernels/cast.h against golden
 * bit patterns (rounding ties to even, NaN, inf, overflow, subnormals) and
 * round trips. This is the CPU reference the CUDA kernels are checked against.
 */
#include "check.h"
#include "cast.h"

#include <math.h>

typedef struct {
    uint32_t f32;
    uint16_t bf16, f16;
} golden;

static const golden table[] = {
    {0x00000000u, 0x0000, 0x0000}, /* +0 */
    {0x80000000u, 0x8000, 0x8000}, /* -0 */
    {0x3f800000u, 0x3f80, 0x3c00}, /* 1.0 */
    {0xbf800000u, 0xbf80, 0xbc00}, /* -1.0 */
    {0x3f808000u, 0x3f80, 0x3c04}, /* 1 + 2^-8: bf16 tie -> even (down) */
    {0x3f818000u, 0x3f82, 0x3c0c}, /* 1 + 3*2^-8: bf16 tie -> even (up) */
    {0x3f800001u, 0x3f80, 0x3c00}, /* just above 1 */
    {0x3f80ffffu, 0x3f81, 0x3c08}, /* rounds up */
    {0x3f801000u, 0x3f80, 0x3c00}, /* 1 + 2^-11: fp16 tie -> even (down) */
    {0x3f803000u, 0x3f80, 0x3c02}, /* 1 + 3*2^-11: fp16 tie -> even (up) */
    {0x477fe000u, 0x4780, 0x7bff}, /* 65504: fp16 max */
    {0x477ff000u, 0x4780, 0x7c00}, /* 65520: fp16 overflows to inf */
    {0x7f7fffffu, 0x7f80, 0x7c00}, /* fp32 max: bf16 rounds to inf */
    {0x7f800000u, 0x7f80, 0x7c00}, /* +inf */
    {0xff800000u, 0xff80, 0xfc00}, /* -inf */
    {0x38800000u, 0x3880, 0x0400}, /* 2^-14: fp16 min normal */
    {0x33800000u, 0x3380, 0x0001}, /* 2^-24: fp16 min subnormal */
    {0x33000000u, 0x3300, 0x0000}, /* 2^-25: tie between 0 and 2^-24 -> 0 */
    {0x33000001u, 0x3300, 0x0001}, /* just above: rounds up */
    {0x387fc000u, 0x3880, 0x03ff}, /* 1023 * 2^-24: the largest subnormal */
    {0x387fe000u, 0x3880, 0x0400}, /* 1023.875 * 2^-24: rounds up to the min normal */
    {0x00000001u, 0x0000, 0x0000}, /* fp32 subnormal */
};

int main(void)
{
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        float f = zrt_bits_f32(table[i].f32);
        CHECK_MSG(zrt_f32_to_bf16(f) == table[i].bf16, "bf16(0x%08x) = 0x%04x, want 0x%04x", table[i].f32,
                  zrt_f32_to_bf16(f), table[i].bf16);
        CHECK_MSG(zrt_f32_to_f16(f) == table[i].f16, "f16(0x%08x) = 0x%04x, want 0x%04x", table[i].f32,
                  zrt_f32_to_f16(f), table[i].f16);
    }
    /* NaN stays NaN, quiet, both ways. */
    float nan = zrt_bits_f32(0x7f800001u);
    CHECK(isnan(zrt_bf16_to_f32(zrt_f32_to_bf16(nan))));
    CHECK(isnan(zrt_f16_to_f32(zrt_f32_to_f16(nan))));
    /* Every bf16 and fp16 value survives a round trip through fp32 exactly. */
    for (uint32_t h = 0; h < 65536; h++) {
        float b = zrt_bf16_to_f32((uint16_t)h);
        if (!isnan(b)) CHECK_MSG(zrt_f32_to_bf16(b) == h, "bf16 round trip 0x%04x", h);
        float f = zrt_f16_to_f32((uint16_t)h);
        if (!isnan(f)) CHECK_MSG(zrt_f32_to_f16(f) == h, "fp16 round trip 0x%04x", h);
    }
    CHECK(zrt_f16_to_f32(0x0001) == ldexpf(1.0f, -24));
    CHECK(zrt_f16_to_f32(0x7bff) == 65504.0f);
    return CHECK_DONE();
}
