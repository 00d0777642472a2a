/* The model half of cllm eval (cllm/eval_model.h) against log-likelihoods computed
 * independently by the plain-C double-precision reference forward (tests/ref_gpt.h):
 *   - perplexity: stride 1 equals scoring every token with its own forward over the T tokens
 *     before it; stride T equals lm-evaluation-harness's rolling windows
 *     (get_rolling_token_windows, context_len 1) built here from its definition; a stride in
 *     between equals the Hugging Face recipe with windows of T + 1 tokens; batches of any
 *     size give the same; bytes are what the scored tokens decode to;
 *   - multiple choice: every choice's summed log-probability, token count and greediness
 *     equal lm-eval's HFLM request computed directly (context encoded alone, continuation =
 *     encode(context + continuation) minus the context's tokens, the last T + 1 tokens kept),
 *     for contexts that fit, contexts cut on the left differently per choice, an empty
 *     context, trailing whitespace, more choices than the batch, one-token continuations;
 *     the shared context runs once (two forwards for an item that fits);
 *   - cllm_gpt_cache_broadcast's refusals, and the errors of both halves. */
#include "ref_gpt.h"
#include "testutil.h"

#include "cllm/eval_model.h"
#include "cllm/util.h"

#include <stdlib.h>
#include <string.h>

static const cllm_gpt_config CFG = {.vocab_size = 300,
                                    .n_positions = 16,
                                    .n_embd = 24,
                                    .n_layer = 2,
                                    .n_head = 3,
                                    .layer_norm_epsilon = 1e-5f,
                                    .initializer_range = 0.02f};
static const char CORPUS[] =
    "the cat sat on the mat; the cat ate the rat. the mat sat flat. a rat ran at the cat and "
    "the cat ran at the rat, then the mat was flat and the hat was on the cat.";

static float *FP; /* the parameters (cllm layout) */
static double *P; /* the same in double, for the reference */

/* ln p(target) for every position of a window, by the reference forward. */
static double ref_logprob_at(const double *logits, int V, uint32_t target) {
    double mx = logits[0], s = 0;
    for (int v = 1; v < V; v++)
        if (logits[v] > mx) mx = logits[v];
    for (int v = 0; v < V; v++)
        s += exp(logits[v] - mx);
    return logits[target] - mx - log(s);
}

static int ref_argmax(const double *logits, int V) {
    int b = 0;
    for (int v = 1; v < V; v++)
        if (logits[v] > logits[b]) b = v;
    return b;
}

/* Logits (n, Vp) of the reference forward over tok[0..n). Caller frees. */
static double *ref_logits(const uint32_t *tok, int n, int *Vp) {
    ref_gpt r;
    ref_gpt_init(&r, &CFG, 1, n);
    ref_gpt_forward(&r, P, tok, NULL);
    *Vp = r.Vp;
    double *out = malloc((size_t)n * r.Vp * sizeof *out);
    memcpy(out, r.logits, (size_t)n * r.Vp * sizeof *out);
    ref_gpt_free(&r);
    return out;
}

/* Sum of ln p(S[j] | S[from .. j-1]) over targets j in [j0, j1], with one forward over
 * S[from .. j1-1]. */
static double ref_score(const uint32_t *S, int from, int j0, int j1) {
    int Vp;
    double *lg = ref_logits(S + from, j1 - from, &Vp), s = 0;
    for (int j = j0; j <= j1; j++)
        s += ref_logprob_at(lg + (size_t)(j - 1 - from) * Vp, CFG.vocab_size, S[j]);
    free(lg);
    return s;
}

/* Sum of ln p(pred[k]) at the last n_pred positions of one forward over in[0..n_in). */
static double ref_window(const uint32_t *in, int n_in, const uint32_t *pred, int n_pred) {
    int Vp;
    double *lg = ref_logits(in, n_in, &Vp), s = 0;
    for (int k = 0; k < n_pred; k++)
        s += ref_logprob_at(lg + (size_t)(n_in - n_pred + k) * Vp, CFG.vocab_size, pred[k]);
    free(lg);
    return s;
}

