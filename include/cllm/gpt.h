/* cllm/gpt.h — the GPT-2-architecture model: config, parameter layout, and the device model
 * (forward, backward, AdamW) whose passes run entirely in OpenCL kernels and CLBlast GEMMs.
 *
 * Shape legend (as in llm.c):
 *   B  batch size              T  sequence length (<= maxT = n_positions)
 *   C  n_embd                  L  n_layer
 *   NH n_head                  hs head size = C / NH
 *   V  vocab_size              Vp padded vocab size (V rounded up to 128; the extra rows of
 *                                 wte are zero, never trained, and never exported)
 *
 * Architecture: learned position embeddings, pre-LayerNorm blocks, causal multi-head
 * self-attention with a fused qkv projection, GELU (tanh approximation, HF "gelu_new"), 4x MLP,
 * final LayerNorm, LM head tied to the token embedding, biases everywhere.
 *
 * Parameter layout: all parameters live in one float buffer, tensors concatenated in this
 * order (llm.c's), weights stored (out, in) so that a linear layer is out = in @ W^T + b:
 *
 *   wte      (Vp, C)       wpe      (maxT, C)
 *   ln1w     (L, C)        ln1b     (L, C)
 *   qkvw     (L, 3C, C)    qkvb     (L, 3C)
 *   attprojw (L, C, C)     attprojb (L, C)
 *   ln2w     (L, C)        ln2b     (L, C)
 *   fcw      (L, 4C, C)    fcb      (L, 4C)
 *   fcprojw  (L, C, 4C)    fcprojb  (L, C)
 *   lnfw     (C)           lnfb     (C)
 *
 * Gradients and the AdamW moments m, v use the same layout. Hugging Face GPT-2 names each
 * per-layer slice separately ("h.3.attn.c_attn.weight") and stores Conv1D weights as (in, out),
 * i.e. transposed: cllm_gpt_hf_tensor() maps between the two.
 *
 * Tutorial:
 *     cllm_gpt_config cfg;
 *     cllm_gpt_config_load("models/gpt-nano.json", &cfg);
 *     cllm_gpt_opts o = {.max_batch = 8, .max_seq = 256, .training = true};
 *     cllm_gpt *m;
 *     cllm_gpt_init(&m, rt, &cfg, &o);          // sizes checked against the device first
 *     cllm_gpt_init_weights(m, 1337);            // GPT-2 init, identical on every device
 *     for (step = 1; ...) {
 *         cllm_gpt_zero_grad(m);
 *         cllm_gpt_forward(m, inputs, targets, B, T);   // (B, T) token ids each
 *         cllm_gpt_backward(m, 1.0f);
 *         cllm_gpt_clip_grad_norm(m, 1.0f, &norm);
 *         cllm_gpt_adamw_step(m, &hp, step);
 *         cllm_gpt_get_loss(m, &loss);                  // the only read in a step
 *     }
 */
#ifndef CLLM_GPT_H
#define CLLM_GPT_H

#include "cllm/common.h"
#include "cllm/runtime.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- config */

typedef struct {
    int vocab_size;           /* V */
    int n_positions;          /* maxT */
    int n_embd;               /* C */
    int n_layer;              /* L */
    int n_head;               /* NH */
    float layer_norm_epsilon; /* 1e-5 */
    float initializer_range;  /* 0.02 */
} cllm_gpt_config;

/* Parse a config (Hugging Face GPT-2 keys; unknown keys are ignored, a "training" object is
 * left for cllm train). `source` names the file in messages. Validates (see below). */
cllm_status cllm_gpt_config_parse(const char *json_text, const char *source, cllm_gpt_config *cfg);
cllm_status cllm_gpt_config_load(const char *path, cllm_gpt_config *cfg);
/* Refuses inconsistent or absurd configs naming the key: non-positive sizes,
 * n_embd % n_head != 0, and sizes beyond what cllm supports. */
cllm_status cllm_gpt_config_validate(const cllm_gpt_config *cfg, const char *source);
/* config.json as Hugging Face writes it for GPT2LMHeadModel (malloc'd string). */
char *cllm_gpt_config_to_json(const cllm_gpt_config *cfg);

int cllm_gpt_padded_vocab(const cllm_gpt_config *cfg); /* Vp */

/* ---------------------------------------------------------------- parameter layout */

enum {
    CLLM_P_WTE, CLLM_P_WPE, CLLM_P_LN1W, CLLM_P_LN1B, CLLM_P_QKVW, CLLM_P_QKVB,
    CLLM_P_ATTPROJW, CLLM_P_ATTPROJB, CLLM_P_LN2W, CLLM_P_LN2B, CLLM_P_FCW, CLLM_P_FCB,
    CLLM_P_FCPROJW, CLLM_P_FCPROJB, CLLM_P_LNFW, CLLM_P_LNFB,
    CLLM_P_COUNT
};

