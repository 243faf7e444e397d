# fatbin_arch.py OBJECT...: what GPU code each object file carries, read from
# its .nv_fatbin section (nvcc's fat binary: a header, then entries of kind
# 1 = PTX or 2 = an ELF cubin, each naming its sm version), one line per
# object: "path: sm_90 compute_90". Exit 1 if an object has no fat binary.
# Why not cuobjdump: the build machines' CUDA has no cuobjdump.
import struct
import subprocess
import sys
import tempfile

MAGIC = 0xBA55ED50


def entries(blob):
    off = 0
    while off + 16 <= len(blob):
        magic, _version, header, size = struct.unpack_from('<IHHQ', blob, off)
        if magic != MAGIC:
            break
        entry, end = off + header, off + header + size
        while entry + 32 <= end:
            kind, _v, entry_header, payload = struct.unpack_from('<HHII', blob, entry)
            sm = struct.unpack_from('<I', blob, entry + 28)[0]
            yield ('sm_%d' if kind == 2 else 'compute_%d') % sm
            entry += entry_header + payload
        off = end


status = 0
for path in sys.argv[1:]:
    with tempfile.NamedTemporaryFile() as out:
        done = subprocess.run(['objcopy', '-O', 'binary', '--only-section=.nv_fatbin', path, out.name],
                              capture_output=True, text=True)
        blob = open(out.name, 'rb').read() if done.returncode == 0 else b''
    found = sorted(set(entries(blob)))
    if not found:
        status = 1
    print('%s: %s' % (path, ' '.join(found) or 'no GPU code'))
sys.exit(status)
