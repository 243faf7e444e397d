/* nn_attention.c: causal attention (nn.h's zrt_attn_shape: grouped-query
 * heads, T queries against S keys) written once over a device's gemm and its
 * causal softmax; nn_cpu.c and nn_cuda.c hand it their softmax.
 *
 * Why strided batches over the kv heads: query head h = g G + j (G = NH /
 * NKV) reads kv head g. For each sequence b and each j < G one gemm batches
 * the NKV heads g: the query heads g G + j sit G hs columns apart, the kv
 * heads hs apart, their squares G T S apart -- no zero stride (cuBLASLt's
 * broadcast is not relied on). A kv head's gradient sums its G query heads
 * in order j = 0, 1, ...: the first gemm writes (beta 0), the rest add.
 * With G = 1 this is the multi-head attention of gpt.c before the ops: the
 * same gemms, the same bits. The full T x S product is computed and the
 * part after the causal limit zeroed by the softmax.
 */
#include "nn_device.h"

#include <math.h>

zrt_status zrt_nn_attention_check(const zrt_nn *nn, const zrt_attn_shape *a)
{
    bool ok = a->B >= 1 && a->T >= 1 && a->S >= a->T && a->NH >= 1 && a->NKV >= 1 && a->NH % a->NKV == 0 &&
              a->hs >= 1 && a->ld_q >= a->NH * a->hs && a->ld_kv >= a->NKV * a->hs && a->ld_out >= a->NH * a->hs;
    if (ok) return ZRT_OK;
    return zrt_set_error(ZRT_ERR_INVALID,
                         "%s: attention of B %d, T %d against S %d, %d heads on %d kv heads of size %d "
                         "(ld q %d, kv %d, out %d): needs S >= T >= 1, heads a multiple of kv heads, rows that hold them",
                         nn->model, a->B, a->T, a->S, a->NH, a->NKV, a->hs, a->ld_q, a->ld_kv, a->ld_out);
}

/* Where sequence b's query head j (of each group), kv heads and squares start. */
typedef struct {
    int64_t q, kv, out, square;
} head_start;

static head_start start(const zrt_attn_shape *a, int b, int j)
{
    int64_t sq = (int64_t)a->T * a->S;
    return (head_start){.q = (int64_t)b * a->T * a->ld_q + (int64_t)j * a->hs,
                        .kv = (int64_t)b * a->S * a->ld_kv,
                        .out = (int64_t)b * a->T * a->ld_out + (int64_t)j * a->hs,
                        .square = ((int64_t)b * a->NH + j) * sq};
}

static zrt_status gemm(zrt_nn *nn, zrt_gemm g) { return nn->ops->gemm(nn, &g); }

zrt_status zrt_nn_attention_forward_with(zrt_nn *nn, const zrt_attn_shape *a, float *out, float *att, float *pre,
                                         const float *q, const float *k, const float *v, zrt_nn_softmax_forward softmax)
{
    ZRT_CHECK(zrt_nn_attention_check(nn, a));
    int T = a->T, S = a->S, hs = a->hs, G = a->NH / a->NKV;
    int64_t sq = (int64_t)T * S, heads = (int64_t)G * hs;
    float scale = 1.0f / sqrtf((float)hs);
    for (int b = 0; b < a->B; b++)
        for (int j = 0; j < G; j++) { /* pre = scale Q K^T */
            head_start o = start(a, b, j);
            ZRT_CHECK(gemm(nn, (zrt_gemm){.trans_b = true, .M = T, .N = S, .K = hs, .alpha = scale, .A = q + o.q,
                                          .lda = a->ld_q, .B = k + o.kv, .ldb = a->ld_kv, .C = pre + o.square, .ldc = S,
                                          .batch = a->NKV, .stride_a = heads, .stride_b = hs, .stride_c = G * sq}));
        }
    ZRT_CHECK(softmax(nn, att, pre, a->B * a->NH, T, S));
    for (int b = 0; b < a->B; b++)
        for (int j = 0; j < G; j++) { /* out = att V */
            head_start o = start(a, b, j);
            ZRT_CHECK(gemm(nn, (zrt_gemm){.M = T, .N = hs, .K = S, .alpha = 1.0f, .A = att + o.square, .lda = S,
                                          .B = v + o.kv, .ldb = a->ld_kv, .C = out + o.out, .ldc = a->ld_out,
                                          .batch = a->NKV, .stride_a = G * sq, .stride_b = hs, .stride_c = heads}));
        }
    return ZRT_OK;
}

zrt_status zrt_nn_attention_backward_with(zrt_nn *nn, const zrt_attn_shape *a, float *dq, float *dk, float *dv,
                                          float *datt, float *dpre, const float *dout, const float *q, const float *k,
                                          const float *v, const float *att, zrt_nn_softmax_backward softmax)
{
    ZRT_CHECK(zrt_nn_attention_check(nn, a));
    int T = a->T, S = a->S, hs = a->hs, G = a->NH / a->NKV;
    int64_t sq = (int64_t)T * S, heads = (int64_t)G * hs;
    float scale = 1.0f / sqrtf((float)hs);
    for (int b = 0; b < a->B; b++)
        for (int j = 0; j < G; j++) {
            head_start o = start(a, b, j);
            float beta = j > 0 ? 1.0f : 0.0f; /* a kv head sums its query heads */
            ZRT_CHECK(gemm(nn, (zrt_gemm){.trans_b = true, .M = T, .N = S, .K = hs, .alpha = 1.0f, .A = dout + o.out,
                                          .lda = a->ld_out, .B = v + o.kv, .ldb = a->ld_kv, .C = datt + o.square,
                                          .ldc = S, .batch = a->NKV, .stride_a = heads, .stride_b = hs,
                                          .stride_c = G * sq})); /* datt = dout V^T */
            ZRT_CHECK(gemm(nn, (zrt_gemm){.trans_a = true, .M = S, .N = hs, .K = T, .alpha = 1.0f, .beta = beta,
                                          .A = att + o.square, .lda = S, .B = dout + o.out, .ldb = a->ld_out,
                                          .C = dv + o.kv, .ldc = a->ld_kv, .batch = a->NKV, .stride_a = G * sq,
                                          .stride_b = heads, .stride_c = hs})); /* dV (+)= att^T dout */
        }
    ZRT_CHECK(softmax(nn, dpre, att, datt, a->B * a->NH, T, S));
    for (int b = 0; b < a->B; b++)
        for (int j = 0; j < G; j++) {
            head_start o = start(a, b, j);
            float beta = j > 0 ? 1.0f : 0.0f;
            ZRT_CHECK(gemm(nn, (zrt_gemm){.M = T, .N = hs, .K = S, .alpha = scale, .A = dpre + o.square, .lda = S,
                                          .B = k + o.kv, .ldb = a->ld_kv, .C = dq + o.q, .ldc = a->ld_q,
                                          .batch = a->NKV, .stride_a = G * sq, .stride_b = hs,
                                          .stride_c = heads})); /* dQ = scale dpre K */
            ZRT_CHECK(gemm(nn, (zrt_gemm){.trans_a = true, .M = S, .N = hs, .K = T, .alpha = scale, .beta = beta,
                                          .A = dpre + o.square, .lda = S, .B = q + o.q, .ldb = a->ld_q,
                                          .C = dk + o.kv, .ldc = a->ld_kv, .batch = a->NKV, .stride_a = G * sq,
                                          .stride_b = heads, .stride_c = hs})); /* dK (+)= scale dpre^T Q */
        }
    return ZRT_OK;
}
