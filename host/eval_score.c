/* Multiple-choice scoring: predictions per normalisation, accuracies with lm-eval's standard
 * error of the mean, and the --log-samples lines. */
#include "cllm/eval.h"

#include "eval_internal.h"

#include <cjson/cJSON.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const metric_names[CLLM_MC_N_METRICS] = {"acc", "acc_norm", "acc_bytes",
                                                            "acc_token"};

const char *cllm_mc_metric_name(cllm_mc_metric m) {
    return (int)m >= 0 && m < CLLM_MC_N_METRICS ? metric_names[m] : "unknown";
}

cllm_status cllm_mc_results_init(cllm_mc_results *res, const cllm_mc_set *set) {
    memset(res, 0, sizeof *res);
    res->items = calloc((size_t)(set->n ? set->n : 1), sizeof *res->items);
    if (!res->items) return cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
    res->n = set->n;
    for (int i = 0; i < set->n; i++) {
        const cllm_mc_item *it = &set->items[i];
        cllm_mc_item_result *r = &res->items[i];
        r->n_choices = it->n_choices;
        r->gold = it->gold;
        r->scores = calloc((size_t)it->n_choices, sizeof *r->scores);
        r->chars = calloc((size_t)it->n_choices, sizeof *r->chars);
        r->bytes = calloc((size_t)it->n_choices, sizeof *r->bytes);
        if (!r->scores || !r->chars || !r->bytes) {
            cllm_mc_results_free(res);
            return cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
        }
        for (int c = 0; c < it->n_choices; c++) {
            r->chars[c] = (int)ev_utf8_chars(it->choices[c]);
            r->bytes[c] = (int)strlen(it->choices[c]);
        }
    }
    for (int m = 0; m < CLLM_MC_N_METRICS; m++) res->mean[m] = res->stderr_[m] = NAN;
    return CLLM_OK;
}

void cllm_mc_results_free(cllm_mc_results *res) {
    if (!res) return;
    for (int i = 0; i < res->n && res->items; i++) {
        free(res->items[i].scores);
        free(res->items[i].chars);
        free(res->items[i].bytes);
    }
    free(res->items);
    memset(res, 0, sizeof *res);
}

static double divisor(const cllm_mc_item_result *r, int m, int c) {
    switch (m) {
    case CLLM_MC_ACC_NORM:
        return r->chars[c];
    case CLLM_MC_ACC_BYTES:
        return r->bytes[c];
    case CLLM_MC_ACC_TOKEN:
        return r->scores[c].n_tokens;
    default:
        return 1.0;
    }
}

cllm_status cllm_mc_results_set(cllm_mc_results *res, const cllm_mc_set *set, int i,
                                const cllm_mc_choice_score *scores) {
    if (i < 0 || i >= res->n || res->n != set->n)
        return cllm_fail(CLLM_ERR_USAGE, "item %d is not in this result set (%d items)", i,
                         res->n);
    cllm_mc_item_result *r = &res->items[i];
    for (int c = 0; c < r->n_choices; c++) {
        if (isnan(scores[c].loglik) || scores[c].loglik == INFINITY)
            return cllm_fail(CLLM_ERR_NUMERIC, "item %d (line %ld), choice %d: log-likelihood %g "
                             "is not a log-probability", i, set->items[i].line, c,
                             scores[c].loglik);
        if (scores[c].n_tokens < 1)
            return cllm_fail(CLLM_ERR_USAGE, "item %d (line %ld), choice %d: %d tokens scored "
                             "(a continuation has at least one)", i, set->items[i].line, c,
                             scores[c].n_tokens);
    }
    memcpy(r->scores, scores, (size_t)r->n_choices * sizeof *scores);
    for (int m = 0; m < CLLM_MC_N_METRICS; m++) {
        int best = 0;
        double bv = r->scores[0].loglik / divisor(r, m, 0);
        for (int c = 1; c < r->n_choices; c++) { /* first maximum wins, as numpy.argmax */
            double v = r->scores[c].loglik / divisor(r, m, c);
            if (v > bv) best = c, bv = v;
        }
        r->pred[m] = best;
    }
    if (!r->done) res->n_done++;
    r->done = true;
    return CLLM_OK;
}

void cllm_mc_results_summarize(cllm_mc_results *res) {
    for (int m = 0; m < CLLM_MC_N_METRICS; m++) {
        double sum = 0;
        int n = 0;
        for (int i = 0; i < res->n; i++)
            if (res->items[i].done) sum += res->items[i].pred[m] == res->items[i].gold, n++;
        double mu = n ? sum / n : NAN, ss = 0;
        for (int i = 0; i < res->n; i++)
            if (res->items[i].done) {
                double d = (res->items[i].pred[m] == res->items[i].gold) - mu;
                ss += d * d;
            }
        res->mean[m] = mu;
        /* lm-eval's mean_stderr: sqrt(sum (x - mu)^2 / (n - 1)) / sqrt(n). */
        res->stderr_[m] = n >= 2 ? sqrt(ss / (n - 1)) / sqrt((double)n) : NAN;
    }
}

cllm_status cllm_mc_evaluate(cllm_mc_results *res, const cllm_mc_set *set, cllm_mc_loglik_fn fn,
                             void *user, FILE *samples) {
    cllm_status st = cllm_mc_results_init(res, set);
    if (st != CLLM_OK) return st;
    int maxc = 1;
    for (int i = 0; i < set->n; i++)
        if (set->items[i].n_choices > maxc) maxc = set->items[i].n_choices;
    cllm_mc_choice_score *sc = calloc((size_t)maxc, sizeof *sc);
    if (!sc) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
        goto fail;
    }
    for (int i = 0; i < set->n; i++) {
        memset(sc, 0, (size_t)maxc * sizeof *sc);
        CLLM_TRY(fn(user, &set->items[i], sc));
        CLLM_TRY(cllm_mc_results_set(res, set, i, sc));
        if (samples) {
            char *line = cllm_mc_sample_json(set, res, i);
            if (!line) {
                st = CLLM_ERR_NOMEM;
                goto fail;
            }
            if (fprintf(samples, "%s\n", line) < 0) {
                free(line);
                st = cllm_fail(CLLM_ERR_IO, "cannot write the samples log");
                goto fail;
            }
            free(line);
        }
    }
    free(sc);
    cllm_mc_results_summarize(res);
    return CLLM_OK;
