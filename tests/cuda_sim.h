/* cuda_sim.h: enough of CUDA's execution model on the CPU to run kernels
 * written in the subset of CUDA C++ that C11 also compiles
 * (kernels/flash_tiles.cuh): a block's threads are pthreads,
 * __syncthreads() a barrier, its shared memory one buffer filled with NaN
 * before every block (a read of what no thread wrote shows up as NaN),
 * blocks one after another.
 *
 * Why: CI has no GPU. This runs the kernels' own source -- their indexing,
 * tiles, causal limits and barriers -- where the emulated launchers of
 * test_model_emulated run a reference instead. Not modeled: warps and
 * their shuffles, memory ordering other than the barrier's, CUDA's own
 * expf/logf ulps, concurrency between blocks. Include it before the kernels.
 */
#ifndef ZRT_TEST_CUDA_SIM_H
#define ZRT_TEST_CUDA_SIM_H

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#define __global__
#define __device__
#define __forceinline__ inline
#define __syncthreads() pthread_barrier_wait(&sim_barrier)
#define ZRT_SHARED_FLOATS(name) float *name = sim_shared

static pthread_barrier_t sim_barrier;
static float *sim_shared;
static int sim_threads;
static _Thread_local int sim_tid, sim_bx, sim_by;

static inline int tid(void) { return sim_tid; }
static inline int nthreads(void) { return sim_threads; }
static inline int bx(void) { return sim_bx; }
static inline int by(void) { return sim_by; }
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }

/* Calls one kernel with its arguments (a wrapper per kernel: C has no closures). */
typedef void (*sim_kernel)(const void *args);

typedef struct {
    sim_kernel kernel;
    const void *args;
    int gx, gy, t;
    size_t shared_floats;
} sim_thread_arg;

/* Every block of the grid in order; thread 0 refills shared memory with NaN between blocks. */
static void *sim_thread_main(void *p)
{
    const sim_thread_arg *a = p;
    sim_tid = a->t;
    for (int y = 0; y < a->gy; y++)
        for (int x = 0; x < a->gx; x++) {
            if (a->t == 0)
                for (size_t i = 0; i < a->shared_floats; i++) sim_shared[i] = NAN;
            pthread_barrier_wait(&sim_barrier);
            sim_bx = x, sim_by = y;
            a->kernel(a->args);
            pthread_barrier_wait(&sim_barrier);
        }
    return NULL;
}

/* Runs kernel on a (gx, gy) grid of `threads`-thread blocks (1..1024) with `shared` bytes of shared
 * memory each; false without the memory. A thread that cannot start aborts the test (the others would
 * wait at the barrier for ever). */
static bool sim_launch(sim_kernel kernel, const void *args, int gx, int gy, int threads, size_t shared)
{
    pthread_t ids[1024];
    sim_thread_arg a[1024];
    if (threads < 1 || threads > 1024 || !(sim_shared = malloc(shared ? shared : 1))) return false;
    sim_threads = threads;
    pthread_barrier_init(&sim_barrier, NULL, (unsigned)threads);
    for (int t = 0; t < threads; t++) {
        a[t] = (sim_thread_arg){kernel, args, gx, gy, t, shared / sizeof(float)};
        if (pthread_create(&ids[t], NULL, sim_thread_main, &a[t]) != 0) abort();
    }
    for (int t = 0; t < threads; t++) pthread_join(ids[t], NULL);
    pthread_barrier_destroy(&sim_barrier);
    free(sim_shared);
    sim_shared = NULL;
    return true;
}

#endif
