/* cllm/eval_model.h — the model half of `cllm eval`: perplexity of a token stream through a
 * sliding window, and the log-likelihoods of multiple-choice continuations with each item's
 * shared context run once. The scoring half (data sets, accuracies, reports) is cllm/eval.h.
 *
 * Tutorial: perplexity.
 *
 *     cllm_gpt_opts go = {.max_batch = 8};                // max_seq 0: n_positions
 *     cllm_model *mdl;  CLLM_TRY(cllm_model_load(&mdl, rt, "runs/nano", &go, NULL));
 *     cllm_ppl_opts po = {.batch = 8, .stride = 0};       // stride 0: the whole window
 *     cllm_ppl_result r;
 *     CLLM_TRY(cllm_eval_perplexity(&r, mdl->gpt, mdl->tok, ids, n, &po));
 *     printf("%.4f nats/token, ppl %.2f, %.4f bits/byte\n", r.loss, r.perplexity,
 *            r.bits_per_byte);
 *
 *   What is scored. The stream is the tokens given, with the tokenizer's end-of-text token put
 *   in front when they do not begin with one (so a text's first token is scored given "start
 *   of document", as lm-evaluation-harness's loglikelihood_rolling does with its prefix
 *   token). Every token after that first end-of-text is scored exactly once, end-of-text
 *   tokens inside the stream included (predicting where a document ends is part of the
 *   model); special tokens decode to no bytes of text, so they add to the nats but not to the
 *   bytes of bits_per_byte.
 *
 *   The window (T = the model's context unless opts.T says less): the first window scores
 *   the stream's targets 1 .. min(T, N-1) from positions 0 .. T-1; each later window scores
 *   the next `stride` targets (fewer at the end) and reads the T tokens before its last
 *   target, so every token is scored once with at least T - stride + 1 tokens of history,
 *   and the last window also has a full context. With stride = T (the default) this is
 *   exactly lm-evaluation-harness's rolling windows (get_rolling_token_windows, context_len
 *   1); a smaller stride is the Hugging Face perplexity recipe (windows of T + 1 tokens, so
 *   that no token is lost at a window's edge). Windows run `batch` at a time.
 *
 * Tutorial: multiple choice.
 *
 *     cllm_gpt_opts go = {.max_batch = 8, .kv_cache = true};
 *     ... cllm_model_load(&mdl, rt, ckpt, &go, NULL) ...
 *     cllm_mc_scorer *sc;  CLLM_TRY(cllm_mc_scorer_init(&sc, mdl->gpt, mdl->tok, 8, 0));
 *     CLLM_TRY(cllm_mc_evaluate(&res, &set, cllm_mc_scorer_loglik, sc, samples));
 *
 *   Each choice is scored as lm-evaluation-harness's HFLM scores a loglikelihood request (see
 *   cllm/eval.h: the context encoded alone, the continuation as encode(context +
 *   continuation) minus the context's tokens, the window cut on the left by cllm_mc_window).
 *   The choices whose windows share their context tokens (all of them, unless a long context
 *   had to be cut differently for choices of different lengths) run that context once: one
 *   cached forward of the context, its key/value cache copied to up to `batch` rows
 *   (cllm_gpt_cache_broadcast), then those rows' continuations in one cached forward, right-
 *   padded (padding after a row's last token cannot change what came before it). Every
 *   log-probability is computed in double from the logits (cllm_mc_token_logprob).
 *
 * Ownership: the scorer borrows the model and tokenizer, which must outlive it.
 */
#ifndef CLLM_EVAL_MODEL_H
#define CLLM_EVAL_MODEL_H

#include "cllm/common.h"
#include "cllm/eval.h"
#include "cllm/gpt.h"
#include "cllm/tokenizer.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------- perplexity */

typedef struct {
    int batch;  /* windows per forward (>= 1, at most the model's max_batch); 0 means 1 */
    int stride; /* targets each window after the first scores (1..T); 0 means T */
    int T;      /* window (<= the model's max_seq); 0 means n_positions */
    /* Called after each forward with the targets scored so far and in all (may be NULL). */
    void (*progress)(void *user, uint64_t done, uint64_t total);
    void *progress_user;
} cllm_ppl_opts;

typedef struct {
    double nats;            /* sum of -ln p(token | its history) over the scored tokens */
    uint64_t tokens;        /* tokens scored */
    uint64_t special;       /* ... of them special (end-of-text) tokens */
    uint64_t bytes;         /* UTF-8 bytes the scored tokens decode to (special tokens: none) */
    uint64_t windows;       /* windows run */
    uint64_t positions;     /* token positions run through the model (windows x window) */
    int T, stride;          /* the window and stride used */
    double seconds;         /* wall time of the forwards and reads */
    double loss;            /* nats / tokens */
    double perplexity;      /* exp(loss) */
    double bits_per_byte;   /* nats / ln 2 / bytes (NaN without bytes) */
    double byte_perplexity; /* exp(nats / bytes), lm-eval's byte_perplexity */
} cllm_ppl_result;

