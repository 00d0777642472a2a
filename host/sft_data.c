/* SFT data (cllm/sft.h): chat JSONL records checked and rendered through the chat template into
 * ids and the assistant mask, overflow handled and counted, the validation split, rows, and the
 * batcher with its resumable position. */
#include "cllm/sft.h"

#include "cllm/data.h"
#include "cllm/sample.h"
#include "cllm/util.h"
#include "eval_internal.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *cllm_sft_overflow_name(cllm_sft_overflow o) {
    return o == CLLM_SFT_DROP ? "drop" : "truncate";
}

bool cllm_sft_overflow_parse(const char *s, cllm_sft_overflow *o) {
    if (!s) return false;
    if (!strcmp(s, "truncate")) *o = CLLM_SFT_TRUNCATE;
    else if (!strcmp(s, "drop")) *o = CLLM_SFT_DROP;
    else return false;
    return true;
}

/* ---------------------------------------------------------------- one record */

static cllm_status bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static cllm_status bad(const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return cllm_fail(CLLM_ERR_FORMAT, "%s", msg);
}

static const char *json_kind(const cJSON *v) {
    if (!v) return "missing";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsArray(v)) return "an array";
    return "an object";
}

cllm_status cllm_sft_parse_record(cJSON **root, cllm_chat_message **msgs, int *n,
                                  const char **category, const char *json, size_t len) {
    *root = NULL;
    *msgs = NULL;
    *n = 0;
    *category = NULL;
    cJSON *o = NULL;
    cllm_chat_message *m = NULL;
    cllm_status st = ev_parse_object(&o, json, len);
    if (st != CLLM_OK) return st;
    const cJSON *messages = cJSON_GetObjectItemCaseSensitive(o, "messages"),
                *prompt = cJSON_GetObjectItemCaseSensitive(o, "prompt"),
                *response = cJSON_GetObjectItemCaseSensitive(o, "response"),
                *cat = cJSON_GetObjectItemCaseSensitive(o, "category");
    int count = 0;
    if (messages && (prompt || response)) {
        st = bad("has both \"messages\" and \"prompt\"/\"response\" (expected one of the two "
                 "forms)");
        goto fail;
    }
    if (cat && !cJSON_IsString(cat)) {
        st = bad("\"category\" is %s (expected a string)", json_kind(cat));
        goto fail;
    }
    if (messages) {
        if (!cJSON_IsArray(messages)) {
            st = bad("\"messages\" is %s (expected an array of {\"role\", \"content\"} objects)",
                     json_kind(messages));
            goto fail;
        }
        count = cJSON_GetArraySize(messages);
        m = cllm_calloc(count ? (size_t)count : 1, sizeof *m);
        if (!m) {
            st = CLLM_ERR_NOMEM;
            goto fail;
        }
        int i = 0;
        bool assistant = false;
        for (const cJSON *it = messages->child; it; it = it->next, i++) {
            if (!cJSON_IsObject(it)) {
                st = bad("messages[%d] is %s (expected an object {\"role\", \"content\"})", i,
                         json_kind(it));
                goto fail;
            }
            const cJSON *role = cJSON_GetObjectItemCaseSensitive(it, "role"),
                        *content = cJSON_GetObjectItemCaseSensitive(it, "content");
            if (!cJSON_IsString(role)) {
                st = bad("messages[%d].role is %s (expected \"system\", \"user\" or "
                         "\"assistant\")",
                         i, json_kind(role));
                goto fail;
            }
            if (!cllm_chat_role_parse(role->valuestring, &m[i].role)) {
                char shown[48];
                snprintf(shown, sizeof shown, "%s", role->valuestring);
                st = bad("messages[%d].role is \"%s\"%s (expected \"system\", \"user\" or "
                         "\"assistant\")",
                         i, shown, strlen(role->valuestring) >= sizeof shown ? "..." : "");
                goto fail;
            }
            if (!cJSON_IsString(content)) {
                st = bad("messages[%d].content is %s (expected a string)", i, json_kind(content));
                goto fail;
            }
            m[i].content = content->valuestring;
            m[i].len = strlen(content->valuestring);
            assistant |= m[i].role == CLLM_ROLE_ASSISTANT;
        }
        if (!assistant) {
            st = bad(count ? "no assistant message (nothing to learn)"
                           : "\"messages\" is empty (expected at least an assistant message)");
            goto fail;
        }
    } else if (prompt || response) {
        if (!cJSON_IsString(prompt) || !cJSON_IsString(response)) {
            st = bad("\"%s\" is %s (a pair needs string \"prompt\" and \"response\")",
                     cJSON_IsString(prompt) ? "response" : "prompt",
                     json_kind(cJSON_IsString(prompt) ? response : prompt));
            goto fail;
        }
        count = 2;
        m = cllm_calloc(2, sizeof *m);
        if (!m) {
            st = CLLM_ERR_NOMEM;
            goto fail;
        }
        m[0] = (cllm_chat_message){CLLM_ROLE_USER, prompt->valuestring,
                                   strlen(prompt->valuestring)};
        m[1] = (cllm_chat_message){CLLM_ROLE_ASSISTANT, response->valuestring,
                                   strlen(response->valuestring)};
    } else {
        st = bad("has neither \"messages\" nor \"prompt\" and \"response\"");
        goto fail;
    }
    *root = o;
    *msgs = m;
    *n = count;
    *category = cat ? cat->valuestring : NULL;
    return CLLM_OK;
fail:
    free(m);
    cJSON_Delete(o);
    return st;
}

