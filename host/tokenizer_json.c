/* Tokenizer files: Hugging Face tokenizer.json (read and written) and GPT-2's encoder.json +
 * vocab.bpe (read).
 *
 * tokenizer.json strings spell bytes with GPT-2's bytes_to_unicode map (byte 0x20 is "Ġ", ...);
 * special tokens (added_tokens) are plain UTF-8. What cllm accepts is byte-level BPE as GPT-2
 * has it: model BPE without dropout, subword prefixes/suffixes or byte fallback; pre-tokenizer
 * ByteLevel with its regex; no normalizer. Anything else is refused with a message that says
 * which key is not supported, rather than encoded differently from Hugging Face.
 */
#include "tokenizer_impl.h"

#include "cllm/util.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- byte-level strings */

/* Decode a tokenizer.json string (UTF-8 of byte-level characters) into bytes. Returns the
 * byte count, or -1 if a character stands for no byte. out has room for strlen(s). */
static long bytelevel_decode(const char *s, uint8_t *out) {
    const uint8_t *u = (const uint8_t *)s;
    long n = 0;
    while (*u) {
        uint32_t cp;
        if (u[0] < 0x80) {
            cp = u[0];
            u += 1;
        } else if ((u[0] & 0xE0) == 0xC0 && (u[1] & 0xC0) == 0x80) {
            cp = (uint32_t)(u[0] & 0x1F) << 6 | (u[1] & 0x3F);
            u += 2;
        } else {
            return -1; /* every byte-level character is below U+0800 */
        }
        int b = bytelevel_byte(cp);
        if (b < 0) return -1;
        out[n++] = (uint8_t)b;
    }
    return n;
}

/* Growable output text. */
typedef struct {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) { /* only fixed, short formats come here */
        b->oom = true;
        return;
    }
    sb_put(b, tmp, (size_t)n);
}

/* A JSON string of raw UTF-8 (specials). */
static void sb_json_utf8(sbuf *b, const char *s, size_t n) {
    sb_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            sb_put(b, e, 2);
        } else if (c < 0x20 || c == 0x7f) {
            sb_printf(b, "\\u%04x", c);
        } else {
            sb_put(b, (const char *)&c, 1);
        }
    }
    sb_put(b, "\"", 1);
}

/* Append the byte-level spelling of bytes (no quotes). */
static void sb_bytelevel(sbuf *b, const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = bytelevel_char(s[i]);
        if (cp == '"' || cp == '\\') {
            char e[2] = {'\\', (char)cp};
            sb_put(b, e, 2);
        } else if (cp < 0x80) {
            char c = (char)cp;
            sb_put(b, &c, 1);
        } else {
            char u[2] = {(char)(0xC0 | (cp >> 6)), (char)(0x80 | (cp & 0x3F))};
            sb_put(b, u, 2);
        }
    }
}

/* ---------------------------------------------------------------- writing */

