/* Training options (cllm/train.h): defaults, validation, JSON both ways, the saved state's
 * options for a resume. No OpenCL here. */
#include "cllm/checkpoint.h"
#include "cllm/train.h"
#include "cllm/util.h"
#include "train_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cJSON *cllm_json_u64(uint64_t v) {
    if (v <= (1ull << 53)) return cJSON_CreateNumber((double)v);
    char b[24];
    snprintf(b, sizeof b, "%llu", (unsigned long long)v);
    return cJSON_CreateString(b);
}

bool cllm_json_as_u64(const cJSON *j, uint64_t *v) {
    if (cJSON_IsNumber(j) && j->valuedouble >= 0 && j->valuedouble <= (double)(1ull << 53) &&
        j->valuedouble == floor(j->valuedouble)) {
        *v = (uint64_t)j->valuedouble;
        return true;
    }
    if (cJSON_IsString(j) && *j->valuestring >= '0' && *j->valuestring <= '9') {
        char *end;
        unsigned long long x = strtoull(j->valuestring, &end, 10);
        if (!*end) {
            *v = x;
            return true;
        }
    }
    return false;
}

cllm_train_opts cllm_train_opts_default(void) {
    return (cllm_train_opts){.steps = 1000,
                             .batch = 8,
                             .seq = 256,
                             .grad_accum = 1,
                             .lr = 6e-4,
                             .min_lr = -1,
                             .warmup = 100,
                             .schedule = CLLM_SCHED_COSINE,
                             .weight_decay = 0.1,
                             .beta1 = 0.9,
                             .beta2 = 0.95,
                             .eps = 1e-8,
                             .clip = 1.0,
                             .seed = 1337,
                             .eval_every = 100,
                             .eval_batches = 20,
                             .ckpt_every = 500,
                             .keep = 3,
                             .max_skips = 5,
                             .log_every = 10,
                             .sample_every = 0,
                             .sample_tokens = 64};
}

double cllm_train_min_lr(const cllm_train_opts *o) {
    return o->min_lr < 0 ? o->lr / 10 : o->min_lr;
}

/* ---------------------------------------------------------------- the option table */

typedef enum { F_INT, F_DOUBLE, F_U64, F_SCHED } field_type;

typedef struct {
    const char *key; /* JSON key; the flag is "--" + key with '-' for '_' */
    field_type type;
    size_t off;
    double lo, hi; /* valid range (F_INT, F_DOUBLE), inclusive unless noted in check_one */
} field;

#define F(key, type, member, lo, hi)                                                               \
    { key, type, offsetof(cllm_train_opts, member), lo, hi }
static const field FIELDS[] = {
    F("steps", F_INT, steps, 1, 2e9),
    F("batch", F_INT, batch, 1, 1 << 20),
    F("seq", F_INT, seq, 1, 1 << 16),
    F("grad_accum", F_INT, grad_accum, 1, 1 << 16),
    F("lr", F_DOUBLE, lr, 0, 10),
    F("min_lr", F_DOUBLE, min_lr, -1, 10),
    F("warmup", F_INT, warmup, 0, 2e9),
    F("schedule", F_SCHED, schedule, 0, 0),
    F("weight_decay", F_DOUBLE, weight_decay, 0, 1e3),
    F("beta1", F_DOUBLE, beta1, 0, 1),
    F("beta2", F_DOUBLE, beta2, 0, 1),
    F("eps", F_DOUBLE, eps, 0, 1),
    F("clip", F_DOUBLE, clip, 0, 1e9),
    F("seed", F_U64, seed, 0, 0),
    F("eval_every", F_INT, eval_every, 0, 2e9),
    F("eval_batches", F_INT, eval_batches, 1, 2e9),
    F("ckpt_every", F_INT, ckpt_every, 0, 2e9),
    F("keep", F_INT, keep, 0, 1e6),
    F("max_skips", F_INT, max_skips, 1, 1e6),
    F("log_every", F_INT, log_every, 1, 2e9),
    F("sample_every", F_INT, sample_every, 0, 2e9),
    F("sample_tokens", F_INT, sample_tokens, 1, 1 << 20),
};
#undef F
#define N_FIELDS ((int)(sizeof FIELDS / sizeof *FIELDS))

