/* test_comm_ops.c: every host collective against the serial reference, bit
 * for bit: all_gather, reduce_scatter (sum, avg), all_reduce (sum, avg),
 * broadcast, barrier; fp32, bf16, fp16; counts 0, 1, 7, world-1 and 1M+3;
 * 1, 2, 3 and 4 ranks over shared memory, and 2 and 3 ranks forced onto TCP.
 * Also: a second run of the same reduce_scatter gives the same bits, and
 * all_reduce equals reduce_scatter followed by all_gather.
 */
#include "comm_common.h"
#include "ranks.h"

typedef struct {
    bool force_tcp;
    char scope[64];
} setup;

static const zrt_dtype dtypes[] = {ZRT_DTYPE_F32, ZRT_DTYPE_BF16, ZRT_DTYPE_F16};

static int check_all_gather(zrt_comm *comm, int r, int n, size_t count, zrt_dtype dt, char *a, char *b)
{
    size_t es = zrt_dtype_size(dt);
    fill(a, count, (size_t)r * count, r, 1, dt);
    CHECK_OK(zrt_comm_all_gather(comm, a, b, count, dt, NULL));
    for (int q = 0; q < n; q++) fill(a + (size_t)q * count * es, count, (size_t)q * count, q, 1, dt);
    CHECK_MSG(memcmp(a, b, (size_t)n * count * es) == 0, "all_gather %s count %zu", zrt_dtype_name(dt), count);
    return 0;
}

static void check_reduce_scatter(zrt_comm *comm, int r, int n, size_t count, zrt_dtype dt, zrt_reduce_op op,
                                 char *a, char *b, char *c)
{
    size_t es = zrt_dtype_size(dt);
    fill(a, (size_t)n * count, 0, r, 2, dt);
    CHECK_OK(zrt_comm_reduce_scatter(comm, a, b, count, dt, op, NULL));
    for (size_t i = 0; i < count; i++) reference_reduce(c, i, (size_t)r * count + i, r, n, 2, dt, op);
    CHECK_MSG(memcmp(b, c, count * es) == 0, "reduce_scatter %s count %zu op %d", zrt_dtype_name(dt), count, op);
    /* Run to run: the same bits again. */
    CHECK_OK(zrt_comm_reduce_scatter(comm, a, c, count, dt, op, NULL));
    CHECK_MSG(memcmp(b, c, count * es) == 0, "reduce_scatter not deterministic");
}

static void check_all_reduce(zrt_comm *comm, int r, int n, size_t count, zrt_dtype dt, zrt_reduce_op op, char *a,
                             char *b, char *c)
{
    size_t es = zrt_dtype_size(dt), chunk = (count + (size_t)n - 1) / (size_t)n;
    fill(a, count, 0, r, 3, dt);
    CHECK_OK(zrt_comm_all_reduce(comm, a, b, count, dt, op, NULL));
    for (size_t i = 0; i < count; i++) reference_reduce(c, i, i, (int)(i / chunk), n, 3, dt, op);
    CHECK_MSG(memcmp(b, c, count * es) == 0, "all_reduce %s count %zu op %d", zrt_dtype_name(dt), count, op);
    /* In place gives the same. */
    CHECK_OK(zrt_comm_all_reduce(comm, a, a, count, dt, op, NULL));
    CHECK_MSG(memcmp(a, c, count * es) == 0, "in-place all_reduce %s count %zu", zrt_dtype_name(dt), count);
}

static void check_broadcast(zrt_comm *comm, int r, int n, size_t count, zrt_dtype dt, char *a, char *b)
{
    int root = n - 1;
    size_t es = zrt_dtype_size(dt);
    fill(a, count, 0, r == root ? root : 100 + r, 4, dt);
    CHECK_OK(zrt_comm_broadcast(comm, a, count, dt, root, NULL));
    fill(b, count, 0, root, 4, dt);
    CHECK_MSG(memcmp(a, b, count * es) == 0, "broadcast %s count %zu", zrt_dtype_name(dt), count);
}

static int rank_main(int r, int n, void *arg)
{
    setup *cfg = arg;
    zrt_store *store;
    zrt_comm *comm;
    if (open_comm(cfg->scope, r, n, cfg->force_tcp, 60, &store, &comm) != ZRT_OK) {
        fprintf(stderr, "rank %d: %s\n", r, zrt_last_error());
        return 1;
    }
    size_t counts[] = {0, 1, 7, (size_t)n - 1, (1u << 20) + 3};
    size_t max = counts[4] * (size_t)n * 4;
    char *a = malloc(max), *b = malloc(max), *c = malloc(max);
    for (size_t d = 0; d < sizeof dtypes / sizeof dtypes[0]; d++) {
        for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
            check_all_gather(comm, r, n, counts[k], dtypes[d], a, b);
            check_reduce_scatter(comm, r, n, counts[k], dtypes[d], ZRT_REDUCE_SUM, a, b, c);
            check_reduce_scatter(comm, r, n, counts[k], dtypes[d], ZRT_REDUCE_AVG, a, b, c);
            check_all_reduce(comm, r, n, counts[k], dtypes[d], ZRT_REDUCE_SUM, a, b, c);
            check_all_reduce(comm, r, n, counts[k], dtypes[d], ZRT_REDUCE_AVG, a, b, c);
            check_broadcast(comm, r, n, counts[k], dtypes[d], a, b);
        }
    }
    CHECK_OK(zrt_comm_barrier(comm));
    free(a);
    free(b);
    free(c);
    zrt_comm_destroy(comm);
    zrt_store_destroy(store);
    return CHECK_DONE();
}

int main(void)
{
    struct { int world; bool tcp; } runs[] = {{1, false}, {2, false}, {3, false}, {4, false}, {2, true}, {3, true}};
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        setup cfg = {.force_tcp = runs[i].tcp};
        snprintf(cfg.scope, sizeof cfg.scope, "ops-%d-%s", runs[i].world, runs[i].tcp ? "tcp" : "shm");
        int failed = ranks_run(runs[i].world, rank_main, &cfg, 300);
        CHECK_MSG(failed == 0, "%d ranks over %s: %d rank(s) failed", runs[i].world, runs[i].tcp ? "TCP" : "shm",
                  failed);
        printf("%d ranks over %s: %s\n", runs[i].world, runs[i].tcp ? "TCP" : "shared memory",
               failed ? "FAILED" : "ok");
    }
    return CHECK_DONE();
}
