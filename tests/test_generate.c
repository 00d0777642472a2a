/* Generation (cllm/generate.h) on a tiny random model with a tiny trained tokenizer:
 * greedy through the cache gives exactly the tokens of greedy by full recomputation (an
 * independent loop here, window slides included); stop strings cut exactly and streaming
 * never releases bytes past them or inside a UTF-8 sequence; seeds; batched samples; the
 * context-full policies; a conversation kept in the cache feeds only its new tokens; and
 * the empirical distribution of many samples matches the model's softmax. */
#include "testutil.h"

#include "cllm/generate.h"
#include "cllm/util.h"

#include <stdlib.h>
#include <string.h>

#define NCTX 40
#define ROWS 64

static cllm_tokenizer *tiny_tokenizer(void) {
    return test_tokenizer(
        "the cat sat on the mat; the cat ate the rat. the mat sat flat. a café, a naïve "
        "cat, 3 € for the rat, the end. the cat sat on the café mat and ate the naïve rat.",
        300);
}

static cllm_gpt *tiny_model(cllm_runtime *rt, int V, int max_batch, bool kv_cache) {
    cllm_gpt_config cfg = {.vocab_size = V,
                           .n_positions = NCTX,
                           .n_embd = 32,
                           .n_layer = 2,
                           .n_head = 4,
                           .layer_norm_epsilon = 1e-5f,
                           .initializer_range = 0.02f};
    cllm_gpt_opts o = {.max_batch = max_batch, .max_seq = NCTX, .kv_cache = kv_cache};
    cllm_gpt *m = NULL;
    CHECK_OK(cllm_gpt_init(&m, rt, &cfg, &o));
    if (!m) exit(1);
    cllm_gpt_layout lay;
    cllm_gpt_layout_compute(&cfg, &lay);
    float *p = malloc(lay.total * sizeof *p);
    test_rng r = {11};
    test_fill_normal(&r, p, lay.total, 0.35f);
    memset(p + (size_t)V * cfg.n_embd, 0,
           (size_t)(cllm_gpt_padded_vocab(&cfg) - V) * cfg.n_embd * sizeof *p);
    CHECK_OK(cllm_gpt_set_params(m, p));
    free(p);
    return m;
}

static uint32_t argmax(const float *x, int n) {
    uint32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = (uint32_t)i;
    return best;
}

/* Greedy decoding by full recomputation, written apart from generate.c: each step runs the
 * plain forward over the whole window. The window rules are the documented ones: a prompt
 * longer than n_ctx keeps its first n_keep and last n_ctx - n_keep tokens; when a new token
 * overflows the window, the first n_keep and the last (n_ctx - n_keep) / 2 remain. */
static int ref_greedy(cllm_gpt *m, const uint32_t *prompt, int n, int steps, int n_keep,
                      uint32_t *out) {
    const int V = cllm_gpt_get_config(m)->vocab_size;
    uint32_t seq[NCTX + 1 + 64];
    float logits[512];
    int L = n;
    if (n > NCTX) {
        memcpy(seq, prompt, (size_t)n_keep * sizeof *seq);
        memcpy(seq + n_keep, prompt + n - (NCTX - n_keep), (size_t)(NCTX - n_keep) * sizeof *seq);
        L = NCTX;
    } else {
        memcpy(seq, prompt, (size_t)n * sizeof *seq);
    }
    for (int s = 0; s < steps; s++) {
        if (L > NCTX) {
            int tail = (NCTX - n_keep) / 2;
            memmove(seq + n_keep, seq + L - tail, (size_t)tail * sizeof *seq);
            L = n_keep + tail;
        }
        if (cllm_gpt_forward(m, seq, NULL, 1, L) != CLLM_OK ||
            cllm_gpt_get_logits(m, 0, L - 1, logits) != CLLM_OK)
            return -1;
        out[s] = argmax(logits, V);
        seq[L++] = out[s];
    }
    return steps;
}

static void make_prompt(uint32_t *p, int n, int V, uint64_t seed) {
    test_rng r = {seed};
    for (int i = 0; i < n; i++)
        p[i] = (uint32_t)(test_rng_u64(&r) % (uint64_t)V);
}

static bool same_tokens(const uint32_t *a, const uint32_t *b, int n) {
    return memcmp(a, b, (size_t)n * sizeof *a) == 0;
}

/* ---------------------------------------------------------------- greedy: cache vs none */

