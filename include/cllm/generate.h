/* cllm/generate.h — text generation with a device model: the prompt in one batched pass over
 * a key/value cache, then one position per new token; sampling (cllm/sample.h), stop strings,
 * stop tokens, streaming through a callback, timing, and a policy for a full context.
 *
 * Tutorial: one prompt, one continuation (what `cllm eval --gen`, `cllm train --sample-every`
 * and `cllm report` do).
 *
 *     cllm_gen_opts o = cllm_gen_opts_default();   // 256 tokens, temperature 1, seed 1337
 *     o.max_tokens = 64;
 *     o.sampler.greedy = true;
 *     const char *stops[] = {"\n\n"};
 *     o.stops = stops; o.n_stops = 1;
 *     cllm_gen_result r = {0};
 *     CLLM_TRY(cllm_generate(gpt, tok, prompt_ids, n_prompt, &o, &r));
 *     ... r.samples[0].text (cut before the stop string), r.samples[0].tokens, logprobs ...
 *     cllm_gen_result_free(&r);
 *
 *   The model must have been created with opts.kv_cache (cllm_gpt_opts), unless setup.no_cache;
 *   it may be a training model (cllm_gpt_opts.training and kv_cache both set): generating
 *   between steps overwrites only activations. With num_samples = N > 1 the N samples are
 *   drawn together, as N rows of one batch (the model needs max_batch >= N); the prompt they
 *   share is computed once and its keys and values copied to the other rows.
 *
 * Tutorial: a conversation kept in the cache (what `cllm chat` does).
 *
 *     cllm_gen *g;
 *     CLLM_TRY(cllm_gen_init(&g, gpt, tok, &(cllm_gen_setup){0}));
 *     CLLM_TRY(cllm_gen_append(g, turn_ids, n));     // each turn adds only its new tokens
 *     CLLM_TRY(cllm_gen_run(g, &o, &r));             // the reply is appended to the context
 *     ... cllm_gen_context(g, &n) is everything so far; the next run feeds only what the
 *         cache does not hold yet ...
 *     cllm_gen_free(g);
 *
 *   cllm_gen_set_context() replaces the context; the cache keeps the positions of the longest
 *   common prefix (e.g. when old turns are dropped, everything from the first change on is
 *   fed again, in one batched pass). Weights that change (training) invalidate the cache:
 *   call cllm_gen_reset() or use cllm_generate(), which starts from nothing each time.
 *
 * What happens, per sample:
 *   - An empty context starts from <|endoftext|> (GPT-2's document separator: unconditional
 *     generation). Without a tokenizer, or one with no <|endoftext|>, it is CLLM_ERR_USAGE.
 *   - Each step samples one token from the logits at the last position (cllm_sample: the
 *     repetition penalty over the tokens in the context window, temperature, top-k, top-p,
 *     min-p; greedy or temperature 0 takes the argmax). Sample b draws from its own RNG,
 *     seeded with seed + b, so sample b of a run with seed S is the text a run with seed
 *     S + b gives as its sample 0 (up to the batched GEMMs' rounding), and the same seed
 *     gives the same text on the same device.
 *   - A sample ends after max_tokens tokens ("length"); at a stop token ("token": by default
 *     <|endoftext|> unless ignore_eot, plus stop_tokens; the token is kept in tokens[] and in
 *     the context but its bytes are not text); at the first occurrence of a stop string in
 *     its text ("stop": the text is cut just before it, so no byte of the stop string or
 *     after it is ever emitted, even when the stop string spans several tokens; the token
 *     that completed it stays in tokens[]); when the callback returns nonzero ("callback");
 *     or when the context is full and the policy is CLLM_GEN_CONTEXT_STOP ("context").
 *   - Streaming: bytes are released to the callback only when they are final: a suffix of
 *     the text that is the beginning of some stop string, or an incomplete UTF-8 sequence, is
 *     held back until the next token decides it (or the sample ends, when everything left is
 *     released as it is: the text is the exact bytes of the tokens, never repaired).
 *
 * The context window n_ctx (cllm_gen_setup; default the model's max_seq, at most
 * n_positions): a token can be sampled while the context holds at most n_ctx tokens.
 *   - A prompt longer than n_ctx: with CLLM_GEN_CONTEXT_SLIDE (the default) its first tokens
 *     after the n_keep kept ones are dropped so that n_ctx remain (result.prompt_dropped
 *     says how many); with CLLM_GEN_CONTEXT_STOP it is CLLM_ERR_USAGE, nothing generated.
 *   - When a new token would make the context exceed n_ctx: SLIDE keeps the first n_keep
 *     tokens and the last (n_ctx - n_keep) / 2 (llama.cpp's context shift, halving the
 *     window so that re-encoding is needed only every (n_ctx - n_keep) / 2 tokens), and
 *     re-encodes all but the kept prefix in one batched pass (learned positions cannot be
 *     shifted in the cache); result.slides counts it. STOP ends every sample ("context").
 *
 * Timing: prompt_s is the wall time from the start until the first token's logits are read
 * (the prompt's batched pass), gen_s the rest (sampling and one forward per token, and any
 * re-encoding after a slide); the rates are prompt_positions / prompt_s and generated /
 * gen_s. With no_cache every step runs the full forward over the whole context (the
 * cache-free reference for tests and benchmarks).
 *
 * Ownership: cllm_gen objects belong to the caller of cllm_gen_init (cllm_gen_free); the model
 * and tokenizer are borrowed and must outlive it. A result's arrays are malloc'd and freed
 * by cllm_gen_result_free (zeroed or freed results may be freed again). Events point into
 * the generator and are valid only during the callback.
 */
