/* device.c: the zrt_device API (zrt/device.h): argument checks, the memory
 * side table and its accounting, the check mode's tracker, then the backend.
 *
 * Why here and not in each backend: what a call may do (which side of a copy
 * is device memory, which stream may touch a buffer) is the same on every
 * backend, so the cpu backend's check mode also describes the cuda
 * backend's rules; a backend only runs the work. The tracker runs under the
 * device lock; a backend is called after it is released, so a host function
 * on a stream may itself call this API.
 */
#include "device.h"
#include "zrt/internal/error.h"
#include "zrt/internal/knobs.h"
#include "zrt/internal/kernels.h"
#include "zrt/internal/op_timer.h"
#include "host_work.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- create and destroy ---------------------------------------------------------------------- */

void zrt_device_options_init(zrt_device_options *o)
{
    memset(o, 0, sizeof *o);
    o->kind = ZRT_DEVICE_CPU;
    o->check = -1;
    o->seed = 1;
}

int zrt_device_count(zrt_device_kind kind)
{
    return kind == ZRT_DEVICE_CPU ? 1 : kind == ZRT_DEVICE_CUDA ? zrt_device_cuda_count(NULL) : 0;
}

const char *zrt_device_kind_name(zrt_device_kind kind)
{
    switch (kind) {
    case ZRT_DEVICE_AUTO: return "auto";
    case ZRT_DEVICE_CPU: return "cpu";
    case ZRT_DEVICE_CUDA: return "cuda";
    }
    return "?";
}

/* The setting that chose the device, in the config file's own language:
 * an Accelerate YAML says use_cpu, a DeepSpeed JSON has no such key (DeepSpeed
 * takes the accelerator from its environment), so zrt's own key names it. */
static void no_gpu_why(const zrt_config *cfg, const char *reason, char *why, size_t why_size)
{
    const char *file = cfg->source_path;
    if (cfg->job.device == ZRT_DEVICE_CUDA)
        snprintf(why, why_size, "%s: zrt.device: cuda asks for a GPU and there is none (%s); set %s to train on the "
                 "cpu", cfg->zrt_config_path[0] ? cfg->zrt_config_path : file, reason,
                 cfg->source_is_json ? "\"zrt\": {\"device\": \"cpu\"}" : "device: cpu");
    else if (cfg->source_is_json)
        snprintf(why, why_size, "no GPU to run on (%s): training on the cpu device; %s leaves the device to zrt (no "
                 "\"zrt\": {\"device\": ...}): set \"zrt\": {\"device\": \"cpu\"} to say so", reason, file);
    else
        snprintf(why, why_size, "no GPU to run on (%s): training on the cpu device; %s has use_cpu: false: set "
                 "use_cpu: true to say so", reason, file);
}

zrt_device_kind zrt_device_select(const zrt_config *cfg, char *why, size_t why_size)
{
    if (why_size) why[0] = '\0';
    if (cfg->use_cpu || cfg->job.device == ZRT_DEVICE_CPU) return ZRT_DEVICE_CPU;
    const char *reason = "";
    if (zrt_device_cuda_count(&reason) > 0) return ZRT_DEVICE_CUDA;
    if (why_size) no_gpu_why(cfg, reason, why, why_size);
    return cfg->job.device == ZRT_DEVICE_CUDA ? ZRT_DEVICE_CUDA : ZRT_DEVICE_CPU;
}

/* ---- the check-mode devices, for host work outside streams (host_work.h) ------------------ */

static pthread_mutex_t checked_lock = PTHREAD_MUTEX_INITIALIZER;
static zrt_device *checked_devices; /* a list through next_checked */

static void checked_add(zrt_device *d)
{
    pthread_mutex_lock(&checked_lock);
    d->next_checked = checked_devices;
    checked_devices = d;
    pthread_mutex_unlock(&checked_lock);
}

static void checked_remove(zrt_device *d)
{
    pthread_mutex_lock(&checked_lock);
    for (zrt_device **p = &checked_devices; *p; p = &(*p)->next_checked)
        if (*p == d) {
            *p = d->next_checked;
            break;
        }
    pthread_mutex_unlock(&checked_lock);
}

typedef enum { WORK_CHECK, WORK_BEGIN, WORK_END_DONE, WORK_END_FAILED } work_phase;

/* One phase of host work for every access, on whichever check-mode device owns it. */
static zrt_status host_work(work_phase phase, const char *what, const zrt_access *access, int n)
{
    zrt_status status = ZRT_OK;
    pthread_mutex_lock(&checked_lock);
    for (zrt_device *d = checked_devices; d && status == ZRT_OK; d = d->next_checked) {
        pthread_mutex_lock(&d->lock);
        for (int i = 0; i < n && status == ZRT_OK; i++) {
            zrt_mem_block *b = access[i].bytes ? zrt_mem_table_find(&d->table, access[i].ptr, access[i].bytes) : NULL;
            if (!b) continue;
            if (phase == WORK_CHECK) status = zrt_track_work_check(d, what, b, access[i].mode);
            else if (phase == WORK_BEGIN) zrt_track_work_begin(d, b, access[i].mode);
            else zrt_track_work_end(d, b, access[i].mode, phase == WORK_END_DONE);
        }
        pthread_mutex_unlock(&d->lock);
    }
    pthread_mutex_unlock(&checked_lock);
    return status;
}

