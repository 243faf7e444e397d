/* test_device_memory.c: the device's memory accounting and side table:
 *  - every allocation is charged to its category and place (device bytes
 *    and pinned host bytes apart), peaks hold the maximum, recharge moves
 *    bytes between categories, free gives them back (also a stream-ordered
 *    free, at once in the books, later in fact);
 *  - the size lives in the side table: an allocation's bytes are exactly the
 *    caller's (all of them usable), an interior pointer finds its block;
 *  - in check mode new memory holds NaN bytes (0xff);
 *  - bad frees and recharges are refused; destroy frees what is left.
 */
#include "device_common.h"

#include <math.h>

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

int main(void)
{
    zrt_device *d = make_device(ZRT_DEVICE_CPU, false);
    CHECK(strcmp(zrt_device_name(d), "cpu") == 0 && zrt_device_kind_of(d) == ZRT_DEVICE_CPU && !zrt_device_check_mode(d));
    test_accounting(d);
    zrt_device_destroy(d);
    d = make_device(ZRT_DEVICE_CPU, true);
    test_accounting(d);
    zrt_device_destroy(d);
    test_poison();
    printf("accounting (device and host apart), side table, stream-ordered free, poison\n");
    return CHECK_DONE();
}
