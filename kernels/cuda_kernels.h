/* cuda_kernels.h: the C entry points of the kernels/ CUDA files (built only with CUDA).
 *
 * Why a C header: libzrt and the tests are C; nvcc compiles the kernels as
 * C++ behind extern "C" launchers. Each launcher returns 0 or a CUDA error
 * code (cudaError_t as int) and never prints; zrt_cuda_error_string() names it.
 * Pointers are device pointers unless the name says host.
 */
#ifndef ZRT_CUDA_KERNELS_H
#define ZRT_CUDA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Number of visible CUDA devices; 0 when there is no GPU or no driver.
 * *why gets the driver's reason in that case (static string). */
int zrt_cuda_device_count(const char **why);
const char *zrt_cuda_error_string(int err);

/* Host-to-host helpers for tests: copy in, convert on the GPU, copy out.
 * (n elements; host buffers.) */
int zrt_cuda_cast_f32_to_bf16_host(const float *host_in, uint16_t *host_out, size_t n);
int zrt_cuda_cast_f32_to_f16_host(const float *host_in, uint16_t *host_out, size_t n);

#ifdef __cplusplus
}
#endif
#endif
