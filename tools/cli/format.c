/* format.c: byte counts for people, JSON lines for programs, error lines
 * without doubled prefixes (see format.h). */
#include "format.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *zrt_fmt_bytes(double bytes, char *buf, size_t size)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int u = 0;
    double v = bytes;
    while ((v >= 1024 || v <= -1024) && u < 5) {
        v /= 1024;
        u++;
    }
    if (u == 0) snprintf(buf, size, "%.0f B", v);
    else snprintf(buf, size, "%.*f %s", v >= 100 || v <= -100 ? 0 : v >= 10 || v <= -10 ? 1 : 2, v, units[u]);
    return buf;
}

static cJSON *json_value(zrt_json_value v)
{
    switch (v.type) {
    case 's': return v.s ? cJSON_CreateString(v.s) : cJSON_CreateNull();
    case 'b': return cJSON_CreateBool(v.b);
    case 'n': return v.node ? v.node : cJSON_CreateNull();
    default: return cJSON_CreateNumber(v.d);
    }
}

static cJSON *object_from(const char *key, va_list ap)
{
    cJSON *obj = cJSON_CreateObject();
    for (; key; key = va_arg(ap, const char *)) {
        cJSON *value = json_value(va_arg(ap, zrt_json_value));
        if (obj && value) cJSON_AddItemToObject(obj, key, value);
        else cJSON_Delete(value);
    }
    return obj;
}

cJSON *zrt_json_object(const char *key, ...)
{
    va_list ap;
    va_start(ap, key);
    cJSON *obj = object_from(key, ap);
    va_end(ap);
    return obj;
}

/* cJSON's one-line text with a space after each ':' and ',' outside strings
 * ({"a": 1, "b": "x,y"}), as zrt's lines always looked. */
static void put_spaced(const char *text)
{
    bool in_string = false;
    for (const char *c = text; *c; c++) {
        putchar(*c);
        if (in_string && *c == '\\' && c[1]) putchar(*++c);
        else if (*c == '"') in_string = !in_string;
        else if (!in_string && (*c == ':' || *c == ',')) putchar(' ');
    }
    putchar('\n');
}

void zrt_json_print(cJSON *obj)
{
    char *text = obj ? cJSON_PrintUnformatted(obj) : NULL;
    put_spaced(text ? text : "null");
    cJSON_free(text);
    cJSON_Delete(obj);
}

void zrt_json_line(const char *key, ...)
{
    va_list ap;
    va_start(ap, key);
    zrt_json_print(object_from(key, ap));
    va_end(ap);
}

int zrt_cli_fail(const char *command, const char *message)
{
    const char *word = strrchr(command, ' ');
    word = word ? word + 1 : command;
    size_t n = strlen(word);
    if (strncmp(message, word, n) == 0 && strncmp(message + n, ": ", 2) == 0) message += n + 2;
    fprintf(stderr, "zrt %s: %s\n", command, message);
    return 1;
}
