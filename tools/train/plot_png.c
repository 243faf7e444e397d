/* plot_png.c: draws `zrt plot`'s line chart with cairo and writes it as PNG.
 *
 * Why cairo: a chart a person reads needs anti-aliased lines and real text
 * (tick labels, a title, a legend); cairo (libcairo2-dev, Debian's 2D
 * drawing library) gives both and writes the PNG, where drawing pixels and
 * a bitmap font by hand would be more code and a worse picture.
 * Layout: a white canvas, the plot area inside fixed margins, "nice" ticks
 * (1, 2 or 5 times a power of ten) with light grid lines, the legend in the
 * plot's top right corner.
 */
#include "plot.h"

#include "zrt/internal/output.h"

#include <cairo/cairo.h>
#include <math.h>
#include <stdio.h>

#define MARGIN_LEFT 78
#define MARGIN_RIGHT 24
#define MARGIN_TOP 48
#define MARGIN_BOTTOM 58
#define MIN_WIDTH (MARGIN_LEFT + MARGIN_RIGHT + 100) /* smaller is unreadable */
#define MIN_HEIGHT (MARGIN_TOP + MARGIN_BOTTOM + 80)
#define MAX_SIDE 8192
#define FONT "DejaVu Sans"

/* Series colours: tab10's blue and orange, then green and red. */
static const double colours[][3] = {{0.12, 0.47, 0.71}, {1.0, 0.5, 0.05}, {0.17, 0.63, 0.17}, {0.84, 0.15, 0.16}};

typedef struct {
    double lo, hi; /* the data range drawn */
    double step;   /* between ticks */
} axis;

typedef struct {
    cairo_t *cr;
    double left, top, width, height; /* the plot area */
    axis x, y;
} chart;

/* A range padded to nice tick multiples, about `ticks` ticks across it. */
static axis nice_axis(double lo, double hi, int ticks, bool pad)
{
    if (hi <= lo) { /* one value: a unit around it */
        double half = lo != 0 ? fabs(lo) * 0.1 : 0.5;
        lo -= half;
        hi += half;
    } else if (pad) {
        double margin = (hi - lo) * 0.04;
        lo -= margin;
        hi += margin;
    }
    double raw = (hi - lo) / ticks, power = pow(10, floor(log10(raw))), f = raw / power;
    double step = (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * power;
    return (axis){lo, hi, step};
}

static double to_px_x(const chart *c, double x) { return c->left + (x - c->x.lo) / (c->x.hi - c->x.lo) * c->width; }
static double to_px_y(const chart *c, double y)
{
    return c->top + c->height - (y - c->y.lo) / (c->y.hi - c->y.lo) * c->height;
}

/* text with its anchor at (x, y): ax, ay in 0..1 of its width and height. */
static void text_at(cairo_t *cr, const char *text, double x, double y, double ax, double ay)
{
    cairo_text_extents_t e;
    cairo_text_extents(cr, text, &e);
    cairo_move_to(cr, x - e.width * ax - e.x_bearing, y + e.height * ay - (e.height + e.y_bearing));
    cairo_show_text(cr, text);
}

static void tick_label(double v, double step, char *out, size_t size)
{
    if (fabs(v) < step * 1e-6) v = 0;
    snprintf(out, size, "%.6g", v);
}

/* Grid lines and tick labels of both axes. */
static void draw_ticks(chart *c)
{
    cairo_t *cr = c->cr;
    char label[32];
    cairo_set_font_size(cr, 12);
    cairo_set_line_width(cr, 1);
    for (double v = ceil(c->y.lo / c->y.step) * c->y.step; v <= c->y.hi + c->y.step * 1e-9; v += c->y.step) {
        double py = round(to_px_y(c, v)) + 0.5;
        cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
        cairo_move_to(cr, c->left, py);
        cairo_line_to(cr, c->left + c->width, py);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        tick_label(v, c->y.step, label, sizeof label);
        text_at(cr, label, c->left - 8, py, 1, 0.5);
    }
    for (double v = ceil(c->x.lo / c->x.step) * c->x.step; v <= c->x.hi + c->x.step * 1e-9; v += c->x.step) {
        double px = round(to_px_x(c, v)) + 0.5;
        cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
        cairo_move_to(cr, px, c->top);
        cairo_line_to(cr, px, c->top + c->height);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        tick_label(v, c->x.step, label, sizeof label);
        text_at(cr, label, px, c->top + c->height + 8, 0.5, 1);
    }
}

/* The frame, the title and the axis labels. */
static void draw_frame(chart *c, const zrt_plot_frame *f)
{
    cairo_t *cr = c->cr;
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, c->left + 0.5, c->top + 0.5, c->width, c->height);
    cairo_stroke(cr);
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
    cairo_set_font_size(cr, 16);
    text_at(cr, f->title, c->left + c->width / 2, c->top / 2, 0.5, 0.5);
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, 13);
    text_at(cr, f->x_label, c->left + c->width / 2, f->height - 12, 0.5, 0);
    cairo_save(cr);
    cairo_translate(cr, 18, c->top + c->height / 2);
    cairo_rotate(cr, -M_PI / 2);
    text_at(cr, f->y_label, 0, 0, 0.5, 0.5);
    cairo_restore(cr);
}

