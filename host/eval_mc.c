/* Multiple-choice data sets: HellaSwag, ARC, MMLU and the generic form, read from JSONL and
 * turned into (context, continuations, gold) exactly as lm-evaluation-harness 0.4 builds its
 * loglikelihood requests (see cllm/eval.h for the task configs followed). */
#include "cllm/eval.h"

#include "cllm/util.h"
#include "eval_internal.h"

#include <cjson/cJSON.h>
#include <utf8proc.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const task_names[] = {"auto", "hellaswag", "arc", "mmlu", "mmlu_letters",
                                         "generic"};

const char *cllm_mc_task_name(cllm_mc_task task) {
    if ((int)task < 0 || (int)task >= (int)(sizeof task_names / sizeof *task_names))
        return "unknown";
    return task_names[task];
}

cllm_status cllm_mc_task_parse(cllm_mc_task *task, const char *name) {
    for (int i = 0; i < (int)(sizeof task_names / sizeof *task_names); i++)
        if (name && !strcmp(name, task_names[i])) {
            *task = (cllm_mc_task)i;
            return CLLM_OK;
        }
    return cllm_fail(CLLM_ERR_USAGE, "unknown multiple-choice task '%s' (expected one of %s)",
                     name ? name : "", CLLM_MC_TASK_CHOICES);
}

/* ---- text helpers ---------------------------------------------------------------------- */

static void put_utf8(ev_buf *b, uint32_t cp) {
    utf8proc_uint8_t tmp[4];
    utf8proc_ssize_t n = utf8proc_encode_char((utf8proc_int32_t)cp, tmp);
    ev_buf_add(b, (const char *)tmp, (size_t)n);
}

char *cllm_mc_capitalize(const char *text) {
    ev_buf b = {0};
    size_t n = strlen(text), i = 0;
    bool first = true;
    while (i < n) {
        uint32_t cp;
        int l = ev_utf8_decode((const unsigned char *)text + i, n - i, &cp);
        if (!l) { /* not UTF-8: keep the byte (loaders reject such text before it gets here) */
            ev_buf_addc(&b, text[i++]);
            first = false;
            continue;
        }
        i += (size_t)l;
        if (first)
            put_utf8(&b, (uint32_t)utf8proc_totitle((utf8proc_int32_t)cp));
        else if (cp == 0x130) /* the one full lower-case mapping of a capital: "i" + U+0307 */
            ev_buf_adds(&b, "i\xcc\x87");
        else
            put_utf8(&b, (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp));
        first = false;
    }
    return ev_buf_take(&b);
}

char *cllm_mc_hellaswag_preprocess(const char *text) {
    size_t b, e;
    ev_py_strip(text, strlen(text), &b, &e);
    /* text.replace(" [title]", ". ") */
    ev_buf t1 = {0};
    for (size_t i = b; i < e;) {
        if (e - i >= 8 && !memcmp(text + i, " [title]", 8)) {
            ev_buf_adds(&t1, ". ");
            i += 8;
        } else {
            ev_buf_addc(&t1, text[i++]);
        }
    }
    char *s1 = ev_buf_take(&t1);
    if (!s1) return NULL;
    /* re.sub(r"\[.*?\]", "", text): from each '[', the shortest run up to a ']' that does not
     * cross a newline ('.' does not match one); a '[' without such a ']' stays. */
    ev_buf t2 = {0};
    for (size_t i = 0; s1[i];) {
        if (s1[i] == '[') {
            size_t j = i + 1;
            while (s1[j] && s1[j] != ']' && s1[j] != '\n') j++;
            if (s1[j] == ']') {
                i = j + 1;
                continue;
            }
        }
        ev_buf_addc(&t2, s1[i++]);
    }
    free(s1);
    char *s2 = ev_buf_take(&t2);
    if (!s2) return NULL;
    /* text.replace("  ", " "): one left-to-right pass over non-overlapping pairs. */
    size_t o = 0;
    for (size_t i = 0; s2[i];) {
        if (s2[i] == ' ' && s2[i + 1] == ' ') {
            s2[o++] = ' ';
            i += 2;
        } else {
            s2[o++] = s2[i++];
        }
    }
    s2[o] = 0;
    return s2;
}

/* ---- record access ----------------------------------------------------------------------- */

static const char *get_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static cllm_status need_str(const char **out, const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return cllm_fail(CLLM_ERR_FORMAT, "missing key '%s'", key);
    if (!cJSON_IsString(v)) return cllm_fail(CLLM_ERR_FORMAT, "'%s' must be a string", key);
    *out = v->valuestring;
    return CLLM_OK;
}

