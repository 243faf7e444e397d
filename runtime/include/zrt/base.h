/* zrt/base.h: what every part of the zrt API shares: zrt_status and the
 * thread's last error, the ZRT_CHECK macros, the clock, the element types
 * (zrt_dtype) and the size limits.
 *
 * Why a header of its own: each public header includes exactly what it uses
 * and compiles alone (tests/test_headers.sh); none includes zrt.h, the
 * umbrella that includes them all. Conventions: see zrt.h. */
#ifndef ZRT_BASE_H
#define ZRT_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ZRT_VERSION "0.1.0"

/* ---- status ------------------------------------------------------------ */

typedef enum {
    ZRT_OK = 0,
    ZRT_ERR_INVALID,     /* a bad argument from the caller (NULL, range)  */
    ZRT_ERR_CONFIG,      /* a config file or value is wrong               */
    ZRT_ERR_IO,          /* a file or socket operation failed             */
    ZRT_ERR_NOMEM,       /* an allocation failed                          */
    ZRT_ERR_TIMEOUT,     /* a deadline passed                             */
    ZRT_ERR_ABORTED,     /* the operation was aborted on request          */
    ZRT_ERR_PEER,        /* another rank or machine failed                */
    ZRT_ERR_UNSUPPORTED, /* valid, but not available in this build        */
    ZRT_ERR_INTERNAL     /* a bug in zrt                                  */
} zrt_status;

/* The message of the last error on this thread ("" if none). The pointer
 * stays valid until the next zrt call on this thread. Config errors may span
 * several lines, one error per line. */
const char *zrt_last_error(void);

/* A short name for a status: "ok", "invalid argument", ... */
const char *zrt_status_name(zrt_status status);

/* Longest message zrt_last_error() holds, NUL included (longer ones are cut). */
#define ZRT_ERROR_MAX 8192

/* Sets this thread's last error to a printf-style message and returns
 * status, so `return zrt_set_error(ZRT_ERR_IO, "...")` reads naturally. For
 * code that extends zrt (a model, a store backend) as much as for zrt. */
zrt_status zrt_set_error(zrt_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Empties this thread's last error. */
void zrt_clear_error(void);

/* Propagates a failing status (the callee has set the message). */
#define ZRT_CHECK(expr)                                   \
    do {                                                  \
        zrt_status zrt_check_status_ = (expr);            \
        if (zrt_check_status_ != ZRT_OK) return zrt_check_status_; \
    } while (0)

/* The same, but sets the status variable named first and jumps to a
 * cleanup label: ZRT_CHECK_GOTO(status, open_it(), fail). */
#define ZRT_CHECK_GOTO(status_var, expr, label)           \
    do {                                                  \
        (status_var) = (expr);                            \
        if ((status_var) != ZRT_OK) goto label;           \
    } while (0)

/* ---- clock --------------------------------------------------------------- */

/* Monotonic seconds (CLOCK_MONOTONIC): the one clock of zrt, its tools and tests. */
double zrt_now(void);
/* Sleeps, resuming after signals. */
void zrt_sleep(double seconds);

/* ---- element types ------------------------------------------------------ */

typedef enum { ZRT_DTYPE_F32, ZRT_DTYPE_BF16, ZRT_DTYPE_F16 } zrt_dtype;

/* Bytes per element of dtype (4 or 2). */
size_t zrt_dtype_size(zrt_dtype dtype);
const char *zrt_dtype_name(zrt_dtype dtype);

/* ---- limits ------------------------------------------------------------ */

/* Longest path and name zrt keeps in its fixed-size strings (config, output). */
#define ZRT_PATH_MAX 1024
#define ZRT_NAME_MAX 128
/* Most dimensions of a parameter's shape (zrt_param_info, checkpoints). */
#define ZRT_MAX_PARAM_DIMS 4

#ifdef __cplusplus
}
#endif
#endif
