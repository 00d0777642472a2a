/* cllm/tokenizer.h — byte-level BPE: train, encode, decode, and the files that hold it.
 *
 * Tutorial.
 *   A tokenizer maps bytes to token ids and back. Text is first cut into pieces ("pre-tokens")
 *   by GPT-2's rule (contractions, letter runs with an optional leading space, digit runs,
 *   other-symbol runs, whitespace), then each piece's bytes are merged pairwise, lowest merge
 *   rank first, into tokens. Every byte is a token of its own, so any byte string — invalid
 *   UTF-8 included — encodes, and decode(encode(x)) == x always.
 *
 *       cllm_tokenizer *tok = NULL;
 *       CLLM_TRY(cllm_tokenizer_load(&tok, "tokenizer.json"));   // or a GPT-2 directory
 *       cllm_tokens ids = {0};
 *       CLLM_TRY(cllm_tokenizer_encode(tok, text, len, NULL, &ids));
 *       char *back; size_t blen;
 *       CLLM_TRY(cllm_tokenizer_decode(tok, ids.ids, ids.n, &back, &blen));
 *       ...
 *   fail:
 *       free(back); cllm_tokens_free(&ids); cllm_tokenizer_free(tok);
 *
 *   Special tokens (always `<|endoftext|>`, plus any added) are recognised in text only when
 *   the caller allows them: allowed_special NULL or "none" encodes "<|endoftext|>" as the
 *   plain text it is; "all" allows every special; "A,B" allows those listed.
 *
 *   Files: `tokenizer.json` in the Hugging Face `tokenizers` format (byte-level BPE model,
 *   ByteLevel pre-tokenizer and decoder, added_tokens), which Python's
 *   `tokenizers.Tokenizer.from_file` loads and encodes identically; and GPT-2's own
 *   `encoder.json` + `vocab.bpe`, with which cllm encodes exactly as tiktoken's `gpt2`.
 *
 * Ownership: cllm_tokenizer objects are owned by the caller of load/from_json/train and freed
 * with cllm_tokenizer_free. Strings returned by to_json/decode are malloc'd (caller frees);
 * token_bytes points into the tokenizer.
 *
 * Threads: a loaded tokenizer is read-only, so encode/decode/token_bytes may run on several
 * threads at once with one tokenizer. cllm_tokenizer_add_special modifies it: do not call it
 * while another thread uses the tokenizer.
 */
#ifndef CLLM_TOKENIZER_H
#define CLLM_TOKENIZER_H

#include "cllm/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CLLM_EOT_TEXT "<|endoftext|>"

typedef struct cllm_tokenizer cllm_tokenizer;

/* ---- files */

/* Load `path`: a tokenizer.json file, or a directory holding tokenizer.json or GPT-2's
 * encoder.json + vocab.bpe. */
cllm_status cllm_tokenizer_load(cllm_tokenizer **tok, const char *path);
/* The same from tokenizer.json text in memory (checkpoints carry it). `source` names it in
 * error messages (may be NULL). */
cllm_status cllm_tokenizer_from_json(cllm_tokenizer **tok, const char *json, size_t len,
                                     const char *source);
/* GPT-2's own files: encoder.json (token -> id) and vocab.bpe (merges, "#version" line first). */
cllm_status cllm_tokenizer_load_gpt2(cllm_tokenizer **tok, const char *encoder_json,
                                     const char *vocab_bpe);
/* Hugging Face tokenizer.json text, malloc'd (caller frees); NULL (error recorded) if out of
 * memory. Deterministic: the same tokenizer gives byte-identical text. */
char *cllm_tokenizer_to_json(const cllm_tokenizer *tok);
/* Write tokenizer.json atomically (tmp + fsync + rename). */
cllm_status cllm_tokenizer_save(const cllm_tokenizer *tok, const char *path);
/* NULL is a no-op. */
void cllm_tokenizer_free(cllm_tokenizer *tok);

/* ---- vocabulary */

/* max id + 1, specials included. */
uint32_t cllm_tokenizer_vocab_size(const cllm_tokenizer *tok);
/* Number of merges (BPE rules). */
uint32_t cllm_tokenizer_merge_count(const cllm_tokenizer *tok);
/* Merge number `rank` (0 = applied first): the pair (pair[0], pair[1]) becomes *id. False if
 * rank >= merge count. */
bool cllm_tokenizer_merge(const cllm_tokenizer *tok, uint32_t rank, uint32_t pair[2],
                          uint32_t *id);
/* Id of <|endoftext|>, or UINT32_MAX if this tokenizer has none (only possible for a foreign
 * tokenizer.json; cllm-trained and GPT-2 tokenizers always have it). */