static void test_greedy_matches_recomputation(cllm_gpt *m, const cllm_tokenizer *tok) {
    const int V = cllm_gpt_get_config(m)->vocab_size;
    static const struct {
        int n_prompt, steps, n_keep;
    } cases[] = {{1, 20, 0}, {5, 30, 0}, {17, 60, 0}, {50, 25, 0}, {12, 50, 4}, {39, 3, 0}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        uint32_t prompt[64], ref[64];
        make_prompt(prompt, cases[c].n_prompt, V, 100 + c);
        CHECK(ref_greedy(m, prompt, cases[c].n_prompt, cases[c].steps, cases[c].n_keep, ref) ==
              cases[c].steps);
        for (int no_cache = 0; no_cache <= 1; no_cache++) {
            cllm_gen *g = NULL;
            cllm_gen_setup su = {.no_cache = no_cache};
            CHECK_OK(cllm_gen_init(&g, m, tok, &su));
            cllm_gen_opts o = cllm_gen_opts_default();
            o.sampler.greedy = true;
            o.max_tokens = cases[c].steps;
            o.n_keep = cases[c].n_keep;
            o.ignore_eot = true;
            cllm_gen_result r = {0};
            CHECK_OK(cllm_gen_append(g, prompt, cases[c].n_prompt));
            CHECK_OK(cllm_gen_run(g, &o, &r));
            CHECK_MSG(r.n_samples == 1 && r.samples[0].n_tokens == cases[c].steps &&
                          same_tokens(r.samples[0].tokens, ref, cases[c].steps),
                      "case %zu, %s: the greedy tokens differ from full recomputation", c,
                      no_cache ? "no cache" : "cache");
            CHECK(r.samples[0].finish == CLLM_GEN_FINISH_LENGTH);
            int total = (cases[c].n_prompt > NCTX ? NCTX : cases[c].n_prompt) + cases[c].steps;
            CHECK_MSG((r.slides > 0) == (total > NCTX + 1), "case %zu: %d slides", c, r.slides);
            CHECK(r.prompt_dropped == (cases[c].n_prompt > NCTX ? cases[c].n_prompt - NCTX : 0));
            CHECK(r.generated == cases[c].steps && r.prompt_s >= 0 && r.gen_s >= 0);
            cllm_gen_result_free(&r);
            cllm_gen_free(g);
        }
    }
}

/* ---------------------------------------------------------------- stop strings, streaming */

typedef struct {
    char buf[4096];
    size_t n;
    const char *must_prefix; /* every release must be a prefix of this text (may be NULL) */
    size_t must_len;
    const char *never; /* released text must never contain this (may be NULL) */
    int events, bad, held_utf8;
    const cllm_tokenizer *tok;
    char full[8192]; /* every token's bytes so far (for the UTF-8 hold check) */
    size_t full_n;
    int stop_at_index; /* the callback ends the sample at this index (-1: never) */
} stream_check;

/* Does the cut at n of s[0 .. full_n) split a UTF-8 sequence that is well-formed as far as
 * the bytes go (the Unicode table: C2..DF 1 more; E0 A0..BF, E1..EC 80..BF, ED 80..9F,
 * EE..EF 80..BF then 1 more; F0 90..BF, F1..F3 80..BF, F4 80..8F then 2 more)? */
static bool cut_splits_utf8(const char *s, size_t full_n, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t k = 1; k <= 3 && k <= n; k++) {
        const unsigned char *p = u + n - k;
        if ((p[0] & 0xC0) == 0x80) continue;
        size_t need = p[0] >= 0xF0 ? 4 : p[0] >= 0xE0 ? 3 : 2;
        if (p[0] < 0xC2 || p[0] > 0xF4 || need <= k) return false;
        size_t have = full_n - (n - k) < need ? full_n - (n - k) : need;
        for (size_t j = 1; j < have; j++) {
            unsigned lo = 0x80, hi = 0xBF;
            if (j == 1 && p[0] == 0xE0) lo = 0xA0;
            if (j == 1 && p[0] == 0xF0) lo = 0x90;
            if (j == 1 && p[0] == 0xED) hi = 0x9F;
            if (j == 1 && p[0] == 0xF4) hi = 0x8F;
            if (p[j] < lo || p[j] > hi) return false;
        }
        return true;
    }
    return false;
}

