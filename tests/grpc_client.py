#!/usr/bin/python3
"""grpc_client.py GEN_DIR ADDRESS TOKEN: a second, independent gRPC client
(Debian's python3-grpcio) against zrt's coordinator, through the stubs
grpc_tools generates from control/proto/zrt.proto (GEN_DIR). Checks: every
method of `service Control` exists on the server (without the token each is
UNAUTHENTICATED, never UNIMPLEMENTED); Status and Join with the token work;
with a wrong one UNAUTHENTICATED; an unknown method UNIMPLEMENTED; bytes that
are no message INVALID_ARGUMENT, after which the coordinator still answers.
Run by test_grpc_python.sh."""
import sys

gen, address, token = sys.argv[1:4]
sys.path.insert(0, gen)
import grpc
import zrt_pb2 as pb
import zrt_pb2_grpc as pb_grpc

channel = grpc.insecure_channel(address)
stub = pb_grpc.ControlStub(channel)
good = [("x-zrt-token", token)]


def expect_code(code, call, request, metadata):
    try:
        call(request, metadata=metadata, timeout=10)
    except grpc.RpcError as e:
        assert e.code() == code, (call, e.code(), e.details())
        return e
    raise AssertionError("%s should have failed with %s" % (call, code))


methods = pb.DESCRIPTOR.services_by_name["Control"].methods
for m in methods:
    request = getattr(pb, m.input_type.name)()
    expect_code(grpc.StatusCode.UNAUTHENTICATED, getattr(stub, m.name), request, [])
print("service Control: all %d methods served (%s)" % (len(methods), ", ".join(m.name for m in methods)))
status = stub.Status(pb.StatusRequest(), metadata=good, timeout=10)
assert status.state == "waiting" and status.expected_machines == 1, status
print("Status: state %s, %d machine expected" % (status.state, status.expected_machines))
expect_code(grpc.StatusCode.UNAUTHENTICATED, stub.Join, pb.JoinRequest(), [("x-zrt-token", "wrong")])
unknown = channel.unary_unary("/zrt.v1.Control/Frobnicate", request_serializer=lambda m: m.SerializeToString(),
                              response_deserializer=pb.StatusReply.FromString)
expect_code(grpc.StatusCode.UNIMPLEMENTED, unknown, pb.StatusRequest(), good)
# Join with a wrong config hash is refused by name; the coordinator's own hash is not needed to see that.
e = expect_code(grpc.StatusCode.FAILED_PRECONDITION, stub.Join,
                pb.JoinRequest(config_hash="nope", machine_rank=-1, local_ranks=1, host="python"), good)
print("Join with another config: %s (%s)" % (e.code().name, e.details()))
# Bytes that are no protobuf message at all: INVALID_ARGUMENT, and the coordinator goes on.
raw = channel.unary_unary("/zrt.v1.Control/KvSet", request_serializer=lambda b: b, response_deserializer=lambda b: b)
e = expect_code(grpc.StatusCode.INVALID_ARGUMENT, raw, b"\xff\xff\xff\xff\x0f", good)
print("KvSet with garbage bytes: %s (%s)" % (e.code().name, e.details()))
assert stub.Status(pb.StatusRequest(), metadata=good, timeout=10).state == "waiting"
print("python grpcio client (generated stubs): ok")
