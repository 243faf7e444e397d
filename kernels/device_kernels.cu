/* device_kernels.cu: the cuda device backend's engine kernels: casts between
 * fp32/bf16/fp16 (with accumulate), fill, gradient statistics (scaled sum of
 * squares and a non-finite flag into a device slot) and Adam/AdamW.
 *
 * Why these shapes: each is a grid-stride loop over the per-element math of
 * kernels/cast.h and kernels/optim.h -- the code the cpu backend runs and CI
 * tests -- so the GPU computes the same formula; the build compiles this file
 * with --fmad=false, so casts, Adam and the statistics give the cpu
 * backend's bits. The statistics are a two-pass reduction over the whole
 * GPU in the blocked order kernels/grad_stats.h defines (16-byte loads; the
 * same bits whatever the grid); Adam reads the reduced statistics from device memory,
 * so skipping an overflowed step and clipping need no host round trip.
 * The multi-tensor Adam carries up to 48 tensors' pointers in its launch
 * parameters (under the 4 KiB limit), so one launch updates every unit's
 * shard and writes its compute copy in the same pass (apex's multi_tensor
 * idea); a block finds its tensor in the table of chunk starts.
 * Check: tests/test_cuda_device.c (every kernel against the cpu backend),
 * test_cuda_kernels.c (the statistics on grids of 1, 3 and the default).
 */
#include "cast.h"
#include "cuda_kernels.h"
#include "grad_stats.h"
#include "optim.h"

#include <cuda_runtime.h>

#define THREADS 256

__device__ __forceinline__ float load(const void *p, size_t i, int dt) { return zrt_load_f32(p, i, dt); }
__device__ __forceinline__ void store(void *p, size_t i, int dt, float v) { zrt_store_f32(p, i, dt, v); }

static unsigned blocks_for(size_t n)
{
    size_t blocks = (n + THREADS - 1) / THREADS;
    return (unsigned)(blocks > 65535 ? 65535 : blocks ? blocks : 1);
}

__global__ void cast_kernel(void *dst, int dt, const void *src, int st, size_t n, int accumulate)
{
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        float v = load(src, i, st);
        if (accumulate) v = v + load(dst, i, dt);
        store(dst, i, dt, v);
    }
}

__global__ void fill_kernel(void *dst, int dt, float value, size_t n)
{
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) store(dst, i, dt, value);
}

/* ---- gradient statistics: kernels/grad_stats.h's blocked order, two passes ---------------------------------- */

/* The halving tree over a block's ZRT_STATS_THREADS values (or pass 2's
 * ZRT_STATS_BLOCKS): shared memory down to 32, then shuffles -- lane t
 * adds lane t + h at each step, the tree's pairs exactly. Valid in thread 0. */
template <int N>
__device__ double block_tree(double v, double *shared)
{
    shared[threadIdx.x] = v;
    __syncthreads();
    for (int half = N / 2; half >= 32; half /= 2) {
        if ((int)threadIdx.x < half) shared[threadIdx.x] += shared[threadIdx.x + half];
        __syncthreads();
    }
    v = shared[threadIdx.x];
    for (int half = 16; half > 0; half /= 2) v += __shfl_down_sync(0xffffffffu, v, half);
    __syncthreads(); /* shared is free again */
    return v;
}

/* Vector j's squares: one 16-byte load when grads is aligned and the vector
 * is whole, else element by element -- the same elements in the same order. */
__device__ __forceinline__ double vector_squares(const void *grads, bool aligned, size_t j, int dt, size_t n,
                                                 float scale, int *bad)
{
    size_t v = zrt_stats_vector_len(dt);
    if (!aligned || (j + 1) * v > n) return zrt_stats_vector(grads, j, dt, n, scale, bad);
    uint4 raw = __ldg((const uint4 *)grads + j);
    double sum = 0;
    for (size_t e = 0; e < v; e++) sum += zrt_grad_square(zrt_load_f32(&raw, e, dt), scale, bad);
    return sum;
}

/* Pass 1: logical block b (grid-stride over blocks: any grid gives the same
 * partials) sums its lanes' vectors and writes partial[b]; a non-finite
 * element sets stats[1] (every writer writes 1). */
__global__ void stats_partial_kernel(const void *grads, int dt, size_t n, float scale, float *stats, double *partial)
{
    __shared__ double shared[ZRT_STATS_THREADS];
    size_t vectors = zrt_stats_vectors(n, dt), used = zrt_stats_used_blocks(n, dt);
    size_t lanes_total = (size_t)ZRT_STATS_BLOCKS * ZRT_STATS_THREADS;
    bool aligned = ((uintptr_t)grads % ZRT_STATS_VECTOR_BYTES) == 0;
    int bad = 0;
    for (size_t b = blockIdx.x; b < used; b += gridDim.x) {
        double sum = 0;
        for (size_t j = b * ZRT_STATS_THREADS + threadIdx.x; j < vectors; j += lanes_total)
            sum += vector_squares(grads, aligned, j, dt, n, scale, &bad);
        sum = block_tree<ZRT_STATS_THREADS>(sum, shared);
        if (threadIdx.x == 0) partial[b] = sum;
    }
    if (bad) stats[1] = 1.0f;
}

/* Pass 2: one block, the tree over every logical block's partial (0 past used). */
__global__ void stats_total_kernel(size_t used, const double *partial, float *stats)
{
    __shared__ double shared[ZRT_STATS_BLOCKS];
    double v = threadIdx.x < used ? partial[threadIdx.x] : 0.0;
    v = block_tree<ZRT_STATS_BLOCKS>(v, shared);
    if (threadIdx.x == 0) stats[0] += (float)v;
}

