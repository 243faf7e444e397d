/* steps.c: the step directories of a checkpoint directory -- which is the
 * newest good one (named when `latest` points at a damaged step), and
 * zrt.checkpoint_keep's pruning of the old ones.
 *
 * Why pruning asks the reader what is complete: a step directory is counted
 * towards the N kept only when every shard file is there with its exact size
 * and headers (ZRT_CKPT_CHECK_LAYOUT); a damaged or unfinished newer step is
 * neither counted nor removed, so pruning can never leave fewer good steps
 * than asked, and never removes the step a run resumed from.
 */
#include "zrt.h"
#include "zrt/internal/output.h"
#include "shards_internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int newest_first(const void *a, const void *b) { return strcmp(*(char *const *)b, *(char *const *)a); }

void zrt_ckpt_free_steps(char **names, int n)
{
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* step_ then digits only: not .step_N.tmp-*, not step_N.old. */
static bool step_name(const char *name)
{
    if (strncmp(name, "step_", 5) != 0 || !name[5]) return false;
    return strspn(name + 5, "0123456789") == strlen(name + 5);
}

zrt_status zrt_ckpt_list_steps(const char *dir, char ***names, int *n)
{
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return zrt_set_error(ZRT_ERR_IO, "%s: cannot open the checkpoint directory", dir);
    int cap = 0;
    zrt_status status = ZRT_OK;
    for (struct dirent *e; status == ZRT_OK && (e = readdir(d));) {
        if (!step_name(e->d_name)) continue;
        char **grown = *n < cap ? *names : realloc(*names, (size_t)(cap = 2 * cap + 16) * sizeof **names);
        if (grown) *names = grown;
        if (!grown || !((*names)[*n] = strdup(e->d_name))) status = zrt_set_error(ZRT_ERR_NOMEM, "out of memory");
        else (*n)++;
    }
    closedir(d);
    if (status != ZRT_OK) zrt_ckpt_free_steps(*names, *n), *names = NULL, *n = 0;
    else if (*n) qsort(*names, (size_t)*n, sizeof **names, newest_first); /* fixed-width numbers sort as text */
    return status;
}

/* Whether DIR/name opens with the given checks (the error is discarded). */
static bool step_ok(const char *dir, const char *name, zrt_ckpt_check check)
{
    char path[ZRT_PATH_MAX + 300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    zrt_ckpt *c = NULL;
    bool ok = zrt_ckpt_open_checked(path, check, &c) == ZRT_OK;
    zrt_ckpt_close(c);
    return ok;
}

zrt_status zrt_ckpt_newest_good(const char *dir, const char *skip, char *name, size_t size)
{
    char **names;
    int n;
    ZRT_CHECK(zrt_ckpt_list_steps(dir, &names, &n));
    int found = -1;
    for (int i = 0; i < n && found < 0; i++)
        if (!(skip && strcmp(names[i], skip) == 0) && step_ok(dir, names[i], ZRT_CKPT_CHECK_ALL)) found = i;
    if (found >= 0) snprintf(name, size, "%s", names[found]);
    zrt_ckpt_free_steps(names, n);
    return found >= 0 ? ZRT_OK : zrt_set_error(ZRT_ERR_IO, "%s: no good step directory", dir);
}

/* The step DIR/latest names, or "". */
static void latest_name(const char *dir, char *name, size_t size)
{
    char path[ZRT_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/latest", dir);
    FILE *f = fopen(path, "r");
    name[0] = '\0';
    if (f && fgets(name, (int)size, f)) name[strcspn(name, "\r\n")] = '\0';
    if (f) fclose(f);
}

/* Renamed out of sight first, so that a crash halfway leaves no half step_N. */
static zrt_status remove_step(const char *dir, const char *name)
{
    char path[ZRT_PATH_MAX + 300], hidden[ZRT_PATH_MAX + 340];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(hidden, sizeof hidden, "%s/.%s.removing", dir, name);
    if (rename(path, hidden) != 0) return zrt_set_error(ZRT_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
    return zrt_remove_tree(hidden);
}

zrt_status zrt_ckpt_prune(const char *dir, int64_t keep, const char *protect)
{
    if (keep < 1) return ZRT_OK;
    char **names, latest[256];
    int n;
    ZRT_CHECK(zrt_ckpt_list_steps(dir, &names, &n));
    latest_name(dir, latest, sizeof latest);
    int64_t complete = 0;
    zrt_status status = ZRT_OK;
    for (int i = 0; i < n && status == ZRT_OK; i++) {
        if (complete < keep) { /* newer than the last kept: kept, counted only when complete */
            complete += step_ok(dir, names[i], ZRT_CKPT_CHECK_LAYOUT);
            continue;
        }
        if (!(protect && strcmp(names[i], protect) == 0) && strcmp(names[i], latest) != 0)
            status = remove_step(dir, names[i]);
    }
    zrt_ckpt_free_steps(names, n);
    return status;
}
