/* Byte-level BPE: the model, its lookup tables, encoding (single, batch, parallel) and
 * decoding. Files are in tokenizer_json.c, training in tokenizer_train.c.
 *
 * Encoding a piece (a pre-token) merges its bytes pairwise, lowest merge rank first and, among
 * equal ranks, leftmost first — what tiktoken and Hugging Face's BPE do. Short pieces use a
 * linear scan over an array (fast for the few symbols most pieces have); long ones a heap over
 * a linked list, O(n log n). A piece that is a vocabulary entry reachable by merging is looked
 * up directly, and each worker caches the pieces it has merged before.
 */
#include "tokenizer_impl.h"

#include "cllm/util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------- model construction */

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static inline uint64_t hash_bytes(const void *p, size_t n) {
    /* FNV-1a over 8-byte words: fast for short pieces, and good enough mixed by mix64 */
    const uint8_t *s = p;
    uint64_t h = 0xcbf29ce484222325ull ^ n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0x100000001b3ull;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0x100000001b3ull;
    return mix64(h);
}

static uint32_t pow2_at_least(uint64_t n) {
    uint32_t p = 16;
    while (p < n) p <<= 1;
    return p;
}

cllm_status tok_new(cllm_tokenizer **tok, uint32_t n_vocab) {
    *tok = NULL;
    cllm_tokenizer *t = cllm_calloc(1, sizeof *t);
    if (!t) return CLLM_ERR_NOMEM;
    t->n_vocab = n_vocab;
    t->eot = UINT32_MAX;
    t->format = "tokenizer.json";
    size_t cap = n_vocab ? n_vocab : 1;
    t->off = cllm_calloc(cap, sizeof *t->off);
    t->len = cllm_calloc(cap, sizeof *t->len);
    t->flags = cllm_calloc(cap, 1);
    t->blob_cap = 8 * (size_t)cap;
    t->blob = cllm_malloc(t->blob_cap);
    if (!t->off || !t->len || !t->flags || !t->blob) {
        cllm_tokenizer_free(t);
        return CLLM_ERR_NOMEM;
    }
    *tok = t;
    return CLLM_OK;
}

void cllm_tokenizer_free(cllm_tokenizer *t) {
    if (!t) return;
    free(t->off);
    free(t->len);
    free(t->flags);
    free(t->blob);
    free(t->merges);
    free(t->pairs);
    free(t->by_bytes);
    free(t->specials);
    free(t);
}

static cllm_status grow_vocab(cllm_tokenizer *t, uint32_t n_vocab) {
    uint32_t *off = realloc(t->off, n_vocab * sizeof *off);
    if (off) t->off = off;
    uint32_t *len = realloc(t->len, n_vocab * sizeof *len);
    if (len) t->len = len;
    uint8_t *flags = realloc(t->flags, n_vocab);
    if (flags) t->flags = flags;
    if (!off || !len || !flags) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    memset(t->flags + t->n_vocab, 0, n_vocab - t->n_vocab);
    memset(t->len + t->n_vocab, 0, (n_vocab - t->n_vocab) * sizeof *len);
    t->n_vocab = n_vocab;
    return CLLM_OK;
}

cllm_status tok_set_token(cllm_tokenizer *t, uint32_t id, const void *bytes, size_t len,
                          uint8_t flags) {
    if (id >= t->n_vocab || (t->flags[id] & TOK_USED))
        return cllm_fail(CLLM_ERR_FORMAT, "token id %u is out of range or used twice", id);
    if (len >= UINT32_MAX || t->blob_len + len + 1 > UINT32_MAX)
        return cllm_fail(CLLM_ERR_FORMAT, "token %u is too long", id);
    if (t->blob_len + len + 1 > t->blob_cap) {
        size_t cap = t->blob_cap * 2 + len + 1;
        char *b = realloc(t->blob, cap);
        if (!b) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        t->blob = b;
        t->blob_cap = cap;
    }
    memcpy(t->blob + t->blob_len, bytes, len);
    t->off[id] = (uint32_t)t->blob_len;
    t->len[id] = (uint32_t)len;
    t->flags[id] = (uint8_t)(flags | TOK_USED);
    t->blob[t->blob_len + len] = 0; /* so specials are C strings */
    t->blob_len += len + 1;
    return CLLM_OK;
}

static inline const uint8_t *tok_ptr(const cllm_tokenizer *t, uint32_t id) {
    return (const uint8_t *)t->blob + t->off[id];
}

static inline uint64_t head8(const uint8_t *p, size_t n) {
    uint64_t h = 0;
    memcpy(&h, p, n < 8 ? n : 8);
    return h;
}

/* The slot of the token with bytes p[0..n) and hash h, or NULL. */
static inline const tok_bytes_slot *bytes_find(const cllm_tokenizer *t, const uint8_t *p,
                                               size_t n, uint64_t h) {
    uint64_t head = head8(p, n);
    uint16_t l16 = n < 0xFFFF ? (uint16_t)n : 0xFFFF;
    for (uint32_t i = (uint32_t)h & t->bytes_mask;; i = (i + 1) & t->bytes_mask) {
        const tok_bytes_slot *e = &t->by_bytes[i];
        if (!e->len) return NULL;
        if (e->len == l16 && e->head == head &&
            (n <= 8 || (t->len[e->id] == n && !memcmp(tok_ptr(t, e->id) + 8, p + 8, n - 8))))
            return e;
    }
}