#ifndef CLLM_GENERATE_H
#define CLLM_GENERATE_H

#include "cllm/common.h"
#include "cllm/gpt.h"
#include "cllm/sample.h"
#include "cllm/tokenizer.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    CLLM_GEN_CONTEXT_SLIDE = 0, /* drop old tokens, re-encode, keep going (say so) */
    CLLM_GEN_CONTEXT_STOP = 1,  /* end the samples when the window is full */
} cllm_gen_context_policy;

typedef enum {
    CLLM_GEN_RUNNING = 0,
    CLLM_GEN_FINISH_LENGTH,   /* max_tokens generated */
    CLLM_GEN_FINISH_STOP,     /* a stop string: text cut before it */
    CLLM_GEN_FINISH_TOKEN,    /* a stop token (<|endoftext|>, stop_tokens) */
    CLLM_GEN_FINISH_CONTEXT,  /* the window is full (CLLM_GEN_CONTEXT_STOP) */
    CLLM_GEN_FINISH_CALLBACK, /* the callback returned nonzero */
} cllm_gen_finish;

/* "running", "length", "stop", "token", "context", "callback" (the --json finish_reason). */
const char *cllm_gen_finish_name(cllm_gen_finish f);

/* One new token of one sample, given to the callback. */
typedef struct {
    int sample; /* 0 .. num_samples-1 */
    int index;  /* this token's index among the sample's new tokens */
    uint32_t token;
    float logprob;          /* log p(token) under the model's softmax at temperature 1 */
    const char *text;       /* every byte released so far (NUL-terminated), cut at a stop */
    size_t len;             /* bytes in text */
    size_t n_new;           /* the last n_new bytes of text were released by this token */
    cllm_gen_finish finish; /* RUNNING, or why the sample ends with this token */
} cllm_gen_event;

/* Return 0 to go on, nonzero to end this sample (CLLM_GEN_FINISH_CALLBACK). */
typedef int (*cllm_gen_callback)(const cllm_gen_event *ev, void *user);

typedef struct {
    int max_tokens;           /* new tokens per sample, >= 1 (default 256) */
    cllm_sampler sampler;     /* cllm_sampler_default(): temperature 1, no filters */
    uint64_t seed;            /* sample b uses seed + b (default 1337) */
    const char *const *stops; /* stop strings (bytes; empty ones are ignored) */
    int n_stops;
    const uint32_t *stop_tokens; /* token ids that end a sample (e.g. chat's <|end|>) */
    int n_stop_tokens;
    bool ignore_eot;                      /* <|endoftext|> does not end a sample */
    int num_samples;                      /* rows generated together (default 1) */
    cllm_gen_context_policy context_full; /* default SLIDE */
    int n_keep;                           /* context tokens a slide never drops (e.g. a system
                                             prompt); must leave room: n_keep < n_ctx - 1 */
    cllm_gen_callback on_token;           /* may be NULL */
    void *user;
} cllm_gen_opts;