/* An integer given as a JSON number or as a string of decimal digits (Python's int()). */
static bool as_int(const cJSON *v, long *out) {
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (!isfinite(d) || d != floor(d) || fabs(d) > 1e9) return false;
        *out = (long)d;
        return true;
    }
    if (cJSON_IsString(v)) {
        size_t b, e;
        const char *s = v->valuestring;
        ev_py_strip(s, strlen(s), &b, &e);
        if (b == e || e - b > 9) return false;
        long x = 0;
        for (size_t i = b; i < e; i++) {
            if (s[i] < '0' || s[i] > '9') return false;
            x = x * 10 + (s[i] - '0');
        }
        *out = x;
        return true;
    }
    return false;
}

static char *id_text(const cJSON *o) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "ind");
    if (!v) v = cJSON_GetObjectItemCaseSensitive(o, "id");
    if (cJSON_IsString(v)) return strdup(v->valuestring);
    if (cJSON_IsNumber(v)) return cllm_strdup_printf("%.17g", v->valuedouble);
    return NULL;
}

/* A JSON array of strings, at least two of them. */
static cllm_status string_array(const cJSON *arr, const char *key, int *n_out) {
    if (!arr) return cllm_fail(CLLM_ERR_FORMAT, "missing key '%s'", key);
    if (!cJSON_IsArray(arr)) return cllm_fail(CLLM_ERR_FORMAT, "'%s' must be an array", key);
    int n = cJSON_GetArraySize(arr), i = 0;
    if (n < 2)
        return cllm_fail(CLLM_ERR_FORMAT, "'%s' has %d entr%s (at least 2 choices needed)", key,
                         n, n == 1 ? "y" : "ies");
    const cJSON *c;
    cJSON_ArrayForEach(c, arr) {
        if (!cJSON_IsString(c))
            return cllm_fail(CLLM_ERR_FORMAT, "'%s'[%d] must be a string", key, i);
        i++;
    }
    *n_out = n;
    return CLLM_OK;
}

/* ---- items ------------------------------------------------------------------------------- */

void cllm_mc_item_free(cllm_mc_item *it) {
    if (!it) return;
    for (int c = 0; c < it->n_choices; c++) {
        if (it->choices) free(it->choices[c]);
        if (it->continuations) free(it->continuations[c]);
    }
    free(it->choices);
    free(it->continuations);
    free(it->context);
    free(it->id);
    memset(it, 0, sizeof *it);
}

static cllm_status item_alloc(cllm_mc_item *it, int n) {
    it->choices = calloc((size_t)n, sizeof *it->choices);
    it->continuations = calloc((size_t)n, sizeof *it->continuations);
    if (!it->choices || !it->continuations)
        return cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
    it->n_choices = n;
    return CLLM_OK;
}

/* Takes ownership of `context`; moves its trailing whitespace to the continuations as
 * lm-eval's _encode_pair does, and checks choices and gold. */
static cllm_status item_finish(cllm_mc_item *it, char *context) {
    it->context = context;
    if (!context) return cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
    size_t n = strlen(context), b, e;
    ev_py_strip(context, n, &b, &e);
    if (b == e) e = 0; /* all whitespace: Python's rstrip leaves "" */
    for (int c = 0; c < it->n_choices; c++) {
        if (!it->choices[c]) return cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
        if (!it->choices[c][0])
            return cllm_fail(CLLM_ERR_FORMAT, "choice %d is empty (its length normalises acc_norm)",
                             c);
        it->continuations[c] = cllm_strdup_printf("%s %s", context + e, it->choices[c]);
        if (!it->continuations[c]) return cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
    }
    context[e] = 0;
    if (it->gold < 0 || it->gold >= it->n_choices)
        return cllm_fail(CLLM_ERR_FORMAT, "the answer index %d is out of range (%d choices)",
                         it->gold, it->n_choices);
    return CLLM_OK;
}

