/* test_comm_kill.c: kill -9 of a rank in the middle of collectives: every
 * survivor's collective fails within a few seconds (their deadline is 120 s),
 * at least one survivor's error names the dead rank, and no survivor hangs.
 * Over shared memory (4 ranks) and over TCP (3 ranks).
 */
#include "comm_common.h"
#include "ranks.h"

#define VICTIM 1

typedef struct {
    bool tcp;
    const char *scope;
} setup;

static int rank_main(int r, int n, void *arg)
{
    setup *s = arg;
    zrt_store *store;
    zrt_comm *comm;
    if (open_comm(s->scope, r, n, s->tcp, 120, &store, &comm) != ZRT_OK) return 10;
    size_t count = 1 << 18;
    float *a = calloc(count * (size_t)n, sizeof *a), *b = calloc(count * (size_t)n, sizeof *b);
    zrt_store_add(store, "ready", 1, NULL);
    zrt_status status = ZRT_OK;
    for (int iter = 0; status == ZRT_OK && iter < 1000000; iter++)
        status = zrt_comm_all_reduce(comm, a, b, count * (size_t)n, ZRT_DTYPE_F32, ZRT_REDUCE_SUM, NULL);
    /* The victim never gets here. Survivors report what they saw. */
    char key[64];
    snprintf(key, sizeof key, "error/%d", r);
    const char *message = zrt_last_error();
    zrt_store_set(store, key, message, strlen(message));
    printf("rank %d: %s\n", r, message);
    return status == ZRT_ERR_PEER || status == ZRT_ERR_INVALID ? 0 : 20;
}

static void kill_one(int world, bool tcp, const char *scope)
{
    setup s = {tcp, scope};
    pid_t pids[MAX_TEST_RANKS];
    ranks_start(world, rank_main, &s, pids);
    zrt_store *store;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/stores", test_tmpdir());
    CHECK_OK(zrt_store_file_create(dir, scope, &store));
    int64_t ready = 0;
    for (double t0 = zrt_now(); ready < world && zrt_now() - t0 < 30; usleep(10000)) zrt_store_add(store, "ready", 0, &ready);
    usleep(300000); /* well inside the collectives */
    kill(pids[VICTIM], SIGKILL);
    double killed_at = zrt_now();
    int statuses[MAX_TEST_RANKS];
    ranks_wait(world, pids, 30, statuses);
    double took = zrt_now() - killed_at;
    bool named = false;
    for (int r = 0; r < world; r++) {
        if (r == VICTIM) continue;
        CHECK_MSG(WIFEXITED(statuses[r]) && WEXITSTATUS(statuses[r]) == 0, "%s: survivor %d ended with status 0x%x",
                  scope, r, statuses[r]);
        char key[64];
        snprintf(key, sizeof key, "error/%d", r);
        void *msg;
        size_t len;
        if (zrt_store_get(store, key, 1, &msg, &len) != ZRT_OK) continue;
        named |= strstr(msg, "rank 1 is gone") != NULL || strstr(msg, "rank 1 closed") != NULL;
        free(msg);
    }
    CHECK_MSG(named, "%s: no survivor named rank %d", scope, VICTIM);
    CHECK_MSG(took < 10, "%s: survivors took %.1f s to fail", scope, took);
    printf("%s: all survivors failed %.2f s after the kill\n", scope, took);
    zrt_store_destroy(store);
}

int main(void)
{
    kill_one(4, false, "kill-shm");
    kill_one(3, true, "kill-tcp");
    return CHECK_DONE();
}
