/* Generation metrics: sacreBLEU's BLEU (tokenize_13a, exp smoothing) and rouge-score's
 * ROUGE-1/2/L (default tokenizer, no stemming), computed exactly as those packages do so
 * that the fixtures written by tools/gen_textmetric_fixtures.py match to the last bits; plus
 * the generation data set and stop strings. */
#include "cllm/eval.h"

#include "cllm/util.h"
#include "eval_internal.h"

#include <cjson/cJSON.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- token lists and n-gram counts ------------------------------------------------------- */

typedef struct {
    char *buf;        /* the tokens, NUL-separated */
    const char **tok; /* (n) */
    int n;
} toklist;

static void toklist_free(toklist *t) {
    free(t->buf);
    free(t->tok);
    memset(t, 0, sizeof *t);
}

/* Split a string whose tokens are separated by single spaces (no leading/trailing space).
 * Takes ownership of s. */
static cllm_status toklist_split(toklist *t, char *s) {
    memset(t, 0, sizeof *t);
    if (!s) return CLLM_ERR_NOMEM;
    t->buf = s;
    int cap = 1;
    for (char *p = s; *p; p++) cap += *p == ' ';
    t->tok = malloc((size_t)cap * sizeof *t->tok);
    if (!t->tok) {
        toklist_free(t);
        return cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
    }
    for (char *p = s; *p;) {
        t->tok[t->n++] = p;
        char *sp = strchr(p, ' ');
        if (!sp) break;
        *sp = 0;
        p = sp + 1;
    }
    return CLLM_OK;
}

static int cmp_strp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Give equal tokens of a and b equal integer ids (ida: (a->n), idb: (b->n)). */
static cllm_status intern2(const toklist *a, const toklist *b, int32_t *ida, int32_t *idb) {
    int n = a->n + b->n;
    const char **all = malloc((size_t)(n ? n : 1) * sizeof *all);
    if (!all) return cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
    memcpy(all, a->tok, (size_t)a->n * sizeof *all);
    memcpy(all + a->n, b->tok, (size_t)b->n * sizeof *all);
    qsort(all, (size_t)n, sizeof *all, cmp_strp);
    int u = 0;
    for (int i = 0; i < n; i++)
        if (i == 0 || strcmp(all[i], all[u - 1])) all[u++] = all[i];
    for (int k = 0; k < 2; k++) {
        const toklist *t = k ? b : a;
        int32_t *ids = k ? idb : ida;
        for (int i = 0; i < t->n; i++) {
            const char **hit = bsearch(&t->tok[i], all, (size_t)u, sizeof *all, cmp_strp);
            ids[i] = (int32_t)(hit - all);
        }
    }
    free(all);
    return CLLM_OK;
}

typedef struct {
    int32_t n;    /* order */
    int32_t t[4]; /* token ids; unused slots -1 */
} ngram;

static int cmp_ngram(const void *a, const void *b) { return memcmp(a, b, sizeof(ngram)); }

/* All n-grams of orders 1..max_n of ids[0..len), sorted; *count n-grams in total. */
static ngram *ngrams_sorted(const int32_t *ids, int len, int max_n, int *count) {
    int total = 0;
    for (int n = 1; n <= max_n; n++) total += len - n + 1 > 0 ? len - n + 1 : 0;
    ngram *g = malloc((size_t)(total ? total : 1) * sizeof *g);
    if (!g) {
        cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
        return NULL;
    }
    int k = 0;
    for (int n = 1; n <= max_n; n++)
        for (int i = 0; i + n <= len; i++) {
            memset(&g[k], 0xff, sizeof g[k]);
            g[k].n = n;
            for (int j = 0; j < n; j++) g[k].t[j] = ids[i + j];
            k++;
        }
    qsort(g, (size_t)total, sizeof *g, cmp_ngram);
    *count = total;
    return g;
}

/* For orders 1..max_n: total[n-1] = hypothesis n-grams, match[n-1] = sum over distinct
 * hypothesis n-grams of min(count in hyp, count in ref) (clipped counts). */
