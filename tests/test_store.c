/* test_store.c: the file store: set/get/add/delete, a get that waits for a
 * later set, the get deadline, atomic add across 4 processes, scoping, and
 * bad arguments refused.
 */
#include "check.h"
#include "ranks.h"
#include "zrt.h"

static char dir[1024];

static int adder(int rank, int world, void *arg)
{
    (void)rank;
    (void)world;
    (void)arg;
    zrt_store *store;
    if (zrt_store_file_create(dir, "job/gen0", &store) != ZRT_OK) return 1;
    for (int i = 0; i < 500; i++)
        if (zrt_store_add(store, "counter", 1, NULL) != ZRT_OK) return 1;
    zrt_store_destroy(store);
    return 0;
}

static int late_setter(int rank, int world, void *arg)
{
    (void)world;
    (void)arg;
    if (rank != 0) return 0;
    usleep(200000);
    zrt_store *store;
    if (zrt_store_file_create(dir, "job/gen0", &store) != ZRT_OK) return 1;
    zrt_status status = zrt_store_set(store, "late/key", "hello", 5);
    zrt_store_destroy(store);
    return status == ZRT_OK ? 0 : 1;
}

int main(void)
{
    snprintf(dir, sizeof dir, "%s/store", test_tmpdir());
    zrt_store *store, *other;
    CHECK_OK(zrt_store_file_create(dir, "job/gen0", &store));
    CHECK_OK(zrt_store_file_create(dir, "job/gen1", &other));

    CHECK_OK(zrt_store_set(store, "a/b c", "xyz", 3));
    void *value = NULL;
    size_t len = 0;
    CHECK_OK(zrt_store_get(store, "a/b c", 1.0, &value, &len));
    CHECK(len == 3 && value && memcmp(value, "xyz", 3) == 0 && ((char *)value)[3] == '\0');
    free(value);
    CHECK_OK(zrt_store_set(store, "a/b c", "", 0)); /* overwrite, empty value */
    CHECK_OK(zrt_store_get(store, "a/b c", 1.0, &value, &len));
    CHECK(len == 0);
    free(value);

    /* Another scope does not see the key; a get there times out, naming it. */
    CHECK(zrt_store_get(other, "a/b c", 0.05, &value, &len) == ZRT_ERR_TIMEOUT);
    CHECK(strstr(zrt_last_error(), "'a/b c'") != NULL);

    /* A get waits for a set made later by another process. */
    pid_t pids[1];
    ranks_start(1, late_setter, NULL, pids);
    CHECK_OK(zrt_store_get(store, "late/key", 10.0, &value, &len));
    CHECK(len == 5 && memcmp(value, "hello", 5) == 0);
    free(value);
    CHECK(ranks_wait(1, pids, 10, NULL) == 0);

    /* add is atomic across processes. */
    CHECK(ranks_run(4, adder, NULL, 60) == 0);
    int64_t total = 0;
    CHECK_OK(zrt_store_add(store, "counter", 0, &total));
    CHECK_MSG(total == 2000, "counter = %lld", (long long)total);
    CHECK_OK(zrt_store_add(store, "counter", -2000, &total));
    CHECK(total == 0);

    CHECK_OK(zrt_store_delete(store, "counter"));
    CHECK_OK(zrt_store_delete(store, "counter")); /* absent: fine */
    CHECK(zrt_store_get(store, "counter", 0.01, &value, &len) == ZRT_ERR_TIMEOUT);

    /* Bad arguments. */
    char long_key[300];
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    CHECK(zrt_store_set(store, "", "x", 1) == ZRT_ERR_INVALID);
    CHECK(zrt_store_set(store, long_key, "x", 1) == ZRT_ERR_INVALID);
    CHECK(strstr(zrt_last_error(), "over the limit") != NULL);
    static char big[(1 << 20) + 1];
    CHECK(zrt_store_set(store, "big", big, sizeof big) == ZRT_ERR_INVALID);
    CHECK(zrt_store_set(NULL, "k", "x", 1) == ZRT_ERR_INVALID);
    CHECK(zrt_store_set(store, "k", NULL, 1) == ZRT_ERR_INVALID);
    CHECK_OK(zrt_store_set(store, "text", "12x", 3));
    CHECK(zrt_store_add(store, "text", 1, NULL) == ZRT_ERR_INVALID);
    zrt_store *unusable = NULL;
    CHECK(zrt_store_file_create("/proc/no/such/dir", "s", &unusable) == ZRT_ERR_IO && unusable == NULL);
    zrt_store_destroy(other);
    zrt_store_destroy(store);
    zrt_store_destroy(NULL);
    return CHECK_DONE();
}
