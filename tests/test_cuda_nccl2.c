/* test_cuda_nccl2.c: NCCL across 2 ranks on one GPU, end to end. Each rank
 * claims a host of its own (comm_common.h: NCCL_HOSTID, sockets on
 * loopback), since NCCL refuses two ranks of one host on one GPU; if NCCL
 * still refuses, the test skips with NCCL's own words. Then:
 *  - reduce_scatter, all_gather and all_reduce (sum; a count that is not a
 *    multiple of the world, so the padded path) on a stream, against the
 *    expected values;
 *  - the deadline: rank 1 leaves an all_reduce unmatched; rank 0's stream
 *    synchronize returns once the watchdog gives up (comm_timeout_s 10 s),
 *    and zrt_comm_status names the collective and its sequence number;
 *  - the engine's GPT in fp32 over NCCL for stages 0-3, bitwise equal to
 *    each other, and within 1e-4 relative of the same run over the host
 *    backend (hybrid mode: the reduction order differs).
 * Needs a GPU (cuda_common.h: fails where the machine has one it cannot use).
 */
#include "cuda_common.h"
#include "engine_common.h"

#define STEPS 5
#define COUNT 1001 /* odd: all_reduce pads it to a multiple of 2 */

/* The rank's answer to the parent, in TMPDIR/what-rank. */
static void answer(const char *what, int rank, const char *text)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/%s-%d", test_tmpdir(), what, rank);
    FILE *f = fopen(path, "w");
    if (f) fprintf(f, "%s", text), fclose(f);
}

static void heard(const char *what, int rank, char *text, size_t size)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/%s-%d", test_tmpdir(), what, rank);
    FILE *f = fopen(path, "r");
    size_t got = f ? fread(text, 1, size - 1, f) : 0;
    text[got] = '\0';
    if (f) fclose(f);
}

/* On a stream: all_reduce (padded), reduce_scatter, all_gather of rank-valued data; "ok" or what differed. */
static zrt_status collectives(zrt_device *d, zrt_comm *comm, int rank, char *verdict, size_t size)
{
    float host[2 * COUNT], back[2 * COUNT];
    for (int i = 0; i < 2 * COUNT; i++) host[i] = (float)(rank + 1) * (float)(i % 97);
    void *a = NULL, *b = NULL;
    zrt_stream *stream = NULL;
    ZRT_CHECK(zrt_device_alloc(d, ZRT_MEM_COMM, sizeof host, "a", NULL, &a));
    ZRT_CHECK(zrt_device_alloc(d, ZRT_MEM_COMM, sizeof host, "b", NULL, &b));
    ZRT_CHECK(zrt_stream_create(d, "comm", &stream));
    ZRT_CHECK(zrt_device_write(d, a, host, sizeof host));
    ZRT_CHECK(zrt_comm_all_reduce_on(comm, a, b, COUNT, ZRT_DTYPE_F32, ZRT_REDUCE_SUM, stream));
    ZRT_CHECK(zrt_stream_synchronize(stream));
    ZRT_CHECK(zrt_device_read(d, back, b, COUNT * sizeof(float)));
    snprintf(verdict, size, "ok");
    for (int i = 0; i < COUNT; i++)
        if (back[i] != 3.0f * (float)(i % 97)) return snprintf(verdict, size, "all_reduce [%d] = %g", i, back[i]), ZRT_OK;
    ZRT_CHECK(zrt_comm_reduce_scatter_on(comm, a, b, COUNT, ZRT_DTYPE_F32, ZRT_REDUCE_SUM, stream));
    ZRT_CHECK(zrt_stream_synchronize(stream));
    ZRT_CHECK(zrt_device_read(d, back, b, COUNT * sizeof(float)));
    for (int i = 0; i < COUNT; i++)
        if (back[i] != 3.0f * (float)((rank * COUNT + i) % 97))
            return snprintf(verdict, size, "reduce_scatter [%d] = %g", i, back[i]), ZRT_OK;
    ZRT_CHECK(zrt_comm_all_gather_on(comm, a, b, COUNT, ZRT_DTYPE_F32, stream));
    ZRT_CHECK(zrt_stream_synchronize(stream));
    ZRT_CHECK(zrt_device_read(d, back, b, sizeof back));
    for (int i = 0; i < 2 * COUNT; i++)
        if (back[i] != (float)(i / COUNT + 1) * (float)((i % COUNT) % 97))
            return snprintf(verdict, size, "all_gather [%d] = %g", i, back[i]), ZRT_OK;
    return ZRT_OK;
}

