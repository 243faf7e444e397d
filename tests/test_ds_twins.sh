#!/usr/bin/env bash
# test_ds_twins.sh: each DeepSpeed JSON in configs/ds/ trains what its
# Accelerate YAML twin in configs/ trains: `zrt launch` on each for a few
# steps gives the same world size and the same metrics, bit for bit (every
# field but tokens_per_s, a timing). A twin that drifts (another scheduler,
# world size, model or device) fails here. The multi-machine pair runs on
# this machine alone (--num_machines 1); the NVMe pair swaps in $TMPDIR, the main job
# (tools/main-job) tokenizes the docs and keeps its checkpoints there too.
set -u
ZRT=${ZRT_BIN:-build/bin/zrt}
SRC=${ZRT_SRC:-.}
STEPS=12
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# run NAME KIND FILE...: launches FILE (copied into $TMPDIR/KIND with the NVMe path moved there) and
# prints "ZeRO stage S, N ranks"; fails (with the output on stderr) when it did not train.
run() {
    local name=$1 kind=$2; shift 2
    mkdir -p "$TMPDIR/$kind"
    for f in "$@"; do
        sed -e "s|/tmp/zrt-nvme|$TMPDIR/$kind/nvme|" -e "s|build/main-job|$TMPDIR/$kind/main-job|g" "$f" \
            >"$TMPDIR/$kind/$(basename "$f")"
    done
    if [ "$name" = main ] && [ ! -d "$TMPDIR/$kind/main-job/data" ]; then # the main job's token shards (tools/main-job)
        "$ZRT" tokenize --tokenizer "$SRC/configs/tokenizer.json" --out "$TMPDIR/$kind/main-job/data/train" \
            --val-fraction 0.1 "$SRC"/docs/*.md "$SRC/README.md" >/dev/null 2>&1 || return 1
    fi
    local cfg="$TMPDIR/$kind/$(basename "$1")" extra=()
    [ "$name" = multinode_zero3 ] && extra=(--num_machines 1)
    if ! timeout 100 "$ZRT" launch --config "$cfg" --steps $STEPS --metrics "$TMPDIR/$name.$kind.jsonl" "${extra[@]}" \
        >"$TMPDIR/$name.$kind.out" 2>&1; then
        cat "$TMPDIR/$name.$kind.out" >&2; return 1
    fi
    grep -o "ZeRO stage [0-9], [0-9]* ranks\?" "$TMPDIR/$name.$kind.out"
}

for yaml in "$SRC"/configs/*.yaml; do
    case "$yaml" in *.zrt.yaml) continue ;; esac
    name=$(basename "$yaml" .yaml)
    json="$SRC/configs/ds/$name.json"
    [ -f "$json" ] || { fail "$name.yaml has no twin configs/ds/$name.json"; continue; }
    a=$(run "$name" yaml "$yaml" "$SRC/configs/$name.zrt.yaml") || { fail "$name.yaml did not train"; continue; }
    b=$(run "$name" json "$json") || { fail "$name.json did not train"; continue; }
    [ "$a" = "$b" ] || fail "$name: the YAML trains '$a', the JSON '$b'"
    python3 - "$TMPDIR/$name.yaml.jsonl" "$TMPDIR/$name.json.jsonl" "$name" <<'PY' || fail "$name: metrics differ"
import json, sys
rows = [[json.loads(l) for l in open(p)] for p in sys.argv[1:3]]
for r in rows[0] + rows[1]:
    r.pop("tokens_per_s")
assert len(rows[0]) == len(rows[1]) > 0, (len(rows[0]), len(rows[1]))
for y, j in zip(*rows):
    assert y == j, "step %d: yaml %s, json %s" % (y["step"], y, j)
print("%s: %d steps alike, final loss %r" % (sys.argv[3], len(rows[0]), rows[0][-1]["loss"]))
PY
done
[ "$fails" = 0 ] || exit 1
echo "ds twins ok"
