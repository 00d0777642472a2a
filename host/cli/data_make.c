/* cllm data make-mc / make-sft: read documents from files and directories, build the
 * benchmark or the chat set (cllm/datasets.h), write them atomically. */
#include "args.h"
#include "cllm/datasets.h"
#include "cllm/util.h"
#include "data_commands.h"
#include "eval_internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- documents from files ---------------------------------------------------------------- */

/* Files and directories (recursively, in name order, names starting with '.' skipped) read
 * into documents: a line equal to the separator ends a document; without a separator each
 * file is one. Binary files (a NUL byte in the first 64 KiB, e.g. fortune's .dat indexes) and
 * files met twice (symlinks such as fortune's *.u8) are skipped. */
typedef struct {
    char **bufs; /* file contents, NUL-terminated */
    char **paths;
    int n_files, cap_files;
    cllm_text_doc *docs;
    int n_docs, cap_docs;
    dev_t *dev;
    ino_t *ino;
    int n_seen, cap_seen;
    int n_binary, n_same;
} corpus;

static void corpus_free(corpus *c) {
    for (int i = 0; i < c->n_files; i++) free(c->bufs[i]), free(c->paths[i]);
    free(c->bufs);
    free(c->paths);
    free(c->docs);
    free(c->dev);
    free(c->ino);
    memset(c, 0, sizeof *c);
}

static bool grow(void **p, int *cap, int need, size_t size) {
    if (need <= *cap) return true;
    int n = *cap ? *cap * 2 : 64;
    while (n < need) n *= 2;
    void *q = realloc(*p, (size_t)n * size);
    if (!q) return false;
    *p = q;
    *cap = n;
    return true;
}

static cllm_status add_doc(corpus *c, const char *text, size_t len, const char *path, long line) {
    if (!grow((void **)&c->docs, &c->cap_docs, c->n_docs + 1, sizeof *c->docs))
        return cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
    c->docs[c->n_docs++] = (cllm_text_doc){text, len, path, line};
    return CLLM_OK;
}