static void flag_name(const char *key, char *out, size_t cap) {
    snprintf(out, cap, "--%s", key);
    for (char *p = out + 2; *p; p++)
        if (*p == '_') *p = '-';
}

static double get_num(const cllm_train_opts *o, const field *f) {
    const char *p = (const char *)o + f->off;
    return f->type == F_INT ? *(const int *)p : *(const double *)p;
}

cllm_status cllm_train_opts_validate(const cllm_train_opts *o) {
    for (int i = 0; i < N_FIELDS; i++) {
        const field *f = &FIELDS[i];
        if (f->type != F_INT && f->type != F_DOUBLE) continue;
        double v = get_num(o, f);
        char flag[40];
        flag_name(f->key, flag, sizeof flag);
        if (!isfinite(v) || v < f->lo || v > f->hi)
            return cllm_fail(CLLM_ERR_USAGE, "%s must be in [%g, %g], got %g", flag, f->lo, f->hi,
                             v);
    }
    if (!(o->lr > 0)) return cllm_fail(CLLM_ERR_USAGE, "--lr must be > 0, got %g", o->lr);
    if (!(o->eps > 0)) return cllm_fail(CLLM_ERR_USAGE, "--eps must be > 0, got %g", o->eps);
    if (o->beta1 >= 1 || o->beta2 >= 1)
        return cllm_fail(CLLM_ERR_USAGE, "--beta1 and --beta2 must be below 1, got %g and %g",
                         o->beta1, o->beta2);
    if (o->min_lr > o->lr)
        return cllm_fail(CLLM_ERR_USAGE, "--min-lr %g is above --lr %g", o->min_lr, o->lr);
    if ((unsigned)o->schedule > CLLM_SCHED_CONSTANT)
        return cllm_fail(CLLM_ERR_USAGE, "--schedule: unknown kind %d", (int)o->schedule);
    return CLLM_OK;
}

static cllm_status apply_object(cllm_train_opts *o, const cJSON *obj, const char *source) {
    for (const cJSON *it = obj->child; it; it = it->next) {
        const field *f = NULL;
        for (int i = 0; i < N_FIELDS && !f; i++)
            if (!strcmp(FIELDS[i].key, it->string)) f = &FIELDS[i];
        if (!f) {
            char known[512] = "";
            for (int i = 0; i < N_FIELDS; i++)
                snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "",
                         FIELDS[i].key);
            return cllm_fail(CLLM_ERR_FORMAT, "%s: unknown training option \"%s\" (known: %s)",
                             source, it->string, known);
        }
        char *p = (char *)o + f->off;
        switch (f->type) {
        case F_INT:
            if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) ||
                fabs(it->valuedouble) > 2147483647.0)
                return cllm_fail(CLLM_ERR_FORMAT, "%s: training option \"%s\" must be an integer",
                                 source, f->key);
            *(int *)p = (int)it->valuedouble;
            break;
        case F_DOUBLE:
            if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble))
                return cllm_fail(CLLM_ERR_FORMAT, "%s: training option \"%s\" must be a number",
                                 source, f->key);
            *(double *)p = it->valuedouble;
            break;
        case F_U64:
            if (!cllm_json_as_u64(it, (uint64_t *)(void *)p))
                return cllm_fail(CLLM_ERR_FORMAT,
                                 "%s: training option \"%s\" must be a non-negative integer",
                                 source, f->key);
            break;
        case F_SCHED:
            if (!cJSON_IsString(it) ||
                cllm_schedule_kind_parse(it->valuestring, (cllm_schedule_kind *)(void *)p) !=
                    CLLM_OK)
                return cllm_fail(CLLM_ERR_FORMAT,
                                 "%s: training option \"schedule\" must be \"cosine\", \"linear\" "
                                 "or \"constant\"",
                                 source);
            break;
        }
    }
    return CLLM_OK;
}

