/* flash_tiles.cuh: the device code of kernels/flash_kernels.cu (its top
 * comment has the design), apart from the launchers so that a C compiler
 * can build it too: it is written in the subset of CUDA C++ that C11 also
 * accepts, given tests/cuda_sim.h's definitions of the CUDA keywords and
 * built-ins (threads as pthreads, __syncthreads as a barrier, shared memory
 * filled with NaN). tests/test_flash_sim.c runs these very kernels so in
 * CI, where there is no GPU; test_cuda_kernels runs them on one.
 * Invariant: thread and block indices only through tid(), nthreads(),
 * bx(), by(); shared memory only through ZRT_SHARED_FLOATS (tiles.cuh).
 * q, k, v, out, dout, dq, dk, dv are of the launch's `act` type, read into
 * fp32 tiles and stored rounded (kernels/cast.h); lse is fp32.
 */
#ifndef ZRT_KERNELS_FLASH_TILES_CUH
#define ZRT_KERNELS_FLASH_TILES_CUH

#include "cast.h"
#include "flash.h"
#include "tiles.cuh"

#include <math.h>
#include <stddef.h>

#define FQ 32 /* query rows per tile */
#define FK 32 /* keys per tile */
#define FTHREADS 128

/* A kernel's grid (x, y), FTHREADS threads a block, and its shared memory in bytes (grows with hs). */
typedef struct {
    int x, y;
    size_t shared;
} flash_launch;

static inline int flash_tiles(int n, int per) { return (n + per - 1) / per; }

/* Forward: a block per (query tile, sequence, head); Q, O, K, V tiles, scores, m, l, alpha. */
static inline flash_launch flash_forward_launch(const zrt_attn_shape *a)
{
    size_t floats = (size_t)(2 * FQ + 2 * FK) * a->hs + FQ * FK + 3 * FQ;
    flash_launch l = {flash_tiles(a->T, FQ), a->B * a->NH, floats * sizeof(float)};
    return l;
}

/* dK, dV: a block per (key tile, sequence, kv head); K, V, dK, dV, Q, dO tiles, P, dS, D, lse. */
static inline flash_launch flash_dkdv_launch(const zrt_attn_shape *a)
{
    size_t floats = (size_t)(4 * FK + 2 * FQ) * a->hs + 2 * FQ * FK + 2 * FQ;
    flash_launch l = {flash_tiles(a->S, FK), a->B * a->NKV, floats * sizeof(float)};
    return l;
}

/* dQ: a block per (query tile, sequence, head); Q, dO, dQ, K, V tiles, dS, D, lse. */
static inline flash_launch flash_dq_launch(const zrt_attn_shape *a)
{
    size_t floats = (size_t)(3 * FQ + 2 * FK) * a->hs + FQ * FK + 2 * FQ;
    flash_launch l = {flash_tiles(a->T, FQ), a->B * a->NH, floats * sizeof(float)};
    return l;
}

__device__ __forceinline__ static float dot_hs(const float *a, const float *b, int hs)
{
    float s = 0.0f;
    for (int i = 0; i < hs; i++) s += a[i] * b[i];
    return s;
}

/* dst (rows x hs, dense fp32) = the first n of `rows` rows of src (of type
 * act) from element at on, ld apart; 0 beyond. */
__device__ static void load_rows(float *dst, const void *src, int64_t at, int act, int rows, int n, int ld, int hs)
{
    for (int e = tid(); e < rows * hs; e += nthreads()) {
        int r = e / hs, i = e % hs;
        dst[e] = r < n ? zrt_load_f32(src, (size_t)(at + (int64_t)r * ld + i), act) : 0.0f;
    }
}

/* sum over hs of x[at + i] y[at + i], both of type act. */
__device__ static float dot_act(const void *x, const void *y, int64_t at, int act, int hs)
{
    float s = 0.0f;
    for (int i = 0; i < hs; i++) s += zrt_load_f32(x, (size_t)(at + i), act) * zrt_load_f32(y, (size_t)(at + i), act);
    return s;
}

__device__ static void fill(float *dst, int n, float value)
{
    for (int e = tid(); e < n; e += nthreads()) dst[e] = value;
}

/* Per row of a query tile (threads < FQ): D = rowsum(dO * O) and the row's lse. */
__device__ static void row_stats(const zrt_attn_shape *a, int act, float *sD, float *sL, const void *dout,
                                 const void *out, const float *lse, int b, int h, int t0, int nq)
{
    int r = tid();
    if (r >= FQ) return;
    bool in = r < nq;
    int64_t at = zrt_flash_out_at(a, b, t0 + (in ? r : 0), h);
    sD[r] = in ? dot_act(dout, out, at, act, a->hs) : 0.0f;
    sL[r] = in ? lse[zrt_flash_lse_at(a, b, h, t0 + r)] : 0.0f;
}

