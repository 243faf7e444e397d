/* flash_kernels.cu: causal grouped-query attention on the GPU in
 * FlashAttention-2's form (kernels/flash.h has the math; model_kernels.h the
 * launchers' contract): the forward keeps out and the row log-sum-exp, the
 * backward recomputes the probabilities tile by tile. Nothing T x S touches
 * global memory; the only storage is each block's shared-memory tiles.
 *
 * Design (fp32 in, fp32 out, fp32 math on the CUDA cores; correctness first,
 * written without a GPU to tune on -- docs/gpu-status.md):
 *  - forward: a thread block per (query tile of FQ rows, sequence, head);
 *    Q, the running output O, K and V tiles and the FQ x FK scores in shared
 *    memory. Each key tile: scores (one thread per entry, a dot over hs),
 *    then one thread per row updates its max and sum and rescales, then one
 *    thread per output element adds P V.
 *  - backward as two kernels, so that no gradient needs atomics (same bits
 *    every run): dK, dV by a block per (key tile, sequence, kv head) walking
 *    the query tiles of every query head of its group in order; dQ by a
 *    block per (query tile, sequence, head) walking the key tiles. Each
 *    recomputes P = exp(scale q k - lse) and dS = P (dO V^T - D), D =
 *    rowsum(dO * O) per row (cheap: hs per row per tile).
 *  - shared memory grows with hs (about 100 KB for the dK/dV kernel at hs
 *    128); above 48 KB the launcher opts in, and a head too large for the
 *    device is the launch's error.
 * Built with --fmad=false as the other kernels. Check: tests/test_cuda_kernels.c
 * (against tests/model_refs.h's double loops); CI runs the cuda table with
 * these launchers emulated by those loops (test_model_emulated.c).
 */
#include "model_kernels.h"

#include <cuda_runtime.h>
#include <math.h>

#define FQ 32 /* query rows per tile */
#define FK 32 /* keys per tile */
#define FTHREADS 128

static int launched(void) { return (int)cudaGetLastError(); }

__device__ __forceinline__ float dot_hs(const float *a, const float *b, int hs)
{
    float s = 0.0f;
    for (int i = 0; i < hs; i++) s += a[i] * b[i];
    return s;
}

/* dst (rows x hs, dense) = the first n of `rows` rows of src (ld apart), 0 beyond. */
__device__ void load_rows(float *dst, const float *src, int rows, int n, int ld, int hs)
{
    for (int e = threadIdx.x; e < rows * hs; e += blockDim.x) {
        int r = e / hs, i = e % hs;
        dst[e] = r < n ? src[(size_t)r * ld + i] : 0.0f;
    }
}

__device__ void fill(float *dst, int n, float value)
{
    for (int e = threadIdx.x; e < n; e += blockDim.x) dst[e] = value;
}

/* Per row of a query tile (threads < FQ): D = rowsum(dO * O) and the row's lse. */
__device__ void row_stats(const zrt_attn_shape *a, float *sD, float *sL, const float *dout, const float *out,
                          const float *lse, int b, int h, int t0, int nq)
{
    int r = threadIdx.x;
    if (r >= FQ) return;
    bool in = r < nq;
    sD[r] = in ? dot_hs(dout + zrt_flash_out_at(a, b, t0 + r, h), out + zrt_flash_out_at(a, b, t0 + r, h), a->hs) : 0.0f;
    sL[r] = in ? lse[zrt_flash_lse_at(a, b, h, t0 + r)] : 0.0f;
}

/* P of entry (r, c) of a tile: exp(scale q_r k_c - lse_r) where query t0 + r sees key s0 + c, else 0. */
__device__ float tile_p(const zrt_attn_shape *a, const float *sQ, const float *sK, const float *sL, int r, int c,
                        int t0, int nq, int s0, int nk, float scale)
{
    if (r >= nq || c >= zrt_flash_visible(a, t0 + r, s0, nk)) return 0.0f;
    return zrt_flash_p(scale * dot_hs(sQ + r * a->hs, sK + c * a->hs, a->hs), sL[r]);
}

