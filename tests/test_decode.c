/* test_decode.c: zrt_model.decode, the inference path of `zrt sample`, for
 * the GPT and the Llama model on the cpu device. Decode runs new positions
 * through every op with the earlier ones' keys and values kept (the KV
 * cache). It must compute what training's forward computes:
 *  - one token at a time at positions 0..T-1, the cross-entropy of each
 *    position's logits against the labels, averaged, equals the training
 *    loss of the same sequence (batch 1) within 1e-5 relative;
 *  - a prefill of the first k tokens then one at a time gives the last
 *    position's logits of a prefill of all T within 1e-5 of the largest;
 *  - a wrong cache is caught: decoding position T-1 after a cache filled
 *    with other tokens gives other logits;
 *  - bad calls are refused (pos0 + n beyond seq_len, a token outside the
 *    vocabulary, a model made with activation checkpointing).
 */
#include "check.h"
#include "engine_common.h"

#include <math.h>
#include <string.h>

#define T 8

typedef struct {
    zrt_device *d;
    zrt_stream *s;
    zrt_model *m;
    float *units[8];
    int32_t *tokens; /* device: T */
    float *logits;   /* device: V */
    int V;
} rig;

static void *dev(zrt_device *d, size_t bytes)
{
    void *p = NULL;
    CHECK_OK(zrt_device_alloc(d, ZRT_MEM_COMM, bytes, "test buffer", NULL, &p));
    return p;
}

static bool rig_open(rig *r, const zrt_model_config *cfg)
{
    memset(r, 0, sizeof *r);
    r->d = test_device();
    CHECK_OK(zrt_model_create(cfg, r->d, 1, &r->m));
    if (!r->m) return false;
    CHECK_OK(zrt_stream_create(r->d, "decode", &r->s));
    for (int u = 0; u < r->m->n_units; u++) {
        size_t bytes = (size_t)r->m->unit_numel[u] * sizeof(float);
        float *host = malloc(bytes);
        for (int64_t j = 0; j < r->m->unit_numel[u]; j++) host[j] = zrt_random_normal(3, (uint64_t)u, (uint64_t)j) * 0.3f;
        for (int k = 0; k < r->m->n_params[u]; k++)
            if (r->m->params[u][k].init == ZRT_INIT_ONES)
                for (int64_t j = 0; j < r->m->params[u][k].numel; j++) host[r->m->params[u][k].offset + j] += 1.0f;
        r->units[u] = dev(r->d, bytes);
        CHECK_OK(zrt_device_write(r->d, r->units[u], host, bytes));
        free(host);
    }
    r->V = (int)cfg->vocab;
    r->tokens = dev(r->d, T * sizeof(int32_t));
    r->logits = dev(r->d, (size_t)r->V * sizeof(float));
    return true;
}

static void rig_close(rig *r)
{
    for (int u = 0; u < r->m->n_units; u++) zrt_device_free(r->d, r->units[u], NULL);
    zrt_device_free(r->d, r->tokens, NULL), zrt_device_free(r->d, r->logits, NULL);
    zrt_stream_destroy(r->s);
    r->m->destroy(r->m);
    zrt_device_destroy(r->d);
}

/* Decodes tokens[0..n) at pos0; the last position's logits into host out. */
static zrt_status step(rig *r, const int32_t *tokens, int n, int pos0, float *out)
{
    CHECK_OK(zrt_device_write(r->d, r->tokens, tokens, (size_t)n * sizeof(int32_t)));
    zrt_status st = r->m->decode(r->m, r->s, (const float *const *)r->units, r->tokens, n, pos0, r->logits);
    if (st == ZRT_OK) st = zrt_stream_synchronize(r->s);
    if (st == ZRT_OK && out) CHECK_OK(zrt_device_read(r->d, out, r->logits, (size_t)r->V * sizeof(float)));
    return st;
}

/* The training loss of one sequence (batch 1) through forward and loss. */
static float training_loss(rig *r, const int32_t *tokens, const int32_t *labels)
{
    int32_t *dl = dev(r->d, T * sizeof(int32_t));
    float *dloss = dev(r->d, sizeof(float)), loss = 0;
    CHECK_OK(zrt_device_write(r->d, r->tokens, tokens, T * sizeof(int32_t)));
    CHECK_OK(zrt_device_write(r->d, dl, labels, T * sizeof(int32_t)));
    CHECK_OK(zrt_device_write(r->d, dloss, &loss, sizeof loss));
    CHECK_OK(r->m->set_batch(r->m, r->tokens, dl, 1));
    for (int op = 0; op < r->m->n_ops; op++) CHECK_OK(r->m->forward(r->m, r->s, op, r->units[r->m->op_unit[op]]));
    CHECK_OK(r->m->loss(r->m, r->s, 1.0f, 1.0f, dloss));
    CHECK_OK(zrt_stream_synchronize(r->s));
    CHECK_OK(zrt_device_read(r->d, &loss, dloss, sizeof loss));
    zrt_device_free(r->d, dl, NULL), zrt_device_free(r->d, dloss, NULL);
    return loss;
}

