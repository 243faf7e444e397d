#!/usr/bin/env bash
# test_torch_distributed.sh: a torch.distributed program (gloo, init_method
# env://) started by `zrt launch -- /usr/bin/python3 prog.py` gets the
# environment torchrun sets and does a correct all_reduce on 2 ranks.
# Skips when Debian's python3-torch is missing.
set -u
ZRT=${ZRT_BIN:-build/bin/zrt}
SRC=${ZRT_SRC:-.}
/usr/bin/python3 -c 'import torch.distributed' 2>/dev/null || {
    echo "python3-torch is not installed for /usr/bin/python3 (tools/bootstrap installs it)"; exit 77; }
cat >"$TMPDIR/prog.py" <<'PY'
import os
import torch
import torch.distributed as dist
dist.init_process_group("gloo", init_method="env://")
rank, world = dist.get_rank(), dist.get_world_size()
assert rank == int(os.environ["RANK"]) and world == int(os.environ["WORLD_SIZE"])
assert int(os.environ["LOCAL_RANK"]) == rank and int(os.environ["LOCAL_WORLD_SIZE"]) == world
t = torch.tensor([float(rank + 1)])
dist.all_reduce(t)
assert t.item() == world * (world + 1) / 2, t
print("all_reduce ok: rank %d of %d -> %.1f" % (rank, world, t.item()))
dist.destroy_process_group()
PY
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
timeout 120 "$ZRT" launch --config "$SRC/configs/zero1.yaml" --main_process_port "$PORT" -- /usr/bin/python3 "$TMPDIR/prog.py" \
    >"$TMPDIR/out" 2>&1 || { echo "FAIL: zrt launch of the torch program"; cat "$TMPDIR/out"; exit 1; }
for r in 0 1; do
    grep -q "\[rank $r\] all_reduce ok: rank $r of 2 -> 3.0" "$TMPDIR/out" || { echo "FAIL: rank $r"; cat "$TMPDIR/out"; exit 1; }
done
echo "torch.distributed all_reduce ok"
