/* The run report (cllm/report.h): RUN/report.md and its PNGs, every number read from the
 * run's files (config.json, train_args.json, metrics.jsonl, samples.jsonl, the latest
 * checkpoint's state.json, the data directory's stats.json, eval.json, a linked SFT run's
 * files, the demo's record) or computed from them (perplexity = exp(loss), parameters from
 * the config, tokens/s = tokens / seconds). */
#include "cllm/report.h"

#include "cllm/attnmap.h"
#include "cllm/checkpoint.h"
#include "cllm/data.h"
#include "cllm/gpt.h"
#include "cllm/metrics.h"
#include "cllm/model.h"
#include "cllm/tokenizer.h"
#include "cllm/util.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* What the attention maps look at when the run has no validation text to take it from. */
#define FALLBACK_TEXT "The computer is a tool for thought, and so is the fortune cookie."
/* Tokens of the attention text at most (the maps are T x T; labels must stay legible). */
#define ATTN_MAX_TOKENS 20

typedef struct {
    const cllm_report_opts *o;
    cllm_report_result *res;
    char *run, *name; /* RUN as given, its base name */
    char *out;        /* the Markdown file */
    char *out_real;   /* realpath of its directory, for relative paths */
    char *img_dir;    /* where the PNGs go */
    char *img_rel;    /* the same, relative to the Markdown file */
    FILE *md;
    char *md_buf;
    size_t md_len;
    cllm_gpt_config cfg;
    cJSON *args, *state, *stats, *eval, *demo;
    char *ckpt, *data_dir, *eval_path;
    cllm_metrics m;
    /* the linked SFT run */
    char *sft;
    cJSON *sft_args, *sft_rep;
    cllm_metrics sm;
} report;

/* ---------------------------------------------------------------- small helpers */

static const cJSON *jget(const cJSON *o, const char *path) {
    char key[64];
    while (o && *path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        if (n >= sizeof key) return NULL;
        memcpy(key, path, n);
        key[n] = 0;
        o = cJSON_GetObjectItemCaseSensitive(o, key);
        path += n + (dot != NULL);
    }
    return o;
}
static double jnum(const cJSON *o, const char *path) {
    const cJSON *v = jget(o, path);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}
static const char *jstr(const cJSON *o, const char *path) {
    const cJSON *v = jget(o, path);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* An integer with thousands separators: 1234567 -> "1,234,567". */
static const char *fmt_int(char *buf, size_t cap, double v) {
    if (!isfinite(v)) {
        snprintf(buf, cap, "-");
        return buf;
    }
    char digits[32];
    snprintf(digits, sizeof digits, "%.0f", fabs(v));
    size_t n = strlen(digits), j = 0;
    if (v < 0 && j + 1 < cap) buf[j++] = '-';
    for (size_t i = 0; i < n && j + 2 < cap; i++) {
        if (i && (n - i) % 3 == 0) buf[j++] = ',';
        buf[j++] = digits[i];
    }
    buf[j] = 0;
    return buf;
}
#define INT(v) fmt_int((char[32]){0}, 32, (v))

/* Seconds as "41 s", "6 min 31 s", "1 h 02 min". */
static const char *fmt_dur(char *buf, size_t cap, double s) {
    if (!isfinite(s) || s < 0) s = 0;
    if (s < 1)
        snprintf(buf, cap, "%.2f s", s);
    else if (s < 10)
        snprintf(buf, cap, "%.1f s", s);
    else if (s < 60)
        snprintf(buf, cap, "%.0f s", s);
    else if (s < 3600)
        snprintf(buf, cap, "%d min %02d s", (int)(s / 60), (int)fmod(s, 60));
    else
        snprintf(buf, cap, "%d h %02d min", (int)(s / 3600), (int)fmod(s / 60, 60));
    return buf;
}
#define DUR(v) fmt_dur((char[32]){0}, 32, (v))

/* Inline Markdown text (also table cells): characters Markdown or HTML would read are
 * escaped, newlines become <br>, other control bytes \xNN. */
static void md_text(FILE *f, const char *s) {
    for (const unsigned char *c = (const unsigned char *)(s ? s : ""); *c; c++) {
        if (*c == '\n')
            fputs("<br>", f);
        else if (*c == '\t')
            fputs(" ", f);
        else if (*c == '<')
            fputs("&lt;", f);
        else if (*c == '>')
            fputs("&gt;", f);
        else if (*c == '&')
            fputs("&amp;", f);
        else if (*c < 0x20 || *c == 0x7f)
            fprintf(f, "\\\\x%02x", *c);
        else if (strchr("\\`*_[]|~#!", *c))
            fprintf(f, "\\%c", *c);
        else
            fputc(*c, f);
    }
}

/* pre, then text as inline Markdown, then post. */
static void md_say(FILE *f, const char *pre, const char *text, const char *post) {
    fputs(pre, f);
    md_text(f, text);
    fputs(post, f);
}

/* A fenced block of literal text: the fence is longer than any run of backticks inside. */
static void md_block(FILE *f, const char *s) {
    int run = 0, longest = 0;
    for (const char *c = s; *c; c++) {
        run = *c == '`' ? run + 1 : 0;
        if (run > longest) longest = run;
    }
    int fence = longest < 3 ? 3 : longest + 1;
    for (int i = 0; i < fence; i++)
        fputc('`', f);
    fputs("text\n", f);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if ((*c < 0x20 && *c != '\n' && *c != '\t') || *c == 0x7f)
            fprintf(f, "\\x%02x", *c);
        else
            fputc(*c, f);
    }
    if (*s && s[strlen(s) - 1] != '\n') fputc('\n', f);
    for (int i = 0; i < fence; i++)
        fputc('`', f);
    fputs("\n\n", f);
}

