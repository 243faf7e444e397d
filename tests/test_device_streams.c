/* test_device_streams.c: the cpu device's streams and events, with and
 * without check mode (whose random delays must not change any order):
 *  - work on one stream runs in order, also past the job ring's 256 slots;
 *  - a wait on an event orders two streams; without it the second stream
 *    really runs first (a missing wait is a race, not a no-op);
 *  - event query and synchronize; a never-recorded event is done;
 *  - a failing host function fails its stream: later work is skipped, the
 *    error (with its message) comes back from synchronize, and a stream
 *    waiting on it fails too;
 *  - H2D, D2D and D2H copies and memset move the right bytes, in order;
 *  - destroying a stream runs what is queued first; bad arguments are refused.
 */
#include "device_common.h"

#define JOBS 1000

static zrt_status fail_job(void *arg)
{
    (void)arg;
    return zrt_set_error(ZRT_ERR_IO, "the test's job failed on purpose");
}

static void test_order(zrt_device *d)
{
    static int log[JOBS];
    atomic_int count = 0;
    zrt_stream *s;
    CHECK_OK(zrt_stream_create(d, "order", &s));
    for (int i = 0; i < JOBS; i++) CHECK_OK(launch_log(s, &count, log, i, 0));
    CHECK_OK(zrt_stream_synchronize(s));
    bool in_order = atomic_load(&count) == JOBS;
    for (int i = 0; i < JOBS && in_order; i++) in_order = log[i] == i;
    CHECK_MSG(in_order, "%d jobs ran out of order (or not all: %d)", JOBS, atomic_load(&count));
    zrt_stream_destroy(s);
}

/* a: a slow job then a record; b: (maybe) a wait, then a job. */
static void test_events(zrt_device *d)
{
    int log[4];
    atomic_int count = 0;
    zrt_stream *a, *b;
    zrt_event *e;
    CHECK_OK(zrt_stream_create(d, "a", &a));
    CHECK_OK(zrt_stream_create(d, "b", &b));
    CHECK_OK(zrt_event_create(d, "a done", &e));
    bool done = false;
    CHECK_OK(zrt_event_query(e, &done));
    CHECK_MSG(done, "a never-recorded event is done");
    CHECK_OK(zrt_stream_wait_event(b, e)); /* a no-op, as in CUDA */

    CHECK_OK(launch_log(a, &count, log, 1, 0.1));
    CHECK_OK(zrt_event_record(e, a));
    CHECK_OK(zrt_stream_wait_event(b, e));
    CHECK_OK(launch_log(b, &count, log, 2, 0));
    CHECK_OK(zrt_event_query(e, &done));
    CHECK_MSG(!done, "the event is done while a still sleeps");
    CHECK_OK(zrt_stream_synchronize(b));
    CHECK_MSG(atomic_load(&count) == 2 && log[0] == 1 && log[1] == 2, "with the wait, b ran before a: %d %d", log[0],
              log[1]);
    CHECK_OK(zrt_event_synchronize(e));
    CHECK_OK(zrt_event_query(e, &done));
    CHECK(done);

    /* The same without the wait: b does not wait for a's 100 ms. */
    atomic_store(&count, 0);
    CHECK_OK(launch_log(a, &count, log, 1, 0.1));
    CHECK_OK(launch_log(b, &count, log, 2, 0));
    CHECK_OK(zrt_stream_synchronize(a));
    CHECK_OK(zrt_stream_synchronize(b));
    CHECK_MSG(log[0] == 2 && log[1] == 1, "without a wait b still ran after a (%d %d): the wait would be a no-op",
              log[0], log[1]);
    zrt_event_destroy(e);
    zrt_stream_destroy(a);
    zrt_stream_destroy(b);
}

static void test_failure(zrt_device *d)
{
    int log[4] = {0};
    atomic_int count = 0;
    zrt_stream *a, *b;
    zrt_event *e;
    CHECK_OK(zrt_stream_create(d, "failing", &a));
    CHECK_OK(zrt_stream_create(d, "waiter", &b));
    CHECK_OK(zrt_event_create(d, "after failure", &e));
    CHECK_OK(zrt_stream_launch_host(a, "fail", fail_job, NULL, 0, NULL, 0));
    CHECK_OK(launch_log(a, &count, log, 1, 0));
    CHECK_OK(zrt_event_record(e, a));
    CHECK_OK(zrt_stream_wait_event(b, e));
    CHECK_OK(launch_log(b, &count, log, 2, 0));
    zrt_status status = zrt_stream_synchronize(a);
    CHECK_MSG(status == ZRT_ERR_IO && strstr(zrt_last_error(), "failed on purpose"), "sync: %s", zrt_last_error());
    status = zrt_stream_synchronize(b);
    CHECK_MSG(status == ZRT_ERR_IO && strstr(zrt_last_error(), "stream 'failing' failed; stream 'waiter' waited"),
              "waiter: %s", zrt_last_error());
    CHECK_MSG(zrt_event_synchronize(e) == ZRT_ERR_IO, "event after the failure");
    CHECK_MSG(atomic_load(&count) == 0, "%d jobs after the failure ran", atomic_load(&count));
    CHECK(launch_log(a, &count, log, 3, 0) == ZRT_OK && zrt_stream_synchronize(a) == ZRT_ERR_IO); /* sticky */
    zrt_event_destroy(e);
    zrt_stream_destroy(a);
    zrt_stream_destroy(b);
}

