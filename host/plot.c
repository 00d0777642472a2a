/* The canvas: pixels, source-over blending, anti-aliased shapes by coverage, bitmap text,
 * escapes, the palette and viridis. */
#include "plot_internal.h"

#include "cllm/png.h"
#include "cllm/util.h"
#include "eval_internal.h" /* ev_utf8_decode */
#include "viridis.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- colours */

uint32_t cllm_palette(int i) {
    static const uint32_t tab10[10] = {
        CLLM_RGB(31, 119, 180),  CLLM_RGB(255, 127, 14),  CLLM_RGB(44, 160, 44),
        CLLM_RGB(214, 39, 40),   CLLM_RGB(148, 103, 189), CLLM_RGB(140, 86, 75),
        CLLM_RGB(227, 119, 194), CLLM_RGB(127, 127, 127), CLLM_RGB(188, 189, 34),
        CLLM_RGB(23, 190, 207),
    };
    if (i < 0) i = -i;
    return tab10[i % 10];
}

uint32_t cllm_viridis(double v) {
    if (!(v > 0)) v = 0; /* NaN too */
    int i = v >= 1 ? 255 : (int)(v * 256.0);
    if (i > 255) i = 255;
    const float *e = cllm_viridis_data[i];
    return CLLM_RGB(lround(e[0] * 255.0), lround(e[1] * 255.0), lround(e[2] * 255.0));
}

/* ---------------------------------------------------------------- canvas */

cllm_status cllm_canvas_init(cllm_canvas *c, int width, int height, uint32_t background) {
    memset(c, 0, sizeof *c);
    if (width <= 0 || height <= 0 || width > CLLM_PNG_MAX_SIDE || height > CLLM_PNG_MAX_SIDE)
        return cllm_fail(CLLM_ERR_USAGE, "a picture of %dx%d pixels: each side must be in 1..%d",
                         width, height, CLLM_PNG_MAX_SIDE);
    c->rgba = cllm_malloc((size_t)width * height * 4);
    if (!c->rgba) return CLLM_ERR_NOMEM;
    c->width = width;
    c->height = height;
    uint8_t px[4] = {background >> 24, (background >> 16) & 255, (background >> 8) & 255,
                     background & 255};
    for (size_t i = 0; i < (size_t)width * height; i++)
        memcpy(c->rgba + 4 * i, px, 4);
    cllm_canvas_unclip(c);
    return CLLM_OK;
}

void cllm_canvas_free(cllm_canvas *c) {
    if (!c) return;
    free(c->rgba);
    memset(c, 0, sizeof *c);
}

void cllm_canvas_clip(cllm_canvas *c, int x0, int y0, int x1, int y1) {
    c->clip_x0 = x0 < 0 ? 0 : x0;
    c->clip_y0 = y0 < 0 ? 0 : y0;
    c->clip_x1 = x1 > c->width ? c->width : x1;
    c->clip_y1 = y1 > c->height ? c->height : y1;
}

void cllm_canvas_unclip(cllm_canvas *c) {
    cllm_canvas_clip(c, 0, 0, c->width, c->height);
}

uint32_t cllm_canvas_get(const cllm_canvas *c, int x, int y) {
    if (x < 0 || y < 0 || x >= c->width || y >= c->height) return 0;
    const uint8_t *p = c->rgba + ((size_t)y * c->width + x) * 4;
    return CLLM_RGBA(p[0], p[1], p[2], p[3]);
}

