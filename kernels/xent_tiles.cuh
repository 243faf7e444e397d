/* xent_tiles.cuh: the device code of the fused cross-entropy
 * (model_kernels.h's zrt_cuda_cross_entropy; model_kernels.cu launches it),
 * written in the subset of CUDA C++ that C11 also compiles (tiles.cuh), so
 * that tests/test_xent_sim.c runs this very kernel on the CPU under
 * tests/cuda_sim.h; test_cuda_kernels runs it on a GPU.
 *
 * A block of XTHREADS per row, in place and without scratch in global
 * memory. Pass 1, online softmax: each thread keeps the max m of its
 * strided chunk of the row and the sum s of exp(z - m), rescaling s when m
 * grows; a tree over the block's (m, s) pairs in shared memory joins them
 * (a fixed order: the same bits every run). Pass 2: each thread turns its
 * own logits into the gradient, reading each element before writing it,
 * and the target's thread writes the row's loss. GPT's form in fp32 (exp
 * and sum; -log in double), the MLP's in double, as the cpu ops. The logits
 * are of the launch's `act` type (kernels/cast.h: read as fp32, the
 * gradient stored rounded to nearest even); losses double.
 * Invariant: XTHREADS a power of two (the tree halves it).
 */
#ifndef ZRT_KERNELS_XENT_TILES_CUH
#define ZRT_KERNELS_XENT_TILES_CUH

#include "cast.h"
#include "tiles.cuh"
#include "xent.h"

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#define XTHREADS 256

/* Shared memory a block needs: XTHREADS (m, s) pairs of the wider form (double). */
static inline size_t xent_shared_bytes(void) { return 2 * XTHREADS * sizeof(double); }

/* How many of the N targets are not ZRT_IGNORE_INDEX: each thread's count,
 * then the tree (exact: integers in double). Every block counts them (N << V). */
__device__ static int xent_count_targets(const int32_t *targets, int N, double *part)
{
    double count = 0;
    for (int i = tid(); i < N; i += nthreads()) count += targets[i] != ZRT_IGNORE_INDEX;
    part[tid()] = count;
    __syncthreads();
    for (int half = nthreads() / 2; half > 0; half /= 2) {
        if (tid() < half) part[tid()] += part[tid() + half];
        __syncthreads();
    }
    int n = (int)part[0];
    __syncthreads(); /* part is the next reduction's */
    return n;
}

/* The row's max and sum of exp(z - max), online over each thread's chunk,
 * then the tree over m[], s[] (XTHREADS each); every thread gets the
 * block's pair. One definition per precision (C has no templates). */
#define XENT_MAXSUM(T, EXP)                                                                                          \
    __device__ static void xent_maxsum_##T(const void *z, size_t base, int act, int V, T *m, T *s, T *max, T *sum)   \
    {                                                                                                                \
        T am = (T)-FLT_MAX, as = 0;                                                                                  \
        for (int v = tid(); v < V; v += nthreads()) {                                                                \
            T x = (T)zrt_load_f32(z, base + (size_t)v, act);                                                         \
            if (x > am) {                                                                                            \
                as = as * EXP(am - x) + (T)1;                                                                        \
                am = x;                                                                                              \
            } else {                                                                                                 \
                as += EXP(x - am);                                                                                   \
            }                                                                                                        \
        }                                                                                                            \
        m[tid()] = am, s[tid()] = as;                                                                                \
        __syncthreads();                                                                                             \
        for (int half = nthreads() / 2; half > 0; half /= 2) {                                                       \
            if (tid() < half) {                                                                                      \
                T a = m[tid()], b = m[tid() + half], top = a > b ? a : b;                                            \
                s[tid()] = s[tid()] * EXP(a - top) + s[tid() + half] * EXP(b - top);                                 \
                m[tid()] = top;                                                                                      \
            }                                                                                                        \
            __syncthreads();                                                                                         \
        }                                                                                                            \
        *max = m[0], *sum = s[0];                                                                                    \
        __syncthreads();                                                                                             \
    }
XENT_MAXSUM(float, expf)
XENT_MAXSUM(double, exp)
#undef XENT_MAXSUM

/* A row of logits: elements base .. base + V - 1 of z, of type act. */
typedef struct {
    void *z;
    size_t base;
    int act;
} xent_row;

/* gpt.c's form: fp32 exp and sum; -log p[target] in double. */
__device__ static void xent_row_float(xent_row r, double *loss, int target, int n, int V, float scale, float *shared)
{
    float max, sum;
    xent_maxsum_float(r.z, r.base, r.act, V, shared, shared + XTHREADS, &max, &sum);
    float inv = 1.0f / sum, dscale = scale / (float)n;
    for (int v = tid(); v < V; v += nthreads()) {
        float p = expf(zrt_load_f32(r.z, r.base + (size_t)v, r.act) - max) * inv;
        if (v == target) *loss = -log((double)p);
        zrt_store_f32(r.z, r.base + (size_t)v, r.act, v == target ? (p - 1.0f) * dscale : p * dscale);
    }
}

/* mlp.c's form: log-sum-exp in double. */
__device__ static void xent_row_double(xent_row r, double *loss, int target, int n, int V, float scale, double *shared)
{
    double max, sum;
    xent_maxsum_double(r.z, r.base, r.act, V, shared, shared + XTHREADS, &max, &sum);
    double log_sum = log(sum) + max;
    for (int v = tid(); v < V; v += nthreads()) {
        float z = zrt_load_f32(r.z, r.base + (size_t)v, r.act);
        if (v == target) *loss = log_sum - z;
        float value = (float)(exp(z - log_sum) * scale / n);
        zrt_store_f32(r.z, r.base + (size_t)v, r.act, v == target ? value - scale / (float)n : value);
    }
}

/* A block per row (grid N x 1, XTHREADS threads, xent_shared_bytes()). An
 * ignored row: gradient 0, loss 0. A target outside 0..V-1: *bad = 1, loss
 * 0, the row left as it was (the stream fails with it). */
__global__ static void xent_kernel(int act, void *logits, double *losses, const int32_t *targets, int N, int V,
                                   float scale, int double_math, int32_t *bad)
{
    ZRT_SHARED_FLOATS(xent_shared);
    double *part = (double *)(void *)xent_shared;
    int row = bx(), target = targets[row], n = xent_count_targets(targets, N, part);
    xent_row z = {logits, (size_t)row * V, act};
    if (target == ZRT_IGNORE_INDEX) {
        for (int v = tid(); v < V; v += nthreads()) zrt_store_f32(logits, z.base + (size_t)v, act, 0.0f);
        if (tid() == 0) losses[row] = 0.0;
    } else if (target < 0 || target >= V) {
        if (tid() == 0) *bad = 1, losses[row] = 0.0;
    } else if (double_math) {
        xent_row_double(z, &losses[row], target, n, V, scale, part);
    } else {
        xent_row_float(z, &losses[row], target, n, V, scale, xent_shared);
    }
}

#endif