static cllm_status parse_hellaswag(cllm_mc_item *it, const cJSON *o) {
    cllm_status st;
    const char *label = NULL, *ctx_a = get_str(o, "ctx_a"), *ctx_b = get_str(o, "ctx_b"), *ctx = NULL;
    const cJSON *endings = cJSON_GetObjectItemCaseSensitive(o, "endings");
    int n;
    long gold;
    CLLM_TRY(need_str(&label, o, "activity_label"));
    CLLM_TRY(string_array(endings, "endings", &n));
    if (!as_int(cJSON_GetObjectItemCaseSensitive(o, "label"), &gold))
        return cllm_fail(CLLM_ERR_FORMAT, "'label' must be the index of the right ending "
                                          "(a number or a string of digits)");
    CLLM_TRY(item_alloc(it, n));
    it->gold = (int)gold;
    char *raw;
    if (ctx_a && ctx_b) {
        char *cap = cllm_mc_capitalize(ctx_b);
        if (!cap) return CLLM_ERR_NOMEM;
        raw = cllm_strdup_printf("%s: %s %s", label, ctx_a, cap);
        free(cap);
    } else {
        if (!ctx_a && !ctx_b) {
            CLLM_TRY(need_str(&ctx, o, "ctx"));
        } else {
            return cllm_fail(CLLM_ERR_FORMAT, "'ctx_a' and 'ctx_b' must both be strings");
        }
        raw = cllm_strdup_printf("%s: %s", label, ctx);
    }
    if (!raw) return cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
    char *context = cllm_mc_hellaswag_preprocess(raw);
    free(raw);
    int c = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, endings) it->choices[c++] = cllm_mc_hellaswag_preprocess(e->valuestring);
    return item_finish(it, context);
fail:
    return st;
}

/* ARC's choices: {text: [], label: []}, [{text, label}], or [text]. */
static cllm_status arc_choices(cllm_mc_item *it, const cJSON *node, const char **labels) {
    cllm_status st;
    int n;
    if (!node) return cllm_fail(CLLM_ERR_FORMAT, "missing key 'choices'");
    if (cJSON_IsObject(node)) {
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(node, "text");
        const cJSON *lab = cJSON_GetObjectItemCaseSensitive(node, "label");
        CLLM_TRY(string_array(text, "choices.text", &n));
        int nl;
        CLLM_TRY(string_array(lab, "choices.label", &nl));
        if (nl != n)
            return cllm_fail(CLLM_ERR_FORMAT, "choices.text has %d entries but choices.label %d",
                             n, nl);
        CLLM_TRY(item_alloc(it, n));
        for (int i = 0; i < n; i++) {
            it->choices[i] = strdup(cJSON_GetArrayItem(text, i)->valuestring);
            labels[i] = cJSON_GetArrayItem(lab, i)->valuestring;
        }
        return CLLM_OK;
    }
    if (!cJSON_IsArray(node))
        return cllm_fail(CLLM_ERR_FORMAT, "'choices' must be an array or {text, label}");
    n = cJSON_GetArraySize(node);
    if (n < 2) return cllm_fail(CLLM_ERR_FORMAT, "'choices' has %d entries (at least 2 needed)", n);
    CLLM_TRY(item_alloc(it, n));
    for (int i = 0; i < n; i++) {
        const cJSON *c = cJSON_GetArrayItem(node, i);
        if (cJSON_IsString(c)) {
            it->choices[i] = strdup(c->valuestring);
            labels[i] = NULL;
        } else if (cJSON_IsObject(c) && get_str(c, "text") && get_str(c, "label")) {
            it->choices[i] = strdup(get_str(c, "text"));
            labels[i] = get_str(c, "label");
        } else {
            return cllm_fail(CLLM_ERR_FORMAT, "choices[%d] must be a string or {text, label}", i);
        }
    }
    return CLLM_OK;
fail:
    return st;
}

static cllm_status parse_arc(cllm_mc_item *it, const cJSON *o) {
    cllm_status st;
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(o, "question");
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(o, "choices");
    const char *stem = NULL;
    if (cJSON_IsString(q)) {
        stem = q->valuestring;
    } else if (cJSON_IsObject(q)) {
        CLLM_TRY(need_str(&stem, q, "stem"));
        if (cJSON_GetObjectItemCaseSensitive(q, "choices"))
            choices = cJSON_GetObjectItemCaseSensitive(q, "choices");
    } else {
        return cllm_fail(CLLM_ERR_FORMAT, q ? "'question' must be a string or {stem, choices}"
                                            : "missing key 'question'");
    }
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(o, "answerKey");
    char keybuf[32];
    if (cJSON_IsString(key))
        snprintf(keybuf, sizeof keybuf, "%s", key->valuestring);
    else if (cJSON_IsNumber(key) && key->valuedouble == floor(key->valuedouble) &&
             fabs(key->valuedouble) < 1e9)
        snprintf(keybuf, sizeof keybuf, "%ld", (long)key->valuedouble);
    else
        return cllm_fail(CLLM_ERR_FORMAT, key ? "'answerKey' must be a letter or a digit"
                                              : "missing key 'answerKey'");
    const char *labels[64];
    int n = choices && cJSON_IsArray(choices) ? cJSON_GetArraySize(choices) : 0;
    if (cJSON_IsObject(choices))
        n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(choices, "text"));
    if (n > 64) return cllm_fail(CLLM_ERR_FORMAT, "%d choices (at most 64 supported)", n);
    CLLM_TRY(arc_choices(it, choices, labels));
    it->gold = -1;
    bool have_labels = true;
    for (int i = 0; i < it->n_choices; i++) have_labels = have_labels && labels[i];
    if (have_labels) { /* lm-eval: choices.label.index(answerKey) */
        for (int i = 0; i < it->n_choices && it->gold < 0; i++)
            if (!strcmp(labels[i], keybuf)) it->gold = i;
        if (it->gold < 0)
            return cllm_fail(CLLM_ERR_FORMAT, "answerKey '%s' is not one of the %d choice labels",
                             keybuf, it->n_choices);
    } else if (keybuf[0] >= 'A' && keybuf[0] <= 'Z' && !keybuf[1]) {
        it->gold = keybuf[0] - 'A';
    } else if (keybuf[0] >= '1' && keybuf[0] <= '9' && !keybuf[1]) {
        it->gold = keybuf[0] - '1';
    } else {
        return cllm_fail(CLLM_ERR_FORMAT, "answerKey '%s' is not a letter A-Z or a digit 1-9",
                         keybuf);
    }
    return item_finish(it, cllm_strdup_printf("Question: %s\nAnswer:", stem));