static int on_token(const cllm_gen_event *ev, void *user) {
    stream_check *sc = user;
    sc->events++;
    if (ev->n_new > ev->len || sc->n + ev->n_new > sizeof sc->buf) {
        sc->bad++;
        return 1;
    }
    memcpy(sc->buf + sc->n, ev->text + ev->len - ev->n_new, ev->n_new);
    sc->n += ev->n_new;
    if (sc->n != ev->len || memcmp(sc->buf, ev->text, sc->n) != 0) sc->bad++;
    if (sc->must_prefix && (sc->n > sc->must_len || memcmp(sc->buf, sc->must_prefix, sc->n)))
        sc->bad++;
    if (sc->never && memmem(sc->buf, sc->n, sc->never, strlen(sc->never))) sc->bad++;
    size_t bl = 0;
    const char *b = cllm_tokenizer_token_bytes(sc->tok, ev->token, &bl);
    if (b && sc->full_n + bl < sizeof sc->full) {
        memcpy(sc->full + sc->full_n, b, bl);
        sc->full_n += bl;
    }
    if (ev->finish == CLLM_GEN_RUNNING) {
        if (!sc->never && cut_splits_utf8(sc->full, sc->full_n, sc->n)) sc->bad++;
        if (!sc->never && sc->n < sc->full_n) sc->held_utf8++;
    }
    return ev->index == sc->stop_at_index;
}

static void test_releasable(void) {
    const char *stops[] = {"<|im", "END"};
    static const struct {
        const char *text;
        size_t want;
    } cases[] = {
        {"hello", 5},       {"hello <", 6},  {"hello <|", 6},      {"hello <|i", 6},
        {"hello <|im", 10}, /* a whole stop string is found, not held */
        {"hello E", 6},     {"hello EN", 6}, {"ENDx", 4},          {"caf\xc3", 3},
        {"caf\xc3\xa9", 5}, {"\xe2\x82", 0}, {"a\xe2\x82\xac", 4}, {"a\xf0\x9f\x98", 1},
        {"a\x80", 2},       {"a\xff", 2},    {"a\xc3(", 3},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        size_t got = cllm_gen_releasable(cases[c].text, strlen(cases[c].text), stops, 2);
        CHECK_MSG(got == cases[c].want, "releasable('%s') = %zu, want %zu", cases[c].text, got,
                  cases[c].want);
    }
}

