#!/usr/bin/env bash
# test_launch_jobs.sh: jobs on one machine never collide and leave nothing
# behind (issue #24):
#  1. two launches with main_process_port 0 give their ranks different
#     MASTER_PORTs (the ports actually chosen, not 29500);
#  2. a second job on the same checkpoint_dir is refused at once, naming the
#     first (pid, host, start time); after kill -9 of the first, a new one starts;
#  3. kill -9 of a --file_store launch: its ranks are gone within 2 s;
#  4. a killed job's token file, launch directory and progress file are
#     removed by the next launch;
#  5. SIGHUP ends a launch as SIGTERM does (ranks stopped, token file removed);
#  6. SIGINT to a running launch returns in under 1 s.
# Everything started here is killed at exit; every wait is bounded.
set -u
ZRT=${ZRT_BIN:-build/bin/zrt}
SRC=${ZRT_SRC:-.}
. "$SRC/tests/lib.sh"
D=$TMPDIR
export XDG_RUNTIME_DIR=$D/run
mkdir -p "$XDG_RUNTIME_DIR"
unset ZRT_JOB_TOKEN
STARTED=""
cleanup() { for p in $STARTED; do kill -9 "$p" 2>/dev/null; done; }
trap cleanup EXIT

cat >"$D/long.yaml" <<YAML
distributed_type: DEEPSPEED
num_processes: 2
use_cpu: true
deepspeed_config: {zero_stage: 2}
zrt:
  model: {type: mlp, layers: 2, d_model: 16, hidden: 32, vocab: 8}
  micro_batch_size: 4
  steps: 1000000
  checkpoint_interval: 100000
  checkpoint_dir: $D/ck
YAML

