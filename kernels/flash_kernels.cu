/* flash_kernels.cu: causal grouped-query attention on the GPU in
 * FlashAttention-2's form (kernels/flash.h has the math; model_kernels.h the
 * launchers' contract): the forward keeps out and the row log-sum-exp, the
 * backward recomputes the probabilities tile by tile. Nothing T x S touches
 * global memory; the only storage is each block's shared-memory tiles.
 *
 * Design (activations of the launch's type in and out, fp32 tiles and fp32
 * math on the CUDA cores; correctness first, written without a GPU to tune
 * on -- docs/gpu-status.md):
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
 * The kernels are in flash_tiles.cuh (C-compatible, so that CI runs them
 * on the CPU: tests/test_flash_sim.c); here are the launchers. Built with
 * --fmad=false as the other kernels. Check: tests/test_cuda_kernels.c on a
 * GPU, test_flash_sim.c without one (both against tests/model_refs.h's
 * double loops); test_model_emulated runs the cuda table with these
 * launchers replaced by those loops.
 */
#include "model_kernels.h"

#include "flash_tiles.cuh"

#include <cuda_runtime.h>

static int launched(void) { return (int)cudaGetLastError(); }

/* ---- launchers ------------------------------------------------------------------------------------- */

/* Above 48 KiB a kernel must opt in; the device's limit is the call's error. */
template <typename K> static int allow(K kernel, size_t bytes)
{
    if (bytes <= 48 * 1024) return 0;
    return (int)cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
}

extern "C" int zrt_cuda_flash_forward(void *stream, int act, const zrt_attn_shape *a, void *out, float *lse,
                                      const void *q, const void *k, const void *v)
{
    flash_launch f = flash_forward_launch(a);
    int err = allow(flash_forward_kernel, f.shared);
    if (err) return err;
    flash_forward_kernel<<<dim3((unsigned)f.x, (unsigned)f.y), FTHREADS, f.shared, (cudaStream_t)stream>>>(
        *a, act, out, lse, q, k, v, 1.0f / sqrtf((float)a->hs));
    return launched();
}

extern "C" int zrt_cuda_flash_backward(void *stream, int act, const zrt_attn_shape *a, void *dq, void *dk, void *dv,
                                       const void *dout, const void *out, const float *lse, const void *q,
                                       const void *k, const void *v)
{
    cudaStream_t s = (cudaStream_t)stream;
    float scale = 1.0f / sqrtf((float)a->hs);
    flash_launch kv = flash_dkdv_launch(a), dQ = flash_dq_launch(a);
    int err = allow(flash_backward_dkdv_kernel, kv.shared);
    if (!err) err = allow(flash_backward_dq_kernel, dQ.shared);
    if (err) return err;
    flash_backward_dkdv_kernel<<<dim3((unsigned)kv.x, (unsigned)kv.y), FTHREADS, kv.shared, s>>>(
        *a, act, dk, dv, dout, out, lse, q, k, v, scale);
    err = launched();
    if (err) return err;
    flash_backward_dq_kernel<<<dim3((unsigned)dQ.x, (unsigned)dQ.y), FTHREADS, dQ.shared, s>>>(
        *a, act, dq, dout, out, lse, q, k, v, scale);
    return launched();
}
