#!/usr/bin/env bash
# test_sample_llama.sh: greedy `zrt sample --hf DIR` of a tiny random
# LlamaForCausalLM (2 layers, 4 heads over 2 KV heads, untied head; made by
# tests/sample_hf.py, no download) equals transformers' generate token for
# token for five prompts (two stop at EOS, one at seq_len); on the GPU too
# where there is one. Skips, saying why, while zrt cannot make Llama models,
# and without transformers.
set -u
ZRT=$(realpath "${ZRT_BIN:-build/bin/zrt}")
SRC=$(realpath "${ZRT_SRC:-.}")
. "$SRC/tests/lib.sh" # gpu_present
/usr/bin/python3 "$SRC/tests/sample_hf.py" models "$TMPDIR/hf" >"$TMPDIR/models.out" 2>&1
rc=$?
[ $rc = 0 ] || { tail -1 "$TMPDIR/models.out"; exit $rc; }
/usr/bin/python3 "$SRC/tests/sample_hf.py" compare "$ZRT" "$TMPDIR/hf" llama || exit $?
if gpu_present >/dev/null; then
    /usr/bin/python3 "$SRC/tests/sample_hf.py" compare "$ZRT" "$TMPDIR/hf" llama --device cuda || exit 1
fi
