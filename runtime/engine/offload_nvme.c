/* offload_nvme.c: offload_optimizer: nvme -- the fp32 master and moments of
 * the own shard in files under nvme_path (striped over every path given),
 * read and written through the swapper (zrt/offload.h, io_uring) in
 * sub-groups, pipelined with the CPU optimizer.
 *
 * Layout: each unit's shard is cut into sub-groups of sub_group_size
 * elements (the last one shorter; a sub-group never spans units). Sub-group
 * g is a region of the swap file [master | exp_avg | exp_avg_sq], each part
 * padded to 4096 bytes (O_DIRECT), regions end to end in unit order.
 * The pipeline (always on): S = max(3, buffer_count) pinned slots of one
 * region each, registered with the ring. The reads of the first S - 2
 * sub-groups are queued when the step starts (the state does not depend on
 * the gradients, so they overlap forward and backward); load(k) queues the
 * read of k + S - 2 into its slot (once the write of k - 2, which that slot
 * held, is done), then waits for k; store(k) queues k's write. So reads
 * ahead and the write of k-1 overlap the optimizer on k, and the host holds
 * S sub-groups, never the shard (DeepSpeed #3000: pinned swap buffers sized
 * to the state).
 * Files are made at creation (after removing a crashed run's, which the
 * engine's warnings name) and removed by destroy.
 */
#include "engine_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct zrt_nvme_state {
    zrt_engine *e;
    zrt_swap *swap;
    zrt_subgroup *groups;
    size_t n_groups, group_elements;
    int *unit_first;        /* the unit's first sub-group */
    float **slots;          /* pinned, region_bytes each */
    uint64_t *reading, *writing; /* per slot: the ticket in flight (0: none) */
    int n_slots;
    size_t region_bytes;    /* of a full sub-group */
    size_t next_read;       /* the next sub-group to queue a read for */
    size_t ahead;           /* reads queued ahead of the sub-group in use: n_slots - 2 */
    bool started;           /* reads of this pass queued (from the step's start: they overlap backward) */
};

static size_t part_bytes(size_t n) { return (n * sizeof(float) + ZRT_SWAP_ALIGN - 1) / ZRT_SWAP_ALIGN * ZRT_SWAP_ALIGN; }

/* Cuts every unit's shard into sub-groups; returns the file's size. */
static zrt_status plan(zrt_nvme_state *s, size_t *file_bytes)
{
    zrt_engine *e = s->e;
    size_t widest = 0, count = 0, offset = 0;
    for (int i = 0; i < e->n_units; i++) widest = (size_t)e->units[i].shard > widest ? (size_t)e->units[i].shard : widest;
    zrt_engine_nvme_slots(&e->cfg, (int64_t)widest, &s->n_slots, &s->group_elements, &s->region_bytes);
    for (int i = 0; i < e->n_units; i++) count += ((size_t)e->units[i].shard + s->group_elements - 1) / s->group_elements;
    s->groups = calloc(count + 1, sizeof *s->groups);
    s->unit_first = calloc((size_t)e->n_units + 1, sizeof *s->unit_first);
    if (!s->groups || !s->unit_first) return zrt_set_error(ZRT_ERR_NOMEM, "offload (nvme): out of memory");
    for (int i = 0; i < e->n_units; i++) {
        s->unit_first[i] = (int)s->n_groups;
        for (size_t begin = 0; begin < (size_t)e->units[i].shard; begin += s->group_elements) {
            size_t n = (size_t)e->units[i].shard - begin < s->group_elements ? (size_t)e->units[i].shard - begin
                                                                             : s->group_elements;
            s->groups[s->n_groups++] = (zrt_subgroup){.unit = i, .begin = begin, .n = n, .file_offset = offset};
            offset += 3 * part_bytes(n);
        }
    }
    s->unit_first[e->n_units] = (int)s->n_groups;
    *file_bytes = offset ? offset : ZRT_SWAP_ALIGN;
    return ZRT_OK;
}

