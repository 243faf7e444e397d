#!/usr/bin/env bash
# test_sample.sh: `zrt sample` (docs/sample.md).
#  - a tiny random GPT-2 made by transformers (tests/sample_hf.py; no
#    download): greedy `zrt sample --hf DIR --prompt-ids ... --ids` equals
#    model.generate(do_sample=False) token for token, for five prompts --
#    two stop at the EOS of generation_config.json, one at the model's
#    seq_len, which zrt says on stderr; on the GPU too where there is one;
#  - sampling: the same --seed gives the same tokens, another seed others;
#    --top-k 1 at any temperature is greedy;
#  - a GPT trained here (a BPE trained by `tokenizers` on six lines, the
#    lines as documents through `zrt tokenize`, 300 steps at 2 ranks, ZeRO
#    stage 3) reproduces each memorised line, text in and text out (one has
#    é and 日本: printed as whole characters), stopping at EOS; the
#    checkpoint and its `zrt shards export-hf` give the same ids; a
#    tokenizer whose post-processor puts a special token first (as Llama's
#    puts BOS) frames the prompt as tokenizers does, and it is not printed;
#  - bad input fails naming what is wrong: a missing checkpoint, a prompt
#    longer than seq_len, --top-p outside (0, 1], --top-k without
#    sampling, an id outside the vocabulary, cuda without a GPU.
# The Llama half is test_sample_llama.sh. Skips when /usr/bin/python3 has
# neither transformers nor tokenizers.
set -u
ZRT=$(realpath "${ZRT_BIN:-build/bin/zrt}")
SRC=$(realpath "${ZRT_SRC:-.}")
PY=/usr/bin/python3
D=$TMPDIR
. "$SRC/tests/lib.sh" # fail, expect, has, gpu_present
cd "$D" || exit 1

# ---- bad input that needs no model ----
expect 1 "a missing checkpoint" -- "$ZRT" sample --checkpoint "$D/none" --prompt-ids "1 2"
has "checkpoint $D/none: .*not a zrt checkpoint" "a missing checkpoint"
for p in 0 1.5 -0.1; do
    expect 2 "--top-p $p" -- "$ZRT" sample --checkpoint "$D/none" --prompt-ids 1 --temperature 1 --top-p "$p"
    has "top-p $p: want a number in (0, 1\]" "--top-p $p"
done
expect 2 "--top-k without sampling" -- "$ZRT" sample --checkpoint "$D/none" --prompt-ids 1 --top-k 5
has "apply only when sampling: give --temperature > 0" "--top-k without sampling"

# ---- a random GPT-2 against transformers' generate ----
$PY "$SRC/tests/sample_hf.py" models "$D/hf" >models.out 2>&1
rc=$?
[ $rc = 77 ] && { tail -1 models.out; exit 77; }
[ $rc = 0 ] || { cat models.out; echo "FAIL: sample_hf.py models"; exit 1; }
$PY "$SRC/tests/sample_hf.py" compare "$ZRT" "$D/hf" gpt2 || fail "gpt2: zrt's greedy tokens differ from generate's"
if gpu_present >/dev/null; then
    $PY "$SRC/tests/sample_hf.py" compare "$ZRT" "$D/hf" gpt2 --device cuda || fail "gpt2 on cuda differs from generate"
else
    expect 1 "cuda without a GPU" -- "$ZRT" sample --hf "$D/hf/gpt2" --prompt-ids 1 --ids --device cuda
    has "device cuda: .*CUDA" "cuda without a GPU"
fi

gen() { "$ZRT" sample --hf "$D/hf/gpt2" --prompt-ids "5 6 7" --ids --max-new-tokens 20 "$@" 2>/dev/null; }
a=$(gen --temperature 1.5 --seed 5) b=$(gen --temperature 1.5 --seed 5) c=$(gen --temperature 1.5 --seed 6)
[ -n "$a" ] && [ "$a" = "$b" ] || fail "the same seed gave '$a' and '$b'"
[ "$a" != "$c" ] || fail "seeds 5 and 6 gave the same 20 tokens: '$a'"
[ "$(gen --temperature 2 --top-k 1 --seed 3)" = "$(gen)" ] || fail "--top-k 1 is not greedy"
echo "sampling: seed 5 twice: $a; seed 6: $c"

