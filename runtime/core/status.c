/* status.c: the per-thread last-error message behind zrt_last_error().
 *
 * Why: the library never prints; every failing function stores a message
 * here and returns a zrt_status, so the caller decides what to show.
 * Invariant: the buffer always holds a NUL-terminated string.
 */

#include "zrt.h"
#include "zrt/internal/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_error[ZRT_ERROR_MAX];

const char *zrt_last_error(void) { return last_error; }

zrt_status zrt_set_error(zrt_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

void zrt_clear_error(void) { last_error[0] = '\0'; }

const char *zrt_status_name(zrt_status status)
{
    switch (status) {
    case ZRT_OK: return "ok";
    case ZRT_ERR_INVALID: return "invalid argument";
    case ZRT_ERR_CONFIG: return "config error";
    case ZRT_ERR_IO: return "I/O error";
    case ZRT_ERR_NOMEM: return "out of memory";
    case ZRT_ERR_TIMEOUT: return "timed out";
    case ZRT_ERR_ABORTED: return "aborted";
    case ZRT_ERR_PEER: return "peer failed";
    case ZRT_ERR_UNSUPPORTED: return "unsupported";
    case ZRT_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

zrt_status zrt_first_error_keep(zrt_first_error *first, zrt_status status)
{
    if (status != ZRT_OK && first->status == ZRT_OK) {
        first->status = status;
        snprintf(first->message, sizeof first->message, "%s", last_error);
    }
    return status;
}

zrt_status zrt_first_error_restore(const zrt_first_error *first)
{
    return first->status == ZRT_OK ? ZRT_OK : zrt_set_error(first->status, "%s", first->message);
}
