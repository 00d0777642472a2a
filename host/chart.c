/* Line charts: nice ticks, labels, grid, axes, legend, series (see cllm/plot.h). */
#include "plot_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INK CLLM_RGB(38, 38, 38)     /* text, ticks */
#define FRAME CLLM_RGB(64, 64, 64)   /* the plot area's frame */
#define GRID CLLM_RGB(222, 222, 222) /* major grid */
#define GRID_MINOR CLLM_RGB(240, 240, 240)

/* ---------------------------------------------------------------- ticks */

static long long kfloor(double v) {
    return (long long)floor(v + 1e-9);
}
static long long kceil(double v) {
    return (long long)ceil(v - 1e-9);
}

/* Nice ticks whose step is at least min_step (0: any). */
static int nice_ticks_min(double lo, double hi, int max_ticks, double min_step, double *ticks,
                          int cap, double *step) {
    if (max_ticks < 2) max_ticks = 2;
    if (!(hi > lo) || !isfinite(lo) || !isfinite(hi)) {
        if (step) *step = 0;
        if (cap > 0 && isfinite(lo)) {
            ticks[0] = lo;
            return 1;
        }
        return 0;
    }
    static const double mult[3] = {1, 2, 5};
    double mag = pow(10, floor(log10((hi - lo) / max_ticks))) / 10, st = 0;
    for (int e = 0; e < 6 && st == 0; e++, mag *= 10)
        for (int m = 0; m < 3; m++) {
            double s = mult[m] * mag;
            if (s >= min_step * (1 - 1e-9) && kfloor(hi / s) - kceil(lo / s) + 1 <= max_ticks) {
                st = s;
                break;
            }
        }
    if (st == 0) st = min_step; /* whole numbers on a short axis: more ticks than asked */
    if (step) *step = st;
    int n = 0;
    for (long long k = kceil(lo / st); k <= kfloor(hi / st) && n < cap; k++) {
        double v = (double)k * st;
        ticks[n++] = fabs(v) < st * 1e-9 ? 0 : v;
    }
    return n;
}

int cllm_nice_ticks(double lo, double hi, int max_ticks, double *ticks, int cap, double *step) {
    return nice_ticks_min(lo, hi, max_ticks, 0, ticks, cap, step);
}

static int log_level_ticks(double lo, double hi, int level, double *ticks, int cap) {
    static const double l1[3] = {1, 2, 5};
    int n = 0;
    for (int e = (int)floor(log10(lo)) - 1; e <= (int)ceil(log10(hi)) && n < cap; e++) {
        double p = pow(10, e);
        int count = level == 0 ? 1 : level == 1 ? 3 : 9;
        for (int m = 0; m < count && n < cap; m++) {
            double v = p * (level == 1 ? l1[m] : m + 1);
            if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) ticks[n++] = v;
        }
    }
    return n;
}

int cllm_log_ticks(double lo, double hi, int min_ticks, int max_level, double *ticks, int cap,
                   int *level) {
    if (!(lo > 0) || !(hi > lo)) {
        if (level) *level = 0;
        return 0;
    }
    if (max_level > 2) max_level = 2;
    int lv = 0, n = 0;
    for (lv = 0; lv <= max_level; lv++) {
        n = log_level_ticks(lo, hi, lv, ticks, cap);
        if (n >= min_ticks || lv == max_level) break;
    }
    if (lv > max_level) lv = max_level;
    if (level) *level = lv;
    return n;
}

static int decimals_for(double step) {
    if (!(step > 0)) return 0;
    int d = (int)ceil(-log10(step) - 1e-9);
    return d < 0 ? 0 : d > 9 ? 9 : d;
}

