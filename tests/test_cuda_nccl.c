/* test_cuda_nccl.c: a one-rank NCCL communicator: create through the store
 * (rank 0 makes the ncclUniqueId), all_gather, reduce_scatter, all_reduce
 * (sum, avg) and broadcast on device buffers of the cuda device, fp32 and
 * bf16, host-side (requests) and stream-ordered (_on forms, as the engine
 * uses them), against the expected values; then the abort contract
 * (check_abort_is_final, the host backend's too: every later call fails). Skips without a GPU (fails on a machine whose GPU it cannot open: gpu_present.h).
 */
#include "comm_common.h"
#include "gpu_present.h"

#define COUNT 1000003

int main(void)
{
    zrt_device_options o;
    zrt_device_options_init(&o);
    o.kind = ZRT_DEVICE_CUDA;
    zrt_device *device = NULL;
    if (zrt_device_create(&o, &device) != ZRT_OK) no_cuda_device(zrt_last_error());
    zrt_store *store;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/stores", test_tmpdir());
    CHECK_OK(zrt_store_file_create(dir, "nccl", &store));
    zrt_comm_options co;
    zrt_comm_options_init(&co);
    co.store = store;
    co.timeout_s = 60;
    zrt_comm *comm;
    CHECK_OK(zrt_comm_create("nccl", &co, &comm));
    if (check_failures) return 1;

    size_t bytes = COUNT * sizeof(float);
    float *host = malloc(bytes), *back = malloc(bytes);
    fill(host, COUNT, 0, 0, 1, ZRT_DTYPE_F32);
    void *a = NULL, *b = NULL;
    zrt_stream *stream = NULL;
    CHECK_OK(zrt_device_alloc(device, ZRT_MEM_COMM, bytes, "a", NULL, &a));
    CHECK_OK(zrt_device_alloc(device, ZRT_MEM_COMM, bytes, "b", NULL, &b));
    CHECK_OK(zrt_stream_create(device, "comm", &stream));
    CHECK_OK(zrt_device_write(device, a, host, bytes));
    CHECK_OK(zrt_comm_all_gather(comm, a, b, COUNT, ZRT_DTYPE_F32, NULL));
    CHECK_OK(zrt_device_read(device, back, b, bytes));
    CHECK(memcmp(host, back, bytes) == 0);
    CHECK_OK(zrt_comm_reduce_scatter(comm, a, b, COUNT, ZRT_DTYPE_F32, ZRT_REDUCE_SUM, NULL));
    CHECK_OK(zrt_device_read(device, back, b, bytes));
    CHECK(memcmp(host, back, bytes) == 0);
    zrt_comm_request *req;
    CHECK_OK(zrt_comm_all_reduce(comm, a, b, COUNT, ZRT_DTYPE_F32, ZRT_REDUCE_AVG, &req));
    CHECK_OK(zrt_comm_wait(req));
    CHECK_OK(zrt_device_read(device, back, b, bytes));
    CHECK(memcmp(host, back, bytes) == 0);
    /* Stream-ordered: a memset before, the collective, a copy after, one synchronize. */
    CHECK_OK(zrt_memset_async(stream, b, 0, bytes));
    CHECK_OK(zrt_comm_all_reduce_on(comm, a, b, COUNT, ZRT_DTYPE_F32, ZRT_REDUCE_SUM, stream));
    CHECK_OK(zrt_memcpy_async(stream, back, b, bytes, ZRT_COPY_D2H));
    CHECK_OK(zrt_stream_synchronize(stream));
    CHECK(memcmp(host, back, bytes) == 0);
    CHECK_OK(zrt_comm_all_gather_on(comm, a, b, COUNT / 2, ZRT_DTYPE_BF16, stream));
    CHECK_OK(zrt_comm_broadcast_on(comm, b, COUNT, ZRT_DTYPE_F32, 0, stream));
    CHECK_OK(zrt_stream_synchronize(stream));
    CHECK_OK(zrt_device_read(device, back, b, bytes));
    CHECK(memcmp(host, back, bytes / 2) == 0); /* one rank: bf16 bits unchanged */
    CHECK_OK(zrt_comm_status(comm));
    CHECK_OK(zrt_comm_barrier(comm));
    check_abort_is_final(comm, a, b, COUNT, stream);
    zrt_comm_destroy(comm);
    free(host);
    free(back);
    zrt_store_destroy(store);
    zrt_device_destroy(device);
    return CHECK_DONE();
}
