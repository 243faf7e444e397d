#!/usr/bin/env bash
# test_resume_history.sh: a resumed run keeps the history it continues and
# says what it loaded. zero3.yaml (2 ranks, MLP, ZeRO 3), checkpoints every
# 10 steps:
#  - resumed with --resume_from DIR/step_0000020 and the same --metrics file:
#    rows 1-20 kept byte for byte, 21-40 appended once each, and rows 21-30
#    equal the first run's (the resume is exact); its first lines name the
#    step, world size and stage the checkpoint was saved with;
#  - resumed on 1 rank: says the world size and the global batch change,
#    and reads on from the samples the 2-rank run had used (samples_seen,
#    kept by the checkpoint: not step x the new batch, which would repeat);
#  - resumed at its last step: says there is nothing to train (not "loss
#    0.0000 -> 0.0000");
#  - `zrt train` alone prints the batch it really trains (1 rank), not the
#    config's 2-rank batch;
#  - init_from says what it loaded.
set -u
ZRT=$(realpath "${ZRT_BIN:-build/bin/zrt}")
SRC=$(realpath "${ZRT_SRC:-.}")
cd "$TMPDIR" || exit 1
cp "$SRC/configs/zero3.yaml" "$SRC/configs/zero3.zrt.yaml" .
printf 'checkpoint_dir: %s/ck\ncheckpoint_interval: 10\n' "$TMPDIR" >>zero3.zrt.yaml
fail=0
bad() { echo "FAIL: $*"; fail=1; }
has() { grep -qF -- "$2" "$1" || { bad "$1 lacks: $2"; sed 's/^/    /' "$1" | head -12; }; }
launch() { timeout 60 "$ZRT" launch --config zero3.yaml --file_store "$@"; }

launch --steps 30 --metrics first.jsonl >run1.out 2>&1 || bad "first run: $(tail -2 run1.out)"
cp first.jsonl m.jsonl
launch --steps 40 --metrics m.jsonl --resume_from ck/step_0000020 >run2.out 2>&1 || bad "resume: $(tail -2 run2.out)"
has run2.out "resuming from ck/step_0000020: step 20, saved by 2 ranks at ZeRO stage 3 (fp32)"
has run2.out "metrics m.jsonl: kept steps 1-20, left out 10 rows after the checkpoint"
python3 - first.jsonl m.jsonl <<'PY' || fail=1
import json, sys
first = open(sys.argv[1]).read().splitlines()
resumed = open(sys.argv[2]).read().splitlines()
steps = [json.loads(l)["step"] for l in resumed]
assert steps == list(range(1, 41)), steps
assert resumed[:20] == first[:20], "rows 1-20 changed"
loss = lambda rows: [json.loads(l)["loss"] for l in rows]
assert loss(resumed[20:30]) == loss(first[20:30]), (loss(resumed[20:30]), loss(first[20:30]))
print("metrics: steps 1-40 once each, 1-20 kept, 21-30 as the uninterrupted run's")
PY
launch --steps 50 --num_processes 1 --metrics m.jsonl >run3.out 2>&1 || bad "1 rank: $(tail -2 run3.out)"
has run3.out "saved by 2 ranks at ZeRO stage 3"
has run3.out "the world size changes from 2 to 1 ranks"
has run3.out "the global batch changes from 64 to 32 samples per step"
python3 - m.jsonl <<'PY' || fail=1
import json, sys
rows = {r["step"]: r for r in map(json.loads, open(sys.argv[1]))}
seen = [rows[s]["samples_seen"] for s in range(38, 51)]
want = [s * 64 for s in range(38, 41)] + [40 * 64 + (s - 40) * 32 for s in range(41, 51)]
assert seen == want, (seen, want)
print("samples_seen goes on across the resume at another world size: %d (step 40, 2 ranks) -> %d (step 41, 1 rank)"
      % (seen[2], seen[3]))
PY
launch --steps 50 >run4.out 2>&1 || bad "at the end: $(tail -2 run4.out)"
has run4.out "the checkpoint is at step 50 and the run has 50 steps: nothing to train"
has run4.out "done: nothing trained, the checkpoint was already at step 50 of 50"
grep -q "0.0000 -> 0.0000" run4.out && bad "run4 still prints loss 0 -> 0"
rm -rf ck
timeout 60 "$ZRT" train --config zero3.yaml --steps 2 >alone.out 2>&1 || bad "zrt train alone: $(tail -2 alone.out)"
has alone.out "batch 32 = 32 micro x 1 accumulation x 1 rank"
has alone.out "the config's batch of 64 is for 2 ranks"
launch --steps 10 >/dev/null 2>&1 && timeout 60 "$ZRT" shards consolidate ck "$TMPDIR/w.safetensors" >/dev/null 2>&1 ||
    bad "consolidate for init_from"
rm -rf ck
sed -i "s|^model: {\(.*\)}|model: {\1, init_from: $TMPDIR/w.safetensors}|" zero3.zrt.yaml
launch --steps 2 >run5.out 2>&1 || bad "init_from: $(tail -2 run5.out)"
has run5.out "initial weights from $TMPDIR/w.safetensors: all "
[ $fail = 0 ] && echo "resume keeps the metrics history and says what it loaded; init_from says what it read"
exit $fail
