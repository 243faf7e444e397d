/* rpc.c: protobuf-c <-> gRPC byte buffers and the blocking unary client call
 * (rpc.h). One pluck completion queue per client: calls are serial. */
#include "rpc.h"
#include "zrt/internal/knobs.h"

#include <grpc/grpc_security.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static void init_grpc(void) { grpc_init(); }
void zrt_rpc_init(void) { pthread_once(&init_once, init_grpc); }

grpc_byte_buffer *zrt_rpc_pack(const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    grpc_slice s = grpc_slice_malloc(n);
    protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(s));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

ProtobufCMessage *zrt_rpc_unpack(const ProtobufCMessageDescriptor *d, grpc_byte_buffer *bb)
{
    grpc_byte_buffer_reader r;
    if (!bb || !grpc_byte_buffer_reader_init(&r, bb)) return NULL;
    grpc_slice all = grpc_byte_buffer_reader_readall(&r);
    grpc_byte_buffer_reader_destroy(&r);
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
    grpc_slice_unref(all);
    return m;
}

gpr_timespec zrt_rpc_deadline(double seconds)
{
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis((int64_t)(seconds * 1000), GPR_TIMESPAN));
}

/* A PEM file whole, NUL-terminated (malloc'ed); NULL with an error. */
static char *read_pem(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        zrt_set_error(ZRT_ERR_IO, "tls: cannot open %s", path);
        return NULL;
    }
    char *text = malloc(1 << 20);
    size_t n = text ? fread(text, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (!text || n == 0) {
        free(text);
        zrt_set_error(ZRT_ERR_IO, "tls: %s is empty or unreadable", path);
        return NULL;
    }
    text[n] = '\0';
    return text;
}

zrt_status zrt_rpc_server_credentials(const zrt_config *cfg, grpc_server_credentials **out)
{
    const zrt_job_config *j = &cfg->job;
    if (!j->tls_cert[0]) {
        *out = grpc_insecure_server_credentials_create();
        return ZRT_OK;
    }
    char *cert = read_pem(j->tls_cert), *key = cert ? read_pem(j->tls_key) : NULL;
    char *ca = key && j->tls_ca[0] ? read_pem(j->tls_ca) : NULL;
    zrt_status status = cert && key && (ca || !j->tls_ca[0]) ? ZRT_OK : ZRT_ERR_IO;
    if (status == ZRT_OK) {
        grpc_ssl_pem_key_cert_pair pair = {key, cert};
        *out = grpc_ssl_server_credentials_create_ex(
            ca, &pair, 1,
            j->tls_require_client_cert ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                       : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
            NULL);
        if (!*out) status = zrt_set_error(ZRT_ERR_CONFIG, "tls: the certificate or key is not usable");
    }
    free(cert);
    free(key);
    free(ca);
    return status;
}

static zrt_status channel_credentials(const zrt_config *tls, grpc_channel_credentials **out)
{
    if (!tls || !tls->job.tls_ca[0]) {
        *out = grpc_insecure_credentials_create();
        return ZRT_OK;
    }
    const zrt_job_config *j = &tls->job;
    char *ca = read_pem(j->tls_ca), *cert = NULL, *key = NULL;
    if (ca && j->tls_cert[0]) {
        cert = read_pem(j->tls_cert);
        key = cert ? read_pem(j->tls_key) : NULL;
    }
    zrt_status status = ca && (!j->tls_cert[0] || key) ? ZRT_OK : ZRT_ERR_IO;
    if (status == ZRT_OK) {
        grpc_ssl_pem_key_cert_pair pair = {key, cert};
        *out = grpc_ssl_credentials_create_ex(ca, key ? &pair : NULL, NULL, NULL);
    }
    free(ca);
    free(cert);
    free(key);
    return status;
}

zrt_status zrt_rpc_client_open(zrt_rpc_client *c, const char *target, const char *token, const zrt_config *tls)
{
    zrt_rpc_init();
    memset(c, 0, sizeof *c);
    if (strlen(token) >= sizeof c->token) return zrt_set_error(ZRT_ERR_INVALID, "control: token too long");
    snprintf(c->token, sizeof c->token, "%s", token);
    grpc_arg args[] = {
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, .value.integer = ZRT_RPC_MAX_MESSAGE},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, .value.integer = 100},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, .value.integer = 1000},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, .value.integer = 100},
    };
    grpc_channel_args channel_args = {sizeof args / sizeof args[0], args};
    grpc_channel_credentials *creds = NULL;
    ZRT_CHECK(channel_credentials(tls, &creds));
    c->channel = grpc_channel_create(target, creds, &channel_args);
    grpc_channel_credentials_release(creds);
    c->cq = grpc_completion_queue_create_for_pluck(NULL);
    if (!c->channel || !c->cq) return zrt_set_error(ZRT_ERR_IO, "control: cannot create a channel to %s", target);
    return ZRT_OK;
}