uint32_t cllm_tokenizer_eot(const cllm_tokenizer *tok);
/* Special token, or vocabulary entry given as its raw bytes (" the", not "Ġthe") -> id;
 * -1 if none. */
int64_t cllm_tokenizer_token_id(const cllm_tokenizer *tok, const char *token);
/* Make `text` a special token: its existing id when it is one already, else a new id appended
 * at vocab_size (SFT adds <|user|> etc.). Empty text is CLLM_ERR_USAGE. `id` may be NULL. */
cllm_status cllm_tokenizer_add_special(cllm_tokenizer *tok, const char *text, uint32_t *id);
/* Special tokens: count, and the i-th one's text (NUL-terminated) and id (0 <= i < count, in
 * id order); NULL if i is out of range. */
uint32_t cllm_tokenizer_special_count(const cllm_tokenizer *tok);
const char *cllm_tokenizer_special(const cllm_tokenizer *tok, uint32_t i, uint32_t *id);
/* Raw bytes of one token (streaming decode); NULL if out of range or the id is unused. A NUL
 * follows them (not counted in *len), but a token may hold NUL bytes itself. */
const char *cllm_tokenizer_token_bytes(const cllm_tokenizer *tok, uint32_t id, size_t *len);

/* ---- encode / decode */

/* Growable id array; zero-init is empty. Encode appends to it. */
typedef struct {
    uint32_t *ids;
    size_t n, cap;
} cllm_tokens;
void cllm_tokens_free(cllm_tokens *t);
/* Append n ids (grows the array). */
cllm_status cllm_tokens_push(cllm_tokens *t, const uint32_t *ids, size_t n);

/* Encode `len` bytes of `text` (any bytes; need not be NUL-terminated) and append the ids to
 * *out. allowed_special: NULL or "none" | "all" | "TOK1,TOK2" (a name that is not a special
 * token of this tokenizer is CLLM_ERR_USAGE). Thread-safe with one tokenizer. */
cllm_status cllm_tokenizer_encode(const cllm_tokenizer *tok, const char *text, size_t len,
                                  const char *allowed_special, cllm_tokens *out);

/* One document for the batch encoder. */
typedef struct {
    const char *text;
    size_t len;
} cllm_text;

/* Encode n documents on `threads` threads (<= 0: all online CPUs) and append document i's
 * ids to out[i] (out has n zero-initialized or existing arrays). Each worker keeps its own
 * cache of repeated words. On failure some out[i] may be partly filled. */
cllm_status cllm_tokenizer_encode_batch(const cllm_tokenizer *tok, const cllm_text *docs,
                                        size_t n, const char *allowed_special, int threads,
                                        cllm_tokens *out);
/* Encode one large text on `threads` threads (split at places where the pre-tokenizer cuts
 * anyway, so the ids equal cllm_tokenizer_encode's) and append to *out. */
cllm_status cllm_tokenizer_encode_parallel(const cllm_tokenizer *tok, const char *text,
                                           size_t len, const char *allowed_special, int threads,
                                           cllm_tokens *out);

/* Decode ids to bytes: *text is malloc'd and NUL-terminated (not counted in *len), byte-exact.
 * An id >= vocab size (or unused) is CLLM_ERR_USAGE. */
cllm_status cllm_tokenizer_decode(const cllm_tokenizer *tok, const uint32_t *ids, size_t n,
                                  char **text, size_t *len);

/* ---- training */

typedef struct {
    uint32_t vocab_size;    /* total, specials included; must exceed 256 + specials */
    const char **specials;  /* extra special tokens (<|endoftext|> is always added first) */
    int n_specials;
    uint64_t min_frequency; /* a pair seen fewer times is never merged (default 2) */
    int threads;            /* <= 0: all online CPUs */
    bool verbose;           /* progress lines through cllm_log */
} cllm_bpe_train_opts;

cllm_bpe_train_opts cllm_bpe_train_opts_default(void);

/* Learn a byte-level BPE vocabulary from n documents. Deterministic: the same documents and
 * options (any thread count) give the same tokenizer. Special tokens occurring in the text are
 * cut out before counting. Fewer merges than asked are learnt when no pair is frequent enough
 * (a warning is logged; vocab_size is then smaller). */
cllm_status cllm_tokenizer_train(cllm_tokenizer **tok, const cllm_text *docs, size_t n,
                                 const cllm_bpe_train_opts *opts);

/* ---- the pre-tokenizer, exposed for tests and benchmarks */

/* Cut text[0..len) into GPT-2 pre-tokens: calls fn(piece, piece_len, user) for each, in order;
 * the pieces concatenate to the text. Stops early and returns false if fn returns false. */
bool cllm_pretokenize(const char *text, size_t len,
                      bool (*fn)(const char *piece, size_t len, void *user), void *user);

#ifdef __cplusplus
}
#endif
#endif
