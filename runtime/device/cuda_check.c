/* cuda_check.c: the messages of zrt/internal/cuda_check.h's macros. Built
 * in every build; without CUDA a failure can only be reported by number. */
#include "zrt/internal/cuda_check.h"

#ifdef ZRT_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

zrt_status zrt_call_failed(zrt_status status, const char *lib, const char *call, const char *reason, const char *file,
                           int line)
{
    return zrt_set_error(status, "%s: %s failed: %s (%s:%d)", lib, call, reason ? reason : "?", file, line);
}

zrt_status zrt_cuda_failed(int err, const char *call, const char *file, int line)
{
#ifdef ZRT_HAVE_CUDA
    zrt_status status = err == (int)cudaErrorMemoryAllocation ? ZRT_ERR_NOMEM : ZRT_ERR_IO;
    return zrt_call_failed(status, "cuda", call, cudaGetErrorString((cudaError_t)err), file, line);
#else
    return zrt_set_error(ZRT_ERR_IO, "cuda: %s failed: error %d (%s:%d)", call, err, file, line);
#endif
}
