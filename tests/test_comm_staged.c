/* test_comm_staged.c: the hybrid mode's staging -- the host backend's
 * stream-ordered collectives through pinned host memory (send down, the
 * collective on the stream's host function, recv up), what a cuda device
 * without NCCL uses -- run on the cpu device (stage_through_host): training
 * at stages 0-3 on 2 ranks, fp32 and bf16, gives the bits of the same runs
 * without staging, under the device check mode (every copy's ordering is
 * checked); and one communicator serves two engines in turn (streams that
 * come and go) without waiting on a stream that is gone.
 */
#include "engine_common.h"

/* Two engines in turn on one staged communicator: the second starts after the
 * first's streams are gone, and repeats its first two losses bit for bit. */
static int two_engines(int rank, int world, void *arg)
{
    (void)arg;
    run_spec s = {.world = world, .stage = 2, .steps = 2, .precision = ZRT_PRECISION_BF16, .micro = 4, .accum = 1,
                  .tag = "two-engines"};
    static test_rank t;
    if (!test_rank_open(&t, &s, rank, world)) return 10;
    zrt_step_result first[2], again[2];
    int bad = 0;
    for (int i = 0; i < 2; i++) bad += zrt_engine_step(t.e, &t.data, &first[i]) != ZRT_OK;
    zrt_engine_destroy(t.e); /* its streams go; the communicator stays */
    t.e = NULL;
    zrt_data_fini(&t.data);
    bad += zrt_data_init(&t.data, &t.cfg) != ZRT_OK || zrt_engine_create(&t.cfg, t.comm, t.model, &t.e) != ZRT_OK;
    for (int i = 0; !bad && i < 2; i++) bad += zrt_engine_step(t.e, &t.data, &again[i]) != ZRT_OK;
    for (int i = 0; !bad && i < 2; i++) bad += memcmp(&first[i].loss, &again[i].loss, 4) != 0;
    if (bad) fprintf(stderr, "rank %d: %s\n", rank, zrt_last_error());
    test_rank_close(&t);
    return bad ? 1 : 0;
}

int main(void)
{
    static run_result direct, staged;
    const zrt_precision precisions[] = {ZRT_PRECISION_NO, ZRT_PRECISION_BF16};
    for (int p = 0; p < 2; p++)
        for (int stage = 0; stage <= 3; stage++) {
            run_spec s = {.world = 2, .stage = stage, .steps = 4, .precision = precisions[p], .micro = 4, .accum = 1,
                          .persistence = 0, .gpt = stage == 3};
            snprintf(s.tag, sizeof s.tag, "direct-%d-%d", p, stage);
            open_comm_staged = false;
            CHECK_MSG(run_training(&s, &direct), "%s did not run", s.tag);
            snprintf(s.tag, sizeof s.tag, "staged-%d-%d", p, stage);
            open_comm_staged = true;
            CHECK_MSG(run_training(&s, &staged), "%s did not run", s.tag);
            CHECK_MSG(same_run(&direct, &staged, 4), "stage %d %s: staged collectives differ from direct ones", stage,
                      p ? "bf16" : "fp32");
        }
    printf("staged through pinned host memory = direct, bitwise: stages 0-3, fp32 and bf16, 2 ranks\n");
    open_comm_staged = true;
    CHECK_MSG(ranks_run(2, two_engines, NULL, 60) == 0, "a second engine on the same staged communicator failed");
    return CHECK_DONE();
}
