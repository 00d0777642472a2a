/* cllm/plot.h — pictures without a plotting library: an RGBA canvas with anti-aliased drawing
 * and a built-in bitmap font, line charts (what `cllm plot` and `cllm report` draw loss curves
 * with) and heatmap grids in viridis (what `cllm attention` draws attention maps with).
 *
 * Tutorial: a canvas.
 *     cllm_canvas c;
 *     CLLM_TRY(cllm_canvas_init(&c, 400, 300, CLLM_WHITE));
 *     cllm_canvas_line(&c, 10, 10, 390, 290, 2.0, CLLM_RGB(31, 119, 180));  // AA, 2 px wide
 *     cllm_canvas_fill_rect(&c, 50, 50, 80, 70, CLLM_RGBA(255, 0, 0, 128)); // blended
 *     cllm_canvas_text(&c, 200, 20, "hello", 2, CLLM_BLACK, CLLM_TEXT_CENTER, false);
 *     CLLM_TRY(cllm_canvas_write_png(&c, "out.png"));
 *     cllm_canvas_free(&c);
 *
 * Coordinates are continuous pixels: pixel (i, j) is the square [i, i+1) x [j, j+1), its
 * centre (i + 0.5, j + 0.5); y grows downwards. Colours are 0xRRGGBBAA, sRGB, not premultiplied;
 * drawing blends source-over with the colour's alpha times the shape's coverage of each pixel
 * (lines and discs: coverage from the distance of the pixel centre to the shape's edge, one
 * pixel of ramp; rectangles: the exact area of the pixel inside).
 *
 * Tutorial: a chart (see cllm_chart_draw), e.g. the loss of two runs:
 *     cllm_chart_series s[2] = {{.label = "train", .x = steps, .y = loss, .n = n,
 *                                .color = cllm_palette(0)}, ...};
 *     cllm_chart_opts o = {.width = 1200, .height = 800, .title = "loss",
 *                          .xlabel = "step", .ylabel = "loss"};
 *     CLLM_TRY(cllm_chart_draw(&c, s, 2, &o, NULL));   // initialises c
 *
 * The font: hand-drawn 5x9 glyphs (cap height 7, descenders 2) for printable ASCII, plus
 * U+00B7 (·) and U+2026 (…); scale s draws each font pixel as s x s pixels (advance 6 s, line
 * 11 s). Anything else in a string is drawn escaped (see cllm_text_escape). No OpenCL here.
 */
#ifndef CLLM_PLOT_H
#define CLLM_PLOT_H

#include "cllm/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- colours */

#define CLLM_RGBA(r, g, b, a)                                                                      \
    (((uint32_t)(r) << 24) | ((uint32_t)(g) << 16) | ((uint32_t)(b) << 8) | (uint32_t)(a))
#define CLLM_RGB(r, g, b) CLLM_RGBA(r, g, b, 255)
#define CLLM_WHITE CLLM_RGB(255, 255, 255)
#define CLLM_BLACK CLLM_RGB(0, 0, 0)
/* The same colour with alpha a (0..255). */
#define CLLM_WITH_ALPHA(c, a) (((uint32_t)(c)&0xFFFFFF00u) | ((uint32_t)(a)&0xFFu))

/* Colour i of the series palette (matplotlib's "tab10": blue, orange, green, red, purple,
 * brown, pink, grey, olive, cyan), repeating after 10. */
uint32_t cllm_palette(int i);
/* matplotlib's viridis at v in [0, 1] (clamped; NaN gives the colour of 0): entry
 * floor(v * 256) of its 256-colour table (1.0 -> entry 255), channels rounded to bytes —
 * the colour matplotlib.colors.to_hex(matplotlib.cm.viridis(v)) names. */
uint32_t cllm_viridis(double v);

/* ---------------------------------------------------------------- canvas */

typedef struct {
    int width, height;
    uint8_t *rgba;        /* (height, width, 4), row-major */
    int clip_x0, clip_y0; /* drawing touches only pixels in [clip_x0, clip_x1) x */
    int clip_x1, clip_y1; /* [clip_y0, clip_y1); the whole canvas after init */
} cllm_canvas;

