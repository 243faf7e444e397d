#!/usr/bin/env bash
# test_netns.sh: two machines with their own addresses: network namespaces
# joined by a veth pair (10.223.0.1 and 10.223.0.2, inside this sandbox only),
# each with its own hostname (a UTS namespace), so ranks on different machines
# really talk over TCP. Machine 0 runs `zrt launch` (coordinator + agent),
# machine 1 `zrt launch --machine_rank 1`; world size 4 trains to the end.
# Then the link is cut mid-training: both machines stop, naming why.
# Skips where network namespaces cannot be created.
set -u
ZRT=$(readlink -f "${ZRT_BIN:-build/bin/zrt}")
SRC=$(readlink -f "${ZRT_SRC:-.}")
A=zrt-a-$$ B=zrt-b-$$
cleanup() { ip netns del "$A" 2>/dev/null; ip netns del "$B" 2>/dev/null; }
trap cleanup EXIT
if ! ip netns add "$A" 2>/dev/null || ! ip netns add "$B" 2>/dev/null; then
    echo "cannot create network namespaces here (needs CAP_SYS_ADMIN)"; exit 77
fi
command -v unshare >/dev/null || { echo "unshare is missing (util-linux)"; exit 77; }
ip link add veth-$$a type veth peer name veth-$$b || { echo "cannot create a veth pair"; exit 77; }
ip link set veth-$$a netns "$A"
ip link set veth-$$b netns "$B"
ip -n "$A" addr add 10.223.0.1/24 dev veth-$$a
ip -n "$B" addr add 10.223.0.2/24 dev veth-$$b
for ns in "$A" "$B"; do ip -n "$ns" link set lo up; done
ip -n "$A" link set veth-$$a up
ip -n "$B" link set veth-$$b up

cat >"$TMPDIR/net.yaml" <<'YAML'
distributed_type: DEEPSPEED
num_machines: 2
num_processes: 4
main_process_ip: 10.223.0.1
main_process_port: 29611   # inside a fresh network namespace: no other user of the port
use_cpu: true
deepspeed_config: {zero_stage: 3}
zrt:
  model: {type: mlp, layers: 3, d_model: 32, hidden: 64, vocab: 8}
  micro_batch_size: 8
  steps: 30
  heartbeat_interval_s: 0.5
YAML
export ZRT_JOB_TOKEN=netns-$$
run_in() { # run_in NS HOSTNAME CMD...
    local ns=$1 host=$2; shift 2
    ip netns exec "$ns" unshare --uts sh -c 'hostname "$0"; exec "$@"' "$host" "$@"
}
run_in "$B" machine-b timeout 60 "$ZRT" launch --config "$TMPDIR/net.yaml" --machine_rank 1 >"$TMPDIR/b.out" 2>&1 &
BPID=$!
run_in "$A" machine-a timeout 60 "$ZRT" launch --config "$TMPDIR/net.yaml" --machine_rank 0 >"$TMPDIR/a.out" 2>&1
rca=$?
wait $BPID; rcb=$?
fails=0
[ "$rca" = 0 ] || { echo "FAIL: machine 0 exited $rca"; cat "$TMPDIR/a.out"; fails=1; }
[ "$rcb" = 0 ] || { echo "FAIL: machine 1 exited $rcb"; cat "$TMPDIR/b.out"; fails=1; }
grep -q "\[rank 0\] zrt train: done: 30 steps" "$TMPDIR/a.out" || { echo "FAIL: training did not finish"; cat "$TMPDIR/a.out"; fails=1; }

# A cut network: machine 1's link goes down mid-training. Both sides stop
# (heartbeat timeout 2 s + 5 s grace) and exit non-zero; nothing hangs.
sed 's/steps: 30/steps: 1000000/; s/heartbeat_interval_s: 0.5/heartbeat_interval_s: 0.5\n  heartbeat_timeout_s: 2/' \
    "$TMPDIR/net.yaml" >"$TMPDIR/long.yaml"
run_in "$B" machine-b timeout 60 "$ZRT" launch --config "$TMPDIR/long.yaml" --machine_rank 1 >"$TMPDIR/b2.out" 2>&1 &
BPID=$!
run_in "$A" machine-a timeout 60 "$ZRT" launch --config "$TMPDIR/long.yaml" --machine_rank 0 >"$TMPDIR/a2.out" 2>&1 &
APID=$!
sleep 3
ip -n "$B" link set veth-$$b down
start=$(date +%s)
wait $APID; rca=$?
wait $BPID; rcb=$?
took=$(( $(date +%s) - start ))
[ "$rca" = 1 ] && [ "$rcb" = 1 ] || { echo "FAIL: after the cut: machine 0 exited $rca, machine 1 $rcb"; tail -3 "$TMPDIR/a2.out" "$TMPDIR/b2.out"; fails=1; }
[ "$took" -le 20 ] || { echo "FAIL: ${took}s to stop after the cut"; fails=1; }
grep -q "machine 1 (machine-b) sent no heartbeat" "$TMPDIR/a2.out" || { echo "FAIL: the cut machine is not named"; tail -3 "$TMPDIR/a2.out"; fails=1; }
grep -q "did not answer" "$TMPDIR/b2.out" || { echo "FAIL: machine 1 did not notice the lost coordinator"; tail -3 "$TMPDIR/b2.out"; fails=1; }
[ "$fails" = 0 ] || exit 1
echo "two machines in network namespaces: ok; a cut link stopped both in ${took}s"

