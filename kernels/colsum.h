/* colsum.h: the column sums of the models' parameter gradients -- the bias
 * gradient (db += sum of dout's rows), layernorm's dw and db, rmsnorm's dw
 * -- in one two-stage order, and its C twin. The CUDA kernels
 * (model_kernels.cu) follow it; tests/model_refs.h's ref_*_blocked run the
 * twin, so CI (test_model_emulated) runs this order through the cuda ops
 * table and test_cuda_kernels holds the GPU to it bitwise.
 *
 * Why two stages: one thread per column over all rows (the old kernels)
 * leaves most of the GPU idle -- 768 columns are 6 blocks -- and walks N
 * rows serially. The order, a function of N and C alone (not the grid):
 *  - rows form chunks of ZRT_COLSUM_ROWS; in chunk k, row lane y
 *    (0..ZRT_COLSUM_LANES-1) sums rows kR + y, kR + y + LANES, ... in order
 *    from 0.0f; the lanes combine by a halving tree (v[y] += v[y + h]) into
 *    partial[k][c] (stage 1: a 32 x LANES block per 32 columns and chunk);
 *  - out[c] = ((out[c] + partial[0][c]) + partial[1][c]) + ... in chunk
 *    order (stage 2: a thread per column).
 * It differs from the CPU ops' row order within fp32 rounding (the sums of
 * a column are the same terms); test_cuda_kernels bounds that too.
 */
#ifndef ZRT_KERNELS_COLSUM_H
#define ZRT_KERNELS_COLSUM_H

#include <stddef.h>

#include "cast.h"
#include "hd.h"
#include "layernorm.h"

#define ZRT_COLSUM_ROWS 256
#define ZRT_COLSUM_LANES 8

/* What a column sums: the kind picks the per-element terms (two for layernorm: dw, db). */
typedef enum { ZRT_COLSUM_BIAS, ZRT_COLSUM_LAYERNORM, ZRT_COLSUM_RMSNORM } zrt_colsum_kind;

typedef struct {
    zrt_colsum_kind kind;
    int act;                         /* d's and x's element type (zrt_dtype; kernels/cast.h) */
    const void *d;                   /* (N, C) the upstream gradient */
    const void *x;                   /* (N, C): layernorm, rmsnorm; else NULL */
    const float *mean, *rstd;        /* (N), (N): layernorm (mean, rstd), rmsnorm (rstd); else NULL */
    int N, C;
} zrt_colsum_args;

ZRT_HD int zrt_colsum_outputs(zrt_colsum_kind kind) { return kind == ZRT_COLSUM_LAYERNORM ? 2 : 1; }
ZRT_HD int zrt_colsum_chunks(int N) { return (N + ZRT_COLSUM_ROWS - 1) / ZRT_COLSUM_ROWS; }

/* Floats of stage 1's partials: (outputs, chunks, C). */
ZRT_HD size_t zrt_colsum_scratch_floats(zrt_colsum_kind kind, int N, int C)
{
    return (size_t)zrt_colsum_outputs(kind) * (size_t)zrt_colsum_chunks(N) * (size_t)C;
}

/* Element (r, c)'s terms: v[0] (bias: d; layernorm: norm * d; rmsnorm: d * x * rstd), v[1] (layernorm: d). */
ZRT_HD void zrt_colsum_terms(const zrt_colsum_args *a, int r, int c, float v[2])
{
    size_t i = (size_t)r * a->C + c;
    float d = zrt_load_f32(a->d, i, a->act);
    v[1] = d;
    if (a->kind == ZRT_COLSUM_BIAS) {
        v[0] = d;
        return;
    }
    float x = zrt_load_f32(a->x, i, a->act);
    v[0] = a->kind == ZRT_COLSUM_LAYERNORM ? zrt_layernorm_norm(x, a->mean[r], a->rstd[r]) * d : d * (x * a->rstd[r]);
}

/* Stage 1 for one column and chunk: lane y's sum of its rows, in order. */
ZRT_HD void zrt_colsum_lane(const zrt_colsum_args *a, int chunk, int y, int c, float sum[2])
{
    int end = (chunk + 1) * ZRT_COLSUM_ROWS < a->N ? (chunk + 1) * ZRT_COLSUM_ROWS : a->N;
    sum[0] = sum[1] = 0.0f;
    for (int r = chunk * ZRT_COLSUM_ROWS + y; r < end; r += ZRT_COLSUM_LANES) {
        float v[2];
        zrt_colsum_terms(a, r, c, v);
        sum[0] += v[0];
        sum[1] += v[1];
    }
}

#ifndef __CUDACC__
/* The C twin: out0[c] (and out1[c] for layernorm's db) += the column sums, in the order above. */
static inline void zrt_colsum_twin(const zrt_colsum_args *a, float *out0, float *out1)
{
    int outputs = zrt_colsum_outputs(a->kind), chunks = zrt_colsum_chunks(a->N);
    for (int c = 0; c < a->C; c++) {
        float total[2] = {out0[c], outputs > 1 ? out1[c] : 0.0f};
        for (int k = 0; k < chunks; k++) {
            float lane[ZRT_COLSUM_LANES][2];
            for (int y = 0; y < ZRT_COLSUM_LANES; y++) zrt_colsum_lane(a, k, y, c, lane[y]);
            for (int half = ZRT_COLSUM_LANES / 2; half > 0; half /= 2)
                for (int y = 0; y < half; y++) lane[y][0] += lane[y + half][0], lane[y][1] += lane[y + half][1];
            total[0] += lane[0][0];
            total[1] += lane[0][1];
        }
        out0[c] = total[0];
        if (outputs > 1) out1[c] = total[1];
    }
}
#endif

#endif
