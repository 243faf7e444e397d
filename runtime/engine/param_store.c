/* param_store.c: offload_param (stage 3): where the own parameter shards
 * (compute dtype) of the gathered units live -- pinned host memory, or
 * swap files under offload_param.nvme_path for what max_in_cpu leaves out --
 * and how a shard reaches the device for its gather.
 *
 * Why with optimizer offload only: the CPU optimizer writes each updated
 * compute copy straight into the store (host memory, or a pinned slot that
 * goes to NVMe), so the shard never exists on the device; with the optimizer
 * on the device, the copy would go down and up again every step (DeepSpeed
 * does that; zrt refuses the combination by name).
 * Units kept gathered (stage3_param_persistence_threshold) stay on the
 * device, as in DeepSpeed. Units in host memory are the first ones in unit
 * order while their shards add up to at most max_in_cpu elements (all of
 * them for offload_param: cpu); the others go to NVMe.
 * Bringing a shard in (stage): on the comm stream, ahead of the gather (the
 * gathers are already prefetched by stage3.c): host shards are copied to a
 * device buffer from the caching allocator; NVMe shards are read (io_uring)
 * into one of buffer_count pinned slots, the comm stream waits for the read
 * in a host function, then copies. A slot is reused once the copy out of it
 * (slot_free) and the write into it (ticket) are done.
 */
#include "engine_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Where one unit's shard lives. */
typedef struct {
    bool held;    /* offloaded: not persistent */
    bool in_cpu;  /* pinned host memory at host + at (else NVMe at file offset `at`) */
    size_t at, bytes;
} stored_unit;

struct zrt_param_store {
    zrt_device *device;
    stored_unit *units;
    void *host;              /* pinned: the host units' shards, end to end */
    zrt_swap *swap;          /* the NVMe units' shards, 4096-aligned regions */
    void **slots;            /* pinned, slot_bytes each */
    zrt_event **slot_free;   /* comm: the copy out of the slot is done */
    uint64_t *slot_write;    /* the write from the slot in flight (0: none) */
    int n_slots, next_slot;
    size_t slot_bytes;
    int *unit_slot;          /* the slot holding a unit's new copy between begin_write and end_write */
};

static size_t aligned(size_t bytes) { return (bytes + ZRT_SWAP_ALIGN - 1) / ZRT_SWAP_ALIGN * ZRT_SWAP_ALIGN; }

/* Where each offloaded unit goes; the bytes of host memory and of the file. */
static zrt_status place_units(zrt_engine *e, size_t *host_bytes, size_t *file_bytes, size_t *widest_nvme)
{
    const zrt_offload_config *c = &e->cfg.zero.offload_param;
    int64_t in_cpu = 0;
    *host_bytes = *file_bytes = *widest_nvme = 0;
    for (int i = 0; i < e->n_units; i++) {
        const unit_state *u = &e->units[i];
        stored_unit *s = &e->params->units[i];
        if (u->persistent) continue;
        s->held = true;
        s->bytes = (size_t)u->shard * e->es;
        if ((s->in_cpu = zrt_engine_param_in_cpu(&e->cfg, u->shard, &in_cpu))) {
            s->at = *host_bytes;
            *host_bytes += s->bytes;
            continue;
        }
        if ((int64_t)u->shard > c->buffer_size)
            return zrt_set_error(ZRT_ERR_INVALID, "offload_param.buffer_size (%lld elements) is smaller than unit "
                                 "%d's shard (%lld elements); raise it", (long long)c->buffer_size, i,
                                 (long long)u->shard);
        s->at = *file_bytes;
        *file_bytes += aligned(s->bytes);
        if (s->bytes > *widest_nvme) *widest_nvme = s->bytes;
    }
    return ZRT_OK;
}

static zrt_status open_swap(zrt_engine *e, size_t file_bytes)
{
    zrt_param_store *p = e->params;
    const zrt_offload_config *c = &e->cfg.zero.offload_param;
    ZRT_CHECK(zrt_place_open_swap(&e->place_env, c, "params", file_bytes, &p->swap));
    p->n_slots = (int)(c->buffer_count > 64 ? 64 : c->buffer_count);
    p->slots = calloc((size_t)p->n_slots, sizeof *p->slots);
    p->slot_free = calloc((size_t)p->n_slots, sizeof *p->slot_free);
    p->slot_write = calloc((size_t)p->n_slots, sizeof *p->slot_write);
    if (!p->slots || !p->slot_free || !p->slot_write) return zrt_set_error(ZRT_ERR_NOMEM, "offload_param: out of memory");
    for (int k = 0; k < p->n_slots; k++) {
        ZRT_CHECK(zrt_host_alloc(e->device, ZRT_MEM_PARAMS, p->slot_bytes, "param slot (host)", &p->slots[k]));
        ZRT_CHECK(zrt_event_create(e->device, "param slot free", &p->slot_free[k]));
    }
    size_t sizes[64];
    for (int k = 0; k < p->n_slots; k++) sizes[k] = p->slot_bytes;
    return zrt_swap_register(p->swap, p->slots, sizes, p->n_slots);
}

