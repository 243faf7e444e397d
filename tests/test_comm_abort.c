/* test_comm_abort.c: zrt_comm_abort() from another thread ends a waiting
 * collective with ZRT_ERR_ABORTED in under a second, and every later
 * operation fails at once. Rank 1 never joins the collective, so rank 0's
 * all_gather can only end by the abort (its deadline is 60 s).
 */
#include "comm_common.h"
#include "ranks.h"

#include <pthread.h>

static void *abort_later(void *comm)
{
    usleep(300000);
    zrt_comm_abort(comm);
    return NULL;
}

static int rank_main(int r, int n, void *arg)
{
    bool tcp = arg != NULL;
    zrt_store *store;
    zrt_comm *comm;
    if (open_comm(tcp ? "abort-tcp" : "abort-shm", r, n, tcp, 60, &store, &comm) != ZRT_OK) {
        fprintf(stderr, "rank %d: %s\n", r, zrt_last_error());
        return 1;
    }
    static float send[1 << 20], recv[2 << 20];
    if (r == 1) {
        /* Stay alive, but never call the collective, until rank 0 is done. */
        void *value;
        size_t len;
        CHECK_OK(zrt_store_get(store, "rank0-done", 30, &value, &len));
        free(value);
    } else {
        pthread_t thread;
        pthread_create(&thread, NULL, abort_later, comm);
        double start = zrt_now();
        zrt_status status = zrt_comm_all_gather(comm, send, recv, 1 << 20, ZRT_DTYPE_F32, NULL);
        double waited = zrt_now() - start;
        pthread_join(thread, NULL);
        CHECK_MSG(status == ZRT_ERR_ABORTED, "status %d: %s", status, zrt_last_error());
        CHECK_MSG(strstr(zrt_last_error(), "aborted") != NULL, "%s", zrt_last_error());
        CHECK_MSG(waited < 0.3 + 1.0, "abort took %.2f s", waited - 0.3);
        /* Broken from now on: fails at once, with the first error. */
        start = zrt_now();
        CHECK(zrt_comm_barrier(comm) == ZRT_ERR_ABORTED);
        CHECK(zrt_now() - start < 0.5);
        zrt_comm_request *req;
        CHECK_OK(zrt_comm_all_reduce(comm, send, send, 16, ZRT_DTYPE_F32, ZRT_REDUCE_SUM, &req));
        CHECK(zrt_comm_wait(req) == ZRT_ERR_ABORTED);
        printf("abort ended the all_gather after %.3f s\n", waited - 0.3);
        CHECK_OK(zrt_store_set(store, "rank0-done", "1", 1));
    }
    zrt_comm_destroy(comm);
    zrt_store_destroy(store);
    return CHECK_DONE();
}

int main(void)
{
    CHECK_MSG(ranks_run(2, rank_main, NULL, 60) == 0, "shared memory");
    CHECK_MSG(ranks_run(2, rank_main, (void *)1, 60) == 0, "TCP");
    return CHECK_DONE();
}
