/* test_device_check.c: the check mode fires -- each rule with one wait (or
 * synchronize) removed on purpose, and passes once it is back:
 *  - a stream reads a buffer another stream wrote, without a wait;
 *  - a stream writes a buffer another stream may still read;
 *  - the host reads (zrt_device_read) before synchronizing the writer, and
 *    after a stream synchronize or an event synchronize it may;
 *  - reading a buffer nothing has written, a kernel on a host pointer, a
 *    copy whose device side is not device memory, an access past the end,
 *    a use after free, a free while another stream still reads;
 * and every error names the buffer and both sides. Without check mode the
 * same missing wait passes unnoticed: the checker, not luck, reports it.
 */
#include "device_common.h"
#include "zrt/internal/kernels.h"

/* The last error contains every needle. */
static bool says(const char *a, const char *b, const char *c)
{
    const char *e = zrt_last_error();
    return strstr(e, a) && (!b || strstr(e, b)) && (!c || strstr(e, c));
}

#define EXPECT_REFUSED(call, a, b, c)                                                                    \
    do {                                                                                                 \
        zrt_status expect_status_ = (call);                                                              \
        CHECK_MSG(expect_status_ != ZRT_OK && says(a, b, c), "%s: got %s", #call,                       \
                  expect_status_ == ZRT_OK ? "success" : zrt_last_error());                              \
        if (expect_status_ != ZRT_OK) printf("caught: %s\n", zrt_last_error());                          \
    } while (0)

typedef struct {
    zrt_device *d;
    zrt_stream *compute, *comm;
    zrt_event *e;
    float *x, *y;
} rig;

static rig make_rig(bool check)
{
    rig r = {.d = make_device(ZRT_DEVICE_CPU, check)};
    CHECK_OK(zrt_stream_create(r.d, "compute", &r.compute));
    CHECK_OK(zrt_stream_create(r.d, "comm", &r.comm));
    CHECK_OK(zrt_event_create(r.d, "gathered", &r.e));
    r.x = device_alloc(r.d, 1024 * sizeof(float), "unit 3 params (gathered)");
    r.y = device_alloc(r.d, 1024 * sizeof(float), "fp32 view");
    return r;
}

static void free_rig(rig *r)
{
    zrt_device_destroy(r->d); /* streams, events, buffers */
}

/* comm writes x (a gather); compute reads it (a cast) -- with or without the wait. */
static zrt_status gather_then_use(rig *r, bool wait)
{
    ZRT_CHECK(zrt_memset_async(r->comm, r->x, 0, 1024 * sizeof(float)));
    ZRT_CHECK(zrt_event_record(r->e, r->comm));
    if (wait) ZRT_CHECK(zrt_stream_wait_event(r->compute, r->e));
    return zrt_kernel_cast(r->compute, r->y, ZRT_DTYPE_F32, r->x, ZRT_DTYPE_BF16, 1024, false);
}

static void test_streams(void)
{
    rig r = make_rig(true);
    EXPECT_REFUSED(gather_then_use(&r, false), "compute reads 'unit 3 params (gathered)'", "written by comm",
                   "without waiting");
    CHECK_OK(zrt_device_synchronize(r.d));
    CHECK_OK(gather_then_use(&r, true));
    /* compute now reads x; comm overwriting it without waiting is a write-after-read race. */
    EXPECT_REFUSED(zrt_memset_async(r.comm, r.x, 1, 64), "comm writes 'unit 3 params (gathered)'",
                   "while compute may still read it", NULL);
    CHECK_OK(zrt_event_record(r.e, r.compute));
    CHECK_OK(zrt_stream_wait_event(r.comm, r.e));
    CHECK_OK(zrt_memset_async(r.comm, r.x, 1, 64));
    free_rig(&r);
}

static void test_host(void)
{
    rig r = make_rig(true);
    float back[4];
    CHECK_OK(zrt_memset_async(r.compute, r.x, 0, 1024 * sizeof(float)));
    EXPECT_REFUSED(zrt_device_read(r.d, back, r.x, sizeof back), "the host reads 'unit 3 params (gathered)'",
                   "before compute", "was synchronized");
    CHECK_OK(zrt_stream_synchronize(r.compute));
    CHECK_OK(zrt_device_read(r.d, back, r.x, sizeof back));
    CHECK(back[0] == 0 && back[3] == 0);
    CHECK_OK(zrt_memset_async(r.comm, r.x, 0, 64));
    CHECK_OK(zrt_event_record(r.e, r.comm));
    EXPECT_REFUSED(zrt_device_write(r.d, r.x, back, sizeof back), "'unit 3 params (gathered)'", "comm", NULL);
    CHECK_OK(zrt_event_synchronize(r.e));
    CHECK_OK(zrt_device_write(r.d, r.x, back, sizeof back));
    free_rig(&r);
}

