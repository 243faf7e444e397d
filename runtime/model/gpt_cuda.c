/* gpt_cuda.c: the GPT of gpt.c on a cuda device -- the same units, ops and
 * activations (model_shape.c), the same math op for op: matmuls through
 * cuBLASLt (cuda_blas.c), the rest kernels/model_kernels.cu. Read it beside
 * gpt.c: every function here has its namesake there, which is the
 * reference tests/test_cuda_model.c holds it to.
 *
 * Attention: per batch row, one strided-batched matmul over the heads
 * (Q, K, V are views into qkv with ld 3C and head stride hs, as in gpt.c),
 * then one causal softmax kernel over every (batch, head) square. The full
 * T x T product is computed and the upper triangle zeroed, as on the CPU; a
 * flash-style kernel that skips it is not written yet (docs/gpu-status.md).
 * Streams: every op enqueues on the caller's stream and returns; nothing
 * here waits for the GPU.
 */
#ifdef ZRT_HAVE_CUDA

#include "cuda_model.h"
#include "model_kernels.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
    zrt_cuda_model cuda;
    zrt_gpt_dims d;
    zrt_gpt_acts a;
} gpt_cuda;

static zrt_status gemm(const gpt_cuda *g, const zrt_cuda_op *o, zrt_gemm x)
{
    return zrt_cuda_gemm(g->cuda.blas, o->stream, &x);
}

static const float *param(const gpt_cuda *g, int unit, int index, const float *params)
{
    return params + g->cuda.base.params[unit][index].offset;
}

static float *grad(const gpt_cuda *g, int unit, int index, float *grads)
{
    return grads + g->cuda.base.params[unit][index].offset;
}

/* ---- forward ------------------------------------------------------------------------------------ */

/* out (N, OC) = inp (N, C) @ w^T + b + residual, as gpt.c's matmul_forward. */
static zrt_status matmul_forward(const gpt_cuda *g, const zrt_cuda_op *o, float *out, const float *inp, const float *w,
                                 const float *b, const float *residual, int N, int C, int OC)
{
    ZRT_CUDA_CHECK(zrt_cuda_init_rows(o->stream, out, b, residual, N, OC));
    return gemm(g, o, (zrt_gemm){.trans_b = true, .M = N, .N = OC, .K = C, .alpha = 1.0f, .beta = b || residual ? 1.0f : 0.0f,
                                 .A = inp, .lda = C, .B = w, .ldb = C, .C = out, .ldc = OC});
}

static zrt_status attention_forward(const gpt_cuda *g, const zrt_cuda_op *o, float *out, float *preatt, float *att,
                                    const float *qkv)
{
    int B = o->batch, T = g->d.T, C = g->d.C, NH = g->d.NH, hs = C / NH;
    int64_t square = (int64_t)T * T;
    float scale = 1.0f / sqrtf((float)hs);
    for (int b = 0; b < B; b++) { /* preatt = scale Q K^T for every head of row b */
        const float *q = qkv + (int64_t)b * T * 3 * C, *k = q + C;
        ZRT_CHECK(gemm(g, o, (zrt_gemm){.trans_b = true, .M = T, .N = T, .K = hs, .alpha = scale, .A = q, .lda = 3 * C,
                                        .B = k, .ldb = 3 * C, .C = preatt + b * NH * square, .ldc = T, .batch = NH,
                                        .stride_a = hs, .stride_b = hs, .stride_c = square}));
    }
    ZRT_CUDA_CHECK(zrt_cuda_causal_softmax_forward(o->stream, att, preatt, B * NH, T));
    for (int b = 0; b < B; b++) { /* out = att V */
        const float *v = qkv + (int64_t)b * T * 3 * C + 2 * C;
        ZRT_CHECK(gemm(g, o, (zrt_gemm){.M = T, .N = hs, .K = T, .alpha = 1.0f, .A = att + b * NH * square, .lda = T,
                                        .B = v, .ldb = 3 * C, .C = out + (int64_t)b * T * C, .ldc = C, .batch = NH,
                                        .stride_a = square, .stride_b = hs, .stride_c = hs}));
    }
    return ZRT_OK;
}

