/* cllm/data.h — token shards in llm.c's .bin format and the (B, T+1) batch loader.
 *
 * Tutorial.
 *   A shard is a file of tokens: a header of 256 little-endian int32 (magic 20240520,
 *   version 1 = uint16 tokens or 2 = uint32 tokens, token count), then the tokens. cllm data
 *   prepare writes `train_000.bin`, `train_001.bin`, ... and `val_000.bin`, ... into one
 *   directory; shards written by llm.c's own data scripts (dev/data/ in llm.c) load as they are,
 *   including its uint32 variant (magic 20240801, version 7).
 *
 *       cllm_shard_write("out/train_000.bin", toks, n, 50257);   // version 1: ids < 65536
 *       uint32_t *t; size_t n;
 *       cllm_shard_read("out/train_000.bin", &t, &n);             // caller frees t
 *
 *   The loader cuts every shard into windows of T+1 tokens that start T tokens apart (a window
 *   never crosses a shard's end), and hands out batches of B windows: inputs are a window's
 *   first T tokens, targets its last T. An epoch visits every window at most once: in name
 *   and position order, or (shuffle) in a permutation drawn from (seed, epoch). With `world`
 *   data-parallel ranks, batch b of rank r is windows [(b*world + r)*B, +B) of that order, so
 *   ranks see disjoint shares; the windows left over after the last full batch of all ranks
 *   are not used in that epoch (a different set each shuffled epoch).
 *
 *       cllm_loader_opts o = {.dir = "out", .split = "train", .B = 8, .T = 256,
 *                             .shuffle = true, .seed = 1337, .rank = 0, .world = 1};
 *       cllm_loader *l;  cllm_loader_init(&l, &o);
 *       uint32_t x[8 * 256], y[8 * 256];
 *       cllm_loader_next(l, x, y);                                 // (B, T) each
 *       cllm_loader_cursor c; cllm_loader_get_cursor(l, &c);      // save in state.json ...
 *       cllm_loader_set_cursor(l, &c);                             // ... and resume exactly
 *
 *   Shards are memory-mapped: a batch costs B copies of T+1 tokens, whatever the data size.
 *   The shuffled order of an epoch is one array of 8 bytes per window, drawn when the epoch
 *   starts.
 *
 *   Corpus preparation is built from three pieces that other commands can reuse: the reader
 *   (files, directories, gzip, separator lines, JSONL -> documents), curation (UTF-8 repair,
 *   clean-up, NFC, per-document quality rules) and deduplication (exact, MinHash + LSH).
 *
 * Sources: host/data_shard.c (shards), host/data_loader.c (loader), host/data_reader.c,
 * host/data_curate.c, host/data_dedup.c.
 */
#ifndef CLLM_DATA_H
#define CLLM_DATA_H

#include "cllm/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- token shards (llm.c format) ---- */

#define CLLM_SHARD_MAGIC 20240520
/* llm.c writes uint32 tokens (Llama 3) with this magic and version 7; cllm reads them. */
#define CLLM_SHARD_MAGIC_LLMC32 20240801
#define CLLM_SHARD_HEADER_INTS 256
#define CLLM_SHARD_HEADER_BYTES (CLLM_SHARD_HEADER_INTS * 4)
/* The header's token count is an int32. */
#define CLLM_SHARD_MAX_TOKENS 2147483647ull

/* Write `n` tokens to `path`: version 1 (uint16) when vocab_size <= 65536, else version 2
 * (uint32). Every token must be < vocab_size. Atomic (tmp + fsync + rename): an existing
 * file is replaced only by a complete one. */
cllm_status cllm_shard_write(const char *path, const uint32_t *tokens, size_t n,
                             uint32_t vocab_size);
/* Read a whole shard. Validates magic, version and the token count against the file size.
 * *tokens (n) is malloc'd; the caller frees it. */
cllm_status cllm_shard_read(const char *path, uint32_t **tokens, size_t *n);

typedef struct {
    int version;        /* 1 (uint16 tokens) or 2 (uint32 tokens, either header) */
    uint64_t n_tokens;  /* from the header */
    size_t token_bytes; /* 2 or 4 */
} cllm_shard_info;
/* Read and validate only the header (and the file size against it). */
cllm_status cllm_shard_info_read(const char *path, cllm_shard_info *info);

/* Streaming writer for one shard, for data too large to hold at once: tokens go to
 * "<path>.tmp.<pid>"; close writes the header, fsyncs and renames it into place; abort (or
 * free without close) removes the temporary file. */