/* P of entry (r, c) of a tile: exp(scale q_r k_c - lse_r) where query t0 + r sees key s0 + c, else 0. */
__device__ static float tile_p(const zrt_attn_shape *a, const float *sQ, const float *sK, const float *sL, int r, int c,
                               int t0, int nq, int s0, int nk, float scale)
{
    if (r >= nq || c >= zrt_flash_visible(a, t0 + r, s0, nk)) return 0.0f;
    return zrt_flash_p(scale * dot_hs(sQ + r * a->hs, sK + c * a->hs, a->hs), sL[r]);
}

/* ---- forward ------------------------------------------------------------------------------------ */

/* One row's online softmax over a score tile (in place: scores -> P); its rescale factor into *alpha. */
__device__ static void online_row(float *row, float *m, float *l, float *alpha)
{
    float mx = *m;
    for (int c = 0; c < FK; c++) mx = fmaxf(mx, row[c]);
    if (mx == -INFINITY) { /* a padding row, or no key seen yet */
        for (int c = 0; c < FK; c++) row[c] = 0.0f;
        *alpha = 1.0f;
        return;
    }
    float sum = 0.0f;
    for (int c = 0; c < FK; c++) sum += (row[c] = row[c] == -INFINITY ? 0.0f : expf(row[c] - mx));
    *alpha = zrt_flash_rescale(*m, mx);
    *l = *l * *alpha + sum, *m = mx;
}

__global__ static void flash_forward_kernel(zrt_attn_shape a, int act, void *out, float *lse, const void *q,
                                            const void *k, const void *v, float scale)
{
    ZRT_SHARED_FLOATS(sm);
    int hs = a.hs, t0 = bx() * FQ, b = by() / a.NH, h = by() % a.NH, g = h / (a.NH / a.NKV);
    float *sQ = sm, *sO = sQ + FQ * hs, *sK = sO + FQ * hs, *sV = sK + FK * hs, *sS = sV + FK * hs;
    float *sM = sS + FQ * FK, *sL = sM + FQ, *sA = sL + FQ;
    int nq = min(FQ, a.T - t0), end = zrt_flash_keys(&a, t0 + nq - 1);
    load_rows(sQ, q, zrt_flash_q_at(&a, b, t0, h), act, FQ, nq, a.ld_q, hs);
    fill(sO, FQ * hs, 0.0f), fill(sM, FQ, -INFINITY), fill(sL, FQ, 0.0f);
    for (int s0 = 0; s0 < end; s0 += FK) {
        int nk = min(FK, end - s0);
        __syncthreads(); /* the last tile's readers are done */
        load_rows(sK, k, zrt_flash_kv_at(&a, b, s0, g), act, FK, nk, a.ld_kv, hs);
        load_rows(sV, v, zrt_flash_kv_at(&a, b, s0, g), act, FK, nk, a.ld_kv, hs);
        __syncthreads();
        for (int e = tid(); e < FQ * FK; e += nthreads()) {
            int r = e / FK, c = e % FK;
            bool seen = r < nq && c < zrt_flash_visible(&a, t0 + r, s0, nk);
            sS[e] = seen ? scale * dot_hs(sQ + r * hs, sK + c * hs, hs) : -INFINITY;
        }
        __syncthreads();
        if (tid() < FQ) online_row(sS + tid() * FK, &sM[tid()], &sL[tid()], &sA[tid()]);
        __syncthreads();
        for (int e = tid(); e < FQ * hs; e += nthreads()) {
            int r = e / hs, i = e % hs;
            float acc = sO[e] * sA[r];
            for (int c = 0; c < nk; c++) acc += sS[r * FK + c] * sV[c * hs + i];
            sO[e] = acc;
        }
    }
    __syncthreads();
    for (int e = tid(); e < nq * hs; e += nthreads())
        zrt_store_f32(out, (size_t)(zrt_flash_out_at(&a, b, t0 + e / hs, h) + e % hs), act, sO[e] / sL[e / hs]);
    if (tid() < nq) lse[zrt_flash_lse_at(&a, b, h, t0 + tid())] = zrt_flash_lse(sM[tid()], sL[tid()]);
}

/* ---- backward: dK and dV per key tile ------------------------------------------------------------ */

