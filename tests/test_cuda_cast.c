/* test_cuda_cast.c: the CUDA cast kernels give the same bits as the CPU
 * reference (kernels/cast.h) for every fp32 bit pattern, in 2^24-element
 * slices. Skips (exit 77) when no GPU is visible.
 */
#include "check.h"
#include "cast.h"
#include "cuda_kernels.h"

#define SLICE (1u << 24)

int main(void)
{
    const char *why = "unknown";
    if (zrt_cuda_device_count(&why) == 0) SKIP("no CUDA device: %s", why);
    float *in = malloc(SLICE * sizeof *in);
    uint16_t *bf16 = malloc(SLICE * sizeof *bf16);
    uint16_t *f16 = malloc(SLICE * sizeof *f16);
    CHECK(in && bf16 && f16);
    if (!in || !bf16 || !f16) return 1;
    long mismatches = 0;
    for (uint64_t base = 0; base < (1ull << 32); base += SLICE) {
        for (uint32_t i = 0; i < SLICE; i++) in[i] = zrt_bits_f32((uint32_t)(base + i));
        int err = zrt_cuda_cast_f32_to_bf16_host(in, bf16, SLICE);
        CHECK_MSG(err == 0, "bf16 kernel: %s", zrt_cuda_error_string(err));
        err = zrt_cuda_cast_f32_to_f16_host(in, f16, SLICE);
        CHECK_MSG(err == 0, "fp16 kernel: %s", zrt_cuda_error_string(err));
        if (err) break;
        for (uint32_t i = 0; i < SLICE; i++)
            mismatches += (bf16[i] != zrt_f32_to_bf16(in[i])) + (f16[i] != zrt_f32_to_f16(in[i]));
    }
    CHECK_MSG(mismatches == 0, "%ld elements differ between GPU and CPU", mismatches);
    printf("all 2^32 fp32 patterns: %ld mismatches\n", mismatches);
    free(in);
    free(bf16);
    free(f16);
    return CHECK_DONE();
}
