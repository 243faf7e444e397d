/* monitor.h: where `zrt train` (rank 0) records each step's metrics
 * (monitor.c): the metrics file, DeepSpeed's tensorboard and csv_monitor. */
#ifndef ZRT_TOOLS_MONITOR_H
#define ZRT_TOOLS_MONITOR_H

#include "tfevents.h"
#include "zrt.h"

#include <stdio.h>

/* One step's metrics. */
typedef struct {
    int64_t step;
    double loss, lr, grad_norm, loss_scale, tokens_per_s;
    bool skipped; /* fp16 overflow: the step changed nothing */
    int64_t model_state_bytes;
    int64_t samples_seen; /* every rank's samples so far: the data's position */
    bool has_val;         /* an evaluation ran after this step: */
    double val_loss;      /* its validation loss (the metrics row's val_loss) */
} zrt_train_row;

typedef struct {
    FILE *metrics;   /* zrt.metrics_file: one JSON line per step */
    FILE *csv;       /* csv_monitor: OUTPUT_PATH/JOB_NAME/metrics.csv */
    zrt_tfevents tb; /* tensorboard: OUTPUT_PATH/JOB_NAME/events.out.tfevents.* */
} zrt_monitor;

/* Opens what cfg asks for; resumed > 0: a run continuing at that step (the
 * files keep their rows up to it, a line on say when later ones are dropped). */
zrt_status zrt_monitor_open(zrt_monitor *m, const zrt_config *cfg, int64_t resumed, FILE *say);
/* One row to each, flushed. */
zrt_status zrt_monitor_step(zrt_monitor *m, const zrt_train_row *row);
/* A validation loss at step (TensorBoard's val/loss), for when zrt validates. */
zrt_status zrt_monitor_val_loss(zrt_monitor *m, int64_t step, double loss);
void zrt_monitor_close(zrt_monitor *m);

#endif
