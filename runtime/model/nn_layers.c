/* nn_layers.c: the linear layer and the activation-buffer table of
 * nn_layers.h, over nn.h's ops. */
#include "nn_layers.h"

#include <stdlib.h>

zrt_status zrt_nn_linear_forward(zrt_nn *nn, float *out, const float *inp, const float *w, const float *b,
                                 const float *residual, int N, int C, int OC)
{
    bool init = b || residual;
    if (init) ZRT_CHECK(nn->ops->init_rows(nn, out, b, residual, N, OC));
    zrt_gemm g = {.trans_b = true, .M = N, .N = OC, .K = C, .alpha = 1.0f, .beta = init ? 1.0f : 0.0f, .A = inp,
                  .lda = C, .B = w, .ldb = C, .C = out, .ldc = OC};
    return nn->ops->gemm(nn, &g);
}

zrt_status zrt_nn_linear_backward(zrt_nn *nn, float *dinp, float *dw, float *db, const float *dout, const float *inp,
                                  const float *w, int N, int C, int OC)
{
    if (dinp) {
        zrt_gemm g = {.M = N, .N = C, .K = OC, .alpha = 1.0f, .A = dout, .lda = OC, .B = w, .ldb = C, .C = dinp,
                      .ldc = C};
        ZRT_CHECK(nn->ops->gemm(nn, &g));
    }
    zrt_gemm g = {.trans_a = true, .M = OC, .N = C, .K = N, .alpha = 1.0f, .beta = 1.0f, .A = dout, .lda = OC,
                  .B = inp, .ldb = C, .C = dw, .ldc = C};
    ZRT_CHECK(nn->ops->gemm(nn, &g));
    return db ? nn->ops->bias_backward(nn, db, dout, N, OC) : ZRT_OK;
}

zrt_status zrt_nn_linear_residual_norm(zrt_nn *nn, float *h, float *out, const zrt_norm *norm, const float *inp,
                                       const float *w, const float *b, const float *x, int N, int C, int OC)
{
    bool fuse = nn->ops->fuse_residual;
    ZRT_CHECK(zrt_nn_linear_forward(nn, h, inp, w, fuse ? NULL : b, fuse ? NULL : x, N, C, OC));
    return nn->ops->residual_norm(nn, h, out, norm, fuse ? x : NULL, h, b, N, OC);
}

void zrt_nn_buffers_add(zrt_nn_buffers *b, float **slot, int64_t count, const char *name)
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
    if (b->cap > 0) b->list[b->n++] = (zrt_nn_buffer){slot, count, name};
}

zrt_status zrt_nn_buffers_alloc(zrt_nn_buffers *b, zrt_nn_model *m)
{
    if (b->cap < 0) return zrt_set_error(ZRT_ERR_NOMEM, "%s: out of memory for the activation table", m->nn.model);
    for (int i = 0; i < b->n; i++) {
        size_t bytes = (size_t)b->list[i].count * sizeof(float);
        ZRT_CHECK(zrt_nn_model_alloc(m, bytes, b->list[i].name, b->list[i].slot));
        b->bytes += (int64_t)bytes;
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
