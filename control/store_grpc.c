/* store_grpc.c: the zrt_store backend whose keys live in the coordinator
 * (KvSet / KvGet / KvAdd), for ranks started by an agent; and the Status
 * query behind `zrt status`.
 *
 * Why: ranks exchange their comm endpoints (and NCCL's unique id) through the
 * control plane instead of a shared directory. KvGet blocks in the coordinator
 * until the key is set or the deadline passes -- no polling here either.
 * Keys are prefixed with the scope (job/generation).
 */
#include "rpc.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    zrt_rpc_client client;
    char scope[256];
} grpc_store;

#define SCOPED(s, key, buf) (snprintf(buf, sizeof buf, "%s/%s", (s)->scope, key), buf)

static zrt_status g_set(void *state, const char *key, const void *value, size_t len)
{
    grpc_store *s = state;
    char k[800];
    Zrt__V1__KvSetRequest req = ZRT__V1__KV_SET_REQUEST__INIT;
    req.key = SCOPED(s, key, k);
    req.value.data = (uint8_t *)value;
    req.value.len = len;
    ProtobufCMessage *reply = NULL;
    ZRT_CHECK(zrt_rpc_call(&s->client, "KvSet", &req.base, &zrt__v1__kv_set_reply__descriptor, 30, true, &reply, NULL));
    protobuf_c_message_free_unpacked(reply, NULL);
    return ZRT_OK;
}

static zrt_status g_get(void *state, const char *key, double timeout_s, void **value, size_t *len)
{
    grpc_store *s = state;
    char k[800];
    Zrt__V1__KvGetRequest req = ZRT__V1__KV_GET_REQUEST__INIT;
    req.key = SCOPED(s, key, k);
    req.timeout_ms = (int64_t)(timeout_s * 1000);
    ProtobufCMessage *reply = NULL;
    grpc_status_code code = GRPC_STATUS_OK;
    zrt_status status = zrt_rpc_call(&s->client, "KvGet", &req.base, &zrt__v1__kv_get_reply__descriptor,
                                     timeout_s + 5, true, &reply, &code);
    if (code == GRPC_STATUS_DEADLINE_EXCEEDED)
        return zrt_set_error(ZRT_ERR_TIMEOUT, "store: key '%s' did not appear within %.1f s", key, timeout_s);
    ZRT_CHECK(status);
    Zrt__V1__KvGetReply *r = (Zrt__V1__KvGetReply *)reply;
    *value = malloc(r->value.len + 1);
    if (!*value) {
        protobuf_c_message_free_unpacked(reply, NULL);
        return zrt_set_error(ZRT_ERR_NOMEM, "store: out of memory");
    }
    memcpy(*value, r->value.data, r->value.len);
    ((char *)*value)[r->value.len] = '\0';
    *len = r->value.len;
    protobuf_c_message_free_unpacked(reply, NULL);
    return ZRT_OK;
}

static zrt_status g_add(void *state, const char *key, int64_t delta, int64_t *result)
{
    grpc_store *s = state;
    char k[800];
    Zrt__V1__KvAddRequest req = ZRT__V1__KV_ADD_REQUEST__INIT;
    req.key = SCOPED(s, key, k);
    req.delta = delta;
    ProtobufCMessage *reply = NULL;
    ZRT_CHECK(zrt_rpc_call(&s->client, "KvAdd", &req.base, &zrt__v1__kv_add_reply__descriptor, 30, true, &reply, NULL));
    *result = ((Zrt__V1__KvAddReply *)reply)->value;
    protobuf_c_message_free_unpacked(reply, NULL);
    return ZRT_OK;
}

static zrt_status g_delete(void *state, const char *key)
{
    return g_set(state, key, "", 0); /* the coordinator's store forgets nothing within a job */
}

static void g_destroy(void *state)
{
    grpc_store *s = state;
    zrt_rpc_client_close(&s->client);
    free(s);
}

static const zrt_store_ops grpc_ops = {g_set, g_get, g_add, g_delete, g_destroy};

