/* cllm/attnmap.h — attention maps of a loaded model over a text: capture them (a forward pass
 * on the device), write the numbers (CSV, NumPy .npy) and draw them (viridis heatmaps through
 * cllm/plot.h). What `cllm attention` does and `cllm report` calls for its thumbnails.
 *
 *     cllm_gpt_opts go = {.max_batch = 1, .keep_attention = true};   // every layer's softmax
 *     CLLM_TRY(cllm_model_load(&mdl, rt, "runs/nano", &go, NULL));
 *     cllm_tokens ids = {0};
 *     CLLM_TRY(cllm_tokenizer_encode(mdl->tok, text, len, NULL, &ids));
 *     cllm_attnmap am;
 *     CLLM_TRY(cllm_attnmap_capture(&am, mdl, ids.ids, (int)ids.n));
 *     CLLM_TRY(cllm_attnmap_write_png(&am, "attn.png", 1, 0, "layer 1, head 0", 0, 0, NULL,
 *                                      NULL));                   // one map
 *     CLLM_TRY(cllm_attnmap_write_png(&am, "thumbs.png", -1, -1, NULL, 4, 0, NULL, NULL));
 *     cllm_attnmap_clear(&am);                                   // every map, 4 px cells
 *
 * Indices are 0-based: layer 0 is the first block, as in Hugging Face's output_attentions.
 * A map's row i is query position i (the token attending), column j key position j (the token
 * attended to); row i holds the softmax weights over positions 0..i and zeros beyond (the
 * causal mask), so each row sums to 1.
 */
#ifndef CLLM_ATTNMAP_H
#define CLLM_ATTNMAP_H

#include "cllm/common.h"
#include "cllm/model.h"
#include "cllm/plot.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int L, NH, T;       /* layers, heads, tokens */
    uint32_t *ids;      /* (T) */
    char **tokens;      /* (T) each token's raw bytes (a NUL after them; a token may hold NULs) */
    size_t *token_lens; /* (T) */
    float *att;         /* (L, NH, T, T): att[((l * NH + h) * T + i) * T + j] */
} cllm_attnmap;

/* Run mdl over ids (1 x T; 1 <= T <= the model's max_seq) and keep the attention of every
 * layer and head. The model must have been created with keep_attention (or training) and have
 * a tokenizer (for the token labels). `am` is overwritten; on failure it is left cleared. */
cllm_status cllm_attnmap_capture(cllm_attnmap *am, cllm_model *mdl, const uint32_t *ids, int T);
void cllm_attnmap_clear(cllm_attnmap *am);

/* Which maps: layer and head (0-based) name one; -1 takes them all along that axis (layer -1,
 * head -1: the whole L x NH grid; layer l, head -1: layer l's heads). Out of range is
 * CLLM_ERR_USAGE naming the valid range. */
cllm_status cllm_attnmap_check(const cllm_attnmap *am, int layer, int head);

/* CSV, one row per (map, query, key) with key <= query (the rest are 0 by the causal mask):
 * header layer,head,query,key,query_token,key_token,weight; tokens quoted (RFC 4180) and
 * escaped like the picture's labels but with real spaces (cllm_text_escape with
 * CLLM_ESC_BACKSLASH); weights printed with 9 significant digits (float32 round-trips). */
cllm_status cllm_attnmap_write_csv(const cllm_attnmap *am, const char *path, int layer, int head);
/* .npy float32 (numpy.load reads it): shape (T, T) for one map, (NH, T, T) for one layer's
 * heads, (L, NH, T, T) for all; the full matrices, zeros above the diagonal. */
cllm_status cllm_attnmap_write_npy(const cllm_attnmap *am, const char *path, int layer, int head);

/* Draw the chosen maps (one heatmap, or a grid with "layer l" rows and "head h" columns) with
 * the tokens as labels and a colour bar over [0, vmax] (vmax <= 0: 1). cell <= 0 picks the cell
 * size. `title` may be NULL. Initialises `c`. */
cllm_status cllm_attnmap_draw(cllm_canvas *c, const cllm_attnmap *am, int layer, int head,
                              const char *title, int cell, double vmax,
                              cllm_heatmap_layout *layout);

/* The same, written to a PNG file (atomically); *w, *h (may be NULL) receive its size. */
cllm_status cllm_attnmap_write_png(const cllm_attnmap *am, const char *path, int layer, int head,
                                   const char *title, int cell, double vmax, int *w, int *h);

#ifdef __cplusplus
}
#endif
#endif