static cllm_status ngram_match(const toklist *hyp, const toklist *ref, int max_n,
                               long long *match, long long *total) {
    cllm_status st = CLLM_OK;
    int32_t *hid = malloc((size_t)(hyp->n + 1) * sizeof *hid);
    int32_t *rid = malloc((size_t)(ref->n + 1) * sizeof *rid);
    ngram *hg = NULL, *rg = NULL;
    int nh = 0, nr = 0;
    if (!hid || !rid) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
        goto fail;
    }
    CLLM_TRY(intern2(hyp, ref, hid, rid));
    hg = ngrams_sorted(hid, hyp->n, max_n, &nh);
    rg = ngrams_sorted(rid, ref->n, max_n, &nr);
    if (!hg || !rg) {
        st = CLLM_ERR_NOMEM;
        goto fail;
    }
    for (int n = 0; n < max_n; n++) match[n] = total[n] = 0;
    for (int i = 0, j = 0; i < nh;) {
        int e = i;
        while (e < nh && !cmp_ngram(&hg[e], &hg[i])) e++;
        long long ch = e - i, cr = 0;
        while (j < nr && cmp_ngram(&rg[j], &hg[i]) < 0) j++;
        while (j < nr && !cmp_ngram(&rg[j], &hg[i])) cr++, j++;
        total[hg[i].n - 1] += ch;
        match[hg[i].n - 1] += ch < cr ? ch : cr;
        i = e;
    }
fail:
    free(hid);
    free(rid);
    free(hg);
    free(rg);
    return st;
}

/* ---- sacreBLEU ----------------------------------------------------------------------------- */

