/* The drawing module without a device: PNG round trips and refusals; coverage of rectangles,
 * lines and dashes at known pixels; the font (every glyph present and distinct, text drawn
 * exactly where its bitmap says, rotated text its transpose); escapes; nice ticks and labels;
 * viridis against matplotlib's own colours (tests/fixtures/viridis.txt); charts whose lines,
 * grid, frame, labels and legend are where the layout says; loss plots of metrics.jsonl files
 * (a line through its known points, the smoothed curve at its known value, the reader's
 * strict and lenient cases); heatmaps whose cells have the colours of their values. */
#include "testutil.h"

#include "cllm/metrics.h"
#include "cllm/plot.h"
#include "cllm/png.h"
#include "cllm/util.h"
#include "plot_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_ink(uint32_t px) { /* dark grey or black text on white */
    return (px >> 24) < 120 && ((px >> 16) & 255) < 120 && ((px >> 8) & 255) < 120;
}

static int ink_in(const cllm_canvas *c, int x0, int y0, int x1, int y1) {
    int n = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            n += is_ink(cllm_canvas_get(c, x, y));
    return n;
}

static void write_text(const char *path, const char *text) {
    CHECK_OK(cllm_write_file_atomic(path, text, strlen(text)));
}

/* ---------------------------------------------------------------- PNG */

static void test_png(const char *dir) {
    const int w = 7, h = 5;
    uint8_t px[7 * 5 * 4];
    for (int i = 0; i < w * h * 4; i++)
        px[i] = (uint8_t)(i * 37 + 11);
    for (int alpha = 0; alpha < 2; alpha++) {
        if (alpha == 0)
            for (int i = 3; i < w * h * 4; i += 4)
                px[i] = 255; /* opaque: stored as RGB */
        else
            px[3] = 17;
        char *path = cllm_strdup_printf("%s/rt%d.png", dir, alpha);
        CHECK_OK(cllm_png_write(path, px, w, h));
        uint8_t *back = NULL;
        int bw = 0, bh = 0;
        CHECK_OK(cllm_png_read(path, &back, &bw, &bh));
        CHECK(bw == w && bh == h);
        CHECK(back && memcmp(back, px, sizeof px) == 0);
        free(back);
        /* truncated and foreign files are refused, naming the file */
        char *data;
        size_t len;
        CHECK_OK(cllm_read_file(path, &data, &len));
        CHECK(cllm_png_decode(&back, &bw, &bh, (uint8_t *)data, len / 2, "half.png") ==
              CLLM_ERR_FORMAT);
        CHECK(strstr(cllm_last_error(), "half.png") != NULL);
        CHECK(back == NULL);
        free(data);
        free(path);
    }
    uint8_t *back = NULL;
    int bw, bh;
    CHECK(cllm_png_decode(&back, &bw, &bh, (const uint8_t *)"GIF89a....", 10, "x.gif") ==
          CLLM_ERR_FORMAT);
    CHECK(strstr(cllm_last_error(), "not a PNG") != NULL);
    CHECK(cllm_png_read("/nonexistent/x.png", &back, &bw, &bh) == CLLM_ERR_IO);
    CHECK(cllm_png_write("/nonexistent/dir/x.png", px, w, h) == CLLM_ERR_IO);
    CHECK(cllm_png_write("x.png", px, 0, h) == CLLM_ERR_USAGE);
}

/* ---------------------------------------------------------------- shapes */

