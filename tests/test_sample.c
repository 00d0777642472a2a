/* Sampling filters on crafted distributions, the RNG, and an empirical-distribution test. */
#include "testutil.h"

#include "cllm/sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* logits whose softmax is exactly p (up to a constant). */
static void logits_of(const double *p, int V, float *logits) {
    for (int i = 0; i < V; i++)
        logits[i] = p[i] > 0 ? (float)log(p[i]) : -INFINITY;
}

static int support(const float *probs, int V, unsigned *mask) {
    int n = 0;
    *mask = 0;
    for (int i = 0; i < V; i++)
        if (probs[i] > 0) {
            n++;
            *mask |= 1u << i;
        }
    return n;
}

static void test_filters(void) {
    /* p sorted by id: 0.05 0.30 0.10 0.40 0.15 (ranks: 3, 1, 4, 2, 0) */
    const double p[5] = {0.05, 0.30, 0.10, 0.40, 0.15};
    float logits[5], probs[5];
    logits_of(p, 5, logits);
    cllm_sample_scratch sc = {0};
    unsigned mask;
    static const struct {
        int top_k;
        float top_p, min_p;
        unsigned want; /* bit i = token i kept */
    } cases[] = {
        {0, 1.0f, 0.0f, 0x1f},
        {1, 1.0f, 0.0f, 1u << 3},
        {2, 1.0f, 0.0f, (1u << 3) | (1u << 1)},
        {3, 1.0f, 0.0f, (1u << 3) | (1u << 1) | (1u << 4)},
        {0, 0.40f, 0.0f, 1u << 3},               /* 0.40 reaches 0.40 */
        {0, 0.41f, 0.0f, (1u << 3) | (1u << 1)}, /* needs 0.70 */
        {0, 0.70f, 0.0f, (1u << 3) | (1u << 1)},
        {0, 0.71f, 0.0f, (1u << 3) | (1u << 1) | (1u << 4)}, /* 0.85 */
        {0, 1.0f, 0.30f, (1u << 3) | (1u << 1) | (1u << 4)}, /* >= 0.12 */
        {0, 1.0f, 0.75f, (1u << 3) | (1u << 1)},             /* >= 0.30 */
        {0, 1.0f, 0.76f, 1u << 3},
        {2, 0.5f, 0.0f, 1u << 3},               /* top-k, renormalised: 0.4/0.7 = 0.57 >= 0.5 */
        {2, 0.6f, 0.0f, (1u << 3) | (1u << 1)}, /* 0.57 < 0.6: both */
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        cllm_sampler s = cllm_sampler_default();
        s.top_k = cases[c].top_k;
        s.top_p = cases[c].top_p;
        s.min_p = cases[c].min_p;
        CHECK_OK(cllm_sampler_validate(&s));
        CHECK_OK(cllm_sampler_probs(&s, logits, 5, NULL, 0, &sc, probs));
        support(probs, 5, &mask);
        CHECK_MSG(mask == cases[c].want, "case %zu: kept 0x%x, want 0x%x", c, mask, cases[c].want);
        /* Survivors keep their relative probabilities. */
        double total = 0;
        for (int i = 0; i < 5; i++)
            total += (mask >> i & 1) ? p[i] : 0;
        for (int i = 0; i < 5; i++)
            if (mask >> i & 1) CHECK(test_close(probs[i], p[i] / total, 1e-6, 1e-5));
    }
    /* Temperature 0.5 squares and renormalises. */
    cllm_sampler s = cllm_sampler_default();
    s.temperature = 0.5f;
    CHECK_OK(cllm_sampler_probs(&s, logits, 5, NULL, 0, &sc, probs));
    double z = 0;
    for (int i = 0; i < 5; i++)
        z += p[i] * p[i];
    for (int i = 0; i < 5; i++)
        CHECK(test_close(probs[i], p[i] * p[i] / z, 1e-6, 1e-5));
    /* Repetition penalty (CTRL): positive logits divided, negative multiplied. */
    float lg[3] = {2.0f, -1.0f, 0.5f};
    uint32_t hist[] = {0, 1, 1, 7 /* out of range: ignored */};
    s = cllm_sampler_default();
    s.repetition_penalty = 2.0f;
    CHECK_OK(cllm_sampler_probs(&s, lg, 3, hist, 4, &sc, probs));
    double e0 = exp(1.0), e1 = exp(-2.0), e2 = exp(0.5), zz = e0 + e1 + e2;
    CHECK(test_close(probs[0], e0 / zz, 1e-6, 1e-5));
    CHECK(test_close(probs[1], e1 / zz, 1e-6, 1e-5));
    CHECK(test_close(probs[2], e2 / zz, 1e-6, 1e-5));
    /* Greedy and temperature 0 pick the argmax (first on ties). */
    float tie[4] = {1, 3, 3, 0};
    cllm_rng rng;
    cllm_rng_seed(&rng, 1);
    uint32_t tok = 99;
    float lp = 0;
    s = cllm_sampler_default();
    s.greedy = true;
    CHECK_OK(cllm_sample(&s, tie, 4, NULL, 0, &rng, &sc, &tok, &lp));
    CHECK(tok == 1);
    double zt = exp(1.0) + 2 * exp(3.0) + 1;
    CHECK(test_close(lp, 3.0 - log(zt), 1e-6, 1e-5));
    s = cllm_sampler_default();
    s.temperature = 0;
    CHECK_OK(cllm_sample(&s, tie, 4, NULL, 0, &rng, &sc, &tok, NULL));
    CHECK(tok == 1);
    /* Greedy applies the repetition penalty first, as Hugging Face's greedy search does:
     * logits {2, 1.8, -1, 0.5} with token 0 seen (twice: penalised once) under 1.3 give
     * {1.538, 1.8, ...}: token 1; under 1.05 {1.905, 1.8}: still token 0. A seen negative
     * logit is multiplied: {-1 * 1.3 = -1.3} stays below the unseen 0.5. The log-probability
     * stays the model's own. */
    float rep[4] = {2, 1.8f, -1, 0.5f};
    const uint32_t seen_ids[3] = {0, 2, 0};
    float probs4[4];
    for (int g = 0; g < 2; g++) {
        s = cllm_sampler_default();
        if (g) s.temperature = 0; else s.greedy = true;
        s.repetition_penalty = 1.3f;
        CHECK_OK(cllm_sample(&s, rep, 4, seen_ids, 3, &rng, &sc, &tok, &lp));
        CHECK(tok == 1);
        double zr = exp(2.0) + exp(1.8) + exp(-1.0) + exp(0.5);
        CHECK(test_close(lp, 1.8 - log(zr), 1e-6, 1e-5));
        CHECK_OK(cllm_sampler_probs(&s, rep, 4, seen_ids, 3, &sc, probs4));
        CHECK(probs4[1] == 1.0f && probs4[0] == 0.0f);
        s.repetition_penalty = 1.05f;
        CHECK_OK(cllm_sample(&s, rep, 4, seen_ids, 3, &rng, &sc, &tok, NULL));
        CHECK(tok == 0);
        CHECK_OK(cllm_sample(&s, rep, 4, NULL, 0, &rng, &sc, &tok, NULL));
        CHECK(tok == 0);
    }
    /* Bad values are usage errors naming the flag. */
    s = cllm_sampler_default();
    s.temperature = -1;
    CHECK(cllm_sampler_validate(&s) == CLLM_ERR_USAGE &&
          strstr(cllm_last_error(), "--temperature"));
    s = cllm_sampler_default();
    s.top_p = 0;
    CHECK(cllm_sampler_validate(&s) == CLLM_ERR_USAGE && strstr(cllm_last_error(), "--top-p"));
    s.top_p = 1.5f;
    CHECK(cllm_sampler_validate(&s) == CLLM_ERR_USAGE);
    s = cllm_sampler_default();
    s.min_p = 1;
    CHECK(cllm_sampler_validate(&s) == CLLM_ERR_USAGE && strstr(cllm_last_error(), "--min-p"));
    s = cllm_sampler_default();
    s.top_k = -3;
    CHECK(cllm_sampler_validate(&s) == CLLM_ERR_USAGE && strstr(cllm_last_error(), "--top-k"));
    cllm_sample_scratch_free(&sc);
}

