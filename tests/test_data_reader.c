/* Corpus reading: a directory tree with whole-file documents, fortune-style '%' files (with
 * CRLF), gzip files, a strfile-like binary index, a symlink to a file already read, hidden
 * files, include/exclude patterns, JSONL with malformed lines (skipped and counted, or refused
 * with strict), truncated gzip, missing paths. */
#include "cllm/data.h"
#include "cllm/util.h"
#include "testutil.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static void put(const char *dir, const char *name, const char *data, size_t len) {
    char *p = cllm_path_join(dir, name);
    char *slash = strrchr(p, '/');
    *slash = 0;
    cllm_mkdirs(p);
    *slash = '/';
    CHECK_OK(cllm_write_file_atomic(p, data, len));
    free(p);
}

static void put_gz(const char *dir, const char *name, const char *data, size_t len) {
    char *p = cllm_path_join(dir, name);
    char *slash = strrchr(p, '/');
    *slash = 0;
    cllm_mkdirs(p);
    *slash = '/';
    gzFile g = gzopen(p, "wb");
    CHECK(g != NULL);
    if (g) {
        CHECK(gzwrite(g, data, (unsigned)len) == (int)len);
        gzclose(g);
    }
    free(p);
}

typedef struct {
    const char *text; /* expected document */
    const char *file; /* suffix of its path */
    uint64_t line;
} want_doc;

static void expect_docs(cllm_reader *r, const want_doc *w, int n) {
    for (int i = 0; i <= n; i++) {
        cllm_doc d;
        cllm_status st = cllm_reader_next(r, &d);
        CHECK_MSG(st == CLLM_OK, "doc %d: %s", i, cllm_last_error());
        if (st != CLLM_OK) return;
        if (i == n) {
            CHECK_MSG(d.text == NULL, "more documents than expected: '%.40s' from %s",
                      d.text ? d.text : "", d.path);
            return;
        }
        if (!d.text) {
            CHECK_MSG(0, "only %d documents, expected %d", i, n);
            return;
        }
        size_t k = strlen(w[i].file), pl = strlen(d.path);
        CHECK_MSG(d.len == strlen(w[i].text) && memcmp(d.text, w[i].text, d.len) == 0,
                  "doc %d: '%.*s', expected '%s'", i, (int)d.len, d.text, w[i].text);
        CHECK_MSG(pl >= k && !strcmp(d.path + pl - k, w[i].file), "doc %d from %s, expected %s", i,
                  d.path, w[i].file);
        CHECK_MSG(d.line == w[i].line, "doc %d at line %llu, expected %llu", i,
                  (unsigned long long)d.line, (unsigned long long)w[i].line);
    }
}

