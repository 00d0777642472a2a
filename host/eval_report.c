/* The report of `cllm eval`: named sections of metrics, printed as one JSON object (--json)
 * or as a readable table. */
#include "cllm/eval.h"

#include <cjson/cJSON.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum { SEC_VALUES, SEC_MC, SEC_GEN } sec_kind;

struct cllm_eval_report {
    cJSON *root;      /* {section: {key: value}} in insertion order */
    sec_kind *kinds;  /* (n) parallel to root's children */
    int n, cap;
};

cllm_status cllm_eval_report_init(cllm_eval_report **rep) {
    *rep = calloc(1, sizeof **rep);
    if (!*rep || !((*rep)->root = cJSON_CreateObject())) {
        free(*rep);
        *rep = NULL;
        return cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
    }
    return CLLM_OK;
}

void cllm_eval_report_free(cllm_eval_report *rep) {
    if (!rep) return;
    cJSON_Delete(rep->root);
    free(rep->kinds);
    free(rep);
}

static cllm_status section(cllm_eval_report *rep, const char *name, sec_kind kind, bool fresh,
                           cJSON **out) {
    *out = cJSON_GetObjectItemCaseSensitive(rep->root, name);
    if (*out) {
        if (fresh) {
            *out = NULL;
            return cllm_fail(CLLM_ERR_USAGE, "the report already has a section '%s'", name);
        }
        return CLLM_OK;
    }
    if (rep->n == rep->cap) {
        int cap = rep->cap ? 2 * rep->cap : 8;
        sec_kind *k = realloc(rep->kinds, (size_t)cap * sizeof *k);
        if (!k) return cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
        rep->kinds = k;
        rep->cap = cap;
    }
    *out = cJSON_AddObjectToObject(rep->root, name);
    if (!*out) return cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
    rep->kinds[rep->n++] = kind;
    return CLLM_OK;
}

/* cJSON writes non-finite numbers as null. */
static bool add_num(cJSON *o, const char *key, double v) {
    return cJSON_AddNumberToObject(o, key, v) != NULL;
}

cllm_status cllm_eval_report_add_mc(cllm_eval_report *rep, const char *name,
                                    const cllm_mc_set *set, const cllm_mc_results *res) {
    cJSON *s;
    cllm_status st = section(rep, name, SEC_MC, true, &s);
    if (st != CLLM_OK) return st;
    bool ok = cJSON_AddStringToObject(s, "task", cllm_mc_task_name(set->task)) &&
              cJSON_AddStringToObject(s, "file", set->path ? set->path : "") &&
              add_num(s, "n", res->n_done) && add_num(s, "skipped", (double)set->stats.skipped);
    for (int m = 0; m < CLLM_MC_N_METRICS && ok; m++) {
        char key[64];
        const char *mn = cllm_mc_metric_name((cllm_mc_metric)m);
        snprintf(key, sizeof key, "%s_stderr", mn);
        ok = add_num(s, mn, res->mean[m]) && add_num(s, key, res->stderr_[m]);
    }
    return ok ? CLLM_OK : cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
}

static bool add_prf(cJSON *s, const char *name, const cllm_prf *p) {
    char k1[48], k2[48];
    snprintf(k1, sizeof k1, "%s_precision", name);
    snprintf(k2, sizeof k2, "%s_recall", name);
    return add_num(s, name, p->f1) && add_num(s, k1, p->precision) && add_num(s, k2, p->recall);
}

cllm_status cllm_eval_report_add_gen(cllm_eval_report *rep, const char *name,
                                     const cllm_gen_set *set, const cllm_gen_results *res) {
    cJSON *s;
    cllm_status st = section(rep, name, SEC_GEN, true, &s);
    if (st != CLLM_OK) return st;
    const cllm_bleu *b = &res->bleu;
    cJSON *prec = cJSON_CreateDoubleArray(b->precisions, CLLM_BLEU_MAX_ORDER);
    bool ok = prec && cJSON_AddStringToObject(s, "file", set->path ? set->path : "") &&
              add_num(s, "n", res->n) && add_num(s, "skipped", (double)set->stats.skipped) &&
              add_num(s, "bleu", b->score);
    if (prec) {
        if (ok && cJSON_AddItemToObject(s, "bleu_precisions", prec))
            prec = NULL;
        cJSON_Delete(prec);
    }
    ok = ok && add_num(s, "bleu_bp", b->bp) && add_num(s, "bleu_ratio", b->ratio) &&
         add_num(s, "bleu_sys_len", (double)b->sys_len) &&
         add_num(s, "bleu_ref_len", (double)b->ref_len) && add_prf(s, "rouge1", &res->rouge.rouge1) &&
         add_prf(s, "rouge2", &res->rouge.rouge2) && add_prf(s, "rougeL", &res->rouge.rougeL);
    return ok ? CLLM_OK : cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
}

cllm_status cllm_eval_report_add_value(cllm_eval_report *rep, const char *sec, const char *key,
                                       double value) {
    cJSON *s;
    cllm_status st = section(rep, sec, SEC_VALUES, false, &s);
    if (st != CLLM_OK) return st;
    cJSON_DeleteItemFromObjectCaseSensitive(s, key);
    return add_num(s, key, value) ? CLLM_OK : cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
}

cllm_status cllm_eval_report_add_string(cllm_eval_report *rep, const char *sec, const char *key,
                                        const char *value) {
    cJSON *s;
    cllm_status st = section(rep, sec, SEC_VALUES, false, &s);
    if (st != CLLM_OK) return st;
    cJSON_DeleteItemFromObjectCaseSensitive(s, key);
    return cJSON_AddStringToObject(s, key, value ? value : "")
               ? CLLM_OK
               : cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
}