/* s with every occurrence of `from` replaced by `to`, left to right (str.replace). */
static char *replace_all(char *s, const char *from, const char *to) {
    if (!s) return NULL;
    size_t fl = strlen(from);
    if (!strstr(s, from)) return s;
    ev_buf b = {0};
    for (const char *p = s;;) {
        const char *hit = strstr(p, from);
        if (!hit) {
            ev_buf_adds(&b, p);
            break;
        }
        ev_buf_add(&b, p, (size_t)(hit - p));
        ev_buf_adds(&b, to);
        p = hit + fl;
    }
    free(s);
    return ev_buf_take(&b);
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* The character class of 13a's first rule: [\{-\~\[-\` -\&\(-\+\:-\@\/]. */
static bool punct13a(unsigned char c) {
    return (c >= 0x7B && c <= 0x7E) || (c >= 0x5B && c <= 0x60) || (c >= 0x20 && c <= 0x26) ||
           (c >= 0x28 && c <= 0x2B) || (c >= 0x3A && c <= 0x40) || c == '/';
}

/* Python's ' '.join(s.split()). Takes ownership of s. */
static char *py_split_join(char *s) {
    if (!s) return NULL;
    ev_buf b = {0};
    size_t n = strlen(s), i = 0;
    bool pending = false;
    while (i < n) {
        size_t l = ev_space_len(s + i, n - i);
        if (l) {
            pending = b.len > 0;
            i += l;
            continue;
        }
        if (pending) ev_buf_addc(&b, ' ');
        pending = false;
        ev_buf_addc(&b, s[i++]);
    }
    free(s);
    return ev_buf_take(&b);
}

char *cllm_bleu_tokenize_13a(const char *text) {
    /* BLEU._preprocess_segment: sent.rstrip() */
    size_t n = strlen(text), b, e;
    ev_py_strip(text, n, &b, &e);
    if (b == e) e = 0;
    char *s = malloc(e + 1);
    if (!s) {
        cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
        return NULL;
    }
    memcpy(s, text, e);
    s[e] = 0;
    /* Tokenizer13a */
    s = replace_all(s, "<skipped>", "");
    s = replace_all(s, "-\n", "");
    s = replace_all(s, "\n", " ");
    if (s && strchr(s, '&')) {
        s = replace_all(s, "&quot;", "\"");
        s = replace_all(s, "&amp;", "&");
        s = replace_all(s, "&lt;", "<");
        s = replace_all(s, "&gt;", ">");
    }
    if (!s) return NULL;
    /* TokenizerRegexp on f' {line} '. The patterns of rules 2-4 are two characters wide and
     * re.sub scans left to right without overlap; a byte-wise scan gives the same result on
     * UTF-8 because every class it tests for ('.', ',', '-', digits) is ASCII. */
    ev_buf r1 = {0};
    ev_buf_addc(&r1, ' ');
    for (const char *p = s; *p; p++) {
        if (punct13a((unsigned char)*p)) {
            char t[3] = {' ', *p, ' '};
            ev_buf_add(&r1, t, 3);
        } else {
            ev_buf_addc(&r1, *p);
        }
    }
    ev_buf_addc(&r1, ' ');
    free(s);
    s = ev_buf_take(&r1);
    for (int rule = 2; rule <= 4 && s; rule++) {
        ev_buf o = {0};
        for (size_t i = 0; s[i];) {
            char a = s[i], c = s[i + 1];
            bool hit = false;
            if (c) {
                if (rule == 2) hit = !is_digit(a) && (c == '.' || c == ',');
                if (rule == 3) hit = (a == '.' || a == ',') && !is_digit(c);
                if (rule == 4) hit = is_digit(a) && c == '-';
            }
            if (!hit) {
                ev_buf_addc(&o, s[i++]);
                continue;
            }
            if (rule == 3) { /* r' \1 \2' */
                char t[4] = {' ', a, ' ', c};
                ev_buf_add(&o, t, 4);
            } else { /* r'\1 \2 ' */
                char t[4] = {a, ' ', c, ' '};
                ev_buf_add(&o, t, 4);
            }
            i += 2;
        }
        free(s);
        s = ev_buf_take(&o);
    }
    return py_split_join(s);
}

static double my_log(double x) { return x == 0.0 ? -9999999999.0 : log(x); }

/* BLEU.compute_bleu with smooth_method='exp' from the sufficient statistics in o. */
static void bleu_compute(cllm_bleu *o, bool effective_order) {
    o->bp = 1.0;
    if (o->sys_len < o->ref_len)
        o->bp = o->sys_len > 0 ? exp(1.0 - (double)o->ref_len / (double)o->sys_len) : 0.0;
    o->ratio = o->ref_len ? (double)o->sys_len / (double)o->ref_len : 0.0;
    for (int k = 0; k < CLLM_BLEU_MAX_ORDER; k++) o->precisions[k] = 0.0;
    o->score = 0.0;
    bool any = false;
    for (int k = 0; k < CLLM_BLEU_MAX_ORDER; k++) any = any || o->counts[k];
    if (!any) return;
    double smooth = 1.0;
    int eff = CLLM_BLEU_MAX_ORDER;
    for (int n = 1; n <= CLLM_BLEU_MAX_ORDER; n++) {
        if (o->totals[n - 1] == 0) break;
        if (effective_order) eff = n;
        if (o->counts[n - 1] == 0) {
            smooth *= 2;
            o->precisions[n - 1] = 100.0 / (smooth * (double)o->totals[n - 1]);
        } else {
            o->precisions[n - 1] = 100.0 * (double)o->counts[n - 1] / (double)o->totals[n - 1];
        }
    }
    double sum = 0.0;
    for (int k = 0; k < eff; k++) sum += my_log(o->precisions[k]);
    o->score = o->bp * exp(sum / eff);
}

/* Add one segment's statistics to o. */
static cllm_status bleu_add(cllm_bleu *o, const char *hyp, const char *ref) {
    toklist h, r;
    cllm_status st = toklist_split(&h, cllm_bleu_tokenize_13a(hyp));
    if (st != CLLM_OK) return st;
    st = toklist_split(&r, cllm_bleu_tokenize_13a(ref));
    if (st != CLLM_OK) {
        toklist_free(&h);
        return st;
    }
    long long m[CLLM_BLEU_MAX_ORDER], t[CLLM_BLEU_MAX_ORDER];
    st = ngram_match(&h, &r, CLLM_BLEU_MAX_ORDER, m, t);
    if (st == CLLM_OK) {
        o->sys_len += h.n;
        o->ref_len += r.n; /* one reference: it is the closest */
        for (int k = 0; k < CLLM_BLEU_MAX_ORDER; k++) o->counts[k] += m[k], o->totals[k] += t[k];
    }
    toklist_free(&h);
    toklist_free(&r);
    return st;
}

cllm_status cllm_bleu_corpus(cllm_bleu *out, const char *const *hyps, const char *const *refs,
                             int n) {
    memset(out, 0, sizeof *out);
    for (int i = 0; i < n; i++) {
        if (!hyps[i] || !refs[i])
            return cllm_fail(CLLM_ERR_USAGE, "BLEU: segment %d has no %s", i,
                             hyps[i] ? "reference" : "hypothesis");
        cllm_status st = bleu_add(out, hyps[i], refs[i]);
        if (st != CLLM_OK) return st;
    }
    bleu_compute(out, false);
    return CLLM_OK;
}

cllm_status cllm_bleu_sentence(cllm_bleu *out, const char *hyp, const char *ref) {
    memset(out, 0, sizeof *out);
    cllm_status st = bleu_add(out, hyp, ref);
    if (st != CLLM_OK) return st;
    bleu_compute(out, true);
    return CLLM_OK;
}

/* ---- rouge-score --------------------------------------------------------------------------- */

char *cllm_rouge_tokenize(const char *text) {
    /* text.lower(), then [^a-z0-9]+ -> " ", split, keep ^[a-z0-9]+$ tokens. The only
     * non-ASCII characters whose lower case contains [a-z0-9] are U+0130 ("i" + U+0307) and
     * U+212A KELVIN SIGN ("k"); everything else non-ASCII separates tokens. */
    ev_buf b = {0};
    size_t n = strlen(text), i = 0;
    bool in_tok = false;
    while (i < n) {
        uint32_t cp;
        int l = ev_utf8_decode((const unsigned char *)text + i, n - i, &cp);
        if (!l) cp = 0xFFFD, l = 1; /* an invalid byte reads like U+FFFD: a separator */
        i += (size_t)l;
        char c = 0;
        if (cp >= 'A' && cp <= 'Z')
            c = (char)(cp - 'A' + 'a');
        else if ((cp >= 'a' && cp <= 'z') || (cp >= '0' && cp <= '9'))
            c = (char)cp;
        else if (cp == 0x130)
            c = 'i'; /* followed by U+0307, a separator */
        else if (cp == 0x212A)
            c = 'k';
        if (c) {
            if (!in_tok && b.len) ev_buf_addc(&b, ' ');
            ev_buf_addc(&b, c);
            in_tok = cp != 0x130;
        } else {
            in_tok = false;
        }
    }
    return ev_buf_take(&b);
}

static cllm_prf prf(double p, double r) {
    cllm_prf s = {p, r, p + r > 0 ? 2 * p * r / (p + r) : 0.0};
    return s;
}

static int rouge_lcs(const int32_t *a, int na, const int32_t *b, int nb) {
    int *prev = calloc((size_t)nb + 1, sizeof *prev), *cur = calloc((size_t)nb + 1, sizeof *cur);
    if (!prev || !cur) {
        free(prev);
        free(cur);
        return -1;
    }
    for (int i = 1; i <= na; i++) {
        for (int j = 1; j <= nb; j++)
            cur[j] = a[i - 1] == b[j - 1] ? prev[j - 1] + 1
                                          : (prev[j] > cur[j - 1] ? prev[j] : cur[j - 1]);
        int *t = prev;
        prev = cur;
        cur = t;
    }
    int r = prev[nb];
    free(prev);
    free(cur);
    return r;
}

cllm_status cllm_rouge_pair(cllm_rouge *out, const char *target, const char *prediction) {
    memset(out, 0, sizeof *out);
    toklist t, p;
    cllm_status st = toklist_split(&t, cllm_rouge_tokenize(target));
    if (st != CLLM_OK) return st;
    st = toklist_split(&p, cllm_rouge_tokenize(prediction));
    if (st != CLLM_OK) {
        toklist_free(&t);
        return st;
    }
    int32_t *tid = malloc((size_t)(t.n + 1) * sizeof *tid);
    int32_t *pid = malloc((size_t)(p.n + 1) * sizeof *pid);
    if (!tid || !pid) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
        goto done;
    }
    /* _score_ngrams: intersection / max(count, 1) */
    for (int n = 1; n <= 2; n++) {
        long long m[2], tot_p[2];
        st = ngram_match(&p, &t, n, m, tot_p);
        if (st != CLLM_OK) goto done;
        long long inter = m[n - 1], np = tot_p[n - 1], nt = t.n - n + 1 > 0 ? t.n - n + 1 : 0;
        cllm_prf s = prf((double)inter / (double)(np > 1 ? np : 1),
                         (double)inter / (double)(nt > 1 ? nt : 1));
        if (n == 1)
            out->rouge1 = s;
        else
            out->rouge2 = s;
    }
    /* _score_lcs: zeros when either side has no tokens */
    if (t.n && p.n) {
        st = intern2(&t, &p, tid, pid);
        if (st != CLLM_OK) goto done;
        int lcs = rouge_lcs(tid, t.n, pid, p.n);
        if (lcs < 0) {
            st = cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
            goto done;
        }
        out->rougeL = prf((double)lcs / p.n, (double)lcs / t.n);
    }
done:
    free(tid);
    free(pid);
    toklist_free(&t);
    toklist_free(&p);
    return st;
}