/* Score the stream of `n` tokens (see the tutorial). `tok` is the model's tokenizer (bytes of
 * each token, the end-of-text id; a tokenizer without <|endoftext|> leaves tokens[0] as
 * history only). A token outside the model's vocabulary or unknown to the tokenizer is
 * CLLM_ERR_FORMAT naming its position; a stream with nothing to score is CLLM_ERR_FORMAT. */
cllm_status cllm_eval_perplexity(cllm_ppl_result *res, cllm_gpt *gpt, const cllm_tokenizer *tok,
                                 const uint32_t *tokens, size_t n, const cllm_ppl_opts *opts);

/* Words as lm-evaluation-harness counts them for word_perplexity: len(re.split(r"\s+", text))
 * (whitespace as Python's str.isspace; invalid UTF-8 bytes are not whitespace). */
uint64_t cllm_eval_count_words(const char *text, size_t len);

/* ------------------------------------------------------------------------ multiple choice */

typedef struct cllm_mc_scorer cllm_mc_scorer;

/* A scorer over `gpt` (created with kv_cache and max_batch >= batch) and its tokenizer. batch:
 * continuation rows per cached forward (>= 1). T: the window (0: n_positions; <= max_seq). */
cllm_status cllm_mc_scorer_init(cllm_mc_scorer **s, cllm_gpt *gpt, const cllm_tokenizer *tok,
                                int batch, int T);
void cllm_mc_scorer_free(cllm_mc_scorer *s); /* NULL is a no-op */

/* A cllm_mc_loglik_fn (pass the scorer as `user`): fills scores[c] for every choice of `item`.
 * A continuation that encodes to no tokens, or one longer than the window, is
 * CLLM_ERR_FORMAT naming the item's line and the choice. */
cllm_status cllm_mc_scorer_loglik(void *scorer, const cllm_mc_item *item,
                                  cllm_mc_choice_score *scores);

typedef struct {
    uint64_t items;     /* items scored */
    uint64_t choices;   /* choices scored */
    uint64_t tokens;    /* continuation tokens scored */
    uint64_t positions; /* token positions run through the model (contexts once per group,
                           padded continuation rows) */
    uint64_t forwards;  /* cached forward calls */
    uint64_t truncated; /* choices whose window cut the context on the left */
    double seconds;     /* wall time inside cllm_mc_scorer_loglik */
} cllm_mc_scorer_stats;

/* What the scorer has done since init (or the last reset). */
void cllm_mc_scorer_stats_get(const cllm_mc_scorer *s, cllm_mc_scorer_stats *out);
void cllm_mc_scorer_stats_reset(cllm_mc_scorer *s);

/* ----------------------------------------------------------------------------- generation */

/* Greedy continuations for --gen, as lm-evaluation-harness's generate_until makes them with
 * its HF backend: the prompt encoded (an empty one is <|endoftext|>), cut on the left to its
 * last T - max_tokens tokens so that the whole continuation fits the window, then the argmax
 * token max_tokens times, ending early at <|endoftext|> or at the first stop string (the
 * text cut before it; cllm/generate.h). The text is the continuation's bytes with invalid
 * UTF-8 replaced by U+FFFD, one per maximal invalid subpart (what a Python decode with
 * errors="replace", as Hugging Face's tokenizers does, gives). */
typedef struct {
    int max_tokens;           /* 1 .. T-1 */
    const char *const *stops; /* stop strings (may be NULL) */
    int n_stops;
    void (*progress)(void *user, uint64_t done, uint64_t total); /* items; may be NULL */
    void *progress_user;
} cllm_eval_gen_opts;

typedef struct {
    uint64_t items;
    uint64_t tokens;        /* tokens generated (the end-of-text that stopped one included) */
    uint64_t prompt_tokens; /* prompt tokens fed, after cutting */
    uint64_t truncated;     /* prompts cut on the left */
    uint64_t stopped;       /* continuations that ended at a stop string or end-of-text */
    double seconds;
} cllm_eval_gen_stats;

/* outputs[i] (malloc'd, NUL-terminated) for every item of `set`; free them with
 * cllm_eval_gen_outputs_free. The model needs kv_cache (cllm_gpt_opts). */
cllm_status cllm_eval_generate(char ***outputs, cllm_eval_gen_stats *stats, cllm_gpt *gpt,
                               const cllm_tokenizer *tok, const cllm_gen_set *set,
                               const cllm_eval_gen_opts *opts);
void cllm_eval_gen_outputs_free(char **outputs, int n);

#ifdef __cplusplus
}
#endif
#endif
