/* Document curation: UTF-8 repair, clean-up, NFC (utf8proc) and the per-document quality
 * rules of cllm/data.h. Everything here is a pure function of one document (thread-safe). */
#include "cllm/data.h"
#include "cllm/util.h"
#include "data_internal.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

static const char *const RULE_NAMES[CLLM_DOC_N_RULES] = {"kept",      "empty",     "too_short",
                                                         "too_long",  "low_alpha", "repeated_lines",
                                                         "long_word", "held_out", "exact_dup", "near_dup"};

const char *cllm_doc_rule_name(cllm_doc_rule r) {
    return (unsigned)r < CLLM_DOC_N_RULES ? RULE_NAMES[r] : "unknown";
}

cllm_curate_opts cllm_curate_opts_default(void) {
    return (cllm_curate_opts){.clean = true,
                              .nfc = true,
                              .min_chars = 0,
                              .max_chars = 0,
                              .min_alpha = CLLM_DEFAULT_MIN_ALPHA,
                              .max_repeated_lines = 0.3,
                              .max_word_chars = 1000};
}

int cllm_utf8_decode(const unsigned char *p, size_t n, uint32_t *cp) {
    unsigned c = p[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int need;
    uint32_t v;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        v = c & 0x0F;
        if (c == 0xE0) lo = 0xA0; /* overlong */
        if (c == 0xED) hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        v = c & 0x07;
        if (c == 0xF0) lo = 0x90; /* overlong */
        if (c == 0xF4) hi = 0x8F; /* > U+10FFFF */
    } else {
        return -1;
    }
    for (int i = 1; i <= need; i++) {
        if ((size_t)i >= n) return -i;
        unsigned b = p[i];
        if (b < lo || b > hi) return -i;
        lo = 0x80;
        hi = 0xBF;
        v = v << 6 | (b & 0x3F);
    }
    *cp = v;
    return need + 1;
}

