/* test_model_grad.c: the MLP's backward against central finite differences,
 * op by op: the last unit (linear + cross-entropy), a hidden unit (linear +
 * GELU, through the layers above it) and the first unit. The last unit's
 * bias gradient is the sum over the batch of d(loss)/d(logits), so the
 * cross-entropy's own gradient is checked there. Perturbs a sample of parameters in fp32 (step 1e-2)
 * and compares within 2% relative (or 2e-4 absolute for tiny gradients).
 */
#include "check.h"
#include "engine.h"

#include <math.h>

#define BATCH 3

static zrt_model *model;
static float *params[3];

static float run_loss(void)
{
    for (int u = 0; u < model->n_units; u++) model->forward(model, u, params[u]);
    return model->loss(model, 1.0f);
}

static void check_unit(int u, const char *what)
{
    float *grads[3];
    for (int k = 0; k < model->n_units; k++) grads[k] = calloc((size_t)model->unit_numel[k], sizeof(float));
    run_loss();
    for (int k = model->n_units - 1; k >= 0; k--) model->backward(model, k, params[k], grads[k]);
    int checked = 0, bad = 0;
    for (int64_t j = 0; j < model->unit_numel[u]; j += 1 + model->unit_numel[u] / 97) {
        float saved = params[u][j], h = 1e-2f;
        params[u][j] = saved + h;
        float up = run_loss();
        params[u][j] = saved - h;
        float down = run_loss();
        params[u][j] = saved;
        float numeric = (up - down) / (2 * h), analytic = grads[u][j];
        if (fabsf(numeric - analytic) > fmaxf(2e-4f, 0.02f * fabsf(numeric))) {
            if (bad++ < 5) fprintf(stderr, "%s: element %lld: analytic %g numeric %g\n", what, (long long)j, analytic, numeric);
        }
        checked++;
    }
    CHECK_MSG(bad == 0, "%s: %d of %d gradients off", what, bad, checked);
    printf("%s: %d gradients match finite differences\n", what, checked);
    for (int k = 0; k < model->n_units; k++) free(grads[k]);
}

int main(void)
{
    static zrt_mem_stats mem;
    zrt_model_config mc = {.type = ZRT_MODEL_MLP, .layers = 3, .d_model = 6, .hidden = 7, .vocab = 5};
    CHECK_OK(zrt_model_mlp_create(&mc, BATCH, &mem, &model));
    if (check_failures) return 1;
    for (int u = 0; u < 3; u++) {
        params[u] = malloc((size_t)model->unit_numel[u] * sizeof(float));
        for (int64_t j = 0; j < model->unit_numel[u]; j++) params[u][j] = zrt_random_normal(7, (uint64_t)u, (uint64_t)j) * 0.5f;
    }
    float inputs[BATCH * 6];
    int32_t labels[BATCH] = {0, 3, 4};
    for (int i = 0; i < BATCH * 6; i++) inputs[i] = zrt_random_normal(9, 0, (uint64_t)i);
    CHECK_OK(model->set_batch(model, inputs, labels, BATCH));
    check_unit(2, "last unit (linear + cross-entropy)");
    check_unit(1, "hidden unit (linear + GELU)");
    check_unit(0, "first unit (linear + GELU, input layer)");
    CHECK(model->set_batch(model, inputs, labels, BATCH + 1) == ZRT_ERR_INVALID);
    for (int u = 0; u < 3; u++) free(params[u]);
    model->destroy(model);
    CHECK_MSG(mem.current[ZRT_MEM_ACTIVATIONS] == 0, "activations not freed: %lld bytes",
              (long long)mem.current[ZRT_MEM_ACTIVATIONS]);
    return CHECK_DONE();
}
