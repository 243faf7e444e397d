/* flash.h: causal attention's shape and its per-element math in
 * FlashAttention-2's form (Dao 2023), shared by the cpu table's blocked C
 * (runtime/model/nn_attention.c), the CUDA kernels (kernels/flash_kernels.cu)
 * and the plain references (tests/model_refs.h).
 *
 * Why this form: the forward keeps only the output and each query row's
 * log-sum-exp L = m + log(l) (m the row's running max of the scaled scores,
 * l the running sum of exp(score - m)); the backward recomputes a block's
 * probabilities as exp(score - L) and needs D = rowsum(dO * O) per row. No
 * T x S matrix is ever stored: memory is linear in the sequence length.
 *
 * Invariants: query t of T sits at position S - T + t and sees keys
 * 0 .. S - T + t (at least key 0, so every row's max is finite after the
 * first key block); blocks of keys are visited from key 0 upwards, the same
 * order on every path. Check: tests/test_nn_ops.c, test_cuda_kernels.c.
 */
#ifndef ZRT_KERNELS_FLASH_H
#define ZRT_KERNELS_FLASH_H

#include <math.h>
#include <stdint.h>

#include "hd.h"

/* Causal attention of B sequences: T query positions against S key
 * positions (S >= T; query t sits at position S - T + t and sees keys
 * 0..S - T + t: training has S == T, a decode step T == 1). NH query heads,
 * NKV key/value heads (NH % NKV == 0; query head h reads kv head
 * h / (NH / NKV): grouped-query attention), head size hs. Row r of q is
 * position r % T of sequence r / T, head h at columns [h hs, (h + 1) hs),
 * rows ld_q apart; k and v likewise (rows of sequence b: b S .. b S + S - 1,
 * ld_kv apart); out (B T rows, ld_out), head h at columns h hs; lse
 * (B, NH, T) fp32, row (b, h, t) at (b NH + h) T + t. */
typedef struct {
    int B, T, S, NH, NKV, hs;
    int ld_q, ld_kv, ld_out;
} zrt_attn_shape;

/* Element offsets of sequence b's row t (or key s) at head h (or kv head g). */
ZRT_HD int64_t zrt_flash_q_at(const zrt_attn_shape *a, int b, int t, int h)
{
    return ((int64_t)b * a->T + t) * a->ld_q + (int64_t)h * a->hs;
}
ZRT_HD int64_t zrt_flash_kv_at(const zrt_attn_shape *a, int b, int s, int g)
{
    return ((int64_t)b * a->S + s) * a->ld_kv + (int64_t)g * a->hs;
}
ZRT_HD int64_t zrt_flash_out_at(const zrt_attn_shape *a, int b, int t, int h)
{
    return ((int64_t)b * a->T + t) * a->ld_out + (int64_t)h * a->hs;
}
ZRT_HD int64_t zrt_flash_lse_at(const zrt_attn_shape *a, int b, int h, int t)
{
    return ((int64_t)b * a->NH + h) * a->T + t;
}

/* The keys query t sees: S - T + t + 1. */
ZRT_HD int zrt_flash_keys(const zrt_attn_shape *a, int t) { return a->S - a->T + t + 1; }

/* Of a key block starting at s0 with nk keys, how many query t sees (0..nk). */
ZRT_HD int zrt_flash_visible(const zrt_attn_shape *a, int t, int s0, int nk)
{
    int n = zrt_flash_keys(a, t) - s0;
    return n < 0 ? 0 : n > nk ? nk : n;
}

/* The factor a row's sum and output are rescaled by when its max moves from
 * m_old to m_new (m_old -inf: nothing yet, 0). */
ZRT_HD float zrt_flash_rescale(float m_old, float m_new) { return m_old == -INFINITY ? 0.0f : expf(m_old - m_new); }

/* The row's log-sum-exp from its max and sum. */
ZRT_HD float zrt_flash_lse(float m, float l) { return m + logf(l); }

/* A probability recomputed in backward from the scaled score and the row's lse. */
ZRT_HD float zrt_flash_p(float score, float lse) { return expf(score - lse); }

/* d(score) of one element: P (dP - D), D = rowsum(dO * O) (the scale goes to dq, dk). */
ZRT_HD float zrt_flash_ds(float p, float dp, float D) { return p * (dp - D); }

#endif
