#!/usr/bin/env bash
# test_grpc_python.sh: Python's grpcio (Debian python3-grpcio), an independent
# gRPC implementation, calls the coordinator through stubs grpc_tools
# (python3-grpc-tools) generates from control/proto/zrt.proto: every method of
# service Control exists, Status and Join with and without the token, an
# unknown method, garbage bytes. Skips when grpcio or grpc_tools is missing.
set -u
ZRT=${ZRT_BIN:-build/bin/zrt}
SRC=${ZRT_SRC:-.}
. "$SRC/tests/lib.sh"
/usr/bin/python3 -c 'import grpc, google.protobuf, grpc_tools' 2>/dev/null || {
    echo "python3-grpcio or python3-grpc-tools is not installed for /usr/bin/python3 (tools/bootstrap installs them)"; exit 77; }
/usr/bin/python3 -m grpc_tools.protoc -I"$SRC/control/proto" --python_out="$TMPDIR" --grpc_python_out="$TMPDIR" \
    "$SRC/control/proto/zrt.proto" || { echo "FAIL: grpc_tools.protoc on zrt.proto"; exit 1; }
printf 'num_machines: 1\nnum_processes: 1\nzrt: {join_timeout_s: 60}\n' >"$TMPDIR/one.yaml"
export ZRT_JOB_TOKEN=py-$$
timeout 60 "$ZRT" coordinator --config "$TMPDIR/one.yaml" --listen 127.0.0.1:0 >"$TMPDIR/c.log" 2>&1 &
CPID=$!
ADDR=$(address_in "$TMPDIR/c.log" "listening on")
[ -n "$ADDR" ] || { echo "FAIL: coordinator did not start"; cat "$TMPDIR/c.log"; exit 1; }
/usr/bin/python3 "$SRC/tests/grpc_client.py" "$TMPDIR" "$ADDR" "$ZRT_JOB_TOKEN"
rc=$?
kill $CPID 2>/dev/null
exit $rc
