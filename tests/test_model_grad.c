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
 * relative (or 2e-4 absolute for tiny gradients).
 */
#include "check.h"
#include "zrt.h"

#include <math.h>

#define BATCH 2

static zrt_model *model;
static float *params[8], *grads[8];

static float run_loss(void)
{
    for (int op = 0; op < model->n_ops; op++) model->forward(model, op, params[model->op_unit[op]]);
    return model->loss(model, 1.0f);
}

static void run_backward(void)
{
    for (int u = 0; u < model->n_units; u++) memset(grads[u], 0, (size_t)model->unit_numel[u] * sizeof(float));
    run_loss();
    for (int op = model->n_ops - 1; op >= 0; op--)
        model->backward(model, op, params[model->op_unit[op]], grads[model->op_unit[op]]);
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

static void setup_params(float scale)
{
    for (int u = 0; u < model->n_units; u++) {
        params[u] = malloc((size_t)model->unit_numel[u] * sizeof(float));
        grads[u] = malloc((size_t)model->unit_numel[u] * sizeof(float));
        for (int64_t j = 0; j < model->unit_numel[u]; j++)
            params[u][j] = zrt_random_normal(7, (uint64_t)u, (uint64_t)j) * scale;
    }
}

static void teardown(zrt_mem_stats *mem)
{
    for (int u = 0; u < model->n_units; u++) {
        free(params[u]);
        free(grads[u]);
    }
    model->destroy(model);
    CHECK_MSG(mem->current[ZRT_MEM_ACTIVATIONS] == 0, "activations not freed: %lld bytes",
              (long long)mem->current[ZRT_MEM_ACTIVATIONS]);
}

static void test_mlp(void)
{
    static zrt_mem_stats mem;
    zrt_model_config mc = {.type = ZRT_MODEL_MLP, .layers = 3, .d_model = 6, .hidden = 7, .vocab = 5};
    CHECK_OK(zrt_model_create(&mc, BATCH, &mem, &model));
    if (check_failures) return;
    setup_params(0.5f);
    float inputs[BATCH * 6];
    int32_t labels[BATCH] = {0, 3};
    for (int i = 0; i < BATCH * 6; i++) inputs[i] = zrt_random_normal(9, 0, (uint64_t)i);
    CHECK_OK(model->set_batch(model, inputs, labels, BATCH));
    check_unit(2, "mlp last unit (linear + cross-entropy)");
    check_unit(1, "mlp hidden unit (linear + GELU)");
    check_unit(0, "mlp first unit (linear + GELU)");
    CHECK(model->set_batch(model, inputs, labels, BATCH + 1) == ZRT_ERR_INVALID);
    teardown(&mem);
}

static void test_gpt(void)
{
    static zrt_mem_stats mem;
    zrt_model_config mc = {.type = ZRT_MODEL_GPT, .layers = 2, .d_model = 8, .hidden = 12, .heads = 2, .seq_len = 5,
                           .vocab = 11};
    CHECK_OK(zrt_model_create(&mc, BATCH, &mem, &model));
    if (check_failures) return;
    CHECK(model->n_units == 4 && model->n_ops == 5 && model->op_unit[4] == 0); /* the tied head */
    setup_params(0.3f);
    for (int u = 1; u <= 2; u++) /* layernorm weights near 1, as initialised */
        for (int k = 0; k < model->n_params[u]; k++)
            if (model->params[u][k].init == ZRT_INIT_ONES)
                for (int64_t j = 0; j < model->params[u][k].numel; j++) params[u][model->params[u][k].offset + j] += 1.0f;
    int32_t tokens[BATCH * 5] = {1, 4, 2, 9, 0, 3, 3, 10, 7, 5}, labels[BATCH * 5] = {4, 2, 9, 0, 6, 3, 10, 7, 5, 1};
    CHECK_OK(model->set_batch(model, tokens, labels, BATCH));
    check_unit(0, "gpt embeddings (wte tied to the head, wpe)");
    check_unit(1, "gpt block 0 (layernorm, causal attention, GELU MLP)");
    check_unit(2, "gpt block 1");
    check_unit(3, "gpt final layernorm");
    tokens[3] = 11;
    CHECK(model->set_batch(model, tokens, labels, BATCH) == ZRT_ERR_INVALID); /* outside the vocabulary */
    teardown(&mem);
}

int main(void)
{
    test_mlp();
    test_gpt();
    return CHECK_DONE();
}
