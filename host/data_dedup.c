/* Deduplication: exact (128-bit content hash) and near (MinHash signatures over word
 * shingles, LSH banding to find candidates, then the full signature to confirm). Decisions
 * are made in corpus order, so the first of a group of duplicates is the one kept. */
#include "cllm/data.h"
#include "cllm/util.h"
#include "data_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ---- XXH64 (the xxHash specification; checked against xxhsum in the tests) ---- */

#define P1 0x9E3779B185EBCA87ull
#define P2 0xC2B2AE3D27D4EB4Full
#define P3 0x165667B19E3779F9ull
#define P4 0x85EBCA77C2B2AE63ull
#define P5 0x27D4EB2F165667C5ull

static uint64_t rotl(uint64_t x, int r) {
    return x << r | x >> (64 - r);
}

static uint64_t rd64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t xround(uint64_t acc, uint64_t in) {
    return rotl(acc + in * P2, 31) * P1;
}

static uint64_t xmerge(uint64_t h, uint64_t v) {
    return (h ^ xround(0, v)) * P1 + P4;
}

uint64_t cllm_xxh64(const void *data, size_t len, uint64_t seed) {
    const unsigned char *p = data, *end = p + len;
    uint64_t h;
    if (len >= 32) {
        uint64_t v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;
        do {
            v1 = xround(v1, rd64(p));
            v2 = xround(v2, rd64(p + 8));
            v3 = xround(v3, rd64(p + 16));
            v4 = xround(v4, rd64(p + 24));
            p += 32;
        } while (end - p >= 32);
        h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
        h = xmerge(xmerge(xmerge(xmerge(h, v1), v2), v3), v4);
    } else {
        h = seed + P5;
    }
    h += len;
    for (; end - p >= 8; p += 8)
        h = rotl(h ^ xround(0, rd64(p)), 27) * P1 + P4;
    if (end - p >= 4) {
        h = rotl(h ^ (uint64_t)rd32(p) * P1, 23) * P2 + P3;
        p += 4;
    }
    for (; p < end; p++)
        h = rotl(h ^ *p * P5, 11) * P1;
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    return h;
}

/* ---- options and banding ---- */

cllm_dedup_opts cllm_dedup_opts_default(void) {
    return (cllm_dedup_opts){
        .exact = true, .near_threshold = 0.8, .shingle_words = 5, .num_perm = 128, .seed = 1337};
}

/* The banding minimizing 0.1 * (false-positive area below t) + 0.9 * (false-negative area
 * above t), where two documents of Jaccard s share a band with P = 1 - (1 - s^r)^b, as
 * datasketch chooses it but weighted towards recall: every candidate is checked against the
 * full signature, so a false positive costs only time. Areas by the trapezoid rule on 2000
 * intervals (as numpy.trapz in tools/lsh_params.py); (1 - s^r)^b is built by multiplication,
 * b = 1, 2, ... for each r, so the search costs no pow(). */
#define GRID 2000
static cllm_status choose_bands(double t, int num_perm, int *bands, int *rows) {
    double *err = cllm_malloc((size_t)(num_perm + 1) * (size_t)(num_perm + 1) * sizeof *err);
    double *q = cllm_malloc(4 * (GRID + 1) * sizeof *q);
    if (!err || !q) {
        free(err);
        free(q);
        return CLLM_ERR_NOMEM;
    }
    double *q_lo = q, *q_hi = q + (GRID + 1), *p_lo = q + 2 * (GRID + 1),
           *p_hi = q + 3 * (GRID + 1);
    const double dlo = t / GRID, dhi = (1 - t) / GRID;
    for (int r = 1; r <= num_perm; r++) {
        for (int i = 0; i <= GRID; i++) { /* (1 - s^r) on both grids; p_* = its power b */
            q_lo[i] = 1 - pow(dlo * i, r);
            q_hi[i] = 1 - pow(t + dhi * i, r);
            p_lo[i] = p_hi[i] = 1;
        }
        for (int b = 1; b * r <= num_perm; b++) {
            double fp = 0, fn = 0;
            for (int i = 0; i <= GRID; i++) {
                p_lo[i] *= q_lo[i];
                p_hi[i] *= q_hi[i];
                double w = (i == 0 || i == GRID) ? 0.5 : 1;
                fp += w * (1 - p_lo[i]); /* candidate below t */
                fn += w * p_hi[i];       /* missed above t */
            }
            err[b * (num_perm + 1) + r] = 0.1 * fp * dlo + 0.9 * fn * dhi;
        }
    }
    double best = INFINITY;
    for (int b = 1; b <= num_perm; b++)
        for (int r = 1; b * r <= num_perm; r++)
            if (err[b * (num_perm + 1) + r] < best) {
                best = err[b * (num_perm + 1) + r];
                *bands = b;
                *rows = r;
            }
    free(err);
    free(q);
    return CLLM_OK;
}

