/* cllm/train.h — the training loop: gradient accumulation, the learning-rate schedule, clipping,
 * AdamW, validation, an overflow guard, metrics, crash-safe checkpoints and exact resume.
 * `cllm train` (pretraining) is a thin front end over it; `cllm sft` plugs in its own batches.
 *
 * Tutorial: pretraining, which is what `cllm train` does.
 *
 *     cllm_train_opts o = cllm_train_opts_default();
 *     o.steps = 1000; o.batch = 8; o.seq = 128; o.lr = 3e-3;
 *     cllm_loader_opts lo = {.dir = "data/fortunes", .split = "train", .B = o.batch,
 *                            .T = o.seq, .shuffle = true, .seed = o.seed, .world = 1};
 *     cllm_batch_source *train, *val = NULL;
 *     CLLM_TRY(cllm_pretrain_source_init(&train, &lo));
 *     lo.split = "val"; lo.shuffle = false;
 *     CLLM_TRY(cllm_pretrain_source_init(&val, &lo));
 *     cllm_train_setup s = {.run_dir = "runs/nano", .cfg = cfg, .model_source = "gpt-nano.json",
 *                           .opts = o, .train = train, .val = val, .tokenizer_json = tok_json};
 *     cllm_trainer *t;
 *     CLLM_TRY(cllm_trainer_init(&t, rt, &s));   // every check happens here, before RUN is touched
 *     st = cllm_trainer_run(t);                   // CLLM_OK, or CLLM_ERR_INTERRUPTED once *s.stop
 *     cllm_trainer_free(t);                       //   was set: the step finished, a checkpoint
 * saved
 *
 *   One step: zero the gradients; for each of grad_accum micro-batches, take (B, T) inputs and
 *   targets from the source, forward, backward; the gradient is that of the mean loss over every
 *   non-ignored target of the step (each micro-batch weighted by its share of them, so SFT
 *   batches with few assistant tokens count for what they hold); clip to `clip`; AdamW with the
 *   schedule's lr. A non-finite loss or gradient norm skips the update (logged, the AdamW step
 *   count does not advance) and `max_skips` of them in a row stop the run with CLLM_ERR_NUMERIC;
 *   a checkpoint with a non-finite weight is never written.
 *
 *   The run directory:
 *     RUN/config.json        the model's Hugging Face config (+ setup.config_extra_json's keys)
 *     RUN/train_args.json    the effective options, the caller's args_json record and the
 *                            device of the latest session ("device": name, type, platform,
 *                            compute_units)
 *     RUN/command.txt        setup.command_line, one line per start (the first run and resumes)
 *     RUN/metrics.jsonl      one object per step: step, loss, lr, grad_norm, tokens_per_s,
 *                            tokens (cumulative), time_s (since the run started, across
 *                            resumes), val_loss and val_ppl when measured; "skipped": true on an
 *                            update the guard skipped (loss / grad_norm null when not finite).
 *                            Step 0 holds only the validation before training.
 *     RUN/samples.jsonl      with sample_every: {"step", "prompt", "text"} per sample
 *     RUN/step_NNNNNNNN/     checkpoints (cllm/checkpoint.h): model, config, tokenizer,
 *                            optimizer.safetensors, state.json; RUN/latest names the newest.
 *                            With setup.lora, the frozen base, the adapters and their moments
 *                            (cllm/lora.h's files) and no optimizer.safetensors
 *
 *   Resume: setup.resume = true continues RUN from its latest checkpoint: weights, AdamW
 *   moments, step and AdamW step, the sampling RNG, each source's position (set_position),
 *   cumulative tokens and time; metrics.jsonl and samples.jsonl lines after that step
 *   (written after the checkpoint a crash rolled back to) are dropped. On the same device, N steps then a resume
 *   for N more give bitwise the same losses and weights as 2N steps at once. Batch, sequence
 *   and seed cannot change on resume (the data order depends on them); steps, lr, eval and
 *   checkpoint cadence may. cllm_train_state_read() gives the saved options to start from.
 *
 *   A batch source of your own (SFT): fill a cllm_batch_source with your functions. next()
 *   writes (B, T) inputs and targets (targets may be CLLM_IGNORE_TARGET: no loss there);
 *   get_position() returns your position as a JSON object text (malloc'd), stored inside
 *   state.json under "data", and set_position() receives it back on resume; a validation source
 *   needs rewind() and batches() instead. To store a chat template, pass config_extra_json
 *   ({"chat_template": "..."}): its keys go into every config.json.
 *
 *       static cllm_status my_next(void *self, uint32_t *in, uint32_t *tg, int B, int T);
 *       cllm_batch_source src = {.self = &my_state, .batch = 8, .seq = 256, .name = "chats",
 *                                .next = my_next, .get_position = my_pos, .set_position = my_seek};
 *
 * No OpenCL here; the loop runs on the device through cllm/gpt.h.
 */
