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
 * The pipeline (always on): an arena of S = max(3, buffer_count) full
 * sub-groups' regions (pinned, registered with the ring) holds the regions
 * in a ring, packed by bytes: small sub-groups (a model's blocks beside its
 * embedding, which sets the region's size) take only their own bytes, so
 * the arena reads many ahead. When the step starts, the reads of as many
 * sub-groups as the arena holds are queued (the state does not depend on
 * the gradients, so they overlap forward and backward); each load queues
 * the reads that fit again once the regions before it are stored, then
 * waits for its own. A read is ordered after the writes out of the bytes it
 * reuses and after the last pass's write of its sub-group by the swapper
 * (zrt_swap_read_after), so no call blocks for a write: reads ahead and the
 * writes behind overlap the optimizer, and the writes of a step's last
 * sub-groups finish behind the next step's forward and backward. They are
 * waited for before any other access to the file (drain: state_io --
 * checkpoints, masters -- and destroy); a failed one fails the step that
 * next waits. The host holds the arena, never the shard (DeepSpeed #3000:
 * pinned swap buffers sized to the state).
 * Gradients go to the file too (as DeepSpeed's swap_out_gradients): a
 * unit's come down into one of two pinned staging buffers and are written
 * to the gradients' area after the regions (unit by unit, 4096-aligned)
 * when that buffer is next needed, ahead of the queued reads (backward
 * waits for it); at the step's end (flush_grads) all are final, and from
 * then on a sub-group's read also brings its gradients into its region's
 * window (an aligned superset, 4096 bytes of slack) -- but for the last two
 * units down, whose gradients the optimizer reads from their staging
 * buffers (never written out). So the host holds two units' gradients,
 * never the shard's.
 * Files are made at creation (after removing a crashed run's, which the
 * engine's warnings name) and removed by destroy.
 */
#include "place_host.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A region's write, until a later read's wait shows it done: where the region began in the ring. */
typedef struct { uint64_t ticket, start; } region_write;

typedef struct {
    const place_env *env;
    zrt_swap *swap;
    zrt_subgroup *groups;
    size_t n_groups, group_elements;
    int *unit_first;        /* the unit's first sub-group */
    char *arena;            /* pinned: buffer_count x a full sub-group's region, the regions in a ring */
    size_t arena_bytes, region_bytes; /* region_bytes: of a full sub-group */
    uint64_t head;          /* ring position (it only grows; the arena offset is it mod arena_bytes) of the next region */
    uint64_t *pos;          /* per sub-group: its region's ring position in this pass */
    uint64_t *reading, *grad_reading, *after; /* per sub-group: its reads (0: none), the writes they were ordered after */
    uint64_t *wrote;        /* per sub-group: its last write's ticket */
    region_write *writes;   /* regions written and not yet reaped, in ring order (a queue of cap_writes) */
    size_t first_write, n_writes, cap_writes;
    size_t next_read;       /* the next sub-group to queue a read for */
    size_t live;            /* the oldest sub-group read or in use and not stored yet (== next_read: none) */
    bool started;           /* reads of this pass queued (from the step's start: they overlap backward) */
    size_t grads_base;      /* the gradients' area in the file: unit u at grads_base + grads_at[u] */
    size_t *grads_at;
    bool grads_final;       /* this step's gradients are all in the file: reads bring them too */
    void *staging[2];       /* pinned, the widest shard (D), 4096-aligned: a unit's gradients on their way out */
    int staging_unit[2];    /* the unit whose gradients it holds (-1: none) */
    bool staging_kept;      /* after flush_grads: those two units' gradients are read from staging, not the file */
    zrt_event *staging_down[2]; /* d2h: they are there */
    int next_staging;
} swapped_state;

static size_t aligned(size_t bytes) { return (bytes + ZRT_SWAP_ALIGN - 1) / ZRT_SWAP_ALIGN * ZRT_SWAP_ALIGN; }
static size_t part_bytes(size_t n) { return aligned(n * sizeof(float)); }

/* Cuts every unit's shard into sub-groups; returns the file's size. */
static zrt_status plan(swapped_state *s, size_t *file_bytes)
{
    const place_env *env = s->env;
    size_t widest = 0, count = 0, offset = 0;
    int n_slots;
    for (int i = 0; i < env->n_units; i++) widest = (size_t)env->units[i].shard > widest ? (size_t)env->units[i].shard : widest;
    zrt_engine_nvme_slots(env->cfg, (int64_t)widest, &n_slots, &s->group_elements, &s->region_bytes);
    s->arena_bytes = (size_t)n_slots * s->region_bytes;
    for (int i = 0; i < env->n_units; i++) count += ((size_t)env->units[i].shard + s->group_elements - 1) / s->group_elements;
    s->groups = calloc(count + 1, sizeof *s->groups);
    s->unit_first = calloc((size_t)env->n_units + 1, sizeof *s->unit_first);
    s->grads_at = calloc((size_t)env->n_units + 1, sizeof *s->grads_at);
    s->pos = calloc(count + 1, sizeof *s->pos);
    s->reading = calloc(count + 1, sizeof *s->reading);
    s->grad_reading = calloc(count + 1, sizeof *s->grad_reading);
    s->after = calloc(count + 1, sizeof *s->after);
    s->wrote = calloc(count + 1, sizeof *s->wrote);
    s->cap_writes = 2 * count + 8;
    s->writes = calloc(s->cap_writes, sizeof *s->writes);
    if (!s->groups || !s->unit_first || !s->grads_at || !s->pos || !s->reading || !s->grad_reading || !s->after ||
        !s->wrote || !s->writes)
        return zrt_set_error(ZRT_ERR_NOMEM, "offload (nvme): out of memory");
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
    s->grads_base = offset;
    for (int i = 0; i < env->n_units; i++) {
        s->grads_at[i] = offset - s->grads_base;
        offset += aligned((size_t)env->units[i].shard * env->es);
    }
    *file_bytes = offset ? offset : ZRT_SWAP_ALIGN;
    return ZRT_OK;
}

/* The staging buffers and the arena, registered with the ring (the arena
 * in pieces of at most 1 GiB, io_uring's limit per buffer: a chunk across
 * two pieces goes unregistered). */
static zrt_status alloc_arena(swapped_state *s)
{
    const place_env *env = s->env;
    size_t widest = 0, piece = (size_t)1 << 30, sizes[64];
    void *buffers[64];
    int n = 0;
    for (int i = 0; i < env->n_units; i++) widest = (size_t)env->units[i].shard > widest ? (size_t)env->units[i].shard : widest;
    for (int k = 0; k < 2; k++) {
        s->staging_unit[k] = -1;
        ZRT_CHECK(zrt_host_alloc(env->device, ZRT_MEM_GRADS, aligned(widest * env->es), "grads staging (host)",
                                 &s->staging[k]));
        buffers[n] = s->staging[k];
        sizes[n++] = aligned(widest * env->es);
    }
    ZRT_CHECK(zrt_host_alloc(env->device, ZRT_MEM_OPTIMIZER, s->arena_bytes, "optimizer sub-groups (host)",
                             (void **)&s->arena));
    for (size_t at = 0; at < s->arena_bytes && n < 64; at += piece) {
        buffers[n] = s->arena + at;
        sizes[n++] = s->arena_bytes - at < piece ? s->arena_bytes - at : piece;
    }
    return zrt_swap_register(s->swap, buffers, sizes, n);
}

static zrt_status swapped_drain(void *src);

static void swapped_destroy(void *src)
{
    swapped_state *s = src;
    if (!s) return;
    swapped_drain(s);
    zrt_swap_destroy(s->swap);
    zrt_host_free(s->env->device, s->arena);
    for (int k = 0; k < 2; k++) zrt_host_free(s->env->device, s->staging[k]);
    free(s->pos);
    free(s->reading);
    free(s->grad_reading);
    free(s->after);
    free(s->wrote);
    free(s->writes);
    free(s->grads_at);
    free(s->groups);
    free(s->unit_first);
    free(s);
}

/* The swap file, made (after removing a crashed run's), and the arena. */
static zrt_status swapped_create(const place_env *env, void **out)
{
    swapped_state *s = calloc(1, sizeof *s);
    *out = s; /* destroy frees what was made if a step below fails */
    if (!s) return zrt_set_error(ZRT_ERR_NOMEM, "offload (nvme): out of memory");
    s->env = env;
    size_t file_bytes = 0;
    ZRT_CHECK(plan(s, &file_bytes));
    ZRT_CHECK(zrt_place_open_swap(env, &env->cfg->zero.offload_optimizer, "optimizer", file_bytes, &s->swap));
    return alloc_arena(s);
}

static size_t swapped_groups(void *src) { return ((swapped_state *)src)->n_groups; }

/* ---- the pipeline --------------------------------------------------------------------------- */

static char *region_of(const swapped_state *s, size_t k) { return s->arena + s->pos[k] % s->arena_bytes; }

/* Bytes of sub-group k's region: its state, then its gradients' window (aligned, a block of slack). */
static size_t region_size(const swapped_state *s, size_t k)
{
    size_t n = s->groups[k].n;
    return 3 * part_bytes(n) + aligned(n * s->env->es) + ZRT_SWAP_ALIGN;
}

static zrt_status wait_ticket(swapped_state *s, uint64_t *ticket)
{
    if (*ticket == 0) return ZRT_OK;
    uint64_t t = *ticket;
    *ticket = 0;
    return zrt_swap_wait(s->swap, t);
}

/* Sub-group k's gradients in the file: the aligned window read into its
 * region after the state, and where in that window they start. */
static void grads_window(const swapped_state *s, size_t k, size_t *offset, size_t *bytes, size_t *skip)
{
    const zrt_subgroup *g = &s->groups[k];
    size_t at = s->grads_base + s->grads_at[g->unit] + g->begin * s->env->es;
    *offset = at / ZRT_SWAP_ALIGN * ZRT_SWAP_ALIGN;
    *skip = at - *offset;
    *bytes = aligned(*skip + g->n * s->env->es);
}

/* This pass's gradients of `unit` where they are still in a staging buffer (the last two units down), or NULL. */
static const char *kept_grads(const swapped_state *s, int unit)
{
    for (int k = 0; k < 2 && s->staging_kept; k++)
        if (s->staging_unit[k] == unit) return s->staging[k];
    return NULL;
}

/* Queued behind the state's read, which waits for the writes out of the region. */
static zrt_status queue_grads_read(swapped_state *s, size_t k)
{
    if (kept_grads(s, s->groups[k].unit)) return ZRT_OK;
    size_t offset, bytes, skip;
    grads_window(s, k, &offset, &bytes, &skip);
    char *window = region_of(s, k) + 3 * part_bytes(s->groups[k].n);
    return zrt_swap_read(s->swap, offset, window, bytes, &s->grad_reading[k]);
}

/* Where sub-group k's region would go: at the head, or at the next lap's
 * start when it does not fit before the arena's end. */
static uint64_t next_position(const swapped_state *s, size_t k)
{
    uint64_t at = s->head, offset = at % s->arena_bytes;
    return offset + region_size(s, k) > s->arena_bytes ? at + (s->arena_bytes - offset) : at;
}

/* Queues the read of sub-group next_read into the ring's head when it fits
 * beside the regions in use (false: not now), never blocking: ordered
 * (zrt_swap_read_after: every write up to a ticket) after the last pass's
 * write of the same sub-group (its bytes in the file) and after the writes
 * out of the arena bytes it reuses (the regions of a lap before, in ring
 * order: the last that began before our end, a lap ago). Its gradients too
 * once they are in the file. */
static zrt_status queue_read(swapped_state *s, bool *queued)
{
    size_t k = s->next_read;
    uint64_t at = next_position(s, k), end = at + region_size(s, k);
    uint64_t oldest = s->live < s->next_read ? s->pos[s->live] : at;
    *queued = end - oldest <= s->arena_bytes;
    if (!*queued) return ZRT_OK;
    s->pos[k] = at;
    s->head = end;
    s->next_read = k + 1;
    s->after[k] = s->wrote[k];
    for (size_t i = 0; i < s->n_writes; i++) {
        const region_write *w = &s->writes[(s->first_write + i) % s->cap_writes];
        if (w->start + s->arena_bytes >= end) break;
        if (w->ticket > s->after[k]) s->after[k] = w->ticket;
    }
    const zrt_subgroup *g = &s->groups[k];
    ZRT_CHECK(zrt_swap_read_after(s->swap, s->after[k], g->file_offset, region_of(s, k), 3 * part_bytes(g->n),
                                  &s->reading[k]));
    return s->grads_final ? queue_grads_read(s, k) : ZRT_OK;
}

/* Reads ahead, while the arena has room. */
static zrt_status read_ahead(swapped_state *s)
{
    for (bool queued = true; queued && s->next_read < s->n_groups;) ZRT_CHECK(queue_read(s, &queued));
    return ZRT_OK;
}

/* A pass's first reads: as many as the arena holds, from the step's start. */
static zrt_status swapped_start(void *src)
{
    swapped_state *s = src;
    if (s->started) return ZRT_OK;
    s->started = true;
    s->next_read = s->live = 0;
    return read_ahead(s);
}

/* Waits for the region writes up to ticket `through` (those a loaded
 * sub-group's read came after: done already) and lets them go; all of them
 * even after a failure, which it returns. */
static zrt_status reap_writes(swapped_state *s, uint64_t through)
{
    zrt_first_error first = {0};
    for (; s->n_writes && s->writes[s->first_write].ticket <= through; s->n_writes--) {
        zrt_first_error_keep(&first, wait_ticket(s, &s->writes[s->first_write].ticket));
        s->first_write = (s->first_write + 1) % s->cap_writes;
    }
    return zrt_first_error_restore(&first);
}

static zrt_status swapped_load(void *src, size_t k, zrt_subgroup *g, float *state[STATE_PARTS], const void **grads)
{
    swapped_state *s = src;
    *g = s->groups[k];
    s->live = k;
    ZRT_CHECK(read_ahead(s)); /* k's own read among them when it was not queued yet */
    ZRT_CHECK(wait_ticket(s, &s->reading[k]));
    ZRT_CHECK(wait_ticket(s, &s->grad_reading[k]));
    ZRT_CHECK(reap_writes(s, s->after[k]));
    size_t part = part_bytes(s->groups[k].n) / sizeof(float), offset, bytes, skip;
    float *base = (float *)region_of(s, k);
    for (int p = 0; p < STATE_PARTS; p++) state[p] = base + (size_t)p * part;
    grads_window(s, k, &offset, &bytes, &skip);
    const char *kept = kept_grads(s, g->unit);
    *grads = kept ? kept + g->begin * s->env->es : (const char *)(base + STATE_PARTS * part) + skip;
    return ZRT_OK;
}

/* Staging buffer k's gradients to the file, once they are there (it is free
 * after): ahead of the reads queued (zrt_swap_write_first), which need not
 * wait for them, so that backward, which waits for the buffer, does not
 * wait behind the reads ahead. */
static zrt_status write_staged(swapped_state *s, int k)
{
    int unit = s->staging_unit[k];
    if (unit < 0) return ZRT_OK;
    s->staging_unit[k] = -1;
    ZRT_CHECK(zrt_event_synchronize(s->staging_down[k]));
    uint64_t ticket;
    ZRT_CHECK(zrt_swap_write_first(s->swap, s->grads_base + s->grads_at[unit], s->staging[k],
                                   aligned((size_t)s->env->units[unit].shard * s->env->es), &ticket));
    return zrt_swap_wait(s->swap, ticket);
}

static zrt_status swapped_grads_in(void *src, int unit, void **host)
{
    swapped_state *s = src;
    int k = s->next_staging % 2;
    ZRT_CHECK(write_staged(s, k)); /* the unit before last: its gradients out first */
    s->staging_unit[k] = unit;
    *host = s->staging[k];
    return ZRT_OK;
}

static zrt_status swapped_grads_down(void *src, int unit, zrt_event *down)
{
    swapped_state *s = src;
    (void)unit;
    s->staging_down[s->next_staging++ % 2] = down;
    return ZRT_OK;
}

/* Every unit's gradients final: in the file, but the last two units' stay
 * in their staging buffers for this pass (no write out and read back); the
 * reads queued before get theirs now. */
static zrt_status swapped_flush_grads(void *src)
{
    swapped_state *s = src;
    for (int k = 0; k < 2; k++)
        if (s->staging_unit[k] >= 0) ZRT_CHECK(zrt_event_synchronize(s->staging_down[k]));
    s->staging_kept = s->grads_final = true;
    for (size_t k = 0; s->started && k < s->next_read; k++) ZRT_CHECK(queue_grads_read(s, k));
    return ZRT_OK;
}

/* Queues k's write; its region is free once that is done (a later read is ordered after it). */
static zrt_status swapped_store(void *src, size_t k)
{
    swapped_state *s = src;
    const zrt_subgroup *g = &s->groups[k];
    if (s->n_writes == s->cap_writes) ZRT_CHECK(reap_writes(s, s->writes[s->first_write].ticket)); /* long done */
    region_write *w = &s->writes[(s->first_write + s->n_writes) % s->cap_writes];
    ZRT_CHECK(zrt_swap_write(s->swap, g->file_offset, region_of(s, k), 3 * part_bytes(g->n), &w->ticket));
    w->start = s->pos[k];
    s->wrote[k] = w->ticket;
    s->n_writes++;
    s->live = k + 1;
    return ZRT_OK;
}

/* The pass's end: every read done and the staged gradients let go, also
 * after an error; the state's writes may still be in flight (drain). */
static zrt_status swapped_finish(void *src)
{
    swapped_state *s = src;
    zrt_first_error first = {0};
    s->started = s->grads_final = s->staging_kept = false;
    for (size_t k = 0; k < s->n_groups && s->reading; k++) {
        zrt_first_error_keep(&first, wait_ticket(s, &s->reading[k]));
        zrt_first_error_keep(&first, wait_ticket(s, &s->grad_reading[k]));
    }
    s->live = s->next_read = 0;
    for (int k = 0; k < 2; k++) { /* a skipped step's gradients: never written */
        if (s->staging_unit[k] >= 0) zrt_first_error_keep(&first, zrt_event_synchronize(s->staging_down[k]));
        s->staging_unit[k] = -1;
    }
    return zrt_first_error_restore(&first);
}

/* Every transfer done, the last step's writes too: the file is final. */
static zrt_status swapped_drain(void *src)
{
    swapped_state *s = src;
    zrt_first_error first = {0};
    zrt_first_error_keep(&first, swapped_finish(s));
    zrt_first_error_keep(&first, reap_writes(s, UINT64_MAX));
    return zrt_first_error_restore(&first);
}

/* ---- host access, outside steps (init, checkpoints, get_master) ------------------------------ */

static zrt_status swapped_state_io(void *src, int unit, int part, size_t begin, size_t n, void *host, bool write)
{
    swapped_state *s = src;
    ZRT_CHECK(swapped_drain(s));
    float *bounce = (float *)s->arena; /* drained: nothing in flight */
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
    .grads_in = swapped_grads_in,
    .grads_down = swapped_grads_down,
    .flush_grads = swapped_flush_grads,
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
