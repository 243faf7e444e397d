/* nn_cuda.c: the cuda device's model ops (nn.h's zrt_nn_cuda): each op
 * enqueues kernels/model_kernels.cu's launchers or cuBLASLt (cuda_blas.c)
 * on nn->stream (a cudaStream_t) and returns; nothing here waits.
 *
 * Bad input without a synchronization: a kernel that meets a token or
 * target out of range sets a flag in mapped pinned memory; a host function
 * enqueued right after it (zrt_stream_launch_host, in stream order: the
 * kernel has run) turns the flag into the stream's error naming the model.
 * The per-row losses of cross_entropy live in impl (loss_rows doubles) and
 * are summed in one thread, in order, into the caller's slot. The column
 * sums' partials (kernels/colsum.h) live in impl too, grown on first need,
 * as do the bf16 / fp16 copies of fp32 matmul operands (the weights, cast
 * per matmul when the activations are 16-bit: cuBLASLt wants A and B of one
 * type; 2 bytes per weight element moved once more per matmul).
 * With op timing on (zrt/internal/op_timer.h), the matmuls and attention
 * ops are timed by class. CPU twin: tests/test_model_emulated.c runs this table with the launchers
 * defined as tests/model_refs.h's references and a fake cuBLASLt.
 */
#ifdef ZRT_HAVE_CUDA

#include "nn_device.h"

#include "colsum.h"
#include "model_kernels.h"
#include "zrt/internal/cuda_check.h"
#include "zrt/internal/op_timer.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct {
    zrt_cuda_blas *blas;
    int32_t *bad;    /* mapped pinned: a kernel saw a token or target out of range */
    double *losses;  /* loss_rows, device */
    int64_t loss_rows;
    float *colsum;   /* colsum_bytes, device: the column sums' stage-1 partials (kernels/colsum.h) */
    size_t colsum_bytes;
    void *cast[2];   /* cast_bytes each, device: an fp32 A or B as the other operand's type (gemm) */
    size_t cast_bytes[2];
} cuda_nn;

static cuda_nn *impl(const zrt_nn *nn) { return nn->impl; }

static void fini(zrt_nn *nn)
{
    cuda_nn *c = impl(nn);
    if (!c) return;
    zrt_cuda_blas_destroy(c->blas, nn->device);
    zrt_host_free(nn->device, (void *)c->bad);
    zrt_device_free(nn->device, c->losses, NULL);
    zrt_device_free(nn->device, c->colsum, NULL);
    for (int i = 0; i < 2; i++) zrt_device_free(nn->device, c->cast[i], NULL);
    free(c);
    nn->impl = NULL;
}

static zrt_status init(zrt_nn *nn, zrt_matmul_math math, int64_t loss_rows)
{
    cuda_nn *c = calloc(1, sizeof *c);
    if (!c) return zrt_set_error(ZRT_ERR_NOMEM, "%s: out of memory", nn->model);
    nn->impl = c;
    c->loss_rows = loss_rows;
    zrt_status status = zrt_cuda_blas_create(nn->device, math, &c->blas);
    if (status == ZRT_OK)
        status = zrt_host_alloc(nn->device, ZRT_MEM_ACTIVATIONS, sizeof(int32_t), "model input flag", (void **)&c->bad);
    if (status == ZRT_OK) {
        *c->bad = 0;
        status = zrt_device_alloc(nn->device, ZRT_MEM_ACTIVATIONS, (size_t)(loss_rows > 0 ? loss_rows : 1) * sizeof(double),
                                  "model loss rows", NULL, (void **)&c->losses);
    }
    if (status != ZRT_OK) fini(nn);
    return status;
}

typedef struct {
    volatile int32_t *bad;
    char message[160];
} flag_check;

/* A host function in stream order: the kernels before it have run. */
static zrt_status check_flag(void *arg)
{
    flag_check *c = arg;
    if (!*c->bad) return ZRT_OK;
    *c->bad = 0;
    return zrt_set_error(ZRT_ERR_INVALID, "%s", c->message);
}

/* Enqueues the flag's check: "<model>: a <what> outside the vocabulary of <V> in the batch". */
static zrt_status enqueue_flag_check(zrt_nn *nn, const char *what, int V)
{
    flag_check c = {.bad = impl(nn)->bad};
    snprintf(c.message, sizeof c.message, "%s: a %s outside the vocabulary of %d in the batch", nn->model, what, V);
    return zrt_stream_launch_host(nn->on, "model input check", check_flag, &c, sizeof c, NULL, 0);
}