zrt_status zrt_host_work_begin(const char *what, const zrt_access *access, int n_access)
{
    ZRT_CHECK(host_work(WORK_CHECK, what, access, n_access));
    return host_work(WORK_BEGIN, what, access, n_access);
}

void zrt_host_work_end(const zrt_access *access, int n_access, bool completed)
{
    (void)host_work(completed ? WORK_END_DONE : WORK_END_FAILED, "", access, n_access);
}

/* ---- the device -------------------------------------------------------------------------- */

static bool check_from_env(int option)
{
    if (option >= 0) return option != 0;
    return zrt_knob_bool(ZRT_KNOB_DEVICE_CHECK);
}

zrt_status zrt_device_create(const zrt_device_options *o, zrt_device **out)
{
    if (!o || !out) return zrt_set_error(ZRT_ERR_INVALID, "zrt_device_create: NULL argument");
    const zrt_device_ops *ops = o->kind == ZRT_DEVICE_CPU ? &zrt_device_cpu_ops : NULL;
    if (o->kind == ZRT_DEVICE_CUDA) {
        const char *why = "";
        if (!zrt_device_cuda_ops || zrt_device_cuda_count(&why) == 0)
            return zrt_set_error(ZRT_ERR_UNSUPPORTED, "device: no CUDA device: %s", why);
        ops = zrt_device_cuda_ops;
    }
    if (!ops) return zrt_set_error(ZRT_ERR_INVALID, "device: kind %s is not a device (cpu or cuda)",
                                   zrt_device_kind_name(o->kind));
    zrt_device *d = calloc(1, sizeof *d);
    if (!d) return zrt_set_error(ZRT_ERR_NOMEM, "device: out of memory");
    d->ops = ops;
    d->kind = o->kind;
    d->check = check_from_env(o->check);
    d->seed = o->seed;
    snprintf(d->name, sizeof d->name, "%s", zrt_device_kind_name(o->kind));
    pthread_mutex_init(&d->lock, NULL);
    zrt_status status = ops->init(d, o);
    if (status != ZRT_OK) {
        ops->fini(d); /* what init made before it failed */
        pthread_mutex_destroy(&d->lock);
        free(d);
        return status;
    }
    if (d->check) checked_add(d);
    *out = d;
    return ZRT_OK;
}

