/* Heatmap grids in viridis with token labels, headings and a colour bar (cllm attention). */
#include "plot_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INK CLLM_RGB(38, 38, 38)
#define FRAME CLLM_RGB(150, 150, 150)
#define MAX_PIXELS (64.0 * 1024 * 1024)
#define LABEL_CHARS 12 /* longer token labels are cut, ending in "…" */

/* Token labels as drawn: escaped (spaces as '·', backslashes doubled), at most LABEL_CHARS. */
static char **make_labels(const cllm_heatmap_opts *o) {
    char **lab = calloc((size_t)o->T, sizeof *lab);
    if (!lab) return NULL;
    for (int i = 0; i < o->T; i++) {
        const char *s = o->labels[i];
        size_t n = o->label_lens ? o->label_lens[i] : strlen(s);
        size_t need = cllm_text_escape(NULL, 0, s, n, CLLM_ESC_SPACES | CLLM_ESC_BACKSLASH);
        char *e = malloc(need + 1);
        if (!e) goto fail;
        cllm_text_escape(e, need + 1, s, n, CLLM_ESC_SPACES | CLLM_ESC_BACKSLASH);
        lab[i] = cllm_text_cut(e, LABEL_CHARS);
        free(e);
        if (!lab[i]) goto fail;
    }
    return lab;
fail:
    for (int i = 0; i < o->T; i++)
        free(lab[i]);
    free(lab);
    return NULL;
}

static void free_labels(char **lab, int T) {
    for (int i = 0; lab && i < T; i++)
        free(lab[i]);
    free(lab);
}

