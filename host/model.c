/* A checkpoint on the device: cllm_checkpoint_load (host arrays) + cllm_gpt_init + upload. */
#include "cllm/model.h"

#include "cllm/util.h"

#include <stdlib.h>
#include <string.h>

cllm_status cllm_model_load(cllm_model **out, cllm_runtime *rt, const char *path,
                            const cllm_gpt_opts *opts, const cllm_model_load_opts *lo) {
    cllm_model_load_opts nolo = {0};
    if (!lo) lo = &nolo;
    *out = NULL;
    cllm_status st = CLLM_OK;
    cllm_model *mdl = calloc(1, sizeof *mdl);
    if (!mdl) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    CLLM_TRY(cllm_checkpoint_load(path, lo->want_optimizer, &mdl->ck));
    char *resolved = cllm_is_file(path) ? NULL : cllm_checkpoint_latest(path);
    mdl->path = strdup(resolved ? resolved : path);
    free(resolved);
    if (!mdl->path) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    const cllm_gpt_config *cfg = &mdl->ck.cfg;
    cllm_gpt_opts o = *opts;
    if (o.max_batch <= 0) o.max_batch = 1;
    if (o.max_seq <= 0) o.max_seq = cfg->n_positions;
    if (o.max_seq > cfg->n_positions) {
        st = cllm_fail(CLLM_ERR_USAGE, "a sequence of %d tokens exceeds %s's context (n_positions "
                                       "%d)",
                       o.max_seq, path, cfg->n_positions);
        goto fail;
    }
    if (mdl->ck.tokenizer_json) {
        CLLM_TRY(cllm_tokenizer_from_json(&mdl->tok, mdl->ck.tokenizer_json,
                                          strlen(mdl->ck.tokenizer_json), mdl->path));
        if (cllm_tokenizer_vocab_size(mdl->tok) > (uint32_t)cfg->vocab_size) {
            st = cllm_fail(CLLM_ERR_FORMAT,
                           "%s: the tokenizer has %u tokens but the model's vocab_size is %d",
                           mdl->path, cllm_tokenizer_vocab_size(mdl->tok), cfg->vocab_size);
            goto fail;
        }
    }
    CLLM_TRY(cllm_gpt_init(&mdl->gpt, rt, cfg, &o));
    CLLM_TRY(cllm_gpt_set_params(mdl->gpt, mdl->ck.params));
    if (!lo->keep_host_params) {
        free(mdl->ck.params);
        free(mdl->ck.adam_m);
        free(mdl->ck.adam_v);
        mdl->ck.params = mdl->ck.adam_m = mdl->ck.adam_v = NULL;
    }
    *out = mdl;
    return CLLM_OK;
fail:
    cllm_model_free(mdl);
    return st;
}

void cllm_model_free(cllm_model *mdl) {
    if (!mdl) return;
    cllm_gpt_free(mdl->gpt);
    cllm_tokenizer_free(mdl->tok);
    cllm_checkpoint_clear(&mdl->ck);
    free(mdl->path);
    free(mdl);
}

cllm_status cllm_model_require_tokenizer(const cllm_model *mdl) {
    if (mdl->tok) return CLLM_OK;
    return cllm_fail(CLLM_ERR_FORMAT,
                     "%s has no tokenizer.json: import it with a tokenizer (cllm import "
                     "--tokenizer TOK) or train with one",
                     mdl->path);
}