void cllm_canvas_blend(cllm_canvas *c, int x, int y, uint32_t color, float coverage) {
    if (x < c->clip_x0 || y < c->clip_y0 || x >= c->clip_x1 || y >= c->clip_y1) return;
    if (!(coverage > 0)) return;
    if (coverage > 1) coverage = 1;
    float sa = (float)(color & 255) / 255.0f * coverage;
    if (sa <= 0) return;
    uint8_t *p = c->rgba + ((size_t)y * c->width + x) * 4;
    float src[3] = {(float)(color >> 24), (float)((color >> 16) & 255),
                    (float)((color >> 8) & 255)};
    if (sa >= 1.0f) {
        for (int k = 0; k < 3; k++)
            p[k] = (uint8_t)src[k];
        p[3] = 255;
        return;
    }
    float da = p[3] / 255.0f, oa = sa + da * (1 - sa);
    for (int k = 0; k < 3; k++)
        p[k] = (uint8_t)lroundf((src[k] * sa + p[k] * da * (1 - sa)) / oa);
    p[3] = (uint8_t)lroundf(oa * 255.0f);
}

cllm_status cllm_canvas_write_png(const cllm_canvas *c, const char *path) {
    return cllm_png_write(path, c->rgba, c->width, c->height);
}

/* ---------------------------------------------------------------- shapes */

static double clampd(double v, double lo, double hi) {
    return v < lo ? lo : v > hi ? hi : v;
}

void cllm_canvas_fill_rect(cllm_canvas *c, double x0, double y0, double x1, double y1,
                           uint32_t color) {
    if (x1 < x0) {
        double t = x0;
        x0 = x1;
        x1 = t;
    }
    if (y1 < y0) {
        double t = y0;
        y0 = y1;
        y1 = t;
    }
    int ix0 = (int)floor(clampd(x0, c->clip_x0, c->clip_x1));
    int ix1 = (int)ceil(clampd(x1, c->clip_x0, c->clip_x1));
    int iy0 = (int)floor(clampd(y0, c->clip_y0, c->clip_y1));
    int iy1 = (int)ceil(clampd(y1, c->clip_y0, c->clip_y1));
    for (int y = iy0; y < iy1; y++) {
        double cy = fmin(y + 1.0, y1) - fmax((double)y, y0);
        for (int x = ix0; x < ix1; x++) {
            double cx = fmin(x + 1.0, x1) - fmax((double)x, x0);
            cllm_canvas_blend(c, x, y, color, (float)(cx * cy));
        }
    }
}

void cllm_canvas_stroke_rect(cllm_canvas *c, double x0, double y0, double x1, double y1,
                             double width, uint32_t color) {
    cllm_canvas_fill_rect(c, x0, y0, x1, y0 + width, color);
    cllm_canvas_fill_rect(c, x0, y1 - width, x1, y1, color);
    cllm_canvas_fill_rect(c, x0, y0 + width, x0 + width, y1 - width, color);
    cllm_canvas_fill_rect(c, x1 - width, y0 + width, x1, y1 - width, color);
}

/* Coverage of a pixel whose centre is at distance d from a shape's centre line (or edge, for
 * r = 0) when the shape extends `half` on either side: a one-pixel linear ramp; shapes thinner
 * than a pixel fade in proportion. */
static float coverage(double d, double half) {
    double cov = clampd(half + 0.5 - d, 0, 1);
    if (half < 0.5) cov *= 2 * half;
    return (float)cov;
}

static double seg_dist(double px, double py, double x0, double y0, double x1, double y1) {
    double dx = x1 - x0, dy = y1 - y0, l2 = dx * dx + dy * dy;
    double t = l2 > 0 ? clampd(((px - x0) * dx + (py - y0) * dy) / l2, 0, 1) : 0;
    double ex = x0 + t * dx - px, ey = y0 + t * dy - py;
    return sqrt(ex * ex + ey * ey);
}

/* A coverage mask over a box of the canvas (the clip rectangle intersected with what is drawn). */
typedef struct {
    int x0, y0, w, h;
    float *m;
} mask;

/* Rasterise a segment into the mask, keeping each pixel's highest coverage. Only the pixels
 * within half + 1 of the segment are visited, row by row. */