char *cllm_tokenizer_to_json(const cllm_tokenizer *t) {
    sbuf b = {0};
    sb_str(&b, "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n"
               "  \"added_tokens\": [");
    for (uint32_t i = 0; i < t->n_specials; i++) {
        uint32_t id = t->specials[i];
        sb_printf(&b, "%s\n    {\n      \"id\": %u,\n      \"content\": ", i ? "," : "", id);
        sb_json_utf8(&b, t->blob + t->off[id], t->len[id]);
        sb_str(&b, ",\n      \"single_word\": false,\n      \"lstrip\": false,\n"
                   "      \"rstrip\": false,\n      \"normalized\": false,\n"
                   "      \"special\": true\n    }");
    }
    sb_str(&b, t->n_specials ? "\n  ],\n" : "],\n");
    sb_printf(&b,
              "  \"normalizer\": null,\n"
              "  \"pre_tokenizer\": {\n    \"type\": \"ByteLevel\",\n"
              "    \"add_prefix_space\": %s,\n    \"trim_offsets\": true,\n"
              "    \"use_regex\": true\n  },\n"
              "  \"post_processor\": {\n    \"type\": \"ByteLevel\",\n"
              "    \"add_prefix_space\": true,\n    \"trim_offsets\": false,\n"
              "    \"use_regex\": true\n  },\n"
              "  \"decoder\": {\n    \"type\": \"ByteLevel\",\n"
              "    \"add_prefix_space\": true,\n    \"trim_offsets\": true,\n"
              "    \"use_regex\": true\n  },\n",
              t->add_prefix_space ? "true" : "false");
    sb_printf(&b,
              "  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n"
              "    \"unk_token\": null,\n    \"continuing_subword_prefix\": null,\n"
              "    \"end_of_word_suffix\": null,\n    \"fuse_unk\": false,\n"
              "    \"byte_fallback\": false,\n    \"ignore_merges\": %s,\n    \"vocab\": {",
              t->ignore_merges ? "true" : "false");
    bool first = true;
    for (uint32_t id = 0; id < t->n_vocab; id++) {
        if (!(t->flags[id] & TOK_USED)) continue;
        sb_str(&b, first ? "\n      " : ",\n      ");
        first = false;
        if (t->flags[id] & TOK_SPECIAL) {
            sb_json_utf8(&b, t->blob + t->off[id], t->len[id]);
        } else {
            sb_put(&b, "\"", 1);
            sb_bytelevel(&b, (const uint8_t *)t->blob + t->off[id], t->len[id]);
            sb_put(&b, "\"", 1);
        }
        sb_printf(&b, ": %u", id);
    }
    sb_str(&b, "\n    },\n    \"merges\": [");
    for (uint32_t r = 0; r < t->n_merges; r++) {
        const tok_merge *m = &t->merges[r];
        sb_str(&b, r ? ",\n      \"" : "\n      \"");
        sb_bytelevel(&b, (const uint8_t *)t->blob + t->off[m->a], t->len[m->a]);
        sb_put(&b, " ", 1);
        sb_bytelevel(&b, (const uint8_t *)t->blob + t->off[m->b], t->len[m->b]);
        sb_put(&b, "\"", 1);
    }
    sb_str(&b, t->n_merges ? "\n    ]\n  }\n}\n" : "]\n  }\n}\n");
    if (b.oom) {
        free(b.p);
        cllm_fail(CLLM_ERR_NOMEM, "out of memory writing tokenizer.json");
        return NULL;
    }
    return b.p;
}

cllm_status cllm_tokenizer_save(const cllm_tokenizer *t, const char *path) {
    char *json = cllm_tokenizer_to_json(t);
    if (!json) return CLLM_ERR_NOMEM;
    cllm_status st = cllm_write_file_atomic(path, json, strlen(json));
    free(json);
    return st;
}

/* ---------------------------------------------------------------- reading */

static bool is_null(const cJSON *x) { return !x || cJSON_IsNull(x); }

static bool get_id(const cJSON *x, uint32_t *id) {
    if (!cJSON_IsNumber(x)) return false;
    double v = x->valuedouble;
    if (!(v >= 0 && v < 16777216.0) || v != (double)(uint32_t)v) return false;
    *id = (uint32_t)v;
    return true;
}

/* Resolve one merge given as its two parts' text; rank r. */
static cllm_status add_merge(cllm_tokenizer *t, const char *src, uint32_t r, const char *left,
                             const char *right, uint8_t *buf) {
    long na = bytelevel_decode(left, buf);
    long nb = na < 0 ? -1 : bytelevel_decode(right, buf + na);
    if (na <= 0 || nb <= 0)
        return cllm_fail(CLLM_ERR_FORMAT, "%s: merge %u '%s %s' is not byte-level text", src, r,
                         left, right);
    uint32_t a = tok_lookup(t, buf, (size_t)na), b = tok_lookup(t, buf + na, (size_t)nb);
    uint32_t id = tok_lookup(t, buf, (size_t)(na + nb));
    if (a == UINT32_MAX || b == UINT32_MAX || id == UINT32_MAX || (t->flags[id] & TOK_SPECIAL))
        return cllm_fail(CLLM_ERR_FORMAT,
                         "%s: merge %u '%s %s' uses or makes a token that is not in the vocabulary",
                         src, r, left, right);
    t->merges[r] = (tok_merge){a, b, id};
    return CLLM_OK;
}

/* The pre-tokenizer must be GPT-2's ByteLevel (directly or as the only member of a Sequence). */
static cllm_status check_pre_tokenizer(cllm_tokenizer *t, const cJSON *pre, const char *src) {
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(pre, "type");
    if (cJSON_IsString(type) && !strcmp(type->valuestring, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(pre, "pretokenizers");
        if (cJSON_GetArraySize(list) == 1) return check_pre_tokenizer(t, list->child, src);
    }
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "ByteLevel") != 0)
        return cllm_fail(CLLM_ERR_UNSUPPORTED,
                         "%s: pre_tokenizer %s is not supported (accepted: ByteLevel, GPT-2's)",
                         src, cJSON_IsString(type) ? type->valuestring : "(none)");
    const cJSON *re = cJSON_GetObjectItemCaseSensitive(pre, "use_regex");
    if (re && !cJSON_IsTrue(re))
        return cllm_fail(CLLM_ERR_UNSUPPORTED,
                         "%s: pre_tokenizer ByteLevel with use_regex false is not supported", src);
    t->add_prefix_space = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pre, "add_prefix_space"));
    return CLLM_OK;
}

