/* nn_attention.c: causal grouped-query attention (nn.h's zrt_attn_shape):
 * the shape check every table uses, and the cpu table's attention --
 * FlashAttention-2's blocked algorithm in C over cblas_sgemm on blocks.
 *
 * Why blocked: the old form kept the softmax (B, NH, T, S) for the backward
 * and as much scratch again -- memory quadratic in the sequence. Here a
 * query block (BQ rows of one head) walks the key blocks (BK keys) from key
 * 0 up to its causal limit, keeping a running max m and sum l per row and
 * rescaling its output rows when m moves (kernels/flash.h); the forward
 * saves only out and lse = m + log l. The backward recomputes each block's
 * probabilities P = exp(scale q k - lse), with D = rowsum(dO * O):
 *   dV += P^T dO,  dP = dO V^T,  dS = P (dP - D),  dQ += scale dS K,
 *   dK += scale dS^T Q.
 * Scratch: two BQ x BK tiles and three BQ vectors on the stack (33 KB):
 * bounded by the block sizes, never T x S. Exps and row sums go through
 * vecmath's vector path, as the softmax they replace did.
 *
 * Order (the same bits on every run and for any batch split): per sequence,
 * per query head, query blocks in order, key blocks from 0; a kv head's dK,
 * dV sum its query heads in order h = g G, g G + 1, ... . Key blocks start at key 0
 * and BK apart whatever T is, so a decode step (T < S) walks the same key
 * blocks as the prefill it continues.
 */
#include "nn_device.h"

#include "vecmath.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

enum { BQ = 64, BK = 64 };

typedef struct {
    float s[BQ * BK];  /* scores, then P */
    float dp[BQ * BK]; /* dP, then dS */
    float m[BQ], l[BQ], d[BQ];
} flash_tiles;

/* One query block: rows t0 .. t0 + nq - 1 of sequence b, query head h on kv head g; keys 0 .. end - 1. */
typedef struct {
    int b, h, g, t0, nq, end;
    float scale;
} qblock;

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

static const zrt_vecmath *vm(void) { return zrt_vecmath_best(); }

static void sgemm(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                  float beta, float *C, int ldc)
{
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda,
                B, ldb, beta, C, ldc);
}

static qblock query_block(const zrt_attn_shape *a, int b, int h, int t0)
{
    int nq = a->T - t0 < BQ ? a->T - t0 : BQ;
    return (qblock){.b = b, .h = h, .g = h / (a->NH / a->NKV), .t0 = t0, .nq = nq,
                    .end = zrt_flash_keys(a, t0 + nq - 1), .scale = 1.0f / sqrtf((float)a->hs)};
}

/* The query blocks in their fixed order: sequence, query head, rows. */
static int64_t query_blocks(const zrt_attn_shape *a) { return (int64_t)a->B * a->NH * ((a->T + BQ - 1) / BQ); }

static qblock query_block_at(const zrt_attn_shape *a, int64_t i)
{
    int per_head = (a->T + BQ - 1) / BQ;
    int64_t head = i / per_head;
    return query_block(a, (int)(head / a->NH), (int)(head % a->NH), (int)(i % per_head) * BQ);
}

/* Scores row -> unnormalized P of one query row against a key block: the
 * running max and sum updated, the output row rescaled (not on the first
 * block, whose product overwrites it). */
static void online_row(const zrt_attn_shape *a, int t, int s0, int nk, float *row, float *m, float *l, float *o)
{
    int vis = zrt_flash_visible(a, t, s0, nk);
    if (vis > 0) {
        float mx = fmaxf(*m, vm()->max(row, vis)), alpha = zrt_flash_rescale(*m, mx);
        float sum = vm()->exp_sum(row, row, mx, vis);
        *l = *l * alpha + sum, *m = mx;
        for (int i = 0; s0 > 0 && alpha != 1.0f && i < a->hs; i++) o[i] *= alpha;
    }
    memset(row + vis, 0, (size_t)(nk - vis) * sizeof(float));
}

static void forward_block(const zrt_attn_shape *a, const qblock *qb, float *out, float *lse, const float *q,
                          const float *k, const float *v, flash_tiles *w)
{
    const float *Q = q + zrt_flash_q_at(a, qb->b, qb->t0, qb->h);
    float *O = out + zrt_flash_out_at(a, qb->b, qb->t0, qb->h);
    for (int r = 0; r < qb->nq; r++) w->m[r] = -INFINITY, w->l[r] = 0.0f;
    for (int s0 = 0; s0 < qb->end; s0 += BK) {
        int nk = qb->end - s0 < BK ? qb->end - s0 : BK;
        int64_t kv = zrt_flash_kv_at(a, qb->b, s0, qb->g);
        sgemm(false, true, qb->nq, nk, a->hs, qb->scale, Q, a->ld_q, k + kv, a->ld_kv, 0.0f, w->s, BK);
        for (int r = 0; r < qb->nq; r++)
            online_row(a, qb->t0 + r, s0, nk, w->s + r * BK, &w->m[r], &w->l[r], O + (int64_t)r * a->ld_out);
        sgemm(false, false, qb->nq, a->hs, nk, 1.0f, w->s, BK, v + kv, a->ld_kv, s0 ? 1.0f : 0.0f, O, a->ld_out);
    }
    for (int r = 0; r < qb->nq; r++) {
        float inv = 1.0f / w->l[r], *o = O + (int64_t)r * a->ld_out;
        for (int i = 0; i < a->hs; i++) o[i] *= inv;
        lse[zrt_flash_lse_at(a, qb->b, qb->h, qb->t0 + r)] = zrt_flash_lse(w->m[r], w->l[r]);
    }
}