static void mask_segment(mask *k, double x0, double y0, double x1, double y1, double half) {
    double r = half + 1.0;
    int ya = (int)floor(fmin(y0, y1) - r), yb = (int)ceil(fmax(y0, y1) + r);
    if (ya < k->y0) ya = k->y0;
    if (yb > k->y0 + k->h) yb = k->y0 + k->h;
    double dx = x1 - x0, dy = y1 - y0;
    for (int y = ya; y < yb; y++) {
        double cy = y + 0.5;
        /* x range of the segment's neighbourhood on this row */
        double xa, xb;
        if (fabs(dy) < 1e-12) {
            xa = fmin(x0, x1) - r;
            xb = fmax(x0, x1) + r;
        } else {
            double ta = clampd((cy - r - y0) / dy, 0, 1), tb = clampd((cy + r - y0) / dy, 0, 1);
            double xs = x0 + ta * dx, xe = x0 + tb * dx;
            double slope = fabs(dx / dy);
            xa = fmin(xs, xe) - r * (1 + slope);
            xb = fmax(xs, xe) + r * (1 + slope);
        }
        int ia = (int)floor(xa), ib = (int)ceil(xb);
        if (ia < k->x0) ia = k->x0;
        if (ib > k->x0 + k->w) ib = k->x0 + k->w;
        for (int x = ia; x < ib; x++) {
            float cov = coverage(seg_dist(x + 0.5, cy, x0, y0, x1, y1), half);
            float *m = &k->m[(size_t)(y - k->y0) * k->w + (x - k->x0)];
            if (cov > *m) *m = cov;
        }
    }
}

static void mask_apply(cllm_canvas *c, const mask *k, uint32_t color) {
    for (int y = 0; y < k->h; y++)
        for (int x = 0; x < k->w; x++) {
            float m = k->m[(size_t)y * k->w + x];
            if (m > 0) cllm_canvas_blend(c, k->x0 + x, k->y0 + y, color, m);
        }
}

void cllm_canvas_line(cllm_canvas *c, double x0, double y0, double x1, double y1, double width,
                      uint32_t color) {
    double xs[2] = {x0, x1}, ys[2] = {y0, y1};
    (void)cllm_canvas_polyline(c, xs, ys, 2, width, 0, 0, color);
}

/* The mask box: the points' bounding box grown by the half width, inside the clip. */
static bool mask_box(const cllm_canvas *c, const double *x, const double *y, int n, double r,
                     mask *k) {
    double xa = INFINITY, xb = -INFINITY, ya = INFINITY, yb = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i])) continue;
        xa = fmin(xa, x[i]);
        xb = fmax(xb, x[i]);
        ya = fmin(ya, y[i]);
        yb = fmax(yb, y[i]);
    }
    if (!(xa <= xb)) return false;
    int ix0 = (int)floor(clampd(xa - r, c->clip_x0, c->clip_x1));
    int ix1 = (int)ceil(clampd(xb + r, c->clip_x0, c->clip_x1));
    int iy0 = (int)floor(clampd(ya - r, c->clip_y0, c->clip_y1));
    int iy1 = (int)ceil(clampd(yb + r, c->clip_y0, c->clip_y1));
    if (ix1 <= ix0 || iy1 <= iy0) return false;
    k->x0 = ix0;
    k->y0 = iy0;
    k->w = ix1 - ix0;
    k->h = iy1 - iy0;
    return true;
}