/* One shingle into the signature: for each permutation i, (a_i * h + b_i) >> 32 (64-bit
 * multiply-add-shift, strongly universal), keep the minimum. The hot loop of the whole
 * deduplication: on x86-64 GCC also builds AVX2 and AVX-512 versions and picks one at run
 * time (same integer results on every path). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
static void
minhash_update(const uint64_t *a, const uint64_t *b, int n, uint64_t h, uint32_t *mins) {
    for (int i = 0; i < n; i++) {
        uint32_t v = (uint32_t)((a[i] * h + b[i]) >> 32);
        mins[i] = v < mins[i] ? v : mins[i];
    }
}

/* ---- the index ---- */

typedef struct {
    uint64_t h0, h1, id; /* h0 == 0: empty (hashes are forced non-zero) */
} exact_slot;

typedef struct {
    uint64_t key;  /* band hash, 0 = empty */
    uint64_t head; /* 1 + index into nodes of the newest document with this key */
} band_slot;

typedef struct {
    uint64_t doc;  /* index into kept */
    uint64_t next; /* 1 + index of the next node, 0 = end */
} band_node;

struct cllm_dedup {
    cllm_dedup_opts o;
    int bands, rows;
    uint64_t *a, *b; /* (num_perm) multiply-add-shift hash parameters */
    exact_slot *exact;
    uint64_t exact_cap, exact_n;
    band_slot *table;
    uint64_t table_cap, table_n;
    band_node *nodes;
    uint64_t nodes_n, nodes_cap;
    uint32_t *sigs; /* (kept_n, num_perm) signatures of the kept documents */
    uint64_t *ids;  /* (kept_n) */
    uint64_t kept_n, kept_cap;
};

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

cllm_status cllm_dedup_init(cllm_dedup **out, const cllm_dedup_opts *o) {
    *out = NULL;
    if (o->near_threshold < 0 || o->near_threshold > 1)
        return cllm_fail(CLLM_ERR_USAGE,
                         "near-duplicate threshold %g (expected 0 = off, or a "
                         "Jaccard similarity in (0, 1])",
                         o->near_threshold);
    if (o->near_threshold > 0 && (o->num_perm < 8 || o->num_perm > 1024))
        return cllm_fail(CLLM_ERR_USAGE, "MinHash permutations %d (expected 8..1024)", o->num_perm);
    if (o->near_threshold > 0 && (o->shingle_words < 1 || o->shingle_words > 64))
        return cllm_fail(CLLM_ERR_USAGE, "shingle size %d words (expected 1..64)",
                         o->shingle_words);
    cllm_dedup *d = cllm_calloc(1, sizeof *d);
    if (!d) return CLLM_ERR_NOMEM;
    d->o = *o;
    if (o->near_threshold > 0) {
        if (choose_bands(o->near_threshold, o->num_perm, &d->bands, &d->rows) != CLLM_OK) {
            cllm_dedup_free(d);
            return CLLM_ERR_NOMEM;
        }
        d->a = cllm_malloc((size_t)o->num_perm * sizeof *d->a);
        d->b = cllm_malloc((size_t)o->num_perm * sizeof *d->b);
        if (!d->a || !d->b) {
            cllm_dedup_free(d);
            return CLLM_ERR_NOMEM;
        }
        uint64_t s = o->seed;
        for (int i = 0; i < o->num_perm; i++) {
            d->a[i] = splitmix64(&s) | 1;
            d->b[i] = splitmix64(&s);
        }
    }
    *out = d;
    return CLLM_OK;
}