uint32_t tok_lookup(const cllm_tokenizer *t, const void *bytes, size_t len) {
    if (!t->by_bytes || len == 0) return UINT32_MAX;
    const tok_bytes_slot *e = bytes_find(t, bytes, len, hash_bytes(bytes, len));
    return e ? e->id : UINT32_MAX;
}

static inline const tok_pair_slot *pair_find(const cllm_tokenizer *t, uint32_t a, uint32_t b) {
    uint64_t key = (uint64_t)a << 32 | b;
    uint32_t i = (uint32_t)mix64(key) & t->pair_mask;
    for (;; i = (i + 1) & t->pair_mask) {
        const tok_pair_slot *s = &t->pairs[i];
        if (s->key == key) return s;
        if (s->key == UINT64_MAX) return NULL;
    }
}

/* Build the bytes -> id table over every used token (specials too; the first id wins when
 * two tokens share bytes). */
cllm_status tok_index_bytes(cllm_tokenizer *t) {
    free(t->by_bytes);
    uint32_t cap = pow2_at_least(2ull * t->n_vocab + 16);
    t->by_bytes = cllm_calloc(cap, sizeof *t->by_bytes);
    if (!t->by_bytes) return CLLM_ERR_NOMEM;
    t->bytes_mask = cap - 1;
    for (uint32_t id = 0; id < t->n_vocab; id++) {
        size_t n = t->len[id];
        if (!(t->flags[id] & TOK_USED) || n == 0) continue;
        uint64_t h = hash_bytes(tok_ptr(t, id), n);
        if (bytes_find(t, tok_ptr(t, id), n, h)) continue; /* same bytes: the first id wins */
        uint32_t i = (uint32_t)h & t->bytes_mask;
        while (t->by_bytes[i].len) i = (i + 1) & t->bytes_mask;
        t->by_bytes[i] = (tok_bytes_slot){head8(tok_ptr(t, id), n), id,
                                          n < 0xFFFF ? (uint16_t)n : 0xFFFF, t->flags[id]};
    }
    return CLLM_OK;
}

static cllm_status build_specials(cllm_tokenizer *t) {
    free(t->specials);
    t->specials = NULL;
    t->n_specials = 0;
    t->eot = UINT32_MAX;
    uint32_t n = 0;
    for (uint32_t id = 0; id < t->n_vocab; id++) n += (t->flags[id] & TOK_SPECIAL) != 0;
    if (n) {
        t->specials = cllm_malloc(n * sizeof *t->specials);
        if (!t->specials) return CLLM_ERR_NOMEM;
    }
    for (uint32_t id = 0; id < t->n_vocab; id++) {
        if (!(t->flags[id] & TOK_SPECIAL)) continue;
        t->specials[t->n_specials++] = id;
        if (t->eot == UINT32_MAX && t->len[id] == strlen(CLLM_EOT_TEXT) &&
            !memcmp(tok_ptr(t, id), CLLM_EOT_TEXT, t->len[id]))
            t->eot = id;
    }
    return CLLM_OK;
}

/* Per-thread encoding state: symbol buffers and the cache of merged pieces. A cache slot
 * keeps the piece's hash and first 8 bytes inline, and its ids when there are at most two. */
typedef struct {
    uint64_t hash, head;
    uint32_t piece;   /* offset of the piece's bytes in the arena (when longer than 8) */
    uint32_t ids[2];  /* the ids, or ids[0] = their offset in the ids arena when n_ids > 2 */
    uint16_t piece_len, n_ids;
} cache_slot;

typedef struct {
    uint32_t *sym;   /* symbols of the piece being merged */
    uint32_t *rank;  /* rank of pair (sym[i], sym[i+1]) */
    uint32_t *next, *prev, *ver;
    uint64_t *heap;
    size_t cap, heap_cap;
    /* cache: open addressing over `slots`, pieces and their ids in two arenas; cleared when
     * full */
    cache_slot *slots;
    uint32_t slot_mask, used;
    uint8_t *pieces;
    uint32_t *ids;
    size_t pieces_len, ids_len;
} tok_scratch;

enum { CACHE_SLOTS = 1 << 16, CACHE_PIECE_BYTES = 1 << 20, CACHE_MAX_PIECE = 255 };

static void scratch_free(tok_scratch *s) {
    free(s->sym);
    free(s->rank);
    free(s->next);
    free(s->prev);
    free(s->ver);
    free(s->heap);
    free(s->slots);
    free(s->pieces);
    free(s->ids);
    memset(s, 0, sizeof *s);
}

