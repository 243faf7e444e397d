/* test_cuda_op_timer.c: op timing (zrt/internal/op_timer.h) on the GPU, as
 * `zrt bench gpu` uses it: a small CUDA GPT's forward, loss and backward,
 * the gradient statistics and one multi-tensor Adam step, timed by class.
 * Holds: every class took time (> 0); the matmuls and attention lie within
 * the model's ops (their sum <= the model class); a collect with nothing
 * enqueued since gives 0; off again, nothing is timed.
 * Skips without a GPU (fails on a machine whose GPU it cannot open). The
 * cpu device's refusal is test_device_kernels' (it runs in CI).
 */
#include "device_common.h"
#include "zrt/internal/kernels.h"
#include "zrt/internal/op_timer.h"

#include <math.h>

static zrt_device *dev;
static zrt_stream *stream;

static void *upload(const void *host, size_t bytes)
{
    void *p = device_alloc(dev, bytes, "input");
    CHECK_OK(zrt_device_write(dev, p, host, bytes));
    return p;
}

/* One forward + loss + backward of a 2-layer GPT, then stats and Adam on unit 0. */
static void train_once(void)
{
    zrt_model_config cfg = {.type = ZRT_MODEL_GPT, .layers = 2, .d_model = 64, .heads = 4, .seq_len = 64,
                            .vocab = 128, .hidden = 256};
    enum { MICRO = 2 };
    zrt_model *m = NULL;
    CHECK_OK(zrt_model_create(&cfg, dev, MICRO, &m));
    if (!m) return;
    float *params[ZRT_MAX_UNITS], *grads[ZRT_MAX_UNITS];
    for (int u = 0; u < m->n_units; u++) {
        params[u] = device_alloc(dev, (size_t)m->unit_numel[u] * 4, "params");
        grads[u] = device_alloc(dev, (size_t)m->unit_numel[u] * 4, "grads");
        CHECK_OK(zrt_kernel_fill(stream, params[u], ZRT_DTYPE_F32, 0.02f, (size_t)m->unit_numel[u]));
        CHECK_OK(zrt_kernel_fill(stream, grads[u], ZRT_DTYPE_F32, 0.0f, (size_t)m->unit_numel[u]));
    }
    int32_t tokens[MICRO * 64];
    for (int i = 0; i < MICRO * 64; i++) tokens[i] = (i * 37 + 11) % 128;
    int32_t *d_tokens = upload(tokens, sizeof tokens);
    float zero[2] = {0, 0}, *loss = upload(zero, 4), *stats = upload(zero, 8);
    CHECK_OK(m->set_batch(m, d_tokens, d_tokens, MICRO));
    for (int op = 0; op < m->n_ops; op++) CHECK_OK(m->forward(m, stream, op, params[m->op_unit[op]]));
    CHECK_OK(m->loss(m, stream, 1.0f, 1.0f, loss));
    for (int op = m->n_ops - 1; op >= 0; op--) CHECK_OK(m->backward(m, stream, op, params[m->op_unit[op]], grads[m->op_unit[op]]));
    size_t n0 = (size_t)m->unit_numel[0];
    CHECK_OK(zrt_kernel_grad_stats(stream, grads[0], ZRT_DTYPE_F32, n0, 1.0f, stats));
    float *state = device_alloc(dev, n0 * 8, "adam state");
    CHECK_OK(zrt_kernel_fill(stream, state, ZRT_DTYPE_F32, 0.0f, n0 * 2));
    zrt_adam_tensor t = {params[0], state, state + n0, grads[0], NULL, n0, 0};
    zrt_adam_args a = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .step = 1, .unscale = 1};
    CHECK_OK(zrt_kernel_adam_multi(stream, &t, 1, ZRT_DTYPE_F32, ZRT_DTYPE_F32, &a, stats));
    CHECK_OK(zrt_stream_synchronize(stream));
    m->destroy(m);
}

int main(void)
{
    dev = make_device(ZRT_DEVICE_CUDA, false); /* skips without a GPU; fails where one is present */
    CHECK_OK(zrt_stream_create(dev, "timed", &stream));
    CHECK_OK(zrt_op_timer_enable(dev));
    train_once();
    double s[ZRT_OP_CLASSES] = {0}, again[ZRT_OP_CLASSES] = {0}, off[ZRT_OP_CLASSES] = {0};
    CHECK_OK(zrt_op_timer_collect(dev, s));
    for (int c = 0; c < ZRT_OP_CLASSES; c++) {
        CHECK_MSG(s[c] > 0, "op class %s: %g s", zrt_op_class_name((zrt_op_class)c), s[c]);
        printf("%-10s %9.3f ms\n", zrt_op_class_name((zrt_op_class)c), s[c] * 1e3);
    }
    CHECK_MSG(s[ZRT_OP_MATMUL] + s[ZRT_OP_ATTENTION] <= s[ZRT_OP_MODEL] * 1.0001 + 1e-6,
              "matmul %g + attention %g s exceed the model's %g s", s[ZRT_OP_MATMUL], s[ZRT_OP_ATTENTION],
              s[ZRT_OP_MODEL]);
    CHECK_OK(zrt_op_timer_collect(dev, again));
    for (int c = 0; c < ZRT_OP_CLASSES; c++) CHECK_MSG(again[c] == 0, "a second collect: %s %g s", zrt_op_class_name((zrt_op_class)c), again[c]);
    zrt_op_timer_disable(dev);
    train_once();
    CHECK(zrt_op_timer_collect(dev, off) == ZRT_ERR_INVALID); /* off: nothing to collect, said so */
    zrt_stream_destroy(stream);
    zrt_device_destroy(dev);
    printf("op timing: every class measured, matmul + attention within the model's ops\n");
    return CHECK_DONE();
}
