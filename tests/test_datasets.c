/* make-mc and make-sft: the structure of what they build, determinism, the error cases, and
 * the property the benchmark exists for: a character n-gram model trained on the documents
 * make-mc leaves out beats chance clearly on it, a model that knows nothing does not (on
 * Debian's fortunes when installed). */
#include "cllm/datasets.h"
#include "cllm/eval.h"
#include "cllm/util.h"
#include "testutil.h"

#include <cjson/cJSON.h>

#include <stdlib.h>
#include <string.h>

static const char *const DOCS[] = {
    "The quick brown fox jumps over the lazy dog and runs into the forest.",
    "A journey of a thousand miles begins with a single step, said the sage.",
    "Never put off until tomorrow what you can do the day after tomorrow.",
    "  Computers are useless. They can only give you answers.\n\t\t-- Pablo Picasso\n",
    "To be or not to be, that is the question everybody keeps asking me.",
    "The quick brown fox jumps over the lazy dog and runs into the forest.", /* duplicate */
    "short one",                                                             /* too short */
    "Real programmers don't comment their code. If it was hard to write, it should be hard "
    "to understand.",
    "There are two ways of constructing a software design: make it so simple that there are "
    "obviously no deficiencies.",
    "\xc3\x89lodie said that caf\xc3\xa9 au lait tastes better in the morning than at night.",
};
#define N_DOCS ((int)(sizeof DOCS / sizeof *DOCS))

static void make_docs(cllm_text_doc *d) {
    for (int i = 0; i < N_DOCS; i++) {
        d[i].text = DOCS[i];
        d[i].len = strlen(DOCS[i]);
        d[i].source = i < 5 ? "/corpus/wisdom" : "/corpus/computer_science.txt";
        d[i].line = 10 * i + 1;
    }
}

/* Does `choice` follow `context` + " " in document `doc` (trimmed)? */
static bool is_continuation(const char *doc, const char *context, const char *choice) {
    while (*doc == ' ' || *doc == '\t' || *doc == '\n') doc++;
    size_t lc = strlen(context), lh = strlen(choice);
    return !strncmp(doc, context, lc) && doc[lc] == ' ' && !strncmp(doc + lc + 1, choice, lh);
}