static cllm_status scratch_reserve(tok_scratch *s, size_t n) {
    if (n <= s->cap) return CLLM_OK;
    size_t cap = n < 256 ? 256 : n * 2;
    void *p;
#define GROW(f)                                                                                \
    p = realloc(s->f, cap * sizeof *s->f);                                                     \
    if (!p) return cllm_fail(CLLM_ERR_NOMEM, "out of memory (piece of %zu bytes)", n);        \
    s->f = p;
    GROW(sym) GROW(rank) GROW(next) GROW(prev) GROW(ver)
#undef GROW
    s->cap = cap;
    return CLLM_OK;
}

static cllm_status cache_init(tok_scratch *s) {
    s->slots = cllm_calloc(CACHE_SLOTS, sizeof *s->slots);
    s->pieces = cllm_malloc(CACHE_PIECE_BYTES);
    s->ids = cllm_malloc(CACHE_PIECE_BYTES * sizeof *s->ids);
    if (!s->slots || !s->pieces || !s->ids) return CLLM_ERR_NOMEM;
    s->slot_mask = CACHE_SLOTS - 1;
    return CLLM_OK;
}

/* ---------------------------------------------------------------- merging one piece */

#define NO_RANK UINT32_MAX

static inline uint32_t rank_of(const cllm_tokenizer *t, uint32_t a, uint32_t b) {
    const tok_pair_slot *p = pair_find(t, a, b);
    return p ? p->rank : NO_RANK;
}

/* Linear scan: find the lowest rank, merge, update its two neighbours. O(n^2) worst case but
 * the fastest for the short pieces text is mostly made of. Result in s->sym[0..return). */
static size_t merge_linear(const cllm_tokenizer *t, tok_scratch *s, size_t n) {
    uint32_t *sym = s->sym, *rank = s->rank;
    for (size_t i = 0; i + 1 < n; i++) rank[i] = rank_of(t, sym[i], sym[i + 1]);
    while (n > 1) {
        uint32_t best = NO_RANK;
        size_t bi = 0;
        for (size_t i = 0; i + 1 < n; i++)
            if (rank[i] < best) {
                best = rank[i];
                bi = i;
            }
        if (best == NO_RANK) break;
        sym[bi] = t->merges[best].id;
        memmove(sym + bi + 1, sym + bi + 2, (n - bi - 2) * sizeof *sym);
        memmove(rank + bi + 1, rank + bi + 2, (n > bi + 3 ? n - bi - 3 : 0) * sizeof *rank);
        n--;
        if (bi > 0) rank[bi - 1] = rank_of(t, sym[bi - 1], sym[bi]);
        if (bi + 1 < n) rank[bi] = rank_of(t, sym[bi], sym[bi + 1]);
    }
    return n;
}

/* Heap entries: rank << 32 | position; the smallest is the lowest rank, then leftmost. */
static inline void heap_push(uint64_t *h, size_t *n, uint64_t v) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p] <= v) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static inline uint64_t heap_pop(uint64_t *h, size_t *n) {
    uint64_t top = h[0], v = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && h[c + 1] < h[c]) c++;
        if (v <= h[c]) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = v;
    return top;
}

/* Heap over a linked list: O(n log n) for long pieces (whitespace runs, long symbol runs).
 * Node i keeps the rank of the pair it starts; a heap entry is stale when that rank changed
 * or the node died. Same result as merge_linear. */
static cllm_status merge_heap(const cllm_tokenizer *t, tok_scratch *s, size_t n, size_t *out_n) {
    if (s->heap_cap < 2 * n + 2) {
        uint64_t *h = realloc(s->heap, (2 * n + 2) * sizeof *h);
        if (!h) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        s->heap = h;
        s->heap_cap = 2 * n + 2;
    }
    uint32_t *sym = s->sym, *rank = s->rank, *next = s->next, *prev = s->prev;
    uint8_t *dead = (uint8_t *)s->ver; /* reuse as a flag array */
    uint64_t *h = s->heap;
    size_t hn = 0;
    for (size_t i = 0; i < n; i++) {
        next[i] = (uint32_t)(i + 1);
        prev[i] = (uint32_t)(i - 1);
        dead[i] = 0;
        rank[i] = i + 1 < n ? rank_of(t, sym[i], sym[i + 1]) : NO_RANK;
        if (rank[i] != NO_RANK) heap_push(h, &hn, (uint64_t)rank[i] << 32 | i);
    }
    while (hn) {
        uint64_t e = heap_pop(h, &hn);
        uint32_t r = (uint32_t)(e >> 32), i = (uint32_t)e;
        if (dead[i] || rank[i] != r) continue;
        uint32_t j = next[i];
        sym[i] = t->merges[r].id;
        dead[j] = 1;
        next[i] = next[j];
        if (next[i] < n) prev[next[i]] = i;
        rank[i] = next[i] < n ? rank_of(t, sym[i], sym[next[i]]) : NO_RANK;
        if (rank[i] != NO_RANK) heap_push(h, &hn, (uint64_t)rank[i] << 32 | i);
        if (i > 0) {
            uint32_t p = prev[i];
            uint32_t pr = rank_of(t, sym[p], sym[i]);
            if (pr != rank[p]) {
                rank[p] = pr;
                if (pr != NO_RANK) heap_push(h, &hn, (uint64_t)pr << 32 | p);
            }
        }
        /* the heap holds at most one live entry per node plus stale ones; compact when full */
        if (hn + 2 >= s->heap_cap) {
            size_t k = 0;
            for (size_t q = 0; q < hn; q++) {
                uint32_t qi = (uint32_t)h[q];
                if (!dead[qi] && rank[qi] == (uint32_t)(h[q] >> 32)) h[k++] = h[q];
            }
            size_t m = k;
            hn = 0;
            for (size_t q = 0; q < m; q++) heap_push(h, &hn, h[q]);
        }
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i = next[i]) sym[m++] = sym[i];
    *out_n = m;
    return CLLM_OK;
}