static void test_stop_strings(cllm_gpt *m, const cllm_tokenizer *tok) {
    const int V = cllm_gpt_get_config(m)->vocab_size;
    uint32_t prompt[6];
    make_prompt(prompt, 6, V, 7);
    cllm_gen_opts o = cllm_gen_opts_default();
    o.max_tokens = 30;
    o.seed = 42;
    o.ignore_eot = true;
    cllm_gen_result full = {0};
    CHECK_OK(cllm_generate(m, tok, prompt, 6, &o, &full));
    if (full.n_samples != 1) return;
    const cllm_gen_sample *f = &full.samples[0];
    /* token byte offsets */
    size_t off[64] = {0};
    for (int i = 0; i < f->n_tokens; i++) {
        size_t bl = 0;
        cllm_tokenizer_token_bytes(tok, f->tokens[i], &bl);
        off[i + 1] = off[i] + bl;
    }
    CHECK(off[f->n_tokens] == f->len);
    /* a stop string that begins inside a multi-byte token and ends in a later one */
    int done = 0;
    for (int i = 2; i + 2 < f->n_tokens && done < 3; i++) {
        if (off[i + 1] - off[i] < 2) continue;
        size_t start = off[i] + 1, end = off[i + 1] + 1 + (done == 2 ? off[i + 2] - off[i + 1] : 0);
        char stop[64];
        if (end - start >= sizeof stop) continue;
        memcpy(stop, f->text + start, end - start);
        stop[end - start] = '\0';
        if (strlen(stop) != end - start) continue; /* a NUL byte inside */
        const char *first = memmem(f->text, f->len, stop, end - start);
        size_t cut = (size_t)(first - f->text);
        int last_tok = 0; /* the token whose bytes complete the first occurrence */
        while (off[last_tok + 1] < cut + (end - start))
            last_tok++;
        const char *stops[] = {"\x01never", stop};
        cllm_gen_opts os = o;
        os.stops = stops;
        os.n_stops = 2;
        stream_check sc = {.must_prefix = f->text,
                           .must_len = cut,
                           .never = stop,
                           .tok = tok,
                           .stop_at_index = -1};
        os.on_token = on_token;
        os.user = &sc;
        cllm_gen_result r = {0};
        CHECK_OK(cllm_generate(m, tok, prompt, 6, &os, &r));
        if (r.n_samples == 1) {
            const cllm_gen_sample *s = &r.samples[0];
            CHECK_MSG(s->len == cut && memcmp(s->text, f->text, cut) == 0 && s->text[cut] == 0,
                      "stop '%s': text of %zu bytes, want the first %zu", stop, s->len, cut);
            CHECK(s->finish == CLLM_GEN_FINISH_STOP && s->stop_index == 1);
            CHECK_MSG(s->n_tokens == last_tok + 1 && same_tokens(s->tokens, f->tokens, s->n_tokens),
                      "stop '%s': %d tokens, want %d", stop, s->n_tokens, last_tok + 1);
            CHECK(sc.bad == 0 && sc.n == cut && sc.events == s->n_tokens);
        }
        cllm_gen_result_free(&r);
        done++;
    }
    CHECK_MSG(done == 3, "only %d stop strings could be placed across tokens", done);
    /* a stop string that occurs nowhere changes nothing */
    const char *nowhere[] = {"\x01\x02\x03"};
    cllm_gen_opts on = o;
    on.stops = nowhere;
    on.n_stops = 1;
    cllm_gen_result r = {0};
    CHECK_OK(cllm_generate(m, tok, prompt, 6, &on, &r));
    CHECK(r.n_samples == 1 && r.samples[0].len == f->len &&
          !memcmp(r.samples[0].text, f->text, f->len));
    CHECK(r.n_samples == 1 && r.samples[0].finish == CLLM_GEN_FINISH_LENGTH);
    cllm_gen_result_free(&r);

    /* a stop token: the sample ends at its first occurrence; its bytes are not text */
    uint32_t st_tok = f->tokens[4];
    int first = 0;
    while (f->tokens[first] != st_tok)
        first++;
    cllm_gen_opts ot = o;
    ot.stop_tokens = &st_tok;
    ot.n_stop_tokens = 1;
    CHECK_OK(cllm_generate(m, tok, prompt, 6, &ot, &r));
    CHECK(r.n_samples == 1 && r.samples[0].n_tokens == first + 1 &&
          r.samples[0].finish == CLLM_GEN_FINISH_TOKEN && r.samples[0].len == off[first] &&
          !memcmp(r.samples[0].text, f->text, off[first]));
    cllm_gen_result_free(&r);

    /* the callback ends a sample; the text is what it was given */
    stream_check sc = {.tok = tok, .stop_at_index = 4};
    cllm_gen_opts oc = o;
    oc.on_token = on_token;
    oc.user = &sc;
    CHECK_OK(cllm_generate(m, tok, prompt, 6, &oc, &r));
    CHECK(r.n_samples == 1 && r.samples[0].n_tokens == 5 &&
          r.samples[0].finish == CLLM_GEN_FINISH_CALLBACK && r.samples[0].len == sc.n &&
          !memcmp(r.samples[0].text, sc.buf, sc.n) && sc.bad == 0);
    cllm_gen_result_free(&r);

    /* hot sampling draws single bytes of multi-byte characters: streaming holds them back
     * until complete, and the streamed bytes are exactly the final text */
    memset(&sc, 0, sizeof sc);
    sc.tok = tok;
    sc.stop_at_index = -1;
    cllm_gen_opts oh = o;
    oh.sampler.temperature = 4.0f;
    oh.max_tokens = 200;
    oh.on_token = on_token;
    oh.user = &sc;
    CHECK_OK(cllm_generate(m, tok, prompt, 6, &oh, &r));
    CHECK_MSG(r.n_samples == 1 && sc.bad == 0 && sc.n == r.samples[0].len &&
                  !memcmp(sc.buf, r.samples[0].text, sc.n),
              "%d bad releases, streamed %zu bytes, text %zu", sc.bad, sc.n,
              r.n_samples ? r.samples[0].len : 0);
    CHECK_MSG(sc.held_utf8 > 0, "no incomplete UTF-8 sequence was ever held back (%d events)",
              sc.events);
    cllm_gen_result_free(&r);
    cllm_gen_result_free(&full);
}

/* ---------------------------------------------------------------- seeds, batches, policies */