typedef struct cllm_shard_writer cllm_shard_writer;
cllm_status cllm_shard_writer_open(cllm_shard_writer **w, const char *path, uint32_t vocab_size);
cllm_status cllm_shard_writer_append(cllm_shard_writer *w, const uint32_t *tokens, size_t n);
uint64_t cllm_shard_writer_count(const cllm_shard_writer *w);
cllm_status cllm_shard_writer_close(cllm_shard_writer *w); /* frees w, also on failure */
void cllm_shard_writer_abort(cllm_shard_writer *w);        /* NULL is a no-op */

/* ---- batch loader ---- */

typedef struct {
    const char *dir;   /* directory holding <split>_*.bin (name order) */
    const char *split; /* "train" | "val" */
    int B, T;
    bool shuffle;
    uint64_t seed;
    int rank, world; /* data parallel: rank r of world w sees a disjoint share (0, 1 for one
                        device) */
} cllm_loader_opts;

typedef struct cllm_loader cllm_loader;

/* Clear errors: no shards, wrong magic, truncated shard, too few tokens for one batch. */
cllm_status cllm_loader_init(cllm_loader **l, const cllm_loader_opts *o);
void cllm_loader_free(cllm_loader *l);
/* The next batch: inputs (B, T), targets (B, T) = inputs shifted by one within each T+1
 * window. After the last batch of an epoch it wraps to the next epoch (reshuffled by
 * seed+epoch). */
cllm_status cllm_loader_next(cllm_loader *l, uint32_t *inputs, uint32_t *targets);

/* Position of the next batch: plain integers, saved in state.json by the trainer. */
typedef struct {
    uint64_t epoch, batch;
} cllm_loader_cursor;
void cllm_loader_get_cursor(const cllm_loader *l, cllm_loader_cursor *c);
/* Resume at a saved position (batch must be < batches_per_epoch). */
cllm_status cllm_loader_set_cursor(cllm_loader *l, const cllm_loader_cursor *c);
/* Back to epoch 0, batch 0 (validation passes). */
void cllm_loader_reset(cllm_loader *l);
/* Batches of this rank per epoch (the same for every rank). */
uint64_t cllm_loader_batches_per_epoch(const cllm_loader *l);
/* Tokens in all shards of the split. */
uint64_t cllm_loader_num_tokens(const cllm_loader *l);
/* Largest token id in the split, so the trainer can check it against the model's vocab. */
uint32_t cllm_loader_max_token(const cllm_loader *l);
/* Number of shards and windows (T+1 tokens, T apart) in the split. */
int cllm_loader_num_shards(const cllm_loader *l);
uint64_t cllm_loader_num_windows(const cllm_loader *l);

/* ---- corpus reading: files, directories, gzip, documents, JSONL ---- */

/* How files turn into documents. */
typedef struct {
    const char *format;         /* "auto" (*.jsonl / *.ndjson, optionally .gz, are JSONL; the
                                   rest text), "text" or "jsonl" */
    const char *doc_separator;  /* text: a line equal to this (e.g. "%" for fortune files)
                                   separates documents; NULL: one document per file */
    const char *text_key;       /* JSONL: the string field holding the text ("text") */
    bool strict;                /* a malformed JSONL line is an error (else skipped, counted) */
    const char *const *include; /* glob patterns on file names met in directories (NULL, 0:
                                   all); files named on the command line are always read */
    int n_include;
    const char *const *exclude; /* ... and patterns to leave out */
    int n_exclude;
} cllm_reader_opts;
cllm_reader_opts cllm_reader_opts_default(void);

typedef struct {
    uint64_t files;            /* files read */
    uint64_t files_binary;     /* skipped: a NUL byte in the first 64 KiB (e.g. strfile
                                  .dat indexes) */
    uint64_t files_same;       /* skipped: the same file again (a symlink or hard link) */
    uint64_t files_excluded;   /* skipped: --include / --exclude */
    uint64_t bytes;            /* bytes of text read (after gunzip) */
    uint64_t bytes_compressed; /* bytes of files read from disk */
    uint64_t documents;        /* documents produced */
    uint64_t malformed_lines;  /* JSONL lines skipped (not JSON, not an object, no text) */
} cllm_reader_stats;

typedef struct {
    const char *text; /* the raw document, valid until the next call; text documents lose the
                         line break that ends their last line */
    size_t len;
    const char *path; /* the file it came from (valid while the reader lives) */
    uint64_t line;    /* 1-based line where it starts */
} cllm_doc;

typedef struct cllm_reader cllm_reader;
/* Walk `paths` (files, and directories recursively in name order; names starting with '.'
 * are skipped). Fails at once if a path does not exist. */
cllm_status cllm_reader_init(cllm_reader **r, const char *const *paths, int n_paths,
                             const cllm_reader_opts *o);
/* The next document; at the end, CLLM_OK with doc->text == NULL. Gzip files are read
 * transparently. Errors name the file and the line or offset. */