void zrt_rpc_client_close(zrt_rpc_client *c)
{
    if (c->channel) grpc_channel_destroy(c->channel);
    if (c->cq) {
        grpc_completion_queue_shutdown(c->cq);
        while (grpc_completion_queue_pluck(c->cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
               GRPC_QUEUE_SHUTDOWN) {}
        grpc_completion_queue_destroy(c->cq);
    }
    memset(c, 0, sizeof *c);
}

/* Until the call completes, asking c->waiting meanwhile whether to go on. */
static void await_call(zrt_rpc_client *c, grpc_call *call)
{
    bool (*waiting)(void *, double) = c->waiting, cancelled = false;
    c->waiting = NULL;
    double start = zrt_now();
    gpr_timespec forever = gpr_inf_future(GPR_CLOCK_REALTIME);
    while (grpc_completion_queue_pluck(c->cq, call, waiting ? zrt_rpc_deadline(0.1) : forever, NULL).type !=
           GRPC_OP_COMPLETE)
        if (!cancelled && !waiting(c->waiting_arg, zrt_now() - start)) cancelled = grpc_call_cancel(call, NULL) == GRPC_CALL_OK;
    c->waiting = waiting;
}

zrt_status zrt_rpc_call(zrt_rpc_client *c, const char *method, const ProtobufCMessage *request,
                        const ProtobufCMessageDescriptor *reply_type, double timeout_s, bool wait_for_ready,
                        ProtobufCMessage **reply, grpc_status_code *code)
{
    char path[128];
    snprintf(path, sizeof path, "/zrt.v1.Control/%s", method);
    grpc_call *call = grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, c->cq,
                                               grpc_slice_from_static_string(path), NULL, zrt_rpc_deadline(timeout_s),
                                               NULL);
    grpc_metadata md = {.key = grpc_slice_from_static_string(ZRT_TOKEN_METADATA),
                        .value = grpc_slice_from_copied_string(c->token)};
    grpc_byte_buffer *send = zrt_rpc_pack(request), *recv = NULL;
    grpc_metadata_array initial, trailing;
    grpc_metadata_array_init(&initial);
    grpc_metadata_array_init(&trailing);
    grpc_status_code status = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].flags = wait_for_ready ? GRPC_INITIAL_METADATA_WAIT_FOR_READY : 0;
    ops[0].data.send_initial_metadata.count = 1;
    ops[0].data.send_initial_metadata.metadata = &md;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trailing;
    ops[5].data.recv_status_on_client.status = &status;
    ops[5].data.recv_status_on_client.status_details = &details;
    zrt_status result = ZRT_OK;
    if (grpc_call_start_batch(call, ops, 6, call, NULL) != GRPC_CALL_OK) {
        result = zrt_set_error(ZRT_ERR_INTERNAL, "control: %s: cannot start the call", method);
    } else {
        await_call(c, call);
        if (status != GRPC_STATUS_OK) {
            char *text = grpc_slice_to_c_string(details);
            result = zrt_set_error(status == GRPC_STATUS_DEADLINE_EXCEEDED ? ZRT_ERR_TIMEOUT
                                   : status == GRPC_STATUS_UNAVAILABLE    ? ZRT_ERR_IO
                                                                          : ZRT_ERR_PEER,
                                   "control: %s: %s (gRPC status %d)", method, text, (int)status);
            gpr_free(text);
        } else if (!(*reply = zrt_rpc_unpack(reply_type, recv))) {
            result = zrt_set_error(ZRT_ERR_PEER, "control: %s: malformed reply", method);
        }
    }
    if (code) *code = status;
    grpc_slice_unref(md.value);
    grpc_slice_unref(details);
    grpc_byte_buffer_destroy(send);
    if (recv) grpc_byte_buffer_destroy(recv);
    grpc_metadata_array_destroy(&initial);
    grpc_metadata_array_destroy(&trailing);
    grpc_call_unref(call);
    return result;
}

zrt_status zrt_control_token(const char *token_file, char *out, size_t size)
{
    if (token_file && token_file[0]) {
        FILE *f = fopen(token_file, "r");
        if (!f) return zrt_set_error(ZRT_ERR_IO, "token file %s: cannot open", token_file);
        bool ok = fgets(out, (int)size, f) != NULL;
        fclose(f);
        out[strcspn(out, "\r\n")] = '\0';
        if (!ok || !out[0]) return zrt_set_error(ZRT_ERR_CONFIG, "token file %s is empty", token_file);
        return ZRT_OK;
    }
    const char *env = zrt_knob_set(ZRT_KNOB_JOB_TOKEN);
    if (!env) return zrt_set_error(ZRT_ERR_CONFIG, "no job token: set zrt.token_file or ZRT_JOB_TOKEN");
    if (strlen(env) >= size) return zrt_set_error(ZRT_ERR_CONFIG, "ZRT_JOB_TOKEN is too long");
    snprintf(out, size, "%s", env);
    return ZRT_OK;
}

zrt_status zrt_control_config_identity(const zrt_config *cfg, char *hash, size_t hash_size, char *keys,
                                       size_t keys_size)
{
    zrt_config *c = malloc(sizeof *c);
    if (!c) return zrt_set_error(ZRT_ERR_NOMEM, "control: out of memory");
    *c = *cfg;
    c->machine_rank = 0;
    c->source_path[0] = c->deepspeed_config_file[0] = c->warnings[0] = c->zrt_config_path[0] = '\0';
    char *json = zrt_config_to_json(c);
    free(c);
    if (!json) return ZRT_ERR_NOMEM;
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const char *p = json; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    snprintf(hash, hash_size, "%016llx", (unsigned long long)h);
    size_t used = 0;
    keys[0] = '\0';
    for (char *save = NULL, *line = strtok_r(json, "\n", &save); line && used + 1 < keys_size;
         line = strtok_r(NULL, "\n", &save)) {
        while (*line == '\t' || *line == ' ') line++;
        if (*line == '"') used += (size_t)snprintf(keys + used, keys_size - used, "%s\n", line);
    }
    free(json);
    return ZRT_OK;
}
