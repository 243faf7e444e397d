/* model_kernels.h: the C entry points of kernels/model_kernels.cu, the CUDA
 * models' elementwise, row and reduction kernels (the matmuls are cuBLASLt's:
 * runtime/model/cuda_blas.c). Built only with CUDA.
 *
 * Conventions as kernels/cuda_kernels.h: each launcher enqueues on `stream`
 * (a cudaStream_t), returns 0 or the launch's cudaError_t, never prints or
 * synchronizes; pointers are device pointers, row-major. Activations (the
 * `void *` buffers) hold elements of type `act` (zrt_dtype: 0 fp32, 1 bf16,
 * 2 fp16), read and written through kernels/cast.h's zrt_load_f32 /
 * zrt_store_f32 (round to nearest even); every kernel computes in fp32;
 * parameters, their gradients and statistics (mean, rstd, lse) are fp32.
 * Each kernel does what the cpu ops of the same name do
 * (runtime/model/nn_cpu.c), with the per-element math of gelu.h,
 * layernorm.h, rmsnorm.h, rope.h and swiglu.h; runtime/model/nn_cuda.c is
 * the ops table that calls them. Reduction orders:
 *  - the same as the CPU's (so the same bits, FMA contraction being off):
 *    the embedding gradients (rows in order, one thread per element), the
 *    losses' sum (one thread, in row order, in double);
 *  - kernels/colsum.h's two stages (chunks of 256 rows in 8 lanes, then the
 *    chunks in order; its C twin gives the same bits): the bias, layernorm
 *    and rmsnorm weight gradients -- no atomics;
 *  - a warp's order (32 lanes, then a shuffle tree) where a row is reduced:
 *    layernorm's and rmsnorm's statistics. These differ from the CPU's left-to-right or vector-lane sums
 *    within rounding: relative 1e-5 of the row (tests/test_cuda_kernels.c).
 * Every kernel gives the same bits on every run.
 */
#ifndef ZRT_MODEL_KERNELS_H
#define ZRT_MODEL_KERNELS_H

#include "flash.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Device-to-device copy; zero fill (in stream order). */
int zrt_cuda_copy(void *stream, void *dst, const void *src, size_t bytes);
int zrt_cuda_zero(void *stream, void *dst, size_t bytes);
/* dst[i] = src[i] rounded to act, i < n: an fp32 matmul operand (a weight)
 * as the other operand's type (nn_cuda.c's gemm). */
int zrt_cuda_to_act(void *stream, int act, void *dst, const float *src, size_t n);

/* out (N, C) = wte[tokens[i]] + wpe[i % T] (wpe NULL: none). A token outside
 * 0..V-1 gives a zero row and sets *bad = 1 (bad: device or mapped pinned memory). */
int zrt_cuda_embed_forward(void *stream, int act, void *out, const int32_t *tokens, const float *wte, const float *wpe,
                           int N, int T, int C, int V, int32_t *bad);
/* dwte[tokens[i]] += dout[i], dwpe[i % T] += dout[i] (dwpe NULL: none), rows in order. */
int zrt_cuda_embed_backward(void *stream, int act, float *dwte, float *dwpe, const void *dout, const int32_t *tokens,
                            int N, int T, int C, int V);

/* out[i] = bias + residual (either may be NULL; neither: nothing to do), the
 * initial value a matmul with beta 1 adds onto. */
int zrt_cuda_init_rows(void *stream, int act, void *out, const float *bias, const void *residual, int N, int OC);
/* db[o] += sum over rows of dout[i][o] in kernels/colsum.h's order; scratch:
 * zrt_colsum_scratch_floats(ZRT_COLSUM_BIAS, N, OC) floats of device memory. */
int zrt_cuda_bias_backward(void *stream, int act, float *db, const void *dout, int N, int OC, float *scratch);

/* pre[r][c] += bias[c] (bias NULL: none), out = gelu(pre). */
int zrt_cuda_bias_gelu_forward(void *stream, int act, void *pre, void *out, const float *bias, int rows, int cols);
/* dinp = dout * gelu'(inp); dinp == dout is fine. */
int zrt_cuda_gelu_backward(void *stream, int act, void *dinp, const void *inp, const void *dout, size_t n);

/* Per row of C: out = layernorm(x) * w + b; mean, rstd saved. */
int zrt_cuda_layernorm_forward(void *stream, int act, void *out, float *mean, float *rstd, const void *x,
                               const float *w, const float *b, int N, int C);
