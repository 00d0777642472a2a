/* cllm/sample.h — choosing the next token from logits: repetition penalty, temperature, top-k,
 * top-p (nucleus), min-p, in that order (Hugging Face generate()'s order), and a seeded RNG so
 * the same seed gives the same text. Host code; no OpenCL.
 *
 *     cllm_sampler s = cllm_sampler_default();      // temperature 1, no filters
 *     s.top_k = 40; s.top_p = 0.95f;
 *     cllm_rng rng; cllm_rng_seed(&rng, 1234);
 *     uint32_t next = cllm_sample(&s, logits, V, history, n_history, &rng, &scratch, &logprob);
 */
#ifndef CLLM_SAMPLE_H
#define CLLM_SAMPLE_H

#include "cllm/common.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* xoshiro256** seeded through splitmix64: fast, and its state is four integers that fit in
 * state.json for exact resumption. */
typedef struct {
    uint64_t s[4];
} cllm_rng;

void cllm_rng_seed(cllm_rng *r, uint64_t seed);
uint64_t cllm_rng_next(cllm_rng *r);
double cllm_rng_uniform(cllm_rng *r); /* [0, 1), 53 bits */

typedef struct {
    float temperature;        /* > 0; 0 means greedy */
    int top_k;                /* 0 = off */
    float top_p;              /* (0, 1]; 1 = off */
    float min_p;              /* [0, 1); 0 = off: drop tokens below min_p * p(most likely) */
    float repetition_penalty; /* >= 1 ... (CTRL): 1 = off */
    bool greedy;              /* argmax after the repetition penalty (Hugging Face's greedy
                                 search); temperature and the filters are ignored */
} cllm_sampler;

cllm_sampler cllm_sampler_default(void);
/* CLLM_ERR_USAGE naming the flag (--temperature, --top-p, ...) when a value is out of range. */
cllm_status cllm_sampler_validate(const cllm_sampler *s);

/* Scratch space reused between calls (grows to V entries). Zero-init is valid. */
typedef struct {
    void *buf;
    size_t cap;
} cllm_sample_scratch;
void cllm_sample_scratch_free(cllm_sample_scratch *sc);

/* The distribution the sampler draws from: probs[V] (zero where filtered out), after the
 * penalty, temperature and the filters. `logits` is left unchanged. */
cllm_status cllm_sampler_probs(const cllm_sampler *s, const float *logits, int V,
                               const uint32_t *history, size_t n_history,
                               cllm_sample_scratch *sc, float *probs);

/* Draw one token. *logprob (may be NULL) receives log p(token) under the model's unfiltered
 * softmax at temperature 1 (what `cllm generate --json` reports). */
cllm_status cllm_sample(const cllm_sampler *s, const float *logits, int V, const uint32_t *history,
                        size_t n_history, cllm_rng *rng, cllm_sample_scratch *sc, uint32_t *token,
                        float *logprob);

#ifdef __cplusplus
}
#endif
#endif
