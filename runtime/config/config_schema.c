/* config_schema.c: walks a config tree against a table of keys, and dumps
 * the struct back as JSON with the same tables.
 *
 * Why tables: each key is written once (name, type, where it lives, bounds,
 * allowed names), and both loading and `zrt config show` follow it, so they
 * cannot drift. Value rules, the same for YAML and JSON:
 *  - integers: 42, "42", 5e8 (integral), within the field's bounds and int64;
 *  - booleans: true/false, or the strings true/false/yes/no/on/off;
 *  - enums: one of the names, case-insensitive;
 *  - null leaves the default; "auto" is accepted where DeepSpeed/HF accept it.
 * Every error names the dotted key, the value and what was expected.
 */
#include "config_internal.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define KEY_MAX 256

typedef struct {
    zrt_config *cfg;
    zrt_cfg_errors *errs;
    const char *file;
} walker;

static void *field_ptr(zrt_config *cfg, const zrt_cfg_field *f) { return (char *)cfg + f->offset; }
static const void *field_cptr(const zrt_config *cfg, const zrt_cfg_field *f)
{
    return (const char *)cfg + f->offset;
}

static const char *kind_name(const cJSON *node)
{
    if (cJSON_IsObject(node)) return "a map";
    if (cJSON_IsArray(node)) return "a list";
    if (cJSON_IsBool(node)) return "a boolean";
    if (cJSON_IsNumber(node)) return "a number";
    if (cJSON_IsNull(node)) return "null";
    return "a string";
}

/* The value as the user wrote it, for messages (YAML scalars are all strings,
 * so strings are shown bare: `4 is not one of 0, 1, 2, 3`). */
static void value_text(const cJSON *node, char *out, size_t size)
{
    if (cJSON_IsString(node) && node->valuestring[0] == '\0') snprintf(out, size, "\"\"");
    else if (cJSON_IsString(node)) snprintf(out, size, "%.60s", node->valuestring);
    else if (cJSON_IsNumber(node)) snprintf(out, size, "%.17g", node->valuedouble);
    else if (cJSON_IsBool(node)) snprintf(out, size, "%s", cJSON_IsTrue(node) ? "true" : "false");
    else snprintf(out, size, "%s", kind_name(node));
}

static bool is_auto(const cJSON *node)
{
    return cJSON_IsString(node) && strcmp(node->valuestring, "auto") == 0;
}

/* A number from a number node or a numeric string; false if neither. */
static bool read_number(const cJSON *node, double *out)
{
    if (cJSON_IsNumber(node)) {
        *out = node->valuedouble;
        return true;
    }
    if (!cJSON_IsString(node) || node->valuestring[0] == '\0') return false;
    char *end;
    errno = 0;
    double v = strtod(node->valuestring, &end);
    if (*end != '\0' || end == node->valuestring) return false;
    *out = v;
    return true;
}

static void bad(walker *w, const char *key, const cJSON *node, const char *expected)
{
    char value[96];
    value_text(node, value, sizeof value);
    zrt_cfg_error(w->errs, w->file, key, "%s is not %s", value, expected);
}

static void out_of_range(walker *w, const char *key, const cJSON *node, const zrt_cfg_field *f)
{
    char value[96], range[96];
    value_text(node, value, sizeof value);
    if (f->max >= 9.2e18) snprintf(range, sizeof range, ">= %.17g", f->min);
    else snprintf(range, sizeof range, "between %.17g and %.17g", f->min, f->max);
    zrt_cfg_error(w->errs, w->file, key, "%s is out of range (expected %s)", value, range);
}

static void set_int(walker *w, const zrt_cfg_field *f, const char *key, const cJSON *node)
{
    int64_t v;
    if (cJSON_IsString(node)) {
        char *end;
        errno = 0;
        long long parsed = strtoll(node->valuestring, &end, 10);
        if (end != node->valuestring && *end == '\0') {
            if (errno == ERANGE) {
                bad(w, key, node, "a 64-bit integer (it overflows)");
                return;
            }
            v = parsed;
            goto check;
        }
    }
    double d;
    if (!read_number(node, &d)) {
        bad(w, key, node, "an integer");
        return;
    }
    if (!isfinite(d) || d >= 9223372036854775808.0 || d < -9223372036854775808.0) {
        bad(w, key, node, "a 64-bit integer (it overflows)");
        return;
    }
    if (d != floor(d)) {
        bad(w, key, node, "an integer");
        return;
    }
    v = (int64_t)d;
check:
    if ((double)v < f->min || (double)v > f->max) {
        out_of_range(w, key, node, f);
        return;
    }
    *(int64_t *)field_ptr(w->cfg, f) = v;
}