/* Allocate a width x height canvas filled with `background` (sides 1..CLLM_PNG_MAX_SIDE). */
cllm_status cllm_canvas_init(cllm_canvas *c, int width, int height, uint32_t background);
void cllm_canvas_free(cllm_canvas *c); /* NULL or zeroed: no-op */
/* Restrict drawing to a rectangle (clamped to the canvas); cllm_canvas_unclip resets it. */
void cllm_canvas_clip(cllm_canvas *c, int x0, int y0, int x1, int y1);
void cllm_canvas_unclip(cllm_canvas *c);
/* The pixel at (x, y) as 0xRRGGBBAA (0 outside the canvas). */
uint32_t cllm_canvas_get(const cllm_canvas *c, int x, int y);
/* Blend `color` into pixel (x, y) with coverage in [0, 1] (outside the clip: nothing). */
void cllm_canvas_blend(cllm_canvas *c, int x, int y, uint32_t color, float coverage);
cllm_status cllm_canvas_write_png(const cllm_canvas *c, const char *path);

/* The rectangle [x0, x1) x [y0, y1), anti-aliased at fractional edges. */
void cllm_canvas_fill_rect(cllm_canvas *c, double x0, double y0, double x1, double y1,
                           uint32_t color);
/* Its outline, `width` pixels wide, drawn inside the rectangle. */
void cllm_canvas_stroke_rect(cllm_canvas *c, double x0, double y0, double x1, double y1,
                             double width, uint32_t color);
/* A segment `width` pixels wide with round caps. */
void cllm_canvas_line(cllm_canvas *c, double x0, double y0, double x1, double y1, double width,
                      uint32_t color);
/* A polyline through n points, drawn in one pass (each pixel takes the highest coverage of any
 * segment, so joints are not blended twice). A non-finite coordinate breaks the line there.
 * dash > 0 draws dashes of `dash` pixels separated by gaps of `gap` pixels along its length. */
cllm_status cllm_canvas_polyline(cllm_canvas *c, const double *x, const double *y, int n,
                                 double width, double dash, double gap, uint32_t color);
/* A filled disc of radius r. */
void cllm_canvas_disc(cllm_canvas *c, double cx, double cy, double r, uint32_t color);

/* ---------------------------------------------------------------- text */

#define CLLM_FONT_ADVANCE 6 /* pixels per character at scale 1 (5 of glyph, 1 of spacing) */
#define CLLM_FONT_CAP 7     /* cap height at scale 1: what anchors align to */
#define CLLM_FONT_ROWS 9    /* glyph rows: the cap height and two rows of descenders */
#define CLLM_FONT_LINE 11   /* line height at scale 1 */

/* Anchors for cllm_canvas_text: one horizontal | one vertical. The text's box is its width x
 * the cap height (descenders hang below it). */
enum {
    CLLM_TEXT_LEFT = 0,
    CLLM_TEXT_CENTER = 1,
    CLLM_TEXT_RIGHT = 2,
    CLLM_TEXT_TOP = 0,
    CLLM_TEXT_MIDDLE = 4,
    CLLM_TEXT_BOTTOM = 8,
};

/* Flags for cllm_text_escape. */
enum {
    CLLM_ESC_SPACES = 1,    /* a space becomes U+00B7 '·' (token labels: spaces made visible;
                               a real U+00B7 is then escaped as \u00b7) */
    CLLM_ESC_BACKSLASH = 2, /* a backslash becomes "\\" (so escapes are unambiguous) */
};

/* Make s[0..n) drawable: printable ASCII stays; "\n", "\t", "\r" for those; other control bytes
 * and invalid UTF-8 bytes as "\xNN"; valid non-ASCII code points as "\uXXXX" ("\UXXXXXXXX"
 * above U+FFFF), except the font's own U+00B7 and U+2026. Writes a NUL-terminated UTF-8
 * string of at most cap - 1 bytes into out (cut at a character boundary) and returns the
 * length the whole result needs (like snprintf). */