void zrt_device_destroy(zrt_device *d)
{
    if (!d) return;
    zrt_op_timer_disable(d);
    if (d->check) checked_remove(d);
    for (int k = 1; k < ZRT_MAX_STREAMS; k++) zrt_stream_destroy(d->streams[k]);
    while (d->n_events) zrt_event_destroy(d->events[d->n_events - 1]);
    free(d->events);
    while (d->table.n) {
        zrt_mem_block *b = &d->table.blocks[d->table.n - 1];
        if (b->place == ZRT_MEM_HOST) d->ops->host_free(d, b->base, b->bytes);
        else (void)d->ops->free(d, b->base, b->bytes, NULL); /* destroying: nothing to tell */
        zrt_mem_table_remove(&d->table, b);
    }
    zrt_mem_table_fini(&d->table);
    d->ops->fini(d);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

const char *zrt_device_name(const zrt_device *d) { return d ? d->name : "none"; }
const char *zrt_device_warnings(const zrt_device *d) { return d ? d->warnings : ""; }

void zrt_device_warn(zrt_device *d, const char *line)
{
    pthread_mutex_lock(&d->lock);
    size_t used = strlen(d->warnings);
    if (!strstr(d->warnings, line)) snprintf(d->warnings + used, sizeof d->warnings - used, "%s\n", line);
    pthread_mutex_unlock(&d->lock);
}
zrt_device_kind zrt_device_kind_of(const zrt_device *d) { return d ? d->kind : ZRT_DEVICE_AUTO; }
bool zrt_device_check_mode(const zrt_device *d) { return d && d->check; }
const zrt_mem_stats *zrt_device_mem(const zrt_device *d) { return d ? &d->table.stats : NULL; }

zrt_status zrt_device_synchronize(zrt_device *d)
{
    if (!d) return zrt_set_error(ZRT_ERR_INVALID, "zrt_device_synchronize: NULL device");
    zrt_first_error first = {0};
    for (int k = 1; k < ZRT_MAX_STREAMS; k++)
        if (d->streams[k]) zrt_first_error_keep(&first, zrt_stream_synchronize(d->streams[k]));
    return zrt_first_error_restore(&first);
}

/* ---- tracking helpers ---------------------------------------------------------------------------- */

static zrt_status track_stream(zrt_stream *s, const char *what, const zrt_access *access, int n)
{
    zrt_device *d = s->device;
    if (!d->check) return ZRT_OK;
    pthread_mutex_lock(&d->lock);
    zrt_status status = zrt_track_enqueue(s, what, access, n);
    pthread_mutex_unlock(&d->lock);
    return status;
}

static zrt_status track_host(zrt_device *d, const char *what, const zrt_access *access, int n)
{
    if (!d->check) return ZRT_OK;
    pthread_mutex_lock(&d->lock);
    zrt_status status = zrt_track_host(d, what, access, n);
    pthread_mutex_unlock(&d->lock);
    return status;
}

/* In check mode: ptr..+bytes must lie in memory of `place` (or, for
 * ZRT_MEM_HOST, anywhere outside the device's memory: pageable host memory
 * is fine for the host side of a copy). */
static zrt_status require(zrt_device *d, const char *what, const void *ptr, size_t bytes, zrt_mem_place place)
{
    if (!d->check || bytes == 0) return ZRT_OK;
    pthread_mutex_lock(&d->lock);
    zrt_mem_block *b = NULL;
    zrt_status status = ZRT_OK;
    if (place == ZRT_MEM_HOST) { /* anything but device memory */
        b = zrt_mem_table_find(&d->table, ptr, bytes);
        if (b && b->place == ZRT_MEM_DEVICE)
            status = zrt_set_error(ZRT_ERR_INVALID, "device check: %s: '%s' is device memory, where host memory "
                                                    "belongs", what, b->name);
    } else if ((status = zrt_track_find(d, what, ptr, bytes, &b)) == ZRT_OK && b->place != ZRT_MEM_DEVICE) {
        status = zrt_set_error(ZRT_ERR_INVALID, "device check: %s: '%s' is pinned host memory, not device memory",
                               what, b->name);
    }
    pthread_mutex_unlock(&d->lock);
    return status;
}

/* ---- memory ----------------------------------------------------------------------------------------- */

static zrt_status add_block(zrt_device *d, void *ptr, size_t bytes, zrt_mem_category c, zrt_mem_place p,
                            const char *name)
{
    pthread_mutex_lock(&d->lock);
    zrt_status status = zrt_mem_table_add(&d->table, ptr, bytes, c, p, name);
    pthread_mutex_unlock(&d->lock);
    return status;
}

zrt_status zrt_device_alloc(zrt_device *d, zrt_mem_category c, size_t bytes, const char *name, zrt_stream *on,
                            void **out)
{
    if (!d || !out || (unsigned)c >= ZRT_MEM_CATEGORIES || (on && on->device != d))
        return zrt_set_error(ZRT_ERR_INVALID, "zrt_device_alloc: bad argument (for '%s')", name ? name : "?");
    void *ptr = NULL;
    zrt_status status = d->ops->alloc(d, bytes, on, &ptr);
    if (status != ZRT_OK)
        return zrt_set_error(status, "device %s: cannot allocate %zu bytes for '%s': %s", d->name, bytes,
                             name ? name : "?", zrt_last_error());
    status = add_block(d, ptr, bytes, c, ZRT_MEM_DEVICE, name);
    if (status != ZRT_OK) {
        (void)d->ops->free(d, ptr, bytes, NULL); /* the first error is the one to report */
        return status;
    }
    *out = ptr;
    return ZRT_OK;
}

zrt_status zrt_device_free(zrt_device *d, void *ptr, zrt_stream *on)
{
    if (!d || !ptr) return ZRT_OK;
    pthread_mutex_lock(&d->lock);
    zrt_mem_block *b = zrt_mem_table_exact(&d->table, ptr);
    zrt_status status = ZRT_OK;
    size_t bytes = b ? b->bytes : 0;
    if (!b || b->place != ZRT_MEM_DEVICE) {
        status = zrt_set_error(ZRT_ERR_INVALID, "zrt_device_free: %p is not an allocation of %s", ptr, d->name);
    } else if (d->check) { /* freeing is writing: nobody may still use it */
        zrt_access a = {ptr, b->bytes, ZRT_ACCESS_WRITE};
        char what[80];
        snprintf(what, sizeof what, "free of '%s'", b->name);
        status = on ? zrt_track_enqueue(on, what, &a, 1) : zrt_track_host(d, what, &a, 1);
    }
    if (status == ZRT_OK && on) zrt_mem_table_remove_deferred(&d->table, b);
    else if (status == ZRT_OK) zrt_mem_table_remove(&d->table, b);
    pthread_mutex_unlock(&d->lock);
    return status == ZRT_OK ? d->ops->free(d, ptr, bytes, on) : status;
}

void zrt_device_freed(zrt_device *d, size_t bytes)
{
    pthread_mutex_lock(&d->lock);
    d->table.stats.freeing -= (int64_t)bytes;
    d->table.stats.all -= (int64_t)bytes;
    pthread_mutex_unlock(&d->lock);
}

zrt_status zrt_device_recharge(zrt_device *d, void *ptr, zrt_mem_category c)
{
    if (!d || !ptr || (unsigned)c >= ZRT_MEM_CATEGORIES)
        return zrt_set_error(ZRT_ERR_INVALID, "zrt_device_recharge: bad argument");
    pthread_mutex_lock(&d->lock);
    zrt_mem_block *b = zrt_mem_table_exact(&d->table, ptr);
    if (b) zrt_mem_table_recharge(&d->table, b, c);
    pthread_mutex_unlock(&d->lock);
    return b ? ZRT_OK : zrt_set_error(ZRT_ERR_INVALID, "zrt_device_recharge: %p is not an allocation", ptr);
}

zrt_status zrt_device_lookup(const zrt_device *d, const void *ptr, void **base, size_t *bytes, const char **name)
{
    if (!d) return zrt_set_error(ZRT_ERR_INVALID, "zrt_device_lookup: NULL device");
    pthread_mutex_lock((pthread_mutex_t *)&d->lock);
    zrt_mem_block *b = zrt_mem_table_find(&d->table, ptr, 0);
    if (b) {
        if (base) *base = b->base;
        if (bytes) *bytes = b->bytes;
        if (name) *name = b->name; /* stable while the block lives */
    }
    pthread_mutex_unlock((pthread_mutex_t *)&d->lock);
    return b ? ZRT_OK : zrt_set_error(ZRT_ERR_INVALID, "device: %p is not memory of %s", ptr, d->name);
}

zrt_status zrt_host_alloc(zrt_device *d, zrt_mem_category c, size_t bytes, const char *name, void **out)
{
    if (!d || !out || (unsigned)c >= ZRT_MEM_CATEGORIES)
        return zrt_set_error(ZRT_ERR_INVALID, "zrt_host_alloc: bad argument (for '%s')", name ? name : "?");
    void *ptr = NULL;
    zrt_status status = d->ops->host_alloc(d, bytes, &ptr);
    if (status != ZRT_OK)
        return zrt_set_error(status, "device %s: cannot allocate %zu bytes of pinned host memory for '%s': %s",
                             d->name, bytes, name ? name : "?", zrt_last_error());
    status = add_block(d, ptr, bytes, c, ZRT_MEM_HOST, name);
    if (status != ZRT_OK) d->ops->host_free(d, ptr, bytes);
    else *out = ptr;
    return status;
}

void zrt_host_free(zrt_device *d, void *ptr)
{
    if (!d || !ptr) return;
    pthread_mutex_lock(&d->lock);
    zrt_mem_block *b = zrt_mem_table_exact(&d->table, ptr);
    bool mine = b && b->place == ZRT_MEM_HOST;
    size_t bytes = mine ? b->bytes : 0;
    if (mine) zrt_mem_table_remove(&d->table, b);
    pthread_mutex_unlock(&d->lock);
    if (mine) d->ops->host_free(d, ptr, bytes);
}

zrt_status zrt_device_read(zrt_device *d, void *host, const void *src, size_t bytes)
{
    if (!d || (bytes && (!host || !src))) return zrt_set_error(ZRT_ERR_INVALID, "zrt_device_read: NULL argument");
    zrt_access a = {src, bytes, ZRT_ACCESS_READ};
    ZRT_CHECK(require(d, "zrt_device_read", src, bytes, ZRT_MEM_DEVICE));
    ZRT_CHECK(require(d, "zrt_device_read", host, bytes, ZRT_MEM_HOST));
    ZRT_CHECK(track_host(d, "zrt_device_read", &a, 1));
    return bytes ? d->ops->read(d, host, src, bytes) : ZRT_OK;
}

zrt_status zrt_device_write(zrt_device *d, void *dst, const void *host, size_t bytes)
{
    if (!d || (bytes && (!host || !dst))) return zrt_set_error(ZRT_ERR_INVALID, "zrt_device_write: NULL argument");
    zrt_access a = {dst, bytes, ZRT_ACCESS_WRITE};
    ZRT_CHECK(require(d, "zrt_device_write", dst, bytes, ZRT_MEM_DEVICE));
    ZRT_CHECK(require(d, "zrt_device_write", host, bytes, ZRT_MEM_HOST));
    ZRT_CHECK(track_host(d, "zrt_device_write", &a, 1));
    return bytes ? d->ops->write(d, dst, host, bytes) : ZRT_OK;
}

/* ---- streams and events ---------------------------------------------------------------------------------- */

zrt_status zrt_stream_create(zrt_device *d, const char *name, zrt_stream **out)
{
    if (!d || !out) return zrt_set_error(ZRT_ERR_INVALID, "zrt_stream_create: NULL argument");
    zrt_stream *s = calloc(1, sizeof *s);
    if (!s) return zrt_set_error(ZRT_ERR_NOMEM, "device: out of memory for a stream");
    s->device = d;
    snprintf(s->name, sizeof s->name, "%s", name && name[0] ? name : "stream");
    pthread_mutex_lock(&d->lock);
    for (int k = 1; k < ZRT_MAX_STREAMS && !s->slot; k++)
        if (!d->streams[k]) s->slot = k;
    if (s->slot) {
        d->streams[s->slot] = s;
        memcpy(s->clock, d->host_clock, sizeof s->clock); /* a reused slot continues after its predecessor */
    }
    pthread_mutex_unlock(&d->lock);
    zrt_status status = s->slot ? d->ops->stream_create(s)
                                : zrt_set_error(ZRT_ERR_INVALID, "device: more than %d streams", ZRT_MAX_STREAMS - 1);
    if (status != ZRT_OK) {
        pthread_mutex_lock(&d->lock);
        if (s->slot) d->streams[s->slot] = NULL;
        pthread_mutex_unlock(&d->lock);
        free(s);
        return status;
    }
    *out = s;
    return ZRT_OK;
}

void zrt_stream_destroy(zrt_stream *s)
{
    if (!s) return;
    zrt_device *d = s->device;
    d->ops->stream_destroy(s); /* runs what is queued first */
    pthread_mutex_lock(&d->lock);
    zrt_track_host_waited(d, s->clock);
    d->streams[s->slot] = NULL;
    pthread_mutex_unlock(&d->lock);
    free(s);
}

/* A copy of a stream's or an event's clock, now: what a wait is for. */
static void clock_now(zrt_device *d, const uint64_t *clock, uint64_t *copy)
{
    pthread_mutex_lock(&d->lock);
    memcpy(copy, clock, ZRT_MAX_STREAMS * sizeof *copy);
    pthread_mutex_unlock(&d->lock);
}

static void host_waited(zrt_device *d, const uint64_t *clock)
{
    pthread_mutex_lock(&d->lock);
    zrt_track_host_waited(d, clock);
    pthread_mutex_unlock(&d->lock);
}

zrt_status zrt_stream_synchronize(zrt_stream *s)
{
    if (!s) return zrt_set_error(ZRT_ERR_INVALID, "zrt_stream_synchronize: NULL stream");
    uint64_t clock[ZRT_MAX_STREAMS];
    clock_now(s->device, s->clock, clock); /* what is enqueued now is what we wait for */
    zrt_status status = s->device->ops->stream_synchronize(s);
    host_waited(s->device, clock);
    return status;
}

zrt_status zrt_stream_query(zrt_stream *s, bool *idle)
{
    if (!s || !idle) return zrt_set_error(ZRT_ERR_INVALID, "zrt_stream_query: NULL argument");
    uint64_t clock[ZRT_MAX_STREAMS];
    clock_now(s->device, s->clock, clock);
    zrt_status status = s->device->ops->stream_query(s, idle);
    if (*idle) host_waited(s->device, clock); /* seen done: the host is after it */
    return status;
}

const char *zrt_stream_name(const zrt_stream *s) { return s ? s->name : "none"; }
zrt_device *zrt_stream_device(const zrt_stream *s) { return s ? s->device : NULL; }
void *zrt_stream_native(zrt_stream *s) { return s ? s->device->ops->stream_native(s) : NULL; }

zrt_status zrt_event_create(zrt_device *d, const char *name, zrt_event **out)
{
    if (!d || !out) return zrt_set_error(ZRT_ERR_INVALID, "zrt_event_create: NULL argument");
    zrt_event *e = calloc(1, sizeof *e);
    if (!e) return zrt_set_error(ZRT_ERR_NOMEM, "device: out of memory for an event");
    e->device = d;
    snprintf(e->name, sizeof e->name, "%s", name && name[0] ? name : "event");
    pthread_mutex_lock(&d->lock);
    zrt_status status = ZRT_OK;
    if (d->n_events == d->cap_events) {
        size_t cap = d->cap_events ? 2 * d->cap_events : 64;
        zrt_event **grown = realloc(d->events, cap * sizeof *grown);
        if (grown) {
            d->events = grown;
            d->cap_events = cap;
        } else {
            status = zrt_set_error(ZRT_ERR_NOMEM, "device: out of memory for an event");
        }
    }
    if (status == ZRT_OK) d->events[d->n_events++] = e;
    pthread_mutex_unlock(&d->lock);
    if (status == ZRT_OK) status = d->ops->event_create(e);
    if (status != ZRT_OK) {
        zrt_event_destroy(e);
        return status;
    }
    *out = e;
    return ZRT_OK;
}

void zrt_event_destroy(zrt_event *e)
{
    if (!e) return;
    zrt_device *d = e->device;
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < d->n_events; i++)
        if (d->events[i] == e) {
            d->events[i] = d->events[--d->n_events];
            break;
        }
    pthread_mutex_unlock(&d->lock);
    if (e->impl) d->ops->event_destroy(e);
    free(e);
}