static cllm_status check_model(const cJSON *model, const char *src) {
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (type && !(cJSON_IsString(type) && !strcmp(type->valuestring, "BPE")))
        return cllm_fail(CLLM_ERR_UNSUPPORTED, "%s: model type %s is not supported (accepted: BPE)",
                         src, cJSON_IsString(type) ? type->valuestring : "(not a string)");
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (!is_null(d) && !(cJSON_IsNumber(d) && d->valuedouble == 0))
        return cllm_fail(CLLM_ERR_UNSUPPORTED, "%s: model.dropout is not supported", src);
    static const char *const empty_ok[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(model, empty_ok[i]);
        if (!is_null(x) && !(cJSON_IsString(x) && !*x->valuestring))
            return cllm_fail(CLLM_ERR_UNSUPPORTED, "%s: model.%s is not supported", src,
                             empty_ok[i]);
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "byte_fallback")))
        return cllm_fail(CLLM_ERR_UNSUPPORTED, "%s: model.byte_fallback is not supported", src);
    return CLLM_OK;
}

static cllm_status from_cjson(cllm_tokenizer **out, const cJSON *root, const char *src) {
    cllm_status st = CLLM_OK;
    cllm_tokenizer *t = NULL;
    uint8_t *buf = NULL;
    *out = NULL;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!cJSON_IsObject(model)) {
        if (cJSON_IsObject(root) && cJSON_GetObjectItemCaseSensitive(root, "Ġthe"))
            return cllm_fail(CLLM_ERR_FORMAT,
                             "%s: this is GPT-2's encoder.json, not a tokenizer.json: pass the "
                             "directory that holds it and vocab.bpe",
                             src);
        return cllm_fail(CLLM_ERR_FORMAT, "%s: no \"model\" object (not a tokenizer.json)", src);
    }
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges))
        return cllm_fail(CLLM_ERR_FORMAT, "%s: model.vocab (object) or model.merges (array) missing",
                         src);
    if ((st = check_model(model, src)) != CLLM_OK) return st;
    if (!is_null(cJSON_GetObjectItemCaseSensitive(root, "normalizer")))
        return cllm_fail(CLLM_ERR_UNSUPPORTED,
                         "%s: a normalizer is not supported (accepted: null, as GPT-2 has)", src);
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    if (!cJSON_IsObject(pre))
        return cllm_fail(CLLM_ERR_UNSUPPORTED,
                         "%s: pre_tokenizer must be ByteLevel (GPT-2's), found none", src);
    if (added && !cJSON_IsArray(added))
        return cllm_fail(CLLM_ERR_FORMAT, "%s: added_tokens is not an array", src);

    /* size: the largest id anywhere */
    uint32_t max_id = 0, id = 0;
    size_t max_len = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, vocab) {
        if (!get_id(x, &id))
            return cllm_fail(CLLM_ERR_FORMAT, "%s: model.vocab[\"%s\"] is not a token id", src,
                             x->string);
        if (id > max_id) max_id = id;
        size_t l = strlen(x->string);
        if (l > max_len) max_len = l;
    }
    cJSON_ArrayForEach(x, added) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(x, "content");
        if (!get_id(cJSON_GetObjectItemCaseSensitive(x, "id"), &id) || !cJSON_IsString(c) ||
            !*c->valuestring)
            return cllm_fail(CLLM_ERR_FORMAT,
                             "%s: added_tokens entries need an integer \"id\" and a non-empty "
                             "\"content\"",
                             src);
        if (id > max_id) max_id = id;
    }
    CLLM_TRY(tok_new(&t, max_id + 1));
    t->ignore_merges = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "ignore_merges"));
    CLLM_TRY(check_pre_tokenizer(t, pre, src));

    /* specials first: their vocab entries (raw text, not byte-level) are then skipped */
    cJSON_ArrayForEach(x, added) {
        get_id(cJSON_GetObjectItemCaseSensitive(x, "id"), &id);
        const char *c = cJSON_GetObjectItemCaseSensitive(x, "content")->valuestring;
        if (t->flags[id] & TOK_USED) {
            if (t->len[id] == strlen(c) && !memcmp(t->blob + t->off[id], c, t->len[id])) continue;
            st = cllm_fail(CLLM_ERR_FORMAT, "%s: added token id %u is given twice", src, id);
            goto fail;
        }
        CLLM_TRY(tok_set_token(t, id, c, strlen(c), TOK_SPECIAL));
    }
    buf = cllm_malloc(2 * max_len + 2);
    if (!buf) {
        st = CLLM_ERR_NOMEM;
        goto fail;
    }
    cJSON_ArrayForEach(x, vocab) {
        get_id(x, &id);
        if (t->flags[id] & TOK_SPECIAL) continue;
        long n = bytelevel_decode(x->string, buf);
        if (n <= 0) {
            st = cllm_fail(CLLM_ERR_FORMAT,
                           "%s: model.vocab entry \"%s\" (id %u) is not byte-level text and not "
                           "an added token",
                           src, x->string, id);
            goto fail;
        }
        if (t->flags[id] & TOK_USED) {
            st = cllm_fail(CLLM_ERR_FORMAT, "%s: model.vocab gives id %u twice", src, id);
            goto fail;
        }
        CLLM_TRY(tok_set_token(t, id, buf, (size_t)n, 0));
    }
    CLLM_TRY(tok_index_bytes(t));

    int nm = cJSON_GetArraySize(merges);
    t->merges = cllm_malloc((size_t)(nm ? nm : 1) * sizeof *t->merges);
    if (!t->merges) {
        st = CLLM_ERR_NOMEM;
        goto fail;
    }
    uint8_t *mbuf = NULL;
    uint32_t r = 0;
    cJSON_ArrayForEach(x, merges) {
        const char *left = NULL, *right = NULL;
        char *copy = NULL;
        if (cJSON_IsString(x)) {
            /* "a b": byte-level text has no spaces, so the one space separates the parts */
            copy = strdup(x->valuestring);
            char *sp = copy ? strchr(copy, ' ') : NULL;
            if (sp && !strchr(sp + 1, ' ')) {
                *sp = 0;
                left = copy;
                right = sp + 1;
            }
        } else if (cJSON_IsArray(x) && cJSON_GetArraySize(x) == 2 && cJSON_IsString(x->child) &&
                   cJSON_IsString(x->child->next)) {
            left = x->child->valuestring;
            right = x->child->next->valuestring;
        }
        if (!left) {
            free(copy);
            st = cllm_fail(CLLM_ERR_FORMAT,
                           "%s: model.merges[%u] is neither \"a b\" nor [\"a\", \"b\"]", src, r);
            goto fail;
        }
        size_t need = strlen(left) + strlen(right) + 2;
        mbuf = realloc(mbuf, need);
        st = mbuf ? add_merge(t, src, r, left, right, mbuf) : CLLM_ERR_NOMEM;
        free(copy);
        if (st != CLLM_OK) {
            free(mbuf);
            goto fail;
        }
        r++;
    }
    free(mbuf);
    t->n_merges = r;
    CLLM_TRY(tok_finish(t, src));
    *out = t;
    t = NULL;
