/* Attention maps: capture over a forward pass, CSV / .npy output, heatmap pictures. */
#include "cllm/attnmap.h"

#include "cllm/npy.h"
#include "cllm/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cllm_attnmap_clear(cllm_attnmap *am) {
    if (!am) return;
    for (int i = 0; am->tokens && i < am->T; i++)
        free(am->tokens[i]);
    free(am->tokens);
    free(am->token_lens);
    free(am->ids);
    free(am->att);
    memset(am, 0, sizeof *am);
}

cllm_status cllm_attnmap_capture(cllm_attnmap *am, cllm_model *mdl, const uint32_t *ids, int T) {
    memset(am, 0, sizeof *am);
    cllm_status st = cllm_model_require_tokenizer(mdl);
    if (st != CLLM_OK) return st;
    const cllm_gpt_config *cfg = cllm_gpt_get_config(mdl->gpt);
    if (T < 1) return cllm_fail(CLLM_ERR_USAGE, "no tokens: the text is empty");
    am->L = cfg->n_layer;
    am->NH = cfg->n_head;
    am->T = T;
    size_t block = (size_t)T * T;
    am->ids = cllm_malloc((size_t)T * sizeof *am->ids);
    am->tokens = cllm_calloc((size_t)T, sizeof *am->tokens);
    am->token_lens = cllm_calloc((size_t)T, sizeof *am->token_lens);
    am->att = cllm_malloc((size_t)am->L * am->NH * block * sizeof *am->att);
    if (!am->ids || !am->tokens || !am->token_lens || !am->att) {
        st = CLLM_ERR_NOMEM;
        goto fail;
    }
    memcpy(am->ids, ids, (size_t)T * sizeof *ids);
    for (int i = 0; i < T; i++) {
        size_t n = 0;
        const char *b = cllm_tokenizer_token_bytes(mdl->tok, ids[i], &n);
        if (!b) {
            st = cllm_fail(CLLM_ERR_USAGE, "token id %u is not in the tokenizer", ids[i]);
            goto fail;
        }
        am->tokens[i] = cllm_malloc(n + 1);
        if (!am->tokens[i]) {
            st = CLLM_ERR_NOMEM;
            goto fail;
        }
        memcpy(am->tokens[i], b, n);
        am->tokens[i][n] = 0;
        am->token_lens[i] = n;
    }
    CLLM_TRY(cllm_gpt_forward(mdl->gpt, ids, NULL, 1, T));
    for (int l = 0; l < am->L; l++)
        for (int h = 0; h < am->NH; h++)
            CLLM_TRY(cllm_gpt_get_attention(mdl->gpt, l, 0, h,
                                            am->att + ((size_t)l * am->NH + h) * block));
    return CLLM_OK;
fail:
    cllm_attnmap_clear(am);
    return st;
}

cllm_status cllm_attnmap_check(const cllm_attnmap *am, int layer, int head) {
    if (layer < -1 || layer >= am->L)
        return cllm_fail(CLLM_ERR_USAGE,
                         "layer %d does not exist: the model has %d layer%s "
                         "(0..%d)",
                         layer, am->L, am->L == 1 ? "" : "s", am->L - 1);
    if (head < -1 || head >= am->NH)
        return cllm_fail(CLLM_ERR_USAGE,
                         "head %d does not exist: the model has %d head%s per "
                         "layer (0..%d)",
                         head, am->NH, am->NH == 1 ? "" : "s", am->NH - 1);
    return CLLM_OK;
}

/* The range of maps a (layer, head) choice covers. */
static void span(const cllm_attnmap *am, int layer, int head, int *l0, int *l1, int *h0, int *h1) {
    *l0 = layer < 0 ? 0 : layer;
    *l1 = layer < 0 ? am->L : layer + 1;
    *h0 = head < 0 ? 0 : head;
    *h1 = head < 0 ? am->NH : head + 1;
}

static const float *map_of(const cllm_attnmap *am, int l, int h) {
    return am->att + ((size_t)l * am->NH + h) * am->T * am->T;
}

/* A CSV field: the token escaped (real spaces), in double quotes, quotes doubled. */
static char *csv_token(const char *s, size_t n) {
    size_t need = cllm_text_escape(NULL, 0, s, n, CLLM_ESC_BACKSLASH);
    char *e = malloc(need + 1), *q = malloc(2 * need + 3);
    if (!e || !q) {
        free(e);
        free(q);
        return NULL;
    }
    cllm_text_escape(e, need + 1, s, n, CLLM_ESC_BACKSLASH);
    size_t o = 0;
    q[o++] = '"';
    for (size_t i = 0; e[i]; i++) {
        if (e[i] == '"') q[o++] = '"';
        q[o++] = e[i];
    }
    q[o++] = '"';
    q[o] = 0;
    free(e);
    return q;
}

