#!/usr/bin/env bash
# test_monitor.sh: the logs people read (docs/monitor.md).
#  - a 2-rank DeepSpeed JSON job with tensorboard and csv_monitor writes one
#    event file (rank 0 only) and one CSV in OUTPUT_PATH/JOB_NAME; the event
#    file's framing, CRCs and values, read by tests/tfevents_read.py (an
#    independent reader), equal the metrics file's rows as float32; the CSV's
#    rows equal them too;
#  - resumed from step 10: the CSV keeps rows 1-10 and appends 11-20 once,
#    a second event file starts with a SessionLog START at step 11;
#  - the same keys in NAME.zrt.yaml beside an Accelerate YAML work; one set
#    both there and in the DeepSpeed JSON is refused naming both files;
#    wandb and comet enabled are refused by name with the alternative;
#  - zrt plot writes a PNG of the asked size (loss, and val_loss rows), and
#    refuses a missing file and a non-JSON line naming the file and line.
# TensorBoard's own reader: test_monitor_tensorboard.sh.
set -u
ZRT=$(realpath "${ZRT_BIN:-build/bin/zrt}")
SRC=$(realpath "${ZRT_SRC:-.}")
PY=/usr/bin/python3
cd "$TMPDIR" || exit 1
source "$SRC/tests/lib.sh"

cat >ds.json <<EOF
{"train_batch_size": 32, "train_micro_batch_size_per_gpu": 16, "gradient_accumulation_steps": 1,
 "zero_optimization": {"stage": 2},
 "tensorboard": {"enabled": true, "output_path": "$TMPDIR/tb", "job_name": "job"},
 "csv_monitor": {"enabled": true, "output_path": "$TMPDIR/csv", "job_name": "job"},
 "wandb": {"enabled": false, "project": "p"},
 "zrt": {"model": {"type": "mlp", "layers": 2, "d_model": 32, "vocab": 16}, "steps": 20, "device": "cpu",
         "checkpoint_dir": "$TMPDIR/ck", "checkpoint_interval": 10, "metrics_file": "$TMPDIR/m.jsonl"}}
EOF

# check_files METRICS CSV FROM EVENTS...: the CSV holds the metrics rows, the events their rows from step FROM.
check_files() {
    $PY - "$SRC/tests/tfevents_read.py" "$@" <<'PY'
import json, struct, subprocess, sys
reader, metrics, csv_path, first, events = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:]
rows = [json.loads(l) for l in open(metrics)]
assert [r["step"] for r in rows] == list(range(1, len(rows) + 1)), [r["step"] for r in rows]
f32 = lambda v: struct.unpack("<f", struct.pack("<f", v))[0]
lines = open(csv_path).read().splitlines()
assert lines[0] == "step,loss,lr,grad_norm,loss_scale,skipped,tokens_per_s,model_state_bytes", lines[0]
assert len(lines) == len(rows) + 1, (len(lines), len(rows))
for r, line in zip(rows, lines[1:]):
    cells = line.split(",")
    assert int(cells[0]) == r["step"] and float(cells[1]) == r["loss"] and float(cells[3]) == r["grad_norm"], line
seen = {}
for path in events:
    out = subprocess.run([sys.executable, reader, path], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    evs = [json.loads(l) for l in out.stdout.splitlines()]
    assert evs[0].get("file_version") == "brain.Event:2", evs[0]
    for e in evs[1:]:
        if "session_log" in e:
            print("%s: SessionLog %d at step %d" % (path.split("/")[-1], e["session_log"], e["step"]))
            continue
        seen[e["step"]] = e["scalars"]
rows_from = [r for r in rows if r["step"] >= first]
assert sorted(seen) == [r["step"] for r in rows_from], sorted(seen)
tags = {"train/loss": "loss", "train/lr": "lr", "train/grad_norm": "grad_norm", "train/tokens_per_s": "tokens_per_s",
        "train/loss_scale": "loss_scale", "train/model_state_bytes": "model_state_bytes"}
for r in rows_from:
    got = seen[r["step"]]
    assert sorted(got) == sorted(tags), sorted(got)
    for tag, key in tags.items():  # tokens/s: the JSON has 3 decimals, the event float32
        ok = abs(got[tag] - r[key]) <= 1e-3 + 1e-6 * r[key] if key == "tokens_per_s" else got[tag] == f32(r[key])
        assert ok, (r["step"], tag, got[tag], r[key])
print("%d steps: the CSV and the events (from step %d) hold the metrics rows" % (len(rows), first))
PY
}

