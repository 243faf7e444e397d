/* cuda_model.h: what the CUDA models share (built only with CUDA): the
 * runner (cuda_model.c) behind the zrt_model table, and the matmuls through
 * cuBLASLt (cuda_blas.c). Private to model/.
 *
 * Why a runner: as for the cpu models (model_internal.h), gpt_cuda.c and
 * mlp_cuda.c hold only their math. The runner checks each op, declares its
 * buffers to the device's check mode (zrt_stream_track: the kernels run on
 * the native stream, outside the device's own ops), and hands the model the
 * cudaStream_t. No op synchronizes the host: a bad token or label sets a
 * flag in mapped pinned memory that a host function in stream order turns
 * into the stream's error.
 */
#ifndef ZRT_CUDA_MODEL_H
#define ZRT_CUDA_MODEL_H

#include "model_internal.h"
#include "zrt/internal/cuda_check.h"

/* ---- matmuls (cuda_blas.c) ------------------------------------------------------------ */

typedef struct zrt_cuda_blas zrt_cuda_blas;

/* How fp32 matmuls use the tensor cores: exact fp32 (the default for fp32
 * training), TF32 (zrt.allow_tf32), or inputs rounded to bf16 / fp16 with
 * fp32 accumulation (bf16 / fp16 training: the engine's compute copy is
 * that dtype already, so the weights lose nothing). */
typedef enum { ZRT_MATMUL_FP32, ZRT_MATMUL_TF32, ZRT_MATMUL_BF16, ZRT_MATMUL_FP16 } zrt_matmul_math;

/* The math for a config's precision and zrt.allow_tf32. */
zrt_matmul_math zrt_matmul_math_of(const zrt_model_config *cfg);

/* A handle and a 32 MiB workspace on device (charged to activations). */
zrt_status zrt_cuda_blas_create(zrt_device *device, zrt_matmul_math math, zrt_cuda_blas **out);
void zrt_cuda_blas_destroy(zrt_cuda_blas *blas, zrt_device *device);

/* cblas_sgemm's row-major contract: C (M x N) = alpha op(A) op(B) + beta C,
 * and `batch` of them at the given element strides (0 or 1: one). */
typedef struct {
    bool trans_a, trans_b;
    int M, N, K;
    float alpha, beta;
    const float *A;
    int lda;
    const float *B;
    int ldb;
    float *C;
    int ldc;
    int batch;
    int64_t stride_a, stride_b, stride_c;
} zrt_gemm;

/* Enqueues it on stream (a cudaStream_t); the algorithm is chosen once per
 * shape (a small cache), so a step only launches. */
zrt_status zrt_cuda_gemm(zrt_cuda_blas *blas, void *stream, const zrt_gemm *g);

/* ---- the runner (cuda_model.c) ---------------------------------------------------------- */

/* One op as the model enqueues it. */
typedef struct {
    int op, batch;
    const void *inputs;
    const int32_t *labels;
    const float *params;
    float *grads;
    void *stream; /* cudaStream_t */
    zrt_stream *on; /* the zrt_stream it belongs to */
} zrt_cuda_op;

typedef struct {
    zrt_status (*forward)(zrt_model *m, const zrt_cuda_op *op);
    zrt_status (*loss)(zrt_model *m, const zrt_cuda_op *op, float scale, float divisor, float *loss_sum);
    zrt_status (*backward)(zrt_model *m, const zrt_cuda_op *op);
    void (*free_buffers)(zrt_model *m);
} zrt_cuda_model_ops;

/* The first member of every CUDA model. */
typedef struct {
    zrt_model base;
    const zrt_cuda_model_ops *ops;
    zrt_model_type type;
    zrt_model_batch now; /* set_batch's */
    zrt_cuda_blas *blas;
    int32_t *bad;      /* mapped pinned: a kernel saw a token or label out of range */
    double *losses;    /* per row of the batch (max_batch x rows_per_sample) */
} zrt_cuda_model;

/* Fills m->base's table with the runner's; makes the blas handle, the flag
 * and the loss rows (rows_per_sample: tokens of a sample that get a loss). */
zrt_status zrt_cuda_model_init(zrt_cuda_model *m, zrt_model_type type, zrt_device *device, int max_batch,
                               int rows_per_sample, zrt_matmul_math math, const zrt_cuda_model_ops *ops);
/* Enqueues the check of the flag: a host function failing the stream with
 * "<model>: <what> outside 0..<limit - 1>" if a kernel set it. */
zrt_status zrt_cuda_model_check_flag(zrt_cuda_model *m, const zrt_cuda_op *op, const char *what, int limit);



zrt_status zrt_model_gpt_cuda_create(const zrt_model_config *cfg, zrt_device *device, int micro_batch,
                                     zrt_model **out);
zrt_status zrt_model_mlp_cuda_create(const zrt_model_config *cfg, zrt_device *device, int micro_batch,
                                     zrt_model **out);

#endif