zrt_status zrt_event_record(zrt_event *e, zrt_stream *s)
{
    if (!e || !s || e->device != s->device) return zrt_set_error(ZRT_ERR_INVALID, "zrt_event_record: bad argument");
    pthread_mutex_lock(&s->device->lock);
    zrt_track_record(e, s);
    pthread_mutex_unlock(&s->device->lock);
    return s->device->ops->event_record(e, s);
}

zrt_status zrt_stream_wait_event(zrt_stream *s, zrt_event *e)
{
    if (!e || !s || e->device != s->device) return zrt_set_error(ZRT_ERR_INVALID, "zrt_stream_wait_event: bad argument");
    pthread_mutex_lock(&s->device->lock);
    zrt_track_wait(s, e);
    pthread_mutex_unlock(&s->device->lock);
    return s->device->ops->stream_wait(s, e);
}

zrt_status zrt_event_synchronize(zrt_event *e)
{
    if (!e) return zrt_set_error(ZRT_ERR_INVALID, "zrt_event_synchronize: NULL event");
    uint64_t clock[ZRT_MAX_STREAMS];
    clock_now(e->device, e->clock, clock);
    zrt_status status = e->device->ops->event_synchronize(e);
    host_waited(e->device, clock);
    return status;
}

zrt_status zrt_event_query(zrt_event *e, bool *done)
{
    if (!e || !done) return zrt_set_error(ZRT_ERR_INVALID, "zrt_event_query: NULL argument");
    uint64_t clock[ZRT_MAX_STREAMS];
    clock_now(e->device, e->clock, clock);
    zrt_status status = e->device->ops->event_query(e, done);
    if (*done) host_waited(e->device, clock);
    return status;
}