char *cllm_eval_report_json(const cllm_eval_report *rep, bool pretty) {
    char *s = pretty ? cJSON_Print(rep->root) : cJSON_PrintUnformatted(rep->root);
    if (!s) cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
    return s;
}

static double num(const cJSON *s, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void fmt(char *buf, size_t n, double v, int prec) {
    if (isfinite(v))
        snprintf(buf, n, "%.*f", prec, v);
    else
        snprintf(buf, n, "n/a");
}

static void print_value(FILE *f, const cJSON *x) {
    if (cJSON_IsString(x))
        fprintf(f, "  %-15s %s\n", x->string, x->valuestring);
    else if (cJSON_IsNumber(x) && isfinite(x->valuedouble) &&
             x->valuedouble == floor(x->valuedouble) && fabs(x->valuedouble) < 1e15)
        fprintf(f, "  %-15s %.0f\n", x->string, x->valuedouble); /* counts */
    else if (cJSON_IsNumber(x) && isfinite(x->valuedouble))
        fprintf(f, "  %-15s %.6g\n", x->string, x->valuedouble);
    else
        fprintf(f, "  %-15s n/a\n", x->string);
}

/* The keys of a section beyond what cllm_eval_report_add_mc / _add_gen wrote (what the caller
 * added with cllm_eval_report_add_value), printed after the section's own table. */
static void print_extra(FILE *f, const cJSON *s, sec_kind kind) {
    static const char *const mc_own[] = {"task", "file", "n", "skipped"};
    static const char *const gen_own[] = {
        "file",    "n",          "skipped",      "bleu",        "bleu_precisions",
        "bleu_bp", "bleu_ratio", "bleu_sys_len", "bleu_ref_len"};
    const char *const *own = kind == SEC_MC ? mc_own : gen_own;
    size_t n_own =
        kind == SEC_MC ? sizeof mc_own / sizeof *mc_own : sizeof gen_own / sizeof *gen_own;
    const cJSON *x;
    cJSON_ArrayForEach(x, s) {
        bool skip = false;
        for (size_t k = 0; k < n_own && !skip; k++)
            skip = !strcmp(x->string, own[k]);
        for (int m = 0; m < CLLM_MC_N_METRICS && !skip && kind == SEC_MC; m++) {
            const char *mn = cllm_mc_metric_name((cllm_mc_metric)m);
            size_t l = strlen(mn);
            skip =
                !strncmp(x->string, mn, l) && (!x->string[l] || !strcmp(x->string + l, "_stderr"));
        }
        if (kind == SEC_GEN && !skip && !strncmp(x->string, "rouge", 5)) skip = true;
        if (!skip) print_value(f, x);
    }
}

void cllm_eval_report_print(const cllm_eval_report *rep, FILE *f) {
    int i = 0;
    const cJSON *s;
    cJSON_ArrayForEach(s, rep->root) {
        sec_kind kind = rep->kinds[i++];
        char v[64], e[64];
        if (kind == SEC_MC) {
            fprintf(f, "%s: multiple choice, task %s, %.0f items", s->string,
                    cJSON_GetObjectItemCaseSensitive(s, "task")->valuestring, num(s, "n"));
            if (num(s, "skipped") > 0) fprintf(f, " (%.0f malformed lines skipped)", num(s, "skipped"));
            fprintf(f, "\n  %-10s %8s   %8s\n", "metric", "value", "stderr");
            for (int m = 0; m < CLLM_MC_N_METRICS; m++) {
                const char *mn = cllm_mc_metric_name((cllm_mc_metric)m);
                char key[64];
                snprintf(key, sizeof key, "%s_stderr", mn);
                fmt(v, sizeof v, num(s, mn), 4);
                fmt(e, sizeof e, num(s, key), 4);
                fprintf(f, "  %-10s %8s ± %8s\n", mn, v, e);
            }
            print_extra(f, s, kind);
        } else if (kind == SEC_GEN) {
            const cJSON *p = cJSON_GetObjectItemCaseSensitive(s, "bleu_precisions");
            fprintf(f, "%s: generation, %.0f prompts", s->string, num(s, "n"));
            if (num(s, "skipped") > 0) fprintf(f, " (%.0f malformed lines skipped)", num(s, "skipped"));
            fmt(v, sizeof v, num(s, "bleu"), 2);
            fprintf(f, "\n  %-10s %8s   (sacreBLEU 13a:", "BLEU", v);
            for (int k = 0; k < cJSON_GetArraySize(p); k++)
                fprintf(f, "%s%.1f", k ? "/" : " ", cJSON_GetArrayItem(p, k)->valuedouble);
            fprintf(f, ", BP %.3f, ratio %.3f, hyp_len %.0f, ref_len %.0f)\n", num(s, "bleu_bp"),
                    num(s, "bleu_ratio"), num(s, "bleu_sys_len"), num(s, "bleu_ref_len"));
            const char *rn[3] = {"rouge1", "rouge2", "rougeL"};
            for (int k = 0; k < 3; k++) {
                char kp[48], kr[48], pv[64], rv[64];
                snprintf(kp, sizeof kp, "%s_precision", rn[k]);
                snprintf(kr, sizeof kr, "%s_recall", rn[k]);
                fmt(v, sizeof v, num(s, rn[k]), 4);
                fmt(pv, sizeof pv, num(s, kp), 4);
                fmt(rv, sizeof rv, num(s, kr), 4);
                fprintf(f, "  %-10s %8s   (F1, mean over prompts; precision %s, recall %s)\n",
                        rn[k], v, pv, rv);
            }
            print_extra(f, s, kind);
        } else {
            fprintf(f, "%s\n", s->string);
            const cJSON *x;
            cJSON_ArrayForEach(x, s) print_value(f, x);
        }
    }
}
