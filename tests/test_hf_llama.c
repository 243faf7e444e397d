/* test_hf_llama.c: the Llama family against transformers, both ways.
 * tests/hf_llama.py makes tiny random models with transformers (no
 * download): a Llama in 4 input shard files, a tied Llama 3 with
 * rope_scaling, a Mistral (sliding_window null) and a tied Qwen2 (q, k, v
 * biases). zrt trains each from its directory (zrt.model.init_from; the
 * shape from config.json) for 5 steps (AdamW, weight decay, clipping 1.0,
 * fp32) at world 1 and 2, stages 0 and 3, saving after step 1 (its exp_avg
 * is (1 - beta1) x step 1's gradient) and, at world 1 stage 0, after step 5.
 * hf_llama.py check trains the same model in transformers on the same
 * global batches and wants zrt's 5 losses and every parameter's step-1
 * gradient within 1e-5 relative (a gradient relative to its largest
 * element). The step-5 checkpoint is exported (zrt shards export-hf; the
 * first case with --max-shard-size 100KB: several files and an index; and
 * --dtype bf16), loaded in transformers, and its tensors must equal `zrt
 * shards consolidate`'s bit for bit and its logits zrt's own (decode, one
 * position at a time) within 1e-5. Then export-hf's refusals, by name.
 * The checker is shown firing: a gradient file with one element changed
 * fails the comparison.
 */
#include "engine_common.h"
#include "run_cmd.h"
#include "zrt/shards.h"

#include <stdarg.h>
#include <sys/wait.h>

#define STEPS 5
#define BATCH 4 /* global: 4 samples of seq_len at world 1, 2 per rank at world 2 */
#define T 16


typedef struct {
    char dir[900]; /* WORK/NAME: hf/ the model, run-wW-sS/ each run */
    int world, stage;
} run_arg;

static void llama_config(zrt_config *cfg, const char *dir, int world, int stage)
{
    run_spec s = {.world = world, .stage = stage, .steps = STEPS, .micro = BATCH / world, .accum = 1, .gpt = true};
    spec_config(&s, cfg);
    cfg->optimizer.lr = 1e-3;
    cfg->optimizer.betas[1] = 0.95;
    cfg->optimizer.weight_decay = 0.1;
    cfg->job.model = (zrt_model_config){.type = ZRT_MODEL_LLAMA, .seq_len = T}; /* the rest from config.json */
    snprintf(cfg->job.model.init_from, sizeof cfg->job.model.init_from, "%s/hf", dir);
    if (zrt_config_validate(cfg) != ZRT_OK) {
        fprintf(stderr, "%s: %s\n", dir, zrt_last_error());
        exit(1);
    }
}

/* One rank of a run: 5 steps, a checkpoint after step 1 (and after 5 at world 1 stage 0), rank 0's losses. */
static int train_llama(int rank, int world, void *arg)
{
    const run_arg *a = arg;
    static test_rank t;
    memset(&t, 0, sizeof t);
    llama_config(&t.cfg, a->dir, world, a->stage);
    char tag[64], path[1200];
    const char *name = strrchr(a->dir, '/') + 1;
    snprintf(tag, sizeof tag, "%.40s-w%d-s%d", name, world, a->stage); /* a rendezvous of its own per run */
    if (!test_rank_open_config(&t, tag, rank, world)) return 11;
    snprintf(path, sizeof path, "%s/run-w%d-s%d/losses.txt", a->dir, world, a->stage);
    FILE *f = rank == 0 ? fopen(path, "w") : NULL;
    for (int step = 1; step <= STEPS; step++) {
        zrt_step_result r;
        if (zrt_engine_step(t.e, &t.data, &r) != ZRT_OK) return fprintf(stderr, "rank %d: %s\n", rank, zrt_last_error()), 12;
        if (f) fprintf(f, "%.9g\n", r.loss);
        snprintf(path, sizeof path, "%s/run-w%d-s%d/ckpt%d", a->dir, world, a->stage, step);
        bool save = step == 1 || (step == STEPS && world == 1 && a->stage == 0);
        if (save && zrt_engine_save(t.e, path) != ZRT_OK) return fprintf(stderr, "save: %s\n", zrt_last_error()), 13;
    }
    if (f) fclose(f);
    test_rank_close(&t);
    return 0;
}

/* The global batches of the 5 steps (inputs, then targets), and the settings, for transformers. */
static void write_batches(const char *dir)
{
    static zrt_config cfg;
    llama_config(&cfg, dir, 1, 0);
    zrt_data data;
    CHECK_OK(zrt_data_init(&data, &cfg));
    char path[1200];
    snprintf(path, sizeof path, "%s/tokens.bin", dir);
    FILE *f = fopen(path, "wb");
    static int32_t x[BATCH * T], y[BATCH * T];
    for (int step = 0; step < STEPS; step++) {
        zrt_data_fill(&data, step * BATCH, BATCH, x, y);
        fwrite(x, sizeof x, 1, f);
        fwrite(y, sizeof y, 1, f);
    }
    fclose(f);
    zrt_data_fini(&data);
    snprintf(path, sizeof path, "%s/golden.json", dir);
    f = fopen(path, "w");
    fprintf(f, "{\"steps\": %d, \"batch\": %d, \"seq_len\": %d, \"lr\": %.9g, \"betas\": [%.9g, %.9g], \"eps\": %.9g, "
               "\"weight_decay\": %.9g, \"clip\": %.9g}\n", STEPS, BATCH, T, cfg.optimizer.lr, cfg.optimizer.betas[0],
            cfg.optimizer.betas[1], cfg.optimizer.eps, cfg.optimizer.weight_decay, cfg.gradient_clipping);
    fclose(f);
}