zrt_status zrt_param_store_create(zrt_engine *e)
{
    if (e->cfg.zero.offload_optimizer.device == ZRT_OFFLOAD_NONE)
        return zrt_set_error(ZRT_ERR_UNSUPPORTED, "offload_param (%s) needs offload_optimizer cpu or nvme: the CPU "
                             "optimizer writes the offloaded parameters",
                             zrt_offload_device_name(e->cfg.zero.offload_param.device));
    zrt_param_store *p = calloc(1, sizeof *p);
    if (!p) return zrt_set_error(ZRT_ERR_NOMEM, "offload_param: out of memory");
    e->params = p;
    p->device = e->device;
    p->unit_slot = calloc((size_t)e->n_units, sizeof *p->unit_slot);
    p->units = calloc((size_t)e->n_units, sizeof *p->units);
    if (!p->unit_slot || !p->units) return zrt_set_error(ZRT_ERR_NOMEM, "offload_param: out of memory");
    size_t host_bytes, file_bytes, widest;
    ZRT_CHECK(place_units(e, &host_bytes, &file_bytes, &widest));
    if (host_bytes) ZRT_CHECK(zrt_host_alloc(e->device, ZRT_MEM_PARAMS, host_bytes, "params (host)", &p->host));
    p->slot_bytes = aligned(widest);
    return file_bytes ? open_swap(e, file_bytes) : ZRT_OK;
}

bool zrt_param_store_holds(const zrt_param_store *p, int unit) { return p && p->units[unit].held; }

zrt_status zrt_param_store_flush(zrt_param_store *p)
{
    zrt_first_error first = {0};
    for (int k = 0; p && k < p->n_slots; k++) {
        uint64_t t = p->slot_write[k];
        p->slot_write[k] = 0;
        zrt_first_error_keep(&first, t ? zrt_swap_wait(p->swap, t) : ZRT_OK);
    }
    return zrt_first_error_restore(&first);
}

void zrt_param_store_destroy(zrt_param_store *p)
{
    if (!p) return;
    zrt_param_store_flush(p);
    zrt_swap_destroy(p->swap); /* waits for the reads the comm stream still waits on */
    for (int k = 0; p->slots && k < p->n_slots; k++) {
        zrt_host_free(p->device, p->slots[k]);
        zrt_event_destroy(p->slot_free[k]);
    }
    zrt_host_free(p->device, p->host);
    free(p->slots);
    free(p->slot_free);
    free(p->slot_write);
    free(p->unit_slot);
    free(p->units);
    free(p);
}

/* The next slot, once nothing reads or writes it any more. */
static zrt_status take_slot(zrt_param_store *p, int *slot)
{
    int k = p->next_slot++ % p->n_slots;
    ZRT_CHECK(zrt_event_synchronize(p->slot_free[k]));
    uint64_t t = p->slot_write[k];
    p->slot_write[k] = 0;
    if (t) ZRT_CHECK(zrt_swap_wait(p->swap, t));
    *slot = k;
    return ZRT_OK;
}

zrt_status zrt_param_store_begin_write(zrt_param_store *p, int unit, void **host)
{
    const stored_unit *s = &p->units[unit];
    if (s->in_cpu) {
        *host = (char *)p->host + s->at;
        return ZRT_OK;
    }
    int k;
    ZRT_CHECK(take_slot(p, &k));
    p->unit_slot[unit] = k;
    *host = p->slots[k];
    return ZRT_OK;
}

zrt_status zrt_param_store_end_write(zrt_param_store *p, int unit)
{
    const stored_unit *s = &p->units[unit];
    if (s->in_cpu) return ZRT_OK;
    int k = p->unit_slot[unit];
    return zrt_swap_write(p->swap, s->at, p->slots[k], aligned(s->bytes), &p->slot_write[k]);
}

typedef struct {
    zrt_swap *swap;
    uint64_t ticket;
} read_wait;

static zrt_status wait_read(void *arg)
{
    const read_wait *w = arg;
    return zrt_swap_wait(w->swap, w->ticket);
}

zrt_status zrt_param_store_stage(zrt_param_store *p, zrt_stream *comm, int unit, void **shard)
{
    const stored_unit *s = &p->units[unit];
    char name[64];
    snprintf(name, sizeof name, "unit %d params (shard, from %s)", unit, s->in_cpu ? "host" : "nvme");
    ZRT_CHECK(zrt_device_alloc(p->device, ZRT_MEM_COMM, s->bytes, name, comm, shard));
    if (s->in_cpu) return zrt_memcpy_async(comm, *shard, (char *)p->host + s->at, s->bytes, ZRT_COPY_H2D);
    int k;
    ZRT_CHECK(take_slot(p, &k));
    read_wait w = {p->swap, 0};
    ZRT_CHECK(zrt_swap_read(p->swap, s->at, p->slots[k], aligned(s->bytes), &w.ticket));
    ZRT_CHECK(zrt_stream_launch_host(comm, "offload_param read", wait_read, &w, sizeof w, NULL, 0));
    ZRT_CHECK(zrt_memcpy_async(comm, *shard, p->slots[k], s->bytes, ZRT_COPY_H2D));
    return zrt_event_record(p->slot_free[k], comm);
}
