/* test_activation_ckpt.c: activation checkpointing (zrt.activation_checkpointing,
 * DeepSpeed's activation_checkpointing section): a block keeps only its
 * input and runs its forward again in backward. Checked for the GPT and the
 * Llama model on the cpu device, as the engine drives them (ops forward,
 * loss, ops backward in reverse):
 *  - the loss and every unit's gradient are the same bits with and without;
 *  - the activation memory a model reports (zrt_model.activation_bytes) is
 *    what the device's pool holds for it (ZRT_MEM_ACTIVATIONS);
 *  - with it on, a 16-layer model holds at most a quarter of that without;
 *  - activation memory is linear in the sequence (flash attention): at seq
 *    2048 at most 2.2x that at 1024, reported and at the pool's peak over
 *    a step (test_model_emulated checks the cuda table the same way);
 *  - the only N x V activation is the logits (the fused cross-entropy writes
 *    its gradient in place): a vocabulary larger by dV adds exactly
 *    N dV floats (the former logits, probs and dlogits added 3 N dV).
 * The comparison is shown able to fail: a run whose last block differs in
 * one weight by 1e-3 must not compare equal.
 */
#include "check.h"
#include "engine_common.h"
#include "xent.h" /* ZRT_IGNORE_INDEX */

#include <string.h>

#define BATCH 2

typedef struct {
    float loss;
    float *grads; /* every unit's, one after another */
    int64_t numel;
    int64_t reported, measured; /* activation bytes: the model's report, the pool's after creating it */
    int64_t peak;               /* the pool's activations at their highest, over the whole step */
} pass_result;

static void *dev_alloc(zrt_device *d, size_t bytes)
{
    void *p = NULL;
    CHECK_OK(zrt_device_alloc(d, ZRT_MEM_COMM, bytes, "test buffer", NULL, &p));
    return p;
}

/* The unit's parameters: normal * 0.3, plus 1 where the init is ones (norm weights). */
static void fill_params(const zrt_model *m, int u, float *host, uint64_t nudge)
{
    for (int64_t j = 0; j < m->unit_numel[u]; j++) host[j] = zrt_random_normal(7, (uint64_t)u, (uint64_t)j) * 0.3f;
    for (int k = 0; k < m->n_params[u]; k++)
        if (m->params[u][k].init == ZRT_INIT_ONES)
            for (int64_t j = 0; j < m->params[u][k].numel; j++) host[m->params[u][k].offset + j] += 1.0f;
    if (nudge && u == m->n_units - 2) host[0] += 1e-3f; /* the last block's first weight */
}

