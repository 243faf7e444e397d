/* test_model_grad.c: both built-in models' backward against central finite
 * differences, unit by unit, as the engine runs them (ops forward, ops
 * backward in reverse, gradients of a unit summed over its ops):
 *  - MLP: the last unit (linear + cross-entropy), hidden units (linear + GELU);
 *  - GPT: the embeddings (token embedding tied to the LM head, so its
 *    gradient comes from both ops), a block (layernorms, causal attention,
 *    GELU MLP, residuals) and the final layernorm.
 * The LM head / last linear unit's bias is the sum over the batch of
 * d(loss)/d(logits), so the cross-entropy's own gradient is checked there.
 * Perturbs a sample of parameters in fp32 (step 1e-2) and compares within 2%
 * relative (or 2e-4 absolute for tiny gradients). The models run as the
 * engine runs them: on the cpu device (in check mode under the test runner),
 * parameters and batch in device memory, ops enqueued on a stream. A token
 * outside the vocabulary fails the stream with a message naming it.
 */
#include "check.h"
#include "engine_common.h"
#include "xent.h" /* ZRT_IGNORE_INDEX */

#include <math.h>

#define BATCH 2

static zrt_device *device;
static zrt_stream *stream;
static zrt_model *model;
static float *params[8], *grads[8];         /* host copies */
static float *dev_params[8], *dev_grads[8]; /* the model's view */
static void *dev_inputs;
static int32_t *dev_labels;
static float *dev_loss;

static void *device_buffer(zrt_mem_category c, size_t bytes)
{
    void *p = NULL;
    CHECK_OK(zrt_device_alloc(device, c, bytes, "test buffer", NULL, &p));
    return p;
}

static size_t unit_bytes(int u) { return (size_t)model->unit_numel[u] * sizeof(float); }

/* Forward and loss with the host parameters; the loss. */
static float run_loss(void)
{
    float loss = 0;
    CHECK_OK(zrt_stream_synchronize(stream));
    for (int u = 0; u < model->n_units; u++) CHECK_OK(zrt_device_write(device, dev_params[u], params[u], unit_bytes(u)));
    CHECK_OK(zrt_device_write(device, dev_loss, &loss, sizeof loss));
    for (int op = 0; op < model->n_ops; op++) CHECK_OK(model->forward(model, stream, op, dev_params[model->op_unit[op]]));
    CHECK_OK(model->loss(model, stream, 1.0f, 1.0f, dev_loss));
    CHECK_OK(zrt_stream_synchronize(stream));
    CHECK_OK(zrt_device_read(device, &loss, dev_loss, sizeof loss));
    return loss;
}

static void run_backward(void)
{
    run_loss();
    for (int u = 0; u < model->n_units; u++) CHECK_OK(zrt_memset_async(stream, dev_grads[u], 0, unit_bytes(u)));
    for (int op = model->n_ops - 1; op >= 0; op--) {
        int u = model->op_unit[op];
        CHECK_OK(model->backward(model, stream, op, dev_params[u], dev_grads[u]));
    }
    CHECK_OK(zrt_stream_synchronize(stream));
    for (int u = 0; u < model->n_units; u++) CHECK_OK(zrt_device_read(device, grads[u], dev_grads[u], unit_bytes(u)));
}
static void check_unit(int u, const char *what)
{
    run_backward();
    int checked = 0, bad = 0;
    for (int64_t j = 0; j < model->unit_numel[u]; j += 1 + model->unit_numel[u] / 97) {
        float saved = params[u][j], h = 1e-2f;
        params[u][j] = saved + h;
        float up = run_loss();
        params[u][j] = saved - h;
        float down = run_loss();
        params[u][j] = saved;
        float numeric = (up - down) / (2 * h), analytic = grads[u][j];
        if (fabsf(numeric - analytic) > fmaxf(2e-4f, 0.02f * fabsf(numeric)) && bad++ < 5)
            fprintf(stderr, "%s: element %lld: analytic %g numeric %g\n", what, (long long)j, analytic, numeric);
        checked++;
    }
    CHECK_MSG(bad == 0, "%s: %d of %d gradients off", what, bad, checked);
    printf("%s: %d gradients match finite differences\n", what, checked);
}

/* Parameters and gradients on both sides, and the batch on the device. */
static void setup(float scale, const void *inputs, size_t input_bytes, const int32_t *labels, size_t label_bytes)
{
    CHECK_OK(zrt_stream_create(device, "model", &stream));
    for (int u = 0; u < model->n_units; u++) {
        params[u] = malloc(unit_bytes(u));
        grads[u] = malloc(unit_bytes(u));
        for (int64_t j = 0; j < model->unit_numel[u]; j++)
            params[u][j] = zrt_random_normal(7, (uint64_t)u, (uint64_t)j) * scale;
        dev_params[u] = device_buffer(ZRT_MEM_PARAMS, unit_bytes(u));
        dev_grads[u] = device_buffer(ZRT_MEM_GRADS, unit_bytes(u));
    }
    dev_inputs = device_buffer(ZRT_MEM_COMM, input_bytes);
    dev_labels = device_buffer(ZRT_MEM_COMM, label_bytes);
    dev_loss = device_buffer(ZRT_MEM_COMM, sizeof(float));
    CHECK_OK(zrt_device_write(device, dev_inputs, inputs, input_bytes));
    CHECK_OK(zrt_device_write(device, dev_labels, labels, label_bytes));
    CHECK_OK(model->set_batch(model, dev_inputs, dev_labels, BATCH));
}

