/* Derived data sets from plain documents: the cloze multiple-choice benchmark of
 * `cllm data make-mc` and the categorised chat set of `cllm data make-sft`. */
#include "cllm/datasets.h"

#include "cllm/data.h"
#include "cllm/util.h"
#include "eval_internal.h"

#include <cjson/cJSON.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- shared pieces -------------------------------------------------------------------------- */

/* splitmix64: small, seedable, and the same sequence on every platform. */
typedef struct {
    uint64_t s;
} rng64;

static uint64_t rng_next(rng64 *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n), without modulo bias. */
static int rng_below(rng64 *r, int n) {
    uint64_t lim = UINT64_MAX - UINT64_MAX % (uint64_t)n;
    uint64_t x;
    do x = rng_next(r);
    while (x >= lim);
    return (int)(x % (uint64_t)n);
}

static void shuffle_ints(rng64 *r, int *a, int n) {
    for (int i = n - 1; i > 0; i--) {
        int j = rng_below(r, i + 1), t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* A document without surrounding whitespace. */
typedef struct {
    const char *t;
    size_t len;
    int chars;
} span;

static span trimmed(const cllm_text_doc *d) {
    size_t b, e;
    ev_py_strip(d->text, d->len, &b, &e);
    span s = {d->text + b, e - b, 0};
    for (size_t i = 0; i < s.len; i++) s.chars += ((unsigned char)s.t[i] & 0xC0) != 0x80;
    return s;
}

/* dup[i] = the earlier document that document i repeats, exactly or (near > 0) with an
 * estimated word-shingle Jaccard similarity >= near, -1 if none; only `ok` documents take part.
 * The data module's deduplication (cllm/data.h) decides, as for `cllm data prepare`. */
static cllm_status mark_duplicates(const span *s, const bool *ok, int n, double near, int *dup) {
    cllm_dedup_opts o = cllm_dedup_opts_default();
    o.near_threshold = near;
    cllm_dedup *d = NULL;
    cllm_status st = cllm_dedup_init(&d, &o);
    if (st != CLLM_OK) return st;
    uint32_t *mh = malloc((size_t)o.num_perm * sizeof *mh);
    if (!mh) {
        cllm_dedup_free(d);
        return cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
    }
    for (int i = 0; i < n && st == CLLM_OK; i++) {
        dup[i] = -1;
        if (!ok[i]) continue;
        cllm_doc_sig sig = {.minhash = mh};
        cllm_dedup_signature(d, s[i].t, s[i].len, &sig);
        cllm_doc_rule verdict;
        uint64_t of = 0;
        double sim;
        st = cllm_dedup_add(d, &sig, (uint64_t)i, &verdict, &of, &sim);
        if (st == CLLM_OK && verdict != CLLM_DOC_KEPT) dup[i] = (int)of;
    }
    free(mh);
    cllm_dedup_free(d);
    return st;
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static char *take_json(cJSON *o) {
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!s) cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
    return s;
}

/* ---- make-mc -------------------------------------------------------------------------------- */

cllm_make_mc_opts cllm_make_mc_opts_default(void) {
    cllm_make_mc_opts o = {1234, 0, 4, 0.5, 0, 40, 1000, 12, 2, 12, 0.8};
    return o;
}

void cllm_make_mc_result_free(cllm_make_mc_result *res) {
    if (!res) return;
    free(res->jsonl);
    free(res->used);
    memset(res, 0, sizeof *res);
}

typedef struct {
    int doc;
    size_t cut;      /* byte offset of the space between context and continuation */
    size_t cont_end; /* the continuation is t[cut + 1 .. cont_end) */
    int ctx_chars, cont_chars;
} mc_cand;

static bool ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

static int chars_in(const char *t, size_t n) {
    int c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)t[i] & 0xC0) != 0x80;
    return c;
}

/* The single space at a word boundary, with at least min_context_chars before it and
 * continuation_words words after it, whose context length is nearest the target. */
