/* test_cuda_device.c: the cuda device backend: streams, events and copies
 * (the cpu device's test, tests/test_device_streams.c, covers the
 * semantics; here they run on CUDA), and every engine kernel against the
 * scalar reference the cpu backend is also held to (tests/kernel_checks.h:
 * bitwise, the statistics within 2 ulp), on fresh random inputs. Skips
 * without a GPU (fails on a machine whose GPU it cannot open: gpu_present.h).
 */
#include "kernel_checks.h"

static void check_streams(zrt_device *d)
{
    enum { N = 1 << 20 };
    float *host = NULL, *x = device_alloc(d, N * 4, "x"), *y = device_alloc(d, N * 4, "y");
    CHECK_OK(zrt_host_alloc(d, ZRT_MEM_COMM, N * 4, "pinned", (void **)&host));
    for (int i = 0; i < N; i++) host[i] = (float)i;
    zrt_stream *a, *b;
    zrt_event *e;
    CHECK_OK(zrt_stream_create(d, "a", &a));
    CHECK_OK(zrt_stream_create(d, "b", &b));
    CHECK_OK(zrt_event_create(d, "copied", &e));
    CHECK_OK(zrt_memcpy_async(a, x, host, N * 4, ZRT_COPY_H2D));
    CHECK_OK(zrt_event_record(e, a));
    CHECK_OK(zrt_stream_wait_event(b, e));
    CHECK_OK(zrt_memcpy_async(b, y, x, N * 4, ZRT_COPY_D2D));
    CHECK_OK(zrt_memset_async(b, x, 0, N * 4));
    CHECK_OK(zrt_memcpy_async(b, host, y, N * 4, ZRT_COPY_D2H));
    CHECK_OK(zrt_stream_synchronize(b));
    bool ok = true;
    for (int i = 0; i < N; i++) ok &= host[i] == (float)i;
    CHECK_MSG(ok, "H2D, event, D2D, D2H on two streams gave other bytes");
    bool done = false;
    CHECK_OK(zrt_event_query(e, &done));
    CHECK(done);
    zrt_event_destroy(e);
    zrt_stream_destroy(a);
    zrt_stream_destroy(b);
    zrt_host_free(d, host);
    zrt_device_free(d, x, NULL);
    zrt_device_free(d, y, NULL);
}

int main(void)
{
    zrt_device *d = make_device(ZRT_DEVICE_CUDA, false);
    printf("device: %s\n", zrt_device_name(d));
    check_streams(d);
    check_all_kernels(d);
    zrt_device_destroy(d);
    d = make_device(ZRT_DEVICE_CUDA, true); /* the check mode's tracker on cuda */
    check_streams(d);
    zrt_device_destroy(d);
    printf("cuda streams, events, copies; kernels equal to the reference\n");
    return CHECK_DONE();
}
