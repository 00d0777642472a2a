/* host/tokenizer_impl.h — internals shared by the tokenizer's source files: the model
 * structure, the pre-tokenizer scanner, the byte-level character map, and the splitting of
 * a text into pieces that can be encoded (or counted) independently. */
#ifndef CLLM_TOKENIZER_IMPL_H
#define CLLM_TOKENIZER_IMPL_H

#include "cllm/tokenizer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Token flags. */
enum {
    TOK_USED = 1,      /* the id has a token */
    TOK_SPECIAL = 2,   /* a special (added) token: never produced by merging */
    TOK_REACHABLE = 4, /* merging its own bytes yields exactly this token (so a piece equal to
                          its bytes can be looked up instead of merged) */
};

/* One merge: (a, b) -> id, rank = its index. */
typedef struct {
    uint32_t a, b, id;
} tok_merge;

/* Open-addressing table entry: pair (a << 32 | b) -> (rank, merged id). key == UINT64_MAX: empty. */
typedef struct {
    uint64_t key;
    uint32_t rank, id;
} tok_pair_slot;

/* Open-addressing entry: a token by its bytes. The first 8 bytes are kept inline (zero-padded)
 * so that most lookups touch one cache line. len == 0: empty. */
typedef struct {
    uint64_t head;
    uint32_t id;
    uint16_t len;   /* min(length, 65535); longer tokens are checked against the blob */
    uint16_t flags; /* the token's TOK_* flags */
} tok_bytes_slot;

struct cllm_tokenizer {
    uint32_t n_vocab;  /* max id + 1 */
    uint32_t *off;     /* (n_vocab) token bytes = blob[off[i] .. off[i] + len[i]) */
    uint32_t *len;     /* (n_vocab) */
    uint8_t *flags;    /* (n_vocab) TOK_* */
    char *blob;        /* all token bytes */
    size_t blob_len, blob_cap;
    uint32_t byte_id[256]; /* id of each single byte */

    tok_merge *merges; /* (n_merges) in rank order */
    uint32_t n_merges;
    tok_pair_slot *pairs; /* (pair_mask + 1) */
    uint32_t pair_mask;

    tok_bytes_slot *by_bytes; /* (bytes_mask + 1) bytes -> id */
    uint32_t bytes_mask;

    uint32_t *specials; /* (n_specials) ids, ascending */
    uint32_t n_specials;
    uint32_t eot; /* UINT32_MAX if none */

    bool ignore_merges;    /* HF BPE option: a piece that is a vocab entry is that token */
    bool add_prefix_space; /* HF ByteLevel option: prepend ' ' to each segment */
    const char *format;    /* "tokenizer.json" | "gpt2" | "trained" (for `info`) */
};

/* ---- model construction (tokenizer.c) */

cllm_status tok_new(cllm_tokenizer **tok, uint32_t n_vocab);
/* Give id its bytes (the id must be < n_vocab and unused). */
cllm_status tok_set_token(cllm_tokenizer *t, uint32_t id, const void *bytes, size_t len,
                          uint8_t flags);
/* After every token and merge is set: check the 256 byte tokens exist, build the lookup
 * tables, find the specials and which tokens are reachable. `what` names the source. */
cllm_status tok_finish(cllm_tokenizer *t, const char *what);
/* (Re)build the bytes -> id table (tok_finish does it too; loaders that resolve merges by
 * their text need it earlier). */
cllm_status tok_index_bytes(cllm_tokenizer *t);
/* The id of a token given by its bytes, or UINT32_MAX. */
uint32_t tok_lookup(const cllm_tokenizer *t, const void *bytes, size_t len);

/* ---- pre-tokenizer (pretok.c) */

/* End of the GPT-2 pre-token that starts at s[i] (i < n). */
size_t pretok_next(const uint8_t *s, size_t n, size_t i);
/* Whether s[0..n) is valid UTF-8. */
bool tok_valid_utf8(const char *s, size_t n);

/* ---- byte-level character map (GPT-2's bytes_to_unicode) */

/* Code point that stands for byte b in tokenizer.json strings. */
static inline uint32_t bytelevel_char(uint8_t b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174) return b;
    /* the remaining 68 bytes, in order, get 256, 257, ... */
    uint32_t k = b <= 32 ? b : b <= 160 ? (uint32_t)b - 127 + 33 : 33 + 34;
    return 256 + k;
}

/* Byte for a code point of tokenizer.json strings, or -1 if it stands for none. */
static inline int bytelevel_byte(uint32_t cp) {
    if (cp < 256) return bytelevel_char((uint8_t)cp) == cp ? (int)cp : -1;
    if (cp >= 256 + 68) return -1;
    uint32_t k = cp - 256;
    return k <= 32 ? (int)k : k <= 66 ? (int)(k - 33 + 127) : 173;
}

/* Byte order of the first 256 ids (GPT-2's, and Hugging Face's when trained on the byte
 * alphabet): bytes sorted by bytelevel_char. */
void bytelevel_order(uint8_t order[256]);

/* ---- splitting a text into independent work */

/* One stretch of a document: either a special token (id) or text to pre-tokenize. */
typedef struct {
    size_t start, len;
    uint32_t special;  /* id, or UINT32_MAX for text */
    bool segment_start; /* text that starts a segment (after a special or at the document start):
                           where add_prefix_space applies */
} tok_span;

typedef struct {
    tok_span *v;
    size_t n, cap;
} tok_spans;

/* A set of special tokens that may be recognised in text. */
typedef struct {
    const char **text;
    size_t *len;
    uint32_t *id;
    size_t n;
} tok_allowed;

cllm_status tok_allowed_parse(const cllm_tokenizer *t, const char *spec, tok_allowed *a);
void tok_allowed_free(tok_allowed *a);

/* Cut text into spans: the allowed specials (leftmost, then longest), and text between them
 * cut further, at places where the pre-tokenizer cuts anyway, into pieces of about `chunk`
 * bytes (0 = never). Appends to *out. */
cllm_status tok_split(const char *text, size_t len, const tok_allowed *a, size_t chunk,
                      tok_spans *out);

/* Number of worker threads for `threads` (<= 0: online CPUs). */
int tok_threads(int threads);

#endif
