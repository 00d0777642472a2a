/* PNG encode/decode with libpng, in memory (so writes can be atomic). libpng reports errors by
 * longjmp: every object that must survive one is volatile or lives in a struct outside the
 * jumping frame. */
#include "cllm/png.h"

#include "cllm/util.h"

#include <png.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t *data;
    size_t len, cap;
    bool oom;
    char msg[200]; /* libpng's own error text */
} png_mem;

static void on_error(png_structp p, png_const_charp msg) {
    png_mem *m = png_get_error_ptr(p);
    if (m) snprintf(m->msg, sizeof m->msg, "%s", msg);
    png_longjmp(p, 1);
}

static void on_warning(png_structp p, png_const_charp msg) {
    (void)p;
    (void)msg; /* benign (e.g. unknown chunks); the decoded pixels are what counts */
}

static void mem_write(png_structp p, png_bytep data, png_size_t n) {
    png_mem *m = png_get_io_ptr(p);
    if (m->oom) return;
    if (m->len + n > m->cap) {
        size_t cap = m->cap ? m->cap : 1 << 16;
        while (cap < m->len + n)
            cap *= 2;
        uint8_t *d = realloc(m->data, cap);
        if (!d) {
            m->oom = true;
            return;
        }
        m->data = d;
        m->cap = cap;
    }
    memcpy(m->data + m->len, data, n);
    m->len += n;
}

static void mem_flush(png_structp p) {
    (void)p;
}