size_t cllm_text_escape(char *out, size_t cap, const char *s, size_t n, int flags);
/* Characters the font draws for a string (after escaping), and its width in pixels at
 * `scale` (n characters: 6 n - 1 at scale 1; 0 for ""). */
int cllm_text_chars(const char *s);
int cllm_text_width(const char *s, int scale);
/* `s` escaped and, when it has more than max_chars characters, cut to max_chars - 1 of them
 * and "…" (U+2026): a malloc'd string, or NULL when out of memory. */
char *cllm_text_cut(const char *s, int max_chars);
/* The most characters that fit in `pixels` at `scale` (at least 1). */
int cllm_text_fit_chars(int pixels, int scale);
/* Draw NUL-terminated UTF-8 `s` (escaped as above) at `scale` with its anchor point at (x, y).
 * vertical: rotated 90 degrees counter-clockwise (reading upwards, as a y-axis title); the
 * anchor then refers to the text's own frame (LEFT is its start, at the bottom). */
void cllm_canvas_text(cllm_canvas *c, double x, double y, const char *s, int scale, uint32_t color,
                      int anchor, bool vertical);
/* The font's glyphs, for tests: count, and the code point of glyph i. */
int cllm_font_glyph_count(void);
uint32_t cllm_font_glyph_cp(int i);
bool cllm_font_has(uint32_t cp);

/* ---------------------------------------------------------------- ticks */

/* "Nice" ticks: the step is 1, 2 or 5 times a power of ten, the smallest that gives at most
 * max_ticks ticks in [lo, hi]; ticks are the multiples of the step inside [lo, hi] (with a
 * tolerance of 1e-9 steps). Returns the count (<= cap) and *step. */
int cllm_nice_ticks(double lo, double hi, int max_ticks, double *ticks, int cap, double *step);
/* Ticks for a log axis over [lo, hi] (0 < lo < hi), at the lowest of three levels that gives at
 * least min_ticks: 0 = the powers of ten inside, 1 = also 2 and 5 times them, 2 = every 1..9
 * times them (level 2 when none does); max_level caps the level. *level (may be NULL) says
 * which was used. Returns the count (<= cap). */
int cllm_log_ticks(double lo, double hi, int min_ticks, int max_level, double *ticks, int cap,
                   int *level);
/* A tick label for v on an axis whose ticks are `step` apart and reach |axis_max| at most: the
 * decimals the step needs ("0.2", "3.0", "0.05"), and when axis_max >= 10000 thousands,
 * millions or billions as k, M, G for the whole axis ("250k", "1.5M"); zero is "0". With
 * step 0 (log axes) each value gets the decimals it needs itself ("0.02", "5", "100"). */
void cllm_tick_label(char *out, size_t cap, double v, double step, double axis_max);

/* ---------------------------------------------------------------- charts */

typedef struct {
    const char *label;   /* legend text; NULL or "" keeps it out of the legend */
    const double *x, *y; /* n points; a non-finite value breaks the line (and is not drawn) */
    int n;
    uint32_t color;
    double width; /* line width in pixels; 0: 1.25 x the chart's scale (see below) */
    bool dashed;  /* dashes of 4 x width, gaps of 2.5 x width */
    bool markers; /* a disc at every point (white-ringed) */
    bool no_line; /* markers only */
} cllm_chart_series;

typedef struct {
    int width, height; /* pixels; 0: 1200 x 800 */
    const char *title; /* NULL: none */
    const char *xlabel, *ylabel;
    bool log_y;
    bool x_from_zero;  /* the x axis starts at 0 (e.g. steps, tokens) when data are >= 0 */
    bool x_integer;    /* x ticks at whole numbers only (steps) */
    double ymin, ymax; /* axis limits; NaN (or equal values): from the data, padded 5% */
    int scale;         /* font and line scale; 0: max(1, min(width, height) / 400) */
} cllm_chart_opts;

