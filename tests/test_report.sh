#!/usr/bin/env bash
# test_report.sh: `zrt report`'s contract: it exits 0 whatever it finds and
# prints every line's label; --json is one JSON object with the same keys; a
# set ZRT_* variable is listed; a bad flag is a usage error (2); without a
# CUDA driver (this machine) the driver and GPU lines say so instead of
# crashing, and with one they list the GPUs.
set -u
ZRT=${ZRT_BIN:-build/bin/zrt}
fails=0
fail() { echo "FAIL: $1"; cat "$TMPDIR/out"; fails=$((fails + 1)); }

ZRT_FOO=bar timeout 60 "$ZRT" report >"$TMPDIR/out" 2>&1 || fail "zrt report exit $?"
for label in "zrt:" "build: CUDA: " "compiler:" "CUDA driver:" "GPU" "CUDA runtime:" "NCCL:" "cuBLASLt:" "io_uring:" \
    "CPU:" "OpenBLAS kernels:" "pinned-memory limit:" "transparent huge pages:" "environment:" "knob ZRT_DEVICE_CHECK="; do
    grep -q "^$label" "$TMPDIR/out" || fail "no '$label' line"
done
grep -q "^environment:.* ZRT_FOO=bar" "$TMPDIR/out" || fail "ZRT_FOO=bar not listed"
grep -q "^knob ZRT_STORE_SCOPE=job/gen0 (default; string): " "$TMPDIR/out" || fail "a knob's default not listed"
if ! grep -q "^GPU [0-9]*: " "$TMPDIR/out"; then # no GPU listed: the driver line must say why
    grep -q "^CUDA driver: no driver (.\+)" "$TMPDIR/out" || grep -q "^GPU: none (.\+)" "$TMPDIR/out" ||
        fail "no GPU listed and no reason given"
fi

ZRT_FOO=bar timeout 60 "$ZRT" report --json >"$TMPDIR/out" 2>&1 || fail "zrt report --json exit $?"
python3 - "$TMPDIR/out" <<'PY' || fail "report --json"
import json, sys
d = json.load(open(sys.argv[1]))
keys = {"zrt", "build", "compiler", "cuda_driver", "gpus", "cuda_runtime", "nccl", "cublaslt", "io_uring", "cpu",
        "openblas", "memlock", "transparent_hugepage", "environment", "knobs"}
assert set(d) == keys, sorted(set(d) ^ keys)
assert d["environment"].get("ZRT_FOO") == "bar", d["environment"]
assert any(k.startswith("ZRT_FOO") for k in d["knobs"]) is False and len(d["knobs"]) > 10, d["knobs"]
assert isinstance(d["gpus"], list) or d["gpus"].startswith("none ("), d["gpus"]
PY

timeout 10 "$ZRT" report --frob >"$TMPDIR/out" 2>&1
[ $? = 2 ] || fail "a bad flag: want exit 2"
grep -q "unknown option --frob" "$TMPDIR/out" || fail "bad flag message"
timeout 10 "$ZRT" report --help >"$TMPDIR/out" 2>&1 || fail "report --help exit $?"
grep -q "usage: zrt report" "$TMPDIR/out" || fail "report --help text"
[ "$fails" = 0 ] && echo "zrt report: every line, --json keys, ZRT_FOO listed, bad flag exit 2"
exit $((fails > 0))
