/* swap_common.h: what the swapper tests share: aligned buffers with a
 * pattern that names each byte's logical offset, and one swapper over
 * directories under the test's scratch directory.
 */
#ifndef ZRT_TEST_SWAP_COMMON_H
#define ZRT_TEST_SWAP_COMMON_H

#include "check.h"
#include "zrt.h"
#include "zrt/internal/offload.h"

#include <stdint.h>
#include <sys/stat.h>

static inline void *swap_buffer(size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, ZRT_SWAP_ALIGN, bytes ? bytes : ZRT_SWAP_ALIGN) != 0) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

/* Word i of the logical file holds (offset / 4) ^ salt. */
static inline void swap_pattern(uint32_t *words, size_t offset, size_t bytes, uint32_t salt)
{
    for (size_t i = 0; i < bytes / 4; i++) words[i] = (uint32_t)(offset / 4 + i) ^ salt;
}

static inline size_t swap_pattern_errors(const uint32_t *words, size_t offset, size_t bytes, uint32_t salt)
{
    size_t errors = 0;
    for (size_t i = 0; i < bytes / 4; i++) errors += words[i] != ((uint32_t)(offset / 4 + i) ^ salt);
    return errors;
}

/* dir/<name>, made; the path in a static buffer per call slot. */
static inline const char *swap_dir(const char *name)
{
    static char paths[4][1024];
    static int slot;
    char *path = paths[slot++ % 4];
    snprintf(path, 1024, "%s/%s", test_tmpdir(), name);
    mkdir(path, 0700);
    return path;
}

static inline zrt_status swap_open(const char *const *dirs, int n_dirs, size_t bytes, size_t block, int depth,
                                   zrt_swap **out)
{
    zrt_swap_options o = {.paths = dirs, .n_paths = n_dirs, .name = "test", .bytes = bytes, .block_size = block,
                          .queue_depth = depth};
    return zrt_swap_create(&o, out);
}

#endif
