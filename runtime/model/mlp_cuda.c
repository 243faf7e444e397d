/* mlp_cuda.c: the MLP of mlp.c on a cuda device -- the same units and
 * layout (model_shape.c), the same math: z = in W^T + b by cuBLASLt onto
 * the bias rows, GELU between layers, the MLP's double-precision
 * cross-entropy (kernels/model_kernels.cu). Read it beside mlp.c.
 */
#ifdef ZRT_HAVE_CUDA

#include "cuda_model.h"
#include "model_kernels.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct {
    zrt_cuda_model cuda;
    zrt_mlp_acts a;                  /* model_shape.c's buffers */
} mlp_cuda;

static zrt_status forward(zrt_model *base, const zrt_cuda_op *op)
{
    mlp_cuda *m = (mlp_cuda *)base;
    int u = op->op, B = op->batch, in = (int)m->a.dims[u], out = (int)m->a.dims[u + 1];
    const float *W = op->params, *b = op->params + (int64_t)in * out;
    float *z = m->a.pre[u], *y = m->a.act[u + 1];
    ZRT_CUDA_CHECK(zrt_cuda_init_rows(op->stream, z, b, NULL, B, out));
    ZRT_CHECK(zrt_cuda_gemm(m->cuda.blas, op->stream,
                            &(zrt_gemm){.trans_b = true, .M = B, .N = out, .K = in, .alpha = 1.0f, .beta = 1.0f,
                                        .A = zrt_mlp_unit_input(&m->a, op->inputs, u), .lda = in, .B = W, .ldb = in, .C = z, .ldc = out}));
    if (u == m->a.layers - 1) {
        ZRT_CUDA_CHECK(zrt_cuda_copy(op->stream, y, z, (size_t)B * (size_t)out * sizeof(float)));
        return ZRT_OK;
    }
    ZRT_CUDA_CHECK(zrt_cuda_bias_gelu_forward(op->stream, z, y, NULL, B, out));
    return ZRT_OK;
}

static zrt_status loss(zrt_model *base, const zrt_cuda_op *op, float scale, float divisor, float *loss_sum)
{
    mlp_cuda *m = (mlp_cuda *)base;
    int B = op->batch, V = (int)m->a.dims[m->a.layers];
    ZRT_CUDA_CHECK(zrt_cuda_cross_entropy(op->stream, m->a.dact, NULL, m->cuda.losses, m->a.act[m->a.layers], op->labels, B, V,
                                      scale, 1, m->cuda.bad));
    ZRT_CHECK(zrt_cuda_model_check_flag(&m->cuda, op, "label", V));
    ZRT_CUDA_CHECK(zrt_cuda_loss_mean(op->stream, loss_sum, m->cuda.losses, op->labels, B, divisor));
    return ZRT_OK;
}

static zrt_status backward(zrt_model *base, const zrt_cuda_op *op)
{
    mlp_cuda *m = (mlp_cuda *)base;
    int u = op->op, B = op->batch, in = (int)m->a.dims[u], out = (int)m->a.dims[u + 1];
    const float *W = op->params;
    float *dW = op->grads, *db = op->grads + (int64_t)in * out, *dz = m->a.dact;
    if (u != m->a.layers - 1) ZRT_CUDA_CHECK(zrt_cuda_gelu_backward(op->stream, dz, m->a.pre[u], dz, (size_t)B * out));
    ZRT_CHECK(zrt_cuda_gemm(m->cuda.blas, op->stream,
                            &(zrt_gemm){.trans_a = true, .M = out, .N = in, .K = B, .alpha = 1.0f, .beta = 1.0f,
                                        .A = dz, .lda = out, .B = zrt_mlp_unit_input(&m->a, op->inputs, u), .ldb = in, .C = dW, .ldc = in}));
    ZRT_CUDA_CHECK(zrt_cuda_bias_backward(op->stream, db, dz, B, out));
    if (u == 0) return ZRT_OK;
    ZRT_CHECK(zrt_cuda_gemm(m->cuda.blas, op->stream,
                            &(zrt_gemm){.M = B, .N = in, .K = out, .alpha = 1.0f, .A = dz, .lda = out, .B = W,
                                        .ldb = in, .C = m->a.dnext, .ldc = in}));
    zrt_mlp_swap(&m->a);
    return ZRT_OK;
}

static void free_buffers(zrt_model *base) { zrt_mlp_acts_free(&((mlp_cuda *)base)->a, base->device); }

static const zrt_cuda_model_ops mlp_cuda_ops = {forward, loss, backward, free_buffers};

zrt_status zrt_model_mlp_cuda_create(const zrt_model_config *cfg, zrt_device *device, int micro_batch,
                                     zrt_model **out)
{
    mlp_cuda *m = calloc(1, sizeof *m);
    if (!m) return zrt_set_error(ZRT_ERR_NOMEM, "mlp: out of memory");
    zrt_model *base = &m->cuda.base;
    base->device = device;
    zrt_status status = zrt_mlp_declare(base, cfg, micro_batch, &m->a);
    if (status != ZRT_OK) {
        zrt_model_tables_free(base);
        free(m);
        return status;
    }
    status = zrt_cuda_model_init(&m->cuda, ZRT_MODEL_MLP, device, micro_batch, 1, zrt_matmul_math_of(cfg),
                                 &mlp_cuda_ops);
    if (status == ZRT_OK) status = zrt_mlp_acts_alloc(&m->a, micro_batch, device);
    if (status != ZRT_OK) {
        base->destroy(base);
        return status;
    }
    *out = base;
    return ZRT_OK;
}

#else
typedef int zrt_mlp_cuda_absent; /* built without CUDA: the CUDA models are not registered */
#endif
