/* Reading metrics.jsonl (see cllm/metrics.h for what is strict and what is lenient). */
#include "cllm/metrics.h"

#include "cllm/util.h"
#include "eval_internal.h" /* ev_parse_object */

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void cllm_metrics_clear(cllm_metrics *m) {
    if (!m) return;
    free(m->path);
    free(m->name);
    free(m->points);
    memset(m, 0, sizeof *m);
}

/* The name of the directory that holds `file`: its parent's last component, resolved through
 * realpath when the path has none ("metrics.jsonl", "./metrics.jsonl", "."). */
static char *run_name(const char *file) {
    char *abs = realpath(file, NULL);
    const char *p = abs ? abs : file;
    const char *slash = strrchr(p, '/');
    char *dir = slash ? strndup(p, (size_t)(slash - p)) : strdup(".");
    free(abs);
    if (!dir) return NULL;
    const char *base = strrchr(dir, '/');
    char *name = strdup(base && base[1] ? base + 1 : dir[0] ? dir : "/");
    free(dir);
    return name;
}

/* Python's json.dumps writes NaN, Infinity and -Infinity bare; cJSON does not read them. Copy
 * the line with those tokens (outside strings) turned into null. */
static char *nan_to_null(const char *s, size_t n) {
    char *out = malloc(2 * n + 1); /* "NaN" grows into "null" */
    if (!out) return NULL;
    size_t o = 0;
    bool in_str = false;
    for (size_t i = 0; i < n;) {
        char ch = s[i];
        if (in_str) {
            out[o++] = ch;
            if (ch == '\\' && i + 1 < n)
                out[o++] = s[++i];
            else if (ch == '"')
                in_str = false;
            i++;
            continue;
        }
        if (ch == '"') in_str = true;
        static const char *const bare[3] = {"-Infinity", "Infinity", "NaN"};
        bool hit = false;
        for (int k = 0; k < 3 && !hit; k++) {
            size_t l = strlen(bare[k]);
            if (i + l <= n && !memcmp(s + i, bare[k], l)) {
                memcpy(out + o, "null", 4);
                o += 4;
                i += l;
                hit = true;
            }
        }
        if (!hit) out[o++] = s[i++];
    }
    out[o] = 0;
    return out;
}

/* A numeric field: NaN when absent or null; CLLM_ERR_FORMAT when not a number. */
static cllm_status num_field(const cJSON *o, const char *key, double *v, bool *nonfinite) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, key);
    *v = NAN;
    if (!f) return CLLM_OK;
    if (cJSON_IsNull(f)) {
        if (nonfinite) *nonfinite = true;
        return CLLM_OK;
    }
    if (cJSON_IsString(f)) { /* "nan", "inf": a writer that quoted them */
        const char *t = f->valuestring;
        if (!strcasecmp(t, "nan") || !strcasecmp(t, "inf") || !strcasecmp(t, "-inf") ||
            !strcasecmp(t, "infinity") || !strcasecmp(t, "-infinity")) {
            if (nonfinite) *nonfinite = true;
            return CLLM_OK;
        }
    }
    if (!cJSON_IsNumber(f)) return cllm_fail(CLLM_ERR_FORMAT, "\"%s\" is not a number", key);
    *v = f->valuedouble;
    if (!isfinite(*v)) {
        *v = NAN;
        if (nonfinite) *nonfinite = true;
    }
    return CLLM_OK;
}

static cllm_status parse_point(const char *line, size_t len, cllm_metrics_point *p,
                               int *nonfinite) {
    char *clean = nan_to_null(line, len);
    if (!clean) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    cJSON *o = NULL;
    cllm_status st = ev_parse_object(&o, clean, strlen(clean));
    free(clean);
    if (st != CLLM_OK) return st;
    bool bad_step = false;
    st = num_field(o, "step", &p->step, &bad_step);
    if (st == CLLM_OK && !isfinite(p->step))
        st = cllm_fail(CLLM_ERR_FORMAT, "no numeric \"step\" (every line needs one)");
    bool nf_loss = false, nf_val = false;
    if (st == CLLM_OK) st = num_field(o, "loss", &p->loss, &nf_loss);
    if (st == CLLM_OK) st = num_field(o, "val_loss", &p->val_loss, &nf_val);
    static const char *const keys[6] = {"val_ppl",      "lr",     "grad_norm",
                                        "tokens_per_s", "tokens", "time_s"};
    double *dst[6] = {&p->val_ppl, &p->lr, &p->grad_norm, &p->tokens_per_s, &p->tokens, &p->time_s};
    for (int k = 0; k < 6 && st == CLLM_OK; k++)
        st = num_field(o, keys[k], dst[k], NULL);
    const cJSON *sk = cJSON_GetObjectItemCaseSensitive(o, "skipped");
    p->skipped = sk && cJSON_IsTrue(sk);
    *nonfinite = (int)nf_loss + (int)nf_val;
    cJSON_Delete(o);
    return st;
}

