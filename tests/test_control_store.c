/* test_control_store.c: the coordinator's key-value store through the
 * rank-side zrt_store (gRPC): set/get/add; a get that waits in the
 * coordinator until another client sets the key; the get deadline; scopes;
 * a wrong token is refused; Status and Shutdown through control.h (an
 * unknown method's UNIMPLEMENTED is test_grpc_python's, with a client of its
 * own). The coordinator runs in a thread of this process.
 */
#include "check.h"
#include "control.h"

#include <pthread.h>
#include <unistd.h>

static char address[300];
static zrt_config cfg;

static void on_listening(const char *addr, void *arg)
{
    (void)arg;
    snprintf(address, sizeof address, "%s", addr);
}

static void *run_coordinator(void *arg)
{
    (void)arg;
    zrt_coordinator_options o = {.cfg = &cfg, .listen = "127.0.0.1:0", .token = "tok", .on_listening = on_listening};
    zrt_coordinator_run(&o);
    return NULL;
}

static void *late_set(void *arg)
{
    zrt_store *store = arg;
    usleep(300000);
    zrt_store_set(store, "late", "there", 5);
    return NULL;
}

int main(void)
{
    zrt_config_init(&cfg);
    cfg.job.join_timeout_s = 3600;
    pthread_t coordinator;
    pthread_create(&coordinator, NULL, run_coordinator, NULL);
    for (int i = 0; i < 200 && !address[0]; i++) usleep(10000);
    CHECK(address[0]);
    if (!address[0]) return 1;

    zrt_store *a, *b, *other;
    CHECK_OK(zrt_store_grpc_create(address, "tok", "job/gen0", NULL, &a));
    CHECK_OK(zrt_store_grpc_create(address, "tok", "job/gen0", NULL, &b));
    CHECK_OK(zrt_store_grpc_create(address, "tok", "job/gen1", NULL, &other));
    CHECK_OK(zrt_store_set(a, "k", "value", 5));
    void *v;
    size_t len;
    CHECK_OK(zrt_store_get(b, "k", 1, &v, &len));
    CHECK(len == 5 && memcmp(v, "value", 5) == 0);
    free(v);
    CHECK(zrt_store_get(other, "k", 0.2, &v, &len) == ZRT_ERR_TIMEOUT); /* another generation */
    int64_t n = 0;
    CHECK_OK(zrt_store_add(a, "count", 5, &n));
    CHECK_OK(zrt_store_add(b, "count", -2, &n));
    CHECK(n == 3);

    /* A get waits in the coordinator until another client sets the key. */
    pthread_t setter;
    pthread_create(&setter, NULL, late_set, a);
    double t0 = zrt_now();
    CHECK_OK(zrt_store_get(b, "late", 10, &v, &len));
    CHECK(len == 5 && memcmp(v, "there", 5) == 0);
    CHECK(zrt_now() - t0 >= 0.25);
    free(v);
    pthread_join(setter, NULL);

    /* The deadline: a key nobody sets. */
    t0 = zrt_now();
    CHECK(zrt_store_get(b, "never", 0.3, &v, &len) == ZRT_ERR_TIMEOUT);
    CHECK_MSG(strstr(zrt_last_error(), "'never'") != NULL, "%s", zrt_last_error());
    CHECK(zrt_now() - t0 < 3);

    /* Wrong token; unknown method. */
    zrt_store *intruder;
    CHECK_OK(zrt_store_grpc_create(address, "nope", "job/gen0", NULL, &intruder));
    CHECK(zrt_store_set(intruder, "k", "x", 1) != ZRT_OK);
    CHECK_MSG(strstr(zrt_last_error(), "wrong job token"), "%s", zrt_last_error());
    char *json = NULL;
    CHECK(zrt_control_status(address, "nope", NULL, 5, &json) != ZRT_OK);
    CHECK_OK(zrt_control_status(address, "tok", NULL, 5, &json));
    CHECK(json && strstr(json, "\"state\":\t\"waiting\""));
    free(json);

    /* Shutdown ends the coordinator. */
    CHECK(zrt_control_shutdown(address, "nope", NULL, "intruder", 5) != ZRT_OK);
    CHECK_OK(zrt_control_shutdown(address, "tok", NULL, "test over", 5));
    pthread_join(coordinator, NULL);
    zrt_store_destroy(intruder);
    zrt_store_destroy(a);
    zrt_store_destroy(b);
    zrt_store_destroy(other);
    return CHECK_DONE();
}