/* dx += d(x) per row; dw += norm * d, db += d summed over rows in colsum.h's
 * order (scratch: zrt_colsum_scratch_floats(ZRT_COLSUM_LAYERNORM, N, C) floats). */
int zrt_cuda_layernorm_backward(void *stream, int act, void *dx, float *dw, float *db, const void *d, const void *x,
                                const float *w, const float *mean, const float *rstd, int N, int C, float *scratch);

/* Per row: out = w * x * rstd, rstd = 1 / sqrt(mean(x^2) + eps) saved. */
int zrt_cuda_rmsnorm_forward(void *stream, int act, void *out, float *rstd, const void *x, const float *w, int N, int C,
                             float eps);
/* Per row of C, a warp: h = (x + bias) + y (bias NULL: x + y; x NULL: y;
 * h == y allowed), then out = the norm of h -- layernorm (w, b; mean, rstd saved)
 * or, rms != 0, RMSNorm (w, eps; rstd saved): the bits of
 * zrt_cuda_layernorm_forward / zrt_cuda_rmsnorm_forward of h. */
int zrt_cuda_residual_norm(void *stream, int act, void *h, void *out, const void *x, const void *y, const float *bias,
                           int N, int C, int rms, const float *w, const float *b, float *mean, float *rstd, float eps);
/* dx += d(x) per row; dw += d * x * rstd summed over rows in colsum.h's order
 * (scratch: zrt_colsum_scratch_floats(ZRT_COLSUM_RMSNORM, N, C) floats). */
int zrt_cuda_rmsnorm_backward(void *stream, int act, void *dx, float *dw, const void *d, const void *x, const float *w,
                              const float *rstd, int N, int C, float *scratch);
/* nn.h's rope: heads of hs (even) columns of N rows ld apart, row r at
 * position pos0 + r % T, element i with i + hs/2 by cos/sin[pos][i]
 * (inverse: the opposite turn). In place. */
int zrt_cuda_rope(void *stream, int act, void *x, int N, int T, int pos0, int heads, int hs, int ld, const float *cos,
                  const float *sin, int inverse);

/* gu (N, 2H) rows [gate | up]: out (N, H) = silu(gate) * up. */
int zrt_cuda_swiglu_forward(void *stream, int act, void *out, const void *gu, int N, int H);
/* dgu (N, 2H) = d(gate), d(up) of dout (overwritten). */
int zrt_cuda_swiglu_backward(void *stream, int act, void *dgu, const void *dout, const void *gu, int N, int H);

/* Causal grouped-query attention (flash.h's zrt_attn_shape) in
 * FlashAttention-2's form (kernels/flash_kernels.cu): out and lse (B, NH, T)
 * written; no T x S storage. Scale 1/sqrt(hs). */
int zrt_cuda_flash_forward(void *stream, int act, const zrt_attn_shape *a, void *out, float *lse, const void *q,
                           const void *k, const void *v);
/* dq, dk, dv overwritten (a kv head's gradient sums its query heads', in
 * order) from dout and the forward's out and lse; no atomics. */
int zrt_cuda_flash_backward(void *stream, int act, const zrt_attn_shape *a, void *dq, void *dk, void *dv,
                            const void *dout, const void *out, const float *lse, const void *q, const void *k,
                            const void *v);

/* Softmax cross-entropy per row of V logits, fused and in place: losses[i]
 * = -log p[target], and the row of logits overwritten with (p - onehot) *
 * scale / n, n the targets that are not ZRT_IGNORE_INDEX (kernels/xent.h:
 * such a row gets loss 0 and gradient 0). A block per row; the row's max
 * and sum are one online pass over the vocabulary (each thread's chunk, then
 * the block's), the gradient a second; no scratch. double_math: the MLP's
 * form (log-sum-exp in double, mlp.c), else GPT's (fp32 exp and sum, -log
 * in double, gpt.c). Any other target outside 0..V-1 sets *bad = 1 and
 * leaves its row's loss 0. */
int zrt_cuda_cross_entropy(void *stream, int act, void *logits, double *losses, const int32_t *targets, int N, int V,
                           float scale, int double_math, int32_t *bad);
/* *loss_sum += (float)(sum of losses[0..N) / n) / divisor, n the targets that
 * are not ZRT_IGNORE_INDEX (nothing when n is 0), in one thread, in order. */
int zrt_cuda_loss_mean(void *stream, float *loss_sum, const double *losses, const int32_t *targets, int N, float divisor);

#ifdef __cplusplus
}
#endif
#endif