cllm_gen_opts cllm_gen_opts_default(void);
/* CLLM_ERR_USAGE naming the flag (--max-tokens, --num-samples, --temperature, ...). */
cllm_status cllm_gen_opts_validate(const cllm_gen_opts *o);

typedef struct {
    uint32_t *tokens; /* (n_tokens) the new tokens, stop token included */
    float *logprobs;  /* (n_tokens) */
    int n_tokens;
    char *text; /* (len + 1) the text, NUL-terminated (but may hold NUL bytes) */
    size_t len;
    cllm_gen_finish finish;
    int stop_index; /* which stop string ended it (FINISH_STOP), else -1 */
} cllm_gen_sample;

typedef struct {
    cllm_gen_sample *samples; /* (n_samples) */
    int n_samples;
    int context_tokens;   /* tokens in the context when the run started (after dropping) */
    int prompt_dropped;   /* tokens dropped because the prompt did not fit n_ctx */
    int prompt_positions; /* positions computed by the prompt pass, all rows (cached ones
                             are not computed again; a prompt that several samples share from
                             position 0 is computed once and its cache copied to their rows) */
    int slides;           /* times the window slid */
    int n_keep;           /* tokens a slide keeps at the start: min(n_keep, context_tokens) */
    int generated;        /* new tokens, all samples */
    double prompt_s, gen_s;
} cllm_gen_result;

void cllm_gen_result_free(cllm_gen_result *r);

typedef struct {
    int n_ctx;     /* context window; 0 = the model's max_seq (cllm_gpt_opts) */
    bool no_cache; /* recompute the full forward for every token (needs no kv_cache) */
} cllm_gen_setup;

typedef struct cllm_gen cllm_gen;

/* A generator over `gpt` (borrowed) with `tok` (borrowed; may be NULL: then no text, no
 * stop strings and no <|endoftext|> stop, only tokens). `setup` may be NULL. */
cllm_status cllm_gen_init(cllm_gen **g, cllm_gpt *gpt, const cllm_tokenizer *tok,
                          const cllm_gen_setup *setup);
void cllm_gen_free(cllm_gen *g); /* NULL is a no-op */

/* The context window in tokens. */
int cllm_gen_n_ctx(const cllm_gen *g);
/* The context: every token the next run conditions on (n may be NULL). Valid until the next
 * call that changes it. */
const uint32_t *cllm_gen_context(const cllm_gen *g, int *n);
/* Positions of the context whose keys and values the cache holds (0 with no_cache). */
int cllm_gen_cached(const cllm_gen *g);
/* Forget the context and the cache. */
void cllm_gen_reset(cllm_gen *g);
/* Append tokens to the context (fed on the next run). Ids must be < the model's vocab_size. */
cllm_status cllm_gen_append(cllm_gen *g, const uint32_t *ids, int n);
/* Replace the context; the cache keeps the longest common prefix with what it holds. */
cllm_status cllm_gen_set_context(cllm_gen *g, const uint32_t *ids, int n);

/* Generate from the context. With num_samples = 1 the new tokens are appended to the context
 * (a slide also applies to it), so a conversation continues with cllm_gen_append; with more,
 * the context stays as it was (minus what was dropped to fit). `res` must be zeroed or freed;
 * it is filled even when the callback ends every sample. On an error `res` is freed and the
 * context and cache are reset. */
cllm_status cllm_gen_run(cllm_gen *g, const cllm_gen_opts *o, cllm_gen_result *res);

/* One-shot: a fresh generator, the prompt as context, one run; through the cache when the
 * model has one, else by full recomputation (no_cache). */
cllm_status cllm_generate(cllm_gpt *gpt, const cllm_tokenizer *tok, const uint32_t *prompt,
                          int n_prompt, const cllm_gen_opts *o, cllm_gen_result *res);

/* Bytes of text[0..len) that can be released now: len minus the longest suffix that is a
 * proper prefix of a stop string, or an incomplete UTF-8 sequence (exposed for tests). */
size_t cllm_gen_releasable(const char *text, size_t len, const char *const *stops, int n_stops);

#ifdef __cplusplus
}
#endif
#endif
