#!/usr/bin/env bash
# test_exports.sh: the libraries export exactly their public API:
#  - libzrt.so: every defined dynamic symbol is listed in runtime/libzrt.map,
#    every listed one is exported, and the list is exactly the functions
#    declared in runtime/include/zrt.h and runtime/include/zrt/*.h;
#  - libzrt_control.a: its global symbols are exactly the functions that
#    control/control.h declares (internals and protobuf-c's are local);
#  - every one of them starts with zrt_.
set -u
SRC=${ZRT_SRC:-.}
BUILD=${ZRT_BUILD:-build}
for lib in "$BUILD/lib/libzrt.so" "$BUILD/lib/libzrt_control.a"; do
    [ -f "$lib" ] || { echo "FAIL: $lib was not built"; exit 1; }
done
nm -D --defined-only "$BUILD/lib/libzrt.so" | awk '$2 ~ /^[TDBRWVi]$/ {sub(/@.*/, "", $3); print $3}' >"$TMPDIR/so.txt"
nm -g --defined-only "$BUILD/lib/libzrt_control.a" | awk 'NF == 3 && $2 ~ /^[TDBRWVi]$/ {print $3}' >"$TMPDIR/ctl.txt"
python3 - "$SRC" "$TMPDIR/so.txt" "$TMPDIR/ctl.txt" <<'PY'
import glob, re, sys
src, so_file, ctl_file = sys.argv[1:]

def declared(paths):
    names = set()
    for path in paths:
        text = re.sub(r'/\*.*?\*/', '', open(path).read(), flags=re.S)
        text = re.sub(r'^#.*(\\\n.*)*$', '', text, flags=re.M)  # macros are not functions
        names |= set(re.findall(r'^[A-Za-z_][\w \t*]*?\b(zrt_\w+)\s*\(', text, flags=re.M))
    return names

public = declared([src + '/runtime/include/zrt.h'] + sorted(glob.glob(src + '/runtime/include/zrt/*.h')))
listed = set(re.findall(r'^\s+(\w+);', re.sub(r'/\*.*?\*/', '', open(src + '/runtime/libzrt.map').read(), flags=re.S),
                        flags=re.M)) - {'*'}
exported = set(open(so_file).read().split())
control_api = declared([src + '/control/control.h'])
control = set(open(ctl_file).read().split())
problems = []
def report(what, names):
    if names: problems.append('%s: %s' % (what, ', '.join(sorted(names))))
report('libzrt.so exports what libzrt.map does not list', exported - listed)
report('libzrt.map lists what libzrt.so does not export', listed - exported)
report('libzrt.map lists what no public header declares', listed - public)
report('public headers declare what libzrt.map does not list', public - listed)
report('libzrt_control.a exports what control.h does not declare', control - control_api)
report('control.h declares what libzrt_control.a does not define', control_api - control)
report('exported names without the zrt_ prefix', {n for n in exported | control if not n.startswith('zrt_')})
for p in problems: print('FAIL: ' + p)
print('libzrt.so: %d exported functions = libzrt.map = the public headers; libzrt_control.a: %d = control.h'
      % (len(exported), len(control)))
sys.exit(1 if problems else 0)
PY
