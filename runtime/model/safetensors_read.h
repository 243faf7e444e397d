/* safetensors_read.h: safetensors weights read by ranges (safetensors_read.c).
 *
 * Why ranges: a rank initialises only its own shard of each unit, so it
 * reads, with pread, only the bytes of the tensors that overlap its range --
 * never a whole tensor or file; a model many times a rank's memory loads.
 */
#ifndef ZRT_SAFETENSORS_READ_H
#define ZRT_SAFETENSORS_READ_H

#include "zrt.h"

typedef struct zrt_st_source zrt_st_source;

/* One tensor's entry: where its bytes are and what they are. */
typedef struct {
    const char *file;  /* the file holding it (owned by the source) */
    int fd;
    zrt_dtype dtype;   /* F32, BF16 or F16 (others refused by name) */
    int ndim;
    int64_t shape[ZRT_MAX_PARAM_DIMS];
    int64_t numel;
    int64_t at;        /* its first byte in the file */
} zrt_st_tensor;

/* path: a safetensors file, or a directory with model.safetensors or
 * model.safetensors.index.json (any number of shard files; each file's
 * header is read when a tensor of it is first asked for). ZRT_ERR_CONFIG
 * naming the path. */
zrt_status zrt_st_open(const char *path, zrt_st_source **out);
void zrt_st_close(zrt_st_source *s);

/* Tensor `name`'s entry: 1 found, 0 absent, -1 error (a bad file: its
 * header, a dtype other than F32/BF16/F16, data_offsets that do not hold
 * the shape, or that run past the end of the file: "truncated"). */
int zrt_st_find(zrt_st_source *s, const char *name, zrt_st_tensor *t);

/* Elements [first, first + count) of t, in the file's order, as fp32. */
zrt_status zrt_st_read(const zrt_st_tensor *t, int64_t first, int64_t count, float *out);

/* Calls fn for every tensor of every file (metadata left out); stops at
 * fn's first error. Reads every header. */
zrt_status zrt_st_each(zrt_st_source *s, zrt_status (*fn)(void *ctx, const char *file, const char *name), void *ctx);

#endif