/* ---- forward ------------------------------------------------------------------------------------ */

/* One row's online softmax over a score tile (in place: scores -> P); its rescale factor into *alpha. */
__device__ void online_row(float *row, float *m, float *l, float *alpha)
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

__global__ void flash_forward_kernel(zrt_attn_shape a, float *out, float *lse, const float *q, const float *k,
                                     const float *v, float scale)
{
    extern __shared__ float sm[];
    int hs = a.hs, t0 = blockIdx.x * FQ, b = blockIdx.y / a.NH, h = blockIdx.y % a.NH, g = h / (a.NH / a.NKV);
    float *sQ = sm, *sO = sQ + FQ * hs, *sK = sO + FQ * hs, *sV = sK + FK * hs, *sS = sV + FK * hs;
    float *sM = sS + FQ * FK, *sL = sM + FQ, *sA = sL + FQ;
    int nq = min(FQ, a.T - t0), end = zrt_flash_keys(&a, t0 + nq - 1);
    load_rows(sQ, q + zrt_flash_q_at(&a, b, t0, h), FQ, nq, a.ld_q, hs);
    fill(sO, FQ * hs, 0.0f), fill(sM, FQ, -INFINITY), fill(sL, FQ, 0.0f);
    for (int s0 = 0; s0 < end; s0 += FK) {
        int nk = min(FK, end - s0);
        __syncthreads(); /* the last tile's readers are done */
        load_rows(sK, k + zrt_flash_kv_at(&a, b, s0, g), FK, nk, a.ld_kv, hs);
        load_rows(sV, v + zrt_flash_kv_at(&a, b, s0, g), FK, nk, a.ld_kv, hs);
        __syncthreads();
        for (int e = threadIdx.x; e < FQ * FK; e += blockDim.x) {
            int r = e / FK, c = e % FK;
            bool seen = r < nq && c < zrt_flash_visible(&a, t0 + r, s0, nk);
            sS[e] = seen ? scale * dot_hs(sQ + r * hs, sK + c * hs, hs) : -INFINITY;
        }
        __syncthreads();
        if (threadIdx.x < FQ) online_row(sS + threadIdx.x * FK, &sM[threadIdx.x], &sL[threadIdx.x], &sA[threadIdx.x]);
        __syncthreads();
        for (int e = threadIdx.x; e < FQ * hs; e += blockDim.x) {
            int r = e / hs, i = e % hs;
            float acc = sO[e] * sA[r];
            for (int c = 0; c < nk; c++) acc += sS[r * FK + c] * sV[c * hs + i];
            sO[e] = acc;
        }
    }
    __syncthreads();
    for (int e = threadIdx.x; e < nq * hs; e += blockDim.x)
        out[zrt_flash_out_at(&a, b, t0 + e / hs, h) + e % hs] = sO[e] / sL[e / hs];
    if (threadIdx.x < nq) lse[zrt_flash_lse_at(&a, b, h, t0 + threadIdx.x)] = zrt_flash_lse(sM[threadIdx.x], sL[threadIdx.x]);
}

/* ---- backward: dK and dV per key tile ------------------------------------------------------------ */

