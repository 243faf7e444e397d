#!/usr/bin/env bash
# test_grpc_python.sh: Python's grpcio (Debian python3-grpcio), an independent
# gRPC implementation, calls the coordinator with messages built from the
# descriptor set protoc-c writes: Status and Join with and without the token,
# an unknown method. Skips when python3-grpcio is not installed.
set -u
ZRT=${ZRT_BIN:-build/bin/zrt}
SRC=${ZRT_SRC:-.}
/usr/bin/python3 -c 'import grpc, google.protobuf' 2>/dev/null || {
    echo "python3-grpcio is not installed for /usr/bin/python3 (tools/bootstrap installs it)"; exit 77; }
protoc-c --proto_path="$SRC/control/proto" --descriptor_set_out="$TMPDIR/zrt.desc" "$SRC/control/proto/zrt.proto" \
    || { echo "FAIL: protoc-c --descriptor_set_out"; exit 1; }
printf 'num_machines: 1\nnum_processes: 1\nzrt: {join_timeout_s: 60}\n' >"$TMPDIR/one.yaml"
export ZRT_JOB_TOKEN=py-$$
timeout 60 "$ZRT" coordinator --config "$TMPDIR/one.yaml" --listen 127.0.0.1:0 >"$TMPDIR/c.log" 2>&1 &
CPID=$!
ADDR=""
for _ in $(seq 100); do
    ADDR=$(grep -o "listening on [0-9.:]*" "$TMPDIR/c.log" | cut -d' ' -f3)
    [ -n "$ADDR" ] && break
    sleep 0.1
done
[ -n "$ADDR" ] || { echo "FAIL: coordinator did not start"; cat "$TMPDIR/c.log"; exit 1; }
/usr/bin/python3 "$SRC/tests/grpc_client.py" "$TMPDIR/zrt.desc" "$ADDR" "$ZRT_JOB_TOKEN"
rc=$?
kill $CPID 2>/dev/null
exit $rc
