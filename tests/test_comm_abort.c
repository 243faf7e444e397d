/* test_comm_abort.c: zrt_comm_abort() from another thread ends a waiting
 * collective with ZRT_ERR_ABORTED in under a second, and every later
 * operation fails at once. Rank 1 never joins the collective, so rank 0's
 * all_gather can only end by the abort (its deadline is 60 s). Then the
 * abort contract on one rank, where every collective could complete at once:
 * abort is final all the same (check_abort_is_final, which test_cuda_nccl
 * runs on NCCL).
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

/* One rank, nothing to wait for: only the abort flag can make these fail. */
static void abort_one_rank(void)
{
    zrt_device_options o;
    zrt_device_options_init(&o);
    o.check = 1;
    zrt_device *d = NULL;
    zrt_stream *stream = NULL;
    float *send = NULL, *recv = NULL;
    CHECK_OK(zrt_device_create(&o, &d));
    CHECK_OK(zrt_stream_create(d, "comm", &stream));
    CHECK_OK(zrt_device_alloc(d, ZRT_MEM_COMM, 64 * sizeof(float), "send", NULL, (void **)&send));
    CHECK_OK(zrt_device_alloc(d, ZRT_MEM_COMM, 64 * sizeof(float), "recv", NULL, (void **)&recv));
    CHECK_OK(zrt_memset_async(stream, send, 0, 64 * sizeof(float)));
    CHECK_OK(zrt_stream_synchronize(stream));
    zrt_comm_options co;
    zrt_comm_options_init(&co);
    zrt_comm *comm = NULL;
    CHECK_OK(zrt_comm_create("host", &co, &comm));
    CHECK_OK(zrt_comm_all_gather(comm, send, recv, 64, ZRT_DTYPE_F32, NULL)); /* works before */
    check_abort_is_final(comm, send, recv, 64, stream);
    zrt_comm_destroy(comm);
    zrt_device_destroy(d);
}

int main(void)
{
    abort_one_rank();
    CHECK_MSG(ranks_run(2, rank_main, NULL, 60) == 0, "shared memory");
    CHECK_MSG(ranks_run(2, rank_main, (void *)1, 60) == 0, "TCP");
    return CHECK_DONE();
}
