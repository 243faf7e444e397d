# zrt_tests.py: the test runner behind `scons test`.
#
# Why our own: tests are programs (liburing style), one per behaviour: exit 0
# pass, 77 skip (the last line printed is the reason), anything else fail.
# The runner gives each a time limit and a private TMPDIR, kills its whole
# process group when it ends or times out, lists failed, timed-out and skipped
# tests apart, and ends with the line `N passed, N failed, N skipped`.
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SKIP = 77


def _last_line(text):
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return lines[-1].strip() if lines else 'no reason given'


def _run_one(test, env_vars, cwd):
    tmp = tempfile.mkdtemp(prefix='zrt-test-')
    env = dict(os.environ, **env_vars)
    env['TMPDIR'] = tmp
    start = time.time()
    proc = subprocess.Popen(test['argv'], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    timed_out = False
    try:
        out, _ = proc.communicate(timeout=test['timeout'])
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
    try:  # nothing a test started may outlive it
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    shutil.rmtree(tmp, ignore_errors=True)
    return proc.returncode, timed_out, out.decode('utf-8', 'replace'), time.time() - start


def _shm_names():
    try:
        return {n for n in os.listdir('/dev/shm') if n.startswith('zrt-')}
    except OSError:
        return set()


def run(tests, env_vars, cwd, verbose=False):
    """tests: dicts with name, argv (or skip: reason), timeout. Returns failures.
    A shared-memory segment a test leaves in /dev/shm counts as a failure."""
    passed, failed, skipped, timed = [], [], [], []
    for test in tests:
        if test.get('skip'):
            skipped.append((test['name'], test['skip']))
            print('SKIP %-32s %s' % (test['name'], test['skip']), flush=True)
            continue
        before = _shm_names()
        rc, timed_out, out, secs = _run_one(test, env_vars, cwd)
        left = sorted(_shm_names() - before)
        if left and not timed_out and rc in (0, SKIP):
            rc, out = 1, out + '\nleft in /dev/shm: %s\n' % ', '.join(left)
        if timed_out:
            timed.append(test['name'])
            print('FAIL %-32s timed out after %ds' % (test['name'], test['timeout']))
            print(out[-4000:], flush=True)
        elif rc == 0:
            passed.append(test['name'])
            print('PASS %-32s %.2fs' % (test['name'], secs), flush=True)
            if verbose:
                print(out)
        elif rc == SKIP:
            reason = _last_line(out)
            skipped.append((test['name'], reason))
            print('SKIP %-32s %s' % (test['name'], reason), flush=True)
        else:
            failed.append(test['name'])
            print('FAIL %-32s exit %d' % (test['name'], rc))
            print(out[-4000:], flush=True)
    print()
    if failed:
        print('failed: ' + ', '.join(failed))
    if timed:
        print('timed out: ' + ', '.join(timed))
    for name, reason in skipped:
        print('skipped: %s (%s)' % (name, reason))
    print('%d passed, %d failed, %d skipped' % (len(passed), len(failed) + len(timed), len(skipped)))
    sys.stdout.flush()
    return len(failed) + len(timed)
