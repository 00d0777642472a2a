/* cllm/png.h — RGBA PNG files through libpng: what `cllm plot`, `cllm attention` and
 * `cllm report` write, and what the tests read back.
 *
 *     uint8_t *px = ...;                               // (h, w, 4) bytes, row-major, RGBA
 *     CLLM_TRY(cllm_png_write("loss.png", px, w, h));  // atomic: tmp + fsync + rename
 *     uint8_t *back; int bw, bh;
 *     CLLM_TRY(cllm_png_read("loss.png", &back, &bw, &bh));   // any PNG, as 8-bit RGBA
 *     free(back);
 *
 * Pixels are 8-bit sRGB, not premultiplied. No OpenCL here.
 */
#ifndef CLLM_PNG_H
#define CLLM_PNG_H

#include "cllm/common.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Largest width or height written or read (a sanity bound, not a libpng limit). */
#define CLLM_PNG_MAX_SIDE 32768

/* Encode `rgba` (h, w, 4) as a PNG in memory: *png is malloc'd (caller frees). Images whose
 * alpha is 255 everywhere are stored as RGB (a quarter smaller), others as RGBA. */
cllm_status cllm_png_encode(uint8_t **png, size_t *len, const uint8_t *rgba, int w, int h);
/* Encode and write `path` atomically (a failed write leaves an existing file as it was). */
cllm_status cllm_png_write(const char *path, const uint8_t *rgba, int w, int h);
/* Decode PNG bytes (any colour type and bit depth; palette, grey and 16-bit are converted)
 * into *rgba (h, w, 4), malloc'd. `source` names the data in messages. */
cllm_status cllm_png_decode(uint8_t **rgba, int *w, int *h, const uint8_t *png, size_t len,
                            const char *source);
cllm_status cllm_png_read(const char *path, uint8_t **rgba, int *w, int *h);

#ifdef __cplusplus
}
#endif
#endif
