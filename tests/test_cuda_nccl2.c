/* test_cuda_nccl2.c: NCCL across 2 ranks on one GPU, end to end: first a
 * bare 2-rank NCCL communicator on GPU 0 (NCCL refuses two ranks on one GPU
 * in most versions: the test then skips with NCCL's own words), then the
 * engine's GPT in fp32 over NCCL for stages 0-3, bitwise equal to each
 * other, and within 1e-4 relative of the same run over the host backend
 * (hybrid mode: the reduction order differs). Skips (exit 77) without a GPU.
 */
#include "cuda_common.h"
#include "engine_common.h"

#define STEPS 5

/* Rank r opens a 2-rank NCCL communicator on GPU 0; its error (or "ok") in TMPDIR/nccl-r. */
static int probe_rank(int rank, int world, void *arg)
{
    (void)arg;
    zrt_device_options o;
    zrt_device_options_init(&o);
    o.kind = ZRT_DEVICE_CUDA;
    zrt_device *d = NULL;
    zrt_store *store = NULL;
    zrt_comm *comm = NULL;
    open_comm_backend = "nccl";
    zrt_status status = zrt_device_create(&o, &d);
    if (status == ZRT_OK) status = open_comm("nccl-probe", rank, world, false, 30, &store, &comm);
    char path[1100];
    snprintf(path, sizeof path, "%s/nccl-%d", test_tmpdir(), rank);
    FILE *f = fopen(path, "w");
    if (f) fprintf(f, "%s", status == ZRT_OK ? "ok" : zrt_last_error()), fclose(f);
    zrt_comm_destroy(comm);
    zrt_store_destroy(store);
    zrt_device_destroy(d);
    return 0;
}

int main(void)
{
    skip_without_gpu();
    ranks_run(2, probe_rank, NULL, 60);
    for (int r = 0; r < 2; r++) {
        char path[1100], text[600] = "";
        snprintf(path, sizeof path, "%s/nccl-%d", test_tmpdir(), r);
        FILE *f = fopen(path, "r");
        size_t got = f ? fread(text, 1, sizeof text - 1, f) : 0;
        text[got] = '\0';
        if (f) fclose(f);
        if (strcmp(text, "ok") != 0) SKIP("NCCL with 2 ranks on one GPU: rank %d: %s", r, text[0] ? text : "no answer");
    }
    static run_result host, base, r;
    run_spec h = {.world = 2, .stage = 0, .steps = STEPS, .precision = ZRT_PRECISION_NO, .micro = 2, .accum = 1,
                  .gpt = true, .cuda = true};
    CHECK_MSG(run_training(&h, &host), "%s did not run", h.tag);
    for (int stage = 0; stage <= 3; stage++) {
        run_spec s = h;
        s.stage = stage;
        s.nccl = true;
        s.persistence = stage == 3 ? 0 : 100000;
        s.tag[0] = '\0';
        run_result *out = stage == 0 ? &base : &r;
        CHECK_MSG(run_training(&s, out), "%s did not run", s.tag);
        if (stage > 0) CHECK_MSG(same_run(&base, out, STEPS), "%s: differs from stage 0", s.tag);
    }
    double worst = 0;
    for (int i = 0; i < STEPS; i++) worst = fmax(worst, rel_diff(base.steps[i].loss, host.steps[i].loss));
    CHECK_MSG(worst <= 1e-4, "NCCL vs host comm: %.3g relative", worst);
    printf("NCCL, 2 ranks on one GPU: stages 0-3 bitwise equal, loss %.6f -> %.6f, vs host comm %.3g\n",
           base.steps[0].loss, base.steps[STEPS - 1].loss, worst);
    return CHECK_DONE();
}
