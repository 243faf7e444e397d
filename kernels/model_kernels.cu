/* model_kernels.cu: the CUDA models' kernels (model_kernels.h says what each
 * computes and in which order it reduces), after llm.c's train_gpt2.cu but
 * deterministic: no atomics -- the parameter gradients' column sums follow
 * kernels/colsum.h's two-stage order (the same bits on every run and grid).
 *
 * Row kernels give a warp to a row: lane l takes elements l, l + 32, ...,
 * then a shuffle tree combines the lanes (warp_sum). Built with
 * --fmad=false like device_kernels.cu, so elementwise results are the CPU's.
 * Activations are read and stored through LD / ST at the launch's `act`
 * type (model_kernels.h), fp32 math between: a bf16 run rounds once per
 * store, where the kernel writes.
 */
#include "model_kernels.h"

#include "cast.h"
#include "colsum.h"
#include "gelu.h"
#include "layernorm.h"
#include "rmsnorm.h"
#include "rope.h"
#include "swiglu.h"

#include "xent_tiles.cuh"

#include <cuda_runtime.h>
#include <float.h>
#include <math.h>

#define THREADS 256
#define WARPS_PER_BLOCK (THREADS / 32)

/* Element i of activation buffer p (of the kernel's `act` type) as fp32; v
 * stored there, rounded to nearest even (kernels/cast.h). */
#define LD(p, i) zrt_load_f32((p), (size_t)(i), act)
#define ST(p, i, v) zrt_store_f32((p), (size_t)(i), act, (v))

/* At least one block: a grid of 0 is an invalid configuration (every kernel guards its index). */
static unsigned blocks_for(size_t n, unsigned per_block) { return n ? (unsigned)((n + per_block - 1) / per_block) : 1u; }
static int launched(void) { return (int)cudaGetLastError(); }

__device__ __forceinline__ float warp_sum(float v)
{
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

/* The warp's row index (a warp per row) and lane. */
__device__ __forceinline__ int warp_row(void) { return (int)(blockIdx.x * WARPS_PER_BLOCK + threadIdx.x / 32); }
__device__ __forceinline__ int lane(void) { return (int)(threadIdx.x % 32); }

extern "C" int zrt_cuda_copy(void *stream, void *dst, const void *src, size_t bytes)
{
    return (int)cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, (cudaStream_t)stream);
}

extern "C" int zrt_cuda_zero(void *stream, void *dst, size_t bytes)
{
    return (int)cudaMemsetAsync(dst, 0, bytes, (cudaStream_t)stream);
}

__global__ void to_act_kernel(int act, void *dst, const float *src, size_t n)
{
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n) ST(dst, i, src[i]);
}

extern "C" int zrt_cuda_to_act(void *stream, int act, void *dst, const float *src, size_t n)
{
    to_act_kernel<<<blocks_for(n, THREADS), THREADS, 0, (cudaStream_t)stream>>>(act, dst, src, n);
    return launched();
}

/* ---- embeddings ---------------------------------------------------------------------------- */

__global__ void embed_forward_kernel(int act, void *out, const int32_t *tokens, const float *wte, const float *wpe,
                                     int N, int T, int C, int V, int32_t *bad)
{
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= (size_t)N * C) return;
    int row = (int)(i / C), c = (int)(i % C), token = tokens[row];
    if (token < 0 || token >= V) {
        ST(out, i, 0.0f);
        *bad = 1;
        return;
    }
    float e = wte[(size_t)token * C + c];
    ST(out, i, wpe ? e + wpe[(size_t)(row % T) * C + c] : e);
}

/* Thread (c, bucket): the positions whose token % buckets == bucket, in
 * order, for channel c -- every element of dwte sums its rows in position
 * order, as the CPU does, and threads never share an element. */
