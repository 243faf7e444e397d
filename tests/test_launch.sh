#!/usr/bin/env bash
# test_launch.sh: zrt launch and zrt train end to end: the main job trains
# (loss falls) with a metrics file; accelerate-style overrides (dashes or
# underscores) reach every rank; a rank that fails stops the job (non-zero
# exit naming the rank, no hang); `-- PROGRAM` gets the torchrun environment;
# two machines (two `zrt launch` on this host) rendezvous through the
# coordinator that machine 0's launch runs; --file_store still works.
set -u
ZRT=${ZRT_BIN:-build/bin/zrt}
SRC=${ZRT_SRC:-.}
. "$SRC/tests/lib.sh"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# 1. The main job, shortened: exit 0, one metrics line per step, loss falls.
if ! timeout 120 "$ZRT" launch --config "$SRC/configs/zero3.yaml" --steps 150 --metrics "$TMPDIR/m.jsonl" >"$TMPDIR/out" 2>&1; then
    fail "main job"; cat "$TMPDIR/out"
fi
grep -q "model states per rank: [0-9.]* [KMG]*i*B ([0-9]* bytes) on" "$TMPDIR/out" || fail "no model-state line"
python3 - "$TMPDIR/m.jsonl" <<'PY' || fail "metrics file"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 150, len(rows)
keys = {"step", "loss", "lr", "grad_norm", "loss_scale", "skipped", "tokens_per_s", "model_state_bytes"}
assert all(keys <= r.keys() for r in rows), rows[0]
first = sum(r["loss"] for r in rows[:10]) / 10
last = sum(r["loss"] for r in rows[-10:]) / 10
assert last < 0.7 * first, (first, last)
print("loss %.3f -> %.3f over 150 steps" % (first, last))
PY

# 1b. The transformer config trains too; and on a text file (byte tokens).
timeout 120 "$ZRT" launch --config "$SRC/configs/zero3_gpt.yaml" --steps 60 --metrics "$TMPDIR/g.jsonl" >"$TMPDIR/out" 2>&1 \
    || { fail "transformer run"; cat "$TMPDIR/out"; }
grep -q "zrt train: gpt 2 layers" "$TMPDIR/out" || fail "transformer header"
python3 -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1])]; assert len(r)==60 and r[-1]["loss"] < r[0]["loss"] - 0.5, (r[0], r[-1])' "$TMPDIR/g.jsonl" \
    || fail "transformer loss does not fall"