expect 0 "2-rank run" -- timeout 120 "$ZRT" launch --config ds.json --file_store --steps 20
events=(tb/job/events.out.tfevents.*)
[ ${#events[@]} = 1 ] || fail "want one event file (rank 0 only), got: ${events[*]}"
[[ ${events[0]} =~ events\.out\.tfevents\.[0-9]+\.$(hostname)\.[0-9]+$ ]] || fail "event file name ${events[0]}"
check_files m.jsonl csv/job/metrics.csv 1 "${events[@]}" || fail "first run's files"

sleep 1 # a new second: the resumed run's event file has another TIMESTAMP (and PID) in its name
expect 0 "resumed run" -- timeout 120 "$ZRT" launch --config ds.json --file_store --steps 20 --resume_from ck/step_0000010
has "csv_monitor $TMPDIR/csv/job/metrics.csv: kept steps 1-10, left out 10 rows after the checkpoint" "resume message"
events=(tb/job/events.out.tfevents.*)
[ ${#events[@]} = 2 ] || fail "want two event files after the resume, got: ${events[*]}"
check_files m.jsonl csv/job/metrics.csv 11 "${events[1]}" >resume.out || fail "resumed run's files"
grep -q "SessionLog 1 at step 11" resume.out || { fail "no SessionLog START at step 11"; cat resume.out; }

# The same keys in zrt's settings beside an Accelerate YAML.
cp "$SRC/configs/zero2.yaml" "$SRC/configs/zero2.zrt.yaml" .
printf 'tensorboard: {enabled: true, output_path: %s/ytb, job_name: y}\n' "$TMPDIR" >>zero2.zrt.yaml
printf 'csv_monitor: {enabled: true, output_path: %s/ycsv}\n' "$TMPDIR" >>zero2.zrt.yaml
expect 0 "YAML run" -- timeout 120 "$ZRT" launch --config zero2.yaml --file_store --steps 5
ls ytb/y/events.out.tfevents.* >/dev/null 2>&1 || fail "zrt.tensorboard in zero2.zrt.yaml wrote no event file"
[ "$(wc -l <ycsv/DeepSpeedJobName/metrics.csv)" = 6 ] || fail "csv_monitor's default job_name folder: $(ls -R ycsv)"

# One monitor in two places; the network monitors.
sed 's/"zrt": {/"zrt": {"tensorboard": {"enabled": false}, /' ds.json >twice.json
expect 1 "set twice" -- "$ZRT" config check twice.json
has "twice.json: tensorboard: is set here and as zrt.tensorboard in twice.json: keep one" "set twice"
sed 's/"wandb": {"enabled": false/"wandb": {"enabled": true/' ds.json >wandb.json
expect 1 "wandb" -- "$ZRT" config check wandb.json
has "wandb.json: wandb.enabled: is not supported: Weights & Biases sends metrics over the network" "wandb"
has "use tensorboard {enabled: true} (event files TensorBoard reads) or csv_monitor {enabled: true}" "wandb"
sed 's/"wandb": {"enabled": false, "project": "p"}/"comet": {"enabled": true, "api_key": "k"}/' ds.json >comet.json
expect 1 "comet" -- "$ZRT" config check comet.json
has "comet.json: comet.enabled: is not supported: Comet sends metrics over the network" "comet"
printf 'wandb: {enabled: true}\n' >>zero2.zrt.yaml
expect 1 "wandb in zrt settings" -- "$ZRT" config check zero2.yaml
has "zrt.wandb.enabled: is not supported" "wandb in zrt settings"

# zrt plot.
png_size() { $PY -c "import struct,sys; d=open(sys.argv[1],'rb').read(24); assert d[:8]==b'\x89PNG\r\n\x1a\n' and d[12:16]==b'IHDR', 'not a PNG'; print('%dx%d' % struct.unpack('>II', d[16:24]))" "$1"; }
expect 0 "plot" -- "$ZRT" plot m.jsonl -o loss.png --size 640x400
[ "$(png_size loss.png)" = 640x400 ] || fail "loss.png: $(png_size loss.png)"
{ cat m.jsonl; echo '{"step": 10, "val_loss": 2.5}'; echo '{"step": 20, "val_loss": 2.4}'; } >val.jsonl
expect 0 "plot with val_loss" -- "$ZRT" plot val.jsonl -o val.png
has "20 steps and validation, 900x540" "plot with val_loss"
[ "$(png_size val.png)" = 900x540 ] || fail "val.png: $(png_size val.png)"
expect 1 "plot of a missing file" -- "$ZRT" plot nothing.jsonl -o x.png
has "zrt plot: nothing.jsonl: No such file or directory" "plot of a missing file"
{ head -3 m.jsonl; echo 'step 4 loss 2.0'; } >bad.jsonl
expect 1 "plot of a non-JSON line" -- "$ZRT" plot bad.jsonl -o x.png
has "zrt plot: bad.jsonl:4: not a JSON object" "plot of a non-JSON line"
[ ! -e x.png ] || fail "a failed plot left x.png"
expect 2 "plot without -o" -- "$ZRT" plot m.jsonl
has "-o PNG is required" "plot without -o"
[ "$fails" = 0 ] || exit 1
echo "monitors and zrt plot: ok"