cllm_status cllm_reader_next(cllm_reader *r, cllm_doc *doc);
const cllm_reader_stats *cllm_reader_get_stats(const cllm_reader *r);
/* Files found by the walk (read or yet to be read, skipped ones excluded as they are met). */
uint64_t cllm_reader_num_files(const cllm_reader *r);
/* Their total size on disk, and that of the files opened so far (for progress). */
uint64_t cllm_reader_total_bytes(const cllm_reader *r);
uint64_t cllm_reader_done_bytes(const cllm_reader *r, uint64_t *files_done);
void cllm_reader_free(cllm_reader *r);

/* ---- curation: clean-up, normalization and per-document quality rules ---- */

/* Why a document was removed (or CLLM_DOC_KEPT), in the order the rules run. */
typedef enum {
    CLLM_DOC_KEPT = 0,
    CLLM_DOC_EMPTY,          /* nothing but whitespace after clean-up */
    CLLM_DOC_TOO_SHORT,      /* fewer than min_chars characters (code points) */
    CLLM_DOC_TOO_LONG,       /* more than max_chars characters */
    CLLM_DOC_LOW_ALPHA,      /* letters are < min_alpha of the non-space characters */
    CLLM_DOC_REPEATED_LINES, /* > max_repeated_lines of the non-blank lines repeat an
                                earlier line */
    CLLM_DOC_LONG_WORD,      /* a word (run of non-space characters) > max_word_chars */
    CLLM_DOC_HELD_OUT,       /* the same text as, or a near-duplicate of, a held-out text
                                (cllm_prepare_opts.held_out: a benchmark's, a chat set's) */
    CLLM_DOC_EXACT_DUP,      /* same text (after clean-up) as an earlier kept document */
    CLLM_DOC_NEAR_DUP,       /* MinHash Jaccard >= threshold with an earlier kept document */
    CLLM_DOC_N_RULES
} cllm_doc_rule;
/* "kept", "empty", "too_short", ... (the keys of stats.json). */
const char *cllm_doc_rule_name(cllm_doc_rule r);

typedef struct {
    bool clean;                /* controls removed, CR/CRLF -> LF, backspace overstrike
                                  resolved, trailing spaces and extra blank lines dropped */
    bool nfc;                  /* Unicode normalization form C (utf8proc) */
    uint64_t min_chars;        /* 0: no minimum */
    uint64_t max_chars;        /* 0: no maximum */
    double min_alpha;          /* 0: off */
    double max_repeated_lines; /* >= 1: off */
    uint64_t max_word_chars;   /* 0: off */
} cllm_curate_opts;
cllm_curate_opts cllm_curate_opts_default(void);

/* What the clean-up changed in a document (bits of cllm_curated.changes). */
enum {
    CLLM_CHANGED_UTF8 = 1,  /* invalid UTF-8 replaced by U+FFFD (always done) */
    CLLM_CHANGED_CLEAN = 2, /* clean-up changed something */
    CLLM_CHANGED_NFC = 4,   /* normalization changed something */
};

typedef struct {
    char *text; /* the cleaned document, NUL-terminated, malloc'd: the caller frees */
    size_t len; /* bytes */
    uint64_t chars;
    unsigned changes;
    cllm_doc_rule rule; /* KEPT or the first per-document rule that removes it */
    double value;       /* the measured quantity that rule compared (share, length) */
} cllm_curated;

/* Clean, normalize and judge one document. Thread-safe. */
cllm_status cllm_curate(const cllm_curate_opts *o, const char *text, size_t len, cllm_curated *out);

/* ---- deduplication: exact (content hash) and near (MinHash + LSH) ---- */

typedef struct {
    bool exact;            /* drop documents whose text equals an earlier kept one's */
    double near_threshold; /* drop documents with estimated Jaccard >= this with an
                              earlier one (0: off) */
    int shingle_words;     /* shingles are runs of this many words (lower-cased letters
                              and digits) */
    int num_perm;          /* MinHash permutations */
    uint64_t seed;         /* the permutations are drawn from it */
} cllm_dedup_opts;
cllm_dedup_opts cllm_dedup_opts_default(void);

typedef struct {
    uint64_t hash[2];    /* 128-bit content hash */
    uint32_t *minhash;   /* (num_perm), caller-provided */
    uint64_t n_shingles; /* 0: no words, no near-duplicate test */
} cllm_doc_sig;

