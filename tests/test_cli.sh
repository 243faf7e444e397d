#!/usr/bin/env bash
# test_cli.sh: the zrt command line's contract: --help/--version exit 0,
# unknown commands, options and actions are usage errors (exit 2),
# `config check` accepts every shipped config (exit 0), `config show` prints
# JSON that python3's json module reads, dashes and underscores both work.
set -u
ZRT=${ZRT_BIN:-build/bin/zrt}
SRC=${ZRT_SRC:-.}
source "$SRC/tests/lib.sh" # main_job_data; the functions below are this test's own
fails=0
expect() { # expect WANT_RC DESCRIPTION -- CMD...
    local want=$1 what=$2; shift 3
    "$@" >"$TMPDIR/out" 2>&1
    local rc=$?
    if [ "$rc" != "$want" ]; then
        echo "FAIL: $what: exit $rc, want $want"; cat "$TMPDIR/out"; fails=$((fails + 1))
    fi
}
expect_output() { # expect_output TEXT DESCRIPTION
    if ! grep -qF -- "$1" "$TMPDIR/out"; then
        echo "FAIL: $2: output lacks '$1'"; cat "$TMPDIR/out"; fails=$((fails + 1))
    fi
}

expect 0 "zrt --help" -- "$ZRT" --help
expect_output "usage: zrt" "--help"
expect_output "config" "--help lists config"
expect 0 "zrt --version" -- "$ZRT" --version
expect_output "zrt 0." "--version"
# OpenBLAS's kernels: zrt asks for AVX-512's where the CPU has it (OpenBLAS 0.3.21
# takes Prescott's SSE3 ones on CPUs newer than it knows), and a set
# $OPENBLAS_CORETYPE stands.
flags=$(grep -m1 '^flags' /proc/cpuinfo)
has() { case " $flags " in *" $1 "*) return 0 ;; esac; return 1; }
if has avx512f && has avx512bw && has avx512dq && has avx512vl && has avx512cd; then
    expect 0 "zrt --version, OPENBLAS_CORETYPE unset" -- env -u OPENBLAS_CORETYPE "$ZRT" --version
    if ! grep -qE "OpenBLAS kernels: (SkylakeX|Cooperlake|SapphireRapids)" "$TMPDIR/out"; then
        echo "FAIL: an AVX-512 CPU runs OpenBLAS's narrower kernels"; cat "$TMPDIR/out"; fails=$((fails + 1))
    fi
