/* test_cuda_cast.c: the cuda device's cast kernel gives the same bits as the
 * CPU reference (kernels/cast.h) for every fp32 bit pattern, to bf16 and to
 * fp16, in 2^24-element slices through device memory and a stream. Skips
 * without a GPU (fails on a machine whose GPU it cannot open: gpu_present.h).
 */
#include "cast.h"
#include "check.h"
#include "gpu_present.h"
#include "zrt.h"
#include "zrt/internal/kernels.h"

#define SLICE (1u << 24)

int main(void)
{
    zrt_device_options o;
    zrt_device_options_init(&o);
    o.kind = ZRT_DEVICE_CUDA;
    o.check = 0;
    zrt_device *device = NULL;
    if (zrt_device_create(&o, &device) != ZRT_OK) no_cuda_device(zrt_last_error());
    zrt_stream *stream = NULL;
    float *in = malloc(SLICE * sizeof *in);
    uint16_t *out = malloc(SLICE * sizeof *out);
    void *dev_in = NULL, *dev_out = NULL;
    CHECK_OK(zrt_stream_create(device, "cast", &stream));
    CHECK_OK(zrt_device_alloc(device, ZRT_MEM_COMM, SLICE * sizeof *in, "in", NULL, &dev_in));
    CHECK_OK(zrt_device_alloc(device, ZRT_MEM_COMM, SLICE * sizeof *out, "out", NULL, &dev_out));
    if (check_failures || !in || !out) return 1;
    long mismatches = 0;
    const zrt_dtype targets[2] = {ZRT_DTYPE_BF16, ZRT_DTYPE_F16};
    for (uint64_t base = 0; base < (1ull << 32) && !check_failures; base += SLICE) {
        for (uint32_t i = 0; i < SLICE; i++) in[i] = zrt_bits_f32((uint32_t)(base + i));
        CHECK_OK(zrt_device_write(device, dev_in, in, SLICE * sizeof *in));
        for (int t = 0; t < 2; t++) {
            CHECK_OK(zrt_kernel_cast(stream, dev_out, targets[t], dev_in, ZRT_DTYPE_F32, SLICE, false));
            CHECK_OK(zrt_stream_synchronize(stream));
            CHECK_OK(zrt_device_read(device, out, dev_out, SLICE * sizeof *out));
            for (uint32_t i = 0; i < SLICE; i++)
                mismatches += out[i] != (t == 0 ? zrt_f32_to_bf16(in[i]) : zrt_f32_to_f16(in[i]));
        }
    }
    CHECK_MSG(mismatches == 0, "%ld elements differ between GPU and CPU", mismatches);
    printf("all 2^32 fp32 patterns to bf16 and fp16 on %s: %ld mismatches\n", zrt_device_name(device), mismatches);
    free(in);
    free(out);
    zrt_device_destroy(device);
    return CHECK_DONE();
}
