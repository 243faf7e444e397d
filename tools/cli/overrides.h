/* overrides.h: the flags shared by `zrt launch` and `zrt train` (overrides.c). */
#ifndef ZRT_OVERRIDES_H
#define ZRT_OVERRIDES_H

#include "cli.h"
#include "zrt.h"

#define ZRT_MAX_OVERRIDES 32

typedef struct {
    int option;       /* the getopt val */
    int64_t value;
    char text[128];
} zrt_override_item;

typedef struct {
    char config[ZRT_PATH_MAX];
    char zrt_config[ZRT_PATH_MAX]; /* --zrt-config: zrt's settings from this file */
    char metrics[ZRT_PATH_MAX];
    char resume_from[ZRT_PATH_MAX]; /* --resume_from: a checkpoint step to resume from */
    zrt_override_item items[ZRT_MAX_OVERRIDES];
    int n_items;
    bool file_store;  /* zrt launch: rendezvous through a directory, no control plane */
} zrt_overrides;

extern const struct option zrt_override_options[];
extern const char zrt_override_usage[];

/* Records option c with its argument; false if the value is bad. */
bool zrt_override_take(zrt_overrides *o, int c, const char *arg);
/* Parses argv (options only) into o. Returns -1 to go on, or the exit code
 * (0 after --help, 2 after a usage error, which it prints). */
int zrt_overrides_parse(int argc, char **argv, const char *command, const char *usage, zrt_overrides *o);
/* Loads the config and applies the overrides in order, then validates.
 * ZRT_ERR_CONFIG (message in zrt_last_error) on failure; with no --config
 * the caller prints the usage. */
zrt_status zrt_overrides_load(const zrt_overrides *o, zrt_config *cfg);

#endif
