/* test_cuda_model.c: the GPT, the Llama model and the MLP on the cuda ops table (runtime/model/nn_cuda.c;
 * the same gpt.c, llama.c and mlp.c) against the cpu table on the same parameters and batch: the
 * loss and every unit's gradient after forward, loss and backward as the
 * engine runs them (gradients of the tied embedding summed over its ops).
 *  - fp32 matmuls: loss within 1e-5 relative, gradients within 1e-4 of each
 *    unit's largest gradient (the warp-order row sums and cuBLASLt's
 *    blocking against OpenBLAS's);
 *  - bf16 tensor-core matmuls (what a bf16 run uses): 3e-2;
 *  - two runs on the GPU give the same bits (ZeRO stages rely on it);
 *  - the device's check mode accepts the ops' declared accesses;
 *  - a token outside the vocabulary fails the stream, naming it.
 * Skips without a GPU (fails on a machine whose GPU it cannot open: gpu_present.h).
 */
#include "device_common.h"

#include <math.h>

#define BATCH 3

typedef struct {
    zrt_device *device;
    zrt_stream *stream;
    zrt_model *model;
    float *params[8], *grads[8];
    void *inputs;
    int32_t *labels;
    float *loss;
} side;

static void *dbuf(zrt_device *d, size_t bytes)
{
    void *p = NULL;
    CHECK_OK(zrt_device_alloc(d, ZRT_MEM_ACTIVATIONS, bytes, "test buffer", NULL, &p));
    return p;
}

static void open_side(side *s, zrt_device *device, const zrt_model_config *cfg, float *const *host_params,
                      const void *inputs, size_t input_bytes, const int32_t *labels, size_t label_bytes)
{
    memset(s, 0, sizeof *s);
    s->device = device;
    CHECK_OK(zrt_stream_create(device, "model", &s->stream));
    if (zrt_model_create(cfg, device, BATCH, &s->model) != ZRT_OK) {
        fprintf(stderr, "model on %s: %s\n", zrt_device_name(device), zrt_last_error());
        exit(1);
    }
    for (int u = 0; u < s->model->n_units; u++) {
        size_t bytes = (size_t)s->model->unit_numel[u] * sizeof(float);
        s->params[u] = dbuf(device, bytes);
        s->grads[u] = dbuf(device, bytes);
        CHECK_OK(zrt_device_write(device, s->params[u], host_params[u], bytes));
    }
    s->inputs = dbuf(device, input_bytes);
    s->labels = dbuf(device, label_bytes);
    s->loss = dbuf(device, sizeof(float));
    CHECK_OK(zrt_device_write(device, s->inputs, inputs, input_bytes));
    CHECK_OK(zrt_device_write(device, s->labels, labels, label_bytes));
    CHECK_OK(s->model->set_batch(s->model, s->inputs, s->labels, BATCH));
}

/* Forward, loss, backward; the loss and host copies of the gradients (grads[u]: numel floats). */
static zrt_status run(side *s, float *loss, float **grads)
{
    zrt_model *m = s->model;
    float zero = 0;
    ZRT_CHECK(zrt_device_write(s->device, s->loss, &zero, sizeof zero));
    for (int u = 0; u < m->n_units; u++)
        ZRT_CHECK(zrt_memset_async(s->stream, s->grads[u], 0, (size_t)m->unit_numel[u] * sizeof(float)));
    for (int op = 0; op < m->n_ops; op++) ZRT_CHECK(m->forward(m, s->stream, op, s->params[m->op_unit[op]]));
    ZRT_CHECK(m->loss(m, s->stream, 1.0f, 1.0f, s->loss));
    for (int op = m->n_ops - 1; op >= 0; op--) {
        int u = m->op_unit[op];
        ZRT_CHECK(m->backward(m, s->stream, op, s->params[u], s->grads[u]));
    }
    ZRT_CHECK(zrt_stream_synchronize(s->stream));
    ZRT_CHECK(zrt_device_read(s->device, loss, s->loss, sizeof *loss));
    for (int u = 0; u < m->n_units; u++)
        ZRT_CHECK(zrt_device_read(s->device, grads[u], s->grads[u], (size_t)m->unit_numel[u] * sizeof(float)));
    return ZRT_OK;
}

static void close_side(side *s)
{
    s->model->destroy(s->model);
    zrt_stream_destroy(s->stream);
}