static void test_seeds_and_batches(cllm_gpt *m, const cllm_tokenizer *tok) {
    const int V = cllm_gpt_get_config(m)->vocab_size;
    uint32_t prompt[8];
    make_prompt(prompt, 8, V, 3);
    cllm_gen_opts o = cllm_gen_opts_default();
    o.max_tokens = 24;
    o.ignore_eot = true;
    o.sampler.top_k = 40;
    o.sampler.top_p = 0.9f;
    cllm_gen_result a = {0}, b = {0}, c = {0};
    o.seed = 9;
    CHECK_OK(cllm_generate(m, tok, prompt, 8, &o, &a));
    CHECK_OK(cllm_generate(m, tok, prompt, 8, &o, &b));
    CHECK(a.n_samples == 1 && b.n_samples == 1 && a.samples[0].n_tokens == 24 &&
          same_tokens(a.samples[0].tokens, b.samples[0].tokens, 24) &&
          a.samples[0].len == b.samples[0].len &&
          !memcmp(a.samples[0].text, b.samples[0].text, a.samples[0].len));
    o.seed = 10;
    CHECK_OK(cllm_generate(m, tok, prompt, 8, &o, &c));
    CHECK(c.n_samples == 1 && !same_tokens(a.samples[0].tokens, c.samples[0].tokens, 24));
    /* three rows together: row k is what seed 9 + k gives alone */
    cllm_gen_result batch = {0};
    o.seed = 9;
    o.num_samples = 3;
    CHECK_OK(cllm_generate(m, tok, prompt, 8, &o, &batch));
    CHECK(batch.n_samples == 3 && batch.generated == 72);
    if (batch.n_samples == 3) {
        CHECK(same_tokens(batch.samples[0].tokens, a.samples[0].tokens, 24));
        CHECK(same_tokens(batch.samples[1].tokens, c.samples[0].tokens, 24));
        CHECK(!same_tokens(batch.samples[1].tokens, batch.samples[2].tokens, 24));
    }
    cllm_gen_result_free(&a);
    cllm_gen_result_free(&b);
    cllm_gen_result_free(&c);
    cllm_gen_result_free(&batch);

    /* greedy and temperature 0 agree, whatever the seed and filters; so do batched rows */
    uint32_t ref[30];
    CHECK(ref_greedy(m, prompt, 8, 30, 0, ref) == 30);
    cllm_gen_opts g = cllm_gen_opts_default();
    g.max_tokens = 30;
    g.ignore_eot = true;
    g.sampler.temperature = 0;
    g.sampler.top_k = 3;
    g.seed = 1;
    g.num_samples = 4;
    CHECK_OK(cllm_generate(m, tok, prompt, 8, &g, &a));
    for (int k = 0; k < a.n_samples; k++)
        CHECK(same_tokens(a.samples[k].tokens, ref, 30));
    cllm_gen_result_free(&a);
    g = cllm_gen_opts_default();
    g.max_tokens = 30;
    g.ignore_eot = true;
    g.sampler.greedy = true;
    g.seed = 77;
    CHECK_OK(cllm_generate(m, tok, prompt, 8, &g, &a));
    CHECK(a.n_samples == 1 && same_tokens(a.samples[0].tokens, ref, 30));
    cllm_gen_result_free(&a);

    /* rows end at different times: each gets exactly its own tokens */
    const char *stops[] = {"t"};
    o = cllm_gen_opts_default();
    o.max_tokens = 24;
    o.ignore_eot = true;
    o.seed = 21;
    o.stops = stops;
    o.n_stops = 1;
    o.num_samples = 3;
    CHECK_OK(cllm_generate(m, tok, prompt, 8, &o, &batch));
    for (int k = 0; k < batch.n_samples; k++) {
        o.num_samples = 1;
        o.seed = 21 + (uint64_t)k;
        CHECK_OK(cllm_generate(m, tok, prompt, 8, &o, &a));
        CHECK_MSG(
            a.n_samples == 1 && a.samples[0].n_tokens == batch.samples[k].n_tokens &&
                same_tokens(a.samples[0].tokens, batch.samples[k].tokens, a.samples[0].n_tokens) &&
                a.samples[0].finish == batch.samples[k].finish,
            "batched row %d differs from its seed alone", k);
        cllm_gen_result_free(&a);
    }
    cllm_gen_result_free(&batch);

    /* bad options are usage errors naming the flag */
    o = cllm_gen_opts_default();
    o.max_tokens = 0;
    CHECK(cllm_generate(m, tok, prompt, 8, &o, &a) == CLLM_ERR_USAGE &&
          strstr(cllm_last_error(), "--max-tokens"));
    o = cllm_gen_opts_default();
    o.sampler.top_p = 1.5f;
    CHECK(cllm_generate(m, tok, prompt, 8, &o, &a) == CLLM_ERR_USAGE &&
          strstr(cllm_last_error(), "--top-p"));
    o = cllm_gen_opts_default();
    o.num_samples = ROWS + 1;
    CHECK(cllm_generate(m, tok, prompt, 8, &o, &a) == CLLM_ERR_USAGE &&
          strstr(cllm_last_error(), "--num-samples"));
    uint32_t bad = (uint32_t)V;
    CHECK(cllm_generate(m, tok, &bad, 1, &g, &a) == CLLM_ERR_USAGE);
}