typedef struct cllm_dedup cllm_dedup;
cllm_status cllm_dedup_init(cllm_dedup **d, const cllm_dedup_opts *o);
void cllm_dedup_free(cllm_dedup *d);
/* The LSH banding chosen for the threshold: bands * rows <= num_perm. */
void cllm_dedup_bands(const cllm_dedup *d, int *bands, int *rows);
/* Content hash and MinHash signature of a (cleaned) text. Thread-safe. */
void cllm_dedup_signature(const cllm_dedup *d, const char *text, size_t len, cllm_doc_sig *sig);
/* Decide one document against those kept so far, in corpus order: CLLM_DOC_EXACT_DUP or
 * CLLM_DOC_NEAR_DUP (with *dup_of = the id of the kept document it repeats and *similarity
 * the estimated Jaccard), or CLLM_DOC_KEPT, after which it is remembered under `id`. */
cllm_status cllm_dedup_add(cllm_dedup *d, const cllm_doc_sig *sig, uint64_t id,
                           cllm_doc_rule *verdict, uint64_t *dup_of, double *similarity);
/* The same decision without remembering anything: whether sig repeats a document added so
 * far (CLLM_DOC_EXACT_DUP, CLLM_DOC_NEAR_DUP with *dup_of and *similarity) or not
 * (CLLM_DOC_KEPT). */
void cllm_dedup_find(const cllm_dedup *d, const cllm_doc_sig *sig, cllm_doc_rule *verdict,
                     uint64_t *dup_of, double *similarity);
/* Estimated Jaccard similarity of two signatures (share of equal MinHash values). */
double cllm_dedup_similarity(const cllm_dedup *d, const cllm_doc_sig *a, const cllm_doc_sig *b);

/* ---- cllm data prepare: inputs -> curated, deduplicated, split, tokenized shards ---- */

typedef struct {
    const char *const *inputs; /* files and directories */
    int n_inputs;
    const char *out_dir;   /* created if missing; holding prepared data already needs force */
    const char *tokenizer; /* tokenizer.json, or a directory (cllm_tokenizer_load) */
    cllm_reader_opts read;
    cllm_curate_opts curate;
    cllm_dedup_opts dedup; /* dedup.seed is set from seed */
    double val_fraction;   /* share of documents for validation (at least one each) */
    uint64_t seed;         /* split and MinHash permutations */
    uint64_t shard_tokens; /* tokens per shard (the last one of a split holds the rest) */
    int threads;           /* <= 0: all online CPUs */
    bool force;            /* replace prepared data already in out_dir */
    bool removed_log;      /* write out_dir/removed.jsonl (one line per removed document) */
    /* Held-out texts to keep out of the data (decontamination): JSONL files whose records'
     * "text", "response" and assistant "messages" contents are cleaned like documents; a
     * document equal to one of them, or a near-duplicate at dedup.near_threshold, is removed
     * as CLLM_DOC_HELD_OUT (removed.jsonl names the FILE:LINE of the record). */
    const char *const *held_out;
    int n_held_out;
    bool progress;         /* a progress line on stderr (meant for a terminal) */
} cllm_prepare_opts;
cllm_prepare_opts cllm_prepare_opts_default(void);

typedef struct {
    uint64_t documents, bytes, tokens, shards;
} cllm_split_stats;

typedef struct {
    cllm_reader_stats read;
    uint64_t changed_utf8, changed_clean, changed_nfc; /* documents the clean-up changed */
    uint64_t removed[CLLM_DOC_N_RULES];                /* documents per rule ([KEPT] = kept) */
    uint64_t removed_bytes[CLLM_DOC_N_RULES];          /* their bytes as read */
    uint64_t kept_bytes;                               /* bytes of the kept, cleaned text */
    uint64_t held_out_texts;                           /* held-out texts read (held_out) */
    cllm_split_stats train, val;                       /* tokens include one <|endoftext|> per
                                                          document */
    uint32_t vocab_size, eot;
    int lsh_bands, lsh_rows;
    double seconds; /* wall time, all of it; the phases: */
    double t_setup, t_read, t_curate, t_dedup, t_tokenize, t_write;
} cllm_prepare_stats;

/* Run the whole preparation; writes out_dir/train_NNN.bin, val_NNN.bin, stats.json,
 * tokenizer.json and (removed_log) removed.jsonl. Everything is written to a work directory
 * inside out_dir first and moved into place at the end: a failed run leaves out_dir as it
 * was. The result depends only on the inputs and options, not on the number of threads. */
cllm_status cllm_data_prepare(const cllm_prepare_opts *o, cllm_prepare_stats *stats);
/* stats as JSON text (what stats.json holds); malloc'd, caller frees. */
char *cllm_prepare_stats_json(const cllm_prepare_opts *o, const cllm_prepare_stats *s);

/* 64-bit xxHash (XXH64) of data. */
uint64_t cllm_xxh64(const void *data, size_t len, uint64_t seed);

#ifdef __cplusplus
}
#endif
#endif
