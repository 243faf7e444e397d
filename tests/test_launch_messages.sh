#!/usr/bin/env bash
# test_launch_messages.sh: what `zrt launch` says when something is off
# (issue #24, item 7):
#  1. a busy main_process_port: "address in use", one line, no gRPC dump;
#  2. a rank killed by a signal is named with the signal ("was killed by
#     SIGKILL"), through the control plane and the file store;
#  3. a launch waiting for machines or for the coordinator says whom, every
#     few seconds, and a signal ends the wait at once;
#  4. a program without `--` is refused with a hint to add it;
#  5. --nproc_per_node is torchrun's (processes per machine).
set -u
ZRT=${ZRT_BIN:-build/bin/zrt}
SRC=${ZRT_SRC:-.}
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
D=$TMPDIR
export ZRT_JOB_TOKEN=messages-$$
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# 3. (first: it takes the longest) machine 0 alone waits for machine 1; machine 1 alone for its coordinator.
sed 's/^use_cpu: true/use_cpu: true\nzrt: {join_timeout_s: 30}/' "$SRC/configs/multinode_zero3.yaml" >"$D/multi.yaml"
W_START=$(date +%s)
timeout 9 "$ZRT" launch --config "$D/multi.yaml" --main_process_port "$(free_port)" --machine_rank 0 >"$D/w0.out" 2>&1 &
W0=$!
timeout 9 "$ZRT" launch --config "$D/multi.yaml" --main_process_port "$(free_port)" --machine_rank 1 >"$D/w1.out" 2>&1 &
W1=$!

# 1. A port that is taken.
python3 -c 'import socket, time; s=socket.socket(); s.bind(("0.0.0.0", 0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(30)' \
    >"$D/busy.port" &
BUSY=$!
for _ in $(seq 50); do [ -s "$D/busy.port" ] && break; sleep 0.1; done
timeout 20 "$ZRT" launch --config "$SRC/configs/multinode_zero3.yaml" --main_process_port "$(cat "$D/busy.port")" \
    --machine_rank 0 >"$D/busy.out" 2>&1 && fail "a launch on a busy port ran"
kill $BUSY
grep -q "^zrt launch: coordinator: cannot listen on 0.0.0.0:[0-9]*: address in use" "$D/busy.out" && [ "$(wc -l <"$D/busy.out")" -le 2 ] && ! grep -qi "grpc\|UNKNOWN:" "$D/busy.out" \
    || { fail "busy port message"; cat "$D/busy.out"; }

# 2. A rank killed by SIGKILL, both ways.
ZRT_FAULT_KILL=1:3 timeout 60 "$ZRT" launch --config "$SRC/configs/zero2.yaml" --steps 1000 >"$D/k.out" 2>&1 && fail "killed rank: exit 0"
grep -q "rank 1 on machine 0 (.*) was killed by SIGKILL" "$D/k.out" || { fail "control plane: signal not named"; cat "$D/k.out"; }
ZRT_FAULT_KILL=1:3 timeout 60 "$ZRT" launch --config "$SRC/configs/zero2.yaml" --steps 1000 --file_store >"$D/k.out" 2>&1 \
    && fail "killed rank (file store): exit 0"
grep -q "rank 1 was killed by SIGKILL" "$D/k.out" || { fail "file store: signal not named"; cat "$D/k.out"; }

# 4. A program without `--`.
"$ZRT" launch --config "$SRC/configs/zero1.yaml" prog.py >"$D/dash.out" 2>&1; rc=$?
[ "$rc" = 2 ] && grep -q "unexpected argument 'prog.py': a program goes after \`--\` (add it)" "$D/dash.out" \
    || { fail "missing -- (rc $rc)"; cat "$D/dash.out"; }

# 5. --nproc_per_node 3 on one machine: a world of 3.
timeout 30 "$ZRT" launch --config "$SRC/configs/zero1.yaml" --nproc_per_node 3 -- /bin/sh -c 'echo "world=$WORLD_SIZE local=$LOCAL_WORLD_SIZE"' \
    >"$D/np.out" 2>&1 || { fail "--nproc_per_node"; cat "$D/np.out"; }
[ "$(grep -c "world=3 local=3" "$D/np.out")" = 3 ] || { fail "--nproc_per_node 3"; cat "$D/np.out"; }

wait $W0 $W1
took=$(( $(date +%s) - W_START ))
[ "$took" -le 12 ] || fail "waiting launches ended ${took} s after they started (SIGTERM at 9 s)"
grep -q "SIGTERM while waiting to join: no rank started" "$D/w0.out" || { fail "machine 0: SIGTERM while waiting"; cat "$D/w0.out"; }
grep -q "waiting for machine_rank(s) 1 (1 of 2 joined the coordinator at " "$D/w0.out" || { fail "machine 0 silent"; cat "$D/w0.out"; }
grep -q "waiting for the coordinator at 127.0.0.1:[0-9]* ([0-9]* s of join_timeout_s 30)" "$D/w1.out" \
    || { fail "machine 1 silent"; cat "$D/w1.out"; }

[ "$fails" = 0 ] || exit 1
echo "launch messages ok"
