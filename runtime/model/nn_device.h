/* nn_device.h: what the device tables of nn.h share, private to model/:
 * attention's shape check and the cpu table's blocked attention
 * (nn_attention.c), and the cuBLASLt matmuls behind the cuda table
 * (cuda_blas.c; plain C, no CUDA header, so tests include it in any build).
 */
#ifndef ZRT_MODEL_NN_DEVICE_H
#define ZRT_MODEL_NN_DEVICE_H

#include "nn.h"

/* ZRT_ERR_INVALID naming the shape unless S >= T >= 1, NH % NKV == 0 and the
 * leading dimensions hold the heads. */
zrt_status zrt_nn_attention_check(const zrt_nn *nn, const zrt_attn_shape *a);
/* nn.h's attention_forward / attention_backward as FlashAttention-2's
 * blocked algorithm over cblas_sgemm (nn_attention.c): the cpu table's. */
zrt_status zrt_nn_flash_forward(zrt_nn *nn, const zrt_attn_shape *a, void *out, float *lse, const void *q,
                                const void *k, const void *v);
zrt_status zrt_nn_flash_backward(zrt_nn *nn, const zrt_attn_shape *a, void *dq, void *dk, void *dv, const void *dout,
                                 const void *out, const float *lse, const void *q, const void *k, const void *v);

/* ---- cuBLASLt (cuda_blas.c, builds with CUDA) -------------------------------------------- */

typedef struct zrt_cuda_blas zrt_cuda_blas;

/* A handle and a 32 MiB workspace on device (charged to activations). */
zrt_status zrt_cuda_blas_create(zrt_device *device, zrt_matmul_math math, zrt_cuda_blas **out);
void zrt_cuda_blas_destroy(zrt_cuda_blas *blas, zrt_device *device);
/* Enqueues g on stream (a cudaStream_t); the algorithm is chosen once per
 * shape (a small cache), so a step only launches. A and B of one type
 * (fp32, bf16, fp16), C fp32 or theirs; other mixes ZRT_ERR_UNSUPPORTED
 * (nn_cuda.c's gemm casts an fp32 operand first). */
zrt_status zrt_cuda_gemm(zrt_cuda_blas *blas, void *stream, const zrt_gemm *g);

#endif
