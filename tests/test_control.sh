#!/usr/bin/env bash
# test_control.sh: the control plane on 127.0.0.1 -- a coordinator and agents,
# each agent with its own ranks:
#  1. static machine_ranks: the job trains through the coordinator's store,
#     rank output is prefixed, everything exits 0; `zrt status` answers;
#  2. machine_ranks assigned in join order;
#  3. a duplicate machine_rank, a wrong token and a different config are
#     refused, each with a message that says why;
#  4. a rank that fails aborts the whole job (every process exits non-zero);
#  5. kill -9 of an agent: the other agent's ranks are gone within the
#     heartbeat timeout + grace, and so are the dead agent's own ranks;
#  6. kill -9 of the coordinator: agents and ranks exit.
# Every wait is bounded; the runner kills the whole process group at the end.
set -u
ZRT=${ZRT_BIN:-build/bin/zrt}
. "${ZRT_SRC:-.}/tests/lib.sh"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
export ZRT_JOB_TOKEN=test-token-$$
D=$TMPDIR

cat >"$D/job.yaml" <<'YAML'
distributed_type: DEEPSPEED
num_machines: 2
num_processes: 4
main_process_ip: 127.0.0.1
main_process_port: 0
use_cpu: true
deepspeed_config: {zero_stage: 3}
zrt:
  model: {type: mlp, layers: 3, d_model: 32, hidden: 64, vocab: 8}
  micro_batch_size: 8
  steps: 30
  heartbeat_interval_s: 0.3
  heartbeat_timeout_s: 2
  join_timeout_s: 15
YAML
sed 's/steps: 30/steps: 100000/' "$D/job.yaml" >"$D/long.yaml"

# ranks_gone PATTERN: true once no `zrt train` with PATTERN runs, polling for
# up to heartbeat timeout (2 s) + the agents' grace (5 s).
ranks_gone() {
    for _ in $(seq 70); do
        pgrep -f "train --config $1" >/dev/null || return 0
        sleep 0.1
    done
    return 1
}

# start_coordinator CFG NAME: runs it in the background; sets ADDR and CPID.
start_coordinator() {
    timeout 90 "$ZRT" coordinator --config "$1" --listen 127.0.0.1:0 >"$D/$2.log" 2>&1 &
    CPID=$!
    ADDR=$(address_in "$D/$2.log" "listening on")
    [ -n "$ADDR" ] && return 0
    fail "$2: the coordinator did not start"; cat "$D/$2.log"
}

# 1. static ranks, a full job.
start_coordinator "$D/job.yaml" c1
timeout 60 "$ZRT" agent --coordinator "$ADDR" --config "$D/job.yaml" --machine-rank 1 >"$D/a1.log" 2>&1 &
A1=$!
timeout 60 "$ZRT" agent --coordinator "$ADDR" --config "$D/job.yaml" --machine-rank 0 >"$D/a0.log" 2>&1 || { fail "agent 0"; cat "$D/a0.log"; }
wait $A1 || { fail "agent 1"; cat "$D/a1.log"; }
wait $CPID || { fail "coordinator of a good job"; cat "$D/c1.log"; }
grep -q "\[rank 0\] zrt train: done: 30 steps" "$D/a0.log" || { fail "rank 0 did not finish"; cat "$D/a0.log"; }
grep -q "world size\|4 ranks" "$D/a0.log" || fail "world of 4 ranks"
grep -q "the job finished" "$D/c1.log" || fail "coordinator summary"

# 2. assigned ranks, and zrt status while it runs.
start_coordinator "$D/long.yaml" c2
timeout 60 "$ZRT" agent --coordinator "$ADDR" --config "$D/long.yaml" >"$D/b0.log" 2>&1 &
B0=$!
timeout 60 "$ZRT" agent --coordinator "$ADDR" --config "$D/long.yaml" >"$D/b1.log" 2>&1 &
B1=$!
sleep 2
"$ZRT" status "$ADDR" >"$D/status.txt" 2>&1 || { fail "zrt status"; cat "$D/status.txt"; }
grep -q "job: running, generation 0, 2 machines expected, world size 4, restarts 0 of 0" "$D/status.txt" || { fail "status header"; cat "$D/status.txt"; }
[ "$(grep -c ' running ' "$D/status.txt")" = 2 ] || { fail "status rows"; cat "$D/status.txt"; }
# step and loss come from each machine's local rank 0, through its agent.
awk '$3 == "running" && $6 > 0 && $7 > 0 {n++} END {exit n == 2 ? 0 : 1}' "$D/status.txt" \
    || { fail "status step/loss"; cat "$D/status.txt"; }
"$ZRT" status "$ADDR" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert sorted(m["machine_rank"] for m in d["machines"]) == [0, 1], d' \
    || fail "status --json"
ZRT_JOB_TOKEN=wrong "$ZRT" status "$ADDR" >"$D/out" 2>&1 && fail "status with a wrong token"
grep -q "wrong job token" "$D/out" || { fail "wrong-token message"; cat "$D/out"; }

# 3. refusals: a third agent (the job is full), wrong token, other config.
timeout 20 "$ZRT" agent --coordinator "$ADDR" --config "$D/long.yaml" --machine-rank 0 >"$D/out" 2>&1 && fail "a join after rendezvous"
grep -q "no more joins" "$D/out" || { fail "late join message"; cat "$D/out"; }
ZRT_JOB_TOKEN=wrong timeout 20 "$ZRT" agent --coordinator "$ADDR" --config "$D/long.yaml" >"$D/out" 2>&1 && fail "wrong token accepted"
grep -q "wrong job token" "$D/out" || { fail "agent wrong-token message"; cat "$D/out"; }

