/* device_check.c: the check mode's tracker: vector clocks over streams and
 * the host, and each buffer's last write and reads, so that a missing wait is
 * reported when the work is enqueued -- deterministically, naming the buffer,
 * the stream that touches it and the one it did not wait for.
 *
 * Why vector clocks (the happens-before of race detectors): stream s's clock
 * C_s[k] is how far s is ordered after stream k (slot 0 is the host). An
 * operation on s ticks C_s[s]; recording an event copies C_s into it;
 * waiting on an event takes the maximum; the host's clock takes the maximum
 * of what it synchronized; every enqueue follows what the host has already
 * done (it is issued after that). An access to a buffer is ordered after its
 * last write (w at time t) when w is s or C_s[w] >= t; a write must also be
 * ordered after every read since that write. Buffers are tracked whole: a
 * write anywhere in one orders against any access to it. Host work outside
 * streams (a collective's request form) is the host's: checked when it
 * begins, its writes pending -- no one may touch them -- until it is waited
 * for, and then recorded as the host's writes.
 * Called by device.c with the device lock held; only in check mode.
 */
#include "device.h"
#include "zrt/internal/kernels.h"

#include <stdio.h>
#include <string.h>

static const char *slot_name(const zrt_device *d, int slot)
{
    return slot == 0 ? "the host" : d->streams[slot] ? d->streams[slot]->name : "a destroyed stream";
}

static void merge(uint64_t *into, const uint64_t *from)
{
    for (int k = 0; k < ZRT_MAX_STREAMS; k++)
        if (from[k] > into[k]) into[k] = from[k];
}

/* Whether an event at (slot, time) is ordered before an observer with clock. */
static bool before(int slot, uint64_t time, int observer, const uint64_t *clock)
{
    return slot == observer || clock[slot] >= time;
}

zrt_status zrt_track_find(zrt_device *d, const char *what, const void *ptr, size_t bytes, zrt_mem_block **out)
{
    *out = zrt_mem_table_find(&d->table, ptr, bytes);
    if (*out) return ZRT_OK;
    zrt_mem_block *start = zrt_mem_table_find(&d->table, ptr, 0);
    if (start)
        return zrt_set_error(ZRT_ERR_INVALID, "device check: %s: %zu bytes at offset %zu of '%s' run past the end of "
                                              "it (%zu bytes)", what, bytes, (size_t)((const char *)ptr - start->base),
                             start->name, start->bytes);
    return zrt_set_error(ZRT_ERR_INVALID, "device check: %s: %p (%zu bytes) is not memory of %s (a host pointer, or "
                                          "freed)", what, ptr, bytes, d->name);
}

/* Checks one access by `observer` (slot, clock); sets the message on a hazard. */
static zrt_status check_access(zrt_device *d, int observer, const uint64_t *clock, const char *what,
                               const zrt_mem_block *b, zrt_access_mode mode)
{
    const char *who = slot_name(d, observer);
    if (b->pending)
        return zrt_set_error(ZRT_ERR_INTERNAL, "device check: %s: %s %s '%s' while a collective issued without a "
                                               "stream (a request) still writes it: wait for its request first",
                             what, who, mode & ZRT_ACCESS_WRITE ? "writes" : "reads", b->name);
    /* Pinned host memory is written by the host directly, which nothing tracks. */
    if ((mode & ZRT_ACCESS_READ) && !b->written && b->place == ZRT_MEM_DEVICE)
        return zrt_set_error(ZRT_ERR_INTERNAL, "device check: %s: %s reads '%s', which nothing has written yet",
                             what, who, b->name);
    if (b->written && !before(b->writer, b->write_time, observer, clock)) {
        if (observer == 0)
            return zrt_set_error(ZRT_ERR_INTERNAL, "device check: %s: the host %s '%s' before %s, which wrote it "
                                                   "(its op %llu), was synchronized", what,
                                 mode & ZRT_ACCESS_WRITE ? "overwrites" : "reads", b->name, slot_name(d, b->writer),
                                 (unsigned long long)b->write_time);
        return zrt_set_error(ZRT_ERR_INTERNAL, "device check: %s: %s %s '%s' written by %s (its op %llu) without "
                                               "waiting for it", what, who, mode & ZRT_ACCESS_WRITE ? "overwrites" : "reads",
                             b->name, slot_name(d, b->writer), (unsigned long long)b->write_time);
    }
    if (!(mode & ZRT_ACCESS_WRITE)) return ZRT_OK;
    for (int k = 0; k < ZRT_MAX_STREAMS; k++)
        if (b->read_time[k] && !before(k, b->read_time[k], observer, clock))
            return zrt_set_error(ZRT_ERR_INTERNAL, "device check: %s: %s writes '%s' while %s may still read it "
                                                   "(its op %llu): no wait orders them", what, who, b->name,
                                 slot_name(d, k), (unsigned long long)b->read_time[k]);
    return ZRT_OK;
}