static void test_make_mc(void) {
    cllm_text_doc docs[N_DOCS];
    make_docs(docs);
    for (int words = 0; words <= 2; words++) {
        cllm_make_mc_opts o = cllm_make_mc_opts_default();
        o.continuation_words = words;
        o.min_chars = 20;
        o.seed = 7;
        cllm_make_mc_result r;
        CHECK_OK(cllm_datasets_make_mc(&r, docs, N_DOCS, &o));
        /* 10 docs: one duplicate, one too short -> 8 usable, all become items. */
        CHECK_MSG(r.n_usable == 8 && r.n_items == 8 && r.n_duplicate == 1, "usable %d items %d dup %d",
                  r.n_usable, r.n_items, r.n_duplicate);
        /* doc 5 repeats doc 0, which is in the benchmark: not safe to train on either. */
        CHECK(r.used[5] && !r.used[6] && r.used[0] && r.used[9]);
        int lines = 0, golds[4] = {0};
        for (const char *p = r.jsonl; p && *p;) {
            const char *nl = strchr(p, '\n');
            cJSON *o2 = cJSON_ParseWithLength(p, (size_t)(nl - p));
            CHECK(o2 != NULL);
            if (!o2) break;
            const char *ctx = cJSON_GetObjectItem(o2, "context")->valuestring;
            const cJSON *ch = cJSON_GetObjectItem(o2, "choices");
            int label = cJSON_GetObjectItem(o2, "label")->valueint;
            CHECK(cJSON_GetArraySize(ch) == 4 && label >= 0 && label < 4);
            golds[label]++;
            /* The right choice continues its own document; every wrong one continues another. */
            int own = -1;
            for (int i = 0; i < N_DOCS; i++)
                if (i != 5 && is_continuation(DOCS[i], ctx, cJSON_GetArrayItem(ch, label)->valuestring))
                    own = i;
            CHECK_MSG(own >= 0, "right choice of '%s' does not continue it", ctx);
            for (int c = 0; c < 4; c++) {
                const char *t = cJSON_GetArrayItem(ch, c)->valuestring;
                int nw = 1;
                for (const char *q = t; *q; q++) nw += (*q == ' ' || *q == '\n') && q[1] != ' ' && q[1] != '\n' && q[1] != '\t';
                if (words) CHECK_MSG(nw == words, "'%s' has %d words, want %d", t, nw, words);
                CHECK(c == label || strcmp(t, cJSON_GetArrayItem(ch, label)->valuestring));
            }
            const char *id = cJSON_GetObjectItem(o2, "id")->valuestring;
            CHECK(!strncmp(id, "wisdom:", 7) || !strncmp(id, "computer_science.txt:", 21));
            cJSON_Delete(o2);
            lines++;
            p = nl + 1;
        }
        CHECK(lines == 8);
        /* The same seed gives the same bytes; another seed another file. */
        cllm_make_mc_result r2;
        CHECK_OK(cllm_datasets_make_mc(&r2, docs, N_DOCS, &o));
        CHECK(r2.jsonl_len == r.jsonl_len && !memcmp(r.jsonl, r2.jsonl, r.jsonl_len));
        cllm_make_mc_result_free(&r2);
        o.seed = 8;
        CHECK_OK(cllm_datasets_make_mc(&r2, docs, N_DOCS, &o));
        CHECK(r2.jsonl_len != r.jsonl_len || memcmp(r.jsonl, r2.jsonl, r.jsonl_len));
        cllm_make_mc_result_free(&r2);
        /* It reads back through the multiple-choice loader as the generic task. */
        char *dir = test_tmpdir("datasets_mc");
        char *path = cllm_path_join(dir, "mc.jsonl");
        CHECK_OK(cllm_write_file_atomic(path, r.jsonl, r.jsonl_len));
        cllm_mc_set set;
        CHECK_OK(cllm_mc_load(&set, path, CLLM_MC_AUTO, true, 0));
        CHECK(set.task == CLLM_MC_GENERIC && set.n == 8);
        cllm_mc_set_free(&set);
        free(path);
        free(dir);
        cllm_make_mc_result_free(&r);
    }
    /* A pool of 3 documents: 3 items of 4 choices cannot be made. */
    cllm_make_mc_opts o = cllm_make_mc_opts_default();
    o.n_items = 3;
    cllm_make_mc_result r;
    CHECK(cllm_datasets_make_mc(&r, docs, N_DOCS, &o) == CLLM_ERR_USAGE &&
          strstr(cllm_last_error(), "need at least 4"));
    o.n_items = 20;
    CHECK(cllm_datasets_make_mc(&r, docs, N_DOCS, &o) == CLLM_ERR_USAGE &&
          strstr(cllm_last_error(), "20 items"));
    CHECK(r.jsonl == NULL && r.used == NULL);
    cllm_make_mc_result_free(&r);
}

