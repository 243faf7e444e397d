/* nn_layers.h: what the transformer models build from nn.h's ops and share:
 * the linear layer (matmul + bias + residual) and its backward, and a table
 * of activation buffers allocated and freed together.
 *
 * Why: gpt.c and llama.c both compute out = inp W^T + b + residual and its
 * backward the same way; written once here, each model file holds only
 * what is its own. Element types (nn.h): inp, out, residual, dout, dinp are
 * activations (nn->act), w, b, dw, db fp32.
 */
#ifndef ZRT_MODEL_NN_LAYERS_H
#define ZRT_MODEL_NN_LAYERS_H

#include "nn.h"

/* out (N, OC) = inp (N, C) @ w^T (OC, C) + b (NULL: none) + residual (N, OC;
 * NULL: none): the bias and residual written first, the product added by
 * the gemm. */
zrt_status zrt_nn_linear_forward(zrt_nn *nn, zrt_act *out, const zrt_act *inp, const float *w, const float *b,
                                 const zrt_act *residual, int N, int C, int OC);
/* The same without bias or residual into fp32 logits (decode's head: the
 * caller's buffer is fp32 whatever the activations are). */
zrt_status zrt_nn_linear_forward_f32(zrt_nn *nn, float *out, const zrt_act *inp, const float *w, int N, int C, int OC);
/* dinp (N, C) = dout @ w (overwritten; NULL: not wanted); dw (OC, C) +=
 * dout^T @ inp; db += column sums of dout (NULL: no bias). */
zrt_status zrt_nn_linear_backward(zrt_nn *nn, zrt_act *dinp, float *dw, float *db, const zrt_act *dout,
                                  const zrt_act *inp, const float *w, int N, int C, int OC);

/* h (N, OC) = x + inp @ w^T + b (b NULL: none), then out = norm(h), its
 * statistics kept (zrt_norm): the residual stream's add and the next norm.
 * Where the table fuses (fuse_residual) the matmul writes the product alone
 * and residual_norm adds x and b in the norm's pass; otherwise the linear
 * layer adds them (init_rows, beta 1) and residual_norm only normalizes --
 * the fp32 bits of the unfused ops. */
zrt_status zrt_nn_linear_residual_norm(zrt_nn *nn, zrt_act *h, zrt_act *out, const zrt_norm *norm, const zrt_act *inp,
                                       const float *w, const float *b, const zrt_act *x, int N, int C, int OC);

/* decode's refusal for a model made with activation checkpointing: its
 * blocks share one set of activations, so there are no per-block qkv rows to
 * keep as the KV cache. ZRT_ERR_UNSUPPORTED naming the model. */
zrt_status zrt_nn_decode_needs_cache(const char *model);

/* A list of buffers: each slot gets `count` elements on the model's device,
 * charged to activations under `name` -- activations at the handle's act
 * dtype, statistics (mean, rstd, lse, tables) fp32. */
typedef enum { ZRT_NN_ACTIVATION, ZRT_NN_STATISTIC } zrt_nn_buffer_kind;

typedef struct {
    void **slot;
    int64_t count;
    zrt_nn_buffer_kind kind;
    const char *name;
} zrt_nn_buffer;

typedef struct {
    zrt_nn_buffer *list;
    int n, cap; /* the model's activation_bytes counts what alloc places (zrt_nn_model_alloc) */
} zrt_nn_buffers;

/* Appends an activation buffer or a statistic (the list grows; an
 * allocation failure is reported by alloc). */
void zrt_nn_buffers_act(zrt_nn_buffers *b, zrt_act **slot, int64_t count, const char *name);
void zrt_nn_buffers_stat(zrt_nn_buffers *b, float **slot, int64_t count, const char *name);
/* Allocates every buffer listed; ZRT_ERR_NOMEM naming the one that failed. */
zrt_status zrt_nn_buffers_alloc(zrt_nn_buffers *b, zrt_nn_model *m);
/* Frees what alloc placed and the list. */
void zrt_nn_buffers_free(zrt_nn_buffers *b, zrt_nn_model *m);

#endif
