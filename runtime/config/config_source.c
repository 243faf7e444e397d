/* config_source.c: a config file on disk -> a cJSON tree, or an error with
 * file:line:column.
 *
 * Why one tree type for both formats: the schema walker (config_schema.c)
 * then checks YAML and JSON with the same code. YAML is read through
 * libyaml's event parser; every YAML scalar becomes a cJSON string (a plain
 * `~`, `null` or empty scalar becomes null), so `no` and 'no' are the same
 * string, and the walker converts strings to numbers and booleans by key.
 * Invariants: the whole file is checked for valid UTF-8 and NUL bytes first;
 * nesting is bounded (no stack overflow from a hostile file); YAML aliases
 * and non-scalar keys are refused by name.
 */
#include "config_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <yaml.h>

#define MAX_CONFIG_BYTES (16 << 20)
#define MAX_YAML_DEPTH 64

/* Line and column (both from 1) of byte offset in text. */
static void line_col(const char *text, size_t offset, size_t *line, size_t *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < offset; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static size_t utf8_sequence(const unsigned char *s, size_t n)
{
    size_t len;
    unsigned min;
    unsigned cp;
    if (s[0] < 0x80) return 1;
    if ((s[0] & 0xE0) == 0xC0) { len = 2; min = 0x80; cp = s[0] & 0x1F; }
    else if ((s[0] & 0xF0) == 0xE0) { len = 3; min = 0x800; cp = s[0] & 0x0F; }
    else if ((s[0] & 0xF8) == 0xF0) { len = 4; min = 0x10000; cp = s[0] & 0x07; }
    else return 0;
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

static bool check_text(const char *path, const char *text, size_t len, zrt_cfg_errors *errs)
{
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        size_t step = s[i] == 0 ? 0 : utf8_sequence(s + i, len - i);
        if (step == 0) {
            size_t line, col;
            line_col(text, i, &line, &col);
            if (s[i] == 0) zrt_cfg_error_at(errs, path, line, col, "NUL byte in a text file");
            else zrt_cfg_error_at(errs, path, line, col, "invalid UTF-8 (byte 0x%02x)", s[i]);
            return false;
        }
        i += step;
    }
    return true;
}

/* Reads the whole file into a NUL-terminated heap buffer. */
static char *read_file(const char *path, size_t *len, zrt_cfg_errors *errs)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        zrt_cfg_error(errs, path, NULL, "cannot open: %s", strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        zrt_cfg_error(errs, path, NULL, "not a regular file");
        fclose(f);
        return NULL;
    }
    if (st.st_size > MAX_CONFIG_BYTES) {
        zrt_cfg_error(errs, path, NULL, "%lld bytes is too large for a config (limit %d)",
                      (long long)st.st_size, MAX_CONFIG_BYTES);
        fclose(f);
        return NULL;
    }
    char *text = malloc((size_t)st.st_size + 1);
    size_t got = text ? fread(text, 1, (size_t)st.st_size, f) : 0;
    bool ok = text && !ferror(f);
    fclose(f);
    if (!ok) {
        zrt_cfg_error(errs, path, NULL, text ? "read failed" : "out of memory");
        free(text);
        return NULL;
    }
    text[got] = '\0';
    *len = got;
    return text;
}

zrt_cfg_format zrt_cfg_guess_format(const char *path, const char *text, size_t len)
{
    const char *dot = strrchr(path, '.');
    if (dot && strcasecmp(dot, ".json") == 0) return ZRT_CFG_JSON;
    if (dot && (strcasecmp(dot, ".yaml") == 0 || strcasecmp(dot, ".yml") == 0)) return ZRT_CFG_YAML;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n') continue;
        return text[i] == '{' ? ZRT_CFG_JSON : ZRT_CFG_YAML;
    }
    return ZRT_CFG_YAML;
}

/* ---- JSON ------------------------------------------------------------------ */

static cJSON *parse_json(const char *path, const char *text, size_t len, zrt_cfg_errors *errs)
{
    const char *end = NULL;
    cJSON *tree = cJSON_ParseWithLengthOpts(text, len + 1, &end, 1);
    if (tree) return tree;
    size_t offset = end && end >= text && end <= text + len ? (size_t)(end - text) : len;
    size_t line, col;
    line_col(text, offset, &line, &col);
    if (offset >= len) {
        zrt_cfg_error_at(errs, path, line, col, "JSON syntax error: unexpected end of file");
    } else {
        char near[24];
        size_t n = strcspn(text + offset, "\r\n");
        if (n > sizeof near - 1) n = sizeof near - 1;
        memcpy(near, text + offset, n);
        near[n] = '\0';
        zrt_cfg_error_at(errs, path, line, col, "JSON syntax error near '%s'", near);
    }
    return NULL;
}

/* ---- YAML ------------------------------------------------------------------ */

typedef struct {
    yaml_parser_t parser;
    const char *path;
    zrt_cfg_errors *errs;
    bool failed;
} yaml_reader;

static void yaml_fail_at(yaml_reader *r, yaml_mark_t mark, const char *what)
{
    if (!r->failed) zrt_cfg_error_at(r->errs, r->path, mark.line + 1, mark.column + 1, "%s", what);
    r->failed = true;
}

