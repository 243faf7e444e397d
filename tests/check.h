/* check.h: the few macros every zrt test program uses.
 *
 * Why: tests are programs (one per behaviour) that exit 0 pass, 1 fail, 77
 * skip; a failed CHECK prints where and what, and the test goes on so that
 * one run lists every failure. Die-on-error lives here, never in libzrt.
 */
#ifndef ZRT_TEST_CHECK_H
#define ZRT_TEST_CHECK_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TEST_EXIT_SKIP 77

static int check_failures;

#define CHECK(cond)                                                               \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            check_failures++;                                                     \
        }                                                                         \
    } while (0)

#define CHECK_MSG(cond, ...)                                                      \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                         \
            fputc('\n', stderr);                                                  \
            check_failures++;                                                     \
        }                                                                         \
    } while (0)

/* A zrt call that must succeed; prints zrt_last_error() if not. */
#define CHECK_OK(expr)                                                            \
    do {                                                                          \
        zrt_status check_ok_status_ = (expr);                                     \
        CHECK_MSG(check_ok_status_ == ZRT_OK, "%s", zrt_last_error());            \
    } while (0)

#define SKIP(...)                                                                 \
    do {                                                                          \
        printf(__VA_ARGS__);                                                      \
        printf("\n");                                                             \
        exit(TEST_EXIT_SKIP);                                                     \
    } while (0)

#define CHECK_DONE() (check_failures ? 1 : 0)

/* A private scratch directory under $TMPDIR (the runner gives each test one). */
static inline const char *test_tmpdir(void)
{
    const char *tmp = getenv("TMPDIR");
    return tmp && tmp[0] ? tmp : "/tmp";
}

/* Writes text to dir/name; returns the path in a static buffer per call slot. */
static inline const char *test_write_file(const char *dir, const char *name, const char *text, size_t len)
{
    static char paths[4][1024];
    static int slot;
    char *path = paths[slot++ % 4];
    snprintf(path, 1024, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    fwrite(text, 1, len, f);
    fclose(f);
    return path;
}

/* UNDER_SANITIZER: built with ASan or TSan (mode=debug, mode=tsan), where the
 * resident set is mostly the sanitizer's shadow memory and quarantine: a
 * test of resident memory has nothing to compare there. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif


/* The peak resident set starts again from the current one (/proc/self/clear_refs 5); false where it cannot. */
static inline bool test_reset_vm_hwm(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    bool ok = f && fputs("5", f) >= 0;
    return f ? fclose(f) == 0 && ok : false;
}

#endif