typedef struct {
    size_t offset[CLLM_P_COUNT]; /* element offset of each tensor in the parameter buffer */
    size_t numel[CLLM_P_COUNT];  /* elements of each tensor (all layers) */
    size_t total;                /* elements in all */
} cllm_gpt_layout;

void cllm_gpt_layout_compute(const cllm_gpt_config *cfg, cllm_gpt_layout *lay);
/* Parameters a user would count: total minus the padding rows of wte. */
size_t cllm_gpt_num_params(const cllm_gpt_config *cfg);
/* Weight decay applies to 2-D weights and the embeddings, not to biases or LayerNorm. */
bool cllm_gpt_param_decays(int which);

/* One tensor as Hugging Face GPT-2 names and shapes it ("wte.weight", "h.0.attn.c_attn.weight",
 * ..., "ln_f.bias"; 2 + 12 L + 2 of them). The data is `rows` x `cols` floats at `offset` in
 * cllm's buffer, row-major; HF's tensor is (rows, cols) too, or (cols, rows) when `transposed`
 * (Conv1D weights). wte's HF shape is (V, C): only the first V of Vp rows. */
typedef struct {
    char name[64];
    int ndim;         /* 1 or 2 */
    int64_t shape[2]; /* HF shape */
    size_t offset;    /* element offset in cllm's buffer */
    int rows, cols;   /* cllm's view (cols == 1 ... for 1-D: rows = numel, cols = 1) */
    bool transposed;  /* HF shape is (cols, rows) */
    bool decay;
} cllm_gpt_hf_tensor_info;

int cllm_gpt_hf_tensor_count(const cllm_gpt_config *cfg);
void cllm_gpt_hf_tensor(const cllm_gpt_config *cfg, int i, cllm_gpt_hf_tensor_info *info);

/* ---------------------------------------------------------------- LoRA adapters */

/* LoRA (Hu et al. 2021) as Hugging Face PEFT computes it: a targeted projection
 * y = x W^T + b becomes y = x W^T + b + scale * (x A^T) B^T, with A (r, in), B (out, r) and
 * scale = alpha / r; W and b stay frozen and only A and B are trained. The four projections
 * of every block may carry adapters; PEFT's (Hugging Face) module names in parentheses:
 *
 *   CLLM_LORA_QKV      qkv       C -> 3C   (h.<l>.attn.c_attn)
 *   CLLM_LORA_ATTPROJ  attproj   C -> C    (h.<l>.attn.c_proj)
 *   CLLM_LORA_FC       fc        C -> 4C   (h.<l>.mlp.c_fc)
 *   CLLM_LORA_FCPROJ   fcproj   4C -> C    (h.<l>.mlp.c_proj)
 *
 * Names, the adapter layout, PEFT files and a host-side merge are in cllm/lora.h. */
typedef enum {
    CLLM_LORA_QKV,
    CLLM_LORA_ATTPROJ,
    CLLM_LORA_FC,
    CLLM_LORA_FCPROJ,
    CLLM_LORA_TARGETS
} cllm_lora_target;
#define CLLM_LORA_BIT(t) (1u << (t))
#define CLLM_LORA_ALL 0xFu /* all four */

typedef enum {
    CLLM_LORA_INIT_KAIMING = 0, /* PEFT's default (init_lora_weights=True): A ~ U(-1/sqrt(in),
                                   1/sqrt(in)), i.e. kaiming_uniform_(a=sqrt(5)) */
    CLLM_LORA_INIT_GAUSSIAN = 1 /* PEFT's init_lora_weights="gaussian": A ~ N(0, 1/r) */
} cllm_lora_init;

typedef struct {
    int rank;            /* r >= 1; 0 = no adapters */
    float alpha;         /* lora_alpha > 0; scale = alpha / r */
    unsigned targets;    /* set of CLLM_LORA_BIT(target) */
    cllm_lora_init init; /* how cllm_gpt_lora_init_weights draws A (B always starts at 0) */
} cllm_lora_config;

/* ---------------------------------------------------------------- the device model */

/* Targets equal to this are ignored by the loss (no loss, no gradient), like PyTorch's
 * ignore_index: padding, and everything but assistant tokens in SFT. */
#define CLLM_IGNORE_TARGET 0xFFFFFFFFu

typedef struct {
    int max_batch;       /* largest B passed to forward */
    int max_seq;         /* largest T (<= n_positions) */
    bool training;       /* allocate gradients, AdamW moments and backward activations */
    bool keep_attention; /* keep every layer's softmax for cllm_gpt_get_attention (training
                            keeps them anyway; otherwise only the last layer's survives) */
    bool kv_cache;       /* allocate a key/value cache for cllm_gpt_forward_cached */
    /* rank > 0: LoRA adapters (see cllm_gpt_lora_* below); with training, only they are
     * trained: the base has no gradients and no AdamW moments on the device */
    cllm_lora_config lora;
} cllm_gpt_opts;