void cllm_dedup_free(cllm_dedup *d) {
    if (!d) return;
    free(d->a);
    free(d->b);
    free(d->exact);
    free(d->table);
    free(d->nodes);
    free(d->sigs);
    free(d->ids);
    free(d);
}

void cllm_dedup_bands(const cllm_dedup *d, int *bands, int *rows) {
    *bands = d->bands;
    *rows = d->rows;
}

/* Words are runs of letters and digits, lower-cased; a word's hash is FNV-1a over its code
 * points, finished with a mixer. */
static bool word_char(uint32_t c) {
    if (c < 0x80) return ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || (c >= '0' && c <= '9');
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) ||
           (k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO);
}

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void add_shingle(const cllm_dedup *d, const uint64_t *ring, int n, int start,
                        uint32_t *mins) {
    uint64_t words[64];
    for (int i = 0; i < n; i++)
        words[i] = ring[(start + i) % n];
    uint64_t h = cllm_xxh64(words, (size_t)n * sizeof *words, 0x5348494e474c45ull);
    minhash_update(d->a, d->b, d->o.num_perm, h, mins);
}

void cllm_dedup_signature(const cllm_dedup *d, const char *text, size_t len, cllm_doc_sig *sig) {
    uint64_t h0 = cllm_xxh64(text, len, 0x45584143543031ull),
             h1 = cllm_xxh64(text, len, 0x45584143543032ull);
    sig->hash[0] = h0 ? h0 : 1;
    sig->hash[1] = h1;
    sig->n_shingles = 0;
    if (d->o.near_threshold <= 0 || !sig->minhash) return;
    const int P = d->o.num_perm, n = d->o.shingle_words;
    for (int i = 0; i < P; i++)
        sig->minhash[i] = UINT32_MAX;
    uint64_t ring[64];
    uint64_t words = 0, wh = 0;
    bool in_word = false;
    const unsigned char *p = (const unsigned char *)text;
    for (size_t i = 0; i <= len;) {
        uint32_t c = 0;
        bool wc = false;
        if (i < len) {
            int k = cllm_utf8_decode(p + i, len - i, &c);
            if (k < 0) {
                c = 0xFFFD;
                k = -k;
            }
            i += (size_t)k;
            wc = word_char(c);
        } else {
            i++;
        }
        if (wc) {
            uint32_t lc = c < 0x80 ? ((c >= 'A' && c <= 'Z') ? c + 32 : c)
                                   : (uint32_t)utf8proc_tolower((utf8proc_int32_t)c);
            if (!in_word) wh = 0xcbf29ce484222325ull;
            wh = (wh ^ lc) * 0x100000001b3ull;
            in_word = true;
        } else if (in_word) {
            ring[words % (uint64_t)n] = mix64(wh);
            words++;
            in_word = false;
            if (words >= (uint64_t)n) {
                add_shingle(d, ring, n, (int)(words % (uint64_t)n), sig->minhash);
                sig->n_shingles++;
            }
        }
    }
    if (words > 0 && words < (uint64_t)n) { /* a short text is one shingle of all its words */
        add_shingle(d, ring, (int)words, 0, sig->minhash);
        sig->n_shingles = 1;
    }
}

double cllm_dedup_similarity(const cllm_dedup *d, const cllm_doc_sig *a, const cllm_doc_sig *b) {
    int same = 0;
    for (int i = 0; i < d->o.num_perm; i++)
        same += a->minhash[i] == b->minhash[i];
    return (double)same / d->o.num_perm;
}

static cllm_status grow(void **p, uint64_t *cap, uint64_t need, size_t elem) {
    if (need <= *cap) return CLLM_OK;
    uint64_t c = *cap ? *cap : 1024;
    while (c < need)
        c *= 2;
    void *np = realloc(*p, c * elem);
    if (!np) return cllm_fail(CLLM_ERR_NOMEM, "out of memory in the deduplication index");
    *p = np;
    *cap = c;
    return CLLM_OK;
}

