#!/usr/bin/env bash
# test_shards.sh: zrt shards on a real checkpoint written by `zrt launch` (GPT,
# stage 3, 2 ranks): ls (complete, incomplete, latest), show (shapes, owners,
# --param statistics), verify (ok; then a flipped byte, a truncated, missing
# and extra shard, a broken meta.json -- each named), diff (equal: exit 0;
# another step: exit 1 with the first differing element), consolidate
# (safetensors checked by the safetensors package when installed and by an
# independent reader always; bf16; split under --max-shard-size with the
# index), reshard to 3 ranks (verify ok, diff 0, and training resumed from it
# equals training resumed from the original), consolidate of a 1.5 GiB
# checkpoint under a 512 MiB address-space limit, and --json everywhere.
set -u
ZRT=${ZRT_BIN:-build/bin/zrt}
SRC=${ZRT_SRC:-.}
PY=/usr/bin/python3
. "${ZRT_SRC:-.}/tests/lib.sh"

cat >"$TMPDIR/gpt.yaml" <<YAML
distributed_type: DEEPSPEED
num_processes: 2
use_cpu: true
mixed_precision: bf16
deepspeed_config: {zero_stage: 3}
zrt:
  model: {type: gpt, layers: 2, d_model: 32, heads: 4, seq_len: 16, vocab: 64}
  micro_batch_size: 4
  steps: 10
  checkpoint_interval: 5
  checkpoint_dir: $TMPDIR/ck
YAML
timeout 120 "$ZRT" launch --config "$TMPDIR/gpt.yaml" >"$TMPDIR/train.out" 2>&1 || { fail "training"; cat "$TMPDIR/train.out"; }
CK=$TMPDIR/ck
mkdir -p "$CK/.step_0000015.tmp"   # what a crash mid-save leaves

# ls
expect 0 "ls" -- "$ZRT" shards ls "$CK"
has "step_0000005 .* step       5  world   2  stage 3  bf16  gpt .* complete" "ls"
has "step_0000010 .*complete  <- latest" "ls latest"
has ".step_0000015.tmp .*incomplete (left by a crash)" "ls incomplete"
expect 0 "ls --json" -- "$ZRT" shards ls "$CK" --json
$PY -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1])]; assert [x["complete"] for x in r]==[False,True,True] and r[2]["latest"] and r[1]["world_size"]==2, r' "$TMPDIR/out" || fail "ls --json rows"

# show
expect 0 "show" -- "$ZRT" shards show "$CK"
has "step 10, 2 ranks, stage 3, bf16, model gpt, 4 units" "show header"
has "h.0.attn.c_attn.weight  *\[96, 32\]" "show shapes"
has "rank 1: elements \[2000, 4096)" "show owners of h.0.mlp.c_fc.weight"
has "rank 1: master .* bytes, exp_avg" "show bytes per rank"
expect 0 "show --param" -- "$ZRT" shards show "$CK" --param h.1.mlp.c_fc.bias --json
$PY -c '
import json,sys; r=[json.loads(l) for l in open(sys.argv[1])]
assert [x["part"] for x in r]==["master","exp_avg","exp_avg_sq"], r
assert all(x["nan"]==0 and x["inf"]==0 for x in r) and r[2]["min"]>=0 and r[0]["l2"]>0, r' "$TMPDIR/out" || fail "show --param stats"
expect 1 "show unknown param" -- "$ZRT" shards show "$CK" --param nope
has "no parameter named nope" "unknown param message"

# verify: ok, then damaged copies
expect 0 "verify" -- "$ZRT" shards verify "$CK"
has "ok (every size, header and CRC32C)" "verify ok"
damaged() { rm -rf "$TMPDIR/bad"; cp -r "$CK/step_0000010" "$TMPDIR/bad"; }
damaged; printf '\x55' | dd of="$TMPDIR/bad/shard_00001.bin" bs=1 seek=5000 conv=notrunc status=none
expect 1 "verify flipped byte" -- "$ZRT" shards verify "$TMPDIR/bad"
has "shard_00001.bin: unit 0 section: CRC32C mismatch" "flipped byte named"
damaged; truncate -s 9000 "$TMPDIR/bad/shard_00000.bin"
expect 1 "verify truncated" -- "$ZRT" shards verify "$TMPDIR/bad"
has "shard_00000.bin: 9000 bytes; meta.json implies" "truncation named"
damaged; mv "$TMPDIR/bad/shard_00001.bin" "$TMPDIR/bad/shard_00002.bin"
expect 1 "verify missing + extra" -- "$ZRT" shards verify "$TMPDIR/bad" --json
has "shard_00001.bin: missing" "missing shard named"
has "shard_00002.bin: an extra shard file" "extra shard named"
damaged; echo '{"format": "zrt-checkpoint", "version": 1' >"$TMPDIR/bad/meta.json"
expect 1 "verify broken meta" -- "$ZRT" shards verify "$TMPDIR/bad"
has "meta.json: not a zrt checkpoint" "broken meta named"
expect 1 "a foreign directory" -- "$ZRT" shards show "$SRC/configs"
has "no meta.json and no .latest." "foreign directory named"

# diff
expect 0 "diff equal" -- "$ZRT" shards diff "$CK" "$CK/step_0000010"
has "0 parameter(s) differ" "diff equal"
expect 1 "diff steps" -- "$ZRT" shards diff "$CK/step_0000005" "$CK"
has "wte .*first at element 0" "diff first element"
expect 0 "diff tolerance" -- "$ZRT" shards diff "$CK/step_0000005" "$CK" --tolerance 1

