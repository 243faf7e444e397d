#!/usr/bin/env bash
# test_headers.sh: every header of runtime/include compiles alone, first in
# its translation unit, with gcc and clang (-std=c11 -Wall -Wextra -Werror),
# and no header but zrt.h's parts is included by them: none of zrt/*.h or
# zrt/internal/*.h includes zrt.h (the umbrella includes them, never the
# other way round), and no public header includes the internal tier.
set -u
SRC=${ZRT_SRC:-.}
source "$SRC/tests/lib.sh"
cd "$SRC/runtime/include" || exit 1
headers=(zrt.h zrt/*.h zrt/internal/*.h)
for cc in gcc clang; do
    command -v "$cc" >/dev/null || { fail "$cc is not installed"; continue; }
    for h in "${headers[@]}"; do
        printf '#include "%s"\n' "$h" >"$TMPDIR/alone.c"
        "$cc" -std=c11 -Wall -Wextra -Werror -fsyntax-only -I. "$TMPDIR/alone.c" >"$TMPDIR/out" 2>&1 ||
            { fail "$h does not compile alone with $cc"; cat "$TMPDIR/out"; }
    done
done
for h in zrt/*.h zrt/internal/*.h; do
    grep -q '^#include "zrt\.h"' "$h" && fail "$h includes zrt.h back"
done
for h in zrt.h zrt/*.h; do
    grep -q '^#include "zrt/internal/' "$h" && fail "public $h includes the internal tier"
done
echo "${#headers[@]} headers compile alone with gcc and clang"
[ "$fails" = 0 ]
