/* cllm_data_prepare end to end on a synthetic corpus (text with '%' separators, JSONL with a
 * malformed line, gzip) holding unique documents plus planted exact duplicates (differing
 * only in what clean-up removes), near duplicates (one word changed, case changed), and
 * documents for each rule. Checks: exactly the planted documents are removed, per rule; the
 * shards decode (with the tokenizer trained here) to exactly the kept documents, in corpus
 * order, each followed by <|endoftext|>, every one in exactly one split, at least one in
 * each; the same bytes for any thread count; the split is fixed by seed and text (adding
 * documents moves none); shard size; the loader reads the result; an output directory is not
 * overwritten without force, and a failed run leaves it as it was. */
#include "cllm/data.h"
#include "cllm/tokenizer.h"
#include "cllm/util.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define MAXDOCS 256

typedef struct {
    char *text[MAXDOCS]; /* expected kept documents (cleaned), corpus order */
    int n;
} doclist;

static char words[400][10];

static void make_words(test_rng *r) {
    for (int i = 0; i < 400; i++) {
        int n = 2 + (int)(test_rng_u64(r) % 7);
        for (int k = 0; k < n; k++)
            words[i][k] = (char)('a' + test_rng_u64(r) % 26);
        words[i][n] = 0;
    }
}

/* "doc<id> w w w. w w ..." with n words: unique by its marker. */
static char *make_doc(int id, int n, test_rng *r) {
    char *s = malloc((size_t)n * 12 + 32);
    int len = sprintf(s, "doc%d", id);
    for (int i = 0; i < n; i++) {
        len += sprintf(s + len, " %s", words[test_rng_u64(r) % 400]);
        if (i % 9 == 8) s[len++] = '.', s[len] = 0;
        if (i % 27 == 26 && i < n - 1) s[len++] = '\n', s[len] = 0;
    }
    return s;
}

/* The same document with one word in the middle changed and some words upper-cased. */
static char *near_copy(const char *src) {
    char *s = strdup(src);
    size_t n = strlen(s), mid = n / 2;
    while (mid < n && s[mid] != ' ')
        mid++;
    if (mid + 1 < n) s[mid + 1] = s[mid + 1] == 'z' ? 'y' : 'z';
    for (size_t i = 1; i < n; i++)
        if (s[i - 1] == '.' || (i % 50 == 0 && s[i] >= 'a' && s[i] <= 'z'))
            s[i] = (char)(s[i] - 32 * (s[i] >= 'a' && s[i] <= 'z'));
    return s;
}

/* The same document as the reader and clean-up would see it again: CRLF line ends and
 * trailing spaces. */
static char *messy_copy(const char *src) {
    char *s = malloc(strlen(src) * 3 + 8);
    size_t o = 0;
    for (const char *p = src; *p; p++) {
        if (*p == '\n') {
            s[o++] = ' ';
            s[o++] = '\r';
        }
        s[o++] = *p;
    }
    s[o++] = ' ';
    s[o] = 0;
    return s;
}

typedef struct {
    char *buf;
    size_t len, cap;
} sbuf;

static void sb_add(sbuf *b, const char *s) {
    size_t n = strlen(s);
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->buf = realloc(b->buf, b->cap);
    }
    memcpy(b->buf + b->len, s, n + 1);
    b->len += n;
}

static void sb_json_doc(sbuf *b, const char *text) {
    sb_add(b, "{\"id\": 7, \"text\": \"");
    for (const char *p = text; *p; p++) {
        char e[8] = {*p, 0};
        if (*p == '\n') strcpy(e, "\\n");
        if (*p == '\r') strcpy(e, "\\r");
        if (*p == '"') strcpy(e, "\\\"");
        sb_add(b, e);
    }
    sb_add(b, "\"}\n");
}