/* Where a chart put things, for callers that add to it and for tests. */
typedef struct {
    double x0, y0, x1, y1;         /* the plot area, continuous pixel coordinates */
    double xmin, xmax, ymin, ymax; /* the axis limits (data values at x0, x1, y1, y0) */
    bool log_y;
    int n_xticks, n_yticks;
    /* tick values; their grid lines are the columns floor(cllm_chart_px(x)) and the rows
     * floor(cllm_chart_py(y)) */
    double xticks[32], yticks[32];
    int legend_x0, legend_y0, legend_x1, legend_y1; /* the legend box (all 0: no legend) */
    int scale;
} cllm_chart_layout;

/* Pixel coordinates of a data point under a layout. */
double cllm_chart_px(const cllm_chart_layout *l, double x);
double cllm_chart_py(const cllm_chart_layout *l, double y);

/* Initialise `c` (o->width x o->height, white) and draw a line chart: title, a framed plot
 * area with a light grid at the major ticks (and the 2..9 multiples on a decade-only log axis),
 * ticks and tick labels (nice 1-2-5 steps spaced so labels never touch; decades on a log
 * axis), axis titles (the y title rotated), the series clipped to the plot area in the given
 * order, and a legend in the corner of the plot area that covers the fewest points. Fails
 * (CLLM_ERR_USAGE) when no series has a finite point (on a log axis: a positive one).
 * `layout` may be NULL. */
cllm_status cllm_chart_draw(cllm_canvas *c, const cllm_chart_series *series, int n_series,
                            const cllm_chart_opts *o, cllm_chart_layout *layout);

/* ---------------------------------------------------------------- heatmaps */

typedef struct {
    const float *values; /* (rows, cols, T, T): map (r, c), row i (query), column j
                            (key) at values[((r * cols + c) * T + i) * T + j] */
    int rows, cols, T;
    const char *const *labels;       /* T raw token strings (escaped with CLLM_ESC_SPACES |
                                        CLLM_ESC_BACKSLASH when drawn, cut to 12 characters
                                        with "…"), or NULL */
    const size_t *label_lens;        /* their lengths in bytes (labels may hold NUL bytes); NULL:
                                        NUL-terminated */
    const char *title;               /* NULL: none */
    const char *row_name, *col_name; /* grids: row and column headings "<row_name> <id>" */
    const int *row_ids, *col_ids;    /* the ids shown (NULL: 0, 1, ...) */
    const char *xlabel, *ylabel;     /* axis titles of a single map */
    int cell;                        /* pixels per cell; 0: automatic */
    double vmax;                     /* colour scale [0, vmax]; 0: 1 */
    const char *colorbar_label;      /* NULL: none */
} cllm_heatmap_opts;

typedef struct {
    int x0, y0;           /* top-left pixel of map (0, 0) */
    int pitch_x, pitch_y; /* map (r, c) starts at (x0 + c * pitch_x, y0 + r * pitch_y) */
    int cell;             /* each cell is cell x cell pixels: cell (i, j) of a map at (mx, my)
                             covers [mx + j cell, mx + (j+1) cell) x [my + i cell, ...) */
    int label_every;      /* token labels drawn for every label_every-th token (0: none) */
    int label_scale;
    int bar_x0, bar_y0, bar_x1, bar_y1; /* the colour bar: vmax at the top row, 0 at the bottom */
    double vmax;
} cllm_heatmap_layout;

/* Initialise `c` to the size the maps need and draw them: each T x T map in viridis over
 * [0, vmax] (values clamped), token labels on the left (queries) and below (keys, rotated)
 * when cells are large enough (every k-th label otherwise), headings for a grid, a title and
 * a colour bar with nice ticks. A canvas beyond 64 M pixels is refused (CLLM_ERR_TOO_LARGE)
 * naming its size. `layout` may be NULL. */
cllm_status cllm_heatmap_draw(cllm_canvas *c, const cllm_heatmap_opts *o,
                              cllm_heatmap_layout *layout);

#ifdef __cplusplus
}
#endif
#endif