/* A line saying what was left out and why. */
static void omit(report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void omit(report *r, const char *fmt, ...) {
    va_list ap;
    fputs("*Not included: ", r->md);
    va_start(ap, fmt);
    vfprintf(r->md, fmt, ap);
    va_end(ap);
    fputs("*\n\n", r->md);
    r->res->n_omitted++;
}

/* A path as the reader of the report finds it: relative to the report's directory ("." for
 * that directory, "../data" beside it), or as given when it does not exist. The result is
 * valid until the same slot is used again (four static buffers). */
static const char *shown(report *r, const char *path, int slot) {
    static char buf[4][PATH_MAX];
    char real[PATH_MAX];
    char *b = buf[slot & 3];
    snprintf(b, PATH_MAX, "%s", path ? path : "");
    if (!path || !r->out_real || !realpath(path, real)) return b;
    /* the longest common prefix of whole components */
    const char *base = r->out_real;
    size_t common = 0;
    for (size_t i = 0;; i++) {
        bool end_a = base[i] == 0 || base[i] == '/', end_b = real[i] == 0 || real[i] == '/';
        if (end_a && end_b) common = i;
        if (base[i] != real[i] || !base[i]) break;
    }
    if (common == 0 && strcmp(base, "/") && strcmp(real, "/")) {
        snprintf(b, PATH_MAX, "%s", real); /* nothing in common but the root */
        return b;
    }
    size_t up = 0;
    for (const char *c = base + common; *c; c++)
        up += *c == '/';
    size_t n = 0;
    b[0] = 0;
    for (size_t i = 0; i < up && n + 4 < PATH_MAX; i++)
        n += (size_t)snprintf(b + n, PATH_MAX - n, "%s..", i ? "/" : "");
    const char *rest = real + common + (real[common] == '/');
    if (*rest) snprintf(b + n, PATH_MAX - n, "%s%s", n ? "/" : "", rest);
    if (!b[0]) snprintf(b, PATH_MAX, ".");
    return b;
}

static bool same_path(const char *a, const char *b) {
    char ra[PATH_MAX], rb[PATH_MAX];
    return a && b && realpath(a, ra) && realpath(b, rb) && !strcmp(ra, rb);
}

/* A JSON file, or NULL when it does not exist (st CLLM_OK) or is malformed (st set). */
static cllm_status load_json(const char *path, cJSON **out, bool required) {
    *out = NULL;
    if (!cllm_is_file(path)) {
        if (required) return cllm_fail(CLLM_ERR_IO, "%s: no such file", path);
        return CLLM_OK;
    }
    char *text = NULL;
    size_t len;
    cllm_status st = cllm_read_file(path, &text, &len);
    if (st != CLLM_OK) return st;
    *out = cJSON_ParseWithLength(text, len);
    free(text);
    if (!*out || !cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        return cllm_fail(CLLM_ERR_FORMAT, "%s: not a JSON object", path);
    }
    return CLLM_OK;
}

static cllm_status add_image(report *r, const char *path, int w, int h) {
    cllm_report_result *res = r->res;
    if (res->n_images >= CLLM_REPORT_MAX_IMAGES)
        return cllm_fail(CLLM_ERR_STATE, "too many images in one report");
    res->images[res->n_images].path = strdup(path);
    res->images[res->n_images].width = w;
    res->images[res->n_images].height = h;
    if (!res->images[res->n_images].path) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    res->n_images++;
    if (r->o->log) fprintf(r->o->log, "wrote %s (%dx%d)\n", path, w, h);
    return CLLM_OK;
}

/* The image path on disk and its link in the Markdown, for a file name. */
static cllm_status image_paths(report *r, const char *file, char **disk, char **link) {
    *disk = cllm_path_join(r->img_dir, file);
    *link = cllm_path_join(r->img_rel, file);
    if (!*disk || !*link) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    return CLLM_OK;
}

/* Validation points of a run (finite val_loss), as indices into m->points. */
static size_t val_points(const cllm_metrics *m, size_t *idx, size_t cap) {
    size_t n = 0;
    for (size_t i = 0; i < m->n; i++)
        if (isfinite(m->points[i].val_loss)) {
            if (idx && n < cap) idx[n] = i;
            n++;
        }
    return n;
}

static const cllm_metrics_point *first_val(const cllm_metrics *m) {
    for (size_t i = 0; i < m->n; i++)
        if (isfinite(m->points[i].val_loss)) return &m->points[i];
    return NULL;
}
static const cllm_metrics_point *last_val(const cllm_metrics *m) {
    for (size_t i = m->n; i-- > 0;)
        if (isfinite(m->points[i].val_loss)) return &m->points[i];
    return NULL;
}
static const cllm_metrics_point *last_point(const cllm_metrics *m) {
    return m->n ? &m->points[m->n - 1] : NULL;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median of the per-step tokens_per_s of a run (steps >= 1), NaN when none. */
static double median_tps(const cllm_metrics *m) {
    double *v = malloc((m->n + 1) * sizeof *v);
    size_t n = 0;
    if (!v) return NAN;
    for (size_t i = 0; i < m->n; i++)
        if (m->points[i].step >= 1 && isfinite(m->points[i].tokens_per_s))
            v[n++] = m->points[i].tokens_per_s;
    qsort(v, n, sizeof *v, cmp_double);
    double r = n == 0 ? NAN : n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    free(v);
    return r;
}

/* ---------------------------------------------------------------- loading */

/* The SFT run beside RUN fine-tuned from it: the first sibling (in name order) whose
 * train_args.json says "kind": "sft" and whose "init" is RUN or one of RUN's step
 * directories. *others counts further matches. */
static char *find_sft(const char *run, int *others) {
    *others = 0;
    char real_run[PATH_MAX];
    if (!realpath(run, real_run)) return NULL;
    char *parent = cllm_strdup_printf("%s/..", real_run);
    struct dirent **list = NULL;
    int n = parent ? scandir(parent, &list, NULL, alphasort) : -1;
    char *found = NULL;
    for (int i = 0; i < n; i++) {
        const char *e = list[i]->d_name;
        if (e[0] != '.') {
            char *dir = cllm_path_join(parent, e);
            char *ta = dir ? cllm_path_join(dir, "train_args.json") : NULL;
            cJSON *a = NULL;
            if (ta && cllm_is_file(ta) && load_json(ta, &a, false) == CLLM_OK && a) {
                const char *kind = jstr(a, "args.kind"), *init = jstr(a, "args.init");
                char real_init[PATH_MAX];
                bool match = kind && !strcmp(kind, "sft") && init && realpath(init, real_init);
                if (match) {
                    char *slash = strrchr(real_init, '/');
                    match = !strcmp(real_init, real_run);
                    if (!match && slash) {
                        *slash = 0; /* a step directory of RUN */
                        match = !strcmp(real_init, real_run);
                    }
                }
                if (match) {
                    if (!found) {
                        found = dir;
                        dir = NULL;
                    } else {
                        (*others)++;
                    }
                }
            }
            cllm_clear_error();
            cJSON_Delete(a);
            free(ta);
            free(dir);
        }
        free(list[i]);
    }
    free(list);
    free(parent);
    return found;
}

static cllm_status load_run(report *r) {
    const char *run = r->o->run;
    cllm_status st = CLLM_OK;
    char *p = NULL;
    if (!cllm_is_dir(run))
        return cllm_fail(CLLM_ERR_IO,
                         "%s: no such run directory (a directory that cllm train "
                         "or cllm sft wrote)",
                         run);
    p = cllm_path_join(run, "metrics.jsonl");
    if (!p) return CLLM_ERR_NOMEM;
    if (!cllm_is_file(p)) {
        st = cllm_fail(CLLM_ERR_FORMAT,
                       "%s is not a training run: it has no metrics.jsonl (cllm train --out %s "
                       "makes one)",
                       run, run);
        goto fail;
    }
    CLLM_TRY(cllm_metrics_load(&r->m, p));
    free(p);
    p = cllm_path_join(run, "config.json");
    if (!cllm_is_file(p)) {
        st = cllm_fail(CLLM_ERR_FORMAT, "%s is not a training run: it has no config.json", run);
        goto fail;
    }
    CLLM_TRY(cllm_gpt_config_load(p, &r->cfg));
    free(p);
    p = cllm_path_join(run, "train_args.json");
    CLLM_TRY(load_json(p, &r->args, false));
    r->ckpt = cllm_checkpoint_latest(run);
    if (r->ckpt) {
        char *sp = cllm_path_join(r->ckpt, "state.json");
        st = load_json(sp, &r->state, false);
        free(sp);
        if (st != CLLM_OK) goto fail;
    }
    cllm_clear_error();
    /* the data directory's stats.json */
    const char *data = jstr(r->args, "args.data");
    if (data && cllm_is_dir(data)) {
        r->data_dir = strdup(data);
        char *sp = cllm_path_join(data, "stats.json");
        st = load_json(sp, &r->stats, false);
        free(sp);
        if (st != CLLM_OK) goto fail;
    }
    /* evaluation */
    r->eval_path = r->o->eval ? strdup(r->o->eval) : cllm_path_join(run, "eval.json");
    if (r->o->eval && !cllm_is_file(r->o->eval)) {
        st = cllm_fail(CLLM_ERR_IO, "%s: no such file (the evaluation to include)", r->o->eval);
        goto fail;
    }
    CLLM_TRY(load_json(r->eval_path, &r->eval, false));
    /* the demo record beside RUN, when it names RUN */
    {
        char *dp = cllm_strdup_printf("%s/../demo.json", run);
        cJSON *d = NULL;
        if (dp && cllm_is_file(dp) && load_json(dp, &d, false) == CLLM_OK && d &&
            same_path(jstr(d, "runs.pretrain"), run))
            r->demo = d;
        else
            cJSON_Delete(d);
        cllm_clear_error();
        free(dp);
    }
    /* the SFT run */
    int others = 0;
    if (r->o->sft && *r->o->sft) {
        if (!cllm_is_dir(r->o->sft)) {
            st = cllm_fail(CLLM_ERR_IO, "%s: no such SFT run directory", r->o->sft);
            goto fail;
        }
        r->sft = strdup(r->o->sft);
    } else if (!r->o->sft) {
        r->sft = find_sft(run, &others);
    }
    if (r->sft) {
        char *sp = cllm_path_join(r->sft, "train_args.json");
        st = load_json(sp, &r->sft_args, false);
        free(sp);
        if (st != CLLM_OK) goto fail;
        sp = cllm_path_join(r->sft, "sft_report.json");
        st = load_json(sp, &r->sft_rep, false);
        free(sp);
        if (st != CLLM_OK) goto fail;
        sp = cllm_path_join(r->sft, "metrics.jsonl");
        if (cllm_is_file(sp)) st = cllm_metrics_load(&r->sm, sp);
        free(sp);
        if (st != CLLM_OK) goto fail;
        r->res->sft = strdup(r->sft);
    }
    (void)others;
fail:
    free(p);
    return st;
}

/* ---------------------------------------------------------------- pictures */

static cllm_status draw_loss(report *r, const cllm_metrics *m, const char *file, const char *title,
                             char **link) {
    char *disk = NULL;
    cllm_status st = image_paths(r, file, &disk, link);
    if (st != CLLM_OK) goto fail;
    cllm_loss_plot_opts po = cllm_loss_plot_opts_default();
    size_t n = cllm_metrics_count_loss(m);
    po.smooth = n >= 40 ? (int)(n / 20) : 0; /* a few points per window: noise, not shape */
    po.title = title;
    CLLM_TRY(cllm_loss_plot_write(disk, m, 1, &po));
    CLLM_TRY(add_image(r, disk, po.width ? po.width : 1200, po.height ? po.height : 800));
fail:
    free(disk);
    return st;
}

/* The text the attention maps look at: opts.attention_text, else the first validation
 * document of the data directory (up to its first ATTN_MAX_TOKENS tokens), else a sentence.
 * *where (malloc'd) says which. */
static cllm_status attention_ids(report *r, const cllm_model *mdl, cllm_tokens *ids, char **where) {
    const char *text = r->o->attention_text;
    cllm_status st = CLLM_OK;
    *where = NULL;
    if (!text && r->data_dir) {
        char *vp = cllm_path_join(r->data_dir, "val_000.bin");
        uint32_t *tok = NULL;
        size_t n = 0;
        const uint32_t eot = cllm_tokenizer_eot(mdl->tok);
        if (vp && cllm_is_file(vp) && cllm_shard_read(vp, &tok, &n) == CLLM_OK && n > 0) {
            size_t start = tok[0] == eot ? 1 : 0, end = start;
            while (end < n && end - start < ATTN_MAX_TOKENS && tok[end] != eot)
                end++;
            if (end > start) CLLM_TRY(cllm_tokens_push(ids, tok + start, end - start));
            if (ids->n)
                *where = cllm_strdup_printf("the first %zu tokens of the first held-out "
                                            "(validation) document of %s",
                                            ids->n, shown(r, vp, 0));
        }
    fail:
        cllm_clear_error();
        free(tok);
        free(vp);
        if (st != CLLM_OK) return st;
        if (ids->n) return CLLM_OK;
    }
    if (!text) text = FALLBACK_TEXT;
    st = cllm_tokenizer_encode(mdl->tok, text, strlen(text), NULL, ids);
    if (st != CLLM_OK) return st;
    if (ids->n > ATTN_MAX_TOKENS) ids->n = ATTN_MAX_TOKENS;
    *where = cllm_strdup_printf("the first %zu tokens of \"%s\"", ids->n, text);
    return CLLM_OK;
}

/* Mean entropy (nats) of the rows 1..T-1 of map (l, h): low for a head that looks at few
 * positions, ln(i + 1) on average for one that spreads evenly. */
static double map_entropy(const cllm_attnmap *am, int l, int h) {
    const float *a = am->att + ((size_t)l * am->NH + h) * am->T * am->T;
    double sum = 0;
    for (int i = 1; i < am->T; i++) {
        double e = 0;
        for (int j = 0; j <= i; j++) {
            double p = a[(size_t)i * am->T + j];
            if (p > 0) e -= p * log(p);
        }
        sum += e;
    }
    return am->T > 1 ? sum / (am->T - 1) : 0;
}

static cllm_status section_attention(report *r) {
    FILE *md = r->md;
    cllm_status st = CLLM_OK;
    cllm_model *mdl = NULL;
    cllm_attnmap am = {0};
    cllm_tokens ids = {0};
    char *where = NULL, *disk = NULL, *link = NULL, *disk1 = NULL, *link1 = NULL, *title = NULL;
    fputs("## Attention\n\n", md);
    if (!r->ckpt) {
        omit(r, "the attention maps: %s has no checkpoint", shown(r, r->run, 0));
        return CLLM_OK;
    }
    if (!r->o->rt) {
        omit(r, "the attention maps: they run the model on a device, and none was given (cllm "
                "report draws them unless --no-attention)");
        return CLLM_OK;
    }
    cllm_gpt_opts go = {.max_batch = 1, .keep_attention = true};
    st = cllm_model_load(&mdl, r->o->rt, r->ckpt, &go, NULL);
    if (st == CLLM_OK) st = cllm_model_require_tokenizer(mdl);
    if (st == CLLM_OK) st = attention_ids(r, mdl, &ids, &where);
    if (st == CLLM_OK && ids.n == 0) st = cllm_fail(CLLM_ERR_USAGE, "the attention text is empty");
    const int max_t = mdl ? cllm_gpt_get_config(mdl->gpt)->n_positions : 0;
    if (st == CLLM_OK && (int)ids.n > max_t) ids.n = (size_t)max_t;
    if (st == CLLM_OK) st = cllm_attnmap_capture(&am, mdl, ids.ids, (int)ids.n);
    if (st != CLLM_OK) {
        fprintf(stderr, "cllm report: attention maps left out: %s\n", cllm_last_error());
        omit(r, "the attention maps: loading or running %s failed: ", shown(r, r->ckpt, 0));
        md_text(md, cllm_last_error());
        fputs("\n\n", md);
        cllm_clear_error();
        st = CLLM_OK;
        goto done;
    }
    /* every layer and head, small */
    int w, h;
    CLLM_TRY(image_paths(r, "attention.png", &disk, &link));
    CLLM_TRY(cllm_attnmap_write_png(&am, disk, -1, -1, "attention of every layer and head", 0, 0,
                                    &w, &h));
    CLLM_TRY(add_image(r, disk, w, h));
    /* the most focused head of all, large */
    int bl = 0, bh = 0;
    double best = INFINITY;
    for (int l = 0; l < am.L; l++)
        for (int hh = 0; hh < am.NH; hh++) {
            double e = map_entropy(&am, l, hh);
            if (e < best) best = e, bl = l, bh = hh;
        }
    double uniform = 0;
    for (int i = 1; i < am.T; i++)
        uniform += log(i + 1.0);
    uniform = am.T > 1 ? uniform / (am.T - 1) : 0;
    title = cllm_strdup_printf("layer %d, head %d (the most focused)", bl, bh);
    CLLM_TRY(image_paths(r, "attention_head.png", &disk1, &link1));
    int w1, h1;
    CLLM_TRY(cllm_attnmap_write_png(&am, disk1, bl, bh, title, 0, 0, &w1, &h1));
    CLLM_TRY(add_image(r, disk1, w1, h1));

    fprintf(md, "The final checkpoint (`%s`) reading ", shown(r, mdl->path, 0));
    md_text(md, where);
    fprintf(md,
            ". Row *i* is the token at position *i* attending, column *j* the token it attends "
            "to; a row's weights sum to 1, and above the diagonal they are 0 (a token sees only "
            "what came before it). Bright: much attention (viridis, 0 to 1).\n\n");
    fprintf(md, "![attention of every layer and head](%s)\n\n", link);
    fprintf(md,
            "The most focused head, layer %d head %d (0-based): the mean entropy of its rows is "
            "%.2f nats, against %.2f for a head that spreads its attention evenly.\n\n",
            bl, bh, best, uniform);
    fprintf(md, "![layer %d, head %d](%s)\n\n", bl, bh, link1);
    fprintf(md,
            "Draw any head yourself: `cllm attention --ckpt %s --text '...' --layer L --head H "
            "-o attn.png` (`--all` for the grid).\n\n",
            shown(r, r->run, 0));
done:
fail:
    free(where);
    free(disk);
    free(link);
    free(disk1);
    free(link1);
    free(title);
    cllm_tokens_free(&ids);
    cllm_attnmap_clear(&am);
    cllm_model_free(mdl);
    return st;
}

/* ---------------------------------------------------------------- sections */

/* The model's name for prose: the model config's file name without .json, else the run's. */
/* Where the model came from: the command's record ("model", or "init" for a run started from
 * a checkpoint), else the trainer's "model" (for a resumed session, the checkpoint). */
static const char *model_source(const report *r) {
    const char *s = jstr(r->args, "args.model");
    if (!s) s = jstr(r->args, "args.init");
    return s ? s : jstr(r->args, "model");
}

static const char *model_name(report *r, char *buf, size_t cap) {
    const char *src = model_source(r);
    if (!src) {
        snprintf(buf, cap, "%s", r->name);
        return buf;
    }
    const char *b = strrchr(src, '/');
    b = b ? b + 1 : src;
    size_t n = strlen(b);
    if (n > 5 && !strcmp(b + n - 5, ".json")) n -= 5;
    snprintf(buf, cap, "%.*s", (int)n, b);
    return buf;
}

/* The steps and tokens the run reached: the latest checkpoint's state, else the metrics. */
static void run_progress(report *r, double *step, double *tokens, double *seconds) {
    const cllm_metrics_point *lp = last_point(&r->m);
    *step = jnum(r->state, "step");
    *tokens = jnum(r->state, "tokens");
    *seconds = jnum(r->state, "time_s");
    if (!isfinite(*step)) *step = lp ? lp->step : NAN;
    if (!isfinite(*tokens)) *tokens = lp ? lp->tokens : NAN;
    if (!isfinite(*seconds)) *seconds = lp ? lp->time_s : NAN;
}

/* The multiple-choice sections of eval.json: objects with a "task". */
static bool is_mc(const cJSON *s) {
    return cJSON_IsObject(s) && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(s, "task"));
}
static bool is_gen(const cJSON *s) {
    return cJSON_IsObject(s) && cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(s, "bleu"));
}

