#!/bin/bash
# test_main_job.sh: the README's first command's job (tools/main-job) on a
# fresh build: zrt's tokenizer on the project's docs, ZeRO-3 training of the
# small Llama on 2 CPU ranks with evaluation and the best checkpoint kept, and
# three samples from it -- under two minutes, each part doing what it says.
source "$(dirname "$0")/lib.sh"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
start=$(date +%s)
if ! timeout 120 "$ZRT_SRC/tools/main-job" > "$out/log" 2>&1; then
    tail -20 "$out/log"
    echo "FAIL: tools/main-job failed or took over 2 minutes"
    exit 1
fi
seconds=$(( $(date +%s) - start ))
grep -q "zrt tokenize: 1[0-9] documents" "$out/log" || fail "the docs were not tokenized"
grep -q "validation loss" "$out/log" || fail "no validation loss printed"
grep -q "saved as build/main-job/checkpoints/best" "$out/log" || fail "no best checkpoint kept"
[ "$(grep -c "stopped at --max-new-tokens" "$out/log")" = 3 ] || fail "not three samples of 48 tokens"
first=$(grep -m1 -o "loss [0-9.]* -> [0-9.]*" "$out/log")
read -r _ before _ after <<< "$first"
awk -v a="$before" -v b="$after" 'BEGIN { exit !(b < a - 2) }' || fail "the training loss did not fall: $first"
[ "$fails" = 0 ] && echo "main job: $seconds s, training $first, 3 samples"
[ "$fails" = 0 ] || exit 1