/* ---- generation data ------------------------------------------------------------------------ */

void cllm_gen_set_free(cllm_gen_set *set) {
    if (!set) return;
    for (int i = 0; i < set->n; i++) {
        free(set->items[i].prompt);
        free(set->items[i].reference);
        free(set->items[i].id);
    }
    free(set->items);
    free(set->path);
    memset(set, 0, sizeof *set);
}

typedef struct {
    cllm_gen_set *set;
    int cap;
} gen_loader;

static cllm_status gen_line(void *user, const char *line, size_t len, long lineno) {
    gen_loader *L = user;
    cJSON *o = NULL;
    cllm_status st = ev_parse_object(&o, line, len);
    if (st != CLLM_OK) return st;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "prompt");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "reference");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
    if (!cJSON_IsString(p) || !cJSON_IsString(r)) {
        st = cllm_fail(CLLM_ERR_FORMAT, "%s", !p   ? "missing key 'prompt'"
                                             : !r ? "missing key 'reference'"
                                                  : "'prompt' and 'reference' must be strings");
    } else if (!ev_utf8_valid(p->valuestring, strlen(p->valuestring), NULL) ||
               !ev_utf8_valid(r->valuestring, strlen(r->valuestring), NULL)) {
        st = cllm_fail(CLLM_ERR_FORMAT, "a string is not valid UTF-8 (lone surrogate?)");
    } else {
        cllm_gen_set *set = L->set;
        if (set->n == L->cap) {
            int cap = L->cap ? 2 * L->cap : 256;
            cllm_gen_item *q = realloc(set->items, (size_t)cap * sizeof *q);
            if (!q) {
                st = cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
                goto done;
            }
            set->items = q;
            L->cap = cap;
        }
        cllm_gen_item *it = &set->items[set->n];
        memset(it, 0, sizeof *it);
        it->prompt = strdup(p->valuestring);
        it->reference = strdup(r->valuestring);
        if (cJSON_IsString(id))
            it->id = strdup(id->valuestring);
        else if (cJSON_IsNumber(id))
            it->id = cllm_strdup_printf("%.17g", id->valuedouble);
        it->line = lineno;
        set->n++;
        if (!it->prompt || !it->reference)
            st = cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
    }
