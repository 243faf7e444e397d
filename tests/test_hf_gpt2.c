/* test_hf_gpt2.c: Hugging Face GPT-2 both ways. A GPT-2 made by transformers
 * with random weights (no download) is imported (zrt.model.init_from); zrt's
 * first loss on its first batch equals transformers' on the same batch; after
 * 3 steps the checkpoint is exported (zrt shards export-hf), loaded by
 * GPT2LMHeadModel.from_pretrained, and its loss on zrt's 4th batch equals
 * zrt's 4th (tests/hf_gpt2.py, 1e-4 relative; losses stand for the logits).
 * Exported again over --max-shard-size 20KB: several files and an index that
 * from_pretrained loads to the same tensors.
 * The export's names, shapes and values are checked against zrt's own
 * consolidated weights with a plain reader of the format, and a model whose
 * config disagrees, or a file with a tensor too many, is refused by name.
 * Without transformers it still checks the export of a run from zrt's own
 * initial weights with the plain reader, then skips, saying what it left out.
 */
#include "engine_common.h"
#include "run_cmd.h"

#include <stdarg.h>
#include <sys/wait.h>

#define STEPS 4


static void gpt_config(zrt_config *cfg, const char *init_from)
{
    run_spec s = {.world = 1, .stage = 0, .steps = STEPS, .micro = 4, .accum = 1, .gpt = true};
    spec_config(&s, cfg);
    cfg->job.model = (zrt_model_config){.type = ZRT_MODEL_GPT, .layers = 2, .d_model = 32, .heads = 4, .seq_len = 16,
                                        .vocab = 64, .hidden = 128};
    snprintf(cfg->job.model.init_from, sizeof cfg->job.model.init_from, "%s", init_from);
}

/* zrt's side: the batches and losses of STEPS steps from the imported weights, a checkpoint after 3. */
static void train(const char *hf, const char *work)
{
    static test_rank t;
    memset(&t, 0, sizeof t);
    gpt_config(&t.cfg, hf);
    if (!test_rank_open_config(&t, "hf", 0, 1)) exit(1);
    zrt_engine *e = t.e;
    zrt_data *data = &t.data;
    char path[1200];
    snprintf(path, sizeof path, "%s/tokens.bin", work);
    FILE *f = fopen(path, "wb");
    int32_t x[64], y[64];
    for (int step = 0; step < STEPS; step++) {
        zrt_data_fill(data, step * 4, 4, x, y);
        fwrite(x, sizeof x, 1, f);
        fwrite(y, sizeof y, 1, f);
    }
    fclose(f);
    snprintf(path, sizeof path, "%s/zrt_losses.txt", work);
    f = fopen(path, "w");
    char ckpt[1200];
    snprintf(ckpt, sizeof ckpt, "%s/ckpt", work);
    for (int step = 0; step < STEPS; step++) {
        if (step == 3) CHECK_OK(zrt_engine_save(e, ckpt)); /* the weights step 4 computes with */
        zrt_step_result r;
        CHECK_OK(zrt_engine_step(e, data, &r));
        fprintf(f, "%.9g\n", r.loss);
    }
    fclose(f);
    test_rank_close(&t);
}

/* A config or file that does not fit is refused, naming what. */
static void refused(const char *hf_dir, const char *expect)
{
    static zrt_config cfg;
    gpt_config(&cfg, hf_dir);
    zrt_device *device = test_device();
    zrt_model *model = NULL;
    zrt_engine *e = NULL;
    CHECK_OK(zrt_model_create(&cfg.job.model, device, 4, &model));
    CHECK(zrt_engine_create(&cfg, NULL, model, &e) == ZRT_ERR_CONFIG);
    CHECK_MSG(strstr(zrt_last_error(), expect) != NULL, "want '%s': %s", expect, zrt_last_error());
    model->destroy(model);
    zrt_device_destroy(device);
}

int main(void)
{
    const char *src = getenv("ZRT_SRC") ? getenv("ZRT_SRC") : ".", *zrt = getenv("ZRT_BIN"), *work = test_tmpdir();
    int made = run("/usr/bin/python3 '%s/tests/hf_gpt2.py' make '%s/hf'", src, work);
    CHECK_MSG(made == 0 || made == TEST_EXIT_SKIP, "could not make the GPT-2");
    char hf[1100];
    snprintf(hf, sizeof hf, "%s/hf", work);
    train(made == 0 ? hf : "", work); /* without transformers: from zrt's own initial weights */
    CHECK(run("'%s' shards export-hf '%s/ckpt' '%s/out' >/dev/null && '%s' shards consolidate '%s/ckpt' '%s/zrt_st' >/dev/null",
              zrt, work, work, zrt, work, work) == 0);
    CHECK_MSG(run("/usr/bin/python3 '%s/tests/hf_gpt2.py' arrays '%s/out' '%s/zrt_st'", src, work, work) == 0,
              "export-hf's tensors differ from zrt's weights");
    if (made == TEST_EXIT_SKIP) {
        if (check_failures) return 1;
        SKIP("transformers is not installed for /usr/bin/python3 (tools/bootstrap installs it from PyPI): export-hf's "
             "names, shapes and values checked by the plain reader; the import and the losses not");
    }
    CHECK_MSG(run("/usr/bin/python3 '%s/tests/hf_gpt2.py' check '%s' '%s/out' '%s'", src, hf, work, work) == 0,
              "transformers does not reproduce zrt's losses");
    CHECK_MSG(run("'%s' shards export-hf '%s/ckpt' '%s/sharded' --max-shard-size 20KB >/dev/null && /usr/bin/python3 "
                  "'%s/tests/hf_gpt2.py' sharded '%s/out' '%s/sharded'", zrt, work, work, src, work, work) == 0,
              "export-hf --max-shard-size: not Hugging Face's sharded layout");
    /* Mismatches: another head count in config.json; an extra tensor in zrt's own format. */
    CHECK(run("/usr/bin/python3 '%s/tests/hf_gpt2.py' make '%s/hf2' 2", src, work) == 0);
    refused(strcat(strcpy(hf, work), "/hf2"), "n_head is 2; zrt.model says 4");
    CHECK(run("cd '%s/zrt_st' && /usr/bin/python3 -c \"import json,struct; d=open('model.safetensors','rb').read(); "
              "n=struct.unpack('<Q',d[:8])[0]; h=json.loads(d[8:8+n]); e=h['wpe']['data_offsets'][1]; "
              "h['extra.weight']={'dtype':'F32','shape':[1],'data_offsets':[e,e+4]}; t=json.dumps(h).encode(); "
              "t+=b' '*(-len(t)%%8); open('bad.safetensors','wb').write(struct.pack('<Q',len(t))+t+d[8+n:])\"", work) == 0);
    snprintf(hf, sizeof hf, "%s/zrt_st/bad.safetensors", work);
    refused(hf, "tensor extra.weight is not a parameter of this model");
    return CHECK_DONE();
}
