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
    cllm_checkpoint *ck = &mdl->ck;
    if (ck->lora.rank > 0 && o.lora.rank > 0 &&
        (ck->lora.rank != o.lora.rank || ck->lora.alpha != o.lora.alpha ||
         ck->lora.targets != o.lora.targets)) {
        char have[80], want[80];
        cllm_lora_targets_text(ck->lora.targets, have, sizeof have);
        cllm_lora_targets_text(o.lora.targets, want, sizeof want);
        st = cllm_fail(CLLM_ERR_USAGE,
                       "%s has LoRA adapters of rank %d, alpha %g on %s, not the rank %d, alpha "
                       "%g on %s asked for: continue with its settings, or merge them first "
                       "(cllm export --merge-lora)",
                       mdl->path, ck->lora.rank, (double)ck->lora.alpha, have, o.lora.rank,
                       (double)o.lora.alpha, want);
        goto fail;
    }
    if (ck->lora.rank > 0 && o.lora.rank == 0) { /* the fine-tuned model, as a plain one */
        cllm_lora_merge(cfg, &ck->lora, ck->params, ck->lora_params);
        mdl->merged_lora = ck->lora;
        free(ck->lora_params);
        free(ck->lora_m);
        free(ck->lora_v);
        ck->lora_params = ck->lora_m = ck->lora_v = NULL;
        memset(&ck->lora, 0, sizeof ck->lora);
    }
    CLLM_TRY(cllm_gpt_init(&mdl->gpt, rt, cfg, &o));
    CLLM_TRY(cllm_gpt_set_params(mdl->gpt, mdl->ck.params));
    if (o.lora.rank > 0 && ck->lora_params) {
        CLLM_TRY(cllm_gpt_lora_set_params(mdl->gpt, ck->lora_params));
        if (o.training && ck->lora_m)
            CLLM_TRY(cllm_gpt_lora_set_adam(mdl->gpt, ck->lora_m, ck->lora_v));
    } else if (o.lora.rank > 0) {
        CLLM_TRY(cllm_gpt_lora_init_weights(mdl->gpt, lo->lora_seed));
    }
    if (!lo->keep_host_params) {
        free(mdl->ck.params);
        free(mdl->ck.adam_m);
        free(mdl->ck.adam_v);
        free(mdl->ck.lora_params);
        free(mdl->ck.lora_m);
        free(mdl->ck.lora_v);
        mdl->ck.params = mdl->ck.adam_m = mdl->ck.adam_v = NULL;
        mdl->ck.lora_params = mdl->ck.lora_m = mdl->ck.lora_v = NULL;
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
