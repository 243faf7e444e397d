/* zrt/internal/op_timer.h: GPU time per class of op (matmuls, attention,
 * the rest of the model, the optimizer, the gradient statistics), measured
 * by timing marks recorded around each op on its stream -- what `zrt bench
 * gpu` prints per step, so the first run on a GPU says where the time goes.
 *
 * Why in the library but silent: the marks must sit where the ops are
 * enqueued (nn_cuda.c's table, the runner, the engine kernels of device.c);
 * the library only returns seconds, the bench prints them. Off unless
 * enabled on a device: then begin/end cost one flag test. A device that
 * cannot time (cpu: its ops run inside host functions) refuses to enable.
 * Nesting: the model class spans a whole forward/backward/loss; matmuls
 * inside an attention op count as attention, not twice. Every class is
 * GPU time between its marks on one stream; the bench's "rest" is the step
 * less the classes (other kernels, copies, comm, gaps).
 */
#ifndef ZRT_INTERNAL_OP_TIMER_H
#define ZRT_INTERNAL_OP_TIMER_H

#include "zrt/base.h"
#include "zrt/device.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    ZRT_OP_MODEL,     /* a whole forward, backward or loss op of the model (the classes below within it) */
    ZRT_OP_MATMUL,    /* the model's matmuls outside attention */
    ZRT_OP_ATTENTION, /* attention forward and backward, its matmuls included */
    ZRT_OP_OPTIMIZER, /* zrt_kernel_adam, zrt_kernel_adam_multi */
    ZRT_OP_STATS,     /* zrt_kernel_grad_stats, copy_stats, sum */
    ZRT_OP_CLASSES
} zrt_op_class;

/* "model", "matmul", "attention", "optimizer", "stats". */
const char *zrt_op_class_name(zrt_op_class c);

/* Starts timing the device's ops. ZRT_ERR_UNSUPPORTED (naming the device)
 * where it cannot time them; enabling twice is fine. */
zrt_status zrt_op_timer_enable(zrt_device *device);
/* Stops and frees the marks (also done by zrt_device_destroy). */
void zrt_op_timer_disable(zrt_device *device);

/* Records the start of an op of class c on s; *op identifies it for
 * zrt_op_timer_end, -1 when not timed (timer off, or hidden by nesting). */
zrt_status zrt_op_timer_begin(zrt_stream *s, zrt_op_class c, int *op);
/* Records its end; returns `status` (the op's own) if it is an error, else
 * the mark's. Always call it, whatever the op returned. */
zrt_status zrt_op_timer_end(zrt_stream *s, int op, zrt_status status);

/* Waits for every op timed since the last collect and adds its seconds to
 * seconds[class] (the caller zeroes it); then starts afresh. */
zrt_status zrt_op_timer_collect(zrt_device *device, double seconds[ZRT_OP_CLASSES]);

#ifdef __cplusplus
}
#endif
#endif
