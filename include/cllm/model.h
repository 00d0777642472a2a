/* cllm/model.h — a checkpoint brought onto the device: the GPT model, its tokenizer and the
 * checkpoint's host-side files (config.json, state.json, ...), for every command that runs a
 * saved model (generate, chat, eval, attention, sft, report).
 *
 *     cllm_gpt_opts o = {.max_batch = 1, .kv_cache = true};   // max_seq 0: n_positions
 *     cllm_model *mdl;
 *     CLLM_TRY(cllm_model_load(&mdl, rt, "runs/nano", &o));   // a run, step or HF directory
 *     ... cllm_gpt_forward(mdl->gpt, ...); cllm_tokenizer_encode(mdl->tok, ...) ...
 *     cllm_model_free(mdl);
 */
#ifndef CLLM_MODEL_H
#define CLLM_MODEL_H

#include "cllm/checkpoint.h"
#include "cllm/common.h"
#include "cllm/gpt.h"
#include "cllm/runtime.h"
#include "cllm/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    cllm_gpt *gpt;       /* the model on the device, parameters uploaded */
    cllm_tokenizer *tok; /* the checkpoint's tokenizer.json, or NULL when it has none */
    cllm_checkpoint ck;  /* the checkpoint's host side: cfg, config_json, state_json,
                            tokenizer_json; ck.params (and adam_m/v) are freed after upload
                            unless cllm_model_load_opts.keep_host_params */
    char *path;          /* what was loaded: the step directory a run directory resolved to */
    cllm_lora_config merged_lora; /* rank > 0: the checkpoint's LoRA adapters, which were
                                     folded into the weights (the caller asked for none) */
} cllm_model;

typedef struct {
    bool keep_host_params; /* keep ck.params (e.g. to grow the vocabulary, or for tests) */
    bool want_optimizer;   /* also load optimizer.safetensors into ck.adam_m/v (host), and the
                              adapters' moments, which a training LoRA model also receives */
    uint64_t lora_seed;    /* opts->lora.rank > 0 and the checkpoint has no adapters: they are
                              initialised as PEFT does (cllm_gpt_lora_init_weights) from this */
} cllm_model_load_opts;

/* Load `path` (anything cllm_checkpoint_load accepts: a run directory follows `latest`) and
 * build the device model with `opts` (max_batch 0 means 1, max_seq 0 means n_positions; a
 * max_seq beyond n_positions is an error). `lo` may be NULL. The tokenizer is loaded when the
 * checkpoint has one; a tokenizer whose vocabulary exceeds the model's is an error.
 * LoRA adapters in the checkpoint (cllm/lora.h): with opts->lora.rank 0 they are merged into
 * the weights on the host before the upload (so generate, eval and chat run the fine-tuned
 * model; mdl->merged_lora says so); with opts->lora.rank > 0 they must be the same rank,
 * alpha and targets, and are uploaded as the model's adapters (resuming LoRA training). */
cllm_status cllm_model_load(cllm_model **out, cllm_runtime *rt, const char *path,
                            const cllm_gpt_opts *opts, const cllm_model_load_opts *lo);
void cllm_model_free(cllm_model *mdl); /* NULL is a no-op */

/* The tokenizer, or CLLM_ERR_FORMAT naming the checkpoint when it has none. */
cllm_status cllm_model_require_tokenizer(const cllm_model *mdl);

#ifdef __cplusplus
}
#endif
#endif