static bool find_cut(const span *s, const cllm_make_mc_opts *o, mc_cand *c) {
    int target = o->context_chars > 0 ? o->context_chars
                                      : (int)lround(o->context_frac * (double)s->chars);
    int best = -1, chars = 0;
    int need = o->continuation_words;
    for (size_t p = 0; p < s->len; p++) {
        if (s->t[p] == ' ' && p > 0 && p + 1 < s->len && !ws(s->t[p - 1]) && !ws(s->t[p + 1])) {
            int ctx = chars;
            size_t end = s->len;
            if (need > 0) { /* the end of the need-th word from p + 1 */
                int w = 0;
                size_t q = p + 1;
                end = 0;
                while (q < s->len) {
                    while (q < s->len && !ws(s->t[q])) q++;
                    if (++w == need) {
                        end = q;
                        break;
                    }
                    while (q < s->len && ws(s->t[q])) q++;
                }
            }
            if (end && ctx >= o->min_context_chars && (best < 0 || abs(ctx - target) < best)) {
                best = abs(ctx - target);
                c->cut = p;
                c->cont_end = end;
                c->ctx_chars = ctx;
            }
        }
        chars += ((unsigned char)s->t[p] & 0xC0) != 0x80;
    }
    if (best >= 0) c->cont_chars = chars_in(s->t + c->cut + 1, c->cont_end - c->cut - 1);
    return best >= 0;
}

typedef struct {
    int len, k; /* continuation length in characters, position in the pool */
} len_k;

static int cmp_len_k(const void *a, const void *b) {
    const len_k *x = a, *y = b;
    return x->len != y->len ? x->len - y->len : x->k - y->k;
}

static bool same_cont(const span *sp, const mc_cand *a, const mc_cand *b) {
    const span *x = &sp[a->doc], *y = &sp[b->doc];
    size_t lx = a->cont_end - a->cut - 1, ly = b->cont_end - b->cut - 1;
    return lx == ly && !memcmp(x->t + a->cut + 1, y->t + b->cut + 1, lx);
}

static cllm_status mc_item_json(ev_buf *out, const cllm_text_doc *docs, const span *sp,
                                const mc_cand *gold, const mc_cand *const *others, int n_choices,
                                int gold_pos) {
    const span *g = &sp[gold->doc];
    cJSON *o = cJSON_CreateObject();
    char *ctx = strndup(g->t, gold->cut);
    if (!o || !ctx) goto oom;
    cJSON_AddStringToObject(o, "context", ctx);
    free(ctx);
    cJSON *ch = cJSON_AddArrayToObject(o, "choices");
    if (!ch) goto oom;
    for (int c = 0, k = 0; c < n_choices; c++) {
        const mc_cand *m = c == gold_pos ? gold : others[k++];
        const span *s = &sp[m->doc];
        char *t = strndup(s->t + m->cut + 1, m->cont_end - m->cut - 1);
        if (!t) goto oom;
        cJSON_AddItemToArray(ch, cJSON_CreateString(t));
        free(t);
    }
    cJSON_AddNumberToObject(o, "label", gold_pos);
    const cllm_text_doc *d = &docs[gold->doc];
    char *id = d->source ? cllm_strdup_printf("%s:%ld", base_name(d->source), d->line)
                         : cllm_strdup_printf("doc%d", gold->doc);
    if (!id) goto oom;
    cJSON_AddStringToObject(o, "id", id);
    free(id);
    char *line = take_json(o);
    if (!line) return CLLM_ERR_NOMEM;
    ev_buf_adds(out, line);
    ev_buf_addc(out, '\n');
    free(line);
    return CLLM_OK;
oom:
    cJSON_Delete(o);
    return cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
}