#ifndef CLLM_TRAIN_H
#define CLLM_TRAIN_H

#include "cllm/common.h"
#include "cllm/data.h"
#include "cllm/gpt.h"
#include "cllm/optim.h"
#include "cllm/runtime.h"

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- batch sources */

typedef struct cllm_batch_source cllm_batch_source;
struct cllm_batch_source {
    void *self;       /* the source's own state, passed to every function */
    int batch, seq;   /* B, T of every micro-batch it makes */
    const char *name; /* for messages: "data/fortunes (train)"; owned by the source */
    /* The next micro-batch: inputs (B, T) token ids, targets (B, T) ids or CLLM_IGNORE_TARGET.
     * Training sources never run out (wrap to a new epoch); B, T are the fields above. */
    cllm_status (*next)(void *self, uint32_t *inputs, uint32_t *targets, int B, int T);
    /* Training sources: the position of the next micro-batch as a malloc'd JSON object text
     * (NULL with the error recorded), and back to a saved one (a clear error when the data
     * changed since). */
    char *(*get_position)(void *self);
    cllm_status (*set_position)(void *self, const char *json);
    /* Validation sources: back to the first batch, and the batches in one pass. */
    void (*rewind)(void *self);
    uint64_t (*batches)(void *self);
    /* Largest token id it can produce, checked against the model's vocab_size before training
     * starts (NULL: not known; the model still refuses ids out of range). */
    uint32_t (*max_token)(void *self);
    /* One line about the data ("676,543 tokens in 1 shard, 330 batches per epoch"); may be
     * NULL. The returned string is owned by the source. */
    const char *(*describe)(void *self);
    void (*free)(void *self); /* frees self (and name); NULL: nothing to free */
};

/* Frees src->self through src->free and then src itself, for sources made by an _init below
 * (NULL is a no-op). A source in caller-owned memory is not passed here. */
void cllm_batch_source_free(cllm_batch_source *src);

/* Pretraining batches from token shards (cllm/data.h's loader): B windows of T+1 tokens,
 * inputs the first T, targets the last T. Its position is the loader's cursor, stored with
 * the split's size, order and seed so that a resume on changed data is refused. A validation
 * source is the same with shuffle = false (it rewinds to the first batch). */
cllm_status cllm_pretrain_source_init(cllm_batch_source **src, const cllm_loader_opts *o);

/* ---------------------------------------------------------------- options */

typedef struct {
    int steps;      /* steps in the whole run, resumed sessions included (step 1 is the first) */
    int batch;      /* B: sequences per micro-batch */
    int seq;        /* T: tokens per sequence (<= n_positions) */
    int grad_accum; /* micro-batches per step: B * T * grad_accum tokens per step */
    double lr;      /* peak learning rate */
    double min_lr;  /* reached at the last step (cosine, linear); < 0: lr / 10 */
    int warmup;     /* steps of linear warmup */
    cllm_schedule_kind schedule;
    double weight_decay, beta1, beta2, eps; /* AdamW */
    double clip;                            /* global gradient-norm clipping; 0 = off */
    uint64_t seed;    /* weights (unless given), and the RNG of samples; sources take their own */
    int eval_every;   /* validation every N steps and at the last (0 = off) */
    int eval_batches; /* batches per validation (at most the validation source's) */
    int ckpt_every;   /* a checkpoint every N steps (0: only at the end); always at the end */
    int keep;         /* checkpoints kept (0 = all) */
    int max_skips;    /* consecutive non-finite steps that stop the run */
    int log_every;    /* a plain progress line every N steps when the log is not a terminal */
    int sample_every; /* a generated sample every N steps and at the end (0 = off; needs a
                         tokenizer) */
    int sample_tokens; /* new tokens per sample (temperature 1, the seeds drawn from the
                          run's RNG, so a resumed run draws the same samples) */
} cllm_train_opts;

cllm_train_opts cllm_train_opts_default(void);
/* Refuse values out of range, naming the option ("--lr must be > 0"), as CLLM_ERR_USAGE. */
cllm_status cllm_train_opts_validate(const cllm_train_opts *o);
/* Apply the keys of a JSON object to `o`: the option names with '_' for '-' ("grad_accum",
 * "min_lr", "schedule": "cosine", ...), as a model config's "training" section or a saved
 * state holds them. An unknown key or a value of the wrong type is CLLM_ERR_FORMAT naming
 * `source` and the key. */