static void draw_series(chart *c, const zrt_plot_series *s, const double *rgb)
{
    cairo_t *cr = c->cr;
    cairo_save(cr);
    cairo_rectangle(cr, c->left, c->top, c->width, c->height);
    cairo_clip(cr);
    cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
    cairo_set_line_width(cr, 1.8);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    bool drawing = false;
    for (int i = 0; i < s->n; i++) {
        if (!isfinite(s->y[i])) { /* a gap */
            drawing = false;
            continue;
        }
        double px = to_px_x(c, s->x[i]), py = to_px_y(c, s->y[i]);
        if (drawing) cairo_line_to(cr, px, py);
        else cairo_move_to(cr, px, py);
        drawing = true;
    }
    cairo_stroke(cr);
    for (int i = 0; s->markers && i < s->n; i++) {
        if (!isfinite(s->y[i])) continue;
        cairo_arc(cr, to_px_x(c, s->x[i]), to_px_y(c, s->y[i]), 3.5, 0, 2 * M_PI);
        cairo_fill(cr);
    }
    cairo_restore(cr);
}

/* A white box in the plot's top right corner: a line of each series' colour and its label. */
static void draw_legend(chart *c, const zrt_plot_series *series, int n)
{
    cairo_t *cr = c->cr;
    cairo_set_font_size(cr, 13);
    double text_w = 0, row = 20;
    for (int i = 0; i < n; i++) {
        cairo_text_extents_t e;
        cairo_text_extents(cr, series[i].label, &e);
        text_w = fmax(text_w, e.x_advance);
    }
    double w = 44 + text_w, h = row * n + 8, x = c->left + c->width - w - 10, y = c->top + 10;
    cairo_rectangle(cr, x, y, w, h);
    cairo_set_source_rgba(cr, 1, 1, 1, 0.9);
    cairo_fill_preserve(cr);
    cairo_set_source_rgb(cr, 0.75, 0.75, 0.75);
    cairo_stroke(cr);
    for (int i = 0; i < n; i++) {
        double cy = y + 4 + row * i + row / 2;
        const double *rgb = colours[i % 4];
        cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
        cairo_set_line_width(cr, 2.5);
        cairo_move_to(cr, x + 8, cy);
        cairo_line_to(cr, x + 32, cy);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        text_at(cr, series[i].label, x + 38, cy, 0, 0.5);
    }
}

/* The data's x and y ranges (finite values only). */
static void data_range(const zrt_plot_series *series, int n, double *x0, double *x1, double *y0, double *y1)
{
    *x0 = *y0 = INFINITY;
    *x1 = *y1 = -INFINITY;
    for (int s = 0; s < n; s++)
        for (int i = 0; i < series[s].n; i++) {
            *x0 = fmin(*x0, series[s].x[i]);
            *x1 = fmax(*x1, series[s].x[i]);
            if (!isfinite(series[s].y[i])) continue;
            *y0 = fmin(*y0, series[s].y[i]);
            *y1 = fmax(*y1, series[s].y[i]);
        }
    if (!isfinite(*y0)) *y0 = *y1 = 0; /* nothing finite: an empty chart, still readable */
}

static void draw(cairo_t *cr, const zrt_plot_frame *f, const zrt_plot_series *series, int n)
{
    double x0, x1, y0, y1;
    data_range(series, n, &x0, &x1, &y0, &y1);
    chart c = {cr, MARGIN_LEFT, MARGIN_TOP, f->width - MARGIN_LEFT - MARGIN_RIGHT,
               f->height - MARGIN_TOP - MARGIN_BOTTOM, nice_axis(x0, x1, 8, false), nice_axis(y0, y1, 6, true)};
    c.x.step = fmax(c.x.step, 1); /* steps are whole */
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    draw_ticks(&c);
    for (int s = 0; s < n; s++) draw_series(&c, &series[s], colours[s % 4]);
    draw_frame(&c, f);
    draw_legend(&c, series, n);
}

static cairo_status_t write_out(void *out, const unsigned char *data, unsigned int len)
{
    return zrt_out_file_write(out, data, len) == ZRT_OK ? CAIRO_STATUS_SUCCESS : CAIRO_STATUS_WRITE_ERROR;
}

zrt_status zrt_plot_png(const char *path, const zrt_plot_frame *frame, const zrt_plot_series *series, int n_series)
{
    if (frame->width < MIN_WIDTH || frame->height < MIN_HEIGHT || frame->width > MAX_SIDE || frame->height > MAX_SIDE)
        return zrt_set_error(ZRT_ERR_INVALID, "a chart of %dx%d pixels: expected %dx%d to %dx%d", frame->width,
                             frame->height, MIN_WIDTH, MIN_HEIGHT, MAX_SIDE, MAX_SIDE);
    zrt_out_file out;
    ZRT_CHECK(zrt_out_file_open(&out, path)); /* the PNG appears whole or not at all */
    cairo_surface_t *surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, frame->width, frame->height);
    cairo_t *cr = cairo_create(surface);
    draw(cr, frame, series, n_series);
    cairo_status_t status = cairo_status(cr);
    if (status == CAIRO_STATUS_SUCCESS) status = cairo_surface_write_to_png_stream(surface, write_out, &out);
    cairo_destroy(cr);
    cairo_surface_destroy(surface);
    if (status == CAIRO_STATUS_WRITE_ERROR) { /* zrt_last_error says why */
        zrt_out_file_abort(&out);
        return ZRT_ERR_IO;
    }
    if (status != CAIRO_STATUS_SUCCESS) {
        zrt_out_file_abort(&out);
        return zrt_set_error(ZRT_ERR_INTERNAL, "drawing %s: %s", path, cairo_status_to_string(status));
    }
    return zrt_out_file_commit(&out);
}