typedef struct {
    float lr;
    float beta1;        /* 0.9 */
    float beta2;        /* 0.95 */
    float eps;          /* 1e-8 */
    float weight_decay; /* 0.1; applied (decoupled) only where cllm_gpt_param_decays() */
} cllm_adamw_params;

typedef struct cllm_gpt cllm_gpt;

/* Allocate the arenas (parameters, and when training gradients, m, v, activations) after
 * checking their sizes against the device's global memory and largest allocation; a model
 * that does not fit fails with CLLM_ERR_TOO_LARGE naming what was needed and suggesting a
 * smaller batch or sequence. Parameters start at zero. */
cllm_status cllm_gpt_init(cllm_gpt **m, cllm_runtime *rt, const cllm_gpt_config *cfg,
                          const cllm_gpt_opts *opts);
void cllm_gpt_free(cllm_gpt *m);
const cllm_gpt_config *cllm_gpt_get_config(const cllm_gpt *m);
/* The options it was created with (max_batch, max_seq resolved; kv_cache, ...). */
const cllm_gpt_opts *cllm_gpt_get_opts(const cllm_gpt *m);
/* Bytes the arenas would take for this config and options (for messages and `cllm bench`). */
size_t cllm_gpt_memory_required(const cllm_gpt_config *cfg, const cllm_gpt_opts *opts);

/* GPT-2 initialisation: N(0, initializer_range) for weights and embeddings, the residual
 * projections (attprojw, fcprojw) scaled by 1/sqrt(2 L), zero biases, LayerNorm 1 and 0.
 * Drawn on the host from `seed` (same numbers on every device) and uploaded. */
cllm_status cllm_gpt_init_weights(cllm_gpt *m, uint64_t seed);

/* Whole-buffer transfers in layout order (layout.total floats). For loading, saving and tests;
 * never inside a training step. */
cllm_status cllm_gpt_set_params(cllm_gpt *m, const float *params);
cllm_status cllm_gpt_get_params(cllm_gpt *m, float *params);
cllm_status cllm_gpt_get_grads(cllm_gpt *m, float *grads);
cllm_status cllm_gpt_set_adam(cllm_gpt *m, const float *mom, const float *var);
cllm_status cllm_gpt_get_adam(cllm_gpt *m, float *mom, float *var);

/* Forward pass over `inputs` (B, T) token ids. With `targets` (B, T) also the per-token losses
 * and their mean over non-ignored targets; targets may be NULL (logits only). Uploads the ids;
 * reads nothing back. */
cllm_status cllm_gpt_forward(cllm_gpt *m, const uint32_t *inputs, const uint32_t *targets, int B,
                             int T);
/* Mean loss of the last forward with targets (reads one float). */
cllm_status cllm_gpt_get_loss(cllm_gpt *m, float *loss);
/* Per-token losses -log p(target) of the last forward, (B, T); ignored targets give 0. */
cllm_status cllm_gpt_get_token_losses(cllm_gpt *m, float *losses);
/* Logits (V floats, unpadded) at batch row b, position t of the last forward (for
 * cllm_gpt_forward_cached, t indexes its n new positions). A backward pass consumes them. */
cllm_status cllm_gpt_get_logits(cllm_gpt *m, int b, int t, float *logits);
/* The softmaxed attention of `layer`, batch row b, head h in the last forward: T x T floats
 * (row t: the weights position t gives to positions 0..t, zeros beyond), or after
 * cllm_gpt_forward_cached n x (pos + n) (rows: its new positions; columns: every position so
 * far). Available for every layer when training or with opts.keep_attention, otherwise only for
 * the last layer (CLLM_ERR_STATE for the others). */
cllm_status cllm_gpt_get_attention(cllm_gpt *m, int layer, int b, int h, float *att);

/* Incremental forward for generation (needs opts.kv_cache): runs the model over n new tokens
 * per sequence, tokens (B, n), at positions pos .. pos+n-1, attending to the keys and values
 * that earlier calls cached for positions 0 .. pos-1 (and causally to each other), and caches
 * theirs. pos = 0 starts a new batch (e.g. the prompt); then pos grows by n each call (n = 1
 * per generated token); pos may also go back to re-run from an earlier position. B must stay
 * the same while pos > 0, and pos + n <= max_seq. The result equals cllm_gpt_forward over
 * positions 0 .. pos+n-1, read with cllm_gpt_get_logits(m, b, i, ...) for i < n. */