/* Chance accuracy of a multiple-choice file: the mean over its items of 1 / choices (the
 * generic form's "choices", HellaSwag's "endings", ARC's "choices.text"). NaN if unreadable. */
static double mc_chance(const char *path, int *items) {
    char *text = NULL;
    size_t len;
    *items = 0;
    if (!path || cllm_read_file(path, &text, &len) != CLLM_OK) {
        cllm_clear_error();
        return NAN;
    }
    double sum = 0;
    int n = 0;
    for (char *line = text, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        cJSON *o = cJSON_ParseWithLength(line, nl ? (size_t)(nl - line) : strlen(line));
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "choices");
        if (!cJSON_IsArray(c)) c = cJSON_GetObjectItemCaseSensitive(o, "endings");
        if (cJSON_IsObject(c)) c = cJSON_GetObjectItemCaseSensitive(c, "text");
        int k = cJSON_IsArray(c) ? cJSON_GetArraySize(c) : 0;
        if (k > 0) {
            sum += 1.0 / k;
            n++;
        }
        cJSON_Delete(o);
    }
    free(text);
    *items = n;
    return n ? sum / n : NAN;
}

/* "0.312 ± 0.021" (digits after the point) */
static void pm(FILE *md, double v, double se, int digits) {
    if (isfinite(se))
        fprintf(md, "%.*f ± %.*f", digits, v, digits, se);
    else
        fprintf(md, "%.*f", digits, v);
}

