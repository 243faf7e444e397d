/* grad_stats.h: the order in which the gradient statistics (the sum of
 * squares of grads[i] / scale, in double) are summed, and its C twin:
 * the one definition the cpu device runs and the CUDA kernels of
 * kernels/device_kernels.cu follow, so both give the same bits.
 *
 * Why a fixed blocked order: the sum is a whole-GPU reduction (124 M
 * gradients: one block was ~100 ms a step), and its result must not depend
 * on how it is launched -- grid size, SM count, stream -- so that every
 * ZeRO stage and every run gets the same clip factor. The order is a
 * function of n alone:
 *  - the elements form vectors of 16 bytes (4 fp32 or 8 bf16/fp16: one
 *    vector load), vector j = elements [jV, jV + V), the last one short;
 *  - there are ZRT_STATS_BLOCKS x ZRT_STATS_THREADS lanes (logical blocks
 *    of threads, whatever grid runs them); lane l = b T + t sums vectors
 *    l, l + L, l + 2L, ... in that order, each vector's elements in index
 *    order, from 0.0;
 *  - a block's T lane sums combine by a halving tree (v[t] += v[t + h] for
 *    h = T/2 .. 1), giving partial[b]; the partials (0 for blocks with no
 *    vector) combine by the same tree over ZRT_STATS_BLOCKS; the total is
 *    added to stats[0] in fp32 once.
 * The nonfinite flag is an OR: order-free.
 * Check: tests/test_device_kernels.c (the cpu device equals this twin
 * bitwise, and the twin's order is the blocked one, not index order, on an
 * input where they differ); tests/test_cuda_kernels.c (the GPU equals the
 * twin bitwise, launched on grids of 1, 3 and the default).
 */
#ifndef ZRT_KERNELS_GRAD_STATS_H
#define ZRT_KERNELS_GRAD_STATS_H

#include <stddef.h>

#include "cast.h"
#include "optim.h"

#define ZRT_STATS_BLOCKS 1024
#define ZRT_STATS_THREADS 256
#define ZRT_STATS_VECTOR_BYTES 16

/* Elements per vector for a dtype (0 fp32: 4; bf16, fp16: 8). */
ZRT_HD size_t zrt_stats_vector_len(int dtype) { return ZRT_STATS_VECTOR_BYTES / (dtype == 0 ? 4 : 2); }

/* Vectors in n elements. */
ZRT_HD size_t zrt_stats_vectors(size_t n, int dtype)
{
    size_t v = zrt_stats_vector_len(dtype);
    return (n + v - 1) / v;
}

/* Logical blocks that hold at least one vector (the rest contribute 0). */
ZRT_HD size_t zrt_stats_used_blocks(size_t n, int dtype)
{
    size_t blocks = (zrt_stats_vectors(n, dtype) + ZRT_STATS_THREADS - 1) / ZRT_STATS_THREADS;
    return blocks < ZRT_STATS_BLOCKS ? blocks : ZRT_STATS_BLOCKS;
}

/* Vector j's squares in index order, element by element (its short tail too). */
ZRT_HD double zrt_stats_vector(const void *grads, size_t j, int dtype, size_t n, float scale, int *nonfinite)
{
    size_t v = zrt_stats_vector_len(dtype), first = j * v;
    double sum = 0;
    for (size_t e = 0; e < v && first + e < n; e++) sum += zrt_grad_square(zrt_load_f32(grads, first + e, dtype), scale, nonfinite);
    return sum;
}

/* The halving tree over n values (a power of 2), in place; returns v[0]. */
ZRT_HD double zrt_stats_tree(double *v, int n)
{
    for (int half = n / 2; half > 0; half /= 2)
        for (int t = 0; t < half; t++) v[t] += v[t + half];
    return v[0];
}

#ifndef __CUDACC__
/* The C twin: the total in the order above (double, before the fp32 add). */
static inline double zrt_stats_blocked_sum(const void *grads, int dtype, size_t n, float scale, int *nonfinite)
{
    size_t vectors = zrt_stats_vectors(n, dtype), used = zrt_stats_used_blocks(n, dtype);
    size_t lanes_total = (size_t)ZRT_STATS_BLOCKS * ZRT_STATS_THREADS;
    double partial[ZRT_STATS_BLOCKS] = {0}, lanes[ZRT_STATS_THREADS];
    for (size_t b = 0; b < used; b++) {
        for (int t = 0; t < ZRT_STATS_THREADS; t++) lanes[t] = 0;
        for (size_t base = b * ZRT_STATS_THREADS; base < vectors; base += lanes_total)
            for (size_t t = 0; t < ZRT_STATS_THREADS && base + t < vectors; t++)
                lanes[t] += zrt_stats_vector(grads, base + t, dtype, n, scale, nonfinite);
        partial[b] = zrt_stats_tree(lanes, ZRT_STATS_THREADS);
    }
    return zrt_stats_tree(partial, ZRT_STATS_BLOCKS);
}
#endif

#endif
