/* Shared helpers of the eval module: growable strings, UTF-8, Python whitespace, JSONL. */
#include "eval_internal.h"

#include "cllm/util.h"

#include <cjson/cJSON.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ev_buf_add(ev_buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    if (n) memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

void ev_buf_adds(ev_buf *b, const char *s) { ev_buf_add(b, s, strlen(s)); }

void ev_buf_addc(ev_buf *b, char c) { ev_buf_add(b, &c, 1); }

char *ev_buf_take(ev_buf *b) {
    if (!b->oom && !b->s) ev_buf_add(b, "", 0);
    if (b->oom) {
        ev_buf_free(b);
        cllm_fail(CLLM_ERR_NOMEM, "out of host memory building a string");
        return NULL;
    }
    char *s = b->s;
    b->s = NULL;
    b->len = b->cap = 0;
    return s;
}

void ev_buf_free(ev_buf *b) {
    free(b->s);
    b->s = NULL;
    b->len = b->cap = 0;
    b->oom = false;
}

int ev_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    if (n == 0) return 0;
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int len;
    uint32_t v, min;
    if ((c & 0xE0) == 0xC0) {
        len = 2, v = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, v = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if ((size_t)len > n) return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

bool ev_utf8_valid(const char *s, size_t n, size_t *bad) {
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        int l = ev_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (!l) {
            if (bad) *bad = i;
            return false;
        }
        i += (size_t)l;
    }
    return true;
}

size_t ev_utf8_chars(const char *s) {
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p & 0xC0) != 0x80) n++;
    return n;
}

bool ev_py_isspace(uint32_t cp) {
    /* CPython's _PyUnicode_IsWhitespace: bidirectional type WS, B or S, or category Zs. */
    if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F);
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

size_t ev_space_len(const char *s, size_t n) {
    uint32_t cp;
    int l = ev_utf8_decode((const unsigned char *)s, n, &cp);
    return l && ev_py_isspace(cp) ? (size_t)l : 0;
}

void ev_py_strip(const char *s, size_t n, size_t *b, size_t *e) {
    size_t i = 0, l;
    while (i < n && (l = ev_space_len(s + i, n - i)) > 0) i += l;
    size_t end = n;
    /* Walk back to the start of each trailing character (UTF-8 lead byte). */
    while (end > i) {
        size_t k = end - 1;
        while (k > i && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
        if (ev_space_len(s + k, end - k) != end - k) break;
        end = k;
    }
    *b = i;
    *e = end;
}

static bool line_blank(const char *s, size_t n) {
    size_t b, e;
    ev_py_strip(s, n, &b, &e);
    return b == e;
}

cllm_status ev_jsonl_each(const char *path, bool strict, int limit, const char *what,
                          ev_line_fn fn, void *user, cllm_jsonl_stats *st) {
    memset(st, 0, sizeof *st);
    long accepted = 0;
    char *data = NULL;
    size_t len = 0;
    cllm_status s = cllm_read_file(path, &data, &len);
    if (s != CLLM_OK) return s;
    size_t pos = 0;
    while (pos < len && (limit <= 0 || accepted < limit)) {
        const char *line = data + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        pos += n + (nl ? 1 : 0);
        st->lines++;
        if (n && line[n - 1] == '\r') n--;
        char reason[200];
        size_t bad;
        reason[0] = 0;
        if (memchr(line, 0, n)) {
            snprintf(reason, sizeof reason, "contains a NUL byte (expected one JSON object)");
        } else if (!ev_utf8_valid(line, n, &bad)) {
            snprintf(reason, sizeof reason, "invalid UTF-8 at byte %zu of the line", bad + 1);
        } else if (line_blank(line, n)) {
            st->blank++;
            continue;
        } else {
            s = fn(user, line, n, st->lines);
            if (s == CLLM_OK) {
                accepted++;
                continue;
            }
            if (s != CLLM_ERR_FORMAT) goto done;
            snprintf(reason, sizeof reason, "%s", cllm_last_error());
        }
        if (strict) {
            s = cllm_fail(CLLM_ERR_FORMAT, "%s:%ld: %s", path, st->lines, reason);
            goto done;
        }
        if (st->skipped++ == 0) {
            st->first_skipped_line = st->lines;
            snprintf(st->first_skip_reason, sizeof st->first_skip_reason, "%s:%ld: %s", path,
                     st->lines, reason);
        }
    }
    s = CLLM_OK;
    if (st->skipped)
        cllm_log(CLLM_LOG_WARN, "%s: skipped %ld malformed line%s (first: %s)", path,
                 st->skipped, st->skipped == 1 ? "" : "s", st->first_skip_reason);
    if (accepted == 0) {
        if (st->skipped)
            s = cllm_fail(CLLM_ERR_FORMAT, "%s: no %s: all %ld non-blank lines are malformed "
                          "(first: %s)", path, what, st->skipped, st->first_skip_reason);
        else
            s = cllm_fail(CLLM_ERR_FORMAT, "%s: no %s (the file has no non-blank lines)", path,
                          what);
    }
done:
    free(data);
    return s;
}

cllm_status ev_parse_object(cJSON **out, const char *json, size_t len) {
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(json, len, &end, false);
    *out = NULL;
    if (!o) {
        size_t at = end && end >= json ? (size_t)(end - json) : 0;
        return cllm_fail(CLLM_ERR_FORMAT, "not valid JSON (near byte %zu)", at + 1);
    }
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return cllm_fail(CLLM_ERR_FORMAT, "expected a JSON object");
    }
    for (const char *p = end; p && p < json + len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
            cJSON_Delete(o);
            return cllm_fail(CLLM_ERR_FORMAT, "text after the JSON object (near byte %zu)",
                             (size_t)(p - json) + 1);
        }
    *out = o;
    return CLLM_OK;
}