/* Rank 0 issues an all_reduce that rank 1 never joins: the watchdog must end it. */
static zrt_status deadline(zrt_device *d, zrt_comm *comm, int rank, char *verdict, size_t size)
{
    void *a = NULL;
    zrt_stream *stream = NULL;
    ZRT_CHECK(zrt_device_alloc(d, ZRT_MEM_COMM, COUNT * sizeof(float), "a", NULL, &a));
    ZRT_CHECK(zrt_stream_create(d, "comm", &stream));
    ZRT_CHECK(zrt_memset_async(stream, a, 0, COUNT * sizeof(float)));
    ZRT_CHECK(zrt_comm_all_reduce_on(comm, a, a, COUNT, ZRT_DTYPE_F32, ZRT_REDUCE_SUM, stream)); /* connected */
    ZRT_CHECK(zrt_stream_synchronize(stream));
    if (rank == 1) {
        zrt_sleep(15); /* alive, silent */
        return snprintf(verdict, size, "ok"), ZRT_OK;
    }
    double start = zrt_now();
    ZRT_CHECK(zrt_comm_all_reduce_on(comm, a, a, COUNT, ZRT_DTYPE_F32, ZRT_REDUCE_SUM, stream));
    (void)zrt_stream_synchronize(stream); /* returns once NCCL is aborted */
    zrt_status status = zrt_comm_status(comm);
    snprintf(verdict, size, "%s after %.1f s: %s", status == ZRT_OK ? "no failure" : "failed", zrt_now() - start,
             status == ZRT_OK ? "" : zrt_last_error());
    return ZRT_OK;
}

typedef zrt_status (*probe_fn)(zrt_device *, zrt_comm *, int, char *, size_t);

/* Rank r: a 2-rank NCCL communicator on GPU 0 (timeout_s), then fn; its verdict in TMPDIR/what-r. */
static int probe(int rank, int world, const char *what, probe_fn fn, double timeout_s)
{
    zrt_device_options o;
    zrt_device_options_init(&o);
    o.kind = ZRT_DEVICE_CUDA;
    zrt_device *d = NULL;
    zrt_store *store = NULL;
    zrt_comm *comm = NULL;
    char verdict[900] = "";
    open_comm_backend = "nccl";
    zrt_status status = zrt_device_create(&o, &d);
    if (status == ZRT_OK) status = open_comm(what, rank, world, false, timeout_s, &store, &comm);
    if (status != ZRT_OK) snprintf(verdict, sizeof verdict, "no communicator: %s", zrt_last_error());
    else if (fn(d, comm, rank, verdict, sizeof verdict) != ZRT_OK) snprintf(verdict, sizeof verdict, "%s", zrt_last_error());
    answer(what, rank, verdict);
    zrt_comm_destroy(comm);
    zrt_store_destroy(store);
    zrt_device_destroy(d);
    return 0;
}

static int collectives_rank(int rank, int world, void *arg)
{
    (void)arg;
    return probe(rank, world, "collectives", collectives, 60);
}

static int deadline_rank(int rank, int world, void *arg)
{
    (void)arg;
    return probe(rank, world, "deadline", deadline, 10); /* comm_timeout_s 10 s: NCCL init fits */
}

int main(void)
{
    skip_without_gpu();
    ranks_run(2, collectives_rank, NULL, 90);
    char text[900];
    for (int r = 0; r < 2; r++) {
        heard("collectives", r, text, sizeof text);
        if (strncmp(text, "no communicator: ", 17) == 0) SKIP("NCCL with 2 ranks on one GPU: rank %d: %s", r, text + 17);
        CHECK_MSG(strcmp(text, "ok") == 0, "rank %d: %s", r, text[0] ? text : "no answer");
    }
    printf("2 NCCL ranks on one GPU: all_reduce (padded), reduce_scatter, all_gather as expected\n");
    ranks_run(2, deadline_rank, NULL, 60);
    heard("deadline", 0, text, sizeof text);
    double after = 0;
    CHECK_MSG(sscanf(text, "failed after %lf", &after) == 1 && after < 10 + 5 && strstr(text, "all_reduce #") &&
                  strstr(text, "did not finish within 10 s"),
              "an unmatched all_reduce: %s", text[0] ? text : "no answer");
    printf("an unmatched all_reduce: %s\n", text);
    static run_result host, base, r;
    run_spec h = {.world = 2, .stage = 0, .steps = STEPS, .precision = ZRT_PRECISION_NO, .micro = 2, .accum = 1,
                  .gpt = true, .cuda = true};
    CHECK_MSG(run_training(&h, &host), "%s did not run", h.tag);
    for (int stage = 0; stage <= 3; stage++) {
        run_spec s = h;
        s.stage = stage;
        s.nccl = true;
        s.persistence = stage == 3 ? 0 : 100000;
        s.tag[0] = '\0';
        run_result *out = stage == 0 ? &base : &r;
        CHECK_MSG(run_training(&s, out), "%s did not run", s.tag);
        if (stage > 0) CHECK_MSG(same_run(&base, out, STEPS), "%s: differs from stage 0", s.tag);
    }
    double worst = 0;
    for (int i = 0; i < STEPS; i++) worst = fmax(worst, rel_diff(base.steps[i].loss, host.steps[i].loss));
    CHECK_MSG(worst <= 1e-4, "NCCL vs host comm: %.3g relative", worst);
    printf("NCCL, 2 ranks on one GPU: stages 0-3 bitwise equal, loss %.6f -> %.6f, vs host comm %.3g\n",
           base.steps[0].loss, base.steps[STEPS - 1].loss, worst);
    return CHECK_DONE();
}