/* A run's exp_avg after step 1, every parameter: grads.txt (name numel) and grads.bin (fp32). */
static void write_grads(const char *run_dir)
{
    char path[1300];
    snprintf(path, sizeof path, "%s/ckpt1", run_dir);
    zrt_ckpt *c = NULL;
    CHECK_OK(zrt_ckpt_open(path, &c));
    if (!c) return;
    snprintf(path, sizeof path, "%s/grads.txt", run_dir);
    FILE *names = fopen(path, "w");
    snprintf(path, sizeof path, "%s/grads.bin", run_dir);
    FILE *values = fopen(path, "wb");
    for (int u = 0; u < c->n_units; u++)
        for (int k = 0; k < c->units[u].n_params; k++) {
            const zrt_ckpt_param *p = &c->units[u].params[k];
            float *v = malloc((size_t)p->numel * sizeof(float));
            CHECK_OK(zrt_ckpt_read(c, u, ZRT_CKPT_EXP_AVG, p->offset, p->numel, v));
            fprintf(names, "%s %lld\n", p->name, (long long)p->numel);
            fwrite(v, sizeof(float), (size_t)p->numel, values);
            free(v);
        }
    fclose(names);
    fclose(values);
    zrt_ckpt_close(c);
}

static void *dev(zrt_device *d, size_t bytes)
{
    void *p = NULL;
    CHECK_OK(zrt_device_alloc(d, ZRT_MEM_COMM, bytes, "test buffer", NULL, &p));
    return p;
}

/* zrt's logits of the step-5 weights on the first sample of step 5's batch,
 * position by position (decode: the inference path), T x vocab floats. */
static void write_logits(const char *dir)
{
    static zrt_config cfg;
    llama_config(&cfg, dir, 1, 0);
    char path[1300];
    snprintf(path, sizeof path, "%s/run-w1-s0/ckpt5", dir);
    zrt_ckpt *c = NULL;
    zrt_device *d = test_device();
    zrt_model *m = NULL;
    zrt_stream *s = NULL;
    CHECK_OK(zrt_ckpt_open(path, &c));
    CHECK_OK(zrt_model_create(&cfg.job.model, d, 1, &m));
    CHECK_OK(zrt_stream_create(d, "decode", &s));
    if (!c || !m || !s) exit(1);
    float *units[ZRT_MAX_UNITS];
    for (int u = 0; u < m->n_units; u++) {
        float *host = malloc((size_t)m->unit_numel[u] * sizeof(float));
        CHECK_OK(zrt_ckpt_read(c, u, ZRT_CKPT_MASTER, 0, m->unit_numel[u], host));
        units[u] = dev(d, (size_t)m->unit_numel[u] * sizeof(float));
        CHECK_OK(zrt_device_write(d, units[u], host, (size_t)m->unit_numel[u] * sizeof(float)));
        free(host);
    }
    zrt_data data;
    static int32_t x[T], y[T];
    CHECK_OK(zrt_data_init(&data, &cfg));
    zrt_data_fill(&data, (STEPS - 1) * BATCH, 1, x, y);
    zrt_data_fini(&data);
    int V = (int)cfg.job.model.vocab;
    int32_t *tok = dev(d, sizeof(int32_t));
    float *logits = dev(d, (size_t)V * sizeof(float)), *host = malloc((size_t)V * sizeof(float));
    snprintf(path, sizeof path, "%s/zrt_logits.bin", dir);
    FILE *f = fopen(path, "wb");
    for (int pos = 0; pos < T; pos++) {
        CHECK_OK(zrt_device_write(d, tok, &x[pos], sizeof(int32_t)));
        CHECK_OK(m->decode(m, s, (const float *const *)units, tok, 1, pos, logits));
        CHECK_OK(zrt_stream_synchronize(s));
        CHECK_OK(zrt_device_read(d, host, logits, (size_t)V * sizeof(float)));
        fwrite(host, sizeof(float), (size_t)V, f);
    }
    fclose(f);
    snprintf(path, sizeof path, "%s/logits_tokens.bin", dir);
    f = fopen(path, "wb");
    fwrite(x, sizeof x, 1, f);
    fclose(f);
    free(host);
    zrt_device_free(d, tok, NULL), zrt_device_free(d, logits, NULL);
    for (int u = 0; u < m->n_units; u++) zrt_device_free(d, units[u], NULL);
    zrt_stream_destroy(s);
    m->destroy(m);
    zrt_device_destroy(d);
    zrt_ckpt_close(c);
}