/* With a fixed seed, the empirical distribution of many draws matches the probabilities:
 * Pearson's chi-square over 8 categories must stay below the 0.999 quantile of chi2(7)
 * (24.32). The seed is fixed, so the outcome is deterministic; the bound says how unlikely a
 * failure of a correct sampler would be. */
static void test_empirical(void) {
    const int V = 8, N = 200000;
    double p[8] = {0.30, 0.20, 0.15, 0.12, 0.10, 0.07, 0.04, 0.02};
    float logits[8];
    logits_of(p, V, logits);
    for (int i = 0; i < V; i++)
        logits[i] += 3.0f; /* shift invariance */
    cllm_sampler s = cllm_sampler_default();
    cllm_rng rng;
    cllm_rng_seed(&rng, 20240520);
    cllm_sample_scratch sc = {0};
    long count[8] = {0};
    for (int n = 0; n < N; n++) {
        uint32_t t;
        CHECK_OK(cllm_sample(&s, logits, V, NULL, 0, &rng, &sc, &t, NULL));
        if (t < 8) count[t]++;
    }
    double chi2 = 0;
    for (int i = 0; i < V; i++) {
        double e = N * p[i];
        chi2 += (count[i] - e) * (count[i] - e) / e;
    }
    CHECK_MSG(chi2 < 24.32, "chi2 = %g", chi2);
    /* The same seed gives the same draws. */
    cllm_rng a, b;
    cllm_rng_seed(&a, 7);
    cllm_rng_seed(&b, 7);
    int same = 1;
    for (int i = 0; i < 1000; i++)
        same &= cllm_rng_next(&a) == cllm_rng_next(&b);
    CHECK(same);
    cllm_rng_seed(&b, 8);
    CHECK(cllm_rng_next(&a) != cllm_rng_next(&b));
    /* xoshiro256** reference: state {1,2,3,4} -> first outputs 11520, 0, 1509978240,
     * 1215971899390074240 */
    cllm_rng r = {{1, 2, 3, 4}};
    CHECK(cllm_rng_next(&r) == 11520ull);
    CHECK(cllm_rng_next(&r) == 0ull);
    CHECK(cllm_rng_next(&r) == 1509978240ull);
    CHECK(cllm_rng_next(&r) == 1215971899390074240ull);
    cllm_sample_scratch_free(&sc);
}

