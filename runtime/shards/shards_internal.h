/* shards_internal.h: what the checkpoint reader (reader.c), its checker
 * (verify.c) and the step-directory functions (steps.c) share. */
#ifndef ZRT_SHARDS_INTERNAL_H
#define ZRT_SHARDS_INTERNAL_H

#include "zrt.h"

/* Every shard file against meta.json (crcs: every section's CRC too); one
 * report line per problem; returns the number of problems. */
int zrt_ckpt_check_files(const zrt_ckpt *c, bool crcs, void (*report)(void *arg, const char *line), void *arg);
/* One section of rank's file: its header and CRC, unless checked already. */
zrt_status zrt_ckpt_check_section(const zrt_ckpt *c, int rank, int unit);
/* The step_NNNNNNN directories under dir, newest first (malloc'd names; *n of them). */
zrt_status zrt_ckpt_list_steps(const char *dir, char ***names, int *n);
void zrt_ckpt_free_steps(char **names, int n);

#endif
