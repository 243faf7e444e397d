/* plot.h: a line chart as a PNG (plot_png.c), for `zrt plot` (cmd_plot.c). */
#ifndef ZRT_TOOLS_PLOT_H
#define ZRT_TOOLS_PLOT_H

#include "zrt.h"

/* One line of the chart: n points (x[i], y[i]); a non-finite y breaks the line. */
typedef struct {
    const double *x, *y;
    int n;
    const char *label; /* in the legend */
    bool markers;      /* a dot at each point (sparse series: validation) */
} zrt_plot_series;

typedef struct {
    const char *title, *x_label, *y_label;
    int width, height; /* pixels */
} zrt_plot_frame;

/* Draws the series (at least one point in all) with axes, tick labels, the
 * title and a legend, and writes the PNG to path. */
zrt_status zrt_plot_png(const char *path, const zrt_plot_frame *frame, const zrt_plot_series *series, int n_series);

#endif
