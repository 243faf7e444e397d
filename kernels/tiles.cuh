/* tiles.cuh: the CUDA side of the index functions that the kernels written
 * in the subset of CUDA C++ C11 also compiles (flash_tiles.cuh,
 * xent_tiles.cuh) use instead of CUDA's built-ins; tests/cuda_sim.h gives
 * the C side (threads as pthreads), so CI runs those kernels on the CPU.
 * Invariant: such a kernel reads thread and block indices only through
 * tid(), nthreads(), bx(), by(), and shared memory only through
 * ZRT_SHARED_FLOATS (dynamic, 16-byte aligned: doubles may be stored in it).
 */
#ifndef ZRT_KERNELS_TILES_CUH
#define ZRT_KERNELS_TILES_CUH

#ifdef __CUDACC__
#define ZRT_SHARED_FLOATS(name) extern __shared__ __align__(16) float name[]
__device__ __forceinline__ static int tid(void) { return (int)threadIdx.x; }
__device__ __forceinline__ static int nthreads(void) { return (int)blockDim.x; }
__device__ __forceinline__ static int bx(void) { return (int)blockIdx.x; }
__device__ __forceinline__ static int by(void) { return (int)blockIdx.y; }
#endif

#endif