static void test_make_sft(void) {
    cllm_text_doc docs[N_DOCS];
    make_docs(docs);
    char *c1 = cllm_datasets_category("/usr/share/games/fortunes/men-women", false);
    char *c2 = cllm_datasets_category("data/computer_science.txt", false);
    char *c3 = cllm_datasets_category("data/by-topic/cooking/file1.txt", true);
    char *c4 = cllm_datasets_category(".hidden", false);
    CHECK(!strcmp(c1, "men women") && !strcmp(c2, "computer science") && !strcmp(c3, "cooking") &&
          !strcmp(c4, ".hidden"));
    free(c1), free(c2), free(c3), free(c4);

    cllm_make_sft_opts o = cllm_make_sft_opts_default();
    o.val_fraction = 0.25;
    o.min_chars = 20;
    o.system = "You tell fortunes.";
    cllm_make_sft_result r;
    CHECK_OK(cllm_datasets_make_sft(&r, docs, N_DOCS, &o));
    CHECK_MSG(r.n_categories == 2 && !strcmp(r.categories[0], "computer science") &&
                  !strcmp(r.categories[1], "wisdom"),
              "%d categories", r.n_categories);
    /* wisdom: 5 docs (one too short? no: docs 0-4), computer science: 5 minus the duplicate
     * and the short one = 3. Held out: round(0.25 * 5) = 1, round(0.25 * 3) = 1. */
    CHECK(r.per_category[1] == 5 && r.per_category[0] == 3 && r.n_duplicate == 1 &&
          r.n_filtered == 1);
    CHECK(r.n_val == 2 && r.n_train == 6);
    int n = 0;
    for (const char *p = r.train; *p;) {
        const char *nl = strchr(p, '\n');
        cJSON *j = cJSON_ParseWithLength(p, (size_t)(nl - p));
        const cJSON *m = cJSON_GetObjectItem(j, "messages");
        CHECK(cJSON_GetArraySize(m) == 3);
        const char *cat = cJSON_GetObjectItem(j, "category")->valuestring;
        const char *sys = cJSON_GetObjectItem(cJSON_GetArrayItem(m, 0), "content")->valuestring;
        const cJSON *user = cJSON_GetArrayItem(m, 1), *asst = cJSON_GetArrayItem(m, 2);
        CHECK(!strcmp(sys, "You tell fortunes."));
        CHECK(!strcmp(cJSON_GetObjectItem(user, "role")->valuestring, "user") &&
              !strcmp(cJSON_GetObjectItem(asst, "role")->valuestring, "assistant"));
        CHECK(strstr(cJSON_GetObjectItem(user, "content")->valuestring, cat) != NULL);
        const char *ans = cJSON_GetObjectItem(asst, "content")->valuestring;
        int from = -1;
        for (int i = 0; i < N_DOCS; i++)
            if (i != 5 && strstr(DOCS[i], ans) && strlen(ans) + 8 >= strlen(DOCS[i])) from = i;
        CHECK_MSG(from >= 0 && !strcmp(cat, from < 5 ? "wisdom" : "computer science"),
                  "answer '%s' in category '%s'", ans, cat);
        CHECK(ans[0] != ' ' && ans[strlen(ans) - 1] != '\n'); /* trimmed */
        cJSON_Delete(j);
        n++;
        p = nl + 1;
    }
    CHECK(n == 6);
    cllm_make_sft_result_free(&r);

    /* Pairs, own templates, a cap per category. */
    const char *tpl[] = {"Say something on {category}!", "{category}? {category}!"};
    o = cllm_make_sft_opts_default();
    o.templates = tpl;
    o.n_templates = 2;
    o.format = CLLM_SFT_PAIRS;
    o.max_per_category = 2;
    CHECK_OK(cllm_datasets_make_sft(&r, docs, N_DOCS, &o));
    CHECK(r.n_train == 4 && r.n_val == 0 && r.val && !r.val[0]);
    CHECK(strstr(r.train, "\"prompt\":\"Say something on wisdom!\"") ||
          strstr(r.train, "\"prompt\":\"wisdom? wisdom!\""));
    CHECK(strstr(r.train, "\"response\":") && !strstr(r.train, "\"messages\""));
    cllm_make_sft_result_free(&r);
    const char *bad[] = {"no placeholder"};
    o.templates = bad;
    o.n_templates = 1;
    CHECK(cllm_datasets_make_sft(&r, docs, N_DOCS, &o) == CLLM_ERR_USAGE &&
          strstr(cllm_last_error(), "has no {category}"));
    cllm_make_sft_result_free(NULL);
}