# 5. kill -9 of an agent (machine 1; not its `timeout` wrapper): everything ends within timeout + grace.
# The agent whose ranks have GROUP_RANK=1 (ranks get it from their agent).
VICTIM=""
for p in $(pgrep -f "zrt agent --coordinator $ADDR"); do
    child=$(pgrep -P "$p" | head -1)
    [ -n "$child" ] && tr '\0' '\n' <"/proc/$child/environ" 2>/dev/null | grep -qx "GROUP_RANK=1" && VICTIM=$p
done
[ -n "$VICTIM" ] || fail "could not find machine 1's agent"
kill -9 $VICTIM
start=$(date +%s)
wait $B0; rc0=$?
wait $B1; rc1=$?
wait $CPID; rcc=$?
took=$(( $(date +%s) - start ))
[ "$rc0" != 0 ] && [ "$rc1" != 0 ] || fail "an agent exited 0 after its peer died ($rc0 $rc1)"
[ "$rcc" != 0 ] || fail "the coordinator exited 0 after a machine died"
grep -q "machine 1 (.*) sent no heartbeat" "$D/c2.log" || { fail "dead machine not named"; cat "$D/c2.log"; }
[ "$took" -le 12 ] || fail "took ${took}s to stop after kill -9 of an agent"
ranks_gone "$D/long.yaml" || fail "ranks left running after the agent died"

# duplicate rank and config mismatch, on a fresh coordinator.
start_coordinator "$D/job.yaml" c3
timeout 30 "$ZRT" agent --coordinator "$ADDR" --config "$D/job.yaml" --machine-rank 0 >"$D/d0.log" 2>&1 &
sleep 0.5
timeout 10 "$ZRT" agent --coordinator "$ADDR" --config "$D/job.yaml" --machine-rank 0 >"$D/out" 2>&1 && fail "duplicate machine_rank accepted"
grep -q "machine_rank 0 is already taken" "$D/out" || { fail "duplicate message"; cat "$D/out"; }
timeout 10 "$ZRT" agent --coordinator "$ADDR" --config "$D/long.yaml" --machine-rank 1 >"$D/out" 2>&1 && fail "other config accepted"
grep -q "config mismatch.*steps" "$D/out" || { fail "mismatch message"; cat "$D/out"; }

# 6. kill -9 of the coordinator: the waiting agent gives up, no ranks run.
kill -9 $CPID
wait 2>/dev/null
grep -q "zrt agent:" "$D/d0.log" || { fail "agent did not report the lost coordinator"; cat "$D/d0.log"; }

# 6b. kill -9 of the coordinator while ranks train: agents stop them within timeout + grace.
start_coordinator "$D/long.yaml" c5
timeout 60 "$ZRT" agent --coordinator "$ADDR" --config "$D/long.yaml" >"$D/f0.log" 2>&1 &
F0=$!
timeout 60 "$ZRT" agent --coordinator "$ADDR" --config "$D/long.yaml" >"$D/f1.log" 2>&1 &
F1=$!
sleep 2
kill -9 $(pgrep -P $CPID) $CPID 2>/dev/null
start=$(date +%s)
wait $F0; rf0=$?
wait $F1; rf1=$?
took=$(( $(date +%s) - start ))
[ "$rf0" = 1 ] && [ "$rf1" = 1 ] || fail "agents exited $rf0 $rf1 after the coordinator died"
[ "$took" -le 10 ] || fail "agents took ${took}s to stop after the coordinator died"
grep -q "did not answer for" "$D/f0.log" || { fail "agent reason"; cat "$D/f0.log"; }
ranks_gone "$D/long.yaml" || fail "ranks left running after the coordinator died"

# 3b. rendezvous timeout: one of two machines never comes; the error names it.
sed 's/join_timeout_s: 15/join_timeout_s: 2/' "$D/job.yaml" >"$D/lonely.yaml"
start_coordinator "$D/lonely.yaml" c6
timeout 30 "$ZRT" agent --coordinator "$ADDR" --config "$D/lonely.yaml" --machine-rank 0 >"$D/out" 2>&1 && fail "a lonely agent exited 0"
grep -q "machine_rank(s) 1 never joined" "$D/out" || { fail "missing machine not named"; cat "$D/out"; }
wait $CPID && fail "the coordinator of an incomplete rendezvous exited 0"

# 4. a failing rank aborts the job everywhere.
start_coordinator "$D/long.yaml" c4
ZRT_FAULT_EXIT=3:5 timeout 60 "$ZRT" agent --coordinator "$ADDR" --config "$D/long.yaml" --machine-rank 1 >"$D/e1.log" 2>&1 &
E1=$!
ZRT_FAULT_EXIT=3:5 timeout 60 "$ZRT" agent --coordinator "$ADDR" --config "$D/long.yaml" --machine-rank 0 >"$D/e0.log" 2>&1
rc0=$?
wait $E1; rc1=$?
wait $CPID; rcc=$?
[ "$rc0" != 0 ] && [ "$rc1" != 0 ] && [ "$rcc" != 0 ] || fail "a failed rank did not fail every process ($rc0 $rc1 $rcc)"
grep -q "rank 3 on machine 1 (.*) exited with status 3" "$D/c4.log" || { fail "failed rank not named"; cat "$D/c4.log"; }
grep -q "the job was aborted: rank" "$D/e0.log" || { fail "agent 0 reason"; cat "$D/e0.log"; }

[ "$fails" = 0 ] || exit 1
echo "control plane ok"