static void test_context_policies(cllm_gpt *m, const cllm_tokenizer *tok) {
    const int V = cllm_gpt_get_config(m)->vocab_size;
    uint32_t prompt[60];
    make_prompt(prompt, 60, V, 5);
    cllm_gen_opts o = cllm_gen_opts_default();
    o.sampler.greedy = true;
    o.ignore_eot = true;
    o.max_tokens = 100;
    o.context_full = CLLM_GEN_CONTEXT_STOP;
    cllm_gen_result r = {0};
    /* STOP: a token can be sampled while the context holds at most n_ctx tokens */
    CHECK_OK(cllm_generate(m, tok, prompt, 30, &o, &r));
    CHECK(r.n_samples == 1 && r.samples[0].n_tokens == NCTX - 30 + 1 &&
          r.samples[0].finish == CLLM_GEN_FINISH_CONTEXT && r.slides == 0);
    cllm_gen_result_free(&r);
    CHECK_OK(cllm_generate(m, tok, prompt, NCTX, &o, &r));
    CHECK(r.n_samples == 1 && r.samples[0].n_tokens == 1);
    cllm_gen_result_free(&r);
    /* STOP: a prompt longer than the context is refused, saying what slide would do */
    CHECK(cllm_generate(m, tok, prompt, 60, &o, &r) == CLLM_ERR_USAGE &&
          strstr(cllm_last_error(), "60 tokens") && strstr(cllm_last_error(), "holds 40"));
    CHECK(r.n_samples == 0);
    /* SLIDE: the prompt's first tokens are dropped (the greedy test checks the tokens) */
    o.context_full = CLLM_GEN_CONTEXT_SLIDE;
    o.max_tokens = 5;
    CHECK_OK(cllm_generate(m, tok, prompt, 60, &o, &r));
    CHECK(r.prompt_dropped == 20 && r.context_tokens == NCTX && r.samples[0].n_tokens == 5);
    cllm_gen_result_free(&r);
    /* n_keep must leave room */
    o.n_keep = NCTX - 1;
    CHECK(cllm_generate(m, tok, prompt, 10, &o, &r) == CLLM_ERR_USAGE);
    /* an empty prompt starts from <|endoftext|> */
    o = cllm_gen_opts_default();
    o.sampler.greedy = true;
    o.ignore_eot = true;
    o.max_tokens = 6;
    uint32_t eot = cllm_tokenizer_eot(tok), ref[6];
    CHECK(ref_greedy(m, &eot, 1, 6, 0, ref) == 6);
    CHECK_OK(cllm_generate(m, tok, NULL, 0, &o, &r));
    CHECK(r.n_samples == 1 && same_tokens(r.samples[0].tokens, ref, 6) && r.context_tokens == 1);
    cllm_gen_result_free(&r);
}

/* A conversation kept in the cache: each run feeds only the new tokens (and the last token
 * sampled, not yet fed), and gives the tokens of greedy over the whole context. */
static void test_session(cllm_gpt *m, const cllm_tokenizer *tok) {
    const int V = cllm_gpt_get_config(m)->vocab_size;
    uint32_t a[7], b[4], all[64], ref[8];
    make_prompt(a, 7, V, 31);
    make_prompt(b, 4, V, 32);
    cllm_gen *g = NULL;
    CHECK_OK(cllm_gen_init(&g, m, tok, NULL));
    if (!g) return;
    cllm_gen_opts o = cllm_gen_opts_default();
    o.sampler.greedy = true;
    o.ignore_eot = true;
    o.max_tokens = 5;
    cllm_gen_result r = {0};
    CHECK_OK(cllm_gen_append(g, a, 7));
    CHECK_OK(cllm_gen_run(g, &o, &r));
    CHECK(r.prompt_positions == 7);
    CHECK(ref_greedy(m, a, 7, 5, 0, ref) == 5 && same_tokens(r.samples[0].tokens, ref, 5));
    cllm_gen_result_free(&r);
    int n;
    const uint32_t *ctx = cllm_gen_context(g, &n);
    CHECK(n == 12 && cllm_gen_cached(g) == 11);
    memcpy(all, ctx, 12 * sizeof *all);
    memcpy(all + 12, b, sizeof b);
    CHECK_OK(cllm_gen_append(g, b, 4));
    o.max_tokens = 8;
    CHECK_OK(cllm_gen_run(g, &o, &r));
    CHECK_MSG(r.prompt_positions == 5, "the second turn fed %d positions, want 5",
              r.prompt_positions);
    CHECK(ref_greedy(m, all, 16, 8, 0, ref) == 8 && same_tokens(r.samples[0].tokens, ref, 8));
    cllm_gen_result_free(&r);
    /* a changed context keeps the cache up to the first difference */
    ctx = cllm_gen_context(g, &n);
    CHECK(n == 24);
    memcpy(all, ctx, (size_t)n * sizeof *all);
    all[9] = (all[9] + 1) % (uint32_t)V;
    CHECK_OK(cllm_gen_set_context(g, all, 20));
    CHECK(cllm_gen_cached(g) == 9);
    o.max_tokens = 3;
    CHECK_OK(cllm_gen_run(g, &o, &r));
    CHECK(r.prompt_positions == 11);
    CHECK(ref_greedy(m, all, 20, 3, 0, ref) == 3 && same_tokens(r.samples[0].tokens, ref, 3));
    cllm_gen_result_free(&r);
    /* several samples leave the context as it was */
    o.num_samples = 2;
    ctx = cllm_gen_context(g, &n);
    int before = n;
    CHECK_OK(cllm_gen_run(g, &o, &r));
    cllm_gen_context(g, &n);
    CHECK(n == before && r.n_samples == 2);
    cllm_gen_result_free(&r);
    cllm_gen_reset(g);
    CHECK(cllm_gen_cached(g) == 0 && (cllm_gen_context(g, &n), n == 0));
    cllm_gen_free(g);
}

