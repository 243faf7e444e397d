/* zrt/internal/knobs.h: every ZRT_* environment variable zrt reads, in one
 * table (runtime/core/knobs.c): its name, type, default and what it does.
 *
 * Why one table: a variable read with getenv where it is used is
 * undocumented until someone greps for it; here each is declared once,
 * read through the table, listed by `zrt report` (set or not, with its
 * default) and documented in docs/knobs.md, which a test checks against the
 * table. tests/test_knobs.sh fails on a getenv("ZRT_...") outside knobs.c.
 * Fault-injection variables (ZRT_FAULT_*) are knobs too; code reaches them
 * through their fault site (zrt/internal/fault.h). */
#ifndef ZRT_INTERNAL_KNOBS_H
#define ZRT_INTERNAL_KNOBS_H

#include "zrt/base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    ZRT_KNOB_DEVICE_CHECK,
    ZRT_KNOB_CPU_THREADS,
    ZRT_KNOB_SOCKET_IFNAME,
    ZRT_KNOB_CUBLASLT,
    ZRT_KNOB_JOB_TOKEN,
    ZRT_KNOB_COORDINATOR,
    ZRT_KNOB_STORE_DIR,
    ZRT_KNOB_STORE_SCOPE,
    ZRT_KNOB_GENERATION,
    ZRT_KNOB_JOB_LOCKED,
    ZRT_KNOB_PROGRESS_FILE,
    ZRT_KNOB_PROGRESS_TTY,
    ZRT_KNOB_OPENBLAS_CORETYPE,
    ZRT_KNOB_SOURCE_DIR,
    ZRT_KNOB_FAULT_CRASH_IN_SAVE,
    ZRT_KNOB_FAULT_SKIP_WAIT,
    ZRT_KNOB_FAULT_SWAP,
    ZRT_KNOB_FAULT_SHARDS_WRITE,
    ZRT_KNOB_FAULT_EXIT,
    ZRT_KNOB_FAULT_KILL,
    ZRT_KNOB_COUNT
} zrt_knob;

typedef enum { ZRT_KNOB_BOOL, ZRT_KNOB_INT, ZRT_KNOB_STRING } zrt_knob_type;

typedef struct {
    const char *name;        /* "ZRT_DEVICE_CHECK" */
    zrt_knob_type type;
    const char *fallback;    /* the value when unset or empty; NULL: none */
    const char *what;        /* one line: what it does, who sets it */
} zrt_knob_info;

/* The table's entry of a knob (NULL outside 0..ZRT_KNOB_COUNT - 1). */
const zrt_knob_info *zrt_knob_describe(zrt_knob knob);
/* The knob named name ("ZRT_CPU_THREADS"), or -1. */
int zrt_knob_find(const char *name);
/* The variable as set (non-empty), else NULL: whether the user chose it. */
const char *zrt_knob_set(zrt_knob knob);
/* As set, else the default (may be NULL). */
const char *zrt_knob_string(zrt_knob knob);
/* bool: set, not "0" (else the default's truth). int: its value when set
 * and a number (atoll), else the default's (0 without one). */
bool zrt_knob_bool(zrt_knob knob);
int64_t zrt_knob_int(zrt_knob knob);
/* The type's name as docs/knobs.md spells it: "bool", "int", "string". */
const char *zrt_knob_type_name(zrt_knob_type type);

#ifdef __cplusplus
}
#endif
#endif
