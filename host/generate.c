/* Generation: the prompt in one batched pass over the key/value cache, then one position per
 * token; sampling, stop strings and tokens, streaming, the context-full policy (generate.h).
 *
 * Shapes: R rows (samples) generated in lockstep, each row's tokens seq (R, n_ctx + 1), all
 * rows of the same length L, so that one cached forward of (R, n) tokens at position `fed`
 * serves them all. A row that has finished keeps being fed its last token (its outputs are
 * ignored) until every row is done. */
#include "cllm/generate.h"

#include "cllm/util.h"
#include "data_internal.h" /* cllm_utf8_decode */

#include <stdlib.h>
#include <string.h>

struct cllm_gen {
    cllm_gpt *gpt;
    const cllm_tokenizer *tok;
    int n_ctx, V;
    bool no_cache;
    uint32_t *ctx; /* (ctx_cap) the context */
    int ctx_n, ctx_cap;
    int cached;      /* ctx[0 .. cached) have their keys and values in the cache ... */
    int cached_rows; /* ... for a batch of this many rows */
};

const char *cllm_gen_finish_name(cllm_gen_finish f) {
    switch (f) {
    case CLLM_GEN_RUNNING:
        return "running";
    case CLLM_GEN_FINISH_LENGTH:
        return "length";
    case CLLM_GEN_FINISH_STOP:
        return "stop";
    case CLLM_GEN_FINISH_TOKEN:
        return "token";
    case CLLM_GEN_FINISH_CONTEXT:
        return "context";
    case CLLM_GEN_FINISH_CALLBACK:
        return "callback";
    }
    return "?";
}

cllm_gen_opts cllm_gen_opts_default(void) {
    cllm_gen_opts o = {.max_tokens = 256,
                       .sampler = cllm_sampler_default(),
                       .seed = 1337,
                       .num_samples = 1,
                       .context_full = CLLM_GEN_CONTEXT_SLIDE};
    return o;
}

cllm_status cllm_gen_opts_validate(const cllm_gen_opts *o) {
    if (o->max_tokens < 1)
        return cllm_fail(CLLM_ERR_USAGE, "--max-tokens must be >= 1, got %d", o->max_tokens);
    if (o->num_samples < 1)
        return cllm_fail(CLLM_ERR_USAGE, "--num-samples must be >= 1, got %d", o->num_samples);
    if (o->n_keep < 0) return cllm_fail(CLLM_ERR_USAGE, "n_keep must be >= 0, got %d", o->n_keep);
    if (o->context_full != CLLM_GEN_CONTEXT_SLIDE && o->context_full != CLLM_GEN_CONTEXT_STOP)
        return cllm_fail(CLLM_ERR_USAGE, "--context-full must be slide or stop");
    if (o->n_stops < 0 || (o->n_stops > 0 && !o->stops) || o->n_stop_tokens < 0 ||
        (o->n_stop_tokens > 0 && !o->stop_tokens))
        return cllm_fail(CLLM_ERR_USAGE, "stop strings or tokens: a count without an array");
    return cllm_sampler_validate(&o->sampler);
}

void cllm_gen_result_free(cllm_gen_result *r) {
    if (!r) return;
    for (int i = 0; r->samples && i < r->n_samples; i++) {
        free(r->samples[i].tokens);
        free(r->samples[i].logprobs);
        free(r->samples[i].text);
    }
    free(r->samples);
    memset(r, 0, sizeof *r);
}

/* ---------------------------------------------------------------- releasing text */

/* Bytes at the end of text[0..len) that begin a UTF-8 sequence not yet complete. */
static size_t utf8_incomplete_tail(const char *text, size_t len) {
    const unsigned char *p = (const unsigned char *)text;
    for (size_t k = 1; k <= 3 && k <= len; k++) {
        unsigned c = p[len - k];
        if ((c & 0xC0) == 0x80) continue; /* a continuation byte: look further back */
        if (c < 0xC2 || c > 0xF4) return 0;
        uint32_t cp;
        /* a valid prefix that runs out of bytes decodes as -(bytes available) */
        return cllm_utf8_decode(p + len - k, k, &cp) == -(int)k ? k : 0;
    }
    return 0;
}

size_t cllm_gen_releasable(const char *text, size_t len, const char *const *stops, int n_stops) {
    size_t hold = utf8_incomplete_tail(text, len);
    for (int s = 0; s < n_stops; s++) {
        size_t sl = stops[s] ? strlen(stops[s]) : 0;
        /* the longest k < sl with text ending in stops[s][0 .. k) */
        for (size_t k = sl - (sl > 0); k > hold && sl > 0; k--)
            if (k <= len && !memcmp(text + len - k, stops[s], k)) {
                hold = k;
                break;
            }
    }
    return len - hold;
}

