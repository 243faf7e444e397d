/* mem.c: the one allocation wrapper of the engine, charging every byte to a
 * category (params, grads, optimizer, comm buffers, activations) so the
 * memory report is true.
 *
 * Why a size header: zrt_mem_free needs the size to uncharge, and callers
 * should not have to carry it. Allocations are 64-byte aligned and zeroed.
 */
#include "zrt.h"

#include <stdlib.h>
#include <string.h>

#define HEADER 64

const char *zrt_mem_category_name(zrt_mem_category c)
{
    static const char *const names[] = {"params", "grads", "optimizer", "comm", "activations"};
    return (unsigned)c < ZRT_MEM_CATEGORIES ? names[c] : "?";
}

void *zrt_mem_alloc(zrt_mem_stats *stats, zrt_mem_category c, size_t bytes)
{
    char *block = NULL;
    if (posix_memalign((void **)&block, 64, HEADER + bytes) != 0) return NULL;
    memset(block, 0, HEADER + bytes);
    memcpy(block, &bytes, sizeof bytes);
    stats->current[c] += (int64_t)bytes;
    if (stats->current[c] > stats->peak[c]) stats->peak[c] = stats->current[c];
    return block + HEADER;
}

void zrt_mem_free(zrt_mem_stats *stats, zrt_mem_category c, void *ptr)
{
    if (!ptr) return;
    char *block = (char *)ptr - HEADER;
    size_t bytes;
    memcpy(&bytes, block, sizeof bytes);
    stats->current[c] -= (int64_t)bytes;
    free(block);
}

int64_t zrt_mem_model_states(const zrt_mem_stats *stats)
{
    return stats->current[ZRT_MEM_PARAMS] + stats->current[ZRT_MEM_GRADS] + stats->current[ZRT_MEM_OPTIMIZER];
}

void zrt_mem_recharge(zrt_mem_stats *stats, zrt_mem_category from, zrt_mem_category to, void *ptr)
{
    if (!ptr) return;
    size_t bytes;
    memcpy(&bytes, (char *)ptr - HEADER, sizeof bytes);
    stats->current[from] -= (int64_t)bytes;
    stats->current[to] += (int64_t)bytes;
    if (stats->current[to] > stats->peak[to]) stats->peak[to] = stats->current[to];
}