static void test_perplexity(cllm_runtime *rt, cllm_tokenizer *tok) {
    const int T = CFG.n_positions;
    const char *text = "the cat sat on the mat and the rat ran at the cat; then the hat was on "
                       "the rat and the mat was flat, and a cat ate the hat. The flat rat sat "
                       "on a mat at the cat's hat.";
    cllm_tokens ids = {0};
    CHECK_OK(cllm_tokenizer_encode(tok, text, strlen(text), NULL, &ids));
    const uint32_t eot = cllm_tokenizer_eot(tok);
    const int n = (int)ids.n, N = n + 1;
    CHECK_MSG(n > 2 * T + 3, "the text is %d tokens, want more than two windows", n);
    uint32_t *S = malloc((size_t)N * sizeof *S); /* the stream: eot, then the text */
    S[0] = eot;
    memcpy(S + 1, ids.ids, (size_t)n * sizeof *S);

    /* stride 1: each target with its own forward over at most T tokens before it */
    double want1 = 0;
    for (int j = 1; j < N; j++) {
        int from = j - T > 0 ? j - T : 0;
        want1 += -ref_score(S, from, j, j);
    }
    /* stride T: lm-eval's rolling windows (context_len 1, prefix token eot), built in the
     * text's own token coordinates */
    double wantT = 0;
    {
        const uint32_t *tl = ids.ids;
        uint32_t in[64];
        int first = n < T ? n : T, predicted = first;
        in[0] = eot; /* [prefix] + tl[:first-1] predicts tl[:first] */
        memcpy(in + 1, tl, (size_t)(first - 1) * sizeof *in);
        wantT += -ref_window(in, first, tl, first);
        while (predicted < n) {
            int len = n - predicted < T ? n - predicted : T, end = predicted + len;
            /* tl[end - T - 1 : end - 1] predicts tl[end - len : end] */
            wantT += -ref_window(tl + end - T - 1, T, tl + end - len, len);
            predicted += len;
        }
    }
    /* stride 5: the Hugging Face recipe, windows of T + 1 tokens, the last one full */
    double want5 = 0;
    {
        int prev = 0;
        while (prev < N - 1) {
            int e = prev == 0 ? T : prev + 5;
            if (e > N - 1) e = N - 1;
            want5 += -ref_score(S, e - T, prev + 1, e);
            prev = e;
        }
    }
    const struct {
        int stride, batch;
        double want;
    } cases[] = {{1, 1, want1}, {1, 8, want1}, {T, 1, wantT}, {T, 3, wantT},
                 {0, 8, wantT}, {5, 2, want5}, {5, 7, want5}};
    cllm_gpt_opts go = {.max_batch = 8, .max_seq = T};
    cllm_gpt *m = NULL;
    CHECK_OK(cllm_gpt_init(&m, rt, &CFG, &go));
    CHECK_OK(cllm_gpt_set_params(m, FP));
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        cllm_ppl_opts po = {.batch = cases[c].batch, .stride = cases[c].stride};
        cllm_ppl_result r;
        CHECK_OK(cllm_eval_perplexity(&r, m, tok, ids.ids, ids.n, &po));
        CHECK_MSG(test_close(r.nats, cases[c].want, 1e-5, 1e-5),
                  "stride %d batch %d: %.9g nats, reference %.9g", cases[c].stride, cases[c].batch,
                  r.nats, cases[c].want);
        CHECK(r.tokens == (uint64_t)n && r.special == 0);
        CHECK_MSG(r.bytes == strlen(text), "bytes %llu, text %zu", (unsigned long long)r.bytes,
                  strlen(text));
        CHECK(test_close(r.loss, r.nats / n, 1e-12, 1e-12) &&
              test_close(r.perplexity, exp(r.nats / n), 1e-9, 1e-9) &&
              test_close(r.bits_per_byte, r.nats / log(2.0) / strlen(text), 1e-12, 1e-12));
        int S_ = cases[c].stride ? cases[c].stride : T;
        uint64_t windows = 1 + (uint64_t)((n - T + S_ - 1) / S_); /* targets 1..n: T, then S */
        CHECK_MSG(r.windows == windows && r.T == T && r.stride == S_,
                  "stride %d: %llu windows, want %llu", S_, (unsigned long long)r.windows,
                  (unsigned long long)windows);
    }

    /* A stream that starts with end-of-text (llm.c's shards): the first token is history
     * only; end-of-text tokens later on are scored and count no bytes. A stream shorter than
     * the window is one window. */
    uint32_t shard[12];
    shard[0] = eot;
    memcpy(shard + 1, ids.ids, 5 * sizeof *shard);
    shard[6] = eot;
    memcpy(shard + 7, ids.ids + 5, 5 * sizeof *shard);
    {
        cllm_ppl_opts po = {.batch = 4};
        cllm_ppl_result r;
        CHECK_OK(cllm_eval_perplexity(&r, m, tok, shard, 11, &po));
        double want = -ref_score(shard, 0, 1, 10);
        CHECK_MSG(test_close(r.nats, want, 1e-5, 1e-5), "short stream: %.9g vs %.9g", r.nats, want);
        char *dec = NULL;
        size_t dlen = 0;
        CHECK_OK(cllm_tokenizer_decode(tok, ids.ids, 9, &dec, &dlen)); /* shard[11] is not passed */
        CHECK_MSG(r.tokens == 10 && r.special == 1 && r.windows == 1 && r.T == 10 &&
                      r.bytes == dlen,
                  "%llu tokens, %llu special, %llu windows, T %d, %llu bytes (want %zu)",
                  (unsigned long long)r.tokens, (unsigned long long)r.special,
                  (unsigned long long)r.windows, r.T, (unsigned long long)r.bytes, dlen);
        free(dec);
    }

    /* Errors: a token outside the vocabulary (named with its position), nothing to score, a
     * stride longer than the window. */
    cllm_ppl_opts po = {.batch = 2};
    cllm_ppl_result r;
    shard[3] = (uint32_t)CFG.vocab_size;
    CHECK(cllm_eval_perplexity(&r, m, tok, shard, 11, &po) == CLLM_ERR_FORMAT);
    CHECK_MSG(strstr(cllm_last_error(), "token 3 is id 300") != NULL, "%s", cllm_last_error());
    shard[3] = cllm_tokenizer_vocab_size(tok); /* in the model, not in the tokenizer */
    if (shard[3] < (uint32_t)CFG.vocab_size) {
        CHECK(cllm_eval_perplexity(&r, m, tok, shard, 11, &po) == CLLM_ERR_FORMAT);
        CHECK(strstr(cllm_last_error(), "does not have") != NULL);
    }
    CHECK(cllm_eval_perplexity(&r, m, tok, shard, 1, &po) == CLLM_ERR_FORMAT); /* just eot */
    CHECK(strstr(cllm_last_error(), "nothing to score") != NULL);
    CHECK(cllm_eval_perplexity(&r, m, tok, ids.ids, 1, &po) == CLLM_OK && r.tokens == 1);
    po.stride = T + 1;
    CHECK(cllm_eval_perplexity(&r, m, tok, ids.ids, ids.n, &po) == CLLM_ERR_USAGE);
    cllm_gpt_free(m);
    free(S);
    cllm_tokens_free(&ids);
}