fail:
    free(buf);
    cllm_tokenizer_free(t);
    return st;
}

static cllm_status parse_json(cJSON **root, const char *json, size_t len, const char *src) {
    *root = cJSON_ParseWithLength(json, len);
    if (!*root) {
        const char *e = cJSON_GetErrorPtr();
        size_t at = e && e >= json && e <= json + len ? (size_t)(e - json) : 0;
        return cllm_fail(CLLM_ERR_FORMAT, "%s: not valid JSON (error near byte %zu)", src, at);
    }
    return CLLM_OK;
}

cllm_status cllm_tokenizer_from_json(cllm_tokenizer **tok, const char *json, size_t len,
                                     const char *source) {
    *tok = NULL;
    const char *src = source ? source : "tokenizer.json";
    cJSON *root;
    cllm_status st = parse_json(&root, json, len, src);
    if (st != CLLM_OK) return st;
    st = from_cjson(tok, root, src);
    cJSON_Delete(root);
    return st;
}

cllm_status cllm_tokenizer_load_gpt2(cllm_tokenizer **tok, const char *encoder_json,
                                     const char *vocab_bpe) {
    cllm_status st;
    char *ej = NULL, *vb = NULL;
    size_t ejn, vbn;
    cJSON *root = NULL;
    cllm_tokenizer *t = NULL;
    uint8_t *buf = NULL;
    *tok = NULL;
    CLLM_TRY(cllm_read_file(encoder_json, &ej, &ejn));
    CLLM_TRY(cllm_read_file(vocab_bpe, &vb, &vbn));
    CLLM_TRY(parse_json(&root, ej, ejn, encoder_json));
    if (!cJSON_IsObject(root) || !root->child) {
        st = cllm_fail(CLLM_ERR_FORMAT, "%s: expected an object of token -> id", encoder_json);
        goto fail;
    }
    uint32_t max_id = 0, id = 0;
    size_t max_len = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, root) {
        if (!get_id(x, &id)) {
            st = cllm_fail(CLLM_ERR_FORMAT, "%s: \"%s\" is not a token id", encoder_json,
                           x->string);
            goto fail;
        }
        if (id > max_id) max_id = id;
        if (strlen(x->string) > max_len) max_len = strlen(x->string);
    }
    CLLM_TRY(tok_new(&t, max_id + 1));
    t->format = "gpt2";
    buf = cllm_malloc(max_len + 1);
    if (!buf) {
        st = CLLM_ERR_NOMEM;
        goto fail;
    }
    cJSON_ArrayForEach(x, root) {
        get_id(x, &id);
        if (!strcmp(x->string, CLLM_EOT_TEXT)) {
            CLLM_TRY(tok_set_token(t, id, CLLM_EOT_TEXT, strlen(CLLM_EOT_TEXT), TOK_SPECIAL));
            continue;
        }
        long n = bytelevel_decode(x->string, buf);
        if (n <= 0) {
            st = cllm_fail(CLLM_ERR_FORMAT, "%s: \"%s\" is not byte-level text", encoder_json,
                           x->string);
            goto fail;
        }
        if ((st = tok_set_token(t, id, buf, (size_t)n, 0)) != CLLM_OK) {
            st = cllm_fail_context(st, "%s: ", encoder_json);
            goto fail;
        }
    }
    CLLM_TRY(tok_index_bytes(t));
    /* vocab.bpe: "#version: 0.2" then one "a b" per line */
    size_t lines = 1;
    for (size_t i = 0; i < vbn; i++) lines += vb[i] == '\n';
    t->merges = cllm_malloc(lines * sizeof *t->merges);
    if (!t->merges) {
        st = CLLM_ERR_NOMEM;
        goto fail;
    }
    free(buf);
    buf = cllm_malloc(vbn + 2);
    if (!buf) {
        st = CLLM_ERR_NOMEM;
        goto fail;
    }
    uint32_t r = 0;
    size_t lineno = 0;
    for (char *line = vb; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        lineno++;
        size_t ll = strlen(line);
        if (ll && line[ll - 1] == '\r') line[--ll] = 0;
        if (ll && !(lineno == 1 && line[0] == '#')) {
            char *sp = strchr(line, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                st = cllm_fail(CLLM_ERR_FORMAT, "%s:%zu: expected two tokens separated by a space",
                               vocab_bpe, lineno);
                goto fail;
            }
            *sp = 0;
            if ((st = add_merge(t, vocab_bpe, r, line, sp + 1, buf)) != CLLM_OK) {
                st = cllm_fail_context(st, "line %zu: ", lineno);
                goto fail;
            }
            r++;
        }
        line = nl ? nl + 1 : NULL;
    }
    t->n_merges = r;
    CLLM_TRY(tok_finish(t, encoder_json));
    *tok = t;
    t = NULL;