zrt_status zrt_engine_swap_dirs(zrt_engine *e, const char *const *paths, int n_paths)
{
    for (int i = 0; i < n_paths; i++) { /* mkdir -p, component by component */
        char dir[ZRT_PATH_MAX];
        snprintf(dir, sizeof dir, "%s", paths[i]);
        for (char *slash = dir + 1;; slash++) {
            bool end = *slash == '\0';
            if (!end && *slash != '/') continue;
            *slash = '\0';
            if (mkdir(dir, 0755) != 0 && errno != EEXIST)
                return zrt_set_error(ZRT_ERR_IO, "nvme offload: cannot make the directory %s (nvme_path %s): %s", dir,
                                     paths[i], strerror(errno));
            if (end) break;
            *slash = '/';
        }
    }
    char removed[2048];
    ZRT_CHECK(zrt_swap_clean_stale(paths, n_paths, removed, sizeof removed));
    if (removed[0]) zrt_engine_warn(e, "nvme offload: removed the swap files of a run that is gone:\n%s", removed);
    return ZRT_OK;
}

zrt_status zrt_engine_open_swap(zrt_engine *e, const zrt_offload_config *c, const char *what, size_t bytes,
                                zrt_swap **out)
{
    const char *paths[ZRT_MAX_NVME_PATHS];
    for (int i = 0; i < c->n_nvme_paths; i++) paths[i] = c->nvme_paths[i];
    ZRT_CHECK(zrt_engine_swap_dirs(e, paths, c->n_nvme_paths));
    char name[48];
    snprintf(name, sizeof name, "%s-rank%d", what, e->rank);
    zrt_swap_options o = {.paths = paths, .n_paths = c->n_nvme_paths, .name = name, .bytes = bytes,
                          .block_size = (size_t)e->cfg.aio.block_size, .queue_depth = (int)e->cfg.aio.queue_depth};
    return zrt_swap_create(&o, out);
}

static zrt_status alloc_slots(zrt_nvme_state *s)
{
    zrt_engine *e = s->e;
    s->slots = calloc((size_t)s->n_slots, sizeof *s->slots);
    s->reading = calloc((size_t)s->n_slots, sizeof *s->reading);
    s->writing = calloc((size_t)s->n_slots, sizeof *s->writing);
    if (!s->slots || !s->reading || !s->writing) return zrt_set_error(ZRT_ERR_NOMEM, "offload (nvme): out of memory");
    s->ahead = (size_t)s->n_slots - 2;
    void *buffers[64];
    size_t sizes[64];
    for (int k = 0; k < s->n_slots; k++) {
        ZRT_CHECK(zrt_host_alloc(e->device, ZRT_MEM_OPTIMIZER, s->region_bytes, "optimizer sub-group (host)",
                                 (void **)&s->slots[k]));
        if (k < 64) {
            buffers[k] = s->slots[k];
            sizes[k] = s->region_bytes;
        }
    }
    return zrt_swap_register(s->swap, buffers, sizes, s->n_slots < 64 ? s->n_slots : 64);
}

void zrt_nvme_destroy(zrt_nvme_state *s)
{
    if (!s) return;
    zrt_nvme_finish(s);
    zrt_swap_destroy(s->swap);
    for (int k = 0; s->slots && k < s->n_slots; k++) zrt_host_free(s->e->device, s->slots[k]);
    free(s->slots);
    free(s->reading);
    free(s->writing);
    free(s->groups);
    free(s->unit_first);
    free(s);
}

zrt_status zrt_nvme_create(zrt_engine *e, zrt_nvme_state **out)
{
    zrt_nvme_state *s = calloc(1, sizeof *s);
    if (!s) return zrt_set_error(ZRT_ERR_NOMEM, "offload (nvme): out of memory");
    s->e = e;
    *out = s; /* the engine's destroy frees what was made if a step below fails */
    size_t file_bytes = 0;
    ZRT_CHECK(plan(s, &file_bytes));
    ZRT_CHECK(zrt_engine_open_swap(e, &e->cfg.zero.offload_optimizer, "optimizer", file_bytes, &s->swap));
    return alloc_slots(s);
}

size_t zrt_nvme_groups(const zrt_nvme_state *s) { return s->n_groups; }
const zrt_subgroup *zrt_nvme_group(const zrt_nvme_state *s, size_t k) { return &s->groups[k]; }

/* ---- the pipeline --------------------------------------------------------------------------- */

static float *slot_of(const zrt_nvme_state *s, size_t k) { return s->slots[k % (size_t)s->n_slots]; }

