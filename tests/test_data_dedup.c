/* Deduplication: XXH64 against published vectors and xxhsum; the LSH banding against
 * tools/lsh_params.py; a synthetic corpus with planted exact copies, near copies (true
 * Jaccard >= 0.9, computed here from the shingle sets) and half-overlapping documents (true
 * Jaccard < 0.5) — exactly the planted duplicates are removed, each pointing at its source;
 * determinism by seed; word normalization; the exact/near switches. */
#include "cllm/data.h"
#include "testutil.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static void test_xxh64(void) {
    /* Published vectors (xxHash's own test suite / python-xxhash). */
    CHECK(cllm_xxh64("", 0, 0) == 0xEF46DB3751D8E999ull);
    CHECK(cllm_xxh64("a", 1, 0) == 0xD24EC4F1A98C6E5Bull);
    CHECK(cllm_xxh64("abc", 3, 0) == 0x44BC2CF5AD770999ull);
    CHECK(cllm_xxh64("message digest", 14, 0) == 0x066ED728FCEEB3BEull);
    /* Longer inputs (32-byte stripes and every tail), from `printf ... | xxhsum -H64`. */
    const char *s40 = "0123456789abcdefghijklmnopqrstuvwxyzABCD";
    CHECK(cllm_xxh64(s40, 40, 0) == 0x1b3ce041c106b50bull);
    const char *s58 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV";
    CHECK(cllm_xxh64(s58, 58, 0) == 0xc40cb438527f95f2ull);
    const char *s71 = "The quick brown fox jumps over the lazy dog, then naps for 100 seconds.";
    CHECK(cllm_xxh64(s71, 71, 0) == 0x0daf109241bb918dull);
    CHECK(cllm_xxh64("abc", 3, 1) != cllm_xxh64("abc", 3, 0));
}

static void test_bands(void) {
    /* From tools/lsh_params.py (numpy). */
    const struct {
        double t;
        int p, b, r;
    } c[] = {{0.8, 128, 14, 9}, {0.5, 64, 21, 3}, {0.9, 256, 13, 19}, {0.7, 100, 16, 6}};
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        cllm_dedup_opts o = cllm_dedup_opts_default();
        o.near_threshold = c[i].t;
        o.num_perm = c[i].p;
        cllm_dedup *d = NULL;
        CHECK_OK(cllm_dedup_init(&d, &o));
        if (!d) continue;
        int b, r;
        cllm_dedup_bands(d, &b, &r);
        CHECK_MSG(b == c[i].b && r == c[i].r, "t=%g P=%d: bands %d rows %d, expected %d x %d",
                  c[i].t, c[i].p, b, r, c[i].b, c[i].r);
        cllm_dedup_free(d);
    }
    cllm_dedup_opts o = cllm_dedup_opts_default();
    cllm_dedup *d = NULL;
    o.near_threshold = 1.5;
    CHECK(cllm_dedup_init(&d, &o) == CLLM_ERR_USAGE && d == NULL);
    o = cllm_dedup_opts_default();
    o.num_perm = 4;
    CHECK(cllm_dedup_init(&d, &o) == CLLM_ERR_USAGE);
    o = cllm_dedup_opts_default();
    o.shingle_words = 0;
    CHECK(cllm_dedup_init(&d, &o) == CLLM_ERR_USAGE);
}

/* ---- a synthetic corpus ---- */

#define VOCAB 3000
#define MAXW 200

typedef struct {
    char *text;
    int kind;       /* 0 original, 1 exact copy, 2 near copy, 3 half overlap */
    int source;     /* index of the document it copies (kinds 1..3) */
    double jaccard; /* true Jaccard with the source (kinds 2, 3) */
} doc;

static char vocab[VOCAB][12];

static void make_vocab(test_rng *r) {
    for (int i = 0; i < VOCAB; i++) {
        int n = 3 + (int)(test_rng_u64(r) % 7);
        for (int k = 0; k < n; k++)
            vocab[i][k] = (char)('a' + test_rng_u64(r) % 26);
        vocab[i][n] = 0;
    }
}

