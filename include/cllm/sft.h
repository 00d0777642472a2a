/* cllm/sft.h — supervised fine-tuning (SFT) data and model preparation: chat JSONL read and
 * rendered through the chat template (cllm/chat.h) into token ids and the assistant-only loss
 * mask, conversations cut to the context, rows of (inputs, targets) for the training loop with
 * a deterministic, resumable order, and a checkpoint made ready for the template (its
 * tokenizer and embedding grown by the template's tokens). No OpenCL here.
 *
 * Data. One JSON object per line, either
 *     {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}
 * (the common chat format; other keys of the record and of each message are ignored, except
 * "category", below), or a pair
 *     {"prompt": "...", "response": "..."}
 * read as [{user: prompt}, {assistant: response}]. A record is malformed when it is not a
 * JSON object, has neither form (or both), "messages" is not an array, a message is not an
 * object, its "role" is missing or not one of the three, its "content" is missing or not a
 * string, or it has no assistant message (nothing to learn). With `strict` the first malformed
 * record is an error "FILE:LINE: what is wrong"; otherwise it is skipped, counted and the
 * first one named in a warning. An optional string "category" (what `cllm data make-sft`
 * writes) is kept for cllm_sft_category_check.
 *
 * Rendering and the mask: cllm_chat_render with the mask: 1 on the tokens of every assistant
 * message's content and its closing <|end|>, 0 elsewhere. Row i of the training data is one
 * conversation of L tokens ids[0..L): inputs[t] = ids[t], targets[t] = mask[t + 1] ? ids[t + 1]
 * : CLLM_IGNORE_TARGET for t < L - 1; positions t >= L - 1 are padding (inputs pad_id,
 * targets CLLM_IGNORE_TARGET).
 *
 * Why padding cannot leak: the model's attention is causal, so position t sees only positions
 * 0..t; every real position of a conversation (t < L - 1) therefore sees only its own
 * conversation's tokens, never the padding after it, and the padding's targets are ignored, so
 * it adds neither loss nor gradient. LayerNorm and the MLP act on each position alone, and
 * batch rows never interact. So a padded row gives exactly the loss and gradients of the
 * conversation alone. Packing several conversations into one row is deliberately not done:
 * with causal-only attention (no per-document mask, positions not reset), a later conversation
 * would attend to the earlier ones in its row.
 *
 * Overflow: a row holds T inputs and T targets, so a conversation fits when L <= T + 1
 * (max_tokens). A longer one is, with CLLM_SFT_TRUNCATE, cut to its first T + 1 tokens (the
 * beginning of the conversation is kept; the loss covers the assistant tokens that remain),
 * or with CLLM_SFT_DROP left out; both are counted. A truncated conversation left with no
 * assistant token is dropped too (counted apart).
 *
 * Order: a training batcher walks the conversations in epochs; with shuffle, epoch e visits
 * them in a Fisher-Yates permutation drawn from (seed, e) alone, so the order is a function of
 * the seed and the position (epoch, index of the next conversation) is all there is to save
 * (the permutation's RNG is re-derived from (seed, epoch) on resume). Batches run on across
 * epoch boundaries (no conversation is skipped). A validation batcher goes through them in
 * file order, one pass of ceil(n / B) batches, the rows after the last conversation empty (all
 * targets ignored); its mean loss over non-ignored targets is the assistant-token loss.
 *
 * Tutorial:
 *     cllm_sft_read_opts ro = {.max_tokens = T + 1, .overflow = CLLM_SFT_TRUNCATE};
 *     cllm_sft_set set;
 *     CLLM_TRY(cllm_sft_read(&set, "chats.jsonl", &tmpl, tok, &ro));
 *     cllm_sft_batcher *b;
 *     CLLM_TRY(cllm_sft_batcher_init(&b, &set, B, T, true, seed));
 *     CLLM_TRY(cllm_sft_batcher_next(b, inputs, targets));   // (B, T) each
 *     char *pos = cllm_sft_batcher_position(b);               // {"epoch":..,"index":..,...}
 *
 * Ownership: sets and batchers belong to the caller of _read/_init (free with _free); a batcher
 * borrows its set, which must outlive it.
 */