void cllm_tick_label(char *out, size_t cap, double v, double step, double axis_max) {
    double unit = 1;
    const char *suffix = "";
    axis_max = fabs(axis_max);
    if (axis_max >= 1e9)
        unit = 1e9, suffix = "G";
    else if (axis_max >= 1e6)
        unit = 1e6, suffix = "M";
    else if (axis_max >= 1e4)
        unit = 1e3, suffix = "k";
    if (step > 0 ? fabs(v) < step * 1e-6 : v == 0) {
        snprintf(out, cap, "0");
        return;
    }
    int dec = decimals_for(step > 0 ? step / unit : fabs(v) / unit);
    if (step <= 0) { /* log axes: drop what the value does not need (2.50 -> 2.5) */
        for (dec = 0; dec < 9; dec++) {
            double s = v / unit * pow(10, dec);
            if (fabs(s - round(s)) < 1e-6 * fabs(s)) break;
        }
    }
    snprintf(out, cap, "%.*f%s", dec, v / unit, suffix);
}

/* ---------------------------------------------------------------- layout helpers */

double cllm_chart_px(const cllm_chart_layout *l, double x) {
    return l->x0 + (x - l->xmin) / (l->xmax - l->xmin) * (l->x1 - l->x0);
}

double cllm_chart_py(const cllm_chart_layout *l, double y) {
    double f = l->log_y ? (log10(y) - log10(l->ymin)) / (log10(l->ymax) - log10(l->ymin))
                        : (y - l->ymin) / (l->ymax - l->ymin);
    return l->y1 - f * (l->y1 - l->y0);
}

static bool usable(double x, double y, bool log_y) {
    return isfinite(x) && isfinite(y) && (!log_y || y > 0);
}

/* Label widths of a tick set (the widest), with labels written into `labels`. */
static int tick_labels(char labels[][32], const double *t, int n, double step, int scale) {
    double amax = 0;
    for (int i = 0; i < n; i++)
        amax = fmax(amax, fabs(t[i]));
    int w = 0;
    for (int i = 0; i < n; i++) {
        cllm_tick_label(labels[i], 32, t[i], step, amax);
        int lw = cllm_text_width(labels[i], scale);
        if (lw > w) w = lw;
    }
    return w;
}

/* The y ticks: linear, or log with the densest level whose closest labels stay apart. */
static int y_ticks(cllm_chart_layout *l, double plot_h, int scale, double *step, double *minor,
                   int *n_minor) {
    int text_h = CLLM_FONT_CAP * scale;
    *n_minor = 0;
    if (!l->log_y) {
        int max_ticks = (int)(plot_h / (18.0 * scale + 2.5 * text_h));
        if (max_ticks > 10) max_ticks = 10;
        return cllm_nice_ticks(l->ymin, l->ymax, max_ticks, l->yticks, 32, step);
    }
    *step = 0;
    double span = log10(l->ymax) - log10(l->ymin);
    int n = 0;
    for (int max_level = 2; max_level >= 0; max_level--) {
        int level;
        n = cllm_log_ticks(l->ymin, l->ymax, 3, max_level, l->yticks, 32, &level);
        double gap = INFINITY; /* the closest pair of labels, in pixels */
        for (int i = 0; i + 1 < n; i++)
            gap = fmin(gap, (log10(l->yticks[i + 1]) - log10(l->yticks[i])) / span * plot_h);
        if (gap >= 2.2 * text_h || max_level == 0) {
            if (level == 0) /* decades only: a lighter grid at their 2..9 multiples */
                *n_minor = cllm_log_ticks(l->ymin, l->ymax, 1000, 2, minor, 256, NULL);
            break;
        }
    }
    return n;
}

