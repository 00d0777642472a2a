/* The category check (cllm/sft.h): held-out answers scored under their own category's request
 * and under wrong ones, through forward passes of the device model. */
#include "cllm/sft.h"

#include "cllm/sample.h"
#include "cllm/util.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool word_char(char c) {
    return isalnum((unsigned char)c) || (unsigned char)c >= 0x80;
}

/* Occurrences of `w` in s[0..n) as a whole word. */
static int count_word(const char *s, size_t n, const char *w) {
    size_t wl = strlen(w);
    int k = 0;
    for (size_t i = 0; wl && i + wl <= n; i++)
        if (!memcmp(s + i, w, wl) && (i == 0 || !word_char(s[i - 1])) &&
            (i + wl == n || !word_char(s[i + wl]))) {
            k++;
            i += wl - 1;
        }
    return k;
}

/* s with every whole-word `from` replaced by `to` (malloc'd). */
static char *replace_word(const char *s, size_t n, const char *from, const char *to) {
    const size_t fl = strlen(from), tl = strlen(to);
    const int k = count_word(s, n, from);
    char *out = malloc(n + (size_t)k * tl + 1), *p = out;
    if (!out) return NULL;
    for (size_t i = 0; i < n;) {
        if (i + fl <= n && !memcmp(s + i, from, fl) && (i == 0 || !word_char(s[i - 1])) &&
            (i + fl == n || !word_char(s[i + fl]))) {
            memcpy(p, to, tl);
            p += tl;
            i += fl;
        } else {
            *p++ = s[i++];
        }
    }
    *p = 0;
    return out;
}

typedef struct {
    cllm_gpt *m;
    int B, T;
    uint32_t *in, *tg; /* (B, T) */
    float *tl;         /* (B, T) token losses */
    int rows;          /* rows filled */
    double **dst;      /* (B) where each row's mean loss goes */
} scorer;

static cllm_status flush(scorer *s) {
    if (!s->rows) return CLLM_OK;
    cllm_status st = CLLM_OK;
    const size_t T = (size_t)s->T;
    for (int r = s->rows; r < s->B; r++)
        for (size_t t = 0; t < T; t++) {
            s->in[r * T + t] = 0;
            s->tg[r * T + t] = CLLM_IGNORE_TARGET;
        }
    CLLM_TRY(cllm_gpt_forward(s->m, s->in, s->tg, s->B, s->T));
    CLLM_TRY(cllm_gpt_get_token_losses(s->m, s->tl));
    for (int r = 0; r < s->rows; r++) {
        double sum = 0;
        int cnt = 0;
        for (size_t t = 0; t < T; t++)
            if (s->tg[r * T + t] != CLLM_IGNORE_TARGET) {
                sum += s->tl[r * T + t];
                cnt++;
            }
        *s->dst[r] = cnt ? sum / cnt : NAN;
    }
    s->rows = 0;
fail:
    return st;
}

/* One rendered conversation as the next row (ids, mask of L tokens, L <= T + 1). */
static cllm_status add_row(scorer *s, const uint32_t *ids, const uint8_t *mask, size_t L,
                           double *dst) {
    const size_t T = (size_t)s->T;
    uint32_t *in = s->in + (size_t)s->rows * T, *tg = s->tg + (size_t)s->rows * T;
    for (size_t t = 0; t < T; t++) {
        in[t] = t + 1 < L ? ids[t] : ids[L - 1];
        tg[t] = t + 1 < L && mask[t + 1] ? ids[t + 1] : CLLM_IGNORE_TARGET;
    }
    s->dst[s->rows++] = dst;
    return s->rows == s->B ? flush(s) : CLLM_OK;
}

/* The start of every line of text[0..len) (1-based line k at starts[k - 1]). */
static size_t *line_starts(const char *text, size_t len, long *n) {
    long cnt = 1;
    for (size_t i = 0; i < len; i++)
        cnt += text[i] == '\n';
    size_t *st = cllm_malloc((size_t)cnt * sizeof *st);
    if (!st) return NULL;
    long k = 0;
    st[k++] = 0;
    for (size_t i = 0; i < len; i++)
        if (text[i] == '\n') st[k++] = i + 1;
    *n = cnt;
    return st;
}