cllm_status cllm_canvas_polyline(cllm_canvas *c, const double *x, const double *y, int n,
                                 double width, double dash, double gap, uint32_t color) {
    double half = width / 2;
    mask k;
    if (n < 1 || !(width > 0) || !mask_box(c, x, y, n, half + 1, &k)) return CLLM_OK;
    k.m = cllm_calloc((size_t)k.w * k.h, sizeof *k.m);
    if (!k.m) return CLLM_ERR_NOMEM;
    bool dashed = dash > 0 && gap > 0;
    double phase = 0; /* distance walked into the current dash + gap period */
    for (int i = 0; i + 1 < n; i++) {
        double ax = x[i], ay = y[i], bx = x[i + 1], by = y[i + 1];
        if (!isfinite(ax) || !isfinite(ay) || !isfinite(bx) || !isfinite(by)) {
            phase = 0;
            continue;
        }
        double len = hypot(bx - ax, by - ay);
        if (!dashed) {
            mask_segment(&k, ax, ay, bx, by, half);
            continue;
        }
        /* walk the segment through the dash pattern */
        double t = 0;
        while (t < len) {
            double period = dash + gap, in = fmod(phase, period);
            double room = in < dash ? dash - in : period - in, step = fmin(room, len - t);
            if (in < dash) {
                double u0 = len > 0 ? t / len : 0, u1 = len > 0 ? (t + step) / len : 0;
                mask_segment(&k, ax + u0 * (bx - ax), ay + u0 * (by - ay), ax + u1 * (bx - ax),
                             ay + u1 * (by - ay), half);
            }
            t += step;
            phase += step;
        }
    }
    if (n == 1 && isfinite(x[0]) && isfinite(y[0])) mask_segment(&k, x[0], y[0], x[0], y[0], half);
    mask_apply(c, &k, color);
    free(k.m);
    return CLLM_OK;
}

void cllm_canvas_disc(cllm_canvas *c, double cx, double cy, double r, uint32_t color) {
    int x0 = (int)floor(fmax(cx - r - 1, c->clip_x0)), x1 = (int)ceil(fmin(cx + r + 1, c->clip_x1));
    int y0 = (int)floor(fmax(cy - r - 1, c->clip_y0)), y1 = (int)ceil(fmin(cy + r + 1, c->clip_y1));
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) {
            double d = hypot(x + 0.5 - cx, y + 0.5 - cy);
            cllm_canvas_blend(c, x, y, color, (float)clampd(r + 0.5 - d, 0, 1));
        }
}

/* ---------------------------------------------------------------- text */

size_t cllm_text_escape(char *out, size_t cap, const char *s, size_t n, int flags) {
    size_t at = 0, fit = 0; /* bytes needed so far; bytes written (whole pieces only) */
    bool full = false;
    for (size_t i = 0; i < n;) {
        const unsigned char b = (unsigned char)s[i];
        char buf[16];
        size_t len = 0;
        uint32_t cp = 0;
        int l = ev_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (l == 0) { /* invalid byte */
            len = (size_t)snprintf(buf, sizeof buf, "\\x%02x", b);
            l = 1;
        } else if (cp == ' ' && (flags & CLLM_ESC_SPACES)) {
            len = (size_t)snprintf(buf, sizeof buf, "\xC2\xB7");
        } else if (cp == '\\' && (flags & CLLM_ESC_BACKSLASH)) {
            len = (size_t)snprintf(buf, sizeof buf, "\\\\");
        } else if (cp >= 0x20 && cp < 0x7F) {
            buf[0] = (char)cp;
            len = 1;
        } else if (cp == '\n' || cp == '\t' || cp == '\r') {
            len = (size_t)snprintf(buf, sizeof buf, "\\%c",
                                   cp == '\n'   ? 'n'
                                   : cp == '\t' ? 't'
                                                : 'r');
        } else if (cp < 0x20 || cp == 0x7F) {
            len = (size_t)snprintf(buf, sizeof buf, "\\x%02x", (unsigned)cp);
        } else if (font_find(cp) >= 0 && !(cp == 0xB7 && (flags & CLLM_ESC_SPACES))) {
            memcpy(buf, s + i, (size_t)l);
            len = (size_t)l;
        } else if (cp <= 0xFFFF) {
            len = (size_t)snprintf(buf, sizeof buf, "\\u%04x", (unsigned)cp);
        } else {
            len = (size_t)snprintf(buf, sizeof buf, "\\U%08x", (unsigned)cp);
        }
        if (!full && at + len < cap) {
            memcpy(out + at, buf, len);
            fit = at + len;
        } else {
            full = true; /* pieces are never cut: stop at the first that does not fit */
        }
        at += len;
        i += (size_t)l;
    }
    if (cap) out[fit] = 0;
    return at;
}

