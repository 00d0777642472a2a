/* Loss curves of one or several runs on one chart (cllm plot, cllm report). */
#include "cllm/metrics.h"

#include "cllm/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cllm_loss_plot_opts cllm_loss_plot_opts_default(void) {
    cllm_loss_plot_opts o = {
        .width = 1200, .height = 800, .x = CLLM_LOSS_X_STEP, .ymin = NAN, .ymax = NAN};
    return o;
}

static double x_of(const cllm_metrics_point *p, cllm_loss_x x) {
    return x == CLLM_LOSS_X_TOKENS ? p->tokens : x == CLLM_LOSS_X_TIME ? p->time_s : p->step;
}

/* Centred moving average over `window` points: window/2 points before, the rest after. Near
 * the ends, where the window is cut off, the value at the point of the straight line fitted by
 * least squares to the points the window still holds: a mean there would bend a steep start
 * towards the level of later points, and a window shrunk to the points on the shorter side
 * would end on the last noisy point itself (the local linear fit of LOWESS at a boundary). */
static void smooth_centred(double *out, const double *y, int n, int window) {
    int before = window / 2, after = window - 1 - before;
    /* pre0[k] = y[0] + ... + y[k-1], pre1[k] = 0 y[0] + ... + (k-1) y[k-1] */
    double *pre0 = malloc(((size_t)n + 1) * sizeof *pre0);
    double *pre1 = malloc(((size_t)n + 1) * sizeof *pre1);
    if (!pre0 || !pre1) { /* out of memory: draw the raw curve rather than fail the chart */
        memcpy(out, y, (size_t)n * sizeof *out);
        free(pre0);
        free(pre1);
        return;
    }
    pre0[0] = pre1[0] = 0;
    for (int i = 0; i < n; i++) {
        pre0[i + 1] = pre0[i] + y[i];
        pre1[i + 1] = pre1[i] + (double)i * y[i];
    }
    for (int i = 0; i < n; i++) {
        int a = i - before < 0 ? 0 : i - before, b = i + after > n - 1 ? n - 1 : i + after;
        double m = b - a + 1, sy = pre0[b + 1] - pre0[a], mean = sy / m;
        if ((a == i - before && b == i + after) || m < 2) {
            out[i] = mean;
            continue;
        }
        /* about the window's centre xm: slope = sum (j - xm) y_j / sum (j - xm)^2 */
        double xm = 0.5 * (a + b), sxx = m * (m * m - 1) / 12;
        double slope = (pre1[b + 1] - pre1[a] - xm * sy) / sxx;
        out[i] = mean + slope * (i - xm);
    }
    free(pre0);
    free(pre1);
}

/* c mixed with black: the validation curve is a darker shade of its run's colour. */
static uint32_t darker(uint32_t c, double f) {
    unsigned r = c >> 24, g = (c >> 16) & 255, b = (c >> 8) & 255;
    return CLLM_RGB(lround(r * (1 - f)), lround(g * (1 - f)), lround(b * (1 - f)));
}

typedef struct {
    double *x, *y, *ys; /* training: x, loss, smoothed loss */
    int n;
    double *vx, *vy; /* validation */
    int nv;
    char *label_train, *label_val;
} run_series;

static void run_series_free(run_series *r) {
    free(r->x);
    free(r->y);
    free(r->ys);
    free(r->vx);
    free(r->vy);
    free(r->label_train);
    free(r->label_val);
}

static const char *x_key(cllm_loss_x x) {
    return x == CLLM_LOSS_X_TOKENS ? "tokens" : x == CLLM_LOSS_X_TIME ? "time_s" : "step";
}