static char *words_text(const int *w, int n, bool decorate, test_rng *r) {
    size_t cap = (size_t)n * 14 + 1, len = 0;
    char *s = malloc(cap);
    for (int i = 0; i < n; i++) {
        const char *v = vocab[w[i]];
        if (i) s[len++] = ' ';
        size_t k = strlen(v);
        memcpy(s + len, v, k);
        if (decorate && test_rng_u64(r) % 5 == 0) s[len] = (char)toupper((unsigned char)s[len]);
        len += k;
        if (decorate && test_rng_u64(r) % 7 == 0) s[len++] = ',';
    }
    s[len] = 0;
    return s;
}

/* True Jaccard of two texts' 5-word shingle sets, words = runs of [a-z0-9] after
 * lower-casing (independent of the library: strings, sorted, merged). */
static int shingles(const char *text, char ***out) {
    char *low = strdup(text);
    for (char *p = low; *p; p++)
        *p = isalnum((unsigned char)*p) ? (char)tolower((unsigned char)*p) : ' ';
    char *words[MAXW + 10];
    int n = 0;
    for (char *tok = strtok(low, " "); tok; tok = strtok(NULL, " "))
        words[n++] = tok;
    int m = n >= 5 ? n - 4 : 1;
    char **sh = malloc((size_t)m * sizeof *sh);
    for (int i = 0; i < m; i++) {
        char buf[256] = "";
        for (int k = 0; k < 5 && i + k < n; k++) {
            strcat(buf, words[i + k]);
            strcat(buf, " ");
        }
        sh[i] = strdup(buf);
    }
    free(low);
    *out = sh;
    return m;
}

