/* host/eval_internal.h — helpers shared by the eval_*.c files (not public API): a growable
 * string, UTF-8 decoding, Python's notion of whitespace, and the JSONL line walker both
 * data-set loaders use. */
#ifndef CLLM_EVAL_INTERNAL_H
#define CLLM_EVAL_INTERNAL_H

#include "cllm/common.h"
#include "cllm/eval.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Growable NUL-terminated byte string. A failed allocation sets `oom` and turns every later
 * append into a no-op, so callers check once at the end. */
typedef struct {
    char *s;
    size_t len, cap;
    bool oom;
} ev_buf;

void ev_buf_add(ev_buf *b, const char *s, size_t n);
void ev_buf_adds(ev_buf *b, const char *s);
void ev_buf_addc(ev_buf *b, char c);
/* Hand over the string (malloc'd, "" if nothing was added); NULL (and the buffer freed) after
 * an allocation failure, with CLLM_ERR_NOMEM recorded. */
char *ev_buf_take(ev_buf *b);
void ev_buf_free(ev_buf *b);

/* Decode one UTF-8 sequence at s[0..n): returns its length (1..4) and the code point, or 0
 * for an invalid sequence (overlong, surrogate, > U+10FFFF, truncated). */
int ev_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
/* Whether s[0..n) is valid UTF-8; *bad = offset of the first bad byte otherwise. */
bool ev_utf8_valid(const char *s, size_t n, size_t *bad);
/* Code points in a valid UTF-8 string (Python's len). */
size_t ev_utf8_chars(const char *s);
/* Python's str.isspace for one code point. */
bool ev_py_isspace(uint32_t cp);
/* Length in bytes of the whitespace character at s (0 if s does not start with one);
 * invalid UTF-8 bytes are not whitespace. */
size_t ev_space_len(const char *s, size_t n);
/* Python's str.strip / rstrip: the span [*b, *e) of s[0..n) without surrounding whitespace. */
void ev_py_strip(const char *s, size_t n, size_t *b, size_t *e);

/* Called with each non-blank line (no newline; a trailing CR removed), valid UTF-8 and free
 * of NUL bytes. Return CLLM_OK to accept the record, CLLM_ERR_FORMAT (with a message that has
 * no file:line prefix) to reject it as malformed, anything else to abort. */
typedef cllm_status (*ev_line_fn)(void *user, const char *line, size_t len, long lineno);

/* Walk a JSONL file. Malformed lines (bad UTF-8, NUL bytes, or rejected by fn) are errors
 * "PATH:LINE: ..." when strict, else skipped and counted. Stops after `limit` accepted
 * records when limit > 0. `what` names the records in messages ("multiple-choice items"). */
cllm_status ev_jsonl_each(const char *path, bool strict, int limit, const char *what,
                          ev_line_fn fn, void *user, cllm_jsonl_stats *st);

/* Parse one JSON object from json[0..len) (whitespace may follow it, nothing else); *out is
 * the caller's to cJSON_Delete. CLLM_ERR_FORMAT says what is wrong and near which byte. */
struct cJSON;
cllm_status ev_parse_object(struct cJSON **out, const char *json, size_t len);

#endif
