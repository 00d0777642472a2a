/* cllm tokenizer train|encode|decode|info: byte-level BPE from the command line. */
#include "args.h"
#include "cllm/tokenizer.h"
#include "cllm/util.h"
#include "commands.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- input helpers */

/* -t TOK, which every command but train takes. */
#define TOK_OPT(dst)                                                                           \
    {"tokenizer", 't', CLI_STR, (dst), "TOK",                                                  \
     "tokenizer.json, or a directory with it or GPT-2's encoder.json + vocab.bpe",             \
     .required = true}

/* Read a whole file, or stdin for NULL / "-". */
static cllm_status read_input(const char *path, char **data, size_t *len) {
    if (!path || !strcmp(path, "-")) return cllm_read_file("/dev/stdin", data, len);
    if (cllm_is_dir(path))
        return cllm_fail(CLLM_ERR_USAGE, "%s is a directory (pass files, e.g. %s/*.txt)", path,
                         path);
    return cllm_read_file(path, data, len);
}

/* JSONL documents: each non-blank line an object whose string field `field` is the text.
 * The texts are copied into *store (one malloc'd block per line). */
typedef struct {
    cllm_text *docs;
    char **owned;
    size_t n, cap;
} doc_list;

static void docs_free(doc_list *d) {
    for (size_t i = 0; i < d->n; i++) free(d->owned[i]);
    free(d->docs);
    free(d->owned);
    memset(d, 0, sizeof *d);
}

static cllm_status docs_push(doc_list *d, const char *text, size_t len, char *owned) {
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 64;
        cllm_text *a = realloc(d->docs, cap * sizeof *a);
        if (a) d->docs = a;
        char **b = realloc(d->owned, cap * sizeof *b);
        if (b) d->owned = b;
        if (!a || !b) {
            free(owned);
            return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        }
        d->cap = cap;
    }
    d->docs[d->n] = (cllm_text){text, len};
    d->owned[d->n++] = owned;
    return CLLM_OK;
}

static cllm_status parse_jsonl(const char *name, const char *data, size_t len, const char *field,
                               doc_list *d) {
    size_t lineno = 0;
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(data + i, '\n', len - i);
        size_t e = nl ? (size_t)(nl - data) : len;
        lineno++;
        size_t a = i;
        while (a < e && (data[a] == ' ' || data[a] == '\t' || data[a] == '\r')) a++;
        if (a < e) {
            cJSON *o = cJSON_ParseWithLength(data + a, e - a);
            const cJSON *txt = cJSON_GetObjectItemCaseSensitive(o, field);
            if (!o || !cJSON_IsString(txt)) {
                cJSON_Delete(o);
                return cllm_fail(CLLM_ERR_FORMAT,
                                 "%s:%zu: %s (each line must be a JSON object with a string "
                                 "field \"%s\")",
                                 name, lineno, o ? "no string field" : "not valid JSON", field);
            }
            /* cJSON strings stop at a NUL; texts with "\u0000" are cut there */
            size_t n = strlen(txt->valuestring);
            char *copy = malloc(n + 1);
            if (!copy) {
                cJSON_Delete(o);
                return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
            }
            memcpy(copy, txt->valuestring, n + 1);
            cJSON_Delete(o);
            cllm_status st = docs_push(d, copy, n, copy);
            if (st != CLLM_OK) return st;
        }
        i = e + 1;
    }
    return CLLM_OK;
}

static bool is_jsonl(const char *path, const char *format) {
    if (!strcmp(format, "jsonl")) return true;
    if (!strcmp(format, "text")) return false;
    size_t n = strlen(path);
    return n >= 6 && !strcmp(path + n - 6, ".jsonl");
}

/* Write ids as decimal numbers: "a b c" or JSON "[a,b,c]". */
static void put_ids(FILE *f, const uint32_t *ids, size_t n, bool json) {
    char buf[1 << 14];
    size_t k = 0;
    if (json) buf[k++] = '[';
    for (size_t i = 0; i < n; i++) {
        if (k > sizeof buf - 16) {
            fwrite(buf, 1, k, f);
            k = 0;
        }
        if (i) buf[k++] = json ? ',' : ' ';
        char tmp[12];
        int m = 0;
        uint32_t v = ids[i];
        do tmp[m++] = (char)('0' + v % 10);
        while ((v /= 10));
        while (m) buf[k++] = tmp[--m];
    }
    if (json) buf[k++] = ']';
    buf[k++] = '\n';
    fwrite(buf, 1, k, f);
}