/* One forward, loss and backward of cfg's model on a fresh cpu device. */
static pass_result one_pass(const zrt_model_config *cfg, uint64_t nudge)
{
    pass_result r = {0};
    zrt_device *d = test_device();
    zrt_model *m = NULL;
    CHECK_OK(zrt_model_create(cfg, d, BATCH, &m));
    if (!m) return r;
    r.reported = m->activation_bytes;
    r.measured = zrt_device_mem(d)->current[ZRT_MEM_DEVICE][ZRT_MEM_ACTIVATIONS];
    zrt_stream *s = NULL;
    CHECK_OK(zrt_stream_create(d, "model", &s));
    float *params[ZRT_MAX_UNITS], *grads[ZRT_MAX_UNITS];
    for (int u = 0; u < m->n_units; u++) {
        size_t bytes = (size_t)m->unit_numel[u] * sizeof(float);
        float *host = malloc(bytes);
        fill_params(m, u, host, nudge);
        params[u] = dev_alloc(d, bytes), grads[u] = dev_alloc(d, bytes);
        CHECK_OK(zrt_device_write(d, params[u], host, bytes));
        CHECK_OK(zrt_memset_async(s, grads[u], 0, bytes));
        free(host);
        r.numel += m->unit_numel[u];
    }
    int n = BATCH * (int)cfg->seq_len;
    size_t token_bytes = (size_t)n * sizeof(int32_t);
    int32_t *tokens = malloc(token_bytes), *labels = malloc(token_bytes);
    for (int i = 0; i < n; i++) tokens[i] = (int32_t)((i * 7 + 3) % cfg->vocab), labels[i] = (int32_t)((i * 5 + 1) % cfg->vocab);
    labels[2] = ZRT_IGNORE_INDEX;
    int32_t *dt = dev_alloc(d, token_bytes), *dl = dev_alloc(d, token_bytes);
    float *dloss = dev_alloc(d, sizeof(float)), zero = 0;
    CHECK_OK(zrt_device_write(d, dt, tokens, token_bytes));
    CHECK_OK(zrt_device_write(d, dl, labels, token_bytes));
    free(tokens), free(labels);
    CHECK_OK(zrt_device_write(d, dloss, &zero, sizeof zero));
    CHECK_OK(m->set_batch(m, dt, dl, BATCH));
    for (int op = 0; op < m->n_ops; op++) CHECK_OK(m->forward(m, s, op, params[m->op_unit[op]]));
    CHECK_OK(m->loss(m, s, 1.0f, 1.0f, dloss));
    for (int op = m->n_ops - 1; op >= 0; op--) CHECK_OK(m->backward(m, s, op, params[m->op_unit[op]], grads[m->op_unit[op]]));
    CHECK_OK(zrt_stream_synchronize(s));
    r.peak = zrt_device_mem(d)->peak[ZRT_MEM_DEVICE][ZRT_MEM_ACTIVATIONS];
    CHECK_OK(zrt_device_read(d, &r.loss, dloss, sizeof r.loss));
    r.grads = malloc((size_t)r.numel * sizeof(float));
    for (int u = 0, at = 0; u < m->n_units; at += (int)m->unit_numel[u], u++)
        CHECK_OK(zrt_device_read(d, r.grads + at, grads[u], (size_t)m->unit_numel[u] * sizeof(float)));
    for (int u = 0; u < m->n_units; u++) zrt_device_free(d, params[u], NULL), zrt_device_free(d, grads[u], NULL);
    zrt_device_free(d, dt, NULL), zrt_device_free(d, dl, NULL), zrt_device_free(d, dloss, NULL);
    zrt_stream_destroy(s);
    m->destroy(m);
    zrt_device_destroy(d);
    return r;
}

static bool same_bits(const pass_result *a, const pass_result *b)
{
    return a->numel == b->numel && memcmp(&a->loss, &b->loss, sizeof a->loss) == 0 &&
           memcmp(a->grads, b->grads, (size_t)a->numel * sizeof(float)) == 0;
}

static void check_model(const char *name, zrt_model_config cfg)
{
    cfg.activation_checkpointing = false;
    pass_result off = one_pass(&cfg, 0), nudged = one_pass(&cfg, 1);
    cfg.activation_checkpointing = true;
    pass_result on = one_pass(&cfg, 0);
    if (!off.grads || !on.grads || !nudged.grads) return;
    CHECK_MSG(same_bits(&off, &on), "%s: loss or gradients differ with activation checkpointing (loss %.9g vs %.9g)",
              name, off.loss, on.loss);
    CHECK_MSG(!same_bits(&off, &nudged), "%s: the comparison cannot see a changed parameter", name);
    CHECK_MSG(off.reported == off.measured && on.reported == on.measured,
              "%s: reported activation bytes %lld / %lld, the pool holds %lld / %lld", name, (long long)off.reported,
              (long long)on.reported, (long long)off.measured, (long long)on.measured);
    printf("%s: loss %.6f and %lld gradients the same bits with and without; activations %lld -> %lld bytes\n", name,
           off.loss, (long long)off.numel, (long long)off.measured, (long long)on.measured);
    free(off.grads), free(on.grads), free(nudged.grads);
}

/* A 16-layer model: activation memory with checkpointing at most 1/4 of without. */
static void check_memory(const char *name, zrt_model_config cfg)
{
    zrt_device *d = test_device();
    int64_t bytes[2];
    for (int on = 0; on < 2; on++) {
        cfg.activation_checkpointing = on;
        zrt_model *m = NULL;
        CHECK_OK(zrt_model_create(&cfg, d, 4, &m));
        bytes[on] = zrt_device_mem(d)->current[ZRT_MEM_DEVICE][ZRT_MEM_ACTIVATIONS];
        if (m) m->destroy(m);
    }
    zrt_device_destroy(d);
    double ratio = (double)bytes[1] / (double)bytes[0];
    printf("%s, 16 layers, micro batch 4: activations %.2f MB without, %.2f MB with checkpointing (%.3f)\n", name,
           bytes[0] / 1e6, bytes[1] / 1e6, ratio);
    CHECK_MSG(ratio <= 0.25, "%s: checkpointing keeps %.3f of the activations (at most 0.25)", name, ratio);
}