/* Calls fn(glyph, index) for each character of the escaped string; returns the count. */
typedef void (*glyph_fn)(void *user, int glyph, int index);

static int each_glyph(const char *s, glyph_fn fn, void *user) {
    size_t n = strlen(s);
    size_t need = cllm_text_escape(NULL, 0, s, n, 0);
    char small[256];
    char *e = need < sizeof small ? small : malloc(need + 1);
    if (!e) return 0;
    cllm_text_escape(e, need + 1, s, n, 0);
    int count = 0;
    for (size_t i = 0; e[i];) {
        uint32_t cp;
        int l = ev_utf8_decode((const unsigned char *)e + i, need - i, &cp);
        if (l <= 0) l = 1, cp = '?';
        int g = font_find(cp);
        if (fn) fn(user, g < 0 ? font_find('?') : g, count);
        count++;
        i += (size_t)l;
    }
    if (e != small) free(e);
    return count;
}

int cllm_text_chars(const char *s) {
    return each_glyph(s, NULL, NULL);
}

int cllm_text_fit_chars(int pixels, int scale) {
    int n = (pixels / (scale < 1 ? 1 : scale) + 1) / CLLM_FONT_ADVANCE;
    return n < 1 ? 1 : n;
}

char *cllm_text_cut(const char *s, int max_chars) {
    size_t n = strlen(s), need = cllm_text_escape(NULL, 0, s, n, 0);
    char *e = malloc(need + 4);
    if (!e) return NULL;
    cllm_text_escape(e, need + 1, s, n, 0);
    if (max_chars >= 1 && cllm_text_chars(e) > max_chars) {
        size_t at = 0; /* the byte after max_chars - 1 characters */
        for (int k = 0; k < max_chars - 1; k++) {
            at++;
            while (((unsigned char)e[at] & 0xC0) == 0x80) at++;
        }
        memcpy(e + at, "\xE2\x80\xA6", 4); /* U+2026 and the NUL */
    }
    return e;
}

int cllm_text_width(const char *s, int scale) {
    int n = cllm_text_chars(s);
    return n ? (n * CLLM_FONT_ADVANCE - 1) * scale : 0;
}

typedef struct {
    cllm_canvas *c;
    int x, y; /* pixel of the text frame's origin (its top-left before rotation) */
    int scale;
    uint32_t color;
    bool vertical;
} text_ctx;

static void draw_glyph(void *user, int g, int index) {
    text_ctx *t = user;
    int s = t->scale;
    for (int row = 0; row < CLLM_FONT_ROWS; row++)
        for (int col = 0; col < 5; col++) {
            if (!font_ink(g, col, row)) continue;
            int u = (index * CLLM_FONT_ADVANCE + col) * s, v = row * s; /* text frame */
            if (!t->vertical)
                cllm_canvas_fill_rect(t->c, t->x + u, t->y + v, t->x + u + s, t->y + v + s,
                                      t->color);
            else /* (u, v) -> (x + v, y - u): rotated a quarter turn counter-clockwise */
                cllm_canvas_fill_rect(t->c, t->x + v, t->y - u - s, t->x + v + s, t->y - u,
                                      t->color);
        }
}

void cllm_canvas_text(cllm_canvas *c, double x, double y, const char *s, int scale, uint32_t color,
                      int anchor, bool vertical) {
    if (scale < 1) scale = 1;
    int w = cllm_text_width(s, scale), h = CLLM_FONT_CAP * scale;
    int ah = anchor & 3, av = anchor & 12;
    int du = ah == CLLM_TEXT_CENTER ? w / 2 : ah == CLLM_TEXT_RIGHT ? w : 0;
    int dv = av == CLLM_TEXT_MIDDLE ? h / 2 : av == CLLM_TEXT_BOTTOM ? h : 0;
    int ax = (int)lround(x), ay = (int)lround(y);
    text_ctx t = {c,       vertical ? ax - dv : ax - du, vertical ? ay + du : ay - dv, scale, color,
                  vertical};
    each_glyph(s, draw_glyph, &t);
}