cllm_status cllm_png_encode(uint8_t **png, size_t *len, const uint8_t *rgba, int w, int h) {
    *png = NULL;
    *len = 0;
    if (w <= 0 || h <= 0 || w > CLLM_PNG_MAX_SIDE || h > CLLM_PNG_MAX_SIDE)
        return cllm_fail(CLLM_ERR_USAGE, "PNG size %dx%d is outside 1..%d", w, h,
                         CLLM_PNG_MAX_SIDE);
    bool opaque = true;
    for (size_t i = 3; i < (size_t)w * h * 4 && opaque; i += 4)
        opaque = rgba[i] == 255;
    png_mem m = {0};
    uint8_t *volatile row = malloc((size_t)w * 4);
    if (!row) return cllm_fail(CLLM_ERR_NOMEM, "out of memory for a %dx%d PNG", w, h);
    png_structp p = png_create_write_struct(PNG_LIBPNG_VER_STRING, &m, on_error, on_warning);
    png_infop info = p ? png_create_info_struct(p) : NULL;
    if (!info) {
        png_destroy_write_struct(&p, NULL);
        free(row);
        return cllm_fail(CLLM_ERR_NOMEM, "libpng: out of memory");
    }
    if (setjmp(png_jmpbuf(p))) {
        png_destroy_write_struct(&p, &info);
        free(row);
        free(m.data);
        return cllm_fail(CLLM_ERR_IO, "libpng: encoding a %dx%d PNG failed: %s", w, h, m.msg);
    }
    png_set_write_fn(p, &m, mem_write, mem_flush);
    png_set_IHDR(p, info, (png_uint_32)w, (png_uint_32)h, 8,
                 opaque ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_RGBA, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_sRGB(p, info, PNG_sRGB_INTENT_PERCEPTUAL);
    png_set_compression_level(p, 6);
    png_write_info(p, info);
    for (int y = 0; y < h; y++) {
        const uint8_t *src = rgba + (size_t)y * w * 4;
        if (opaque) {
            for (int x = 0; x < w; x++)
                memcpy(row + (size_t)x * 3, src + (size_t)x * 4, 3);
        } else {
            memcpy(row, src, (size_t)w * 4);
        }
        png_write_row(p, row);
    }
    png_write_end(p, NULL);
    png_destroy_write_struct(&p, &info);
    free(row);
    if (m.oom) {
        free(m.data);
        return cllm_fail(CLLM_ERR_NOMEM, "out of memory encoding a %dx%d PNG", w, h);
    }
    *png = m.data;
    *len = m.len;
    return CLLM_OK;
}

cllm_status cllm_png_write(const char *path, const uint8_t *rgba, int w, int h) {
    uint8_t *png;
    size_t len;
    cllm_status st = cllm_png_encode(&png, &len, rgba, w, h);
    if (st != CLLM_OK) return cllm_fail_context(st, "%s", path);
    st = cllm_write_file_atomic(path, png, len);
    free(png);
    return st;
}

typedef struct {
    const uint8_t *data;
    size_t len, pos;
} png_src;

static void mem_read(png_structp p, png_bytep out, png_size_t n) {
    png_src *s = png_get_io_ptr(p);
    if (n > s->len - s->pos) png_error(p, "the file ends early (truncated PNG)");
    memcpy(out, s->data + s->pos, n);
    s->pos += n;
}

static cllm_status decode(uint8_t **rgba, int *w, int *h, const uint8_t *png, size_t len,
                          const char *source);

cllm_status cllm_png_decode(uint8_t **rgba, int *w, int *h, const uint8_t *png, size_t len,
                            const char *source) {
    *rgba = NULL;
    *w = *h = 0;
    return decode(rgba, w, h, png, len, source ? source : "PNG data");
}

/* `source` is never reassigned here, so longjmp cannot clobber it. */
static cllm_status decode(uint8_t **rgba, int *w, int *h, const uint8_t *png, size_t len,
                          const char *source) {
    if (len < 8 || png_sig_cmp((png_const_bytep)png, 0, 8))
        return cllm_fail(CLLM_ERR_FORMAT, "%s: not a PNG file (bad signature)", source);
    png_mem m = {0};
    png_src s = {png, len, 0};
    uint8_t *volatile out = NULL;
    png_bytep *volatile rows = NULL;
    png_structp p = png_create_read_struct(PNG_LIBPNG_VER_STRING, &m, on_error, on_warning);
    png_infop info = p ? png_create_info_struct(p) : NULL;
    if (!info) {
        png_destroy_read_struct(&p, NULL, NULL);
        return cllm_fail(CLLM_ERR_NOMEM, "libpng: out of memory");
    }
    if (setjmp(png_jmpbuf(p))) {
        png_destroy_read_struct(&p, &info, NULL);
        free(out);
        free(rows);
        return cllm_fail(CLLM_ERR_FORMAT, "%s: bad PNG: %s", source, m.msg);
    }
    png_set_read_fn(p, &s, mem_read);
    png_set_user_limits(p, CLLM_PNG_MAX_SIDE, CLLM_PNG_MAX_SIDE);
    png_read_info(p, info);
    png_uint_32 pw = png_get_image_width(p, info), ph = png_get_image_height(p, info);
    int type = png_get_color_type(p, info), depth = png_get_bit_depth(p, info);
    if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(p);
    if (type == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(p);
    if (png_get_valid(p, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(p);
    if (depth == 16) png_set_strip_16(p);
    if (type == PNG_COLOR_TYPE_GRAY || type == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(p);
    png_set_filler(p, 0xFF, PNG_FILLER_AFTER);
    png_set_interlace_handling(p);
    png_read_update_info(p, info);
    if (png_get_rowbytes(p, info) != (size_t)pw * 4) png_error(p, "unexpected row size");
    out = malloc((size_t)pw * ph * 4);
    rows = malloc(ph * sizeof *rows);
    if (!out || !rows) {
        snprintf(m.msg, sizeof m.msg, "out of memory for %ux%u pixels", pw, ph);
        png_longjmp(p, 1);
    }
    for (png_uint_32 y = 0; y < ph; y++)
        rows[y] = out + (size_t)y * pw * 4;
    png_read_image(p, rows);
    png_read_end(p, NULL);
    png_destroy_read_struct(&p, &info, NULL);
    free(rows);
    *rgba = out;
    *w = (int)pw;
    *h = (int)ph;
    return CLLM_OK;
}

cllm_status cllm_png_read(const char *path, uint8_t **rgba, int *w, int *h) {
    char *data;
    size_t len;
    *rgba = NULL;
    *w = *h = 0;
    cllm_status st = cllm_read_file(path, &data, &len);
    if (st != CLLM_OK) return st;
    st = cllm_png_decode(rgba, w, h, (const uint8_t *)data, len, path);
    free(data);
    return st;
}