#define EMBED_BUCKETS 64
__global__ void embed_backward_wte_kernel(int act, float *dwte, const void *dout, const int32_t *tokens, int N, int C,
                                          int V)
{
    int c = (int)(blockIdx.x * blockDim.x + threadIdx.x), bucket = (int)blockIdx.y;
    if (c >= C) return;
    for (int i = 0; i < N; i++) {
        int token = tokens[i];
        if (token < 0 || token >= V || token % EMBED_BUCKETS != bucket) continue;
        dwte[(size_t)token * C + c] += LD(dout, (size_t)i * C + c);
    }
}

__global__ void embed_backward_wpe_kernel(int act, float *dwpe, const void *dout, int N, int T, int C)
{
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= (size_t)T * C) return;
    int t = (int)(i / C), c = (int)(i % C);
    float sum = dwpe[i];
    for (int row = t; row < N; row += T) sum += LD(dout, (size_t)row * C + c);
    dwpe[i] = sum;
}

/* The CPU adds wte's and wpe's contributions element by element, in position
 * order, so dwpe's column sum above is the same sum. */
extern "C" int zrt_cuda_embed_forward(void *stream, int act, void *out, const int32_t *tokens, const float *wte,
                                      const float *wpe, int N, int T, int C, int V, int32_t *bad)
{
    size_t n = (size_t)N * C;
    embed_forward_kernel<<<blocks_for(n, THREADS), THREADS, 0, (cudaStream_t)stream>>>(act, out, tokens, wte, wpe, N,
                                                                                       T, C, V, bad);
    return launched();
}

extern "C" int zrt_cuda_embed_backward(void *stream, int act, float *dwte, float *dwpe, const void *dout,
                                       const int32_t *tokens, int N, int T, int C, int V)
{
    cudaStream_t s = (cudaStream_t)stream;
    dim3 grid(blocks_for((size_t)C, 128), EMBED_BUCKETS);
    embed_backward_wte_kernel<<<grid, 128, 0, s>>>(act, dwte, dout, tokens, N, C, V);
    if (dwpe)
        embed_backward_wpe_kernel<<<blocks_for((size_t)T * C, THREADS), THREADS, 0, s>>>(act, dwpe, dout, N, T, C);
    return launched();
}

/* ---- rows: bias, residual, GELU ---------------------------------------------------------------- */

__global__ void init_rows_kernel(int act, void *out, const float *bias, const void *residual, int N, int OC)
{
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= (size_t)N * OC) return;
    int o = (int)(i % OC);
    ST(out, i, residual && bias ? LD(residual, i) + bias[o] : residual ? LD(residual, i) : bias[o]);
}

extern "C" int zrt_cuda_init_rows(void *stream, int act, void *out, const float *bias, const void *residual, int N,
                                  int OC)
{
    if (!bias && !residual) return 0;
    size_t n = (size_t)N * OC;
    init_rows_kernel<<<blocks_for(n, THREADS), THREADS, 0, (cudaStream_t)stream>>>(act, out, bias, residual, N, OC);
    return launched();
}

/* ---- column sums (parameter gradients): kernels/colsum.h's two stages ------------------------------------- */

/* Stage 1: block (32 columns, ZRT_COLSUM_LANES row lanes) for chunk blockIdx.y;
 * the lanes' halving tree in shared memory; partial (outputs, chunks, C). */
__global__ void colsum_partial_kernel(zrt_colsum_args a, float *partial)
{
    __shared__ float lanes[2][ZRT_COLSUM_LANES][32];
    int x = (int)threadIdx.x, y = (int)threadIdx.y, c = (int)blockIdx.x * 32 + x, k = (int)blockIdx.y;
    float sum[2] = {0.0f, 0.0f};
    if (c < a.C) zrt_colsum_lane(&a, k, y, c, sum);
    lanes[0][y][x] = sum[0];
    lanes[1][y][x] = sum[1];
    __syncthreads();
    for (int half = ZRT_COLSUM_LANES / 2; half > 0; half /= 2) {
        if (y < half) lanes[0][y][x] += lanes[0][y + half][x], lanes[1][y][x] += lanes[1][y + half][x];
        __syncthreads();
    }
    if (y != 0 || c >= a.C) return;
    size_t chunks = gridDim.y;
    partial[(size_t)k * a.C + c] = lanes[0][0][x];
    if (zrt_colsum_outputs(a.kind) > 1) partial[(chunks + k) * a.C + c] = lanes[1][0][x];
}

