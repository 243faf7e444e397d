/* cast.cu: fp32 -> bf16 / fp16 conversion kernels over flat buffers.
 *
 * Why: the engine keeps fp32 masters and computes in bf16/fp16; the per-element
 * math is kernels/cast.h, shared with the CPU backend, so both give the same
 * bits. Check: tests/test_cuda_cast (skips without a GPU).
 */
#include "cast.h"
#include "cuda_kernels.h"

#include <cuda_runtime.h>

template <uint16_t (*convert)(float)>
__global__ void cast_kernel(const float *in, uint16_t *out, size_t n)
{
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        out[i] = convert(in[i]);
}

__device__ uint16_t to_bf16(float f) { return zrt_f32_to_bf16(f); }
__device__ uint16_t to_f16(float f) { return zrt_f32_to_f16(f); }

template <uint16_t (*convert)(float)>
static int cast_host(const float *host_in, uint16_t *host_out, size_t n)
{
    float *in = nullptr;
    uint16_t *out = nullptr;
    cudaError_t err = cudaMalloc(&in, n * sizeof *in);
    if (err == cudaSuccess) err = cudaMalloc(&out, n * sizeof *out);
    if (err == cudaSuccess) err = cudaMemcpy(in, host_in, n * sizeof *in, cudaMemcpyHostToDevice);
    if (err == cudaSuccess) {
        unsigned blocks = (unsigned)((n + 255) / 256 > 65535 ? 65535 : (n + 255) / 256);
        cast_kernel<convert><<<blocks ? blocks : 1, 256>>>(in, out, n);
        err = cudaGetLastError();
    }
    if (err == cudaSuccess) err = cudaMemcpy(host_out, out, n * sizeof *out, cudaMemcpyDeviceToHost);
    cudaFree(in);
    cudaFree(out);
    return (int)err;
}

extern "C" int zrt_cuda_cast_f32_to_bf16_host(const float *host_in, uint16_t *host_out, size_t n)
{
    return cast_host<to_bf16>(host_in, host_out, n);
}

extern "C" int zrt_cuda_cast_f32_to_f16_host(const float *host_in, uint16_t *host_out, size_t n)
{
    return cast_host<to_f16>(host_in, host_out, n);
}

extern "C" int zrt_cuda_device_count(const char **why)
{
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
        if (why) *why = cudaGetErrorString(err);
        return 0;
    }
    if (count == 0 && why) *why = "the driver reports no CUDA device";
    return count;
}

extern "C" const char *zrt_cuda_error_string(int err) { return cudaGetErrorString((cudaError_t)err); }