/* ---- copies, kernels and host functions ------------------------------------------------------------------ */

/* Whether ptr..+bytes is memory of this device (device or pinned). */
static bool ours(zrt_device *d, const void *ptr, size_t bytes)
{
    pthread_mutex_lock(&d->lock);
    bool found = zrt_mem_table_find(&d->table, ptr, bytes) != NULL;
    pthread_mutex_unlock(&d->lock);
    return found;
}

zrt_status zrt_memcpy_async(zrt_stream *s, void *dst, const void *src, size_t bytes, zrt_copy_kind kind)
{
    if (!s || (bytes && (!dst || !src)) || (unsigned)kind > ZRT_COPY_D2D)
        return zrt_set_error(ZRT_ERR_INVALID, "zrt_memcpy_async: bad argument");
    if (bytes == 0) return ZRT_OK;
    static const char *const names[] = {"host-to-device copy", "device-to-host copy", "device-to-device copy"};
    zrt_device *d = s->device;
    zrt_mem_place from = kind == ZRT_COPY_H2D ? ZRT_MEM_HOST : ZRT_MEM_DEVICE;
    zrt_mem_place to = kind == ZRT_COPY_D2H ? ZRT_MEM_HOST : ZRT_MEM_DEVICE;
    ZRT_CHECK(require(d, names[kind], src, bytes, from));
    ZRT_CHECK(require(d, names[kind], dst, bytes, to));
    /* Pinned host memory is tracked between streams; pageable host memory is not ours. */
    if (d->check) {
        zrt_access a[2];
        int n = 0;
        if (from == ZRT_MEM_DEVICE || ours(d, src, bytes)) a[n++] = (zrt_access){src, bytes, ZRT_ACCESS_READ};
        if (to == ZRT_MEM_DEVICE || ours(d, dst, bytes)) a[n++] = (zrt_access){dst, bytes, ZRT_ACCESS_WRITE};
        ZRT_CHECK(track_stream(s, names[kind], a, n));
    }
    return d->ops->memcpy(s, dst, src, bytes, kind);
}

