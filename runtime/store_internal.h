/* store_internal.h: the ops table behind zrt_store, for its backends.
 *
 * Why: the file store (store.c) and the control-plane store (control/, later)
 * share one signature; zrt_store_* check arguments, then call through here.
 * Keys reaching a backend are non-empty and at most 255 bytes.
 */
#ifndef ZRT_STORE_INTERNAL_H
#define ZRT_STORE_INTERNAL_H

#include "zrt.h"

typedef struct {
    zrt_status (*set)(zrt_store *store, const char *key, const void *value, size_t len);
    zrt_status (*get)(zrt_store *store, const char *key, double timeout_s, void **value, size_t *len);
    zrt_status (*add)(zrt_store *store, const char *key, int64_t delta, int64_t *result);
    zrt_status (*del)(zrt_store *store, const char *key);
    void (*destroy)(zrt_store *store);
} zrt_store_ops;

struct zrt_store {
    const zrt_store_ops *ops;
};

#endif