zrt_status zrt_nn_flash_forward(zrt_nn *nn, const zrt_attn_shape *a, void *out_, float *lse, const void *q_,
                                const void *k_, const void *v_)
{
    float *out = out_;
    const float *q = q_;
    const float *k = k_;
    const float *v = v_;
    ZRT_CHECK(zrt_nn_attention_check(nn, a));
    flash_tiles w;
    for (int64_t i = 0; i < query_blocks(a); i++) {
        qblock qb = query_block_at(a, i);
        forward_block(a, &qb, out, lse, q, k, v, &w);
    }
    return ZRT_OK;
}

/* The gradients a query block gets from, and gives to, the key block at s0 (nk keys). */
static void backward_tile(const zrt_attn_shape *a, const qblock *qb, int s0, int nk, const float *const in[5],
                          float *dQ, float *dk, float *dv, flash_tiles *w)
{
    const float *Q = in[0], *dO = in[1], *lse = in[2];
    int64_t kv = zrt_flash_kv_at(a, qb->b, s0, qb->g);
    const float *K = in[3] + kv, *V = in[4] + kv;
    sgemm(false, true, qb->nq, nk, a->hs, qb->scale, Q, a->ld_q, K, a->ld_kv, 0.0f, w->s, BK);
    for (int r = 0; r < qb->nq; r++) { /* P = exp(score - lse) where visible, 0 beyond */
        int vis = zrt_flash_visible(a, qb->t0 + r, s0, nk);
        float *row = w->s + r * BK;
        vm()->exp_sum(row, row, lse[r], vis);
        memset(row + vis, 0, (size_t)(nk - vis) * sizeof(float));
    }
    sgemm(true, false, nk, a->hs, qb->nq, 1.0f, w->s, BK, dO, a->ld_out, 1.0f, dv + kv, a->ld_kv);
    sgemm(false, true, qb->nq, nk, a->hs, 1.0f, dO, a->ld_out, V, a->ld_kv, 0.0f, w->dp, BK);
    for (int r = 0; r < qb->nq; r++)
        for (int c = 0; c < nk; c++) w->dp[r * BK + c] = zrt_flash_ds(w->s[r * BK + c], w->dp[r * BK + c], w->d[r]);
    sgemm(false, false, qb->nq, a->hs, nk, qb->scale, w->dp, BK, K, a->ld_kv, 1.0f, dQ, a->ld_q);
    sgemm(true, false, nk, a->hs, qb->nq, qb->scale, w->dp, BK, Q, a->ld_q, 1.0f, dk + kv, a->ld_kv);
}

static void backward_block(const zrt_attn_shape *a, const qblock *qb, float *dq, float *dk, float *dv,
                           const float *dout, const float *out, const float *lse, const float *q, const float *k,
                           const float *v, flash_tiles *w)
{
    int64_t at_q = zrt_flash_q_at(a, qb->b, qb->t0, qb->h), at_o = zrt_flash_out_at(a, qb->b, qb->t0, qb->h);
    for (int r = 0; r < qb->nq; r++) { /* D = rowsum(dO * O) */
        int64_t row = at_o + (int64_t)r * a->ld_out;
        w->d[r] = vm()->dot(dout + row, out + row, a->hs);
    }
    const float *in[5] = {q + at_q, dout + at_o, lse + zrt_flash_lse_at(a, qb->b, qb->h, qb->t0), k, v};
    for (int s0 = 0; s0 < qb->end; s0 += BK)
        backward_tile(a, qb, s0, qb->end - s0 < BK ? qb->end - s0 : BK, in, dq + at_q, dk, dv, w);
}

/* Zeroes the heads' columns (the first `cols`) of `rows` rows ld apart. */
static void zero_rows(float *x, int64_t rows, int ld, int cols)
{
    for (int64_t r = 0; r < rows; r++) memset(x + r * ld, 0, (size_t)cols * sizeof(float));
}

zrt_status zrt_nn_flash_backward(zrt_nn *nn, const zrt_attn_shape *a, void *dq_, void *dk_, void *dv_,
                                 const void *dout_, const void *out_, const float *lse, const void *q_, const void *k_,
                                 const void *v_)
{
    float *dq = dq_;
    float *dk = dk_;
    float *dv = dv_;
    const float *dout = dout_;
    const float *out = out_;
    const float *q = q_;
    const float *k = k_;
    const float *v = v_;
    ZRT_CHECK(zrt_nn_attention_check(nn, a));
    zero_rows(dq, (int64_t)a->B * a->T, a->ld_q, a->NH * a->hs);
    zero_rows(dk, (int64_t)a->B * a->S, a->ld_kv, a->NKV * a->hs);
    zero_rows(dv, (int64_t)a->B * a->S, a->ld_kv, a->NKV * a->hs);
    flash_tiles w;
    for (int64_t i = 0; i < query_blocks(a); i++) {
        qblock qb = query_block_at(a, i);
        backward_block(a, &qb, dq, dk, dv, dout, out, lse, q, k, v, &w);
    }
    return ZRT_OK;
}
