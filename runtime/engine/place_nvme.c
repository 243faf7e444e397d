/* place_nvme.c: offload_optimizer: nvme -- the fp32 master and moments of
 * the own shard in files under nvme_path (striped over every path given),
 * read and written through the swapper (zrt/offload.h, io_uring) in
 * sub-groups, pipelined with the CPU optimizer: this file is the state
 * source (host_state_ops) of place_host.c's pipeline.
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
#include "place_host.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const place_env *env;
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
} swapped_state;

static size_t part_bytes(size_t n) { return (n * sizeof(float) + ZRT_SWAP_ALIGN - 1) / ZRT_SWAP_ALIGN * ZRT_SWAP_ALIGN; }

/* Cuts every unit's shard into sub-groups; returns the file's size. */
static zrt_status plan(swapped_state *s, size_t *file_bytes)
{
    const place_env *env = s->env;
    size_t widest = 0, count = 0, offset = 0;
    for (int i = 0; i < env->n_units; i++) widest = (size_t)env->units[i].shard > widest ? (size_t)env->units[i].shard : widest;
    zrt_engine_nvme_slots(env->cfg, (int64_t)widest, &s->n_slots, &s->group_elements, &s->region_bytes);
    for (int i = 0; i < env->n_units; i++) count += ((size_t)env->units[i].shard + s->group_elements - 1) / s->group_elements;
    s->groups = calloc(count + 1, sizeof *s->groups);
    s->unit_first = calloc((size_t)env->n_units + 1, sizeof *s->unit_first);
    if (!s->groups || !s->unit_first) return zrt_set_error(ZRT_ERR_NOMEM, "offload (nvme): out of memory");
    for (int i = 0; i < env->n_units; i++) {
        size_t shard = (size_t)env->units[i].shard;
        s->unit_first[i] = (int)s->n_groups;
        for (size_t begin = 0; begin < shard; begin += s->group_elements) {
            size_t n = shard - begin < s->group_elements ? shard - begin : s->group_elements;
            s->groups[s->n_groups++] = (zrt_subgroup){.unit = i, .begin = begin, .n = n, .file_offset = offset};
            offset += 3 * part_bytes(n);
        }
    }
    s->unit_first[env->n_units] = (int)s->n_groups;
    *file_bytes = offset ? offset : ZRT_SWAP_ALIGN;
    return ZRT_OK;
}

static zrt_status alloc_slots(swapped_state *s)
{
    const place_env *env = s->env;
    s->slots = calloc((size_t)s->n_slots, sizeof *s->slots);
    s->reading = calloc((size_t)s->n_slots, sizeof *s->reading);
    s->writing = calloc((size_t)s->n_slots, sizeof *s->writing);
    if (!s->slots || !s->reading || !s->writing) return zrt_set_error(ZRT_ERR_NOMEM, "offload (nvme): out of memory");
    s->ahead = (size_t)s->n_slots - 2;
    void *buffers[64];
    size_t sizes[64];
    for (int k = 0; k < s->n_slots; k++) {
        ZRT_CHECK(zrt_host_alloc(env->device, ZRT_MEM_OPTIMIZER, s->region_bytes, "optimizer sub-group (host)",
                                 (void **)&s->slots[k]));
        if (k < 64) {
            buffers[k] = s->slots[k];
            sizes[k] = s->region_bytes;
        }
    }
    return zrt_swap_register(s->swap, buffers, sizes, s->n_slots < 64 ? s->n_slots : 64);
}

static zrt_status swapped_finish(void *src);

static void swapped_destroy(void *src)
{
    swapped_state *s = src;
    if (!s) return;
    swapped_finish(s);
    zrt_swap_destroy(s->swap);
    for (int k = 0; s->slots && k < s->n_slots; k++) zrt_host_free(s->env->device, s->slots[k]);
    free(s->slots);
    free(s->reading);
    free(s->writing);
    free(s->groups);
    free(s->unit_first);
    free(s);
}