static void test_shapes(void) {
    cllm_canvas c;
    CHECK_OK(cllm_canvas_init(&c, 40, 30, CLLM_WHITE));
    const uint32_t red = CLLM_RGB(200, 10, 20);
    /* an integer rectangle is exact; a half-pixel edge blends half */
    cllm_canvas_fill_rect(&c, 2, 3, 6, 5, red);
    CHECK(cllm_canvas_get(&c, 2, 3) == red && cllm_canvas_get(&c, 5, 4) == red);
    CHECK(cllm_canvas_get(&c, 6, 4) == CLLM_WHITE && cllm_canvas_get(&c, 1, 3) == CLLM_WHITE);
    CHECK(cllm_canvas_get(&c, 2, 5) == CLLM_WHITE && cllm_canvas_get(&c, 2, 2) == CLLM_WHITE);
    cllm_canvas_fill_rect(&c, 10, 10, 11.5, 11, CLLM_BLACK);
    CHECK(cllm_canvas_get(&c, 10, 10) == CLLM_BLACK);
    CHECK(cllm_canvas_get(&c, 11, 10) == CLLM_RGB(128, 128, 128)); /* 255 * 0.5 rounded */
    /* alpha blending: 50% black over white */
    cllm_canvas_fill_rect(&c, 20, 20, 21, 21, CLLM_RGBA(0, 0, 0, 128));
    uint32_t g = cllm_canvas_get(&c, 20, 20);
    CHECK_MSG((g >> 24) == 127 && (g & 255) == 255, "got %08x", g);
    cllm_canvas_free(&c);

    /* a horizontal line of width 2 centred on y = 10 covers rows 9 and 10, nothing else */
    CHECK_OK(cllm_canvas_init(&c, 40, 30, CLLM_WHITE));
    cllm_canvas_line(&c, 5, 10, 35, 10, 2, red);
    for (int x = 6; x < 34; x++) {
        CHECK(cllm_canvas_get(&c, x, 9) == red && cllm_canvas_get(&c, x, 10) == red);
        CHECK(cllm_canvas_get(&c, x, 8) == CLLM_WHITE && cllm_canvas_get(&c, x, 11) == CLLM_WHITE);
    }
    /* a diagonal: full colour on its pixels, white two pixels away, partial in between */
    cllm_canvas_line(&c, 5.5, 15.5, 20.5, 28.5, 2, red);
    CHECK(cllm_canvas_get(&c, 12, 21) != CLLM_WHITE);
    CHECK(cllm_canvas_get(&c, 5, 15) == red);
    CHECK(cllm_canvas_get(&c, 12, 26) == CLLM_WHITE);
    /* clipping */
    cllm_canvas_clip(&c, 0, 0, 20, 30);
    cllm_canvas_line(&c, 0, 3.5, 40, 3.5, 1, red);
    CHECK(cllm_canvas_get(&c, 19, 3) == red && cllm_canvas_get(&c, 20, 3) == CLLM_WHITE);
    cllm_canvas_unclip(&c);
    cllm_canvas_free(&c);

    /* a polyline with a translucent colour blends its joint once, not twice */
    CHECK_OK(cllm_canvas_init(&c, 40, 30, CLLM_WHITE));
    double xs[3] = {5.5, 20.5, 20.5}, ys[3] = {5.5, 5.5, 25.5};
    CHECK_OK(cllm_canvas_polyline(&c, xs, ys, 3, 3, 0, 0, CLLM_RGBA(0, 0, 255, 128)));
    CHECK(cllm_canvas_get(&c, 20, 5) == cllm_canvas_get(&c, 12, 5));
    CHECK(cllm_canvas_get(&c, 20, 5) == cllm_canvas_get(&c, 20, 15));
    /* a NaN breaks the line */
    double bx[3] = {5.5, NAN, 30.5}, by[3] = {20.5, 20.5, 20.5};
    CHECK_OK(cllm_canvas_polyline(&c, bx, by, 3, 1, 0, 0, red));
    CHECK(cllm_canvas_get(&c, 15, 20) == CLLM_WHITE);
    cllm_canvas_free(&c);

    /* dashes of 6 px and gaps of 4 px along a 1 px line: runs of 6 (+ round caps) and gaps */
    CHECK_OK(cllm_canvas_init(&c, 60, 5, CLLM_WHITE));
    double dx[2] = {0, 60}, dy[2] = {2.5, 2.5};
    CHECK_OK(cllm_canvas_polyline(&c, dx, dy, 2, 1, 6, 4, CLLM_BLACK));
    for (int k = 0; k < 6; k++) {
        CHECK(cllm_canvas_get(&c, 10 * k + 1, 2) == CLLM_BLACK);
        CHECK(cllm_canvas_get(&c, 10 * k + 4, 2) == CLLM_BLACK);
        CHECK(cllm_canvas_get(&c, 10 * k + 8, 2) == CLLM_WHITE);
    }
    cllm_canvas_free(&c);

    /* a disc */
    CHECK_OK(cllm_canvas_init(&c, 20, 20, CLLM_WHITE));
    cllm_canvas_disc(&c, 10, 10, 4, red);
    CHECK(cllm_canvas_get(&c, 10, 10) == red && cllm_canvas_get(&c, 12, 9) == red);
    CHECK(cllm_canvas_get(&c, 15, 10) == CLLM_WHITE && cllm_canvas_get(&c, 10, 4) == CLLM_WHITE);
    cllm_canvas_free(&c);
    CHECK(cllm_canvas_init(&c, 0, 10, CLLM_WHITE) == CLLM_ERR_USAGE);
}

/* ---------------------------------------------------------------- font and text */

static void test_font(void) {
    /* every printable ASCII character has a glyph; all but the space have ink; no two alike */
    int n = cllm_font_glyph_count();
    CHECK(n >= 95);
    for (uint32_t cp = 0x20; cp < 0x7F; cp++)
        CHECK_MSG(cllm_font_has(cp), "no glyph %c", (int)cp);
    CHECK(cllm_font_has(0xB7) && cllm_font_has(0x2026) && !cllm_font_has(0xE9));
    for (int i = 0; i < n; i++) {
        int ink = 0;
        for (int r = 0; r < CLLM_FONT_ROWS; r++)
            for (int col = 0; col < 5; col++)
                ink += font_ink(i, col, r);
        CHECK_MSG((ink == 0) == (cllm_font_glyph_cp(i) == ' '), "glyph U+%04x has %d ink pixels",
                  cllm_font_glyph_cp(i), ink);
        for (int j = 0; j < i; j++) {
            bool same = true;
            for (int r = 0; r < CLLM_FONT_ROWS && same; r++)
                for (int col = 0; col < 5 && same; col++)
                    same = font_ink(i, col, r) == font_ink(j, col, r);
            CHECK_MSG(!same, "glyphs U+%04x and U+%04x are identical", cllm_font_glyph_cp(i),
                      cllm_font_glyph_cp(j));
        }
    }
    /* 'T' is a full top bar and a stem: drawn at scale 3 from (4, 2) */
    cllm_canvas c;
    CHECK_OK(cllm_canvas_init(&c, 60, 40, CLLM_WHITE));
    cllm_canvas_text(&c, 4, 2, "T", 3, CLLM_BLACK, CLLM_TEXT_LEFT | CLLM_TEXT_TOP, false);
    for (int x = 4; x < 4 + 15; x++)
        CHECK(cllm_canvas_get(&c, x, 2) == CLLM_BLACK);
    CHECK(cllm_canvas_get(&c, 4 + 15, 2) == CLLM_WHITE && cllm_canvas_get(&c, 3, 2) == CLLM_WHITE);
    for (int y = 2; y < 2 + 21; y++)
        CHECK(cllm_canvas_get(&c, 4 + 7, y) == CLLM_BLACK);
    CHECK(cllm_canvas_get(&c, 4, 2 + 3) == CLLM_WHITE); /* below the bar's left end */
    CHECK(cllm_canvas_get(&c, 4 + 7, 2 + 21) == CLLM_WHITE);
    cllm_canvas_free(&c);

    /* every pixel of a string is where the glyph bitmaps put it; rotated text is the transpose */
    const char *s = "Ag{7";
    int w = cllm_text_width(s, 2);
    CHECK(w == (4 * 6 - 1) * 2);
    cllm_canvas hz, vt;
    CHECK_OK(cllm_canvas_init(&hz, 80, 40, CLLM_WHITE));
    CHECK_OK(cllm_canvas_init(&vt, 40, 80, CLLM_WHITE));
    cllm_canvas_text(&hz, 10, 10, s, 2, CLLM_BLACK, CLLM_TEXT_LEFT | CLLM_TEXT_TOP, false);
    cllm_canvas_text(&vt, 10, 70, s, 2, CLLM_BLACK, CLLM_TEXT_LEFT | CLLM_TEXT_TOP, true);
    int bad = 0, inked = 0;
    for (int k = 0; k < 4; k++) {
        int g = font_find((unsigned char)s[k]);
        for (int r = 0; r < CLLM_FONT_ROWS; r++)
            for (int col = 0; col < 6; col++)
                for (int d = 0; d < 4; d++) {
                    int u = (k * 6 + col) * 2 + d % 2, v = r * 2 + d / 2; /* text frame */
                    bool want = col < 5 && font_ink(g, col, r);
                    inked += want;
                    bad += (cllm_canvas_get(&hz, 10 + u, 10 + v) == CLLM_BLACK) != want;
                    bad += (cllm_canvas_get(&vt, 10 + v, 70 - 1 - u) == CLLM_BLACK) != want;
                }
    }
    CHECK_MSG(bad == 0 && inked > 100, "%d pixels differ from the bitmaps (%d inked)", bad, inked);
    /* anchors: right/bottom puts the text's box just left of and above the point */
    CHECK_OK(cllm_canvas_init(&c, 80, 40, CLLM_WHITE));
    cllm_canvas_text(&c, 60, 30, "T", 1, CLLM_BLACK, CLLM_TEXT_RIGHT | CLLM_TEXT_BOTTOM, false);
    CHECK(cllm_canvas_get(&c, 55, 23) == CLLM_BLACK && cllm_canvas_get(&c, 59, 23) == CLLM_BLACK);
    CHECK(cllm_canvas_get(&c, 60, 23) == CLLM_WHITE && cllm_canvas_get(&c, 57, 30) == CLLM_WHITE);
    cllm_canvas_free(&c);
    cllm_canvas_free(&hz);
    cllm_canvas_free(&vt);
}