enum { LINEAR_MAX = 128 };

/* Merge the bytes p[0..n) into tokens, appended to *out. */
static cllm_status bpe_piece(const cllm_tokenizer *t, tok_scratch *s, const uint8_t *p, size_t n,
                             cllm_tokens *out) {
    cllm_status st;
    if (n == 1) return cllm_tokens_push(out, &t->byte_id[p[0]], 1);
    uint64_t h = hash_bytes(p, n);
    const tok_bytes_slot *e = bytes_find(t, p, n, h);
    if (e && (e->flags & TOK_REACHABLE || (t->ignore_merges && !(e->flags & TOK_SPECIAL))))
        return cllm_tokens_push(out, &e->id, 1);

    cache_slot *slot = NULL;
    uint64_t head = head8(p, n);
    if (s->slots && n <= CACHE_MAX_PIECE) {
        for (uint32_t i = (uint32_t)h & s->slot_mask;; i = (i + 1) & s->slot_mask) {
            cache_slot *c = &s->slots[i];
            if (!c->piece_len) {
                slot = c;
                break;
            }
            if (c->hash == h && c->head == head && c->piece_len == n &&
                (n <= 8 || !memcmp(s->pieces + c->piece, p + 8, n - 8)))
                return cllm_tokens_push(out, c->n_ids <= 2 ? c->ids : s->ids + c->ids[0],
                                        c->n_ids);
        }
    }

    if ((st = scratch_reserve(s, n)) != CLLM_OK) return st;
    for (size_t i = 0; i < n; i++) s->sym[i] = t->byte_id[p[i]];
    size_t m;
    if (n <= LINEAR_MAX) {
        m = merge_linear(t, s, n);
    } else if ((st = merge_heap(t, s, n, &m)) != CLLM_OK) {
        return st;
    }

    if (slot) {
        if (s->used * 4 >= CACHE_SLOTS * 3 || s->pieces_len + n > CACHE_PIECE_BYTES ||
            s->ids_len + n > CACHE_PIECE_BYTES) {
            /* full: start over (cheaper than eviction, and text repeats within a stretch) */
            memset(s->slots, 0, CACHE_SLOTS * sizeof *s->slots);
            s->used = 0;
            s->pieces_len = s->ids_len = 0;
            slot = &s->slots[(uint32_t)h & s->slot_mask];
        }
        *slot = (cache_slot){h, head, (uint32_t)s->pieces_len, {0, 0}, (uint16_t)n, (uint16_t)m};
        if (n > 8) {
            memcpy(s->pieces + s->pieces_len, p + 8, n - 8);
            s->pieces_len += n - 8;
        }
        if (m <= 2) {
            memcpy(slot->ids, s->sym, m * sizeof *s->sym);
        } else {
            /* m <= n, so the ids arena (as many entries as piece bytes) has room */
            slot->ids[0] = (uint32_t)s->ids_len;
            memcpy(s->ids + s->ids_len, s->sym, m * sizeof *s->ids);
            s->ids_len += m;
        }
        s->used++;
    }
    return cllm_tokens_push(out, s->sym, m);
}

/* Encode text with no specials in it. With prefix_space, GPT-2 style add_prefix_space. */
static cllm_status encode_text(const cllm_tokenizer *t, tok_scratch *s, const char *text,
                               size_t len, bool prefix_space, cllm_tokens *out) {
    cllm_status st;
    const uint8_t *u = (const uint8_t *)text;
    uint8_t *tmp = NULL;
    if (prefix_space && len > 0 && u[0] != ' ') {
        /* Hugging Face's add_prefix_space: encode " " + text (a rarely used option: a copy) */
        tmp = malloc(len + 1);
        if (!tmp) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        tmp[0] = ' ';
        memcpy(tmp + 1, u, len);
        u = tmp;
        len++;
    }
    st = CLLM_OK;
    for (size_t i = 0; i < len && st == CLLM_OK;) {
        size_t e = pretok_next(u, len, i);
        st = bpe_piece(t, s, u + i, e - i, out);
        i = e;
    }
    free(tmp);
    return st;
}

