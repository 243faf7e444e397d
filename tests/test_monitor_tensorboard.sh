#!/usr/bin/env bash
# test_monitor_tensorboard.sh: TensorBoard's own reader (EventAccumulator)
# loads what `zrt train` writes with tensorboard {enabled: true}: every tag,
# one value per step equal to the metrics file's (as float32), and after a
# run resumed from step 10 of a 20-step run that was trained to the end,
# steps 1-20 once each (the resumed file's SessionLog START makes TensorBoard
# drop the first file's steps 11-20). Skipped, saying so, where TensorBoard
# cannot be imported (tools/bootstrap installs it from PyPI);
# test_monitor.sh checks the files with its own reader regardless.
set -u
ZRT=$(realpath "${ZRT_BIN:-build/bin/zrt}")
PY=/usr/bin/python3
cd "$TMPDIR" || exit 1
if ! why=$($PY -c "from tensorboard.backend.event_processing.event_accumulator import EventAccumulator" 2>&1); then
    echo "skipped: TensorBoard's reader cannot be imported for $PY ($(echo "$why" | tail -1)); tools/bootstrap installs it"
    exit 77
fi

cat >ds.json <<EOF
{"train_batch_size": 16, "train_micro_batch_size_per_gpu": 16,
 "tensorboard": {"enabled": true, "output_path": "$TMPDIR/tb", "job_name": "job"},
 "zrt": {"model": {"type": "mlp", "layers": 2, "d_model": 32, "vocab": 16}, "steps": 20, "device": "cpu",
         "checkpoint_dir": "$TMPDIR/ck", "checkpoint_interval": 10, "metrics_file": "$TMPDIR/m.jsonl"}}
EOF
timeout 120 "$ZRT" train --config ds.json >run1.out 2>&1 || { tail -5 run1.out; exit 1; }
sleep 1 # the resumed run's file: another TIMESTAMP in its name
timeout 120 "$ZRT" train --config ds.json --resume_from ck/step_0000010 >run2.out 2>&1 || { tail -5 run2.out; exit 1; }
$PY - tb/job m.jsonl <<'PY' 2>&1 | grep -v "Purging expired events"
import json, struct, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(sys.argv[1])
acc.Reload()
rows = [json.loads(l) for l in open(sys.argv[2])]
f32 = lambda v: struct.unpack("<f", struct.pack("<f", v))[0]
tags = {"train/loss": "loss", "train/lr": "lr", "train/grad_norm": "grad_norm", "train/loss_scale": "loss_scale",
        "train/model_state_bytes": "model_state_bytes", "train/tokens_per_s": "tokens_per_s"}
assert sorted(acc.Tags()["scalars"]) == sorted(tags), acc.Tags()["scalars"]
for tag, key in tags.items():
    events = acc.Scalars(tag)
    assert [e.step for e in events] == list(range(1, 21)), (tag, [e.step for e in events])
    if key == "tokens_per_s":
        continue  # the JSON has 3 decimals; test_monitor.sh compares it within that
    for e, r in zip(events, rows):
        assert e.value == f32(r[key]), (tag, e.step, e.value, r[key])
print("TensorBoard reads %d tags, steps 1-20 once each, equal to the metrics file" % len(tags))
PY
[ "${PIPESTATUS[0]}" = 0 ] || exit 1
