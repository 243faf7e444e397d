/* nn.h: the model ops every device implements, and the one runner that
 * turns a model written against them into the zrt_model table.
 *
 * Why: a model (mlp.c, gpt.c, llama.c) is written once, as calls to the ops
 * below; a device is one ops table (nn_cpu.c: loops, OpenBLAS, vecmath;
 * nn_cuda.c: kernels/ and cuBLASLt). The spirit is ggml's backend ops and
 * llm.c's kernel list: a short list of row, elementwise and matmul ops, each
 * with its backward, each with a plain reference (tests/model_refs.h) that
 * the tests hold every device to.
 *
 * Ordering: the runner (nn_model.c) hands every op a zrt_nn whose `stream`
 * is the native stream of the op's zrt_stream. On a device whose table sets
 * `host_function` (cpu), the runner runs the model's whole forward, loss or
 * backward op as one host function on the stream's thread, and every op
 * below computes at once. Otherwise (cuda) the model's function runs on the
 * calling thread and each op enqueues its kernels on `stream` and returns.
 * Either way a model's code reads the same; it never waits.
 *
 * Conventions: pointers are device memory of the model's device, row-major;
 * "+=" says the op adds to its output, otherwise it overwrites. Element
 * types: an activation or a gradient between ops (a `void *` below: the
 * tests' fp32 buffers convert without a cast) holds the handle's `act`
 * dtype -- fp32 on the cpu table, the run's compute dtype (bf16, fp16) on
 * the cuda table in mixed precision; parameters, parameter gradients and
 * statistics (mean, rstd, lse, the RoPE tables, losses) are fp32 always
 * (`float *`). Each op computes in fp32 and rounds to nearest even where it
 * stores an activation (kernels/cast.h's zrt_load_f32 / zrt_store_f32).
 * Every op returns ZRT_OK or an error with a message (a token or target out
 * of range: the cpu op returns it, the cuda op fails the stream with it).
 */
#ifndef ZRT_MODEL_NN_H
#define ZRT_MODEL_NN_H

#include "flash.h"
#include "zrt.h"

/* How fp32 matmuls use the tensor cores: exact fp32 (the default for fp32
 * training), TF32 (zrt.allow_tf32), or inputs rounded to bf16 / fp16 with
 * fp32 accumulation (bf16 / fp16 training). The cpu device computes fp32
 * whatever it is asked. */
typedef enum { ZRT_MATMUL_FP32, ZRT_MATMUL_TF32, ZRT_MATMUL_BF16, ZRT_MATMUL_FP16 } zrt_matmul_math;

/* The math for a config's precision and zrt.allow_tf32. */
zrt_matmul_math zrt_matmul_math_of(const zrt_model_config *cfg);

/* cblas_sgemm's row-major contract: C (M x N) = alpha op(A) op(B) + beta C,
 * and `batch` of them at the given element strides (batch 0 or 1: one).
 * Each operand has its element type (0, fp32, by default, so a gemm of fp32
 * buffers names none): activations are the handle's act dtype, weights and
 * weight gradients fp32. Accumulation is fp32 whatever the types; the cpu
 * table takes fp32 only (its act dtype), the cuda table casts an fp32 A or
 * B to the other's 16-bit type first (cuBLASLt wants A and B of one type). */
typedef struct {
    bool trans_a, trans_b;
    int M, N, K;
    float alpha, beta;
    const void *A;
    int lda;
    const void *B;
    int ldb;
    void *C;
    int ldc;
    int batch;
    int64_t stride_a, stride_b, stride_c;
    zrt_dtype a_type, b_type, c_type;
} zrt_gemm;

/* zrt_attn_shape: causal grouped-query attention's shape (kernels/flash.h). */

/* The models' two norms, as residual_norm applies them. */
typedef enum { ZRT_NORM_LAYER, ZRT_NORM_RMS } zrt_norm_kind;

/* A norm over rows of C and the statistics it keeps for its backward:
 * layernorm (eps 1e-5: layernorm_forward's) keeps mean and rstd and adds b;
 * RMSNorm (eps given) keeps rstd, b and mean unused. */
