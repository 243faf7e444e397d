/* test_device_memory.c: the device's memory accounting and side table:
 *  - every allocation is charged to its category and place (device bytes
 *    and pinned host bytes apart), peaks hold the maximum, recharge moves
 *    bytes between categories, free gives them back (also a stream-ordered
 *    free stays in the total, as `freeing`, until its stream gets there:
 *    check_stream_free_counted, which test_cuda_memory runs on the GPU);
 *  - the size lives in the side table: an allocation's bytes are exactly the
 *    caller's (all of them usable), an interior pointer finds its block;
 *  - in check mode new memory holds NaN bytes (0xff);
 *  - bad frees and recharges are refused; destroy frees what is left;
 *  - pinned host memory over RLIMIT_MEMLOCK is pageable instead, with one
 *    warning naming the limit (in a child without CAP_IPC_LOCK, which would
 *    let root lock past the limit).
 */
#include "device_common.h"

#include <linux/capability.h>
#include <math.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const zrt_mem_stats *stats(zrt_device *d) { return zrt_device_mem(d); }

static void test_accounting(zrt_device *d)
{
    void *params = NULL, *grads = NULL, *host = NULL;
    CHECK_OK(zrt_device_alloc(d, ZRT_MEM_PARAMS, 1000, "params", NULL, &params));
    CHECK_OK(zrt_device_alloc(d, ZRT_MEM_GRADS, 333, "grads", NULL, &grads));
    CHECK_OK(zrt_host_alloc(d, ZRT_MEM_OPTIMIZER, 4096, "optimizer on the host", &host));
    const int64_t *dev = stats(d)->current[ZRT_MEM_DEVICE], *hst = stats(d)->current[ZRT_MEM_HOST];
    CHECK(dev[ZRT_MEM_PARAMS] == 1000 && dev[ZRT_MEM_GRADS] == 333 && dev[ZRT_MEM_OPTIMIZER] == 0);
    CHECK(hst[ZRT_MEM_OPTIMIZER] == 4096 && hst[ZRT_MEM_PARAMS] == 0);
    CHECK(zrt_mem_model_states(stats(d), ZRT_MEM_DEVICE) == 1333);
    CHECK(zrt_mem_model_states(stats(d), ZRT_MEM_HOST) == 4096);
    CHECK_OK(zrt_device_recharge(d, grads, ZRT_MEM_COMM));
    CHECK(dev[ZRT_MEM_GRADS] == 0 && dev[ZRT_MEM_COMM] == 333 && stats(d)->peak[ZRT_MEM_DEVICE][ZRT_MEM_GRADS] == 333);
    void *base = NULL;
    size_t bytes = 0;
    const char *name = NULL;
    CHECK_OK(zrt_device_lookup(d, (char *)params + 999, &base, &bytes, &name));
    CHECK_MSG(base == params && bytes == 1000 && strcmp(name, "params") == 0, "lookup: %p %zu %s", base, bytes, name);
    int on_stack = 0;
    CHECK(zrt_device_lookup(d, &on_stack, NULL, NULL, NULL) == ZRT_ERR_INVALID);
    memset(params, 0x5a, 1000); /* all of it is the caller's: no size header inside */
    zrt_stream *s;
    CHECK_OK(zrt_stream_create(d, "free", &s));
    CHECK_OK(zrt_memset_async(s, params, 0, 1000));
    CHECK_OK(zrt_device_free(d, params, s)); /* after the memset */
    CHECK(dev[ZRT_MEM_PARAMS] == 0 && stats(d)->peak[ZRT_MEM_DEVICE][ZRT_MEM_PARAMS] == 1000);
    CHECK_OK(zrt_stream_synchronize(s));
    CHECK(zrt_device_free(d, params, NULL) == ZRT_ERR_INVALID); /* twice */
    CHECK(zrt_device_free(d, (char *)grads + 1, NULL) == ZRT_ERR_INVALID); /* not a base */
    CHECK(zrt_device_free(d, host, NULL) == ZRT_ERR_INVALID);              /* pinned host memory */
    CHECK(zrt_device_recharge(d, (char *)grads + 8, ZRT_MEM_PARAMS) == ZRT_ERR_INVALID);
    CHECK(zrt_device_recharge(d, grads, (zrt_mem_category)9) == ZRT_ERR_INVALID);
    CHECK_OK(zrt_device_free(d, NULL, NULL));
    CHECK_OK(zrt_device_free(d, grads, NULL));
    zrt_host_free(d, host);
    CHECK(zrt_mem_model_states(stats(d), ZRT_MEM_DEVICE) == 0 && zrt_mem_model_states(stats(d), ZRT_MEM_HOST) == 0);
    void *zero = NULL;
    CHECK_OK(zrt_device_alloc(d, ZRT_MEM_COMM, 0, "empty", NULL, &zero));
    CHECK(zero != NULL);
    CHECK_OK(zrt_device_free(d, zero, NULL));
    zrt_stream_destroy(s);
    CHECK(zrt_device_alloc(d, (zrt_mem_category)7, 8, "bad", NULL, &zero) == ZRT_ERR_INVALID);
    CHECK(strcmp(zrt_mem_category_name(ZRT_MEM_OPTIMIZER), "optimizer") == 0 &&
          strcmp(zrt_mem_place_name(ZRT_MEM_HOST), "host") == 0);
}