/* ---------------------------------------------------------------- reading a file */

typedef struct {
    cllm_sft_set *set;
    const cllm_chat_template *t;
    const cllm_tokenizer *tok;
    const cllm_sft_read_opts *o;
    size_t cap_conv, cap_tok;
    cllm_tokens ids; /* scratch: one conversation */
    cllm_chat_mask mask;
} reader;

static cllm_status grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return CLLM_OK;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return cllm_fail(CLLM_ERR_NOMEM, "out of memory (sft data)");
    *p = q;
    *cap = c;
    return CLLM_OK;
}

static int category_index(cllm_sft_set *s, const char *name) {
    for (int i = 0; i < s->n_categories; i++)
        if (!strcmp(s->categories[i], name)) return i;
    char **c = realloc(s->categories, (size_t)(s->n_categories + 1) * sizeof *c);
    if (!c) return -2;
    s->categories = c;
    if (!(c[s->n_categories] = strdup(name))) return -2;
    return s->n_categories++;
}

/* Learnt targets among the first n tokens (mask ones after position 0). */
static uint64_t learnt_in(const uint8_t *mask, size_t n) {
    uint64_t k = 0;
    for (size_t i = 1; i < n; i++)
        k += mask[i];
    return k;
}

static cllm_status on_record(void *user, const char *line, size_t len, long lineno) {
    reader *r = user;
    cllm_sft_set *s = r->set;
    cJSON *root = NULL;
    cllm_chat_message *msgs = NULL;
    int n = 0;
    const char *cat = NULL;
    cllm_status st = cllm_sft_parse_record(&root, &msgs, &n, &cat, line, len);
    if (st != CLLM_OK) return st;
    r->ids.n = 0;
    r->mask.n = 0;
    CLLM_TRY(cllm_chat_render(r->t, r->tok, msgs, n, false, &r->ids, &r->mask));
    size_t L = r->ids.n;
    const size_t max = r->o->max_tokens > 0 ? (size_t)r->o->max_tokens : SIZE_MAX;
    if (L > max) {
        if (r->o->overflow == CLLM_SFT_DROP) {
            s->stats.dropped++;
            goto fail; /* st is CLLM_OK: a well-formed record, left out (and counted) */
        }
        if (!learnt_in(r->mask.v, max)) {
            s->stats.dropped_empty++;
            goto fail;
        }
        s->stats.truncated++;
        s->stats.tokens_before += L;
        L = max;
    } else {
        s->stats.tokens_before += L;
    }
    {
        const size_t i = (size_t)s->n, at = s->n ? s->offset[s->n] : 0;
        size_t cap = r->cap_conv;
        CLLM_TRY(grow((void **)&s->offset, &cap, i + 2, sizeof *s->offset));
        cap = r->cap_conv;
        CLLM_TRY(grow((void **)&s->line, &cap, i + 2, sizeof *s->line));
        cap = r->cap_conv;
        CLLM_TRY(grow((void **)&s->category, &cap, i + 2, sizeof *s->category));
        r->cap_conv = cap;
        cap = r->cap_tok;
        CLLM_TRY(grow((void **)&s->ids, &cap, at + L, sizeof *s->ids));
        cap = r->cap_tok;
        CLLM_TRY(grow((void **)&s->mask, &cap, at + L, sizeof *s->mask));
        r->cap_tok = cap;
        memcpy(s->ids + at, r->ids.ids, L * sizeof *s->ids);
        memcpy(s->mask + at, r->mask.v, L);
        s->offset[i] = at;
        s->offset[i + 1] = at + L;
        s->line[i] = lineno;
        s->category[i] = -1;
        if (cat) {
            int c = category_index(s, cat);
            if (c < -1) {
                st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
                goto fail;
            }
            s->category[i] = c;
        }
        s->n++;
    }
fail:
    free(msgs);
    cJSON_Delete(root);
    return st;
}

