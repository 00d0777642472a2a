/* The model half of `cllm eval` (cllm/eval_model.h): sliding-window perplexity over a token
 * stream, and multiple-choice log-likelihoods with each item's context run once and its
 * choices continued from a shared key/value cache.
 *
 * Shapes: T window, B rows per forward, V vocabulary (the model's, unpadded). */
#include "cllm/eval_model.h"

#include "cllm/generate.h"
#include "cllm/util.h"
#include "data_internal.h"
#include "eval_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------- perplexity */

/* Bytes each id decodes to (special tokens: 0), or -1 for ids the tokenizer does not have. */
static cllm_status byte_lengths(int **out, const cllm_tokenizer *tok, int V) {
    int *len = malloc((size_t)V * sizeof *len);
    if (!len) return cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
    for (int v = 0; v < V; v++) {
        size_t l = 0;
        len[v] = cllm_tokenizer_token_bytes(tok, (uint32_t)v, &l) ? (int)l : -1;
    }
    for (uint32_t i = 0, id; i < cllm_tokenizer_special_count(tok); i++)
        if (cllm_tokenizer_special(tok, i, &id) && id < (uint32_t)V) len[id] = 0;
    *out = len;
    return CLLM_OK;
}

static bool is_special(const cllm_tokenizer *tok, uint32_t id) {
    for (uint32_t i = 0, s; i < cllm_tokenizer_special_count(tok); i++)
        if (cllm_tokenizer_special(tok, i, &s) && s == id) return true;
    return false;
}

/* The stream: an end-of-text in front of tokens[] when `lead`. */
static inline uint32_t stream_at(const uint32_t *tokens, bool lead, uint32_t eot, size_t i) {
    return lead ? (i == 0 ? eot : tokens[i - 1]) : tokens[i];
}