static void section_summary(report *r) {
    FILE *md = r->md;
    char mname[128];
    double step, tokens, secs;
    run_progress(r, &step, &tokens, &secs);
    const double lnv = log((double)r->cfg.vocab_size);
    fprintf(md, "# Report: `%s`\n\n", r->name);
    fprintf(md,
            "A GPT model of %.2f M parameters (`%s`: %d layers, %d heads, width %d, "
            "vocabulary %s, context %d) trained for %s steps on %s tokens in %s",
            cllm_gpt_num_params(&r->cfg) / 1e6, model_name(r, mname, sizeof mname), r->cfg.n_layer,
            r->cfg.n_head, r->cfg.n_embd, INT(r->cfg.vocab_size), r->cfg.n_positions, INT(step),
            INT(tokens), DUR(secs));
    const char *dev = jstr(r->args, "device.name");
    if (dev) md_say(md, " on ", dev, "");
    fputs(".\n\n", md);

    fputs("| what | measured |\n|---|---|\n", md);
    const cllm_metrics_point *fv = first_val(&r->m), *lv = last_val(&r->m);
    if (fv && lv)
        fprintf(md,
                "| validation loss | %.3f at step %s → **%.3f** at step %s (perplexity %.1f → "
                "%.1f); a model that knows nothing scores ln %d = %.3f |\n",
                fv->val_loss, INT(fv->step), lv->val_loss, INT(lv->step), exp(fv->val_loss),
                exp(lv->val_loss), r->cfg.vocab_size, lnv);
    const cJSON *ppl = jget(r->eval, "perplexity");
    if (cJSON_IsObject(ppl))
        fprintf(md,
                "| evaluation perplexity | %.2f (loss %.3f, %.3f bits per byte) over %s "
                "tokens |\n",
                jnum(ppl, "perplexity"), jnum(ppl, "loss"), jnum(ppl, "bits_per_byte"),
                INT(jnum(ppl, "tokens")));
    const cJSON *sec;
    cJSON_ArrayForEach(sec, r->eval) {
        if (!is_mc(sec)) continue;
        int items;
        double chance = mc_chance(jstr(sec, "file"), &items);
        double a = jnum(sec, "acc_norm"), se = jnum(sec, "acc_norm_stderr");
        fprintf(md, "| multiple choice `%s` (%s items) | acc_norm **", sec->string,
                INT(jnum(sec, "n")));
        pm(md, a, se, 3);
        fputs("**", md);
        if (isfinite(chance)) {
            fprintf(md, " against chance %.3f", chance);
            if (isfinite(se) && se > 0) fprintf(md, " (%+.1f standard errors)", (a - chance) / se);
        }
        fputs(" |\n", md);
    }
    if (r->sft_rep) {
        double vb = jnum(r->sft_rep, "val_loss_step0"), va = jnum(r->sft_rep, "val_loss");
        const cJSON *ca = jget(r->sft_rep, "category_check.after");
        fprintf(md, "| fine-tuning `%s` |", r->sft ? shown(r, r->sft, 0) : "");
        if (isfinite(vb) && isfinite(va))
            fprintf(md, " assistant-token validation loss %.3f → **%.3f**;", vb, va);
        if (ca)
            fprintf(md,
                    " held-out answers fit their own category's request better than another's "
                    "for **%.1f%%** (chance 50%%; gap %.4f ± %.4f nats per token)",
                    100 * jnum(ca, "own_lower"), jnum(ca, "gap"), jnum(ca, "gap_se"));
        fputs(" |\n", md);
    }
    fputs("\n", md);
}