zrt_status zrt_memset_async(zrt_stream *s, void *dst, int value, size_t bytes)
{
    if (!s || (bytes && !dst)) return zrt_set_error(ZRT_ERR_INVALID, "zrt_memset_async: bad argument");
    if (bytes == 0) return ZRT_OK;
    zrt_access a = {dst, bytes, ZRT_ACCESS_WRITE};
    ZRT_CHECK(require(s->device, "memset", dst, bytes, ZRT_MEM_DEVICE));
    ZRT_CHECK(track_stream(s, "memset", &a, 1));
    return s->device->ops->memset(s, dst, value, bytes);
}

static bool dtype_ok(zrt_dtype dt) { return (unsigned)dt <= ZRT_DTYPE_F16; }

/* Every buffer of a kernel must be device memory; then the tracker. */
static zrt_status kernel_access(zrt_stream *s, const char *what, const zrt_access *a, int n)
{
    for (int i = 0; i < n; i++) ZRT_CHECK(require(s->device, what, a[i].ptr, a[i].bytes, ZRT_MEM_DEVICE));
    return track_stream(s, what, a, n);
}

zrt_status zrt_kernel_cast(zrt_stream *s, void *dst, zrt_dtype dst_dtype, const void *src, zrt_dtype src_dtype,
                           size_t n, bool accumulate)
{
    if (!s || (n && (!dst || !src)) || !dtype_ok(dst_dtype) || !dtype_ok(src_dtype))
        return zrt_set_error(ZRT_ERR_INVALID, "zrt_kernel_cast: bad argument");
    if (n == 0) return ZRT_OK;
    zrt_access a[2] = {{src, n * zrt_dtype_size(src_dtype), ZRT_ACCESS_READ},
                       {dst, n * zrt_dtype_size(dst_dtype), accumulate ? ZRT_ACCESS_READ_WRITE : ZRT_ACCESS_WRITE}};
    ZRT_CHECK(kernel_access(s, accumulate ? "cast (accumulate)" : "cast", a, 2));
    return s->device->ops->cast(s, dst, dst_dtype, src, src_dtype, n, accumulate);
}

