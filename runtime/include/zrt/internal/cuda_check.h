/* zrt/internal/cuda_check.h: the one way zrt checks a CUDA runtime call, a
 * kernel launcher's result or a cuBLASLt call: on failure the enclosing
 * function returns (or, with _GOTO, sets the status variable it is given
 * and jumps) a zrt_status whose message names the library, the call as
 * written, the library's reason and file:line.
 *
 * Why one family: the device backend, the CUDA models and cuBLASLt each
 * had their own macro and message shape. The results are taken as int
 * (cudaSuccess and CUBLAS_STATUS_SUCCESS are 0), so this header needs no
 * CUDA header and compiles in every build. comm_nccl.c reports its own
 * failures with the rank in front (comm errors begin with it). */
#ifndef ZRT_INTERNAL_CUDA_CHECK_H
#define ZRT_INTERNAL_CUDA_CHECK_H

#include "zrt/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* "LIB: CALL failed: REASON (FILE:LINE)" as this thread's error; returns status. */
zrt_status zrt_call_failed(zrt_status status, const char *lib, const char *call, const char *reason, const char *file,
                           int line);
/* A failed cudaError_t: ZRT_ERR_NOMEM for cudaErrorMemoryAllocation, else
 * ZRT_ERR_IO, with cudaGetErrorString's reason. */
zrt_status zrt_cuda_failed(int err, const char *call, const char *file, int line);

/* A CUDA runtime call or a kernel launcher (which returns its cudaError_t as an int). */
#define ZRT_CUDA_CHECK(call)                                                                  \
    do {                                                                                      \
        int zrt_cuda_err_ = (int)(call);                                                      \
        if (zrt_cuda_err_ != 0) return zrt_cuda_failed(zrt_cuda_err_, #call, __FILE__, __LINE__); \
    } while (0)

#define ZRT_CUDA_CHECK_GOTO(status_var, call, label)                                \
    do {                                                                            \
        int zrt_cuda_err_ = (int)(call);                                            \
        if (zrt_cuda_err_ != 0) {                                                   \
            (status_var) = zrt_cuda_failed(zrt_cuda_err_, #call, __FILE__, __LINE__); \
            goto label;                                                             \
        }                                                                           \
    } while (0)

/* A cuBLASLt call; describe: the loaded cublasLtGetStatusString. */
#define ZRT_CUBLASLT_CHECK(call, describe)                                                           \
    do {                                                                                             \
        int zrt_lt_st_ = (int)(call);                                                                \
        if (zrt_lt_st_ != 0)                                                                         \
            return zrt_call_failed(ZRT_ERR_IO, "cublasLt", #call, describe(zrt_lt_st_), __FILE__, __LINE__); \
    } while (0)

#ifdef __cplusplus
}
#endif
#endif
