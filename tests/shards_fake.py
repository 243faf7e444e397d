"""shards_fake.py DIR UNITS ELEMENTS: writes a zrt checkpoint of UNITS units of
ELEMENTS fp32 elements each (world 2) whose shard files are sparse -- headers and
section headers real, the data holes (zeros) but for element 0 of every unit's
master, which is unit + 1.5 -- so a checkpoint of several GiB costs no disk.
The section CRCs are not real (verify would say so); consolidate never reads them."""
import json, os, struct, sys, zlib

out, units, elements = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
world, align = 2, 32
padded = (elements + align - 1) // align * align
shard = padded // world
step_dir = os.path.join(out, "step_0000001")
os.makedirs(step_dir, exist_ok=True)
meta = {"format": "zrt-checkpoint", "version": 1, "step": 1, "adam_steps": 1, "world_size": world, "stage": 3,
        "dtype": "bf16", "loss_scaler": {"scale": 1, "hysteresis_left": 2, "last_overflow_step": -1, "step": 1},
        "config": {"zrt": {"model": {"type": "mlp"}}},
        "units": [{"numel": elements, "padded": padded, "shard": shard,
                   "params": [{"name": "layers.%d.weight" % u, "numel": elements, "offset": 0, "shape": [elements // 4, 4]}]}
                  for u in range(units)]}
json.dump(meta, open(os.path.join(step_dir, "meta.json"), "w"))
header_size, section_size = 40, 32
for rank in range(world):
    with open(os.path.join(step_dir, "shard_%05d.bin" % rank), "wb") as f:
        head = b"ZRTSHRD1" + struct.pack("<IIIIQI", 1, rank, world, units, 1, 0)
        f.write(head + struct.pack("<I", 0))
        for u in range(units):
            at = header_size + u * (section_size + 3 * shard * 4)
            f.seek(at)
            f.write(struct.pack("<IIQQII", u, 0, rank * shard, shard, 0, 0))
            if rank == 0:
                f.write(struct.pack("<f", u + 1.5))
        f.truncate(header_size + units * (section_size + 3 * shard * 4))
open(os.path.join(out, "latest"), "w").write("step_0000001\n")
