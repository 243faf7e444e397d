#!/usr/bin/env bash
# test_cuda_launch.sh: `zrt launch` of configs/zero3_gpt.yaml with use_cpu:
# false and bf16 -- the main job on the GPU: 2 ranks on the CUDA GPT, ZeRO 3,
# the loss falls over 100 steps. With one GPU the two ranks share it
# (zrt.comm_backend: host, hybrid mode); with two or more, NCCL. Without a
# GPU the job says so in one line and trains on the cpu device: the test
# then skips with that line -- or fails, where the machine has a GPU
# (lib.sh's gpu_present) that the job could not use. Its limits (30 s + 55 s)
# fit tools/gpu-run's 90 s per test.
set -u
ZRT=${ZRT_BIN:-build/bin/zrt}
SRC=${ZRT_SRC:-.}
. "$SRC/tests/lib.sh"
sed -e 's/^use_cpu: true/use_cpu: false/' -e "s/^mixed_precision: 'no'.*/mixed_precision: bf16/" \
    "$SRC/configs/zero3_gpt.yaml" >"$TMPDIR/zero3_gpt.yaml"
cp "$SRC/configs/zero3_gpt.zrt.yaml" "$TMPDIR/zero3_gpt.zrt.yaml"
gpus=$(nvidia-smi --list-gpus 2>/dev/null | grep -c '^GPU' || true)
[ "${gpus:-0}" -ge 2 ] || echo "comm_backend: host" >>"$TMPDIR/zero3_gpt.zrt.yaml"
timeout 30 "$ZRT" launch --config "$TMPDIR/zero3_gpt.yaml" --steps 2 >"$TMPDIR/probe" 2>&1
if grep -q "training on the cpu device" "$TMPDIR/probe"; then
    why=$(grep -m1 "training on the cpu device" "$TMPDIR/probe" | sed 's/^\[rank [0-9]*\] //')
    if where=$(gpu_present); then
        echo "FAIL: this machine has a GPU ($where), but the job fell back to the cpu device: $why"
        exit 1
    fi
    echo "$why"
    exit 77
fi
fail=0
if ! timeout 55 "$ZRT" launch --config "$TMPDIR/zero3_gpt.yaml" --steps 100 --metrics "$TMPDIR/m.jsonl" \
    >"$TMPDIR/out" 2>&1; then
    echo "FAIL: the GPU job failed"; cat "$TMPDIR/out"; exit 1
fi
grep -q "ZeRO stage 3, 2 ranks, bf16" "$TMPDIR/out" || { echo "FAIL: header"; cat "$TMPDIR/out"; fail=1; }
grep -q "cuda" "$TMPDIR/out" || { echo "FAIL: the job does not say it runs on cuda"; head -5 "$TMPDIR/out"; fail=1; }
comm=$([ "${gpus:-0}" -ge 2 ] && echo NCCL || echo "hybrid: 2 ranks on one GPU")
python3 - "$TMPDIR/m.jsonl" "$comm" <<'PY' || fail=1
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 100, len(rows)
first = sum(r["loss"] for r in rows[:10]) / 10
last = sum(r["loss"] for r in rows[-10:]) / 10
assert last < first - 0.5, (first, last)
print("zero3_gpt.yaml on the GPU (%s): loss %.3f -> %.3f over 100 steps, %.0f tokens/s"
      % (sys.argv[2], first, last, rows[-1]["tokens_per_s"]))
PY
exit $fail