static void check_model(const char *name, zrt_model_config cfg, const void *inputs, size_t input_bytes,
                        const int32_t *labels, size_t label_bytes, bool bf16)
{
    cfg.precision = bf16 ? ZRT_PRECISION_BF16 : ZRT_PRECISION_NO;
    zrt_device *cpu = make_device(ZRT_DEVICE_CPU, false), *gpu = make_device(ZRT_DEVICE_CUDA, !bf16);
    zrt_model *shape;
    CHECK_OK(zrt_model_create(&cfg, cpu, BATCH, &shape));
    float *host[8] = {0}, *want[8] = {0}, *got[8] = {0}, *again[8] = {0};
    for (int u = 0; u < shape->n_units; u++) {
        size_t n = (size_t)shape->unit_numel[u];
        host[u] = malloc(n * 4), want[u] = malloc(n * 4), got[u] = malloc(n * 4), again[u] = malloc(n * 4);
        init_unit(shape, u, host[u]);
    }
    int units = shape->n_units;
    shape->destroy(shape);
    side c, g;
    open_side(&c, cpu, &cfg, host, inputs, input_bytes, labels, label_bytes);
    open_side(&g, gpu, &cfg, host, inputs, input_bytes, labels, label_bytes);
    float loss_cpu = 0, loss_gpu = 0, loss_again = 0;
    CHECK_OK(run(&c, &loss_cpu, want));
    CHECK_OK(run(&g, &loss_gpu, got));
    CHECK_OK(run(&g, &loss_again, again));
    double tol = bf16 ? 3e-2 : 1e-4, loss_tol = bf16 ? 3e-2 : 1e-5;
    double loss_err = fabs((double)loss_gpu - loss_cpu) / fabs(loss_cpu);
    CHECK_MSG(loss_err <= loss_tol, "%s: loss %.9g on the GPU, %.9g on the CPU", name, loss_gpu, loss_cpu);
    double worst = 0;
    bool repeat = memcmp(&loss_gpu, &loss_again, 4) == 0;
    for (int u = 0; u < units; u++) {
        size_t n = (size_t)c.model->unit_numel[u];
        double largest = 0, err = 0;
        for (size_t i = 0; i < n; i++) largest = fmax(largest, fabs(want[u][i]));
        for (size_t i = 0; i < n; i++) err = fmax(err, fabs((double)got[u][i] - want[u][i]) / fmax(largest, 1e-30));
        if (!(err == err)) err = INFINITY;
        CHECK_MSG(err <= tol, "%s: unit %d's gradient differs by %.3g of its largest (%.3g)", name, u, err, largest);
        worst = fmax(worst, err);
        repeat &= memcmp(got[u], again[u], n * 4) == 0;
    }
    CHECK_MSG(repeat, "%s: two GPU runs gave different bits", name);
    printf("%s %s: loss %.7f vs cpu %.7f (%.2g), gradients within %.2g of each unit's largest; runs repeat bitwise\n",
           name, bf16 ? "bf16 matmuls" : "fp32", loss_gpu, loss_cpu, loss_err, worst);
    close_side(&c);
    close_side(&g);
    for (int u = 0; u < units; u++) free(host[u]), free(want[u]), free(got[u]), free(again[u]);
    zrt_device_destroy(cpu);
    zrt_device_destroy(gpu);
}

static void check_bad_token(zrt_model_config cfg, int32_t *tokens, size_t n)
{
    zrt_device *gpu = make_device(ZRT_DEVICE_CUDA, false);
    zrt_model *m;
    CHECK_OK(zrt_model_create(&cfg, gpu, BATCH, &m));
    float *params[8] = {0};
    for (int u = 0; u < m->n_units; u++) {
        params[u] = malloc((size_t)m->unit_numel[u] * 4);
        init_unit(m, u, params[u]);
    }
    int units = m->n_units;
    m->destroy(m);
    tokens[4] = (int32_t)cfg.vocab + 3;
    side g;
    open_side(&g, gpu, &cfg, params, tokens, n * 4, tokens, n * 4);
    float loss, *grads[8] = {0};
    for (int u = 0; u < units; u++) grads[u] = malloc((size_t)g.model->unit_numel[u] * 4);
    zrt_status status = run(&g, &loss, grads);
    CHECK_MSG(status != ZRT_OK && strstr(zrt_last_error(), "token"), "a token outside the vocabulary: %s",
              status == ZRT_OK ? "no error" : zrt_last_error());
    printf("a bad token: %s\n", zrt_last_error());
    close_side(&g);
    for (int u = 0; u < units; u++) free(params[u]), free(grads[u]);
    zrt_device_destroy(gpu);
}

int main(void)
{
    zrt_device_destroy(make_device(ZRT_DEVICE_CUDA, false)); /* skips without a GPU */
    zrt_model_config gpt = {.type = ZRT_MODEL_GPT, .layers = 2, .d_model = 64, .hidden = 256, .heads = 4,
                            .seq_len = 40, .vocab = 300};
    int32_t tokens[BATCH * 40 + 1];
    for (int i = 0; i < BATCH * 40 + 1; i++) tokens[i] = (int32_t)((i * 7919u + 13u) % 300u);
    zrt_model_config mlp = {.type = ZRT_MODEL_MLP, .layers = 3, .d_model = 48, .hidden = 96, .vocab = 10};
    float features[BATCH * 48];
    for (int i = 0; i < BATCH * 48; i++) features[i] = zrt_random_normal(3, 0, (uint64_t)i);
    int32_t classes[BATCH] = {1, 7, 4};
    zrt_model_config llama = {.type = ZRT_MODEL_LLAMA, .layers = 2, .d_model = 64, .hidden = 160, .heads = 4,
                              .kv_heads = 2, .seq_len = 40, .vocab = 300, .rope_theta = 10000, .norm_eps = 1e-6};
    zrt_model_config qwen = llama;
    qwen.tie_embeddings = qwen.attention_bias = true;
    for (int bf16 = 0; bf16 <= 1; bf16++) {
        check_model("gpt", gpt, tokens, BATCH * 40 * 4, tokens + 1, BATCH * 40 * 4, bf16);
        check_model("llama (GQA)", llama, tokens, BATCH * 40 * 4, tokens + 1, BATCH * 40 * 4, bf16);
        check_model("llama (tied, q/k/v biases)", qwen, tokens, BATCH * 40 * 4, tokens + 1, BATCH * 40 * 4, bf16);
        check_model("mlp", mlp, features, sizeof features, classes, sizeof classes, bf16);
    }
    check_bad_token(gpt, tokens, BATCH * 40);
    printf("CUDA gpt, llama and mlp agree with the CPU models\n");
    return CHECK_DONE();
}