/* ---------------------------------------------------------------- multiple choice */

/* lm-eval's HFLM loglikelihood of one request, computed directly. */
static void ref_choice(cllm_tokenizer *tok, const char *ctx, const char *cont, double *loglik,
                       int *n_tokens, bool *greedy) {
    const int T = CFG.n_positions;
    cllm_tokens c = {0}, w = {0};
    char *whole = cllm_strdup_printf("%s%s", ctx, cont);
    CHECK_OK(cllm_tokenizer_encode(tok, ctx, strlen(ctx), NULL, &c));
    CHECK_OK(cllm_tokenizer_encode(tok, whole, strlen(whole), NULL, &w));
    uint32_t seq[256];
    int len = 0;
    if (!*ctx) seq[len++] = cllm_tokenizer_eot(tok);
    for (size_t i = 0; i < w.n; i++)
        seq[len++] = w.ids[i]; /* ctx_enc + cont_enc == whole */
    int n_cont = (int)(w.n - c.n);
    int from = len - (T + 1) > 0 ? len - (T + 1) : 0; /* keep the last T + 1 */
    int Vp;
    double *lg = ref_logits(seq + from, len - 1 - from, &Vp);
    *loglik = 0;
    *greedy = true;
    for (int j = len - n_cont; j < len; j++) {
        const double *row = lg + (size_t)(j - 1 - from) * Vp;
        *loglik += ref_logprob_at(row, CFG.vocab_size, seq[j]);
        *greedy = *greedy && ref_argmax(row, CFG.vocab_size) == (int)seq[j];
    }
    *n_tokens = n_cont;
    free(lg);
    free(whole);
    cllm_tokens_free(&c);
    cllm_tokens_free(&w);
}

