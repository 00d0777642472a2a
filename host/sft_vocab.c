/* A checkpoint made ready for the chat template (cllm/sft.h): the template's tokens added to
 * its tokenizer, the embedding grown (Vp too when the padding rows do not leave room), the new
 * rows initialised, config.json and tokenizer.json updated. Host arrays only.
 *
 * Shapes: V = vocab_size, Vp = padded rows, C = n_embd; wte (Vp, C) is the first tensor of
 * the parameter buffer (gpt.h), and with tied embeddings it is also the LM head, so row i is
 * both token i's input embedding and its output direction. */
#include "cllm/sft.h"

#include "cllm/util.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

const char *cllm_sft_token_init_name(cllm_sft_token_init i) {
    return i == CLLM_SFT_INIT_MEAN ? "mean" : "subword";
}

bool cllm_sft_token_init_parse(const char *s, cllm_sft_token_init *i) {
    if (!s) return false;
    if (!strcmp(s, "subword")) *i = CLLM_SFT_INIT_SUBWORD;
    else if (!strcmp(s, "mean")) *i = CLLM_SFT_INIT_MEAN;
    else return false;
    return true;
}

/* config_json (or one generated from cfg) with "vocab_size" set to cfg's, malloc'd. */
static cllm_status set_config_vocab(const cllm_gpt_config *cfg, const char *config_json,
                                    char **out) {
    *out = NULL;
    char *gen = config_json ? NULL : cllm_gpt_config_to_json(cfg);
    cJSON *root = cJSON_Parse(config_json ? config_json : gen);
    free(gen);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return cllm_fail(CLLM_ERR_FORMAT, "config.json is not a JSON object");
    }
    cJSON *v = cJSON_CreateNumber(cfg->vocab_size);
    bool ok = v && (cJSON_GetObjectItemCaseSensitive(root, "vocab_size")
                        ? cJSON_ReplaceItemInObjectCaseSensitive(root, "vocab_size", v)
                        : cJSON_AddItemToObject(root, "vocab_size", v));
    if (!ok) cJSON_Delete(v);
    char *s = ok ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!s) return cllm_fail(CLLM_ERR_NOMEM, "out of memory (config.json)");
    *out = s;
    return CLLM_OK;
}

/* `a` (old layout) re-laid out for cfg2: every tensor copied, wte's first `keep_rows` rows, the
 * rest zero. NULL stays NULL. */
static cllm_status relayout(float **a, const cllm_gpt_layout *l1, const cllm_gpt_layout *l2,
                            size_t keep_rows, size_t C) {
    if (!*a) return CLLM_OK;
    float *b = cllm_calloc(l2->total, sizeof *b);
    if (!b) return CLLM_ERR_NOMEM;
    for (int p = 0; p < CLLM_P_COUNT; p++) {
        size_t n = p == CLLM_P_WTE ? keep_rows * C : l1->numel[p];
        memcpy(b + l2->offset[p], *a + l1->offset[p], n * sizeof *b);
    }
    free(*a);
    *a = b;
    return CLLM_OK;
}

cllm_status cllm_sft_grow_vocab(cllm_checkpoint *ck, int new_vocab) {
    const cllm_gpt_config old = ck->cfg;
    if (new_vocab < old.vocab_size)
        return cllm_fail(CLLM_ERR_USAGE, "cannot shrink the vocabulary from %d to %d",
                         old.vocab_size, new_vocab);
    cllm_gpt_config cfg = old;
    cfg.vocab_size = new_vocab;
    cllm_status st = cllm_gpt_config_validate(&cfg, "the grown model");
    if (st != CLLM_OK) return st;
    char *config = NULL;
    if (ck->config_json) {
        st = set_config_vocab(&cfg, ck->config_json, &config);
        if (st != CLLM_OK) return st;
    }
    cllm_gpt_layout l1, l2;
    cllm_gpt_layout_compute(&old, &l1);
    cllm_gpt_layout_compute(&cfg, &l2);
    const size_t C = (size_t)old.n_embd;
    if (l2.total != l1.total) {
        /* Vp grows: every tensor after wte moves */
        st = relayout(&ck->params, &l1, &l2, (size_t)old.vocab_size, C);
        if (st == CLLM_OK) st = relayout(&ck->adam_m, &l1, &l2, (size_t)old.vocab_size, C);
        if (st == CLLM_OK) st = relayout(&ck->adam_v, &l1, &l2, (size_t)old.vocab_size, C);
        if (st != CLLM_OK) {
            free(config);
            return st; /* the arrays relaid so far are consistent with nothing: caller clears */
        }
    } else {
        /* the padding rows already exist (and are zero in params); make sure of it */
        float *arr[3] = {ck->params, ck->adam_m, ck->adam_v};
        for (int k = 0; k < 3; k++)
            if (arr[k])
                memset(arr[k] + (size_t)old.vocab_size * C, 0,
                       (size_t)(new_vocab - old.vocab_size) * C * sizeof(float));
    }
    ck->cfg = cfg;
    if (config) {
        free(ck->config_json);
        ck->config_json = config;
    }
    return CLLM_OK;
}