static cllm_status section_model(report *r) {
    FILE *md = r->md;
    const cllm_gpt_config *c = &r->cfg;
    fputs("## Model\n\n", md);
    const char *src = model_source(r);
    if (src) {
        fputs("From `", md);
        fputs(shown(r, src, 0), md);
        fputs("` (GPT-2 architecture: learned positions, pre-LayerNorm blocks, GELU, the output "
              "layer tied to the token embedding).\n\n",
              md);
    }
    fputs("| layers | heads | width | context | vocabulary | parameters |\n"
          "|---|---|---|---|---|---|\n",
          md);
    fprintf(md, "| %d | %d | %d | %d | %s | %s |\n\n", c->n_layer, c->n_head, c->n_embd,
            c->n_positions, INT(c->vocab_size), INT((double)cllm_gpt_num_params(c)));
    return CLLM_OK;
}

static cllm_status section_data(report *r) {
    FILE *md = r->md;
    fputs("## Data\n\n", md);
    const char *data = jstr(r->args, "args.data");
    if (!data) {
        omit(r, "the data summary: %s/train_args.json names no data directory",
             shown(r, r->run, 0));
        return CLLM_OK;
    }
    if (!r->stats) {
        omit(r, "the data summary: %s/stats.json does not exist (cllm data prepare writes it)",
             shown(r, data, 0));
        return CLLM_OK;
    }
    const cJSON *s = r->stats;
    fprintf(md, "`%s`, made by `cllm data prepare` (its `stats.json`): ", shown(r, data, 0));
    const cJSON *paths = jget(s, "inputs.paths");
    if (cJSON_IsArray(paths)) {
        fputs("from ", md);
        int k = 0;
        const cJSON *pth;
        cJSON_ArrayForEach(pth, paths) {
            if (!cJSON_IsString(pth)) continue;
            if (k++ == 3) {
                fputs(", ...", md);
                break;
            }
            fprintf(md, "%s`%s`", k > 1 ? ", " : "", shown(r, pth->valuestring, 1));
        }
        fputs(", ", md);
    }
    fprintf(md, "%s documents (%.2f MB) read; ", INT(jnum(s, "documents_in")),
            jnum(s, "bytes_in") / 1e6);
    fprintf(md, "%s removed by curation, %s kept (%.2f MB).\n\n",
            INT(jnum(s, "removed.total.documents")), INT(jnum(s, "kept.documents")),
            jnum(s, "kept.bytes") / 1e6);
    const cJSON *removed = jget(s, "removed");
    bool any = false;
    const cJSON *rule;
    cJSON_ArrayForEach(rule, removed) {
        if (!strcmp(rule->string, "total") || !(jnum(rule, "documents") > 0)) continue;
        if (!any) fputs("| removed because | documents | bytes |\n|---|---|---|\n", md);
        any = true;
        fprintf(md, "| `%s` | %s | %s |\n", rule->string, INT(jnum(rule, "documents")),
                INT(jnum(rule, "bytes")));
    }
    if (any) fputs("\n", md);
    fputs("| split | documents | bytes | tokens |\n|---|---|---|---|\n", md);
    const char *splits[2] = {"train", "val"};
    for (int i = 0; i < 2; i++) {
        const cJSON *sp = jget(jget(s, "splits"), splits[i]);
        if (!sp) continue;
        fprintf(md, "| %s | %s | %s | %s |\n", splits[i], INT(jnum(sp, "documents")),
                INT(jnum(sp, "bytes")), INT(jnum(sp, "tokens")));
    }
    fprintf(md, "\nTokenizer: vocabulary %s, %.2f bytes per token.\n\n",
            INT(jnum(s, "tokenizer.vocab_size")), jnum(s, "bytes_per_token"));
    return CLLM_OK;
}

static cllm_status section_training(report *r) {
    FILE *md = r->md;
    cllm_status st = CLLM_OK;
    char *link = NULL;
    fputs("## Training\n\n", md);
    const cJSON *o = jget(r->args, "options");
    double step, tokens, secs;
    run_progress(r, &step, &tokens, &secs);
    if (o) {
        double per = jnum(o, "batch") * jnum(o, "seq") * jnum(o, "grad_accum");
        const bool short_of = isfinite(step) && isfinite(jnum(o, "steps")) &&
                              step < jnum(o, "steps");
        fprintf(md,
                "%s steps%s of %s tokens (batch %s × sequence %s × accumulation %s); AdamW, "
                "learning rate %g → %g (%s after %s warmup steps), weight decay %g, gradient "
                "clipping at %g, seed %.0f.",
                INT(jnum(o, "steps")), short_of ? " (planned)" : "", INT(per), INT(jnum(o, "batch")), INT(jnum(o, "seq")),
                INT(jnum(o, "grad_accum")), jnum(o, "lr"), jnum(r->args, "min_lr_effective"),
                jstr(o, "schedule") ? jstr(o, "schedule") : "?", INT(jnum(o, "warmup")),
                jnum(o, "weight_decay"), jnum(o, "clip"), jnum(o, "seed"));
        double train_tokens = jnum(r->stats, "splits.train.tokens");
        if (isfinite(train_tokens) && train_tokens > 0 && isfinite(tokens))
            fprintf(md, " It saw %s tokens: %.2f passes over the training split.", INT(tokens),
                    tokens / train_tokens);
        double vb = jnum(o, "eval_batches"), vt = jnum(r->stats, "splits.val.tokens");
        if (isfinite(vt) && jnum(o, "seq") > 0 && jnum(o, "batch") > 0) {
            /* the trainer's validation: windows of seq + 1 tokens, batches of up to `batch` */
            double windows = floor((vt - 1) / jnum(o, "seq"));
            double have = ceil(windows / jnum(o, "batch"));
            if (!(vb < have)) vb = have;
        }
        if (isfinite(vb) && cllm_metrics_count_val(&r->m) > 0)
            fprintf(md,
                    " The validation during training scores %s batch%s of the held-out split "
                    "(the same each time); the evaluation below scores all of it.",
                    INT(vb), vb == 1 ? "" : "es");
        if (short_of)
            fprintf(md, " It stopped at step %s of %s (interrupted, or a time limit).", INT(step),
                    INT(jnum(o, "steps")));
        fputs("\n\n", md);
    }
    if (cllm_metrics_count_loss(&r->m) + cllm_metrics_count_val(&r->m) == 0) {
        omit(r, "the loss curve: metrics.jsonl holds no loss yet");
        return CLLM_OK;
    }
    char title[160];
    snprintf(title, sizeof title, "training and validation loss: %s", r->name);
    CLLM_TRY(draw_loss(r, &r->m, "loss.png", title, &link));
    fprintf(md, "![training and validation loss](%s)\n\n", link);
    fputs("The solid line is the loss of each training batch", md);
    if (cllm_metrics_count_loss(&r->m) >= 40) fputs(" (faint) and its moving average", md);
    fputs(", the dashed line the loss on the held-out validation split, which the model never "
          "trains on.\n\n",
          md);
    /* the validation table, thinned to at most 12 rows (the first and last always) */
    size_t nv = val_points(&r->m, NULL, 0);
    if (nv) {
        size_t *idx = malloc(nv * sizeof *idx);
        if (!idx) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        val_points(&r->m, idx, nv);
        fputs("| step | tokens | time | validation loss | perplexity |\n|---|---|---|---|---|\n",
              md);
        const size_t rows = nv < 12 ? nv : 12;
        size_t prev = SIZE_MAX;
        for (size_t k = 0; k < rows; k++) {
            size_t i = rows == 1 ? 0 : (size_t)llround((double)k * (nv - 1) / (rows - 1));
            if (i == prev) continue;
            prev = i;
            const cllm_metrics_point *p = &r->m.points[idx[i]];
            fprintf(md, "| %s | %s | %s | %.3f | %.1f |\n", INT(p->step), INT(p->tokens),
                    DUR(p->time_s), p->val_loss, exp(p->val_loss));
        }
        fputs("\n", md);
        free(idx);
    }
    /* timing */
    double med = median_tps(&r->m);
    if (isfinite(secs) && secs > 0 && isfinite(tokens))
        fprintf(md,
                "Wall time %s: %s tokens/s over the whole run (validation, samples and "
                "checkpoints included), %s tokens/s per training step (median).\n\n",
                DUR(secs), INT(tokens / secs), INT(med));
fail:
    free(link);
    return st;
}

