/* zrt/internal/output.h: every file and directory zrt writes for the user appears
 * whole or not at all.
 *
 * Why: a tool that writes its output in place and fails midway (a damaged
 * input, a full disk, a kill) leaves a truncated file where a good one was.
 * Here an output is written beside its target under a temporary name
 * (.NAME.tmp-TAG in the same directory, so the rename cannot cross a
 * filesystem), fsynced, and renamed over the target only when complete;
 * on failure the temporary is removed and the target is untouched. A
 * directory replaces an old one with one atomic exchange (renameat2), and
 * the old one is removed only after.
 */
#ifndef ZRT_INTERNAL_OUTPUT_H
#define ZRT_INTERNAL_OUTPUT_H

#include "zrt/base.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ZRT_OUT_PATH_MAX (ZRT_PATH_MAX + 128)

/* One file: open, write, then commit (fsync, rename, fsync the directory) or abort (unlink). */
typedef struct {
    char path[ZRT_OUT_PATH_MAX], tmp[ZRT_OUT_PATH_MAX + 64];
    int fd;
} zrt_out_file;

zrt_status zrt_out_file_open(zrt_out_file *f, const char *path);
/* All of data to fd (a short write or EINTR goes on), or ZRT_ERR_IO naming path. */
zrt_status zrt_write_all(int fd, const void *data, size_t len, const char *path);
zrt_status zrt_out_file_write(zrt_out_file *f, const void *data, size_t len);
/* On failure the temporary is removed too. */
zrt_status zrt_out_file_commit(zrt_out_file *f);
void zrt_out_file_abort(zrt_out_file *f);
/* The whole of text as path, atomically. */
zrt_status zrt_out_write_text(const char *path, const char *text);

/* One directory: its files are written into d->tmp, then commit makes it
 * path (fsyncing every file in it; an old path is exchanged and removed). */
typedef struct {
    char path[ZRT_OUT_PATH_MAX], tmp[ZRT_OUT_PATH_MAX + 64];
} zrt_out_dir;

/* Names only (d->tmp = .BASENAME.tmp-TAG beside path; tag NULL: the
 * process id), so that several processes can agree on one temporary. */
zrt_status zrt_out_dir_name(zrt_out_dir *d, const char *path, const char *tag);
/* Removes a leftover temporary of that name and creates it empty. */
zrt_status zrt_out_dir_create(zrt_out_dir *d);
zrt_status zrt_out_dir_commit(zrt_out_dir *d);
void zrt_out_dir_abort(zrt_out_dir *d);

/* rm -rf path (no symlink is followed). */
zrt_status zrt_remove_tree(const char *path);
/* Refuses (ZRT_ERR_INVALID naming both) an output equal to its input,
 * inside it, or containing it, compared by realpath; out need not exist. */
zrt_status zrt_out_check_apart(const char *out, const char *in);

#ifdef __cplusplus
}
#endif
#endif