cllm_status cllm_datasets_make_mc(cllm_make_mc_result *res, const cllm_text_doc *docs, int n_docs,
                                  const cllm_make_mc_opts *o) {
    memset(res, 0, sizeof *res);
    if (o->n_choices < 2 || o->n_items < 0 || o->neighbours < o->n_choices - 1 ||
        o->context_frac <= 0 || o->context_frac >= 1 || o->min_context_chars < 1 ||
        o->continuation_words < 0)
        return cllm_fail(CLLM_ERR_USAGE, "make-mc: need n_choices >= 2, n_items >= 0, "
                         "neighbours >= n_choices - 1, 0 < context_frac < 1, "
                         "min_context_chars >= 1, continuation_words >= 0");
    cllm_status st = CLLM_OK;
    span *sp = calloc((size_t)(n_docs ? n_docs : 1), sizeof *sp);
    bool *ok = calloc((size_t)(n_docs ? n_docs : 1), sizeof *ok);
    int *dup = calloc((size_t)(n_docs ? n_docs : 1), sizeof *dup);
    mc_cand *cand = calloc((size_t)(n_docs ? n_docs : 1), sizeof *cand);
    int *pool = NULL, *bylen = NULL, *rank = NULL, *near = NULL;
    const mc_cand **others = NULL;
    ev_buf out = {0};
    res->used = calloc((size_t)(n_docs ? n_docs : 1), sizeof *res->used);
    if (!sp || !ok || !dup || !cand || !res->used) goto oom;
    res->n_docs = n_docs;
    for (int i = 0; i < n_docs; i++) {
        sp[i] = trimmed(&docs[i]);
        ok[i] = sp[i].chars >= o->min_chars && (o->max_chars <= 0 || sp[i].chars <= o->max_chars);
    }
    CLLM_TRY(mark_duplicates(sp, ok, n_docs, o->near_dup, dup));
    int n_usable = 0;
    for (int i = 0; i < n_docs; i++) {
        if (dup[i] >= 0) res->n_duplicate++;
        if (!ok[i] || dup[i] >= 0) continue;
        cand[n_usable].doc = i;
        if (find_cut(&sp[i], o, &cand[n_usable])) n_usable++;
    }
    res->n_usable = n_usable;
    int n_pool = o->n_items > 0 ? o->n_items : n_usable;
    if (n_usable < o->n_choices || n_pool > n_usable || n_pool < o->n_choices) {
        st = cllm_fail(CLLM_ERR_USAGE,
                       "make-mc: %d of %d documents are usable (%d..%d characters, a word "
                       "boundary after >= %d characters of context and before %d words, "
                       "duplicates dropped); %d items of %d choices need at least %d",
                       n_usable, n_docs, o->min_chars, o->max_chars, o->min_context_chars,
                       o->continuation_words, n_pool,
                       o->n_choices, n_pool > o->n_choices ? n_pool : o->n_choices);
        goto fail;
    }
    rng64 rng = {o->seed};
    pool = malloc((size_t)n_usable * sizeof *pool);
    bylen = malloc((size_t)n_pool * sizeof *bylen);
    rank = malloc((size_t)n_pool * sizeof *rank);
    int nn = o->neighbours < n_pool - 1 ? o->neighbours : n_pool - 1;
    near = malloc((size_t)(n_pool ? n_pool : 1) * sizeof *near);
    others = malloc((size_t)o->n_choices * sizeof *others);
    if (!pool || !bylen || !rank || !near || !others) goto oom;
    for (int i = 0; i < n_usable; i++) pool[i] = i;
    shuffle_ints(&rng, pool, n_usable);
    /* pool[0 .. n_pool) index cand[]; bylen sorts those positions by continuation length. */
    mc_cand *pc = malloc((size_t)n_pool * sizeof *pc);
    if (!pc) goto oom;
    len_k *lk = malloc((size_t)n_pool * sizeof *lk);
    if (!lk) {
        free(pc);
        goto oom;
    }
    for (int k = 0; k < n_pool; k++) pc[k] = cand[pool[k]], lk[k].len = pc[k].cont_chars, lk[k].k = k;
    qsort(lk, (size_t)n_pool, sizeof *lk, cmp_len_k);
    for (int r = 0; r < n_pool; r++) bylen[r] = lk[r].k, rank[lk[r].k] = r;
    free(lk);
    for (int k = 0; k < n_pool; k++) res->used[pc[k].doc] = true;
    for (int i = 0; i < n_docs; i++) /* a copy of a benchmark document is not safe to train on */
        if (dup[i] >= 0 && res->used[dup[i]]) res->used[i] = true;

    for (int k = 0; k < n_pool; k++) {
        /* The nearest continuations in length (walking out from k's rank), skipping any whose
         * text equals the right one's or an already gathered one's. */
        int lo = rank[k] - 1, hi = rank[k] + 1, m = 0;
        while (m < nn && (lo >= 0 || hi < n_pool)) {
            int pick;
            if (lo < 0)
                pick = hi++;
            else if (hi >= n_pool)
                pick = lo--;
            else if (pc[k].cont_chars - pc[bylen[lo]].cont_chars <=
                     pc[bylen[hi]].cont_chars - pc[k].cont_chars)
                pick = lo--;
            else
                pick = hi++;
            const mc_cand *c = &pc[bylen[pick]];
            bool clash = same_cont(sp, c, &pc[k]);
            for (int j = 0; j < m && !clash; j++) clash = same_cont(sp, c, &pc[near[j]]);
            if (!clash) near[m++] = bylen[pick];
        }
        if (m < o->n_choices - 1) {
            st = cllm_fail(CLLM_ERR_USAGE, "make-mc: the pool has only %d distinct continuations "
                           "besides document %d's; %d choices need %d", m, pc[k].doc,
                           o->n_choices, o->n_choices - 1);
            free(pc);
            goto fail;
        }
        /* n_choices - 1 of the m nearest at random, in random order. */
        for (int j = 0; j < o->n_choices - 1; j++) {
            int t = j + rng_below(&rng, m - j), x = near[j];
            near[j] = near[t];
            near[t] = x;
            others[j] = &pc[near[j]];
        }
        int gold_pos = rng_below(&rng, o->n_choices);
        st = mc_item_json(&out, docs, sp, &pc[k], others, o->n_choices, gold_pos);
        if (st != CLLM_OK) {
            free(pc);
            goto fail;
        }
        res->n_items++;
    }
    free(pc);
    res->jsonl_len = out.len;
    res->jsonl = ev_buf_take(&out);
    if (!res->jsonl) goto oom;
    goto done;
oom:
    st = cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
fail:
    ev_buf_free(&out);
    cllm_make_mc_result_free(res);
done:
    free(sp);
    free(ok);
    free(dup);
    free(cand);
    free(pool);
    free(bylen);
    free(rank);
    free(near);
    free(others);
    return st;
}