#ifndef CLLM_SFT_H
#define CLLM_SFT_H

#include "cllm/chat.h"
#include "cllm/checkpoint.h"
#include "cllm/common.h"
#include "cllm/gpt.h"
#include "cllm/tokenizer.h"
#include "cllm/train.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- reading */

typedef enum {
    CLLM_SFT_TRUNCATE = 0, /* keep the first max_tokens tokens */
    CLLM_SFT_DROP = 1,     /* leave the conversation out */
} cllm_sft_overflow;

/* "truncate", "drop" (the --overflow values). */
const char *cllm_sft_overflow_name(cllm_sft_overflow o);
bool cllm_sft_overflow_parse(const char *s, cllm_sft_overflow *o);

typedef struct {
    int max_tokens; /* a conversation of more tokens overflows (T + 1 for rows of T); 0: none */
    cllm_sft_overflow overflow;
    bool strict; /* the first malformed record is an error, not skipped */
    int limit;   /* > 0: read at most this many records */
} cllm_sft_read_opts;

typedef struct {
    long lines, blank;
    long malformed;              /* records skipped as malformed (only when not strict) */
    char first_malformed[256];   /* "FILE:LINE: what is wrong", "" if none */
    long truncated;              /* cut to max_tokens (overflow truncate) */
    long dropped;                /* left out for overflowing (overflow drop) */
    long dropped_empty;          /* truncated so that no assistant token was left: left out */
    uint64_t tokens_before;      /* tokens of the kept conversations before truncation */
} cllm_sft_stats;

typedef struct {
    char *path;
    int n;            /* conversations */
    uint64_t *offset; /* (n + 1) conversation i is ids[offset[i] .. offset[i + 1]) */
    uint32_t *ids;    /* (offset[n]) */
    uint8_t *mask;    /* (offset[n]) 1 where the token is learnt (assistant content, <|end|>) */
    long *line;       /* (n) 1-based line of the record in the file */
    int *category;    /* (n) index into categories, -1 when the record has none */
    char **categories; /* (n_categories) in order of first appearance */
    int n_categories;
    uint32_t pad_id; /* input id of padding positions (the template's <|end|>) */
    cllm_sft_stats stats;
} cllm_sft_set;

/* Read and render a chat JSONL file (see above) with a bound template. A file with no usable
 * conversation is CLLM_ERR_FORMAT saying why (empty, all malformed, all dropped). `set` is
 * filled on success and zeroed on failure. */
cllm_status cllm_sft_read(cllm_sft_set *set, const char *path, const cllm_chat_template *t,
                          const cllm_tokenizer *tok, const cllm_sft_read_opts *o);

/* Parse one record (a JSON object's text) into messages, checking it as the reader does:
 * CLLM_ERR_FORMAT with what is wrong (no file or line). *msgs (malloc'd, caller frees) point
 * into *root (the caller's to cJSON_Delete); *category is the record's "category" or NULL. */
struct cJSON;
cllm_status cllm_sft_parse_record(struct cJSON **root, cllm_chat_message **msgs, int *n,
                                  const char **category, const char *json, size_t len);

void cllm_sft_set_free(cllm_sft_set *set); /* zeroes; NULL or zeroed is a no-op */

/* Learnt targets of conversation i (its mask ones after the first token). */
uint64_t cllm_sft_learnt(const cllm_sft_set *set, int i);

/* Split `all` into *train and *val: a conversation goes to validation when a 64-bit hash of
 * its tokens, mask and `seed` falls below `fraction` (0 < fraction < 1), so the split does not
 * depend on the file's order, and each side gets at least one conversation (n >= 2 needed).
 * `all` is left as it was. */
cllm_status cllm_sft_split(cllm_sft_set *train, cllm_sft_set *val, const cllm_sft_set *all,
                           double fraction, uint64_t seed);