__global__ static void flash_backward_dkdv_kernel(zrt_attn_shape a, int act, void *dk, void *dv, const void *dout,
                                                  const void *out, const float *lse, const void *q, const void *k,
                                                  const void *v, float scale)
{
    ZRT_SHARED_FLOATS(sm);
    int hs = a.hs, s0 = bx() * FK, b = by() / a.NKV, g = by() % a.NKV, G = a.NH / a.NKV;
    float *sK = sm, *sV = sK + FK * hs, *sdK = sV + FK * hs, *sdV = sdK + FK * hs, *sQ = sdV + FK * hs;
    float *sdO = sQ + FQ * hs, *sP = sdO + FQ * hs, *sdS = sP + FQ * FK, *sD = sdS + FQ * FK, *sL = sD + FQ;
    int nk = min(FK, a.S - s0), first = max(0, s0 - (a.S - a.T)); /* the first query that sees key s0 */
    load_rows(sK, k, zrt_flash_kv_at(&a, b, s0, g), act, FK, nk, a.ld_kv, hs);
    load_rows(sV, v, zrt_flash_kv_at(&a, b, s0, g), act, FK, nk, a.ld_kv, hs);
    fill(sdK, FK * hs, 0.0f), fill(sdV, FK * hs, 0.0f);
    for (int h = g * G; h < (g + 1) * G; h++)
        for (int t0 = first / FQ * FQ; t0 < a.T; t0 += FQ) {
            int nq = min(FQ, a.T - t0);
            __syncthreads();
            load_rows(sQ, q, zrt_flash_q_at(&a, b, t0, h), act, FQ, nq, a.ld_q, hs);
            load_rows(sdO, dout, zrt_flash_out_at(&a, b, t0, h), act, FQ, nq, a.ld_out, hs);
            row_stats(&a, act, sD, sL, dout, out, lse, b, h, t0, nq);
            __syncthreads();
            for (int e = tid(); e < FQ * FK; e += nthreads()) {
                int r = e / FK, c = e % FK;
                float p = tile_p(&a, sQ, sK, sL, r, c, t0, nq, s0, nk, scale);
                sP[e] = p;
                sdS[e] = zrt_flash_ds(p, dot_hs(sdO + r * hs, sV + c * hs, hs), sD[r]);
            }
            __syncthreads();
            for (int e = tid(); e < FK * hs; e += nthreads()) {
                int c = e / hs, i = e % hs;
                float dvs = 0.0f, dks = 0.0f;
                for (int r = 0; r < FQ; r++)
                    dvs += sP[r * FK + c] * sdO[r * hs + i], dks += sdS[r * FK + c] * sQ[r * hs + i];
                sdV[e] += dvs, sdK[e] += scale * dks;
            }
        }
    __syncthreads();
    for (int e = tid(); e < nk * hs; e += nthreads()) {
        size_t at = (size_t)(zrt_flash_kv_at(&a, b, s0 + e / hs, g) + e % hs);
        zrt_store_f32(dk, at, act, sdK[e]), zrt_store_f32(dv, at, act, sdV[e]);
    }
}

/* ---- backward: dQ per query tile ------------------------------------------------------------------ */

__global__ static void flash_backward_dq_kernel(zrt_attn_shape a, int act, void *dq, const void *dout,
                                                const void *out, const float *lse, const void *q, const void *k,
                                                const void *v, float scale)
{
    ZRT_SHARED_FLOATS(sm);
    int hs = a.hs, t0 = bx() * FQ, b = by() / a.NH, h = by() % a.NH, g = h / (a.NH / a.NKV);
    float *sQ = sm, *sdO = sQ + FQ * hs, *sdQ = sdO + FQ * hs, *sK = sdQ + FQ * hs, *sV = sK + FK * hs;
    float *sdS = sV + FK * hs, *sD = sdS + FQ * FK, *sL = sD + FQ;
    int nq = min(FQ, a.T - t0), end = zrt_flash_keys(&a, t0 + nq - 1);
    load_rows(sQ, q, zrt_flash_q_at(&a, b, t0, h), act, FQ, nq, a.ld_q, hs);
    load_rows(sdO, dout, zrt_flash_out_at(&a, b, t0, h), act, FQ, nq, a.ld_out, hs);
    fill(sdQ, FQ * hs, 0.0f);
    row_stats(&a, act, sD, sL, dout, out, lse, b, h, t0, nq);
    for (int s0 = 0; s0 < end; s0 += FK) {
        int nk = min(FK, end - s0);
        __syncthreads();
        load_rows(sK, k, zrt_flash_kv_at(&a, b, s0, g), act, FK, nk, a.ld_kv, hs);
        load_rows(sV, v, zrt_flash_kv_at(&a, b, s0, g), act, FK, nk, a.ld_kv, hs);
        __syncthreads();
        for (int e = tid(); e < FQ * FK; e += nthreads()) {
            int r = e / FK, c = e % FK;
            float p = tile_p(&a, sQ, sK, sL, r, c, t0, nq, s0, nk, scale);
            sdS[e] = zrt_flash_ds(p, dot_hs(sdO + r * hs, sV + c * hs, hs), sD[r]);
        }
        __syncthreads();
        for (int e = tid(); e < FQ * hs; e += nthreads()) {
            int r = e / hs, i = e % hs;
            float s = 0.0f;
            for (int c = 0; c < nk; c++) s += sdS[r * FK + c] * sK[c * hs + i];
            sdQ[e] += scale * s;
        }
    }
    __syncthreads();
    for (int e = tid(); e < nq * hs; e += nthreads())
        zrt_store_f32(dq, (size_t)(zrt_flash_q_at(&a, b, t0 + e / hs, h) + e % hs), act, sdQ[e]);
}

#endif