static void test_tree(const char *dir) {
    put(dir, "b/whole.txt", "A whole file\nis one document.\n", 30);
    put(dir, "a/empty.txt", "", 0);
    const char *fortunes = "First fortune.\n%\nSecond\r\nfortune.\r\n%\r\n%\nFourth.\n%\n";
    put(dir, "a/cookie", fortunes, strlen(fortunes));
    /* strfile index: binary, skipped. */
    put(dir, "a/cookie.dat", "\0\0\0\2\0\0\1\xaf%", 9);
    put(dir, ".hidden/secret.txt", "never read", 10);
    put(dir, "a/.swap", "never read", 10);
    const char *gz = "Zipped one.\n%\nZipped two.";
    put_gz(dir, "c/z.txt.gz", gz, strlen(gz));
    put(dir, "c/notes.log", "excluded by pattern", 19);
    char *target = cllm_path_join(dir, "a/cookie"), *link = cllm_path_join(dir, "c/cookie.u8");
    CHECK(symlink(target, link) == 0);
    free(target);
    free(link);

    cllm_reader_opts o = cllm_reader_opts_default();
    o.doc_separator = "%";
    const char *ex[] = {"*.log"};
    o.exclude = ex;
    o.n_exclude = 1;
    cllm_reader *r = NULL;
    const char *paths[] = {dir};
    CHECK_OK(cllm_reader_init(&r, paths, 1, &o));
    if (!r) return;
    CHECK(cllm_reader_num_files(r) == 5); /* a/cookie a/cookie.dat a/empty.txt b/whole c/z */
    /* Name order: a/cookie, a/cookie.dat (binary), a/empty.txt, b/whole.txt, c/cookie.u8 (the
     * same file as a/cookie), c/notes.log (excluded), c/z.txt.gz. */
    const want_doc w[] = {
        {"First fortune.", "a/cookie", 1},
        {"Second\r\nfortune.", "a/cookie", 3},
        {"", "a/cookie", 6},
        {"Fourth.", "a/cookie", 7},
        /* a/empty.txt has no separator line: no document (an empty tail is none) */
        {"A whole file\nis one document.", "b/whole.txt", 1},
        {"Zipped one.", "c/z.txt.gz", 1},
        {"Zipped two.", "c/z.txt.gz", 3},
    };
    expect_docs(r, w, 7);
    const cllm_reader_stats *s = cllm_reader_get_stats(r);
    CHECK(s->files == 4);
    CHECK(s->files_binary == 1);
    CHECK(s->files_same == 1);
    CHECK(s->files_excluded == 1);
    CHECK(s->documents == 7);
    CHECK_MSG(s->bytes == strlen(fortunes) + 30 + strlen(gz), "bytes %llu",
              (unsigned long long)s->bytes);
    cllm_reader_free(r);

    /* Without a separator every file is one document, the empty file too; include keeps
     * only *.txt and *.gz; a file named explicitly is read whatever its name. */
    o = cllm_reader_opts_default();
    const char *inc[] = {"*.txt", "*.gz"};
    o.include = inc;
    o.n_include = 2;
    char *cookie = cllm_path_join(dir, "a/cookie");
    char fortunes_doc[128];
    snprintf(fortunes_doc, sizeof fortunes_doc, "%.*s", (int)strlen(fortunes) - 1, fortunes);
    const char *paths2[] = {dir, cookie};
    CHECK_OK(cllm_reader_init(&r, paths2, 2, &o));
    if (!r) return;
    const want_doc w2[] = {
        {"", "a/empty.txt", 1},
        {"A whole file\nis one document.", "b/whole.txt", 1},
        {"Zipped one.\n%\nZipped two.", "c/z.txt.gz", 1},
        {fortunes_doc, "a/cookie", 1},
    };
    expect_docs(r, w2, 4);
    cllm_reader_free(r);
    free(cookie);
}

static void test_jsonl(const char *dir) {
    const char *j = "{\"text\": \"first\", \"id\": 1}\n"
                    "\n"
                    "{\"text\": \"caf\\u00e9 \\ud83d\\ude00\\nline\"}\r\n"
                    "{\"text\": 42}\n"
                    "{\"title\": \"no text\"}\n"
                    "[\"an array\"]\n"
                    "{\"text\": \"unterminated\n"
                    "{\"text\": \"trailing\"} junk\n"
                    "{\"text\": \"last\"}";
    put(dir, "j/data.jsonl", j, strlen(j));
    put_gz(dir, "j/more.ndjson.gz", "{\"body\": \"zipped json\"}\n", 24);
    cllm_reader_opts o = cllm_reader_opts_default();
    cllm_reader *r = NULL;
    char *p = cllm_path_join(dir, "j/data.jsonl");
    const char *paths[] = {p};
    CHECK_OK(cllm_reader_init(&r, paths, 1, &o));
    if (r) {
        const want_doc w[] = {
            {"first", "data.jsonl", 1},
            {"caf\xc3\xa9 \xf0\x9f\x98\x80\nline", "data.jsonl", 3},
            {"last", "data.jsonl", 9},
        };
        expect_docs(r, w, 3);
        CHECK(cllm_reader_get_stats(r)->malformed_lines == 5);
        cllm_reader_free(r);
    }
    /* strict: the first malformed line stops the run with file and line. */
    o.strict = true;
    CHECK_OK(cllm_reader_init(&r, paths, 1, &o));
    if (r) {
        cllm_doc d;
        CHECK_OK(cllm_reader_next(r, &d));
        CHECK_OK(cllm_reader_next(r, &d));
        cllm_status st = cllm_reader_next(r, &d);
        CHECK(st == CLLM_ERR_FORMAT);
        char *want = cllm_strdup_printf("%s:4: no", p);
        CHECK_MSG(strstr(cllm_last_error(), p) &&
                      strstr(cllm_last_error(), ":4: not a string field \"text\""),
                  "message: %s", cllm_last_error());
        free(want);
        cllm_reader_free(r);
    }
    free(p);
    /* --text-key, gzip JSONL found by its name in a directory. */
    o = cllm_reader_opts_default();
    o.text_key = "body";
    const char *inc[] = {"*.gz"};
    o.include = inc;
    o.n_include = 1;
    char *jd = cllm_path_join(dir, "j");
    const char *paths2[] = {jd};
    CHECK_OK(cllm_reader_init(&r, paths2, 1, &o));
    if (r) {
        const want_doc w[] = {{"zipped json", "more.ndjson.gz", 1}};
        expect_docs(r, w, 1);
        cllm_reader_free(r);
    }
    /* format text reads a .jsonl file as one document. */
    o = cllm_reader_opts_default();
    o.format = "text";
    o.include = inc;
    o.n_include = 1;
    CHECK_OK(cllm_reader_init(&r, paths2, 1, &o));
    if (r) {
        const want_doc w[] = {{"{\"body\": \"zipped json\"}", "more.ndjson.gz", 1}};
        expect_docs(r, w, 1);
        cllm_reader_free(r);
    }
    free(jd);
}

