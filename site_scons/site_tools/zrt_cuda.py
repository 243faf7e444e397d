# zrt_cuda: an SCons tool that finds nvcc, the CUDA headers and NCCL, and adds
# a `CudaObject` builder (.cu -> .o) for kernels/.
#
# Why a tool: its absence must only skip the CUDA parts. ZrtFindCuda returns
# (found, line) where line is what the build prints: "CUDA: yes (nvcc 13.0,
# NCCL 2.28.9)" or "CUDA: no (why)".
import os
import re
import subprocess

import SCons.Builder


def _nccl_version(header):
    text = open(header).read()
    parts = []
    for name in ('NCCL_MAJOR', 'NCCL_MINOR', 'NCCL_PATCH'):
        m = re.search(r'#define\s+%s\s+(\d+)' % name, text)
        if not m:
            return None
        parts.append(m.group(1))
    return '.'.join(parts)


def _find_cuda(env, wanted):
    if not wanted:
        return False, 'CUDA: no (disabled with cuda=no)'
    home = env.get('CUDA_HOME') or '/usr/local/cuda'
    nvcc = os.path.join(home, 'bin', 'nvcc')
    if not os.access(nvcc, os.X_OK):
        return False, 'CUDA: no (no nvcc at %s; set CUDA_HOME)' % nvcc
    if not os.path.exists(os.path.join(home, 'include', 'cuda_runtime.h')):
        return False, 'CUDA: no (no cuda_runtime.h under %s/include)' % home
    nccl_header = None
    for inc in (os.path.join(home, 'include'), '/usr/local/include', '/usr/include'):
        if os.path.exists(os.path.join(inc, 'nccl.h')):
            nccl_header = os.path.join(inc, 'nccl.h')
            break
    if nccl_header is None:
        return False, 'CUDA: no (nvcc found but no nccl.h)'
    libdirs = [d for d in (os.path.join(home, 'lib64'), os.path.join(home, 'lib'),
                           '/usr/lib/x86_64-linux-gnu', '/usr/local/lib') if os.path.isdir(d)]
    if not any(os.path.exists(os.path.join(d, 'libnccl.so')) for d in libdirs):
        return False, 'CUDA: no (nccl.h found but no libnccl.so)'
    try:
        out = subprocess.run([nvcc, '--version'], capture_output=True, text=True).stdout
    except OSError as e:
        return False, 'CUDA: no (nvcc does not run: %s)' % e
    m = re.search(r'release (\d+\.\d+)', out)
    nvcc_version = m.group(1) if m else '?'
    nccl_version = _nccl_version(nccl_header) or '?'

    env['NVCC'] = nvcc
    # cuBLASLt is loaded at run time (runtime/model/cuda_blas.c), by the soname of this toolkit's major version.
    if nvcc_version != '?':
        env.Append(CPPDEFINES=[('ZRT_CUBLASLT_SONAME', r'\"libcublasLt.so.%s\"' % nvcc_version.split('.')[0])])
    env['CUDA_LIBDIRS'] = libdirs
    env.Append(CPPPATH=[os.path.join(home, 'include'), os.path.dirname(nccl_header)],
               LIBPATH=libdirs, RPATH=libdirs)
    return True, 'CUDA: yes (nvcc %s, NCCL %s)' % (nvcc_version, nccl_version)


def generate(env):
    env.AddMethod(_find_cuda, 'ZrtFindCuda')
    # sm_90 machine code plus compute_90 PTX, so newer GPUs JIT the PTX.
    # --fmad=false: no FMA contraction, so kernels over the shared math headers
    # give the bits the cpu backend gives (IEEE sqrt and division are nvcc's default).
    env['NVCCFLAGS'] = ['-std=c++17', '-O2', '-g', '--fmad=false', '-Xcompiler', '-fPIC,-Wall,-Wextra,-Werror',
                        '-Werror', 'all-warnings',
                        '-gencode', 'arch=compute_90,code=[sm_90,compute_90]']
    # SCons.Builder.Builder, not env.Builder: the latter substitutes $VARS now.
    env['BUILDERS']['CudaObject'] = SCons.Builder.Builder(
        action='$NVCC $NVCCFLAGS ${_CPPDEFFLAGS} ${_CPPINCFLAGS} -c $SOURCE -o $TARGET',
        suffix='.o', src_suffix='.cu')


def exists(env):
    return True