static zrt_status block_forward(const gpt_cuda *g, const zrt_cuda_op *o, int l, const float *p, const float *x)
{
    zrt_gpt_block_acts *a = &g->a.blocks[l];
    int N = o->batch * g->d.T, C = g->d.C, H = g->d.H, u = l + 1;
    void *s = o->stream;
    ZRT_CUDA_CHECK(zrt_cuda_layernorm_forward(s, a->ln1, a->ln1_mean, a->ln1_rstd, x, param(g, u, ZRT_GPT_LN1W, p),
                                          param(g, u, ZRT_GPT_LN1B, p), N, C));
    ZRT_CHECK(matmul_forward(g, o, a->qkv, a->ln1, param(g, u, ZRT_GPT_QKVW, p), param(g, u, ZRT_GPT_QKVB, p), NULL, N,
                             C, 3 * C));
    ZRT_CHECK(attention_forward(g, o, a->atty, a->preatt, a->att, a->qkv));
    ZRT_CHECK(matmul_forward(g, o, a->residual2, a->atty, param(g, u, ZRT_GPT_ATTPROJW, p),
                             param(g, u, ZRT_GPT_ATTPROJB, p), x, N, C, C));
    ZRT_CUDA_CHECK(zrt_cuda_layernorm_forward(s, a->ln2, a->ln2_mean, a->ln2_rstd, a->residual2,
                                          param(g, u, ZRT_GPT_LN2W, p), param(g, u, ZRT_GPT_LN2B, p), N, C));
    ZRT_CHECK(matmul_forward(g, o, a->fch, a->ln2, param(g, u, ZRT_GPT_FCW, p), NULL, NULL, N, C, H));
    ZRT_CUDA_CHECK(zrt_cuda_bias_gelu_forward(s, a->fch, a->fch_gelu, param(g, u, ZRT_GPT_FCB, p), N, H));
    return matmul_forward(g, o, a->residual3, a->fch_gelu, param(g, u, ZRT_GPT_FCPROJW, p),
                          param(g, u, ZRT_GPT_FCPROJB, p), a->residual2, N, H, C);
}

static zrt_status forward(zrt_model *base, const zrt_cuda_op *o)
{
    gpt_cuda *g = (gpt_cuda *)base;
    int N = o->batch * g->d.T, C = g->d.C, L = g->d.L, op = o->op;
    const float *p = o->params;
    if (op == 0) {
        ZRT_CUDA_CHECK(zrt_cuda_embed_forward(o->stream, g->a.encoded, o->inputs, param(g, 0, 0, p), param(g, 0, 1, p), N,
                                          g->d.T, C, g->d.V, g->cuda.bad));
        return zrt_cuda_model_check_flag(&g->cuda, o, "token", g->d.V);
    }
    if (op <= L) return block_forward(g, o, op - 1, p, zrt_gpt_block_input(&g->a, op - 1));
    if (op == L + 1) {
        ZRT_CUDA_CHECK(zrt_cuda_layernorm_forward(o->stream, g->a.lnf, g->a.lnf_mean, g->a.lnf_rstd,
                                              zrt_gpt_block_input(&g->a, L), param(g, L + 1, 0, p),
                                              param(g, L + 1, 1, p), N, C));
        return ZRT_OK;
    }
    return matmul_forward(g, o, g->a.logits, g->a.lnf, param(g, 0, 0, p), NULL, NULL, N, C, g->d.V); /* tied head */
}

static zrt_status loss(zrt_model *base, const zrt_cuda_op *o, float scale, float divisor, float *loss_sum)
{
    gpt_cuda *g = (gpt_cuda *)base;
    int N = o->batch * g->d.T;
    ZRT_CUDA_CHECK(zrt_cuda_cross_entropy(o->stream, g->a.dlogits, g->a.probs, g->cuda.losses, g->a.logits, o->labels, N,
                                      g->d.V, scale, 0, g->cuda.bad));
    ZRT_CHECK(zrt_cuda_model_check_flag(&g->cuda, o, "target", g->d.V));
    ZRT_CUDA_CHECK(zrt_cuda_loss_mean(o->stream, loss_sum, g->cuda.losses, o->labels, N, divisor));
    return ZRT_OK;
}

/* ---- backward ------------------------------------------------------------------------------------ */

/* dinp = dout @ w (overwritten; NULL: not wanted); dw += dout^T @ inp; db += column sums. */
static zrt_status matmul_backward(const gpt_cuda *g, const zrt_cuda_op *o, float *dinp, float *dw, float *db,
                                  const float *dout, const float *inp, const float *w, int N, int C, int OC)
{
    if (dinp)
        ZRT_CHECK(gemm(g, o, (zrt_gemm){.M = N, .N = C, .K = OC, .alpha = 1.0f, .A = dout, .lda = OC, .B = w, .ldb = C,
                                        .C = dinp, .ldc = C}));
    ZRT_CHECK(gemm(g, o, (zrt_gemm){.trans_a = true, .M = OC, .N = C, .K = N, .alpha = 1.0f, .beta = 1.0f, .A = dout,
                                    .lda = OC, .B = inp, .ldb = C, .C = dw, .ldc = C}));
    if (db) ZRT_CUDA_CHECK(zrt_cuda_bias_backward(o->stream, db, dout, N, OC));
    return ZRT_OK;
}

