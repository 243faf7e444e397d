#!/usr/bin/env bash
# test_ckpt_safety.sh: issue #24, "nothing lost, nothing silent", on a real
# checkpoint written by `zrt launch` (GPT, 2 ranks, steps 5 and 10):
#  - every reader checks what it reads: with one flipped byte, a truncated, a
#    missing or an extra shard in the latest step, show, diff, consolidate,
#    reshard, export-hf and resume each exit non-zero naming the file and the
#    section (or size), and write nothing; resume also names the newest good
#    step; `shards ls` calls a truncated or missing shard's step damaged;
#  - no output is half-written: a consolidate or export-hf that fails midway
#    (ZRT_FAULT_SHARDS_WRITE) or on a damaged input leaves the previous good
#    output byte-identical; an output equal to, inside or containing its
#    input is refused, as is replacing a directory the tool did not write;
#    no *.tmp* is left anywhere;
#  - zrt.checkpoint_keep keeps the newest N complete steps, never the one
#    resumed from nor a damaged newer one; a `latest` naming a missing step
#    fails naming the newest good step.
set -u
ZRT=${ZRT_BIN:-build/bin/zrt}
. "${ZRT_SRC:-.}/tests/lib.sh"
absent() { [ ! -e "$1" ] || fail "$2: $1 was written"; }
no_tmp() { local left; left=$(find "$TMPDIR" -name '*.tmp*' | head -3); [ -z "$left" ] || fail "$1: left $left"; }

config() { # config NAME DIR STEPS [EXTRA YAML LINE]
    cat >"$TMPDIR/$1.yaml" <<YAML
distributed_type: DEEPSPEED
num_processes: 2
use_cpu: true
deepspeed_config: {zero_stage: 2}
zrt:
  model: {type: gpt, layers: 1, d_model: 32, heads: 4, seq_len: 16, vocab: 64}
  micro_batch_size: 2
  steps: $3
  checkpoint_interval: 5
  checkpoint_dir: $2
  ${4:-seed: 1}
YAML
}
config train "$TMPDIR/ck" 10
timeout 120 "$ZRT" launch --config "$TMPDIR/train.yaml" >"$TMPDIR/train.out" 2>&1 || { fail "training"; cat "$TMPDIR/train.out"; }
CK=$TMPDIR/ck
S=step_0000010

# ---- every reader checks what it reads --------------------------------------------------------------
damage() { # damage KIND: $TMPDIR/bad, a copy of ck with step 10 damaged
    rm -rf "$TMPDIR/bad" && cp -r "$CK" "$TMPDIR/bad"
    local f=$TMPDIR/bad/$S/shard_00001.bin
    case $1 in
    flip) printf '\x55' | dd of="$f" bs=1 seek=5000 conv=notrunc status=none ;;
    truncate) truncate -s 9000 "$f" ;;
    missing) rm "$f" ;;
    extra) cp "$f" "$TMPDIR/bad/$S/shard_00002.bin" ;;
    esac
}
declare -A WHAT=([flip]="shard_00001.bin: unit 0 section: CRC32C mismatch" [truncate]="shard_00001.bin: 9000 bytes; meta.json implies"
                 [missing]="shard_00001.bin: missing" [extra]="shard_00002.bin: an extra shard file")
for kind in flip truncate missing extra; do
    damage $kind
    B=$TMPDIR/bad
    expect 1 "$kind: show" -- "$ZRT" shards show "$B"
    has "$B/$S/${WHAT[$kind]}" "$kind: show names file and section"
    expect 1 "$kind: diff" -- "$ZRT" shards diff "$B" "$CK"
    has "$B/$S/${WHAT[$kind]}" "$kind: diff names file and section"
    for cmd in consolidate export-hf "reshard --world 3"; do
        expect 1 "$kind: $cmd" -- "$ZRT" shards $cmd "$B" "$TMPDIR/out-$kind"
        has "$B/$S/${WHAT[$kind]}" "$kind: $cmd names file and section"
        absent "$TMPDIR/out-$kind" "$kind: $cmd"
    done
    config resume "$B" 15
    expect 1 "$kind: resume" -- timeout 120 "$ZRT" launch --config "$TMPDIR/resume.yaml"
    has "$B/$S/${WHAT[$kind]}" "$kind: resume names file and section"
    has "the newest good step is $B/step_0000005" "$kind: resume names the newest good step"
    [ ! -e "$B/step_0000015" ] || fail "$kind: resume went on"
    if [ $kind = truncate ] || [ $kind = missing ]; then
        expect 0 "$kind: ls" -- "$ZRT" shards ls "$B"
        has "^$S  *damaged: .*${WHAT[$kind]}" "$kind: ls says damaged"
        expect 0 "$kind: ls --json" -- "$ZRT" shards ls "$B" --json
        has "\"name\": \"$S\".*\"complete\": false" "$kind: ls --json not complete"
    fi
    no_tmp "$kind"
done
expect 0 "verify the original" -- "$ZRT" shards verify "$CK"