typedef struct {
    zrt_norm_kind kind;
    const float *w, *b; /* (C) */
    float *mean, *rstd; /* (N) */
    float eps;
} zrt_norm;

typedef struct zrt_nn zrt_nn;
typedef struct zrt_nn_ops zrt_nn_ops;

/* What a model file holds an activation buffer as: elements of its handle's
 * act dtype, so a type the compiler does no arithmetic on -- a view into a
 * buffer is zrt_nn_act_at's, sizes are zrt_nn_act_bytes'. */
typedef struct zrt_act zrt_act;

/* One model's handle on its device's ops. */
struct zrt_nn {
    const zrt_nn_ops *ops;
    zrt_device *device;
    zrt_stream *on;      /* the zrt_stream of the op being run */
    void *stream;        /* its native stream (a cudaStream_t), NULL on cpu */
    const char *model;   /* "gpt": named in errors */
    void *impl;          /* the device's own state (cuda: cuBLASLt, the flag, loss rows) */
    zrt_dtype act;       /* the activations' element type (zrt_nn_ops.typed_acts) */
};

/* Element `elements` of activation buffer p (a view: qkv's k, a row). */
static inline zrt_act *zrt_nn_act_at(const zrt_nn *nn, const zrt_act *p, int64_t elements)
{
    return (zrt_act *)((char *)(uintptr_t)p + elements * (int64_t)zrt_dtype_size(nn->act));
}

/* Bytes of `count` activations. */
static inline size_t zrt_nn_act_bytes(const zrt_nn *nn, int64_t count)
{
    return (size_t)count * zrt_dtype_size(nn->act);
}

struct zrt_nn_ops {
    zrt_device_kind kind;
    bool host_function; /* the runner runs each model op as one host function (cpu) */
    /* zrt_nn_linear_residual_norm adds the residual in residual_norm's pass
     * (cuda: it saves the matmul's read of its output) rather than in the
     * matmul (cpu: OpenBLAS adds C per K-block, so moving the add would
     * change the fp32 bits; the row-by-row norm is in cache either way). */
    bool fuse_residual;
    /* Activations in the run's compute dtype (cuda: bf16 / fp16 with that
     * matmul math, else fp32); false: fp32 always (cpu). */
    bool typed_acts;
    /* The device's state for one model whose losses cover up to loss_rows rows. */
    zrt_status (*init)(zrt_nn *nn, zrt_matmul_math math, int64_t loss_rows);
    void (*fini)(zrt_nn *nn);

    zrt_status (*copy)(zrt_nn *nn, void *dst, const void *src, size_t bytes);
    zrt_status (*zero)(zrt_nn *nn, void *dst, size_t bytes);
    /* Matmul and strided-batched matmul (zrt_gemm). */
    zrt_status (*gemm)(zrt_nn *nn, const zrt_gemm *g);
    /* out (N, OC) rows = bias + residual (either NULL; both NULL: nothing):
     * the start a gemm with beta 1 adds onto (bias and residual adds). */
    zrt_status (*init_rows)(zrt_nn *nn, void *out, const float *bias, const void *residual, int N, int OC);
    /* db += column sums of dout (N, OC), rows in order. */
    zrt_status (*bias_backward)(zrt_nn *nn, float *db, const void *dout, int N, int OC);

    /* out (N, C) = wte[tokens[i]] + wpe[i % T] (wpe NULL: none); a token
     * outside 0..V-1 is an error naming it. */
    zrt_status (*embed_forward)(zrt_nn *nn, void *out, const int32_t *tokens, const float *wte, const float *wpe,
                                int N, int T, int C, int V);
    /* dwte[tokens[i]] += dout[i], dwpe[i % T] += dout[i] (dwpe NULL: none), rows in order. */
    zrt_status (*embed_backward)(zrt_nn *nn, float *dwte, float *dwpe, const void *dout, const int32_t *tokens, int N,
                                 int T, int C, int V);

