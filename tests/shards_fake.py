"""shards_fake.py DIR UNITS ELEMENTS: writes a zrt checkpoint of UNITS units of
ELEMENTS fp32 elements each (world 2) whose shard files are sparse -- headers and
section headers real, the data holes (zeros) but for element 0 of every unit's
master, which is unit + 1.5 -- so a checkpoint of several GiB costs no disk.
Every CRC32C is real (the readers check them all before use): a section's is
computed over its zeros with the CRC's zero-extension operator, not byte by byte."""
import json, os, struct, sys

POLY = 0x82F63B78  # CRC32C, reflected
TABLE = [0] * 256
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ (POLY if c & 1 else 0)
    TABLE[i] = c


def crc32c(data, crc=0):
    r = crc ^ 0xFFFFFFFF
    for b in data:
        r = (r >> 8) ^ TABLE[(r ^ b) & 0xFF]
    return r ^ 0xFFFFFFFF


def times(matrix, vec):
    out, i = 0, 0
    while vec:
        if vec & 1:
            out ^= matrix[i]
        vec >>= 1
        i += 1
    return out


def crc32c_zeros(crc, n):
    """crc32c(data + n zero bytes, 0) from crc = crc32c(data): the register's one-bit-of-zero operator, squared up."""
    op = [POLY] + [1 << i for i in range(31)]  # one zero bit
    for _ in range(3):  # one zero byte = 8 zero bits
        op = [times(op, op[i]) for i in range(32)]
    r = crc ^ 0xFFFFFFFF
    while n:
        if n & 1:
            r = times(op, r)
        op = [times(op, op[i]) for i in range(32)]
        n >>= 1
    return r ^ 0xFFFFFFFF


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
        f.write(head + struct.pack("<I", crc32c(head)))
        for u in range(units):
            at = header_size + u * (section_size + 3 * shard * 4)
            first = struct.pack("<f", u + 1.5) if rank == 0 else b"\0\0\0\0"
            crc = crc32c_zeros(crc32c(first), 3 * shard * 4 - 4)
            f.seek(at)
            f.write(struct.pack("<IIQQII", u, 0, rank * shard, shard, crc, 0))
            f.write(first)
        f.truncate(header_size + units * (section_size + 3 * shard * 4))
open(os.path.join(out, "latest"), "w").write("step_0000001\n")
