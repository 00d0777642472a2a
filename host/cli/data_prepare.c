/* cllm data prepare: text / JSONL -> curated, deduplicated, tokenized train/val shards. */
#include "args.h"
#include "cllm/data.h"
#include "cllm/util.h"
#include "data_commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void human_bytes(char *buf, size_t n, uint64_t b) {
    if (b >= 1000000000ull)
        snprintf(buf, n, "%.2f GB", (double)b / 1e9);
    else if (b >= 1000000)
        snprintf(buf, n, "%.2f MB", (double)b / 1e6);
    else if (b >= 1000)
        snprintf(buf, n, "%.1f kB", (double)b / 1e3);
    else
        snprintf(buf, n, "%llu B", (unsigned long long)b);
}

static void print_summary(const cllm_prepare_opts *o, const cllm_prepare_stats *s) {
    char b1[32], b2[32];
    human_bytes(b1, sizeof b1, s->read.bytes);
    printf("read     %llu documents, %s from %llu files in %.2f s (%.2f MB/s)\n",
           (unsigned long long)s->read.documents, b1, (unsigned long long)s->read.files, s->seconds,
           s->seconds > 0 ? (double)s->read.bytes / 1e6 / s->seconds : 0.0);
    if (s->read.files_binary || s->read.files_same || s->read.files_excluded)
        printf("skipped  files: %llu binary, %llu the same file again (links), %llu excluded\n",
               (unsigned long long)s->read.files_binary, (unsigned long long)s->read.files_same,
               (unsigned long long)s->read.files_excluded);
    if (s->read.malformed_lines)
        printf("skipped  %llu malformed JSONL lines\n",
               (unsigned long long)s->read.malformed_lines);
    printf("changed  %llu cleaned up, %llu NFC-normalized, %llu with invalid UTF-8 repaired\n",
           (unsigned long long)s->changed_clean, (unsigned long long)s->changed_nfc,
           (unsigned long long)s->changed_utf8);
    if (o->n_held_out)
        printf("held out %llu texts from %d file(s): documents that repeat one are removed\n",
               (unsigned long long)s->held_out_texts, o->n_held_out);
    printf("removed  %-16s %10s %12s\n", "rule", "documents", "bytes");
    uint64_t rd = 0, rb = 0;
    for (int r = 1; r < CLLM_DOC_N_RULES; r++) {
        human_bytes(b1, sizeof b1, s->removed_bytes[r]);
        printf("         %-16s %10llu %12s\n", cllm_doc_rule_name((cllm_doc_rule)r),
               (unsigned long long)s->removed[r], b1);
        rd += s->removed[r];
        rb += s->removed_bytes[r];
    }
    human_bytes(b1, sizeof b1, rb);
    printf("         %-16s %10llu %12s\n", "total", (unsigned long long)rd, b1);
    human_bytes(b1, sizeof b1, s->kept_bytes);
    printf("kept     %llu documents, %s\n", (unsigned long long)s->removed[CLLM_DOC_KEPT], b1);
    human_bytes(b1, sizeof b1, s->train.bytes);
    human_bytes(b2, sizeof b2, s->val.bytes);
    printf("train    %llu documents, %s, %llu tokens in %llu shard(s)\n",
           (unsigned long long)s->train.documents, b1, (unsigned long long)s->train.tokens,
           (unsigned long long)s->train.shards);
    printf("val      %llu documents, %s, %llu tokens in %llu shard(s)\n",
           (unsigned long long)s->val.documents, b2, (unsigned long long)s->val.tokens,
           (unsigned long long)s->val.shards);
    uint64_t tokens = s->train.tokens + s->val.tokens, docs = s->train.documents + s->val.documents;
    printf("tokens   %.3f bytes per token (vocab %u, <|endoftext|> = %u after each document)\n",
           tokens > docs ? (double)s->kept_bytes / (double)(tokens - docs) : 0.0, s->vocab_size,
           s->eot);
    printf("wrote    %s/: train_*.bin, val_*.bin, tokenizer.json, stats.json%s\n", o->out_dir,
           o->removed_log ? ", removed.jsonl" : "");
}