static void set_double(walker *w, const zrt_cfg_field *f, const char *key, const cJSON *node)
{
    double d;
    if (!read_number(node, &d) || !isfinite(d)) {
        bad(w, key, node, "a finite number");
        return;
    }
    if (d < f->min || d > f->max) {
        out_of_range(w, key, node, f);
        return;
    }
    *(double *)field_ptr(w->cfg, f) = d;
}

static void set_bool(walker *w, const zrt_cfg_field *f, const char *key, const cJSON *node)
{
    static const char *const yes[] = {"true", "yes", "on", NULL};
    static const char *const no[] = {"false", "no", "off", NULL};
    bool *out = field_ptr(w->cfg, f);
    if (cJSON_IsBool(node)) {
        *out = cJSON_IsTrue(node);
        return;
    }
    if (cJSON_IsString(node)) {
        for (int i = 0; yes[i]; i++) {
            if (strcasecmp(node->valuestring, yes[i]) == 0) { *out = true; return; }
            if (strcasecmp(node->valuestring, no[i]) == 0) { *out = false; return; }
        }
    }
    bad(w, key, node, "a boolean (true or false)");
}

static void set_string_to(walker *w, const char *key, const cJSON *node, char *out, size_t size)
{
    if (!cJSON_IsString(node)) {
        bad(w, key, node, "a string");
        return;
    }
    size_t len = strlen(node->valuestring);
    if (len >= size) {
        zrt_cfg_error(w->errs, w->file, key, "a string of %zu bytes is longer than the limit of %zu",
                      len, size - 1);
        return;
    }
    memcpy(out, node->valuestring, len + 1);
}

static void set_enum(walker *w, const zrt_cfg_field *f, const char *key, const cJSON *node)
{
    char text[64] = "";
    if (cJSON_IsString(node)) snprintf(text, sizeof text, "%s", node->valuestring);
    else if (cJSON_IsNumber(node)) snprintf(text, sizeof text, "%.17g", node->valuedouble);
    for (int i = 0; text[0] && f->names[i]; i++) {
        if (strcasecmp(text, f->names[i]) == 0) {
            *(int *)field_ptr(w->cfg, f) = i;
            return;
        }
    }
    char expected[256] = "one of ";
    for (int i = 0; f->names[i]; i++) {
        strncat(expected, f->names[i], sizeof expected - strlen(expected) - 3);
        if (f->names[i + 1]) strcat(expected, ", ");
    }
    bad(w, key, node, expected);
}

static void set_paths(walker *w, const zrt_cfg_field *f, const char *key, const cJSON *node)
{
    zrt_offload_config *off = field_ptr(w->cfg, f);
    if (cJSON_IsString(node)) {
        off->n_nvme_paths = 0;
        set_string_to(w, key, node, off->nvme_paths[0], ZRT_PATH_MAX);
        off->n_nvme_paths = off->nvme_paths[0][0] ? 1 : 0;
        return;
    }
    int n = cJSON_GetArraySize(node);
    if (!cJSON_IsArray(node) || n == 0 || n > ZRT_MAX_NVME_PATHS) {
        bad(w, key, node, "a path or a list of 1 to 8 paths");
        return;
    }
    for (int i = 0; i < n; i++) {
        char item_key[KEY_MAX + 16];
        snprintf(item_key, sizeof item_key, "%s[%d]", key, i);
        off->nvme_paths[i][0] = '\0';
        set_string_to(w, item_key, cJSON_GetArrayItem(node, i), off->nvme_paths[i], ZRT_PATH_MAX);
        if (off->nvme_paths[i][0] == '\0') return;
    }
    off->n_nvme_paths = n;
}

