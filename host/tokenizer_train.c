/* Byte-level BPE training.
 *
 * 1. Count words: the documents are cut into ~1 MiB spans at places where the pre-tokenizer
 *    cuts anyway (special tokens are cut out), and worker threads count the pre-tokens of the
 *    spans into their own hash maps, merged at the end and sorted by bytes, so the word list —
 *    and everything after it — is the same for any thread count.
 * 2. Merge, as fast trainers (Hugging Face's) do: every adjacent pair keeps its count weighted
 *    by word frequency and the list of words it occurs in; a max-heap orders pairs by (count
 *    descending, pair ids ascending) with lazy deletion (a popped entry whose count is stale is
 *    pushed back with the current count). A merge visits only the words that hold the pair and
 *    updates the counts of the pairs around each occurrence; it never recounts.
 *
 * Ids: 0..255 are the bytes in GPT-2's order, then one id per merge, then the specials
 * (<|endoftext|> first).
 */
#include "tokenizer_impl.h"

#include "cllm/util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

cllm_bpe_train_opts cllm_bpe_train_opts_default(void) {
    return (cllm_bpe_train_opts){.vocab_size = 8192, .min_frequency = 2, .threads = 0};
}

/* ---------------------------------------------------------------- word counting */

static inline uint64_t hash_word(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 32);
}

typedef struct {
    uint64_t hash, count;
    size_t off;
    uint32_t len, used;
} wslot;

typedef struct {
    wslot *slots;
    uint32_t mask, n;
    uint8_t *arena;
    size_t alen, acap;
} wmap;

static void wmap_free(wmap *m) {
    free(m->slots);
    free(m->arena);
    memset(m, 0, sizeof *m);
}