int cmd_data_prepare(int argc, char **argv) {
    cllm_prepare_opts o = cllm_prepare_opts_default();
    const char *out = NULL, *tok = NULL, *sep = NULL, *format = "auto", *text_key = "text";
    long long min_chars = 0, max_chars = 0, max_word = (long long)o.curate.max_word_chars;
    long long seed = (long long)o.seed, shard_tokens = (long long)o.shard_tokens;
    double min_alpha = o.curate.min_alpha, max_rep = o.curate.max_repeated_lines;
    double near = o.dedup.near_threshold, val = o.val_fraction;
    int shingle = o.dedup.shingle_words, perms = o.dedup.num_perm, threads = 0;
    bool strict = false, no_clean = false, no_nfc = false, no_exact = false, force = false;
    bool no_log = false, quiet = false;
    cli_strlist include = {0}, exclude = {0}, held = {0}, pos = {0};
    const cli_opt opts[] = {
        {"out", 'o', CLI_STR, &out, "DIR", "output directory (created if missing)",
         .required = true},
        {"tokenizer", 't', CLI_STR, &tok, "TOK",
         "tokenizer.json, or a directory holding one or GPT-2's encoder.json + vocab.bpe",
         .required = true},
        {"format", 0, CLI_CHOICE, &format, NULL,
         "input format; auto: *.jsonl and *.ndjson (also .gz) are JSONL, the rest text",
         .choices = "auto|text|jsonl"},
        {"doc-separator", 0, CLI_STR, &sep, "LINE",
         "text: a line equal to LINE ends a document (e.g. % for fortune files); default: one "
         "document per file"},
        {"text-key", 0, CLI_STR, &text_key, "KEY", "JSONL: the string field holding the text"},
        {"strict", 0, CLI_FLAG, &strict, NULL,
         "a malformed JSONL line is an error (default: skipped, counted, the first 5 shown)"},
        {"include", 0, CLI_STRS, &include, "GLOB",
         "in directories, read only files whose name matches (e.g. '*.txt')"},
        {"exclude", 0, CLI_STRS, &exclude, "GLOB", "in directories, leave out matching files"},
        {"no-clean", 0, CLI_FLAG, &no_clean, NULL,
         "keep control characters, CR, trailing spaces and blank-line runs as they are"},
        {"no-nfc", 0, CLI_FLAG, &no_nfc, NULL, "do not normalize to Unicode NFC"},
        {"min-chars", 0, CLI_I64, &min_chars, "N",
         "remove documents shorter than N characters (0: off)", .lo = 0, .hi = 1e15},
        {"max-chars", 0, CLI_I64, &max_chars, "N",
         "remove documents longer than N characters (0: off)", .lo = 0, .hi = 1e15},
        {"min-alpha", 0, CLI_DOUBLE, &min_alpha, "F",
         "remove documents where letters are less than F of the non-space characters (0: off)",
         .lo = 0, .hi = 1},
        {"max-repeated-lines", 0, CLI_DOUBLE, &max_rep, "F",
         "remove documents where more than F of the non-blank lines repeat an earlier line "
         "(1: off)",
         .lo = 0, .hi = 1},
        {"max-word-chars", 0, CLI_I64, &max_word, "N",
         "remove documents with a word (run of non-space characters) longer than N (0: off)",
         .lo = 0, .hi = 1e15},
        {"held-out", 0, CLI_STRS, &held, "FILE.jsonl",
         "decontamination: remove documents that repeat a held-out text of FILE (exactly, or as "
         "near duplicates at --near-dup-threshold): the \"text\", \"response\" or assistant "
         "\"messages\" of each record, e.g. a chat set's validation split"},
        {"no-exact-dedup", 0, CLI_FLAG, &no_exact, NULL, "keep exact duplicates"},
        {"near-dup-threshold", 0, CLI_DOUBLE, &near, "J",
         "remove documents whose estimated Jaccard similarity (word shingles, MinHash) with an "
         "earlier one is >= J (0: off)",
         .lo = 0, .hi = 1},
        {"shingle-words", 0, CLI_INT, &shingle, "N", "words per shingle for near duplicates",
         .lo = 1, .hi = 64},
        {"minhash-perms", 0, CLI_INT, &perms, "N", "MinHash permutations", .lo = 8, .hi = 1024},
        {"val-fraction", 0, CLI_DOUBLE, &val, "F",
         "share of documents for validation (at least one document each side)", .lo = 1e-9,
         .hi = 0.999999},
        {"seed", 0, CLI_I64, &seed, "N", "seed of the split and the MinHash permutations", .lo = 0,
         .hi = 9.2e18},
        {"shard-tokens", 0, CLI_I64, &shard_tokens, "N", "tokens per shard", .lo = 1,
         .hi = 2147483647},
        {"threads", 'j', CLI_INT, &threads, "N", "worker threads (0: all CPUs)", .lo = 0,
         .hi = 256},
        {"force", 'f', CLI_FLAG, &force, NULL,
         "replace prepared data already in the output directory"},
        {"no-removed-log", 0, CLI_FLAG, &no_log, NULL,
         "do not write removed.jsonl (one line per removed document: source, rule, value)"},
        {"quiet", 'q', CLI_FLAG, &quiet, NULL, "no progress line and no summary"},
    };
    const cli_spec spec = {
        "cllm data prepare",
        "PATH... --out DIR --tokenizer TOK [options]",
        "Turn raw text into the train and validation shards `cllm train` reads. PATHs are\n"
        "files and directories (read recursively in name order; names starting with '.', files\n"
        "with NUL bytes such as fortune's .dat indexes, and a file met again through a link are\n"
        "skipped). Gzip files are read transparently. Every document goes through:\n"
        "  1. clean-up: invalid UTF-8 -> U+FFFD; CR LF -> LF; control characters dropped;\n"
        "     backspace overstrike resolved; trailing spaces and extra blank lines dropped;\n"
        "     Unicode NFC\n"
        "  2. rules, in this order: empty, too_short, too_long, low_alpha, repeated_lines,\n"
        "     long_word (thresholds below), then held_out (--held-out: the document repeats a\n"
        "     held-out text, exactly or as a near duplicate)\n"
        "  3. exact duplicates (same text after clean-up), then near duplicates (MinHash over\n"
        "     word shingles, LSH banding, confirmed on the full signature): the first one in\n"
        "     input order is kept\n"
        "  4. the split: a document goes to val when a hash of its text and --seed falls below\n"
        "     --val-fraction (so no document is in both, and the split of a document does not\n"
        "     depend on the others)\n"
        "  5. tokenization in parallel, <|endoftext|> after each document, shards of\n"
        "     --shard-tokens tokens in llm.c's .bin format (uint16 tokens for vocabularies up to\n"
        "     65536, else uint32)\n"
        "The output directory gets train_000.bin..., val_000.bin..., tokenizer.json (a copy of\n"
        "the tokenizer), stats.json (counts per rule, tokens per split, bytes per token,\n"
        "options) and removed.jsonl (what was removed and why). The result depends only on the\n"
        "inputs and the options, not on --threads.",
        opts,
        CLI_COUNT(opts),
        "examples:\n"
        "  cllm data prepare /usr/share/games/fortunes --doc-separator % \\\n"
        "      --tokenizer tok/tokenizer.json --out data/fortunes\n"
        "  cllm data prepare corpus/*.jsonl.gz --text-key content --tokenizer gpt2/ --out data/web",
        1,
        -1};
    int rc = cli_parse(&spec, argc, argv, &pos);
    if (rc >= 0) {
        cli_strlist_free(&include);
        cli_strlist_free(&exclude);
        cli_strlist_free(&held);
        cli_strlist_free(&pos);
        return rc;
    }
    o.inputs = pos.items;
    o.n_inputs = pos.n;
    o.out_dir = out;
    o.tokenizer = tok;
    o.read.format = format;
    o.read.doc_separator = sep;
    o.read.text_key = text_key;
    o.read.strict = strict;
    o.read.include = include.items;
    o.read.n_include = include.n;
    o.read.exclude = exclude.items;
    o.read.n_exclude = exclude.n;
    o.held_out = held.items;
    o.n_held_out = held.n;
    o.curate.clean = !no_clean;
    o.curate.nfc = !no_nfc;
    o.curate.min_chars = (uint64_t)min_chars;
    o.curate.max_chars = (uint64_t)max_chars;
    o.curate.min_alpha = min_alpha;
    o.curate.max_repeated_lines = max_rep;
    o.curate.max_word_chars = (uint64_t)max_word;
    o.dedup.exact = !no_exact;
    o.dedup.near_threshold = near;
    o.dedup.shingle_words = shingle;
    o.dedup.num_perm = perms;
    o.val_fraction = val;
    o.seed = (uint64_t)seed;
    o.shard_tokens = (uint64_t)shard_tokens;
    o.threads = threads;
    o.force = force;
    o.removed_log = !no_log;
    o.progress = !quiet && isatty(STDERR_FILENO);
    cllm_prepare_stats s;
    cllm_status st = cllm_data_prepare(&o, &s);
    if (st == CLLM_OK && !quiet) print_summary(&o, &s);
    cli_strlist_free(&include);
    cli_strlist_free(&exclude);
    cli_strlist_free(&held);
    cli_strlist_free(&pos);
    return cli_report(st);
}