/* Row (inputs, targets) of conversation i for rows of T tokens (see above). */
void cllm_sft_row(const cllm_sft_set *set, int i, int T, uint32_t *inputs, uint32_t *targets);

/* Largest token id in the set (inputs and pad). */
uint32_t cllm_sft_max_token(const cllm_sft_set *set);

/* A fingerprint of the set's conversations (ids, mask, boundaries): a resume refuses data that
 * changed. */
uint64_t cllm_sft_fingerprint(const cllm_sft_set *set);

/* ---------------------------------------------------------------- batches */

typedef struct cllm_sft_batcher cllm_sft_batcher;

/* Batches of B rows of T tokens over `set` (borrowed). training: epochs without end, in a
 * permutation drawn from (seed, epoch) when shuffle, else in order; !training (validation):
 * passes in file order, the last batch of a pass padded with empty rows. */
cllm_status cllm_sft_batcher_init(cllm_sft_batcher **b, const cllm_sft_set *set, int B, int T,
                                  bool training, bool shuffle, uint64_t seed);
void cllm_sft_batcher_free(cllm_sft_batcher *b);
/* The next (B, T) inputs and targets. */
cllm_status cllm_sft_batcher_next(cllm_sft_batcher *b, uint32_t *inputs, uint32_t *targets);
/* Batches in one epoch (training: n / B, at least 1, rounded to nearest for messages; a
 * validation pass: ceil(n / B)). */
uint64_t cllm_sft_batcher_batches(const cllm_sft_batcher *b);
/* Back to the start of the first epoch. */
void cllm_sft_batcher_rewind(cllm_sft_batcher *b);
/* The position of the next batch as a JSON object text (malloc'd; NULL on no memory):
 * {"format": "cllm-sft-data", "epoch", "index", "conversations", "shuffle", "seed",
 *  "fingerprint"}; and back to one: a position of other data (count, fingerprint), another
 * seed or order, or out of range is CLLM_ERR_USAGE saying what differs. */
char *cllm_sft_batcher_position(const cllm_sft_batcher *b);
cllm_status cllm_sft_batcher_seek(cllm_sft_batcher *b, const char *json);
/* Epoch and index of the next conversation. */
void cllm_sft_batcher_where(const cllm_sft_batcher *b, uint64_t *epoch, int *index);

/* A batch source for the trainer (cllm/train.h) over a batcher of `set` (borrowed: it must
 * outlive the source): training sources save and restore the batcher's position, validation
 * sources rewind and count their batches. Free with cllm_batch_source_free. */
cllm_status cllm_sft_source_init(cllm_batch_source **src, const cllm_sft_set *set, int B, int T,
                                 bool training, bool shuffle, uint64_t seed);

/* The mean loss over every learnt (assistant) target of `set`, in rows of T, B rows per forward
 * (the model needs max_batch >= B, max_seq >= T); *targets (may be NULL) receives their count.
 * What `cllm sft` reports as the validation loss. */
cllm_status cllm_sft_eval_loss(cllm_gpt *m, const cllm_sft_set *set, int B, int T, double *loss,
                               uint64_t *targets);

/* ---------------------------------------------------------------- does the model use the prompt?
 *
 * The category check (the demo's claim, for sets `cllm data make-sft` builds, whose records
 * carry a "category" and name it in the user's request): each answer of a held-out set is
 * scored (its mean loss per assistant token, content and <|end|>) under its own record, and
 * again with the category's name, wherever it stands as a whole word in a system or user
 * message, replaced by another category's name. A model that learnt to answer the request
 * gives its answers a lower loss under their own category. Records without a category, whose
 * messages do not name it, or that do not fit the rows whole under every name are left out
 * (counted). Runs forward passes on `m` (any model with max_batch >= B, max_seq >= T). */