    /* Per row: out = (x - mean) * rstd * w + b (eps 1e-5); mean, rstd kept. */
    zrt_status (*layernorm_forward)(zrt_nn *nn, void *out, float *mean, float *rstd, const void *x, const float *w,
                                    const float *b, int N, int C);
    /* dx += d(x); dw += norm * d; db += d. */
    zrt_status (*layernorm_backward)(zrt_nn *nn, void *dx, float *dw, float *db, const void *d, const void *x,
                                     const float *w, const float *mean, const float *rstd, int N, int C);
    /* Per row: out = w * x * rstd, rstd = 1 / sqrt(mean(x^2) + eps) kept (Llama's RMSNorm). */
    zrt_status (*rmsnorm_forward)(zrt_nn *nn, void *out, float *rstd, const void *x, const float *w, int N, int C,
                                  float eps);
    /* dx += d(x); dw += d * x * rstd. */
    zrt_status (*rmsnorm_backward)(zrt_nn *nn, void *dx, float *dw, const void *d, const void *x, const float *w,
                                   const float *rstd, int N, int C);
    /* The residual add and the next norm in one pass over each row:
     * h (N, C) = (x + bias) + y (bias NULL: x + y; x NULL: y, bias unused;
     * h == y allowed -- the matmul's output becomes the residual stream),
     * then out = norm(h) with its statistics kept: the same bits as
     * layernorm_forward or rmsnorm_forward of h, and h the bits a linear
     * layer with the residual (init_rows, then the matmul with beta 1)
     * gives when its matmul adds its product in one step. */
    zrt_status (*residual_norm)(zrt_nn *nn, void *h, void *out, const zrt_norm *norm, const void *x, const void *y,
                                const float *bias, int N, int C);

    /* Rotary position embedding in place on `heads` heads of hs columns
     * (hs even) of each of N rows, ld apart; row r is at position
     * pos0 + r % T. Hugging Face's rotate_half pairing: element i and
     * i + hs/2 of a head turn by the angle whose cos and sin are
     * cos[pos][i], sin[pos][i] (tables of hs/2 per position, made by the
     * model). inverse: the opposite turn (the backward of a turn). */
    zrt_status (*rope)(zrt_nn *nn, void *x, int N, int T, int pos0, int heads, int hs, int ld, const float *cos,
                       const float *sin, bool inverse);

    /* zrt_attn_shape's attention, scale 1/sqrt(hs), in FlashAttention-2's
     * form: out and lse (B, NH, T: each query row's log-sum-exp of its
     * scaled scores) written; nothing T x S is kept, any scratch is bounded
     * by the device's block sizes. */
    zrt_status (*attention_forward)(zrt_nn *nn, const zrt_attn_shape *a, void *out, float *lse, const void *q,
                                    const void *k, const void *v);
    /* dq, dk, dv overwritten (the layout of q, k, v; a kv head's gradient
     * sums its query heads') from dout and the forward's out and lse, the
     * probabilities recomputed block by block. */
    zrt_status (*attention_backward)(zrt_nn *nn, const zrt_attn_shape *a, void *dq, void *dk, void *dv,
                                     const void *dout, const void *out, const float *lse, const void *q,
                                     const void *k, const void *v);

    /* pre (rows, cols) += bias per row (bias NULL: none), out = gelu(pre) (tanh form; out == pre allowed). */
    zrt_status (*bias_gelu_forward)(zrt_nn *nn, void *pre, void *out, const float *bias, int rows, int cols);
    /* dinp = dout * gelu'(inp) (dinp == dout allowed). */
    zrt_status (*gelu_backward)(zrt_nn *nn, void *dinp, const void *inp, const void *dout, size_t n);
    /* gu (N, 2H): rows [gate | up]; out (N, H) = silu(gate) * up. */
    zrt_status (*swiglu_forward)(zrt_nn *nn, void *out, const void *gu, int N, int H);
    /* dgu (N, 2H) = d(gate), d(up) of dout (N, H) (overwritten). */
    zrt_status (*swiglu_backward)(zrt_nn *nn, void *dgu, const void *dout, const void *gu, int N, int H);

