/* coordinator_kv.c: the coordinator's key-value store (KvSet, KvGet, KvAdd)
 * and Barrier.
 *
 * Why in the coordinator: ranks exchange comm endpoints and NCCL's unique id
 * through it. Calls are answered, parked and expired through call.c. A KvGet of a missing key is parked -- answered by the KvSet that
 * sets it, or DEADLINE_EXCEEDED by the loop -- so nobody polls. Keys are
 * found by a linear scan: a job has a few keys per rank.
 */
#include "coordinator_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static kv_entry *kv_find(coordinator *co, const char *key)
{
    for (int i = 0; i < co->n_kv; i++)
        if (strcmp(co->kv[i].key, key) == 0) return &co->kv[i];
    return NULL;
}

static bool kv_key_ok(coordinator *co, call_ctx *c, const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || n > MAX_KEY_BYTES) {
        zrt_call_error(co, c, GRPC_STATUS_INVALID_ARGUMENT, "key of %zu bytes (1..%d allowed)", n, MAX_KEY_BYTES);
        return false;
    }
    return true;
}

static void reply_value(coordinator *co, call_ctx *c, const kv_entry *e)
{
    Zrt__V1__KvGetReply reply = ZRT__V1__KV_GET_REPLY__INIT;
    reply.value.data = e->value;
    reply.value.len = e->len;
    zrt_call_respond(co, c, GRPC_STATUS_OK, NULL, &reply.base);
}

static kv_entry *kv_put(coordinator *co, call_ctx *c, const char *key, const uint8_t *value, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);
    kv_entry *e = kv_find(co, key);
    if (!copy || (!e && co->n_kv == MAX_KEYS)) {
        free(copy);
        if (copy) zrt_call_error(co, c, GRPC_STATUS_RESOURCE_EXHAUSTED, "the store holds %d keys already", MAX_KEYS);
        else zrt_call_error(co, c, GRPC_STATUS_RESOURCE_EXHAUSTED, "the coordinator is out of memory");
        return NULL;
    }
    if (!e) {
        char *name = strdup(key);
        if (!name) {
            free(copy);
            zrt_call_error(co, c, GRPC_STATUS_RESOURCE_EXHAUSTED, "the coordinator is out of memory");
            return NULL;
        }
        e = &co->kv[co->n_kv++];
        *e = (kv_entry){.key = name};
    }
    free(e->value);
    memcpy(copy, value, len);
    e->value = copy;
    e->len = len;
    for (call_ctx **p = &co->parked_gets; *p;) { /* wake the waiters of this key */
        call_ctx *w = *p;
        if (strcmp(((Zrt__V1__KvGetRequest *)w->request)->key, key) == 0) {
            *p = w->next_parked;
            reply_value(co, w, e);
        } else {
            p = &w->next_parked;
        }
    }
    return e;
}

void zrt_coord_handle_kv(coordinator *co, call_ctx *c)
{
    if (c->method == M_KVSET) {
        Zrt__V1__KvSetRequest *req = (Zrt__V1__KvSetRequest *)c->request;
        if (!kv_key_ok(co, c, req->key)) return;
        if (req->value.len > MAX_VALUE_BYTES)
            return zrt_call_error(co, c, GRPC_STATUS_INVALID_ARGUMENT, "value of %zu bytes (at most %d)",
                                 req->value.len, MAX_VALUE_BYTES);
        if (!kv_put(co, c, req->key, req->value.data, req->value.len)) return;
        Zrt__V1__KvSetReply reply = ZRT__V1__KV_SET_REPLY__INIT;
        return zrt_call_respond(co, c, GRPC_STATUS_OK, NULL, &reply.base);
    }
    if (c->method == M_KVGET) {
        Zrt__V1__KvGetRequest *req = (Zrt__V1__KvGetRequest *)c->request;
        if (!kv_key_ok(co, c, req->key)) return;
        kv_entry *e = kv_find(co, req->key);
        if (e) return reply_value(co, c, e);
        return zrt_call_park(&co->parked_gets, c, req->timeout_ms > 0 ? (double)req->timeout_ms / 1000.0 : 0);
    }
    Zrt__V1__KvAddRequest *req = (Zrt__V1__KvAddRequest *)c->request;
    if (!kv_key_ok(co, c, req->key)) return;
    kv_entry *e = kv_find(co, req->key);
    int64_t value = 0;
    if (e && e->len > 0) {
        char text[32];
        snprintf(text, sizeof text, "%.*s", (int)(e->len < 31 ? e->len : 31), (const char *)e->value);
        value = strtoll(text, NULL, 10);
    }
    value += req->delta;
    char text[32];
    int n = snprintf(text, sizeof text, "%lld", (long long)value);
    if (!kv_put(co, c, req->key, (const uint8_t *)text, (size_t)n)) return;
    Zrt__V1__KvAddReply reply = ZRT__V1__KV_ADD_REPLY__INIT;
    reply.value = value;
    zrt_call_respond(co, c, GRPC_STATUS_OK, NULL, &reply.base);
}

void zrt_coord_handle_barrier(coordinator *co, call_ctx *c)
{
    Zrt__V1__BarrierRequest *req = (Zrt__V1__BarrierRequest *)c->request;
    if (req->count < 1 || strlen(req->name) >= sizeof co->barriers[0].name)
        return zrt_call_error(co, c, GRPC_STATUS_INVALID_ARGUMENT, "barrier: bad name or count %d", req->count);
    barrier *b = NULL;
    for (int i = 0; i < co->n_barriers && !b; i++)
        if (strcmp(co->barriers[i].name, req->name) == 0) b = &co->barriers[i];
    if (!b) {
        if (co->n_barriers == 64) return zrt_call_error(co, c, GRPC_STATUS_RESOURCE_EXHAUSTED, "too many barriers");
        b = &co->barriers[co->n_barriers++];
        *b = (barrier){.count = req->count};
        snprintf(b->name, sizeof b->name, "%s", req->name);
    }
    if (b->count != req->count)
        return zrt_call_error(co, c, GRPC_STATUS_INVALID_ARGUMENT, "barrier %s: count %d, others said %d", req->name,
                             req->count, b->count);
    zrt_call_park(&b->waiting, c, 1e9);
    if (++b->arrived < b->count) return;
    Zrt__V1__BarrierReply reply = ZRT__V1__BARRIER_REPLY__INIT;
    reply.arrived = b->arrived;
    while (b->waiting) {
        call_ctx *w = b->waiting;
        b->waiting = w->next_parked;
        zrt_call_respond(co, w, GRPC_STATUS_OK, NULL, &reply.base);
    }
    b->arrived = 0;
}

