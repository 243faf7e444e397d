#!/usr/bin/python3
"""grpc_client.py DESC ADDRESS TOKEN: a second, independent gRPC client
(Debian's python3-grpcio) against zrt's coordinator. Messages are built from
the descriptor set protoc-c writes (no generated Python code). Checks: Status
and Join with the token work; without it, or with a wrong one,
UNAUTHENTICATED; an unknown method UNIMPLEMENTED; bytes that are no message
INVALID_ARGUMENT, after which the coordinator still answers. Run by test_grpc_python.sh."""
import sys

import grpc
from google.protobuf import descriptor_pb2, message_factory

desc, address, token = sys.argv[1:4]
fds = descriptor_pb2.FileDescriptorSet()
fds.ParseFromString(open(desc, "rb").read())
classes = message_factory.GetMessages(fds.file)
M = {name.split(".")[-1]: cls for name, cls in classes.items()}
channel = grpc.insecure_channel(address)


def call(method, request, reply, metadata):
    stub = channel.unary_unary("/zrt.v1.Control/" + method, request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=M[reply].FromString)
    return stub(request, metadata=metadata, timeout=10)


def expect_code(code, method, request, reply, metadata):
    try:
        call(method, request, reply, metadata)
    except grpc.RpcError as e:
        assert e.code() == code, (method, e.code(), e.details())
        print("%s: %s (%s)" % (method, e.code().name, e.details()))
        return
    raise AssertionError("%s should have failed with %s" % (method, code))


good = [("x-zrt-token", token)]
status = call("Status", M["StatusRequest"](), "StatusReply", good)
assert status.state == "waiting" and status.expected_machines == 1, status
print("Status: state %s, %d machine expected" % (status.state, status.expected_machines))
expect_code(grpc.StatusCode.UNAUTHENTICATED, "Status", M["StatusRequest"](), "StatusReply", [])
expect_code(grpc.StatusCode.UNAUTHENTICATED, "Join", M["JoinRequest"](), "JoinReply", [("x-zrt-token", "wrong")])
expect_code(grpc.StatusCode.UNIMPLEMENTED, "Frobnicate", M["StatusRequest"](), "StatusReply", good)
# Join with a wrong config hash is refused by name; the coordinator's own hash is not needed to see that.
expect_code(grpc.StatusCode.FAILED_PRECONDITION, "Join", M["JoinRequest"](config_hash="nope", machine_rank=-1,
            local_ranks=1, host="python"), "JoinReply", good)
# Bytes that are no protobuf message at all: INVALID_ARGUMENT, and the coordinator goes on.
raw = channel.unary_unary("/zrt.v1.Control/KvSet", request_serializer=lambda b: b, response_deserializer=lambda b: b)
try:
    raw(b"\xff\xff\xff\xff\x0f", metadata=good, timeout=10)
    raise AssertionError("garbage was accepted")
except grpc.RpcError as e:
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (e.code(), e.details())
    print("KvSet with garbage bytes: %s (%s)" % (e.code().name, e.details()))
assert call("Status", M["StatusRequest"](), "StatusReply", good).state == "waiting"
print("python grpcio client: ok")
