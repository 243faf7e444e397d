"""tfevents_read.py: an independent reader of TensorBoard event files, for
test_monitor.sh: it checks what zrt's writer (tools/train/tfevents.c) writes
without TensorBoard installed, from the format's description alone.

Each record: uint64 length, uint32 masked CRC32C of the length bytes, the
data, uint32 masked CRC32C of the data (little-endian; mask(c) = ((c >> 15) |
(c << 17)) + 0xa282ead8). The data is an Event protobuf: wall_time = 1
(double), step = 2 (int64), file_version = 3 (string), summary = 5
(Summary: repeated Value value = 1; Value: tag = 1, simple_value = 2 float),
session_log = 7 (SessionLog: status = 1).

Usage: tfevents_read.py FILE -> one JSON line per event:
  {"wall_time": T, "step": N, "file_version": S?, "scalars": {tag: value}?, "session_log": STATUS?}
Exits 1 naming the record on a bad CRC, a short record or a malformed field.
"""
import json
import struct
import sys


def crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


TABLE = crc32c_table()


def masked_crc(data):
    c = 0xFFFFFFFF
    for b in data:
        c = TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    c ^= 0xFFFFFFFF
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def varint(buf, i):
    value, shift = 0, 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def fields(buf):
    """(field number, wire type, value) of each field of a message."""
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            n, i = varint(buf, i)
            value, i = buf[i:i + n], i + n
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wire)
        yield field, wire, value
    if i != len(buf):
        raise ValueError("a field runs past its message")


def scalars(summary):
    out = {}
    for field, _, value in fields(summary):
        assert field == 1, "Summary field %d" % field
        tag, simple = None, None
        for f, _, v in fields(value):
            if f == 1:
                tag = v.decode()
            elif f == 2:
                simple = struct.unpack("<f", v)[0]
        out[tag] = simple
    return out


def event(data):
    out = {}
    for field, wire, value in fields(data):
        if field == 1 and wire == 1:
            out["wall_time"] = struct.unpack("<d", value)[0]
        elif field == 2 and wire == 0:
            out["step"] = value
        elif field == 3 and wire == 2:
            out["file_version"] = value.decode()
        elif field == 5 and wire == 2:
            out["scalars"] = scalars(value)
        elif field == 7 and wire == 2:
            out["session_log"] = dict((f, v) for f, _, v in fields(value)).get(1, 0)
        else:
            raise ValueError("unexpected Event field %d (wire %d)" % (field, wire))
    return out


def records(blob):
    i, n = 0, 0
    while i < len(blob):
        n += 1
        if len(blob) - i < 12:
            raise ValueError("record %d: %d bytes left, a header is 12" % (n, len(blob) - i))
        head = blob[i:i + 8]
        (length,) = struct.unpack("<Q", head)
        (crc,) = struct.unpack("<I", blob[i + 8:i + 12])
        if crc != masked_crc(head):
            raise ValueError("record %d: the length's CRC is wrong" % n)
        data = blob[i + 12:i + 12 + length]
        tail = blob[i + 12 + length:i + 16 + length]
        if len(data) != length or len(tail) != 4:
            raise ValueError("record %d: cut short" % n)
        if struct.unpack("<I", tail)[0] != masked_crc(data):
            raise ValueError("record %d: the data's CRC is wrong" % n)
        yield data
        i += 16 + length


def main():
    with open(sys.argv[1], "rb") as f:
        blob = f.read()
    try:
        for data in records(blob):
            print(json.dumps(event(data)))
    except (ValueError, AssertionError, IndexError, struct.error) as e:
        print("%s: %s" % (sys.argv[1], e), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