static void one_case(const char *work, const char *name, bool sharded)
{
    static const struct {
        int world, stage;
    } runs[] = {{1, 0}, {1, 3}, {2, 0}, {2, 3}};
    run_arg a;
    snprintf(a.dir, sizeof a.dir, "%.800s/%s", work, name);
    write_batches(a.dir);
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        a.world = runs[i].world, a.stage = runs[i].stage;
        char path[1000];
        snprintf(path, sizeof path, "%s/run-w%d-s%d", a.dir, a.world, a.stage);
        mkdir(path, 0755);
        CHECK_MSG(ranks_run(a.world, train_llama, &a, 120) == 0, "%s: world %d stage %d did not train", name, a.world, a.stage);
        write_grads(path);
    }
    write_logits(a.dir);
    const char *zrt = getenv("ZRT_BIN");
    CHECK_MSG(run("'%s' shards export-hf '%s/run-w1-s0/ckpt5' '%s/export' %s >/dev/null && "
                  "'%s' shards export-hf '%s/run-w1-s0/ckpt5' '%s/export-bf16' --dtype bf16 >/dev/null && "
                  "'%s' shards consolidate '%s/run-w1-s0/ckpt5' '%s/consolidated' >/dev/null", zrt, a.dir, a.dir,
                  sharded ? "--max-shard-size 100KB" : "", zrt, a.dir, a.dir, zrt, a.dir, a.dir) == 0,
              "%s: export-hf or consolidate failed", name);
}

/* export-hf refuses bad input by name, and writes nothing. */
static void refusals(const char *work, const char *ckpt)
{
    static const struct {
        const char *args, *expect;
    } cases[] = {
        {"'%s/none' '%s/out1'", "/none: No such file or directory"},
        {"'%s' '%s/held' ", "holds 'tokenizer.json', which export-hf does not write"},
        {"'%s' '%s/out2' --max-shard-size 5XB", "bad value '5XB' for --max-shard-size"},
        {"'%s' '%s/out3' --dtype fp8", "bad value 'fp8' for --dtype"},
        {"'%s' /proc/zrt-export-%s", "/proc/.zrt-export-x.tmp-"}, /* OUT where nothing can be created */
    };
    CHECK(run("mkdir -p '%s/held' && echo '{}' >'%s/held/tokenizer.json'", work, work) == 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[3000], out[1200];
        snprintf(args, sizeof args, cases[i].args, i == 0 ? work : ckpt, i == 4 ? "x" : work);
        snprintf(out, sizeof out, "%s/refusal.txt", work);
        int rc = run("'%s' shards export-hf %s >'%s' 2>&1", getenv("ZRT_BIN"), args, out);
        char text[4096] = "";
        FILE *f = fopen(out, "r");
        size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
        text[n] = '\0';
        if (f) fclose(f);
        CHECK_MSG(rc != 0 && strstr(text, cases[i].expect), "export-hf %s: exit %d, want '%s' in: %s", args, rc,
                  cases[i].expect, text);
        printf("refused: export-hf %s: %s", args, text);
    }
    CHECK(run("test \"$(ls '%s/held')\" = tokenizer.json && ! ls -d '%s'/out? '%s'/.out* 2>/dev/null", work, work, work) == 0);
}

int main(void)
{
    const char *src = getenv("ZRT_SRC") ? getenv("ZRT_SRC") : ".", *work = test_tmpdir();
    int made = run("/usr/bin/python3 '%s/tests/hf_llama.py' make '%s'", src, work);
    if (made == TEST_EXIT_SKIP) SKIP("transformers is not installed for /usr/bin/python3 (tools/bootstrap installs it)");
    CHECK_MSG(made == 0, "hf_llama.py make failed");
    char path[1200], name[64];
    snprintf(path, sizeof path, "%s/cases.txt", work);
    FILE *f = fopen(path, "r");
    for (int i = 0; f && fscanf(f, "%63s", name) == 1; i++) one_case(work, name, i == 0);
    if (f) fclose(f);
    if (check_failures) return CHECK_DONE();
    CHECK_MSG(run("/usr/bin/python3 '%s/tests/hf_llama.py' check '%s'", src, work) == 0,
              "transformers does not reproduce zrt's Llama-family training or export");
    /* The checker fires: one gradient element of one run changed by 1e-4 of the largest. */
    CHECK(run("cd '%s/llama/run-w2-s3' && /usr/bin/python3 -c \"import numpy as np; g=np.fromfile('grads.bin',"
              "dtype=np.float32); g[7]+=1e-4*abs(g).max(); g.tofile('grads.bin')\"", work) == 0);
    CHECK_MSG(run("/usr/bin/python3 '%s/tests/hf_llama.py' check '%s' llama >'%s/fired.txt'", src, work, work) == 1 &&
                  run("grep -q 'run-w2-s3.*FAIL' '%s/fired.txt'", work) == 0,
              "a changed gradient was not caught");
    snprintf(path, sizeof path, "%s/llama/run-w1-s0/ckpt5", work);
    refusals(work, path);
    return CHECK_DONE();
}
