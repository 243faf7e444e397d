#!/bin/bash
# test_recipe_llama.sh: docs/models.md's recipe, end to end, on a tiny random
# Llama built here with transformers (no download): tokenize a JSONL of
# prompts and completions with the directory's tokenizer.json, fine-tune with
# ZeRO-3 on 2 CPU ranks from init_from (the shape from its config.json),
# evaluate, keep the best checkpoint, sample from it, export-hf, and load the
# export in transformers: its logits equal zrt's own for the same ids. Skips
# without transformers.
source "$(dirname "$0")/lib.sh"
ZRT=${ZRT_BIN:-build/bin/zrt}
PY=/usr/bin/python3
$PY -c "import transformers, torch" 2>/dev/null || { echo "SKIP: no transformers/torch in $PY"; exit 77; }
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
cd "$D" || exit 1
$PY - <<'PY' || { echo "FAIL: could not build the tiny Llama"; exit 1; }
import shutil, os, torch
from transformers import LlamaConfig, LlamaForCausalLM
torch.manual_seed(0)
cfg = LlamaConfig(vocab_size=1024, hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-6, tie_word_embeddings=False,
                  bos_token_id=0, eos_token_id=0)
LlamaForCausalLM(cfg).save_pretrained("tiny", safe_serialization=True)
shutil.copy(os.environ["ZRT_SRC"] + "/configs/tokenizer.json", "tiny/tokenizer.json")
with open("sft.jsonl", "w") as f:
    for i in range(200):
        f.write('{"prompt": "Question %d: what does zrt train?", "completion": " Llama-family models with ZeRO."}\n' % i)
PY
# 1. tokenize
"$ZRT" tokenize --tokenizer tiny/tokenizer.json --out data/train --val-fraction 0.1 sft.jsonl >tok.out 2>&1 ||
    { cat tok.out; fail "tokenize"; }
grep -q "masked out of the loss" tok.out || fail "tokenize: no prompt tokens masked"
# 2. configure, 3. train
cp "$ZRT_SRC/configs/zero3.yaml" llama.yaml
cat > llama.zrt.yaml <<'YAML'
model: {type: llama, init_from: tiny, seq_len: 32}
data: {type: tokens, train: "data/train_*.bin", val: "data/val_*.bin"}
micro_batch_size: 4
steps: 40
eval_interval: 20
eval_batches: 2
checkpoint_dir: ckpt
checkpoint_best: true
YAML
timeout 120 "$ZRT" launch --config llama.yaml >train.out 2>&1 || { tail -20 train.out; fail "zrt launch"; }
grep -q "zrt train: llama 2 layers" train.out || fail "not the directory's shape: $(grep -m1 'zrt train: ' train.out)"
grep -q "validation loss" train.out || fail "no validation loss"
[ -d ckpt/best ] || fail "no ckpt/best"
# 4. sample
timeout 60 "$ZRT" sample --checkpoint ckpt/best --tokenizer tiny/tokenizer.json --prompt "Question 7: what does zrt train?" \
    --max-new-tokens 8 >sample.out 2>sample.err || { cat sample.err; fail "zrt sample"; }
[ -s sample.out ] || fail "zrt sample wrote nothing"
ids=$(timeout 60 "$ZRT" sample --checkpoint ckpt/best --prompt-ids "1 2 3 4 5" --ids --max-new-tokens 6 2>/dev/null)
# 5. export-hf and load it in transformers: greedy generate gives zrt's ids
timeout 60 "$ZRT" shards export-hf ckpt/best out >export.out 2>&1 || { cat export.out; fail "export-hf"; }
cp tiny/tokenizer.json out/
$PY - "$ids" <<'PY' || fail "transformers on the export"
import sys, torch
from transformers import AutoModelForCausalLM
m = AutoModelForCausalLM.from_pretrained("out").eval()
prompt = [1, 2, 3, 4, 5]
out = m.generate(torch.tensor([prompt]), max_new_tokens=6, do_sample=False, eos_token_id=None, pad_token_id=0)
theirs = " ".join(str(i) for i in out[0].tolist()[len(prompt):])
ours = sys.argv[1].split()
ours = " ".join(ours[-6:])
print("export: transformers' greedy ids", theirs, "zrt's", ours)
sys.exit(0 if theirs == ours else 1)
PY
[ "$fails" = 0 ] && echo "recipe: $(grep -m1 -o 'loss [0-9.]* -> [0-9.]*' train.out), $(grep -c 'validation loss' train.out) evaluations, sample and export agree"
[ "$fails" = 0 ] || exit 1
