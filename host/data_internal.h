/* host/data_internal.h — helpers shared by the data module's source files (not public). */
#ifndef CLLM_DATA_INTERNAL_H
#define CLLM_DATA_INTERNAL_H

#include "cllm/data.h"

/* Validate a shard header (at least its first 12 bytes, hdr_len of them present) against
 * the file's size; fills *info. */
cllm_status cllm_shard_check_header(const char *path, const unsigned char *hdr, size_t hdr_len,
                                    uint64_t file_size, cllm_shard_info *info);

/* Does a file name hold tokens of `split` (the loader's rule: a *.bin whose stem, split at
 * '_', has a part equal to split)? */
bool cllm_shard_name_in_split(const char *name, const char *split);

/* Default of cllm_curate_opts.min_alpha (see the measurement in README.md). */
#define CLLM_DEFAULT_MIN_ALPHA 0.5

/* Decode one code point at p[0..n): its length (1..4), or -k when the bytes are not valid
 * UTF-8 and k >= 1 of them form the maximal invalid subpart (one U+FFFD replaces them). */
int cllm_utf8_decode(const unsigned char *p, size_t n, uint32_t *cp);
/* A malloc'd, NUL-terminated copy of s[0..n) with invalid UTF-8 replaced by U+FFFD (one per
 * maximal invalid subpart); *out_len (may be NULL) its length. NULL if out of memory. */
char *cllm_utf8_repair(const char *s, size_t n, size_t *out_len);
/* Encode c into out (room for 4 bytes); returns the length. */
size_t cllm_utf8_encode(uint32_t c, char *out);
bool cllm_is_space(uint32_t c);  /* Unicode White_Space */
bool cllm_is_letter(uint32_t c); /* general category L* */

#endif