zrt_status zrt_store_grpc_create(const char *coordinator, const char *token, const char *scope, const zrt_config *tls,
                                 zrt_store **out)
{
    if (!coordinator || !token || !scope || !out) return zrt_set_error(ZRT_ERR_INVALID, "store: NULL argument");
    grpc_store *s = calloc(1, sizeof *s);
    if (!s) return zrt_set_error(ZRT_ERR_NOMEM, "store: out of memory");
    snprintf(s->scope, sizeof s->scope, "%s", scope);
    zrt_status status = zrt_rpc_client_open(&s->client, coordinator, token, tls);
    if (status != ZRT_OK) {
        g_destroy(s);
        return status;
    }
    return zrt_store_create(&grpc_ops, s, out);
}

zrt_status zrt_control_status(const char *coordinator, const char *token, const zrt_config *tls, double timeout_s,
                              char **json)
{
    zrt_rpc_client c;
    ZRT_CHECK(zrt_rpc_client_open(&c, coordinator, token, tls));
    Zrt__V1__StatusRequest req = ZRT__V1__STATUS_REQUEST__INIT;
    ProtobufCMessage *reply = NULL;
    zrt_status status =
        zrt_rpc_call(&c, "Status", &req.base, &zrt__v1__status_reply__descriptor, timeout_s, false, &reply, NULL);
    if (status == ZRT_OK) {
        Zrt__V1__StatusReply *r = (Zrt__V1__StatusReply *)reply;
        cJSON *root = cJSON_CreateObject(), *machines = cJSON_CreateArray();
        cJSON_AddNumberToObject(root, "generation", (double)r->generation);
        cJSON_AddStringToObject(root, "state", r->state);
        cJSON_AddStringToObject(root, "reason", r->reason);
        cJSON_AddNumberToObject(root, "expected_machines", r->expected_machines);
        cJSON_AddNumberToObject(root, "world_size", r->world_size);
        cJSON_AddNumberToObject(root, "restarts_used", r->restarts_used);
        cJSON_AddNumberToObject(root, "max_restarts", r->max_restarts);
        for (size_t i = 0; i < r->n_machines; i++) {
            Zrt__V1__MachineStatus *m = r->machines[i];
            cJSON *row = cJSON_CreateObject();
            cJSON_AddNumberToObject(row, "machine_rank", m->machine_rank);
            cJSON_AddStringToObject(row, "host", m->host);
            cJSON_AddStringToObject(row, "state", m->state);
            cJSON_AddNumberToObject(row, "heartbeat_age_s", m->heartbeat_age_s);
            cJSON_AddNumberToObject(row, "local_ranks", m->local_ranks);
            cJSON_AddNumberToObject(row, "step", (double)m->step);
            cJSON_AddNumberToObject(row, "loss", m->loss);
            cJSON_AddItemToArray(machines, row);
        }
        cJSON_AddItemToObject(root, "machines", machines);
        *json = cJSON_Print(root);
        cJSON_Delete(root);
        protobuf_c_message_free_unpacked(reply, NULL);
    }
    zrt_rpc_client_close(&c);
    return status;
}

zrt_status zrt_control_shutdown(const char *coordinator, const char *token, const zrt_config *tls, const char *reason,
                                double timeout_s)
{
    if (!coordinator || !token) return zrt_set_error(ZRT_ERR_INVALID, "zrt_control_shutdown: NULL argument");
    zrt_rpc_client c;
    ZRT_CHECK(zrt_rpc_client_open(&c, coordinator, token, tls));
    Zrt__V1__ShutdownRequest req = ZRT__V1__SHUTDOWN_REQUEST__INIT;
    req.reason = (char *)(reason ? reason : "");
    ProtobufCMessage *reply = NULL;
    zrt_status status =
        zrt_rpc_call(&c, "Shutdown", &req.base, &zrt__v1__shutdown_reply__descriptor, timeout_s, false, &reply, NULL);
    if (status == ZRT_OK) protobuf_c_message_free_unpacked(reply, NULL);
    zrt_rpc_client_close(&c);
    return status;
}