typedef struct {
    int max_items; /* answers scored, the first ones of the set (0 = all) */
    int n_wrong;   /* wrong categories per answer, drawn at random from the others (0 = all) */
    uint64_t seed; /* for that draw */
    int B, T;      /* rows per forward, tokens per row */
} cllm_sft_category_opts;

typedef struct {
    int items;         /* answers scored */
    int skipped;       /* records left out (no category, not named, too long) */
    int categories;    /* categories in the set */
    int wrong_per_item; /* wrong categories each answer was scored under */
    double own;        /* mean over answers of their loss under their own category */
    double wrong;      /* ... under the wrong ones (each answer's mean over them) */
    double gap, gap_se; /* mean of (wrong - own) per answer, and its standard error */
    double lower;      /* share of answers with own < their mean wrong loss */
    double top1;       /* share whose own category gives the lowest loss of all scored */
    double chance;     /* what top1 is by chance: 1 / (1 + wrong_per_item) */
} cllm_sft_category_report;

/* Score the conversations of `set` (re-read from set->path at set->line[i], so a split keeps
 * its records) with the bound template `t` and `tok` (the model's). */
cllm_status cllm_sft_category_check(cllm_gpt *m, const cllm_tokenizer *tok,
                                    const cllm_chat_template *t, const cllm_sft_set *set,
                                    const cllm_sft_category_opts *o,
                                    cllm_sft_category_report *rep);

/* ---------------------------------------------------------------- the model for the template */

typedef enum {
    CLLM_SFT_INIT_SUBWORD = 0, /* a new token's row = the mean of the rows of the tokens its
                                  text encodes to ("<|user|>" -> "<", "|", "user", "|", ">"):
                                  Gee et al. 2022 (fast vocabulary transfer); rows differ */
    CLLM_SFT_INIT_MEAN = 1,    /* the mean of all the tokenizer's existing rows (Hewitt 2021):
                                  the new tokens start at an average logit; all rows equal */
} cllm_sft_token_init;

const char *cllm_sft_token_init_name(cllm_sft_token_init i); /* "subword", "mean" */
bool cllm_sft_token_init_parse(const char *s, cllm_sft_token_init *i);

typedef struct {
    bool had_template;      /* config.json had a chat_template (its tokens were used) */
    int added;              /* template tokens the tokenizer lacked */
    uint32_t tok_vocab_old; /* tokenizer vocabulary before, after */
    uint32_t tok_vocab_new;
    int vocab_old, vocab_new; /* the model's vocab_size before, after */
    int vp_old, vp_new;       /* padded rows (Vp) before, after */
    int rows_initialised;     /* rows of wte given to new tokens (each initialised) */
} cllm_sft_vocab_report;

/* Make a host checkpoint (ck->params loaded, e.g. cllm_checkpoint_load) ready to be fine-tuned
 * for chat: the template is config.json's "chat_template" when it has one, else the default
 * (cllm_chat_template_default); its tokens are added to `tok` (the checkpoint's tokenizer,
 * modified) where missing; the model's vocab_size grows to the tokenizer's when it must
 * (wte grows, and so Vp where the padding rows do not leave room; every other tensor is kept);
 * the row of every newly added token is initialised as `init` says; ck->config_json gets the
 * new vocab_size and the "chat_template" key, ck->tokenizer_json the grown tokenizer. Old
 * tokens' rows, and so their logits for any input of old tokens, are unchanged. AdamW moments
 * in ck, if any, grow with zero rows. *t receives the bound template. */
cllm_status cllm_sft_prepare_checkpoint(cllm_checkpoint *ck, cllm_tokenizer *tok,
                                        cllm_chat_template *t, cllm_sft_token_init init,
                                        cllm_sft_vocab_report *report);

/* Grow the checkpoint's vocabulary to new_vocab (>= cfg.vocab_size) rows: params (and moments)
 * re-laid out for the new Vp, the new rows zero, cfg and (when present) config_json updated. */
cllm_status cllm_sft_grow_vocab(cllm_checkpoint *ck, int new_vocab);

#ifdef __cplusplus
}
#endif
#endif