# wait_for FILE TEXT: up to 20 s for TEXT to appear in FILE.
wait_for() {
    for _ in $(seq 200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    return 1
}
# gone PID...: true once none of them runs (zombies count as gone), within 2 s.
gone() {
    for _ in $(seq 20); do
        local left=0
        for p in "$@"; do
            [ -e "/proc/$p" ] && [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ] && left=1
        done
        [ "$left" = 0 ] && return 0
        sleep 0.1
    done
    return 1
}
# start_long NAME ARGS...: a long launch in the background (no wrapper: $! is zrt itself); sets L.
start_long() {
    local name=$1; shift
    "$ZRT" launch --config "$D/long.yaml" "$@" >"$D/$name.out" 2>&1 &
    L=$!
    STARTED="$STARTED $L"
    wait_for "$D/$name.out" "step [0-9]" || { fail "$name: no step in 20 s"; cat "$D/$name.out"; }
}

# 1. main_process_port 0: each launch's ranks get the port that launch chose.
sed 's/^num_processes: 2/num_processes: 2\nmain_process_port: 0/' "$SRC/configs/zero1.yaml" >"$D/port0.yaml"
prog=(/bin/sh -c 'echo "port=$MASTER_PORT"; sleep 1')
timeout 30 "$ZRT" launch --config "$D/port0.yaml" -- "${prog[@]}" >"$D/p1.out" 2>&1 &
P1=$!
timeout 30 "$ZRT" launch --config "$SRC/configs/zero1.yaml" --main_process_port 0 --file_store -- "${prog[@]}" \
    >"$D/p2.out" 2>&1 || { fail "port 0 launch (file store)"; cat "$D/p2.out"; }
wait $P1 || { fail "port 0 launch"; cat "$D/p1.out"; }
port1=$(grep -o "port=[0-9]*" "$D/p1.out" | sort -u)
port2=$(grep -o "port=[0-9]*" "$D/p2.out" | sort -u)
echo "main_process_port 0: $port1 and $port2"
[ "$(echo "$port1" | wc -l)" = 1 ] && [ "$(echo "$port2" | wc -l)" = 1 ] || fail "ranks of one job disagree: $port1 / $port2"
[ -n "$port1" ] && [ "$port1" != "$port2" ] && [ "$port1" != port=29500 ] && [ "$port1" != port=0 ] \
    || fail "two jobs with main_process_port 0 got $port1 and $port2"

# 2. One checkpoint_dir, two jobs: the second is refused at once, naming the first.
start_long first
t0=$(date +%s%N)
timeout 20 "$ZRT" launch --config "$D/long.yaml" --steps 5 >"$D/second.out" 2>&1 && fail "a second job on one checkpoint_dir ran"
took=$(( ($(date +%s%N) - t0) / 1000000 ))
grep -q "checkpoint_dir $D/ck is in use by zrt launch pid $L on $(hostname) since " "$D/second.out" \
    || { fail "second job's message"; cat "$D/second.out"; }
grep -q "\[rank" "$D/second.out" && fail "the refused job started ranks"
[ "$took" -lt 3000 ] || fail "refusing took ${took} ms"
RANKS=$(pgrep -P "$L" | tr '\n' ' ')
STARTED="$STARTED $RANKS"
kill -9 "$L"
# 3. ... and kill -9 of the launch takes its ranks with it (here: the control plane).
gone $RANKS || fail "ranks $RANKS outlived their launch (control plane)"
timeout 60 "$ZRT" launch --config "$D/long.yaml" --steps 3 >"$D/third.out" 2>&1 \
    || { fail "a job after the first was killed"; cat "$D/third.out"; }

# 2b. zrt train alone (no launcher) takes the lock itself: a second one is refused, naming it.
rm -rf "$D/ck"
"$ZRT" train --config "$D/long.yaml" >"$D/alone1.out" 2>&1 &
A=$!
STARTED="$STARTED $A"
for _ in $(seq 100); do [ -s "$D/ck/.zrt-job.lock" ] && break; sleep 0.1; done
timeout 20 "$ZRT" train --config "$D/long.yaml" --steps 3 >"$D/alone2.out" 2>&1 && fail "a second zrt train on one checkpoint_dir ran"
grep -q "checkpoint_dir $D/ck is in use by zrt train pid $A on " "$D/alone2.out" \
    || { fail "second zrt train's message"; cat "$D/alone2.out"; }
kill -9 "$A"

# 3, 4. kill -9 of a --file_store launch: its ranks go within 2 s; its directory is left for the next launch.
rm -rf "$D/ck"
start_long fs --file_store
RANKS=$(pgrep -P "$L" | tr '\n' ' ')
STARTED="$STARTED $RANKS"
[ "$(echo $RANKS | wc -w)" = 2 ] || fail "file store: ranks are not children of the launch: '$RANKS'"
kill -9 "$L"
gone $RANKS || fail "ranks $RANKS outlived their --file_store launch"
ls -d "$D"/zrt-launch-* >/dev/null 2>&1 || fail "expected the killed launch's directory"
rm -rf "$D/ck"
start_long cp
TOKENS=$(ls "$XDG_RUNTIME_DIR"/zrt/*.token 2>/dev/null)
PROGRESS=$(ls "$D"/zrt-progress-* 2>/dev/null)
[ -n "$TOKENS" ] && [ -n "$PROGRESS" ] || fail "expected a token file and a progress file: '$TOKENS' '$PROGRESS'"
kill -9 "$L"
sleep 0.5
timeout 60 "$ZRT" launch --config "$D/long.yaml" --steps 2 >"$D/next.out" 2>&1 || { fail "next launch"; cat "$D/next.out"; }
left=$(ls -d "$D"/zrt-launch-* "$D"/zrt-progress-* "$XDG_RUNTIME_DIR"/zrt/*.token 2>/dev/null)
[ -z "$left" ] || fail "leftovers of killed jobs: $left"
grep -q "removed what a killed job left" "$D/next.out" || { fail "cleanup not reported"; cat "$D/next.out"; }

# 5. SIGHUP is SIGTERM: the ranks are stopped and the token file removed.
rm -rf "$D/ck"
start_long hup
RANKS=$(pgrep -P "$L" | tr '\n' ' ')
STARTED="$STARTED $RANKS"
kill -HUP "$L"
for _ in $(seq 100); do [ -e "/proc/$L" ] || break; sleep 0.1; done
wait "$L" 2>/dev/null
grep -q "SIGHUP: ranks stopped" "$D/hup.out" || { fail "SIGHUP not handled"; cat "$D/hup.out"; }
gone $RANKS || fail "ranks left after SIGHUP"
[ -z "$(ls "$XDG_RUNTIME_DIR"/zrt/*.token 2>/dev/null)" ] || fail "token file left after SIGHUP"

# 6. Ctrl-C returns within 1 s.
rm -rf "$D/ck"
start_long int
t0=$(date +%s%N)
kill -INT "$L"
for _ in $(seq 100); do [ -e "/proc/$L" ] && [ "$(awk '{print $3}' "/proc/$L/stat")" != Z ] || break; sleep 0.01; done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
wait "$L" 2>/dev/null
echo "SIGINT: zrt launch returned in $ms ms"
[ "$ms" -lt 1000 ] || { fail "SIGINT took $ms ms"; cat "$D/int.out"; }

[ "$fails" = 0 ] || exit 1
echo "launch jobs ok"