done:
    cJSON_Delete(o);
    return st;
}

cllm_status cllm_gen_load(cllm_gen_set *set, const char *path, bool strict, int limit) {
    memset(set, 0, sizeof *set);
    set->path = strdup(path);
    if (!set->path) return cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
    gen_loader L = {set, 0};
    cllm_status st = ev_jsonl_each(path, strict, limit, "generation prompts", gen_line, &L,
                                   &set->stats);
    if (st != CLLM_OK) cllm_gen_set_free(set);
    return st;
}

cllm_status cllm_gen_score(cllm_gen_results *res, const cllm_gen_set *set,
                           const char *const *outputs) {
    memset(res, 0, sizeof *res);
    const char **refs = malloc((size_t)(set->n ? set->n : 1) * sizeof *refs);
    if (!refs) return cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
    for (int i = 0; i < set->n; i++) refs[i] = set->items[i].reference;
    cllm_status st = cllm_bleu_corpus(&res->bleu, outputs, refs, set->n);
    free(refs);
    if (st != CLLM_OK) return st;
    cllm_rouge sum = {{0}};
    for (int i = 0; i < set->n; i++) {
        cllm_rouge r;
        st = cllm_rouge_pair(&r, set->items[i].reference, outputs[i]);
        if (st != CLLM_OK) return st;
        cllm_prf *d[3] = {&sum.rouge1, &sum.rouge2, &sum.rougeL};
        const cllm_prf *s[3] = {&r.rouge1, &r.rouge2, &r.rougeL};
        for (int k = 0; k < 3; k++) {
            d[k]->precision += s[k]->precision;
            d[k]->recall += s[k]->recall;
            d[k]->f1 += s[k]->f1;
        }
    }
    if (set->n) {
        cllm_prf *d[3] = {&sum.rouge1, &sum.rouge2, &sum.rougeL};
        for (int k = 0; k < 3; k++) {
            d[k]->precision /= set->n;
            d[k]->recall /= set->n;
            d[k]->f1 /= set->n;
        }
    }
    res->rouge = sum;
    res->n = set->n;
    return CLLM_OK;
}

