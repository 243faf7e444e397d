/* test_checkpoint.c: checkpoints of the transformer.
 *  - resume at the same world size and stage continues bit for bit like the
 *    uninterrupted run;
 *  - resume at another world size and/or stage (2 ranks stage 2 -> 4 ranks
 *    stage 3, -> 1 rank stage 0, -> 3 ranks stage 1) works from the same
 *    files and matches within 1e-5 relative (fp32), same global batch;
 *  - a kill -9 in the middle of a save leaves the previous checkpoint as
 *    `latest`, loadable, and resuming from it matches bit for bit;
 *  - a flipped byte, a truncated shard, a missing rank file and a checkpoint of
 *    another model shape are refused with a message naming file and section;
 *    a `latest` naming a missing step is refused naming the newest good one.
 */
#include "engine_common.h"
#include "zrt/internal/error.h"

#include <sys/stat.h>

#define STEPS 10
#define GLOBAL 12

static char dir[1024];

static run_spec spec(int world, int stage, const char *tag)
{
    run_spec s = {.world = world, .stage = stage, .steps = STEPS, .micro = GLOBAL / world, .accum = 1,
                  .persistence = 0, .gpt = true, .ckpt = dir};
    snprintf(s.tag, sizeof s.tag, "%s", tag);
    return s;
}

static bool losses_equal(const run_result *a, const run_result *b, int from)
{
    for (int i = from; i < STEPS; i++)
        if (memcmp(&a->steps[i].loss, &b->steps[i].loss, 4) != 0) return false;
    return memcmp(a->master0, b->master0, sizeof a->master0) == 0;
}

static double worst_diff(const run_result *a, const run_result *b, int from)
{
    double worst = 0;
    for (int i = from; i < STEPS; i++) worst = fmax(worst, rel_diff(a->steps[i].loss, b->steps[i].loss));
    return worst;
}

/* Loads path into a one-rank engine of the given model; returns the status. */
static zrt_status try_load(const char *path, int layers)
{
    static zrt_config cfg;
    run_spec s = spec(1, 0, "load");
    spec_config(&s, &cfg);
    cfg.job.model.layers = layers;
    zrt_device *device = test_device();
    zrt_model *model;
    zrt_engine *e;
    CHECK_OK(zrt_model_create(&cfg.job.model, device, 12, &model));
    CHECK_OK(zrt_engine_create(&cfg, NULL, model, &e));
    zrt_status status = zrt_engine_load(e, path, NULL);
    zrt_first_error first = {0};
    zrt_first_error_keep(&first, status);
    zrt_engine_destroy(e);
    model->destroy(model);
    zrt_device_destroy(device);
    return zrt_first_error_restore(&first);
}

static void copy_tree(const char *from, const char *to)
{
    char cmd[3000];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", to, from, to);
    CHECK(system(cmd) == 0);
}

static void expect_refused(const char *path, int layers, const char *needle1, const char *needle2)
{
    zrt_status status = try_load(path, layers);
    CHECK_MSG(status != ZRT_OK && strstr(zrt_last_error(), needle1) && strstr(zrt_last_error(), needle2),
              "expected '%s' ... '%s', got: %s", needle1, needle2, status == ZRT_OK ? "success" : zrt_last_error());
    printf("refused: %s\n", zrt_last_error());
}

