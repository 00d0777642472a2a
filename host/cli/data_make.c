/* cllm data make-mc / make-sft: read documents from files and directories, build the
 * benchmark or the chat set (cllm/datasets.h), write them atomically. */
#include "args.h"
#include "cllm/data.h"
#include "cllm/datasets.h"
#include "cllm/util.h"
#include "data_commands.h"
#include "eval_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- documents from files ---------------------------------------------------------------- */

/* The documents of the --input paths, read with the data module's corpus reader (cllm/data.h:
 * directories recursively in name order, binary files such as fortune's .dat indexes and
 * files met twice such as its .u8 links skipped, *.jsonl read as JSONL with a "text" key),
 * each copied and checked to be UTF-8. */
typedef struct {
    cllm_text_doc *docs;
    int n_docs, cap;
    char **paths; /* distinct source paths, owned */
    int n_paths;
    cllm_reader_stats stats;
} corpus;

static void corpus_free(corpus *c) {
    for (int i = 0; i < c->n_docs; i++) free((char *)c->docs[i].text);
    for (int i = 0; i < c->n_paths; i++) free(c->paths[i]);
    free(c->docs);
    free(c->paths);
    memset(c, 0, sizeof *c);
}

static cllm_status corpus_add(corpus *c, const cllm_doc *d) {
    size_t bad;
    if (!ev_utf8_valid(d->text, d->len, &bad)) {
        uint64_t line = d->line;
        for (size_t i = 0; i < bad; i++) line += d->text[i] == '\n';
        return cllm_fail(CLLM_ERR_FORMAT, "%s:%llu: not valid UTF-8 text", d->path,
                         (unsigned long long)line);
    }
    if (c->n_docs == c->cap) {
        int cap = c->cap ? 2 * c->cap : 1024;
        cllm_text_doc *p = realloc(c->docs, (size_t)cap * sizeof *p);
        char **q = realloc(c->paths, (size_t)cap * sizeof *q);
        if (p) c->docs = p;
        if (q) c->paths = q;
        if (!p || !q) return cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
        c->cap = cap;
    }
    if (!c->n_paths || strcmp(c->paths[c->n_paths - 1], d->path)) {
        char *p = strdup(d->path);
        if (!p) return cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
        c->paths[c->n_paths++] = p;
    }
    char *t = malloc(d->len + 1);
    if (!t) return cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
    memcpy(t, d->text, d->len);
    t[d->len] = 0;
    c->docs[c->n_docs++] = (cllm_text_doc){t, d->len, c->paths[c->n_paths - 1], (long)d->line};
    return CLLM_OK;
}

static cllm_status read_corpus(corpus *c, const cli_strlist *inputs, const char *sep) {
    memset(c, 0, sizeof *c);
    cllm_reader_opts ro = cllm_reader_opts_default();
    ro.doc_separator = sep;
    cllm_reader *r = NULL;
    cllm_status st = cllm_reader_init(&r, inputs->items, inputs->n, &ro);
    while (st == CLLM_OK) {
        cllm_doc d;
        st = cllm_reader_next(r, &d);
        if (st != CLLM_OK || !d.text) break;
        st = corpus_add(c, &d);
    }
    if (r) c->stats = *cllm_reader_get_stats(r);
    cllm_reader_free(r);
    if (st == CLLM_OK && c->n_docs == 0)
        st = cllm_fail(CLLM_ERR_FORMAT, "no documents in the --input paths (binary files and "
                       "repeated files are skipped)");
    if (st != CLLM_OK) corpus_free(c);
    return st;
}

static void print_read(const corpus *c) {
    printf("read %d documents from %llu files (%llu binary and %llu repeated files skipped)",
           c->n_docs, (unsigned long long)c->stats.files,
           (unsigned long long)c->stats.files_binary, (unsigned long long)c->stats.files_same);
}

/* cli_parse, then the positional arguments join --input, which must not end up empty.
 * Returns -1 to go on, else the exit code. */
static int parse_with_inputs(const cli_spec *spec, int argc, char **argv, cli_strlist *inputs,
                             cli_strlist *pos) {
    int rc = cli_parse(spec, argc, argv, pos);
    if (rc >= 0) return rc;
    for (int i = 0; i < pos->n; i++)
        if (cli_strlist_push(inputs, pos->items[i], pos->argi[i]) != 0)
            return cli_report(cllm_fail(CLLM_ERR_NOMEM, "out of host memory"));
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
        {"near-dup", 0, CLI_DOUBLE, &o.near_dup, "J",
         "drop documents whose word-shingle Jaccard similarity with an earlier one is >= J "
         "(0: exact copies only)", .lo = 0, .hi = 1},
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
        "it. The right one's position is random; duplicates and near-duplicates are dropped.\n"
        "The output is the generic multiple-choice form {\"context\", \"choices\", \"label\",\n"
        "\"id\"} that cllm's evaluator scores like lm-evaluation-harness: a model that learned\n"
        "the documents' language beats chance (1/K) clearly; an untrained one does not. The\n"
        "result depends only on the documents, their order (files in name order) and --seed.\n"
        "Files named *.jsonl are read as JSONL documents (their \"text\" key).",
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
        print_read(&c);
        printf("\n");
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
        {"near-dup", 0, CLI_DOUBLE, &o.near_dup, "J",
         "drop documents whose word-shingle Jaccard similarity with an earlier one is >= J "
         "(0: exact copies only)", .lo = 0, .hi = 1},
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
        "(or {\"prompt\", \"response\", \"category\"} with --format pairs), shuffled;\n"
        "duplicate and near-duplicate documents are dropped. Deterministic for the same inputs\n"
        "and --seed.",
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
        print_read(&c);
        printf("; %d outside %d..%d characters, %d duplicates dropped\n", r.n_filtered,
               o.min_chars, o.max_chars, r.n_duplicate);
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
