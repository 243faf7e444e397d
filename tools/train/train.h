/* train.h: what cmd_train.c uses of train_resume.c -- the record of a run
 * that continues another (the checkpoint it loads, the initial weights, the
 * history of rows per step). */
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
/* The step of a line of a file of rows per step: >= 1 that step's row, 0 a
 * header (always kept), -1 neither (a line cut short by a crash). */
typedef int64_t (*zrt_row_step)(const char *line);
/* The step of a metrics line ({"step": N, ...}). */
int64_t zrt_train_json_step(const char *line);
/* A file of rows per step (rank 0; "" opens none): new, or, resuming at step
 * `resumed`, its header and rows up to that step kept and new rows appended
 * (a line on say, naming `what`, tells how many later rows were left out:
 * they are trained again). */
zrt_status zrt_train_open_rows(const char *path, const char *what, zrt_row_step step_of, int64_t resumed, FILE *say,
                               FILE **out);

#endif