fail:
    return st;
}

static cllm_status parse_mmlu(cllm_mc_item *it, const cJSON *o, bool letters) {
    cllm_status st;
    const char *question = NULL, *subject = get_str(o, "subject");
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(o, "choices");
    const cJSON *ans = cJSON_GetObjectItemCaseSensitive(o, "answer");
    int n;
    CLLM_TRY(need_str(&question, o, "question"));
    CLLM_TRY(string_array(choices, "choices", &n));
    if (letters && n > 26)
        return cllm_fail(CLLM_ERR_FORMAT, "%d choices (lettered MMLU has at most 26)", n);
    long gold;
    if (cJSON_IsString(ans) && ans->valuestring[0] >= 'A' && ans->valuestring[0] <= 'Z' &&
        !ans->valuestring[1])
        gold = ans->valuestring[0] - 'A';
    else if (!as_int(ans, &gold))
        return cllm_fail(CLLM_ERR_FORMAT, ans ? "'answer' must be an index or a letter A-Z"
                                              : "missing key 'answer'");
    CLLM_TRY(item_alloc(it, n));
    it->gold = (int)gold;
    ev_buf b = {0};
    if (subject && *subject) {
        ev_buf_adds(&b, letters ? "The following are multiple choice questions (with answers) "
                                  "about "
                                : "The following are questions (with answers) about ");
        for (const char *p = subject; *p; p++) ev_buf_addc(&b, *p == '_' ? ' ' : *p);
        ev_buf_adds(&b, ".\n\n");
    }
    size_t qb, qe;
    ev_py_strip(question, strlen(question), &qb, &qe);
    if (!letters) ev_buf_adds(&b, "Question: ");
    ev_buf_add(&b, question + qb, qe - qb);
    int c = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, choices) {
        if (letters) {
            char tag[8];
            snprintf(tag, sizeof tag, "\n%c. ", 'A' + c);
            ev_buf_adds(&b, tag);
            ev_buf_adds(&b, e->valuestring);
            it->choices[c] = cllm_strdup_printf("%c", 'A' + c);
        } else {
            it->choices[c] = strdup(e->valuestring);
        }
        c++;
    }
    ev_buf_adds(&b, "\nAnswer:");
    return item_finish(it, ev_buf_take(&b));
fail:
    return st;
}

static cllm_status parse_generic(cllm_mc_item *it, const cJSON *o) {
    cllm_status st;
    const char *context = NULL;
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(o, "choices");
    int n;
    long gold;
    CLLM_TRY(need_str(&context, o, "context"));
    CLLM_TRY(string_array(choices, "choices", &n));
    if (!as_int(cJSON_GetObjectItemCaseSensitive(o, "label"), &gold))
        return cllm_fail(CLLM_ERR_FORMAT,
                         "'label' must be the index of the right choice (a number or digits)");
    CLLM_TRY(item_alloc(it, n));
    it->gold = (int)gold;
    int c = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, choices) it->choices[c++] = strdup(e->valuestring);
    return item_finish(it, strdup(context));
fail:
    return st;
}