static void test_buffers(void)
{
    rig r = make_rig(true);
    float host[8] = {0};
    EXPECT_REFUSED(zrt_kernel_cast(r.compute, r.x, ZRT_DTYPE_F32, r.y, ZRT_DTYPE_F32, 8, false), "reads 'fp32 view'",
                   "nothing has written yet", NULL);
    EXPECT_REFUSED(zrt_kernel_fill(r.compute, host, ZRT_DTYPE_F32, 1, 8), "fill", "is not memory of cpu", NULL);
    EXPECT_REFUSED(zrt_memcpy_async(r.compute, r.x, r.y, 32, ZRT_COPY_H2D), "host-to-device copy", "'fp32 view'",
                   "device memory, where host memory belongs");
    EXPECT_REFUSED(zrt_memcpy_async(r.compute, host, host, 32, ZRT_COPY_D2D), "device-to-device copy",
                   "is not memory of cpu", NULL);
    EXPECT_REFUSED(zrt_memset_async(r.compute, r.x + 1000, 0, 100 * sizeof(float)), "run past the end",
                   "'unit 3 params (gathered)'", NULL);
    float *gone = device_alloc(r.d, 64, "freed buffer");
    CHECK_OK(zrt_device_free(r.d, gone, NULL));
    EXPECT_REFUSED(zrt_memset_async(r.compute, gone, 0, 64), "memset", "is not memory of cpu", "freed");
    CHECK_OK(zrt_memset_async(r.compute, r.y, 0, 64));
    CHECK_OK(zrt_stream_synchronize(r.compute));
    CHECK_OK(zrt_kernel_cast(r.comm, r.x, ZRT_DTYPE_F32, r.y, ZRT_DTYPE_F32, 16, false)); /* comm reads y */
    EXPECT_REFUSED(zrt_device_free(r.d, r.y, NULL), "free of 'fp32 view'", "comm", NULL);
    CHECK_OK(zrt_stream_synchronize(r.comm));
    CHECK_OK(zrt_device_free(r.d, r.y, r.compute)); /* ordered now: the host waited for comm */
    free_rig(&r);
}

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif

/* The same missing wait without check mode: nothing reports it (but for
 * ThreadSanitizer, which rightly would: under mode=tsan this case is left out). */
static void test_off(void)
{
#ifdef UNDER_TSAN
    return;
#endif
    rig r = make_rig(false);
    CHECK_OK(gather_then_use(&r, false));
    CHECK_OK(zrt_device_synchronize(r.d));
    free_rig(&r);
}

/* A collective issued without a stream (host comm, one rank): the host's work
 * from the call to its wait, on device buffers of a check-mode device. */
static void test_request_form(void)
{
    rig r = make_rig(true);
    zrt_comm_options co;
    zrt_comm_options_init(&co);
    zrt_comm *comm = NULL;
    CHECK_OK(zrt_comm_create("host", &co, &comm));
    enum { N = 1024 };
    float src[N], back[N];
    for (int i = 0; i < N; i++) src[i] = (float)i;
    CHECK_OK(zrt_device_write(r.d, r.x, src, sizeof src));
    CHECK_OK(zrt_comm_all_gather(comm, r.x, r.y, N, ZRT_DTYPE_F32, NULL)); /* issued and waited for */
    CHECK_OK(zrt_device_read(r.d, back, r.y, sizeof back));
    CHECK(memcmp(src, back, sizeof src) == 0);
    zrt_comm_request *req = NULL;
    CHECK_OK(zrt_comm_all_reduce(comm, r.x, r.y, N, ZRT_DTYPE_F32, ZRT_REDUCE_SUM, &req));
    EXPECT_REFUSED(zrt_device_read(r.d, back, r.y, sizeof back), "the host reads 'fp32 view'",
                   "a collective issued without a stream", "wait for its request");
    EXPECT_REFUSED(zrt_memset_async(r.compute, r.y, 0, sizeof back), "compute writes 'fp32 view'", "request", NULL);
    CHECK_OK(zrt_comm_wait(req));
    CHECK_OK(zrt_device_read(r.d, back, r.y, sizeof back));
    CHECK(memcmp(src, back, sizeof src) == 0);
    /* A stream still writes the send buffer: the request may not read it yet. */
    CHECK_OK(zrt_memset_async(r.compute, r.x, 0, sizeof src));
    EXPECT_REFUSED(zrt_comm_all_gather(comm, r.x, r.y, N, ZRT_DTYPE_F32, NULL), "all_gather",
                   "'unit 3 params (gathered)'", "compute");
    CHECK_OK(zrt_stream_synchronize(r.compute));
    CHECK_OK(zrt_comm_all_gather(comm, r.x, r.y, N, ZRT_DTYPE_F32, NULL));
    zrt_comm_destroy(comm);
    free_rig(&r);
}

int main(void)
{
    test_streams();
    test_host();
    test_buffers();
    test_off();
    test_request_form();
    return CHECK_DONE();
}
