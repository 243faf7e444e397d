/* model_internal.h: what the built-in models share: their constructors (for
 * the registry in model.c) and the cpu-backend runner (cpu_model.c) that
 * turns each model op into a host function on the caller's stream.
 *
 * Why a runner: the zrt_model table is asynchronous (ops are enqueued on a
 * stream, buffers are device memory); a CPU model's math is plain C on
 * pointers. The runner copies what an op needs (its batch, buffers, scale)
 * into the stream job when it is enqueued, declares the buffers it touches
 * for the device's check mode, and runs the model's function on the
 * stream's thread -- so mlp.c and gpt.c contain only math.
 */
#ifndef ZRT_MODEL_INTERNAL_H
#define ZRT_MODEL_INTERNAL_H

#include "zrt.h"

/* One op as the stream runs it: everything copied at enqueue time. */
typedef struct {
    int op, batch;
    const void *inputs;       /* batch samples, device memory */
    const int32_t *labels;
    const float *params;      /* forward, backward: the op's unit (numel) */
    float *grads;             /* backward: added to */
} zrt_cpu_op;

typedef struct {
    zrt_status (*forward)(zrt_model *m, const zrt_cpu_op *op);
    /* The batch's mean cross-entropy into *mean; seeds backward with d(scale * loss). */
    zrt_status (*loss)(zrt_model *m, const zrt_cpu_op *op, float scale, float *mean);
    zrt_status (*backward)(zrt_model *m, const zrt_cpu_op *op);
    void (*free_buffers)(zrt_model *m); /* activations (zrt_cpu_model_free each) */
} zrt_cpu_model_ops;

/* The first member of every cpu model. */
typedef struct {
    zrt_model base;
    const zrt_cpu_model_ops *ops;
    zrt_model_type type;
    int max_batch, batch;          /* batch: set_batch's */
    const void *inputs;            /* set_batch's */
    const int32_t *labels;
} zrt_cpu_model;

/* Fills m->base's functions (set_batch, forward, loss, backward, destroy)
 * with the runner's; the model's own math goes in ops. */
void zrt_cpu_model_init(zrt_cpu_model *m, zrt_model_type type, zrt_device *device, int max_batch,
                        const zrt_cpu_model_ops *ops);
/* Activation memory on the model's device, charged to activations. */
zrt_status zrt_cpu_model_alloc(zrt_cpu_model *m, size_t bytes, const char *name, float **out);
void zrt_cpu_model_free(zrt_cpu_model *m, void *ptr);

zrt_status zrt_model_mlp_create(const zrt_model_config *cfg, zrt_device *device, int micro_batch, zrt_model **out);
zrt_status zrt_model_gpt_create(const zrt_model_config *cfg, zrt_device *device, int micro_batch, zrt_model **out);

#endif