static cllm_status open_output(const char *path, FILE **f) {
    *f = stdout;
    if (!path || !strcmp(path, "-")) return CLLM_OK;
    *f = fopen(path, "wb");
    if (!*f) return cllm_fail(CLLM_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    return CLLM_OK;
}

static cllm_status close_output(const char *path, FILE *f) {
    int bad = ferror(f) | fflush(f);
    if (f != stdout) bad |= fclose(f);
    if (bad) return cllm_fail(CLLM_ERR_IO, "%s: write error", path ? path : "stdout");
    return CLLM_OK;
}

/* ---------------------------------------------------------------- train */

static int cmd_tok_train(int argc, char **argv) {
    cli_strlist inputs = {0}, specials = {0}, pos = {0};
    int vocab = 8192, threads = 0;
    long long min_freq = 2;
    const char *out = NULL, *format = "auto", *field = "text";
    bool quiet = false;
    const cli_opt opts[] = {
        {"input", 'i', CLI_STRS, &inputs, "PATH", "training text: a file (or several); '-' = stdin"},
        {"vocab-size", 0, CLI_INT, &vocab, "N", "tokens in all: 256 bytes + merges + specials",
         .lo = 2, .hi = 16777216},
        {"special", 0, CLI_STRS, &specials, "TOKEN",
         "extra special token (<|endoftext|> is always one)"},
        {"min-frequency", 0, CLI_I64, &min_freq, "N", "never merge a pair seen fewer times",
         .lo = 1, .hi = 1e18},
        {"threads", 0, CLI_INT, &threads, "N", "threads counting words (0 = all CPUs)", .lo = 0,
         .hi = 4096},
        {"format", 0, CLI_CHOICE, &format, NULL,
         "input format: auto = jsonl for *.jsonl, else text", .choices = "auto|text|jsonl"},
        {"text-field", 0, CLI_STR, &field, "NAME", "JSONL field that holds the text"},
        {"output", 'o', CLI_STR, &out, "FILE", "tokenizer.json to write", .required = true},
        {"quiet", 'q', CLI_FLAG, &quiet, NULL, "no progress lines"},
    };
    const cli_spec spec = {
        "cllm tokenizer train", "--input PATH... --vocab-size N -o tokenizer.json [options]",
        "Learn a byte-level BPE vocabulary (GPT-2's pre-tokenization) from text files, and "
        "write it as a Hugging Face tokenizer.json. Ids 0-255 are the bytes, then one id per "
        "merge, then the special tokens. A text file is one document; in JSONL each line's "
        "text field is one. Special tokens in the text are cut out before counting. The "
        "same input and flags give a byte-identical file, whatever --threads.",
        opts, CLI_COUNT(opts),
        "example:\n  cllm tokenizer train --input /usr/share/games/fortunes/{art,computers} "
        "--vocab-size 8192 -o tok.json",
        0, -1};
    int rc = cli_parse(&spec, argc, argv, &pos);
    if (rc >= 0) goto done;
    for (int i = 0; i < pos.n; i++) {
        const char **p = realloc(inputs.items, (size_t)(inputs.n + 1) * sizeof *p);
        if (!p) {
            rc = 1;
            goto done;
        }
        inputs.items = p;
        inputs.items[inputs.n++] = pos.items[i];
    }
    if (inputs.n == 0) {
        rc = cli_usage_error(&spec, "--input is required");
        goto done;
    }
    cllm_status st = CLLM_OK;
    doc_list docs = {0};
    cllm_tokenizer *tok = NULL;
    size_t total = 0;
    double t0 = cllm_now();
    for (int i = 0; i < inputs.n && st == CLLM_OK; i++) {
        char *data;
        size_t len;
        if ((st = read_input(inputs.items[i], &data, &len)) != CLLM_OK) break;
        total += len;
        if (is_jsonl(inputs.items[i], format)) {
            st = parse_jsonl(inputs.items[i], data, len, field, &docs);
            free(data);
        } else {
            st = docs_push(&docs, data, len, data);
        }
    }
    if (st == CLLM_OK) {
        cllm_bpe_train_opts o = cllm_bpe_train_opts_default();
        o.vocab_size = (uint32_t)vocab;
        o.specials = specials.items;
        o.n_specials = specials.n;
        o.min_frequency = (uint64_t)min_freq;
        o.threads = threads;
        o.verbose = !quiet;
        double t1 = cllm_now();
        st = cllm_tokenizer_train(&tok, docs.docs, docs.n, &o);
        if (st == CLLM_OK) st = cllm_tokenizer_save(tok, out);
        if (st == CLLM_OK && !quiet)
            printf("trained %u merges on %zu bytes (%zu document%s) in %.2f s (read %.2f s): "
                   "vocab %u with %u special%s -> %s\n",
                   cllm_tokenizer_merge_count(tok), total, docs.n, docs.n == 1 ? "" : "s",
                   cllm_now() - t1, t1 - t0, cllm_tokenizer_vocab_size(tok),
                   cllm_tokenizer_special_count(tok),
                   cllm_tokenizer_special_count(tok) == 1 ? "" : "s", out);
    }
    cllm_tokenizer_free(tok);
    docs_free(&docs);
    rc = cli_report(st);
done:
    cli_strlist_free(&inputs);
    cli_strlist_free(&specials);
    cli_strlist_free(&pos);
    return rc;
}

/* ---------------------------------------------------------------- encode */

static int cmd_encode(int argc, char **argv) {
    const char *tpath = NULL, *input = "-", *output = "-", *allowed = "none", *field = "text";
    bool jsonl = false;
    int threads = 0;
    const cli_opt opts[] = {
        TOK_OPT(&tpath),
        {"input", 'i', CLI_STR, &input, "FILE", "text to encode ('-' = stdin)"},
        {"output", 'o', CLI_STR, &output, "FILE", "where the ids go ('-' = stdout)"},
        {"allowed-special", 0, CLI_STR, &allowed, "all|none|TOK,...",
         "special tokens recognised in the text; others are encoded as plain text"},
        {"jsonl", 0, CLI_FLAG, &jsonl, NULL,
         "input lines are JSON objects: encode each one's text field, print a JSON array per "
         "line"},
        {"text-field", 0, CLI_STR, &field, "NAME", "the field --jsonl reads"},
        {"threads", 0, CLI_INT, &threads, "N", "encoding threads (0 = all CPUs)", .lo = 0,
         .hi = 4096},
    };
    const cli_spec spec = {
        "cllm tokenizer encode", "-t TOK [--input FILE] [options]",
        "Encode text to token ids. Without --jsonl the whole input is one text and its ids are "
        "printed space-separated on one line; with --jsonl each input line {\"text\": ...} "
        "gives one output line [id, ...] (blank lines are skipped).",
        opts, CLI_COUNT(opts),
        "example:\n  echo 'Hello world' | cllm tokenizer encode -t ../shared/data/gpt2", 0, 0};
    int rc = cli_parse(&spec, argc, argv, NULL);
    if (rc >= 0) return rc;
    cllm_status st;
    cllm_tokenizer *tok = NULL;
    char *data = NULL;
    size_t len = 0;
    FILE *f = NULL;
    doc_list docs = {0};
    cllm_tokens ids = {0}, *outs = NULL;
    CLLM_TRY(cllm_tokenizer_load(&tok, tpath));
    CLLM_TRY(read_input(input, &data, &len));
    if (!jsonl) {
        CLLM_TRY(cllm_tokenizer_encode_parallel(tok, data, len, allowed, threads, &ids));
        CLLM_TRY(open_output(output, &f));
        put_ids(f, ids.ids, ids.n, false);
    } else {
        CLLM_TRY(parse_jsonl(!strcmp(input, "-") ? "stdin" : input, data, len, field, &docs));
        outs = cllm_calloc(docs.n ? docs.n : 1, sizeof *outs);
        if (!outs) {
            st = CLLM_ERR_NOMEM;
            goto fail;
        }
        CLLM_TRY(cllm_tokenizer_encode_batch(tok, docs.docs, docs.n, allowed, threads, outs));
        CLLM_TRY(open_output(output, &f));
        for (size_t i = 0; i < docs.n; i++) put_ids(f, outs[i].ids, outs[i].n, true);
    }
    st = close_output(output, f);
    f = NULL;
fail:
    if (f && f != stdout) fclose(f);
    if (outs)
        for (size_t i = 0; i < docs.n; i++) cllm_tokens_free(&outs[i]);
    free(outs);
    docs_free(&docs);
    cllm_tokens_free(&ids);
    free(data);
    cllm_tokenizer_free(tok);
    return cli_report(st);
}

/* ---------------------------------------------------------------- decode */

/* Ids separated by whitespace (commas and brackets too, so encode --jsonl output decodes). */
static cllm_status parse_ids(const char *name, const char *s, size_t len, cllm_tokens *ids) {
    cllm_status st;
    size_t i = 0, count = 0;
    while (i < len) {
        char c = s[i];
        if (c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == ',' || c == '[' || c == ']') {
            i++;
            continue;
        }
        size_t j = i;
        uint64_t v = 0;
        while (j < len && s[j] >= '0' && s[j] <= '9' && v <= UINT32_MAX) v = v * 10 + (uint64_t)(s[j++] - '0');
        bool sep = j == len || strchr(" \n\t\r,[]", s[j]);
        if (j == i || !sep || v > UINT32_MAX) {
            size_t e = i;
            while (e < len && e - i < 20 && !strchr(" \n\t\r,[]", s[e])) e++;
            return cllm_fail(CLLM_ERR_FORMAT,
                             "%s: '%.*s' (token %zu) is not a token id (expected non-negative "
                             "integers separated by spaces or newlines)",
                             name, (int)(e - i), s + i, count + 1);
        }
        uint32_t id = (uint32_t)v;
        if ((st = cllm_tokens_push(ids, &id, 1)) != CLLM_OK) return st;
        count++;
        i = j;
    }
    return CLLM_OK;
}

static int cmd_decode(int argc, char **argv) {
    const char *tpath = NULL, *input = "-", *output = "-";
    const cli_opt opts[] = {
        TOK_OPT(&tpath),
        {"input", 'i', CLI_STR, &input, "FILE", "ids to decode ('-' = stdin)"},
        {"output", 'o', CLI_STR, &output, "FILE", "where the text goes ('-' = stdout)"},
    };
    const cli_spec spec = {"cllm tokenizer decode", "-t TOK [--input FILE] [-o FILE]",
                           "Decode token ids (separated by spaces or newlines; the commas and "
                           "brackets of `encode --jsonl` are accepted too) to text, byte-exact.",
                           opts, CLI_COUNT(opts), NULL, 0, 0};
    int rc = cli_parse(&spec, argc, argv, NULL);
    if (rc >= 0) return rc;
    cllm_status st;
    cllm_tokenizer *tok = NULL;
    char *data = NULL, *text = NULL;
    size_t len, tlen;
    cllm_tokens ids = {0};
    FILE *f = NULL;
    CLLM_TRY(cllm_tokenizer_load(&tok, tpath));
    CLLM_TRY(read_input(input, &data, &len));
    CLLM_TRY(parse_ids(!strcmp(input, "-") ? "stdin" : input, data, len, &ids));
    CLLM_TRY(cllm_tokenizer_decode(tok, ids.ids, ids.n, &text, &tlen));
    CLLM_TRY(open_output(output, &f));
    fwrite(text, 1, tlen, f);
    st = close_output(output, f);
    f = NULL;
fail:
    if (f && f != stdout) fclose(f);
    free(text);
    free(data);
    cllm_tokens_free(&ids);
    cllm_tokenizer_free(tok);
    return cli_report(st);
}

/* ---------------------------------------------------------------- info */

static int cmd_info(int argc, char **argv) {
    const char *tpath = NULL, *input = NULL, *allowed = "none";
    int threads = 0;
    const cli_opt opts[] = {
        TOK_OPT(&tpath),
        {"input", 'i', CLI_STR, &input, "FILE",
         "also encode this file and report bytes per token"},
        {"allowed-special", 0, CLI_STR, &allowed, "all|none|TOK,...",
         "special tokens recognised in --input"},
        {"threads", 0, CLI_INT, &threads, "N", "encoding threads (0 = all CPUs)", .lo = 0,
         .hi = 4096},
    };
    const cli_spec spec = {"cllm tokenizer info", "-t TOK [--input FILE]",
                           "Describe a tokenizer: vocabulary size, merges, special tokens; with "
                           "--input, its compression (bytes per token) on that text.",
                           opts, CLI_COUNT(opts), NULL, 0, 0};
    int rc = cli_parse(&spec, argc, argv, NULL);
    if (rc >= 0) return rc;
    cllm_status st;
    cllm_tokenizer *tok = NULL;
    char *data = NULL;
    size_t len;
    cllm_tokens ids = {0};
    CLLM_TRY(cllm_tokenizer_load(&tok, tpath));
    printf("tokenizer: %s\n", tpath);
    printf("vocab size: %u (256 bytes, %u merges, %u special%s)\n",
           cllm_tokenizer_vocab_size(tok), cllm_tokenizer_merge_count(tok),
           cllm_tokenizer_special_count(tok), cllm_tokenizer_special_count(tok) == 1 ? "" : "s");
    for (uint32_t i = 0; i < cllm_tokenizer_special_count(tok); i++) {
        uint32_t id;
        const char *s = cllm_tokenizer_special(tok, i, &id);
        printf("special: %s = %u\n", s, id);
    }
    if (cllm_tokenizer_eot(tok) != UINT32_MAX)
        printf("end of text: %u\n", cllm_tokenizer_eot(tok));
    else
        printf("end of text: none (this tokenizer has no <|endoftext|>)\n");
    if (input) {
        CLLM_TRY(read_input(input, &data, &len));
        double t0 = cllm_now();
        CLLM_TRY(cllm_tokenizer_encode_parallel(tok, data, len, allowed, threads, &ids));
        double dt = cllm_now() - t0;
        printf("%s: %zu bytes, %zu tokens, %.4f bytes/token (encoded in %.3f s, %.1f MB/s)\n",
               input, len, ids.n, ids.n ? (double)len / (double)ids.n : 0.0, dt,
               dt > 0 ? len / dt / 1e6 : 0.0);
    }
    st = CLLM_OK;
fail:
    free(data);
    cllm_tokens_free(&ids);
    cllm_tokenizer_free(tok);
    return cli_report(st);
}

/* ---------------------------------------------------------------- convert */

static int cmd_convert(int argc, char **argv) {
    const char *tpath = NULL, *out = NULL;
    const cli_opt opts[] = {
        TOK_OPT(&tpath),
        {"output", 'o', CLI_STR, &out, "FILE", "tokenizer.json to write", .required = true},
    };
    const cli_spec spec = {"cllm tokenizer convert", "-t TOK -o tokenizer.json",
                           "Write a tokenizer (e.g. GPT-2's encoder.json + vocab.bpe) as a "
                           "Hugging Face tokenizer.json that encodes the same.",
                           opts, CLI_COUNT(opts), NULL, 0, 0};
    int rc = cli_parse(&spec, argc, argv, NULL);
    if (rc >= 0) return rc;
    cllm_tokenizer *tok = NULL;
    cllm_status st = cllm_tokenizer_load(&tok, tpath);
    if (st == CLLM_OK) st = cllm_tokenizer_save(tok, out);
    cllm_tokenizer_free(tok);
    return cli_report(st);
}

/* ---------------------------------------------------------------- dispatch */

int cmd_tokenizer(int argc, char **argv) {
    static const struct {
        const char *name;
        int (*fn)(int, char **);
        const char *summary;
    } subs[] = {
        {"train", cmd_tok_train, "learn a byte-level BPE vocabulary from text -> tokenizer.json"},
        {"encode", cmd_encode, "text -> token ids"},
        {"decode", cmd_decode, "token ids -> text"},
        {"info", cmd_info, "vocabulary size, special tokens, compression on a file"},
        {"convert", cmd_convert, "write a tokenizer (e.g. GPT-2's files) as tokenizer.json"},
    };
    const int n = (int)(sizeof subs / sizeof subs[0]);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        FILE *f = argc < 2 ? stderr : stdout;
        fprintf(f, "usage: cllm tokenizer <command> [options]\n\n"
                   "Byte-level BPE tokenizers (GPT-2's kind): train one on your text, encode, "
                   "decode.\nTOK is a tokenizer.json (Hugging Face format) or a directory holding "
                   "one, or GPT-2's encoder.json + vocab.bpe.\n\ncommands:\n");
        for (int i = 0; i < n; i++) fprintf(f, "  %-8s %s\n", subs[i].name, subs[i].summary);
        fprintf(f, "\n'cllm tokenizer <command> --help' describes a command.\n");
        return argc < 2 ? 2 : 0;
    }
    for (int i = 0; i < n; i++) {
        if (strcmp(argv[1], subs[i].name) != 0) continue;
        char name[64];
        snprintf(name, sizeof name, "cllm tokenizer %s", subs[i].name);
        argv[1] = name;
        return subs[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "cllm tokenizer: '%s' is not a command (train, encode, decode, info, convert)\n",
            argv[1]);
    return 2;
}
