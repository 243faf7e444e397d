/* zrt/internal/kernels.h: the device kernels the engine and the offload
 * optimizer run (casts, gradient statistics, sums, Adam), on both backends.
 *
 * Why internal: they are the engine's building blocks, shaped by its layout
 * and free to change with it; libzrt.so does not export them. tools/ and
 * tests/ link libzrt.a and reach them through this header. */
#ifndef ZRT_INTERNAL_KERNELS_H
#define ZRT_INTERNAL_KERNELS_H

#include "zrt/base.h"
#include "zrt/device.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- kernels (device buffers, on a stream) -------------------------------------
 * Per-element math in kernels/cast.h and kernels/optim.h, shared by both
 * backends. In place is allowed where dst == src. */

/* dst[i] = convert(src[i]); with accumulate dst[i] = round(dst[i] + src[i])
 * (fp32 arithmetic, rounded once to dst's dtype). Any dtype pair. */
zrt_status zrt_kernel_cast(zrt_stream *stream, void *dst, zrt_dtype dst_dtype, const void *src, zrt_dtype src_dtype,
                           size_t n, bool accumulate);
/* dst[i] = value (rounded to dtype). */
zrt_status zrt_kernel_fill(zrt_stream *stream, void *dst, zrt_dtype dtype, float value, size_t n);
/* With g = grads[i] / scale: stats[0] += sum of g*g (accumulated in double,
 * added as fp32), stats[1] = 1 if any g is not finite (else unchanged).
 * stats: 2 fp32 in device memory. */
zrt_status zrt_kernel_grad_stats(zrt_stream *stream, const void *grads, zrt_dtype dtype, size_t n, float scale,
                                 float *stats);

/* dst[i] = src[i] (n elements of dtype; dst device or pinned host memory)
 * and, in the same pass, the statistics of zrt_kernel_grad_stats into stats:
 * gradients copied down for an offloaded optimizer need no pass of their own. */
zrt_status zrt_kernel_copy_stats(zrt_stream *stream, void *dst, const void *src, zrt_dtype dtype, size_t n,
                                 float scale, float *stats);
/* out[0] = values[0] + values[stride] + ... (n terms), fp32, in index order
 * from 0: the same bits whichever stream produced the values and in which
 * order (the engine's per-unit statistics). */
zrt_status zrt_kernel_sum(zrt_stream *stream, const float *values, size_t n, size_t stride, float *out);

typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
    bool adamw;       /* decoupled weight decay (torch.optim.AdamW) */
    int64_t step;     /* from 1: the bias corrections */
    float unscale;    /* 1 / loss scale */
    double max_norm;  /* clip the global gradient norm to this; 0 = no clipping */
    uint32_t stochastic_seed; /* zrt_kernel_adam_multi: != 0 rounds the bf16 copy stochastically */
} zrt_adam_args;

/* One Adam/AdamW step over n elements: g = grads[i] * unscale, times the
 * clip factor max_norm / (norm + 1e-6) when that is below 1, with norm =
 * sqrt(stats[0]); nothing changes when stats[1] != 0 (an overflow). stats is
 * the device result of zrt_kernel_grad_stats summed over every rank. */
zrt_status zrt_kernel_adam(zrt_stream *stream, float *master, float *exp_avg, float *exp_avg_sq, const void *grads,
                           zrt_dtype grad_dtype, size_t n, const zrt_adam_args *args, const float *stats);

/* One tensor of zrt_kernel_adam_multi: n elements of fp32 state, their
 * gradients, and the compute copy to write (NULL: none). */
typedef struct {
    float *master, *exp_avg, *exp_avg_sq;
    const void *grads;
    void *params;
    size_t n;
    uint64_t first_index; /* element 0's index in the whole tensor (the rounding's hash: any sharding, the same bits) */
} zrt_adam_tensor;

/* Tensors per backend call: a CUDA launch carries them in its parameters. */
#define ZRT_ADAM_MULTI_MAX 48

/* zrt_kernel_adam over every tensor at once -- one kernel launch on cuda
 * per ZRT_ADAM_MULTI_MAX tensors -- and the updated master rounded to
 * param_dtype into params in the same pass (so no cast pass follows; on an
 * overflow nothing is written); args->stochastic_seed != 0 rounds a bf16
 * copy stochastically (zrt_store_param: the same bits on every backend). */
zrt_status zrt_kernel_adam_multi(zrt_stream *stream, const zrt_adam_tensor *tensors, int n_tensors, zrt_dtype grad_dtype,
                                 zrt_dtype param_dtype, const zrt_adam_args *args, const float *stats);

#ifdef __cplusplus
}
#endif
#endif