cllm_status cllm_sft_read(cllm_sft_set *set, const char *path, const cllm_chat_template *t,
                          const cllm_tokenizer *tok, const cllm_sft_read_opts *o) {
    memset(set, 0, sizeof *set);
    if (!t->bound)
        return cllm_fail(CLLM_ERR_STATE, "sft: bind the chat template to the tokenizer first");
    reader r = {.set = set, .t = t, .tok = tok, .o = o};
    cllm_jsonl_stats js;
    cllm_status st = CLLM_OK;
    set->pad_id = t->end_id;
    set->path = strdup(path);
    if (!set->path) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    CLLM_TRY(ev_jsonl_each(path, o->strict, o->limit, "chat records", on_record, &r, &js));
    set->stats.lines = js.lines;
    set->stats.blank = js.blank;
    set->stats.malformed = js.skipped;
    snprintf(set->stats.first_malformed, sizeof set->stats.first_malformed, "%s",
             js.first_skip_reason);
    if (set->n == 0) {
        st = cllm_fail(CLLM_ERR_FORMAT,
                       "%s: no conversation fits in %d tokens (%ld dropped for overflowing with "
                       "--overflow drop, %ld left without assistant tokens when truncated)",
                       path, o->max_tokens, set->stats.dropped, set->stats.dropped_empty);
        goto fail;
    }
fail:
    cllm_tokens_free(&r.ids);
    cllm_chat_mask_free(&r.mask);
    if (st != CLLM_OK) cllm_sft_set_free(set);
    return st;
}

void cllm_sft_set_free(cllm_sft_set *set) {
    if (!set) return;
    free(set->path);
    free(set->offset);
    free(set->ids);
    free(set->mask);
    free(set->line);
    free(set->category);
    for (int i = 0; i < set->n_categories; i++)
        free(set->categories[i]);
    free(set->categories);
    memset(set, 0, sizeof *set);
}

uint64_t cllm_sft_learnt(const cllm_sft_set *set, int i) {
    return learnt_in(set->mask + set->offset[i], set->offset[i + 1] - set->offset[i]);
}

/* ---------------------------------------------------------------- subsets, rows */