size_t cllm_utf8_encode(uint32_t c, char *out) {
    unsigned char *o = (unsigned char *)out;
    if (c < 0x80) {
        o[0] = (unsigned char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (unsigned char)(0xC0 | c >> 6);
        o[1] = (unsigned char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (unsigned char)(0xE0 | c >> 12);
        o[1] = (unsigned char)(0x80 | (c >> 6 & 0x3F));
        o[2] = (unsigned char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | c >> 18);
    o[1] = (unsigned char)(0x80 | (c >> 12 & 0x3F));
    o[2] = (unsigned char)(0x80 | (c >> 6 & 0x3F));
    o[3] = (unsigned char)(0x80 | (c & 0x3F));
    return 4;
}

/* Unicode White_Space (the line breaks are handled before this is asked). */
bool cllm_is_space(uint32_t c) {
    if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D);
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
           c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool cllm_is_letter(uint32_t c) {
    if (c < 0x80) return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}

/* Replace invalid UTF-8 by U+FFFD (one per maximal invalid subpart, as Python and WHATWG do).
 * Returns a malloc'd copy, or NULL with *valid = true when the input is already valid. */
static char *repair_utf8(const char *s, size_t n, size_t *out_len, bool *valid, cllm_status *st) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    uint32_t cp;
    while (i < n) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        int k = cllm_utf8_decode(p + i, n - i, &cp);
        if (k < 0) break;
        i += (size_t)k;
    }
    *st = CLLM_OK;
    if (i == n) {
        *valid = true;
        return NULL;
    }
    *valid = false;
    char *out = cllm_malloc(3 * n + 1); /* each bad byte becomes at most 3 */
    if (!out) {
        *st = CLLM_ERR_NOMEM;
        return NULL;
    }
    memcpy(out, s, i);
    size_t o = i;
    while (i < n) {
        int k = cllm_utf8_decode(p + i, n - i, &cp);
        if (k > 0) {
            memcpy(out + o, p + i, (size_t)k);
            o += (size_t)k;
            i += (size_t)k;
        } else {
            o += cllm_utf8_encode(0xFFFD, out + o);
            i += (size_t)-k;
        }
    }
    out[o] = 0;
    *out_len = o;
    return out;
}

char *cllm_utf8_repair(const char *s, size_t n, size_t *out_len) {
    bool valid;
    cllm_status st;
    size_t len = n;
    char *out = repair_utf8(s, n, &len, &valid, &st);
    if (valid && (out = cllm_malloc(n + 1)) != NULL) {
        if (n) memcpy(out, s, n);
        out[n] = '\0';
    }
    if (out && out_len) *out_len = len;
    return out;
}

/* Characters the clean-up drops: C0 controls but TAB and LF, DEL, C1 controls, BOM. */
static bool dropped(uint32_t c) {
    return (c < 0x20 && c != '\t' && c != '\n') || (c >= 0x7F && c <= 0x9F) || c == 0xFEFF;
}

static bool line_break(uint32_t c) {
    return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x2028 || c == 0x2029;
}

/* The clean-up (input valid UTF-8; output no longer than the input, into out):
 *  - CR LF, CR, VT, FF, U+2028/9 end a line; lines end in LF, the last one in nothing;
 *  - backspace overstrike (old man-page style "_\bX" underline, "X\bX" bold) is resolved as
 *    a terminal would print it, keeping the letter rather than the underscore;
 *  - other control characters and BOMs are dropped;
 *  - trailing white space on each line is dropped, blank lines at the start and the end of
 *    the document are dropped, and more than one blank line in a row becomes one. */
static size_t clean_text(const char *s, size_t n, char *out, uint32_t **line, size_t *line_cap,
                         cllm_status *st) {
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0, i = 0;
    int pending = 0; /* line breaks since the last non-blank line */
    bool started = false;
    *st = CLLM_OK;
    while (i <= n) {
        /* One line into (*line)[0..len) with a cursor, for overstrike. */
        size_t len = 0, pos = 0;
        bool ended = false;
        while (i < n) {
            uint32_t c;
            int k = cllm_utf8_decode(p + i, n - i, &c);
            i += (size_t)k; /* valid input: k > 0 */
            if (line_break(c)) {
                if (c == '\r' && i < n && p[i] == '\n') i++;
                ended = true;
                break;
            }
            if (c == '\b') {
                if (pos > 0) pos--;
                continue;
            }
            if (dropped(c)) continue;
            if (pos < len) {
                uint32_t old = (*line)[pos];
                if (!(c == '_' && old != '_')) (*line)[pos] = c;
                pos++;
                continue;
            }
            if (len == *line_cap) {
                size_t cap = *line_cap ? 2 * *line_cap : 256;
                uint32_t *nl = realloc(*line, cap * sizeof *nl);
                if (!nl) {
                    *st = cllm_fail(CLLM_ERR_NOMEM, "out of memory cleaning a document");
                    return 0;
                }
                *line = nl;
                *line_cap = cap;
            }
            (*line)[len++] = c;
            pos = len;
        }
        while (len > 0 && cllm_is_space((*line)[len - 1]))
            len--;
        if (len > 0) {
            if (started) {
                int nl = pending > 2 ? 2 : pending;
                for (int j = 0; j < nl; j++)
                    out[o++] = '\n';
            }
            for (size_t j = 0; j < len; j++)
                o += cllm_utf8_encode((*line)[j], out + o);
            started = true;
            pending = 0;
        }
        if (ended)
            pending++;
        else
            break;
    }
    return o;
}

/* Measures of the final text for the rules. */
typedef struct {
    uint64_t chars, nonspace, letters, longest_word, lines, repeated_lines;
} measures;

static cllm_status measure(const char *s, size_t n, measures *m) {
    memset(m, 0, sizeof *m);
    const unsigned char *p = (const unsigned char *)s;
    uint64_t word = 0;
    size_t n_lines = 1;
    for (size_t i = 0; i < n; i++)
        n_lines += p[i] == '\n';
    /* Line hashes in an open-addressing set (0 = empty slot). */
    size_t cap = 16;
    while (cap < 2 * n_lines)
        cap *= 2;
    uint64_t *set = cllm_calloc(cap, sizeof *set);
    if (!set) return CLLM_ERR_NOMEM;
    size_t line_start = 0;
    for (size_t i = 0; i <= n;) {
        if (i == n || p[i] == '\n') {
            /* A line [line_start, i), compared without surrounding white space. */
            size_t a = line_start, b = i;
            while (a < b && (p[a] == ' ' || p[a] == '\t' || p[a] == '\r'))
                a++;
            while (b > a && (p[b - 1] == ' ' || p[b - 1] == '\t' || p[b - 1] == '\r'))
                b--;
            if (b > a) {
                m->lines++;
                uint64_t h = cllm_xxh64(s + a, b - a, 0x6c696e6573ull) | 1;
                size_t k = (size_t)h & (cap - 1);
                while (set[k] && set[k] != h)
                    k = (k + 1) & (cap - 1);
                if (set[k] == h)
                    m->repeated_lines++;
                else
                    set[k] = h;
            }
            if (i == n) break;
            m->chars++;
            if (word > m->longest_word) m->longest_word = word;
            word = 0;
            i++;
            line_start = i;
            continue;
        }
        uint32_t c;
        int k = cllm_utf8_decode(p + i, n - i, &c);
        if (k < 0) { /* only when the caller skipped repair: count the byte */
            c = 0xFFFD;
            k = 1;
        }
        i += (size_t)k;
        m->chars++;
        if (cllm_is_space(c)) {
            if (word > m->longest_word) m->longest_word = word;
            word = 0;
        } else {
            m->nonspace++;
            m->letters += cllm_is_letter(c);
            word++;
        }
    }
    if (word > m->longest_word) m->longest_word = word;
    free(set);
    return CLLM_OK;
}

cllm_status cllm_curate(const cllm_curate_opts *o, const char *text, size_t len,
                        cllm_curated *out) {
    memset(out, 0, sizeof *out);
    cllm_status st;
    bool valid;
    size_t cur_len = len;
    char *repaired = repair_utf8(text, len, &cur_len, &valid, &st);
    if (st != CLLM_OK) return st;
    const char *cur = valid ? text : repaired;
    if (!valid) out->changes |= CLLM_CHANGED_UTF8;

    char *cleaned = NULL;
    if (o->clean) {
        cleaned = cllm_malloc(cur_len + 1);
        if (!cleaned) {
            free(repaired);
            return CLLM_ERR_NOMEM;
        }
        uint32_t *line = NULL;
        size_t line_cap = 0;
        size_t n = clean_text(cur, cur_len, cleaned, &line, &line_cap, &st);
        free(line);
        if (st != CLLM_OK) {
            free(cleaned);
            free(repaired);
            return st;
        }
        if (n != cur_len || memcmp(cleaned, cur, n) != 0) out->changes |= CLLM_CHANGED_CLEAN;
        cleaned[n] = 0;
        free(repaired);
        repaired = NULL;
        cur = cleaned;
        cur_len = n;
    }

    bool ascii = true;
    for (size_t i = 0; i < cur_len && ascii; i++)
        ascii = (unsigned char)cur[i] < 0x80;
    char *final = NULL;
    if (o->nfc && !ascii) {
        utf8proc_uint8_t *dst = NULL;
        utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)cur, (utf8proc_ssize_t)cur_len,
                                          &dst, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (r < 0) {
            free(cleaned);
            free(repaired);
            return cllm_fail(CLLM_ERR_FORMAT, "Unicode normalization failed: %s",
                             utf8proc_errmsg(r));
        }
        if ((size_t)r != cur_len || memcmp(dst, cur, cur_len) != 0)
            out->changes |= CLLM_CHANGED_NFC;
        final = (char *)dst; /* malloc'd by utf8proc, NUL-terminated */
        cur_len = (size_t)r;
        free(cleaned);
        free(repaired);
    } else {
        final = cleaned ? cleaned : repaired;
        if (!final) {
            final = cllm_malloc(cur_len + 1);
            if (!final) return CLLM_ERR_NOMEM;
            memcpy(final, cur, cur_len);
            final[cur_len] = 0;
        }
    }
    out->text = final;
    out->len = cur_len;

    measures m;
    st = measure(final, cur_len, &m);
    if (st != CLLM_OK) {
        free(final);
        out->text = NULL;
        return st;
    }
    out->chars = m.chars;
    out->rule = CLLM_DOC_KEPT;
    if (m.nonspace == 0) {
        out->rule = CLLM_DOC_EMPTY;
    } else if (o->min_chars && m.chars < o->min_chars) {
        out->rule = CLLM_DOC_TOO_SHORT;
        out->value = (double)m.chars;
    } else if (o->max_chars && m.chars > o->max_chars) {
        out->rule = CLLM_DOC_TOO_LONG;
        out->value = (double)m.chars;
    } else if (o->min_alpha > 0 && (double)m.letters < o->min_alpha * (double)m.nonspace) {
        out->rule = CLLM_DOC_LOW_ALPHA;
        out->value = (double)m.letters / (double)m.nonspace;
    } else if (o->max_repeated_lines < 1 && m.lines > 0 &&
               (double)m.repeated_lines > o->max_repeated_lines * (double)m.lines) {
        out->rule = CLLM_DOC_REPEATED_LINES;
        out->value = (double)m.repeated_lines / (double)m.lines;
    } else if (o->max_word_chars && m.longest_word > o->max_word_chars) {
        out->rule = CLLM_DOC_LONG_WORD;
        out->value = (double)m.longest_word;
    }
    return CLLM_OK;
}
