/* test_comm_mismatch.c: ranks that disagree -- different counts, different
 * dtypes, different collectives -- are caught and reported on every rank
 * (naming what each side called), never a wrong result or a hang.
 */
#include "comm_common.h"
#include "ranks.h"

static int rank_main(int r, int n, void *arg)
{
    int which = (int)(intptr_t)arg;
    char scope[32];
    snprintf(scope, sizeof scope, "mismatch-%d", which);
    zrt_store *store;
    zrt_comm *comm;
    if (open_comm(scope, r, n, false, 30, &store, &comm) != ZRT_OK) return 10;
    static float a[4096], b[4096 * 2];
    zrt_status status;
    if (which == 0) status = zrt_comm_all_gather(comm, a, b, r == 0 ? 8 : 7, ZRT_DTYPE_F32, NULL);
    else if (which == 1) status = zrt_comm_all_gather(comm, a, b, 8, r == 0 ? ZRT_DTYPE_F32 : ZRT_DTYPE_BF16, NULL);
    else if (r == 0) status = zrt_comm_all_gather(comm, a, b, 8, ZRT_DTYPE_F32, NULL);
    else status = zrt_comm_broadcast(comm, a, 8, ZRT_DTYPE_F32, 0, NULL);
    printf("rank %d: %s\n", r, zrt_last_error());
    CHECK_MSG(status != ZRT_OK, "rank %d: mismatch not detected", r);
    CHECK_MSG(strstr(zrt_last_error(), "mismatch") != NULL, "rank %d: %s", r, zrt_last_error());
    zrt_comm_destroy(comm);
    zrt_store_destroy(store);
    return CHECK_DONE();
}

int main(void)
{
    for (intptr_t which = 0; which < 3; which++)
        CHECK_MSG(ranks_run(2, rank_main, (void *)which, 60) == 0, "case %d", (int)which);
    return CHECK_DONE();
}