/* gpt.c's attention_backward, overwriting dqkv. */
static zrt_status attention_backward(const gpt_cuda *g, const zrt_cuda_op *o, float *dqkv, float *dpreatt, float *datt,
                                     const float *dout, const float *qkv, const float *att)
{
    int B = o->batch, T = g->d.T, C = g->d.C, NH = g->d.NH, hs = C / NH;
    int64_t square = (int64_t)T * T, row3 = (int64_t)T * 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    for (int b = 0; b < B; b++) {
        const float *v = qkv + b * row3 + 2 * C, *d = dout + (int64_t)b * T * C, *a = att + b * NH * square;
        ZRT_CHECK(gemm(g, o, (zrt_gemm){.trans_b = true, .M = T, .N = T, .K = hs, .alpha = 1.0f, .A = d, .lda = C,
                                        .B = v, .ldb = 3 * C, .C = datt + b * NH * square, .ldc = T, .batch = NH,
                                        .stride_a = hs, .stride_b = hs, .stride_c = square})); /* datt = dout V^T */
        ZRT_CHECK(gemm(g, o, (zrt_gemm){.trans_a = true, .M = T, .N = hs, .K = T, .alpha = 1.0f, .A = a, .lda = T,
                                        .B = d, .ldb = C, .C = dqkv + b * row3 + 2 * C, .ldc = 3 * C, .batch = NH,
                                        .stride_a = square, .stride_b = hs, .stride_c = hs})); /* dV = att^T dout */
    }
    ZRT_CUDA_CHECK(zrt_cuda_causal_softmax_backward(o->stream, dpreatt, att, datt, B * NH, T));
    for (int b = 0; b < B; b++) {
        const float *q = qkv + b * row3, *k = q + C, *dpre = dpreatt + b * NH * square;
        float *dq = dqkv + b * row3, *dk = dq + C;
        ZRT_CHECK(gemm(g, o, (zrt_gemm){.M = T, .N = hs, .K = T, .alpha = scale, .A = dpre, .lda = T, .B = k,
                                        .ldb = 3 * C, .C = dq, .ldc = 3 * C, .batch = NH, .stride_a = square,
                                        .stride_b = hs, .stride_c = hs})); /* dQ = scale dpre K */
        ZRT_CHECK(gemm(g, o, (zrt_gemm){.trans_a = true, .M = T, .N = hs, .K = T, .alpha = scale, .A = dpre, .lda = T,
                                        .B = q, .ldb = 3 * C, .C = dk, .ldc = 3 * C, .batch = NH, .stride_a = square,
                                        .stride_b = hs, .stride_c = hs})); /* dK = scale dpre^T Q */
    }
    return ZRT_OK;
}

/* dres: d(block output) in; dres_in: d(block input) out (overwritten). */
static zrt_status block_backward(gpt_cuda *g, const zrt_cuda_op *o, int l, const float *p, float *gr)
{
    zrt_gpt_block_acts *a = &g->a.blocks[l];
    zrt_gpt_acts *s = &g->a;
    int N = o->batch * g->d.T, C = g->d.C, H = g->d.H, u = l + 1;
    size_t nc = (size_t)N * C * sizeof(float);
    const float *x = zrt_gpt_block_input(s, l);
    ZRT_CUDA_CHECK(zrt_cuda_copy(o->stream, s->dres2, s->dres, nc)); /* residual3 = residual2 + fcproj */
    ZRT_CHECK(matmul_backward(g, o, s->dfch_gelu, grad(g, u, ZRT_GPT_FCPROJW, gr), grad(g, u, ZRT_GPT_FCPROJB, gr),
                              s->dres, a->fch_gelu, param(g, u, ZRT_GPT_FCPROJW, p), N, H, C));
    ZRT_CUDA_CHECK(zrt_cuda_gelu_backward(o->stream, s->dfch, a->fch, s->dfch_gelu, (size_t)N * H));
    ZRT_CHECK(matmul_backward(g, o, s->dln, grad(g, u, ZRT_GPT_FCW, gr), grad(g, u, ZRT_GPT_FCB, gr), s->dfch, a->ln2,
                              param(g, u, ZRT_GPT_FCW, p), N, C, H));
    ZRT_CUDA_CHECK(zrt_cuda_layernorm_backward(o->stream, s->dres2, grad(g, u, ZRT_GPT_LN2W, gr),
                                           grad(g, u, ZRT_GPT_LN2B, gr), s->dln, a->residual2,
                                           param(g, u, ZRT_GPT_LN2W, p), a->ln2_mean, a->ln2_rstd, N, C));
    ZRT_CUDA_CHECK(zrt_cuda_copy(o->stream, s->dres_in, s->dres2, nc)); /* residual2 = x + attproj */
    ZRT_CHECK(matmul_backward(g, o, s->datty, grad(g, u, ZRT_GPT_ATTPROJW, gr), grad(g, u, ZRT_GPT_ATTPROJB, gr),
                              s->dres2, a->atty, param(g, u, ZRT_GPT_ATTPROJW, p), N, C, C));
    ZRT_CHECK(attention_backward(g, o, s->dqkv, s->dpreatt, s->datt, s->datty, a->qkv, a->att));
    ZRT_CHECK(matmul_backward(g, o, s->dln, grad(g, u, ZRT_GPT_QKVW, gr), grad(g, u, ZRT_GPT_QKVB, gr), s->dqkv, a->ln1,
                              param(g, u, ZRT_GPT_QKVW, p), N, C, 3 * C));
    ZRT_CUDA_CHECK(zrt_cuda_layernorm_backward(o->stream, s->dres_in, grad(g, u, ZRT_GPT_LN1W, gr),
                                           grad(g, u, ZRT_GPT_LN1B, gr), s->dln, x, param(g, u, ZRT_GPT_LN1W, p),
                                           a->ln1_mean, a->ln1_rstd, N, C));
    return ZRT_OK;
}