static void set_pair(walker *w, const zrt_cfg_field *f, const char *key, const cJSON *node)
{
    double a, b;
    if (!cJSON_IsArray(node) || cJSON_GetArraySize(node) != 2 ||
        !read_number(cJSON_GetArrayItem(node, 0), &a) || !read_number(cJSON_GetArrayItem(node, 1), &b)) {
        bad(w, key, node, "a list of two numbers");
        return;
    }
    if (a < f->min || a > f->max || b < f->min || b > f->max) {
        zrt_cfg_error(w->errs, w->file, key, "[%g, %g] is out of range (each between %g and %g)", a, b,
                      f->min, f->max);
        return;
    }
    double *out = field_ptr(w->cfg, f);
    out[0] = a;
    out[1] = b;
}

static bool is_off(const cJSON *node)
{
    return cJSON_IsNull(node) || cJSON_IsFalse(node) || (cJSON_IsNumber(node) && node->valuedouble == 0) ||
           (cJSON_IsString(node) && (strcasecmp(node->valuestring, "false") == 0 ||
                                     strcasecmp(node->valuestring, "no") == 0));
}

static void set_field(walker *w, const zrt_cfg_field *f, const char *key, const cJSON *node)
{
    if (f->type == ZRT_FT_UNSUPPORTED && !is_off(node)) {
        if (f->why) zrt_cfg_error(w->errs, w->file, key, "is not supported: %s", f->why);
        else zrt_cfg_error(w->errs, w->file, key, "is a DeepSpeed option that zrt does not support");
        return;
    }
    if (f->type == ZRT_FT_IGNORE || f->type == ZRT_FT_UNSUPPORTED || cJSON_IsNull(node)) return;
    if (is_auto(node) && (f->flags & ZRT_CFG_AUTO_KEEP)) return;
    if (is_auto(node) && (f->flags & ZRT_CFG_AUTO_NAN)) {
        *(double *)field_ptr(w->cfg, f) = NAN;
        return;
    }
    switch (f->type) {
    case ZRT_FT_BOOL: set_bool(w, f, key, node); break;
    case ZRT_FT_INT: set_int(w, f, key, node); break;
    case ZRT_FT_DOUBLE: set_double(w, f, key, node); break;
    case ZRT_FT_STRING: set_string_to(w, key, node, field_ptr(w->cfg, f), f->size); break;
    case ZRT_FT_ENUM: set_enum(w, f, key, node); break;
    case ZRT_FT_PATHS: set_paths(w, f, key, node); break;
    case ZRT_FT_PAIR: set_pair(w, f, key, node); break;
    case ZRT_FT_SECTION:
        zrt_cfg_walk(w->cfg, w->errs, w->file, f->section, node, key);
        break;
    case ZRT_FT_IGNORE:
    case ZRT_FT_UNSUPPORTED: break;
    }
}

static const zrt_cfg_field *find_field(const zrt_cfg_section *sec, const char *key)
{
    for (const zrt_cfg_field *f = sec->fields; f->key; f++) {
        size_t len = strlen(f->key);
        if (len > 0 && f->key[len - 1] == '*') {
            if (strncmp(key, f->key, len - 1) == 0) return f;
        } else if (strcmp(key, f->key) == 0) {
            return f;
        }
    }
    return NULL;
}

static bool seen_before(const cJSON *obj, const cJSON *item)
{
    for (const cJSON *c = obj->child; c != item; c = c->next)
        if (strcmp(c->string, item->string) == 0) return true;
    return false;
}

void zrt_cfg_walk(zrt_config *cfg, zrt_cfg_errors *errs, const char *file,
                  const zrt_cfg_section *sec, const cJSON *obj, const char *prefix)
{
    walker w = {cfg, errs, file};
    if (!cJSON_IsObject(obj)) {
        zrt_cfg_error(errs, file, prefix, "expected a map of keys, got %s", kind_name(obj));
        return;
    }
    for (const cJSON *item = obj->child; item; item = item->next) {
        char key[KEY_MAX];
        snprintf(key, sizeof key, "%s%s%s", prefix, prefix[0] ? "." : "", item->string);
        if (seen_before(obj, item)) {
            zrt_cfg_error(errs, file, key, "duplicate key");
            continue;
        }
        const zrt_cfg_field *f = find_field(sec, item->string);
        if (f && sec->given_offset && !cJSON_IsNull(item))
            *(uint64_t *)((char *)cfg + sec->given_offset) |= (uint64_t)1 << (f - sec->fields);
        if (f) set_field(&w, f, key, item);
        else if (sec->unknown_is_error) zrt_cfg_error(errs, file, key, "unknown key");
        else zrt_cfg_warn(cfg, file, key, "unknown key, ignored");
    }
}