/* *out = the conversations of `in` where take[i] (copies; categories kept whole). */
static cllm_status subset(cllm_sft_set *out, const cllm_sft_set *in, const bool *take) {
    memset(out, 0, sizeof *out);
    int n = 0;
    uint64_t tokens = 0;
    for (int i = 0; i < in->n; i++)
        if (take[i]) {
            n++;
            tokens += in->offset[i + 1] - in->offset[i];
        }
    out->path = strdup(in->path);
    out->offset = cllm_malloc(((size_t)n + 1) * sizeof *out->offset);
    out->ids = cllm_malloc((tokens ? tokens : 1) * sizeof *out->ids);
    out->mask = cllm_malloc(tokens ? tokens : 1);
    out->line = cllm_malloc((n ? (size_t)n : 1) * sizeof *out->line);
    out->category = cllm_malloc((n ? (size_t)n : 1) * sizeof *out->category);
    out->categories = in->n_categories ? cllm_calloc((size_t)in->n_categories, sizeof(char *))
                                       : NULL;
    if (!out->path || !out->offset || !out->ids || !out->mask || !out->line || !out->category ||
        (in->n_categories && !out->categories))
        goto oom;
    out->n_categories = in->n_categories;
    for (int c = 0; c < in->n_categories; c++)
        if (!(out->categories[c] = strdup(in->categories[c]))) goto oom;
    uint64_t at = 0;
    int j = 0;
    for (int i = 0; i < in->n; i++) {
        if (!take[i]) continue;
        const uint64_t L = in->offset[i + 1] - in->offset[i];
        memcpy(out->ids + at, in->ids + in->offset[i], L * sizeof *out->ids);
        memcpy(out->mask + at, in->mask + in->offset[i], L);
        out->offset[j] = at;
        out->line[j] = in->line[i];
        out->category[j] = in->category[i];
        at += L;
        j++;
    }
    out->offset[n] = at;
    out->n = n;
    out->pad_id = in->pad_id;
    out->stats = in->stats;
    return CLLM_OK;
oom:
    cllm_sft_set_free(out);
    return cllm_fail(CLLM_ERR_NOMEM, "out of memory (sft split)");
}

static uint64_t conv_hash(const cllm_sft_set *s, int i, uint64_t seed) {
    const uint64_t a = s->offset[i], L = s->offset[i + 1] - a;
    uint64_t h = cllm_xxh64(s->ids + a, L * sizeof *s->ids, seed);
    return cllm_xxh64(s->mask + a, L, h);
}

cllm_status cllm_sft_split(cllm_sft_set *train, cllm_sft_set *val, const cllm_sft_set *all,
                           double fraction, uint64_t seed) {
    memset(train, 0, sizeof *train);
    memset(val, 0, sizeof *val);
    if (!(fraction > 0 && fraction < 1))
        return cllm_fail(CLLM_ERR_USAGE, "--val-fraction must be in (0, 1), got %g", fraction);
    if (all->n < 2)
        return cllm_fail(CLLM_ERR_USAGE,
                         "%s: %d conversation: too few to hold some out for validation (give "
                         "--val-data FILE)",
                         all->path, all->n);
    bool *take = cllm_malloc((size_t)all->n * sizeof *take);
    uint64_t *h = cllm_malloc((size_t)all->n * sizeof *h);
    cllm_status st = CLLM_OK;
    if (!take || !h) {
        st = CLLM_ERR_NOMEM;
        goto done;
    }
    /* hash / 2^64 < fraction, compared in integers */
    const uint64_t cut = fraction >= 1 ? UINT64_MAX : (uint64_t)(fraction * 18446744073709551616.0);
    int nval = 0, lo = -1, hi = -1; /* the train hash nearest the cut, the val one farthest */
    for (int i = 0; i < all->n; i++) {
        h[i] = conv_hash(all, i, seed);
        take[i] = h[i] < cut;
        nval += take[i];
        if (!take[i] && (lo < 0 || h[i] < h[lo])) lo = i;
        if (take[i] && (hi < 0 || h[i] > h[hi])) hi = i;
    }
    if (nval == 0) take[lo] = true; /* each side gets at least one */
    if (nval == all->n) take[hi] = false;
    st = subset(val, all, take);
    for (int i = 0; st == CLLM_OK && i < all->n; i++)
        take[i] = !take[i];
    if (st == CLLM_OK) st = subset(train, all, take);
    if (st != CLLM_OK) cllm_sft_set_free(val);
done:
    free(take);
    free(h);
    return st;
}

void cllm_sft_row(const cllm_sft_set *set, int i, int T, uint32_t *inputs, uint32_t *targets) {
    const uint32_t *ids = set->ids + set->offset[i];
    const uint8_t *mask = set->mask + set->offset[i];
    const int L = (int)(set->offset[i + 1] - set->offset[i]);
    for (int t = 0; t < T; t++) {
        if (t < L - 1) {
            inputs[t] = ids[t];
            targets[t] = mask[t + 1] ? ids[t + 1] : CLLM_IGNORE_TARGET;
        } else {
            /* padding: after the conversation, so causal attention keeps it out of every
             * real position; no loss */
            inputs[t] = set->pad_id;
            targets[t] = CLLM_IGNORE_TARGET;
        }
    }
}

