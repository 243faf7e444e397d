/* test_golden_torch.c: zrt's transformer against PyTorch. zrt writes a tiny
 * GPT's initial parameters, the batches of the first 5 steps and its own 5
 * losses (AdamW, clipping 1.0, fp32, one rank) to $TMPDIR; tests/golden_torch.py
 * builds the same model in Debian's python3-torch from those values and must
 * reproduce the losses within 1e-5 relative. Twice: on the built-in data,
 * and on token shards whose mask leaves targets out (labels -100, which
 * torch's cross_entropy ignores: the loss is the mean over the rest).
 * Skips when torch is missing.
 */
#include "engine_common.h"
#include "zrt/tokens.h"

#include <sys/stat.h>

#define STEPS 5

static void write_json(const char *path, const zrt_config *cfg)
{
    const zrt_model_config *m = &cfg->job.model;
    FILE *f = fopen(path, "w");
    fprintf(f,
            "{\"layers\": %lld, \"d_model\": %lld, \"heads\": %lld, \"seq_len\": %lld, \"vocab\": %lld, \"hidden\": %lld, "
            "\"batch\": %lld, \"steps\": %d, \"lr\": %.9g, \"betas\": [%.9g, %.9g], \"eps\": %.9g, "
            "\"weight_decay\": %.9g, \"clip\": %.9g}\n",
            (long long)m->layers, (long long)m->d_model, (long long)m->heads, (long long)m->seq_len,
            (long long)m->vocab, (long long)m->hidden, (long long)cfg->batch.micro_batch_per_gpu, STEPS,
            cfg->optimizer.lr, cfg->optimizer.betas[0], cfg->optimizer.betas[1], cfg->optimizer.eps,
            cfg->optimizer.weight_decay, cfg->gradient_clipping);
    fclose(f);
}

/* Token shards for the masked run: tokens from a fixed pattern, and every
 * window's first five targets left out (as a prompt is, in supervised
 * fine-tuning): zrt's labels there are -100, torch's cross_entropy ignores them. */
static void write_masked_shard(const char *dir, int64_t vocab)
{
    char prefix[1200];
    snprintf(prefix, sizeof prefix, "%s/train", dir);
    zrt_tokens_writer *w = NULL;
    CHECK_OK(zrt_tokens_writer_open(prefix, vocab, 1 << 20, &w));
    enum { N = 4096 };
    static int32_t ids[N];
    static uint8_t targets[N];
    for (int i = 0; i < N; i++) {
        ids[i] = (int32_t)((i * 7 + (i / 13) * 3) % vocab);
        targets[i] = i % 16 >= 5;
    }
    CHECK_OK(zrt_tokens_writer_add(w, ids, targets, N));
    CHECK_OK(zrt_tokens_writer_close(w, NULL, NULL));
}

/* zrt's 5 steps and the values torch needs, in dir; then torch's verdict. */
static void golden(const char *name, bool masked)
{
    static zrt_config cfg;
    run_spec s = {.world = 1, .stage = 0, .steps = STEPS, .micro = 4, .accum = 1, .gpt = true};
    spec_config(&s, &cfg);
    cfg.optimizer.lr = 1e-3;
    cfg.optimizer.betas[1] = 0.95;
    cfg.optimizer.weight_decay = 0.1;
    cfg.job.model.hidden = 4 * cfg.job.model.d_model;
    char dir[900], path[1200];
    snprintf(dir, sizeof dir, "%.800s/%s", test_tmpdir(), name);
    mkdir(dir, 0755);
    if (masked) {
        write_masked_shard(dir, cfg.job.model.vocab);
        cfg.job.data.type = ZRT_DATA_TOKENS;
        snprintf(cfg.job.data.train, sizeof cfg.job.data.train, "%.900s/train_*.bin", dir);
    }
    snprintf(path, sizeof path, "%s/golden.json", dir);
    write_json(path, &cfg);

    zrt_device *device = test_device();
    zrt_model *model;
    zrt_data data;
    zrt_engine *e;
    CHECK_OK(zrt_model_create(&cfg.job.model, device, 4, &model));
    CHECK_OK(zrt_data_init(&data, &cfg));
    CHECK_OK(zrt_engine_create(&cfg, NULL, model, &e));
    if (check_failures) exit(1);
    snprintf(path, sizeof path, "%s/params.bin", dir); /* every unit's initial values, in order */
    FILE *f = fopen(path, "wb");
    for (int u = 0; u < model->n_units; u++) {
        float *w = malloc((size_t)model->unit_numel[u] * sizeof(float));
        CHECK_OK(zrt_engine_get_master(e, u, w));
        fwrite(w, sizeof(float), (size_t)model->unit_numel[u], f);
        free(w);
    }
    fclose(f);
    snprintf(path, sizeof path, "%s/tokens.bin", dir); /* per step: inputs, then targets */
    f = fopen(path, "wb");
    int64_t T = cfg.job.model.seq_len, B = 4, ignored = 0;
    int32_t *x = malloc((size_t)(B * T) * sizeof(int32_t)), *y = malloc((size_t)(B * T) * sizeof(int32_t));
    for (int step = 0; step < STEPS; step++) {
        zrt_data_fill(&data, step * B, (int)B, x, y);
        for (int64_t i = 0; i < B * T; i++) ignored += y[i] == -100;
        fwrite(x, sizeof(int32_t), (size_t)(B * T), f);
        fwrite(y, sizeof(int32_t), (size_t)(B * T), f);
    }
    fclose(f);
    free(x);
    free(y);
    CHECK_MSG(masked == (ignored > 0), "%s: %lld labels are -100", name, (long long)ignored);
    snprintf(path, sizeof path, "%s/zrt_losses.txt", dir);
    f = fopen(path, "w");
    for (int step = 0; step < STEPS; step++) {
        zrt_step_result r;
        CHECK_OK(zrt_engine_step(e, &data, &r));
        fprintf(f, "%.9g\n", r.loss);
    }
    fclose(f);
    zrt_engine_destroy(e);
    model->destroy(model);
    zrt_data_fini(&data);
    zrt_device_destroy(device);

    const char *src = getenv("ZRT_SRC");
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/tests/golden_torch.py' '%s'", src ? src : ".", dir);
    printf("%s%s:\n", name, masked ? " (token shards, every window's first 5 targets masked: -100)" : "");
    fflush(stdout);
    int rc = system(cmd);
    CHECK_MSG(rc == 0, "%s: PyTorch does not reproduce zrt's losses (golden_torch.py exited %d)", name, rc);
}

int main(void)
{
    if (system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0)
        SKIP("python3-torch is not installed for /usr/bin/python3 (tools/bootstrap installs it)");
    openblas_set_num_threads(1);
    golden("builtin", false);
    golden("masked", true);
    return CHECK_DONE();
}
