/* host/cli/train_flags.h — what cllm train and cllm sft share on the command line: the training
 * loop's options (cllm/train.h) as one table, applied over a base (defaults, a model config's
 * "training" section, or a resumed run's saved options); the command line recorded in
 * RUN/command.txt; and Ctrl-C, which finishes the step and saves a checkpoint. */
#ifndef CLLM_CLI_TRAIN_FLAGS_H
#define CLLM_CLI_TRAIN_FLAGS_H

#include "args.h"

#include "cllm/train.h"

#include <signal.h>

/* What the shared options set besides cllm_train_opts' own fields. */
typedef struct {
    const char *schedule, *min_lr;
    int stop_at;
    double time_limit;
    bool seen_schedule, seen_lr, seen_warmup, seen_eval_every, seen_eval_batches,
        seen_ckpt_every, seen_weight_decay;
} cli_loop_flags;

/* The loop's options after --steps/--batch/--seq/--seed (which each command words itself).
 * dyn: the defaults of --lr, --warmup, --eval-every, --eval-batches and --ckpt-every are
 * computed (from the data, the run) and --help does not print the built-in ones. */
#define CLI_LOOP_OPTS(o, lf, dyn)                                                                    \
    {"grad-accum", 0, CLI_INT, &(o)->grad_accum, "K",                                          \
     "micro-batches per step (B * T * K tokens per step)", .lo = 1, .hi = 1 << 16},            \
        {"lr", 0, CLI_DOUBLE, &(o)->lr, "LR",                                                 \
         (dyn) ? "peak learning rate (default: a tenth of the --init run's, else 5e-5)"       \
               : "peak learning rate",                                                        \
         .lo = 1e-12, .hi = 10,     \
         .seen = &(lf)->seen_lr, .no_default = (dyn)},                                                              \
        {"min-lr", 0, CLI_STR, &(lf)->min_lr, "LR",                                            \
         "learning rate at the last step (cosine, linear) (default: lr / 10)"},                \
        {"warmup", 0, CLI_INT, &(o)->warmup, "N",                                             \
         (dyn) ? "steps of linear warmup (default: 5% of --steps)" : "steps of linear warmup", \
         .lo = 0,           \
         .hi = 2e9, .seen = &(lf)->seen_warmup, .no_default = (dyn)},                                               \
        {"schedule", 0, CLI_CHOICE, &(lf)->schedule, NULL,                                     \
         "learning-rate schedule after warmup", .choices = "cosine|linear|constant",           \
         .seen = &(lf)->seen_schedule},                                                        \
        {"weight-decay", 0, CLI_DOUBLE, &(o)->weight_decay, "W",                               \
         "AdamW decoupled weight decay (2-D weights and embeddings)", .lo = 0, .hi = 1e3,      \
         .seen = &(lf)->seen_weight_decay},                                                    \
        {"beta1", 0, CLI_DOUBLE, &(o)->beta1, "B1", "AdamW beta1", .lo = 0, .hi = 0.999999},   \
        {"beta2", 0, CLI_DOUBLE, &(o)->beta2, "B2", "AdamW beta2", .lo = 0, .hi = 0.999999},   \
        {"eps", 0, CLI_DOUBLE, &(o)->eps, "EPS", "AdamW epsilon", .lo = 1e-30, .hi = 1},       \
        {"clip", 0, CLI_DOUBLE, &(o)->clip, "NORM",                                            \
         "clip the global gradient norm to NORM (0 = off)", .lo = 0, .hi = 1e9},               \
        {"eval-every", 0, CLI_INT, &(o)->eval_every, "N",                                      \
         (dyn) ? "validation loss every N steps and at the end (0 = off) (default: each epoch)" \
               : "validation loss every N steps and at the end (0 = off)",                   \
         .lo = 0, .hi = 2e9, .seen = &(lf)->seen_eval_every, .no_default = (dyn)},                                                      \
        {"eval-batches", 0, CLI_INT, &(o)->eval_batches, "N",                                  \
         (dyn) ? "validation batches (default: all of the validation data)"                  \
               : "validation batches (at most what the validation data holds)",              \
         .lo = 1, .hi = 2e9,                                                                  \
         .seen = &(lf)->seen_eval_batches, .no_default = (dyn)},                                                    \
        {"ckpt-every", 0, CLI_INT, &(o)->ckpt_every, "N",                                      \
         (dyn) ? "checkpoint every N steps (0: only at the end; always at the end) (default: " \
                 "each epoch)"                                                                \
               : "checkpoint every N steps (0: only at the end; always at the end)",          \
         .lo = 0, .hi = 2e9, .seen = &(lf)->seen_ckpt_every, .no_default = (dyn)},                                           \
        {"keep", 0, CLI_INT, &(o)->keep, "N", "checkpoints to keep, the newest (0 = all)",     \
         .lo = 0, .hi = 1e6},                                                                  \
        {"max-skips", 0, CLI_INT, &(o)->max_skips, "N",                                        \
         "non-finite steps in a row (their updates skipped) that stop the run", .lo = 1,       \
         .hi = 1e6},                                                                           \
        {"stop-at", 0, CLI_INT, &(lf)->stop_at, "STEP",                                        \
         "end this session after STEP with a checkpoint; --resume continues to --steps (0 = "  \
         "off)",                                                                               \
         .lo = 0, .hi = 2e9},                                                                  \
        {"time-limit", 0, CLI_DOUBLE, &(lf)->time_limit, "S",                                  \
         "end this session after the step that passes S seconds, with a validation and a "     \
         "checkpoint; --resume continues to --steps (0 = off)",                                \
         .lo = 0, .hi = 1e9},                                                                  \
    {                                                                                          \
        "log-every", 0, CLI_INT, &(o)->log_every, "N",                                         \
            "a progress line every N steps when stdout is not a terminal", .lo = 1, .hi = 2e9  \
    }

/* Apply --schedule and --min-lr to `o`. A --min-lr that is not a number in [0, 10] is a usage
 * error printed for `cmd`: returns 2; otherwise -1. */
int cli_loop_flags_apply(const char *cmd, const cli_loop_flags *lf, cllm_train_opts *o);

/* The exact command line, quoted for a POSIX shell where needed (malloc'd; NULL: no memory). */
char *cli_command_line(int argc, char **argv);

/* SIGINT and SIGTERM set *flag (the trainer then finishes the step and saves) and say so on
 * stderr for `cmd`; a second one quits at once. */
void cli_catch_stop(volatile sig_atomic_t *flag, const char *cmd);

#endif