static zrt_status wait_ticket(zrt_nvme_state *s, uint64_t *ticket)
{
    if (*ticket == 0) return ZRT_OK;
    uint64_t t = *ticket;
    *ticket = 0;
    return zrt_swap_wait(s->swap, t);
}

/* Queues the read of sub-group k into its slot, once that slot's last write is done. */
static zrt_status queue_read(zrt_nvme_state *s, size_t k)
{
    int slot = (int)(k % (size_t)s->n_slots);
    ZRT_CHECK(wait_ticket(s, &s->writing[slot]));
    const zrt_subgroup *g = &s->groups[k];
    s->next_read = k + 1;
    return zrt_swap_read(s->swap, g->file_offset, s->slots[slot], 3 * part_bytes(g->n), &s->reading[slot]);
}

zrt_status zrt_nvme_start(zrt_nvme_state *s)
{
    if (s->started) return ZRT_OK;
    s->started = true;
    s->next_read = 0;
    for (size_t k = 0; k < s->ahead && k < s->n_groups; k++) ZRT_CHECK(queue_read(s, k));
    return ZRT_OK;
}

zrt_status zrt_nvme_load(zrt_nvme_state *s, size_t k, float *state[3])
{
    size_t next = k + s->ahead;
    if (next < s->n_groups && s->next_read == next) ZRT_CHECK(queue_read(s, next));
    ZRT_CHECK(wait_ticket(s, &s->reading[k % (size_t)s->n_slots]));
    size_t part = part_bytes(s->groups[k].n) / sizeof(float);
    float *base = slot_of(s, k);
    for (int p = 0; p < 3; p++) state[p] = base + (size_t)p * part;
    return ZRT_OK;
}

zrt_status zrt_nvme_store(zrt_nvme_state *s, size_t k)
{
    const zrt_subgroup *g = &s->groups[k];
    int slot = (int)(k % (size_t)s->n_slots);
    return zrt_swap_write(s->swap, g->file_offset, s->slots[slot], 3 * part_bytes(g->n), &s->writing[slot]);
}

zrt_status zrt_nvme_finish(zrt_nvme_state *s)
{
    zrt_status first = ZRT_OK;
    char message[ZRT_ERROR_MAX] = "";
    s->started = false;
    for (int k = 0; k < s->n_slots && s->reading; k++) {
        uint64_t *tickets[2] = {&s->reading[k], &s->writing[k]};
        for (int t = 0; t < 2; t++) {
            zrt_status status = wait_ticket(s, tickets[t]);
            if (status != ZRT_OK && first == ZRT_OK) {
                first = status;
                snprintf(message, sizeof message, "%s", zrt_last_error());
            }
        }
    }
    return first == ZRT_OK ? ZRT_OK : zrt_set_error(first, "%s", message);
}

/* ---- host access, outside steps (init, checkpoints, get_master) ------------------------------ */

zrt_status zrt_nvme_state_io(zrt_nvme_state *s, int unit, int part, size_t begin, size_t n, void *host, bool write)
{
    ZRT_CHECK(zrt_nvme_finish(s));
    float *bounce = s->slots[0];
    for (int k = s->unit_first[unit]; k < s->unit_first[unit + 1] && n > 0; k++) {
        const zrt_subgroup *g = &s->groups[k];
        if (begin >= g->begin + g->n) continue;
        size_t from = begin - g->begin, take = g->n - from < n ? g->n - from : n, bytes = part_bytes(g->n);
        uint64_t ticket;
        ZRT_CHECK(zrt_swap_read(s->swap, g->file_offset + (size_t)part * bytes, bounce, bytes, &ticket));
        ZRT_CHECK(zrt_swap_wait(s->swap, ticket));
        if (write) {
            memcpy(bounce + from, host, take * sizeof(float));
            ZRT_CHECK(zrt_swap_write(s->swap, g->file_offset + (size_t)part * bytes, bounce, bytes, &ticket));
            ZRT_CHECK(zrt_swap_wait(s->swap, ticket));
        } else {
            memcpy(host, bounce + from, take * sizeof(float));
        }
        host = (char *)host + take * sizeof(float);
        begin += take;
        n -= take;
    }
    return ZRT_OK;
}
