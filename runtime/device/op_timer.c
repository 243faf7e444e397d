/* op_timer.c: zrt/internal/op_timer.h -- GPU time per class of op, from
 * pairs of timing marks (the backend's mark_* ops: cuda timing events)
 * recorded around each op on its stream.
 *
 * Invariants: ops[0 .. cap) each own two created marks (reused from collect
 * to collect); ops[0 .. n) were recorded since the last collect. Threads may
 * enqueue ops at once (the engine's streams): the table is under `lock`.
 * Which class hides which when nested is data (hidden_inside), counted per
 * thread (a thread enqueues its op's nested ops itself).
 */
#include "device.h"
#include "zrt/internal/op_timer.h"

#include <stdlib.h>

typedef struct zrt_op_timer zrt_op_timer;

typedef struct {
    zrt_op_class cls;
    void *start, *end;
} timed_op;

struct zrt_op_timer {
    pthread_mutex_t lock;
    timed_op *ops;
    int n, cap;
};

static const char *const class_names[ZRT_OP_CLASSES] = {"model", "matmul", "attention", "optimizer", "stats"};

/* A class is not timed while an op of this class is open on the thread (-1: never hidden). */
static const int hidden_inside[ZRT_OP_CLASSES] = {-1, ZRT_OP_ATTENTION, -1, -1, -1};

static _Thread_local int open_ops[ZRT_OP_CLASSES];

const char *zrt_op_class_name(zrt_op_class c) { return c >= 0 && c < ZRT_OP_CLASSES ? class_names[c] : "?"; }

zrt_status zrt_op_timer_enable(zrt_device *d)
{
    if (!d) return zrt_set_error(ZRT_ERR_INVALID, "zrt_op_timer_enable: no device");
    if (!d->ops->mark_create)
        return zrt_set_error(ZRT_ERR_UNSUPPORTED, "op timing: %s cannot time its ops (a cuda device can)", d->name);
    if (d->timer) return ZRT_OK;
    zrt_op_timer *t = calloc(1, sizeof *t);
    if (!t) return zrt_set_error(ZRT_ERR_NOMEM, "op timing: out of memory");
    pthread_mutex_init(&t->lock, NULL);
    d->timer = t;
    return ZRT_OK;
}

void zrt_op_timer_disable(zrt_device *d)
{
    zrt_op_timer *t = d ? d->timer : NULL;
    if (!t) return;
    d->timer = NULL;
    for (int i = 0; i < t->cap; i++) {
        d->ops->mark_destroy(t->ops[i].start);
        d->ops->mark_destroy(t->ops[i].end);
    }
    free(t->ops);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

/* The next free slot, its marks created; under t->lock. */
static zrt_status next_slot(zrt_device *d, zrt_op_timer *t, int *slot)
{
    if (t->n == t->cap) {
        int cap = t->cap ? 2 * t->cap : 256;
        timed_op *ops = realloc(t->ops, (size_t)cap * sizeof *ops);
        if (!ops) return zrt_set_error(ZRT_ERR_NOMEM, "op timing: out of memory");
        t->ops = ops;
        for (; t->cap < cap; t->cap++) {
            timed_op *o = &t->ops[t->cap];
            o->start = o->end = NULL;
            ZRT_CHECK(d->ops->mark_create(d, &o->start));
            zrt_status status = d->ops->mark_create(d, &o->end);
            if (status != ZRT_OK) {
                d->ops->mark_destroy(o->start);
                return status;
            }
        }
    }
    *slot = t->n++;
    return ZRT_OK;
}

zrt_status zrt_op_timer_begin(zrt_stream *s, zrt_op_class c, int *op)
{
    *op = -1;
    zrt_op_timer *t = s ? s->device->timer : NULL;
    if (!t || (hidden_inside[c] >= 0 && open_ops[hidden_inside[c]] > 0)) return ZRT_OK;
    pthread_mutex_lock(&t->lock);
    zrt_status status = next_slot(s->device, t, op);
    if (status == ZRT_OK) {
        t->ops[*op].cls = c;
        status = s->device->ops->mark_record(t->ops[*op].start, s);
    }
    pthread_mutex_unlock(&t->lock);
    if (status != ZRT_OK) *op = -1;
    else open_ops[c]++;
    return status;
}

zrt_status zrt_op_timer_end(zrt_stream *s, int op, zrt_status status)
{
    zrt_op_timer *t = s ? s->device->timer : NULL;
    if (op < 0 || !t) return status;
    pthread_mutex_lock(&t->lock);
    timed_op o = t->ops[op];
    pthread_mutex_unlock(&t->lock);
    open_ops[o.cls]--;
    zrt_status recorded = s->device->ops->mark_record(o.end, s);
    return status != ZRT_OK ? status : recorded;
}

zrt_status zrt_op_timer_collect(zrt_device *d, double seconds[ZRT_OP_CLASSES])
{
    zrt_op_timer *t = d ? d->timer : NULL;
    if (!t) return zrt_set_error(ZRT_ERR_INVALID, "zrt_op_timer_collect: op timing is not enabled on %s", zrt_device_name(d));
    pthread_mutex_lock(&t->lock);
    zrt_status status = ZRT_OK;
    for (int i = 0; i < t->n && status == ZRT_OK; i++) {
        double elapsed = 0;
        status = d->ops->mark_elapsed(t->ops[i].start, t->ops[i].end, &elapsed);
        seconds[t->ops[i].cls] += elapsed;
    }
    t->n = 0;
    pthread_mutex_unlock(&t->lock);
    return status;
}
