/* zrt/shards.h: zrt checkpoints as files -- the on-disk format, and a
 * reader that needs neither an engine nor a model (what `zrt shards` is
 * built on).
 *
 * Format (written by runtime/engine/checkpoint.c): DIR/step_NNNNNNN/
 * meta.json (format "zrt-checkpoint", version, step, world_size, stage,
 * dtype, units with numel/padded/shard and their params with name, numel,
 * offset and shape, the loss scaler, the config) and shard_RRRRR.bin per
 * rank: a zrt_shard_header, then per unit a zrt_section_header and
 * 3 x shard fp32 -- master, exp_avg, exp_avg_sq of the rank's range
 * [r * shard, (r + 1) * shard) of the unit's flat, padded layout. Every
 * header and section carries a CRC32C. DIR/latest names the newest.
 * Contracts: the reader keeps only meta.json in memory and reads ranges
 * with pread, so a tool's memory does not grow with the checkpoint; every
 * malformed input is an error naming the file and what is wrong; no byte of
 * a shard reaches a caller before its section's header and CRC were checked
 * (zrt_ckpt_open checks every file whole; zrt_ckpt_read checks a section the
 * first time it reads from it).
 */
#ifndef ZRT_SHARDS_H
#define ZRT_SHARDS_H

#include "zrt/base.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ZRT_CKPT_SHARD_MAGIC "ZRTSHRD1"
#define ZRT_CKPT_VERSION 1

typedef struct {
    char magic[8];
    uint32_t version, rank, world, n_units;
    uint64_t step;
    uint32_t reserved, crc; /* crc of the bytes before it */
} zrt_shard_header;

typedef struct {
    uint32_t unit, reserved;
    uint64_t begin, count;   /* elements of the flat layout */
    uint32_t crc, reserved2; /* crc of the 3 * count floats after the header */
} zrt_section_header;

/* CRC32C (Castagnoli) of len bytes, continuing crc (0 to start). */
uint32_t zrt_crc32c(uint32_t crc, const void *data, size_t len);

typedef struct {
    char name[48];
    int64_t numel, offset;   /* offset in the unit's flat layout */
    int ndim;                /* 0 when the checkpoint predates shapes: then [numel] */
    int64_t shape[ZRT_MAX_PARAM_DIMS];
} zrt_ckpt_param;

typedef struct {
    int64_t numel, padded, shard;
    int n_params;
    zrt_ckpt_param *params;
} zrt_ckpt_unit;

typedef struct {
    char dir[ZRT_PATH_MAX + 64];   /* the step directory */
    int world, stage;
    int64_t step, adam_steps;
    char dtype[16], model[16];     /* the compute dtype; "mlp", "gpt" */
    int n_units;
    zrt_ckpt_unit *units;
    void *meta;                    /* the parsed meta.json (cJSON), for writers that copy it */
    unsigned char *checked;        /* [rank * n_units + unit]: that section's CRC was checked */
} zrt_ckpt;

enum { ZRT_CKPT_MASTER, ZRT_CKPT_EXP_AVG, ZRT_CKPT_EXP_AVG_SQ, ZRT_CKPT_PARTS };

/* What zrt_ckpt_open_checked checks before it returns. */
typedef enum {
    ZRT_CKPT_CHECK_META,   /* meta.json only: sizes consistent, parameters inside their units */
    ZRT_CKPT_CHECK_LAYOUT, /* + every shard file present, its exact size, header and section headers, no extra file */
    ZRT_CKPT_CHECK_ALL,    /* + every section's CRC32C (streamed) */
} zrt_ckpt_check;

/* path: a step directory, or a directory whose `latest` names one. Fails at
 * the first problem, naming the file and section; when `latest` named a
 * step that is missing or damaged, the message names the newest good step. */
zrt_status zrt_ckpt_open_checked(const char *path, zrt_ckpt_check check, zrt_ckpt **out);
/* zrt_ckpt_open_checked(path, ZRT_CKPT_CHECK_ALL, out): what every reader uses. */
zrt_status zrt_ckpt_open(const char *path, zrt_ckpt **out);
void zrt_ckpt_close(zrt_ckpt *c);
/* n fp32 values of a part of a unit's flat layout from element begin
 * (begin + n <= padded), read from the shard files that hold them; a
 * section not yet checked is checked (header, CRC) first. */
zrt_status zrt_ckpt_read(const zrt_ckpt *c, int unit, int part, int64_t begin, int64_t n, float *out);
/* Byte offset of unit's section header in every shard file (they all have the same layout). */
int64_t zrt_ckpt_section_offset(const zrt_ckpt *c, int unit);
/* Checks every shard file: present, its size, its header, every section
 * header and CRC (streamed), and no extra shard_*.bin; report gets one
 * line per problem. Returns the number of problems. */
int zrt_ckpt_verify(const zrt_ckpt *c, void (*report)(void *arg, const char *line), void *arg);
/* The newest step directory under dir (not `skip`) that opens with every
 * check: its name into name, or ZRT_ERR_IO when there is none. */
zrt_status zrt_ckpt_newest_good(const char *dir, const char *skip, char *name, size_t size);
/* Keeps the newest `keep` complete (ZRT_CKPT_CHECK_LAYOUT) step directories
 * under dir and removes the older ones -- never `protect` (a step name, or
 * NULL), never a damaged or unfinished step newer than the last one kept. */
zrt_status zrt_ckpt_prune(const char *dir, int64_t keep, const char *protect);
/* Finds a parameter by name: *unit and *param, or ZRT_ERR_INVALID naming it. */
zrt_status zrt_ckpt_find(const zrt_ckpt *c, const char *name, int *unit, int *param);

#ifdef __cplusplus
}
#endif
#endif