/* One JSONL record: {"messages": [system, user, assistant]} or {key: text}. */
static void sb_record(sbuf *b, const char *key, const char *text, const char *user) {
    cJSON *j = cJSON_CreateObject();
    if (!strcmp(key, "messages")) {
        cJSON *m = cJSON_AddArrayToObject(j, "messages");
        const char *roles[] = {"system", "user", "assistant"}, *texts[] = {user, user, text};
        for (int i = 0; i < 3; i++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "role", roles[i]);
            cJSON_AddStringToObject(e, "content", texts[i]);
            cJSON_AddItemToArray(m, e);
        }
    } else {
        cJSON_AddStringToObject(j, key, text);
    }
    char *line = cJSON_PrintUnformatted(j);
    sb_add(b, line);
    sb_add(b, "\n");
    free(line);
    cJSON_Delete(j);
}

typedef struct {
    doclist kept;
    uint64_t removed[CLLM_DOC_N_RULES];
    uint64_t in;
} corpus;

/* Writes a.txt ('%'-separated), b.jsonl, c.txt.gz into dir. */
static void make_corpus(const char *dir, corpus *c, test_rng *r) {
    memset(c, 0, sizeof *c);
    sbuf a = {0}, b = {0}, z = {0};
    char *srcs[8];
    int id = 0;
    /* a.txt: 50 unique docs, 4 long ones (near-dup sources), and removals */
    for (int i = 0; i < 54; i++) {
        char *d = make_doc(id++, i < 4 ? 140 : 15 + (int)(test_rng_u64(r) % 40), r);
        if (i < 4) srcs[i] = strdup(d);
        sb_add(&a, d);
        sb_add(&a, "\n%\n");
        c->kept.text[c->kept.n++] = d;
    }
    const char *removed_a[] = {"   \n\t",
                               "tiny one",
                               "1234 5678 90 !!! ??? 4242 31337 #### 2024",
                               "la la la\nla la la\nla la la\nfa so la",
                               "short",
                               ""};
    const cllm_doc_rule rules_a[] = {CLLM_DOC_EMPTY,     CLLM_DOC_TOO_SHORT,
                                     CLLM_DOC_LOW_ALPHA, CLLM_DOC_REPEATED_LINES,
                                     CLLM_DOC_TOO_SHORT, CLLM_DOC_EMPTY};
    for (int i = 0; i < 6; i++) {
        sb_add(&a, removed_a[i]);
        sb_add(&a, "\n%\n");
        c->removed[rules_a[i]]++;
    }
    char longword[80] = "a word that is far too long: ";
    for (int i = 0; i < 45; i++)
        strcat(longword, "x");
    sb_add(&a, longword);
    sb_add(&a, "\n%\n");
    c->removed[CLLM_DOC_LONG_WORD]++;
    /* b.jsonl: 40 unique, exact copies (messy), near copies, one malformed line */
    for (int i = 0; i < 40; i++) {
        char *d = make_doc(id++, 10 + (int)(test_rng_u64(r) % 50), r);
        sb_json_doc(&b, d);
        c->kept.text[c->kept.n++] = d;
        if (i % 10 == 3) {
            char *m = messy_copy(c->kept.text[i]); /* a copy of a document in a.txt */
            sb_json_doc(&b, m);
            free(m);
            c->removed[CLLM_DOC_EXACT_DUP]++;
        }
        if (i % 10 == 7) {
            char *nc = near_copy(srcs[i / 10]);
            sb_json_doc(&b, nc);
            free(nc);
            c->removed[CLLM_DOC_NEAR_DUP]++;
        }
        if (i == 20) sb_add(&b, "{\"text\": broken json\n");
    }
    /* c.txt.gz: 20 unique and two exact copies of earlier ones */
    for (int i = 0; i < 20; i++) {
        char *d = make_doc(id++, 20 + (int)(test_rng_u64(r) % 30), r);
        sb_add(&z, d);
        sb_add(&z, "\n%\n");
        c->kept.text[c->kept.n++] = d;
        if (i == 5 || i == 15) {
            sb_add(&z, c->kept.text[60 + i]);
            sb_add(&z, "\n%\n");
            c->removed[CLLM_DOC_EXACT_DUP]++;
        }
    }
    char *pa = cllm_path_join(dir, "a.txt"), *pb = cllm_path_join(dir, "b.jsonl"),
         *pz = cllm_path_join(dir, "c.txt.gz");
    CHECK_OK(cllm_write_file_atomic(pa, a.buf, a.len));
    CHECK_OK(cllm_write_file_atomic(pb, b.buf, b.len));
    gzFile g = gzopen(pz, "wb");
    gzwrite(g, z.buf, (unsigned)z.len);
    gzclose(g);
    c->removed[CLLM_DOC_KEPT] = (uint64_t)c->kept.n;
    for (int k = 0; k < CLLM_DOC_N_RULES; k++)
        c->in += c->removed[k];
    for (int i = 0; i < 4; i++)
        free(srcs[i]);
    free(pa);
    free(pb);
    free(pz);
    free(a.buf);
    free(b.buf);
    free(z.buf);
}