long=$(seq -s ' ' 1 33)
expect 1 "a prompt longer than seq_len" -- "$ZRT" sample --hf "$D/hf/gpt2" --prompt-ids "$long" --ids
has "the prompt has 33 tokens; the model's seq_len is 32" "a prompt longer than seq_len"
expect 1 "an id outside the vocabulary" -- "$ZRT" sample --hf "$D/hf/gpt2" --prompt-ids "3 96" --ids
has "prompt token 2 is id 96; the model's vocab is 96" "an id outside the vocabulary"

# ---- a model trained here reproduces what it memorised ----
$PY "$SRC/tests/sample_hf.py" corpus "$D" >corpus.out 2>&1 || { cat corpus.out; fail "sample_hf.py corpus"; exit 1; }
vocab=$(tail -1 corpus.out)
timeout 60 "$ZRT" tokenize --tokenizer tokenizer.json --out "$D/data/train" corpus.jsonl >tok.out 2>&1 ||
    { cat tok.out; fail "zrt tokenize"; }
cat >train.json <<JSON
{"train_batch_size": 16, "train_micro_batch_size_per_gpu": 8, "gradient_clipping": 1.0,
 "optimizer": {"type": "AdamW", "params": {"lr": 0.003, "weight_decay": 0.0}}, "zero_optimization": {"stage": 3},
 "zrt": {"model": {"type": "gpt", "layers": 2, "d_model": 64, "heads": 4, "seq_len": 32, "vocab": $vocab},
         "data": {"type": "tokens", "train": "$D/data/train_*.bin"}, "steps": 300, "device": "cpu",
         "checkpoint_dir": "$D/ck"}}
JSON
start=$(date +%s%N)
timeout 60 "$ZRT" launch --config train.json --file_store >train.out 2>&1 || { tail -5 train.out; fail "training"; }
echo "trained in $((($(date +%s%N) - start) / 1000000)) ms: $(grep 'done:' train.out | sed 's/.*loss/loss/')"
timeout 60 "$ZRT" shards export-hf "$D/ck" "$D/exported" >export.out 2>&1 || { cat export.out; fail "export-hf"; }
while IFS= read -r line; do
    first=$(echo "$line" | cut -d' ' -f1-3)
    "$ZRT" sample --checkpoint "$D/ck" --tokenizer tokenizer.json --prompt "$first" >out.txt 2>err.txt ||
        { cat err.txt; fail "sample from the checkpoint"; continue; }
    [ "$(cat out.txt)" = "$line" ] || fail "'$first' gave '$(cat out.txt)', want '$line'"
    grep -q "stopped at EOS" err.txt || fail "'$first' did not stop at EOS: $(cat err.txt)"
    ids=$("$ZRT" sample --checkpoint "$D/ck" --tokenizer tokenizer.json --prompt "$first" --ids 2>/dev/null)
    hf=$("$ZRT" sample --hf "$D/exported" --tokenizer tokenizer.json --prompt "$first" --ids 2>/dev/null)
    [ -n "$ids" ] && [ "$ids" = "$hf" ] || fail "'$first': the checkpoint gave '$ids', its export '$hf'"
done <lines.txt
# The tokenizer's post-processor frames a text prompt as transformers' tokenizer(text) does (Llama's BOS):
# the same ids as tokenizers gives, and the special token is not printed.
first=$(head -1 lines.txt | cut -d' ' -f1-3)
framed=$("$ZRT" sample --checkpoint "$D/ck" --tokenizer tok_bos.json --prompt "$first" --ids 2>/dev/null)
given=$("$ZRT" sample --checkpoint "$D/ck" --tokenizer tok_bos.json --prompt-ids "$(cat bos_ids.txt)" --ids 2>/dev/null)
[ -n "$framed" ] && [ "$framed" = "$given" ] || fail "a framed prompt gave '$framed'; the ids tokenizers frames, '$given'"
text=$("$ZRT" sample --checkpoint "$D/ck" --tokenizer tok_bos.json --prompt "$first" 2>/dev/null)
[ "$text" = "$(head -1 lines.txt)" ] || fail "with the BOS-framing tokenizer, '$first' gave '$text'"
[ "$fails" = 0 ] && echo "memorised: $(wc -l <lines.txt) lines reproduced from their first 3 words ($(tail -1 err.txt))"
[ "$fails" = 0 ] || exit 1