static void apply_access(zrt_mem_block *b, int observer, uint64_t time, zrt_access_mode mode)
{
    if (mode & ZRT_ACCESS_WRITE) {
        b->written = true;
        b->writer = observer;
        b->write_time = time;
        memset(b->read_time, 0, sizeof b->read_time);
    } else if (time > b->read_time[observer]) {
        b->read_time[observer] = time;
    }
}

/* Checks every access first, then applies them all: an op may read and
 * write one buffer (in place). */
static zrt_status track(zrt_device *d, int observer, uint64_t *clock, const char *what, const zrt_access *access,
                        int n_access)
{
    enum { MAX_ACCESS = 6 * ZRT_ADAM_MULTI_MAX + 1 }; /* the most any op declares: a multi-tensor Adam */
    zrt_mem_block *blocks[MAX_ACCESS];
    if (n_access > MAX_ACCESS)
        return zrt_set_error(ZRT_ERR_INTERNAL, "device check: %s: more than %d accesses", what, MAX_ACCESS);
    for (int i = 0; i < n_access; i++) {
        blocks[i] = NULL;
        if (access[i].bytes == 0) continue;
        ZRT_CHECK(zrt_track_find(d, what, access[i].ptr, access[i].bytes, &blocks[i]));
        ZRT_CHECK(check_access(d, observer, clock, what, blocks[i], access[i].mode));
    }
    uint64_t time = ++clock[observer];
    for (int i = 0; i < n_access; i++)
        if (blocks[i]) apply_access(blocks[i], observer, time, access[i].mode);
    return ZRT_OK;
}

zrt_status zrt_track_enqueue(zrt_stream *s, const char *what, const zrt_access *access, int n_access)
{
    merge(s->clock, s->device->host_clock); /* issued after whatever the host has done */
    return track(s->device, s->slot, s->clock, what, access, n_access);
}

zrt_status zrt_track_host(zrt_device *d, const char *what, const zrt_access *access, int n_access)
{
    return track(d, 0, d->host_clock, what, access, n_access);
}

void zrt_track_record(zrt_event *e, zrt_stream *s)
{
    merge(s->clock, s->device->host_clock);
    memcpy(e->clock, s->clock, sizeof e->clock);
    snprintf(e->stream_name, sizeof e->stream_name, "%s", s->name);
    e->recorded = true;
}

void zrt_track_wait(zrt_stream *s, const zrt_event *e)
{
    merge(s->clock, s->device->host_clock);
    merge(s->clock, e->clock);
}

void zrt_track_host_waited(zrt_device *d, const uint64_t *clock) { merge(d->host_clock, clock); }

zrt_status zrt_track_work_check(zrt_device *d, const char *what, const zrt_mem_block *b, zrt_access_mode mode)
{
    return check_access(d, 0, d->host_clock, what, b, mode);
}

void zrt_track_work_begin(zrt_device *d, zrt_mem_block *b, zrt_access_mode mode)
{
    if (mode & ZRT_ACCESS_WRITE) b->pending++;
    else apply_access(b, 0, ++d->host_clock[0], mode);
}

void zrt_track_work_end(zrt_device *d, zrt_mem_block *b, zrt_access_mode mode, bool completed)
{
    if (!(mode & ZRT_ACCESS_WRITE)) return;
    if (b->pending > 0) b->pending--;
    if (completed) apply_access(b, 0, ++d->host_clock[0], mode);
}