static cllm_status add_file(corpus *c, const char *path, const struct stat *sb, const char *sep) {
    for (int i = 0; i < c->n_seen; i++)
        if (c->dev[i] == sb->st_dev && c->ino[i] == sb->st_ino) {
            c->n_same++;
            return CLLM_OK;
        }
    int cap = c->cap_seen;
    if (!grow((void **)&c->dev, &cap, c->n_seen + 1, sizeof *c->dev) ||
        !grow((void **)&c->ino, &c->cap_seen, c->n_seen + 1, sizeof *c->ino))
        return cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
    c->dev[c->n_seen] = sb->st_dev;
    c->ino[c->n_seen++] = sb->st_ino;
    char *data = NULL;
    size_t len = 0;
    cllm_status st = cllm_read_file(path, &data, &len);
    if (st != CLLM_OK) return st;
    if (memchr(data, 0, len < 65536 ? len : 65536)) {
        c->n_binary++;
        free(data);
        return CLLM_OK;
    }
    cap = c->cap_files;
    if (!grow((void **)&c->bufs, &cap, c->n_files + 1, sizeof *c->bufs) ||
        !grow((void **)&c->paths, &c->cap_files, c->n_files + 1, sizeof *c->paths)) {
        free(data);
        return cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
    }
    char *p = strdup(path);
    if (!p) {
        free(data);
        return cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
    }
    c->bufs[c->n_files] = data;
    c->paths[c->n_files++] = p;
    /* Valid UTF-8, or an error naming the line. */
    size_t bad;
    if (!ev_utf8_valid(data, len, &bad)) {
        long bad_line = 1;
        for (size_t i = 0; i < bad; i++) bad_line += data[i] == '\n';
        return cllm_fail(CLLM_ERR_FORMAT, "%s:%ld: not valid UTF-8 text", path, bad_line);
    }
    long line;
    if (!sep) return add_doc(c, data, len, p, 1);
    size_t sl = strlen(sep), start = 0;
    long start_line = 1;
    line = 1;
    for (size_t i = 0; i <= len;) {
        const char *nl = i < len ? memchr(data + i, '\n', len - i) : NULL;
        size_t end = nl ? (size_t)(nl - data) : len, n = end - i;
        if (n && data[end - 1] == '\r') n--;
        if (n == sl && !memcmp(data + i, sep, sl)) {
            if (i > start) CLLM_TRY(add_doc(c, data + start, i - start, p, start_line));
            start = nl ? end + 1 : len;
            start_line = line + 1;
        }
        if (!nl) break;
        i = end + 1;
        line++;
    }
    if (start < len) CLLM_TRY(add_doc(c, data + start, len - start, p, start_line));
    return CLLM_OK;
fail:
    return st;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static cllm_status add_path(corpus *c, const char *path, const char *sep, int depth) {
    struct stat sb;
    if (stat(path, &sb) != 0)
        return cllm_fail(CLLM_ERR_IO, "%s: %s", path, strerror(errno));
    if (S_ISREG(sb.st_mode)) return add_file(c, path, &sb, sep);
    if (!S_ISDIR(sb.st_mode))
        return cllm_fail(CLLM_ERR_IO, "%s: not a file or directory", path);
    if (depth > 64) return cllm_fail(CLLM_ERR_IO, "%s: directories nested too deeply", path);
    DIR *d = opendir(path);
    if (!d) return cllm_fail(CLLM_ERR_IO, "%s: %s", path, strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0;
    cllm_status st = CLLM_OK;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *s = strdup(e->d_name);
        if (!s || !grow((void **)&names, &cap, n + 1, sizeof *names)) {
            free(s);
            st = cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
            break;
        }
        names[n++] = s;
    }
    closedir(d);
    if (names) qsort(names, (size_t)n, sizeof *names, cmp_name);
    for (int i = 0; i < n && st == CLLM_OK; i++) {
        char *full = cllm_path_join(path, names[i]);
        st = full ? add_path(c, full, sep, depth + 1) : CLLM_ERR_NOMEM;
        free(full);
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return st;
}

static cllm_status read_corpus(corpus *c, const cli_strlist *inputs, const char *sep) {
    memset(c, 0, sizeof *c);
    for (int i = 0; i < inputs->n; i++) {
        cllm_status st = add_path(c, inputs->items[i], sep, 0);
        if (st != CLLM_OK) {
            corpus_free(c);
            return st;
        }
    }
    if (c->n_docs == 0) {
        corpus_free(c);
        return cllm_fail(CLLM_ERR_FORMAT, "no documents in the --input paths (binary files "
                         "and repeated files are skipped)");
    }
    return CLLM_OK;
}

/* cli_parse, then the positional arguments join --input, which must not end up empty.
 * Returns -1 to go on, else the exit code. */
static int parse_with_inputs(const cli_spec *spec, int argc, char **argv, cli_strlist *inputs,
                             cli_strlist *pos) {
    int rc = cli_parse(spec, argc, argv, pos);
    if (rc >= 0) return rc;
    for (int i = 0; i < pos->n; i++) {
        const char **n = realloc(inputs->items, (size_t)(inputs->n + 1) * sizeof *n);
        if (!n) return cli_report(cllm_fail(CLLM_ERR_NOMEM, "out of host memory"));
        inputs->items = n;
        inputs->items[inputs->n++] = pos->items[i];
    }
    if (inputs->n == 0) return cli_usage_error(spec, "--input is required");
    return -1;
}

/* ---- make-mc -------------------------------------------------------------------------------- */

int cmd_data_make_mc(int argc, char **argv) {
    cli_strlist inputs = {0}, pos = {0};
    const char *out = NULL, *rest = NULL, *sep = NULL;
    cllm_make_mc_opts o = cllm_make_mc_opts_default();
    long long seed = (long long)o.seed;
    const cli_opt opts[] = {
        {"input", 'i', CLI_STRS, &inputs, "PATH", "text file or directory of them (also positional)"},
        {"out", 'o', CLI_STR, &out, "FILE.jsonl", "where to write the items", .required = true},
        {"doc-separator", 0, CLI_STR, &sep, "LINE",
         "a line equal to LINE separates documents (e.g. % for fortune files); default: one "
         "document per file"},
        {"n", 'n', CLI_INT, &o.n_items, "N", "items to build, drawn at random (0: one per usable "
         "document)", .lo = 0, .hi = 1e9},
        {"choices", 0, CLI_INT, &o.n_choices, "K", "choices per item", .lo = 2, .hi = 26},
        {"seed", 0, CLI_I64, &seed, "S", "random seed (same seed and inputs, same file)", .lo = 0, .hi = 9.2e18},
        {"context-frac", 0, CLI_DOUBLE, &o.context_frac, "F",
         "cut each document at the word boundary nearest this fraction of its length", .lo = 0.01, .hi = 0.99},
        {"context-chars", 0, CLI_INT, &o.context_chars, "N",
         "cut at the word boundary nearest N characters instead (0: use --context-frac)", .lo = 0, .hi = 1e9},
        {"min-chars", 0, CLI_INT, &o.min_chars, "N", "skip documents shorter than N characters", .lo = 0, .hi = 1e9},
        {"max-chars", 0, CLI_INT, &o.max_chars, "N", "skip documents longer than N characters (0: no limit)", .lo = 0, .hi = 1e9},
        {"min-context-chars", 0, CLI_INT, &o.min_context_chars, "N",
         "contexts have at least N characters", .lo = 1, .hi = 1e9},
        {"continuation-words", 'w', CLI_INT, &o.continuation_words, "N",
         "the right choice is the document's next N words (0: the whole rest of it)", .lo = 0,
         .hi = 1e6},
        {"neighbours", 0, CLI_INT, &o.neighbours, "M",
         "wrong choices come from the M documents whose continuations are nearest in length",
         .lo = 1, .hi = 1e9},
        {"rest", 0, CLI_STR, &rest, "FILE",
         "also write the documents the benchmark does not use (safe to train on), separated by "
         "--doc-separator lines (% if none)"},
    };
    const cli_spec spec = {
        "cllm data make-mc", "--input PATH... --out FILE.jsonl [options]",
        "Build a cloze-style multiple-choice benchmark from held-out documents. Each item's\n"
        "context is the start of a document, cut at a single space between two words near\n"
        "--context-frac of its length; the right choice is the document's next\n"
        "--continuation-words words (or all the rest), the wrong ones are the continuations,\n"
        "cut the same way, of the other documents of the benchmark whose lengths are closest to\n"
        "it. The right one's position is random; duplicates are dropped. The output is the generic multiple-choice form\n"
        "{\"context\", \"choices\", \"label\", \"id\"} that `cllm eval --mc FILE` scores like\n"
        "lm-evaluation-harness: a model that learned the documents' language and topics beats\n"
        "chance (1/K) clearly; an untrained one does not. The result depends only on the\n"
        "documents, their order (files in name order) and --seed.",
        opts, CLI_COUNT(opts),
        "example:\n"
        "  cllm data make-mc --input /usr/share/games/fortunes --doc-separator % --n 500 \\\n"
        "      --out fortunes-mc.jsonl --rest fortunes-train.txt",
        0, -1};
    int rc = parse_with_inputs(&spec, argc, argv, &inputs, &pos);
    if (rc >= 0) goto out;
    if (o.neighbours < o.n_choices - 1) {
        rc = cli_usage_error(&spec, "--neighbours %d is fewer than the %d wrong choices",
                             o.neighbours, o.n_choices - 1);
        goto out;
    }
    o.seed = (uint64_t)seed;
    corpus c;
    cllm_status st = read_corpus(&c, &inputs, sep);
    if (st != CLLM_OK) {
        rc = cli_report(st);
        goto out;
    }
    cllm_make_mc_result r;
    st = cllm_datasets_make_mc(&r, c.docs, c.n_docs, &o);
    if (st == CLLM_OK) st = cllm_write_file_atomic(out, r.jsonl, r.jsonl_len);
    int n_rest = 0;
    if (st == CLLM_OK && rest) {
        char *buf = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&buf, &len);
        if (!m) {
            st = cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
        } else {
            for (int i = 0; i < c.n_docs; i++) {
                if (r.used[i]) continue;
                const cllm_text_doc *d = &c.docs[i];
                size_t n = d->len;
                while (n && d->text[n - 1] == '\n') n--;
                fwrite(d->text, 1, n, m);
                fprintf(m, "\n%s\n", sep ? sep : "%");
                n_rest++;
            }
            fclose(m);
            st = buf ? cllm_write_file_atomic(rest, buf, len)
                     : cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
            free(buf);
        }
    }
    if (st == CLLM_OK) {
        printf("read %d documents from %d files (%d binary and %d repeated files skipped)\n",
               c.n_docs, c.n_files, c.n_binary, c.n_same);
        printf("%d usable (%d..%d characters, a word boundary after >= %d characters and before "
               "%d more words), %d duplicates dropped\n", r.n_usable, o.min_chars, o.max_chars,
               o.min_context_chars, o.continuation_words, r.n_duplicate);
        printf("wrote %d items of %d choices to %s (chance %.1f%%)\n", r.n_items, o.n_choices,
               out, 100.0 / o.n_choices);
        if (rest) printf("wrote the %d other documents to %s\n", n_rest, rest);
        rc = 0;
    } else {
        rc = cli_report(st);
    }
    cllm_make_mc_result_free(&r);
    corpus_free(&c);
out:
    cli_strlist_free(&inputs);
    cli_strlist_free(&pos);
    return rc;
}

/* ---- make-sft ------------------------------------------------------------------------------- */

int cmd_data_make_sft(int argc, char **argv) {
    cli_strlist inputs = {0}, pos = {0}, templates = {0};
    const char *out = NULL, *val_out = NULL, *sep = NULL, *from = "file", *format = "messages";
    bool val_seen = false;
    cllm_make_sft_opts o = cllm_make_sft_opts_default();
    long long seed = (long long)o.seed;
    char tpl_help[512];
    snprintf(tpl_help, sizeof tpl_help,
             "user request with {category} in it; one is picked at random per record "
             "(default: \"%s\" and %d more)", cllm_sft_default_templates[0],
             cllm_sft_n_default_templates - 1);
    const cli_opt opts[] = {
        {"input", 'i', CLI_STRS, &inputs, "PATH", "file or directory; each file is a category (also positional)"},
        {"out", 'o', CLI_STR, &out, "FILE.jsonl", "training records", .required = true},
        {"val-out", 0, CLI_STR, &val_out, "FILE.jsonl", "held-out records (with --val-fraction)"},
        {"val-fraction", 0, CLI_DOUBLE, &o.val_fraction, "F",
         "fraction of each category held out (default 0.1 with --val-out)", .lo = 0, .hi = 0.9,
         .seen = &val_seen},
        {"doc-separator", 0, CLI_STR, &sep, "LINE",
         "a line equal to LINE separates documents (e.g. %); default: one document per file"},
        {"template", 't', CLI_STRS, &templates, "TEXT", tpl_help},
        {"system", 0, CLI_STR, &o.system, "TEXT", "a system message before every request"},
        {"category-from", 0, CLI_CHOICE, &from, NULL,
         "name categories after the file or its parent directory", .choices = "file|dir"},
        {"max-per-category", 0, CLI_INT, &o.max_per_category, "N",
         "at most N documents per category, drawn at random (0: all)", .lo = 0, .hi = 1e9},
        {"min-chars", 0, CLI_INT, &o.min_chars, "N", "skip documents shorter than N characters", .lo = 1, .hi = 1e9},
        {"max-chars", 0, CLI_INT, &o.max_chars, "N", "skip documents longer than N characters (0: no limit)", .lo = 0, .hi = 1e9},
        {"format", 0, CLI_CHOICE, &format, NULL,
         "{\"messages\": [...]} chat records or {\"prompt\", \"response\"} pairs", .choices = "messages|pairs"},
        {"seed", 0, CLI_I64, &seed, "S", "random seed (same seed and inputs, same files)", .lo = 0, .hi = 9.2e18},
    };
    const cli_spec spec = {
        "cllm data make-sft", "--input PATH... --out FILE.jsonl [options]",
        "Build a supervised fine-tuning (chat) set from a categorised corpus: every document\n"
        "becomes the assistant's answer to a user request naming its category, the name of its\n"
        "file ('-' and '_' read as spaces; one extension dropped) or, with --category-from dir,\n"
        "of its directory. For Debian's fortunes: user \"Tell me a fortune about computers.\"\n"
        "-> assistant: a fortune from the file 'computers'. Records carry a \"category\" field\n"
        "too, so a held-out answer can be scored under its own and under another category.\n"
        "Output: one {\"messages\": [{\"role\", \"content\"}, ...], \"category\"} object per line\n"
        "(or {\"prompt\", \"response\", \"category\"} with --format pairs), shuffled; exact\n"
        "duplicate documents are dropped. Deterministic for the same inputs and --seed.",
        opts, CLI_COUNT(opts),
        "example:\n"
        "  cllm data make-sft --input /usr/share/games/fortunes --doc-separator % \\\n"
        "      --out fortunes-sft.jsonl --val-out fortunes-sft-val.jsonl --max-chars 400",
        0, -1};
    int rc = parse_with_inputs(&spec, argc, argv, &inputs, &pos);
    if (rc >= 0) goto out;
    if (val_out && !val_seen) o.val_fraction = 0.1;
    if (!val_out && o.val_fraction > 0) {
        rc = cli_usage_error(&spec, "--val-fraction needs --val-out FILE");
        goto out;
    }
    for (int k = 0; k < templates.n; k++)
        if (!strstr(templates.items[k], "{category}")) {
            rc = cli_usage_error(&spec, "--template '%s' has no {category}", templates.items[k]);
            goto out;
        }
    if (templates.n) o.templates = templates.items, o.n_templates = templates.n;
    o.category_from_dir = !strcmp(from, "dir");
    o.format = !strcmp(format, "pairs") ? CLLM_SFT_PAIRS : CLLM_SFT_MESSAGES;
    o.seed = (uint64_t)seed;
    corpus c;
    cllm_status st = read_corpus(&c, &inputs, sep);
    if (st != CLLM_OK) {
        rc = cli_report(st);
        goto out;
    }
    cllm_make_sft_result r;
    st = cllm_datasets_make_sft(&r, c.docs, c.n_docs, &o);
    if (st == CLLM_OK) st = cllm_write_file_atomic(out, r.train, r.train_len);
    if (st == CLLM_OK && val_out) st = cllm_write_file_atomic(val_out, r.val, r.val_len);
    if (st == CLLM_OK) {
        printf("read %d documents from %d files (%d binary and %d repeated files skipped); %d "
               "outside %d..%d characters, %d duplicates dropped\n", c.n_docs, c.n_files,
               c.n_binary, c.n_same, r.n_filtered, o.min_chars, o.max_chars, r.n_duplicate);
        printf("%d categories:", r.n_categories);
        for (int k = 0; k < r.n_categories; k++)
            printf(" %s (%d)%s", r.categories[k], r.per_category[k],
                   k + 1 < r.n_categories ? "," : "\n");
        printf("wrote %d records to %s", r.n_train, out);
        if (val_out) printf(" and %d to %s", r.n_val, val_out);
        printf("\n");
        rc = 0;
    } else {
        rc = cli_report(st);
    }
    cllm_make_sft_result_free(&r);
    corpus_free(&c);
out:
    cli_strlist_free(&inputs);
    cli_strlist_free(&pos);
    cli_strlist_free(&templates);
    return rc;
}
