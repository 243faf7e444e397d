#!/usr/bin/env bash
# test_gpu_run.sh: the GPU suite's limits (site_scons/zrt_tests.gpu_suite, what
# tools/gpu-run and `scons gpu-test` run) on a fake build holding four
# test_cuda_* scripts, in about 2 s: a test past its limit is killed at it
# (with what it started), a test that would start after the suite's budget
# fails as "not run: suite budget spent", every row reaches the report as
# its test ends (the sleeper finds the row before it), the extra variables
# (gpu-run's LD_LIBRARY_PATH) reach the tests, and failures are returned.
set -u
SRC=${ZRT_SRC:-.}
build=$TMPDIR/build
mkdir -p "$build/tests" "$build/bin" "$TMPDIR/src/tests"  # src: no test_cuda_*.sh
write() { printf '#!/usr/bin/env bash\n%s\n' "$2" >"$build/tests/$1"; chmod +x "$build/tests/$1"; }
write test_cuda_a_pass 'echo "passes with ZRT_EXTRA=$ZRT_EXTRA"'
# Copies the report as it is when this test starts, then sleeps past its limit (its child too).
write test_cuda_b_sleep "cp '$TMPDIR/report.md' '$TMPDIR/seen.md'; sleep 30 & echo \$! >'$TMPDIR/child'; wait"
write test_cuda_c_sleep 'sleep 30'
write test_cuda_d_pass 'exit 0'
PATH="$TMPDIR/nobin:/usr/bin:/bin" timeout 30 python3 - "$SRC" "$build" "$TMPDIR" <<'PY'
import os, sys, time
src, build, tmp = sys.argv[1:]
sys.path.insert(0, src + '/site_scons')
import zrt_tests
start = time.time()
# Each test 1 s, the suite 1.6 s: b is killed by its own limit, c by the budget, d never starts.
failures = zrt_tests.gpu_suite(build, tmp + '/src', tmp + '/report.md', 'CUDA: fake', test_timeout=1, budget=1.6,
                               env_extra={'ZRT_EXTRA': 'yes'})
took = time.time() - start
rows = {l.split('|')[1].strip(): l for l in open(tmp + '/report.md') if l.startswith('| test_cuda_')}
print(open(tmp + '/report.md').read())
assert failures == 3, failures
assert list(rows) == ['test_cuda_a_pass', 'test_cuda_b_sleep', 'test_cuda_c_sleep', 'test_cuda_d_pass'], list(rows)
assert '| pass |' in rows['test_cuda_a_pass'] and 'ZRT_EXTRA=yes' in rows['test_cuda_a_pass'], rows
assert '| fail |' in rows['test_cuda_b_sleep'] and 'timed out after 1s' in rows['test_cuda_b_sleep'], rows
assert '| fail |' in rows['test_cuda_c_sleep'] and 'timed out' in rows['test_cuda_c_sleep'], rows
assert '| fail |' in rows['test_cuda_d_pass'] and zrt_tests.BUDGET_SPENT in rows['test_cuda_d_pass'], rows
b_secs = float(rows['test_cuda_b_sleep'].split('|')[3])
assert 0.9 < b_secs < 1.5, b_secs
assert took < 3, took  # the budget held: 1.6 s and the runner's own time
seen = open(tmp + '/seen.md').read()
assert 'test_cuda_a_pass | pass' in seen and 'test_cuda_b_sleep' not in seen, seen
assert '- result: 1 passed, 3 failed, 0 skipped' in open(tmp + '/report.md').read()
child = int(open(tmp + '/child').read())
assert not os.path.exists('/proc/%d' % child) or open('/proc/%d/stat' % child).read().split()[2] == 'Z', 'sleeper child lives on'
print('gpu_suite: rows as tests end, 1 s test limit and 1.6 s suite budget held (%.2f s), 3 failures returned' % took)
PY
