/* cllm/lora.h — LoRA adapters on the host: target names, the adapter layout, initialisation,
 * merging into a model's weights, and the files, in Hugging Face PEFT's format so that
 * `peft.PeftModel.from_pretrained(GPT2LMHeadModel.from_pretrained(base), dir)` loads them.
 * The device side (forward, backward, AdamW over the adapters) is in cllm/gpt.h, which also
 * defines cllm_lora_config and the targets.
 *
 * Layout: one float array of cllm_lora_numel() elements; for every layer l (in order) and
 * every targeted projection t (in cllm_lora_target order): A (r, in) then B (out, r),
 * row-major. These are PEFT's shapes for GPT-2's Conv1D layers (PEFT takes in, out =
 * weight.shape = (in, out) and builds lora_A = Linear(in, r), lora_B = Linear(r, out)), so
 * the files hold exactly these bytes. cllm keeps W as (out, in), so the merge is
 * W += scale * B A; in Hugging Face's (in, out) Conv1D layout it is PEFT's
 * W += transpose(B A) * scale (fan_in_fan_out = true).
 *
 * Files (in a directory, e.g. a checkpoint's step directory beside model.safetensors):
 *
 *   adapter_model.safetensors      "base_model.model.transformer.h.<l>.<module>.lora_A.weight"
 *                                  (r, in) and "...lora_B.weight" (out, r), F32, metadata
 *                                  {"format": "pt"}: what PeftModel.save_pretrained writes
 *   adapter_config.json            PEFT's LoraConfig: peft_type "LORA", task_type "CAUSAL_LM",
 *                                  r, lora_alpha, target_modules, fan_in_fan_out true,
 *                                  bias "none", lora_dropout, init_lora_weights,
 *                                  base_model_name_or_path, ...
 *   adapter_optimizer.safetensors  cllm's own, for exact resume: the adapters' AdamW moments
 *                                  "exp_avg.<adapter name>" (m), "exp_avg_sq.<adapter name>"
 *                                  (v), same shapes, F32
 *
 * Target names follow PEFT's target_modules: a name selects every projection whose module
 * path ends with it at a dot, so "c_proj" is both projections (attention output and MLP
 * down), "attn.c_proj" and "mlp.c_proj" one each; "all-linear" is all four.
 *
 * No OpenCL here.
 */
#ifndef CLLM_LORA_H
#define CLLM_LORA_H

#include "cllm/common.h"
#include "cllm/gpt.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CLLM_LORA_MODEL_FILE "adapter_model.safetensors"
#define CLLM_LORA_CONFIG_FILE "adapter_config.json"
#define CLLM_LORA_OPTIMIZER_FILE "adapter_optimizer.safetensors"

/* ---------------------------------------------------------------- names and checks */

/* A target's module path inside block h.<l>: "attn.c_attn", "attn.c_proj", "mlp.c_fc",
 * "mlp.c_proj". */
const char *cllm_lora_module(int target);
/* Parse a comma-separated list of target names (PEFT's matching, above; "all-linear" or
 * "all" for all four). A name that selects nothing is CLLM_ERR_USAGE naming it and what is
 * accepted. */
cllm_status cllm_lora_parse_targets(const char *list, unsigned *targets);
/* The targets as the shortest PEFT target_modules names that select exactly them, comma
 * separated ("c_attn,attn.c_proj,c_fc,mlp.c_proj"), into buf. */
void cllm_lora_targets_text(unsigned targets, char *buf, size_t cap);
/* Refuse a config the model cannot take, naming the field: rank < 1 or wider than the
 * narrowest targeted projection (min(in, out)), alpha not a positive number, no targets. */
cllm_status cllm_lora_config_check(const cllm_gpt_config *cfg, const cllm_lora_config *lc);
float cllm_lora_scale(const cllm_lora_config *lc); /* alpha / r */

/* ---------------------------------------------------------------- layout */