static void teardown(void)
{
    zrt_stream_destroy(stream);
    for (int u = 0; u < model->n_units; u++) {
        free(params[u]);
        free(grads[u]);
        zrt_device_free(device, dev_params[u], NULL);
        zrt_device_free(device, dev_grads[u], NULL);
    }
    zrt_device_free(device, dev_inputs, NULL);
    zrt_device_free(device, dev_labels, NULL);
    zrt_device_free(device, dev_loss, NULL);
    model->destroy(model);
    const int64_t *now = zrt_device_mem(device)->current[ZRT_MEM_DEVICE];
    CHECK_MSG(now[ZRT_MEM_ACTIVATIONS] == 0, "activations not freed: %lld bytes", (long long)now[ZRT_MEM_ACTIVATIONS]);
    zrt_device_destroy(device);
}

static void test_mlp(void)
{
    device = test_device();
    zrt_model_config mc = {.type = ZRT_MODEL_MLP, .layers = 3, .d_model = 6, .hidden = 7, .vocab = 5};
    CHECK_OK(zrt_model_create(&mc, device, BATCH, &model));
    if (check_failures) return;
    float inputs[BATCH * 6];
    int32_t labels[BATCH] = {0, 3};
    for (int i = 0; i < BATCH * 6; i++) inputs[i] = zrt_random_normal(9, 0, (uint64_t)i);
    setup(0.5f, inputs, sizeof inputs, labels, sizeof labels);
    check_unit(2, "mlp last unit (linear + cross-entropy)");
    check_unit(1, "mlp hidden unit (linear + GELU)");
    check_unit(0, "mlp first unit (linear + GELU)");
    CHECK(model->set_batch(model, dev_inputs, dev_labels, BATCH + 1) == ZRT_ERR_INVALID);
    teardown();
}

static void test_gpt(void)
{
    device = test_device();
    zrt_model_config mc = {.type = ZRT_MODEL_GPT, .layers = 2, .d_model = 8, .hidden = 12, .heads = 2, .seq_len = 5,
                           .vocab = 11};
    CHECK_OK(zrt_model_create(&mc, device, BATCH, &model));
    if (check_failures) return;
    CHECK(model->n_units == 4 && model->n_ops == 5 && model->op_unit[4] == 0); /* the tied head */
    int32_t tokens[BATCH * 5] = {1, 4, 2, 9, 0, 3, 3, 10, 7, 5}, labels[BATCH * 5] = {4, 2, 9, 0, 6, 3, 10, 7, 5, 1};
    setup(0.3f, tokens, sizeof tokens, labels, sizeof labels);
    for (int u = 1; u <= 2; u++) /* layernorm weights near 1, as initialised */
        for (int k = 0; k < model->n_params[u]; k++)
            if (model->params[u][k].init == ZRT_INIT_ONES)
                for (int64_t j = 0; j < model->params[u][k].numel; j++) params[u][model->params[u][k].offset + j] += 1.0f;
    check_unit(0, "gpt embeddings (wte tied to the head, wpe)");
    check_unit(1, "gpt block 0 (layernorm, causal attention, GELU MLP)");
    check_unit(2, "gpt block 1");
    check_unit(3, "gpt final layernorm");
    /* A token outside the vocabulary fails the stream (the check runs where the tokens are read). */
    tokens[3] = 11;
    CHECK_OK(zrt_device_write(device, dev_inputs, tokens, sizeof tokens));
    CHECK_OK(model->forward(model, stream, 0, dev_params[0]));
    zrt_status status = zrt_stream_synchronize(stream);
    CHECK_MSG(status == ZRT_ERR_INVALID && strstr(zrt_last_error(), "token 11 outside the vocabulary of 11"),
              "bad token: %s", zrt_last_error());
    teardown();
}

/* Llama: untied head (unit 4), then tied with q/k/v biases (Qwen2's form). */
static void test_llama(bool tied)
{
    device = test_device();
    zrt_model_config mc = {.type = ZRT_MODEL_LLAMA, .layers = 2, .d_model = 8, .hidden = 12, .heads = 4, .kv_heads = 2,
                           .seq_len = 5, .vocab = 11, .rope_theta = 10000, .norm_eps = 1e-6, .tie_embeddings = tied,
                           .attention_bias = tied};
    CHECK_OK(zrt_model_create(&mc, device, BATCH, &model));
    if (check_failures) return;
    CHECK(model->n_units == (tied ? 4 : 5) && model->n_ops == 5 && model->op_unit[4] == (tied ? 0 : 4));
    int32_t tokens[BATCH * 5] = {1, 4, 2, 9, 0, 3, 3, 10, 7, 5}, labels[BATCH * 5] = {4, 2, 9, 0, 6, 3, 10, 7, 5, 1};
    labels[3] = ZRT_IGNORE_INDEX;
    setup(0.3f, tokens, sizeof tokens, labels, sizeof labels);
    for (int u = 1; u <= 3; u++) /* norm weights near 1, as initialised */
        for (int k = 0; k < model->n_params[u]; k++)
            if (model->params[u][k].init == ZRT_INIT_ONES)
                for (int64_t j = 0; j < model->params[u][k].numel; j++) params[u][model->params[u][k].offset + j] += 1.0f;
    check_unit(0, tied ? "llama embedding (tied to the head)" : "llama embedding");
    check_unit(1, tied ? "llama block 0 (q/k/v biases, GQA, RoPE, SwiGLU)" : "llama block 0 (RMSNorm, GQA, RoPE, SwiGLU)");
    check_unit(2, "llama block 1");
    check_unit(3, "llama final RMSNorm");
    if (!tied) check_unit(4, "llama LM head");
    teardown();
}

int main(void)
{
    test_mlp();
    test_gpt();
    test_llama(false);
    test_llama(true);
    return CHECK_DONE();
}