/* ---- the benchmark's purpose, on the fortunes corpus ---------------------------------- */

/* Byte n-gram model of order N with interpolated (Witten-Bell-like) smoothing over hashed
 * counts; enough to know English text from random bytes. */
#define NG 6
#define HBITS 23
typedef struct {
    uint64_t *key;
    uint32_t *cnt;
} htab;

static uint32_t *slot(htab *h, uint64_t k, bool add) {
    uint64_t i = (k * 0x9E3779B97F4A7C15ull) >> (64 - HBITS);
    for (;;) {
        if (h->key[i] == k) return &h->cnt[i];
        if (!h->key[i]) {
            if (!add) return NULL;
            h->key[i] = k;
            return &h->cnt[i];
        }
        i = (i + 1) & ((1u << HBITS) - 1);
    }
}

typedef struct {
    htab gram, ctx; /* counts of (order, history, next) and of (order, history) */
} ngram_lm;

static uint64_t hkey(int order, const unsigned char *h, int n, int next) {
    uint64_t k = 1469598103934665603ull ^ (uint64_t)order;
    for (int i = 0; i < n; i++) k = (k ^ h[i]) * 1099511628211ull;
    k = (k ^ (uint64_t)(next + 1)) * 1099511628211ull;
    return k | 1;
}

static void lm_train(ngram_lm *m, const unsigned char *t, size_t n) {
    for (size_t i = 0; i < n; i++)
        for (int o = 1; o <= NG && (size_t)o <= i + 1; o++) {
            const unsigned char *h = t + i + 1 - o;
            (*slot(&m->gram, hkey(o, h, o - 1, t[i]), true))++;
            (*slot(&m->ctx, hkey(o, h, o - 1, -1), true))++;
        }
}

static double lm_logp(const ngram_lm *m, const unsigned char *hist, int hn, int next) {
    double p = 1.0 / 256;
    for (int o = 1; o <= NG && o - 1 <= hn; o++) {
        const unsigned char *h = hist + hn - (o - 1);
        uint32_t *tot = slot((htab *)&m->ctx, hkey(o, h, o - 1, -1), false);
        if (!tot || !*tot) continue;
        uint32_t *c = slot((htab *)&m->gram, hkey(o, h, o - 1, next), false);
        double lam = *tot / (*tot + 3.0);
        p = lam * (c ? *c : 0) / *tot + (1 - lam) * p;
    }
    return log(p);
}

typedef struct {
    const ngram_lm *lm; /* NULL: the uniform model */
} scorer;

static cllm_status score_item(void *user, const cllm_mc_item *it, cllm_mc_choice_score *sc) {
    const scorer *s = user;
    for (int c = 0; c < it->n_choices; c++) {
        char *all = cllm_strdup_printf("%s%s", it->context, it->continuations[c]);
        size_t lc = strlen(it->context), la = strlen(all);
        double ll = 0;
        for (size_t i = lc; i < la; i++) {
            int hn = (int)(i < NG - 1 ? i : NG - 1);
            ll += s->lm ? lm_logp(s->lm, (const unsigned char *)all + i - hn, hn, (unsigned char)all[i])
                        : -log(256.0);
        }
        sc[c].loglik = ll;
        sc[c].n_tokens = (int)(la - lc);
        free(all);
    }
    return CLLM_OK;
}