char *cllm_gen_sample_json(const cllm_gen_set *set, int i, const char *output) {
    if (i < 0 || i >= set->n || !output) {
        cllm_fail(CLLM_ERR_USAGE, "generation item %d is not in the set", i);
        return NULL;
    }
    const cllm_gen_item *it = &set->items[i];
    cllm_bleu b;
    cllm_rouge r;
    if (cllm_bleu_sentence(&b, output, it->reference) != CLLM_OK) return NULL;
    if (cllm_rouge_pair(&r, it->reference, output) != CLLM_OK) return NULL;
    cJSON *o = cJSON_CreateObject();
    if (!o) goto oom;
    if (set->path) cJSON_AddStringToObject(o, "file", set->path);
    cJSON_AddNumberToObject(o, "index", i);
    cJSON_AddNumberToObject(o, "line", (double)it->line);
    if (it->id) cJSON_AddStringToObject(o, "id", it->id);
    cJSON_AddStringToObject(o, "prompt", it->prompt);
    cJSON_AddStringToObject(o, "reference", it->reference);
    cJSON_AddStringToObject(o, "output", output);
    cJSON_AddNumberToObject(o, "sentence_bleu", b.score);
    cJSON_AddNumberToObject(o, "rouge1", r.rouge1.f1);
    cJSON_AddNumberToObject(o, "rouge2", r.rouge2.f1);
    cJSON_AddNumberToObject(o, "rougeL", r.rougeL.f1);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s) goto oom;
    return s;
oom:
    cllm_fail(CLLM_ERR_NOMEM, "out of host memory writing a sample line");
    return NULL;
}

size_t cllm_gen_stop_at(const char *text, const char *const *stops, int n_stops) {
    size_t best = strlen(text);
    for (int k = 0; k < n_stops; k++) {
        if (!stops[k] || !stops[k][0]) continue;
        const char *hit = strstr(text, stops[k]);
        if (hit && (size_t)(hit - text) < best) best = (size_t)(hit - text);
    }
    return best;
}
