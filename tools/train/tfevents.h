/* tfevents.h: a TensorBoard event file writer, scalars only (tfevents.c). */
#ifndef ZRT_TOOLS_TFEVENTS_H
#define ZRT_TOOLS_TFEVENTS_H

#include "zrt.h"

#include <stdio.h>

typedef struct {
    FILE *file;
    char path[ZRT_PATH_MAX + 256];
} zrt_tfevents;

/* A new file DIR/events.out.tfevents.TIMESTAMP.HOST.PID (dir is created),
 * opening with the file_version record TensorBoard looks for. */
zrt_status zrt_tfevents_open(zrt_tfevents *w, const char *dir);
/* One event at step holding n scalars (tags[i] = values[i]), flushed. */
zrt_status zrt_tfevents_scalars(zrt_tfevents *w, int64_t step, const char *const *tags, const float *values, int n);
/* A SessionLog START at step: TensorBoard then drops the values an earlier
 * file has at step and after (a resumed run trains them again). */
zrt_status zrt_tfevents_restart(zrt_tfevents *w, int64_t step);
void zrt_tfevents_close(zrt_tfevents *w);

#endif