/* Merge b's present fields into a (same step). */
static void merge(cllm_metrics_point *a, const cllm_metrics_point *b) {
#define TAKE(f)                                                                                    \
    if (!isnan(b->f)) a->f = b->f
    TAKE(loss);
    TAKE(val_loss);
    TAKE(val_ppl);
    TAKE(lr);
    TAKE(grad_norm);
    TAKE(tokens_per_s);
    TAKE(tokens);
    TAKE(time_s);
#undef TAKE
    a->skipped = a->skipped || b->skipped;
}

cllm_status cllm_metrics_load(cllm_metrics *m, const char *path) {
    memset(m, 0, sizeof *m);
    cllm_status st = CLLM_OK;
    char *data = NULL;
    size_t len = 0, cap = 0;
    if (cllm_is_dir(path)) {
        m->path = cllm_path_join(path, "metrics.jsonl");
        if (m->path && !cllm_is_file(m->path)) {
            st = cllm_fail(CLLM_ERR_IO,
                           "%s: no metrics.jsonl in this directory (a run directory "
                           "of cllm train has one)",
                           path);
            goto fail;
        }
    } else {
        m->path = strdup(path);
    }
    m->name = m->path ? run_name(m->path) : NULL;
    if (!m->path || !m->name) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    CLLM_TRY(cllm_read_file(m->path, &data, &len));
    for (size_t pos = 0; pos < len;) {
        const char *line = data + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        pos += n + (nl ? 1 : 0);
        m->lines++;
        if (m->lines > INT_MAX / 2) {
            st = cllm_fail(CLLM_ERR_TOO_LARGE, "%s: more than %d lines", m->path, INT_MAX / 2);
            goto fail;
        }
        if (n && line[n - 1] == '\r') n--;
        size_t b = 0;
        while (b < n && (line[b] == ' ' || line[b] == '\t'))
            b++;
        if (b == n) continue;
        if (memchr(line, 0, n)) {
            st = cllm_fail(CLLM_ERR_FORMAT,
                           "%s:%ld: a NUL byte (expected one JSON object per "
                           "line)",
                           m->path, m->lines);
            goto fail;
        }
        cllm_metrics_point p;
        int nonfinite = 0;
        st = parse_point(line, n, &p, &nonfinite);
        if (st == CLLM_ERR_FORMAT && !nl) { /* an unterminated last line: a killed writer */
            m->truncated_tail = true;
            st = CLLM_OK;
            break;
        }
        if (st != CLLM_OK) {
            st = cllm_fail_context(st, "%s:%ld", m->path, m->lines);
            goto fail;
        }
        m->nonfinite += nonfinite;
        m->skipped_updates += p.skipped;
        if (m->n && p.step == m->points[m->n - 1].step) {
            merge(&m->points[m->n - 1], &p);
            continue;
        }
        while (m->n && m->points[m->n - 1].step >= p.step) { /* a resumed run starts over */
            m->n--;
            m->superseded++;
        }
        if (m->n == cap) {
            size_t nc = cap ? 2 * cap : 256;
            cllm_metrics_point *np = realloc(m->points, nc * sizeof *np);
            if (!np) {
                st = cllm_fail(CLLM_ERR_NOMEM, "%s: out of memory", m->path);
                goto fail;
            }
            m->points = np;
            cap = nc;
        }
        m->points[m->n++] = p;
    }
    if (m->truncated_tail)
        cllm_log(CLLM_LOG_WARN,
                 "%s: the last line is incomplete (a writer stopped mid-line); "
                 "left out",
                 m->path);
    free(data);
    return CLLM_OK;
fail:
    free(data);
    cllm_metrics_clear(m);
    return st;
}

size_t cllm_metrics_count_loss(const cllm_metrics *m) {
    size_t n = 0;
    for (size_t i = 0; i < m->n; i++)
        n += isfinite(m->points[i].loss);
    return n;
}

size_t cllm_metrics_count_val(const cllm_metrics *m) {
    size_t n = 0;
    for (size_t i = 0; i < m->n; i++)
        n += isfinite(m->points[i].val_loss);
    return n;
}