fail:
    free(ej);
    free(vb);
    free(buf);
    cJSON_Delete(root);
    cllm_tokenizer_free(t);
    return st;
}

cllm_status cllm_tokenizer_load(cllm_tokenizer **tok, const char *path) {
    *tok = NULL;
    cllm_status st;
    if (cllm_is_dir(path)) {
        char *tj = cllm_path_join(path, "tokenizer.json");
        char *ej = cllm_path_join(path, "encoder.json");
        char *vb = cllm_path_join(path, "vocab.bpe");
        if (!tj || !ej || !vb)
            st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        else if (cllm_is_file(tj))
            st = cllm_tokenizer_load(tok, tj);
        else if (cllm_is_file(ej) && cllm_is_file(vb))
            st = cllm_tokenizer_load_gpt2(tok, ej, vb);
        else
            st = cllm_fail(CLLM_ERR_IO,
                           "%s: directory holds neither tokenizer.json nor encoder.json + "
                           "vocab.bpe",
                           path);
        free(tj);
        free(ej);
        free(vb);
        return st;
    }
    char *json;
    size_t len;
    if ((st = cllm_read_file(path, &json, &len)) != CLLM_OK) return st;
    st = cllm_tokenizer_from_json(tok, json, len, path);
    free(json);
    return st;
}