/* The swap file, made (after removing a crashed run's), and the slots. */
static zrt_status swapped_create(const place_env *env, void **out)
{
    swapped_state *s = calloc(1, sizeof *s);
    *out = s; /* destroy frees what was made if a step below fails */
    if (!s) return zrt_set_error(ZRT_ERR_NOMEM, "offload (nvme): out of memory");
    s->env = env;
    size_t file_bytes = 0;
    ZRT_CHECK(plan(s, &file_bytes));
    ZRT_CHECK(zrt_place_open_swap(env, &env->cfg->zero.offload_optimizer, "optimizer", file_bytes, &s->swap));
    return alloc_slots(s);
}

static size_t swapped_groups(void *src) { return ((swapped_state *)src)->n_groups; }

/* ---- the pipeline --------------------------------------------------------------------------- */

static float *slot_of(const swapped_state *s, size_t k) { return s->slots[k % (size_t)s->n_slots]; }

static zrt_status wait_ticket(swapped_state *s, uint64_t *ticket)
{
    if (*ticket == 0) return ZRT_OK;
    uint64_t t = *ticket;
    *ticket = 0;
    return zrt_swap_wait(s->swap, t);
}

/* Queues the read of sub-group k into its slot, once that slot's last write is done. */
static zrt_status queue_read(swapped_state *s, size_t k)
{
    int slot = (int)(k % (size_t)s->n_slots);
    ZRT_CHECK(wait_ticket(s, &s->writing[slot]));
    const zrt_subgroup *g = &s->groups[k];
    s->next_read = k + 1;
    return zrt_swap_read(s->swap, g->file_offset, s->slots[slot], 3 * part_bytes(g->n), &s->reading[slot]);
}

static zrt_status swapped_start(void *src)
{
    swapped_state *s = src;
    if (s->started) return ZRT_OK;
    s->started = true;
    s->next_read = 0;
    for (size_t k = 0; k < s->ahead && k < s->n_groups; k++) ZRT_CHECK(queue_read(s, k));
    return ZRT_OK;
}

static zrt_status swapped_load(void *src, size_t k, zrt_subgroup *g, float *state[STATE_PARTS])
{
    swapped_state *s = src;
    *g = s->groups[k];
    size_t next = k + s->ahead;
    if (next < s->n_groups && s->next_read == next) ZRT_CHECK(queue_read(s, next));
    ZRT_CHECK(wait_ticket(s, &s->reading[k % (size_t)s->n_slots]));
    size_t part = part_bytes(s->groups[k].n) / sizeof(float);
    float *base = slot_of(s, k);
    for (int p = 0; p < STATE_PARTS; p++) state[p] = base + (size_t)p * part;
    return ZRT_OK;
}

static zrt_status swapped_store(void *src, size_t k)
{
    swapped_state *s = src;
    const zrt_subgroup *g = &s->groups[k];
    int slot = (int)(k % (size_t)s->n_slots);
    return zrt_swap_write(s->swap, g->file_offset, s->slots[slot], 3 * part_bytes(g->n), &s->writing[slot]);
}

static zrt_status swapped_finish(void *src)
{
    swapped_state *s = src;
    zrt_first_error first = {0};
    s->started = false;
    for (int k = 0; k < s->n_slots && s->reading; k++) {
        uint64_t *tickets[2] = {&s->reading[k], &s->writing[k]};
        for (int t = 0; t < 2; t++) zrt_first_error_keep(&first, wait_ticket(s, tickets[t]));
    }
    return zrt_first_error_restore(&first);
}

/* ---- host access, outside steps (init, checkpoints, get_master) ------------------------------ */

static zrt_status swapped_state_io(void *src, int unit, int part, size_t begin, size_t n, void *host, bool write)
{
    swapped_state *s = src;
    ZRT_CHECK(swapped_finish(s));
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

static const host_state_ops swapped = {
    .groups = swapped_groups,
    .start = swapped_start,
    .load = swapped_load,
    .store = swapped_store,
    .finish = swapped_finish,
    .state_io = swapped_state_io,
    .destroy = swapped_destroy,
};

static zrt_status nvme_create(const place_env *env, void **out)
{
    return zrt_host_place_create(env, &swapped, swapped_create, out);
}

const place_ops zrt_place_nvme = {.name = "nvme", .agree_step = "the optimizer step (nvme offload)",
                                  .create = nvme_create, HOST_PLACE_ENTRIES};
