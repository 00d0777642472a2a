/* Next-token sampling: penalty, temperature, top-k, top-p, min-p; seeded RNG. */
#include "cllm/sample.h"
#include "cllm/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void cllm_rng_seed(cllm_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

uint64_t cllm_rng_next(cllm_rng *r) {
    uint64_t *s = r->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double cllm_rng_uniform(cllm_rng *r) {
    return (double)(cllm_rng_next(r) >> 11) * 0x1.0p-53;
}

cllm_sampler cllm_sampler_default(void) {
    cllm_sampler s = {.temperature = 1.0f,
                      .top_k = 0,
                      .top_p = 1.0f,
                      .min_p = 0.0f,
                      .repetition_penalty = 1.0f,
                      .greedy = false};
    return s;
}

cllm_status cllm_sampler_validate(const cllm_sampler *s) {
    if (!(s->temperature >= 0) || !isfinite(s->temperature))
        return cllm_fail(CLLM_ERR_USAGE, "--temperature must be >= 0 (0 = greedy), got %g",
                         (double)s->temperature);
    if (s->top_k < 0)
        return cllm_fail(CLLM_ERR_USAGE, "--top-k must be >= 0 (0 = off), got %d", s->top_k);
    if (!(s->top_p > 0 && s->top_p <= 1))
        return cllm_fail(CLLM_ERR_USAGE, "--top-p must be in (0, 1], got %g", (double)s->top_p);
    if (!(s->min_p >= 0 && s->min_p < 1))
        return cllm_fail(CLLM_ERR_USAGE, "--min-p must be in [0, 1), got %g", (double)s->min_p);
    if (!(s->repetition_penalty > 0) || !isfinite(s->repetition_penalty))
        return cllm_fail(CLLM_ERR_USAGE, "--repetition-penalty must be > 0 (1 = off), got %g",
                         (double)s->repetition_penalty);
    return CLLM_OK;
}

void cllm_sample_scratch_free(cllm_sample_scratch *sc) {
    if (!sc) return;
    free(sc->buf);
    sc->buf = NULL;
    sc->cap = 0;
}

typedef struct {
    float v; /* adjusted logit, later probability */
    uint32_t i;
} entry;

static int by_value_desc(const void *a, const void *b) {
    const entry *x = a, *y = b;
    if (x->v > y->v) return -1;
    if (x->v < y->v) return 1;
    return x->i < y->i ? -1 : x->i > y->i; /* ties: lower id first, deterministic */
}

/* Reorder e[0..n) so that its k first entries are the k greatest in by_value_desc's total
 * order (value descending, then id ascending), in any order: quickselect, O(n) on average. */
static void select_top(entry *e, int n, int k) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        /* median of three as the pivot, then Hoare partition */
        int mid = lo + (hi - lo) / 2;
        if (by_value_desc(&e[mid], &e[lo]) < 0) {
            entry t = e[mid];
            e[mid] = e[lo];
            e[lo] = t;
        }
        if (by_value_desc(&e[hi], &e[lo]) < 0) {
            entry t = e[hi];
            e[hi] = e[lo];
            e[lo] = t;
        }
        if (by_value_desc(&e[hi], &e[mid]) < 0) {
            entry t = e[hi];
            e[hi] = e[mid];
            e[mid] = t;
        }
        const entry pivot = e[mid];
        int i = lo, j = hi;
        while (i <= j) {
            while (by_value_desc(&e[i], &pivot) < 0)
                i++;
            while (by_value_desc(&pivot, &e[j]) < 0)
                j--;
            if (i <= j) {
                entry t = e[i];
                e[i] = e[j];
                e[j] = t;
                i++;
                j--;
            }
        }
        /* now e[lo..j] <= pivot <= e[i..hi] in the order, j < i */
        if (k - 1 <= j)
            hi = j;
        else if (k - 1 >= i)
            lo = i;
        else
            return;
    }
}