static const char MC_JSONL[] =
    "{\"context\": \"the cat sat on\", \"choices\": [\"the mat\", \"a rat that ate the hat and "
    "the mat\", \"at\"], \"label\": 0}\n"
    /* longer than the window: every choice cuts the context at a different place */
    "{\"context\": \"the rat ran at the cat and the cat ran at the rat, then the mat was flat "
    "and the hat\", \"choices\": [\"was\", \"was on the cat\", \"sat on the flat mat and the "
    "rat\"], \"label\": 1}\n"
    "{\"context\": \"\", \"choices\": [\"the cat\", \"mat\"], \"label\": 0}\n"
    "{\"context\": \"the hat was on the \", \"choices\": [\"cat\", \"rat\", \"mat and the "
    "cat\"], \"label\": 2}\n"
    "{\"context\": \"a cat\", \"choices\": [\"ate\", \"sat\", \"ran\", \"ate the rat\", \"was "
    "flat\", \"on the mat\", \"t\"], \"label\": 3}\n";

static void test_mc(cllm_runtime *rt, cllm_tokenizer *tok) {
    char *dir = test_tmpdir("eval_model");
    char *path = cllm_path_join(dir, "mc.jsonl");
    CHECK_OK(cllm_write_file_atomic(path, MC_JSONL, sizeof MC_JSONL - 1));
    cllm_mc_set set = {0};
    CHECK_OK(cllm_mc_load(&set, path, CLLM_MC_GENERIC, true, 0));
    CHECK(set.n == 5);
    cllm_gpt_opts go = {.max_batch = 8, .max_seq = CFG.n_positions, .kv_cache = true};
    cllm_gpt *m = NULL;
    CHECK_OK(cllm_gpt_init(&m, rt, &CFG, &go));
    CHECK_OK(cllm_gpt_set_params(m, FP));
    const int batches[] = {1, 3, 8};
    for (size_t b = 0; b < sizeof batches / sizeof *batches; b++) {
        cllm_mc_scorer *sc = NULL;
        CHECK_OK(cllm_mc_scorer_init(&sc, m, tok, batches[b], 0));
        if (!sc) break;
        for (int i = 0; i < set.n; i++) {
            const cllm_mc_item *it = &set.items[i];
            cllm_mc_choice_score got[8];
            cllm_mc_scorer_stats before, after;
            cllm_mc_scorer_stats_get(sc, &before);
            CHECK_OK(cllm_mc_scorer_loglik(sc, it, got));
            cllm_mc_scorer_stats_get(sc, &after);
            for (int c = 0; c < it->n_choices; c++) {
                double want;
                int nt;
                bool greedy;
                ref_choice(tok, it->context, it->continuations[c], &want, &nt, &greedy);
                CHECK_MSG(test_close(got[c].loglik, want, 1e-5, 1e-5) && got[c].n_tokens == nt &&
                              got[c].greedy == greedy,
                          "batch %d, item %d, choice %d: %.9g (%d tokens, greedy %d), "
                          "reference %.9g (%d, %d)",
                          batches[b], i, c, got[c].loglik, got[c].n_tokens, got[c].greedy, want, nt,
                          greedy);
            }
            if (i == 0) /* the context once, then every choice in one batch */
                CHECK(after.forwards - before.forwards == (batches[b] >= 3 ? 2u : 3u));
            if (i == 1) CHECK(after.truncated - before.truncated >= 2);
            if (i == 4 && batches[b] == 3) CHECK(after.forwards - before.forwards <= 4);
        }
        cllm_mc_scorer_stats st;
        cllm_mc_scorer_stats_get(sc, &st);
        CHECK(st.items == 5 && st.choices == 18);
        /* through cllm_mc_evaluate: the predictions are the reference's argmaxes */
        cllm_mc_results res;
        CHECK_OK(cllm_mc_evaluate(&res, &set, cllm_mc_scorer_loglik, sc, NULL));
        for (int i = 0; i < res.n_done; i++) {
            const cllm_mc_item *it = &set.items[i];
            int best = 0;
            double bv = -INFINITY;
            for (int c = 0; c < it->n_choices; c++) {
                double want;
                int nt;
                bool greedy;
                ref_choice(tok, it->context, it->continuations[c], &want, &nt, &greedy);
                if (want > bv) bv = want, best = c;
            }
            CHECK(res.items[i].pred[CLLM_MC_ACC] == best);
        }
        cllm_mc_results_free(&res);
        cllm_mc_scorer_free(sc);
    }

    /* A continuation longer than the window, or one that adds no token, is named. */
    cllm_mc_scorer *sc = NULL;
    CHECK_OK(cllm_mc_scorer_init(&sc, m, tok, 4, 0));
    cllm_mc_item bad = set.items[0];
    char *longc = " the cat sat on the mat and the rat ran at the cat and the hat was flat";
    char *conts[3] = {bad.continuations[0], longc, bad.continuations[2]};
    bad.continuations = conts;
    cllm_mc_choice_score sco[3];
    CHECK(cllm_mc_scorer_loglik(sc, &bad, sco) == CLLM_ERR_FORMAT);
    CHECK_MSG(strstr(cllm_last_error(), "line 1, choice 1") != NULL, "%s", cllm_last_error());
    CHECK(strstr(cllm_last_error(), "longer than the model's window") != NULL);
    conts[1] = "";
    CHECK(cllm_mc_scorer_loglik(sc, &bad, sco) == CLLM_ERR_FORMAT);
    CHECK(strstr(cllm_last_error(), "adds no tokens") != NULL);
    cllm_mc_scorer_free(sc);
    CHECK(cllm_mc_scorer_init(&sc, m, tok, 0, 0) == CLLM_ERR_USAGE && sc == NULL);
    CHECK(cllm_mc_scorer_init(&sc, m, tok, 2, CFG.n_positions + 1) == CLLM_ERR_USAGE);
    CHECK(cllm_mc_scorer_init(&sc, m, tok, 9, 0) == CLLM_ERR_USAGE && sc == NULL); /* > max */

    /* cache broadcast: only positions the cache holds, only up to max_batch */
    uint32_t t4[4] = {1, 2, 3, 4};
    CHECK_OK(cllm_gpt_forward_cached(m, t4, 1, 4, 0));
    CHECK(cllm_gpt_cache_broadcast(m, 2, 5) == CLLM_ERR_STATE);
    CHECK(cllm_gpt_cache_broadcast(m, 9, 4) == CLLM_ERR_USAGE);
    CHECK_OK(cllm_gpt_cache_broadcast(m, 8, 4));
    CHECK(cllm_gpt_forward_cached(m, t4, 1, 1, 4) == CLLM_ERR_STATE); /* now batch 8 */
    cllm_gpt_free(m);
    cllm_gpt_opts nokv = {.max_batch = 2, .max_seq = 8};
    CHECK_OK(cllm_gpt_init(&m, rt, &CFG, &nokv));
    CHECK(cllm_gpt_cache_broadcast(m, 2, 1) == CLLM_ERR_STATE);
    CHECK(cllm_mc_scorer_init(&sc, m, tok, 1, 0) == CLLM_ERR_USAGE); /* no cache */
    CHECK(strstr(cllm_last_error(), "without a cache") != NULL);
    cllm_gpt_free(m);

    cllm_mc_set_free(&set);
    free(path);
    free(dir);
}