/* Stage 2: a thread per column adds the chunks' partials in chunk order. */
__global__ void colsum_total_kernel(int C, int chunks, int outputs, const float *partial, float *out0, float *out1)
{
    int c = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (c >= C) return;
    float *outs[2] = {out0, out1};
    for (int o = 0; o < outputs; o++) {
        float total = outs[o][c];
        for (int k = 0; k < chunks; k++) total += partial[((size_t)o * chunks + k) * C + c];
        outs[o][c] = total;
    }
}

static void colsum(cudaStream_t s, const zrt_colsum_args &a, float *out0, float *out1, float *scratch)
{
    int chunks = zrt_colsum_chunks(a.N);
    if (chunks == 0 || a.C == 0) return;
    dim3 grid((unsigned)((a.C + 31) / 32), (unsigned)chunks), block(32, ZRT_COLSUM_LANES);
    colsum_partial_kernel<<<grid, block, 0, s>>>(a, scratch);
    colsum_total_kernel<<<blocks_for((size_t)a.C, 128), 128, 0, s>>>(a.C, chunks, zrt_colsum_outputs(a.kind), scratch,
                                                                     out0, out1);
}

extern "C" int zrt_cuda_bias_backward(void *stream, int act, float *db, const void *dout, int N, int OC,
                                      float *scratch)
{
    zrt_colsum_args a = {ZRT_COLSUM_BIAS, act, dout, NULL, NULL, NULL, N, OC};
    colsum((cudaStream_t)stream, a, db, NULL, scratch);
    return launched();
}

/* pre += bias, stored; out = gelu of the unrounded sum (the cpu's order of operations). */
__global__ void bias_gelu_kernel(int act, void *pre, void *out, const float *bias, int rows, int cols)
{
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= (size_t)rows * cols) return;
    float x = LD(pre, i);
    if (bias) {
        x = x + bias[i % cols];
        ST(pre, i, x);
    }
    ST(out, i, zrt_gelu(x));
}

extern "C" int zrt_cuda_bias_gelu_forward(void *stream, int act, void *pre, void *out, const float *bias, int rows,
                                          int cols)
{
    size_t n = (size_t)rows * cols;
    bias_gelu_kernel<<<blocks_for(n, THREADS), THREADS, 0, (cudaStream_t)stream>>>(act, pre, out, bias, rows, cols);
    return launched();
}

__global__ void gelu_backward_kernel(int act, void *dinp, const void *inp, const void *dout, size_t n)
{
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n) ST(dinp, i, LD(dout, i) * zrt_gelu_grad(LD(inp, i)));
}

extern "C" int zrt_cuda_gelu_backward(void *stream, int act, void *dinp, const void *inp, const void *dout, size_t n)
{
    gelu_backward_kernel<<<blocks_for(n, THREADS), THREADS, 0, (cudaStream_t)stream>>>(act, dinp, inp, dout, n);
    return launched();
}

/* ---- layernorm ---------------------------------------------------------------------------------- */

/* One row of layernorm by its warp (the row's elements at base..base + C of
 * x and o): the mean, the rstd, then each element. */
