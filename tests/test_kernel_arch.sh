#!/usr/bin/env bash
# test_kernel_arch.sh: every CUDA object of the build (kernels/*.cu) holds
# sm_90 machine code and compute_90 PTX (Hopper, and newer GPUs by JIT), read
# from the objects' fat binaries by tests/fatbin_arch.py; and the check
# fires: an object built for sm_80 only is refused. Skips in a build
# without CUDA (no objects).
set -u
SRC=${ZRT_SRC:-.}
BUILD=${ZRT_BUILD:-build}
objects=$(ls "$BUILD"/obj/kernels/*.o 2>/dev/null)
[ -n "$objects" ] || { echo "built without CUDA: no kernel objects"; exit 77; }
fail=0
# shellcheck disable=SC2086
python3 "$SRC/tests/fatbin_arch.py" $objects >"$TMPDIR/arch.txt" || fail=1
cat "$TMPDIR/arch.txt"
while read -r line; do
    case "$line" in
    *" sm_90"*compute_90* | *compute_90*" sm_90"*) ;;
    *) echo "FAIL: not sm_90 + compute_90: $line"; fail=1 ;;
    esac
done <"$TMPDIR/arch.txt"
[ "$(wc -l <"$TMPDIR/arch.txt")" -ge 2 ] || { echo "FAIL: fewer than 2 kernel objects"; fail=1; }
# The check fires: sm_80 code only.
NVCC=${CUDA_HOME:-/usr/local/cuda}/bin/nvcc
printf '__global__ void k(float *x) { x[0] = 1.0f; }\n' >"$TMPDIR/k.cu"
if "$NVCC" -gencode arch=compute_80,code=sm_80 -c "$TMPDIR/k.cu" -o "$TMPDIR/k.o" 2>"$TMPDIR/nvcc.txt"; then
    line=$(python3 "$SRC/tests/fatbin_arch.py" "$TMPDIR/k.o")
    echo "$line"
    case "$line" in
    *sm_80*) case "$line" in *sm_90*) echo "FAIL: sm_80 object read as sm_90"; fail=1 ;; esac ;;
    *) echo "FAIL: the sm_80 object was not read as sm_80"; fail=1 ;;
    esac
else
    echo "FAIL: nvcc could not build the sm_80 probe: $(cat "$TMPDIR/nvcc.txt")"; fail=1
fi
[ $fail = 0 ] && echo "kernel objects: sm_90 + compute_90; an sm_80-only object is told apart"
exit $fail