cllm_status cllm_heatmap_draw(cllm_canvas *c, const cllm_heatmap_opts *o,
                              cllm_heatmap_layout *layout) {
    memset(c, 0, sizeof *c);
    const int T = o->T, R = o->rows, C = o->cols;
    if (T < 1 || R < 1 || C < 1)
        return cllm_fail(CLLM_ERR_USAGE,
                         "a heatmap needs at least one map of one cell (got %d x "
                         "%d maps of %d x %d)",
                         R, C, T, T);
    const bool single = R == 1 && C == 1;
    cllm_heatmap_layout L;
    memset(&L, 0, sizeof L);
    L.vmax = o->vmax > 0 ? o->vmax : 1;
    int cell = o->cell;
    if (cell <= 0) {
        cell = single ? 720 / T : 200 / T;
        int hi = single ? 48 : 24;
        cell = cell < (single ? 2 : 1) ? (single ? 2 : 1) : cell > hi ? hi : cell;
    }
    L.cell = cell;
    const int M = T * cell;

    /* token labels: every one when cells are tall enough for the font, else every k-th */
    char **lab = NULL;
    if (o->labels && cell >= 2) {
        L.label_scale = single && cell >= 20 ? 2 : 1;
        int need = CLLM_FONT_CAP * L.label_scale + 3;
        L.label_every = cell >= need ? 1 : (need + cell - 1) / cell;
        if (!single && cell < 4) L.label_every = 0; /* thumbnails: no labels */
    }
    if (L.label_every) {
        lab = make_labels(o);
        if (!lab) return cllm_fail(CLLM_ERR_NOMEM, "out of memory for token labels");
    }
    int lw = 0; /* the widest label drawn */
    for (int i = 0; lab && i < T; i += L.label_every) {
        int w = cllm_text_width(lab[i], L.label_scale);
        if (w > lw) lw = w;
    }

    const int pad = 10, text2 = CLLM_FONT_CAP * 2, tick = 5;
    const int head_s = M >= 120 ? 2 : 1, head_h = CLLM_FONT_CAP * head_s;
    const bool title = o->title && *o->title;
    const bool row_head = !single && o->row_name, col_head = !single && o->col_name;
    const bool xlabel = single && o->xlabel && *o->xlabel,
               ylabel = single && o->ylabel && *o->ylabel;
    const int gap = single ? 0 : 2 * pad + (col_head ? head_h : 0);
    const int label_gap = lab ? lw + 6 : 0;
    int left = pad + (ylabel ? text2 + pad : 0) + (row_head ? head_h + pad : 0) + label_gap;
    int top = pad + (title ? text2 + 2 * pad : 0) + (col_head ? head_h + pad : 0);
    L.pitch_x = M + (single ? 0 : 2 * pad);
    L.pitch_y = M + gap;
    int grid_w = C * M + (C - 1) * (L.pitch_x - M), grid_h = R * M + (R - 1) * (L.pitch_y - M);
    int below = label_gap + (xlabel ? pad + text2 : 0) + pad;
    L.x0 = left;
    L.y0 = top;

    /* colour bar: as tall as the maps (at least 120 px), ticks at nice values of [0, vmax] */
    const int bar_s = single ? 2 : head_s;
    double ticks[16], step;
    int nt = cllm_nice_ticks(0, L.vmax, 6, ticks, 16, &step);
    char tl[16][32];
    int tlw = 0;
    for (int i = 0; i < nt; i++) {
        cllm_tick_label(tl[i], sizeof tl[i], ticks[i], step, L.vmax);
        int w = cllm_text_width(tl[i], bar_s);
        if (w > tlw) tlw = w;
    }
    int bar_h = grid_h < 120 ? 120 : grid_h;
    L.bar_x0 = left + grid_w + 2 * pad;
    L.bar_x1 = L.bar_x0 + 10 * bar_s;
    L.bar_y0 = top;
    L.bar_y1 = top + bar_h;
    const bool bar_title = o->colorbar_label && *o->colorbar_label;
    int W = L.bar_x1 + tick + 4 + tlw + pad + (bar_title ? pad + CLLM_FONT_CAP * bar_s : 0) + pad;
    if (title) { /* the picture widens for its title up to 1200 px; beyond, the title is cut */
        int tw = cllm_text_width(o->title, 2) + 2 * pad;
        if (tw > W) W = tw < 1200 ? tw : W > 1200 ? W : 1200;
    }
    int H = top + (grid_h > bar_h ? grid_h : bar_h) + below;
    if ((double)W * H > MAX_PIXELS) {
        free_labels(lab, T);
        return cllm_fail(CLLM_ERR_TOO_LARGE,
                         "the picture would be %dx%d pixels (%d x %d maps of "
                         "%d x %d cells, %d px each), more than %.0f M pixels: draw one map, "
                         "fewer tokens or smaller cells",
                         W, H, R, C, T, T, cell, MAX_PIXELS / 1048576);
    }
    cllm_status st = cllm_canvas_init(c, W, H, CLLM_WHITE);
    if (st != CLLM_OK) {
        free_labels(lab, T);
        return st;
    }

    /* the maps */
    for (int r = 0; r < R; r++)
        for (int cc = 0; cc < C; cc++) {
            int mx = L.x0 + cc * L.pitch_x, my = L.y0 + r * L.pitch_y;
            const float *v = o->values + (size_t)(r * C + cc) * T * T;
            cllm_canvas_stroke_rect(c, mx - 1, my - 1, mx + M + 1, my + M + 1, 1, FRAME);
            for (int i = 0; i < T; i++)
                for (int j = 0; j < T; j++)
                    cllm_canvas_fill_rect(c, mx + j * cell, my + i * cell, mx + (j + 1) * cell,
                                          my + (i + 1) * cell,
                                          cllm_viridis(v[(size_t)i * T + j] / L.vmax));
            if (col_head && r == 0) {
                char h[64];
                snprintf(h, sizeof h, "%s %d", o->col_name, o->col_ids ? o->col_ids[cc] : cc);
                cllm_canvas_text(c, mx + M / 2.0, my - pad, h, head_s, INK,
                                 CLLM_TEXT_CENTER | CLLM_TEXT_BOTTOM, false);
            }
            if (row_head && cc == 0) {
                char h[64];
                snprintf(h, sizeof h, "%s %d", o->row_name, o->row_ids ? o->row_ids[r] : r);
                cllm_canvas_text(c, mx - label_gap - pad - head_h, my + M / 2.0, h, head_s, INK,
                                 CLLM_TEXT_CENTER | CLLM_TEXT_TOP, true);
            }
            if (lab && cc == 0) /* query labels, right-aligned beside each row */
                for (int i = 0; i < T; i += L.label_every)
                    cllm_canvas_text(c, mx - 6, my + i * cell + cell / 2.0, lab[i], L.label_scale,
                                     INK, CLLM_TEXT_RIGHT | CLLM_TEXT_MIDDLE, false);
            if (lab && r == R - 1) /* key labels below each column, reading upwards */
                for (int j = 0; j < T; j += L.label_every)
                    cllm_canvas_text(c, mx + j * cell + cell / 2.0, my + M + 6, lab[j],
                                     L.label_scale, INK, CLLM_TEXT_RIGHT | CLLM_TEXT_MIDDLE, true);
        }

    /* titles */
    if (title) {
        char *t = cllm_text_cut(o->title, cllm_text_fit_chars(W - 2 * pad, 2));
        if (t)
            cllm_canvas_text(c, W / 2.0, pad, t, 2, CLLM_BLACK, CLLM_TEXT_CENTER | CLLM_TEXT_TOP,
                             false);
        free(t);
    }
    if (xlabel)
        cllm_canvas_text(c, L.x0 + M / 2.0, H - pad, o->xlabel, 2, CLLM_BLACK,
                         CLLM_TEXT_CENTER | CLLM_TEXT_BOTTOM, false);
    if (ylabel)
        cllm_canvas_text(c, pad, L.y0 + M / 2.0, o->ylabel, 2, CLLM_BLACK,
                         CLLM_TEXT_CENTER | CLLM_TEXT_TOP, true);

    /* colour bar: row y shows the value at its centre */
    for (int y = L.bar_y0; y < L.bar_y1; y++) {
        double v = L.vmax * (1 - (y - L.bar_y0 + 0.5) / (L.bar_y1 - L.bar_y0));
        cllm_canvas_fill_rect(c, L.bar_x0, y, L.bar_x1, y + 1, cllm_viridis(v / L.vmax));
    }
    cllm_canvas_stroke_rect(c, L.bar_x0 - 1, L.bar_y0 - 1, L.bar_x1 + 1, L.bar_y1 + 1, 1, FRAME);
    for (int i = 0; i < nt; i++) {
        double y = L.bar_y1 - ticks[i] / L.vmax * (L.bar_y1 - L.bar_y0);
        int yi = (int)floor(y);
        if (yi >= L.bar_y1) yi = L.bar_y1 - 1;
        cllm_canvas_fill_rect(c, L.bar_x1 + 1, yi, L.bar_x1 + 1 + tick, yi + 1, INK);
        cllm_canvas_text(c, L.bar_x1 + tick + 4, yi + 0.5, tl[i], bar_s, INK,
                         CLLM_TEXT_LEFT | CLLM_TEXT_MIDDLE, false);
    }
    if (bar_title)
        cllm_canvas_text(c, L.bar_x1 + tick + 4 + tlw + pad, (L.bar_y0 + L.bar_y1) / 2.0,
                         o->colorbar_label, bar_s, INK, CLLM_TEXT_CENTER | CLLM_TEXT_TOP, true);
    free_labels(lab, T);
    if (layout) *layout = L;
    return CLLM_OK;
}