/* ---- dump ------------------------------------------------------------------ */

static cJSON *dump_int(int64_t v)
{
    char text[32];
    snprintf(text, sizeof text, "%lld", (long long)v);
    return cJSON_CreateRaw(text);
}

static cJSON *dump_paths(const zrt_offload_config *off)
{
    if (off->n_nvme_paths == 0) return cJSON_CreateNull();
    if (off->n_nvme_paths == 1) return cJSON_CreateString(off->nvme_paths[0]);
    cJSON *list = cJSON_CreateArray();
    for (int i = 0; list && i < off->n_nvme_paths; i++)
        cJSON_AddItemToArray(list, cJSON_CreateString(off->nvme_paths[i]));
    return list;
}

static cJSON *dump_field(const zrt_config *cfg, const zrt_cfg_field *f)
{
    const void *p = field_cptr(cfg, f);
    switch (f->type) {
    case ZRT_FT_BOOL: return cJSON_CreateBool(*(const bool *)p);
    case ZRT_FT_INT: return dump_int(*(const int64_t *)p);
    case ZRT_FT_DOUBLE: return cJSON_CreateNumber(*(const double *)p);
    case ZRT_FT_STRING: return cJSON_CreateString((const char *)p);
    case ZRT_FT_ENUM: {
        const char *name = f->names[*(const int *)p];
        bool numeric = name[strspn(name, "0123456789")] == '\0';
        return numeric ? dump_int(*(const int *)p) : cJSON_CreateString(name);
    }
    case ZRT_FT_PATHS: return dump_paths(p);
    case ZRT_FT_PAIR: return cJSON_CreateDoubleArray(p, 2);
    case ZRT_FT_SECTION: return zrt_cfg_dump(cfg, f->section);
    case ZRT_FT_IGNORE:
    case ZRT_FT_UNSUPPORTED: return NULL;
    }
    return NULL;
}

cJSON *zrt_cfg_dump(const zrt_config *cfg, const zrt_cfg_section *sec)
{
    cJSON *obj = cJSON_CreateObject();
    for (const zrt_cfg_field *f = sec->fields; obj && f->key; f++) {
        if (f->type == ZRT_FT_IGNORE || f->type == ZRT_FT_UNSUPPORTED || (f->flags & ZRT_CFG_NO_DUMP))
            continue;
        cJSON *value = dump_field(cfg, f);
        if (!value) {
            cJSON_Delete(obj);
            return NULL;
        }
        cJSON_AddItemToObject(obj, f->key, value);
    }
    return obj;
}

/* ---- messages -------------------------------------------------------------- */

static void append_line(char *buf, size_t size, const char *file, const char *key,
                        const char *fmt, va_list ap)
{
    size_t used = strlen(buf);
    if (used + 1 >= size) return;
    snprintf(buf + used, size - used, "%s: ", file);
    used = strlen(buf); /* what was written, not what snprintf would have liked to (a full buffer cuts it) */
    if (key && key[0] && used + 1 < size) snprintf(buf + used, size - used, "%s: ", key);
    used = strlen(buf);
    if (used + 1 < size) vsnprintf(buf + used, size - used, fmt, ap);
    used = strlen(buf);
    if (used + 1 < size) {
        buf[used] = '\n';
        buf[used + 1] = '\0';
    }
}

void zrt_cfg_error(zrt_cfg_errors *errs, const char *file, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    append_line(errs->text, sizeof errs->text, file, key, fmt, ap);
    va_end(ap);
    errs->count++;
}

void zrt_cfg_error_at(zrt_cfg_errors *errs, const char *file, size_t line, size_t column, const char *fmt, ...)
{
    char where[ZRT_PATH_MAX + 48];
    snprintf(where, sizeof where, "%s:%zu:%zu", file, line, column);
    va_list ap;
    va_start(ap, fmt);
    append_line(errs->text, sizeof errs->text, where, NULL, fmt, ap);
    va_end(ap);
    errs->count++;
}

void zrt_cfg_warn(zrt_config *cfg, const char *file, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    append_line(cfg->warnings, sizeof cfg->warnings, file, key, fmt, ap);
    va_end(ap);
}