/* ---- make-sft ------------------------------------------------------------------------------- */

const char *const cllm_sft_default_templates[] = {
    "Tell me a fortune about {category}.",
    "Give me a fortune about {category}.",
    "Do you know a fortune about {category}?",
    "I would like to hear a fortune about {category}.",
};
const int cllm_sft_n_default_templates =
    (int)(sizeof cllm_sft_default_templates / sizeof *cllm_sft_default_templates);

cllm_make_sft_opts cllm_make_sft_opts_default(void) {
    cllm_make_sft_opts o = {0};
    o.seed = 1234;
    o.min_chars = 1;
    o.max_chars = 1000;
    o.near_dup = 0.8;
    return o;
}

void cllm_make_sft_result_free(cllm_make_sft_result *res) {
    if (!res) return;
    free(res->train);
    free(res->val);
    for (int i = 0; i < res->n_categories && res->categories; i++) free(res->categories[i]);
    free(res->categories);
    free(res->per_category);
    memset(res, 0, sizeof *res);
}

char *cllm_datasets_category(const char *source, bool from_dir) {
    if (!source || !*source) return strdup("general");
    size_t n = strlen(source);
    while (n > 1 && source[n - 1] == '/') n--;
    size_t e = n;
    if (from_dir) { /* strip the file name */
        while (e > 0 && source[e - 1] != '/') e--;
        while (e > 1 && source[e - 1] == '/') e--;
        if (e == 0) return strdup("general");
        n = e;
    }
    size_t b = n;
    while (b > 0 && source[b - 1] != '/') b--;
    if (!from_dir) { /* drop one extension (".txt"), but not a leading dot */
        for (size_t k = n; k > b + 1; k--)
            if (source[k - 1] == '.') {
                n = k - 1;
                break;
            }
    }
    char *s = strndup(source + b, n - b);
    if (!s) {
        cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
        return NULL;
    }
    for (char *p = s; *p; p++)
        if (*p == '-' || *p == '_') *p = ' ';
    return s;
}