static cllm_status wmap_grow(wmap *m) {
    uint32_t cap = m->slots ? 2 * (m->mask + 1) : 1 << 14;
    wslot *s = calloc(cap, sizeof *s);
    if (!s) return cllm_fail(CLLM_ERR_NOMEM, "out of memory counting words");
    for (uint32_t i = 0; m->slots && i <= m->mask; i++) {
        if (!m->slots[i].used) continue;
        uint32_t j = (uint32_t)m->slots[i].hash & (cap - 1);
        while (s[j].used) j = (j + 1) & (cap - 1);
        s[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = s;
    m->mask = cap - 1;
    return CLLM_OK;
}

static cllm_status wmap_add(wmap *m, const uint8_t *p, size_t n, uint64_t h, uint64_t count) {
    if (!m->slots || 2 * (m->n + 1) > m->mask + 1) {
        cllm_status st = wmap_grow(m);
        if (st != CLLM_OK) return st;
    }
    uint32_t i = (uint32_t)h & m->mask;
    for (;; i = (i + 1) & m->mask) {
        wslot *s = &m->slots[i];
        if (!s->used) break;
        if (s->hash == h && s->len == n && !memcmp(m->arena + s->off, p, n)) {
            s->count += count;
            return CLLM_OK;
        }
    }
    if (n > UINT32_MAX) return cllm_fail(CLLM_ERR_TOO_LARGE, "a word of %zu bytes is too long", n);
    if (m->alen + n > m->acap) {
        size_t cap = m->acap ? 2 * m->acap : 1 << 20;
        while (cap < m->alen + n) cap *= 2;
        uint8_t *a = realloc(m->arena, cap);
        if (!a) return cllm_fail(CLLM_ERR_NOMEM, "out of memory counting words");
        m->arena = a;
        m->acap = cap;
    }
    memcpy(m->arena + m->alen, p, n);
    m->slots[i] = (wslot){h, count, m->alen, (uint32_t)n, 1};
    m->alen += n;
    m->n++;
    return CLLM_OK;
}

typedef struct {
    const cllm_text *docs;
    const tok_span *spans;
    const size_t *span_doc; /* (n_spans) document of each span */
    size_t n_spans, next;
    pthread_mutex_t mu;
    cllm_status st;
    char err[512];
} count_work;

typedef struct {
    count_work *w;
    wmap map;
} count_thread;

static void *count_worker(void *arg) {
    count_thread *ct = arg;
    count_work *w = ct->w;
    cllm_status st = CLLM_OK;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        size_t k = w->next++;
        bool stop = w->st != CLLM_OK;
        pthread_mutex_unlock(&w->mu);
        if (k >= w->n_spans || stop) break;
        const tok_span *sp = &w->spans[k];
        if (sp->special != UINT32_MAX) continue;
        const uint8_t *u = (const uint8_t *)w->docs[w->span_doc[k]].text + sp->start;
        for (size_t i = 0; i < sp->len && st == CLLM_OK;) {
            size_t e = pretok_next(u, sp->len, i);
            st = wmap_add(&ct->map, u + i, e - i, hash_word(u + i, e - i), 1);
            i = e;
        }
        if (st != CLLM_OK) break;
    }
    if (st != CLLM_OK) {
        pthread_mutex_lock(&w->mu);
        if (w->st == CLLM_OK) {
            w->st = st;
            snprintf(w->err, sizeof w->err, "%s", cllm_last_error());
        }
        pthread_mutex_unlock(&w->mu);
    }
    return NULL;
}

/* The unique words, sorted by bytes. */
typedef struct {
    const uint8_t *arena; /* owned by the merged map */
    size_t *off;
    uint32_t *len;
    uint64_t *count;
    size_t n;
} word_list;

static int cmp_slot(const void *x, const void *y, void *arena) {
    const wslot *a = x, *b = y;
    const uint8_t *sort_arena = arena;
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(sort_arena + a->off, sort_arena + b->off, n);
    if (c) return c;
    return a->len < b->len ? -1 : a->len > b->len;
}

static cllm_status count_words(const cllm_text *docs, size_t n_docs, const tok_allowed *specials,
                               int threads, wmap *merged) {
    cllm_status st = CLLM_OK;
    tok_spans sp = {0};
    size_t *span_doc = NULL, cap = 0;
    count_thread *ct = NULL;
    int nt = tok_threads(threads);
    for (size_t d = 0; d < n_docs; d++) {
        size_t before = sp.n;
        CLLM_TRY(tok_split(docs[d].text, docs[d].len, specials, 1 << 20, &sp));
        if (sp.n > cap) {
            cap = sp.cap;
            size_t *p = realloc(span_doc, cap * sizeof *p);
            if (!p) {
                st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
                goto fail;
            }
            span_doc = p;
        }
        for (size_t k = before; k < sp.n; k++) span_doc[k] = d;
    }
    count_work w = {.docs = docs, .spans = sp.v, .span_doc = span_doc, .n_spans = sp.n};
    if ((size_t)nt > sp.n) nt = sp.n ? (int)sp.n : 1;
    ct = calloc((size_t)nt, sizeof *ct);
    pthread_t *th = calloc((size_t)nt, sizeof *th);
    if (!ct || !th) {
        free(th);
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    pthread_mutex_init(&w.mu, NULL);
    int started = 1;
    for (int i = 0; i < nt; i++) ct[i].w = &w;
    for (; started < nt; started++)
        if (pthread_create(&th[started], NULL, count_worker, &ct[started]) != 0) break;
    count_worker(&ct[0]);
    for (int i = 1; i < started; i++) pthread_join(th[i], NULL);
    free(th);
    pthread_mutex_destroy(&w.mu);
    if (w.st != CLLM_OK) {
        st = cllm_fail(w.st, "%s", w.err);
        goto fail;
    }
    /* merge the maps into the first */
    *merged = ct[0].map;
    memset(&ct[0].map, 0, sizeof ct[0].map);
    for (int i = 1; i < started; i++) {
        wmap *m = &ct[i].map;
        for (uint32_t j = 0; m->slots && j <= m->mask; j++)
            if (m->slots[j].used)
                CLLM_TRY(wmap_add(merged, m->arena + m->slots[j].off, m->slots[j].len,
                                  m->slots[j].hash, m->slots[j].count));
    }
fail:
    if (ct)
        for (int i = 0; i < nt; i++) wmap_free(&ct[i].map);
    free(ct);
    free(sp.v);
    free(span_doc);
    return st;
}

/* ---------------------------------------------------------------- pair bookkeeping */

typedef struct {
    uint32_t *v;
    uint32_t n, cap;
} u32vec;

static bool vec_push(u32vec *x, uint32_t v) {
    if (x->n == x->cap) {
        uint32_t cap = x->cap ? 2 * x->cap : 4;
        uint32_t *p = realloc(x->v, cap * sizeof *p);
        if (!p) return false;
        x->v = p;
        x->cap = cap;
    }
    x->v[x->n++] = v;
    return true;
}

typedef struct {
    uint64_t count;
    uint32_t a, b;
} heap_entry;

typedef struct {
    /* words: symbols of word w at sym[off[w] .. off[w] + len[w]) */
    uint32_t *sym;
    size_t *off;
    uint32_t *len;
    uint64_t *wcount;
    uint32_t *wstamp;
    size_t n_words;
    /* pairs: open addressing (a << 32 | b) -> pair index */
    uint64_t *pkey;   /* (pcap) */
    uint32_t *pidx;   /* (pcap) */
    uint32_t pmask;
    uint64_t *pcount; /* (n_pairs) */
    u32vec *pwords;   /* (n_pairs) words holding the pair (may hold stale entries) */
    uint32_t *pstamp; /* (n_pairs) */
    uint32_t *pa, *pb;
    uint32_t n_pairs, pairs_cap;
    heap_entry *heap;
    size_t hn, hcap;
    uint32_t *touched; /* pairs made by the current merge */
    size_t n_touched, touched_cap;
    bool oom;
} trainer;

static inline bool heap_less(const heap_entry *x, const heap_entry *y) {
    /* "x comes out before y": larger count, then smaller pair */
    if (x->count != y->count) return x->count > y->count;
    if (x->a != y->a) return x->a < y->a;
    return x->b < y->b;
}

static void hpush(trainer *T, heap_entry e) {
    if (T->hn == T->hcap) {
        size_t cap = T->hcap ? 2 * T->hcap : 1024;
        heap_entry *h = realloc(T->heap, cap * sizeof *h);
        if (!h) {
            T->oom = true;
            return;
        }
        T->heap = h;
        T->hcap = cap;
    }
    size_t i = T->hn++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(&e, &T->heap[p])) break;
        T->heap[i] = T->heap[p];
        i = p;
    }
    T->heap[i] = e;
}