# ---- no output is ever half-written -------------------------------------------------------------------
for cmd in consolidate export-hf; do
    out=$TMPDIR/good-$cmd
    expect 0 "$cmd" -- "$ZRT" shards $cmd "$CK" "$out"
    (cd "$out" && sha256sum *) >"$TMPDIR/sums"
    expect 1 "$cmd failing midway" -- env ZRT_FAULT_SHARDS_WRITE=20000 "$ZRT" shards $cmd "$CK" "$out"
    has "injected (ZRT_FAULT_SHARDS_WRITE)" "$cmd failing midway"
    (cd "$out" && sha256sum --quiet -c "$TMPDIR/sums") || fail "$cmd failing midway changed the previous output"
    damage flip
    expect 1 "$cmd of a damaged input" -- "$ZRT" shards $cmd "$TMPDIR/bad" "$out"
    (cd "$out" && sha256sum --quiet -c "$TMPDIR/sums") || fail "$cmd of a damaged input changed the previous output"
    [ "$(ls "$out" | wc -l)" = "$(wc -l <"$TMPDIR/sums")" ] || fail "$cmd: files added to the previous output"
    expect 0 "$cmd again" -- "$ZRT" shards $cmd "$CK/step_0000005" "$out"
    ! (cd "$out" && sha256sum --quiet -c "$TMPDIR/sums" >/dev/null 2>&1) || fail "$cmd again: the output was not replaced"
    no_tmp "$cmd"
done
ls -lR "$CK" >"$TMPDIR/before"
expect 1 "output is the input" -- "$ZRT" shards consolidate "$CK" "$CK/"
has "is the input itself: refusing" "output is the input"
expect 1 "output inside the input" -- "$ZRT" shards export-hf "$CK" "$CK/$S/hf"
has "is inside the input" "output inside the input"
expect 1 "output contains the input" -- "$ZRT" shards consolidate "$CK/$S" "$CK"
has "contains the input" "output contains the input"
expect 1 "reshard into the input" -- "$ZRT" shards reshard "$CK/$S" "$CK/$S" --world 3
has "is the input itself" "reshard into the input"
ls -lR "$CK" | diff - "$TMPDIR/before" || fail "a refused command changed the input"
mkdir "$TMPDIR/mine" && echo keep >"$TMPDIR/mine/notes.txt"
expect 1 "a directory consolidate did not write" -- "$ZRT" shards consolidate "$CK" "$TMPDIR/mine"
has "holds 'notes.txt', which consolidate does not write" "a foreign output directory"
[ "$(cat "$TMPDIR/mine/notes.txt")" = keep ] || fail "a foreign output directory was touched"
no_tmp "refusals"

# ---- checkpoint_keep and a damaged latest ---------------------------------------------------------------
config keep "$TMPDIR/k" 20 "checkpoint_keep: 2"
expect 0 "keep 2" -- timeout 120 "$ZRT" launch --config "$TMPDIR/keep.yaml"
[ "$(ls "$TMPDIR/k" | tr '\n' ' ')" = "latest step_0000015 step_0000020 " ] || fail "keep 2: $(ls -a "$TMPDIR/k")"
rm -rf "$TMPDIR/k1" && cp -r "$CK" "$TMPDIR/k1"  # resumed from step 10, keep 1
cp -r "$CK/$S" "$TMPDIR/k1/step_0000099" && rm "$TMPDIR/k1/step_0000099/shard_00000.bin"
mkdir "$TMPDIR/k1/.step_0000098.tmp-save"         # what a crash in a save leaves
config keep1 "$TMPDIR/k1" 20 "checkpoint_keep: 1"
expect 0 "keep 1 after a resume" -- timeout 120 "$ZRT" launch --config "$TMPDIR/keep1.yaml"
has "resumed from $TMPDIR/k1 at step 10" "keep 1 resumed"
[ "$(ls -a "$TMPDIR/k1" | tr '\n' ' ')" = ". .. .step_0000098.tmp-save latest step_0000010 step_0000020 step_0000099 " ] \
    || fail "keep 1: $(ls -a "$TMPDIR/k1" | tr '\n' ' ')"
rm -rf "$TMPDIR/k1/.step_0000098.tmp-save"
echo step_0000077 >"$TMPDIR/k1/latest"
expect 1 "latest names a missing step" -- timeout 120 "$ZRT" launch --config "$TMPDIR/keep1.yaml"
has "latest names step_0000077, which is damaged: the newest good step is $TMPDIR/k1/step_0000020" "a missing latest"
printf 'zrt:\n  checkpoint_keep: 3\n' >"$TMPDIR/nodir.zrt.yaml"
expect 1 "config: keep without a directory" -- "$ZRT" config check "$TMPDIR/nodir.zrt.yaml"
has "zrt.checkpoint_keep.*needs zrt.checkpoint_dir" "keep without a directory"
no_tmp "keep"
[ "$fails" = 0 ] || exit 1
echo "checkpoint safety ok"