/* The kept document with this exact hash, if any. */
static bool exact_find(const cllm_dedup *d, const cllm_doc_sig *s, uint64_t *dup_of) {
    if (!d->exact_cap) return false;
    uint64_t k = s->hash[1] & (d->exact_cap - 1);
    while (d->exact[k].h0) {
        if (d->exact[k].h0 == s->hash[0] && d->exact[k].h1 == s->hash[1]) {
            *dup_of = d->exact[k].id;
            return true;
        }
        k = (k + 1) & (d->exact_cap - 1);
    }
    return false;
}

static cllm_status exact_insert(cllm_dedup *d, const cllm_doc_sig *s, uint64_t id) {
    if (2 * (d->exact_n + 1) > d->exact_cap) {
        uint64_t cap = d->exact_cap ? 2 * d->exact_cap : 1024;
        exact_slot *t = calloc(cap, sizeof *t);
        if (!t) return cllm_fail(CLLM_ERR_NOMEM, "out of memory in the deduplication index");
        for (uint64_t i = 0; i < d->exact_cap; i++) {
            if (!d->exact[i].h0) continue;
            uint64_t k = d->exact[i].h1 & (cap - 1);
            while (t[k].h0)
                k = (k + 1) & (cap - 1);
            t[k] = d->exact[i];
        }
        free(d->exact);
        d->exact = t;
        d->exact_cap = cap;
    }
    uint64_t k = s->hash[1] & (d->exact_cap - 1);
    while (d->exact[k].h0)
        k = (k + 1) & (d->exact_cap - 1);
    d->exact[k] = (exact_slot){s->hash[0], s->hash[1], id};
    d->exact_n++;
    return CLLM_OK;
}

static uint64_t band_key(const cllm_dedup *d, const uint32_t *sig, int band) {
    uint64_t k = cllm_xxh64(sig + band * d->rows, (size_t)d->rows * sizeof *sig, (uint64_t)band);
    return k ? k : 1;
}

static band_slot *band_find(const cllm_dedup *d, uint64_t key) {
    uint64_t k = key & (d->table_cap - 1);
    while (d->table[k].key && d->table[k].key != key)
        k = (k + 1) & (d->table_cap - 1);
    return &d->table[k];
}

static cllm_status band_insert(cllm_dedup *d, uint64_t key, uint64_t doc) {
    if (2 * (d->table_n + 1) > d->table_cap) {
        uint64_t cap = d->table_cap ? 2 * d->table_cap : 4096;
        band_slot *old = d->table;
        uint64_t old_cap = d->table_cap;
        d->table = calloc(cap, sizeof *d->table);
        if (!d->table) {
            d->table = old;
            return cllm_fail(CLLM_ERR_NOMEM, "out of memory in the deduplication index");
        }
        d->table_cap = cap;
        for (uint64_t i = 0; i < old_cap; i++)
            if (old[i].key) *band_find(d, old[i].key) = old[i];
        free(old);
    }
    cllm_status st = grow((void **)&d->nodes, &d->nodes_cap, d->nodes_n + 1, sizeof *d->nodes);
    if (st != CLLM_OK) return st;
    band_slot *s = band_find(d, key);
    if (!s->key) {
        s->key = key;
        d->table_n++;
    }
    d->nodes[d->nodes_n] = (band_node){doc, s->head};
    s->head = ++d->nodes_n;
    return CLLM_OK;
}

/* The near-duplicate test: keys[b] = the signature's band keys. Candidates are kept documents
 * sharing a band; the first that the full signature confirms (in band order, newest first) is
 * the one reported. */
