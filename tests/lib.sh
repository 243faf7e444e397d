# lib.sh: what the shell tests share; they source it ("$ZRT_SRC/tests/lib.sh").

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