static heap_entry hpop(trainer *T) {
    heap_entry top = T->heap[0], v = T->heap[--T->hn];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= T->hn) break;
        if (c + 1 < T->hn && heap_less(&T->heap[c + 1], &T->heap[c])) c++;
        if (!heap_less(&T->heap[c], &v)) break;
        T->heap[i] = T->heap[c];
        i = c;
    }
    T->heap[i] = v;
    return top;
}

static inline uint64_t mix(uint64_t x) {
    x ^= x >> 31;
    x *= 0x7fb5d329728ea185ull;
    x ^= x >> 27;
    x *= 0x81dadef4bc2dd44dull;
    return x ^ (x >> 33);
}

static bool pairs_rehash(trainer *T) {
    uint32_t cap = T->pkey ? 2 * (T->pmask + 1) : 1 << 16;
    uint64_t *k = malloc(cap * sizeof *k);
    uint32_t *v = malloc(cap * sizeof *v);
    if (!k || !v) {
        free(k);
        free(v);
        return false;
    }
    memset(k, 0xff, cap * sizeof *k);
    for (uint32_t p = 0; p < T->n_pairs; p++) {
        uint64_t key = (uint64_t)T->pa[p] << 32 | T->pb[p];
        uint32_t i = (uint32_t)mix(key) & (cap - 1);
        while (k[i] != UINT64_MAX) i = (i + 1) & (cap - 1);
        k[i] = key;
        v[i] = p;
    }
    free(T->pkey);
    free(T->pidx);
    T->pkey = k;
    T->pidx = v;
    T->pmask = cap - 1;
    return true;
}