cllm_status cllm_attnmap_write_csv(const cllm_attnmap *am, const char *path, int layer, int head) {
    cllm_status st = cllm_attnmap_check(am, layer, head);
    if (st != CLLM_OK) return st;
    int l0, l1, h0, h1;
    span(am, layer, head, &l0, &l1, &h0, &h1);
    char **q = cllm_calloc((size_t)am->T, sizeof *q);
    cllm_atomic_file f = {0};
    char *line = NULL;
    if (!q) return CLLM_ERR_NOMEM;
    for (int i = 0; i < am->T; i++)
        if (!(q[i] = csv_token(am->tokens[i], am->token_lens[i]))) {
            st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
            goto fail;
        }
    CLLM_TRY(cllm_atomic_begin(&f, path));
    static const char header[] = "layer,head,query,key,query_token,key_token,weight\n";
    CLLM_TRY(cllm_atomic_write(&f, header, sizeof header - 1));
    for (int l = l0; l < l1; l++)
        for (int h = h0; h < h1; h++) {
            const float *m = map_of(am, l, h);
            for (int i = 0; i < am->T; i++)
                for (int j = 0; j <= i; j++) {
                    free(line);
                    line = cllm_strdup_printf("%d,%d,%d,%d,%s,%s,%.9g\n", l, h, i, j, q[i], q[j],
                                              (double)m[(size_t)i * am->T + j]);
                    if (!line) {
                        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
                        goto fail;
                    }
                    CLLM_TRY(cllm_atomic_write(&f, line, strlen(line)));
                }
        }
    CLLM_TRY(cllm_atomic_commit(&f));
fail:
    if (st != CLLM_OK) cllm_atomic_abort(&f);
    free(line);
    for (int i = 0; i < am->T; i++)
        free(q[i]);
    free(q);
    return st;
}

cllm_status cllm_attnmap_write_npy(const cllm_attnmap *am, const char *path, int layer, int head) {
    cllm_status st = cllm_attnmap_check(am, layer, head);
    if (st != CLLM_OK) return st;
    int64_t T = am->T;
    if (layer >= 0 && head >= 0) {
        int64_t shape[2] = {T, T};
        return cllm_npy_write_f32(path, map_of(am, layer, head), 2, shape);
    }
    if (layer >= 0) { /* one layer's heads are contiguous */
        int64_t shape[3] = {am->NH, T, T};
        return cllm_npy_write_f32(path, map_of(am, layer, 0), 3, shape);
    }
    if (head >= 0) { /* one head of every layer: gather */
        float *g = cllm_malloc((size_t)am->L * T * T * sizeof *g);
        if (!g) return CLLM_ERR_NOMEM;
        for (int l = 0; l < am->L; l++)
            memcpy(g + (size_t)l * T * T, map_of(am, l, head), (size_t)T * T * sizeof *g);
        int64_t shape[3] = {am->L, T, T};
        st = cllm_npy_write_f32(path, g, 3, shape);
        free(g);
        return st;
    }
    int64_t shape[4] = {am->L, am->NH, T, T};
    return cllm_npy_write_f32(path, am->att, 4, shape);
}

cllm_status cllm_attnmap_draw(cllm_canvas *c, const cllm_attnmap *am, int layer, int head,
                              const char *title, int cell, double vmax,
                              cllm_heatmap_layout *layout) {
    memset(c, 0, sizeof *c);
    cllm_status st = cllm_attnmap_check(am, layer, head);
    if (st != CLLM_OK) return st;
    int l0, l1, h0, h1;
    span(am, layer, head, &l0, &l1, &h0, &h1);
    int R = l1 - l0, C = h1 - h0;
    size_t block = (size_t)am->T * am->T;
    /* the chosen maps, contiguous in (rows, cols) order */
    float *v = cllm_malloc((size_t)R * C * block * sizeof *v);
    int *rid = cllm_malloc((size_t)R * sizeof *rid), *cid = cllm_malloc((size_t)C * sizeof *cid);
    if (!v || !rid || !cid) {
        st = CLLM_ERR_NOMEM;
        goto done;
    }
    for (int r = 0; r < R; r++) {
        rid[r] = l0 + r;
        for (int k = 0; k < C; k++)
            memcpy(v + ((size_t)r * C + k) * block, map_of(am, l0 + r, h0 + k), block * sizeof *v);
    }
    for (int k = 0; k < C; k++)
        cid[k] = h0 + k;
    cllm_heatmap_opts o = {.values = v,
                           .rows = R,
                           .cols = C,
                           .T = am->T,
                           .labels = (const char *const *)am->tokens,
                           .label_lens = am->token_lens,
                           .title = title,
                           .row_name = "layer",
                           .col_name = "head",
                           .row_ids = rid,
                           .col_ids = cid,
                           .xlabel = "key: the token attended to",
                           .ylabel = "query: the token attending",
                           .cell = cell,
                           .vmax = vmax,
                           .colorbar_label = "attention weight"};
    st = cllm_heatmap_draw(c, &o, layout);
done:
    free(v);
    free(rid);
    free(cid);
    return st;
}

cllm_status cllm_attnmap_write_png(const cllm_attnmap *am, const char *path, int layer, int head,
                                   const char *title, int cell, double vmax, int *w, int *h) {
    cllm_canvas c;
    cllm_status st = cllm_attnmap_draw(&c, am, layer, head, title, cell, vmax, NULL);
    if (st == CLLM_OK) st = cllm_canvas_write_png(&c, path);
    if (w) *w = st == CLLM_OK ? c.width : 0;
    if (h) *h = st == CLLM_OK ? c.height : 0;
    cllm_canvas_free(&c);
    return st;
}