/* Activation memory linear in the sequence (flash attention keeps no T x T buffer): at seq 2048 at
 * most 2.2x that at 1024, reported and at the pool's peak over a whole step. The bound is shown to
 * bite: the former layout's (B, NH, T, T) buffers -- a softmax per block, three shared scratch --
 * added to the same report would exceed it. */
static void check_seq_scaling(const char *name, zrt_model_config cfg)
{
    pass_result r[2];
    double quadratic[2]; /* the former layout's extra bytes */
    for (int i = 0; i < 2; i++) {
        cfg.seq_len = 1024 << i;
        r[i] = one_pass(&cfg, 0);
        free(r[i].grads);
        quadratic[i] = 4.0 * (double)(cfg.layers + 3) * BATCH * cfg.heads * (double)cfg.seq_len * cfg.seq_len;
    }
    double reported = (double)r[1].reported / r[0].reported, peak = (double)r[1].peak / r[0].peak;
    double former = (r[1].reported + quadratic[1]) / (r[0].reported + quadratic[0]);
    printf("%s, seq 1024 -> 2048: activations %.2f -> %.2f MB (x%.3f), step peak %.2f -> %.2f MB (x%.3f); "
           "with the former T x T buffers x%.3f\n", name, r[0].reported / 1e6, r[1].reported / 1e6, reported,
           r[0].peak / 1e6, r[1].peak / 1e6, peak, former);
    CHECK_MSG(reported <= 2.2 && peak <= 2.2,
              "%s: activations grow x%.3f (reported), x%.3f (peak) from seq 1024 to 2048", name, reported, peak);
    CHECK_MSG(former > 2.2, "%s: the former layout would pass the bound too (x%.3f): the check cannot fail", name,
              former);
}

/* The vocabulary's share of the activations: one (N, V) fp32 buffer, the logits. */
static void check_vocab_memory(const char *name, zrt_model_config cfg)
{
    enum { DV = 1000 };
    int64_t bytes[2];
    for (int i = 0; i < 2; i++) {
        zrt_device *d = test_device();
        zrt_model *m = NULL;
        cfg.vocab += i * DV;
        CHECK_OK(zrt_model_create(&cfg, d, BATCH, &m));
        bytes[i] = m ? m->activation_bytes : 0;
        if (m) m->destroy(m);
        zrt_device_destroy(d);
    }
    int64_t per_nv = (int64_t)BATCH * cfg.seq_len * DV * (int64_t)sizeof(float), grew = bytes[1] - bytes[0];
    printf("%s: vocabulary +%d adds %lld activation bytes = %.3g N dV floats (the former layout: 3)\n", name, DV,
           (long long)grew, (double)grew / (double)per_nv);
    CHECK_MSG(grew == per_nv, "%s: vocabulary +%d adds %lld activation bytes, want %lld (the logits alone)", name, DV,
              (long long)grew, (long long)per_nv);
}

int main(void)
{
    zrt_model_config gpt = {.type = ZRT_MODEL_GPT, .layers = 2, .d_model = 16, .heads = 2, .seq_len = 8, .vocab = 32};
    zrt_model_config llama = {.type = ZRT_MODEL_LLAMA, .layers = 2, .d_model = 16, .heads = 4, .kv_heads = 2,
                              .hidden = 24, .seq_len = 8, .vocab = 32, .rope_theta = 10000, .norm_eps = 1e-6};
    check_model("gpt", gpt);
    check_model("llama", llama);
    check_vocab_memory("gpt", gpt);
    check_vocab_memory("llama", llama);
    gpt.layers = llama.layers = 16;
    gpt.seq_len = llama.seq_len = 64;
    gpt.d_model = llama.d_model = 64;
    llama.hidden = 172;
    check_memory("gpt", gpt);
    check_memory("llama", llama);
    gpt.layers = llama.layers = 2;
    gpt.d_model = llama.d_model = 32;
    llama.hidden = 64;
    check_seq_scaling("gpt", gpt);
    check_seq_scaling("llama", llama);
    return CHECK_DONE();
}
