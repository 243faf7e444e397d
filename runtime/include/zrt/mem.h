/* zrt/mem.h: memory categories and the per-device byte counts behind the
 * memory report (params, grads, optimizer state, comm staging, activations),
 * for device memory and pinned host memory apart.
 *
 * Why categories: the ZeRO paper counts model states as params + grads +
 * optimizer state; a report that charges every byte to one of them can be
 * checked against its formulas (16P, 4P + 12P/N, 2P + 14P/N, 16P/N). Why
 * places: with optimizer offload the state moves to host memory, and the
 * device report must then show 0 optimizer bytes.
 * Every allocation of a zrt_device is charged here (zrt/device.h); the sizes
 * live in the device's side table, never inside the blocks. */
#ifndef ZRT_MEM_H
#define ZRT_MEM_H

#include "zrt/base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    ZRT_MEM_PARAMS,      /* compute-dtype parameters (full, shard or gathered) */
    ZRT_MEM_GRADS,       /* compute-dtype gradients (full or shard) */
    ZRT_MEM_OPTIMIZER,   /* fp32 master, exp_avg, exp_avg_sq */
    ZRT_MEM_COMM,        /* staging for collectives, cached gather buffers */
    ZRT_MEM_ACTIVATIONS, /* activations, fp32 work buffers, the step's scratch */
    ZRT_MEM_CATEGORIES
} zrt_mem_category;

typedef enum {
    ZRT_MEM_DEVICE,      /* the device's own memory */
    ZRT_MEM_HOST,        /* pinned host memory the device copies to and from */
    ZRT_MEM_PLACES
} zrt_mem_place;

typedef struct {
    int64_t current[ZRT_MEM_PLACES][ZRT_MEM_CATEGORIES]; /* bytes */
    int64_t peak[ZRT_MEM_PLACES][ZRT_MEM_CATEGORIES];    /* the highest `current` seen */
    int64_t all, peak_all; /* every place and category together, now and at its highest (the process's
                            * peak resident memory on the cpu device is this plus its code and libraries) */
    int64_t freeing;       /* freed on a stream that has not yet reached the free: out of `current`, still
                            * in `all` (the memory is still held) */
} zrt_mem_stats;

/* params + grads + optimizer in `place`, now. */
int64_t zrt_mem_model_states(const zrt_mem_stats *stats, zrt_mem_place place);
/* Every category in `place`, now. */
int64_t zrt_mem_total(const zrt_mem_stats *stats, zrt_mem_place place);
/* "params", "grads", "optimizer", "comm", "activations"; "?" otherwise. */
const char *zrt_mem_category_name(zrt_mem_category c);
/* "device", "host"; "?" otherwise. */
const char *zrt_mem_place_name(zrt_mem_place p);
/* This process's peak resident set (VmHWM), in bytes, to set beside the
 * report's peak; -1 where /proc cannot say. */
double zrt_mem_peak_resident(void);

#ifdef __cplusplus
}
#endif
#endif
