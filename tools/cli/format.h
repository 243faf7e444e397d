/* format.h: how the zrt subcommands print for people and for programs
 * (format.c). Private to tools/.
 *
 * Why one place: byte counts read by people are printed the same way
 * everywhere (KiB/MiB/GiB, the exact count beside them where it matters),
 * and every --json line is built with cJSON, so a path or a name holding a
 * quote, a backslash, a newline or non-ASCII still gives valid JSON.
 */
#ifndef ZRT_TOOLS_FORMAT_H
#define ZRT_TOOLS_FORMAT_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* bytes as "512 B", "3.0 KiB", "2.91 MiB", "1.50 GiB" (binary units, 3
 * significant digits) in buf; returns buf. */
const char *zrt_fmt_bytes(double bytes, char *buf, size_t size);

/* One value of a JSON line: ZJ_STR("x"), ZJ_INT(n), ZJ_NUM(x), ZJ_BOOL(b),
 * ZJ_NODE(cJSON *) (taken over). */
typedef struct {
    char type;
    const char *s;
    double d;
    bool b;
    cJSON *node;
} zrt_json_value;
#define ZJ_STR(x) ((zrt_json_value){.type = 's', .s = (x)})
#define ZJ_INT(x) ((zrt_json_value){.type = 'd', .d = (double)(x)})
#define ZJ_NUM(x) ((zrt_json_value){.type = 'd', .d = (double)(x)})
#define ZJ_BOOL(x) ((zrt_json_value){.type = 'b', .b = (x)})
#define ZJ_NODE(x) ((zrt_json_value){.type = 'n', .node = (x)})

/* An object of key, value pairs ending with a NULL key:
 * zrt_json_object("name", ZJ_STR(n), "step", ZJ_INT(s), NULL). */
cJSON *zrt_json_object(const char *key, ...);
/* Prints obj as one line on stdout and frees it. */
void zrt_json_print(cJSON *obj);
/* zrt_json_print(zrt_json_object(key, ...)). */
void zrt_json_line(const char *key, ...);

/* Prints "zrt COMMAND: MESSAGE" to stderr -- MESSAGE without a leading
 * "WORD: " that repeats COMMAND's last word, so a library error that names
 * its part ("agent: ...") is not prefixed twice -- and returns 1. */
int zrt_cli_fail(const char *command, const char *message);

#endif
