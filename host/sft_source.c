/* The SFT batch source for the trainer (cllm/train.h over cllm/sft.h's batcher): one padded
 * conversation per row, its position {epoch, index, ...} stored in state.json. */
#include "cllm/sft.h"
#include "cllm/util.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    cllm_sft_batcher *b;
    const cllm_sft_set *set;
    char *name, *desc;
} sft_src;

static cllm_status src_next(void *self, uint32_t *inputs, uint32_t *targets, int B, int T) {
    (void)B;
    (void)T; /* the trainer passes the source's own B, T */
    return cllm_sft_batcher_next(((sft_src *)self)->b, inputs, targets);
}

static char *src_get_position(void *self) {
    return cllm_sft_batcher_position(((sft_src *)self)->b);
}

static cllm_status src_set_position(void *self, const char *json) {
    return cllm_sft_batcher_seek(((sft_src *)self)->b, json);
}

static void src_rewind(void *self) {
    cllm_sft_batcher_rewind(((sft_src *)self)->b);
}

static uint64_t src_batches(void *self) {
    return cllm_sft_batcher_batches(((sft_src *)self)->b);
}

static uint32_t src_max_token(void *self) {
    return cllm_sft_max_token(((sft_src *)self)->set);
}

static const char *src_describe(void *self) {
    return ((sft_src *)self)->desc;
}

static void src_free(void *self) {
    sft_src *s = self;
    if (!s) return;
    cllm_sft_batcher_free(s->b);
    free(s->name);
    free(s->desc);
    free(s);
}

cllm_status cllm_sft_source_init(cllm_batch_source **out, const cllm_sft_set *set, int B, int T,
                                 bool training, bool shuffle, uint64_t seed) {
    *out = NULL;
    cllm_status st = CLLM_OK;
    cllm_batch_source *src = cllm_calloc(1, sizeof *src);
    sft_src *s = cllm_calloc(1, sizeof *s);
    if (!src || !s) {
        st = CLLM_ERR_NOMEM;
        goto fail;
    }
    s->set = set;
    CLLM_TRY(cllm_sft_batcher_init(&s->b, set, B, T, training, shuffle, seed));
    uint64_t tokens = set->offset[set->n], learnt = 0;
    for (int i = 0; i < set->n; i++)
        learnt += cllm_sft_learnt(set, i);
    const uint64_t bpe = cllm_sft_batcher_batches(s->b);
    char cats[48] = "";
    if (set->n_categories)
        snprintf(cats, sizeof cats, " of %d categor%s", set->n_categories,
                 set->n_categories == 1 ? "y" : "ies");
    s->name = strdup(set->path);
    s->desc = cllm_strdup_printf(
        "%d conversation%s%s, %llu tokens (%llu assistant targets, %.0f%% of the %llu row "
        "positions), %llu batch%s of %d per %s%s",
        set->n, set->n == 1 ? "" : "s", cats, (unsigned long long)tokens, (unsigned long long)learnt,
        100.0 * (double)learnt / ((double)set->n * T), (unsigned long long)set->n * T,
        (unsigned long long)bpe, bpe == 1 ? "" : "es", B, training ? "epoch" : "pass",
        training ? (shuffle ? ", shuffled" : ", in order") : "");
    if (!s->name || !s->desc) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    *src = (cllm_batch_source){.self = s,
                               .batch = B,
                               .seq = T,
                               .name = s->name,
                               .next = src_next,
                               .max_token = src_max_token,
                               .describe = src_describe,
                               .free = src_free};
    if (training) {
        src->get_position = src_get_position;
        src->set_position = src_set_position;
    } else {
        src->rewind = src_rewind;
    }
    src->batches = src_batches; /* the trainer reports epochs from it, and validates a pass */
    *out = src;
    return CLLM_OK;
fail:
    src_free(s);
    free(src);
    return st;
}
