/* zrt/internal/offload.h: the offload layer's building blocks (offload/): the
 * one-pass CPU optimizer with AVX-512, AVX2 and scalar paths chosen at run
 * time, the thread pool it runs on, and the NVMe swapper (io_uring).
 *
 * Why internal: the engine uses them for offload_optimizer and offload_param,
 * and `zrt bench adam` / `zrt bench nvme` measure them alone (tools/ links
 * libzrt.a); a program linking libzrt.so reaches them through the engine.
 * Contracts: no function here prints or exits; the optimizer paths give the
 * same bits (same formula, IEEE sqrt and division, no FMA), whatever the path
 * and the thread count.
 */
#ifndef ZRT_INTERNAL_OFFLOAD_H
#define ZRT_INTERNAL_OFFLOAD_H

#include "zrt/base.h"
#include "zrt/internal/kernels.h" /* zrt_adam_args */

#ifdef __cplusplus
extern "C" {
#endif

/* ---- SIMD paths ---------------------------------------------------------- */

typedef enum { ZRT_SIMD_SCALAR, ZRT_SIMD_AVX2, ZRT_SIMD_AVX512, ZRT_SIMD_AUTO } zrt_simd;

/* "scalar", "avx2", "avx512", "auto". */
const char *zrt_simd_name(zrt_simd simd);
/* Whether this CPU runs the path (cpuid: avx2 + f16c; avx512f). */
bool zrt_simd_supported(zrt_simd simd);
/* The widest supported path. */
zrt_simd zrt_simd_best(void);

/* ---- the thread pool ------------------------------------------------------ */

typedef struct zrt_cpu_pool zrt_cpu_pool;

/* threads >= 1 (the caller is one of them); the others are pinned to the
 * cores first_core + 1 .. first_core + threads - 1 of those this process may
 * use (modulo their number); first_core < 0: no pinning. */
zrt_status zrt_cpu_pool_create(int threads, int first_core, zrt_cpu_pool **out);
int zrt_cpu_pool_threads(const zrt_cpu_pool *pool);
/* Runs fn(arg, t, threads) on every thread t (the caller as 0) and returns
 * when all have, with the first error. One run at a time. */
zrt_status zrt_cpu_pool_run(zrt_cpu_pool *pool, zrt_status (*fn)(void *arg, int thread, int threads), void *arg);
/* NULL is fine. */
void zrt_cpu_pool_destroy(zrt_cpu_pool *pool);
/* Threads for a rank: `configured` if > 0 (zrt.cpu_threads), else
 * $ZRT_CPU_THREADS, else the cores this process may use / local_ranks, at
 * least 1. */
int zrt_cpu_threads_default(int configured, int local_ranks);
/* Ranks on this machine: $LOCAL_WORLD_SIZE (set by zrt launch, torchrun,
 * accelerate) if > 0, else world / num_machines, at least 1. The one rule
 * for the model's BLAS threads (zrt train) and offload's pool. */
int zrt_local_ranks(int world, int num_machines);

/* ---- the one-pass optimizer ------------------------------------------------- */

/* One slice of an optimizer step: n elements of the fp32 state, the
 * gradients (grad_dtype) and, optionally, the compute copy to write. All in
 * host memory. */
typedef struct {
    float *master, *exp_avg, *exp_avg_sq;
    const void *grads;
    zrt_dtype grad_dtype;
    void *params;          /* NULL: no copy */
    zrt_dtype param_dtype;
    size_t n;
} zrt_adam_slice;

/* The whole step of a slice in one pass over memory: g = grads * unscale,
 * times clip when clip < 1 (zrt_clip_factor of the step's global norm; the
 * caller skips an overflowed step), Adam/AdamW (kernels/optim.h), and the
 * updated master rounded to param_dtype into params. args->max_norm is not
 * used (clip is). simd ZRT_SIMD_AUTO: the best path; an unsupported one is
 * ZRT_ERR_UNSUPPORTED. pool NULL: the caller's thread. */
zrt_status zrt_cpu_adam(const zrt_adam_args *args, float clip, const zrt_adam_slice *slice, zrt_simd simd,
                        zrt_cpu_pool *pool);
/* The same pass with the step's constants made already (kernels/optim.h's
 * zrt_adam_hyper_for), as the cpu device's optimizer jobs hold them. */
struct zrt_adam_hyper;
zrt_status zrt_cpu_adam_hyper(const struct zrt_adam_hyper *hyper, float unscale, float clip,
                              const zrt_adam_slice *slice, zrt_simd simd, zrt_cpu_pool *pool);

/* ---- the NVMe swapper ------------------------------------------------------
 * One logical file, striped over `n_paths` directories in block_size
 * chunks (chunk c is in file c % n_paths), read and written through
 * io_uring with O_DIRECT: offsets, sizes and buffers aligned to 4096 bytes.
 * Requests are split into chunks, queue_depth of them in flight; a thread of
 * the swapper reaps completions and submits the rest, so I/O goes on while
 * the caller computes. Buffers registered with zrt_swap_register are read
 * and written as fixed buffers. Files are preallocated (fallocate) when the
 * swapper is made and removed when it is destroyed; their names carry the
 * process id, so zrt_swap_clean_stale can tell a crashed run's leftovers. */

typedef struct zrt_swap zrt_swap;

#define ZRT_SWAP_ALIGN 4096

typedef struct {
    const char *const *paths;  /* directories, existing */
    int n_paths;               /* 1..ZRT_MAX_NVME_PATHS */
    const char *name;          /* in the file names: zrt-swap-PID-NAME.I */
    size_t bytes;              /* the logical size */
    size_t block_size;         /* bytes per request: a multiple of 4096 */
    int queue_depth;           /* requests in flight, 1..4096 */
} zrt_swap_options;

/* Creates, preallocates and opens the files; an error names the file and why
 * (a missing or read-only directory, no space: ENOSPC). */
zrt_status zrt_swap_create(const zrt_swap_options *options, zrt_swap **out);
/* Registers host buffers (4096-aligned) with the ring, replacing earlier ones. */
zrt_status zrt_swap_register(zrt_swap *swap, void *const *buffers, const size_t *bytes, int n);
/* Queues a read (write) of bytes at offset of the logical file into (from)
 * buffer and returns at once; *ticket names it for zrt_swap_wait. */
zrt_status zrt_swap_read(zrt_swap *swap, size_t offset, void *buffer, size_t bytes, uint64_t *ticket);
zrt_status zrt_swap_write(zrt_swap *swap, size_t offset, const void *buffer, size_t bytes, uint64_t *ticket);
/* A write queued before every request not started yet (the one being
 * submitted goes on): for bytes no queued read touches, when the caller
 * waits for it while reads far ahead fill the queue. */
zrt_status zrt_swap_write_first(zrt_swap *swap, size_t offset, const void *buffer, size_t bytes, uint64_t *ticket);
/* A read whose first chunk goes to the ring only once every write up to
 * ticket `after` (an earlier ticket; 0: none) is done -- e.g. the writes out
 * of the same buffer, or of the same bytes of the file -- so the caller need
 * not block for them. Requests are submitted in queue order: those queued
 * behind it wait too. */
zrt_status zrt_swap_read_after(zrt_swap *swap, uint64_t after, size_t offset, void *buffer, size_t bytes,
                               uint64_t *ticket);
/* Blocks until the request is done: ZRT_OK, or ZRT_ERR_IO naming the file
 * and offset (EIO, a short read or write). After a failure every wait
 * reports it (the swapper is broken) and every later request fails. */
zrt_status zrt_swap_wait(zrt_swap *swap, uint64_t ticket);
/* Waits for everything queued, then removes the files. NULL is fine. */
void zrt_swap_destroy(zrt_swap *swap);
/* Removes zrt-swap-* files of processes that no longer run from the
 * directories; their names go to report (one per line; "" if none). */
zrt_status zrt_swap_clean_stale(const char *const *paths, int n_paths, char *report, size_t report_size);
/* Fault sites (zrt/internal/fault.h, ZRT_FAULT_SWAP=KIND:N[:NAME]): the
 * N-th request of KIND (short_read, short_write, eio_read, eio_write; from
 * 1) fails so (its first chunk to complete: half the bytes, or EIO);
 * kill_write:N raises SIGKILL when the N-th write is queued (a rank killed
 * mid-step), in every swapper or only in the one of that name (the engine's
 * are "optimizer-rankR"). late_writes:1 stands in for a drive that lands
 * writes late: reads pass every write queued before them that they are not
 * ordered after (zrt_swap_read_after), so an order relied on without
 * asking breaks every time. */

#ifdef __cplusplus
}
#endif
#endif