/* Points along the series, every few pixels, that fall in a rectangle (for the legend). */
static long points_in(const cllm_chart_layout *l, const cllm_chart_series *s, int ns, double rx0,
                      double ry0, double rx1, double ry1) {
    long count = 0;
    for (int k = 0; k < ns; k++)
        for (int i = 0; i < s[k].n; i++) {
            if (!usable(s[k].x[i], s[k].y[i], l->log_y)) continue;
            double ax = cllm_chart_px(l, s[k].x[i]), ay = cllm_chart_py(l, s[k].y[i]);
            int steps = 1;
            double bx = ax, by = ay;
            if (i + 1 < s[k].n && !s[k].no_line && usable(s[k].x[i + 1], s[k].y[i + 1], l->log_y)) {
                bx = cllm_chart_px(l, s[k].x[i + 1]);
                by = cllm_chart_py(l, s[k].y[i + 1]);
                steps = 1 + (int)(hypot(bx - ax, by - ay) / 4);
                if (steps > 1000) steps = 1000;
            }
            for (int j = 0; j < steps; j++) {
                double t = (double)j / steps, px = ax + t * (bx - ax), py = ay + t * (by - ay);
                if (px >= rx0 && px < rx1 && py >= ry0 && py < ry1) count++;
            }
        }
    return count;
}

static cllm_status draw_series(cllm_canvas *c, const cllm_chart_layout *l,
                               const cllm_chart_series *s) {
    double w = s->width > 0 ? s->width : 1.25 * l->scale;
    double *px = malloc((size_t)(s->n ? s->n : 1) * sizeof *px);
    double *py = malloc((size_t)(s->n ? s->n : 1) * sizeof *py);
    if (!px || !py) {
        free(px);
        free(py);
        return cllm_fail(CLLM_ERR_NOMEM, "out of memory drawing a chart");
    }
    for (int i = 0; i < s->n; i++) {
        bool ok = usable(s->x[i], s->y[i], l->log_y);
        px[i] = ok ? cllm_chart_px(l, s->x[i]) : NAN;
        py[i] = ok ? cllm_chart_py(l, s->y[i]) : NAN;
    }
    cllm_status st = CLLM_OK;
    if (!s->no_line)
        st = cllm_canvas_polyline(c, px, py, s->n, w, s->dashed ? 4 * w : 0,
                                  s->dashed ? 2.5 * w : 0, s->color);
    if (s->markers) {
        /* markers stay whole at the edges of the plot area (a last validation point, say) */
        int grow = (int)ceil(2 * w) + 1;
        cllm_canvas_clip(c, (int)l->x0 - grow, (int)l->y0 - grow, (int)l->x1 + grow,
                         (int)l->y1 + grow);
        for (int i = 0; i < s->n; i++) {
            if (!isfinite(px[i])) continue;
            double r = 1.6 * w;
            cllm_canvas_disc(c, px[i], py[i], r + 0.4 * w, CLLM_WHITE);
            cllm_canvas_disc(c, px[i], py[i], r, s->color);
        }
        cllm_canvas_clip(c, (int)l->x0, (int)l->y0, (int)l->x1, (int)l->y1);
    }
    free(px);
    free(py);
    return st;
}

static void legend_sample(cllm_canvas *c, const cllm_chart_series *s, double x0, double x1,
                          double y, int scale) {
    double w = s->width > 0 ? s->width : 1.25 * scale;
    if (!s->no_line) {
        double xs[2] = {x0, x1}, ys[2] = {y, y};
        (void)cllm_canvas_polyline(c, xs, ys, 2, w, s->dashed ? 4 * w : 0, s->dashed ? 2.5 * w : 0,
                                   s->color);
    }
    if (s->markers) {
        double r = 1.6 * w;
        cllm_canvas_disc(c, (x0 + x1) / 2, y, r + 0.4 * w, CLLM_WHITE);
        cllm_canvas_disc(c, (x0 + x1) / 2, y, r, s->color);
    }
}

/* ---------------------------------------------------------------- the chart */

