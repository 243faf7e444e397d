/* cuda_kernels.h: the C entry points of kernels/device_kernels.cu, the cuda
 * device backend's engine kernels (built only with CUDA).
 *
 * Why a C header: libzrt is C; nvcc compiles the kernels as C++ behind
 * extern "C" launchers. Each launcher enqueues on `stream` (a cudaStream_t)
 * and returns 0 or the launch's cudaError_t as an int; it never prints or
 * synchronizes. Pointers are device pointers; dtypes are zrt_dtype values
 * (0 fp32, 1 bf16, 2 fp16). The per-element math is kernels/cast.h and
 * kernels/optim.h, the same the cpu backend runs, and the file is compiled
 * without FMA contraction (--fmad=false) so that it gives the same bits.
 */
#ifndef ZRT_CUDA_KERNELS_H
#define ZRT_CUDA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "optim.h"

#ifdef __cplusplus
extern "C" {
#endif

int zrt_cuda_cast(void *stream, void *dst, int dst_dtype, const void *src, int src_dtype, size_t n, int accumulate);
int zrt_cuda_fill(void *stream, void *dst, int dtype, float value, size_t n);
/* kernels/grad_stats.h's blocked order in two launches (the bits of the cpu
 * device's); partial: ZRT_STATS_BLOCKS doubles of device scratch the
 * launches own until they complete (one per stream). grid: 0 for the
 * default, else at most that many blocks -- the result is the same. An
 * offload's copy-down is a cudaMemcpyAsync beside it (device_cuda.c). */
int zrt_cuda_grad_stats(void *stream, const void *grads, int dtype, size_t n, float scale, float *stats,
                        double *partial, unsigned grid);
/* *out = values[0] + values[stride] + ... in order (one thread). */
int zrt_cuda_sum(void *stream, const float *values, size_t n, size_t stride, float *out);
int zrt_cuda_adam(void *stream, float *master, float *exp_avg, float *exp_avg_sq, const void *grads, int dtype,
                  size_t n, zrt_adam_hyper hyper, float unscale, double max_norm, const float *stats);

/* The multi-tensor step: up to ZRT_CUDA_MULTI_MAX tensors in one launch
 * (their pointers travel in the kernel's parameters), each split into
 * blocks of THREADS x 4 elements; the compute copy written in the same pass. */
#define ZRT_CUDA_MULTI_MAX 48
typedef struct {
    float *master, *exp_avg, *exp_avg_sq;
    const void *grads;
    void *params;
    size_t n;
    uint64_t first_index;
} zrt_cuda_tensor;
int zrt_cuda_adam_multi(void *stream, const zrt_cuda_tensor *tensors, int n, int first, int grad_dtype, int param_dtype,
                        zrt_adam_hyper hyper, float unscale, double max_norm, const float *stats, uint32_t sr_seed,
                        uint32_t step);

#ifdef __cplusplus
}
#endif
#endif