/* The kept sets on random distributions with many ties, against a reference that sorts
 * everything (value descending, lower id first on ties: the documented order): top-k picks
 * exactly the k first, top-p the shortest prefix reaching p, min-p those >= min_p x the
 * best, with and without the others. */
static int ref_desc(const void *a, const void *b) {
    const double *x = a, *y = b; /* {value, id} */
    if (x[0] != y[0]) return x[0] > y[0] ? -1 : 1;
    return x[1] < y[1] ? -1 : 1;
}

static void test_filters_random(void) {
    test_rng r = {99};
    cllm_sample_scratch sc = {0};
    float logits[300], probs[300];
    double ord[300][2], p[300];
    int bad = 0;
    for (int c = 0; c < 400; c++) {
        const int V = 1 + (int)(test_rng_u64(&r) % 300);
        for (int i = 0; i < V; i++)
            logits[i] = (float)(test_rng_u64(&r) % 7); /* ties */
        cllm_sampler s = cllm_sampler_default();
        s.top_k = (int)(test_rng_u64(&r) % 4 == 0 ? 0 : test_rng_u64(&r) % (uint64_t)(V + 2));
        s.top_p = test_rng_u64(&r) % 2 ? 1.0f : (float)(0.05 + 0.9 * test_rng_uniform(&r));
        s.min_p = test_rng_u64(&r) % 2 ? 0.0f : (float)(0.9 * test_rng_uniform(&r));
        CHECK_OK(cllm_sampler_probs(&s, logits, V, NULL, 0, &sc, probs));
        /* reference: sort, softmax over the top-k, prefix to top-p, threshold min-p */
        for (int i = 0; i < V; i++)
            ord[i][0] = logits[i], ord[i][1] = i;
        qsort(ord, (size_t)V, sizeof *ord, ref_desc);
        int n = s.top_k > 0 && s.top_k < V ? s.top_k : V;
        double z = 0;
        for (int i = 0; i < n; i++)
            z += exp(ord[i][0] - ord[0][0]);
        for (int i = 0; i < n; i++)
            p[i] = exp(ord[i][0] - ord[0][0]) / z;
        if (s.top_p < 1) {
            double cum = 0;
            for (int i = 0; i < n; i++)
                if ((cum += p[i]) >= s.top_p) {
                    n = i + 1;
                    break;
                }
        }
        int keep = 1;
        while (s.min_p > 0 && keep < n && p[keep] >= s.min_p * p[0])
            keep++;
        if (s.min_p > 0) n = keep;
        bool kept[300] = {0};
        for (int i = 0; i < n; i++)
            kept[(int)ord[i][1]] = true;
        for (int i = 0; i < V; i++)
            if ((probs[i] > 0) != kept[i]) bad++;
    }
    CHECK_MSG(bad == 0, "%d tokens kept or dropped against the reference", bad);
    cllm_sample_scratch_free(&sc);
}

int main(void) {
    test_filters();
    test_filters_random();
    test_empirical();
    return test_exit();
}
