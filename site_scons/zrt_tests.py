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


def _figures(text):
    """A passed test's figures for the GPU report: its last 12 output lines."""
    lines = [l.strip() for l in text.strip().splitlines() if l.strip()]
    return '\n'.join(lines[-12:])


def _shm_names():
    try:
        return {n for n in os.listdir('/dev/shm') if n.startswith('zrt-')}
    except OSError:
        return set()


BUDGET_SPENT = 'not run: suite budget spent'


def run(tests, env_vars, cwd, verbose=False, results=None, deadline=None):
    """tests: dicts with name, argv (or skip: reason), timeout. Returns failures.
    A shared-memory segment a test leaves in /dev/shm counts as a failure.
    results: a list, or a function, that gets (name, 'pass'|'fail'|'skip', seconds,
    detail) as each test ends. deadline (time.time()): no test runs past it; one
    that would start after it fails as BUDGET_SPENT."""
    passed, failed, skipped, timed = [], [], [], []
    note = results if callable(results) else results.append if results is not None else (lambda row: None)
    for test in tests:
        if test.get('skip'):
            skipped.append((test['name'], test['skip']))
            note((test['name'], 'skip', 0.0, test['skip']))
            print('SKIP %-32s %s' % (test['name'], test['skip']), flush=True)
            continue
        left = deadline - time.time() if deadline is not None else None
        if left is not None and left <= 0:
            failed.append(test['name'])
            note((test['name'], 'fail', 0.0, BUDGET_SPENT))
            print('FAIL %-32s %s' % (test['name'], BUDGET_SPENT), flush=True)
            continue
        if left is not None and left < test['timeout']:
            test = dict(test, timeout=left)
        before = _shm_names()
        rc, timed_out, out, secs = _run_one(test, env_vars, cwd)
        left = sorted(_shm_names() - before)
        if left and not timed_out and rc in (0, SKIP):
            rc, out = 1, out + '\nleft in /dev/shm: %s\n' % ', '.join(left)
        note((test['name'], 'pass' if rc == 0 and not timed_out else 'skip' if rc == SKIP and not timed_out else 'fail', secs,
              'timed out after %.3gs' % test['timeout'] if timed_out else _last_line(out) if rc == SKIP else out[-1500:] if rc else _figures(out)))
        if timed_out:
            timed.append(test['name'])
            print('FAIL %-32s timed out after %.3gs' % (test['name'], test['timeout']))
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


def _gpu_identity():
    """The card and driver from nvidia-smi, or None with why not."""
    try:
        out = subprocess.run(['nvidia-smi', '--query-gpu=name,driver_version,memory.total', '--format=csv,noheader'],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, 'nvidia-smi: %s' % e
    if out.returncode != 0 or not out.stdout.strip():
        return None, 'nvidia-smi: %s' % (out.stderr.strip() or 'no GPU listed')
    return out.stdout.strip().splitlines(), ''


def _table_cell(text):
    return text.strip().replace('\n', '<br>').replace('|', '\\|')


class GpuReport:
    """`scons gpu-test`'s and tools/gpu-run's report: the header (date, card, build)
    at once, a row appended and flushed as each test ends (a kill of the whole run
    loses none already run), the result line last."""

    def __init__(self, path, cuda_line):
        cards, why = _gpu_identity()
        self.path, self.card, self.rows = path, cards[0] if cards else 'no GPU (%s)' % why, []
        lines = ['# zrt gpu-test report', '',
                 '- date: %s' % time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
                 '- card: %s' % self.card, '- build: %s' % cuda_line, '',
                 '| test | result | seconds | detail |', '|---|---|---|---|']
        self._append(lines)

    def _append(self, lines):
        with open(self.path, 'a') as f:
            f.write('\n'.join(lines) + '\n')
            f.flush()
            os.fsync(f.fileno())

    def row(self, result):
        name, status, secs, detail = result
        self.rows.append(result)
        self._append(['| %s | %s | %.2f | %s |' % (name, status, secs, _table_cell(detail))])

    def finish(self):
        """The result line; returns the failures."""
        counts = {k: sum(1 for r in self.rows if r[1] == k) for k in ('pass', 'fail', 'skip')}
        self._append(['', '- result: %d passed, %d failed, %d skipped' % (counts['pass'], counts['fail'], counts['skip'])])
        print('gpu-test: %s: %d passed, %d failed, %d skipped (report: %s)' % (
            self.card, counts['pass'], counts['fail'], counts['skip'], self.path))
        return counts['fail']


def gpu_suite(build_root, src, report_path, cuda_line, programs=None, skipped=(), test_timeout=300, budget=None,
              env_extra=None):
    """The GPU suite: every tests/test_cuda_* (programs under build_root/tests, scripts
    under src/tests), one summary line and the report (GpuReport, written as tests end).
    test_timeout: each test's limit in seconds; budget: the whole suite's (tests that
    would start after it fail as BUDGET_SPENT); env_extra: more variables for the tests
    (tools/gpu-run's LD_LIBRARY_PATH). Used by `scons gpu-test` and by tools/gpu-run (a
    GPU machine without this project's build tools). Returns the failures."""
    import glob
    start = time.time()
    names = programs if programs is not None else sorted(
        p for p in glob.glob(os.path.join(build_root, 'tests', 'test_cuda_*')) if os.access(p, os.X_OK))
    tests = [{'name': name, 'skip': why} for name, why in skipped]  # not built (no CUDA)
    tests += [{'name': os.path.basename(p), 'argv': [p], 'timeout': test_timeout} for p in names]
    tests += [{'name': os.path.splitext(os.path.basename(p))[0], 'argv': ['bash', p], 'timeout': test_timeout}
              for p in sorted(glob.glob(os.path.join(src, 'tests', 'test_cuda_*.sh')))]
    env_vars = dict({'ZRT_BIN': os.path.join(build_root, 'bin', 'zrt'), 'ZRT_SRC': src, 'ZRT_BUILD': build_root,
                     'ZRT_DEVICE_CHECK': '1'}, **(env_extra or {}))
    if os.path.exists(report_path):
        os.remove(report_path)
    report = GpuReport(report_path, cuda_line)
    run(tests, env_vars, src, verbose=True, results=report.row, deadline=start + budget if budget else None)
    return report.finish()
