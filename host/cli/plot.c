/* cllm plot: the loss curves of one or several runs as a PNG. */
#include "args.h"
#include "cllm/metrics.h"
#include "commands.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_plot(int argc, char **argv) {
    const char *out = NULL, *x = "step", *title = NULL;
    int smooth = 0, width = 1200, height = 800;
    bool log_y = false;
    double ymin = NAN, ymax = NAN;
    const cli_opt opts[] = {
        {"out", 'o', CLI_STR, &out, "FILE", "the PNG to write (replaced atomically)",
         .required = true},
        {"smooth", 0, CLI_INT, &smooth, "N",
         "also draw the training loss's centred moving average over N points (the raw curve "
         "stays, faint); 0 or 1 = off",
         .lo = 0, .hi = 1e6},
        {"log-y", 0, CLI_FLAG, &log_y, NULL, "logarithmic loss axis (decade ticks)"},
        {"x", 0, CLI_CHOICE, &x, NULL,
         "the x axis: optimizer step, cumulative training tokens, or seconds since the start",
         .choices = "step|tokens|time"},
        {"title", 0, CLI_STR, &title, "T", "chart title (default: \"loss: RUN\", or \"loss\")"},
        {"width", 0, CLI_INT, &width, "PX", "image width", .lo = 300, .hi = 8000},
        {"height", 0, CLI_INT, &height, "PX", "image height", .lo = 200, .hi = 8000},
        {"ymin", 0, CLI_DOUBLE, &ymin, "Y", "lower end of the loss axis (default: from the data)"},
        {"ymax", 0, CLI_DOUBLE, &ymax, "Y",
         "upper end of the loss axis (default: from the data; e.g. cut off the first steps)"},
    };
    const cli_spec spec = {
        "cllm plot",
        "RUN|metrics.jsonl... -o loss.png [options]",
        "Draw the training loss (solid) and validation loss (dashed, with markers) of one or\n"
        "several runs on one chart: a run directory's metrics.jsonl (as cllm train writes it),\n"
        "or metrics files named directly. Each run gets its own colour and is named in the\n"
        "legend by its directory's name. Lines with a null, NaN or infinite loss (updates the\n"
        "trainer skipped) are left out and counted; a malformed line is an error naming the file\n"
        "and line, except an incomplete last line (a writer killed mid-line), which is left out\n"
        "with a warning. When a run was resumed from an earlier checkpoint, its later lines\n"
        "replace the earlier ones from that step on.",
        opts,
        CLI_COUNT(opts),
        "examples:\n"
        "  cllm plot runs/nano -o loss.png\n"
        "  cllm plot runs/nano runs/mini --smooth 50 --log-y -o compare.png\n"
        "  cllm plot runs/nano/metrics.jsonl --x tokens --ymax 6 --title 'gpt-nano on fortunes' "
        "-o loss.png",
        1,
        -1};
    cli_strlist pos = {0};
    int rc = cli_parse(&spec, argc, argv, &pos);
    if (rc >= 0) {
        cli_strlist_free(&pos);
        return rc;
    }
    if (log_y && ((isfinite(ymin) && ymin <= 0) || (isfinite(ymax) && ymax <= 0))) {
        cli_strlist_free(&pos);
        return cli_usage_error(&spec, "--log-y needs positive --ymin/--ymax");
    }
    if (isfinite(ymin) && isfinite(ymax) && !(ymax > ymin)) {
        cli_strlist_free(&pos);
        return cli_usage_error(&spec, "--ymax %g must be above --ymin %g", ymax, ymin);
    }
    cllm_metrics *runs = calloc((size_t)pos.n, sizeof *runs);
    cllm_status st = runs ? CLLM_OK : cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    int loaded = 0;
    for (; st == CLLM_OK && loaded < pos.n; loaded++)
        if ((st = cllm_metrics_load(&runs[loaded], pos.items[loaded])) != CLLM_OK) break;
    if (st == CLLM_OK) {
        cllm_loss_plot_opts o = cllm_loss_plot_opts_default();
        o.width = width;
        o.height = height;
        o.smooth = smooth;
        o.log_y = log_y;
        o.x = !strcmp(x, "tokens") ? CLLM_LOSS_X_TOKENS
              : !strcmp(x, "time") ? CLLM_LOSS_X_TIME
                                   : CLLM_LOSS_X_STEP;
        o.title = title;
        o.ymin = ymin;
        o.ymax = ymax;
        st = cllm_loss_plot_write(out, runs, pos.n, &o);
    }
    if (st == CLLM_OK) {
        printf("wrote %s (%dx%d):", out, width, height);
        for (int i = 0; i < pos.n; i++) {
            const cllm_metrics *m = &runs[i];
            size_t nl = cllm_metrics_count_loss(m), nv = cllm_metrics_count_val(m);
            double last = NAN, best = NAN, best_step = NAN;
            for (size_t k = 0; k < m->n; k++) {
                if (isfinite(m->points[k].loss)) last = m->points[k].loss;
                if (isfinite(m->points[k].val_loss) &&
                    !(m->points[k].val_loss >= best)) /* NaN best: the first one */
                    best = m->points[k].val_loss, best_step = m->points[k].step;
            }
            printf("%s %s: %zu training points", i ? ";" : "", m->name, nl);
            if (nl) printf(" (last loss %.4f)", last);
            printf(", %zu validation", nv);
            if (nv) printf(" (best %.4f at step %.0f)", best, best_step);
            if (m->nonfinite)
                printf(", %ld non-finite value%s left out", m->nonfinite,
                       m->nonfinite == 1 ? "" : "s");
            if (m->superseded) printf(", %ld points replaced by a resume", m->superseded);
            if (m->truncated_tail) printf(", an incomplete last line left out");
        }
        printf("\n");
    }
    for (int i = 0; runs && i < pos.n; i++)
        cllm_metrics_clear(&runs[i]);
    free(runs);
    cli_strlist_free(&pos);
    return cli_report(st);
}