static void test_poison(void)
{
    zrt_device *d = make_device(ZRT_DEVICE_CPU, true);
    float *p = NULL;
    CHECK_OK(zrt_device_alloc(d, ZRT_MEM_COMM, 64 * sizeof(float), "poisoned", NULL, (void **)&p));
    bool nan = true;
    for (int i = 0; i < 64; i++) nan &= isnan(p[i]) && ((unsigned char *)p)[4 * i] == 0xff;
    CHECK_MSG(nan, "check mode: new device memory is not NaN-poisoned");
    uint16_t *h = (uint16_t *)p; /* the same bytes are bf16 and fp16 NaN too */
    CHECK(h[0] == 0xffff);
    /* Leftovers are freed by destroy (ASan's leak check in mode=debug sees it). */
    void *left = NULL;
    CHECK_OK(zrt_host_alloc(d, ZRT_MEM_COMM, 100, "left over", &left));
    zrt_device_destroy(d);
}

/* In a child: no CAP_IPC_LOCK, a 64 KiB lock limit, two 1 MiB pinned allocations. */
static int memlock_child(void)
{
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct caps[2];
    if (syscall(SYS_capget, &header, caps) == 0) {
        caps[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
        syscall(SYS_capset, &header, caps);
    }
    struct rlimit limit = {64 << 10, 64 << 10};
    if (setrlimit(RLIMIT_MEMLOCK, &limit) != 0) return 2;
    zrt_device *d = make_device(ZRT_DEVICE_CPU, false);
    void *a = NULL, *b = NULL;
    CHECK_OK(zrt_host_alloc(d, ZRT_MEM_OPTIMIZER, 1 << 20, "a", &a));
    CHECK_OK(zrt_host_alloc(d, ZRT_MEM_OPTIMIZER, 1 << 20, "b", &b));
    const char *w = zrt_device_warnings(d);
    CHECK_MSG(strstr(w, "RLIMIT_MEMLOCK is 64 KiB") && strstr(w, "pageable"), "warnings: '%s'", w);
    CHECK_MSG(strchr(w, '\n') == strrchr(w, '\n'), "the warning is said more than once: '%s'", w);
    CHECK(zrt_device_mem(d)->current[ZRT_MEM_HOST][ZRT_MEM_OPTIMIZER] == 2 << 20);
    memset(a, 1, 1 << 20); /* usable */
    printf("over the lock limit: %s", w);
    zrt_device_destroy(d);
    return CHECK_DONE();
}

int main(void)
{
    zrt_device *d = make_device(ZRT_DEVICE_CPU, false);
    CHECK(strcmp(zrt_device_name(d), "cpu") == 0 && zrt_device_kind_of(d) == ZRT_DEVICE_CPU && !zrt_device_check_mode(d));
    test_accounting(d);
    check_stream_free_counted(d);
    zrt_device_destroy(d);
    d = make_device(ZRT_DEVICE_CPU, true);
    test_accounting(d);
    check_stream_free_counted(d);
    zrt_device_destroy(d);
    test_poison();
#ifdef UNDER_SANITIZER /* the sanitizers' runtimes intercept mlock and make it a no-op that succeeds */
    printf("accounting (device and host apart), side table, stream-ordered free, poison (the lock-limit case: "
           "not under a sanitizer)\n");
    return CHECK_DONE();
#endif
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int rc = memlock_child();
        fflush(stdout);
        _exit(rc);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the RLIMIT_MEMLOCK case failed (status 0x%x)", status);
    printf("accounting (device and host apart), side table, stream-ordered free, poison\n");
    return CHECK_DONE();
}