static void build_reachable(cllm_tokenizer *t, tok_scratch *s) {
    for (uint32_t id = 0; id < t->n_vocab; id++) {
        t->flags[id] &= (uint8_t)~TOK_REACHABLE;
        if (!(t->flags[id] & TOK_USED) || (t->flags[id] & TOK_SPECIAL)) continue;
        size_t n = t->len[id];
        if (n == 1) {
            if (t->byte_id[tok_ptr(t, id)[0]] == id) t->flags[id] |= TOK_REACHABLE;
            continue;
        }
        if (n == 0 || scratch_reserve(s, n) != CLLM_OK) continue;
        for (size_t i = 0; i < n; i++) s->sym[i] = t->byte_id[tok_ptr(t, id)[i]];
        size_t m = n;
        if (n <= LINEAR_MAX)
            m = merge_linear(t, s, n);
        else if (merge_heap(t, s, n, &m) != CLLM_OK)
            continue;
        if (m == 1 && s->sym[0] == id) t->flags[id] |= TOK_REACHABLE;
    }
}

cllm_status tok_finish(cllm_tokenizer *t, const char *what) {
    cllm_status st = CLLM_OK;
    tok_scratch s = {0};
    /* bytes first: the 256 single bytes must all be tokens */
    CLLM_TRY(tok_index_bytes(t));
    for (int b = 0; b < 256; b++) {
        uint8_t c = (uint8_t)b;
        uint32_t id = tok_lookup(t, &c, 1);
        if (id == UINT32_MAX || (t->flags[id] & TOK_SPECIAL)) {
            st = cllm_fail(CLLM_ERR_FORMAT,
                           "%s: the vocabulary lacks a token for byte 0x%02x (byte-level BPE "
                           "needs all 256)",
                           what, b);
            goto fail;
        }
        t->byte_id[b] = id;
    }
    free(t->pairs);
    uint32_t cap = pow2_at_least(2ull * t->n_merges + 16);
    t->pairs = cllm_malloc(cap * sizeof *t->pairs);
    if (!t->pairs) {
        st = CLLM_ERR_NOMEM;
        goto fail;
    }
    for (uint32_t i = 0; i < cap; i++) t->pairs[i].key = UINT64_MAX;
    t->pair_mask = cap - 1;
    for (uint32_t r = 0; r < t->n_merges; r++) {
        const tok_merge *m = &t->merges[r];
        uint64_t key = (uint64_t)m->a << 32 | m->b;
        uint32_t i = (uint32_t)mix64(key) & t->pair_mask;
        while (t->pairs[i].key != UINT64_MAX && t->pairs[i].key != key) i = (i + 1) & t->pair_mask;
        if (t->pairs[i].key == key) continue; /* a repeated merge keeps its first (lowest) rank */
        t->pairs[i] = (tok_pair_slot){key, r, m->id};
    }
    CLLM_TRY(build_specials(t));
    build_reachable(t, &s);
    CLLM_TRY(tok_index_bytes(t)); /* again, to carry the reachable flags */
fail:
    scratch_free(&s);
    return st;
}

/* ---------------------------------------------------------------- vocabulary queries */

uint32_t cllm_tokenizer_vocab_size(const cllm_tokenizer *t) { return t->n_vocab; }
uint32_t cllm_tokenizer_merge_count(const cllm_tokenizer *t) { return t->n_merges; }
uint32_t cllm_tokenizer_eot(const cllm_tokenizer *t) { return t->eot; }

bool cllm_tokenizer_merge(const cllm_tokenizer *t, uint32_t rank, uint32_t pair[2],
                          uint32_t *id) {
    if (rank >= t->n_merges) return false;
    pair[0] = t->merges[rank].a;
    pair[1] = t->merges[rank].b;
    if (id) *id = t->merges[rank].id;
    return true;
}
uint32_t cllm_tokenizer_special_count(const cllm_tokenizer *t) { return t->n_specials; }

const char *cllm_tokenizer_special(const cllm_tokenizer *t, uint32_t i, uint32_t *id) {
    if (i >= t->n_specials) return NULL;
    if (id) *id = t->specials[i];
    return t->blob + t->off[t->specials[i]];
}

static uint32_t find_special(const cllm_tokenizer *t, const char *text, size_t len) {
    for (uint32_t i = 0; i < t->n_specials; i++) {
        uint32_t id = t->specials[i];
        if (t->len[id] == len && !memcmp(tok_ptr(t, id), text, len)) return id;
    }
    return UINT32_MAX;
}

int64_t cllm_tokenizer_token_id(const cllm_tokenizer *t, const char *token) {
    size_t n = strlen(token);
    uint32_t id = find_special(t, token, n);
    if (id == UINT32_MAX) id = tok_lookup(t, token, n);
    return id == UINT32_MAX ? -1 : (int64_t)id;
}

const char *cllm_tokenizer_token_bytes(const cllm_tokenizer *t, uint32_t id, size_t *len) {
    if (id >= t->n_vocab || !(t->flags[id] & TOK_USED)) return NULL;
    if (len) *len = t->len[id];
    return t->blob + t->off[id];
}