static cllm_status detect_object(cllm_mc_task *task, const cJSON *o) {
#define HAS(k) (cJSON_GetObjectItemCaseSensitive(o, k) != NULL)
    if (HAS("endings"))
        *task = CLLM_MC_HELLASWAG;
    else if (HAS("answerKey"))
        *task = CLLM_MC_ARC;
    else if (HAS("question") && HAS("choices") && HAS("answer"))
        *task = CLLM_MC_MMLU;
    else if (HAS("context") && HAS("choices"))
        *task = CLLM_MC_GENERIC;
    else
        return cllm_fail(CLLM_ERR_FORMAT,
                         "cannot tell the format: expected HellaSwag ('endings'), ARC "
                         "('answerKey'), MMLU ('question', 'choices', 'answer') or generic "
                         "('context', 'choices', 'label') keys");
#undef HAS
    return CLLM_OK;
}

cllm_status cllm_mc_detect(cllm_mc_task *task, const char *json, size_t len) {
    cJSON *o = NULL;
    cllm_status st = ev_parse_object(&o, json, len);
    if (st != CLLM_OK) return st;
    st = detect_object(task, o);
    cJSON_Delete(o);
    return st;
}

static cllm_status parse_with(cllm_mc_item *it, const cJSON *o, cllm_mc_task task) {
    switch (task) {
    case CLLM_MC_HELLASWAG:
        return parse_hellaswag(it, o);
    case CLLM_MC_ARC:
        return parse_arc(it, o);
    case CLLM_MC_MMLU:
        return parse_mmlu(it, o, false);
    case CLLM_MC_MMLU_LETTERS:
        return parse_mmlu(it, o, true);
    case CLLM_MC_GENERIC:
        return parse_generic(it, o);
    default:
        return cllm_fail(CLLM_ERR_USAGE, "cllm_mc_parse_record needs a task, not '%s'",
                         cllm_mc_task_name(task));
    }
}

cllm_status cllm_mc_parse_record(cllm_mc_item *item, const char *json, size_t len,
                                 cllm_mc_task task) {
    memset(item, 0, sizeof *item);
    cJSON *o = NULL;
    cllm_status st = ev_parse_object(&o, json, len);
    if (st != CLLM_OK) return st;
    st = parse_with(item, o, task);
    if (st == CLLM_OK) {
        item->id = id_text(o);
        /* Choice texts come straight from the file; they must be valid UTF-8 like the rest
         * (cJSON's \u escapes can still encode lone surrogates). */
        bool ok = ev_utf8_valid(item->context, strlen(item->context), NULL);
        for (int c = 0; c < item->n_choices; c++)
            ok = ok && ev_utf8_valid(item->continuations[c], strlen(item->continuations[c]), NULL);
        if (!ok) st = cllm_fail(CLLM_ERR_FORMAT, "a string is not valid UTF-8 (lone surrogate?)");
    }
    cJSON_Delete(o);
    if (st != CLLM_OK) cllm_mc_item_free(item);
    return st;
}

/* ---- sets ------------------------------------------------------------------------------- */

typedef struct {
    cllm_mc_set *set;
    int cap;
} mc_loader;

static cllm_status mc_line(void *user, const char *line, size_t len, long lineno) {
    mc_loader *L = user;
    cllm_mc_set *set = L->set;
    cllm_status st;
    if (set->task == CLLM_MC_AUTO) {
        cllm_mc_task t;
        st = cllm_mc_detect(&t, line, len);
        if (st != CLLM_OK) return st;
        set->task = t;
    }
    if (set->n == L->cap) {
        int cap = L->cap ? 2 * L->cap : 256;
        cllm_mc_item *p = realloc(set->items, (size_t)cap * sizeof *p);
        if (!p) return cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
        set->items = p;
        L->cap = cap;
    }
    cllm_mc_item *it = &set->items[set->n];
    st = cllm_mc_parse_record(it, line, len, set->task);
    if (st != CLLM_OK) return st;
    it->line = lineno;
    set->n++;
    return CLLM_OK;
}

cllm_status cllm_mc_load(cllm_mc_set *set, const char *path, cllm_mc_task task, bool strict,
                         int limit) {
    memset(set, 0, sizeof *set);
    set->task = task;
    set->path = strdup(path);
    if (!set->path) return cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
    mc_loader L = {set, 0};
    cllm_status st = ev_jsonl_each(path, strict, limit, "multiple-choice items", mc_line, &L,
                                   &set->stats);
    if (st != CLLM_OK) cllm_mc_set_free(set);
    return st;
}

void cllm_mc_set_free(cllm_mc_set *set) {
    if (!set) return;
    for (int i = 0; i < set->n; i++) cllm_mc_item_free(&set->items[i]);
    free(set->items);
    free(set->path);
    memset(set, 0, sizeof *set);
}