zrt_status zrt_kernel_fill(zrt_stream *s, void *dst, zrt_dtype dtype, float value, size_t n)
{
    if (!s || (n && !dst) || !dtype_ok(dtype)) return zrt_set_error(ZRT_ERR_INVALID, "zrt_kernel_fill: bad argument");
    if (n == 0) return ZRT_OK;
    zrt_access a = {dst, n * zrt_dtype_size(dtype), ZRT_ACCESS_WRITE};
    ZRT_CHECK(kernel_access(s, "fill", &a, 1));
    return s->device->ops->fill(s, dst, dtype, value, n);
}

zrt_status zrt_kernel_grad_stats(zrt_stream *s, const void *grads, zrt_dtype dtype, size_t n, float scale, float *stats)
{
    if (!s || !stats || (n && !grads) || !dtype_ok(dtype) || !(scale > 0))
        return zrt_set_error(ZRT_ERR_INVALID, "zrt_kernel_grad_stats: bad argument");
    zrt_access a[2] = {{grads, n * zrt_dtype_size(dtype), ZRT_ACCESS_READ},
                       {stats, 2 * sizeof(float), ZRT_ACCESS_READ_WRITE}};
    ZRT_CHECK(kernel_access(s, "grad_stats", a, 2));
    if (n == 0) return ZRT_OK;
    int op;
    ZRT_CHECK(zrt_op_timer_begin(s, ZRT_OP_STATS, &op));
    return zrt_op_timer_end(s, op, s->device->ops->grad_stats(s, grads, dtype, n, scale, stats));
}

zrt_status zrt_kernel_copy_stats(zrt_stream *s, void *dst, const void *src, zrt_dtype dtype, size_t n, float scale,
                                 float *stats)
{
    if (!s || !stats || (n && (!dst || !src)) || !dtype_ok(dtype) || !(scale > 0))
        return zrt_set_error(ZRT_ERR_INVALID, "zrt_kernel_copy_stats: bad argument");
    size_t bytes = n * zrt_dtype_size(dtype);
    ZRT_CHECK(require(s->device, "copy_stats", src, bytes, ZRT_MEM_DEVICE));
    ZRT_CHECK(require(s->device, "copy_stats", stats, 2 * sizeof(float), ZRT_MEM_DEVICE));
    zrt_access a[3] = {{src, bytes, ZRT_ACCESS_READ},
                       {stats, 2 * sizeof(float), ZRT_ACCESS_READ_WRITE},
                       {dst, bytes, ZRT_ACCESS_WRITE}};
    bool dst_ours = s->device->check && ours(s->device, dst, bytes); /* device or pinned: tracked */
    ZRT_CHECK(track_stream(s, "copy_stats", a, dst_ours ? 3 : 2));
    if (n == 0) return ZRT_OK;
    int op;
    ZRT_CHECK(zrt_op_timer_begin(s, ZRT_OP_STATS, &op));
    return zrt_op_timer_end(s, op, s->device->ops->copy_stats(s, dst, src, dtype, n, scale, stats));
}

zrt_status zrt_kernel_sum(zrt_stream *s, const float *values, size_t n, size_t stride, float *out)
{
    if (!s || !out || (n && !values) || stride < 1) return zrt_set_error(ZRT_ERR_INVALID, "zrt_kernel_sum: bad argument");
    zrt_access a[2] = {{values, n ? ((n - 1) * stride + 1) * sizeof(float) : 0, ZRT_ACCESS_READ},
                       {out, sizeof(float), ZRT_ACCESS_WRITE}};
    ZRT_CHECK(kernel_access(s, "sum", a, 2));
    int op;
    ZRT_CHECK(zrt_op_timer_begin(s, ZRT_OP_STATS, &op));
    return zrt_op_timer_end(s, op, s->device->ops->sum(s, values, n, stride, out));
}

