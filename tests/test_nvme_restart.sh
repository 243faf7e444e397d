#!/usr/bin/env bash
# test_nvme_restart.sh: kill -9 of a rank in the middle of an NVMe-offload
# step (ZRT_FAULT_SWAP=kill_write: SIGKILL as the swapper queues a write of
# the optimizer state, the pipeline half done), under `zrt launch` with
# max_restarts 1: every rank restarts, the crashed run's swap files are
# removed at start (and said so), the job resumes from the latest checkpoint
# and ends with the loss of a run that was never killed; no swap file is
# left after either run.
set -u
ZRT=${ZRT_BIN:-build/bin/zrt}
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

mkdir -p "$TMPDIR/nvme-a" "$TMPDIR/nvme-b"
cat >"$TMPDIR/base.yaml" <<YAML
distributed_type: DEEPSPEED
num_processes: 2
use_cpu: true
mixed_precision: bf16
deepspeed_config:
  zero_stage: 3
  offload_optimizer_device: nvme
  offload_optimizer_nvme_path: [$TMPDIR/nvme-a, $TMPDIR/nvme-b]
zrt:
  model: {type: gpt, layers: 2, d_model: 32, heads: 4, seq_len: 16, vocab: 64}
  micro_batch_size: 4
  steps: 20
  checkpoint_interval: 5
  checkpoint_dir: CKPT
  max_restarts: 1
  heartbeat_interval_s: 0.3
YAML
sed "s|CKPT|$TMPDIR/ck-killed|" "$TMPDIR/base.yaml" >"$TMPDIR/killed.yaml"
sed "s|CKPT|$TMPDIR/ck-clean|" "$TMPDIR/base.yaml" >"$TMPDIR/clean.yaml"

# Rank 1's 60th optimizer-state write: in step 8 or later (a few writes per step), after the step-5 checkpoint.
ZRT_FAULT_SWAP=kill_write:60:optimizer-rank1 timeout 90 "$ZRT" launch --config "$TMPDIR/killed.yaml" \
    --metrics "$TMPDIR/killed.jsonl" >"$TMPDIR/out" 2>&1 || { fail "killed job did not recover"; cat "$TMPDIR/out"; }
grep -q "restart 1 of 1 (generation 1)" "$TMPDIR/out" || { fail "no restart"; cat "$TMPDIR/out"; }
grep -q "resumed from $TMPDIR/ck-killed at step [1-9]" "$TMPDIR/out" || { fail "no resume from a checkpoint"; cat "$TMPDIR/out"; }
grep -q "removed the swap files of a run that is gone" "$TMPDIR/out" || { fail "stale swap files not reported"; cat "$TMPDIR/out"; }
grep "resumed from\|removed\|zrt-swap" "$TMPDIR/out" | sed 's/^/  /'
timeout 90 "$ZRT" launch --config "$TMPDIR/clean.yaml" --metrics "$TMPDIR/clean.jsonl" >"$TMPDIR/out" 2>&1 \
    || { fail "clean run"; cat "$TMPDIR/out"; }
[ "$(tail -1 "$TMPDIR/killed.jsonl" | cut -d, -f1-2)" = "$(tail -1 "$TMPDIR/clean.jsonl" | cut -d, -f1-2)" ] \
    || fail "final loss after the kill $(tail -1 "$TMPDIR/killed.jsonl") != $(tail -1 "$TMPDIR/clean.jsonl")"
left=$(ls "$TMPDIR/nvme-a" "$TMPDIR/nvme-b" | grep -c zrt-swap)
[ "$left" = 0 ] || fail "$left swap files left"
[ "$fails" = 0 ] || exit 1
echo "nvme restart ok: $(tail -1 "$TMPDIR/killed.jsonl" | cut -d, -f1-2)"
