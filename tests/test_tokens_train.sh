#!/usr/bin/env bash
# test_tokens_train.sh: training on token shards (`data: {type: tokens,
# train: GLOB}`; the format in zrt/tokens.h and docs/data.md). Shards are
# written here by a few lines of Python, not by zrt, so the format is checked
# from outside:
#  - the GPT learns a patterned token stream over two shards (the loss falls);
#  - stages 0 and 3 at 2 ranks give the same losses bit for bit (a sample is a
#    function of its index: the same on every rank and stage);
#  - a mask that leaves every token out but one trains without error, the
#    loss over the few targets only;
#  - evaluation (eval_interval, eval_batches, data.val) changes nothing in
#    training, agrees across stages, falls, and checkpoint_best keeps the
#    lowest; eval_interval without a val set is refused by config check;
#  - a glob matching nothing fails `zrt config check` naming zrt.data.train;
#    a shard with a wrong magic, one cut short and one with a token >= vocab
#    each fail at start, naming the file and the offset (the size, for the
#    one cut short).
set -u
ZRT=$(realpath "${ZRT_BIN:-build/bin/zrt}")
SRC=$(realpath "${ZRT_SRC:-.}")
D=$TMPDIR
fail=0
bad() { echo "FAIL: $*"; fail=1; }
cd "$D" || exit 1

shards() { # shards DIR [mask|badmagic|short|toolarge]
    /usr/bin/python3 - "$@" <<'PY'
import struct, sys, os
d, kind = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "")
os.makedirs(d, exist_ok=True)
for s in range(2):
    n = 3000
    toks = [(i * 5 + (i // 7)) % 61 for i in range(s * n, (s + 1) * n)]
    if kind == "toolarge" and s == 1: toks[100] = 64
    head = [20240520 if kind != "badmagic" else 12345, 1, n] + [0] * 253
    data = struct.pack("<256i", *head) + struct.pack("<%dH" % n, *toks)
    if kind == "short" and s == 1: data = data[:-10]
    open("%s/train_%06d.bin" % (d, s), "wb").write(data)
    if kind == "mask":
        bits = bytearray((n + 7) // 8)
        for i in range(0, n, 50): bits[i // 8] |= 1 << (i % 8)
        open("%s/train_%06d.mask" % (d, s), "wb").write(struct.pack("<4i", 20240521, 1, n, 0) + bytes(bits))
PY
}
config() { # config NAME STAGE GLOB
    sed -e "s/^  zero_stage: 3/  zero_stage: $2/" "$SRC/configs/zero3_gpt.yaml" >"$1.yaml"
    printf 'model: {type: gpt, layers: 2, d_model: 32, heads: 4, seq_len: 16, vocab: 64}\nmicro_batch_size: 4\n' >"$1.zrt.yaml"
    printf 'data: {type: tokens, train: "%s"}\n' "$3" >>"$1.zrt.yaml"
}
launch() { timeout 120 "$ZRT" launch --config "$1.yaml" --file_store --steps "$2" --metrics "$1.jsonl" >"$1.out" 2>&1; }

shards good
config s0 0 "$D/good/train_*.bin"
config s3 3 "$D/good/train_*.bin"
launch s0 60 || bad "stage 0 on token shards: $(tail -3 s0.out)"
launch s3 60 || bad "stage 3 on token shards: $(tail -3 s3.out)"
/usr/bin/python3 - s0.jsonl s3.jsonl <<'PY' || fail=1
import json, sys
a, b = ([json.loads(l)["loss"] for l in open(f)] for f in sys.argv[1:3])
assert len(a) == 60 and a == b, "stages 0 and 3 differ: %s vs %s" % (a[:3], b[:3])
first, last = sum(a[:5]) / 5, sum(a[-5:]) / 5
assert last < first - 1.0, (first, last)
print("token shards: loss %.3f -> %.3f over 60 steps; stages 0 and 3 bitwise equal" % (first, last))
PY
# Evaluation: every 20 steps and at the end, on val shards; it changes nothing
# in training (the losses equal s0/s3's bit for bit), stages agree on it, it
# falls, and checkpoint_best keeps the lowest in ck/best.
shards val
evalcfg() { # evalcfg NAME STAGE
    config "$1" "$2" "$D/good/train_*.bin"
    sed -i "s|^data: .*|data: {type: tokens, train: \"$D/good/train_*.bin\", val: \"$D/val/train_*.bin\"}|" "$1.zrt.yaml"
    printf 'eval_interval: 20\neval_batches: 2\ncheckpoint_dir: %s/ck-%s\ncheckpoint_best: true\n' "$D" "$1" >>"$1.zrt.yaml"
}
evalcfg e0 0
evalcfg e3 3
launch e0 60 || bad "stage 0 with eval: $(tail -3 e0.out)"
launch e3 60 || bad "stage 3 with eval: $(tail -3 e3.out)"
/usr/bin/python3 - s3.jsonl e0.jsonl e3.jsonl <<'PY' || fail=1
import json, sys
plain, e0, e3 = ([json.loads(l) for l in open(f)] for f in sys.argv[1:4])
assert [r["loss"] for r in e3] == [r["loss"] for r in plain], "evaluation changed training"
v0 = [(r["step"], r["val_loss"]) for r in e0 if "val_loss" in r]
v3 = [(r["step"], r["val_loss"]) for r in e3 if "val_loss" in r]
assert [s for s, _ in v3] == [20, 40, 60], v3
assert v0 == v3, ("stages disagree on the validation loss", v0, v3)
assert v3[-1][1] < v3[0][1], v3
print("validation loss at steps 20/40/60: %s; stages 0 and 3 agree; training unchanged" %
      " / ".join("%.4f" % v for _, v in v3))
PY
grep -q "step 60: validation loss" e3.out || bad "no validation line: $(tail -3 e3.out)"
[ -s "$D/ck-e3/best/latest" ] && grep -q "lowest validation loss so far: saved as $D/ck-e3/best/step_00000" e3.out ||
    bad "checkpoint_best kept nothing"
config noval 3 "$D/good/train_*.bin"
printf 'eval_interval: 10\n' >>noval.zrt.yaml
timeout 30 "$ZRT" config check noval.yaml >noval.out 2>&1 && bad "eval_interval without data.val passed config check"
grep -q "zrt.eval_interval.*needs a validation set" noval.out || { bad "eval without val: message"; cat noval.out; }

shards masked mask
config m 3 "$D/masked/train_*.bin"
launch m 5 || bad "masked shards: $(tail -3 m.out)"
config none 3 "$D/nothing/train_*.bin"
timeout 30 "$ZRT" config check none.yaml >none.out 2>&1 && bad "a glob matching nothing passed config check"
grep -q "zrt.data.train.*matches no file" none.out || { bad "config check's message"; cat none.out; }
for kind in badmagic short toolarge; do
    shards "$kind" "$kind"
    config "$kind" 3 "$D/$kind/train_*.bin"
    launch "$kind" 3 && bad "$kind shards trained"
    where=offset; [ "$kind" = short ] && where="truncated: [0-9]* bytes" # its size is the place
    grep -q "$kind/train_00000[01].bin" "$kind.out" && grep -q "$where" "$kind.out" ||
        { bad "$kind: the error names no file and place"; tail -3 "$kind.out"; }
done
grep -h "offset\|truncated" badmagic.out short.out toolarge.out | sed 's/^\[rank [0-9]*\] /  /' | sort -u | head -3
[ $fail = 0 ] && echo "token shards: trained, masked, and bad shards refused naming file and offset"
exit $fail