static void test_copies(zrt_device *d)
{
    enum { N = 100003 };
    static float host[N], back[N];
    float *x = device_alloc(d, N * sizeof(float), "x"), *y = device_alloc(d, N * sizeof(float), "y");
    float *pinned = NULL;
    CHECK_OK(zrt_host_alloc(d, ZRT_MEM_COMM, N * sizeof(float), "pinned", (void **)&pinned));
    for (int i = 0; i < N; i++) host[i] = (float)i * 0.5f;
    memcpy(pinned, host, sizeof host);
    zrt_stream *s;
    CHECK_OK(zrt_stream_create(d, "copies", &s));
    CHECK_OK(zrt_memcpy_async(s, x, pinned, sizeof host, ZRT_COPY_H2D));
    CHECK_OK(zrt_memset_async(s, y, 0, sizeof host));
    CHECK_OK(zrt_memcpy_async(s, y, x, (N / 2) * sizeof(float), ZRT_COPY_D2D));
    CHECK_OK(zrt_memcpy_async(s, pinned, y, sizeof host, ZRT_COPY_D2H));
    CHECK_OK(zrt_stream_synchronize(s));
    bool ok = true;
    for (int i = 0; i < N; i++) ok &= pinned[i] == (i < N / 2 ? host[i] : 0.0f);
    CHECK_MSG(ok, "H2D, memset, D2D, D2H did not give the expected bytes");
    CHECK_OK(zrt_device_read(d, back, x, sizeof back));
    CHECK(memcmp(back, host, sizeof host) == 0);
    CHECK(zrt_memcpy_async(s, NULL, x, 4, ZRT_COPY_D2H) == ZRT_ERR_INVALID);
    CHECK(zrt_memcpy_async(s, x, y, 4, (zrt_copy_kind)7) == ZRT_ERR_INVALID);
    CHECK_OK(zrt_memcpy_async(s, NULL, NULL, 0, ZRT_COPY_D2D)); /* nothing to do */
    zrt_stream_destroy(s);
    zrt_host_free(d, pinned);
    zrt_device_free(d, x, NULL);
    zrt_device_free(d, y, NULL);
}

static void test_lifetime(zrt_device *d)
{
    int log[8];
    atomic_int count = 0;
    zrt_stream *s;
    CHECK_OK(zrt_stream_create(d, "destroyed", &s));
    for (int i = 0; i < 8; i++) CHECK_OK(launch_log(s, &count, log, i, 0.001));
    zrt_stream_destroy(s); /* runs them first */
    CHECK_MSG(atomic_load(&count) == 8, "destroy dropped queued work: %d of 8 ran", atomic_load(&count));
    char big[ZRT_LAUNCH_ARG_MAX + 1] = {0};
    CHECK_OK(zrt_stream_create(d, "args", &s));
    CHECK(zrt_stream_launch_host(s, "too big", fail_job, big, sizeof big, NULL, 0) == ZRT_ERR_INVALID);
    CHECK(zrt_stream_launch_host(s, "no function", NULL, NULL, 0, NULL, 0) == ZRT_ERR_INVALID);
    zrt_stream *many[40];
    int made = 0;
    while (made < 40 && zrt_stream_create(d, "many", &many[made]) == ZRT_OK) made++;
    CHECK_MSG(made == 30 && strstr(zrt_last_error(), "more than 31 streams"), "made %d more streams: %s", made,
              zrt_last_error());
    for (int i = 0; i < made; i++) zrt_stream_destroy(many[i]);
    zrt_stream_destroy(s);
}

int main(void)
{
    for (int check = 0; check <= 1; check++) {
        zrt_device *d = make_device(ZRT_DEVICE_CPU, check);
        test_order(d);
        test_events(d);
        test_failure(d);
        test_copies(d);
        test_lifetime(d);
        zrt_device_destroy(d);
        printf("cpu device, check mode %s: order, events, failures, copies, lifetime\n", check ? "on" : "off");
    }
    return CHECK_DONE();
}
