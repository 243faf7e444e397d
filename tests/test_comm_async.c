/* test_comm_async.c: several operations in flight at once complete in issue
 * order with the right results, whichever order they are waited in; the
 * caller computes while they run.
 */
#include "comm_common.h"
#include "ranks.h"

#define COUNT 100003
#define DEPTH 6

static int rank_main(int r, int n, void *arg)
{
    (void)arg;
    zrt_store *store;
    zrt_comm *comm;
    if (open_comm("async", r, n, false, 60, &store, &comm) != ZRT_OK) return 10;
    float *send[DEPTH], *recv[DEPTH];
    zrt_comm_request *req[DEPTH];
    for (int k = 0; k < DEPTH; k++) {
        send[k] = malloc(COUNT * sizeof(float));
        recv[k] = malloc((size_t)n * COUNT * sizeof(float));
        fill(send[k], COUNT, 0, r, 10 + k, ZRT_DTYPE_F32);
        CHECK_OK(zrt_comm_all_gather(comm, send[k], recv[k], COUNT, ZRT_DTYPE_F32, &req[k]));
    }
    volatile double busy = 0; /* "compute" while they run */
    for (int i = 0; i < 1000000; i++) busy += i * 0.5;
    CHECK(busy > 0);
    for (int k = DEPTH - 1; k >= 0; k--) { /* wait newest first */
        CHECK_OK(zrt_comm_wait(req[k]));
        for (int q = 0; q < n; q++)
            for (size_t i = 0; i < COUNT; i += 997)
                CHECK_MSG(recv[k][(size_t)q * COUNT + i] == gen(q, i, 10 + k), "op %d rank %d elem %zu", k, q, i);
        free(send[k]);
        free(recv[k]);
    }
    zrt_comm_destroy(comm);
    zrt_store_destroy(store);
    return CHECK_DONE();
}

int main(void)
{
    CHECK(ranks_run(3, rank_main, NULL, 60) == 0);
    return CHECK_DONE();
}