/* A small BPE tokenizer trained on the corpus texts. */
static char *train_tokenizer(const char *dir, const corpus *c) {
    cllm_text t[MAXDOCS];
    for (int i = 0; i < c->kept.n; i++)
        t[i] = (cllm_text){c->kept.text[i], strlen(c->kept.text[i])};
    cllm_bpe_train_opts o = cllm_bpe_train_opts_default();
    o.vocab_size = 600;
    o.threads = 1;
    cllm_tokenizer *tok = NULL;
    CHECK_OK(cllm_tokenizer_train(&tok, t, (size_t)c->kept.n, &o));
    char *path = cllm_path_join(dir, "tok.json");
    CHECK_OK(cllm_tokenizer_save(tok, path));
    cllm_tokenizer_free(tok);
    return path;
}

static cllm_prepare_opts base_opts(const char **inputs, int n, const char *out, const char *tok) {
    cllm_prepare_opts o = cllm_prepare_opts_default();
    o.inputs = inputs;
    o.n_inputs = n;
    o.out_dir = out;
    o.tokenizer = tok;
    o.read.doc_separator = "%";
    o.curate.min_chars = 10;
    o.curate.max_word_chars = 40;
    o.val_fraction = 0.2;
    o.threads = 1;
    return o;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The documents of a split, decoded. */
static int split_docs(const char *dir, const char *split, const cllm_tokenizer *tok, char **out,
                      int *shards) {
    DIR *d = opendir(dir);
    char *names[64];
    int nn = 0;
    struct dirent *e;
    char prefix[16];
    snprintf(prefix, sizeof prefix, "%s_", split);
    while (d && (e = readdir(d)) != NULL)
        if (!strncmp(e->d_name, prefix, strlen(prefix)) && nn < 64) names[nn++] = strdup(e->d_name);
    if (d) closedir(d);
    qsort(names, (size_t)nn, sizeof *names, cmp_str);
    *shards = nn;
    uint32_t *all = NULL;
    size_t n_all = 0;
    for (int i = 0; i < nn; i++) {
        char *p = cllm_path_join(dir, names[i]);
        uint32_t *t = NULL;
        size_t n = 0;
        CHECK_OK(cllm_shard_read(p, &t, &n));
        all = realloc(all, (n_all + n + 1) * sizeof *all);
        if (n) memcpy(all + n_all, t, n * sizeof *t);
        n_all += n;
        free(t);
        free(p);
        free(names[i]);
    }
    uint32_t eot = cllm_tokenizer_eot(tok);
    CHECK_MSG(n_all > 0 && all[n_all - 1] == eot, "%s ends with <|endoftext|>", split);
    int nd = 0;
    size_t start = 0;
    for (size_t i = 0; i < n_all; i++) {
        if (all[i] != eot) continue;
        char *text = NULL;
        size_t len = 0;
        CHECK_OK(cllm_tokenizer_decode(tok, all + start, i - start, &text, &len));
        if (nd < MAXDOCS) out[nd++] = text;
        start = i + 1;
    }
    free(all);
    return nd;
}

/* Every kept document in exactly one split, in corpus order; returns the val documents'
 * markers as a bit set in val_set. */
static void check_splits(const char *out, const corpus *c, const cllm_tokenizer *tok, bool *val_set,
                         int *n_train_shards) {
    char *tr[MAXDOCS], *va[MAXDOCS];
    int vs;
    int nt = split_docs(out, "train", tok, tr, n_train_shards);
    int nv = split_docs(out, "val", tok, va, &vs);
    CHECK_MSG(nt >= 1 && nv >= 1, "train %d, val %d documents", nt, nv);
    CHECK(nt + nv == c->kept.n);
    int it = 0, iv = 0;
    for (int i = 0; i < c->kept.n; i++) {
        const char *want = c->kept.text[i];
        bool in_t = it < nt && !strcmp(tr[it], want), in_v = iv < nv && !strcmp(va[iv], want);
        CHECK_MSG(in_t != in_v, "kept document %d ('%.30s') is in %s", i, want,
                  in_t ? "both splits" : "neither split (or out of order)");
        if (in_t) it++;
        if (in_v) iv++;
        val_set[i] = in_v;
    }
    CHECK(it == nt && iv == nv);
    for (int i = 0; i < nt; i++)
        free(tr[i]);
    for (int i = 0; i < nv; i++)
        free(va[i]);
}

static bool same_file(const char *a, const char *b) {
    char *da = NULL, *db = NULL;
    size_t la = 0, lb = 0;
    bool ok = cllm_read_file(a, &da, &la) == CLLM_OK && cllm_read_file(b, &db, &lb) == CLLM_OK &&
              la == lb && memcmp(da, db, la) == 0;
    free(da);
    free(db);
    return ok;
}

static void compare_outputs(const char *a, const char *b) {
    const char *files[] = {"train_000.bin", "val_000.bin", "removed.jsonl", "tokenizer.json"};
    for (int i = 0; i < 4; i++) {
        char *pa = cllm_path_join(a, files[i]), *pb = cllm_path_join(b, files[i]);
        CHECK_MSG(same_file(pa, pb), "%s differs between %s and %s", files[i], a, b);
        free(pa);
        free(pb);
    }
}

int main(void) {
    char *root = test_tmpdir("data_prepare");
    char *in = cllm_path_join(root, "in");
    cllm_mkdirs(in);
    test_rng r = {77};
    make_words(&r);
    corpus c;
    make_corpus(in, &c, &r);
    char *tokp = train_tokenizer(root, &c);
    cllm_tokenizer *tok = NULL;
    CHECK_OK(cllm_tokenizer_load(&tok, tokp));
    if (!tok) return test_exit();

    /* One thread, then three: the same bytes. */
    const char *inputs[] = {in};
    char *out1 = cllm_path_join(root, "out1"), *out3 = cllm_path_join(root, "out3");
    cllm_prepare_opts o = base_opts(inputs, 1, out1, tokp);
    cllm_prepare_stats s;
    CHECK_OK(cllm_data_prepare(&o, &s));
    for (int k = 0; k < CLLM_DOC_N_RULES; k++)
        CHECK_MSG(s.removed[k] == c.removed[k], "%s: %llu, planted %llu",
                  cllm_doc_rule_name((cllm_doc_rule)k), (unsigned long long)s.removed[k],
                  (unsigned long long)c.removed[k]);
    CHECK(s.read.documents == c.in);
    CHECK(s.read.malformed_lines == 1);
    CHECK(s.read.files == 3);
    CHECK(s.changed_clean >= 1); /* the messy copies */
    CHECK(s.train.documents + s.val.documents == (uint64_t)c.kept.n);
    CHECK(s.train.shards == 1 && s.val.shards == 1);
    bool val1[MAXDOCS], val3[MAXDOCS];
    int shards;
    check_splits(out1, &c, tok, val1, &shards);
    o = base_opts(inputs, 1, out3, tokp);
    o.threads = 3;
    CHECK_OK(cllm_data_prepare(&o, &s));
    compare_outputs(out1, out3);
    check_splits(out3, &c, tok, val3, &shards);

    /* The copied tokenizer, stats.json and the removal log. */
    char *tj = cllm_path_join(out1, "tokenizer.json");
    cllm_tokenizer *copy = NULL;
    CHECK_OK(cllm_tokenizer_load(&copy, tj));
    CHECK(copy && cllm_tokenizer_vocab_size(copy) == cllm_tokenizer_vocab_size(tok));
    cllm_tokenizer_free(copy);
    char *sj = cllm_path_join(out1, "stats.json"), *rj = cllm_path_join(out1, "removed.jsonl");
    char *text = NULL;
    size_t len = 0;
    CHECK_OK(cllm_read_file(sj, &text, &len));
    CHECK(text && strstr(text, "\"near_dup\"") && strstr(text, "\"bytes_per_token\""));
    free(text);
    CHECK_OK(cllm_read_file(rj, &text, &len));
    int lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    CHECK(lines == (int)(c.in - c.removed[CLLM_DOC_KEPT]));
    CHECK(text && strstr(text, "\"rule\":\"near_dup\"") && strstr(text, "\"dup_of_source\":"));
    free(text);

    /* Another seed: another split of the same documents. */
    char *out_s = cllm_path_join(root, "out_seed");
    o = base_opts(inputs, 1, out_s, tokp);
    o.seed = 4242;
    CHECK_OK(cllm_data_prepare(&o, &s));
    bool val_s[MAXDOCS];
    check_splits(out_s, &c, tok, val_s, &shards);
    CHECK(memcmp(val1, val_s, (size_t)c.kept.n) != 0);

    /* More documents: none of the earlier ones changes side. */
    char *extra = cllm_path_join(root, "extra.txt");
    const char *extra_text = "a new document about nothing much\n%\nand one more new one here\n";
    CHECK_OK(cllm_write_file_atomic(extra, extra_text, strlen(extra_text)));
    const char *inputs2[] = {in, extra};
    char *out_x = cllm_path_join(root, "out_more");
    o = base_opts(inputs2, 2, out_x, tokp);
    corpus c2 = c;
    c2.kept.text[c2.kept.n++] = (char *)"a new document about nothing much";
    c2.kept.text[c2.kept.n++] = (char *)"and one more new one here";
    CHECK_OK(cllm_data_prepare(&o, &s));
    bool val_x[MAXDOCS];
    check_splits(out_x, &c2, tok, val_x, &shards);
    CHECK_MSG(memcmp(val1, val_x, (size_t)c.kept.n) == 0, "adding documents moved others");

    /* --held-out: documents that repeat a held-out text are removed (decontamination). The
     * held-out file: doc 5 as a chat reply (with CRLF line ends: cleaned like a document),
     * whose system and user turns are doc 10 (not replies: doc 10 stays), a near copy of
     * doc 0 as "response" (so doc 0 goes, and so does b.jsonl's identical near copy of it,
     * which would have been a near duplicate of doc 0), doc 70 as "text", a blank line, and a
     * text the corpus does not hold. */
    {
        sbuf h = {0};
        char *m5 = messy_copy(c.kept.text[5]), *n0 = near_copy(c.kept.text[0]);
        sb_record(&h, "messages", m5, c.kept.text[10]);
        sb_record(&h, "response", n0, NULL);
        sb_add(&h, "\n");
        sb_record(&h, "text", c.kept.text[70], NULL);
        sb_record(&h, "text", "a text that is nowhere in the corpus at all", NULL);
        char *hp = cllm_path_join(root, "held.jsonl"), *out_h = cllm_path_join(root, "out_held");
        CHECK_OK(cllm_write_file_atomic(hp, h.buf, h.len));
        const char *held[] = {hp};
        o = base_opts(inputs, 1, out_h, tokp);
        o.held_out = held;
        o.n_held_out = 1;
        CHECK_OK(cllm_data_prepare(&o, &s));
        CHECK_MSG(s.held_out_texts == 4, "%llu held-out texts", (unsigned long long)s.held_out_texts);
        CHECK_MSG(s.removed[CLLM_DOC_HELD_OUT] == 4, "%llu held_out",
                  (unsigned long long)s.removed[CLLM_DOC_HELD_OUT]);
        CHECK(s.removed[CLLM_DOC_NEAR_DUP] == c.removed[CLLM_DOC_NEAR_DUP] - 1);
        CHECK(s.removed[CLLM_DOC_EXACT_DUP] == c.removed[CLLM_DOC_EXACT_DUP]);
        corpus c3 = c;
        c3.kept.n = 0;
        for (int i = 0; i < c.kept.n; i++)
            if (i != 0 && i != 5 && i != 70) c3.kept.text[c3.kept.n++] = c.kept.text[i];
        bool val_h[MAXDOCS];
        check_splits(out_h, &c3, tok, val_h, &shards);
        char *rh = cllm_path_join(out_h, "removed.jsonl"), *sh = cllm_path_join(out_h, "stats.json");
        CHECK_OK(cllm_read_file(rh, &text, &len));
        int held_lines = 0;
        for (const char *q = text; q && (q = strstr(q, "\"rule\":\"held_out\"")); q++)
            held_lines++;
        CHECK(held_lines == 4);
        CHECK(text && strstr(text, "held.jsonl:1\"") && strstr(text, "held.jsonl:2\"") &&
              strstr(text, "held.jsonl:4\""));
        free(text);
        CHECK_OK(cllm_read_file(sh, &text, &len));
        CHECK(text && strstr(text, "\"held_out\":\t{") && strstr(text, "\"held_out_texts\":\t4"));
        free(text);

        /* bad held-out files: one line each, naming the file and line; nothing written */
        static const struct {
            const char *text, *want;
        } bad[] = {
            {"{\"text\": \"fine\"}\nnot json\n", "held.jsonl:2: "},
            {"{\"context\": \"a\", \"choices\": [\"b\"]}\n", "held.jsonl:1: no \"text\""},
            {"\n\n", "held.jsonl: no held-out texts"},
            {"{\"text\": \"  \"}\n", "held.jsonl: no held-out texts (every one is empty)"},
            {"{\"text\": \"ok\xff\"}\n", "held.jsonl:1: invalid UTF-8"},
        };
        char *out_b = cllm_path_join(root, "out_held_bad");
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            CHECK_OK(cllm_write_file_atomic(hp, bad[i].text, strlen(bad[i].text)));
            o = base_opts(inputs, 1, out_b, tokp);
            o.held_out = held;
            o.n_held_out = 1;
            CHECK(cllm_data_prepare(&o, &s) == CLLM_ERR_FORMAT);
            CHECK_MSG(strstr(cllm_last_error(), bad[i].want), "case %zu: %s", i, cllm_last_error());
            CHECK(!cllm_is_dir(out_b));
        }
        const char *missing[] = {"/nonexistent/held.jsonl"};
        o.held_out = missing;
        CHECK(cllm_data_prepare(&o, &s) == CLLM_ERR_IO);
        CHECK(!cllm_is_dir(out_b));
        free(out_b);
        free(rh);
        free(sh);
        free(hp);
        free(out_h);
        free(m5);
        free(n0);
        free(h.buf);
    }

    /* Tiny and huge val fractions still leave one document on each side. */
    char *out_t = cllm_path_join(root, "out_tiny");
    o = base_opts(inputs, 1, out_t, tokp);
    o.val_fraction = 1e-9;
    CHECK_OK(cllm_data_prepare(&o, &s));
    CHECK(s.val.documents == 1 && s.train.documents == (uint64_t)c.kept.n - 1);
    o.val_fraction = 0.999999;
    o.force = true;
    CHECK_OK(cllm_data_prepare(&o, &s));
    CHECK(s.train.documents == 1 && s.val.documents == (uint64_t)c.kept.n - 1);

    /* Small shards: several, named in order, the loader reads them all. */
    char *out_sh = cllm_path_join(root, "out_shards");
    o = base_opts(inputs, 1, out_sh, tokp);
    o.shard_tokens = 700;
    CHECK_OK(cllm_data_prepare(&o, &s));
    CHECK(s.train.shards == (s.train.tokens + 699) / 700 && s.train.shards > 3);
    check_splits(out_sh, &c, tok, val3, &shards);
    CHECK(shards == (int)s.train.shards);
    CHECK(memcmp(val1, val3, (size_t)c.kept.n) == 0);
    cllm_loader_opts lo = {.dir = out_sh, .split = "train", .B = 2, .T = 16, .world = 1};
    cllm_loader *l = NULL;
    CHECK_OK(cllm_loader_init(&l, &lo));
    CHECK(l && cllm_loader_num_tokens(l) == s.train.tokens && cllm_loader_num_shards(l) == shards);
    CHECK(l && cllm_loader_max_token(l) < cllm_tokenizer_vocab_size(tok));
    cllm_loader_free(l);

    /* An existing output is kept unless forced; with force, extra old shards go. */
    o = base_opts(inputs, 1, out_sh, tokp);
    CHECK(cllm_data_prepare(&o, &s) == CLLM_ERR_USAGE);
    CHECK(strstr(cllm_last_error(), "already holds prepared data") != NULL);
    char *old = cllm_path_join(out_sh, "train_003.bin");
    CHECK(cllm_is_file(old));
    o.force = true;
    CHECK_OK(cllm_data_prepare(&o, &s));
    CHECK(!cllm_is_file(old) && s.train.shards == 1);
    free(old);

    /* A failure (strict JSONL) leaves the directory as it was, and no work directory. */
    o = base_opts(inputs, 1, out1, tokp);
    o.force = true;
    o.read.strict = true;
    CHECK(cllm_data_prepare(&o, &s) == CLLM_ERR_FORMAT);
    CHECK_MSG(strstr(cllm_last_error(), "b.jsonl:") && strstr(cllm_last_error(), "not valid JSON"),
              "message: %s", cllm_last_error());
    compare_outputs(out1, out3);
    DIR *d = opendir(out1);
    struct dirent *e;
    int hidden = 0;
    while (d && (e = readdir(d)) != NULL)
        hidden += e->d_name[0] == '.' && strlen(e->d_name) > 2;
    if (d) closedir(d);
    CHECK(hidden == 0);

    /* Too little left to split. */
    char *one = cllm_path_join(root, "one.txt");
    CHECK_OK(cllm_write_file_atomic(one, "just one document here\n",
                                    strlen("just one document here\n")));
    const char *inputs3[] = {one};
    char *out_one = cllm_path_join(root, "out_one");
    o = base_opts(inputs3, 1, out_one, tokp);
    CHECK(cllm_data_prepare(&o, &s) == CLLM_ERR_USAGE);
    CHECK(strstr(cllm_last_error(), "at least 2") != NULL);
    CHECK_MSG(!cllm_is_dir(out_one), "a failed run removes the output directory it created");

    for (int i = 0; i < c.kept.n; i++)
        free(c.kept.text[i]);
    cllm_tokenizer_free(tok);
    free(one);
    free(out_one);
    free(out_sh);
    free(out_t);
    free(out_x);
    free(extra);
    free(out_s);
    free(sj);
    free(rj);
    free(tj);
    free(out1);
    free(out3);
    free(tokp);
    free(in);
    free(root);
    return test_exit();
}