uint32_t cllm_sft_max_token(const cllm_sft_set *set) {
    uint32_t mx = set->pad_id;
    for (uint64_t i = 0; i < set->offset[set->n]; i++)
        if (set->ids[i] > mx) mx = set->ids[i];
    return mx;
}

uint64_t cllm_sft_fingerprint(const cllm_sft_set *set) {
    uint64_t h = cllm_xxh64(set->offset, ((size_t)set->n + 1) * sizeof *set->offset, 0x5f7);
    h = cllm_xxh64(set->ids, set->offset[set->n] * sizeof *set->ids, h);
    return cllm_xxh64(set->mask, set->offset[set->n], h);
}

/* ---------------------------------------------------------------- the batcher */

struct cllm_sft_batcher {
    const cllm_sft_set *set;
    int B, T;
    bool training, shuffle;
    uint64_t seed, fingerprint;
    uint64_t epoch; /* of the next conversation */
    int index;      /* its place in that epoch's order */
    int *perm;      /* (n) the order of epoch perm_epoch (shuffle) */
    uint64_t perm_epoch;
    bool perm_valid;
};

/* The order of `epoch`: a Fisher-Yates permutation drawn from (seed, epoch) alone. */
static void draw_perm(cllm_sft_batcher *b, uint64_t epoch) {
    const int n = b->set->n;
    cllm_rng rng;
    cllm_rng_seed(&rng, b->seed ^ (epoch * 0x9e3779b97f4a7c15ull + 0x5f7f5ull));
    for (int i = 0; i < n; i++)
        b->perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(cllm_rng_next(&rng) % (uint64_t)(i + 1));
        int tmp = b->perm[i];
        b->perm[i] = b->perm[j];
        b->perm[j] = tmp;
    }
    b->perm_epoch = epoch;
    b->perm_valid = true;
}

cllm_status cllm_sft_batcher_init(cllm_sft_batcher **out, const cllm_sft_set *set, int B, int T,
                                  bool training, bool shuffle, uint64_t seed) {
    *out = NULL;
    if (B < 1 || T < 1 || set->n < 1)
        return cllm_fail(CLLM_ERR_USAGE, "sft batches need B, T >= 1 and a conversation");
    cllm_sft_batcher *b = cllm_calloc(1, sizeof *b);
    if (!b) return CLLM_ERR_NOMEM;
    *b = (cllm_sft_batcher){.set = set,
                            .B = B,
                            .T = T,
                            .training = training,
                            .shuffle = training && shuffle,
                            .seed = seed,
                            .fingerprint = cllm_sft_fingerprint(set)};
    if (b->shuffle && !(b->perm = cllm_malloc((size_t)set->n * sizeof *b->perm))) {
        free(b);
        return CLLM_ERR_NOMEM;
    }
    *out = b;
    return CLLM_OK;
}

void cllm_sft_batcher_free(cllm_sft_batcher *b) {
    if (!b) return;
    free(b->perm);
    free(b);
}

cllm_status cllm_sft_batcher_next(cllm_sft_batcher *b, uint32_t *inputs, uint32_t *targets) {
    const int n = b->set->n, T = b->T;
    if (!b->training && b->index >= n) { /* a new validation pass */
        b->epoch++;
        b->index = 0;
    }
    for (int r = 0; r < b->B; r++) {
        uint32_t *in = inputs + (size_t)r * T, *tg = targets + (size_t)r * T;
        if (!b->training && b->index >= n) { /* the end of the pass: an empty row */
            for (int t = 0; t < T; t++) {
                in[t] = b->set->pad_id;
                tg[t] = CLLM_IGNORE_TARGET;
            }
            continue;
        }
        int i = b->index;
        if (b->shuffle) {
            if (!b->perm_valid || b->perm_epoch != b->epoch) draw_perm(b, b->epoch);
            i = b->perm[i];
        }
        cllm_sft_row(b->set, i, T, in, tg);
        if (++b->index == n && b->training) {
            b->epoch++;
            b->index = 0;
        }
    }
    return CLLM_OK;
}