/* ---------------------------------------------------------------- the empirical distribution */

/* Upper 0.999 quantile of chi-square with df degrees of freedom (Wilson-Hilferty, within
 * 1% of the exact value for df >= 10). */
static double chi2_q999(int df) {
    double z = 3.0902, h = 2.0 / (9.0 * df), c = 1 - h + z * sqrt(h);
    return df * c * c * c;
}

/* Pearson's chi-square of counts against probabilities, bins of expected count < 5 pooled. */
static double chi_square(const long *count, const double *p, int V, long N, int *df) {
    double chi2 = 0, pool_e = 0;
    long pool_c = 0;
    int bins = 0;
    for (int i = 0; i < V; i++) {
        double e = N * p[i];
        if (e < 5) {
            pool_e += e;
            pool_c += count[i];
            continue;
        }
        chi2 += (count[i] - e) * (count[i] - e) / e;
        bins++;
    }
    if (pool_e > 0) {
        chi2 += (pool_c - pool_e) * (pool_c - pool_e) / pool_e;
        bins++;
    }
    *df = bins - 1;
    return chi2;
}

static int by_desc(const void *a, const void *b) {
    double x = **(const double *const *)a, y = **(const double *const *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Draw ROWS x RUNS first tokens after a fixed prompt through the generator (batched rows,
 * a fresh seed per run, the prompt kept in the cache) and compare their frequencies with the
 * distribution computed here in double precision from the model's logits: the softmax at
 * temperature T restricted to the top_k most likely tokens. A correct sampler exceeds the
 * 0.999 quantile with probability 0.001 (for a random seed; the seed is fixed, so the test is
 * deterministic); the check that the same counts are far outside the T = 1 distribution shows
 * the test can tell the difference. */
static void test_empirical(cllm_gpt *m, const cllm_tokenizer *tok, cllm_gpt *single) {
    const int V = cllm_gpt_get_config(m)->vocab_size, RUNS = 200;
    const long N = (long)ROWS * RUNS;
    uint32_t prompt[9];
    make_prompt(prompt, 9, V, 77);
    float logits[512];
    CHECK_OK(cllm_gpt_forward(single, prompt, NULL, 1, 9));
    CHECK_OK(cllm_gpt_get_logits(single, 0, 8, logits));
    static const struct {
        float temperature;
        int top_k;
    } cases[] = {{1.0f, 0}, {0.6f, 50}};
    double p1[512] = {0};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        const double T = cases[c].temperature;
        double p[512] = {0}, mx = -1e30, z = 0;
        for (int i = 0; i < V; i++)
            mx = logits[i] / T > mx ? logits[i] / T : mx;
        for (int i = 0; i < V; i++)
            z += exp(logits[i] / T - mx);
        for (int i = 0; i < V; i++)
            p[i] = exp(logits[i] / T - mx) / z;
        if (cases[c].top_k) {
            const double *order[512];
            for (int i = 0; i < V; i++)
                order[i] = &p[i];
            qsort(order, (size_t)V, sizeof *order, by_desc);
            double kept = 0;
            for (int i = 0; i < cases[c].top_k; i++)
                kept += *order[i];
            double thresh = *order[cases[c].top_k - 1];
            for (int i = 0; i < V; i++)
                p[i] = p[i] >= thresh ? p[i] / kept : 0;
        }
        if (c == 0) memcpy(p1, p, sizeof p);
        long count[512] = {0};
        cllm_gen *g = NULL;
        CHECK_OK(cllm_gen_init(&g, m, tok, NULL));
        cllm_gen_opts o = cllm_gen_opts_default();
        o.max_tokens = 1;
        o.num_samples = ROWS;
        o.ignore_eot = true;
        o.sampler.temperature = cases[c].temperature;
        o.sampler.top_k = cases[c].top_k;
        int fed = 0;
        for (int run = 0; g && run < RUNS; run++) {
            cllm_gen_result r = {0};
            o.seed = 5000 + (uint64_t)run * ROWS;
            CHECK_OK(cllm_gen_set_context(g, prompt, 9));
            CHECK_OK(cllm_gen_run(g, &o, &r));
            fed += r.prompt_positions;
            for (int k = 0; k < r.n_samples; k++)
                count[r.samples[k].tokens[0]]++;
            cllm_gen_result_free(&r);
        }
        cllm_gen_free(g);
        /* the first run computes the shared prompt once, the others only its last token */
        CHECK_MSG(fed == 9 + (RUNS - 1) * ROWS, "the runs fed %d positions", fed);
        int df;
        double chi2 = chi_square(count, p, V, N, &df), q = chi2_q999(df);
        printf("empirical T=%g top_k=%d: chi2 = %.1f over %d df (0.999 quantile %.1f)\n", T,
               cases[c].top_k, chi2, df, q);
        CHECK_MSG(df >= 10 && chi2 < q, "T=%g top_k=%d: chi2 %.1f >= %.1f (%d df)", T,
                  cases[c].top_k, chi2, q, df);
        for (int i = 0; i < V; i++)
            if (p[i] == 0) CHECK_MSG(count[i] == 0, "token %d was drawn but filtered out", i);
        if (c == 1) {
            int df1;
            double wrong = chi_square(count, p1, V, N, &df1);
            CHECK_MSG(wrong > 10 * chi2_q999(df1), "T=0.6 draws look like T=1 ones: %.1f", wrong);
        }
    }
}

/* cllm_gpt_forward_cached_last (what generation runs) gives the last position's logits of the
 * full cached forward, through the few-rows products and through the GEMM (B > 8). */
static void test_forward_last(cllm_gpt *m) {
    const int V = cllm_gpt_get_config(m)->vocab_size, n = 5;
    static const int batches[] = {1, 2, 9};
    for (size_t c = 0; c < sizeof batches / sizeof *batches; c++) {
        const int B = batches[c];
        uint32_t tok[9 * 5];
        make_prompt(tok, B * n, V, 400 + c);
        float *full = malloc((size_t)B * V * sizeof *full),
              *last = malloc((size_t)B * V * sizeof *last);
        CHECK_OK(cllm_gpt_forward_cached(m, tok, B, n, 0));
        for (int b = 0; b < B; b++)
            CHECK_OK(cllm_gpt_get_logits(m, b, n - 1, full + (size_t)b * V));
        /* again from position 2, as after a context change */
        CHECK_OK(cllm_gpt_forward_cached_last(m, tok, B, 2, 0));
        CHECK_OK(cllm_gpt_forward_cached_last(m, tok, B, n, 0));
        for (int b = 0; b < B; b++)
            CHECK_OK(cllm_gpt_get_logits(m, b, n - 1, last + (size_t)b * V));
        char what[64];
        snprintf(what, sizeof what, "last-position logits, batch %d", B);
        CHECK_ALLCLOSE(what, last, full, (size_t)B * V, 1e-5, 1e-4);
        float one[512];
        CHECK(cllm_gpt_get_logits(m, 0, n - 2, one) == CLLM_ERR_STATE);
        free(full);
        free(last);
    }
}

int main(void) {
    cllm_runtime *rt = test_runtime();
    cllm_tokenizer *tok = tiny_tokenizer();
    const int V = (int)cllm_tokenizer_vocab_size(tok);
    cllm_gpt *m = tiny_model(rt, V, ROWS, true);
    cllm_gpt *single = tiny_model(rt, V, 1, false);
    test_releasable();
    test_forward_last(m);
    test_greedy_matches_recomputation(m, tok);
    test_stop_strings(m, tok);
    test_seeds_and_batches(m, tok);
    test_context_policies(m, tok);
    test_session(m, tok);
    test_empirical(m, tok, single);
    /* a model without a key/value cache: refused with cache, runs without */
    cllm_gen *g = NULL;
    CHECK(cllm_gen_init(&g, single, tok, NULL) == CLLM_ERR_STATE &&
          strstr(cllm_last_error(), "kv_cache"));
    cllm_gen_opts o = cllm_gen_opts_default();
    o.sampler.greedy = true;
    o.ignore_eot = true;
    o.max_tokens = 10;
    uint32_t prompt[3] = {1, 2, 3}, ref[10];
    cllm_gen_result r = {0};
    CHECK_OK(cllm_generate(single, tok, prompt, 3, &o, &r));
    CHECK(ref_greedy(m, prompt, 3, 10, 0, ref) == 10 && r.n_samples == 1 &&
          same_tokens(r.samples[0].tokens, ref, 10));
    cllm_gen_result_free(&r);
    cllm_gpt_free(single);
    cllm_gpt_free(m);
    cllm_tokenizer_free(tok);
    cllm_runtime_free(rt);
    return test_exit();
}
