/* host/train_internal.h — helpers shared by the trainer's source files (not public). */
#ifndef CLLM_TRAIN_INTERNAL_H
#define CLLM_TRAIN_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

struct cJSON;
/* A uint64 as JSON: a number up to 2^53 (exact in a double), beyond that a decimal string. */
struct cJSON *cllm_json_u64(uint64_t v);
/* Read one back (either form); false when `item` is NULL or not a uint64. */
bool cllm_json_as_u64(const struct cJSON *item, uint64_t *v);
#define CLLM_JSON_U64(obj, key, v) cllm_json_as_u64(cJSON_GetObjectItemCaseSensitive(obj, key), v)

#endif
