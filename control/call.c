/* call.c: a coordinator call's lifetime: its reference count (one per
 * outstanding batch, plus one while a handler holds it), the reply, the wait
 * lists of calls answered later, and the cleanup when a client gives up.
 *
 * Why apart from the handlers: every
 * handler -- Join, KvGet, Barrier -- parks and answers calls the same way;
 * keeping that here lets coordinator.c and coordinator_kv.c depend on this
 * file and not on each other. Invariants: a call is answered at most once;
 * a call in a wait list holds no extra reference (its RECV_CLOSE batch
 * does, so it lives until the client is gone); pending_replies counts reply
 * batches in flight, which the coordinator drains before it stops.
 */
#include "coordinator_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void zrt_call_unref(coordinator *co, call_ctx *c)
{
    if (--c->refs > 0) return;
    if (c->call) grpc_call_unref(c->call);
    grpc_metadata_array_destroy(&c->md);
    if (c->method < 0) grpc_call_details_destroy(&c->details);
    if (c->payload) grpc_byte_buffer_destroy(c->payload);
    if (c->reply) grpc_byte_buffer_destroy(c->reply);
    if (c->request) protobuf_c_message_free_unpacked(c->request, NULL);
    free(c);
    co->live_calls--;
}

static void on_reply_done(coordinator *co, call_ctx *c, bool ok)
{
    (void)ok;
    co->pending_replies--;
    zrt_call_unref(co, c);
}

void zrt_call_respond(coordinator *co, call_ctx *c, grpc_status_code status, const char *details,
                      const ProtobufCMessage *reply)
{
    if (c->replied) return;
    c->replied = true;
    if (!c->call) { /* zrt_coordinator_fuzz: no gRPC call; still pack the reply */
        if (reply) {
            uint8_t *buf = malloc(protobuf_c_message_get_packed_size(reply) + 1);
            if (buf) protobuf_c_message_pack(reply, buf);
            free(buf);
        }
        return;
    }
    grpc_op ops[3];
    memset(ops, 0, sizeof ops);
    size_t n = 0;
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (status == GRPC_STATUS_OK && reply) {
        c->reply = zrt_rpc_pack(reply);
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = c->reply;
    }
    grpc_slice text = grpc_slice_from_copied_string(details ? details : "");
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = status;
    ops[n++].data.send_status_from_server.status_details = &text;
    c->on_reply = (tag){on_reply_done, c};
    c->refs++;
    co->pending_replies++;
    if (grpc_call_start_batch(c->call, ops, n, &c->on_reply, NULL) != GRPC_CALL_OK) {
        c->refs--;
        co->pending_replies--;
    }
    grpc_slice_unref(text);
}

void zrt_call_error(coordinator *co, call_ctx *c, grpc_status_code status, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    zrt_call_respond(co, c, status, text, NULL);
}

void zrt_call_park(call_ctx **list, call_ctx *c, double timeout_s)
{
    double call_left = gpr_time_to_millis(gpr_time_sub(gpr_convert_clock_type(c->deadline, GPR_CLOCK_MONOTONIC),
                                                       gpr_now(GPR_CLOCK_MONOTONIC))) / 1000.0;
    c->expire = zrt_now() + fmin(timeout_s, call_left);
    c->next_parked = *list;
    *list = c;
}

bool zrt_call_unpark(call_ctx **list, call_ctx *c)
{
    for (call_ctx **p = list; *p; p = &(*p)->next_parked)
        if (*p == c) {
            *p = c->next_parked;
            return true;
        }
    return false;
}

void zrt_call_forget(coordinator *co, call_ctx *c)
{
    zrt_call_unpark(&co->parked_joins, c);
    zrt_call_unpark(&co->parked_gets, c);
    for (int i = 0; i < co->n_barriers; i++)
        if (zrt_call_unpark(&co->barriers[i].waiting, c)) co->barriers[i].arrived--;
}

void zrt_call_closed(coordinator *co, call_ctx *c, bool ok)
{
    (void)ok;
    if (c->cancelled) zrt_call_forget(co, c); /* the client gave up: forget it wherever it waits */
    zrt_call_unref(co, c);
}

void zrt_call_expire(coordinator *co, call_ctx **list, const char *what)
{
    double now = zrt_now();
    for (call_ctx **p = list; *p;) {
        call_ctx *c = *p;
        if (c->expire > now) {
            p = &c->next_parked;
            continue;
        }
        *p = c->next_parked;
        const char *key = c->method == M_KVGET ? ((Zrt__V1__KvGetRequest *)c->request)->key : "";
        zrt_call_error(co, c, GRPC_STATUS_DEADLINE_EXCEEDED, "%s%s%s did not happen before the deadline", what,
                       key[0] ? " of key " : "", key);
    }
}