/* A target's input and output features. */
void cllm_lora_dims(const cllm_gpt_config *cfg, int target, int *in, int *out);
/* Floats in the adapter array (0 when lc->rank is 0). */
size_t cllm_lora_numel(const cllm_gpt_config *cfg, const cllm_lora_config *lc);
/* Element offsets of layer l's A (r, in) and B (out, r) for target t (which lc targets). */
void cllm_lora_offsets(const cllm_gpt_config *cfg, const cllm_lora_config *lc, int l, int t,
                       size_t *a_off, size_t *b_off);

/* The adapter tensors in file (and layout) order: per layer, per target, A then B. */
typedef struct {
    char name[96]; /* PEFT's: "base_model.model.transformer.h.0.attn.c_attn.lora_A.weight" */
    int layer, target;
    bool is_b;        /* lora_B (out, r), else lora_A (r, in) */
    int64_t shape[2]; /* as stored: (r, in) or (out, r) */
    size_t offset;    /* element offset in the adapter array */
} cllm_lora_tensor_info;
int cllm_lora_tensor_count(const cllm_gpt_config *cfg, const cllm_lora_config *lc);
void cllm_lora_tensor(const cllm_gpt_config *cfg, const cllm_lora_config *lc, int i,
                      cllm_lora_tensor_info *t);

/* ---------------------------------------------------------------- values */

/* PEFT's initialisation into `adapters` (cllm_lora_numel floats): every A drawn as lc->init
 * says from `seed` (splitmix64, the same numbers everywhere), every B zero. */
void cllm_lora_init_host(const cllm_gpt_config *cfg, const cllm_lora_config *lc, uint64_t seed,
                         float *adapters);
/* params (cllm's layout, gpt.h) += the adapters' deltas: W += scale * B A for every targeted
 * projection, each sum in double and rounded once. */
void cllm_lora_merge(const cllm_gpt_config *cfg, const cllm_lora_config *lc, float *params,
                     const float *adapters);

/* ---------------------------------------------------------------- files */

/* adapter_config.json is in `dir`. */
bool cllm_lora_present(const char *dir);
/* Write adapter_model.safetensors and adapter_config.json into `dir` (each atomically).
 * base_model (may be NULL: JSON null) is recorded as base_model_name_or_path. Non-finite
 * values are refused (CLLM_ERR_NUMERIC) before anything is written. */
cllm_status cllm_lora_save(const char *dir, const cllm_gpt_config *cfg, const cllm_lora_config *lc,
                           const float *adapters, const char *base_model);
/* Read adapters saved by cllm_lora_save or by PEFT (LoRA on any of the four projections;
 * names with "base_model.model.transformer." or "base_model.model."; F32, F16, BF16 or F64)
 * for a model of config `cfg`. *lc receives the config, *adapters a malloc'd array,
 * *base_model (may be NULL: not wanted) base_model_name_or_path or NULL. What cllm cannot
 * apply exactly (DoRA, rsLoRA, per-layer ranks or layer subsets, trained biases, extra
 * modules, regex targets) and adapters that do not fit the model (shapes, layers, missing or
 * unexpected tensors, non-finite values) are one error naming the file and key or tensor. */
cllm_status cllm_lora_load(const char *dir, const cllm_gpt_config *cfg, cllm_lora_config *lc,
                           float **adapters, char **base_model);
/* The adapters' AdamW moments (cllm_lora_numel floats each) as adapter_optimizer.safetensors
 * in `dir`, and back (for a config already loaded; every tensor checked). */
cllm_status cllm_lora_save_optimizer(const char *dir, const cllm_gpt_config *cfg,
                                     const cllm_lora_config *lc, const float *mom,
                                     const float *var);
cllm_status cllm_lora_load_optimizer(const char *dir, const cllm_gpt_config *cfg,
                                     const cllm_lora_config *lc, float **mom, float **var);

#ifdef __cplusplus
}
#endif
#endif