/* ---------------------------------------------------------------- the context */

int cllm_gen_n_ctx(const cllm_gen *g) {
    return g->n_ctx;
}

const uint32_t *cllm_gen_context(const cllm_gen *g, int *n) {
    if (n) *n = g->ctx_n;
    return g->ctx;
}

int cllm_gen_cached(const cllm_gen *g) {
    return g->cached;
}

void cllm_gen_reset(cllm_gen *g) {
    g->ctx_n = 0;
    g->cached = 0;
    g->cached_rows = 0;
}

static cllm_status ctx_reserve(cllm_gen *g, int n) {
    if (n <= g->ctx_cap) return CLLM_OK;
    int cap = g->ctx_cap ? g->ctx_cap : 256;
    while (cap < n)
        cap *= 2;
    uint32_t *c = realloc(g->ctx, (size_t)cap * sizeof *c);
    if (!c) return cllm_fail(CLLM_ERR_NOMEM, "out of memory (generation context)");
    g->ctx = c;
    g->ctx_cap = cap;
    return CLLM_OK;
}

static cllm_status check_ids(const cllm_gen *g, const uint32_t *ids, int n) {
    for (int i = 0; i < n; i++)
        if (ids[i] >= (uint32_t)g->V)
            return cllm_fail(CLLM_ERR_USAGE,
                             "token %d of the context is %u, not a token of this model "
                             "(vocab_size %d)",
                             i, ids[i], g->V);
    return CLLM_OK;
}

cllm_status cllm_gen_append(cllm_gen *g, const uint32_t *ids, int n) {
    if (n < 0) return cllm_fail(CLLM_ERR_USAGE, "appending %d tokens", n);
    cllm_status st = check_ids(g, ids, n);
    if (st == CLLM_OK) st = ctx_reserve(g, g->ctx_n + n);
    if (st != CLLM_OK) return st;
    if (n > 0) memcpy(g->ctx + g->ctx_n, ids, (size_t)n * sizeof *ids);
    g->ctx_n += n;
    return CLLM_OK;
}

cllm_status cllm_gen_set_context(cllm_gen *g, const uint32_t *ids, int n) {
    if (n < 0) return cllm_fail(CLLM_ERR_USAGE, "a context of %d tokens", n);
    cllm_status st = check_ids(g, ids, n);
    if (st == CLLM_OK) st = ctx_reserve(g, n);
    if (st != CLLM_OK) return st;
    int common = 0;
    while (common < g->cached && common < n && g->ctx[common] == ids[common])
        common++;
    if (n > 0) memmove(g->ctx, ids, (size_t)n * sizeof *ids);
    g->ctx_n = n;
    g->cached = common;
    return CLLM_OK;
}

cllm_status cllm_gen_init(cllm_gen **out, cllm_gpt *gpt, const cllm_tokenizer *tok,
                          const cllm_gen_setup *setup) {
    *out = NULL;
    const cllm_gpt_opts *mo = cllm_gpt_get_opts(gpt);
    cllm_gen_setup s = setup ? *setup : (cllm_gen_setup){0};
    if (s.n_ctx < 0 || s.n_ctx > mo->max_seq)
        return cllm_fail(CLLM_ERR_USAGE,
                         "a context of %d tokens: the model was created for at most %d", s.n_ctx,
                         mo->max_seq);
    if (!s.no_cache && !mo->kv_cache)
        return cllm_fail(CLLM_ERR_STATE, "generation with a cache needs a model created with a "
                                         "key/value cache (cllm_gpt_opts.kv_cache), or no_cache");
    if ((s.n_ctx ? s.n_ctx : mo->max_seq) < 2)
        return cllm_fail(CLLM_ERR_USAGE, "generation needs a context of at least 2 tokens");
    cllm_gen *g = calloc(1, sizeof *g);
    if (!g) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    g->gpt = gpt;
    g->tok = tok;
    g->n_ctx = s.n_ctx ? s.n_ctx : mo->max_seq;
    g->V = cllm_gpt_get_config(gpt)->vocab_size;
    g->no_cache = s.no_cache;
    *out = g;
    return CLLM_OK;
}

void cllm_gen_free(cllm_gen *g) {
    if (!g) return;
    free(g->ctx);
    free(g);
}

/* ---------------------------------------------------------------- one run */

typedef struct {
    cllm_rng rng;
    uint32_t *seq; /* (n_ctx + 1) this row's context */
    char *text;    /* (text_cap) */
    size_t text_len, text_cap, released;
    int cap_tokens; /* capacity of the sample's token arrays */
} row_state;