cllm_status cllm_tokenizer_add_special(cllm_tokenizer *t, const char *text, uint32_t *id) {
    size_t n = strlen(text);
    if (n == 0 || !tok_valid_utf8(text, n))
        return cllm_fail(CLLM_ERR_USAGE, "a special token must be non-empty UTF-8 text");
    uint32_t found = find_special(t, text, n);
    if (found == UINT32_MAX) {
        cllm_status st;
        found = t->n_vocab;
        if ((st = grow_vocab(t, t->n_vocab + 1)) != CLLM_OK) return st;
        if ((st = tok_set_token(t, found, text, n, TOK_SPECIAL)) != CLLM_OK) return st;
        if ((st = build_specials(t)) != CLLM_OK) return st;
        if ((st = tok_index_bytes(t)) != CLLM_OK) return st;
    }
    if (id) *id = found;
    return CLLM_OK;
}

/* ---------------------------------------------------------------- specials in text */

cllm_status tok_allowed_parse(const cllm_tokenizer *t, const char *spec, tok_allowed *a) {
    memset(a, 0, sizeof *a);
    if (!spec || !strcmp(spec, "none") || !*spec) return CLLM_OK;
    size_t cap = t->n_specials + 1;
    a->text = cllm_calloc(cap, sizeof *a->text);
    a->len = cllm_calloc(cap, sizeof *a->len);
    a->id = cllm_calloc(cap, sizeof *a->id);
    if (!a->text || !a->len || !a->id) {
        tok_allowed_free(a);
        return CLLM_ERR_NOMEM;
    }
    if (!strcmp(spec, "all")) {
        for (uint32_t i = 0; i < t->n_specials; i++) {
            uint32_t id = t->specials[i];
            a->text[a->n] = t->blob + t->off[id];
            a->len[a->n] = t->len[id];
            a->id[a->n++] = id;
        }
        return CLLM_OK;
    }
    for (const char *p = spec; *p;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        uint32_t id = find_special(t, p, n);
        if (id == UINT32_MAX) {
            cllm_status st = cllm_fail(CLLM_ERR_USAGE,
                                       "allowed special '%.*s' is not a special token of this "
                                       "tokenizer (accepted: none, all, or a comma-separated "
                                       "list of its special tokens)",
                                       (int)n, p);
            tok_allowed_free(a);
            return st;
        }
        bool dup = false;
        for (size_t i = 0; i < a->n; i++) dup |= a->id[i] == id;
        if (!dup) {
            a->text[a->n] = t->blob + t->off[id];
            a->len[a->n] = t->len[id];
            a->id[a->n++] = id;
        }
        if (!comma) break;
        p = comma + 1;
    }
    return CLLM_OK;
}

void tok_allowed_free(tok_allowed *a) {
    free(a->text);
    free(a->len);
    free(a->id);
    memset(a, 0, sizeof *a);
}

static cllm_status spans_push(tok_spans *s, tok_span v) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        tok_span *p = realloc(s->v, cap * sizeof *p);
        if (!p) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        s->v = p;
        s->cap = cap;
    }
    s->v[s->n++] = v;
    return CLLM_OK;
}