static uint32_t argmax(const float *x, int V) {
    uint32_t best = 0;
    for (int i = 1; i < V; i++)
        if (x[i] > x[best]) best = (uint32_t)i;
    return best;
}

/* The greedy choice: the most likely token after the repetition penalty, as Hugging Face's
 * greedy search applies its logits processors (the penalty) but not its warpers (temperature,
 * top-k, top-p, min-p, which cannot change an argmax anyway). Ties: the lowest id. */
static cllm_status greedy_pick(const cllm_sampler *s, const float *logits, int V,
                               const uint32_t *history, size_t n_history, cllm_sample_scratch *sc,
                               uint32_t *token) {
    if (s->repetition_penalty == 1.0f || !n_history) {
        *token = argmax(logits, V);
        return CLLM_OK;
    }
    if (sc->cap < (size_t)V) {
        void *b = realloc(sc->buf, (size_t)V);
        if (!b) return cllm_fail(CLLM_ERR_NOMEM, "out of memory (sampler scratch)");
        sc->buf = b;
        sc->cap = (size_t)V;
    }
    unsigned char *seen = sc->buf;
    memset(seen, 0, (size_t)V);
    for (size_t k = 0; k < n_history; k++)
        if (history[k] < (uint32_t)V) seen[history[k]] = 1;
    uint32_t best = 0;
    float bv = 0;
    for (int i = 0; i < V; i++) {
        float v = logits[i];
        if (seen[i]) v = v > 0 ? v / s->repetition_penalty : v * s->repetition_penalty;
        if (i == 0 || v > bv) {
            bv = v;
            best = (uint32_t)i;
        }
    }
    *token = best;
    return CLLM_OK;
}

/* Fills e[0..*n) with the surviving tokens, v = prob normalised over the survivors: e[0] the
 * most likely, all sorted by probability (descending) when top-k or top-p applies, else in id
 * order after the first. */