cllm_status cllm_gpt_forward_cached(cllm_gpt *m, const uint32_t *tokens, int B, int n, int pos);
/* The same, computing the logits of only the last new position of each sequence (generation
 * needs no others, and the LM head is a prompt pass's largest product): read them with
 * cllm_gpt_get_logits(m, b, n - 1, ...); other positions are CLLM_ERR_STATE. */
cllm_status cllm_gpt_forward_cached_last(cllm_gpt *m, const uint32_t *tokens, int B, int n,
                                         int pos);

/* Share a prefix (opts.kv_cache): copy positions 0 .. n_pos-1 of batch row 0's cached keys
 * and values to rows 1 .. B-1, after which the cache holds n_pos positions for batch B and
 * cllm_gpt_forward_cached(m, tokens, B, n, n_pos) continues B sequences from that one prefix
 * (a multiple-choice context run once, its choices after it). Needs n_pos <= the positions
 * cached (CLLM_ERR_STATE otherwise) and B <= max_batch. */
cllm_status cllm_gpt_cache_broadcast(cllm_gpt *m, int B, int n_pos);

/* Gradients: zero, then accumulate d(scale * mean loss)/d(params) over the last forward
 * (scale = 1/k for k accumulation micro-steps). */
cllm_status cllm_gpt_zero_grad(cllm_gpt *m);
cllm_status cllm_gpt_backward(cllm_gpt *m, float scale);
/* Global L2 norm of the gradients, and with max_norm > 0 scale them to at most max_norm
 * (torch.nn.utils.clip_grad_norm_). *norm (may be NULL: nothing is read) receives the norm
 * before clipping. */
cllm_status cllm_gpt_clip_grad_norm(cllm_gpt *m, float max_norm, float *norm);
/* One AdamW step (torch.optim.AdamW semantics; step is 1-based, for bias correction). */
cllm_status cllm_gpt_adamw_step(cllm_gpt *m, const cllm_adamw_params *hp, int step);

/* ---------------------------------------------------------------- LoRA on the device
 *
 * A model created with opts.lora.rank > 0 holds an adapter arena beside its parameters: for
 * every layer (in order) and every targeted projection (in cllm_lora_target order) A (r, in)
 * then B (out, r), row-major (cllm_lora_offsets; PEFT's shapes, so no transposes). The
 * forward adds scale * (x A^T) B^T after each targeted projection, through two GEMMs on
 * views of the arena. With training, cllm_gpt_zero_grad, _backward, _clip_grad_norm and
 * _adamw_step act on the adapters alone: the backward still carries gradients through the
 * frozen weights to the inputs, but computes none for them; the AdamW step decays every
 * adapter matrix (torch.optim.AdamW over PEFT's trainable parameters decays all of them: they
 * are all 2-D weights, and Hugging Face's Trainer exempts only biases and LayerNorm). The
 * base-only calls cllm_gpt_get_grads, _get_adam and _set_adam then fail with CLLM_ERR_STATE.
 *
 *     cllm_gpt_opts o = {.max_batch = 8, .max_seq = 256, .training = true,
 *                        .lora = {.rank = 8, .alpha = 16, .targets = CLLM_LORA_ALL}};
 *     cllm_gpt_init(&m, rt, &cfg, &o);
 *     cllm_gpt_set_params(m, base);            // the pretrained weights (frozen)
 *     cllm_gpt_lora_init_weights(m, seed);     // A as PEFT draws it, B = 0: equals the base
 *     ... the training loop above, unchanged ...
 *     cllm_gpt_lora_get_params(m, adapters);   // cllm_lora_numel floats, for cllm_lora_save
 */

/* The model's adapters (rank 0: none, or merged). */
const cllm_lora_config *cllm_gpt_get_lora(const cllm_gpt *m);
/* A drawn as lora.init says (on the host from `seed`, the same on every device), B = 0. */
cllm_status cllm_gpt_lora_init_weights(cllm_gpt *m, uint64_t seed);
/* Whole adapter-arena transfers (cllm_lora_numel floats, cllm_lora_offsets layout). */
cllm_status cllm_gpt_lora_set_params(cllm_gpt *m, const float *adapters);
cllm_status cllm_gpt_lora_get_params(cllm_gpt *m, float *adapters);
cllm_status cllm_gpt_lora_get_grads(cllm_gpt *m, float *grads);
cllm_status cllm_gpt_lora_set_adam(cllm_gpt *m, const float *mom, const float *var);
cllm_status cllm_gpt_lora_get_adam(cllm_gpt *m, float *mom, float *var);
/* Fold the adapters into the weights on the device, W += scale * B A (one GEMM each), and
 * drop them: the model is then a plain model (forward as without LoRA; nothing left to
 * train). */
cllm_status cllm_gpt_lora_merge(cllm_gpt *m);

#ifdef __cplusplus
}
#endif
#endif
