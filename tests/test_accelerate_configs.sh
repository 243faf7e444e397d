#!/usr/bin/env bash
# test_accelerate_configs.sh: every shipped Accelerate YAML is accepted by
# Accelerate's own config loader (accelerate.commands.config.config_args),
# so one file serves `accelerate launch` and `zrt launch`; zrt's settings
# live in NAME.zrt.yaml beside it. The same loader refuses a YAML with an
# inline zrt: section -- the check can fail. And zrt still reads an inline
# zrt: section, takes --zrt-config FILE, and refuses both at once by name.
# Skips when accelerate cannot be imported (tools/bootstrap installs it from PyPI).
set -u
ZRT=${ZRT_BIN:-build/bin/zrt}
SRC=${ZRT_SRC:-.}
/usr/bin/python3 -c 'import accelerate' 2>/dev/null || {
    echo "accelerate is not installed for /usr/bin/python3 (tools/bootstrap installs it from PyPI where it can)"; exit 77; }
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
cat >"$TMPDIR/check.py" <<'PY'
import sys
from accelerate.commands.config.config_args import load_config_from_file
want_ok = sys.argv[1] == "ok"
for path in sys.argv[2:]:
    try:
        cfg = load_config_from_file(path)
        assert want_ok, "%s: accelerate accepted an inline zrt: section" % path
        print("%s: accelerate %s accepts it (%s, %s processes)" % (path, __import__("accelerate").__version__,
              cfg.distributed_type, cfg.num_processes))
    except ValueError as e:
        assert not want_ok, "%s: %s" % (path, e)
        print("%s: refused as expected (%s)" % (path, str(e)[:80]))
PY
shipped=$(ls "$SRC"/configs/*.yaml | grep -v '\.zrt\.yaml$')
/usr/bin/python3 "$TMPDIR/check.py" ok $shipped || fail "accelerate refuses a shipped config"
{ cat "$SRC/configs/zero2.yaml"; echo "zrt:"; sed 's/^/  /' "$SRC/configs/zero2.zrt.yaml" | grep -v '^  #'; } >"$TMPDIR/inline.yaml"
/usr/bin/python3 "$TMPDIR/check.py" refused "$TMPDIR/inline.yaml" || fail "accelerate accepted zrt: inline"
# zrt: the inline section still works; --zrt-config; both at once is an error naming both files.
"$ZRT" config check "$TMPDIR/inline.yaml" >"$TMPDIR/out" 2>&1 || { fail "inline zrt: section"; cat "$TMPDIR/out"; }
cp "$SRC/configs/zero2.yaml" "$TMPDIR/plain.yaml"
printf 'model: {type: gpt, layers: 1, d_model: 16, heads: 2, seq_len: 8, vocab: 16}\nsteps: 7\n' >"$TMPDIR/mine.yaml"
"$ZRT" train --config "$TMPDIR/plain.yaml" --zrt-config "$TMPDIR/mine.yaml" --num_processes 1 >"$TMPDIR/out" 2>&1 \
    || { fail "--zrt-config"; cat "$TMPDIR/out"; }
grep -q "gpt 1 layers" "$TMPDIR/out" && grep -q "done: 7 steps" "$TMPDIR/out" || { fail "--zrt-config not applied"; cat "$TMPDIR/out"; }
cp "$SRC/configs/zero2.zrt.yaml" "$TMPDIR/inline.zrt.yaml"
"$ZRT" config check "$TMPDIR/inline.yaml" >"$TMPDIR/out" 2>&1 && fail "zrt: in both places must fail"
grep -q "inline.yaml: zrt: set here and in .*inline.zrt.yaml: keep one" "$TMPDIR/out" || { fail "both-places message"; cat "$TMPDIR/out"; }
[ "$fails" = 0 ] || exit 1
echo "accelerate configs ok"
