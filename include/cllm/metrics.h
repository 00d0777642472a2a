/* cllm/metrics.h — a training run's metrics.jsonl: reading it, and drawing its loss curves
 * (what `cllm plot` does and `cllm report` calls).
 *
 *     cllm_metrics runs[2] = {0};
 *     CLLM_TRY(cllm_metrics_load(&runs[0], "runs/nano"));            // RUN/metrics.jsonl
 *     CLLM_TRY(cllm_metrics_load(&runs[1], "runs/mini/metrics.jsonl"));
 *     cllm_loss_plot_opts o = cllm_loss_plot_opts_default();
 *     o.smooth = 20;
 *     CLLM_TRY(cllm_loss_plot_write("loss.png", runs, 2, &o));
 *     cllm_metrics_clear(&runs[0]); cllm_metrics_clear(&runs[1]);
 *
 * The file (written by `cllm train`): one JSON object per line with "step" (required), "loss",
 * "lr", "grad_norm", "tokens_per_s", "tokens" (cumulative), "time_s", and "val_loss" /
 * "val_ppl" on the lines where validation ran; "skipped": true marks an update the trainer's
 * guard skipped. Reading is strict where a file is wrong and lenient where a run is merely
 * interrupted:
 *   - a line that is not a JSON object, lacks a numeric "step", or holds a non-number where a
 *     number belongs is an error naming the file and line (CLLM_ERR_FORMAT);
 *   - the last line, when it has no newline and does not parse, is what a killed writer leaves:
 *     it is left out and counted (truncated_tail);
 *   - null, NaN and ±Infinity values (Python's json writes the latter bare) are left out of
 *     the plot and counted (nonfinite);
 *   - a line whose step is lower than the previous line's starts over from there (a run
 *     resumed from an earlier checkpoint): the earlier points at that step and beyond are
 *     dropped and counted (superseded); a line with the same step as the previous one is
 *     merged into it (its fields win).
 * No OpenCL here.
 */
#ifndef CLLM_METRICS_H
#define CLLM_METRICS_H

#include "cllm/common.h"
#include "cllm/plot.h"

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One line. Absent, null and non-finite values are NaN. */
typedef struct {
    double step;
    double loss, val_loss, val_ppl;
    double lr, grad_norm, tokens_per_s, tokens, time_s;
    bool skipped; /* "skipped": true */
} cllm_metrics_point;

typedef struct {
    char *path;                 /* the file read */
    char *name;                 /* the run's name: the name of the directory that holds the file */
    cllm_metrics_point *points; /* in step order */
    size_t n;
    long lines;           /* lines in the file (blank ones included) */
    long nonfinite;       /* loss / val_loss values that were null, NaN or infinite */
    long skipped_updates; /* lines marked "skipped": true */
    long superseded;      /* points replaced by a resumed run's later lines */
    bool truncated_tail;  /* an unterminated, unparseable last line was left out */
} cllm_metrics;

/* Read `path`: a run directory (its metrics.jsonl) or a metrics file. `m` is overwritten
 * (clear it first if it held a run); on failure it is left cleared. An empty file is not an
 * error here (a run that has just started); plotting it is. */
cllm_status cllm_metrics_load(cllm_metrics *m, const char *path);
void cllm_metrics_clear(cllm_metrics *m);
/* Points with a finite training loss, and with a finite validation loss. */
size_t cllm_metrics_count_loss(const cllm_metrics *m);
size_t cllm_metrics_count_val(const cllm_metrics *m);

typedef enum {
    CLLM_LOSS_X_STEP,   /* "step" */
    CLLM_LOSS_X_TOKENS, /* "tokens": cumulative training tokens */
    CLLM_LOSS_X_TIME,   /* "time_s": seconds since the run started */
} cllm_loss_x;

typedef struct {
    int width, height; /* pixels (0: 1200 x 800) */
    int smooth;        /* > 1: the training loss is drawn faint, and over it its centred moving
                          average over `smooth` points (smooth/2 before each point, the rest
                          after; near the ends, where the window is cut off, the value of
                          the least-squares line through the points it still holds, so the
                          curve neither lags behind the raw one nor hooks at its ends) */
    bool log_y;
    cllm_loss_x x;
    const char *title; /* NULL: "loss: NAME" for one run, "loss" for several */
    double ymin, ymax; /* y-axis limits; NaN: from the data */
} cllm_loss_plot_opts;

cllm_loss_plot_opts cllm_loss_plot_opts_default(void);

/* Draw the training loss (solid lines) and validation loss (dashed, a darker shade, with
 * markers when a run has at most 60 validation points) of n runs on one chart, run i in
 * cllm_palette(i), the legend naming each run by its name (or its path when two runs share a
 * name). Initialises `c`. A run without a single finite loss or validation loss, or with --x
 * tokens / time but without those fields, is CLLM_ERR_FORMAT naming its file. `layout` may be
 * NULL. */
cllm_status cllm_loss_plot_draw(cllm_canvas *c, const cllm_metrics *runs, int n,
                                const cllm_loss_plot_opts *o, cllm_chart_layout *layout);
/* The same, written to a PNG file (atomically). */
cllm_status cllm_loss_plot_write(const char *png_path, const cllm_metrics *runs, int n,
                                 const cllm_loss_plot_opts *o);

#ifdef __cplusplus
}
#endif
#endif