__global__ void flash_backward_dkdv_kernel(zrt_attn_shape a, float *dk, float *dv, const float *dout, const float *out,
                                           const float *lse, const float *q, const float *k, const float *v,
                                           float scale)
{
    extern __shared__ float sm[];
    int hs = a.hs, s0 = blockIdx.x * FK, b = blockIdx.y / a.NKV, g = blockIdx.y % a.NKV, G = a.NH / a.NKV;
    float *sK = sm, *sV = sK + FK * hs, *sdK = sV + FK * hs, *sdV = sdK + FK * hs, *sQ = sdV + FK * hs;
    float *sdO = sQ + FQ * hs, *sP = sdO + FQ * hs, *sdS = sP + FQ * FK, *sD = sdS + FQ * FK, *sL = sD + FQ;
    int nk = min(FK, a.S - s0), first = max(0, s0 - (a.S - a.T)); /* the first query that sees key s0 */
    load_rows(sK, k + zrt_flash_kv_at(&a, b, s0, g), FK, nk, a.ld_kv, hs);
    load_rows(sV, v + zrt_flash_kv_at(&a, b, s0, g), FK, nk, a.ld_kv, hs);
    fill(sdK, FK * hs, 0.0f), fill(sdV, FK * hs, 0.0f);
    for (int h = g * G; h < (g + 1) * G; h++)
        for (int t0 = first / FQ * FQ; t0 < a.T; t0 += FQ) {
            int nq = min(FQ, a.T - t0);
            __syncthreads();
            load_rows(sQ, q + zrt_flash_q_at(&a, b, t0, h), FQ, nq, a.ld_q, hs);
            load_rows(sdO, dout + zrt_flash_out_at(&a, b, t0, h), FQ, nq, a.ld_out, hs);
            row_stats(&a, sD, sL, dout, out, lse, b, h, t0, nq);
            __syncthreads();
            for (int e = threadIdx.x; e < FQ * FK; e += blockDim.x) {
                int r = e / FK, c = e % FK;
                float p = tile_p(&a, sQ, sK, sL, r, c, t0, nq, s0, nk, scale);
                sP[e] = p;
                sdS[e] = zrt_flash_ds(p, dot_hs(sdO + r * hs, sV + c * hs, hs), sD[r]);
            }
            __syncthreads();
            for (int e = threadIdx.x; e < FK * hs; e += blockDim.x) {
                int c = e / hs, i = e % hs;
                float dvs = 0.0f, dks = 0.0f;
                for (int r = 0; r < FQ; r++) dvs += sP[r * FK + c] * sdO[r * hs + i], dks += sdS[r * FK + c] * sQ[r * hs + i];
                sdV[e] += dvs, sdK[e] += scale * dks;
            }
        }
    __syncthreads();
    for (int e = threadIdx.x; e < nk * hs; e += blockDim.x) {
        int64_t at = zrt_flash_kv_at(&a, b, s0 + e / hs, g) + e % hs;
        dk[at] = sdK[e], dv[at] = sdV[e];
    }
}

/* ---- backward: dQ per query tile ------------------------------------------------------------------ */

__global__ void flash_backward_dq_kernel(zrt_attn_shape a, float *dq, const float *dout, const float *out,
                                         const float *lse, const float *q, const float *k, const float *v, float scale)
{
    extern __shared__ float sm[];
    int hs = a.hs, t0 = blockIdx.x * FQ, b = blockIdx.y / a.NH, h = blockIdx.y % a.NH, g = h / (a.NH / a.NKV);
    float *sQ = sm, *sdO = sQ + FQ * hs, *sdQ = sdO + FQ * hs, *sK = sdQ + FQ * hs, *sV = sK + FK * hs;
    float *sdS = sV + FK * hs, *sD = sdS + FQ * FK, *sL = sD + FQ;
    int nq = min(FQ, a.T - t0), end = zrt_flash_keys(&a, t0 + nq - 1);
    load_rows(sQ, q + zrt_flash_q_at(&a, b, t0, h), FQ, nq, a.ld_q, hs);
    load_rows(sdO, dout + zrt_flash_out_at(&a, b, t0, h), FQ, nq, a.ld_out, hs);
    fill(sdQ, FQ * hs, 0.0f);
    row_stats(&a, sD, sL, dout, out, lse, b, h, t0, nq);
    for (int s0 = 0; s0 < end; s0 += FK) {
        int nk = min(FK, end - s0);
        __syncthreads();
        load_rows(sK, k + zrt_flash_kv_at(&a, b, s0, g), FK, nk, a.ld_kv, hs);
        load_rows(sV, v + zrt_flash_kv_at(&a, b, s0, g), FK, nk, a.ld_kv, hs);
        __syncthreads();
        for (int e = threadIdx.x; e < FQ * FK; e += blockDim.x) {
            int r = e / FK, c = e % FK;
            float p = tile_p(&a, sQ, sK, sL, r, c, t0, nq, s0, nk, scale);
            sdS[e] = zrt_flash_ds(p, dot_hs(sdO + r * hs, sV + c * hs, hs), sD[r]);
        }
        __syncthreads();
        for (int e = threadIdx.x; e < FQ * hs; e += blockDim.x) {
            int r = e / hs, i = e % hs;
            float s = 0.0f;
            for (int c = 0; c < nk; c++) s += sdS[r * FK + c] * sK[c * hs + i];
            sdQ[e] += scale * s;
        }
    }
    __syncthreads();
    for (int e = threadIdx.x; e < nq * hs; e += blockDim.x) dq[zrt_flash_q_at(&a, b, t0 + e / hs, h) + e % hs] = sdQ[e];
}

