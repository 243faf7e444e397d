#!/usr/bin/python3
"""bench_peer_tokenizers.py T.json FILE: the `tokenizers` package's encoder
on FILE's lines (as `zrt bench tokenize` encodes them), for the ratio that
command prints. One line: tokenizers VERSION one_thread_mb_s X all_threads_mb_s Y.
RAYON_NUM_THREADS is read when rayon starts its pool, so the one-thread
figure comes from a child process."""
import os
import subprocess
import sys
import time


def rate(path, file):
    import tokenizers
    tok = tokenizers.Tokenizer.from_file(path)
    data = open(file, 'rb').read()
    lines = data.decode('utf-8').split('\n')
    best = None
    for _ in range(3):
        t0 = time.perf_counter()
        tok.encode_batch(lines, add_special_tokens=False)
        s = time.perf_counter() - t0
        best = s if best is None or s < best else best
    return tokenizers.__version__, len(data) / 1e6 / best


def main():
    if len(sys.argv) == 4 and sys.argv[3] == '--one':
        print('%s %f' % rate(sys.argv[1], sys.argv[2]))
        return
    try:
        import tokenizers  # noqa: F401
    except ImportError as e:
        print('cannot import tokenizers: %s' % e)
        sys.exit(1)
    env = dict(os.environ, RAYON_NUM_THREADS='1', RAYON_RS_NUM_CPUS='1')
    one = subprocess.run([sys.executable, __file__, sys.argv[1], sys.argv[2], '--one'], env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    version, all_threads = rate(sys.argv[1], sys.argv[2])
    print('tokenizers %s one_thread_mb_s %s all_threads_mb_s %f' % (version, one[1], all_threads))


if __name__ == '__main__':
    main()