static void test_errors(const char *dir) {
    cllm_reader_opts o = cllm_reader_opts_default();
    cllm_reader *r = NULL;
    char *missing = cllm_path_join(dir, "no/such/file.txt");
    const char *p1[] = {missing};
    CHECK(cllm_reader_init(&r, p1, 1, &o) == CLLM_ERR_USAGE && r == NULL);
    CHECK(strstr(cllm_last_error(), missing) != NULL);
    free(missing);
    o.format = "xml";
    const char *p0[] = {dir};
    CHECK(cllm_reader_init(&r, p0, 1, &o) == CLLM_ERR_USAGE);
    CHECK(strstr(cllm_last_error(), "auto, text or jsonl") != NULL);

    /* A gzip file cut short: the error names the file. */
    char *full = cllm_path_join(dir, "full.gz");
    char *text = malloc(200000);
    test_rng rng = {5};
    for (int i = 0; i < 200000; i++)
        text[i] = (char)('a' + test_rng_u64(&rng) % 26);
    for (int i = 80; i < 200000; i += 81)
        text[i] = '\n';
    gzFile g = gzopen(full, "wb");
    gzwrite(g, text, 200000);
    gzclose(g);
    char *data;
    size_t len;
    CHECK_OK(cllm_read_file(full, &data, &len));
    put(dir, "cut/cut.txt.gz", data, len / 2);
    free(data);
    free(text);
    free(full);
    char *cut = cllm_path_join(dir, "cut/cut.txt.gz");
    const char *p2[] = {cut};
    o = cllm_reader_opts_default();
    CHECK_OK(cllm_reader_init(&r, p2, 1, &o));
    if (r) {
        cllm_doc d;
        cllm_status st = cllm_reader_next(r, &d);
        CHECK_MSG(st == CLLM_ERR_FORMAT, "truncated gzip: %s", cllm_status_name(st));
        CHECK_MSG(strstr(cllm_last_error(), cut) && strstr(cllm_last_error(), "truncated gzip"),
                  "message: %s", cllm_last_error());
        cllm_reader_free(r);
    }
    free(cut);

    /* A binary file named explicitly: skipped with a warning, not an error. */
    put(dir, "bin/x.dat", "\x01\x00\x02", 3);
    char *bin = cllm_path_join(dir, "bin/x.dat");
    const char *p3[] = {bin};
    CHECK_OK(cllm_reader_init(&r, p3, 1, &o));
    if (r) {
        cllm_doc d;
        CHECK_OK(cllm_reader_next(r, &d));
        CHECK(d.text == NULL && cllm_reader_get_stats(r)->files_binary == 1);
        cllm_reader_free(r);
    }
    free(bin);
    cllm_reader_free(NULL);
}

int main(void) {
    char *dir = test_tmpdir("data_reader");
    char *tree = cllm_path_join(dir, "tree");
    cllm_mkdirs(tree);
    test_tree(tree);
    test_jsonl(dir);
    test_errors(dir);
    free(tree);
    free(dir);
    return test_exit();
}