static double xent(const float *z, int V, int label)
{
    double max = z[0], sum = 0;
    for (int v = 1; v < V; v++) max = fmax(max, z[v]);
    for (int v = 0; v < V; v++) sum += exp(z[v] - max);
    return log(sum) + max - z[label];
}

static double max_diff(const float *a, const float *b, int n, double *scale)
{
    double worst = 0;
    *scale = 0;
    for (int i = 0; i < n; i++) worst = fmax(worst, fabs(a[i] - b[i])), *scale = fmax(*scale, fabs(b[i]));
    return worst;
}

static void check_model(const char *name, zrt_model_config cfg)
{
    rig r;
    if (!rig_open(&r, &cfg)) return;
    int32_t tokens[T], labels[T], other[T];
    for (int t = 0; t < T; t++)
        tokens[t] = (t * 5 + 2) % r.V, labels[t] = (t * 3 + 1) % r.V, other[t] = (t * 7 + 4) % r.V;
    float *z = malloc((size_t)r.V * sizeof(float)), *full = malloc((size_t)r.V * sizeof(float));
    double total = 0, scale;
    for (int t = 0; t < T; t++) {
        CHECK_OK(step(&r, tokens + t, 1, t, z));
        total += xent(z, r.V, labels[t]);
    }
    float loss = training_loss(&r, tokens, labels);
    CHECK_MSG(fabs(total / T - loss) <= 1e-5 * fabs(loss), "%s: decode's loss %.9g, training's %.9g", name, total / T,
              loss);
    CHECK_OK(step(&r, tokens, T, 0, full)); /* one prefill of all T */
    CHECK_OK(step(&r, tokens, 3, 0, NULL));
    for (int t = 3; t < T; t++) CHECK_OK(step(&r, tokens + t, 1, t, z));
    double diff = max_diff(z, full, r.V, &scale);
    CHECK_MSG(diff <= 1e-5 * scale, "%s: prefill 3 + steps vs prefill %d: %g of %g", name, T, diff, scale);
    CHECK_OK(step(&r, other, T - 1, 0, NULL)); /* a cache of other tokens */
    CHECK_OK(step(&r, tokens + T - 1, 1, T - 1, z));
    CHECK_MSG(max_diff(z, full, r.V, &scale) > 1e-3 * scale, "%s: the cache's tokens make no difference", name);
    CHECK(step(&r, tokens, 2, T - 1, NULL) == ZRT_ERR_INVALID); /* beyond seq_len */
    int32_t bad = r.V;
    zrt_status st = step(&r, &bad, 1, 0, NULL);
    CHECK_MSG(st == ZRT_ERR_INVALID && strstr(zrt_last_error(), "outside the vocabulary"), "%s: bad token: %s", name,
              zrt_last_error());
    printf("%s: decode's mean loss %.6f = training's %.6f; incremental vs prefill logits within %.2g of %.2g\n", name,
           total / T, loss, diff, scale);
    free(z), free(full);
    rig_close(&r);
    cfg.activation_checkpointing = true;
    if (!rig_open(&r, &cfg)) return;
    st = step(&r, tokens, 1, 0, NULL);
    CHECK_MSG(st == ZRT_ERR_UNSUPPORTED && strstr(zrt_last_error(), "activation_checkpointing"),
              "%s: decode with checkpointing: %s", name, zrt_last_error());
    rig_close(&r);
}

int main(void)
{
    check_model("gpt", (zrt_model_config){.type = ZRT_MODEL_GPT, .layers = 2, .d_model = 16, .heads = 2, .seq_len = T,
                                          .vocab = 32});
    check_model("llama", (zrt_model_config){.type = ZRT_MODEL_LLAMA, .layers = 2, .d_model = 16, .heads = 4,
                                            .kv_heads = 2, .hidden = 24, .seq_len = T, .vocab = 32,
                                            .rope_theta = 10000, .norm_eps = 1e-6});
    return CHECK_DONE();
}
