/* zrt/internal/blas.h: the OpenBLAS kernel family of the CPU models' matmuls.
 *
 * Why internal: only the `zrt` command acts on it (it re-executes itself
 * with $OPENBLAS_CORETYPE set); a program linking libzrt.so chooses its
 * own OpenBLAS setup. */
#ifndef ZRT_INTERNAL_BLAS_H
#define ZRT_INTERNAL_BLAS_H

#ifdef __cplusplus
extern "C" {
#endif

/* OpenBLAS's kernel family for the CPU models' matmuls: the one it chose for
 * this process (openblas_get_corename: "SkylakeX", "Haswell", "Prescott"...),
 * and the one zrt wants instead when that choice is narrower than this CPU's
 * vectors by cpuid ("SkylakeX" for AVX-512 F/BW/DQ/VL/CD, "Haswell" for
 * AVX2 + FMA), else NULL. Why: OpenBLAS 0.3.21 (Debian 12) falls back to
 * Prescott's SSE3 kernels on CPUs newer than it knows (Emerald Rapids, as
 * cloud VMs report it) -- a third of the sgemm speed. OpenBLAS reads its
 * choice from $OPENBLAS_CORETYPE when it loads, so only a new process can
 * take it: the `zrt` command re-executes itself with it set. NULL too when
 * $OPENBLAS_CORETYPE is set already (the user's choice stands). */
const char *zrt_blas_core(void);
const char *zrt_blas_core_wanted(void);

#ifdef __cplusplus
}
#endif
#endif
