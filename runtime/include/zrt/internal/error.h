/* zrt/internal/error.h: the first error of a sequence whose later steps
 * may fail too -- cleanup after a failure, or a loop that must run every
 * step (synchronize every stream) and report the first failure.
 *
 * Why: the thread's last error holds one message and every failing call
 * overwrites it, so cleanup that fails again would replace the error the
 * caller must see. Keep the first one here and restore it at the end:
 *     zrt_first_error first = {0};
 *     for (...) zrt_first_error_keep(&first, step(i));
 *     return zrt_first_error_restore(&first);
 * ZRT_ERROR_MAX bytes: a local is fine on the caller's stack. */
#ifndef ZRT_INTERNAL_ERROR_H
#define ZRT_INTERNAL_ERROR_H

#include "zrt/base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    zrt_status status;           /* ZRT_OK until the first failure */
    char message[ZRT_ERROR_MAX]; /* its zrt_last_error() */
} zrt_first_error;

/* Keeps status and this thread's last error when status fails and is the
 * first failure kept; returns status. */
zrt_status zrt_first_error_keep(zrt_first_error *first, zrt_status status);
/* Makes the kept error this thread's last error again and returns its
 * status; ZRT_OK (the last error untouched) when none was kept. */
zrt_status zrt_first_error_restore(const zrt_first_error *first);

#ifdef __cplusplus
}
#endif
#endif
