/* place_files.c: what the offload backends and the parameter store share
 * outside the step -- the swap files' directories and swapper (NVMe), and
 * the warnings they leave for the user (zrt_engine_warnings): a backend
 * writes into the buffer it was given, it never calls the engine.
 */
#include "place.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

void zrt_warnings_add(char *warnings, size_t size, const char *fmt, ...)
{
    size_t used = strlen(warnings);
    va_list ap;
    va_start(ap, fmt);
    if (used + 1 < size) vsnprintf(warnings + used, size - used, fmt, ap);
    va_end(ap);
    used = strlen(warnings);
    if (used && warnings[used - 1] != '\n' && used + 1 < size) strcat(warnings, "\n");
}

zrt_status zrt_place_swap_dirs(const place_env *env, const char *const *paths, int n_paths)
{
    for (int i = 0; i < n_paths; i++) { /* mkdir -p, component by component */
        char dir[ZRT_PATH_MAX];
        snprintf(dir, sizeof dir, "%s", paths[i]);
        for (char *slash = dir + 1;; slash++) {
            bool end = *slash == '\0';
            if (!end && *slash != '/') continue;
            *slash = '\0';
            if (mkdir(dir, 0755) != 0 && errno != EEXIST)
                return zrt_set_error(ZRT_ERR_IO, "nvme offload: cannot make the directory %s (nvme_path %s): %s", dir,
                                     paths[i], strerror(errno));
            if (end) break;
            *slash = '/';
        }
    }
    char removed[2048];
    ZRT_CHECK(zrt_swap_clean_stale(paths, n_paths, removed, sizeof removed));
    if (removed[0])
        zrt_warnings_add(env->warnings, env->warnings_size,
                         "nvme offload: removed the swap files of a run that is gone:\n%s", removed);
    return ZRT_OK;
}

zrt_status zrt_place_open_swap(const place_env *env, const zrt_offload_config *c, const char *what, size_t bytes,
                               zrt_swap **out)
{
    const char *paths[ZRT_MAX_NVME_PATHS];
    for (int i = 0; i < c->n_nvme_paths; i++) paths[i] = c->nvme_paths[i];
    ZRT_CHECK(zrt_place_swap_dirs(env, paths, c->n_nvme_paths));
    char name[48];
    snprintf(name, sizeof name, "%s-rank%d", what, env->rank);
    zrt_swap_options o = {.paths = paths, .n_paths = c->n_nvme_paths, .name = name, .bytes = bytes,
                          .block_size = (size_t)env->cfg->aio.block_size, .queue_depth = (int)env->cfg->aio.queue_depth};
    return zrt_swap_create(&o, out);
}
