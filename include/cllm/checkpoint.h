/* cllm/checkpoint.h — saving and loading models (and training state) on the host, crash-safely.
 *
 * A run directory holds one directory per saved step and a pointer to the newest:
 *
 *   RUN/step_00000100/model.safetensors      parameters, Hugging Face GPT-2 names and layout
 *                                            ("transformer.wte.weight" (V, C) unpadded,
 *                                            Conv1D weights (in, out)), F32, metadata
 *                                            {"format": "pt"}; no lm_head.weight (tied to wte)
 *   RUN/step_00000100/config.json            Hugging Face GPT-2 keys (+ whatever keys the
 *                                            caller added, e.g. a chat template)
 *   RUN/step_00000100/tokenizer.json         when the checkpoint has one
 *   RUN/step_00000100/optimizer.safetensors  AdamW moments, when saved: "exp_avg.<hf name>"
 *                                            (m) and "exp_avg_sq.<hf name>" (v), as PyTorch's
 *                                            AdamW names them, Hugging Face shapes, F32
 *   RUN/step_00000100/state.json             training state (step, RNG, data cursor, ...)
 *   RUN/latest                               a text file: the newest step directory's name
 *                                            ("step_00000100\n")
 *
 * With LoRA adapters (cllm/lora.h), beside the base model, which stays as it was (frozen):
 *
 *   RUN/step_00000100/adapter_model.safetensors      the adapters, PEFT's names and shapes
 *   RUN/step_00000100/adapter_config.json            PEFT's LoraConfig (r, lora_alpha, ...)
 *   RUN/step_00000100/adapter_optimizer.safetensors  their AdamW moments, when saved; there is
 *                                                    no optimizer.safetensors (the base has no
 *                                                    moments)
 *
 * adapter_config.json's base_model_name_or_path is the step directory's absolute path: its own
 * model.safetensors is the base the adapters were trained on. So
 * `transformers.GPT2LMHeadModel.from_pretrained("RUN/step_00000100")` loads the base model
 * where PEFT is not installed, and with PEFT installed (transformers then follows
 * adapter_config.json) the base with the adapters applied; `peft.PeftModel.from_pretrained(
 * model, step_dir)` adds the adapters to a loaded model.
 *
 * Crash safety: a save writes everything into RUN/.tmp.step_NNNNNNNN.<pid>/ (each file written
 * to a temporary name, fsynced, renamed), fsyncs that directory, renames it to step_NNNNNNNN,
 * fsyncs RUN, and only then rewrites RUN/latest atomically (tmp + fsync + rename). A process
 * killed at any point leaves the previous checkpoints intact and RUN/latest naming a complete
 * one; temporary directories are never read, and the next save removes those of dead writers.
 * `latest` is a plain file rather than a symlink so that it survives copying, archiving and
 * file systems without links. When it is missing or names no complete checkpoint, readers fall
 * back to the highest-numbered complete step directory. Old checkpoints are pruned only after
 * `latest` is updated, and each is first renamed away (RUN/.old.*) so that a half-deleted one
 * is never mistaken for a checkpoint.
 *
 * Tutorial:
 *     cllm_checkpoint ck = {.cfg = cfg, .params = params, .state_json = state};
 *     char *dir;
 *     cllm_checkpoint_save("runs/a", step, &ck, 3, &dir);     // keep the 3 newest
 *     ...
 *     cllm_checkpoint in = {0};
 *     cllm_checkpoint_load("runs/a", true, &in);              // follows runs/a/latest
 *     ... in.cfg, in.params (cllm layout), in.adam_m ...
 *     cllm_checkpoint_clear(&in);
 *
 * No OpenCL here: everything is host arrays in cllm's parameter layout (gpt.h).
 */
#ifndef CLLM_CHECKPOINT_H
#define CLLM_CHECKPOINT_H

#include "cllm/common.h"
#include "cllm/gpt.h"
#include "cllm/lora.h"
#include "cllm/safetensors.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    cllm_gpt_config cfg;
    float *params;          /* cllm layout (gpt.h), layout.total floats; wte padding rows zero */
    float *adam_m, *adam_v; /* same layout, or NULL */
    char *config_json;      /* full config.json text; on save NULL = generated from cfg (HF
                             * GPT-2 keys); callers may add keys (e.g. a chat template) */
    char *state_json;       /* state.json text (step, RNG, data cursor, schedule), or NULL */
    char *tokenizer_json;   /* tokenizer.json text, or NULL */
    /* LoRA adapters (lora.rank 0: none), saved and loaded as the adapter_* files above */
    cllm_lora_config lora;
    float *lora_params;     /* cllm_lora_numel floats (cllm/lora.h layout) */
    float *lora_m, *lora_v; /* their AdamW moments, or NULL */
} cllm_checkpoint;

/* Save `ck` as RUN/step_%08lld (see above) and point RUN/latest at it; then, with keep > 0,
 * remove the oldest checkpoints so that `keep` remain: the one just written and the newest
 * keep - 1 with lower step numbers (higher-numbered ones, left by a run that was resumed from
 * an earlier step, are never removed). keep <= 0 keeps all. Saving a step that exists replaces
 * it. *step_dir (may be NULL) receives the malloc'd path of the new directory. config_json and
 * state_json must be JSON objects, and config_json must agree with cfg. Nothing in `ck` is
 * modified or freed. */
cllm_status cllm_checkpoint_save(const char *run_dir, int64_t step, const cllm_checkpoint *ck,
                                 int keep, char **step_dir);

/* Load from `path`: a step directory, a run directory (follows latest), a Hugging Face GPT-2
 * directory (model.safetensors or a sharded model.safetensors.index.json, + config.json; names
 * with or without "transformer."; F32, F16, BF16 or F64; lm_head.weight accepted when equal to
 * wte.weight; attention-mask buffers ignored), or a .safetensors file with config.json beside
 * it. Every tensor is checked for presence, shape and finite values against config.json, and
 * the first mismatch is named. With want_optimizer, optimizer.safetensors is loaded when present
 * (adam_m/adam_v stay NULL when absent). LoRA adapters beside the weights (adapter_config.json,
 * whether cllm or PEFT wrote them) are loaded into ck.lora, ck.lora_params (and, with
 * want_optimizer, ck.lora_m/v from adapter_optimizer.safetensors when present); adapters that
 * do not fit the model are an error. ck.params is always the base model, so callers that
 * ignore the adapters get the base. `ck` must be zeroed or cleared; on failure it stays
 * cleared. */
cllm_status cllm_checkpoint_load(const char *path, bool want_optimizer, cllm_checkpoint *ck);

/* Free everything `ck` owns and zero it (a loaded checkpoint owns all its pointers). */
void cllm_checkpoint_clear(cllm_checkpoint *ck);

/* malloc'd path of the newest complete checkpoint in `run_dir` (RUN/latest, or the fallback
 * above), or NULL with the reason recorded (cllm_last_error). */
char *cllm_checkpoint_latest(const char *run_dir);

/* Write a Hugging Face GPT-2 directory `dir` (model.safetensors in `dtype` = F32, F16 or BF16,
 * config.json, tokenizer.json when present) for export; LoRA adapters are not written (merge
 * them into ck.params first: cllm_lora_merge). Written beside `dir` under a temporary
 * name and renamed into place; an existing `dir` is refused unless `overwrite`, and then
 * replaced only once the new one is complete. */
cllm_status cllm_checkpoint_write_hf(const char *dir, const cllm_checkpoint *ck,
                                     cllm_st_dtype dtype, bool overwrite);

#ifdef __cplusplus
}
#endif
#endif