/* Row `dst` of wte = the mean of rows src[0..n), summed in double; acc holds C doubles. */
static void mean_rows(float *wte, size_t C, uint32_t dst, const uint32_t *src, size_t n,
                      double *acc) {
    memset(acc, 0, C * sizeof *acc);
    for (size_t k = 0; k < n; k++)
        for (size_t c = 0; c < C; c++)
            acc[c] += wte[(size_t)src[k] * C + c];
    for (size_t c = 0; c < C; c++)
        wte[(size_t)dst * C + c] = n ? (float)(acc[c] / (double)n) : 0.0f;
}

cllm_status cllm_sft_prepare_checkpoint(cllm_checkpoint *ck, cllm_tokenizer *tok,
                                        cllm_chat_template *t, cllm_sft_token_init init,
                                        cllm_sft_vocab_report *rep) {
    memset(rep, 0, sizeof *rep);
    cllm_status st = CLLM_OK;
    char *config = NULL, *tok_json = NULL;
    uint32_t *all = NULL;
    double *acc = NULL;
    cllm_tokens pieces = {0};
    if (!ck->params) return cllm_fail(CLLM_ERR_USAGE, "sft: the checkpoint's weights are needed");
    bool found = false;
    if (ck->config_json) {
        CLLM_TRY(cllm_chat_template_from_config(t, ck->config_json, "the checkpoint", &found));
    }
    if (!found) cllm_chat_template_default(t);
    rep->had_template = found;
    rep->vocab_old = ck->cfg.vocab_size;
    rep->vp_old = cllm_gpt_padded_vocab(&ck->cfg);
    const uint32_t V0 = cllm_tokenizer_vocab_size(tok);
    rep->tok_vocab_old = V0;
    if (V0 > (uint32_t)ck->cfg.vocab_size) {
        st = cllm_fail(CLLM_ERR_FORMAT, "the tokenizer has %u tokens but the model's vocab_size "
                                        "is %d",
                       V0, ck->cfg.vocab_size);
        goto fail;
    }
    /* Which template tokens are new, and what each one's text encodes to, before adding. */
    bool is_new[CLLM_ROLE_COUNT + 1];
    uint64_t piece_at[CLLM_ROLE_COUNT + 2];
    for (int i = 0; i <= CLLM_ROLE_COUNT; i++) {
        const char *text = i < CLLM_ROLE_COUNT ? t->role[i] : t->end;
        uint32_t sp_n = cllm_tokenizer_special_count(tok), sid;
        bool special = false;
        for (uint32_t k = 0; k < sp_n; k++) {
            const char *s = cllm_tokenizer_special(tok, k, &sid);
            special |= s && !strcmp(s, text);
        }
        is_new[i] = !special; /* an ordinary vocabulary entry of that text gets a new id too */
        piece_at[i] = pieces.n;
        CLLM_TRY(cllm_tokenizer_encode(tok, text, strlen(text), "none", &pieces));
    }
    piece_at[CLLM_ROLE_COUNT + 1] = pieces.n;
    CLLM_TRY(cllm_chat_template_add_tokens(t, tok, &rep->added));
    const uint32_t V1 = cllm_tokenizer_vocab_size(tok);
    rep->tok_vocab_new = V1;
    if (V1 > (uint32_t)ck->cfg.vocab_size) CLLM_TRY(cllm_sft_grow_vocab(ck, (int)V1));
    rep->vocab_new = ck->cfg.vocab_size;
    rep->vp_new = cllm_gpt_padded_vocab(&ck->cfg);

    /* Initialise the rows of the new tokens from the old rows only. */
    const size_t C = (size_t)ck->cfg.n_embd;
    float *wte = ck->params; /* wte is the first tensor, (Vp, C) */
    if (!(acc = cllm_malloc(C * sizeof *acc))) {
        st = CLLM_ERR_NOMEM;
        goto fail;
    }
    if (init == CLLM_SFT_INIT_MEAN) {
        all = cllm_malloc((V0 ? V0 : 1) * sizeof *all);
        if (!all) {
            st = CLLM_ERR_NOMEM;
            goto fail;
        }
        for (uint32_t i = 0; i < V0; i++)
            all[i] = i;
    }
    for (int i = 0; i <= CLLM_ROLE_COUNT; i++) {
        if (!is_new[i]) continue;
        const uint32_t id = i < CLLM_ROLE_COUNT ? t->role_id[i] : t->end_id;
        if (init == CLLM_SFT_INIT_MEAN)
            mean_rows(wte, C, id, all, V0, acc);
        else
            mean_rows(wte, C, id, pieces.ids + piece_at[i], piece_at[i + 1] - piece_at[i], acc);
        rep->rows_initialised++;
    }

    /* config.json: vocab_size (when it grew, grow_vocab set it) and the template */
    if (!ck->config_json && !(ck->config_json = cllm_gpt_config_to_json(&ck->cfg))) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory (config.json)");
        goto fail;
    }
    CLLM_TRY(cllm_chat_template_write_config(t, ck->config_json, &config));
    free(ck->config_json);
    ck->config_json = config;
    config = NULL;
    if (!(tok_json = cllm_tokenizer_to_json(tok))) {
        st = CLLM_ERR_NOMEM;
        goto fail;
    }
    free(ck->tokenizer_json);
    ck->tokenizer_json = tok_json;
    tok_json = NULL;
fail:
    free(config);
    free(tok_json);
    free(all);
    free(acc);
    cllm_tokens_free(&pieces);
    return st;
}