__device__ void layernorm_row(int act, void *o, float *mean, float *rstd, const void *x, size_t base, const float *w,
                              const float *b, int C)
{
    int l = lane();
    float sum = 0.0f;
    for (int c = l; c < C; c += 32) sum += LD(x, base + c);
    float m = warp_sum(sum) / (float)C, squares = 0.0f;
    for (int c = l; c < C; c += 32) squares += (LD(x, base + c) - m) * (LD(x, base + c) - m);
    float s = zrt_layernorm_rstd(warp_sum(squares), C);
    for (int c = l; c < C; c += 32) ST(o, base + c, zrt_layernorm_out(LD(x, base + c), m, s, w[c], b[c]));
    if (l == 0) {
        *mean = m;
        *rstd = s;
    }
}

__global__ void layernorm_forward_kernel(int act, void *out, float *mean, float *rstd, const void *x, const float *w,
                                         const float *b, int N, int C)
{
    int row = warp_row();
    if (row >= N) return;
    layernorm_row(act, out, &mean[row], &rstd[row], x, (size_t)row * C, w, b, C);
}

extern "C" int zrt_cuda_layernorm_forward(void *stream, int act, void *out, float *mean, float *rstd, const void *x,
                                          const float *w, const float *b, int N, int C)
{
    layernorm_forward_kernel<<<blocks_for((size_t)N, WARPS_PER_BLOCK), THREADS, 0, (cudaStream_t)stream>>>(
        act, out, mean, rstd, x, w, b, N, C);
    return launched();
}

__global__ void layernorm_backward_dx_kernel(int act, void *dx, const void *d, const void *x, const float *w,
                                             const float *mean, const float *rstd, int N, int C)
{
    int row = warp_row(), l = lane();
    if (row >= N) return;
    size_t base = (size_t)row * C;
    float m = mean[row], s = rstd[row], sum_dnorm = 0.0f, sum_dnorm_norm = 0.0f;
    for (int c = l; c < C; c += 32) {
        float norm = zrt_layernorm_norm(LD(x, base + c), m, s), dnorm = w[c] * LD(d, base + c);
        sum_dnorm += dnorm;
        sum_dnorm_norm += dnorm * norm;
    }
    float dnorm_mean = warp_sum(sum_dnorm) / (float)C, dnorm_norm_mean = warp_sum(sum_dnorm_norm) / (float)C;
    for (int c = l; c < C; c += 32) {
        float norm = zrt_layernorm_norm(LD(x, base + c), m, s), dnorm = w[c] * LD(d, base + c);
        ST(dx, base + c, LD(dx, base + c) + zrt_layernorm_dx(dnorm, norm, dnorm_mean, dnorm_norm_mean, s));
    }
}

extern "C" int zrt_cuda_layernorm_backward(void *stream, int act, void *dx, float *dw, float *db, const void *d,
                                           const void *x, const float *w, const float *mean, const float *rstd,
                                           int N, int C, float *scratch)
{
    cudaStream_t s = (cudaStream_t)stream;
    layernorm_backward_dx_kernel<<<blocks_for((size_t)N, WARPS_PER_BLOCK), THREADS, 0, s>>>(act, dx, d, x, w, mean,
                                                                                            rstd, N, C);
    zrt_colsum_args a = {ZRT_COLSUM_LAYERNORM, act, d, x, mean, rstd, N, C};
    colsum(s, a, dw, db, scratch);
    return launched();
}

/* ---- rmsnorm, rope, swiglu (Llama) ------------------------------------------------------------- */

/* One row of RMSNorm by its warp: the sum of squares over the lanes, then each element. */
__device__ void rmsnorm_row(int act, void *o, float *rstd, const void *x, size_t base, const float *w, int C, float eps)
{
    int l = lane();
    float squares = 0.0f;
    for (int i = l; i < C; i += 32) squares += LD(x, base + i) * LD(x, base + i);
    float r = zrt_rmsnorm_rstd(warp_sum(squares), C, eps);
    for (int i = l; i < C; i += 32) ST(o, base + i, zrt_rmsnorm_out(LD(x, base + i), r, w[i]));
    if (l == 0) *rstd = r;
}