cllm_status cllm_eval_perplexity(cllm_ppl_result *res, cllm_gpt *gpt, const cllm_tokenizer *tok,
                                 const uint32_t *tokens, size_t n, const cllm_ppl_opts *o) {
    memset(res, 0, sizeof *res);
    const cllm_gpt_config *cfg = cllm_gpt_get_config(gpt);
    const int V = cfg->vocab_size;
    const int T = o->T > 0 ? o->T : cfg->n_positions;
    const int S = o->stride > 0 ? o->stride : T;
    const int B = o->batch > 0 ? o->batch : 1;
    if (T > cfg->n_positions || S > T)
        return cllm_fail(CLLM_ERR_USAGE,
                         "perplexity window %d, stride %d: need stride <= window <= the model's "
                         "context (%d)",
                         T, S, cfg->n_positions);
    int *blen = NULL;
    uint32_t *in = NULL, *tg = NULL;
    float *loss = NULL;
    size_t *fp = NULL; /* (B) position from which each window's targets are scored */
    cllm_status st = byte_lengths(&blen, tok, V);
    if (st != CLLM_OK) return st;
    for (size_t i = 0; i < n; i++) {
        if (tokens[i] >= (uint32_t)V) {
            st = cllm_fail(CLLM_ERR_FORMAT,
                           "token %zu is id %u, outside the model's vocabulary (vocab_size %d)", i,
                           tokens[i], V);
            goto fail;
        }
        if (blen[tokens[i]] < 0) {
            st = cllm_fail(CLLM_ERR_FORMAT,
                           "token %zu is id %u, which the model's tokenizer (%u tokens) does not "
                           "have",
                           i, tokens[i], cllm_tokenizer_vocab_size(tok));
            goto fail;
        }
    }
    const uint32_t eot = cllm_tokenizer_eot(tok);
    const bool lead = eot != UINT32_MAX && (n == 0 || tokens[0] != eot);
    const size_t N = n + lead; /* stream length; targets are 1 .. N-1 */
    if (N < 2) {
        st = cllm_fail(CLLM_ERR_FORMAT, "nothing to score: %zu token%s%s", n, n == 1 ? "" : "s",
                       lead ? "" : " (the first is history only)");
        goto fail;
    }
    /* Every window has the same length Tw: T, or the whole stream when it is shorter. */
    const int Tw = (size_t)T < N - 1 ? T : (int)(N - 1);
    in = malloc((size_t)B * Tw * sizeof *in);
    tg = malloc((size_t)B * Tw * sizeof *tg);
    loss = malloc((size_t)B * Tw * sizeof *loss);
    fp = malloc((size_t)B * sizeof *fp);
    if (!in || !tg || !loss || !fp) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of host memory (a batch of %d x %d)", B, Tw);
        goto fail;
    }
    res->T = Tw;
    res->stride = S;
    double t0 = cllm_now();
    size_t prev = 0; /* the last target scored */
    while (prev < N - 1) {
        int rows = 0;
        for (; rows < B && prev < N - 1; rows++) {
            size_t e = prev == 0 ? (size_t)Tw : prev + (size_t)S; /* last target */
            if (e > N - 1) e = N - 1;
            size_t start = e - (size_t)Tw; /* window inputs start .. e-1, targets start+1 .. e */
            for (int p = 0; p < Tw; p++) {
                size_t j = start + (size_t)p + 1; /* the target at position p */
                in[(size_t)rows * Tw + p] = stream_at(tokens, lead, eot, j - 1);
                tg[(size_t)rows * Tw + p] =
                    j > prev ? stream_at(tokens, lead, eot, j) : CLLM_IGNORE_TARGET;
            }
            fp[rows] = prev - start;
            prev = e;
        }
        st = cllm_gpt_forward(gpt, in, tg, rows, Tw);
        if (st == CLLM_OK) st = cllm_gpt_get_token_losses(gpt, loss);
        if (st != CLLM_OK) goto fail;
        for (int r = 0; r < rows; r++)
            for (int p = (int)fp[r]; p < Tw; p++) {
                uint32_t t = tg[(size_t)r * Tw + p];
                res->nats += loss[(size_t)r * Tw + p];
                res->tokens++;
                res->bytes += (uint64_t)blen[t];
                if (blen[t] == 0 && is_special(tok, t)) res->special++;
            }
        res->windows += (uint64_t)rows;
        res->positions += (uint64_t)rows * Tw;
        if (o->progress) o->progress(o->progress_user, prev, N - 1);
    }
    res->seconds = cllm_now() - t0;
    res->loss = res->nats / (double)res->tokens;
    res->perplexity = exp(res->loss);
    res->bits_per_byte = res->bytes ? res->nats / log(2.0) / (double)res->bytes : NAN;
    res->byte_perplexity = res->bytes ? exp(res->nats / (double)res->bytes) : NAN;
    if (!isfinite(res->nats))
        st = cllm_fail(CLLM_ERR_NUMERIC, "perplexity: the model's losses are not finite (%g)",
                       res->nats);
fail:
    free(blen);
    free(in);
    free(tg);
    free(loss);
    free(fp);
    return st;
}

uint64_t cllm_eval_count_words(const char *text, size_t len) {
    uint64_t words = 1;
    bool in_space = false;
    for (size_t i = 0; i < len;) {
        size_t l = ev_space_len(text + i, len - i);
        if (l) {
            if (!in_space) words++;
            in_space = true;
            i += l;
        } else {
            in_space = false;
            i++;
        }
    }
    return words;
}

/* ------------------------------------------------------------------------ multiple choice */

struct cllm_mc_scorer {
    cllm_gpt *gpt;
    const cllm_tokenizer *tok;
    int B, T, V;
    uint32_t eot;
    float *logits;  /* (V) */
    uint32_t *rows; /* (B, T) continuation rows of one cached forward */
    cllm_mc_scorer_stats stats;
};