/* The first item of a multiple-choice set in the generic form ({"context", "choices",
 * "label"}), the right choice in bold; false when the file has none such. */
static bool mc_example(report *r, const cJSON *sec) {
    const char *path = jstr(sec, "file");
    char *text = NULL;
    size_t len;
    if (!path || cllm_read_file(path, &text, &len) != CLLM_OK) {
        cllm_clear_error();
        return false;
    }
    const char *nl = strchr(text, '\n');
    cJSON *o = cJSON_ParseWithLength(text, nl ? (size_t)(nl - text) : len);
    free(text);
    const char *ctx = jstr(o, "context");
    const cJSON *ch = jget(o, "choices");
    double label = jnum(o, "label");
    bool ok = ctx && cJSON_IsArray(ch) && isfinite(label);
    if (ok) {
        fprintf(r->md, "An item of `%s` (the first of `%s`): ", sec->string, shown(r, path, 0));
        md_say(r->md, "*", ctx, "*… followed by ");
        int i = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, ch) {
            if (i) fputs(" / ", r->md);
            bool right = i++ == (int)label;
            md_say(r->md, right ? "**" : "", cJSON_IsString(c) ? c->valuestring : "?",
                   right ? "**" : "");
        }
        fputs(" (its own continuation in bold).\n\n", r->md);
    }
    cJSON_Delete(o);
    return ok;
}

static cllm_status section_eval(report *r) {
    FILE *md = r->md;
    fputs("## Evaluation\n\n", md);
    if (!r->eval) {
        omit(r,
             "evaluation results: %s does not exist (make it with `cllm eval --ckpt %s --data "
             "DATA --mc BENCHMARK.jsonl --json > %s`)",
             shown(r, r->eval_path, 0), shown(r, r->run, 1), shown(r, r->eval_path, 2));
        return CLLM_OK;
    }
    fprintf(md, "From `%s` (`cllm eval --json`", shown(r, r->eval_path, 0));
    const char *ck = jstr(r->eval, "model.ckpt");
    if (ck) fprintf(md, " of `%s`", shown(r, ck, 1));
    fputs(").\n\n", md);
    const cJSON *ppl = jget(r->eval, "perplexity");
    if (cJSON_IsObject(ppl)) {
        /* the source: a text file, or "DIR (val, 1 shard)" */
        char src[PATH_MAX + 64] = "?";
        const char *so = jstr(ppl, "source");
        if (so) {
            const char *paren = strstr(so, " (");
            char path[PATH_MAX];
            snprintf(path, sizeof path, "%.*s", paren ? (int)(paren - so) : (int)strlen(so), so);
            snprintf(src, sizeof src, "%s%s", shown(r, path, 0), paren ? paren : "");
        }
        fprintf(md,
                "**Perplexity** of `%s`: every token scored once, with up to %s tokens of "
                "context.\n\n",
                src, INT(jnum(ppl, "window")));
        fputs("| tokens | loss (nats/token) | perplexity | bits per byte |\n|---|---|---|---|\n",
              md);
        fprintf(md, "| %s | %.4f | %.2f | %.4f |\n\n", INT(jnum(ppl, "tokens")), jnum(ppl, "loss"),
                jnum(ppl, "perplexity"), jnum(ppl, "bits_per_byte"));
    }
    bool any_mc = false;
    const cJSON *sec;
    cJSON_ArrayForEach(sec, r->eval) {
        if (!is_mc(sec)) continue;
        if (!any_mc)
            fputs("**Multiple choice**, scored as lm-evaluation-harness scores it: each choice's "
                  "log-likelihood after the context; `acc` picks the highest sum, `acc_norm` the "
                  "highest per character. ± is the standard error.\n\n"
                  "| benchmark | items | acc | acc_norm | chance |\n|---|---|---|---|---|\n",
                  md);
        any_mc = true;
        int items;
        double chance = mc_chance(jstr(sec, "file"), &items);
        fprintf(md, "| `%s` (%s) | %s | ", sec->string, jstr(sec, "task"), INT(jnum(sec, "n")));
        pm(md, jnum(sec, "acc"), jnum(sec, "acc_stderr"), 3);
        fputs(" | ", md);
        pm(md, jnum(sec, "acc_norm"), jnum(sec, "acc_norm_stderr"), 3);
        if (isfinite(chance))
            fprintf(md, " | %.3f |\n", chance);
        else
            fputs(" | ? |\n", md);
    }
    if (any_mc) fputs("\n", md);
    cJSON_ArrayForEach(sec, r->eval) {
        if (is_mc(sec) && mc_example(r, sec)) break;
    }
    bool any_gen = false;
    cJSON_ArrayForEach(sec, r->eval) {
        if (!is_gen(sec)) continue;
        if (!any_gen)
            fputs("**Generation** (greedy continuations against references):\n\n"
                  "| set | prompts | BLEU | ROUGE-1 | ROUGE-2 | ROUGE-L "
                  "|\n|---|---|---|---|---|---|\n",
                  md);
        any_gen = true;
        fprintf(md, "| `%s` | %s | %.2f | %.4f | %.4f | %.4f |\n", sec->string, INT(jnum(sec, "n")),
                jnum(sec, "bleu"), jnum(sec, "rouge1"), jnum(sec, "rouge2"), jnum(sec, "rougeL"));
    }
    if (any_gen) fputs("\n", md);
    return CLLM_OK;
}

/* samples.jsonl: the first, a middle and the last sample. */
static cllm_status section_samples(report *r) {
    FILE *md = r->md;
    fputs("## Samples during training\n\n", md);
    char *p = cllm_path_join(r->run, "samples.jsonl"), *text = NULL;
    size_t len;
    cllm_status st = CLLM_OK;
    if (!p) return CLLM_ERR_NOMEM;
    if (!cllm_is_file(p)) {
        omit(r,
             "samples: %s/samples.jsonl does not exist (cllm train --sample-every N draws "
             "them)",
             shown(r, r->run, 0));
        free(p);
        return CLLM_OK;
    }
    CLLM_TRY(cllm_read_file(p, &text, &len));
    cJSON *arr = cJSON_CreateArray();
    int lineno = 0;
    for (char *line = text, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        lineno++;
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        if (n == 0) continue;
        cJSON *o = cJSON_ParseWithLength(line, n);
        if (!cJSON_IsObject(o) || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "text"))) {
            cJSON_Delete(o);
            if (!nl) break; /* a last line cut short by a killed writer */
            cJSON_Delete(arr);
            st =
                cllm_fail(CLLM_ERR_FORMAT, "%s:%d: not a sample object with a \"text\"", p, lineno);
            goto fail;
        }
        cJSON_AddItemToArray(arr, o);
    }
    int n = cJSON_GetArraySize(arr);
    if (n == 0) {
        omit(r, "samples: %s/samples.jsonl is empty", shown(r, r->run, 0));
    } else {
        fputs("Text the model wrote at temperature 1 from the start of a new document, as "
              "training went on:\n\n",
              md);
        int pick[3] = {0, (n - 1) / 2, n - 1}, last = -1;
        for (int k = 0; k < 3; k++) {
            if (pick[k] == last) continue;
            last = pick[k];
            const cJSON *o = cJSON_GetArrayItem(arr, pick[k]);
            const char *prompt = jstr(o, "prompt");
            fprintf(md, "**Step %s**", INT(jnum(o, "step")));
            if (prompt && *prompt) md_say(md, ", continuing \"", prompt, "\"");
            fputs(":\n\n", md);
            md_block(md, jstr(o, "text"));
        }
    }
    cJSON_Delete(arr);