static cllm_status collect(run_series *r, const cllm_metrics *m, const char *name,
                           const cllm_loss_plot_opts *o) {
    memset(r, 0, sizeof *r);
    size_t cap = m->n ? m->n : 1;
    r->x = malloc(cap * sizeof *r->x);
    r->y = malloc(cap * sizeof *r->y);
    r->ys = malloc(cap * sizeof *r->ys);
    r->vx = malloc(cap * sizeof *r->vx);
    r->vy = malloc(cap * sizeof *r->vy);
    if (!r->x || !r->y || !r->ys || !r->vx || !r->vy)
        return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    size_t no_x = 0, with_y = 0;
    for (size_t i = 0; i < m->n; i++) {
        const cllm_metrics_point *p = &m->points[i];
        bool has = isfinite(p->loss) || isfinite(p->val_loss);
        with_y += has;
        double x = x_of(p, o->x);
        if (!isfinite(x)) {
            no_x += has;
            continue;
        }
        if (isfinite(p->loss)) r->x[r->n] = x, r->y[r->n++] = p->loss;
        if (isfinite(p->val_loss)) r->vx[r->nv] = x, r->vy[r->nv++] = p->val_loss;
    }
    if (with_y == 0)
        return cllm_fail(CLLM_ERR_FORMAT,
                         "%s: nothing to plot: no finite \"loss\" or "
                         "\"val_loss\" in %ld line%s",
                         m->path, m->lines, m->lines == 1 ? "" : "s");
    if (r->n + r->nv == 0)
        return cllm_fail(CLLM_ERR_FORMAT,
                         "%s: no line has \"%s\" (needed for --x %s; --x step "
                         "always works)",
                         m->path, x_key(o->x), o->x == CLLM_LOSS_X_TIME ? "time" : x_key(o->x));
    if (no_x)
        cllm_log(CLLM_LOG_WARN, "%s: %zu point%s without \"%s\" left out", m->path, no_x,
                 no_x == 1 ? "" : "s", x_key(o->x));
    if (o->smooth > 1) smooth_centred(r->ys, r->y, r->n, o->smooth);
    r->label_train = cllm_strdup_printf("%s train%s", name, o->smooth > 1 ? " (smoothed)" : "");
    r->label_val = cllm_strdup_printf("%s val", name);
    if (!r->label_train || !r->label_val) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    return CLLM_OK;
}

cllm_status cllm_loss_plot_draw(cllm_canvas *c, const cllm_metrics *runs, int n,
                                const cllm_loss_plot_opts *o, cllm_chart_layout *layout) {
    cllm_loss_plot_opts def = cllm_loss_plot_opts_default();
    if (!o) o = &def;
    memset(c, 0, sizeof *c);
    if (n <= 0) return cllm_fail(CLLM_ERR_USAGE, "no runs to plot");
    cllm_status st = CLLM_OK;
    run_series *rs = calloc((size_t)n, sizeof *rs);
    cllm_chart_series *s = calloc((size_t)n * 3, sizeof *s);
    char *title = NULL;
    if (!rs || !s) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        goto done;
    }
    int ns = 0;
    for (int i = 0; i < n; i++) {
        /* two runs of the same name are told apart by their paths */
        const char *name = runs[i].name;
        for (int j = 0; j < n; j++)
            if (j != i && !strcmp(runs[j].name, runs[i].name)) name = runs[i].path;
        CLLM_TRY(collect(&rs[i], &runs[i], name, o));
        uint32_t col = cllm_palette(i);
        if (o->smooth > 1 && rs[i].n)
            s[ns++] = (cllm_chart_series){
                .x = rs[i].x, .y = rs[i].y, .n = rs[i].n, .color = CLLM_WITH_ALPHA(col, 64)};
        if (rs[i].n)
            s[ns++] = (cllm_chart_series){.label = rs[i].label_train,
                                          .x = rs[i].x,
                                          .y = o->smooth > 1 ? rs[i].ys : rs[i].y,
                                          .n = rs[i].n,
                                          .color = col};
        if (rs[i].nv)
            s[ns++] = (cllm_chart_series){.label = rs[i].label_val,
                                          .x = rs[i].vx,
                                          .y = rs[i].vy,
                                          .n = rs[i].nv,
                                          .color = darker(col, 0.35),
                                          .dashed = true,
                                          .markers = rs[i].nv <= 60};
    }
    title = o->title ? strdup(o->title)
            : n == 1 ? cllm_strdup_printf("loss: %s", runs[0].name)
                     : strdup("loss");
    if (!title) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        goto done;
    }
    cllm_chart_opts co = {.width = o->width,
                          .height = o->height,
                          .title = title,
                          .xlabel = o->x == CLLM_LOSS_X_TOKENS ? "tokens"
                                    : o->x == CLLM_LOSS_X_TIME ? "time (s)"
                                                               : "step",
                          .ylabel = o->log_y ? "loss (log scale)" : "loss",
                          .log_y = o->log_y,
                          .x_from_zero = true,
                          .x_integer = o->x != CLLM_LOSS_X_TIME,
                          .ymin = o->ymin,
                          .ymax = o->ymax};
    st = cllm_chart_draw(c, s, ns, &co, layout);
    goto done;
fail:
done:
    for (int i = 0; rs && i < n; i++)
        run_series_free(&rs[i]);
    free(rs);
    free(s);
    free(title);
    return st;
}

cllm_status cllm_loss_plot_write(const char *png_path, const cllm_metrics *runs, int n,
                                 const cllm_loss_plot_opts *o) {
    cllm_canvas c;
    cllm_status st = cllm_loss_plot_draw(&c, runs, n, o, NULL);
    if (st == CLLM_OK) st = cllm_canvas_write_png(&c, png_path);
    cllm_canvas_free(&c);
    return st;
}
