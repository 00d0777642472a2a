/* host/plot_internal.h — what the drawing files (plot.c, font.c, chart.c, heatmap.c) share and
 * the public header does not show. */
#ifndef CLLM_PLOT_INTERNAL_H
#define CLLM_PLOT_INTERNAL_H

#include "cllm/plot.h"

#include <stdbool.h>
#include <stdint.h>

/* Glyph index of code point cp in the font, or -1. */
int font_find(uint32_t cp);
/* Whether glyph g has ink at (col 0..4, row 0..8). */
bool font_ink(int g, int col, int row);

#endif
