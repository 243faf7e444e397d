/* place_host.h: the CPU optimizer's pipeline that the cpu and nvme backends
 * share (place_host.c), and what each of them plugs into it: where the fp32
 * state of a sub-group is while the CPU works on it (host_state_ops).
 * Private to the placement backends.
 */
#ifndef ZRT_PLACE_HOST_H
#define ZRT_PLACE_HOST_H

#include "place.h"

/* A piece of one unit's shard: elements [begin, begin + n), at file_offset (nvme). */
typedef struct { int unit; size_t begin, n, file_offset; } zrt_subgroup;

/* cpu: one resident sub-group per unit; nvme: sub-groups loaded ahead and
 * stored behind (place_nvme.c). start begins a pass (again: a no-op);
 * finish ends it, also after an error (every read done; nvme's stores may
 * go on behind the next pass: state_io and destroy wait for them). The
 * source keeps
 * the gradients too: a unit's come down into grads_in's host memory, there
 * once `down` fires (grads_down); flush_grads (after the step's wait)
 * makes every unit's reachable by load, which gives the sub-group's (D). */
typedef struct {
    size_t (*groups)(void *src);
    zrt_status (*start)(void *src);
    zrt_status (*load)(void *src, size_t k, zrt_subgroup *g, float *state[STATE_PARTS], const void **grads);
    zrt_status (*grads_in)(void *src, int unit, void **host);
    zrt_status (*grads_down)(void *src, int unit, zrt_event *down);
    zrt_status (*flush_grads)(void *src);
    zrt_status (*store)(void *src, size_t k);
    zrt_status (*finish)(void *src);
    zrt_status (*state_io)(void *src, int unit, int part, size_t begin, size_t n, void *host, bool write);
    void (*destroy)(void *src);
} host_state_ops;

/* The pipeline around a state source made by `make_state` (called once the
 * pools exist; *src set even on failure). */
typedef zrt_status (*host_state_maker)(const place_env *env, void **src);
zrt_status zrt_host_place_create(const place_env *env, const host_state_ops *ops, host_state_maker make_state,
                                 void **out);

/* The place_ops entries both backends share. */
zrt_status zrt_host_place_begin_step(void *self);
zrt_status zrt_host_place_grads_ready(void *self, int unit, const void *grads, zrt_event *ready, double scale);
zrt_status zrt_host_place_grads_taken(void *self, int unit, zrt_stream *stream);
zrt_status zrt_host_place_statistics(void *self, double scale);
zrt_status zrt_host_place_before_wait(void *self, const place_step *s, zrt_stream **wrote);
zrt_status zrt_host_place_step(void *self, const place_step *s, zrt_stream **wrote);
zrt_status zrt_host_place_publish(void *self, zrt_stream **wrote);
zrt_status zrt_host_place_state_io(void *self, int unit, int part, size_t begin, size_t n, void *host, bool write);
zrt_status zrt_host_place_synchronize(void *self);
void zrt_host_place_destroy(void *self);
#define HOST_PLACE_ENTRIES                                                                                              \
    .grads_leave_device = true, .begin_step = zrt_host_place_begin_step, .grads_ready = zrt_host_place_grads_ready,    \
    .grads_taken = zrt_host_place_grads_taken,                                                                         \
    .statistics = zrt_host_place_statistics, .device_step = zrt_host_place_before_wait,                                \
    .host_step = zrt_host_place_step, .publish = zrt_host_place_publish, .state_io = zrt_host_place_state_io,          \
    .synchronize = zrt_host_place_synchronize, .destroy = zrt_host_place_destroy

#endif
