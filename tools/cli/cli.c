/* cli.c: option and message helpers shared by the zrt subcommands (see cli.h). */
#include "cli.h"
#include "zrt/internal/knobs.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void zrt_cli_normalize_options(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) return;
        if (strncmp(argv[i], "--", 2) != 0) continue;
        for (char *p = argv[i] + 2; *p && *p != '='; p++)
            if (*p == '_') *p = '-';
    }
}

int zrt_cli_next_option(int argc, char **argv, const struct option *options, const char *command)
{
    return zrt_cli_next_option_short(argc, argv, ":h", options, command);
}

int zrt_cli_next_option_short(int argc, char **argv, const char *shorts, const struct option *options,
                              const char *command)
{
    opterr = 0;
    int c = getopt_long(argc, argv, shorts, options, NULL);
    if (c != '?' && c != ':') return c;
    /* getopt_long has stepped past the offending element (and permuted argv). */
    const char *arg = optind > 0 && optind - 1 < argc ? argv[optind - 1] : "?";
    if (c == ':') zrt_cli_usage_error(command, "option %s needs a value", arg);
    else zrt_cli_usage_error(command, "unknown option %s (see zrt %s --help)", arg, command);
    return '?';
}

int zrt_cli_usage_error(const char *command, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "zrt %s: ", command);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return ZRT_EXIT_USAGE;
}

void zrt_cli_print_warnings(const char *text)
{
    while (text && *text) {
        size_t len = strcspn(text, "\n");
        fprintf(stderr, "zrt: warning: %.*s\n", (int)len, text);
        text += len + (text[len] == '\n');
    }
}

const char *zrt_cli_option_name(const struct option *options, int val)
{
    static char name[64];
    for (const struct option *o = options; o->name; o++) {
        if (o->val != val) continue;
        snprintf(name, sizeof name, "--%s", o->name);
        return name;
    }
    return "?";
}

const char *zrt_cli_self_exe(char *buf, size_t size)
{
    ssize_t n = readlink("/proc/self/exe", buf, size - 1);
    if (n <= 0) return "/proc/self/exe"; /* still names this binary, for exec */
    buf[n] = '\0';
    return buf;
}

const char *zrt_cli_blas_core_origin(void)
{
    const char *set = getenv("OPENBLAS_CORETYPE"), *by_zrt = zrt_knob_set(ZRT_KNOB_OPENBLAS_CORETYPE);
    if (!set) return "";
    return by_zrt && strcmp(set, by_zrt) == 0 ? " (chosen by zrt for this CPU)" : " ($OPENBLAS_CORETYPE)";
}

const char *zrt_cli_source_path(const char *rel, char *buf, size_t size)
{
    char exe[1024] = {0};
    const char *src = zrt_knob_set(ZRT_KNOB_SOURCE_DIR);
    if (src) snprintf(buf, size, "%s/%s", src, rel);
    else if (readlink("/proc/self/exe", exe, sizeof exe - 1) > 0 && strstr(exe, "/build/"))
        snprintf(buf, size, "%.*s/%s", (int)(strstr(exe, "/build/") - exe), exe, rel);
    else snprintf(buf, size, "%s", rel);
    return buf;
}

bool zrt_cli_run_peer(const char *script, const char *args, const char *prefix, char *line, size_t size)
{
    char path[1200], cmd[6000];
    zrt_cli_source_path(script, path, sizeof path);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' %s 2>&1", path, args);
    FILE *p = popen(cmd, "r");
    bool found = false;
    line[0] = 0;
    while (p && !found && fgets(line, (int)size, p)) found = strncmp(line, prefix, strlen(prefix)) == 0;
    while (p && found && fgetc(p) != EOF) {} /* let it finish */
    int rc = p ? pclose(p) : -1;
    line[strcspn(line, "\n")] = 0;
    return found && rc == 0;
}

int64_t zrt_cli_data_bytes(const zrt_data *d)
{
    int64_t bytes = d->text ? d->text_len : 0;
    if (d->teacher) bytes += d->vocab * d->d_model * (int64_t)sizeof(float);
    if (d->successor) bytes += d->vocab * (int64_t)sizeof(int32_t);
    return bytes;
}