fail:
    free(text);
    free(p);
    return st;
}

/* A rendered chat prompt shown as its user request ("<|user|>Tell me ...<|end|><|assistant|>"
 * -> Tell me ...), or whole when it is not in that form. */
static void print_request(FILE *md, const char *prompt) {
    static const char user[] = "<|user|>", end[] = "<|end|>";
    const char *u = prompt ? strstr(prompt, user) : NULL;
    const char *e = u ? strstr(u + strlen(user), end) : NULL;
    if (!e) {
        md_text(md, prompt ? prompt : "");
        return;
    }
    char *req = strndup(u + strlen(user), (size_t)(e - u - strlen(user)));
    md_say(md, "\"", req ? req : "", "\"");
    free(req);
}

static void category_row(FILE *md, const char *when, const cJSON *c) {
    fprintf(md, "| %s | %s | %.4f | %.4f | ", when, INT(jnum(c, "items")), jnum(c, "own_loss"),
            jnum(c, "wrong_loss"));
    pm(md, jnum(c, "gap"), jnum(c, "gap_se"), 4);
    fprintf(md, " | %.1f%% | %.1f%% (chance %.1f%%) |\n", 100 * jnum(c, "own_lower"),
            100 * jnum(c, "top1"), 100 * jnum(c, "chance"));
}

/* Whether the pretraining data kept the file `val` out (`cllm data prepare --held-out`): 1 if
 * its stats.json names that file among its held-out files, 0 if it names others or none, -1
 * when unknown (no stats.json). Paths are compared as resolved, else as written. */
static int held_out_of_pretraining(report *r, const char *val) {
    if (!r->stats || !val) return -1;
    const cJSON *h = jget(r->stats, "options.held_out"), *e;
    char want[PATH_MAX], got[PATH_MAX];
    const char *w = realpath(val, want) ? want : val;
    if (!cJSON_IsArray(h)) return 0;
    cJSON_ArrayForEach(e, h) {
        if (!cJSON_IsString(e)) continue;
        const char *g = realpath(e->valuestring, got) ? got : e->valuestring;
        if (!strcmp(g, w)) return 1;
    }
    return 0;
}

/* After the SFT validation line: whether its conversations' answers were also kept out of
 * pretraining. */
static void held_out_note(FILE *md, report *r) {
    const char *val = jstr(r->sft_args, "args.val_data");
    int kept_out = held_out_of_pretraining(r, val);
    if (kept_out == 1)
        fprintf(md, " Their answers were kept out of pretraining too (`cllm data prepare "
                    "--held-out %s`: %s documents removed), so the model meets them here "
                    "for the first time.",
                shown(r, val, 0), INT(jnum(r->stats, "removed.held_out.documents")));
    else if (kept_out == 0)
        fprintf(md, " Their answers may also be in the pretraining data (it was prepared "
                    "without `--held-out %s`): held-out here means held out of fine-tuning.",
                shown(r, val, 0));
}

static cllm_status section_sft(report *r) {
    FILE *md = r->md;
    cllm_status st = CLLM_OK;
    char *link = NULL;
    if (!r->sft) {
        if (r->o->sft && !*r->o->sft) return CLLM_OK; /* asked for none */
        fputs("## Fine-tuning\n\n", md);
        omit(r,
             "fine-tuning: no SFT run beside %s was fine-tuned from it (cllm sft --init %s "
             "--out DIR; or name one with --sft DIR)",
             shown(r, r->run, 0), shown(r, r->run, 1));
        return CLLM_OK;
    }
    fprintf(md, "## Fine-tuning: `%s`\n\n", shown(r, r->sft, 0));
    const cJSON *o = jget(r->sft_args, "options");
    const char *data = jstr(r->sft_args, "args.data");
    fputs("Supervised fine-tuning to the chat template (`cllm sft`): the loss counts only the "
          "assistant's tokens.",
          md);
    if (data) fprintf(md, " Conversations from `%s`", shown(r, data, 0));
    if (o)
        fprintf(md, "%s %s steps of batch %s, learning rate %g.", data ? ";" : "",
                INT(jnum(o, "steps")), INT(jnum(o, "batch")), jnum(o, "lr"));
    else if (data)
        fputs(".", md);
    fputs("\n\n", md);
    if (cllm_metrics_count_loss(&r->sm) + cllm_metrics_count_val(&r->sm) > 0) {
        char title[160];
        const char *b = strrchr(r->sft, '/');
        snprintf(title, sizeof title, "fine-tuning loss (assistant tokens): %s",
                 b ? b + 1 : r->sft);
        CLLM_TRY(draw_loss(r, &r->sm, "sft_loss.png", title, &link));
        fprintf(md, "![fine-tuning loss](%s)\n\n", link);
    }
    if (!r->sft_rep) {
        omit(r,
             "the fine-tuning results: %s/sft_report.json does not exist (cllm sft writes it "
             "when training ends)",
             shown(r, r->sft, 0));
        goto fail;
    }
    double vb = jnum(r->sft_rep, "val_loss_step0"), va = jnum(r->sft_rep, "val_loss");
    double done = jnum(r->sft_rep, "step"), planned = jnum(o, "steps");
    if (isfinite(done) && isfinite(planned) && done < planned)
        fprintf(md, "It stopped at step %s of %s (interrupted, or a time limit).\n\n", INT(done),
                INT(planned));
    if (isfinite(vb) && isfinite(va)) {
        fprintf(md,
                "Validation loss on held-out conversations (assistant tokens): %.4f before "
                "fine-tuning, %.4f after %s steps.",
                vb, va, INT(jnum(r->sft_rep, "step")));
        held_out_note(md, r);
        fputs("\n\n", md);
    }
    const cJSON *cc = jget(r->sft_rep, "category_check");
    if (cc) {
        fputs("**Does it answer the request?** Each held-out answer is scored under the request "
              "for its own category and under requests for other categories: a model that "
              "follows the request finds its own category's version likelier (lower loss).\n\n"
              "| | answers | loss, own category | loss, other categories | gap (other − own) | "
              "own lower (chance 50%) | own lowest of all |\n|---|---|---|---|---|---|---|\n",
              md);
        const cJSON *b = jget(cc, "before"), *a = jget(cc, "after");
        if (b) category_row(md, "before fine-tuning", b);
        if (a) category_row(md, "after", a);
        fputs("\n", md);
    }
    const cJSON *samples = jget(r->sft_rep, "samples");
    if (cJSON_GetArraySize(samples) > 0) {
        double pen = jnum(r->sft_rep, "sample_repetition_penalty");
        char how[64] = "greedy";
        if (pen > 1) snprintf(how, sizeof how, "greedy with repetition penalty %g", pen);
        fprintf(md,
                "**Replies before and after** (%s, to held-out requests; step %s and "
                "step %s):\n\n",
                how, INT(jnum(r->sft_rep, "step_before")), INT(jnum(r->sft_rep, "step")));
        const cJSON *s;
        int k = 0;
        cJSON_ArrayForEach(s, samples) {
            const char *cat = jstr(s, "category");
            fprintf(md, "%d. ", ++k);
            if (cat) md_say(md, "*", cat, "*: ");
            print_request(md, jstr(s, "prompt"));
            fputs("\n\n   | | reply |\n   |---|---|\n", md);
            const char *rows[3][2] = {{"reference (held out)", jstr(s, "reference")},
                                      {"before", jstr(s, "before")},
                                      {"after", jstr(s, "after")}};
            for (int i = 0; i < 3; i++) {
                fprintf(md, "   | %s | ", rows[i][0]);
                if (rows[i][1] && *rows[i][1])
                    md_text(md, rows[i][1]);
                else
                    fputs("*(empty)*", md);
                fputs(" |\n", md);
            }
            fputs("\n", md);
        }
    }
fail:
    free(link);
    return st;
}

