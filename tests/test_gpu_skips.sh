#!/usr/bin/env bash
# test_gpu_skips.sh: honest skips. Every GPU test program (build/tests/
# test_cuda_*) and test_cuda_launch.sh skips (exit 77) on this machine, which
# has no GPU; with a fake `nvidia-smi` on PATH that lists a GPU, the same
# programs, unable to open the cuda device, must FAIL naming the GPU -- a
# machine whose GPU zrt cannot use never reports "0 failed". Skips where the
# machine really has a GPU (the GPU suite itself runs there).
set -u
SRC=${ZRT_SRC:-.}
BUILD=${ZRT_BUILD:-build}
. "$SRC/tests/lib.sh"
if where=$(gpu_present); then echo "this machine has a GPU ($where): the GPU suite runs here"; exit 77; fi
programs=$(ls "$BUILD"/tests/test_cuda_* 2>/dev/null | grep -v '\.o$')
[ -n "$programs" ] || { echo "built without CUDA: no GPU test programs"; exit 77; }
mkdir -p "$TMPDIR/fake"
printf '#!/bin/sh\necho "GPU 0: NVIDIA H200 (UUID: GPU-fake)"\n' >"$TMPDIR/fake/nvidia-smi"
chmod +x "$TMPDIR/fake/nvidia-smi"
fail=0
run() { # run PATH-prefix expected-status name argv...
    local prefix=$1 want=$2 name=$3; shift 3
    local out="$TMPDIR/$name.out" rc
    PATH="$prefix$PATH" timeout 60 "$@" >"$out" 2>&1
    rc=$?
    if [ "$rc" != "$want" ]; then
        echo "FAIL: $name exited $rc, want $want${prefix:+ (fake nvidia-smi)}"; tail -3 "$out"; fail=1
    elif [ "$want" = 1 ] && ! grep -q "this machine has a GPU (nvidia-smi lists 'GPU 0: NVIDIA H200" "$out"; then
        echo "FAIL: $name failed without naming the GPU"; tail -3 "$out"; fail=1
    fi
}
n=0
for p in $programs; do
    name=$(basename "$p")
    run "" 77 "$name" "$p"
    run "$TMPDIR/fake:" 1 "$name-fake" "$p"
    n=$((n + 1))
done
run "" 77 test_cuda_launch bash "$SRC/tests/test_cuda_launch.sh"
run "$TMPDIR/fake:" 1 test_cuda_launch-fake bash "$SRC/tests/test_cuda_launch.sh"
[ $fail = 0 ] && echo "$n GPU test programs and test_cuda_launch.sh: skip without a GPU, fail with a GPU they cannot use"
exit $fail