fail:
    free(sc);
    cllm_mc_results_free(res);
    return st;
}

/* cJSON writes NaN and infinities as null; a -inf log-likelihood becomes null as well. */
char *cllm_mc_sample_json(const cllm_mc_set *set, const cllm_mc_results *res, int i) {
    if (i < 0 || i >= set->n || i >= res->n) {
        cllm_fail(CLLM_ERR_USAGE, "item %d is not in the set", i);
        return NULL;
    }
    const cllm_mc_item *it = &set->items[i];
    const cllm_mc_item_result *r = &res->items[i];
    cJSON *o = cJSON_CreateObject(), *ch = NULL;
    if (!o) goto oom;
    if (set->path) cJSON_AddStringToObject(o, "file", set->path);
    cJSON_AddNumberToObject(o, "index", i);
    cJSON_AddNumberToObject(o, "line", (double)it->line);
    if (it->id) cJSON_AddStringToObject(o, "id", it->id);
    cJSON_AddStringToObject(o, "task", cllm_mc_task_name(set->task));
    cJSON_AddStringToObject(o, "context", it->context);
    cJSON_AddNumberToObject(o, "gold", it->gold);
    ch = cJSON_AddArrayToObject(o, "choices");
    if (!ch) goto oom;
    for (int c = 0; c < it->n_choices; c++) {
        cJSON *e = cJSON_CreateObject();
        if (!e) goto oom;
        cJSON_AddItemToArray(ch, e);
        cJSON_AddStringToObject(e, "text", it->choices[c]);
        cJSON_AddStringToObject(e, "continuation", it->continuations[c]);
        if (r->done) {
            cJSON_AddNumberToObject(e, "loglik", r->scores[c].loglik);
            cJSON_AddNumberToObject(e, "tokens", r->scores[c].n_tokens);
            cJSON_AddBoolToObject(e, "greedy", r->scores[c].greedy);
        }
        cJSON_AddNumberToObject(e, "chars", r->chars[c]);
        cJSON_AddNumberToObject(e, "bytes", r->bytes[c]);
        if (r->done) {
            cJSON_AddNumberToObject(e, "loglik_per_char", r->scores[c].loglik / r->chars[c]);
            cJSON_AddNumberToObject(e, "loglik_per_byte", r->scores[c].loglik / r->bytes[c]);
            cJSON_AddNumberToObject(e, "loglik_per_token",
                                    r->scores[c].loglik / r->scores[c].n_tokens);
        }
    }
    if (r->done) {
        cJSON *pred = cJSON_AddObjectToObject(o, "pred");
        cJSON *corr = cJSON_AddObjectToObject(o, "correct");
        if (!pred || !corr) goto oom;
        for (int m = 0; m < CLLM_MC_N_METRICS; m++) {
            cJSON_AddNumberToObject(pred, metric_names[m], r->pred[m]);
            cJSON_AddBoolToObject(corr, metric_names[m], r->pred[m] == r->gold);
        }
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s) cllm_fail(CLLM_ERR_NOMEM, "out of host memory writing a sample line");
    return s;
oom:
    cJSON_Delete(o);
    cllm_fail(CLLM_ERR_NOMEM, "out of host memory writing a sample line");
    return NULL;
}

cllm_status cllm_mc_window(uint32_t *in, int *n_in, int *first, const uint32_t *ctx, int n_ctx,
                           const uint32_t *cont, int n_cont, int T, uint32_t eot) {
    if (n_cont < 1 || T < 1 || n_ctx < 0)
        return cllm_fail(CLLM_ERR_USAGE, "cllm_mc_window: %d continuation tokens, window %d",
                         n_cont, T);
    if (n_cont > T)
        return cllm_fail(CLLM_ERR_TOO_LARGE, "a continuation of %d tokens does not fit the "
                         "model's window of %d", n_cont, T);
    if (n_ctx == 0) ctx = &eot, n_ctx = 1;
    /* whole = ctx + cont; keep its last min(len, T + 1) tokens, feed all but the last. */
    int len = n_ctx + n_cont, keep = len < T + 1 ? len : T + 1, skip = len - keep;
    *n_in = keep - 1;
    for (int i = 0; i < *n_in; i++) {
        int k = skip + i;
        in[i] = k < n_ctx ? ctx[k] : cont[k - n_ctx];
    }
    *first = *n_in - n_cont;
    return CLLM_OK;
}

cllm_status cllm_mc_token_logprob(double *logprob, bool *is_argmax, const float *logits, int V,
                                  uint32_t target) {
    if (V < 1 || target >= (uint32_t)V)
        return cllm_fail(CLLM_ERR_USAGE, "token %u is outside the vocabulary of %d", target, V);
    int best = 0;
    double mx = logits[0];
    for (int v = 1; v < V; v++)
        if (logits[v] > mx) mx = logits[v], best = v;
    double sum = 0;
    for (int v = 0; v < V; v++) sum += exp((double)logits[v] - mx);
    *logprob = (double)logits[target] - mx - log(sum);
    if (is_argmax) *is_argmax = best == (int)target;
    return CLLM_OK;
}
