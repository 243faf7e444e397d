# lib.sh: what the shell tests share; they source it ("$ZRT_SRC/tests/lib.sh").

# fail MESSAGE: counts a failure (the script ends with `[ "$fails" = 0 ]`).
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# address_in FILE TEXT: waits up to 10 s for "TEXT HOST:PORT" to appear in FILE
# (a coordinator's "listening on", a launch's "zrt status") and prints HOST:PORT,
# or nothing when it never came.
address_in() {
    local addr=""
    for _ in $(seq 100); do
        addr=$(grep -o "$2 [0-9.:]*" "$1" 2>/dev/null | head -1 | awk '{print $NF}')
        [ -n "$addr" ] && break
        sleep 0.1
    done
    echo "$addr"
}

# gpu_present: prints where this machine's GPU was seen and succeeds, or fails
# silently -- the same two places as tests/gpu_present.h (nvidia-smi's list,
# the driver's /proc entries). A GPU test that cannot use the GPU fails where
# this succeeds, and skips only where it does not.
gpu_present() {
    local gpu
    gpu=$(nvidia-smi --list-gpus 2>/dev/null | grep -m1 '^GPU ')
    [ -n "$gpu" ] && { echo "nvidia-smi lists '$gpu'"; return 0; }
    gpu=$(ls /proc/driver/nvidia/gpus 2>/dev/null | head -1)
    [ -n "$gpu" ] && { echo "the NVIDIA driver lists GPU $gpu"; return 0; }
    return 1
}

# expect RC WHAT -- CMD... runs CMD with its output in $TMPDIR/out and fails
# unless it exits RC; has TEXT WHAT fails unless $TMPDIR/out matches TEXT.
expect() {
    local want=$1 what=$2; shift 3
    "$@" >"$TMPDIR/out" 2>&1
    local rc=$?
    [ "$rc" = "$want" ] || { fail "$what: exit $rc, want $want"; cat "$TMPDIR/out"; }
}
has() { grep -q -- "$1" "$TMPDIR/out" || { fail "$2: no '$1'"; cat "$TMPDIR/out"; }; }

# main_job_data ZRT SRC: the main job's token shards (tools/main-job's first
# step) in build/main-job/data of the working directory, made when missing,
# so that configs/main.yaml -- whose data they are -- validates on a fresh
# checkout. False when zrt tokenize failed.
main_job_data() {
    ls build/main-job/data/val_*.bin >/dev/null 2>&1 && return 0
    "$1" tokenize --tokenizer "$2/configs/tokenizer.json" --out build/main-job/data/train --val-fraction 0.1 \
        "$2"/docs/*.md "$2/README.md" >/dev/null 2>&1
}
