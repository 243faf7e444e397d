/* run_cmd.h: a shell command from a C test -- its exit status, and its
 * output -- for the tests that drive `zrt` or python as a user would. */
#ifndef ZRT_TEST_RUN_CMD_H
#define ZRT_TEST_RUN_CMD_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

/* system() of the formatted command: its exit status (1 when it did not exit). */
static inline int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline int run(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 1;
}

/* `zrt config check PATH` ($ZRT_BIN, else build/bin/zrt): its output (stdout
 * and stderr) into out, its exit status (-1 when it did not exit). */
static inline int run_config_check(const char *path, char *out, size_t size)
{
    const char *bin = getenv("ZRT_BIN");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' config check '%s' 2>&1", bin ? bin : "build/bin/zrt", path);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t got = fread(out, 1, size - 1, p);
    out[got] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

#endif