static cllm_status filtered(const cllm_sampler *s, const float *logits, int V,
                            const uint32_t *history, size_t n_history, cllm_sample_scratch *sc,
                            entry **out, int *n_out) {
    if (V <= 0) return cllm_fail(CLLM_ERR_USAGE, "sampling needs a vocabulary, got %d logits", V);
    size_t need = (size_t)V * sizeof(entry) + (size_t)V;
    if (sc->cap < need) {
        void *b = realloc(sc->buf, need);
        if (!b) return cllm_fail(CLLM_ERR_NOMEM, "out of memory (sampler scratch)");
        sc->buf = b;
        sc->cap = need;
    }
    entry *e = sc->buf;
    unsigned char *seen = (unsigned char *)(e + V);
    for (int i = 0; i < V; i++) {
        e[i].v = logits[i];
        e[i].i = (uint32_t)i;
    }
    if (s->repetition_penalty != 1.0f && n_history) {
        memset(seen, 0, (size_t)V);
        for (size_t k = 0; k < n_history; k++) {
            uint32_t t = history[k];
            if (t >= (uint32_t)V || seen[t]) continue;
            seen[t] = 1;
            e[t].v = e[t].v > 0 ? e[t].v / s->repetition_penalty : e[t].v * s->repetition_penalty;
        }
    }
    for (int i = 0; i < V; i++)
        e[i].v /= s->temperature;
    /* Only top-k and top-p need an order, and only of the most likely tokens: top-k selects
     * the k best and sorts them; top-p alone sorts blocks of the best on demand (64, then
     * doubling) until the mass is reached; otherwise the survivors stay in id order after the
     * most likely. (Sorting all V = 8192 entries took about 0.9 ms per token.) */
    int n = V;
    bool sorted = false;
    if (s->top_k > 0 && s->top_k < n) {
        n = s->top_k;
        select_top(e, V, n);
        qsort(e, (size_t)n, sizeof *e, by_value_desc);
        sorted = true;
    } else {
        int best = 0;
        for (int i = 1; i < n; i++)
            if (by_value_desc(&e[i], &e[best]) < 0) best = i;
        entry t = e[0];
        e[0] = e[best]; /* the most likely first: softmax and min-p read it there */
        e[best] = t;
    }
    /* Softmax over the survivors so far. */
    double mx = e[0].v, sum = 0;
    for (int i = 0; i < n; i++)
        sum += exp((double)e[i].v - mx);
    for (int i = 0; i < n; i++)
        e[i].v = (float)(exp((double)e[i].v - mx) / sum);
    if (s->top_p < 1.0f) {
        /* Keep the smallest prefix whose mass reaches top_p (at least one token), in
         * descending order: e[0 .. have) is known sorted. */
        double cum = 0;
        int keep = n, have = sorted ? n : 0;
        for (int i = 0; i < n; i++) {
            if (i == have) {
                int k = have ? have : 64;
                if (k > n - i) k = n - i;
                select_top(e + i, n - i, k);
                qsort(e + i, (size_t)k, sizeof *e, by_value_desc);
                have = i + k;
            }
            cum += e[i].v;
            if (cum >= s->top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
    }
    if (s->min_p > 0) {
        /* e[0] is the most likely; sorted or not, keep those at or above the threshold */
        float thresh = s->min_p * e[0].v;
        int keep = 1;
        for (int i = 1; i < n; i++)
            if (e[i].v >= thresh) e[keep++] = e[i];
        n = keep;
    }
    double total = 0;
    for (int i = 0; i < n; i++)
        total += e[i].v;
    for (int i = 0; i < n; i++)
        e[i].v = (float)(e[i].v / total);
    *out = e;
    *n_out = n;
    return CLLM_OK;
}

cllm_status cllm_sampler_probs(const cllm_sampler *s, const float *logits, int V,
                               const uint32_t *history, size_t n_history, cllm_sample_scratch *sc,
                               float *probs) {
    if (V <= 0) return cllm_fail(CLLM_ERR_USAGE, "sampling needs a vocabulary, got %d logits", V);
    memset(probs, 0, (size_t)V * sizeof *probs);
    if (s->greedy || s->temperature == 0) {
        uint32_t t;
        cllm_status st = greedy_pick(s, logits, V, history, n_history, sc, &t);
        if (st == CLLM_OK) probs[t] = 1.0f;
        return st;
    }
    entry *e;
    int n;
    cllm_status st = filtered(s, logits, V, history, n_history, sc, &e, &n);
    if (st != CLLM_OK) return st;
    for (int i = 0; i < n; i++)
        probs[e[i].i] = e[i].v;
    return CLLM_OK;
}

static float log_softmax_at(const float *logits, int V, uint32_t t) {
    double mx = logits[0], sum = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > mx) mx = logits[i];
    for (int i = 0; i < V; i++)
        sum += exp((double)logits[i] - mx);
    return (float)((double)logits[t] - mx - log(sum));
}

cllm_status cllm_sample(const cllm_sampler *s, const float *logits, int V, const uint32_t *history,
                        size_t n_history, cllm_rng *rng, cllm_sample_scratch *sc, uint32_t *token,
                        float *logprob) {
    if (V <= 0) return cllm_fail(CLLM_ERR_USAGE, "sampling needs a vocabulary, got %d logits", V);
    uint32_t t;
    if (s->greedy || s->temperature == 0) {
        cllm_status st = greedy_pick(s, logits, V, history, n_history, sc, &t);
        if (st != CLLM_OK) return st;
    } else {
        entry *e;
        int n;
        cllm_status st = filtered(s, logits, V, history, n_history, sc, &e, &n);
        if (st != CLLM_OK) return st;
        double u = cllm_rng_uniform(rng), cum = 0;
        t = e[n - 1].i;
        for (int i = 0; i < n; i++) {
            cum += e[i].v;
            if (u < cum) {
                t = e[i].i;
                break;
            }
        }
    }
    *token = t;
    if (logprob) *logprob = log_softmax_at(logits, V, t);
    return CLLM_OK;
}
