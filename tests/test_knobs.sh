#!/usr/bin/env bash
# test_knobs.sh: the ZRT_* variables are one registry (zrt/internal/knobs.h):
#  - no getenv of a ZRT_ name in runtime/, offload/, control/, tools/ or
#    kernels/ outside runtime/core/knobs.c (fault sites go through
#    zrt/internal/fault.h, the rest through zrt_knob_*);
#  - `zrt report --json` lists every knob, and docs/knobs.md documents each
#    one with the table's type and default (a report with nothing set),
#    and no other ZRT_* name.
set -u
ZRT=${ZRT_BIN:-build/bin/zrt}
SRC=${ZRT_SRC:-.}
source "$SRC/tests/lib.sh"
cd "$SRC" || exit 1
direct=$(grep -rn 'getenv("ZRT_' runtime offload control tools kernels --include='*.c' --include='*.h' --include='*.cu' |
         grep -v '^runtime/core/knobs\.c:' | grep -v '^runtime/include/zrt/internal/knobs\.h:')
[ -z "$direct" ] || fail "getenv of a ZRT_ name outside the knob registry: $direct"
env -i PATH="$PATH" timeout 60 "$ZRT" report --json >"$TMPDIR/report.json" 2>&1 || fail "zrt report --json exit $?"
python3 - "$TMPDIR/report.json" "$SRC/docs/knobs.md" <<'PY' || fail "docs/knobs.md and the knob table differ"
import json, re, sys
knobs = json.load(open(sys.argv[1]))["knobs"]
doc = open(sys.argv[2]).read()
rows = {m.group(1): (m.group(2), m.group(3)) for m in
        re.finditer(r'^\| `(ZRT_\w+)` \| (\w+) \| `?([^|`]*?)`? \|', doc, flags=re.M)}
table = {}
for line in knobs:
    m = re.match(r'(ZRT_\w+)=(.*?) \((set|default|unset); (\w+)\): ', line)
    assert m, line
    table[m.group(1)] = (m.group(4), m.group(2))  # nothing set: the value is the default
problems = ['%s: not in docs/knobs.md' % n for n in table if n not in rows]
problems += ['%s: documented but not in the table' % n for n in rows if n not in table]
problems += ['%s: %s in docs, %s in the table' % (n, rows[n], t) for n, t in table.items()
             if n in rows and rows[n] != (t[0], t[1] or '-')]
for p in problems: print(p)
sys.exit(1 if problems else 0)
PY
echo "knobs: one registry, listed by zrt report, documented in docs/knobs.md"
[ "$fails" = 0 ]