    /* Softmax cross-entropy of N rows of V logits against targets, fused
     * and in place: each row of `logits` is read, *loss_sum += (mean over
     * targets that are not ZRT_IGNORE_INDEX of -log p[target]) / divisor,
     * and the row is overwritten with its gradient d(scale * loss) =
     * (p - onehot) * scale / n (0 on ignored rows). No other N x V buffer
     * exists: the head's backward reads the gradient where the logits were.
     * double_math: log-sum-exp in double (the MLP's form), else fp32 exp and
     * sum, -log in double (GPT's). A target outside 0..V-1 (not ignored) is
     * an error naming it (the row is then left as it was). */
    zrt_status (*cross_entropy)(zrt_nn *nn, void *logits, const int32_t *targets, int N, int V, float scale,
                                float divisor, float *loss_sum, bool double_math);
};

/* The ops of a device kind (cpu; cuda in builds with CUDA), or NULL. */
const zrt_nn_ops *zrt_nn_ops_of(zrt_device_kind kind);
extern const zrt_nn_ops zrt_nn_cpu;
#ifdef ZRT_HAVE_CUDA
extern const zrt_nn_ops zrt_nn_cuda;
#endif

/* ---- the runner (nn_model.c) ------------------------------------------------------------ */

/* One op of the model as the runner hands it over: a copy of the batch made
 * when it was enqueued (a later set_batch never changes queued work). */
typedef struct {
    int op, batch;
    const void *inputs;
    const int32_t *labels;
    const float *params; /* forward, backward: the op's unit (numel) */
    float *grads;        /* backward: added to */
} zrt_model_op;

/* A model's math: what it does for one op, through nn's ops. */
typedef struct {
    zrt_status (*forward)(zrt_model *m, zrt_nn *nn, const zrt_model_op *op);
    /* Adds the batch's mean loss / divisor to *loss_sum; seeds the backward
     * with d(scale * loss). */
    zrt_status (*loss)(zrt_model *m, zrt_nn *nn, const zrt_model_op *op, float scale, float divisor, float *loss_sum);
    zrt_status (*backward)(zrt_model *m, zrt_nn *nn, const zrt_model_op *op);
    /* zrt_model's decode (NULL: the model does not generate). */
    zrt_status (*decode)(zrt_model *m, zrt_nn *nn, const float *const *units, const int32_t *tokens, int n, int pos0,
                         float *logits);
    void (*free_buffers)(zrt_model *m); /* activations and tables the model made */
    /* (Re)makes the activations for max_batch samples at nn's act dtype
     * (zrt_nn_model_use_ops calls it again after changing tables). */
    zrt_status (*alloc_buffers)(zrt_model *m, int max_batch);
} zrt_model_math;

/* The batch set_batch records (host side; each op copies it). */
typedef struct {
    int max_batch, batch;
    const void *inputs;
    const int32_t *labels;
} zrt_model_batch;

/* The first member of every built-in model. */
typedef struct {
    zrt_model base;
    const zrt_model_math *math;
    zrt_model_type type;
    zrt_model_batch now;
    zrt_nn nn;
    zrt_matmul_math matmul; /* what nn was made with (zrt_nn_model_use_ops) */
    bool buffers_made;      /* the math's alloc_buffers has run (use_ops remakes them) */
    int64_t loss_rows;
} zrt_nn_model;

/* Fills m->base's table (set_batch, forward, loss, backward, destroy) with
 * the runner's, makes nn on device's ops and the math's activations; ZRT_ERR_UNSUPPORTED naming the
 * model when this build has no ops for the device. The model's units must be
 * declared first; on error the caller destroys m. */
zrt_status zrt_nn_model_init(zrt_nn_model *m, zrt_model_type type, zrt_device *device, int max_batch,
                             int64_t loss_rows, zrt_matmul_math math, const zrt_model_math *math_ops);
/* Activation memory on the model's device, charged to activations. */
zrt_status zrt_nn_model_alloc(zrt_nn_model *m, size_t bytes, const char *name, void **out);
void zrt_nn_model_free(zrt_nn_model *m, void *ptr);
/* Remakes m's nn on another device's ops (the same math and loss rows) and
 * its activations (the math's alloc_buffers) at that table's act dtype:
 * tests/test_model_emulated.c runs the cuda table on cpu memory so. The
 * model must be idle. */
zrt_status zrt_nn_model_use_ops(zrt_nn_model *m, const zrt_nn_ops *ops);

#endif