cllm_status cllm_train_opts_apply_json(cllm_train_opts *o, const char *json, const char *source);
/* The same, from the "training" object of a model config file (none: nothing changes). */
cllm_status cllm_train_opts_apply_config(cllm_train_opts *o, const char *config_path);
/* All options as a JSON object text (malloc'd); apply_json reads it back exactly. */
char *cllm_train_opts_to_json(const cllm_train_opts *o);
/* min_lr with its default resolved. */
double cllm_train_min_lr(const cllm_train_opts *o);

/* What the latest checkpoint of `run_dir` says about its run: the options it ran with, the
 * caller's args_json record (malloc'd, may be NULL) and its step. For a front end that starts
 * a resume from the saved options. *ckpt (may be NULL) receives the checkpoint's path. */
cllm_status cllm_train_state_read(const char *run_dir, cllm_train_opts *opts, char **args_json,
                                  int *step, char **ckpt);

/* ---------------------------------------------------------------- the trainer */

typedef struct {
    const char *run_dir;
    cllm_gpt_config cfg;        /* the model (when resuming, the checkpoint's is used) */
    const char *model_source;   /* where cfg came from, for messages ("models/gpt-nano.json") */
    const float *init_params;   /* starting weights in cllm's layout; NULL: GPT-2 init from seed */
    cllm_lora_config lora;      /* rank > 0: train LoRA adapters (cllm/gpt.h, cllm/lora.h) over
                                   the frozen weights: checkpoints hold the base and the adapters
                                   with their moments, no optimizer.safetensors. A resume trains
                                   what the run trained (another lora here is refused) */
    const float *init_lora;     /* starting adapters (cllm_lora_numel floats); NULL: PEFT's init
                                   (A drawn from opts.seed, B = 0: the base model's function) */
    const char *tokenizer_json; /* stored in every checkpoint (NULL: none) */
    const char *config_extra_json; /* a JSON object whose keys are added to config.json */
    cllm_batch_source *train;      /* required; the caller owns both sources */
    cllm_batch_source *val;        /* NULL: no validation */
    cllm_train_opts opts;
    bool resume;                 /* continue run_dir from its latest checkpoint */
    const char *args_json;       /* the caller's record (a JSON object, e.g. the data directory),
                                    kept in state.json and train_args.json */
    const char *command_line;    /* appended to RUN/command.txt (NULL: nothing) */
    const char *sample_prompt;   /* what samples continue (NULL or "": <|endoftext|>, i.e. a
                                    new document); special tokens in it are recognised */
    volatile sig_atomic_t *stop; /* set (from a signal handler): finish the step, save, return */
    int stop_at;                 /* > 0: this session ends (with a checkpoint) after that step, the
                                    run resumable up to opts.steps; e.g. time-sliced jobs */
    double time_limit_s;         /* > 0: this session ends (with a validation when validation is
                                    on, and a checkpoint) after the first step that finishes
                                    this many seconds after cllm_trainer_run started; the run
                                    resumable up to opts.steps. The schedule stays that of
                                    opts.steps: set steps to what fits the time, the limit is a
                                    bound (cllm demo measures the step time to choose steps) */
    FILE *log;                   /* progress and messages (NULL: stdout) */
    bool tty;                    /* log is a terminal: one progress line rewritten in place */
} cllm_train_setup;

typedef struct cllm_trainer cllm_trainer;

/* Check everything and build the device model before RUN is touched: options, the model
 * against the device (cllm_gpt_init's message when it does not fit), the tokenizer and every
 * source's token ids against vocab_size, a fresh run refusing a RUN that holds checkpoints
 * (resume is for that), a resume loading and checking the latest checkpoint. Then writes
 * RUN/config.json, train_args.json and command.txt. The sources must outlive the trainer. */
cllm_status cllm_trainer_init(cllm_trainer **t, cllm_runtime *rt, const cllm_train_setup *s);
void cllm_trainer_free(cllm_trainer *t);

/* Train up to opts.steps (or setup.stop_at, or setup.time_limit_s). CLLM_OK at the end (a
 * checkpoint of the last step written);
 * CLLM_ERR_INTERRUPTED when *setup.stop was set (the step finished and was saved);
 * CLLM_ERR_NUMERIC after max_skips non-finite steps in a row (nothing saved). */
cllm_status cllm_trainer_run(cllm_trainer *t);

/* The step the trainer is at (after resume: the checkpoint's), the last checkpoint written
 * (NULL before the first; owned by the trainer), the last validation loss (NaN if none). */
int cllm_trainer_step(const cllm_trainer *t);
const char *cllm_trainer_last_checkpoint(const cllm_trainer *t);
double cllm_trainer_last_val_loss(const cllm_trainer *t);
/* The device model, e.g. to read the weights after a run. */
cllm_gpt *cllm_trainer_model(cllm_trainer *t);

#ifdef __cplusplus
}
#endif
#endif
