/* nn_device.h: what the device tables of nn.h share, private to model/:
 * attention written once over a table's gemm and its own causal softmax
 * (nn_attention.c), and the cuBLASLt matmuls behind the cuda table
 * (cuda_blas.c; plain C, no CUDA header, so tests include it in any build).
 */
#ifndef ZRT_MODEL_NN_DEVICE_H
#define ZRT_MODEL_NN_DEVICE_H

#include "nn.h"

/* squares (B NH) of T rows x S columns: row t keeps its first S - T + t + 1
 * entries, softmaxed, the rest 0 (att and pre distinct). */
typedef zrt_status (*zrt_nn_softmax_forward)(zrt_nn *nn, float *att, const float *pre, int squares, int T, int S);
/* dpre = att * (datt - rowsum(att * datt)) on the causal part, 0 beyond. */
typedef zrt_status (*zrt_nn_softmax_backward)(zrt_nn *nn, float *dpre, const float *att, const float *datt,
                                              int squares, int T, int S);

/* ZRT_ERR_INVALID naming the shape unless S >= T >= 1, NH % NKV == 0 and the
 * leading dimensions hold the heads. */
zrt_status zrt_nn_attention_check(const zrt_nn *nn, const zrt_attn_shape *a);
/* nn.h's attention_forward / attention_backward through nn->ops->gemm
 * (strided batches over the kv heads: no zero stride) and softmax. */
zrt_status zrt_nn_attention_forward_with(zrt_nn *nn, const zrt_attn_shape *a, float *out, float *att, float *pre,
                                         const float *q, const float *k, const float *v, zrt_nn_softmax_forward softmax);
zrt_status zrt_nn_attention_backward_with(zrt_nn *nn, const zrt_attn_shape *a, float *dq, float *dk, float *dv,
                                          float *datt, float *dpre, const float *dout, const float *q, const float *k,
                                          const float *v, const float *att, zrt_nn_softmax_backward softmax);

/* ---- cuBLASLt (cuda_blas.c, builds with CUDA) -------------------------------------------- */

typedef struct zrt_cuda_blas zrt_cuda_blas;

/* A handle and a 32 MiB workspace on device (charged to activations). */
zrt_status zrt_cuda_blas_create(zrt_device *device, zrt_matmul_math math, zrt_cuda_blas **out);
void zrt_cuda_blas_destroy(zrt_cuda_blas *blas, zrt_device *device);
/* Enqueues g on stream (a cudaStream_t); the algorithm is chosen once per
 * shape (a small cache), so a step only launches. */
zrt_status zrt_cuda_gemm(zrt_cuda_blas *blas, void *stream, const zrt_gemm *g);

#endif
