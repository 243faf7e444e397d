#!/usr/bin/env bash
# test_control_tls.sh: the control plane over mutual TLS (zrt.tls with
# require_client_cert): a job trains through zrt launch (coordinator, agent
# and ranks all on TLS with client certificates); zrt status with the config
# answers; a plaintext client and a TLS client without a certificate are
# refused. Certificates are made here with openssl (a CA, and one certificate
# for 127.0.0.1 used by both sides). Skips without openssl.
set -u
ZRT=${ZRT_BIN:-build/bin/zrt}
. "${ZRT_SRC:-.}/tests/lib.sh"
command -v openssl >/dev/null || { echo "openssl is not installed"; exit 77; }
D=$TMPDIR
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$D/ca.key" -out "$D/ca.pem" -days 2 -subj "/CN=zrt test CA" \
    >/dev/null 2>&1 || { echo "FAIL: make the CA"; exit 1; }
openssl req -newkey rsa:2048 -nodes -keyout "$D/node.key" -out "$D/node.csr" -subj "/CN=localhost" >/dev/null 2>&1
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >"$D/ext.cnf"
openssl x509 -req -in "$D/node.csr" -CA "$D/ca.pem" -CAkey "$D/ca.key" -CAcreateserial -out "$D/node.pem" -days 2 \
    -extfile "$D/ext.cnf" >/dev/null 2>&1 || { echo "FAIL: sign the certificate"; exit 1; }
cat >"$D/tls.yaml" <<YAML
distributed_type: DEEPSPEED
num_processes: 2
use_cpu: true
deepspeed_config: {zero_stage: 2}
zrt:
  model: {type: mlp, layers: 3, d_model: 32, hidden: 64, vocab: 8}
  micro_batch_size: 8
  steps: 20000
  heartbeat_interval_s: 0.3
  tls: {cert: $D/node.pem, key: $D/node.key, ca: $D/ca.pem, require_client_cert: true}
YAML
sed 's/steps: 20000/steps: 30/' "$D/tls.yaml" >"$D/short.yaml"

# A whole job over mutual TLS.
timeout 60 "$ZRT" launch --config "$D/short.yaml" >"$D/out" 2>&1 || { fail "job over TLS"; cat "$D/out"; }
grep -q "\[rank 0\] zrt train: done: 30 steps" "$D/out" || { fail "TLS job did not finish"; cat "$D/out"; }

# A standalone coordinator: who may talk to it.
export ZRT_JOB_TOKEN=tls-$$
sed 's/num_processes: 2/num_processes: 1/' "$D/tls.yaml" >"$D/one.yaml"
timeout 60 "$ZRT" coordinator --config "$D/one.yaml" --listen 127.0.0.1:0 >"$D/c.log" 2>&1 &
CPID=$!
ADDR=$(address_in "$D/c.log" "listening on")
[ -n "$ADDR" ] || { fail "TLS coordinator did not start"; cat "$D/c.log"; }
"$ZRT" status "$ADDR" --config "$D/one.yaml" >"$D/out" 2>&1 || { fail "status over mTLS"; cat "$D/out"; }
grep -q "job: waiting" "$D/out" || { fail "status output"; cat "$D/out"; }
"$ZRT" status "$ADDR" >"$D/out" 2>&1 && fail "a plaintext client was served"
grep -v "^tls:" "$D/one.yaml" | sed '/^  tls:/d' >"$D/plain.yaml"
printf '  tls: {ca: %s}\n' "$D/ca.pem" >>"$D/plain.yaml"   # TLS, but no client certificate
"$ZRT" status "$ADDR" --config "$D/plain.yaml" >"$D/out" 2>&1 && fail "a client without a certificate was served"
kill $CPID 2>/dev/null
[ "$fails" = 0 ] || exit 1
echo "mutual TLS ok"
