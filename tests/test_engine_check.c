/* test_engine_check.c: the engine under the device's check mode:
 *  - stages 0-3 (and stage 3 gathering every unit) x fp32 / bf16 / fp16 at
 *    world 2, the MLP and the transformer: every stream ordering the engine
 *    relies on is checked on every step, and the stages stay bitwise equal;
 *  - one wait removed on purpose (ZRT_FAULT_SKIP_WAIT=gather: compute uses a
 *    gathered unit without waiting for the gather) is caught on the first
 *    step, with an error naming the buffer and the stream it did not wait
 *    for; the same run without the fault passes;
 *  - a host function failing on the compute stream fails zrt_engine_step
 *    with its message (the step waits on an event of the comm stream: an
 *    event's wait returns its stream's error, and a stream inherits the
 *    failure of one it waited for; test_cuda_engine runs the same on CUDA).
 */
#include "engine_common.h"

#define STEPS 4

static void stages_agree(bool gpt, zrt_precision precision)
{
    static run_result base, r;
    for (int stage = 0; stage <= 4; stage++) {
        run_spec s = {.world = 2, .stage = stage > 3 ? 3 : stage, .steps = STEPS, .precision = precision, .micro = 2,
                      .accum = 1, .persistence = stage == 4 ? 0 : 100000, .gpt = gpt};
        snprintf(s.tag, sizeof s.tag, "check-%s-%d-%d", gpt ? "gpt" : "mlp", (int)precision, stage);
        run_result *out = stage == 0 ? &base : &r;
        CHECK_MSG(run_training(&s, out), "%s did not run under check mode", s.tag);
        if (stage == 0) continue;
        bool same = memcmp(out->master0, base.master0, sizeof base.master0) == 0;
        for (int i = 0; i < STEPS; i++) same &= memcmp(&out->steps[i].loss, &base.steps[i].loss, 4) == 0;
        CHECK_MSG(same, "%s: differs from stage 0", s.tag);
    }
    printf("%s %s: stages 0-3 bitwise equal under check mode, loss %.6f -> %.6f\n", gpt ? "gpt" : "mlp",
           precision == ZRT_PRECISION_NO ? "fp32" : zrt_precision_name(precision), base.steps[0].loss,
           base.steps[STEPS - 1].loss);
}

/* One rank of a stage-3 run; its error, if any, goes to $TMPDIR/error-RANK. */
static int faulty_rank(int rank, int world, void *arg)
{
    (void)arg;
    openblas_set_num_threads(1);
    static zrt_config cfg;
    run_spec s = {.world = world, .stage = 3, .steps = 2, .micro = 2, .accum = 1, .persistence = 0};
    spec_config(&s, &cfg);
    zrt_store *store = NULL;
    zrt_comm *comm = NULL;
    zrt_device *device = test_device();
    zrt_model *model = NULL;
    zrt_engine *e = NULL;
    zrt_data data;
    zrt_step_result r;
    const char *tag = getenv("ZRT_FAULT_SKIP_WAIT") ? "fault" : "clean";
    zrt_status status = open_comm(tag, rank, world, false, 20, &store, &comm);
    if (status == ZRT_OK) status = zrt_model_create(&cfg.job.model, device, 2, &model);
    if (status == ZRT_OK) status = zrt_data_init(&data, &cfg);
    if (status == ZRT_OK) status = zrt_engine_create(&cfg, comm, model, &e);
    for (int i = 0; status == ZRT_OK && i < s.steps; i++) status = zrt_engine_step(e, &data, &r);
    if (status == ZRT_OK) status = zrt_engine_synchronize(e);
    if (status != ZRT_OK) {
        char path[1024];
        snprintf(path, sizeof path, "%s/error-%s-%d", test_tmpdir(), tag, rank);
        FILE *f = fopen(path, "w");
        if (f) fprintf(f, "%s\n", zrt_last_error());
        if (f) fclose(f);
        zrt_comm_abort(comm); /* the peer must not wait for us */
    }
    zrt_engine_destroy(e);
    if (model) model->destroy(model);
    zrt_comm_destroy(comm);
    zrt_store_destroy(store);
    zrt_device_destroy(device);
    return status == ZRT_OK ? 0 : 1;
}

static bool error_of(const char *tag, int rank, char *text, size_t size)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/error-%s-%d", test_tmpdir(), tag, rank);
    FILE *f = fopen(path, "r");
    bool got = f && fgets(text, (int)size, f);
    if (f) fclose(f);
    return got;
}

static void removed_wait_is_caught(void)
{
    setenv("ZRT_FAULT_SKIP_WAIT", "gather", 1);
    CHECK_MSG(ranks_run(2, faulty_rank, NULL, 60) != 0, "a run with a removed wait passed the check mode");
    char text[ZRT_ERROR_MAX];
    bool named = false;
    for (int rank = 0; rank < 2; rank++)
        if (error_of("fault", rank, text, sizeof text) && strstr(text, "device check") &&
            strstr(text, "params (gathered)' written by comm") && strstr(text, "without waiting for it")) {
            named = true;
            printf("rank %d caught it: %s", rank, text);
        }
    CHECK_MSG(named, "no rank reported the missing wait naming the buffer");
    unsetenv("ZRT_FAULT_SKIP_WAIT");
    CHECK_MSG(ranks_run(2, faulty_rank, NULL, 60) == 0, "the same run without the fault failed");
    CHECK_MSG(!error_of("clean", 0, text, sizeof text) && !error_of("clean", 1, text, sizeof text),
              "the clean run reported: %s", text);
}

int main(void)
{
    setenv("ZRT_DEVICE_CHECK", "1", 1); /* whatever the environment says */
    const zrt_precision precisions[] = {ZRT_PRECISION_NO, ZRT_PRECISION_BF16, ZRT_PRECISION_FP16};
    for (int p = 0; p < 3; p++) {
        stages_agree(false, precisions[p]);
        stages_agree(true, precisions[p]);
    }
    removed_wait_is_caught();
    check_host_failure_fails_step(false);
    return CHECK_DONE();
}