static char *fill_template(const char *tpl, const char *category) {
    ev_buf b = {0};
    for (const char *p = tpl; *p;) {
        if (!strncmp(p, "{category}", 10)) {
            ev_buf_adds(&b, category);
            p += 10;
        } else {
            ev_buf_addc(&b, *p++);
        }
    }
    return ev_buf_take(&b);
}

static char *sft_record(const cllm_make_sft_opts *o, const char *user, const span *answer,
                        const char *category) {
    cJSON *r = cJSON_CreateObject();
    char *a = strndup(answer->t, answer->len);
    if (!r || !a) {
        cJSON_Delete(r);
        free(a);
        cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
        return NULL;
    }
    if (o->format == CLLM_SFT_PAIRS) {
        cJSON_AddStringToObject(r, "prompt", user);
        cJSON_AddStringToObject(r, "response", a);
    } else {
        cJSON *m = cJSON_AddArrayToObject(r, "messages");
        const char *roles[3] = {"system", "user", "assistant"};
        const char *texts[3] = {o->system, user, a};
        for (int k = o->system ? 0 : 1; k < 3 && m; k++) {
            cJSON *t = cJSON_CreateObject();
            cJSON_AddStringToObject(t, "role", roles[k]);
            cJSON_AddStringToObject(t, "content", texts[k]);
            cJSON_AddItemToArray(m, t);
        }
    }
    cJSON_AddStringToObject(r, "category", category);
    free(a);
    return take_json(r);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

cllm_status cllm_datasets_make_sft(cllm_make_sft_result *res, const cllm_text_doc *docs,
                                   int n_docs, const cllm_make_sft_opts *o) {
    memset(res, 0, sizeof *res);
    const char *const *tpl = o->templates ? o->templates : cllm_sft_default_templates;
    int n_tpl = o->templates ? o->n_templates : cllm_sft_n_default_templates;
    if (n_tpl < 1 || o->val_fraction < 0 || o->val_fraction >= 1 || o->max_per_category < 0)
        return cllm_fail(CLLM_ERR_USAGE, "make-sft: need at least one template, 0 <= "
                         "val_fraction < 1 and max_per_category >= 0");
    for (int k = 0; k < n_tpl; k++)
        if (!strstr(tpl[k], "{category}"))
            return cllm_fail(CLLM_ERR_USAGE, "make-sft: template '%s' has no {category}", tpl[k]);
    cllm_status st = CLLM_OK;
    int nd = n_docs ? n_docs : 1;
    span *sp = calloc((size_t)nd, sizeof *sp);
    bool *ok = calloc((size_t)nd, sizeof *ok);
    int *dup = calloc((size_t)nd, sizeof *dup);
    char **cat = calloc((size_t)nd, sizeof *cat);
    int *cat_of = calloc((size_t)nd, sizeof *cat_of), *order = NULL, *is_val = NULL;
    ev_buf tr = {0}, va = {0};
    if (!sp || !ok || !dup || !cat || !cat_of) goto oom;
    for (int i = 0; i < n_docs; i++) {
        sp[i] = trimmed(&docs[i]);
        ok[i] = sp[i].chars >= (o->min_chars > 1 ? o->min_chars : 1) &&
                (o->max_chars <= 0 || sp[i].chars <= o->max_chars);
        if (!ok[i]) res->n_filtered++;
    }
    CLLM_TRY(mark_duplicates(sp, ok, n_docs, o->near_dup, dup));
    /* Category names, sorted and unique. */
    int nc = 0;
    for (int i = 0; i < n_docs; i++) {
        if (!ok[i] || dup[i] >= 0) {
            res->n_duplicate += dup[i] >= 0;
            continue;
        }
        cat[i] = cllm_datasets_category(docs[i].source, o->category_from_dir);
        if (!cat[i]) goto oom;
    }
    res->categories = calloc((size_t)nd, sizeof *res->categories);
    if (!res->categories) goto oom;
    for (int i = 0; i < n_docs; i++)
        if (cat[i]) res->categories[nc++] = cat[i];
    qsort(res->categories, (size_t)nc, sizeof *res->categories, cmp_str);
    int u = 0;
    for (int i = 0; i < nc; i++)
        if (!u || strcmp(res->categories[i], res->categories[u - 1])) res->categories[u++] = res->categories[i];
    for (int i = 0; i < u; i++) res->categories[i] = strdup(res->categories[i]);
    res->n_categories = u;
    for (int i = 0; i < u; i++)
        if (!res->categories[i]) goto oom;
    if (u == 0) {
        st = cllm_fail(CLLM_ERR_USAGE, "make-sft: none of the %d documents is usable (%d "
                       "outside %d..%d characters, %d duplicates)", n_docs, res->n_filtered,
                       o->min_chars, o->max_chars, res->n_duplicate);
        goto fail;
    }
    res->per_category = calloc((size_t)u, sizeof *res->per_category);
    order = malloc((size_t)nd * sizeof *order);
    is_val = calloc((size_t)nd, sizeof *is_val);
    if (!res->per_category || !order || !is_val) goto oom;
    for (int i = 0; i < n_docs; i++)
        if (cat[i]) {
            char **hit = bsearch(&cat[i], res->categories, (size_t)u, sizeof(char *), cmp_str);
            cat_of[i] = (int)(hit - res->categories);
        }
    rng64 rng = {o->seed};
    /* Per category (in name order): shuffle its documents, keep max_per_category, hold out
     * round(val_fraction * n) of them (at least one stays in training). */
    int n_keep = 0;
    for (int c = 0; c < u; c++) {
        int n = 0, *mine = order + n_keep;
        for (int i = 0; i < n_docs; i++)
            if (cat[i] && cat_of[i] == c) mine[n++] = i;
        shuffle_ints(&rng, mine, n);
        if (o->max_per_category > 0 && n > o->max_per_category) n = o->max_per_category;
        int nv = n >= 2 ? (int)lround(o->val_fraction * n) : 0;
        if (nv >= n) nv = n - 1;
        for (int k = 0; k < nv; k++) is_val[mine[k]] = 1;
        res->per_category[c] = n;
        n_keep += n;
    }
    /* Records in a random order overall; each gets a random template. */
    shuffle_ints(&rng, order, n_keep);
    for (int k = 0; k < n_keep; k++) {
        int i = order[k];
        char *user = fill_template(tpl[rng_below(&rng, n_tpl)], res->categories[cat_of[i]]);
        if (!user) goto oom;
        char *line = sft_record(o, user, &sp[i], res->categories[cat_of[i]]);
        free(user);
        if (!line) goto oom;
        ev_buf *b = is_val[i] ? &va : &tr;
        ev_buf_adds(b, line);
        ev_buf_addc(b, '\n');
        free(line);
        if (is_val[i])
            res->n_val++;
        else
            res->n_train++;
    }
    res->train_len = tr.len;
    res->val_len = va.len;
    res->train = ev_buf_take(&tr);
    res->val = ev_buf_take(&va);
    if (!res->train || !res->val) goto oom;
    goto done;
oom:
    st = cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
fail:
    ev_buf_free(&tr);
    ev_buf_free(&va);
    cllm_make_sft_result_free(res);
done:
    for (int i = 0; i < n_docs && cat; i++) free(cat[i]);
    free(cat);
    free(cat_of);
    free(sp);
    free(ok);
    free(dup);
    free(order);
    free(is_val);
    return st;
}