static zrt_status copy(zrt_nn *nn, void *dst, const void *src, size_t bytes)
{
    ZRT_CUDA_CHECK(zrt_cuda_copy(nn->stream, dst, src, bytes));
    return ZRT_OK;
}

static zrt_status zero(zrt_nn *nn, void *dst, size_t bytes)
{
    ZRT_CUDA_CHECK(zrt_cuda_zero(nn->stream, dst, bytes));
    return ZRT_OK;
}


static zrt_status init_rows(zrt_nn *nn, void *out, const float *bias, const void *residual, int N, int OC)
{
    ZRT_CUDA_CHECK(zrt_cuda_init_rows(nn->stream, (int)nn->act, out, bias, residual, N, OC));
    return ZRT_OK;
}

/* Scratch of at least `need` bytes in *buf (*have bytes now): grown on
 * first need (the old buffer freed in stream order after the kernels that
 * used it). */
static zrt_status scratch(zrt_nn *nn, void **buf, size_t *have, size_t need, const char *name)
{
    if (need > *have) {
        if (*buf) ZRT_CHECK(zrt_device_free(nn->device, *buf, nn->on));
        *buf = NULL;
        *have = 0;
        ZRT_CHECK(zrt_device_alloc(nn->device, ZRT_MEM_ACTIVATIONS, need, name, NULL, buf));
        *have = need;
    }
    return ZRT_OK;
}

/* The column sums' partials for (kind, N, C). */
static zrt_status colsum_scratch(zrt_nn *nn, zrt_colsum_kind kind, int N, int C, float **out)
{
    cuda_nn *c = impl(nn);
    ZRT_CHECK(scratch(nn, (void **)&c->colsum, &c->colsum_bytes, zrt_colsum_scratch_floats(kind, N, C) * sizeof(float),
                      "model column-sum partials"));
    *out = c->colsum;
    return ZRT_OK;
}

/* Elements an operand of rows x cols (ld apart, `batch` of them stride apart) spans. */
static size_t extent(int rows, int cols, int ld, int batch, int64_t stride)
{
    return (size_t)((int64_t)(batch > 1 ? batch - 1 : 0) * stride + (int64_t)(rows - 1) * ld + cols);
}

/* *operand (fp32) as `to` in scratch slot i: the weight of a matmul with bf16 / fp16 activations. */
static zrt_status cast_operand(zrt_nn *nn, int i, const void **operand, zrt_dtype *type, zrt_dtype to, size_t n)
{
    cuda_nn *c = impl(nn);
    ZRT_CHECK(scratch(nn, &c->cast[i], &c->cast_bytes[i], n * zrt_dtype_size(to), "model matmul operand cast"));
    ZRT_CUDA_CHECK(zrt_cuda_to_act(nn->stream, (int)to, c->cast[i], *operand, n));
    *operand = c->cast[i], *type = to;
    return ZRT_OK;
}

/* cuBLASLt takes A and B of one type: where one operand (or C) is 16-bit,
 * an fp32 A or B is cast to that type first (fp32 accumulation either way). */
static zrt_status gemm(zrt_nn *nn, const zrt_gemm *g)
{
    zrt_gemm t = *g;
    zrt_dtype half = t.a_type ? t.a_type : t.b_type ? t.b_type : t.c_type;
    int batch = t.batch > 1 ? t.batch : 1;
    if (half && !t.a_type)
        ZRT_CHECK(cast_operand(nn, 0, &t.A, &t.a_type, half, extent(t.trans_a ? t.K : t.M, t.trans_a ? t.M : t.K, t.lda,
                                                                  batch, t.stride_a)));
    if (half && !t.b_type)
        ZRT_CHECK(cast_operand(nn, 1, &t.B, &t.b_type, half, extent(t.trans_b ? t.N : t.K, t.trans_b ? t.K : t.N, t.ldb,
                                                                  batch, t.stride_b)));
    return zrt_cuda_gemm(impl(nn)->blas, nn->stream, &t);
}

static zrt_status bias_backward(zrt_nn *nn, float *db, const void *dout, int N, int OC)
{
    float *scratch;
    ZRT_CHECK(colsum_scratch(nn, ZRT_COLSUM_BIAS, N, OC, &scratch));
    ZRT_CUDA_CHECK(zrt_cuda_bias_backward(nn->stream, (int)nn->act, db, dout, N, OC, scratch));
    return ZRT_OK;
}

static zrt_status embed_forward(zrt_nn *nn, void *out, const int32_t *tokens, const float *wte, const float *wpe, int N,
                                int T, int C, int V)
{
    ZRT_CUDA_CHECK(zrt_cuda_embed_forward(nn->stream, (int)nn->act, out, tokens, wte, wpe, N, T, C, V, impl(nn)->bad));
    return enqueue_flag_check(nn, "token", V);
}

