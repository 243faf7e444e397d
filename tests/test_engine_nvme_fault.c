/* test_engine_nvme_fault.c: an NVMe write fails (EIO, injected by
 * ZRT_FAULT_SWAP into rank 1's swapper only) in the middle of step 3 of a
 * 2-rank stage-2 run that saved a checkpoint after step 2:
 *  - the step fails on both ranks, with no hang: rank 1 with ZRT_ERR_IO
 *    naming its swap file and the offset, rank 0 with ZRT_ERR_PEER;
 *  - the swap files are removed when the engines are destroyed;
 *  - the checkpoint of step 2 is intact: resuming from it gives, bit for
 *    bit, the losses and weights of a run that never failed.
 */
#include "engine_common.h"


/* The MLP's units (680, 1640, 328 elements) padded for 2 ranks (x32): shards
 * of 352, 832 and 176, so 2 + 5 + 1 sub-groups of 200. The swapper writes
 * one request per sub-group at creation (the initial masters) and per step
 * one per unit but the last two down (their gradients stay in the staging
 * buffers: place_nvme.c) and one per sub-group: request
 * 8 + 2 * (1 + 8) + 1 + 3 is step 3's third sub-group. */
#define SUB_GROUPS 8
#define GRAD_WRITES 1 /* UNITS - 2 */

static int fault_rank(int rank, int world, void *arg)
{
    (void)arg;
    run_spec s = {.world = world, .stage = 2, .steps = 4, .precision = ZRT_PRECISION_BF16, .micro = 2, .accum = 1,
                  .offload = ZRT_OFFLOAD_NVME, .tag = "fault"};
    static test_rank t;
    if (!test_rank_open(&t, &s, rank, world)) return 10;
    char ckpt[1100];
    snprintf(ckpt, sizeof ckpt, "%s/ckpt", test_tmpdir());
    zrt_step_result r;
    int bad = 0;
    for (int i = 0; i < 2; i++) bad += zrt_engine_step(t.e, &t.data, &r) != ZRT_OK;
    bad += zrt_engine_save(t.e, ckpt) != ZRT_OK;
    if (bad) fprintf(stderr, "rank %d: before the fault: %s\n", rank, zrt_last_error());
    zrt_status status = zrt_engine_step(t.e, &t.data, &r);
    if (status == ZRT_OK) status = zrt_engine_synchronize(t.e);
    const char *msg = zrt_last_error();
    printf("rank %d step 3: %s: %s\n", rank, zrt_status_name(status), msg);
    if (rank == 1 && !(status == ZRT_ERR_IO && strstr(msg, "zrt-swap-") && strstr(msg, "at offset"))) bad++;
    if (rank == 0 && !(status == ZRT_ERR_PEER && strstr(msg, "failed on 1 other rank"))) bad++;
    test_rank_close(&t);
    return bad ? 1 : 0;
}

int main(void)
{
    char fault[64];
    snprintf(fault, sizeof fault, "eio_write:%d:optimizer-rank1", SUB_GROUPS + 2 * (GRAD_WRITES + SUB_GROUPS) + GRAD_WRITES + 3);
    setenv("ZRT_FAULT_SWAP", fault, 1);
    CHECK_MSG(ranks_run(2, fault_rank, NULL, 60) == 0, "the step did not fail as it should on every rank");
    unsetenv("ZRT_FAULT_SWAP");
    CHECK_MSG(swap_files_left() == 0, "%d swap files left", swap_files_left());
    static run_result full, resumed;
    run_spec s = {.world = 2, .stage = 2, .steps = 4, .precision = ZRT_PRECISION_BF16, .micro = 2, .accum = 1,
                  .offload = ZRT_OFFLOAD_NVME, .tag = "full"};
    CHECK(run_training(&s, &full));
    char ckpt[1100];
    snprintf(ckpt, sizeof ckpt, "%s/ckpt", test_tmpdir());
    run_spec r = s;
    r.ckpt = ckpt;
    r.resume = true;
    snprintf(r.tag, sizeof r.tag, "resumed");
    CHECK_MSG(run_training(&r, &resumed), "no resume from the checkpoint of step 2");
    bool same = memcmp(full.master0, resumed.master0, sizeof full.master0) == 0;
    for (int i = 2; i < 4; i++) same &= memcmp(&full.steps[i].loss, &resumed.steps[i].loss, 4) == 0;
    CHECK_MSG(same, "resumed after the failed step: step 4 loss %.9g, the run that never failed %.9g",
              resumed.steps[3].loss, full.steps[3].loss);
    return CHECK_DONE();
}