/* ---- launchers ------------------------------------------------------------------------------------- */

/* Shared memory of each kernel in floats: (tiles of hs columns) x hs + fixed. */
static size_t smem(int hs_tiles, int fixed, int hs) { return ((size_t)hs_tiles * hs + (size_t)fixed) * sizeof(float); }

/* Above 48 KB a kernel must opt in; the device's limit is the call's error. */
template <typename K> static int allow(K kernel, size_t bytes)
{
    if (bytes <= 48 * 1024) return 0;
    return (int)cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
}

static unsigned tiles(int n, int per) { return (unsigned)((n + per - 1) / per); }

extern "C" int zrt_cuda_flash_forward(void *stream, const zrt_attn_shape *a, float *out, float *lse, const float *q,
                                      const float *k, const float *v)
{
    size_t bytes = smem(2 * FQ + 2 * FK, FQ * FK + 3 * FQ, a->hs);
    int err = allow(flash_forward_kernel, bytes);
    if (err) return err;
    dim3 grid(tiles(a->T, FQ), (unsigned)(a->B * a->NH));
    flash_forward_kernel<<<grid, FTHREADS, bytes, (cudaStream_t)stream>>>(*a, out, lse, q, k, v,
                                                                          1.0f / sqrtf((float)a->hs));
    return launched();
}

extern "C" int zrt_cuda_flash_backward(void *stream, const zrt_attn_shape *a, float *dq, float *dk, float *dv,
                                       const float *dout, const float *out, const float *lse, const float *q,
                                       const float *k, const float *v)
{
    cudaStream_t s = (cudaStream_t)stream;
    float scale = 1.0f / sqrtf((float)a->hs);
    size_t kv_bytes = smem(4 * FK + 2 * FQ, 2 * FQ * FK + 2 * FQ, a->hs);
    size_t q_bytes = smem(3 * FQ + 2 * FK, FQ * FK + 2 * FQ, a->hs);
    int err = allow(flash_backward_dkdv_kernel, kv_bytes);
    if (!err) err = allow(flash_backward_dq_kernel, q_bytes);
    if (err) return err;
    flash_backward_dkdv_kernel<<<dim3(tiles(a->S, FK), (unsigned)(a->B * a->NKV)), FTHREADS, kv_bytes, s>>>(
        *a, dk, dv, dout, out, lse, q, k, v, scale);
    err = launched();
    if (err) return err;
    flash_backward_dq_kernel<<<dim3(tiles(a->T, FQ), (unsigned)(a->B * a->NH)), FTHREADS, q_bytes, s>>>(
        *a, dq, dout, out, lse, q, k, v, scale);
    return launched();
}