static int cmp_s(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static double true_jaccard(const char *a, const char *b) {
    char **sa, **sb;
    int na = shingles(a, &sa), nb = shingles(b, &sb);
    qsort(sa, (size_t)na, sizeof *sa, cmp_s);
    qsort(sb, (size_t)nb, sizeof *sb, cmp_s);
    int i = 0, j = 0, inter = 0, uni = 0;
    while (i < na || j < nb) {
        int c = i == na ? 1 : j == nb ? -1 : strcmp(sa[i], sb[j]);
        uni++;
        if (c == 0) {
            inter++;
            const char *v = sa[i];
            while (i < na && !strcmp(sa[i], v))
                i++;
            while (j < nb && !strcmp(sb[j], v))
                j++;
        } else if (c < 0) {
            const char *v = sa[i];
            while (i < na && !strcmp(sa[i], v))
                i++;
        } else {
            const char *v = sb[j];
            while (j < nb && !strcmp(sb[j], v))
                j++;
        }
    }
    for (int k = 0; k < na; k++)
        free(sa[k]);
    for (int k = 0; k < nb; k++)
        free(sb[k]);
    free(sa);
    free(sb);
    return (double)inter / uni;
}

/* 240 originals, then 20 each of exact copies, near copies and half overlaps, each placed
 * somewhere after its source. */
static int make_corpus(doc **out, test_rng *r) {
    const int N0 = 240, K = 20, N = N0 + 3 * K;
    doc *d = calloc((size_t)N, sizeof *d);
    int(*w)[MAXW] = calloc((size_t)N, sizeof *w);
    int *nw = calloc((size_t)N, sizeof *nw);
    /* Build in a scratch order: originals first, then plants appended; then shuffle plants
     * into positions after their source. */
    for (int i = 0; i < N0; i++) {
        nw[i] = 100 + (int)(test_rng_u64(r) % 80);
        for (int k = 0; k < nw[i]; k++)
            w[i][k] = (int)(test_rng_u64(r) % VOCAB);
        d[i].text = words_text(w[i], nw[i], false, r);
    }
    int n = N0;
    for (int kind = 1; kind <= 3; kind++)
        for (int j = 0; j < K; j++, n++) {
            int src = (int)(test_rng_u64(r) % N0);
            d[n].kind = kind;
            d[n].source = src;
            nw[n] = nw[src];
            memcpy(w[n], w[src], sizeof w[n]);
            if (kind == 1) {
                d[n].text = strdup(d[src].text);
            } else if (kind == 2) { /* one word replaced, case and commas changed */
                w[n][nw[n] / 2] = (w[n][nw[n] / 2] + 1) % VOCAB;
                d[n].text = words_text(w[n], nw[n], true, r);
            } else { /* the first half, then new words */
                for (int k = nw[n] / 2; k < nw[n]; k++)
                    w[n][k] = (int)(test_rng_u64(r) % VOCAB);
                d[n].text = words_text(w[n], nw[n], false, r);
            }
            if (kind >= 2) d[n].jaccard = true_jaccard(d[n].text, d[src].text);
        }
    /* Order: originals in order, each plant inserted right after a random position >= its
     * source (stable: a plant's source always precedes it). */
    doc *o = calloc((size_t)N, sizeof *o);
    int *pos = malloc((size_t)(N - N0) * sizeof *pos);
    for (int p = 0; p < N - N0; p++) {
        int src = d[N0 + p].source;
        pos[p] = src + (int)(test_rng_u64(r) % (unsigned)(N0 - src));
    }
    int m = 0;
    int *map = malloc((size_t)N * sizeof *map); /* scratch index -> final index */
    for (int i = 0; i < N0; i++) {
        map[i] = m;
        o[m++] = d[i];
        for (int p = 0; p < N - N0; p++)
            if (pos[p] == i) {
                map[N0 + p] = m;
                o[m++] = d[N0 + p];
            }
    }
    for (int i = 0; i < N; i++)
        if (o[i].kind) o[i].source = map[o[i].source];
    free(map);
    free(pos);
    free(d);
    free(w);
    free(nw);
    *out = o;
    return N;
}

typedef struct {
    cllm_doc_rule rule;
    uint64_t dup_of;
    double sim;
} verdict;

static void run_dedup(const cllm_dedup_opts *o, doc *d, int n, verdict *v, uint32_t *sigs) {
    cllm_dedup *dd = NULL;
    CHECK_OK(cllm_dedup_init(&dd, o));
    if (!dd) return;
    for (int i = 0; i < n; i++) {
        cllm_doc_sig s = {.minhash = sigs ? sigs + (size_t)i * o->num_perm : NULL};
        cllm_dedup_signature(dd, d[i].text, strlen(d[i].text), &s);
        CHECK_OK(cllm_dedup_add(dd, &s, (uint64_t)i, &v[i].rule, &v[i].dup_of, &v[i].sim));
    }
    cllm_dedup_free(dd);
}

static void test_corpus(void) {
    test_rng r = {2024};
    make_vocab(&r);
    doc *d;
    int n = make_corpus(&d, &r);
    /* The plants are what they claim to be. */
    for (int i = 0; i < n; i++) {
        if (d[i].kind == 2) CHECK_MSG(d[i].jaccard >= 0.9, "near copy %d: J=%g", i, d[i].jaccard);
        if (d[i].kind == 3) CHECK_MSG(d[i].jaccard < 0.5, "half copy %d: J=%g", i, d[i].jaccard);
        if (d[i].kind) CHECK(d[i].source < i);
    }
    cllm_dedup_opts o = cllm_dedup_opts_default();
    verdict *v = calloc((size_t)n, sizeof *v), *v2 = calloc((size_t)n, sizeof *v2),
            *v3 = calloc((size_t)n, sizeof *v3);
    uint32_t *s1 = malloc((size_t)n * o.num_perm * 4), *s2 = malloc((size_t)n * o.num_perm * 4),
             *s3 = malloc((size_t)n * o.num_perm * 4);
    run_dedup(&o, d, n, v, s1);
    int wrong = 0, exact = 0, near = 0;
    for (int i = 0; i < n; i++) {
        cllm_doc_rule want = d[i].kind == 1   ? CLLM_DOC_EXACT_DUP
                             : d[i].kind == 2 ? CLLM_DOC_NEAR_DUP
                                              : CLLM_DOC_KEPT;
        bool ok = v[i].rule == want;
        if (ok && want != CLLM_DOC_KEPT) ok = v[i].dup_of == (uint64_t)d[i].source;
        if (ok && want == CLLM_DOC_NEAR_DUP)
            ok = v[i].sim >= 0.8 && test_close(v[i].sim, d[i].jaccard, 0.15, 0);
        if (!ok) {
            wrong++;
            fprintf(stderr, "doc %d kind %d (J=%.3f): %s dup_of %llu sim %.3f\n", i, d[i].kind,
                    d[i].jaccard, cllm_doc_rule_name(v[i].rule), (unsigned long long)v[i].dup_of,
                    v[i].sim);
        }
        exact += v[i].rule == CLLM_DOC_EXACT_DUP;
        near += v[i].rule == CLLM_DOC_NEAR_DUP;
    }
    CHECK_MSG(wrong == 0, "%d documents judged wrongly", wrong);
    CHECK(exact == 20 && near == 20);

    /* Same seed: the same signatures. Another seed: other signatures, same verdicts. */
    run_dedup(&o, d, n, v2, s2);
    CHECK(memcmp(s1, s2, (size_t)n * o.num_perm * 4) == 0);
    o.seed = 99;
    run_dedup(&o, d, n, v3, s3);
    CHECK(memcmp(s1, s3, (size_t)n * o.num_perm * 4) != 0);
    bool same = true;
    for (int i = 0; i < n; i++)
        same = same && v3[i].rule == v[i].rule && v3[i].dup_of == v[i].dup_of;
    CHECK_MSG(same, "verdicts do not depend on the seed for clear-cut duplicates");

    /* Exact off: exact copies become near duplicates with similarity 1. Near off: only the
     * exact copies go. */
    o = cllm_dedup_opts_default();
    o.exact = false;
    run_dedup(&o, d, n, v2, s2);
    int as_near = 0;
    for (int i = 0; i < n; i++)
        if (d[i].kind == 1) as_near += v2[i].rule == CLLM_DOC_NEAR_DUP && v2[i].sim == 1.0;
    CHECK(as_near == 20);
    o = cllm_dedup_opts_default();
    o.near_threshold = 0;
    run_dedup(&o, d, n, v2, NULL);
    int removed = 0;
    for (int i = 0; i < n; i++)
        removed += v2[i].rule != CLLM_DOC_KEPT;
    for (int i = 0; i < n; i++)
        if (d[i].kind == 1) CHECK(v2[i].rule == CLLM_DOC_EXACT_DUP);
    CHECK(removed == 20);

    for (int i = 0; i < n; i++)
        free(d[i].text);
    free(d);
    free(v);
    free(v2);
    free(v3);
    free(s1);
    free(s2);
    free(s3);
}

static void test_small(void) {
    cllm_dedup_opts o = cllm_dedup_opts_default();
    cllm_dedup *d = NULL;
    CHECK_OK(cllm_dedup_init(&d, &o));
    if (!d) return;
    const struct {
        const char *text;
        cllm_doc_rule want;
        uint64_t dup_of;
    } c[] = {
        {"Hello World, again and again and again.", CLLM_DOC_KEPT, 0},
        {"hello world again AND again; and again!", CLLM_DOC_NEAR_DUP, 0}, /* same words */
        {"Hello World, again and again and again.", CLLM_DOC_EXACT_DUP, 0},
        {"one two", CLLM_DOC_KEPT, 0}, /* shorter than a shingle: one shingle */
        {"One, two!", CLLM_DOC_NEAR_DUP, 3},
        {"one three", CLLM_DOC_KEPT, 0},
        {"!!! ???", CLLM_DOC_KEPT, 0}, /* no words: only exact duplicates */
        {"... ;;;", CLLM_DOC_KEPT, 0},
        {"!!! ???", CLLM_DOC_EXACT_DUP, 6},
        {"Caf\xc3\xa9 \xc3\x9c"
         "BER alles",
         CLLM_DOC_KEPT, 0},
        {"caf\xc3\xa9 \xc3\xbc"
         "ber ALLES",
         CLLM_DOC_NEAR_DUP, 9}, /* Unicode lower-casing */
    };
    uint32_t mh[128];
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        cllm_doc_sig s = {.minhash = mh};
        cllm_dedup_signature(d, c[i].text, strlen(c[i].text), &s);
        cllm_doc_rule v;
        uint64_t of;
        double sim;
        CHECK_OK(cllm_dedup_add(d, &s, (uint64_t)i, &v, &of, &sim));
        CHECK_MSG(v == c[i].want, "'%s': %s, expected %s", c[i].text, cllm_doc_rule_name(v),
                  cllm_doc_rule_name(c[i].want));
        if (v != CLLM_DOC_KEPT && v == c[i].want) CHECK(of == c[i].dup_of);
    }
    cllm_dedup_free(d);
    cllm_dedup_free(NULL);
}

int main(void) {
    test_xxh64();
    test_bands();
    test_corpus();
    test_small();
    return test_exit();
}