cllm_status cllm_train_opts_apply_json(cllm_train_opts *o, const char *json, const char *source) {
    cJSON *obj = cJSON_Parse(json);
    cllm_status st;
    if (!cJSON_IsObject(obj))
        st = cllm_fail(CLLM_ERR_FORMAT, "%s: training options are not a JSON object", source);
    else
        st = apply_object(o, obj, source);
    cJSON_Delete(obj);
    return st;
}

cllm_status cllm_train_opts_apply_config(cllm_train_opts *o, const char *path) {
    char *text = NULL;
    cllm_status st = cllm_read_file(path, &text, NULL);
    if (st != CLLM_OK) return st;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return cllm_fail(CLLM_ERR_FORMAT, "%s: not a JSON object", path);
    }
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(root, "training");
    char *source = cllm_strdup_printf("%s: \"training\"", path);
    if (!tr || cJSON_IsNull(tr))
        st = CLLM_OK;
    else if (!cJSON_IsObject(tr))
        st = cllm_fail(CLLM_ERR_FORMAT, "%s is not an object", source);
    else
        st = apply_object(o, tr, source ? source : path);
    free(source);
    cJSON_Delete(root);
    return st;
}

static cJSON *opts_object(const cllm_train_opts *o) {
    cJSON *obj = cJSON_CreateObject();
    for (int i = 0; i < N_FIELDS; i++) {
        const field *f = &FIELDS[i];
        const char *p = (const char *)o + f->off;
        switch (f->type) {
        case F_INT:
        case F_DOUBLE:
            cJSON_AddNumberToObject(obj, f->key, get_num(o, f));
            break;
        case F_U64:
            cJSON_AddItemToObject(obj, f->key, cllm_json_u64(*(const uint64_t *)(const void *)p));
            break;
        case F_SCHED:
            cJSON_AddStringToObject(obj, f->key, cllm_schedule_kind_name(o->schedule));
            break;
        }
    }
    return obj;
}

char *cllm_train_opts_to_json(const cllm_train_opts *o) {
    cJSON *obj = opts_object(o);
    char *s = cJSON_Print(obj);
    cJSON_Delete(obj);
    return s;
}

cllm_status cllm_train_state_read(const char *run_dir, cllm_train_opts *opts, char **args_json,
                                  int *step, char **ckpt) {
    if (args_json) *args_json = NULL;
    if (ckpt) *ckpt = NULL;
    char *dir = cllm_checkpoint_latest(run_dir);
    if (!dir) return cllm_fail_context(CLLM_ERR_IO, "cannot resume");
    char *path = cllm_path_join(dir, "state.json"), *text = NULL;
    cJSON *root = NULL;
    cllm_status st = CLLM_OK;
    if (!path || !cllm_is_file(path)) {
        st = cllm_fail(CLLM_ERR_FORMAT,
                       "%s has no state.json: it is not a training checkpoint (start a new run "
                       "from its weights with --init instead)",
                       dir);
        goto done;
    }
    CLLM_TRY(cllm_read_file(path, &text, NULL));
    root = cJSON_Parse(text);
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, "options");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "step");
    if (!cJSON_IsObject(o) || !cJSON_IsNumber(s) || s->valuedouble < 0) {
        st = cllm_fail(CLLM_ERR_FORMAT,
                       "%s: not a cllm training state (no \"options\" or \"step\")", path);
        goto done;
    }
    cllm_train_opts t = cllm_train_opts_default();
    CLLM_TRY(apply_object(&t, o, path));
    *opts = t;
    if (step) *step = (int)s->valuedouble;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "args");
    if (args_json && cJSON_IsObject(a)) *args_json = cJSON_PrintUnformatted(a);
    if (ckpt) {
        *ckpt = dir;
        dir = NULL;
    }
done:
fail:
    cJSON_Delete(root);
    free(text);
    free(path);
    free(dir);
    return st;
}
