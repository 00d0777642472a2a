/* cllm/datasets.h — derived data sets built from plain documents: a cloze-style
 * multiple-choice benchmark (`cllm data make-mc`) and a chat set from a categorised corpus
 * (`cllm data make-sft`). Both are deterministic functions of the documents, their order and
 * the seed. No OpenCL here.
 *
 * Tutorial.
 *
 *     cllm_text_doc docs[] = {{text, len, "/usr/share/games/fortunes/computers"}, ...};
 *     cllm_make_mc_opts o = cllm_make_mc_opts_default();
 *     o.n_items = 500;
 *     cllm_make_mc_result r;
 *     CLLM_TRY(cllm_datasets_make_mc(&r, docs, n_docs, &o));
 *     // r.jsonl: one {"context", "choices", "label", "id"} line per item (cllm/eval.h's
 *     // generic form); r.used[i]: document i went into the benchmark (gold or distractor),
 *     // so the other documents can be trained on without leaking the test.
 *     cllm_make_mc_result_free(&r);
 *
 *     cllm_make_sft_opts so = cllm_make_sft_opts_default();
 *     cllm_make_sft_result s;
 *     CLLM_TRY(cllm_datasets_make_sft(&s, docs, n_docs, &so));
 *     // s.train / s.val: {"messages": [...], "category": "computers"} lines.
 */
#ifndef CLLM_DATASETS_H
#define CLLM_DATASETS_H

#include "cllm/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One document: its text (UTF-8, `len` bytes, need not be NUL-terminated) and where it came
 * from (the file whose base name names its category for make-sft; also used in item ids). */
typedef struct {
    const char *text;
    size_t len;
    const char *source; /* may be NULL */
    long line;          /* 1-based line where the document starts in `source` (0 if unknown) */
} cllm_text_doc;

/* ---- make-mc ------------------------------------------------------------------------------- */

typedef struct {
    uint64_t seed;
    int n_items;         /* items to build; 0 = one per usable document */
    int n_choices;       /* choices per item (>= 2), the right one among them */
    double context_frac; /* cut the document at the space nearest this fraction of its length */
    int context_chars;   /* > 0: cut at the space nearest this many characters instead */
    int min_chars;       /* documents shorter than this (characters, after trimming) are not used */
    int max_chars;       /* ... nor longer ones (0 = no limit) */
    int min_context_chars; /* the context has at least this many characters */
    int continuation_words; /* the right choice is the next N words of the document (keeping
                             * the whitespace between them); 0 = the whole rest */
    int neighbours;      /* distractors are drawn from the documents whose continuations are
                          * the `neighbours` nearest in length (>= n_choices - 1) */
    double near_dup;     /* a document whose estimated word-shingle Jaccard similarity with an
                          * earlier one is >= this is a duplicate (0: exact copies only) */
} cllm_make_mc_opts;

/* seed 1234, all items, 4 choices, cut at 0.5, 40..1000 characters, context >= 12 characters,
 * 2-word continuations, 12 nearest, near-duplicates at Jaccard 0.8. */
cllm_make_mc_opts cllm_make_mc_opts_default(void);

typedef struct {
    char *jsonl;     /* the items, one JSON object per line (malloc'd) */
    size_t jsonl_len;
    int n_items;
    bool *used;      /* (n_docs) the document (or the one it repeats) is the source of an
                      * item or of a distractor: not safe to train on */
    int n_docs;
    int n_usable;    /* documents that could be cut (length, a space at a word boundary with
                      * enough context before it and continuation_words words after it) */
    int n_duplicate; /* documents skipped as (near-)duplicates of an earlier one */
} cllm_make_mc_result;

/* Build the benchmark. Each item: context = the document up to a single space near the cut
 * point (a word boundary), the right choice = the next continuation_words words (or the rest)
 * of the document (so context + " " + choice is the document's text), the other choices =
 * the continuations of other documents of the item pool (cut the same way) whose lengths are
 * closest, the right one's position drawn at random. Short continuations make the benchmark
 * about the text right at the cut, which a small model learns first. The pool is n_items documents drawn at random from the usable ones (all of them
 * when n_items is 0). Fewer usable documents than n_choices (or than n_items) is
 * CLLM_ERR_USAGE with the counts. */
cllm_status cllm_datasets_make_mc(cllm_make_mc_result *res, const cllm_text_doc *docs, int n_docs,
                                  const cllm_make_mc_opts *o);
void cllm_make_mc_result_free(cllm_make_mc_result *res);

/* ---- make-sft ------------------------------------------------------------------------------ */

typedef enum {
    CLLM_SFT_MESSAGES = 0, /* {"messages": [{"role", "content"}, ...], "category": ...} */
    CLLM_SFT_PAIRS,        /* {"prompt": ..., "response": ..., "category": ...} */
} cllm_sft_format;

typedef struct {
    uint64_t seed;
    const char *const *templates; /* user requests with "{category}" in them; NULL: defaults */
    int n_templates;
    const char *system;           /* system message (messages format only), NULL: none */
    bool category_from_dir;       /* category = the parent directory's name, not the file's */
    int max_per_category;         /* 0 = all */
    int min_chars, max_chars;     /* document length range in characters (max 0 = no limit) */
    double val_fraction;          /* documents per category held out for validation */
    double near_dup;              /* as in cllm_make_mc_opts (0: exact copies only) */
    cllm_sft_format format;
} cllm_make_sft_opts;

/* seed 1234, the default templates, no system message, category from the file name, all
 * documents of 1..1000 characters, near-duplicates at 0.8, no validation split, messages. */
cllm_make_sft_opts cllm_make_sft_opts_default(void);

/* The default user requests ("Tell me a fortune about {category}." and three more). */
extern const char *const cllm_sft_default_templates[];
extern const int cllm_sft_n_default_templates;

typedef struct {
    char *train;      /* JSONL (malloc'd) */
    size_t train_len;
    char *val;        /* JSONL (malloc'd; "" without a validation split) */
    size_t val_len;
    int n_train, n_val;
    int n_categories;
    char **categories; /* (n_categories) the category names, sorted */
    int *per_category; /* (n_categories) documents used per category */
    int n_duplicate;   /* (near-)duplicates skipped */
    int n_filtered;    /* outside the length range */
} cllm_make_sft_result;

/* Build the chat set: for each document (trimmed), a user turn from a template chosen at
 * random with {category} = the category name (the file's base name with '-' and '_' read as
 * spaces), and the document as the assistant's answer. Records are shuffled; the validation
 * split takes round(val_fraction * n) documents from every category with at least two. */
cllm_status cllm_datasets_make_sft(cllm_make_sft_result *res, const cllm_text_doc *docs,
                                   int n_docs, const cllm_make_sft_opts *o);
void cllm_make_sft_result_free(cllm_make_sft_result *res);

/* The category a source path names: base name (or parent directory name), a trailing
 * extension such as ".txt" removed, '-' and '_' turned into spaces. malloc'd. */
char *cllm_datasets_category(const char *source, bool from_dir);

#ifdef __cplusplus
}
#endif
#endif