static void test_escape(void) {
    static const struct {
        const char *in;
        size_t n;
        int flags;
        const char *out;
    } cases[] = {
        {"plain", 5, 0, "plain"},
        {" the", 4, CLLM_ESC_SPACES, "\xC2\xB7the"},
        {" the", 4, 0, " the"},
        {"a\nb\tc\rd", 7, 0, "a\\nb\\tc\\rd"},
        {"\x01\x7f", 2, 0, "\\x01\\x7f"},
        {"x\0y", 3, 0, "x\\x00y"},
        {"caf\xC3\xA9", 5, 0, "caf\\u00e9"},
        {"\xC3", 1, 0, "\\xc3"}, /* half a UTF-8 character (a BPE token) */
        {"\xFF\xFE", 2, 0, "\\xff\\xfe"},
        {"\xF0\x9F\x98\x80", 4, 0, "\\U0001f600"},
        {"a\\b", 3, CLLM_ESC_BACKSLASH, "a\\\\b"},
        {"a\\b", 3, 0, "a\\b"},
        {"\xE2\x80\xA6", 3, 0, "\xE2\x80\xA6"},      /* the font's own ellipsis */
        {"\xC2\xB7", 2, CLLM_ESC_SPACES, "\\u00b7"}, /* a real middle dot, not a space */
        {"\xC2\xB7", 2, 0, "\xC2\xB7"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[64];
        size_t need = cllm_text_escape(out, sizeof out, cases[i].in, cases[i].n, cases[i].flags);
        CHECK_MSG(!strcmp(out, cases[i].out), "case %zu: got '%s', want '%s'", i, out,
                  cases[i].out);
        CHECK(need == strlen(cases[i].out));
    }
    /* a short buffer cuts between escapes, never inside one */
    char small[6];
    size_t need = cllm_text_escape(small, sizeof small, "ab\ncd", 5, 0);
    CHECK(need == 6 && !strcmp(small, "ab\\nc"));
    need = cllm_text_escape(small, 4, "ab\ncd", 5, 0);
    CHECK(!strcmp(small, "ab"));
    CHECK(cllm_text_chars("a\xC2\xB7"
                          "b") == 3 &&
          cllm_text_chars("\x01") == 4);
    CHECK(cllm_text_width("", 2) == 0);
    /* cutting to a number of characters ends in an ellipsis */
    char *cut = cllm_text_cut("abcdef", 4);
    CHECK(cut && !strcmp(cut, "abc\xE2\x80\xA6") && cllm_text_chars(cut) == 4);
    free(cut);
    cut = cllm_text_cut("ab\xC3\xA9", 4); /* escaped first: "ab\u00e9" */
    CHECK(cut && !strcmp(cut, "ab\\\xE2\x80\xA6"));
    free(cut);
    cut = cllm_text_cut("abcd", 4);
    CHECK(cut && !strcmp(cut, "abcd"));
    free(cut);
    CHECK(cllm_text_fit_chars(23, 1) == 4 && cllm_text_fit_chars(24, 2) == 2);
}

/* ---------------------------------------------------------------- ticks */

static bool one_two_five(double step) {
    double m = step / pow(10, floor(log10(step) + 1e-12));
    return fabs(m - 1) < 1e-9 || fabs(m - 2) < 1e-9 || fabs(m - 5) < 1e-9;
}

static void test_ticks(void) {
    static const struct {
        double lo, hi;
        int max;
        double step, first;
        int n;
    } cases[] = {
        {0, 1, 6, 0.2, 0, 6},      {2.7, 9.4, 8, 1, 3, 7},
        {0, 2000, 8, 500, 0, 5},   {0, 2000, 12, 200, 0, 11},
        {-3.3, 4.1, 10, 1, -3, 8}, {0.0011, 0.0016, 6, 0.0001, 0.0011, 6},
        {0, 4.1e6, 10, 5e5, 0, 9}, {3.01, 3.02, 5, 0.005, 3.01, 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double t[32], step;
        int n = cllm_nice_ticks(cases[i].lo, cases[i].hi, cases[i].max, t, 32, &step);
        CHECK_MSG(n == cases[i].n && fabs(step - cases[i].step) < 1e-12 * cases[i].step &&
                      fabs(t[0] - cases[i].first) < 1e-9 * fabs(cases[i].step),
                  "case %zu: %d ticks from %g step %g", i, n, n ? t[0] : NAN, step);
        CHECK(one_two_five(step) && n <= cases[i].max);
        for (int k = 0; k < n; k++)
            CHECK(t[k] >= cases[i].lo - 1e-9 && t[k] <= cases[i].hi + 1e-9);
    }
    double t[32];
    int level;
    int n = cllm_log_ticks(0.5, 200, 3, 2, t, 32, &level);
    CHECK(n == 3 && level == 0 && t[0] == 1 && t[1] == 10 && t[2] == 100);
    n = cllm_log_ticks(1, 5, 3, 2, t, 32, &level);
    CHECK(n == 3 && level == 1 && t[0] == 1 && t[1] == 2 && t[2] == 5);
    n = cllm_log_ticks(2.7, 9.4, 3, 2, t, 32, &level);
    CHECK(n == 7 && level == 2 && fabs(t[0] - 3) < 1e-12 && fabs(t[6] - 9) < 1e-12);
    n = cllm_log_ticks(2.7, 9.4, 3, 1, t, 32, &level); /* capped at 2 and 5 */
    CHECK(n == 1 && level == 1 && t[0] == 5);

    static const struct {
        double v, step, max;
        const char *want;
    } labels[] = {
        {0.4, 0.2, 1, "0.4"},
        {3, 1, 9, "3"},
        {3, 0.5, 9, "3.0"},
        {0, 0.2, 1, "0"},
        {1.5e6, 5e5, 4e6, "1.5M"},
        {2e6, 1e6, 4e6, "2M"},
        {20000, 5000, 30000, "20k"},
        {2000, 500, 2000, "2000"},
        {0.0015, 0.0005, 0.002, "0.0015"},
        {-2, 1, 3, "-2"},
        {5, 0, 10, "5"},
        {0.02, 0, 1, "0.02"},
        {2.5e9, 5e8, 3e9, "2.5G"},
    };
    for (size_t i = 0; i < sizeof labels / sizeof labels[0]; i++) {
        char out[32];
        cllm_tick_label(out, sizeof out, labels[i].v, labels[i].step, labels[i].max);
        CHECK_MSG(!strcmp(out, labels[i].want), "label %g: got '%s', want '%s'", labels[i].v, out,
                  labels[i].want);
    }
}

/* ---------------------------------------------------------------- viridis */

static void test_viridis(void) {
    char *path = test_fixture("viridis.txt");
    char *data = NULL;
    size_t len;
    CHECK_OK(cllm_read_file(path, &data, &len));
    int n = 0;
    for (char *line = data ? strtok(data, "\n") : NULL; line; line = strtok(NULL, "\n")) {
        if (line[0] == '#') continue;
        double v;
        unsigned r, g, b;
        if (sscanf(line, "%lf #%2x%2x%2x", &v, &r, &g, &b) != 4) continue;
        uint32_t want = CLLM_RGB(r, g, b), got = cllm_viridis(v);
        CHECK_MSG(got == want, "viridis(%g): got #%06x, matplotlib says #%06x", v, got >> 8,
                  want >> 8);
        n++;
    }
    CHECK(n > 100);
    CHECK(cllm_viridis(NAN) == cllm_viridis(0) && cllm_viridis(-1) == cllm_viridis(0));
    CHECK(cllm_viridis(2) == cllm_viridis(1));
    CHECK(cllm_viridis(0) == CLLM_RGB(0x44, 0x01, 0x54) &&
          cllm_viridis(1) == CLLM_RGB(0xfd, 0xe7, 0x25));
    free(data);
    free(path);
}

/* ---------------------------------------------------------------- charts */

static void test_chart(void) {
    double x[101], y[101], y2[101];
    for (int i = 0; i <= 100; i++)
        x[i] = i, y[i] = 2 + i * 0.05, y2[i] = 6 - i * 0.03;
    const uint32_t blue = cllm_palette(0), orange = cllm_palette(1);
    /* 3 px wide: the pixel holding a point is within 0.71 px of the centre line, so fully
     * covered */
    cllm_chart_series s[2] = {
        {.label = "rising", .x = x, .y = y, .n = 101, .color = blue, .width = 3},
        {.label = "falling",
         .x = x,
         .y = y2,
         .n = 101,
         .color = orange,
         .width = 3,
         .dashed = true}};
    cllm_chart_opts o = {.width = 800,
                         .height = 500,
                         .title = "Title",
                         .xlabel = "step",
                         .ylabel = "loss",
                         .ymin = NAN,
                         .ymax = NAN};
    cllm_canvas c;
    cllm_chart_layout l;
    CHECK_OK(cllm_chart_draw(&c, s, 2, &o, &l));
    CHECK(c.width == 800 && c.height == 500);
    /* axis limits: x exactly the data, y the data padded 5% */
    CHECK(l.xmin == 0 && l.xmax == 100);
    CHECK(fabs(l.ymin - (2 - 0.25)) < 1e-9 && fabs(l.ymax - (7 + 0.25)) < 1e-9);
    /* the rising line passes through its points in full colour (away from the other) */
    for (int i = 5; i <= 95; i += 10) {
        if (fabs(y[i] - y2[i]) < 0.6) continue;
        int px = (int)floor(cllm_chart_px(&l, x[i])), py = (int)floor(cllm_chart_py(&l, y[i]));
        CHECK_MSG(cllm_canvas_get(&c, px, py) == blue, "(%g, %g) at pixel (%d, %d): %08x", x[i],
                  y[i], px, py, cllm_canvas_get(&c, px, py));
    }
    /* a point of the falling line, on a dash or in a gap: orange or untouched along it */
    int orange_px = 0;
    for (int i = 0; i <= 100; i++) {
        int px = (int)floor(cllm_chart_px(&l, x[i])), py = (int)floor(cllm_chart_py(&l, y2[i]));
        orange_px += cllm_canvas_get(&c, px, py) == orange;
    }
    CHECK(orange_px > 40 && orange_px < 95); /* dashed: most, not all */
    /* nice ticks, grid lines at them, the frame one pixel outside the plot area */
    CHECK(l.n_xticks >= 3 && l.n_yticks >= 3);
    CHECK(one_two_five(l.xticks[1] - l.xticks[0]) && one_two_five(l.yticks[1] - l.yticks[0]));
    const uint32_t grid = CLLM_RGB(222, 222, 222), frame = CLLM_RGB(64, 64, 64);
    int gy = (int)floor(l.y0 + 3); /* a row near the top: no data there */
    for (int k = 0; k < l.n_xticks; k++) {
        int gx = (int)floor(cllm_chart_px(&l, l.xticks[k]));
        if (gx > l.x0 && gx < l.x1 &&
            (gy < l.legend_y0 || gy >= l.legend_y1 || gx < l.legend_x0 || gx >= l.legend_x1))
            CHECK_MSG(cllm_canvas_get(&c, gx, gy) == grid, "x grid at %g (column %d)", l.xticks[k],
                      gx);
        /* the tick label under the frame has ink */
        CHECK(ink_in(&c, gx - 15, (int)l.y1 + 4, gx + 15, (int)l.y1 + 30) > 5);
    }
    for (int k = 0; k < l.n_yticks; k++) {
        int ry = (int)floor(cllm_chart_py(&l, l.yticks[k]));
        /* a column where both lines are far from this row */
        int rx = -1;
        for (int cx = (int)l.x0 + 2; cx < (int)l.x1 - 2 && rx < 0; cx += 5) {
            double dv = (cx + 0.5 - l.x0) / (l.x1 - l.x0) * 100;
            if (fabs(cllm_chart_py(&l, 2 + dv * 0.05) - ry) > 10 &&
                fabs(cllm_chart_py(&l, 6 - dv * 0.03) - ry) > 10 &&
                (cx < l.legend_x0 || cx >= l.legend_x1 || ry < l.legend_y0 || ry >= l.legend_y1))
                rx = cx;
        }
        if (ry > l.y0 && ry < l.y1 && rx >= 0)
            CHECK_MSG(cllm_canvas_get(&c, rx, ry) == grid, "y grid at %g (row %d)", l.yticks[k],
                      ry);
        CHECK(ink_in(&c, 0 + 30, ry - 8, (int)l.x0 - 6, ry + 8) > 5); /* its label */
    }
    for (int yy = (int)l.y0; yy < (int)l.y1; yy += 7) {
        CHECK(cllm_canvas_get(&c, (int)l.x0 - 1, yy) == frame);
        CHECK(cllm_canvas_get(&c, (int)l.x1, yy) == frame);
    }
    /* titles: ink above the plot area (title), below the tick labels (x title), at the left
     * edge (the rotated y title) */
    CHECK(ink_in(&c, 300, 0, 500, (int)l.y0 - 2) > 20);
    CHECK(ink_in(&c, 350, c.height - 25, 450, c.height) > 10);
    CHECK(ink_in(&c, 0, 200, 30, 300) > 10);
    /* the legend: a box inside the plot area holding both labels, away from the lines */
    CHECK(l.legend_x1 > l.legend_x0 && l.legend_x0 >= l.x0 && l.legend_x1 <= l.x1);
    CHECK(l.legend_y0 >= l.y0 && l.legend_y1 <= l.y1);
    CHECK(ink_in(&c, l.legend_x0, l.legend_y0, l.legend_x1, l.legend_y1) > 40);
    cllm_canvas_free(&c);

    /* a title and legend labels far too long for the canvas are cut to fit it */
    char longname[400];
    memset(longname, 'W', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    s[0].label = longname;
    o.title = longname;
    CHECK_OK(cllm_chart_draw(&c, s, 2, &o, &l));
    CHECK(ink_in(&c, c.width - 6, 0, c.width, c.height) == 0); /* a margin stays clear */
    CHECK(ink_in(&c, 0, 0, c.width, (int)l.y0 - 2) > 100);
    CHECK(l.legend_x1 - l.legend_x0 <= (l.x1 - l.x0) / 2 + 1);
    cllm_canvas_free(&c);
    s[0].label = "rising";
    o.title = "Title";

    /* a log axis: equal ratios are equal distances */
    double lx[4] = {1, 2, 3, 4}, ly[4] = {10, 100, 1000, 10000};
    cllm_chart_series ls = {.x = lx, .y = ly, .n = 4, .color = blue, .width = 3};
    o.log_y = true;
    CHECK_OK(cllm_chart_draw(&c, &ls, 1, &o, &l));
    double d1 = cllm_chart_py(&l, 10) - cllm_chart_py(&l, 100);
    double d2 = cllm_chart_py(&l, 100) - cllm_chart_py(&l, 1000);
    CHECK(fabs(d1 - d2) < 1e-9 && d1 > 50);
    CHECK(l.n_yticks == 4 && l.yticks[0] == 10 && l.yticks[3] == 10000);
    int py = (int)floor(cllm_chart_py(&l, 100)), px = (int)floor(cllm_chart_px(&l, 2));
    CHECK(cllm_canvas_get(&c, px, py) == blue);
    cllm_canvas_free(&c);

    /* nothing finite: refused */
    double nx[2] = {NAN, 1}, ny[2] = {1, NAN};
    cllm_chart_series ns = {.x = nx, .y = ny, .n = 2, .color = blue};
    o.log_y = false;
    CHECK(cllm_chart_draw(&c, &ns, 1, &o, NULL) == CLLM_ERR_USAGE && c.rgba == NULL);
    double zy[2] = {-1, 0}, zx[2] = {0, 1};
    cllm_chart_series zs = {.x = zx, .y = zy, .n = 2, .color = blue};
    o.log_y = true;
    CHECK(cllm_chart_draw(&c, &zs, 1, &o, NULL) == CLLM_ERR_USAGE);
    CHECK(strstr(cllm_last_error(), "positive") != NULL);
    o.log_y = false;
    o.width = 60;
    o.height = 40;
    CHECK(cllm_chart_draw(&c, s, 1, &o, NULL) == CLLM_ERR_USAGE);
}

/* ---------------------------------------------------------------- metrics and loss plots */

static void test_metrics(const char *dir) {
    char *p = cllm_strdup_printf("%s/runA/metrics.jsonl", dir);
    char *rd = cllm_strdup_printf("%s/runA", dir);
    CHECK_OK(cllm_mkdirs(rd));
    /* 60 steps: loss 3, 5, 3, 5, ... (its 4-point centred average is 4), validation every 10,
     * a skipped update, Python's bare NaN, a resume that replays steps 40.., a torn last line */
    char *text = NULL;
    size_t tl = 0;
    FILE *f = open_memstream(&text, &tl);
    fprintf(f, "{\"step\": 0, \"val_loss\": 6.0, \"tokens\": 0}\n");
    for (int s = 1; s <= 45; s++) {
        fprintf(f, "{\"step\": %d, \"loss\": %.1f, \"lr\": 0.001, \"tokens\": %d", s,
                s % 2 ? 3.0 : 5.0, s * 100);
        if (s % 10 == 0) fprintf(f, ", \"val_loss\": %.2f", 6.0 - s * 0.05);
        fprintf(f, "}\n");
    }
    fprintf(f, "\n{\"step\": 40, \"loss\": 3.0, \"tokens\": 4000}\n"); /* resumed from 39 */
    for (int s = 41; s <= 60; s++) {
        if (s == 47)
            fprintf(f, "{\"step\": 47, \"loss\": null, \"grad_norm\": NaN, \"skipped\": true, "
                       "\"tokens\": 4700}\n");
        else if (s == 48)
            fprintf(f, "{\"step\": 48, \"loss\": NaN, \"tokens\": 4800}\n");
        else
            fprintf(f, "{\"step\": %d, \"loss\": %.1f, \"tokens\": %d%s}\n", s, s % 2 ? 3.0 : 5.0,
                    s * 100, s % 10 == 0 ? ", \"val_loss\": 3.5" : "");
    }
    fprintf(f, "{\"step\": 61, \"loss\": 3.");
    fclose(f);
    write_text(p, text);
    cllm_metrics m;
    CHECK_OK(cllm_metrics_load(&m, rd));
    CHECK(m.name && !strcmp(m.name, "runA"));
    CHECK(m.n == 61); /* steps 0..60 */
    CHECK(m.superseded == 6 && m.skipped_updates == 1 && m.truncated_tail);
    CHECK(m.nonfinite == 2);
    CHECK_MSG(cllm_metrics_count_loss(&m) == 58 && cllm_metrics_count_val(&m) == 6,
              "%zu losses, "
              "%zu validation losses",
              cllm_metrics_count_loss(&m), cllm_metrics_count_val(&m));
    CHECK(m.points[40].step == 40 && m.points[40].loss == 3.0 && isnan(m.points[40].val_loss));
    CHECK(isnan(m.points[47].loss) && m.points[47].skipped && isnan(m.points[47].grad_norm));

    /* the plot: the smoothed training line lies at 4 wherever the window is full; validation
     * markers sit on their values */
    cllm_loss_plot_opts o = cllm_loss_plot_opts_default();
    o.smooth = 4; /* 1200 x 800: lines 2.5 px wide, the pixel under a point fully covered */
    cllm_canvas c;
    cllm_chart_layout l;
    CHECK_OK(cllm_loss_plot_draw(&c, &m, 1, &o, &l));
    CHECK(c.width == 1200 && c.height == 800);
    int hits = 0;
    for (int s = 5; s <= 38; s++) {
        int px = (int)floor(cllm_chart_px(&l, s)), py = (int)floor(cllm_chart_py(&l, 4.0));
        hits += cllm_canvas_get(&c, px, py) == cllm_palette(0);
    }
    CHECK_MSG(hits == 34, "the smoothed line is at 4 on %d of 34 steps", hits);
    int px = (int)floor(cllm_chart_px(&l, 20)), py = (int)floor(cllm_chart_py(&l, 5.0));
    CHECK(cllm_canvas_get(&c, px, py) != CLLM_WHITE); /* the faint raw curve reaches 5 */
    CHECK(cllm_canvas_get(&c, px, py) != cllm_palette(0));
    int vx = (int)floor(cllm_chart_px(&l, 30)), vy = (int)floor(cllm_chart_py(&l, 4.5));
    uint32_t vc = cllm_canvas_get(&c, vx, vy);
    CHECK_MSG(vc != CLLM_WHITE && vc != cllm_palette(0), "validation marker at step 30: %08x", vc);
    cllm_canvas_free(&c);

    /* --x tokens maps step s to s * 100 tokens */
    o.x = CLLM_LOSS_X_TOKENS;
    CHECK_OK(cllm_loss_plot_draw(&c, &m, 1, &o, &l));
    CHECK(l.xmax == 6000 && l.xmin == 0);
    cllm_canvas_free(&c);
    o.x = CLLM_LOSS_X_TIME; /* no time_s anywhere */
    CHECK(cllm_loss_plot_draw(&c, &m, 1, &o, &l) == CLLM_ERR_FORMAT);
    CHECK(strstr(cllm_last_error(), "time_s") != NULL);
    o.x = CLLM_LOSS_X_STEP;

    /* a second run of the same name is told apart by its path */
    char *q = cllm_strdup_printf("%s/other/runA", dir);
    CHECK_OK(cllm_mkdirs(q));
    char *qf = cllm_path_join(q, "metrics.jsonl");
    write_text(qf, "{\"step\": 1, \"loss\": 4}\n{\"step\": 2, \"loss\": 3.5}\n");
    cllm_metrics two[2];
    CHECK_OK(cllm_metrics_load(&two[0], rd));
    CHECK_OK(cllm_metrics_load(&two[1], qf));
    CHECK(!strcmp(two[1].name, "runA"));
    char *png = cllm_strdup_printf("%s/two.png", dir);
    CHECK_OK(cllm_loss_plot_write(png, two, 2, &o));
    uint8_t *rgba;
    int w, h;
    CHECK_OK(cllm_png_read(png, &rgba, &w, &h));
    CHECK(w == 1200 && h == 800);
    free(rgba);
    cllm_metrics_clear(&two[0]);
    cllm_metrics_clear(&two[1]);

    /* strictness: a malformed line, a non-number, a missing step; lenient: none of those */
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"{\"step\": 1, \"loss\": 2}\nnot json\n{\"step\": 3, \"loss\": 2}\n",
         ":2: not valid JSON"},
        {"{\"step\": 1, \"loss\": \"low\"}\n", ":1: \"loss\" is not a number"},
        {"{\"loss\": 2}\n", ":1: no numeric \"step\""},
        {"[1, 2]\n", ":1: expected a JSON object"},
    };
    char *bp = cllm_strdup_printf("%s/bad.jsonl", dir);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_text(bp, bad[i].text);
        CHECK(cllm_metrics_load(&m, bp) == CLLM_ERR_FORMAT);
        CHECK_MSG(strstr(cllm_last_error(), bad[i].want) && strstr(cllm_last_error(), "bad.jsonl"),
                  "case %zu: %s", i, cllm_last_error());
        CHECK(m.points == NULL && m.n == 0);
    }
    /* an empty run loads, but has nothing to plot */
    write_text(bp, "");
    CHECK_OK(cllm_metrics_load(&m, bp));
    CHECK(cllm_loss_plot_draw(&c, &m, 1, &o, NULL) == CLLM_ERR_FORMAT);
    CHECK(strstr(cllm_last_error(), "nothing to plot") != NULL);
    cllm_metrics_clear(&m);
    write_text(bp, "{\"step\": 1, \"loss\": null, \"skipped\": true}\n");
    CHECK_OK(cllm_metrics_load(&m, bp));
    CHECK(cllm_loss_plot_draw(&c, &m, 1, &o, NULL) == CLLM_ERR_FORMAT);
    cllm_metrics_clear(&m);
    CHECK(cllm_metrics_load(&m, "/nonexistent/metrics.jsonl") == CLLM_ERR_IO);
    CHECK(cllm_metrics_load(&m, dir) == CLLM_ERR_IO); /* a directory without metrics.jsonl */
    CHECK(strstr(cllm_last_error(), "no metrics.jsonl") != NULL);
    cllm_metrics_clear(&m);
    /* --smooth at the ends: a straight line stays straight to its very ends (a mean over the
     * cut-off window would pull step 2 towards the mean of 1..4), and a noisy series ends on
     * the least-squares line through the window's points, not on its last noisy point */
    {
        FILE *lf = fopen(bp, "w");
        CHECK(lf != NULL);
        for (int s = 1; s <= 40; s++)
            fprintf(lf, "{\"step\": %d, \"loss\": %.2f}\n", s, 10.0 - 0.1 * s);
        fclose(lf);
        CHECK_OK(cllm_metrics_load(&m, bp));
        cllm_loss_plot_opts lo = cllm_loss_plot_opts_default();
        lo.smooth = 5;
        CHECK_OK(cllm_loss_plot_draw(&c, &m, 1, &lo, &l));
        static const int ends[] = {2, 3, 38, 39};
        for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++) {
            int s = ends[i];
            int ex = (int)floor(cllm_chart_px(&l, s)),
                ey = (int)floor(cllm_chart_py(&l, 10.0 - 0.1 * s));
            CHECK_MSG(cllm_canvas_get(&c, ex, ey) == cllm_palette(0),
                      "smoothed straight line off its value at step %d", s);
        }
        cllm_canvas_free(&c);
        cllm_metrics_clear(&m);

        /* 40 steps of 4 + (-1)^s + s/40: --smooth 10 takes 5 before, 4 after; at step 39 the
         * window holds steps 34..40 */
        double ys[41];
        lf = fopen(bp, "w");
        CHECK(lf != NULL);
        for (int s = 1; s <= 40; s++) {
            ys[s] = 4.0 + (s % 2 ? -1.0 : 1.0) + s / 40.0;
            fprintf(lf, "{\"step\": %d, \"loss\": %.17g}\n", s, ys[s]);
        }
        fclose(lf);
        CHECK_OK(cllm_metrics_load(&m, bp));
        lo.smooth = 10;
        CHECK_OK(cllm_loss_plot_draw(&c, &m, 1, &lo, &l));
        /* the normal equations of y = p + q s over steps 34..40, evaluated at 39 */
        double n = 0, sx = 0, sxx = 0, sy = 0, sxy = 0;
        for (int s = 34; s <= 40; s++) {
            n++;
            sx += s;
            sxx += (double)s * s;
            sy += ys[s];
            sxy += s * ys[s];
        }
        double slope = (n * sxy - sx * sy) / (n * sxx - sx * sx), p0 = (sy - slope * sx) / n;
        /* 5.118; the raw point is 3.975, the mean of 34..40 5.068, of 38..40 5.308 */
        double want = p0 + slope * 39;
        int ex = (int)floor(cllm_chart_px(&l, 39));
        int lo_y = 800, hi_y = -1; /* the smoothed line's pixels in that column */
        for (int y = 0; y < 800; y++)
            if (cllm_canvas_get(&c, ex, y) == cllm_palette(0)) {
                if (y < lo_y) lo_y = y;
                if (y > hi_y) hi_y = y;
            }
        double wy = cllm_chart_py(&l, want);
        CHECK_MSG(hi_y >= 0 && wy >= lo_y - 1 && wy <= hi_y + 2,
                  "smoothed end at step 39: line at rows %d-%d, the fit %.3f at row %.1f", lo_y,
                  hi_y, want, wy);
        cllm_canvas_free(&c);
        cllm_metrics_clear(&m);
    }
    free(bp);
    free(png);
    free(q);
    free(qf);
    free(text);
    free(p);
    free(rd);
}