uint64_t cllm_sft_batcher_batches(const cllm_sft_batcher *b) {
    const uint64_t n = (uint64_t)b->set->n, B = (uint64_t)b->B;
    if (!b->training) return (n + B - 1) / B;
    uint64_t k = (n + B / 2) / B;
    return k ? k : 1;
}

void cllm_sft_batcher_rewind(cllm_sft_batcher *b) {
    b->epoch = 0;
    b->index = 0;
}

void cllm_sft_batcher_where(const cllm_sft_batcher *b, uint64_t *epoch, int *index) {
    *epoch = b->epoch;
    *index = b->index;
}

#define POSITION_FORMAT "cllm-sft-data"

char *cllm_sft_batcher_position(const cllm_sft_batcher *b) {
    char seed[24], fp[24];
    snprintf(seed, sizeof seed, "%" PRIu64, b->seed);
    snprintf(fp, sizeof fp, "%016" PRIx64, b->fingerprint);
    char *s = cllm_strdup_printf("{\"format\":\"%s\",\"epoch\":%" PRIu64 ",\"index\":%d,"
                                 "\"conversations\":%d,\"shuffle\":%s,\"seed\":\"%s\","
                                 "\"fingerprint\":\"%s\"}",
                                 POSITION_FORMAT, b->epoch, b->index, b->set->n,
                                 b->shuffle ? "true" : "false", seed, fp);
    if (!s) cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    return s;
}

cllm_status cllm_sft_batcher_seek(cllm_sft_batcher *b, const char *json) {
    cJSON *o = json ? cJSON_Parse(json) : NULL;
    cllm_status st = CLLM_OK;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(o, "format"),
                *ep = cJSON_GetObjectItemCaseSensitive(o, "epoch"),
                *ix = cJSON_GetObjectItemCaseSensitive(o, "index"),
                *nc = cJSON_GetObjectItemCaseSensitive(o, "conversations"),
                *sh = cJSON_GetObjectItemCaseSensitive(o, "shuffle"),
                *sd = cJSON_GetObjectItemCaseSensitive(o, "seed"),
                *fp = cJSON_GetObjectItemCaseSensitive(o, "fingerprint");
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, POSITION_FORMAT) != 0 ||
        !cJSON_IsNumber(ep) || ep->valuedouble < 0 || !cJSON_IsNumber(ix) ||
        !cJSON_IsNumber(nc) || !cJSON_IsBool(sh) || !cJSON_IsString(sd) || !cJSON_IsString(fp)) {
        st = cllm_fail(CLLM_ERR_FORMAT, "not a cllm sft data position (format \"%s\": epoch, "
                                        "index, conversations, shuffle, seed, fingerprint)",
                       POSITION_FORMAT);
        goto done;
    }
    char mine[24];
    snprintf(mine, sizeof mine, "%016" PRIx64, b->fingerprint);
    if ((int)nc->valuedouble != b->set->n || strcmp(fp->valuestring, mine) != 0) {
        st = cllm_fail(CLLM_ERR_USAGE,
                       "the data changed since the run was saved: %s now holds %d conversations "
                       "(fingerprint %s), the run was trained on %d (fingerprint %s); resume "
                       "with the same file and options, or start a new run",
                       b->set->path, b->set->n, mine, (int)nc->valuedouble, fp->valuestring);
        goto done;
    }
    char seed[24];
    snprintf(seed, sizeof seed, "%" PRIu64, b->seed);
    if (strcmp(sd->valuestring, seed) != 0 || cJSON_IsTrue(sh) != b->shuffle) {
        st = cllm_fail(CLLM_ERR_USAGE,
                       "the data order differs: the run was saved with seed %s%s, this one has "
                       "seed %s%s",
                       sd->valuestring, cJSON_IsTrue(sh) ? " (shuffled)" : " (in order)", seed,
                       b->shuffle ? " (shuffled)" : " (in order)");
        goto done;
    }
    if (ix->valuedouble < 0 || ix->valuedouble >= b->set->n) {
        st = cllm_fail(CLLM_ERR_USAGE, "data position index %g is outside the %d conversations",
                       ix->valuedouble, b->set->n);
        goto done;
    }
    b->epoch = (uint64_t)ep->valuedouble;
    b->index = (int)ix->valuedouble;
done:
    cJSON_Delete(o);
    return st;
}
