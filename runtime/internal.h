/* internal.h: helpers shared by libzrt's own files; not installed.
 *
 * Why: the error-setting side of zrt_last_error() and the CHECK macros that
 * propagate a status to one cleanup label. Public API lives in zrt.h.
 */
#ifndef ZRT_INTERNAL_H
#define ZRT_INTERNAL_H

#include "zrt.h"

#define ZRT_ERROR_MAX 8192

/* Stores a printf-style message as this thread's last error; returns status
 * so that `return zrt_set_error(ZRT_ERR_IO, "...")` reads naturally. */
zrt_status zrt_set_error(zrt_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void zrt_clear_error(void);

/* Propagate a failing status; the message is already set by the callee. */
#define CHECK(expr)                                  \
    do {                                             \
        zrt_status check_status_ = (expr);           \
        if (check_status_ != ZRT_OK) return check_status_; \
    } while (0)

/* Same, but jump to a cleanup label with `status` set. */
#define CHECK_GOTO(expr, label)                      \
    do {                                             \
        status = (expr);                             \
        if (status != ZRT_OK) goto label;            \
    } while (0)

/* Monotonic seconds, and a sleep that resumes after signals. */
double zrt_now(void);
void zrt_sleep(double seconds);

#endif
