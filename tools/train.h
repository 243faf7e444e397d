/* train.h: what cmd_train.c uses of train_resume.c -- the record of a run
 * that continues another (the checkpoint it loads, the initial weights, the
 * metrics file's history). */
#ifndef ZRT_TOOLS_TRAIN_H
#define ZRT_TOOLS_TRAIN_H

#include "zrt.h"

#include <stdio.h>

/* Lines on out naming the checkpoint at path (a step directory, or a
 * directory whose `latest` names one): its step, world size, stage and
 * dtype, and what this run changes (world size, global batch, stage), and
 * that there is nothing to train when it is at or past cfg's last step. */
zrt_status zrt_train_describe_resume(const zrt_config *cfg, int world, int64_t batch, const char *path, FILE *out);
/* One line on out saying what init_from loaded (or that a resume replaces it). */
void zrt_train_describe_init(const zrt_config *cfg, const zrt_model *model, bool resuming, FILE *out);
/* The metrics file (rank 0; "" opens none): new, or, resuming at step
 * `resumed`, its rows up to that step kept and new rows appended (a line on
 * say tells how many later rows were left out: they are trained again). */
zrt_status zrt_train_open_metrics(const char *path, int64_t resumed, FILE *say, FILE **out);

#endif