__global__ void sum_kernel(const float *values, size_t n, size_t stride, float *out)
{
    float total = 0;
    for (size_t i = 0; i < n; i++) total += values[i * stride]; /* in order, one thread: n is small */
    *out = total;
}

__global__ void adam_kernel(float *p, float *m, float *v, const void *grads, int dt, size_t n, zrt_adam_hyper h,
                            float unscale, double max_norm, const float *stats)
{
    float sum_squares = stats[0];
    if (zrt_step_overflow(sum_squares, stats[1])) return;
    float clip = zrt_clip_factor(sum_squares, max_norm);
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        zrt_adam_element(&p[i], &m[i], &v[i], zrt_adam_grad(load(grads, i, dt), unscale, clip), &h);
}

#define MULTI_CHUNK (THREADS * 4)

struct multi_table {
    zrt_cuda_tensor t[ZRT_CUDA_MULTI_MAX];
    unsigned chunk_start[ZRT_CUDA_MULTI_MAX + 1]; /* tensor k's chunks: [chunk_start[k], chunk_start[k + 1]) */
    int n, first;
};

__global__ void adam_multi_kernel(const multi_table table, int gdt, int pdt, zrt_adam_hyper h, float unscale,
                                  double max_norm, const float *stats, uint32_t sr_seed, uint32_t step)
{
    float sum_squares = stats[0];
    if (zrt_step_overflow(sum_squares, stats[1])) return;
    float clip = zrt_clip_factor(sum_squares, max_norm);
    int k = 0;
    while (k + 1 < table.n && table.chunk_start[k + 1] <= blockIdx.x) k++;
    const zrt_cuda_tensor &t = table.t[k];
    size_t begin = (size_t)(blockIdx.x - table.chunk_start[k]) * MULTI_CHUNK;
    for (size_t i = begin + threadIdx.x; i < begin + MULTI_CHUNK && i < t.n; i += blockDim.x) {
        zrt_adam_element(&t.master[i], &t.exp_avg[i], &t.exp_avg_sq[i], zrt_adam_grad(load(t.grads, i, gdt), unscale, clip), &h);
        zrt_store_param(t.params, i, pdt, t.master[i], sr_seed, step, (uint32_t)(table.first + k), t.first_index + i);
    }
}

extern "C" int zrt_cuda_adam_multi(void *stream, const zrt_cuda_tensor *tensors, int n, int first, int grad_dtype,
                                   int param_dtype, zrt_adam_hyper hyper, float unscale, double max_norm,
                                   const float *stats, uint32_t sr_seed, uint32_t step)
{
    if (n < 1 || n > ZRT_CUDA_MULTI_MAX) return n == 0 ? 0 : (int)cudaErrorInvalidValue;
    multi_table table;
    table.n = n;
    table.first = first;
    table.chunk_start[0] = 0;
    for (int k = 0; k < n; k++) {
        table.t[k] = tensors[k];
        table.chunk_start[k + 1] = table.chunk_start[k] + (unsigned)((tensors[k].n + MULTI_CHUNK - 1) / MULTI_CHUNK);
    }
    if (table.chunk_start[n] == 0) return 0;
    adam_multi_kernel<<<table.chunk_start[n], THREADS, 0, (cudaStream_t)stream>>>(table, grad_dtype, param_dtype, hyper,
                                                                                  unscale, max_norm, stats, sr_seed, step);
    return (int)cudaGetLastError();
}

extern "C" int zrt_cuda_cast(void *stream, void *dst, int dst_dtype, const void *src, int src_dtype, size_t n,
                             int accumulate)
{
    cast_kernel<<<blocks_for(n), THREADS, 0, (cudaStream_t)stream>>>(dst, dst_dtype, src, src_dtype, n, accumulate);
    return (int)cudaGetLastError();
}

extern "C" int zrt_cuda_fill(void *stream, void *dst, int dtype, float value, size_t n)
{
    fill_kernel<<<blocks_for(n), THREADS, 0, (cudaStream_t)stream>>>(dst, dtype, value, n);
    return (int)cudaGetLastError();
}

extern "C" int zrt_cuda_grad_stats(void *stream, const void *grads, int dtype, size_t n, float scale, float *stats,
                                   double *partial, unsigned grid)
{
    size_t used = zrt_stats_used_blocks(n, dtype);
    if (used == 0) return 0;
    unsigned blocks = grid && grid < used ? grid : (unsigned)used;
    cudaStream_t s = (cudaStream_t)stream;
    stats_partial_kernel<<<blocks, ZRT_STATS_THREADS, 0, s>>>(grads, dtype, n, scale, stats, partial);
    stats_total_kernel<<<1, ZRT_STATS_BLOCKS, 0, s>>>(used, partial, stats);
    return (int)cudaGetLastError();
}

extern "C" int zrt_cuda_sum(void *stream, const float *values, size_t n, size_t stride, float *out)
{
    sum_kernel<<<1, 1, 0, (cudaStream_t)stream>>>(values, n, stride, out);
    return (int)cudaGetLastError();
}

extern "C" int zrt_cuda_adam(void *stream, float *master, float *exp_avg, float *exp_avg_sq, const void *grads,
                             int dtype, size_t n, zrt_adam_hyper hyper, float unscale, double max_norm,
                             const float *stats)
{
    adam_kernel<<<blocks_for(n), THREADS, 0, (cudaStream_t)stream>>>(master, exp_avg, exp_avg_sq, grads, dtype, n,
                                                                      hyper, unscale, max_norm, stats);
    return (int)cudaGetLastError();
}