__global__ void rmsnorm_forward_kernel(int act, void *out, float *rstd, const void *x, const float *w, int N, int C,
                                       float eps)
{
    int row = warp_row();
    if (row >= N) return;
    rmsnorm_row(act, out, &rstd[row], x, (size_t)row * C, w, C, eps);
}

extern "C" int zrt_cuda_rmsnorm_forward(void *stream, int act, void *out, float *rstd, const void *x, const float *w,
                                        int N, int C, float eps)
{
    rmsnorm_forward_kernel<<<blocks_for((size_t)N, WARPS_PER_BLOCK), THREADS, 0, (cudaStream_t)stream>>>(
        act, out, rstd, x, w, N, C, eps);
    return launched();
}

/* The residual add and the norm (nn.h's residual_norm): each lane writes its
 * own elements of h and the norm's row reads back the same lanes' elements
 * -- as stored, rounded to act: the bits of the unfused norm of h (the
 * warp's sync only orders the lanes' view of memory). */
__global__ void residual_norm_kernel(int act, void *h, void *out, const void *x, const void *y, const float *bias,
                                     int N, int C, int rms, const float *w, const float *b, float *mean, float *rstd,
                                     float eps)
{
    int row = warp_row();
    if (row >= N) return;
    size_t base = (size_t)row * C;
    for (int c = lane(); c < C; c += 32) {
        size_t i = base + c;
        ST(h, i, !x ? LD(y, i) : (bias ? LD(x, i) + bias[c] : LD(x, i)) + LD(y, i));
    }
    __syncwarp();
    if (rms)
        rmsnorm_row(act, out, &rstd[row], h, base, w, C, eps);
    else
        layernorm_row(act, out, &mean[row], &rstd[row], h, base, w, b, C);
}

extern "C" int zrt_cuda_residual_norm(void *stream, int act, void *h, void *out, const void *x, const void *y,
                                      const float *bias, int N, int C, int rms, const float *w, const float *b,
                                      float *mean, float *rstd, float eps)
{
    residual_norm_kernel<<<blocks_for((size_t)N, WARPS_PER_BLOCK), THREADS, 0, (cudaStream_t)stream>>>(
        act, h, out, x, y, bias, N, C, rms, w, b, mean, rstd, eps);
    return launched();
}

__global__ void rmsnorm_backward_dx_kernel(int act, void *dx, const void *d, const void *x, const float *w,
                                           const float *rstd, int N, int C)
{
    int row = warp_row(), l = lane();
    if (row >= N) return;
    size_t base = (size_t)row * C;
    float r = rstd[row], sum = 0.0f;
    for (int i = l; i < C; i += 32) sum += LD(d, base + i) * w[i] * (LD(x, base + i) * r);
    float mean = warp_sum(sum) / (float)C;
    for (int i = l; i < C; i += 32)
        ST(dx, base + i, LD(dx, base + i) + zrt_rmsnorm_dx(LD(d, base + i) * w[i], LD(x, base + i) * r, mean, r));
}

extern "C" int zrt_cuda_rmsnorm_backward(void *stream, int act, void *dx, float *dw, const void *d, const void *x,
                                         const float *w, const float *rstd, int N, int C, float *scratch)
{
    cudaStream_t s = (cudaStream_t)stream;
    rmsnorm_backward_dx_kernel<<<blocks_for((size_t)N, WARPS_PER_BLOCK), THREADS, 0, s>>>(act, dx, d, x, w, rstd, N,
                                                                                          C);
    zrt_colsum_args a = {ZRT_COLSUM_RMSNORM, act, d, x, NULL, rstd, N, C};
    colsum(s, a, dw, NULL, scratch);
    return launched();
}