# consolidate: one file in bf16; split in fp32 with the index
expect 0 "consolidate" -- "$ZRT" shards consolidate "$CK" "$TMPDIR/st" --dtype bf16
expect 0 "consolidate split" -- "$ZRT" shards consolidate "$CK" "$TMPDIR/st2" --max-shard-size 20KB --json
has '"files": 7' "split files"
cat >"$TMPDIR/read.py" <<'PY'
"""An independent reader of the safetensors format, and the safetensors package when present."""
import json, struct, sys
def read(path):
    f = open(path, "rb"); data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    assert n % 8 == 0, "header not padded to 8"
    head = json.loads(data[8:8 + n]); body = len(data) - 8 - n
    end = 0
    for name in sorted(k for k in head if k != "__metadata__"):
        t = head[name]; size = {"F32": 4, "BF16": 2, "F16": 2}[t["dtype"]]
        count = 1
        for d in t["shape"]: count *= d
        assert t["data_offsets"] == [end, end + count * size], (name, t, end)
        end += count * size
    assert end == body, (end, body)
    return head
one = read(sys.argv[1] + "/model.safetensors")
assert one["h.0.attn.c_attn.weight"] == {"dtype": "BF16", "shape": [96, 32], "data_offsets": one["h.0.attn.c_attn.weight"]["data_offsets"]}
assert len(one) == 29, len(one)
index = json.load(open(sys.argv[2] + "/model.safetensors.index.json"))
files = sorted(set(index["weight_map"].values()))
assert files == ["model-%05d-of-00007.safetensors" % i for i in range(1, 8)], files
sizes = 0
for f in files:
    h = read(sys.argv[2] + "/" + f)
    sizes += sum(t["data_offsets"][1] - t["data_offsets"][0] for k, t in h.items() if k != "__metadata__")
assert sizes == index["metadata"]["total_size"], (sizes, index)
try:
    from safetensors.torch import load_file
except ImportError as e:
    print("safetensors package not installed (%s): the format checked by this reader only" % e); sys.exit(0)
w = load_file(sys.argv[1] + "/model.safetensors")
assert tuple(w["wte"].shape) == (64, 32) and str(w["wte"].dtype) == "torch.bfloat16"
print("safetensors %s loads it: %d tensors" % (__import__("safetensors").__version__, len(w)))
PY
$PY "$TMPDIR/read.py" "$TMPDIR/st" "$TMPDIR/st2" || fail "safetensors output"

# reshard to 3 ranks; resuming from it equals resuming from the original
expect 0 "reshard" -- "$ZRT" shards reshard "$CK" "$TMPDIR/r3" --world 3
expect 0 "verify resharded" -- "$ZRT" shards verify "$TMPDIR/r3"
expect 0 "diff resharded" -- "$ZRT" shards diff "$CK" "$TMPDIR/r3"
expect 2 "reshard without --world" -- "$ZRT" shards reshard "$CK" "$TMPDIR/r4"
rm -rf "$TMPDIR/ck2" && cp -r "$CK" "$TMPDIR/ck2" && rm -rf "$TMPDIR/ck2/.step_0000015.tmp"
for d in r3 ck2; do
    sed -e "s|$TMPDIR/ck\$|$TMPDIR/$d|; s/steps: 10/steps: 15/; s/num_processes: 2/num_processes: 3/" "$TMPDIR/gpt.yaml" >"$TMPDIR/$d.yaml"
    timeout 120 "$ZRT" launch --config "$TMPDIR/$d.yaml" >"$TMPDIR/$d.out" 2>&1 || { fail "resume from $d"; cat "$TMPDIR/$d.out"; }
    grep -q "resumed from $TMPDIR/$d at step 10" "$TMPDIR/$d.out" || fail "no resume from $d"
done
expect 0 "resumed runs equal" -- "$ZRT" shards diff "$TMPDIR/r3" "$TMPDIR/ck2"

# consolidate streams: 1.5 GiB of checkpoint (sparse) under a 512 MiB address-space limit
$PY "$SRC/tests/shards_fake.py" "$TMPDIR/big" 4 33554432 || fail "fake checkpoint"
if (ulimit -v 524288; "$ZRT" --version >/dev/null 2>&1); then
    (ulimit -v 524288; "$ZRT" shards consolidate "$TMPDIR/big" "$TMPDIR/big-out" --dtype bf16 >"$TMPDIR/out" 2>&1) \
        || { fail "consolidate under ulimit -v 512 MiB"; cat "$TMPDIR/out"; }
else # a sanitizer build reserves more address space than that before main: bound the peak RSS instead
    echo "this build cannot start under ulimit -v 512 MiB (a sanitizer's shadow memory): checking the peak RSS instead"
    $PY -c '
import resource, subprocess, sys
rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print("consolidate: peak RSS %d MiB" % (peak >> 10)); sys.exit(rc or peak > 512 * 1024)' \
        "$ZRT" shards consolidate "$TMPDIR/big" "$TMPDIR/big-out" --dtype bf16 || fail "consolidate peak RSS over 512 MiB"
fi
du -b --apparent-size "$TMPDIR/big" | tail -1
$PY - "$TMPDIR/big-out/model.safetensors" <<'PY' || fail "big consolidation values"
import json, struct, sys
f = open(sys.argv[1], "rb"); n = struct.unpack("<Q", f.read(8))[0]; head = json.loads(f.read(n)); base = 8 + n
for u in range(4):
    t = head["layers.%d.weight" % u]; f.seek(base + t["data_offsets"][0])
    bits = struct.unpack("<H", f.read(2))[0]
    assert struct.unpack("<f", struct.pack("<I", bits << 16))[0] == u + 1.5, (u, bits)
    assert t["shape"] == [8388608, 4]
PY
rm -rf "$TMPDIR/big" "$TMPDIR/big-out"
[ "$fails" = 0 ] || exit 1
echo "shards ok"
