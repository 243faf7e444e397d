/* gpu_present.h: the one rule for a GPU test that cannot open the cuda
 * device: skip only where the machine has no GPU; where it has one
 * (nvidia-smi lists one, or the driver's /proc entries do), fail with the
 * reason -- a machine whose GPU zrt cannot use must not report "0 failed".
 * Shell tests use tests/lib.sh's gpu_present, which asks the same two places.
 */
#ifndef ZRT_TEST_GPU_PRESENT_H
#define ZRT_TEST_GPU_PRESENT_H

#include "check.h"

#include <dirent.h>
#include <stdbool.h>

/* Whether this machine has a GPU, and where that was seen. */
static inline bool gpu_present(char *where, size_t size)
{
    FILE *p = popen("nvidia-smi --list-gpus 2>/dev/null", "r");
    char line[256];
    bool listed = false;
    while (p && fgets(line, sizeof line, p))
        if (!listed && strncmp(line, "GPU ", 4) == 0) {
            listed = true;
            line[strcspn(line, "\n")] = '\0';
            snprintf(where, size, "nvidia-smi lists '%s'", line);
        }
    if (p) pclose(p);
    if (listed) return true;
    DIR *dir = opendir("/proc/driver/nvidia/gpus");
    struct dirent *entry;
    while (dir && (entry = readdir(dir)))
        if (entry->d_name[0] != '.') {
            snprintf(where, size, "the NVIDIA driver lists GPU %s (/proc/driver/nvidia/gpus)", entry->d_name);
            listed = true;
            break;
        }
    if (dir) closedir(dir);
    return listed;
}

/* Ends a test that cannot open the cuda device (why): skip without a GPU, fail with one. */
static inline void no_cuda_device(const char *why)
{
    char where[400] = "";
    if (gpu_present(where, sizeof where)) {
        printf("FAIL: this machine has a GPU (%s), but the cuda device cannot be opened: %s\n", where, why);
        exit(1);
    }
    SKIP("%s", why);
}

#endif