static void corruptions(void)
{
    char step_dir[1100], bad[1100], file[1200];
    snprintf(step_dir, sizeof step_dir, "%s/step_0000005", dir);
    snprintf(bad, sizeof bad, "%s/bad", test_tmpdir());
    CHECK_OK(try_load(step_dir, 2)); /* the good one loads, re-sliced to one rank */

    copy_tree(step_dir, bad); /* a flipped byte in rank 1's shard */
    snprintf(file, sizeof file, "%s/shard_00001.bin", bad);
    FILE *f = fopen(file, "r+b");
    struct stat st;
    stat(file, &st);
    fseek(f, st.st_size / 2, SEEK_SET);
    int c = fgetc(f);
    fseek(f, st.st_size / 2, SEEK_SET);
    fputc(c ^ 0x10, f);
    fclose(f);
    expect_refused(bad, 2, "shard_00001.bin: unit", "CRC32C mismatch");

    copy_tree(step_dir, bad); /* truncated */
    CHECK(truncate(file, st.st_size - 100) == 0);
    expect_refused(bad, 2, "shard_00001.bin: ", " bytes; meta.json implies");

    copy_tree(step_dir, bad); /* missing */
    CHECK(unlink(file) == 0);
    expect_refused(bad, 2, "shard_00001.bin: missing", "the checkpoint has 2 ranks");

    copy_tree(dir, bad); /* `latest` names a step that is not there: the error names the good one */
    snprintf(file, sizeof file, "%s/latest", bad);
    f = fopen(file, "w");
    fputs("step_0000099\n", f);
    fclose(f);
    expect_refused(bad, 2, "latest names step_0000099, which is damaged", "the newest good step is");
    CHECK(strstr(zrt_last_error(), "/step_0000005 (write step_0000005 into") != NULL);

    expect_refused(step_dir, 3, "meta.json", "this model has 5"); /* another shape: 3 layers */
    expect_refused(test_tmpdir(), 2, test_tmpdir(), "not a zrt checkpoint");
}

int main(void)
{
    snprintf(dir, sizeof dir, "%s/ckpt", test_tmpdir());
    static run_result full, resumed, other;

    run_spec s = spec(2, 2, "full");
    s.ckpt = NULL;
    CHECK(run_training(&s, &full));

    s = spec(2, 2, "first-half"); /* saves at 5 and 10 */
    s.save_every = 5;
    s.steps = 5;
    CHECK(run_training(&s, &other));

    s = spec(2, 2, "resume-same");
    s.resume = true;
    CHECK(run_training(&s, &resumed));
    CHECK_MSG(losses_equal(&resumed, &full, 5), "resume at the same world size and stage is not bitwise");
    printf("resume, 2 ranks stage 2 -> same: steps 6-10 bitwise equal\n");

    struct { int world, stage; } moves[] = {{4, 3}, {1, 0}, {3, 1}};
    for (size_t k = 0; k < sizeof moves / sizeof moves[0]; k++) {
        char tag[32], link[1100];
        snprintf(tag, sizeof tag, "resume-%d-%d", moves[k].world, moves[k].stage);
        snprintf(link, sizeof link, "%s/latest", dir);
        FILE *f = fopen(link, "w"); /* always from step 5 */
        fputs("step_0000005\n", f);
        fclose(f);
        s = spec(moves[k].world, moves[k].stage, tag);
        s.resume = true;
        CHECK(run_training(&s, &resumed));
        double worst = worst_diff(&resumed, &full, 5);
        CHECK_MSG(worst <= 1e-5, "resume at %d ranks stage %d: %.3g relative", moves[k].world, moves[k].stage, worst);
        printf("resume, 2 ranks stage 2 -> %d ranks stage %d: steps 6-10 within %.3g relative\n", moves[k].world,
               moves[k].stage, worst);
    }

    corruptions();

    /* kill -9 of rank 1 in the middle of the step-10 save. */
    char rm[1100];
    snprintf(rm, sizeof rm, "rm -rf '%s'", dir);
    CHECK(system(rm) == 0);
    s = spec(2, 2, "crash");
    s.save_every = 5;
    setenv("ZRT_FAULT_CRASH_IN_SAVE", "1:10", 1);
    CHECK_MSG(!run_training(&s, &other), "the run with a crash in the save should fail");
    unsetenv("ZRT_FAULT_CRASH_IN_SAVE");
    char latest[1100], name[64] = "";
    snprintf(latest, sizeof latest, "%s/latest", dir);
    FILE *f = fopen(latest, "r");
    CHECK(f && fgets(name, sizeof name, f));
    if (f) fclose(f);
    CHECK_MSG(strcmp(name, "step_0000005\n") == 0, "latest is '%s' after the crash", name);
    s = spec(2, 2, "after-crash");
    s.resume = true;
    CHECK(run_training(&s, &resumed));
    CHECK_MSG(losses_equal(&resumed, &full, 5), "resume after the crash is not bitwise");
    printf("kill -9 during the step-10 save: latest is still step 5; resuming matches bit for bit\n");
    return CHECK_DONE();
}
