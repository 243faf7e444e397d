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
    int layers;
    int64_t dims[ZRT_MAX_UNITS + 1]; /* dims[u] -> dims[u + 1] */
    float *act[ZRT_MAX_UNITS + 1];   /* act[u + 1] = out of unit u; act[0] unused */
    float *pre[ZRT_MAX_UNITS];       /* z of unit u */
    float *dact, *dnext;             /* d(out) of the unit being back-propagated, d(in) */
} mlp_cuda;

static const float *unit_input(const mlp_cuda *m, const zrt_cuda_op *op, int u)
{
    return u == 0 ? (const float *)op->inputs : m->act[u];
}

static zrt_status forward(zrt_model *base, const zrt_cuda_op *op)
{
    mlp_cuda *m = (mlp_cuda *)base;
    int u = op->op, B = op->batch, in = (int)m->dims[u], out = (int)m->dims[u + 1];
    const float *W = op->params, *b = op->params + (int64_t)in * out;
    float *z = m->pre[u], *y = m->act[u + 1];
    ZRT_LAUNCH(zrt_cuda_init_rows(op->stream, z, b, NULL, B, out));
    ZRT_CHECK(zrt_cuda_gemm(m->cuda.blas, op->stream,
                            &(zrt_gemm){.trans_b = true, .M = B, .N = out, .K = in, .alpha = 1.0f, .beta = 1.0f,
                                        .A = unit_input(m, op, u), .lda = in, .B = W, .ldb = in, .C = z, .ldc = out}));
    if (u == m->layers - 1) return zrt_cuda_copy(op, y, z, (size_t)B * (size_t)out * sizeof(float));
    ZRT_LAUNCH(zrt_cuda_bias_gelu_forward(op->stream, z, y, NULL, B, out));
    return ZRT_OK;
}

static zrt_status loss(zrt_model *base, const zrt_cuda_op *op, float scale, float divisor, float *loss_sum)
{
    mlp_cuda *m = (mlp_cuda *)base;
    int B = op->batch, V = (int)m->dims[m->layers];
    ZRT_LAUNCH(zrt_cuda_cross_entropy(op->stream, m->dact, NULL, m->cuda.losses, m->act[m->layers], op->labels, B, V,
                                      scale, 1, m->cuda.bad));
    ZRT_CHECK(zrt_cuda_model_check_flag(&m->cuda, op, "label", V));
    ZRT_LAUNCH(zrt_cuda_loss_mean(op->stream, loss_sum, m->cuda.losses, B, divisor));
    return ZRT_OK;
}

static zrt_status backward(zrt_model *base, const zrt_cuda_op *op)
{
    mlp_cuda *m = (mlp_cuda *)base;
    int u = op->op, B = op->batch, in = (int)m->dims[u], out = (int)m->dims[u + 1];
    const float *W = op->params;
    float *dW = op->grads, *db = op->grads + (int64_t)in * out, *dz = m->dact;
    if (u != m->layers - 1) ZRT_LAUNCH(zrt_cuda_gelu_backward(op->stream, dz, m->pre[u], dz, (size_t)B * out));
    ZRT_CHECK(zrt_cuda_gemm(m->cuda.blas, op->stream,
                            &(zrt_gemm){.trans_a = true, .M = out, .N = in, .K = B, .alpha = 1.0f, .beta = 1.0f,
                                        .A = dz, .lda = out, .B = unit_input(m, op, u), .ldb = in, .C = dW, .ldc = in}));
    ZRT_LAUNCH(zrt_cuda_bias_backward(op->stream, db, dz, B, out));
    if (u == 0) return ZRT_OK;
    ZRT_CHECK(zrt_cuda_gemm(m->cuda.blas, op->stream,
                            &(zrt_gemm){.M = B, .N = in, .K = out, .alpha = 1.0f, .A = dz, .lda = out, .B = W,
                                        .ldb = in, .C = m->dnext, .ldc = in}));
    float *t = m->dact;
    m->dact = m->dnext;
    m->dnext = t;
    return ZRT_OK;
}

static void free_buffers(zrt_model *base)
{
    mlp_cuda *m = (mlp_cuda *)base;
    for (int u = 1; u <= m->layers; u++) zrt_device_free(base->device, m->act[u], NULL);
    for (int u = 0; u < m->layers; u++) zrt_device_free(base->device, m->pre[u], NULL);
    zrt_device_free(base->device, m->dact, NULL);
    zrt_device_free(base->device, m->dnext, NULL);
}

static const zrt_cuda_model_ops mlp_cuda_ops = {forward, loss, backward, free_buffers};

static zrt_status alloc(mlp_cuda *m, size_t bytes, const char *name, float **out)
{
    return zrt_device_alloc(m->cuda.base.device, ZRT_MEM_ACTIVATIONS, bytes, name, NULL, (void **)out);
}

static zrt_status alloc_buffers(mlp_cuda *m, int micro_batch)
{
    int64_t widest = 0;
    for (int u = 0; u <= m->layers; u++) widest = m->dims[u] > widest ? m->dims[u] : widest;
    char name[64];
    for (int u = 0; u < m->layers; u++) {
        size_t bytes = (size_t)(micro_batch * m->dims[u + 1]) * sizeof(float);
        snprintf(name, sizeof name, "mlp layer %d output", u);
        ZRT_CHECK(alloc(m, bytes, name, &m->act[u + 1]));
        snprintf(name, sizeof name, "mlp layer %d pre-activation", u);
        ZRT_CHECK(alloc(m, bytes, name, &m->pre[u]));
    }
    size_t bytes = (size_t)(micro_batch * widest) * sizeof(float);
    ZRT_CHECK(alloc(m, bytes, "mlp output gradient", &m->dact));
    return alloc(m, bytes, "mlp input gradient", &m->dnext);
}

zrt_status zrt_model_mlp_cuda_create(const zrt_model_config *cfg, zrt_device *device, int micro_batch,
                                     zrt_model **out)
{
    mlp_cuda *m = calloc(1, sizeof *m);
    if (!m) return zrt_set_error(ZRT_ERR_NOMEM, "mlp: out of memory");
    zrt_model *base = &m->cuda.base;
    base->device = device;
    zrt_status status = zrt_mlp_declare(base, cfg, micro_batch, m->dims);
    if (status != ZRT_OK) {
        free(m);
        return status;
    }
    m->layers = (int)cfg->layers;
    status = zrt_cuda_model_init(&m->cuda, ZRT_MODEL_MLP, device, micro_batch, 1, zrt_matmul_math_of(cfg),
                                 &mlp_cuda_ops);
    if (status == ZRT_OK) status = alloc_buffers(m, micro_batch);
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