static void test_fortunes_benchmark(void) {
    const char *dir = "/usr/share/games/fortunes";
    const char *files[] = {"computers", "science", "people", "politics", "work", "cookie"};
    enum { NF = sizeof files / sizeof *files };
    if (!cllm_is_dir(dir)) {
        printf("skipped the benchmark check: %s is absent (Debian package 'fortunes')\n", dir);
        return;
    }
    /* Read the fortunes (%-separated) of a few files. */
    char *bufs[NF];
    cllm_text_doc *docs = NULL;
    int n = 0, cap = 0;
    for (int f = 0; f < NF; f++) {
        char *path = cllm_path_join(dir, files[f]);
        size_t len;
        CHECK_OK(cllm_read_file(path, &bufs[f], &len));
        char *p = bufs[f];
        while (p && *p) {
            char *sep = strstr(p, "\n%\n");
            size_t l = sep ? (size_t)(sep - p) : strlen(p);
            if (n == cap) docs = realloc(docs, (size_t)(cap = cap ? 2 * cap : 1024) * sizeof *docs);
            docs[n++] = (cllm_text_doc){p, l, path, 0};
            p = sep ? sep + 3 : p + l;
        }
        /* path is kept alive in docs[].source until the end */
    }
    cllm_make_mc_opts o = cllm_make_mc_opts_default();
    o.n_items = 800;
    cllm_make_mc_result r;
    CHECK_OK(cllm_datasets_make_mc(&r, docs, n, &o));
    /* Train the n-gram model on the documents the benchmark left out. */
    ngram_lm lm;
    lm.gram.key = calloc((size_t)1 << HBITS, 8), lm.gram.cnt = calloc((size_t)1 << HBITS, 4);
    lm.ctx.key = calloc((size_t)1 << HBITS, 8), lm.ctx.cnt = calloc((size_t)1 << HBITS, 4);
    size_t trained = 0;
    for (int i = 0; i < n && trained < 4000000; i++)
        if (!r.used[i]) lm_train(&lm, (const unsigned char *)docs[i].text, docs[i].len), trained += docs[i].len;
    char *tdir = test_tmpdir("datasets_fortunes");
    char *path = cllm_path_join(tdir, "mc.jsonl");
    CHECK_OK(cllm_write_file_atomic(path, r.jsonl, r.jsonl_len));
    cllm_mc_set set;
    CHECK_OK(cllm_mc_load(&set, path, CLLM_MC_GENERIC, true, 0));
    cllm_mc_results trained_res, uniform_res;
    scorer s1 = {&lm}, s0 = {NULL};
    CHECK_OK(cllm_mc_evaluate(&trained_res, &set, score_item, &s1, NULL));
    CHECK_OK(cllm_mc_evaluate(&uniform_res, &set, score_item, &s0, NULL));
    double a1 = trained_res.mean[CLLM_MC_ACC_NORM], e1 = trained_res.stderr_[CLLM_MC_ACC_NORM];
    double a0 = uniform_res.mean[CLLM_MC_ACC_NORM], e0 = uniform_res.stderr_[CLLM_MC_ACC_NORM];
    printf("fortunes benchmark (%d items, %zu bytes of training text): %d-gram acc_norm %.3f ± "
           "%.3f, uniform model %.3f ± %.3f, chance 0.250\n",
           set.n, trained, NG, a1, e1, a0, e0);
    /* Trained: at least 4 standard errors above chance. Uniform: the per-character score is the
     * same for every choice, so it always picks the first: its accuracy is the share of items
     * whose answer is choice 0, within 3 standard errors of chance. */
    CHECK_MSG(a1 > 0.25 + 4 * e1, "the n-gram model does not beat chance clearly");
    CHECK_MSG(fabs(a0 - 0.25) < 3 * e0, "the uniform model is not at chance");
    cllm_mc_results_free(&trained_res);
    cllm_mc_results_free(&uniform_res);
    cllm_mc_set_free(&set);
    free(lm.gram.key), free(lm.gram.cnt), free(lm.ctx.key), free(lm.ctx.cnt);
    cllm_make_mc_result_free(&r);
    for (int i = 0; i < n; i++)
        if (i == 0 || docs[i].source != docs[i - 1].source) free((char *)docs[i].source);
    for (int f = 0; f < NF; f++) free(bufs[f]);
    free(docs);
    free(path);
    free(tdir);
}

int main(void) {
    test_make_mc();
    test_make_sft();
    test_fortunes_benchmark();
    return test_exit();
}