/* Thread per (row, head, i < hs/2). */
__global__ void rope_kernel(int act, void *x, int N, int T, int pos0, int heads, int hs, int ld, const float *cos,
                            const float *sin, int inverse)
{
    int half = hs / 2;
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= (size_t)N * heads * half) return;
    int k = (int)(i % half), h = (int)(i / half % heads), r = (int)(i / half / heads);
    size_t at = (size_t)(pos0 + r % T) * half + k, head = (size_t)r * ld + (size_t)h * hs;
    float x1 = LD(x, head + k), x2 = LD(x, head + k + half);
    zrt_rope_turn(&x1, &x2, cos[at], inverse ? -sin[at] : sin[at]);
    ST(x, head + k, x1);
    ST(x, head + k + half, x2);
}

extern "C" int zrt_cuda_rope(void *stream, int act, void *x, int N, int T, int pos0, int heads, int hs, int ld,
                             const float *cos, const float *sin, int inverse)
{
    size_t n = (size_t)N * heads * (hs / 2);
    rope_kernel<<<blocks_for(n, THREADS), THREADS, 0, (cudaStream_t)stream>>>(act, x, N, T, pos0, heads, hs, ld, cos,
                                                                             sin, inverse);
    return launched();
}

__global__ void swiglu_forward_kernel(int act, void *out, const void *gu, int N, int H)
{
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= (size_t)N * H) return;
    size_t g = i / H * 2 * H + i % H;
    ST(out, i, zrt_swiglu(LD(gu, g), LD(gu, g + H)));
}

extern "C" int zrt_cuda_swiglu_forward(void *stream, int act, void *out, const void *gu, int N, int H)
{
    size_t n = (size_t)N * H;
    swiglu_forward_kernel<<<blocks_for(n, THREADS), THREADS, 0, (cudaStream_t)stream>>>(act, out, gu, N, H);
    return launched();
}

__global__ void swiglu_backward_kernel(int act, void *dgu, const void *dout, const void *gu, int N, int H)
{
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= (size_t)N * H) return;
    size_t g = i / H * 2 * H + i % H;
    float dg, du;
    zrt_swiglu_grad(LD(gu, g), LD(gu, g + H), LD(dout, i), &dg, &du);
    ST(dgu, g, dg);
    ST(dgu, g + H, du);
}

extern "C" int zrt_cuda_swiglu_backward(void *stream, int act, void *dgu, const void *dout, const void *gu, int N,
                                        int H)
{
    size_t n = (size_t)N * H;
    swiglu_backward_kernel<<<blocks_for(n, THREADS), THREADS, 0, (cudaStream_t)stream>>>(act, dgu, dout, gu, N, H);
    return launched();
}

/* ---- cross-entropy ------------------------------------------------------------------------------ */

/* The kernel is in xent_tiles.cuh (C-compatible: tests/test_xent_sim.c runs it on the CPU). */
extern "C" int zrt_cuda_cross_entropy(void *stream, int act, void *logits, double *losses, const int32_t *targets,
                                      int N, int V, float scale, int double_math, int32_t *bad)
{
    if (N <= 0) return 0; /* no rows: nothing to launch (a grid of 0 is invalid) */
    xent_kernel<<<(unsigned)N, XTHREADS, xent_shared_bytes(), (cudaStream_t)stream>>>(act, logits, losses, targets, N,
                                                                                      V, scale, double_math, bad);
    return launched();
}

__global__ void loss_mean_kernel(float *loss_sum, const double *losses, const int32_t *targets, int N, float divisor)
{
    double total = 0.0;
    int n = 0;
    for (int i = 0; i < N; i++) {
        total += losses[i];
        n += targets[i] != ZRT_IGNORE_INDEX;
    }
    if (n > 0) *loss_sum += (float)(total / n) / divisor;
}

extern "C" int zrt_cuda_loss_mean(void *stream, float *loss_sum, const double *losses, const int32_t *targets, int N,
                                  float divisor)
{
    loss_mean_kernel<<<1, 1, 0, (cudaStream_t)stream>>>(loss_sum, losses, targets, N, divisor);
    return launched();
}