/* Index of pair (a, b), created with count 0 if new; UINT32_MAX when out of memory. */
static uint32_t pair_get(trainer *T, uint32_t a, uint32_t b) {
    uint64_t key = (uint64_t)a << 32 | b;
    uint32_t i = (uint32_t)mix(key) & T->pmask;
    for (;; i = (i + 1) & T->pmask) {
        if (T->pkey[i] == key) return T->pidx[i];
        if (T->pkey[i] == UINT64_MAX) break;
    }
    if (T->n_pairs == T->pairs_cap) {
        uint32_t cap = T->pairs_cap ? 2 * T->pairs_cap : 1 << 15;
        void *p1 = realloc(T->pcount, cap * sizeof *T->pcount);
        if (p1) T->pcount = p1;
        void *p2 = realloc(T->pwords, cap * sizeof *T->pwords);
        if (p2) T->pwords = p2;
        void *p3 = realloc(T->pstamp, cap * sizeof *T->pstamp);
        if (p3) T->pstamp = p3;
        void *p4 = realloc(T->pa, cap * sizeof *T->pa);
        if (p4) T->pa = p4;
        void *p5 = realloc(T->pb, cap * sizeof *T->pb);
        if (p5) T->pb = p5;
        if (!p1 || !p2 || !p3 || !p4 || !p5) {
            T->oom = true;
            return UINT32_MAX;
        }
        T->pairs_cap = cap;
    }
    uint32_t p = T->n_pairs++;
    T->pcount[p] = 0;
    T->pwords[p] = (u32vec){0};
    T->pstamp[p] = UINT32_MAX;
    T->pa[p] = a;
    T->pb[p] = b;
    T->pkey[i] = key;
    T->pidx[i] = p;
    if (2 * (uint64_t)T->n_pairs > T->pmask && !pairs_rehash(T)) {
        T->oom = true;
        return UINT32_MAX;
    }
    return p;
}

/* A pair made by merge `stamp` gains `f` occurrences in word w. */
static void pair_gain(trainer *T, uint32_t a, uint32_t b, uint32_t w, uint64_t f, uint32_t stamp) {
    uint32_t p = pair_get(T, a, b);
    if (p == UINT32_MAX) return;
    T->pcount[p] += f;
    u32vec *v = &T->pwords[p];
    if ((!v->n || v->v[v->n - 1] != w) && !vec_push(v, w)) T->oom = true;
    if (T->pstamp[p] != stamp) {
        T->pstamp[p] = stamp;
        if (T->n_touched == T->touched_cap) {
            size_t cap = T->touched_cap ? 2 * T->touched_cap : 256;
            uint32_t *t = realloc(T->touched, cap * sizeof *t);
            if (!t) {
                T->oom = true;
                return;
            }
            T->touched = t;
            T->touched_cap = cap;
        }
        T->touched[T->n_touched++] = p;
    }
}

static void pair_lose(trainer *T, uint32_t a, uint32_t b, uint64_t f) {
    uint32_t p = pair_get(T, a, b);
    if (p != UINT32_MAX) T->pcount[p] -= f;
}

/* Replace every (a, b) in word w by c, updating the neighbours' pair counts. */
static void merge_word(trainer *T, uint32_t w, uint32_t a, uint32_t b, uint32_t c, uint32_t pab,
                       uint32_t stamp) {
    uint32_t *s = T->sym + T->off[w];
    uint32_t n = T->len[w];
    uint64_t f = T->wcount[w];
    for (uint32_t i = 0; i + 1 < n; i++) {
        if (s[i] != a || s[i + 1] != b) continue;
        if (i > 0) {
            pair_lose(T, s[i - 1], a, f);
            pair_gain(T, s[i - 1], c, w, f, stamp);
        }
        if (i + 2 < n) {
            pair_lose(T, b, s[i + 2], f);
            pair_gain(T, c, s[i + 2], w, f, stamp);
        }
        T->pcount[pab] -= f;
        s[i] = c;
        memmove(s + i + 1, s + i + 2, (n - i - 2) * sizeof *s);
        n--;
    }
    T->len[w] = n;
}

static void trainer_free(trainer *T) {
    free(T->sym);
    free(T->off);
    free(T->len);
    free(T->wcount);
    free(T->wstamp);
    free(T->pkey);
    free(T->pidx);
    free(T->pcount);
    for (uint32_t p = 0; T->pwords && p < T->n_pairs; p++) free(T->pwords[p].v);
    free(T->pwords);
    free(T->pstamp);
    free(T->pa);
    free(T->pb);
    free(T->heap);
    free(T->touched);
}

/* ---------------------------------------------------------------- training */

