/* zrt/mem.h: memory categories and the per-device byte counts behind the
 * memory report (params, grads, optimizer state, comm staging, activations).
 *
 * Why categories: the ZeRO paper counts model states as params + grads +
 * optimizer state; a report that charges every byte to one of them can be
 * checked against its formulas (16P, 4P + 12P/N, 2P + 14P/N, 16P/N). */
#ifndef ZRT_MEM_H
#define ZRT_MEM_H

#include "zrt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- memory --------------------------------------------------------------------- */

typedef enum {
    ZRT_MEM_PARAMS,      /* compute-dtype parameters (full, shard or gathered) */
    ZRT_MEM_GRADS,       /* compute-dtype gradients (full or shard) */
    ZRT_MEM_OPTIMIZER,   /* fp32 master, exp_avg, exp_avg_sq */
    ZRT_MEM_COMM,        /* staging for collectives */
    ZRT_MEM_ACTIVATIONS, /* activations and fp32 work buffers */
    ZRT_MEM_CATEGORIES
} zrt_mem_category;

typedef struct {
    int64_t current[ZRT_MEM_CATEGORIES]; /* bytes */
    int64_t peak[ZRT_MEM_CATEGORIES];
} zrt_mem_stats;

/* Zeroed, 64-byte aligned; NULL when out of memory. */
void *zrt_mem_alloc(zrt_mem_stats *stats, zrt_mem_category c, size_t bytes);
void zrt_mem_free(zrt_mem_stats *stats, zrt_mem_category c, void *ptr);
/* Moves ptr's bytes from one category to another (a buffer changing role). */
void zrt_mem_recharge(zrt_mem_stats *stats, zrt_mem_category from, zrt_mem_category to, void *ptr);
/* params + grads + optimizer, now. */
int64_t zrt_mem_model_states(const zrt_mem_stats *stats);
const char *zrt_mem_category_name(zrt_mem_category c);

#ifdef __cplusplus
}
#endif
#endif