static zrt_status embed_backward(zrt_nn *nn, float *dwte, float *dwpe, const void *dout, const int32_t *tokens, int N,
                                 int T, int C, int V)
{
    ZRT_CUDA_CHECK(zrt_cuda_embed_backward(nn->stream, (int)nn->act, dwte, dwpe, dout, tokens, N, T, C, V));
    return ZRT_OK;
}

static zrt_status layernorm_forward(zrt_nn *nn, void *out, float *mean, float *rstd, const void *x, const float *w,
                                    const float *b, int N, int C)
{
    ZRT_CUDA_CHECK(zrt_cuda_layernorm_forward(nn->stream, (int)nn->act, out, mean, rstd, x, w, b, N, C));
    return ZRT_OK;
}

static zrt_status layernorm_backward(zrt_nn *nn, void *dx, float *dw, float *db, const void *d, const void *x,
                                     const float *w, const float *mean, const float *rstd, int N, int C)
{
    float *scratch;
    ZRT_CHECK(colsum_scratch(nn, ZRT_COLSUM_LAYERNORM, N, C, &scratch));
    ZRT_CUDA_CHECK(
        zrt_cuda_layernorm_backward(nn->stream, (int)nn->act, dx, dw, db, d, x, w, mean, rstd, N, C, scratch));
    return ZRT_OK;
}

static zrt_status rmsnorm_forward(zrt_nn *nn, void *out, float *rstd, const void *x, const float *w, int N, int C,
                                  float eps)
{
    ZRT_CUDA_CHECK(zrt_cuda_rmsnorm_forward(nn->stream, (int)nn->act, out, rstd, x, w, N, C, eps));
    return ZRT_OK;
}

static zrt_status residual_norm(zrt_nn *nn, void *h, void *out, const zrt_norm *norm, const void *x, const void *y,
                                const float *bias, int N, int C)
{
    if (norm->kind != ZRT_NORM_LAYER && norm->kind != ZRT_NORM_RMS)
        return zrt_set_error(ZRT_ERR_INVALID, "%s: residual_norm of unknown norm kind %d", nn->model, (int)norm->kind);
    ZRT_CUDA_CHECK(zrt_cuda_residual_norm(nn->stream, (int)nn->act, h, out, x, y, bias, N, C,
                                          norm->kind == ZRT_NORM_RMS, norm->w,
                                          norm->b, norm->mean, norm->rstd, norm->eps));
    return ZRT_OK;
}

static zrt_status rmsnorm_backward(zrt_nn *nn, void *dx, float *dw, const void *d, const void *x, const float *w,
                                   const float *rstd, int N, int C)
{
    float *scratch;
    ZRT_CHECK(colsum_scratch(nn, ZRT_COLSUM_RMSNORM, N, C, &scratch));
    ZRT_CUDA_CHECK(zrt_cuda_rmsnorm_backward(nn->stream, (int)nn->act, dx, dw, d, x, w, rstd, N, C, scratch));
    return ZRT_OK;
}

static zrt_status rope(zrt_nn *nn, void *x, int N, int T, int pos0, int heads, int hs, int ld, const float *cos,
                       const float *sin, bool inverse)
{
    if (hs % 2) return zrt_set_error(ZRT_ERR_INVALID, "%s: rotary embedding of odd head size %d", nn->model, hs);
    ZRT_CUDA_CHECK(zrt_cuda_rope(nn->stream, (int)nn->act, x, N, T, pos0, heads, hs, ld, cos, sin, inverse));
    return ZRT_OK;
}

static zrt_status attention_forward(zrt_nn *nn, const zrt_attn_shape *a, void *out, float *lse, const void *q,
                                    const void *k, const void *v)
{
    ZRT_CHECK(zrt_nn_attention_check(nn, a));
    ZRT_CUDA_CHECK(zrt_cuda_flash_forward(nn->stream, (int)nn->act, a, out, lse, q, k, v));
    return ZRT_OK;
}

static zrt_status attention_backward(zrt_nn *nn, const zrt_attn_shape *a, void *dq, void *dk, void *dv,
                                     const void *dout, const void *out, const float *lse, const void *q,
                                     const void *k, const void *v)
{
    ZRT_CHECK(zrt_nn_attention_check(nn, a));
    ZRT_CUDA_CHECK(zrt_cuda_flash_backward(nn->stream, (int)nn->act, a, dq, dk, dv, dout, out, lse, q, k, v));
    return ZRT_OK;
}