fi
expect 0 "zrt --version, OPENBLAS_CORETYPE=Prescott" -- env OPENBLAS_CORETYPE=Prescott "$ZRT" --version
expect_output "OpenBLAS kernels: Prescott (\$OPENBLAS_CORETYPE)" "a set OPENBLAS_CORETYPE stands"
expect 2 "zrt with no command" -- "$ZRT"
expect 2 "unknown command" -- "$ZRT" frobnicate
expect_output "unknown command 'frobnicate'" "unknown command message"
expect 2 "unknown global flag" -- "$ZRT" --frob
expect 0 "zrt config --help" -- "$ZRT" config --help
expect_output "zrt config check CFG" "config --help"
expect 2 "config: unknown flag" -- "$ZRT" config check --bogus-flag "$SRC/configs/zero1.yaml"
expect_output "unknown option --bogus-flag" "config unknown flag message"
expect 2 "config: unknown action" -- "$ZRT" config validate "$SRC/configs/zero1.yaml"
expect 2 "config: missing file argument" -- "$ZRT" config check
main_job_data "$ZRT" "$SRC" || { echo "FAIL: could not tokenize the main job's data"; fails=$((fails + 1)); }
for cfg in "$SRC"/configs/*.yaml "$SRC"/configs/ds/*.json; do
    case "$cfg" in *.zrt.yaml) continue ;; esac # zrt's settings beside a YAML, read with it
    expect 0 "config check $cfg" -- "$ZRT" config check "$cfg"
    expect_output ": ok (zero stage" "config check $cfg"
    expect 0 "config show $cfg" -- "$ZRT" config show "$cfg"
    if ! python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert {"accelerate","deepspeed","zrt"} <= d.keys()' "$TMPDIR/out"; then
        echo "FAIL: config show $cfg is not the expected JSON"; fails=$((fails + 1))
    fi
done
# Underscores in option names are read as dashes (accelerate launch's flags take both).
expect 2 "config: unknown flag with underscores" -- "$ZRT" config check --bogus_flag "$SRC/configs/zero1.yaml"
expect_output "unknown option --bogus-flag" "underscores normalized to dashes"
# A warning goes to stderr, the JSON to stdout.
printf 'num_processes: 2\nmystery: 1\n' >"$TMPDIR/warn.yaml"
"$ZRT" config show "$TMPDIR/warn.yaml" >"$TMPDIR/stdout" 2>"$TMPDIR/stderr"
grep -q "warning: .*mystery: unknown key, ignored" "$TMPDIR/stderr" || { echo "FAIL: warning not on stderr"; fails=$((fails + 1)); }
python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$TMPDIR/stdout" || { echo "FAIL: stdout is not pure JSON"; fails=$((fails + 1)); }
# zrt bench comm: one small row per op, as JSON with the documented fields.
expect 0 "bench comm --json" -- "$ZRT" bench comm --ranks 2 --min-bytes 1M --max-bytes 1M --dtypes fp32 --seconds 0.01 --json
if ! python3 - "$TMPDIR/out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert [r["op"] for r in rows] == ["reduce_scatter", "all_gather", "all_reduce"], rows
for r in rows:
    assert set(r) == {"op", "dtype", "ranks", "bytes", "algbw_GBps", "busbw_GBps", "memcpy_GBps"}, r
    assert r["ranks"] == 2 and r["bytes"] == 1 << 20 and r["algbw_GBps"] > 0 and r["memcpy_GBps"] > 0, r
    assert abs(r["busbw_GBps"] - r["algbw_GBps"] * (1.0 if r["op"] == "all_reduce" else 0.5)) < 1e-2, r
PY
then echo "FAIL: bench comm --json rows"; cat "$TMPDIR/out"; fails=$((fails + 1)); fi
# zrt bench train: per model a forward+backward-alone row, then one row per stage: ratios to
# stage 0, matmul GFLOP/s vs sgemm, step time and the engine's part of it; for the mlp, stage 2
# with offload_optimizer none, cpu and nvme against the parts measured alone (compute, copies, the CPU
# optimizer, NVMe reads and writes): their sum, the fraction hidden and the goal max(compute, optimizer + I/O) x 1.15.
expect 0 "bench train --json" -- "$ZRT" bench train --steps 1 --json
if ! python3 - "$TMPDIR/out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
alone = [r for r in rows if "row" in r]
assert [(r["model"], r["row"]) for r in alone] == [(m, "forward+backward alone") for m in ("mlp", "gpt", "llama")], alone
assert all(r["model_ms"] > 0 for r in alone), alone
offload = [r for r in rows if "offload" in r]
assert [(r["model"], r["stage"], r["offload"]) for r in offload] == [("mlp", 2, k) for k in ("none", "cpu", "nvme")], offload
assert all(r["step_ms"] > 0 and r["optimizer_ms"] > 0 and r["nvme_read_ms"] > 0 and r["nvme_write_ms"] > 0 for r in offload), offload
none, cpu, nvme = offload
assert none["step_ms"] == none["compute_ms"] == none["parts_ms"] and none["hidden"] == 0, none
io = nvme["nvme_read_ms"] + nvme["nvme_write_ms"]
assert abs(nvme["parts_ms"] - (nvme["compute_ms"] + nvme["copies_ms"] + nvme["optimizer_ms"] + io)) < 0.01, nvme
assert abs(nvme["goal_ms"] - 1.15 * max(nvme["compute_ms"], nvme["optimizer_ms"] + io)) < 0.01, nvme
assert abs(cpu["parts_ms"] - (cpu["compute_ms"] + cpu["copies_ms"] + cpu["optimizer_ms"])) < 0.01, cpu
rows = [r for r in rows if "row" not in r and "offload" not in r]
assert [(r["model"], r["stage"]) for r in rows] == [(m, s) for m in ("mlp", "gpt", "llama") for s in range(4)], rows
for r in rows:
    rate = "samples_per_s" if r["model"] == "mlp" else "tokens_per_s"
    assert set(r) == {"model", "stage", "world", rate, "ratio_to_stage0", "matmul_gflops", "sgemm_gflops",
                      "step_ms", "model_ms", "engine_ms", "peak_rss_mb", "blas_core"}, r
    assert r["world"] == 2 and r[rate] > 0 and r["matmul_gflops"] > 0 and r["sgemm_gflops"] > 0, r
    assert r["blas_core"] not in ("", "?") and 10 < r["peak_rss_mb"] < 4096, r
    assert abs(r["step_ms"] - r["model_ms"] - r["engine_ms"]) < 0.01, r
assert rows[0]["ratio_to_stage0"] == 1.0 and rows[4]["ratio_to_stage0"] == 1.0 and rows[8]["ratio_to_stage0"] == 1.0
PY
then echo "FAIL: bench train --json rows"; cat "$TMPDIR/out"; fails=$((fails + 1)); fi
# --shape sets the transformers' dims (the header names them); a bad one is a usage error naming it.
expect 0 "bench train --shape" -- "$ZRT" bench train --model llama --steps 1 --shape layers=1,d_model=32,heads=2,kv_heads=1,hidden=48,vocab=64,seq_len=8,micro=2
expect_output "llama (1 layers, d_model 32, 2 heads (GQA), seq_len 8, vocab 64, hidden 48, micro batch 2)" "bench train: --shape's dims"
expect 2 "bench train: bad shape" -- "$ZRT" bench train --shape layers=x
expect_output "bad value 'layers=x' for --shape" "bench train: bad shape named"
expect 2 "bench train: bad model" -- "$ZRT" bench train --model rnn
expect 2 "bench train: bad peer" -- "$ZRT" bench train --peer jax
expect_output "bad value 'jax'" "bench train: bad peer named"
# A peer that cannot run is skipped with its reason (here: no script where ZRT_SOURCE_DIR points).
expect 0 "bench train: peer skipped" -- env ZRT_SOURCE_DIR="$TMPDIR/nowhere" "$ZRT" bench train --model gpt --steps 1 --peer torch --json
if ! python3 - "$TMPDIR/out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
peer = [r for r in rows if r.get("peer") == "torch"]
assert len(peer) == 1 and peer[0]["skipped"] is True and "nowhere" in peer[0]["reason"], peer
assert all("ratio_to_torch" not in r for r in rows), rows
PY
then echo "FAIL: bench train: skipped peer row"; cat "$TMPDIR/out"; fails=$((fails + 1)); fi
# zrt bench adam: per pool size and copy-out, the bound's two yardsticks (the plain C loop, the streamed intrinsics:
# the faster is the bound, so one of them is 1.0 of it and the other at most that), the usual sequence, the one pass
# (and the scalar path at 1 thread).
expect 0 "bench adam --json" -- "$ZRT" bench adam --params 64K --threads 2 --repeats 1 --json
if ! python3 - "$TMPDIR/out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
kinds = [(r["row"].split(" (")[0], r["threads"], r["copy_out"]) for r in rows]
for t in (1, 2):
    for copy in (True, False):
        for k in ("plain C loop", "streamed", "usual sequence", "one pass"):
            assert (k, t, copy) in kinds, (k, t, copy, kinds)
        yard = [r["of_memory_bound"] for r in rows if r["threads"] == t and r["copy_out"] == copy
                and r["row"].split(" (")[0] in ("plain C loop", "streamed")]
        assert len(yard) == 2 and max(yard) == 1.0 and min(yard) <= 1.0, yard
assert ("scalar path", 1, True) in kinds and ("scalar path", 2, True) not in kinds, kinds
for r in rows:
    assert r["gparam_per_s"] > 0 and r["of_memory_bound"] > 0, r
    assert (r["row"].startswith("one pass") or r["row"] == "scalar path") == ("vs_usual" in r), r
PY
then echo "FAIL: bench adam --json rows"; cat "$TMPDIR/out"; fails=$((fails + 1)); fi
expect 2 "bench adam: bad size" -- "$ZRT" bench adam --params 12Q
# zrt bench nvme: one row per block size x depth, the swapper beside the plain loop and fio (when installed: 0 otherwise).
expect 0 "bench nvme --json" -- "$ZRT" bench nvme --dir "$TMPDIR" --file-size 8M --block-sizes 256K,1M --depths 4 --repeats 1 --json
if ! python3 - "$TMPDIR/out" <<'PY'
import json, shutil, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
assert [(r["block_bytes"], r["queue_depth"]) for r in rows] == [(256 << 10, 4), (1 << 20, 4)], rows
for r in rows:
    assert r["write_gbps"] > 0 and r["read_gbps"] > 0 and r["file_bytes"] == 8 << 20, r
    assert r["loop_write_gbps"] > 0 and r["loop_read_gbps"] > 0 and r["read_vs_loop"] > 0, r
    assert (r["fio_write_gbps"] > 0 and r["write_vs_fio"] > 0) == (shutil.which("fio") is not None), r
PY
then echo "FAIL: bench nvme --json rows"; cat "$TMPDIR/out"; fails=$((fails + 1)); fi
ls "$TMPDIR" | grep -q "zrt-swap\|zrt-bench-fio\|zrt-bench-loop" && { echo "FAIL: bench nvme left files"; fails=$((fails + 1)); }
expect 2 "bench nvme: bad block size" -- "$ZRT" bench nvme --block-sizes 1000
expect 2 "bench nvme: a file over io_uring's 1 GiB buffer" -- "$ZRT" bench nvme --file-size 2G
# zrt bench gpu: the optimizer kernel beside a device copy of the same bytes (on the cpu device without a GPU).
expect 0 "bench gpu --json" -- "$ZRT" bench gpu --params 64K --repeats 1 --steps 1 --micro 1 --stages 0 --model gpt2 --json
python3 - "$TMPDIR/out" <<'PY' || { echo "FAIL: bench gpu rows"; cat "$TMPDIR/out"; fails=$((fails + 1)); }
import json, sys
rows = {r["row"]: r for r in map(json.loads, open(sys.argv[1]))}
o = rows["optimizer"]
assert o["optimizer_gbps"] > 0 and o["copy_gbps"] > 0 and o["params"] == 65536, o
m = rows.get("models")  # without a GPU, the reason; with one, a row per model and stage
if m:
    assert m.get("skipped") and "CUDA" in m["reason"], m
else:
    for name in ("gpt2",):
        r = rows[name]
        classes = sum(r[k] for k in ("matmul_ms", "attention_ms", "model_other_ms", "optimizer_ms", "stats_ms"))
        assert r["step_ms"] > 0 and r["micro"] == 1 and r["world"] == 1 and 0 < classes <= r["step_ms"] * 1.01, r
PY
expect 2 "bench gpu --world 0" -- "$ZRT" bench gpu --world 0
expect 2 "bench gpu --stages 4" -- "$ZRT" bench gpu --stages 4
expect 2 "bench gpu --model gpt3" -- "$ZRT" bench gpu --model gpt3
expect 2 "bench gpu --micro max --world 2" -- "$ZRT" bench gpu --micro max --world 2
# zrt bench control: one JSON row with the three measurements.
expect 0 "bench control --json" -- "$ZRT" bench control --agents 4 --seconds 1 --json
if ! python3 - "$TMPDIR/out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
assert len(rows) == 1 and rows[0]["agents"] == 4, rows
r = rows[0]
assert 0 < r["rendezvous_s"] < 10 and r["heartbeats"] > 0 and r["coordinator_cpu_percent"] >= 0, r
assert 0 < r["detection_s"] <= r["heartbeat_timeout_s"] + 2 * r["heartbeat_interval_s"], r
PY
then echo "FAIL: bench control --json"; cat "$TMPDIR/out"; fails=$((fails + 1)); fi
expect 2 "bench: unknown benchmark" -- "$ZRT" bench frob
expect 2 "bench comm: bad size" -- "$ZRT" bench comm --max-bytes lots
expect_output "bad value 'lots' for --max-bytes" "bench bad size message"
expect 2 "bench comm: bad dtype" -- "$ZRT" bench comm --dtypes fp64
# zrt estimate: the ZeRO paper's numbers for 1e9 parameters on 8 devices (bytes).
expect 0 "estimate --json" -- "$ZRT" estimate --params 1e9 --world 8 --json
if ! python3 - "$TMPDIR/out" <<'PY'
import json, sys
rows = {r["stage"]: r for r in map(json.loads, open(sys.argv[1])) if "stage" in r and "deepspeed" not in r}
want = {0: 16e9, 1: 4e9 + 12e9 / 8, 2: 2e9 + 14e9 / 8, 3: 16e9 / 8}
for s, v in want.items():
    assert rows[s]["device_bytes"] == v and rows[s]["host_bytes_per_device"] == 0, (s, rows[s], v)
PY
then echo "FAIL: estimate numbers"; cat "$TMPDIR/out"; fails=$((fails + 1)); fi
expect 0 "estimate with offload" -- "$ZRT" estimate --params 1e9 --world 8 --offload-optimizer cpu --offload-param cpu --json
python3 -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1])][:4]; assert r[3]["device_bytes"]==2e9/8 and r[3]["host_bytes_per_device"]==14e9/8 and r[3]["host_bytes_per_machine"]==14e9, r[3]' "$TMPDIR/out" \
    || { echo "FAIL: estimate offload numbers"; cat "$TMPDIR/out"; fails=$((fails + 1)); }
expect 0 "estimate from a config" -- "$ZRT" estimate --config "$SRC/configs/zero3.yaml"
expect_output "152336 parameters, 2 devices" "estimate takes the model from the config"
# DeepSpeed's rows (its estimate_zero2/3_model_states_mem_needs, buffer factor 1.5): DeepSpeed's
# documented t5-3b example (2851M params, 32M largest layer, 1 node x 8 GPUs), recomputed here.
expect 0 "estimate as DeepSpeed" -- "$ZRT" estimate --params 2851e6 --largest-layer 32e6 --gpus-per-node 8 --nodes 1
expect_output "127.45GB |   15.93GB | offload_optimizer=none" "DeepSpeed ZeRO-2 row"
expect_output "71.69GB |    0.12GB | offload_param=cpu , offload_optimizer=cpu , zero_init=1" "DeepSpeed ZeRO-3 row"
expect 0 "estimate as DeepSpeed, 2 nodes" -- "$ZRT" estimate --params 7e9 --largest-layer 131e6 --gpus-per-node 8 --nodes 2 --json
if ! python3 - "$TMPDIR/out" <<'PY'
import json, sys
rows = [r for r in map(json.loads, open(sys.argv[1])) if "deepspeed" in r]
P, L, n, g = 7e9, 131e6, 2, 8
want = [(2, "none", "cpu", 1, P * max(4 * n * g, 16) * 1.5, 2 * P), (2, "none", "none", 1, P * 4 * g * 1.5, 4 * P + int(16 * P / (n * g)))]
for off, par in ((True, True), (True, False), (False, False)):
    for zi in (1, 0):
        if off and par: gpu, cpu = 4 * L, P * (18 / n if zi else max(4 * g, 18 / n)) * 1.5
        elif off: gpu, cpu = 4 * L + int(2 * P / (n * g)), P * (16 / n if zi else max(4 * g, 16 / n)) * 1.5
        else: gpu, cpu = 4 * L + int(18 * P / (n * g)), (L if zi else P) * 4 * g * 1.5
        want.append((3, "cpu" if par else "none", "cpu" if off else "none", zi, cpu, gpu))
got = [(int(r["deepspeed"][4]), r["offload_param"], r["offload_optimizer"], r["zero_init"], r["per_cpu_bytes"], r["per_gpu_bytes"]) for r in rows]
assert len(got) == len(want), got
for a, b in zip(got, want):
    assert a[:4] == b[:4] and abs(a[4] - b[4]) <= 1 and abs(a[5] - b[5]) <= 1, (a, b)
PY
then echo "FAIL: DeepSpeed estimate rows"; cat "$TMPDIR/out"; fails=$((fails + 1)); fi
# --model-config: GPT-2 small has 124,439,808 parameters; TinyLlama-1.1B 1,100,048,384.
echo '{"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12, "vocab_size": 50257, "n_positions": 1024}' >"$TMPDIR/gpt2.json"
expect 0 "estimate --model-config gpt2" -- "$ZRT" estimate --model-config "$TMPDIR/gpt2.json"
expect_output "124439808 parameters" "GPT-2 small's parameter count"
echo '{"model_type": "llama", "hidden_size": 2048, "num_hidden_layers": 22, "intermediate_size": 5632, "num_attention_heads": 32, "num_key_value_heads": 4, "vocab_size": 32000, "tie_word_embeddings": false}' >"$TMPDIR/llama.json"
expect 0 "estimate --model-config llama" -- "$ZRT" estimate --model-config "$TMPDIR/llama.json"
expect_output "1100048384 parameters" "TinyLlama's parameter count"
echo '{"model_type": "gpt2"}' >"$TMPDIR/bad.json"
expect 1 "estimate: a config without sizes" -- "$ZRT" estimate --model-config "$TMPDIR/bad.json"
expect_output "not a Hugging Face config zrt can count" "bad model config message"
expect 2 "estimate without a size" -- "$ZRT" estimate --world 8
expect 2 "estimate: bad precision" -- "$ZRT" estimate --params 1e9 --precision fp8
# zrt estimate refuses a contradictory world (exit 2, naming the flags) instead of
# printing per-device figures for a world nobody asked for; byte counts for people in KiB/MiB/GiB.
expect 2 "estimate: --world against --nodes x --gpus-per-node" -- "$ZRT" estimate --params 1e9 --world 8 --nodes 2 --gpus-per-node 8
expect_output "--world 8 contradicts --nodes 2 x --gpus-per-node 8 = 16" "estimate names the contradicting flags"
expect 2 "estimate: --world not divisible by --nodes" -- "$ZRT" estimate --params 1e9 --world 6 --nodes 4
expect_output "--world 6 is not divisible by --nodes 4" "estimate names --world and --nodes"
expect 2 "estimate: --world against a config" -- "$ZRT" estimate --config "$SRC/configs/zero3.yaml" --world 8
expect_output "--world/--nodes/--gpus-per-node contradict $SRC/configs/zero3.yaml (num_processes 2" "estimate names the config"
expect 0 "estimate: --gpus-per-node alone is one machine" -- "$ZRT" estimate --params 1e9 --gpus-per-node 8 --json
python3 -c 'import json,sys; r=json.loads(open(sys.argv[1]).readline()); assert r["world"] == 8, r' "$TMPDIR/out" \
    || { echo "FAIL: --gpus-per-node 8 alone is not a world of 8"; cat "$TMPDIR/out"; fails=$((fails + 1)); }
expect 0 "estimate: bytes for people" -- "$ZRT" estimate --config "$SRC/configs/zero3.yaml"
expect_output "    0           2.91 MiB" "estimate prints MiB"
expect_output "device  params 893 KiB, grads 298 KiB, optimizer 893 KiB = 2.03 MiB (2132928 bytes)" "engine line in KiB/MiB"
# Error prefixes are said once: a library message naming its part is not prefixed with it again.
expect 1 "coordinator: a bad listen address" -- env ZRT_JOB_TOKEN=t "$ZRT" coordinator --config "$SRC/configs/zero2.yaml" --listen 256.1.1.1:1
expect_output "zrt coordinator: cannot listen on 256.1.1.1:1" "coordinator error said once"
if grep -q "coordinator: coordinator:" "$TMPDIR/out"; then echo "FAIL: doubled prefix"; fails=$((fails + 1)); fi
expect 1 "config check: a missing file" -- "$ZRT" config check "$TMPDIR/nope.yaml"
if grep -q "config: config:\|: $TMPDIR/nope.yaml: $TMPDIR/nope.yaml" "$TMPDIR/out"; then echo "FAIL: doubled prefix"; fails=$((fails + 1)); fi
# --json stays JSON whatever a path holds: a quote, a backslash, a newline, non-ASCII.
odd="$TMPDIR/odd \"q\" \\b
n é"
mkdir -p "$odd"
printf 'model: {type: mlp, layers: 1, d_model: 8, vocab: 8}\nsteps: 2\ncheckpoint_dir: %s/ck\n' "$TMPDIR" >"$TMPDIR/ck.zrt.yaml"
expect 0 "a checkpoint for the JSON checks" -- "$ZRT" train --config "$SRC/configs/zero1.yaml" --zrt-config "$TMPDIR/ck.zrt.yaml" --num_processes 1
cp -r "$TMPDIR/ck" "$odd/ck"
cp -r "$TMPDIR/ck" "$odd/bad"
rm "$odd/bad/step_0000002/shard_00000.bin" # verify's problems name the path
cp "$SRC/configs/zero1.yaml" "$odd/c.yaml"
for cmd in "shards ls" "shards verify" "shards show" "config show"; do
    target=("$odd/ck" --json); [ "$cmd" = "config show" ] && target=("$odd/c.yaml"); [ "$cmd" = "shards verify" ] && target[0]="$odd/bad"
    "$ZRT" $cmd "${target[@]}" >"$TMPDIR/out" 2>/dev/null || [ "$cmd" = "shards verify" ] || { echo "FAIL: $cmd --json on an odd path"; cat "$TMPDIR/out"; fails=$((fails + 1)); }
    python3 - "$TMPDIR/out" "$odd" "$cmd" <<'PY' || { echo "FAIL: zrt $cmd --json on an odd path is not JSON"; cat "$TMPDIR/out"; fails=$((fails + 1)); }
import json, sys
text = open(sys.argv[1], encoding="utf-8").read()
docs = [json.loads(text)] if sys.argv[3] == "config show" else [json.loads(l) for l in text.splitlines()]
assert docs, "no output"
if sys.argv[3] == "config show":
    assert docs[0]["source"] == sys.argv[2] + "/c.yaml", docs[0]["source"]
if sys.argv[3] == "shards verify":
    assert docs[-1]["checkpoint"].startswith(sys.argv[2]) and docs[-1]["problems"] > 0, docs[-1]
    assert any(sys.argv[2] in d.get("problem", "") for d in docs), docs
PY
done
# NVMe offload makes a missing nvme_path (as DeepSpeed does), nested; a path under a regular file is refused by name.
sed "s|/tmp/zrt-nvme|$TMPDIR/nv/a/b|g" "$SRC/configs/zero3_offload_nvme.yaml" >"$TMPDIR/nv.yaml"
cp "$SRC/configs/zero3_offload_nvme.zrt.yaml" "$TMPDIR/nv.zrt.yaml"
expect 0 "nvme_path made" -- "$ZRT" train --config "$TMPDIR/nv.yaml" --num_processes 1 --steps 2
[ -d "$TMPDIR/nv/a/b" ] || { echo "FAIL: nvme_path not made"; fails=$((fails + 1)); }
touch "$TMPDIR/plainfile"
sed "s|/tmp/zrt-nvme|$TMPDIR/plainfile/sub|g" "$SRC/configs/zero3_offload_nvme.yaml" >"$TMPDIR/nv.yaml"
expect 1 "nvme_path under a file" -- "$ZRT" train --config "$TMPDIR/nv.yaml" --num_processes 1 --steps 2
expect_output "cannot make the directory $TMPDIR/plainfile/sub" "nvme_path error names the directory"
# Device selection: use_cpu: false (TRL's configs) on a machine without a GPU trains on the
# cpu device and says so in one line; zrt.device: cuda there is an error naming the reason.
sed 's/use_cpu: true/use_cpu: false/' "$SRC/configs/zero2.yaml" >"$TMPDIR/gpu.yaml"
cp "$SRC/configs/zero2.zrt.yaml" "$TMPDIR/gpu.zrt.yaml"
export CUDA_VISIBLE_DEVICES= # no GPU, even on a machine with one
if "$ZRT" train --config "$TMPDIR/gpu.yaml" --num_processes 1 --steps 2 >"$TMPDIR/probe" 2>&1 && grep -q "no GPU to run on" "$TMPDIR/probe"; then
    expect 0 "use_cpu: false without a GPU" -- "$ZRT" train --config "$TMPDIR/gpu.yaml" --num_processes 1 --steps 2
    expect_output "zrt train: no GPU to run on (" "the one line saying why"
    expect_output "gpu.yaml has use_cpu: false: set use_cpu: true to say so" "the YAML's own setting named"
    [ "$(grep -c "no GPU to run on" "$TMPDIR/out")" = 1 ] || { echo "FAIL: the line is not said once"; fails=$((fails + 1)); }
    echo "device: cuda" >>"$TMPDIR/gpu.zrt.yaml"
    expect 1 "zrt.device: cuda without a GPU" -- "$ZRT" train --config "$TMPDIR/gpu.yaml" --num_processes 1 --steps 2
    expect_output "gpu.zrt.yaml: zrt.device: cuda asks for a GPU and there is none (" "zrt.device: cuda message"
    expect_output "set device: cpu to train on the cpu" "zrt.device: cuda message, the YAML's spelling"
    # A DeepSpeed JSON has no use_cpu: the messages name its "zrt": {"device"} key, as the JSON spells it.
    sed 's/"device": "cpu"/"device": "auto"/' "$SRC/configs/ds/zero2.json" >"$TMPDIR/gpu.json"
    expect 0 "a JSON without a GPU" -- "$ZRT" train --config "$TMPDIR/gpu.json" --steps 2
    expect_output "gpu.json leaves the device to zrt (no \"zrt\": {\"device\": ...}): set \"zrt\": {\"device\": \"cpu\"} to say so" \
        "the JSON's own setting named"
    if grep -q "use_cpu" "$TMPDIR/out"; then echo "FAIL: a JSON told to set use_cpu"; fails=$((fails + 1)); fi
    sed 's/"device": "cpu"/"device": "cuda"/' "$SRC/configs/ds/zero2.json" >"$TMPDIR/gpu.json"
    expect 1 "a JSON's zrt.device: cuda without a GPU" -- "$ZRT" train --config "$TMPDIR/gpu.json" --steps 2
    expect_output "gpu.json: zrt.device: cuda asks for a GPU and there is none (" "the JSON's cuda message"
    expect_output "set \"zrt\": {\"device\": \"cpu\"} to train on the cpu" "the JSON's cuda message, its spelling"
else
    grep -q "has no cuda implementation yet" "$TMPDIR/probe" || { echo "FAIL: a GPU run must be refused by name"; cat "$TMPDIR/probe"; fails=$((fails + 1)); }
    echo "a GPU is visible: the built-in models are refused on cuda by name (the GPU path's work)"
fi
[ "$fails" = 0 ] || exit 1
echo "cli ok"
