/* nn_layers.c: the linear layer and the activation-buffer table of
 * nn_layers.h, over nn.h's ops. The gemms name each operand's type:
 * activations nn->act, weights and their gradients fp32. */
#include "nn_layers.h"

#include <stdlib.h>

/* out = inp @ w^T (+ out when beta is 1), out of type out_type. */
static zrt_status linear(zrt_nn *nn, void *out, zrt_dtype out_type, const zrt_act *inp, const float *w, float beta,
                         int N, int C, int OC)
{
    zrt_gemm g = {.trans_b = true, .M = N, .N = OC, .K = C, .alpha = 1.0f, .beta = beta, .A = inp, .lda = C, .B = w,
                  .ldb = C, .C = out, .ldc = OC, .a_type = nn->act, .c_type = out_type};
    return nn->ops->gemm(nn, &g);
}

zrt_status zrt_nn_linear_forward(zrt_nn *nn, zrt_act *out, const zrt_act *inp, const float *w, const float *b,
                                 const zrt_act *residual, int N, int C, int OC)
{
    bool init = b || residual;
    if (init) ZRT_CHECK(nn->ops->init_rows(nn, out, b, residual, N, OC));
    return linear(nn, out, nn->act, inp, w, init ? 1.0f : 0.0f, N, C, OC);
}

zrt_status zrt_nn_linear_forward_f32(zrt_nn *nn, float *out, const zrt_act *inp, const float *w, int N, int C, int OC)
{
    return linear(nn, out, ZRT_DTYPE_F32, inp, w, 0.0f, N, C, OC);
}

zrt_status zrt_nn_linear_backward(zrt_nn *nn, zrt_act *dinp, float *dw, float *db, const zrt_act *dout,
                                  const zrt_act *inp, const float *w, int N, int C, int OC)
{
    if (dinp) {
        zrt_gemm g = {.M = N, .N = C, .K = OC, .alpha = 1.0f, .A = dout, .lda = OC, .B = w, .ldb = C, .C = dinp,
                      .ldc = C, .a_type = nn->act, .c_type = nn->act};
        ZRT_CHECK(nn->ops->gemm(nn, &g));
    }
    zrt_gemm g = {.trans_a = true, .M = OC, .N = C, .K = N, .alpha = 1.0f, .beta = 1.0f, .A = dout, .lda = OC,
                  .B = inp, .ldb = C, .C = dw, .ldc = C, .a_type = nn->act, .b_type = nn->act};
    ZRT_CHECK(nn->ops->gemm(nn, &g));
    return db ? nn->ops->bias_backward(nn, db, dout, N, OC) : ZRT_OK;
}

zrt_status zrt_nn_linear_residual_norm(zrt_nn *nn, zrt_act *h, zrt_act *out, const zrt_norm *norm, const zrt_act *inp,
                                       const float *w, const float *b, const zrt_act *x, int N, int C, int OC)
{
    bool fuse = nn->ops->fuse_residual;
    ZRT_CHECK(zrt_nn_linear_forward(nn, h, inp, w, fuse ? NULL : b, fuse ? NULL : x, N, C, OC));
    return nn->ops->residual_norm(nn, h, out, norm, fuse ? x : NULL, h, b, N, OC);
}

static void add(zrt_nn_buffers *b, void **slot, int64_t count, zrt_nn_buffer_kind kind, const char *name)
{
    if (b->n == b->cap) {
        int cap = b->cap ? 2 * b->cap : 64;
        zrt_nn_buffer *list = realloc(b->list, (size_t)cap * sizeof *list);
        if (!list) {
            b->cap = -1; /* alloc reports it */
            return;
        }
        b->list = list, b->cap = cap;
    }
    if (b->cap > 0) b->list[b->n++] = (zrt_nn_buffer){slot, count, kind, name};
}

void zrt_nn_buffers_act(zrt_nn_buffers *b, zrt_act **slot, int64_t count, const char *name)
{
    add(b, (void **)slot, count, ZRT_NN_ACTIVATION, name);
}

void zrt_nn_buffers_stat(zrt_nn_buffers *b, float **slot, int64_t count, const char *name)
{
    add(b, (void **)slot, count, ZRT_NN_STATISTIC, name);
}

zrt_status zrt_nn_buffers_alloc(zrt_nn_buffers *b, zrt_nn_model *m)
{
    if (b->cap < 0) return zrt_set_error(ZRT_ERR_NOMEM, "%s: out of memory for the activation table", m->nn.model);
    for (int i = 0; i < b->n; i++) {
        const zrt_nn_buffer *e = &b->list[i];
        size_t bytes = e->kind == ZRT_NN_ACTIVATION ? zrt_nn_act_bytes(&m->nn, e->count)
                                                    : (size_t)e->count * sizeof(float);
        ZRT_CHECK(zrt_nn_model_alloc(m, bytes, e->name, e->slot));
    }
    return ZRT_OK;
}

void zrt_nn_buffers_free(zrt_nn_buffers *b, zrt_nn_model *m)
{
    for (int i = 0; i < b->n; i++)
        if (*b->list[i].slot) zrt_nn_model_free(m, *b->list[i].slot), *b->list[i].slot = NULL;
    free(b->list);
    *b = (zrt_nn_buffers){0};
}

zrt_status zrt_nn_decode_needs_cache(const char *model)
{
    return zrt_set_error(ZRT_ERR_UNSUPPORTED, "%s: decode needs every block's activations (made with "
                                              "activation_checkpointing)", model);
}
