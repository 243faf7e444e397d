/* cmd_plot.c: `zrt plot METRICS.jsonl -o loss.png`: the loss (and the
 * validation loss, where rows have val_loss) against the step, as a PNG.
 *
 * Why in zrt: the metrics file is the record of a run, and the question
 * asked of it most -- is the loss falling? -- should need no Python. Input
 * is zrt train's metrics file (zrt.metrics_file, or --metrics): one JSON
 * object per line with "step" and "loss" (null for a non-finite loss) and
 * optionally "val_loss". Bad input is refused naming the file and line.
 */
#include "cli.h"
#include "plot.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: zrt plot METRICS.jsonl -o PNG [--size WxH] [--title TEXT]\n"
    "\n"
    "Draws the loss against the step from zrt train's metrics file (zrt.metrics_file,\n"
    "one JSON line per step), and the validation loss where rows have val_loss.\n"
    "  -o, --output PNG   the picture to write\n"
    "  --size WxH         its size in pixels (default 900x540)\n"
    "  --title TEXT       its title (default: loss, METRICS.jsonl)\n";

/* A growing list of (step, value). */
typedef struct {
    double *x, *y;
    int n, cap;
} points;

static bool add_point(points *p, double x, double y)
{
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 256;
        double *nx = realloc(p->x, sizeof *nx * (size_t)cap);
        if (nx) p->x = nx;
        double *ny = nx ? realloc(p->y, sizeof *ny * (size_t)cap) : NULL;
        if (!ny) return false;
        p->y = ny;
        p->cap = cap;
    }
    p->x[p->n] = x;
    p->y[p->n++] = y;
    return true;
}

/* key's value: a number, null (NAN: a gap), or absent (false). */
static bool row_value(const cJSON *row, const char *key, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, key);
    if (cJSON_IsNumber(v)) *out = v->valuedouble;
    else if (cJSON_IsNull(v)) *out = NAN;
    return cJSON_IsNumber(v) || cJSON_IsNull(v);
}

/* One line of path (line number `at`) into loss and val; false after printing why. */
static bool read_row(const char *path, long at, const char *line, points *loss, points *val)
{
    cJSON *row = cJSON_Parse(line);
    const cJSON *step = cJSON_GetObjectItemCaseSensitive(row, "step");
    const char *why = !cJSON_IsObject(row) ? "not a JSON object (a metrics line is {\"step\": N, \"loss\": X, ...})"
                      : !cJSON_IsNumber(step) ? "no \"step\" number"
                                              : NULL;
    double y;
    bool ok = !why;
    if (ok && row_value(row, "loss", &y)) ok = add_point(loss, step->valuedouble, y);
    if (ok && row_value(row, "val_loss", &y)) ok = add_point(val, step->valuedouble, y);
    if (!ok) fprintf(stderr, "zrt plot: %s:%ld: %s\n", path, at, why ? why : "out of memory");
    cJSON_Delete(row);
    return ok;
}

/* Every row of path; false after printing why (the file, or the file and line). */
static bool read_metrics(const char *path, points *loss, points *val)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "zrt plot: %s: %s\n", path, strerror(errno));
        return false;
    }
    char *line = NULL;
    size_t cap = 0;
    long at = 0;
    bool ok = true;
    while (ok && getline(&line, &cap, f) > 0) {
        at++;
        if (line[strspn(line, " \t\r\n")] != '\0') ok = read_row(path, at, line, loss, val);
    }
    free(line);
    fclose(f);
    if (ok && loss->n + val->n == 0) {
        fprintf(stderr, "zrt plot: %s: no rows with \"loss\" or \"val_loss\" (%ld lines)\n", path, at);
        ok = false;
    }
    return ok;
}

typedef struct {
    const char *input, *output, *title;
    int width, height;
} plot_args;

static int parse_args(int argc, char **argv, plot_args *a)
{
    static const struct option options[] = {{"help", no_argument, NULL, 'h'}, {"output", required_argument, NULL, 'o'},
                                            {"size", required_argument, NULL, 's'},
                                            {"title", required_argument, NULL, 't'}, {NULL, 0, NULL, 0}};
    *a = (plot_args){.width = 900, .height = 540};
    zrt_cli_normalize_options(argc, argv);
    int c;
    char end;
    while ((c = zrt_cli_next_option_short(argc, argv, ":ho:", options, "plot")) != -1) {
        if (c == 'h') return fputs(usage, stdout), ZRT_EXIT_OK;
        if (c == 'o') a->output = optarg;
        else if (c == 't') a->title = optarg;
        else if (c == 's' && sscanf(optarg, "%dx%d%c", &a->width, &a->height, &end) != 2)
            return zrt_cli_usage_error("plot", "--size %s: expected WIDTHxHEIGHT in pixels, e.g. 900x540", optarg);
        else if (c == '?') return ZRT_EXIT_USAGE;
    }
    if (argc - optind != 1) return fputs(usage, stderr), ZRT_EXIT_USAGE;
    a->input = argv[optind];
    if (!a->output) return zrt_cli_usage_error("plot", "-o PNG is required (the picture to write)");
    return -1;
}

int zrt_cmd_plot(int argc, char **argv)
{
    plot_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0) return rc;
    points loss = {0}, val = {0};
    rc = read_metrics(a.input, &loss, &val) ? ZRT_EXIT_OK : ZRT_EXIT_FAIL;
    char name[ZRT_PATH_MAX], title[ZRT_PATH_MAX + 16];
    snprintf(name, sizeof name, "%s", a.input);
    snprintf(title, sizeof title, "loss, %s", basename(name));
    zrt_plot_series series[2];
    int n = 0;
    if (loss.n) series[n++] = (zrt_plot_series){loss.x, loss.y, loss.n, "loss", false};
    if (val.n) series[n++] = (zrt_plot_series){val.x, val.y, val.n, "val_loss", true};
    zrt_plot_frame frame = {a.title ? a.title : title, "step", "loss", a.width, a.height};
    if (rc == ZRT_EXIT_OK && zrt_plot_png(a.output, &frame, series, n) != ZRT_OK) {
        fprintf(stderr, "zrt plot: %s\n", zrt_last_error());
        rc = ZRT_EXIT_FAIL;
    }
    if (rc == ZRT_EXIT_OK) printf("zrt plot: %s: %d steps%s, %dx%d\n", a.output, loss.n, val.n ? " and validation" : "",
                                  a.width, a.height);
    free(loss.x), free(loss.y), free(val.x), free(val.y);
    return rc;
}