static void section_timing(report *r) {
    FILE *md = r->md;
    fputs("## Device and timing\n\n", md);
    const cJSON *dev = jget(r->args, "device");
    if (dev) {
        md_say(md, "Trained on ", jstr(dev, "name"), "");
        fprintf(md, " (%s, %s compute units, platform ",
                jstr(dev, "type") ? jstr(dev, "type") : "?", INT(jnum(dev, "compute_units")));
        md_say(md, "", jstr(dev, "platform"), ").");
    } else {
        fputs("The device is not recorded in this run's train_args.json.", md);
    }
    const char *edev = jstr(r->eval, "model.device");
    if (edev) md_say(md, " Evaluated on ", edev, ".");
    fputs("\n\n", md);
    const cJSON *stages = jget(r->demo, "stages");
    if (cJSON_GetArraySize(stages) > 0) {
        fputs(
            "The demo's stages (`demo.json`):\n\n| stage | wall time | command |\n|---|---|---|\n",
            md);
        const cJSON *s;
        double total = 0;
        cJSON_ArrayForEach(s, stages) {
            double sec = jnum(s, "seconds");
            if (isfinite(sec)) total += sec;
            md_say(md, "| ", jstr(s, "name"), "");
            fprintf(md, " | %s | ", DUR(sec));
            const char *cmd = jstr(s, "command");
            if (cmd) {
                fputs("`", md);
                for (const char *c = cmd; *c; c++)
                    if (*c == '`' || *c == '|')
                        fputc(' ', md);
                    else
                        fputc(*c, md);
                fputs("`", md);
            }
            fputs(" |\n", md);
        }
        fprintf(md, "| all | %s | |\n\n", DUR(total));
    }
}

static void section_files(report *r) {
    FILE *md = r->md;
    fputs("## Files\n\n", md);
    fprintf(md,
            "- `%s/`: the run (config.json, train_args.json, command.txt, metrics.jsonl, "
            "samples.jsonl, checkpoints)\n",
            shown(r, r->run, 0));
    if (r->ckpt)
        fprintf(md,
                "- `%s/`: the final checkpoint (`transformers.GPT2LMHeadModel."
                "from_pretrained` loads it; `cllm generate --ckpt %s` writes with it)\n",
                shown(r, r->ckpt, 0), shown(r, r->run, 1));
    if (r->data_dir)
        fprintf(md, "- `%s/`: the token shards and stats.json\n", shown(r, r->data_dir, 0));
    if (r->eval) fprintf(md, "- `%s`: the evaluation\n", shown(r, r->eval_path, 0));
    if (r->sft)
        fprintf(md, "- `%s/`: the fine-tuned run (`cllm chat --ckpt %s` talks to it)\n",
                shown(r, r->sft, 0), shown(r, r->sft, 1));
    fprintf(md,
            "\nMade by `cllm report %s`; every number above is read from these files. Paths are "
            "relative to this report's directory, and the commands run from there.\n",
            shown(r, r->run, 0));
}

/* ---------------------------------------------------------------- the report */

/* Where the Markdown and its images go: out (or RUN/report.md), the images in the directory
 * beside it named after it without ".md". */
static cllm_status place(report *r) {
    const cllm_report_opts *o = r->o;
    r->out = o->out ? strdup(o->out) : cllm_path_join(o->run, "report.md");
    if (!r->out) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    const char *slash = strrchr(r->out, '/');
    const char *base = slash ? slash + 1 : r->out;
    size_t n = strlen(base);
    if (n > 3 && !strcmp(base + n - 3, ".md")) n -= 3;
    if (n == 0) return cllm_fail(CLLM_ERR_USAGE, "--out %s: not a file name", r->out);
    char *dir = slash ? strndup(r->out, (size_t)(slash - r->out) + (slash == r->out)) : strdup(".");
    r->img_rel = strndup(base, n);
    r->img_dir = dir && r->img_rel ? cllm_path_join(dir, r->img_rel) : NULL;
    cllm_status st = CLLM_OK;
    if (!r->img_dir) st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    if (st == CLLM_OK && cllm_is_dir(r->out))
        st = cllm_fail(CLLM_ERR_USAGE, "--out %s is a directory: name the Markdown file", r->out);
    if (st == CLLM_OK && !cllm_is_dir(dir))
        st = cllm_fail(CLLM_ERR_IO, "%s: no such directory (for %s)", dir, r->out);
    if (st == CLLM_OK) {
        char real[PATH_MAX];
        if (realpath(dir, real)) r->out_real = strdup(real);
    }
    free(dir);
    return st;
}

cllm_status cllm_report_write(const cllm_report_opts *o, cllm_report_result *res) {
    cllm_report_result local = {0};
    if (!res) res = &local;
    memset(res, 0, sizeof *res);
    if (!o || !o->run || !*o->run) return cllm_fail(CLLM_ERR_USAGE, "report: no run directory");
    report r = {.o = o, .res = res};
    cllm_status st = CLLM_OK;
    r.run = strdup(o->run);
    if (!r.run) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    {
        size_t n = strlen(r.run);
        while (n > 1 && r.run[n - 1] == '/')
            r.run[--n] = 0;
        const char *b = strrchr(r.run, '/');
        char real[PATH_MAX];
        if ((!b || !b[1]) && realpath(r.run, real) && strrchr(real, '/'))
            r.name = strdup(strrchr(real, '/') + 1);
        else
            r.name = strdup(b ? b + 1 : r.run);
    }
    CLLM_TRY(load_run(&r));
    CLLM_TRY(place(&r));
    CLLM_TRY(cllm_mkdirs(r.img_dir));
    r.md = open_memstream(&r.md_buf, &r.md_len);
    if (!r.md) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    section_summary(&r);
    CLLM_TRY(section_model(&r));
    CLLM_TRY(section_data(&r));
    CLLM_TRY(section_training(&r));
    CLLM_TRY(section_eval(&r));
    CLLM_TRY(section_samples(&r));
    CLLM_TRY(section_sft(&r));
    CLLM_TRY(section_attention(&r));
    section_timing(&r);
    section_files(&r);
    if (fclose(r.md) != 0) {
        r.md = NULL;
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory (the report's text)");
        goto fail;
    }
    r.md = NULL;
    CLLM_TRY(cllm_write_file_atomic(r.out, r.md_buf, r.md_len));
    res->path = r.out;
    r.out = NULL;
fail:
    if (r.md) fclose(r.md);
    free(r.md_buf);
    free(r.run);
    free(r.name);
    free(r.out);
    free(r.out_real);
    free(r.img_dir);
    free(r.img_rel);
    free(r.ckpt);
    free(r.data_dir);
    free(r.eval_path);
    free(r.sft);
    cJSON_Delete(r.args);
    cJSON_Delete(r.state);
    cJSON_Delete(r.stats);
    cJSON_Delete(r.eval);
    cJSON_Delete(r.demo);
    cJSON_Delete(r.sft_args);
    cJSON_Delete(r.sft_rep);
    cllm_metrics_clear(&r.m);
    cllm_metrics_clear(&r.sm);
    if (st != CLLM_OK || res == &local) cllm_report_result_free(res);
    return st;
}

void cllm_report_result_free(cllm_report_result *res) {
    if (!res) return;
    free(res->path);
    free(res->sft);
    for (int i = 0; i < res->n_images; i++)
        free(res->images[i].path);
    memset(res, 0, sizeof *res);
}
