/* hd.h: ZRT_HD, how the per-element math headers of kernels/ declare their
 * functions: `__host__ __device__` (forced inline) under nvcc, `static inline`
 * in C, so the CPU backend and the CUDA kernels compile the same source. */
#ifndef ZRT_KERNELS_HD_H
#define ZRT_KERNELS_HD_H

#ifdef __CUDACC__
#define ZRT_HD static __host__ __device__ __forceinline__
#else
#define ZRT_HD static inline
#endif

#endif