cllm_status cllm_mc_scorer_init(cllm_mc_scorer **out, cllm_gpt *gpt, const cllm_tokenizer *tok,
                                int batch, int T) {
    *out = NULL;
    const cllm_gpt_config *cfg = cllm_gpt_get_config(gpt);
    if (batch < 1 || T < 0 || T > cfg->n_positions)
        return cllm_fail(CLLM_ERR_USAGE,
                         "multiple-choice scorer: batch %d, window %d (need batch >= 1 and a "
                         "window of at most the model's context, %d)",
                         batch, T, cfg->n_positions);
    const cllm_gpt_opts *go = cllm_gpt_get_opts(gpt);
    if (!go->kv_cache || go->max_batch < batch)
        return cllm_fail(CLLM_ERR_USAGE,
                         "multiple-choice scorer: the model needs a key/value cache and room for "
                         "batch %d (it was created %s a cache, for batch %d)",
                         batch, go->kv_cache ? "with" : "without", go->max_batch);
    cllm_mc_scorer *s = calloc(1, sizeof *s);
    if (!s) return cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
    s->gpt = gpt;
    s->tok = tok;
    s->B = batch;
    s->T = T ? T : cfg->n_positions;
    s->V = cfg->vocab_size;
    s->eot = cllm_tokenizer_eot(tok);
    s->logits = malloc((size_t)s->V * sizeof *s->logits);
    s->rows = malloc((size_t)s->B * s->T * sizeof *s->rows);
    if (!s->logits || !s->rows) {
        cllm_mc_scorer_free(s);
        return cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
    }
    *out = s;
    return CLLM_OK;
}

void cllm_mc_scorer_free(cllm_mc_scorer *s) {
    if (!s) return;
    free(s->logits);
    free(s->rows);
    free(s);
}

void cllm_mc_scorer_stats_get(const cllm_mc_scorer *s, cllm_mc_scorer_stats *out) {
    *out = s->stats;
}

void cllm_mc_scorer_stats_reset(cllm_mc_scorer *s) {
    memset(&s->stats, 0, sizeof s->stats);
}

/* One choice's request: its window (in, n_in) and where its continuation starts. */
typedef struct {
    uint32_t *in; /* (T) window tokens */
    int n_in;
    int plen;       /* prefix = in[0 .. plen): the context part, predicting cont[0] last */
    uint32_t *cont; /* (n_cont) continuation tokens */
    int n_cont;
    int group; /* choices with equal prefixes share a group */
} request;

/* Add the log-probability of `target` under the logits at (row, t) of the last forward. */
static cllm_status add_logprob(cllm_mc_scorer *s, int row, int t, uint32_t target,
                               cllm_mc_choice_score *sc) {
    cllm_status st = cllm_gpt_get_logits(s->gpt, row, t, s->logits);
    if (st != CLLM_OK) return st;
    double lp;
    bool top;
    st = cllm_mc_token_logprob(&lp, &top, s->logits, s->V, target);
    if (st != CLLM_OK) return st;
    sc->loglik += lp;
    sc->greedy = sc->greedy && top;
    return CLLM_OK;
}

/* Order idx[0..n) by continuation length (stable: a handful of choices). */
static void sort_by_len(int *idx, int n, const request *rq) {
    for (int i = 1; i < n; i++) {
        int v = idx[i], j = i;
        for (; j > 0 && rq[idx[j - 1]].n_cont > rq[v].n_cont; j--)
            idx[j] = idx[j - 1];
        idx[j] = v;
    }
}

/* Score the choices `idx` (n of them, one group: the same prefix). */
static cllm_status score_group(cllm_mc_scorer *s, request *rq, int *idx, int n,
                               cllm_mc_choice_score *scores) {
    const request *p = &rq[idx[0]];
    cllm_status st = cllm_gpt_forward_cached(s->gpt, p->in, 1, p->plen, 0);
    if (st != CLLM_OK) return st;
    s->stats.forwards++;
    s->stats.positions += (uint64_t)p->plen;
    for (int k = 0; k < n; k++) {
        scores[idx[k]].greedy = true;
        st = add_logprob(s, 0, p->plen - 1, rq[idx[k]].cont[0], &scores[idx[k]]);
        if (st != CLLM_OK) return st;
    }
    /* The rest of each continuation, shortest first, `B` rows per forward. */
    sort_by_len(idx, n, rq);
    int k0 = 0;
    while (k0 < n && rq[idx[k0]].n_cont == 1)
        k0++;
    for (; k0 < n; k0 += s->B) {
        int rows = n - k0 < s->B ? n - k0 : s->B;
        int len = rq[idx[k0 + rows - 1]].n_cont - 1; /* the longest of this chunk */
        for (int r = 0; r < rows; r++) {
            const request *q = &rq[idx[k0 + r]];
            for (int j = 0; j < len; j++) /* cont[0 .. n_cont-2], then padding */
                s->rows[(size_t)r * len + j] = j < q->n_cont - 1 ? q->cont[j] : q->cont[0];
        }
        st = cllm_gpt_cache_broadcast(s->gpt, rows, p->plen);
        if (st == CLLM_OK) st = cllm_gpt_forward_cached(s->gpt, s->rows, rows, len, p->plen);
        if (st != CLLM_OK) return st;
        s->stats.forwards++;
        s->stats.positions += (uint64_t)rows * len;
        for (int r = 0; r < rows; r++) {
            const request *q = &rq[idx[k0 + r]];
            for (int j = 1; j < q->n_cont; j++) {
                st = add_logprob(s, r, j - 1, q->cont[j], &scores[idx[k0 + r]]);
                if (st != CLLM_OK) return st;
            }
        }
    }
    return CLLM_OK;
}