static bool near_find(const cllm_dedup *d, const uint64_t *keys, const cllm_doc_sig *sig,
                      uint64_t *dup_of, double *similarity) {
    if (!d->table_cap) return false;
    const int P = d->o.num_perm;
    for (int b = 0; b < d->bands; b++) {
        const band_slot *s = band_find(d, keys[b]);
        for (uint64_t n = s->key ? s->head : 0; n; n = d->nodes[n - 1].next) {
            uint64_t doc = d->nodes[n - 1].doc;
            const uint32_t *other = d->sigs + doc * (uint64_t)P;
            int same = 0;
            for (int i = 0; i < P; i++)
                same += other[i] == sig->minhash[i];
            double j = (double)same / P;
            if (j >= d->o.near_threshold) {
                *dup_of = d->ids[doc];
                *similarity = j;
                return true;
            }
        }
    }
    return false;
}

/* The band keys of a signature; the index is far larger than the caches and each band lands
 * somewhere else in it: ask for all the bands' slots at once so the memory accesses overlap. */
static void band_keys(const cllm_dedup *d, const cllm_doc_sig *sig, uint64_t *keys) {
    for (int b = 0; b < d->bands; b++) {
        keys[b] = band_key(d, sig->minhash, b);
        if (d->table_cap) __builtin_prefetch(&d->table[keys[b] & (d->table_cap - 1)]);
    }
}

/* The decision of cllm_dedup_find; *near says whether sig takes part in the near-duplicate
 * test, and then keys holds its band keys. */
static void lookup(const cllm_dedup *d, const cllm_doc_sig *sig, uint64_t *keys, bool *near,
                   cllm_doc_rule *verdict, uint64_t *dup_of, double *similarity) {
    *verdict = CLLM_DOC_KEPT;
    *dup_of = 0;
    *similarity = 0;
    *near = d->o.near_threshold > 0 && sig->n_shingles > 0 && sig->minhash;
    if (d->o.exact && exact_find(d, sig, dup_of)) {
        *verdict = CLLM_DOC_EXACT_DUP;
        *similarity = 1;
        return;
    }
    if (!*near) return;
    band_keys(d, sig, keys);
    if (near_find(d, keys, sig, dup_of, similarity)) *verdict = CLLM_DOC_NEAR_DUP;
}

void cllm_dedup_find(const cllm_dedup *d, const cllm_doc_sig *sig, cllm_doc_rule *verdict,
                     uint64_t *dup_of, double *similarity) {
    uint64_t keys[1024];
    bool near;
    lookup(d, sig, keys, &near, verdict, dup_of, similarity);
}

cllm_status cllm_dedup_add(cllm_dedup *d, const cllm_doc_sig *sig, uint64_t id,
                           cllm_doc_rule *verdict, uint64_t *dup_of, double *similarity) {
    uint64_t keys[1024];
    bool near;
    lookup(d, sig, keys, &near, verdict, dup_of, similarity);
    if (*verdict != CLLM_DOC_KEPT) return CLLM_OK;
    if (!near) return d->o.exact ? exact_insert(d, sig, id) : CLLM_OK;
    const int P = d->o.num_perm;
    cllm_status st;
    if (!d->table_cap) {
        st = grow((void **)&d->table, &d->table_cap, 4096, sizeof *d->table);
        if (st != CLLM_OK) return st;
        memset(d->table, 0, d->table_cap * sizeof *d->table);
    }
    /* Not a duplicate: remember it. */
    if (d->o.exact && (st = exact_insert(d, sig, id)) != CLLM_OK) return st;
    uint64_t cap = d->kept_cap;
    st = grow((void **)&d->ids, &d->kept_cap, d->kept_n + 1, sizeof *d->ids);
    if (st != CLLM_OK) return st;
    if (d->kept_cap != cap) {
        uint32_t *ns = realloc(d->sigs, d->kept_cap * (uint64_t)P * sizeof *ns);
        if (!ns) return cllm_fail(CLLM_ERR_NOMEM, "out of memory in the deduplication index");
        d->sigs = ns;
    }
    memcpy(d->sigs + d->kept_n * (uint64_t)P, sig->minhash, (size_t)P * sizeof *sig->minhash);
    d->ids[d->kept_n] = id;
    for (int b = 0; b < d->bands; b++) {
        st = band_insert(d, keys[b], d->kept_n);
        if (st != CLLM_OK) return st;
    }
    d->kept_n++;
    return CLLM_OK;
}