static zrt_status bias_gelu_forward(zrt_nn *nn, void *pre, void *out, const float *bias, int rows, int cols)
{
    ZRT_CUDA_CHECK(zrt_cuda_bias_gelu_forward(nn->stream, (int)nn->act, pre, out, bias, rows, cols));
    return ZRT_OK;
}

static zrt_status gelu_backward(zrt_nn *nn, void *dinp, const void *inp, const void *dout, size_t n)
{
    ZRT_CUDA_CHECK(zrt_cuda_gelu_backward(nn->stream, (int)nn->act, dinp, inp, dout, n));
    return ZRT_OK;
}

static zrt_status swiglu_forward(zrt_nn *nn, void *out, const void *gu, int N, int H)
{
    ZRT_CUDA_CHECK(zrt_cuda_swiglu_forward(nn->stream, (int)nn->act, out, gu, N, H));
    return ZRT_OK;
}

static zrt_status swiglu_backward(zrt_nn *nn, void *dgu, const void *dout, const void *gu, int N, int H)
{
    ZRT_CUDA_CHECK(zrt_cuda_swiglu_backward(nn->stream, (int)nn->act, dgu, dout, gu, N, H));
    return ZRT_OK;
}

static zrt_status cross_entropy(zrt_nn *nn, void *logits, const int32_t *targets, int N, int V, float scale,
                                float divisor, float *loss_sum, bool double_math)
{
    cuda_nn *c = impl(nn);
    if (N > c->loss_rows)
        return zrt_set_error(ZRT_ERR_INVALID, "%s: a loss over %d rows, made for %lld", nn->model, N,
                             (long long)c->loss_rows);
    ZRT_CUDA_CHECK(zrt_cuda_cross_entropy(nn->stream, (int)nn->act, logits, c->losses, targets, N, V, scale,
                                          double_math, c->bad));
    ZRT_CHECK(enqueue_flag_check(nn, "target", V));
    ZRT_CUDA_CHECK(zrt_cuda_loss_mean(nn->stream, loss_sum, c->losses, targets, N, divisor));
    return ZRT_OK;
}

/* Op timing (zrt/internal/op_timer.h; off unless the bench enables it):
 * the matmuls and attention, each around the op it wraps. */
static zrt_status timed_gemm(zrt_nn *nn, const zrt_gemm *g)
{
    int op;
    ZRT_CHECK(zrt_op_timer_begin(nn->on, ZRT_OP_MATMUL, &op));
    return zrt_op_timer_end(nn->on, op, gemm(nn, g));
}

static zrt_status timed_attention_forward(zrt_nn *nn, const zrt_attn_shape *a, void *out, float *lse, const void *q,
                                          const void *k, const void *v)
{
    int op;
    ZRT_CHECK(zrt_op_timer_begin(nn->on, ZRT_OP_ATTENTION, &op));
    return zrt_op_timer_end(nn->on, op, attention_forward(nn, a, out, lse, q, k, v));
}

static zrt_status timed_attention_backward(zrt_nn *nn, const zrt_attn_shape *a, void *dq, void *dk, void *dv,
                                           const void *dout, const void *out, const float *lse, const void *q,
                                           const void *k, const void *v)
{
    int op;
    ZRT_CHECK(zrt_op_timer_begin(nn->on, ZRT_OP_ATTENTION, &op));
    return zrt_op_timer_end(nn->on, op, attention_backward(nn, a, dq, dk, dv, dout, out, lse, q, k, v));
}

const zrt_nn_ops zrt_nn_cuda = {
    .kind = ZRT_DEVICE_CUDA, .host_function = false, .fuse_residual = true, .typed_acts = true, .init = init,
    .fini = fini, .copy = copy, .zero = zero,
    .gemm = timed_gemm, .init_rows = init_rows, .bias_backward = bias_backward, .embed_forward = embed_forward,
    .embed_backward = embed_backward, .layernorm_forward = layernorm_forward, .layernorm_backward = layernorm_backward,
    .rmsnorm_forward = rmsnorm_forward, .rmsnorm_backward = rmsnorm_backward, .residual_norm = residual_norm, .rope = rope,
    .attention_forward = timed_attention_forward, .attention_backward = timed_attention_backward,
    .bias_gelu_forward = bias_gelu_forward, .gelu_backward = gelu_backward, .swiglu_forward = swiglu_forward,
    .swiglu_backward = swiglu_backward, .cross_entropy = cross_entropy,
};

#else
typedef int zrt_nn_cuda_absent; /* built without CUDA: zrt_nn_ops_of(cuda) is NULL */
#endif