/* ---------------------------------------------------------------- heatmaps */

static void test_heatmap(void) {
    /* two maps (1 x 2 grid) of T = 9: uniform causal attention 1/(i+1), and its transpose-free
     * variant with a peak on the diagonal */
    enum { T = 9 };
    float v[2 * T * T];
    for (int i = 0; i < T; i++)
        for (int j = 0; j < T; j++) {
            v[i * T + j] = j <= i ? 1.0f / (i + 1) : 0.0f;
            v[T * T + i * T + j] = i == j ? 1.0f : 0.0f;
        }
    const char *labels[T] = {"The", " cat", " sat", "\n", " on", "\\", "\xC3", " the", " mat."};
    cllm_heatmap_opts o = {.values = v,
                           .rows = 1,
                           .cols = 1,
                           .T = T,
                           .labels = labels,
                           .title = "uniform",
                           .xlabel = "key",
                           .ylabel = "query"};
    cllm_canvas c;
    cllm_heatmap_layout l;
    CHECK_OK(cllm_heatmap_draw(&c, &o, &l));
    CHECK(l.cell >= 20 && l.label_every == 1 && l.label_scale == 2);
    for (int i = 0; i < T; i++)
        for (int j = 0; j < T; j++) {
            int x = l.x0 + j * l.cell + l.cell / 2, y = l.y0 + i * l.cell + l.cell / 2;
            uint32_t want = cllm_viridis(j <= i ? 1.0 / (i + 1) : 0);
            CHECK_MSG(cllm_canvas_get(&c, x, y) == want, "cell (%d, %d)", i, j);
            /* the whole cell, corners included */
            CHECK(cllm_canvas_get(&c, l.x0 + j * l.cell, l.y0 + i * l.cell) == want);
            CHECK(cllm_canvas_get(&c, l.x0 + (j + 1) * l.cell - 1, l.y0 + (i + 1) * l.cell - 1) ==
                  want);
        }
    /* labels: ink left of every row and below every column */
    for (int i = 0; i < T; i++) {
        int yc = l.y0 + i * l.cell + l.cell / 2;
        CHECK_MSG(ink_in(&c, 0, yc - 6, l.x0 - 2, yc + 6) > 8, "query label %d", i);
        int xc = l.x0 + i * l.cell + l.cell / 2;
        CHECK_MSG(ink_in(&c, xc - 7, l.y0 + T * l.cell + 2, xc + 7, c.height - 40) > 8,
                  "key label %d", i);
    }
    /* the colour bar runs from vmax (top) to 0 (bottom) */
    CHECK(cllm_canvas_get(&c, l.bar_x0 + 2, l.bar_y0) ==
          cllm_viridis(1 - 0.5 / (l.bar_y1 - l.bar_y0)));
    CHECK(cllm_canvas_get(&c, l.bar_x0 + 2, l.bar_y1 - 1) ==
          cllm_viridis(0.5 / (l.bar_y1 - l.bar_y0)));
    CHECK(ink_in(&c, l.bar_x1 + 2, l.bar_y0 - 8, c.width, l.bar_y1 + 8) > 30); /* tick labels */
    cllm_canvas_free(&c);

    /* vmax: weights above it take the top colour */
    o.vmax = 0.25;
    CHECK_OK(cllm_heatmap_draw(&c, &o, &l));
    CHECK(cllm_canvas_get(&c, l.x0 + l.cell / 2, l.y0 + l.cell / 2) == cllm_viridis(1));
    CHECK(cllm_canvas_get(&c, l.x0 + l.cell / 2, l.y0 + 7 * l.cell + l.cell / 2) ==
          cllm_viridis(0.125 / 0.25));
    cllm_canvas_free(&c);

    /* a grid: map (0, 1) is the diagonal one */
    int ids[2] = {0, 1};
    o = (cllm_heatmap_opts){.values = v,
                            .rows = 1,
                            .cols = 2,
                            .T = T,
                            .labels = labels,
                            .row_name = "layer",
                            .col_name = "head",
                            .row_ids = ids,
                            .col_ids = ids};
    CHECK_OK(cllm_heatmap_draw(&c, &o, &l));
    int mx = l.x0 + l.pitch_x, my = l.y0;
    CHECK(cllm_canvas_get(&c, mx + 4 * l.cell, my + 4 * l.cell) == cllm_viridis(1));
    CHECK(cllm_canvas_get(&c, mx + 3 * l.cell, my + 4 * l.cell) == cllm_viridis(0));
    CHECK(ink_in(&c, mx, 0, mx + T * l.cell, my - 2) > 10); /* "head 1" */
    cllm_canvas_free(&c);

    /* many tokens: smaller cells, every k-th label; too large: refused */
    enum { BIG = 300 };
    float *big = calloc((size_t)BIG * BIG, sizeof *big);
    const char **bl = calloc(BIG, sizeof *bl);
    for (int i = 0; i < BIG; i++)
        bl[i] = "x";
    o = (cllm_heatmap_opts){.values = big, .rows = 1, .cols = 1, .T = BIG, .labels = bl};
    CHECK_OK(cllm_heatmap_draw(&c, &o, &l));
    CHECK(l.cell == 2 && l.label_every == 5);
    cllm_canvas_free(&c);
    o.cell = 200;
    CHECK(cllm_heatmap_draw(&c, &o, &l) == CLLM_ERR_TOO_LARGE && c.rgba == NULL);
    CHECK(strstr(cllm_last_error(), "pixels") != NULL);
    free(big);
    free(bl);
}

int main(void) {
    char *dir = test_tmpdir("plot");
    test_png(dir);
    test_shapes();
    test_font();
    test_escape();
    test_ticks();
    test_viridis();
    test_chart();
    test_metrics(dir);
    test_heatmap();
    free(dir);
    return test_exit();
}
