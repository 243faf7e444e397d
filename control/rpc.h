/* rpc.h: the small layer over the gRPC core C API that the coordinator, the
 * agent and the store share: protobuf-c <-> byte buffers, and a blocking
 * unary client call with the job token and a deadline.
 * Invariant: grpc_init() is called once per process by zrt_rpc_init().
 */
#ifndef ZRT_RPC_H
#define ZRT_RPC_H

#include "control.h"
#include "zrt.pb-c.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#define ZRT_RPC_MAX_MESSAGE (4 << 20)

void zrt_rpc_init(void);
grpc_byte_buffer *zrt_rpc_pack(const ProtobufCMessage *m);
/* NULL when bb is NULL or malformed. */
ProtobufCMessage *zrt_rpc_unpack(const ProtobufCMessageDescriptor *d, grpc_byte_buffer *bb);
gpr_timespec zrt_rpc_deadline(double seconds);

typedef struct {
    grpc_channel *channel;
    grpc_completion_queue *cq; /* pluck: one blocking call at a time */
    char token[256];
    /* While a call waits, every 0.1 s (NULL: wait quietly): false cancels it.
     * Calls it makes on this client wait quietly. */
    bool (*waiting)(void *arg, double waited_s);
    void *waiting_arg;
} zrt_rpc_client;

/* tls: the config whose zrt.tls.{ca, cert, key} secure the channel (ca set:
 * TLS, verifying the coordinator; cert + key: our client certificate for
 * mTLS). NULL or no ca: plaintext. */
zrt_status zrt_rpc_client_open(zrt_rpc_client *c, const char *target, const char *token, const zrt_config *tls);
/* The coordinator's credentials: TLS with zrt.tls.cert/key (and client
 * certificates checked against zrt.tls.ca when require_client_cert), or
 * plaintext when no cert is configured. */
zrt_status zrt_rpc_server_credentials(const zrt_config *cfg, grpc_server_credentials **out);
void zrt_rpc_client_close(zrt_rpc_client *c);
/* Calls /zrt.v1.Control/METHOD. On ZRT_OK *reply is the unpacked reply
 * (free with protobuf_c_message_free_unpacked). wait_for_ready: wait for the
 * coordinator to come up until the deadline instead of failing at once.
 * Errors carry the gRPC status and details. */
zrt_status zrt_rpc_call(zrt_rpc_client *c, const char *method, const ProtobufCMessage *request,
                        const ProtobufCMessageDescriptor *reply_type, double timeout_s, bool wait_for_ready,
                        ProtobufCMessage **reply, grpc_status_code *code);

/* What must be the same on every machine: a hash of the resolved config
 * (less machine_rank and file names) and its "key": value lines. */
zrt_status zrt_control_config_identity(const zrt_config *cfg, char *hash, size_t hash_size, char *keys,
                                       size_t keys_size);

#endif