static inline bool ascii_space(uint8_t c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* Split text (no specials inside) into spans of about `chunk` bytes. A cut at p is safe when
 * s[p-1] is an ASCII non-space and s[p] an ASCII space: every pre-token holding a non-space
 * ends before a space, and the scanner never looks behind, so the pieces are the same. */
static size_t find_from(const char *text, size_t len, size_t from, const char *pat, size_t n) {
    const char *f = n ? memmem(text + from, len - from, pat, n) : NULL;
    return f ? (size_t)(f - text) : SIZE_MAX;
}

static cllm_status split_text(const char *text, size_t start, size_t len, size_t chunk,
                              bool seg_start, tok_spans *out) {
    cllm_status st;
    const uint8_t *u = (const uint8_t *)text;
    size_t end = start + len, i = start;
    while (chunk && end - i > chunk + chunk / 2) {
        size_t p = i + chunk, cut = 0;
        for (size_t q = p; q < end; q++)
            if (ascii_space(u[q]) && u[q - 1] < 0x80 && !ascii_space(u[q - 1])) {
                cut = q;
                break;
            }
        if (!cut) break; /* no safe place left: keep the rest whole */
        if ((st = spans_push(out, (tok_span){i, cut - i, UINT32_MAX, seg_start})) != CLLM_OK)
            return st;
        seg_start = false;
        i = cut;
    }
    if (end > i) return spans_push(out, (tok_span){i, end - i, UINT32_MAX, seg_start});
    return CLLM_OK;
}

cllm_status tok_split(const char *text, size_t len, const tok_allowed *a, size_t chunk,
                      tok_spans *out) {
    cllm_status st;
    size_t *next = NULL; /* next occurrence of each allowed special, SIZE_MAX: none left */
    if (a->n) {
        next = cllm_malloc(a->n * sizeof *next);
        if (!next) return CLLM_ERR_NOMEM;
    }
    for (size_t k = 0; k < a->n; k++) next[k] = find_from(text, len, 0, a->text[k], a->len[k]);
    size_t i = 0;
    bool seg_start = true;
    for (;;) {
        /* leftmost occurrence of any allowed special at or after i, the longest on a tie */
        size_t best = SIZE_MAX, best_k = 0;
        for (size_t k = 0; k < a->n; k++) {
            if (next[k] != SIZE_MAX && next[k] < i)
                next[k] = find_from(text, len, i, a->text[k], a->len[k]);
            if (next[k] < best || (next[k] == best && best != SIZE_MAX && a->len[k] > a->len[best_k])) {
                best = next[k];
                best_k = k;
            }
        }
        if (best == SIZE_MAX) best = len;
        if (best > i && (st = split_text(text, i, best - i, chunk, seg_start, out)) != CLLM_OK)
            goto fail;
        if (best >= len) break;
        if ((st = spans_push(out, (tok_span){best, a->len[best_k], a->id[best_k], false})) != CLLM_OK)
            goto fail;
        i = best + a->len[best_k];
        seg_start = true;
        if (i >= len) break;
    }
    st = CLLM_OK;
fail:
    free(next);
    return st;
}

/* ---------------------------------------------------------------- encode */

void cllm_tokens_free(cllm_tokens *t) {
    if (!t) return;
    free(t->ids);
    memset(t, 0, sizeof *t);
}

cllm_status cllm_tokens_push(cllm_tokens *t, const uint32_t *ids, size_t n) {
    if (n == 0) return CLLM_OK;
    if (t->n + n > t->cap) {
        size_t cap = t->cap ? t->cap : 64;
        while (cap < t->n + n) cap *= 2;
        uint32_t *p = realloc(t->ids, cap * sizeof *p);
        if (!p) return cllm_fail(CLLM_ERR_NOMEM, "out of memory (%zu tokens)", cap);
        t->ids = p;
        t->cap = cap;
    }
    memcpy(t->ids + t->n, ids, n * sizeof *ids);
    t->n += n;
    return CLLM_OK;
}

static cllm_status encode_spans(const cllm_tokenizer *t, tok_scratch *s, const char *text,
                                const tok_span *sp, size_t n, cllm_tokens *out) {
    cllm_status st = CLLM_OK;
    for (size_t k = 0; k < n && st == CLLM_OK; k++) {
        if (sp[k].special != UINT32_MAX)
            st = cllm_tokens_push(out, &sp[k].special, 1);
        else
            st = encode_text(t, s, text + sp[k].start, sp[k].len,
                             t->add_prefix_space && sp[k].segment_start, out);
    }
    return st;
}

/* Encode with a caller-provided scratch (the cache is made on first need for long texts). */
static cllm_status encode_with(const cllm_tokenizer *t, tok_scratch *s, const char *text,
                               size_t len, const tok_allowed *a, cllm_tokens *out) {
    cllm_status st;
    if (!s->slots && len >= (1 << 16) && (st = cache_init(s)) != CLLM_OK) return st;
    if (a->n == 0) {
        tok_span one = {0, len, UINT32_MAX, true};
        return len ? encode_spans(t, s, text, &one, 1, out) : CLLM_OK;
    }
    tok_spans sp = {0};
    st = tok_split(text, len, a, 0, &sp);
    if (st == CLLM_OK) st = encode_spans(t, s, text, sp.v, sp.n, out);
    free(sp.v);
    return st;
}

cllm_status cllm_tokenizer_encode(const cllm_tokenizer *t, const char *text, size_t len,
                                  const char *allowed_special, cllm_tokens *out) {
    tok_allowed a;
    cllm_status st = tok_allowed_parse(t, allowed_special, &a);
    if (st != CLLM_OK) return st;
    tok_scratch s = {0};
    st = encode_with(t, &s, text, len, &a, out);
    scratch_free(&s);
    tok_allowed_free(&a);
    return st;
}

int tok_threads(int threads) {
    if (threads > 0) return threads;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* Workers take items (documents or spans) from a shared counter. */
typedef struct {
    const cllm_tokenizer *t;
    const tok_allowed *a;
    const cllm_text *docs; /* batch: documents */
    const char *text;      /* parallel: one text cut into spans */
    const tok_span *spans;
    size_t n;
    cllm_tokens *out; /* (n) */
    size_t next;      /* next item; guarded by mu */
    pthread_mutex_t mu;
    cllm_status st;
    char err[512];
} work;

static void *worker(void *arg) {
    work *w = arg;
    tok_scratch s = {0};
    cllm_status st = cache_init(&s);
    while (st == CLLM_OK) {
        pthread_mutex_lock(&w->mu);
        size_t i = w->next;
        /* small items in groups to keep the lock cold */
        size_t take = w->docs ? 16 : 1;
        w->next = i + take < w->n ? i + take : w->n;
        bool stop = w->st != CLLM_OK;
        pthread_mutex_unlock(&w->mu);
        if (i >= w->n || stop) break;
        for (size_t k = i; k < i + take && k < w->n && st == CLLM_OK; k++) {
            if (w->docs)
                st = encode_with(w->t, &s, w->docs[k].text, w->docs[k].len, w->a, &w->out[k]);
            else
                st = encode_spans(w->t, &s, w->text, &w->spans[k], 1, &w->out[k]);
        }
    }
    if (st != CLLM_OK) {
        pthread_mutex_lock(&w->mu);
        if (w->st == CLLM_OK) {
            w->st = st;
            snprintf(w->err, sizeof w->err, "%s", cllm_last_error());
        }
        pthread_mutex_unlock(&w->mu);
    }
    scratch_free(&s);
    return NULL;
}

static cllm_status run_workers(work *w, int threads) {
    int nt = tok_threads(threads);
    if ((size_t)nt > w->n) nt = w->n ? (int)w->n : 1;
    pthread_mutex_init(&w->mu, NULL);
    pthread_t *th = calloc((size_t)nt, sizeof *th);
    int started = 0;
    if (th)
        for (; started < nt - 1; started++)
            if (pthread_create(&th[started], NULL, worker, w) != 0) break;
    worker(w); /* the calling thread works too */
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    free(th);
    pthread_mutex_destroy(&w->mu);
    if (w->st != CLLM_OK) return cllm_fail(w->st, "%s", w->err);
    return CLLM_OK;
}

cllm_status cllm_tokenizer_encode_batch(const cllm_tokenizer *t, const cllm_text *docs,
                                        size_t n, const char *allowed_special, int threads,
                                        cllm_tokens *out) {
    tok_allowed a;
    cllm_status st = tok_allowed_parse(t, allowed_special, &a);
    if (st != CLLM_OK) return st;
    work w = {.t = t, .a = &a, .docs = docs, .n = n, .out = out};
    st = run_workers(&w, threads);
    tok_allowed_free(&a);
    return st;
}

cllm_status cllm_tokenizer_encode_parallel(const cllm_tokenizer *t, const char *text,
                                           size_t len, const char *allowed_special, int threads,
                                           cllm_tokens *out) {
    tok_allowed a;
    cllm_status st = tok_allowed_parse(t, allowed_special, &a);
    if (st != CLLM_OK) return st;
    tok_spans sp = {0};
    cllm_tokens *parts = NULL;
    int nt = tok_threads(threads);
    /* chunks: small enough to balance the threads, large enough to amortize */
    size_t chunk = len / ((size_t)nt * 8) + 1;
    if (chunk < (1 << 16)) chunk = 1 << 16;
    if (chunk > (1 << 22)) chunk = 1 << 22;
    CLLM_TRY(tok_split(text, len, &a, nt > 1 ? chunk : 0, &sp));
    parts = cllm_calloc(sp.n ? sp.n : 1, sizeof *parts);
    if (!parts) {
        st = CLLM_ERR_NOMEM;
        goto fail;
    }
    work w = {.t = t, .a = &a, .text = text, .spans = sp.v, .n = sp.n, .out = parts};
    CLLM_TRY(run_workers(&w, nt));
    size_t total = 0;
    for (size_t k = 0; k < sp.n; k++) total += parts[k].n;
    if (out->n + total > out->cap) {
        uint32_t *p = realloc(out->ids, (out->n + total) * sizeof *p);
        if (!p) {
            st = cllm_fail(CLLM_ERR_NOMEM, "out of memory (%zu tokens)", out->n + total);
            goto fail;
        }
        out->ids = p;
        out->cap = out->n + total;
    }
    for (size_t k = 0; k < sp.n; k++) CLLM_TRY(cllm_tokens_push(out, parts[k].ids, parts[k].n));
fail:
    if (parts)
        for (size_t k = 0; k < sp.n; k++) cllm_tokens_free(&parts[k]);
    free(parts);
    free(sp.v);
    tok_allowed_free(&a);
    return st;
}

/* ---------------------------------------------------------------- decode */

cllm_status cllm_tokenizer_decode(const cllm_tokenizer *t, const uint32_t *ids, size_t n,
                                  char **text, size_t *len) {
    *text = NULL;
    if (len) *len = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] >= t->n_vocab || !(t->flags[ids[i]] & TOK_USED))
            return cllm_fail(CLLM_ERR_USAGE,
                             "token id %u (at position %zu) is not in the vocabulary (size %u)",
                             ids[i], i, t->n_vocab);
        total += t->len[ids[i]];
    }
    char *out = cllm_malloc(total + 1);
    if (!out) return CLLM_ERR_NOMEM;
    char *p = out;
    for (size_t i = 0; i < n; i++) {
        memcpy(p, t->blob + t->off[ids[i]], t->len[ids[i]]);
        p += t->len[ids[i]];
    }
    *p = 0;
    *text = out;
    if (len) *len = total;
    return CLLM_OK;
}

void bytelevel_order(uint8_t order[256]) {
    /* bytelevel_char is increasing over the printable bytes and over the rest, and every
     * printable one is below 256: printable bytes first, in order, then the others */
    int k = 0;
    for (int b = 0; b < 256; b++)
        if (bytelevel_char((uint8_t)b) < 256) order[k++] = (uint8_t)b;
    for (int b = 0; b < 256; b++)
        if (bytelevel_char((uint8_t)b) >= 256) order[k++] = (uint8_t)b;
}