cllm_status cllm_mc_scorer_loglik(void *user, const cllm_mc_item *item,
                                  cllm_mc_choice_score *scores) {
    cllm_mc_scorer *s = user;
    const int nc = item->n_choices, T = s->T;
    double t0 = cllm_now();
    cllm_tokens ctx = {0}, whole = {0};
    request *rq = calloc((size_t)nc, sizeof *rq);
    int *idx = malloc((size_t)nc * sizeof *idx);
    size_t clen = strlen(item->context);
    char *buf = NULL;
    cllm_status st = CLLM_OK;
    if (!rq || !idx) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
        goto fail;
    }
    if (clen == 0 && s->eot == UINT32_MAX) {
        st = cllm_fail(CLLM_ERR_FORMAT,
                       "item at line %ld has an empty context and the tokenizer has no "
                       "<|endoftext|> to stand for it",
                       item->line);
        goto fail;
    }
    CLLM_TRY(cllm_tokenizer_encode(s->tok, item->context, clen, NULL, &ctx));
    for (int c = 0; c < nc; c++) {
        request *q = &rq[c];
        size_t l = strlen(item->continuations[c]);
        free(buf);
        if (!(buf = malloc(clen + l + 1))) {
            st = cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
            goto fail;
        }
        memcpy(buf, item->context, clen);
        memcpy(buf + clen, item->continuations[c], l);
        whole.n = 0;
        CLLM_TRY(cllm_tokenizer_encode(s->tok, buf, clen + l, NULL, &whole));
        q->n_cont = whole.n > ctx.n ? (int)(whole.n - ctx.n) : 0;
        if (q->n_cont == 0 || q->n_cont > T) {
            st = cllm_fail(CLLM_ERR_FORMAT,
                           "item at line %ld, choice %d: the continuation is %d tokens (%s; the "
                           "window is %d)",
                           item->line, c, q->n_cont,
                           q->n_cont ? "longer than the model's window"
                                     : "it adds no tokens to the context",
                           T);
            goto fail;
        }
        q->in = malloc((size_t)T * sizeof *q->in);
        q->cont = malloc((size_t)q->n_cont * sizeof *q->cont);
        if (!q->in || !q->cont) {
            st = cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
            goto fail;
        }
        memcpy(q->cont, whole.ids + ctx.n, (size_t)q->n_cont * sizeof *q->cont);
        int first;
        CLLM_TRY(cllm_mc_window(q->in, &q->n_in, &first, ctx.ids, (int)ctx.n, q->cont, q->n_cont, T,
                                s->eot));
        q->plen = first + 1;
        if ((size_t)q->plen < (ctx.n ? ctx.n : 1)) s->stats.truncated++;
        /* the group of the first earlier choice with the same prefix */
        q->group = c;
        for (int d = 0; d < c; d++)
            if (rq[d].group == d && rq[d].plen == q->plen &&
                !memcmp(rq[d].in, q->in, (size_t)q->plen * sizeof *q->in)) {
                q->group = d;
                break;
            }
        memset(&scores[c], 0, sizeof scores[c]);
        scores[c].n_tokens = q->n_cont;
        s->stats.tokens += (uint64_t)q->n_cont;
    }
    for (int g = 0; g < nc; g++) {
        if (rq[g].group != g) continue;
        int n = 0;
        for (int c = g; c < nc; c++)
            if (rq[c].group == g) idx[n++] = c;
        CLLM_TRY(score_group(s, rq, idx, n, scores));
    }
    s->stats.items++;
    s->stats.choices += (uint64_t)nc;
