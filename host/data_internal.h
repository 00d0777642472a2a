/* host/data_internal.h — helpers shared by the data module's source files (not public). */
#ifndef CLLM_DATA_INTERNAL_H
#define CLLM_DATA_INTERNAL_H

#include "cllm/data.h"

/* Validate a shard header (at least its first 12 bytes, hdr_len of them present) against
 * the file's size; fills *info. */
cllm_status cllm_shard_check_header(const char *path, const unsigned char *hdr, size_t hdr_len,
                                    uint64_t file_size, cllm_shard_info *info);

#endif