static zrt_status backward(zrt_model *base, const zrt_cuda_op *o)
{
    gpt_cuda *g = (gpt_cuda *)base;
    int N = o->batch * g->d.T, C = g->d.C, L = g->d.L, op = o->op;
    const float *p = o->params;
    float *gr = o->grads;
    if (op == L + 2) /* head: d(lnf) into dres, d(wte) += dlogits^T lnf */
        return matmul_backward(g, o, g->a.dres, grad(g, 0, 0, gr), NULL, g->a.dlogits, g->a.lnf, param(g, 0, 0, p), N,
                               C, g->d.V);
    if (op == L + 1) {
        ZRT_CUDA_CHECK(zrt_cuda_zero(o->stream, g->a.dres_in, (size_t)N * C * sizeof(float)));
        ZRT_CUDA_CHECK(zrt_cuda_layernorm_backward(o->stream, g->a.dres_in, grad(g, L + 1, 0, gr), grad(g, L + 1, 1, gr),
                                               g->a.dres, zrt_gpt_block_input(&g->a, L), param(g, L + 1, 0, p),
                                               g->a.lnf_mean, g->a.lnf_rstd, N, C));
        zrt_gpt_swap_residual_grads(&g->a);
        return ZRT_OK;
    }
    if (op >= 1) {
        ZRT_CHECK(block_backward(g, o, op - 1, p, gr));
        zrt_gpt_swap_residual_grads(&g->a);
        return ZRT_OK;
    }
    ZRT_CUDA_CHECK(zrt_cuda_embed_backward(o->stream, grad(g, 0, 0, gr), grad(g, 0, 1, gr), g->a.dres, o->inputs, N, g->d.T,
                                       C, g->d.V));
    return ZRT_OK;
}

/* ---- setup ------------------------------------------------------------------------------------------ */

static void free_buffers(zrt_model *base)
{
    gpt_cuda *g = (gpt_cuda *)base;
    zrt_gpt_acts_free(&g->a, &g->d, base->device);
}

static const zrt_cuda_model_ops gpt_cuda_ops = {forward, loss, backward, free_buffers};

zrt_status zrt_model_gpt_cuda_create(const zrt_model_config *cfg, zrt_device *device, int micro_batch,
                                     zrt_model **out)
{
    zrt_gpt_dims dims;
    ZRT_CHECK(zrt_gpt_dims_of(cfg, micro_batch, &dims));
    gpt_cuda *g = calloc(1, sizeof *g);
    if (!g) return zrt_set_error(ZRT_ERR_NOMEM, "gpt: out of memory");
    g->d = dims;
    zrt_model *m = &g->cuda.base;
    zrt_status status = zrt_gpt_declare(m, &dims);
    if (status != ZRT_OK) {
        free(g); /* the tables are not there when declaring fails */
        return status;
    }
    status = zrt_cuda_model_init(&g->cuda, ZRT_MODEL_GPT, device, micro_batch, dims.T,
                                            zrt_matmul_math_of(cfg), &gpt_cuda_ops);
    if (status == ZRT_OK) status = zrt_gpt_acts_alloc(&g->a, &dims, micro_batch, device);
    if (status != ZRT_OK) {
        m->destroy(m);
        return status;
    }
    *out = m;
    return ZRT_OK;
}

#else
typedef int zrt_gpt_cuda_absent; /* built without CUDA: the CUDA models are not registered */
#endif