cllm_status cllm_sft_category_check(cllm_gpt *m, const cllm_tokenizer *tok,
                                    const cllm_chat_template *t, const cllm_sft_set *set,
                                    const cllm_sft_category_opts *o,
                                    cllm_sft_category_report *rep) {
    memset(rep, 0, sizeof *rep);
    const int K = set->n_categories;
    if (K < 2)
        return cllm_fail(CLLM_ERR_USAGE,
                         "%s: the category check needs records of at least two categories (a "
                         "\"category\" field, as cllm data make-sft writes), found %d",
                         set->path, K);
    const int W = o->n_wrong > 0 && o->n_wrong < K - 1 ? o->n_wrong : K - 1;
    const int N = o->max_items > 0 && o->max_items < set->n ? o->max_items : set->n;
    cllm_status st = CLLM_OK;
    char *text = NULL;
    size_t len = 0, *starts = NULL;
    long n_lines = 0;
    scorer s = {.m = m, .B = o->B, .T = o->T};
    double *loss = cllm_malloc((size_t)N * (W + 1) * sizeof *loss);
    bool *used = cllm_calloc((size_t)N, sizeof *used);
    int *cand = cllm_malloc((size_t)K * sizeof *cand);
    const size_t BT = (size_t)o->B * o->T;
    s.in = cllm_malloc(BT * sizeof *s.in);
    s.tg = cllm_malloc(BT * sizeof *s.tg);
    s.tl = cllm_malloc(BT * sizeof *s.tl);
    s.dst = cllm_malloc((size_t)o->B * sizeof *s.dst);
    uint64_t *off = cllm_malloc(((size_t)W + 2) * sizeof *off);
    cllm_tokens all = {0};
    cllm_chat_mask all_mask = {0};
    if (!loss || !used || !cand || !s.in || !s.tg || !s.tl || !s.dst || !off) {
        st = CLLM_ERR_NOMEM;
        goto fail;
    }
    CLLM_TRY(cllm_read_file(set->path, &text, &len));
    if (!(starts = line_starts(text, len, &n_lines))) {
        st = CLLM_ERR_NOMEM;
        goto fail;
    }
    cllm_rng rng;
    cllm_rng_seed(&rng, o->seed);
    for (int i = 0; i < N; i++) {
        const int own = set->category[i];
        if (own < 0 || set->line[i] < 1 || set->line[i] > n_lines) {
            rep->skipped++;
            continue;
        }
        const char *line = text + starts[set->line[i] - 1];
        const char *nl = memchr(line, '\n', (size_t)(text + len - line));
        size_t ll = nl ? (size_t)(nl - line) : (size_t)(text + len - line);
        cJSON *root = NULL;
        cllm_chat_message *msgs = NULL, *var = NULL;
        char **texts = NULL;
        int nm = 0, named = 0;
        const char *cat = NULL;
        CLLM_TRY(cllm_sft_parse_record(&root, &msgs, &nm, &cat, line, ll));
        for (int k = 0; k < nm; k++)
            if (msgs[k].role != CLLM_ROLE_ASSISTANT)
                named += count_word(msgs[k].content, msgs[k].len, set->categories[own]);
        /* the candidates: own first, then W others (all, or a seeded draw) */
        int nc = 0;
        cand[nc++] = own;
        for (int c = 0; c < K; c++)
            if (c != own) cand[nc++] = c;
        for (int k = 1; k <= W && W < K - 1; k++) { /* partial Fisher-Yates over the others */
            int j = k + (int)(cllm_rng_next(&rng) % (uint64_t)(K - k));
            int tmp = cand[k];
            cand[k] = cand[j];
            cand[j] = tmp;
        }
        /* render every variant; the item counts only when all fit whole */
        all.n = 0;
        all_mask.n = 0;
        bool fits = named > 0;
        var = calloc((size_t)nm, sizeof *var);
        texts = calloc((size_t)nm, sizeof *texts);
        if (!var || !texts) st = CLLM_ERR_NOMEM;
        for (int v = 0; st == CLLM_OK && fits && v <= W; v++) {
            for (int k = 0; k < nm; k++) {
                free(texts[k]);
                texts[k] = NULL;
                var[k] = msgs[k];
                if (v > 0 && msgs[k].role != CLLM_ROLE_ASSISTANT) {
                    texts[k] = replace_word(msgs[k].content, msgs[k].len, set->categories[own],
                                            set->categories[cand[v]]);
                    if (!texts[k]) {
                        st = CLLM_ERR_NOMEM;
                        break;
                    }
                    var[k].content = texts[k];
                    var[k].len = strlen(texts[k]);
                }
            }
            off[v] = all.n;
            if (st == CLLM_OK) st = cllm_chat_render(t, tok, var, nm, false, &all, &all_mask);
            if (st == CLLM_OK && all.n - off[v] > (size_t)o->T + 1) fits = false;
        }
        off[W + 1] = all.n;
        for (int k = 0; texts && k < nm; k++)
            free(texts[k]);
        free(texts);
        free(var);
        free(msgs);
        cJSON_Delete(root);
        if (st != CLLM_OK) goto fail;
        if (!fits) {
            rep->skipped++;
            continue;
        }
        used[i] = true;
        for (int v = 0; v <= W; v++)
            CLLM_TRY(add_row(&s, all.ids + off[v], all_mask.v + off[v], off[v + 1] - off[v],
                             &loss[(size_t)i * (W + 1) + v]));
    }
    CLLM_TRY(flush(&s));
    /* the statistics over the answers scored */
    double so = 0, sw = 0, sg = 0, sg2 = 0;
    int n = 0, lower = 0, top = 0;
    for (int i = 0; i < N; i++) {
        if (!used[i]) continue;
        const double *l = loss + (size_t)i * (W + 1);
        double w = 0, best = INFINITY;
        for (int v = 1; v <= W; v++) {
            w += l[v];
            if (l[v] < best) best = l[v];
        }
        w /= W;
        so += l[0];
        sw += w;
        sg += w - l[0];
        sg2 += (w - l[0]) * (w - l[0]);
        lower += l[0] < w;
        top += l[0] < best;
        n++;
    }
    rep->items = n;
    rep->categories = K;
    rep->wrong_per_item = W;
    rep->chance = 1.0 / (1 + W);
    if (n == 0) {
        st = cllm_fail(CLLM_ERR_FORMAT,
                       "%s: no record could be scored for the category check (%d left out: "
                       "no category, the category not named in a system or user message, or "
                       "longer than %d tokens)",
                       set->path, rep->skipped, o->T + 1);
        goto fail;
    }
    rep->own = so / n;
    rep->wrong = sw / n;
    rep->gap = sg / n;
    rep->gap_se = n > 1 ? sqrt(fmax(0, (sg2 - sg * sg / n) / (n - 1)) / n) : NAN;
    rep->lower = (double)lower / n;
    rep->top1 = (double)top / n;
fail:
    free(text);
    free(starts);
    free(loss);
    free(used);
    free(cand);
    free(s.in);
    free(s.tg);
    free(s.tl);
    free(s.dst);
    free(off);
    cllm_tokens_free(&all);
    cllm_chat_mask_free(&all_mask);
    return st;
}