cllm_status cllm_chart_draw(cllm_canvas *c, const cllm_chart_series *series, int n_series,
                            const cllm_chart_opts *o, cllm_chart_layout *layout) {
    cllm_chart_layout l;
    memset(&l, 0, sizeof l);
    memset(c, 0, sizeof *c);
    int W = o->width > 0 ? o->width : 1200, H = o->height > 0 ? o->height : 800;
    int s = o->scale > 0 ? o->scale : (W < H ? W : H) / 400;
    if (s < 1) s = 1;
    l.scale = s;
    l.log_y = o->log_y;

    /* data ranges */
    double xa = INFINITY, xb = -INFINITY, ya = INFINITY, yb = -INFINITY;
    for (int k = 0; k < n_series; k++)
        for (int i = 0; i < series[k].n; i++) {
            double x = series[k].x[i], y = series[k].y[i];
            if (!usable(x, y, o->log_y)) continue;
            xa = fmin(xa, x), xb = fmax(xb, x), ya = fmin(ya, y), yb = fmax(yb, y);
        }
    if (!(xa <= xb))
        return cllm_fail(CLLM_ERR_USAGE, "nothing to plot: no series has a finite%s point",
                         o->log_y ? ", positive" : "");
    if (o->x_from_zero && xa >= 0) xa = 0;
    if (xa == xb) xa -= 0.5, xb += 0.5;
    bool fixed_lo = isfinite(o->ymin) && !(o->log_y && o->ymin <= 0);
    bool fixed_hi = isfinite(o->ymax) && !(o->log_y && o->ymax <= 0);
    if (fixed_lo && fixed_hi && !(o->ymax > o->ymin)) fixed_lo = fixed_hi = false;
    if (o->log_y) {
        double la = log10(ya), lb = log10(yb);
        if (la == lb) la -= 0.1, lb += 0.1;
        double pad = 0.05 * (lb - la);
        l.ymin = fixed_lo ? o->ymin : pow(10, la - pad);
        l.ymax = fixed_hi ? o->ymax : pow(10, lb + pad);
    } else {
        if (ya == yb) {
            double d = fmax(0.5, fabs(ya) * 0.1);
            ya -= d, yb += d;
        }
        double pad = 0.05 * (yb - ya);
        l.ymin = fixed_lo ? o->ymin : ya - pad;
        l.ymax = fixed_hi ? o->ymax : yb + pad;
    }
    if (!(l.ymax > l.ymin)) { /* one fixed limit on the wrong side of the data */
        if (fixed_lo)
            l.ymax = o->log_y ? l.ymin * 10 : l.ymin + 1;
        else
            l.ymin = o->log_y ? l.ymax / 10 : l.ymax - 1;
    }
    l.xmin = xa;
    l.xmax = xb;

    /* vertical layout */
    int pad = 8 * s, tick = 5 * s, text_h = CLLM_FONT_CAP * s;
    int title_s = s + 1;
    char *title = NULL; /* cut to the canvas, at a smaller scale first when that is enough */
    if (o->title && *o->title) {
        if (cllm_text_width(o->title, title_s) > W - 2 * pad) title_s = s;
        title = cllm_text_cut(o->title, cllm_text_fit_chars(W - 2 * pad, title_s));
        if (!title) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    }
    int top = pad + (title ? CLLM_FONT_CAP * title_s + 2 * pad : pad);
    int bottom = tick + pad + text_h + (o->xlabel && *o->xlabel ? 2 * pad + text_h : 0) + pad;
    l.y0 = top;
    l.y1 = H - bottom;
    cllm_status st = CLLM_OK;
    char **legend = NULL;
    if (l.y1 - l.y0 < 4 * text_h) {
        st = cllm_fail(CLLM_ERR_USAGE,
                       "a %dx%d chart is too small to draw (the plot area would be "
                       "%d pixels high)",
                       W, H, (int)(l.y1 - l.y0));
        goto fail;
    }

    /* y ticks fix the left margin; then the x ticks fit the width that is left */
    double ystep, minor[256];
    int n_minor;
    l.n_yticks = y_ticks(&l, l.y1 - l.y0, s, &ystep, minor, &n_minor);
    char ylab[32][32], xlab[32][32];
    int ylw = tick_labels(ylab, l.yticks, l.n_yticks, ystep, s);
    int left = pad + (o->ylabel && *o->ylabel ? text_h + 2 * pad : 0) + ylw + pad + tick;
    l.x0 = left;
    double xstep = 0;
    int right = 3 * pad;
    for (int max_ticks = 12;; max_ticks--) {
        l.x1 = W - right;
        l.n_xticks =
            nice_ticks_min(l.xmin, l.xmax, max_ticks, o->x_integer ? 1 : 0, l.xticks, 32, &xstep);
        int xlw = tick_labels(xlab, l.xticks, l.n_xticks, xstep, s);
        /* the last label may stick out past the plot area by half its width */
        int need_right = l.n_xticks ? cllm_text_width(xlab[l.n_xticks - 1], s) / 2 + pad : 0;
        if (need_right > right) {
            right = need_right;
            l.x1 = W - right;
        }
        double spacing = xstep / (l.xmax - l.xmin) * (l.x1 - l.x0);
        if (spacing >= xlw + 4 * pad || max_ticks <= 2) break;
    }
    if (l.x1 - l.x0 < 8 * text_h) {
        st = cllm_fail(CLLM_ERR_USAGE,
                       "a %dx%d chart is too small to draw (the plot area would be "
                       "%d pixels wide)",
                       W, H, (int)(l.x1 - l.x0));
        goto fail;
    }

    CLLM_TRY(cllm_canvas_init(c, W, H, CLLM_WHITE));
    int px0 = (int)l.x0, py0 = (int)l.y0, px1 = (int)l.x1, py1 = (int)l.y1;

    /* grid */
    for (int i = 0; i < n_minor; i++) {
        int y = (int)floor(cllm_chart_py(&l, minor[i]));
        if (y >= py0 && y < py1) cllm_canvas_fill_rect(c, px0, y, px1, y + 1, GRID_MINOR);
    }
    for (int i = 0; i < l.n_yticks; i++) {
        int y = (int)floor(cllm_chart_py(&l, l.yticks[i]));
        if (y >= py0 && y < py1) cllm_canvas_fill_rect(c, px0, y, px1, y + 1, GRID);
    }
    for (int i = 0; i < l.n_xticks; i++) {
        int x = (int)floor(cllm_chart_px(&l, l.xticks[i]));
        if (x >= px0 && x < px1) cllm_canvas_fill_rect(c, x, py0, x + 1, py1, GRID);
    }

    /* series, clipped to the plot area */
    cllm_canvas_clip(c, px0, py0, px1, py1);
    for (int k = 0; k < n_series && st == CLLM_OK; k++)
        st = draw_series(c, &l, &series[k]);
    cllm_canvas_unclip(c);
    if (st != CLLM_OK) goto fail;

    /* frame (one pixel outside the plot area), ticks, tick labels */
    cllm_canvas_stroke_rect(c, px0 - 1, py0 - 1, px1 + 1, py1 + 1, 1, FRAME);
    for (int i = 0; i < l.n_yticks; i++) {
        int y = (int)floor(cllm_chart_py(&l, l.yticks[i]));
        cllm_canvas_fill_rect(c, px0 - 1 - tick, y, px0 - 1, y + 1, FRAME);
        cllm_canvas_text(c, px0 - 1 - tick - pad / 2, y + 0.5, ylab[i], s, INK,
                         CLLM_TEXT_RIGHT | CLLM_TEXT_MIDDLE, false);
    }
    for (int i = 0; i < l.n_xticks; i++) {
        int x = (int)floor(cllm_chart_px(&l, l.xticks[i]));
        cllm_canvas_fill_rect(c, x, py1 + 1, x + 1, py1 + 1 + tick, FRAME);
        cllm_canvas_text(c, x + 0.5, py1 + 1 + tick + pad / 2, xlab[i], s, INK,
                         CLLM_TEXT_CENTER | CLLM_TEXT_TOP, false);
    }

    /* titles */
    if (title) {
        /* centred over the plot area, moved left when it would run off the canvas */
        double tx = (px0 + px1) / 2.0, half = cllm_text_width(title, title_s) / 2.0;
        if (tx + half > W - pad) tx = W - pad - half;
        if (tx - half < pad) tx = pad + half;
        cllm_canvas_text(c, tx, pad, title, title_s, CLLM_BLACK, CLLM_TEXT_CENTER | CLLM_TEXT_TOP,
                         false);
    }
    if (o->xlabel && *o->xlabel)
        cllm_canvas_text(c, (px0 + px1) / 2.0, H - pad, o->xlabel, s, CLLM_BLACK,
                         CLLM_TEXT_CENTER | CLLM_TEXT_BOTTOM, false);
    if (o->ylabel && *o->ylabel)
        cllm_canvas_text(c, pad, (py0 + py1) / 2.0, o->ylabel, s, CLLM_BLACK,
                         CLLM_TEXT_CENTER | CLLM_TEXT_TOP, true);

    /* legend: the corner of the plot area that covers the fewest points; labels cut to half
     * the plot's width, as many rows as fit */
    int row_h = text_h + pad, sample_w = 24 * s, inset = pad + s;
    int max_rows = (py1 - py0 - 2 * inset - pad) / row_h,
        max_chars = cllm_text_fit_chars((px1 - px0) / 2 - sample_w - 3 * pad, s);
    int n_legend = 0, label_w = 0;
    legend = calloc((size_t)(n_series ? n_series : 1), sizeof *legend);
    if (!legend) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int k = 0; k < n_series && n_legend < max_rows; k++)
        if (series[k].label && *series[k].label) {
            if (!(legend[k] = cllm_text_cut(series[k].label, max_chars))) {
                st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
                goto fail;
            }
            n_legend++;
            int w = cllm_text_width(legend[k], s);
            if (w > label_w) label_w = w;
        }
    if (n_legend) {
        int bw = pad + sample_w + pad + label_w + pad, bh = pad / 2 + n_legend * row_h + pad / 2;
        int cx[4] = {px1 - inset - bw, px0 + inset, px0 + inset, px1 - inset - bw};
        int cy[4] = {py0 + inset, py0 + inset, py1 - inset - bh, py1 - inset - bh};
        int best = 0;
        long best_n = -1;
        for (int i = 0; i < 4; i++) {
            long n = points_in(&l, series, n_series, cx[i], cy[i], cx[i] + bw, cy[i] + bh);
            if (best_n < 0 || n < best_n) best = i, best_n = n;
        }
        int bx = cx[best], by = cy[best];
        cllm_canvas_fill_rect(c, bx, by, bx + bw, by + bh, CLLM_RGBA(255, 255, 255, 230));
        cllm_canvas_stroke_rect(c, bx, by, bx + bw, by + bh, 1, CLLM_RGB(200, 200, 200));
        int row = 0;
        for (int k = 0; k < n_series; k++) {
            if (!legend[k]) continue;
            double yc = by + pad / 2 + row * row_h + row_h / 2.0;
            legend_sample(c, &series[k], bx + pad, bx + pad + sample_w, yc, s);
            cllm_canvas_text(c, bx + 2 * pad + sample_w, yc, legend[k], s, INK,
                             CLLM_TEXT_LEFT | CLLM_TEXT_MIDDLE, false);
            row++;
        }
        l.legend_x0 = bx, l.legend_y0 = by, l.legend_x1 = bx + bw, l.legend_y1 = by + bh;
    }
    if (layout) *layout = l;
    goto done;
fail:
    cllm_canvas_free(c);
done:
    for (int k = 0; legend && k < n_series; k++)
        free(legend[k]);
    free(legend);
    free(title);
    return st;
}