fail:
    s->stats.seconds += cllm_now() - t0;
    for (int c = 0; rq && c < nc; c++) {
        free(rq[c].in);
        free(rq[c].cont);
    }
    free(rq);
    free(idx);
    free(buf);
    cllm_tokens_free(&ctx);
    cllm_tokens_free(&whole);
    return st;
}

/* ----------------------------------------------------------------------------- generation */

/* text[0..len) with invalid UTF-8 replaced as Python's errors="replace" does. */
static char *utf8_replace(const char *text, size_t len) {
    ev_buf b = {0};
    const unsigned char *p = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int k = cllm_utf8_decode(p + i, len - i, &cp);
        if (k > 0) {
            ev_buf_add(&b, text + i, (size_t)k);
            i += (size_t)k;
        } else {
            ev_buf_adds(&b, "\xef\xbf\xbd");
            i += (size_t)-k;
        }
    }
    return ev_buf_take(&b);
}

void cllm_eval_gen_outputs_free(char **outputs, int n) {
    for (int i = 0; outputs && i < n; i++)
        free(outputs[i]);
    free(outputs);
}

cllm_status cllm_eval_generate(char ***outputs, cllm_eval_gen_stats *stats, cllm_gpt *gpt,
                               const cllm_tokenizer *tok, const cllm_gen_set *set,
                               const cllm_eval_gen_opts *o) {
    *outputs = NULL;
    memset(stats, 0, sizeof *stats);
    const int T = cllm_gpt_get_opts(gpt)->max_seq;
    if (o->max_tokens < 1 || o->max_tokens >= T)
        return cllm_fail(CLLM_ERR_USAGE,
                         "--max-tokens %d: a continuation must leave room for the prompt in the "
                         "model's window of %d tokens (1 .. %d)",
                         o->max_tokens, T, T - 1);
    char **out = calloc((size_t)(set->n ? set->n : 1), sizeof *out);
    if (!out) return cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
    cllm_gen_opts go = cllm_gen_opts_default();
    go.max_tokens = o->max_tokens;
    go.sampler.greedy = true;
    go.stops = o->stops;
    go.n_stops = o->n_stops;
    go.context_full = CLLM_GEN_CONTEXT_STOP; /* never reached: the prompt was cut to fit */
    cllm_tokens ids = {0};
    cllm_gen_result r = {0};
    cllm_status st = CLLM_OK;
    double t0 = cllm_now();
    const int keep = T - o->max_tokens;
    for (int i = 0; i < set->n; i++) {
        const char *prompt = set->items[i].prompt;
        ids.n = 0;
        CLLM_TRY(cllm_tokenizer_encode(tok, prompt, strlen(prompt), NULL, &ids));
        int n = (int)ids.n, skip = n > keep ? n - keep : 0;
        stats->truncated += skip > 0;
        stats->prompt_tokens += (uint64_t)(n - skip);
        st = cllm_generate(gpt, tok, ids.ids + skip, n - skip, &go, &r);
        if (st != CLLM_OK) {
            cllm_fail_context(st, "generating for line %ld", set->items[i].line);
            goto fail;
        }
        const cllm_gen_sample *smp = &r.samples[0];
        stats->tokens += (uint64_t)smp->n_tokens;
        stats->stopped +=
            smp->finish == CLLM_GEN_FINISH_STOP || smp->finish == CLLM_GEN_FINISH_TOKEN;
        if (!(out[i] = utf8_replace(smp->text, smp->len))) {
            st = CLLM_ERR_NOMEM;
            goto fail;
        }
        cllm_gen_result_free(&r);
        stats->items++;
        if (o->progress) o->progress(o->progress_user, (uint64_t)i + 1, (uint64_t)set->n);
    }
    stats->seconds = cllm_now() - t0;
    *outputs = out;
    out = NULL;
fail:
    cllm_gen_result_free(&r);
    cllm_tokens_free(&ids);
    cllm_eval_gen_outputs_free(out, set->n);
    return st;
}