static cllm_status push_token(cllm_gen_sample *s, row_state *rs, uint32_t t, float lp) {
    if (s->n_tokens == rs->cap_tokens) {
        int cap = rs->cap_tokens ? 2 * rs->cap_tokens : 64;
        uint32_t *nt = realloc(s->tokens, (size_t)cap * sizeof *nt);
        if (!nt) return cllm_fail(CLLM_ERR_NOMEM, "out of memory (generated tokens)");
        s->tokens = nt;
        float *nl = realloc(s->logprobs, (size_t)cap * sizeof *nl);
        if (!nl) return cllm_fail(CLLM_ERR_NOMEM, "out of memory (generated tokens)");
        s->logprobs = nl;
        rs->cap_tokens = cap;
    }
    s->tokens[s->n_tokens] = t;
    s->logprobs[s->n_tokens] = lp;
    s->n_tokens++;
    return CLLM_OK;
}

static cllm_status push_text(row_state *rs, const char *b, size_t n) {
    if (rs->text_len + n + 1 > rs->text_cap) {
        size_t cap = rs->text_cap ? rs->text_cap : 256;
        while (cap < rs->text_len + n + 1)
            cap *= 2;
        char *t = realloc(rs->text, cap);
        if (!t) return cllm_fail(CLLM_ERR_NOMEM, "out of memory (generated text)");
        rs->text = t;
        rs->text_cap = cap;
    }
    memcpy(rs->text + rs->text_len, b, n);
    rs->text_len += n;
    rs->text[rs->text_len] = '\0';
    return CLLM_OK;
}

static bool is_stop_token(const cllm_gen *g, const cllm_gen_opts *o, uint32_t t) {
    if (!o->ignore_eot && g->tok && t == cllm_tokenizer_eot(g->tok)) return true;
    for (int i = 0; i < o->n_stop_tokens; i++)
        if (o->stop_tokens[i] == t) return true;
    return false;
}

/* The earliest stop string in text[from .. len): its offset, or -1; *which gets its index. */
static long find_stop(const char *text, size_t from, size_t len, const cllm_gen_opts *o,
                      int *which) {
    long best = -1;
    for (int s = 0; s < o->n_stops; s++) {
        size_t sl = o->stops[s] ? strlen(o->stops[s]) : 0;
        if (!sl) continue;
        /* an occurrence cannot start before `from`: its beginning would have been held back */
        const char *hit = memmem(text + from, len - from, o->stops[s], sl);
        if (hit && (best < 0 || hit - text < best)) {
            best = hit - text;
            *which = s;
        }
    }
    return best;
}

/* Handle a new token of one row: record it, extend and cut the text, decide whether the
 * sample ends, and tell the callback. `room` is false when the context cannot take another
 * token under CLLM_GEN_CONTEXT_STOP. */
static cllm_status take_token(cllm_gen *g, const cllm_gen_opts *o, int b, row_state *rs,
                              cllm_gen_sample *s, uint32_t t, float lp, bool room) {
    cllm_status st = push_token(s, rs, t, lp);
    if (st != CLLM_OK) return st;
    size_t before = rs->released;
    cllm_gen_finish fin = CLLM_GEN_RUNNING;
    if (is_stop_token(g, o, t)) {
        fin = CLLM_GEN_FINISH_TOKEN;
    } else if (g->tok) {
        size_t blen = 0;
        const char *bytes = cllm_tokenizer_token_bytes(g->tok, t, &blen);
        if (bytes && (st = push_text(rs, bytes, blen)) != CLLM_OK) return st;
        int which = -1;
        long cut = find_stop(rs->text, rs->released, rs->text_len, o, &which);
        if (cut >= 0) {
            rs->text_len = (size_t)cut;
            rs->text[cut] = '\0';
            s->stop_index = which;
            fin = CLLM_GEN_FINISH_STOP;
        }
    }
    if (fin == CLLM_GEN_RUNNING && s->n_tokens >= o->max_tokens) fin = CLLM_GEN_FINISH_LENGTH;
    if (fin == CLLM_GEN_RUNNING && !room) fin = CLLM_GEN_FINISH_CONTEXT;
    if (fin != CLLM_GEN_RUNNING) {
        rs->released = rs->text_len; /* the sample is over: every byte left is final */
    } else {
        size_t r = cllm_gen_releasable(rs->text, rs->text_len, o->stops, o->n_stops);
        if (r > rs->released) rs->released = r;
    }
    if (o->on_token) {
        cllm_gen_event ev = {.sample = b,
                             .index = s->n_tokens - 1,
                             .token = t,
                             .logprob = lp,
                             .text = rs->text ? rs->text : "",
                             .len = rs->released,
                             .n_new = rs->released - before,
                             .finish = fin};
        if (o->on_token(&ev, o->user) != 0 && fin == CLLM_GEN_RUNNING) {
            fin = CLLM_GEN_FINISH_CALLBACK;
            rs->text_len = rs->released; /* the text is what the callback has seen */
            if (rs->text) rs->text[rs->text_len] = '\0';
        }
    }
    s->finish = fin;
    return CLLM_OK;
}

