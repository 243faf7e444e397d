/* mem.c: the device's side table of allocations, and the byte counts per
 * place and category behind the memory report.
 *
 * Why a side table: device memory cannot carry a size header (the host may
 * not touch it), so the size, category and name of every allocation live
 * here, sorted by base so that the check mode can find the allocation an
 * interior pointer belongs to by binary search. A job has hundreds of
 * allocations, so an insertion's memmove costs nothing next to the
 * allocation itself.
 */
#include "device.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *zrt_mem_category_name(zrt_mem_category c)
{
    static const char *const names[] = {"params", "grads", "optimizer", "comm", "activations"};
    return (unsigned)c < ZRT_MEM_CATEGORIES ? names[c] : "?";
}

const char *zrt_mem_place_name(zrt_mem_place p)
{
    static const char *const names[] = {"device", "host"};
    return (unsigned)p < ZRT_MEM_PLACES ? names[p] : "?";
}

double zrt_mem_peak_resident(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1) break;
    if (f) fclose(f);
    return kb < 0 ? -1 : (double)kb * 1024.0;
}

int64_t zrt_mem_model_states(const zrt_mem_stats *stats, zrt_mem_place place)
{
    if (!stats || (unsigned)place >= ZRT_MEM_PLACES) return 0;
    const int64_t *c = stats->current[place];
    return c[ZRT_MEM_PARAMS] + c[ZRT_MEM_GRADS] + c[ZRT_MEM_OPTIMIZER];
}

int64_t zrt_mem_total(const zrt_mem_stats *stats, zrt_mem_place place)
{
    if (!stats || (unsigned)place >= ZRT_MEM_PLACES) return 0;
    int64_t total = 0;
    for (int c = 0; c < ZRT_MEM_CATEGORIES; c++) total += stats->current[place][c];
    return total;
}

static void charge(zrt_mem_stats *s, zrt_mem_place p, zrt_mem_category c, int64_t bytes)
{
    s->current[p][c] += bytes;
    if (s->current[p][c] > s->peak[p][c]) s->peak[p][c] = s->current[p][c];
    s->all += bytes;
    if (s->all > s->peak_all) s->peak_all = s->all;
}

/* The first block whose base is above ptr. */
static size_t upper_bound(const zrt_mem_table *t, const void *ptr)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if ((const char *)t->blocks[mid].base <= (const char *)ptr) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

zrt_status zrt_mem_table_add(zrt_mem_table *t, void *base, size_t bytes, zrt_mem_category c, zrt_mem_place p,
                             const char *name)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 64;
        zrt_mem_block *grown = realloc(t->blocks, cap * sizeof *grown);
        if (!grown) return zrt_set_error(ZRT_ERR_NOMEM, "device: out of host memory for the allocation table");
        t->blocks = grown;
        t->cap = cap;
    }
    size_t at = upper_bound(t, base);
    memmove(&t->blocks[at + 1], &t->blocks[at], (t->n - at) * sizeof *t->blocks);
    zrt_mem_block *b = &t->blocks[at];
    memset(b, 0, sizeof *b);
    *b = (zrt_mem_block){.base = base, .bytes = bytes, .category = c, .place = p};
    snprintf(b->name, sizeof b->name, "%s", name && name[0] ? name : "unnamed");
    t->n++;
    charge(&t->stats, p, c, (int64_t)bytes);
    return ZRT_OK;
}

zrt_mem_block *zrt_mem_table_find(const zrt_mem_table *t, const void *ptr, size_t bytes)
{
    size_t at = upper_bound(t, ptr);
    if (at == 0) return NULL;
    zrt_mem_block *b = &t->blocks[at - 1];
    size_t offset = (size_t)((const char *)ptr - b->base);
    /* A zero-byte block still owns its base (malloc gave it a unique address). */
    bool inside = b->bytes ? offset < b->bytes && bytes <= b->bytes - offset : offset == 0 && bytes == 0;
    return inside ? b : NULL;
}

zrt_mem_block *zrt_mem_table_exact(const zrt_mem_table *t, const void *ptr)
{
    size_t at = upper_bound(t, ptr);
    return at > 0 && t->blocks[at - 1].base == (const char *)ptr ? &t->blocks[at - 1] : NULL;
}

void zrt_mem_table_remove(zrt_mem_table *t, zrt_mem_block *b)
{
    charge(&t->stats, b->place, b->category, -(int64_t)b->bytes);
    size_t at = (size_t)(b - t->blocks);
    memmove(&t->blocks[at], &t->blocks[at + 1], (t->n - at - 1) * sizeof *t->blocks);
    t->n--;
}

void zrt_mem_table_remove_deferred(zrt_mem_table *t, zrt_mem_block *b)
{
    t->stats.current[b->place][b->category] -= (int64_t)b->bytes;
    t->stats.freeing += (int64_t)b->bytes;
    size_t at = (size_t)(b - t->blocks);
    memmove(&t->blocks[at], &t->blocks[at + 1], (t->n - at - 1) * sizeof *t->blocks);
    t->n--;
}

void zrt_mem_table_recharge(zrt_mem_table *t, zrt_mem_block *b, zrt_mem_category c)
{
    t->stats.current[b->place][b->category] -= (int64_t)b->bytes; /* moved: the total's peak does not change */
    t->stats.all -= (int64_t)b->bytes;
    b->category = c;
    charge(&t->stats, b->place, c, (int64_t)b->bytes);
}

void zrt_mem_table_fini(zrt_mem_table *t)
{
    free(t->blocks);
    memset(t, 0, sizeof *t);
}
