/* shards.h: what `zrt shards` (cmd_shards.c) shares with its writers
 * (shards_out.c: consolidate to safetensors, reshard). Private to tools/. */
#ifndef ZRT_TOOLS_SHARDS_H
#define ZRT_TOOLS_SHARDS_H

#include "zrt.h"
#include "zrt/internal/output.h"

#define SHARDS_CHUNK ((int64_t)1 << 20) /* elements per read: the tools' memory, whatever the checkpoint */

typedef struct {
    bool json;
    const char *param;
    int rank;                /* show --rank; -1: all */
    double tolerance;        /* diff */
    zrt_dtype dtype;         /* consolidate */
    long long max_shard_bytes;
    int world, stage;        /* reshard; stage -1: keep */
} shards_options;

/* One tensor of a safetensors output: a parameter under a name, maybe
 * transposed (GPT-2's Conv1D); file and begin are filled by the writer. */
typedef struct {
    const zrt_ckpt_param *p;
    int unit;
    char name[128];
    bool transpose;
    int file;
    long long begin;
} shards_tensor;

/* Writes t (any order; sorted by name here) as safetensors in out->tmp
 * (model.safetensors, or Hugging Face's sharded layout over
 * o->max_shard_bytes) in o->dtype; prints what it wrote as out->path. */
int zrt_shards_write_safetensors(const shards_options *o, const zrt_ckpt *c, shards_tensor *t, int n, const zrt_out_dir *out);
/* An output directory of consolidate or export-hf: begin refuses an existing
 * out_dir that holds anything else and creates the temporary; end (with the
 * writers' exit code) swaps it in, or removes it on failure. */
int zrt_shards_output_begin(const char *action, const char *out_dir, zrt_out_dir *d);
int zrt_shards_output_end(const char *action, zrt_out_dir *d, int rc);
int zrt_shards_export_hf(const shards_options *o, const zrt_ckpt *c, const char *out_dir);
bool zrt_shards_parse_dtype(const char *text, zrt_dtype *out);
/* "5GB", "500MB", "4096", "2GiB". */
bool zrt_shards_parse_bytes(const char *text, long long *out);
int zrt_shards_consolidate(const shards_options *o, const zrt_ckpt *c, const char *out_dir);
int zrt_shards_reshard(const shards_options *o, const zrt_ckpt *c, const char *out_dir);

#endif
