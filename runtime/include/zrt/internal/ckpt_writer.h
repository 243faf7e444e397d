/* zrt/internal/ckpt_writer.h: the writing half of the checkpoint format,
 * beside its reading half (zrt/shards.h) in runtime/shards/ -- one folder
 * owns the format. A shard file is a header, then per unit a section: its
 * header (unit, begin, count, a CRC32C of the floats after it) and the rank's
 * range of the three parts (fp32 master, exp_avg, exp_avg_sq), 3 * count
 * floats. The engine's save (engine/checkpoint.c) and `zrt shards reshard`
 * both stream their sections through this writer, so the bytes, the CRCs and
 * the checks (a section given fewer or more floats than it declared is an
 * error naming the file and unit) are the same everywhere.
 */
#ifndef ZRT_INTERNAL_CKPT_WRITER_H
#define ZRT_INTERNAL_CKPT_WRITER_H

#include "zrt/shards.h"

#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    char path[ZRT_PATH_MAX + 192];
    int fd;
    off_t section_at;          /* where the open section's header is (-1: none open) */
    zrt_section_header section;
    int64_t floats_left;       /* of the open section */
} zrt_shard_writer;

/* Creates path and writes the file's header. */
zrt_status zrt_shard_writer_open(zrt_shard_writer *w, const char *path, int rank, int world, int n_units,
                                 int64_t step);
/* Ends the open section (if any) and opens unit's: elements [begin, begin + count). */
zrt_status zrt_shard_writer_section(zrt_shard_writer *w, int unit, int64_t begin, int64_t count);
/* The next n of the open section's 3 * count floats (master, then exp_avg, then exp_avg_sq). */
zrt_status zrt_shard_writer_floats(zrt_shard_writer *w, const float *values, size_t n);
/* Ends the last section, fsyncs and closes; on failure the file is left for
 * the caller's temporary directory to remove. */
zrt_status zrt_shard_writer_close(zrt_shard_writer *w);
/* Closes without checking (after a failure). */
void zrt_shard_writer_abort(zrt_shard_writer *w);

/* What meta.json holds beside the description in zrt_ckpt (which the reader
 * fills from it): the loss scaler, the data's position and the run's config. */
typedef struct {
    double scale;
    int64_t hysteresis_left, last_overflow_step, scaler_step;
    int64_t train_batch_size, samples; /* the global batch, and every rank's samples so far */
    const char *config_json;           /* zrt_config_to_json's text (NULL: none) */
} zrt_ckpt_meta_extra;

/* meta.json's text (malloc'ed; NULL when out of memory) for the checkpoint c
 * describes -- step, adam_steps, world, stage, dtype, every unit's numel,
 * padded, shard and parameters -- the keys the reader checks, in one place. */
char *zrt_ckpt_meta_text(const zrt_ckpt *c, const zrt_ckpt_meta_extra *extra);

#ifdef __cplusplus
}
#endif
#endif
