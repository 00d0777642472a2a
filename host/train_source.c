/* Batch sources for the trainer (cllm/train.h): the pretraining source over cllm_loader. */
#include "cllm/train.h"
#include "cllm/util.h"
#include "train_internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cllm_batch_source_free(cllm_batch_source *src) {
    if (!src) return;
    if (src->free) src->free(src->self);
    free(src);
}

typedef struct {
    cllm_loader *l;
    char *name, *desc, *split;
    bool shuffle;
    uint64_t seed;
} pretrain;

static cllm_status pt_next(void *self, uint32_t *inputs, uint32_t *targets, int B, int T) {
    pretrain *p = self;
    (void)B;
    (void)T; /* the trainer passes the source's own B, T */
    return cllm_loader_next(p->l, inputs, targets);
}

static char *pt_get_position(void *self) {
    pretrain *p = self;
    cllm_loader_cursor c;
    cllm_loader_get_cursor(p->l, &c);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "kind", "pretrain");
    cJSON_AddStringToObject(o, "split", p->split);
    cJSON_AddItemToObject(o, "epoch", cllm_json_u64(c.epoch));
    cJSON_AddItemToObject(o, "batch", cllm_json_u64(c.batch));
    cJSON_AddItemToObject(o, "tokens", cllm_json_u64(cllm_loader_num_tokens(p->l)));
    cJSON_AddItemToObject(o, "windows", cllm_json_u64(cllm_loader_num_windows(p->l)));
    cJSON_AddBoolToObject(o, "shuffle", p->shuffle);
    cJSON_AddItemToObject(o, "seed", cllm_json_u64(p->seed));
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s) cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    return s;
}

static cllm_status pt_set_position(void *self, const char *json) {
    pretrain *p = self;
    cJSON *o = cJSON_Parse(json);
    cllm_status st = CLLM_OK;
    uint64_t epoch, batch, tokens, windows, seed;
    const cJSON *shuffle = cJSON_GetObjectItemCaseSensitive(o, "shuffle");
    if (!cJSON_IsObject(o) || !CLLM_JSON_U64(o, "epoch", &epoch) ||
        !CLLM_JSON_U64(o, "batch", &batch) || !CLLM_JSON_U64(o, "tokens", &tokens) ||
        !CLLM_JSON_U64(o, "windows", &windows) || !CLLM_JSON_U64(o, "seed", &seed) ||
        !cJSON_IsBool(shuffle)) {
        st = cllm_fail(CLLM_ERR_FORMAT,
                       "state.json: \"data\" is not a pretraining position (epoch, batch, tokens, "
                       "windows, shuffle, seed)");
        goto done;
    }
    if (tokens != cllm_loader_num_tokens(p->l) || windows != cllm_loader_num_windows(p->l)) {
        st = cllm_fail(CLLM_ERR_USAGE,
                       "%s changed since the checkpoint: %llu tokens in %llu windows then, %llu "
                       "in %llu now (resume with the same data and --seq)",
                       p->name, (unsigned long long)tokens, (unsigned long long)windows,
                       (unsigned long long)cllm_loader_num_tokens(p->l),
                       (unsigned long long)cllm_loader_num_windows(p->l));
        goto done;
    }
    if (cJSON_IsTrue(shuffle) != p->shuffle || seed != p->seed) {
        st = cllm_fail(
            CLLM_ERR_USAGE,
            "%s: the checkpoint read it %s with seed %llu, not %s with seed %llu (resume "
            "with the same --data-order and --seed)",
            p->name, cJSON_IsTrue(shuffle) ? "shuffled" : "sequentially", (unsigned long long)seed,
            p->shuffle ? "shuffled" : "sequentially", (unsigned long long)p->seed);
        goto done;
    }
    cllm_loader_cursor c = {epoch, batch};
    st = cllm_loader_set_cursor(p->l, &c);
done:
    cJSON_Delete(o);
    return st;
}

static void pt_rewind(void *self) {
    cllm_loader_reset(((pretrain *)self)->l);
}

static uint64_t pt_batches(void *self) {
    return cllm_loader_batches_per_epoch(((pretrain *)self)->l);
}

static uint32_t pt_max_token(void *self) {
    return cllm_loader_max_token(((pretrain *)self)->l);
}

static const char *pt_describe(void *self) {
    return ((pretrain *)self)->desc;
}

static void pt_free(void *self) {
    pretrain *p = self;
    if (!p) return;
    cllm_loader_free(p->l);
    free(p->name);
    free(p->desc);
    free(p->split);
    free(p);
}

cllm_status cllm_pretrain_source_init(cllm_batch_source **out, const cllm_loader_opts *o) {
    *out = NULL;
    cllm_status st = CLLM_OK;
    cllm_batch_source *src = cllm_calloc(1, sizeof *src);
    pretrain *p = cllm_calloc(1, sizeof *p);
    if (!src || !p) {
        st = CLLM_ERR_NOMEM;
        goto fail;
    }
    CLLM_TRY(cllm_loader_init(&p->l, o));
    p->shuffle = o->shuffle;
    p->seed = o->seed;
    p->split = strdup(o->split);
    p->name = cllm_strdup_printf("%s (%s)", o->dir, o->split);
    uint64_t n = cllm_loader_num_tokens(p->l), bpe = cllm_loader_batches_per_epoch(p->l);
    int shards = cllm_loader_num_shards(p->l);
    p->desc = cllm_strdup_printf("%llu tokens in %d shard%s, %llu windows of %d+1, %llu batch%s of "
                                 "%d per epoch%s",
                                 (unsigned long long)n, shards, shards == 1 ? "" : "s",
                                 (unsigned long long)cllm_loader_num_windows(p->l), o->T,
                                 (unsigned long long)bpe, bpe == 1 ? "" : "es", o->B,
                                 o->shuffle ? ", shuffled" : ", in order");
    if (!p->split || !p->name || !p->desc) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    *src = (cllm_batch_source){.self = p,
                               .batch = o->B,
                               .seq = o->T,
                               .name = p->name,
                               .next = pt_next,
                               .get_position = pt_get_position,
                               .set_position = pt_set_position,
                               .rewind = pt_rewind,
                               .batches = pt_batches,
                               .max_token = pt_max_token,
                               .describe = pt_describe,
                               .free = pt_free};
    *out = src;
    return CLLM_OK;
fail:
    pt_free(p);
    free(src);
    return st;
}