static bool next_event(yaml_reader *r, yaml_event_t *ev)
{
    if (yaml_parser_parse(&r->parser, ev)) return true;
    char what[256];
    snprintf(what, sizeof what, "YAML syntax error: %s%s%s",
             r->parser.problem ? r->parser.problem : "unknown problem",
             r->parser.context ? " " : "", r->parser.context ? r->parser.context : "");
    yaml_fail_at(r, r->parser.problem_mark, what);
    return false;
}

static cJSON *yaml_scalar(const yaml_event_t *ev)
{
    const char *value = (const char *)ev->data.scalar.value;
    if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
        (value[0] == '\0' || strcmp(value, "~") == 0 || strcmp(value, "null") == 0 ||
         strcmp(value, "Null") == 0 || strcmp(value, "NULL") == 0))
        return cJSON_CreateNull();
    return cJSON_CreateString(value);
}

static cJSON *yaml_node(yaml_reader *r, yaml_event_t *ev, int depth);

/* Reads the items of a mapping or sequence until its end event. */
static cJSON *yaml_collection(yaml_reader *r, bool is_map, int depth)
{
    cJSON *node = is_map ? cJSON_CreateObject() : cJSON_CreateArray();
    yaml_event_t ev;
    while (node && next_event(r, &ev)) {
        if (ev.type == YAML_MAPPING_END_EVENT || ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            return node;
        }
        char *key = NULL;
        if (is_map) {
            if (ev.type != YAML_SCALAR_EVENT) {
                yaml_fail_at(r, ev.start_mark, "a map key must be a plain value, not a list or map");
                yaml_event_delete(&ev);
                break;
            }
            key = strdup((const char *)ev.data.scalar.value);
            yaml_event_delete(&ev);
            if (!key || !next_event(r, &ev)) {
                free(key);
                break;
            }
        }
        cJSON *child = yaml_node(r, &ev, depth + 1);
        yaml_event_delete(&ev);
        if (!child) {
            free(key);
            break;
        }
        if (is_map) cJSON_AddItemToObject(node, key, child);
        else cJSON_AddItemToArray(node, child);
        free(key);
    }
    cJSON_Delete(node);
    return NULL;
}

/* Builds the node that starts with ev (which the caller deletes). */
static cJSON *yaml_node(yaml_reader *r, yaml_event_t *ev, int depth)
{
    if (depth > MAX_YAML_DEPTH) {
        yaml_fail_at(r, ev->start_mark, "nested deeper than 64 levels");
        return NULL;
    }
    switch (ev->type) {
    case YAML_SCALAR_EVENT: return yaml_scalar(ev);
    case YAML_MAPPING_START_EVENT: return yaml_collection(r, true, depth);
    case YAML_SEQUENCE_START_EVENT: return yaml_collection(r, false, depth);
    case YAML_ALIAS_EVENT:
        yaml_fail_at(r, ev->start_mark, "YAML aliases (*name) are not supported in configs");
        return NULL;
    default:
        yaml_fail_at(r, ev->start_mark, "unexpected YAML event");
        return NULL;
    }
}

/* Skips to the first document's root node and builds it. */
static cJSON *parse_yaml(const char *path, const char *text, size_t len, zrt_cfg_errors *errs)
{
    yaml_reader r = {.path = path, .errs = errs};
    if (!yaml_parser_initialize(&r.parser)) {
        zrt_cfg_error(errs, path, NULL, "out of memory");
        return NULL;
    }
    yaml_parser_set_input_string(&r.parser, (const unsigned char *)text, len);
    cJSON *root = NULL;
    yaml_event_t ev;
    while (!root && !r.failed && next_event(&r, &ev)) {
        yaml_event_type_t type = ev.type;
        if (type == YAML_STREAM_START_EVENT || type == YAML_DOCUMENT_START_EVENT) {
            yaml_event_delete(&ev);
            continue;
        }
        if (type == YAML_STREAM_END_EVENT) {
            zrt_cfg_error(errs, path, NULL, "the file is empty");
            yaml_event_delete(&ev);
            break;
        }
        root = yaml_node(&r, &ev, 0);
        yaml_event_delete(&ev);
        if (!root && !r.failed) zrt_cfg_error(errs, path, NULL, "out of memory");
        if (!root) break;
    }
    /* The rest of the stream must still be well formed: a syntax error after
     * the first document is an error too. */
    while (root && next_event(&r, &ev)) {
        bool end = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
        if (end) break;
    }
    if (r.failed) {
        cJSON_Delete(root);
        root = NULL;
    }
    yaml_parser_delete(&r.parser);
    return root;
}

cJSON *zrt_cfg_read_tree(const char *path, zrt_cfg_format *format, zrt_cfg_errors *errs)
{
    size_t len = 0;
    char *text = read_file(path, &len, errs);
    if (!text) return NULL;
    cJSON *tree = NULL;
    if (check_text(path, text, len, errs)) {
        *format = zrt_cfg_guess_format(path, text, len);
        tree = *format == ZRT_CFG_JSON ? parse_json(path, text, len, errs)
                                       : parse_yaml(path, text, len, errs);
    }
    free(text);
    if (tree && !cJSON_IsObject(tree)) {
        zrt_cfg_error(errs, path, NULL, "expected a map of keys at the top level, got %s",
                      cJSON_IsArray(tree) ? "a list" : "a single value");
        cJSON_Delete(tree);
        tree = NULL;
    }
    return tree;
}