cllm_status cllm_sft_eval_loss(cllm_gpt *m, const cllm_sft_set *set, int B, int T, double *loss,
                               uint64_t *targets) {
    *loss = NAN;
    cllm_sft_batcher *b = NULL;
    const size_t BT = (size_t)B * T;
    uint32_t *in = cllm_malloc(BT * sizeof *in), *tg = cllm_malloc(BT * sizeof *tg);
    cllm_status st = in && tg ? CLLM_OK : CLLM_ERR_NOMEM;
    double sum = 0;
    uint64_t count = 0;
    if (st == CLLM_OK) st = cllm_sft_batcher_init(&b, set, B, T, false, false, 0);
    const uint64_t n = st == CLLM_OK ? cllm_sft_batcher_batches(b) : 0;
    for (uint64_t i = 0; st == CLLM_OK && i < n; i++) {
        CLLM_TRY(cllm_sft_batcher_next(b, in, tg));
        uint64_t valid = 0;
        for (size_t k = 0; k < BT; k++)
            valid += tg[k] != CLLM_IGNORE_TARGET;
        if (!valid) continue;
        float l;
        CLLM_TRY(cllm_gpt_forward(m, in, tg, B, T));
        CLLM_TRY(cllm_gpt_get_loss(m, &l));
        sum += (double)l * (double)valid;
        count += valid;
    }
    if (st == CLLM_OK && count) *loss = sum / (double)count;
    if (targets) *targets = count;
fail:
    cllm_sft_batcher_free(b);
    free(in);
    free(tg);
    return st;
}
