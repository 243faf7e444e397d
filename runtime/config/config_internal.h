/* config_internal.h: the pieces of the config loader, shared by its files.
 *
 * Why split: config_source.c turns a file into a tree (YAML through libyaml
 * events, JSON through cJSON; both end as cJSON nodes, YAML scalars as
 * strings), config_schema.c walks a tree against a table of keys and writes
 * the struct (and dumps the struct back as JSON), config_fields.c holds the
 * tables, config.c orders it all and checks the rules that span keys.
 */
#ifndef ZRT_CONFIG_INTERNAL_H
#define ZRT_CONFIG_INTERNAL_H


#include "zrt.h"

#include <cjson/cJSON.h>
#include <stddef.h>

/* ---- collected errors: every problem, one per line ------------------------ */

typedef struct {
    char text[ZRT_ERROR_MAX];
    int count;
} zrt_cfg_errors;

/* Appends "FILE: KEY: MESSAGE" (or "FILE: MESSAGE" when key is NULL or ""). */
void zrt_cfg_error(zrt_cfg_errors *errs, const char *file, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Appends "FILE:LINE:COLUMN: MESSAGE" (syntax and encoding errors). */
void zrt_cfg_error_at(zrt_cfg_errors *errs, const char *file, size_t line, size_t column, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Appends the same shape of line to cfg->warnings (silently bounded). */
void zrt_cfg_warn(zrt_config *cfg, const char *file, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- sources ---------------------------------------------------------------- */

typedef enum { ZRT_CFG_YAML, ZRT_CFG_JSON } zrt_cfg_format;

/* The format of path: by extension, else '{' as first non-space byte = JSON. */
zrt_cfg_format zrt_cfg_guess_format(const char *path, const char *text, size_t len);

/* Reads path and parses it into *tree (the caller cJSON_Delete()s it). On
 * failure appends an error naming the file (and line:column for syntax or
 * UTF-8 errors) and returns NULL. */
cJSON *zrt_cfg_read_tree(const char *path, zrt_cfg_format *format, zrt_cfg_errors *errs);

/* ---- schema ------------------------------------------------------------------ */

typedef enum {
    ZRT_FT_BOOL,
    ZRT_FT_INT,      /* int64_t */
    ZRT_FT_DOUBLE,
    ZRT_FT_STRING,   /* char[size] */
    ZRT_FT_ENUM,     /* int-sized enum; names[] index = value; case-insensitive */
    ZRT_FT_PATHS,    /* zrt_offload_config's nvme_paths: a string or a list of them */
    ZRT_FT_PAIR,     /* double[2] from a list of two numbers */
    ZRT_FT_IGNORE,   /* accepted, any value, not stored */
    ZRT_FT_UNSUPPORTED, /* a DeepSpeed key zrt lacks: an error unless false/0/null (saying `why` if set) */
    ZRT_FT_SECTION   /* a map walked with its own table */
} zrt_cfg_field_type;

enum {
    ZRT_CFG_AUTO_KEEP = 1 << 0, /* "auto" leaves the current value          */
    ZRT_CFG_AUTO_NAN = 1 << 1,  /* "auto" stores NAN: resolved later        */
    ZRT_CFG_NO_DUMP = 1 << 2,   /* an alias of a key dumped elsewhere       */
};

typedef struct zrt_cfg_section zrt_cfg_section;

typedef struct {
    const char *key;       /* a trailing '*' matches any key with that prefix */
    zrt_cfg_field_type type;
    size_t offset;         /* into zrt_config */
    size_t size;           /* ZRT_FT_STRING: buffer bytes */
    double min, max;       /* numbers: inclusive bounds */
    const char *const *names; /* ZRT_FT_ENUM: NULL-terminated */
    unsigned flags;
    const zrt_cfg_section *section; /* ZRT_FT_SECTION */
    const char *why;       /* ZRT_FT_UNSUPPORTED: the reason and the alternative, or NULL */
} zrt_cfg_field;

struct zrt_cfg_section {
    const zrt_cfg_field *fields; /* ends with a {NULL} entry */
    bool unknown_is_error;       /* else a warning (Accelerate passes them on) */
    size_t given_offset;         /* 0, or a uint64_t in zrt_config: bit i set when fields[i] was given */
};

extern const zrt_cfg_section zrt_cfg_accelerate;  /* an Accelerate YAML file  */
extern const zrt_cfg_section zrt_cfg_deepspeed;   /* a DeepSpeed JSON file    */
extern const zrt_cfg_section zrt_cfg_zrt;         /* the zrt: section         */
extern const zrt_cfg_section zrt_cfg_yaml_deepspeed; /* Accelerate's deepspeed_config: */

/* Walks obj (must be a map) against sec, storing values into cfg. Problems go
 * to errs as "file: dotted.key: ..."; prefix is the dotted path of obj ("" at
 * the top). Walking goes on after an error so that all of them are listed. */
void zrt_cfg_walk(zrt_config *cfg, zrt_cfg_errors *errs, const char *file,
                  const zrt_cfg_section *sec, const cJSON *obj, const char *prefix);

/* The values of sec's fields as a JSON object (NULL on allocation failure). */
cJSON *zrt_cfg_dump(const zrt_config *cfg, const zrt_cfg_section *sec);

/* ---- checks across keys (config_checks.c) -------------------------------- */

/* The file the DeepSpeed keys came from (the JSON if there is one), and the
 * one zrt's own keys came from (NAME.zrt.yaml if it was read). */
const char *zrt_cfg_deepspeed_file(const zrt_config *cfg);
const char *zrt_cfg_zrt_file(const zrt_config *cfg);
/* Everything the start of training would refuse that needs no rank: files
 * the config names, settings the engine or the data cannot honour, values
 * parsed but not implemented (offload_optimizer.ratio below 1). */
void zrt_cfg_check_start(const zrt_config *cfg, zrt_cfg_errors *errs);

/* Whether a configuration file set zrt.model.KEY / zrt.KEY (their given masks). */
bool zrt_cfg_model_given(const zrt_config *cfg, const char *key);
bool zrt_cfg_zrt_given(const zrt_config *cfg, const char *key);

/* ---- Hugging Face's config.json (config_hf.c) ------------------------------- */

/* For zrt.model.type llama: reads zrt.model.hf_config, or init_from's
 * config.json when init_from is a directory holding one, and fills the
 * shape from it (keys the file set must agree); refuses by name what zrt
 * does not implement. Then the Llama defaults (rope_theta 10000, norm_eps
 * 1e-6) and the Llama rules (hidden required). */
void zrt_cfg_hf_llama(zrt_config *cfg, zrt_cfg_errors *errs);
/* Removes from a dumped zrt section's model the keys only a llama reads,
 * when the model is another type (the config refuses them given there),
 * and rope_scaling when there is none: the dump loads back. */
void zrt_cfg_hf_dump_prune(const zrt_config *cfg, cJSON *zrt_section);

/* The enum name tables, shared with config.c's *_name() functions. */
extern const char *const zrt_cfg_precision_names[];
extern const char *const zrt_cfg_offload_names[];

#endif
