/* test_cuda_nccl.c: a one-rank NCCL communicator: create through the store
 * (rank 0 makes the ncclUniqueId), all_gather, reduce_scatter, all_reduce
 * (sum, avg) and broadcast on device buffers, fp32 and bf16, against the
 * expected values; then abort and check the next call fails at once.
 * Skips (exit 77) when no GPU is visible.
 */
#include "comm_common.h"
#include "cuda_kernels.h"

#include <cuda_runtime.h>

#define COUNT 1000003

int main(void)
{
    const char *why = "unknown";
    if (zrt_cuda_device_count(&why) == 0) SKIP("no CUDA device: %s", why);
    zrt_store *store;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/stores", test_tmpdir());
    CHECK_OK(zrt_store_file_create(dir, "nccl", &store));
    zrt_comm_options o;
    zrt_comm_options_init(&o);
    o.store = store;
    o.timeout_s = 60;
    zrt_comm *comm;
    CHECK_OK(zrt_comm_create("nccl", &o, &comm));
    if (check_failures) return 1;

    float *host = malloc(COUNT * sizeof *host), *back = malloc(COUNT * sizeof *back);
    fill(host, COUNT, 0, 0, 1, ZRT_DTYPE_F32);
    void *a = NULL, *b = NULL;
    CHECK(cudaMalloc(&a, COUNT * sizeof(float)) == cudaSuccess && cudaMalloc(&b, COUNT * sizeof(float)) == cudaSuccess);
    cudaMemcpy(a, host, COUNT * sizeof(float), cudaMemcpyHostToDevice);
    CHECK_OK(zrt_comm_all_gather(comm, a, b, COUNT, ZRT_DTYPE_F32, NULL));
    cudaMemcpy(back, b, COUNT * sizeof(float), cudaMemcpyDeviceToHost);
    CHECK(memcmp(host, back, COUNT * sizeof(float)) == 0);
    CHECK_OK(zrt_comm_reduce_scatter(comm, a, b, COUNT, ZRT_DTYPE_F32, ZRT_REDUCE_SUM, NULL));
    cudaMemcpy(back, b, COUNT * sizeof(float), cudaMemcpyDeviceToHost);
    CHECK(memcmp(host, back, COUNT * sizeof(float)) == 0);
    zrt_comm_request *req;
    CHECK_OK(zrt_comm_all_reduce(comm, a, b, COUNT, ZRT_DTYPE_F32, ZRT_REDUCE_AVG, &req));
    CHECK_OK(zrt_comm_wait(req));
    cudaMemcpy(back, b, COUNT * sizeof(float), cudaMemcpyDeviceToHost);
    CHECK(memcmp(host, back, COUNT * sizeof(float)) == 0);
    CHECK_OK(zrt_comm_all_reduce(comm, a, a, COUNT / 2, ZRT_DTYPE_BF16, ZRT_REDUCE_SUM, NULL));
    cudaMemcpy(back, a, COUNT * sizeof(float), cudaMemcpyDeviceToHost);
    CHECK(memcmp(host, back, COUNT * sizeof(float)) == 0); /* one rank: bits unchanged */
    CHECK_OK(zrt_comm_broadcast(comm, a, COUNT, ZRT_DTYPE_F32, 0, NULL));
    CHECK_OK(zrt_comm_barrier(comm));
    zrt_comm_abort(comm);
    CHECK(zrt_comm_barrier(comm) != ZRT_OK);
    zrt_comm_destroy(comm);
    cudaFree(a);
    cudaFree(b);
    free(host);
    free(back);
    zrt_store_destroy(store);
    return CHECK_DONE();
}