static void test_words(void) {
    /* len(re.split(r"\s+", s)) */
    CHECK(cllm_eval_count_words("", 0) == 1);
    CHECK(cllm_eval_count_words("a b\n", 4) == 3);
    CHECK(cllm_eval_count_words("  a", 3) == 2);
    CHECK(cllm_eval_count_words("one\t\ttwo\xc2\xa0three", 15) == 3); /* U+00A0 is space */
    CHECK(cllm_eval_count_words("x\xff y", 4) == 2);                  /* bad byte: a letter */
}

int main(void) {
    cllm_runtime *rt = test_runtime();
    cllm_text doc = {CORPUS, sizeof CORPUS - 1};
    cllm_bpe_train_opts bo = cllm_bpe_train_opts_default();
    bo.vocab_size = 287; /* what CORPUS allows with min_frequency 1 */
    bo.min_frequency = 1;
    bo.threads = 1;
    cllm_tokenizer *tok = NULL;
    CHECK_OK(cllm_tokenizer_train(&tok, &doc, 1, &bo));
    cllm_gpt_layout lay;
    cllm_gpt_layout_compute(&CFG, &lay);
    FP = malloc(lay.total * sizeof *FP);
    P = malloc(lay.total * sizeof *P);
    test_rng rng = {11};
    test_fill_normal(&rng, FP, lay.total, 0.3f);
    memset(FP + (size_t)CFG.vocab_size * CFG.n_embd, 0,
           (size_t)(cllm_gpt_padded_vocab(&CFG) - CFG.vocab_size) * CFG.n_embd * sizeof *FP);
    for (size_t i = 0; i < lay.total; i++)
        P[i] = FP[i];
    CHECK(tok && cllm_tokenizer_vocab_size(tok) <= (uint32_t)CFG.vocab_size);
    if (tok) {
        test_perplexity(rt, tok);
        test_mc(rt, tok);
    }
    test_words();
    free(FP);
    free(P);
    cllm_tokenizer_free(tok);
    cllm_runtime_free(rt);
    return test_exit();
}