cat "$SRC"/README.md "$SRC"/docs/*.md >"$TMPDIR/corpus.txt"
cat >"$TMPDIR/text.yaml" <<YAML
distributed_type: DEEPSPEED
num_processes: 2
use_cpu: true
deepspeed_config: {zero_stage: 2}
zrt:
  model: {type: gpt, layers: 2, d_model: 64, heads: 4, seq_len: 32, vocab: 256}
  data: {type: text, path: $TMPDIR/corpus.txt}
  micro_batch_size: 8
  steps: 80
YAML
timeout 120 "$ZRT" launch --config "$TMPDIR/text.yaml" --metrics "$TMPDIR/t.jsonl" >"$TMPDIR/out" 2>&1 || { fail "text run"; cat "$TMPDIR/out"; }
python3 -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1])]; assert len(r)==80 and r[-1]["loss"] < 0.8 * r[0]["loss"], (r[0], r[-1])' "$TMPDIR/t.jsonl" \
    || fail "text loss does not fall"
sed -i 's/vocab: 256/vocab: 64/' "$TMPDIR/text.yaml"
timeout 60 "$ZRT" train --config "$TMPDIR/text.yaml" --num_processes 1 >"$TMPDIR/out" 2>&1 && fail "text with vocab 64 must fail"
grep -q "vocab must be at least 256" "$TMPDIR/out" || { fail "vocab message"; cat "$TMPDIR/out"; }

# 2. Overrides, with underscores and with dashes.
timeout 120 "$ZRT" launch --config_file "$SRC/configs/zero2.yaml" --zero_stage 1 --num-processes 4 \
    --mixed_precision bf16 --gradient_accumulation_steps 2 --steps 3 >"$TMPDIR/out" 2>&1 || { fail "overrides run"; cat "$TMPDIR/out"; }
grep -q "ZeRO stage 1, 4 ranks, bf16; batch 256 = 32 micro x 2 accumulation x 4 ranks" "$TMPDIR/out" || { fail "overrides not applied"; cat "$TMPDIR/out"; }

# 3. A failing rank stops the job quickly and is named.
start=$(date +%s)
ZRT_FAULT_EXIT=1:5 timeout 60 "$ZRT" launch --config "$SRC/configs/zero2.yaml" --steps 1000 >"$TMPDIR/out" 2>&1
rc=$?
took=$(( $(date +%s) - start ))
[ "$rc" != 0 ] && [ "$rc" != 124 ] || fail "launch exited $rc after a rank failed"
grep -q "rank 1 on machine 0 (.*) exited with status 3" "$TMPDIR/out" || { fail "failed rank not named"; cat "$TMPDIR/out"; }
# The same through the file store (no control plane).
ZRT_FAULT_EXIT=1:5 timeout 60 "$ZRT" launch --config "$SRC/configs/zero2.yaml" --steps 1000 --file_store >"$TMPDIR/out" 2>&1 \
    && fail "file-store launch exited 0 after a rank failed"
grep -q "rank 1 exited with status 3" "$TMPDIR/out" || { fail "file store: failed rank not named"; cat "$TMPDIR/out"; }
timeout 60 "$ZRT" launch --config "$SRC/configs/zero3.yaml" --steps 20 --file_store >"$TMPDIR/out" 2>&1 || { fail "file-store run"; cat "$TMPDIR/out"; }
[ "$took" -lt 20 ] || fail "stopping took ${took}s"

# 4. Any program, with the torchrun environment.
timeout 30 "$ZRT" launch --config "$SRC/configs/zero1.yaml" -- /bin/sh -c \
    'echo "env RANK=$RANK LOCAL_RANK=$LOCAL_RANK WORLD_SIZE=$WORLD_SIZE LOCAL_WORLD_SIZE=$LOCAL_WORLD_SIZE GROUP_RANK=$GROUP_RANK MASTER_ADDR=$MASTER_ADDR MASTER_PORT=$MASTER_PORT"' \
    >"$TMPDIR/out" 2>&1 || fail "program launch"
for r in 0 1; do
    grep -q "env RANK=$r LOCAL_RANK=$r WORLD_SIZE=2 LOCAL_WORLD_SIZE=2 GROUP_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=29500" "$TMPDIR/out" \
        || { fail "rank $r environment"; cat "$TMPDIR/out"; }
done
timeout 30 "$ZRT" launch --config "$SRC/configs/zero1.yaml" -- /bin/false >"$TMPDIR/out" 2>&1 && fail "a failing program must fail the launch"

# 4b. Two machines on this host: the same command with --machine_rank 0 and 1.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ZRT_JOB_TOKEN=two-machines-$$ timeout 60 "$ZRT" launch --config "$SRC/configs/multinode_zero3.yaml" --main_process_port "$PORT" --machine_rank 1 --steps 20 \
    >"$TMPDIR/m1.out" 2>&1 &
M1=$!
ZRT_JOB_TOKEN=two-machines-$$ timeout 60 "$ZRT" launch --config "$SRC/configs/multinode_zero3.yaml" --main_process_port "$PORT" --machine_rank 0 --steps 20 \
    >"$TMPDIR/m0.out" 2>&1 || { fail "machine 0 of 2"; cat "$TMPDIR/m0.out"; }
wait $M1 || { fail "machine 1 of 2"; cat "$TMPDIR/m1.out"; }
grep -q "\[rank 0\] zrt train: done: 20 steps" "$TMPDIR/m0.out" || { fail "2 machines: rank 0"; cat "$TMPDIR/m0.out"; }
grep -q "ZeRO stage 3, 4 ranks" "$TMPDIR/m0.out" || fail "2 machines: world of 4"

# 4c. max_restarts: rank 1 is killed (SIGKILL) at step 12 (generation 0 only); every rank restarts in
# generation 1, resumes from the step-10 checkpoint and ends with the uninterrupted run's loss.
cat >"$TMPDIR/restart.yaml" <<YAML
distributed_type: DEEPSPEED
num_processes: 2
use_cpu: true
deepspeed_config: {zero_stage: 2}
zrt:
  model: {type: gpt, layers: 2, d_model: 32, heads: 4, seq_len: 16, vocab: 64}
  micro_batch_size: 4
  steps: 20
  checkpoint_interval: 5
  checkpoint_dir: CKPT
  max_restarts: 1
  heartbeat_interval_s: 0.3
YAML
sed "s|CKPT|$TMPDIR/ck-restart|" "$TMPDIR/restart.yaml" >"$TMPDIR/r1.yaml"
sed "s|CKPT|$TMPDIR/ck-clean|" "$TMPDIR/restart.yaml" >"$TMPDIR/r2.yaml"
ZRT_FAULT_KILL=1:12 timeout 60 "$ZRT" launch --config "$TMPDIR/r1.yaml" --metrics "$TMPDIR/r1.jsonl" >"$TMPDIR/out" 2>&1 \
    || { fail "restarted job failed"; cat "$TMPDIR/out"; }
grep -q "restart 1 of 1 (generation 1)" "$TMPDIR/out" || { fail "no restart"; cat "$TMPDIR/out"; }
grep -q "resumed from $TMPDIR/ck-restart at step 10" "$TMPDIR/out" || { fail "no resume"; cat "$TMPDIR/out"; }
timeout 60 "$ZRT" launch --config "$TMPDIR/r2.yaml" --metrics "$TMPDIR/r2.jsonl" >"$TMPDIR/out" 2>&1 || fail "clean run"
[ "$(tail -1 "$TMPDIR/r1.jsonl" | cut -d, -f1-2)" = "$(tail -1 "$TMPDIR/r2.jsonl" | cut -d, -f1-2)" ] \
    || fail "restarted final loss $(tail -1 "$TMPDIR/r1.jsonl") != $(tail -1 "$TMPDIR/r2.jsonl")"

# 4d. A one-machine launch leaves its (random) token where only this user can read it, and
# `zrt status ADDRESS` on this machine finds it; the file goes when the job ends.
mkdir -p "$TMPDIR/run" "$TMPDIR/elsewhere"
env -u ZRT_JOB_TOKEN XDG_RUNTIME_DIR="$TMPDIR/run" timeout 60 "$ZRT" launch --config "$SRC/configs/zero2.yaml" --steps 100000 \
    >"$TMPDIR/long.out" 2>&1 &
LPID=$!
ADDR=$(address_in "$TMPDIR/long.out" "zrt status")
TOKEN_FILE="$TMPDIR/run/zrt/$(echo "$ADDR" | tr ':' '_').token"
[ -n "$ADDR" ] && [ "$(stat -c %a "$TOKEN_FILE" 2>/dev/null)" = 600 ] && [ "$(stat -c %a "$TMPDIR/run/zrt")" = 700 ] \
    || { fail "no private token file for zrt status"; cat "$TMPDIR/long.out"; ls -la "$TMPDIR/run/zrt"; }
sleep 1
env -u ZRT_JOB_TOKEN XDG_RUNTIME_DIR="$TMPDIR/run" "$ZRT" status "$ADDR" >"$TMPDIR/st.out" 2>&1 \
    || { fail "zrt status of a one-machine launch"; cat "$TMPDIR/st.out"; }
grep -q "running" "$TMPDIR/st.out" || { fail "zrt status table"; cat "$TMPDIR/st.out"; }
env -u ZRT_JOB_TOKEN XDG_RUNTIME_DIR="$TMPDIR/elsewhere" "$ZRT" status "$ADDR" >"$TMPDIR/st.out" 2>&1 \
    && fail "zrt status without the token file must fail"
grep -q "no job token" "$TMPDIR/st.out" || { fail "no-token message"; cat "$TMPDIR/st.out"; }
kill -TERM $LPID; wait $LPID
[ ! -e "$TOKEN_FILE" ] || fail "token file left after the job: $TOKEN_FILE"

# 5. Usage errors.
"$ZRT" launch --steps 3 >"$TMPDIR/out" 2>&1; [ $? = 2 ] || fail "missing --config is not a usage error"
"$ZRT" launch --config "$SRC/configs/zero1.yaml" --zero_stage 7 >"$TMPDIR/out" 2>&1; [ $? = 2 ] || fail "bad --zero_stage"
grep -q "bad value '7' for --zero-stage" "$TMPDIR/out" || { fail "bad value message"; cat "$TMPDIR/out"; }
"$ZRT" train --config "$SRC/configs/zero1.yaml" --bogus >"$TMPDIR/out" 2>&1; [ $? = 2 ] || fail "train: unknown flag"
"$ZRT" launch --config "$SRC/configs/multinode_zero3.yaml" --file_store >"$TMPDIR/out" 2>&1; [ $? = 1 ] || fail "file store with 2 machines"
grep -q "one machine only" "$TMPDIR/out" || fail "file store multinode message"
[ "$fails" = 0 ] || exit 1
echo "launch ok"