zrt_status zrt_kernel_adam(zrt_stream *s, float *master, float *exp_avg, float *exp_avg_sq, const void *grads,
                           zrt_dtype grad_dtype, size_t n, const zrt_adam_args *args, const float *stats)
{
    if (!s || !args || !stats || (n && (!master || !exp_avg || !exp_avg_sq || !grads)) || !dtype_ok(grad_dtype) ||
        args->step < 1)
        return zrt_set_error(ZRT_ERR_INVALID, "zrt_kernel_adam: bad argument");
    if (n == 0) return ZRT_OK;
    size_t bytes = n * sizeof(float);
    zrt_access a[5] = {{master, bytes, ZRT_ACCESS_READ_WRITE},
                       {exp_avg, bytes, ZRT_ACCESS_READ_WRITE},
                       {exp_avg_sq, bytes, ZRT_ACCESS_READ_WRITE},
                       {grads, n * zrt_dtype_size(grad_dtype), ZRT_ACCESS_READ},
                       {stats, 2 * sizeof(float), ZRT_ACCESS_READ}};
    ZRT_CHECK(kernel_access(s, "adam", a, 5));
    zrt_adam_hyper h = zrt_adam_hyper_for(args->lr, args->beta1, args->beta2, args->eps, args->weight_decay,
                                          args->adamw, (long)args->step);
    int op;
    ZRT_CHECK(zrt_op_timer_begin(s, ZRT_OP_OPTIMIZER, &op));
    return zrt_op_timer_end(s, op, s->device->ops->adam(s, master, exp_avg, exp_avg_sq, grads, grad_dtype, n, &h,
                                                        args->unscale, args->max_norm, stats));
}

zrt_status zrt_kernel_adam_multi(zrt_stream *s, const zrt_adam_tensor *t, int n, zrt_dtype grad_dtype,
                                 zrt_dtype param_dtype, const zrt_adam_args *args, const float *stats)
{
    if (!s || !args || !stats || n < 0 || (n && !t) || !dtype_ok(grad_dtype) || !dtype_ok(param_dtype) || args->step < 1)
        return zrt_set_error(ZRT_ERR_INVALID, "zrt_kernel_adam_multi: bad argument");
    zrt_adam_hyper h = zrt_adam_hyper_for(args->lr, args->beta1, args->beta2, args->eps, args->weight_decay,
                                          args->adamw, (long)args->step);
    for (int first = 0; first < n; first += ZRT_ADAM_MULTI_MAX) {
        int count = n - first < ZRT_ADAM_MULTI_MAX ? n - first : ZRT_ADAM_MULTI_MAX;
        zrt_access a[6 * ZRT_ADAM_MULTI_MAX + 1];
        int k = 0;
        for (int i = first; i < first + count; i++) {
            size_t bytes = t[i].n * sizeof(float);
            if (t[i].n && (!t[i].master || !t[i].exp_avg || !t[i].exp_avg_sq || !t[i].grads))
                return zrt_set_error(ZRT_ERR_INVALID, "zrt_kernel_adam_multi: tensor %d: NULL buffer", i);
            if (!t[i].n) continue;
            a[k++] = (zrt_access){t[i].master, bytes, ZRT_ACCESS_READ_WRITE};
            a[k++] = (zrt_access){t[i].exp_avg, bytes, ZRT_ACCESS_READ_WRITE};
            a[k++] = (zrt_access){t[i].exp_avg_sq, bytes, ZRT_ACCESS_READ_WRITE};
            a[k++] = (zrt_access){t[i].grads, t[i].n * zrt_dtype_size(grad_dtype), ZRT_ACCESS_READ};
            if (t[i].params) a[k++] = (zrt_access){t[i].params, t[i].n * zrt_dtype_size(param_dtype), ZRT_ACCESS_WRITE};
        }
        a[k++] = (zrt_access){stats, 2 * sizeof(float), ZRT_ACCESS_READ};
        ZRT_CHECK(kernel_access(s, "adam (multi-tensor)", a, k));
        int op;
        ZRT_CHECK(zrt_op_timer_begin(s, ZRT_OP_OPTIMIZER, &op));
        ZRT_CHECK(zrt_op_timer_end(s, op, s->device->ops->adam_multi(s, t + first, count, first, grad_dtype, param_dtype,
                                                                     &h, args->unscale, args->max_norm, stats,
                                                                     args->stochastic_seed, (uint32_t)args->step)));
    }
    return ZRT_OK;
}

zrt_status zrt_stream_launch_host(zrt_stream *s, const char *what, zrt_status (*fn)(void *arg), const void *arg,
                                  size_t arg_bytes, const zrt_access *access, int n_access)
{
    if (!s || !fn || (arg_bytes && !arg) || arg_bytes > ZRT_LAUNCH_ARG_MAX || n_access < 0 || (n_access && !access))
        return zrt_set_error(ZRT_ERR_INVALID, "zrt_stream_launch_host: bad argument (arg_bytes %zu, at most %d)",
                             arg_bytes, ZRT_LAUNCH_ARG_MAX);
    ZRT_CHECK(kernel_access(s, what ? what : "host function", access, n_access));
    return s->device->ops->launch_host(s, fn, arg, arg_bytes);
}

zrt_status zrt_stream_track(zrt_stream *s, const char *what, const zrt_access *access, int n_access)
{
    if (!s || n_access < 0 || (n_access && !access)) return zrt_set_error(ZRT_ERR_INVALID, "zrt_stream_track: bad argument");
    return kernel_access(s, what ? what : "native work", access, n_access);
}