/* Keep row[0 .. keep) and its last `tail` tokens of L. */
static void slide_row(uint32_t *seq, int L, int keep, int tail) {
    memmove(seq + keep, seq + L - tail, (size_t)tail * sizeof *seq);
}

cllm_status cllm_gen_run(cllm_gen *g, const cllm_gen_opts *o, cllm_gen_result *res) {
    memset(res, 0, sizeof *res);
    cllm_status st = cllm_gen_opts_validate(o);
    if (st != CLLM_OK) return st;
    if (!g->tok && o->n_stops > 0)
        for (int i = 0; i < o->n_stops; i++)
            if (o->stops[i] && o->stops[i][0])
                return cllm_fail(CLLM_ERR_USAGE, "stop strings need a tokenizer");
    const int R = o->num_samples, n_ctx = g->n_ctx, V = g->V;
    const int max_batch = cllm_gpt_get_opts(g->gpt)->max_batch;
    if (R > max_batch)
        return cllm_fail(CLLM_ERR_USAGE,
                         "--num-samples %d: the model was created for batches of at most %d", R,
                         max_batch);
    if (o->n_keep >= n_ctx - 1)
        return cllm_fail(CLLM_ERR_USAGE, "keeping %d tokens leaves no room in a context of %d",
                         o->n_keep, n_ctx);
    if (g->ctx_n == 0) {
        uint32_t eot = g->tok ? cllm_tokenizer_eot(g->tok) : UINT32_MAX;
        if (eot == UINT32_MAX)
            return cllm_fail(CLLM_ERR_USAGE,
                             "an empty prompt needs a tokenizer with <|endoftext|> to start from");
        if ((st = cllm_gen_append(g, &eot, 1)) != CLLM_OK) return st;
    }
    /* A prompt longer than the window: drop its oldest tokens after the kept ones, or refuse. */
    int dropped = 0;
    if (g->ctx_n > n_ctx) {
        if (o->context_full == CLLM_GEN_CONTEXT_STOP)
            return cllm_fail(
                CLLM_ERR_USAGE,
                "the prompt is %d tokens but the context holds %d (with --context-full "
                "slide its first %d tokens would be dropped)",
                g->ctx_n, n_ctx, g->ctx_n - n_ctx);
        int keep = o->n_keep < g->ctx_n ? o->n_keep : 0;
        dropped = g->ctx_n - n_ctx;
        slide_row(g->ctx, g->ctx_n, keep, n_ctx - keep);
        g->ctx_n = n_ctx;
        if (g->cached > keep) g->cached = keep;
    }
    if (g->no_cache || g->cached_rows != R) g->cached = 0;
    if (g->cached > g->ctx_n - 1) g->cached = g->ctx_n - 1; /* the last one is fed for logits */

    row_state *rows = calloc((size_t)R, sizeof *rows);
    uint32_t *batch = malloc((size_t)R * (n_ctx + 1) * sizeof *batch);
    float *logits = malloc((size_t)V * sizeof *logits);
    res->samples = calloc((size_t)R, sizeof *res->samples);
    cllm_sample_scratch sc = {0};
    if (!rows || !batch || !logits || !res->samples) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory (generation)");
        goto fail;
    }
    res->n_samples = R;
    res->context_tokens = g->ctx_n;
    res->prompt_dropped = dropped;
    for (int b = 0; b < R; b++) {
        res->samples[b].stop_index = -1;
        cllm_rng_seed(&rows[b].rng, o->seed + (uint64_t)b);
        rows[b].seq = malloc((size_t)(n_ctx + 1) * sizeof(uint32_t));
        if (!rows[b].seq || (st = push_text(&rows[b], "", 0)) != CLLM_OK) {
            if (st == CLLM_OK) st = cllm_fail(CLLM_ERR_NOMEM, "out of memory (generation)");
            goto fail;
        }
        memcpy(rows[b].seq, g->ctx, (size_t)g->ctx_n * sizeof(uint32_t));
    }
    int L = g->ctx_n, fed = g->cached, active = R, prompt_len = g->ctx_n;
    const int n_keep = o->n_keep < L ? o->n_keep : L; /* at most the whole prompt */
    res->n_keep = n_keep;
    double t0 = cllm_now(), t1 = t0;
    bool first = true;
    while (active > 0) {
        /* Logits at position L-1 of every row: feed what the cache lacks (all of it without a
         * cache), then read the last row of each. Rows that are all the same prompt (the
         * first pass from position 0) are computed once, as row 0, and its cache copied. */
        int from = g->no_cache ? 0 : fed, n = L - from;
        const bool shared = first && R > 1 && from == 0;
        const int rows_fed = shared ? 1 : R;
        for (int b = 0; b < rows_fed; b++)
            memcpy(batch + (size_t)b * n, rows[b].seq + from, (size_t)n * sizeof *batch);
        if (g->no_cache)
            st = cllm_gpt_forward(g->gpt, batch, NULL, rows_fed, n);
        else
            st = cllm_gpt_forward_cached_last(g->gpt, batch, rows_fed, n, from);
        if (st == CLLM_OK && shared && !g->no_cache) st = cllm_gpt_cache_broadcast(g->gpt, R, n);
        if (st != CLLM_OK) goto fail;
        fed = L;
        bool room = L < n_ctx || o->context_full == CLLM_GEN_CONTEXT_SLIDE;
        for (int b = 0; b < R; b++) {
            cllm_gen_sample *s = &res->samples[b];
            row_state *rs = &rows[b];
            if (s->finish != CLLM_GEN_RUNNING) {
                rs->seq[L] = rs->seq[L - 1]; /* keeps the rows in step; never read */
                continue;
            }
            if (!shared || b == 0) CLLM_TRY(cllm_gpt_get_logits(g->gpt, b, n - 1, logits));
            if (first) {
                res->prompt_s = cllm_now() - t0;
                res->prompt_positions = rows_fed * n;
                t1 = cllm_now();
                first = false;
            }
            uint32_t t;
            float lp;
            CLLM_TRY(
                cllm_sample(&o->sampler, logits, V, rs->seq, (size_t)L, &rs->rng, &sc, &t, &lp));
            rs->seq[L] = t;
            CLLM_TRY(take_token(g, o, b, rs, s, t, lp, room));
            res->generated++;
            if (s->finish != CLLM_GEN_RUNNING) active--;
        }
        L++;
        if (active > 0 && L > n_ctx) {
            /* context shift: keep the first n_keep tokens and the newest half of the rest */
            int tail = (n_ctx - n_keep) / 2;
            for (int b = 0; b < R; b++)
                slide_row(rows[b].seq, L, n_keep, tail);
            L = n_keep + tail;
            fed = n_keep < fed ? n_keep : fed;
            res->slides++;
        }
    }
    res->gen_s = cllm_now() - t1;
    for (int b = 0; b < R; b++) {
        res->samples[b].text = rows[b].text;
        res->samples[b].len = rows[b].text_len;
        rows[b].text = NULL;
    }
    /* The cache now mirrors row 0's tokens up to `fed`; with several rows only their common
     * prefix (the prompt, or the kept tokens after a slide) is shared. */
    if (R == 1) {
        CLLM_TRY(ctx_reserve(g, L));
        memcpy(g->ctx, rows[0].seq, (size_t)L * sizeof(uint32_t));
        g->ctx_n = L;
        g->cached = g->no_cache ? 0 : fed;
    } else {
        g->cached = g->no_cache ? 0 : res->slides ? n_keep : prompt_len;
    }
    g->cached_rows = R;
fail:
    for (int b = 0; rows && b < R; b++) {
        free(rows[b].seq);
        free(rows[b].text);
    }
    free(rows);
    free(batch);
    free(logits);
    cllm_sample_scratch_free(&sc);
    if (st != CLLM_OK) {
        cllm_gen_reset(g);
        cllm_gen_result_free(res);
    }
    return st;
}

cllm_status cllm_generate(cllm_gpt *gpt, const cllm_tokenizer *tok, const uint32_t *prompt,
                          int n_prompt, const cllm_gen_opts *o, cllm_gen_result *res) {
    cllm_gen *g = NULL;
    memset(res, 0, sizeof *res);
    cllm_gen_setup setup = {.no_cache = !cllm_gpt_get_opts(gpt)->kv_cache};
    cllm_status st = cllm_gen_init(&g, gpt, tok, &setup);
    if (st == CLLM_OK) st = cllm_gen_append(g, prompt, n_prompt);
    if (st == CLLM_OK) st = cllm_gen_run(g, o, res);
    cllm_gen_free(g);
    return st;
}