cllm_status cllm_tokenizer_train(cllm_tokenizer **out, const cllm_text *docs, size_t n_docs,
                                 const cllm_bpe_train_opts *o) {
    cllm_status st = CLLM_OK;
    trainer T = {0};
    wmap words = {0};
    wslot *sorted = NULL;
    cllm_tokenizer *t = NULL;
    tok_merge *merges = NULL;
    const char **specials = NULL;
    size_t *spec_len = NULL;
    uint32_t *spec_id = NULL;
    *out = NULL;

    /* specials: <|endoftext|> first, then the caller's, without repeats */
    size_t n_spec = 0;
    specials = calloc((size_t)o->n_specials + 1, sizeof *specials);
    spec_len = calloc((size_t)o->n_specials + 1, sizeof *spec_len);
    spec_id = calloc((size_t)o->n_specials + 1, sizeof *spec_id);
    if (!specials || !spec_len || !spec_id) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    specials[n_spec++] = CLLM_EOT_TEXT;
    for (int i = 0; i < o->n_specials; i++) {
        const char *s = o->specials[i];
        if (!s || !*s || !tok_valid_utf8(s, strlen(s))) {
            st = cllm_fail(CLLM_ERR_USAGE, "special token '%s' must be non-empty UTF-8 text",
                           s ? s : "");
            goto fail;
        }
        bool dup = false;
        for (size_t k = 0; k < n_spec; k++) dup |= !strcmp(specials[k], s);
        if (!dup) specials[n_spec++] = s;
    }
    for (size_t k = 0; k < n_spec; k++) spec_len[k] = strlen(specials[k]);
    if (o->vocab_size <= 256 + n_spec) {
        st = cllm_fail(CLLM_ERR_USAGE,
                       "vocab size %u is too small: it must exceed 256 byte tokens + %zu special "
                       "token%s = %zu",
                       o->vocab_size, n_spec, n_spec == 1 ? "" : "s", 256 + n_spec);
        goto fail;
    }
    uint32_t want_merges = o->vocab_size - 256 - (uint32_t)n_spec;
    tok_allowed allowed = {specials, spec_len, spec_id, n_spec};

    double t0 = cllm_now();
    CLLM_TRY(count_words(docs, n_docs, &allowed, o->threads, &words));
    if (words.n == 0) {
        st = cllm_fail(CLLM_ERR_USAGE, "the training corpus is empty (no text besides special "
                                       "tokens)");
        goto fail;
    }
    /* sort the words by bytes: the order (and so every tie) is independent of threads */
    sorted = malloc(words.n * sizeof *sorted);
    if (!sorted) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    size_t nw = 0, total_syms = 0;
    for (uint32_t i = 0; i <= words.mask; i++)
        if (words.slots[i].used) {
            sorted[nw++] = words.slots[i];
            total_syms += words.slots[i].len;
        }
    qsort_r(sorted, nw, sizeof *sorted, cmp_slot, words.arena);
    double t_count = cllm_now() - t0;

    /* words as symbol arrays over byte ids */
    uint8_t order[256];
    uint32_t byte_id[256];
    bytelevel_order(order);
    for (int i = 0; i < 256; i++) byte_id[order[i]] = (uint32_t)i;
    T.n_words = nw;
    T.sym = malloc(total_syms * sizeof *T.sym);
    T.off = malloc(nw * sizeof *T.off);
    T.len = malloc(nw * sizeof *T.len);
    T.wcount = malloc(nw * sizeof *T.wcount);
    T.wstamp = malloc(nw * sizeof *T.wstamp);
    merges = malloc(want_merges * sizeof *merges);
    if (!T.sym || !T.off || !T.len || !T.wcount || !T.wstamp || !merges || !pairs_rehash(&T)) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    size_t pos = 0;
    for (size_t w = 0; w < nw; w++) {
        T.off[w] = pos;
        T.len[w] = sorted[w].len;
        T.wcount[w] = sorted[w].count;
        T.wstamp[w] = UINT32_MAX;
        for (uint32_t i = 0; i < sorted[w].len; i++)
            T.sym[pos++] = byte_id[words.arena[sorted[w].off + i]];
    }
    free(sorted);
    sorted = NULL;
    wmap_free(&words);

    /* initial pair counts */
    for (size_t w = 0; w < nw; w++) {
        const uint32_t *s = T.sym + T.off[w];
        for (uint32_t i = 0; i + 1 < T.len[w]; i++) {
            uint32_t p = pair_get(&T, s[i], s[i + 1]);
            if (p == UINT32_MAX) break;
            T.pcount[p] += T.wcount[w];
            u32vec *v = &T.pwords[p];
            if ((!v->n || v->v[v->n - 1] != (uint32_t)w) && !vec_push(v, (uint32_t)w)) T.oom = true;
        }
    }
    for (uint32_t p = 0; p < T.n_pairs; p++) hpush(&T, (heap_entry){T.pcount[p], T.pa[p], T.pb[p]});
    if (T.oom) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory counting pairs");
        goto fail;
    }

    /* merge */
    uint64_t min_freq = o->min_frequency ? o->min_frequency : 1;
    uint32_t n_merges = 0;
    double t1 = cllm_now(), last_log = t1;
    while (n_merges < want_merges && T.hn > 0) {
        heap_entry e = hpop(&T);
        uint32_t p = pair_get(&T, e.a, e.b);
        if (p == UINT32_MAX) break;
        if (T.pcount[p] != e.count) {
            if (T.pcount[p] > 0) hpush(&T, (heap_entry){T.pcount[p], e.a, e.b});
            continue;
        }
        if (e.count < min_freq) break;
        uint32_t c = 256 + n_merges;
        merges[n_merges] = (tok_merge){e.a, e.b, c};
        T.n_touched = 0;
        u32vec list = T.pwords[p]; /* stays valid: only pairs holding c gain words now */
        for (uint32_t k = 0; k < list.n; k++) {
            uint32_t w = list.v[k];
            if (T.wstamp[w] == n_merges) continue;
            T.wstamp[w] = n_merges;
            merge_word(&T, w, e.a, e.b, c, p, n_merges);
        }
        free(T.pwords[p].v);
        T.pwords[p] = (u32vec){0};
        for (size_t k = 0; k < T.n_touched; k++) {
            uint32_t q = T.touched[k];
            if (T.pcount[q] > 0) hpush(&T, (heap_entry){T.pcount[q], T.pa[q], T.pb[q]});
        }
        if (T.oom) {
            st = cllm_fail(CLLM_ERR_NOMEM, "out of memory while merging");
            goto fail;
        }
        n_merges++;
        if (o->verbose && cllm_now() - last_log > 2.0) {
            last_log = cllm_now();
            cllm_log(CLLM_LOG_INFO, "merges %u/%u (pair count %llu)", n_merges, want_merges,
                     (unsigned long long)e.count);
        }
    }
    if (o->verbose)
        cllm_log(CLLM_LOG_INFO,
                 "counted %zu distinct words in %.2f s, learnt %u merges in %.2f s", nw, t_count,
                 n_merges, cllm_now() - t1);
    if (n_merges < want_merges)
        cllm_log(CLLM_LOG_WARN,
                 "only %u of %u merges learnt (no pair occurs %llu times or more): the vocabulary "
                 "has %u tokens instead of %u",
                 n_merges, want_merges, (unsigned long long)min_freq,
                 256 + n_merges + (uint32_t)n_spec, o->vocab_size);

    /* the tokenizer: bytes, merged tokens, specials */
    CLLM_TRY(tok_new(&t, 256 + n_merges + (uint32_t)n_spec));
    t->format = "trained";
    for (int i = 0; i < 256; i++) CLLM_TRY(tok_set_token(t, (uint32_t)i, &order[i], 1, 0));
    for (uint32_t r = 0; r < n_merges; r++) {
        const tok_merge *m = &merges[r];
        size_t la = t->len[m->a], lb = t->len[m->b];
        uint8_t *buf = malloc(la + lb);
        if (!buf) {
            st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
            goto fail;
        }
        memcpy(buf, t->blob + t->off[m->a], la);
        memcpy(buf + la, t->blob + t->off[m->b], lb);
        st = tok_set_token(t, m->id, buf, la + lb, 0);
        free(buf);
        if (st != CLLM_OK) goto fail;
    }
    for (size_t k = 0; k < n_spec; k++)
        CLLM_TRY(tok_set_token(t, 256 + n_merges + (uint32_t)k, specials[k], spec_len[k],
                               TOK_SPECIAL));
    t->merges = merges;
    t->n_merges = n_merges;
    merges = NULL;
    CLLM_TRY(tok_finish(t, "trained tokenizer"));
    *out = t;
    t = NULL;
fail:
    trainer_free(&T);
    wmap_free(&words);
    free(sorted);
    free(merges);
    free(specials);
    free(spec_len);
    free(spec_id);
    cllm_tokenizer_free(t);
    return st;
}
