/* cllm sft: supervised fine-tuning for chat, a front end over cllm/sft.h (data, template,
 * vocabulary growth, category check) and cllm/train.h (the loop: optimizer, schedule,
 * checkpoints, exact resume, progress, metrics). Options come from, in rising priority: the SFT
 * defaults (some computed from the data and the --init run), or with --resume the options the
 * run was saved with, then the flags. */
#include "args.h"
#include "commands.h"
#include "train_flags.h"

#include "cllm/checkpoint.h"
#include "cllm/generate.h"
#include "cllm/lora.h"
#include "cllm/sft.h"
#include "cllm/train.h"
#include "cllm/util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SFT_CMD "cllm sft"

/* The learning rate when the --init checkpoint records none: Hugging Face Trainer's default. */
#define SFT_FALLBACK_LR 5e-5
/* With LoRA, when the --init checkpoint records none: the LoRA paper's GPT-2 learning rate
 * (Hu et al. 2021, table 11). */
#define SFT_LORA_FALLBACK_LR 2e-4

static volatile sig_atomic_t g_stop;

typedef struct {
    const char *init, *data, *val_data, *out, *dev, *plat, *overflow, *token_init, *lora_targets;
    double val_fraction, epochs;
    int lora_rank;
    float lora_alpha;
    long long seed;
    int samples, sample_tokens, category_items, category_wrong;
    float sample_penalty;
    bool resume, strict, category_check, eval_only;
    bool seen_seed, seen_seq, seen_steps, seen_val_fraction, seen_overflow, seen_epochs;
    cli_loop_flags lf;
} sft_flags;

static const char SUMMARY[] =
    "Fine-tune a pretrained model to answer in a chat format (supervised fine-tuning).\n"
    "\n"
    "Data: JSONL, one conversation per line, {\"messages\": [{\"role\": \"system\"|\"user\"|\n"
    "\"assistant\", \"content\": \"...\"}, ...]} or {\"prompt\": \"...\", \"response\": \"...\"}.\n"
    "A malformed record (unknown role, content missing or not a string, messages not an\n"
    "array, no assistant message) is skipped and counted, the first one named with its line;\n"
    "--strict stops at it. Conversations are rendered with the chat template cllm-chat-v1\n"
    "(<|system|> <|user|> <|assistant|> content <|end|>, see README), one per row, padded;\n"
    "only assistant tokens and their <|end|> are learnt (the loss mask). A conversation longer\n"
    "than the row is cut to it (--overflow truncate) or left out (drop), and counted.\n"
    "\n"
    "The model: --init is any checkpoint with a tokenizer (a cllm train run, an imported\n"
    "GPT-2). Template tokens its tokenizer lacks are added and the embedding grows by as many\n"
    "rows (initialised as --new-token-init says); the old tokens keep their logits. The\n"
    "template goes into config.json and tokenizer.json, so cllm chat renders the same.\n"
    "\n"
    "Training is cllm train's loop (AdamW, warmup + schedule, clipping, accumulation,\n"
    "checkpoints, exact --resume, Ctrl-C saves) with SFT defaults: --epochs 3 sets --steps,\n"
    "warmup 5% of the steps, validation and a checkpoint once per epoch, weight decay 0, and\n"
    "--lr one tenth of the --init run's pretraining lr (5e-5 when it records none). The\n"
    "validation loss is over assistant tokens only. Before and after training, replies to a\n"
    "few validation prompts are printed (--samples), and with --category-check the held-out\n"
    "answers are scored under their own category's request and under wrong ones (for sets\n"
    "from cllm data make-sft). RUN gets cllm train's files plus sft_report.json.\n"
    "\n"
    "--lora-rank R trains LoRA adapters instead (PEFT's formula and files; the weights,\n"
    "the new template rows included, stay frozen), with --lr defaulting to the --init run's\n"
    "pretraining lr (2e-4 when it records none); checkpoints hold the base model and the\n"
    "adapters (adapter_model.safetensors, adapter_config.json); cllm export --merge-lora\n"
    "writes the fine-tuned model as a plain one.";

static const char EPILOG[] =
    "examples:\n"
    "  cllm data make-sft --input /usr/share/games/fortunes --doc-separator % --max-chars 400 \\\n"
    "      --out sft.jsonl --val-out sft-val.jsonl\n"
    "  cllm sft --init runs/nano --data sft.jsonl --val-data sft-val.jsonl --out runs/nano-sft \\\n"
    "      --category-check\n"
    "  cllm sft --init runs/nano --data chats.jsonl --val-fraction 0.05 --out runs/chat --epochs 2\n"
    "  cllm sft --out runs/nano-sft --resume                 # after Ctrl-C or a crash\n"
    "  cllm sft --init runs/nano --data sft.jsonl --val-data sft-val.jsonl --out runs/nano-lora \\\n"
    "      --lora-rank 8\n"
    "  cllm export --ckpt runs/nano-lora --merge-lora --out hf/nano-chat\n"
    "exit codes: 0 done (or stopped by Ctrl-C with a checkpoint), 1 runtime error, 2 usage error";

static int parse(int argc, char **argv, cllm_train_opts *o, sft_flags *f) {
    const cli_opt opts[] = {
        {"init", 0, CLI_STR, &f->init, "CKPT",
         "the pretrained model: a run, step or Hugging Face directory with a tokenizer"},
        {"data", 'd', CLI_STR, &f->data, "FILE.jsonl", "training conversations"},
        {"val-data", 0, CLI_STR, &f->val_data, "FILE.jsonl", "validation conversations"},
        {"val-fraction", 0, CLI_DOUBLE, &f->val_fraction, "F",
         "hold out this share of --data for validation instead (by a hash of each "
         "conversation and --seed)",
         .lo = 1e-9, .hi = 0.999999, .seen = &f->seen_val_fraction},
        {"out", 'o', CLI_STR, &f->out, "RUN", "run directory (required unless --eval-only)"},
        {"resume", 0, CLI_FLAG, &f->resume, NULL,
         "continue RUN from its latest checkpoint, everything restored"},
        {"epochs", 0, CLI_DOUBLE, &f->epochs, "E",
         "passes over the training conversations; sets --steps", .lo = 1e-6, .hi = 1e6,
         .seen = &f->seen_epochs},
        {"steps", 'n', CLI_INT, &o->steps, "N", "optimizer steps (default: from --epochs)",
         .lo = 1, .hi = 2e9, .seen = &f->seen_steps, .no_default = true},
        {"batch", 'b', CLI_INT, &o->batch, "B", "conversations per micro-batch", .lo = 1,
         .hi = 1 << 20},
        {"seq", 't', CLI_INT, &o->seq, "T",
         "tokens per row (default: the longest training conversation, at most n_positions)",
         .lo = 1, .hi = 1 << 16, .seen = &f->seen_seq, .no_default = true},
        {"overflow", 0, CLI_CHOICE, &f->overflow, NULL,
         "a conversation longer than the row: cut to it, or left out",
         .choices = "truncate|drop", .seen = &f->seen_overflow},
        {"strict", 0, CLI_FLAG, &f->strict, NULL, "a malformed record is an error, not skipped"},
        {"new-token-init", 0, CLI_CHOICE, &f->token_init, NULL,
         "rows of added template tokens: the mean of the rows of the pieces their text encodes "
         "to, or of all rows",
         .choices = "subword|mean"},
        {"lora-rank", 0, CLI_INT, &f->lora_rank, "R",
         "train LoRA adapters of rank R on --lora-targets, every weight frozen (0 = train all "
         "weights)",
         .lo = 0, .hi = 1 << 16},
        {"lora-alpha", 0, CLI_FLOAT, &f->lora_alpha, "A", "LoRA scale numerator: scale = A / R",
         .lo = 1e-6, .hi = 1e6},
        {"lora-targets", 0, CLI_STR, &f->lora_targets, "LIST",
         "projections with adapters, PEFT's names: c_attn, attn.c_proj, c_fc, mlp.c_proj (c_proj: "
         "both), all-linear"},
        {"seed", 0, CLI_I64, &f->seed, "N",
         "seed of the data order, the validation split and the LoRA adapters' A",
         .lo = 0, .hi = 9.2e18, .seen = &f->seen_seed},
        CLI_LOOP_OPTS(o, &f->lf, true),
        {"samples", 0, CLI_INT, &f->samples, "N",
         "replies to the first N validation prompts, before and after (greedy, with "
         "--sample-repetition-penalty; 0 = none)",
         .lo = 0, .hi = 1000},
        {"sample-tokens", 0, CLI_INT, &f->sample_tokens, "N", "new tokens per reply", .lo = 1,
         .hi = 1 << 16},
        {"sample-repetition-penalty", 0, CLI_FLOAT, &f->sample_penalty, "R",
         "repetition penalty of the greedy replies (1 = off; a small model's plain greedy "
         "replies loop)",
         .lo = 1, .hi = 100},
        {"eval-only", 0, CLI_FLAG, &f->eval_only, NULL,
         "no training: the assistant-token loss of --init on --val-data (or --data), replies, "
         "and with --category-check the category check"},
        {"category-check", 0, CLI_FLAG, &f->category_check, NULL,
         "score held-out answers under their own category's request and under wrong ones, "
         "before and after (records with a \"category\", as make-sft writes)"},
        {"category-items", 0, CLI_INT, &f->category_items, "N",
         "answers the category check scores (0 = all of the validation data)", .lo = 0,
         .hi = 2e9},
        {"category-wrong", 0, CLI_INT, &f->category_wrong, "K",
         "wrong categories per answer, drawn at random (0 = all the others)", .lo = 0, .hi = 1e6},
        CLI_DEVICE_OPTS(&f->dev, &f->plat),
    };
    const cli_spec spec = {SFT_CMD,
                           "--init CKPT --data FILE.jsonl [--val-data FILE.jsonl | --val-fraction "
                           "F] --out RUN [options]\n"
                           "       cllm sft --out RUN --resume [options]\n"
                           "       cllm sft --init CKPT --val-data FILE.jsonl --eval-only [options]",
                           SUMMARY,
                           opts,
                           CLI_COUNT(opts),
                           EPILOG,
                           0,
                           0};
    return cli_parse(&spec, argc, argv, NULL);
}

#define usage(...) cli_usage_cmd(SFT_CMD, __VA_ARGS__)

/* The SFT defaults over cllm train's (those that depend on the data are set later). */
static cllm_train_opts sft_defaults(void) {
    cllm_train_opts o = cllm_train_opts_default();
    o.lr = SFT_FALLBACK_LR;
    o.weight_decay = 0;
    return o;
}

/* ---------------------------------------------------------------- data */

/* What reading a set met that the trainer's description of it does not say (malformed records
 * have been reported by the reader, on stderr). */
static void print_set_notes(const cllm_sft_set *s, int max_tokens) {
    const cllm_sft_stats *st = &s->stats;
    if (st->truncated)
        printf("data: %s: %ld conversation%s longer than %d tokens cut to %d\n", s->path,
               st->truncated, st->truncated == 1 ? "" : "s", max_tokens, max_tokens);
    if (st->dropped)
        printf("data: %s: %ld conversation%s longer than %d tokens left out (--overflow drop)\n",
               s->path, st->dropped, st->dropped == 1 ? "" : "s", max_tokens);
    if (st->dropped_empty)
        printf("data: %s: %ld conversation%s left out: cut to %d tokens, no assistant token "
               "remained\n",
               s->path, st->dropped_empty, st->dropped_empty == 1 ? "" : "s", max_tokens);
}

static cllm_status read_set(cllm_sft_set *s, const char *path, const cllm_chat_template *t,
                            const cllm_tokenizer *tok, int max_tokens, cllm_sft_overflow ov,
                            bool strict) {
    cllm_sft_read_opts ro = {.max_tokens = max_tokens, .overflow = ov, .strict = strict};
    return cllm_sft_read(s, path, t, tok, &ro);
}

/* The row length that holds the longest conversation of `s` whole, at most n_positions. */
static int longest_row(const cllm_sft_set *s, int n_positions) {
    uint64_t longest = 0;
    for (int i = 0; i < s->n; i++)
        if (s->offset[i + 1] - s->offset[i] > longest) longest = s->offset[i + 1] - s->offset[i];
    int T = longest - 1 < (uint64_t)n_positions ? (int)(longest - 1) : n_positions;
    return T < 1 ? 1 : T;
}

/* ---------------------------------------------------------------- samples and the report */

typedef struct {
    char *prompt, *reference, *category, *before, *after;
} sample_row;

/* The last assistant reply of validation conversation i: its learnt tokens are [*start, *end)
 * (content, then <|end|>), so positions [0, *start) are the prompt, ending with <|assistant|>. */
static void last_reply(const cllm_sft_set *v, int i, size_t *start, size_t *end) {
    const uint8_t *m = v->mask + v->offset[i];
    size_t e = v->offset[i + 1] - v->offset[i];
    while (e > 0 && !m[e - 1])
        e--;
    size_t b = e;
    while (b > 0 && m[b - 1])
        b--;
    *start = b;
    *end = e;
}

/* The prompt, reference reply (without its <|end|>) and category of validation conversation i. */
static cllm_status sample_prompt(const cllm_sft_set *v, int i, const cllm_tokenizer *tok,
                                 sample_row *row) {
    const uint32_t *ids = v->ids + v->offset[i];
    size_t start, end, n;
    last_reply(v, i, &start, &end);
    const bool closed = end > start && ids[end - 1] == v->pad_id; /* not cut by truncation */
    cllm_status st = cllm_tokenizer_decode(tok, ids, start, &row->prompt, &n);
    if (st == CLLM_OK)
        st = cllm_tokenizer_decode(tok, ids + start, end - start - closed, &row->reference, &n);
    if (st == CLLM_OK && v->category[i] >= 0 &&
        !(row->category = strdup(v->categories[v->category[i]])))
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    return st;
}

/* The model's greedy reply to validation conversation i's prompt, up to a template token. */
static cllm_status reply(cllm_gpt *m, const cllm_tokenizer *tok, const cllm_chat_template *t,
                         const cllm_sft_set *v, int i, int max_tokens, float penalty,
                         char **text) {
    size_t start, end;
    last_reply(v, i, &start, &end);
    uint32_t stops[CLLM_ROLE_COUNT + 1];
    for (int k = 0; k < CLLM_ROLE_COUNT; k++)
        stops[k] = t->role_id[k];
    stops[CLLM_ROLE_COUNT] = t->end_id;
    cllm_gen_opts o = cllm_gen_opts_default();
    o.max_tokens = max_tokens;
    o.sampler.greedy = true;
    o.sampler.repetition_penalty = penalty; /* over the prompt and the reply so far */
    o.stop_tokens = stops;
    o.n_stop_tokens = CLLM_ROLE_COUNT + 1;
    o.context_full = CLLM_GEN_CONTEXT_STOP;
    cllm_gen_result r = {0};
    cllm_status st = cllm_generate(m, tok, v->ids + v->offset[i], (int)start, &o, &r);
    if (st == CLLM_OK) {
        *text = r.samples[0].text;
        r.samples[0].text = NULL;
    }
    cllm_gen_result_free(&r);
    return st;
}

static void free_rows(sample_row *rows, int n) {
    for (int i = 0; rows && i < n; i++) {
        free(rows[i].prompt);
        free(rows[i].reference);
        free(rows[i].category);
        free(rows[i].before);
        free(rows[i].after);
    }
    free(rows);
}

/* Text on one line: newlines and tabs shown as \n and \t. */
static void print_flat(const char *label, const char *s) {
    printf("    %-10s ", label);
    for (const char *c = s ? s : ""; *c; c++) {
        if (*c == '\n')
            fputs("\\n", stdout);
        else if (*c == '\t')
            fputs("\\t", stdout);
        else
            putchar(*c);
    }
    putchar('\n');
}

static void print_category(const char *when, const cllm_sft_category_report *r) {
    printf("category check %s: %d held-out answers, %d categories, each answer also scored under "
           "%d wrong one%s (%d left out)\n",
           when, r->items, r->categories, r->wrong_per_item, r->wrong_per_item == 1 ? "" : "s",
           r->skipped);
    printf("  loss per assistant token: own category %.4f, wrong %.4f: gap %+.4f +- %.4f (s.e.); "
           "own lower for %.1f%% of answers; own lowest of all for %.1f%% (chance %.1f%%)\n",
           r->own, r->wrong, r->gap, r->gap_se, 100 * r->lower, 100 * r->top1, 100 * r->chance);
}

static cJSON *category_json(const cllm_sft_category_report *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "items", r->items);
    cJSON_AddNumberToObject(o, "skipped", r->skipped);
    cJSON_AddNumberToObject(o, "categories", r->categories);
    cJSON_AddNumberToObject(o, "wrong_per_item", r->wrong_per_item);
    cJSON_AddNumberToObject(o, "own_loss", r->own);
    cJSON_AddNumberToObject(o, "wrong_loss", r->wrong);
    cJSON_AddNumberToObject(o, "gap", r->gap);
    if (isfinite(r->gap_se)) cJSON_AddNumberToObject(o, "gap_se", r->gap_se);
    cJSON_AddNumberToObject(o, "own_lower", r->lower);
    cJSON_AddNumberToObject(o, "top1", r->top1);
    cJSON_AddNumberToObject(o, "chance", r->chance);
    return o;
}

/* The val_loss of metrics.jsonl's step-0 line (the validation before training), or NaN. */
static double val_before(const char *run) {
    char *p = cllm_path_join(run, "metrics.jsonl"), *text = NULL;
    size_t len;
    double v = NAN;
    if (p && cllm_read_file(p, &text, &len) == CLLM_OK) {
        const char *nl = strchr(text, '\n');
        cJSON *o = nl ? cJSON_ParseWithLength(text, (size_t)(nl - text)) : NULL;
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "step"),
                    *vl = cJSON_GetObjectItemCaseSensitive(o, "val_loss");
        if (cJSON_IsNumber(s) && s->valuedouble == 0 && cJSON_IsNumber(vl)) v = vl->valuedouble;
        cJSON_Delete(o);
    }
    cllm_clear_error();
    free(p);
    free(text);
    return v;
}

/* ---------------------------------------------------------------- the command */

/* What the run needs that the checkpoint holds: the tokenizer and the bound template. */
typedef struct {
    cllm_checkpoint ck; /* --init: the whole (grown) checkpoint; resume: config and tokenizer */
    cllm_tokenizer *tok;
    cllm_chat_template t;
} model_side;

static cllm_status load_init(model_side *ms, const char *init, cllm_sft_token_init how) {
    cllm_status st = cllm_checkpoint_load(init, false, &ms->ck);
    if (st != CLLM_OK) return st;
    if (!ms->ck.tokenizer_json)
        return cllm_fail(CLLM_ERR_FORMAT,
                         "%s has no tokenizer.json, and sft renders text: import it with one "
                         "(cllm import --tokenizer TOK) or train it with one",
                         init);
    CLLM_TRY(cllm_tokenizer_from_json(&ms->tok, ms->ck.tokenizer_json,
                                      strlen(ms->ck.tokenizer_json), init));
    if (ms->ck.lora.rank > 0) { /* a LoRA fine-tuned model: start from what it computes */
        cllm_lora_merge(&ms->ck.cfg, &ms->ck.lora, ms->ck.params, ms->ck.lora_params);
        printf("init: %s: its LoRA adapters (rank %d) merged into the weights\n", init,
               ms->ck.lora.rank);
        free(ms->ck.lora_params);
        free(ms->ck.lora_m);
        free(ms->ck.lora_v);
        ms->ck.lora_params = ms->ck.lora_m = ms->ck.lora_v = NULL;
        memset(&ms->ck.lora, 0, sizeof ms->ck.lora);
    }
    cllm_sft_vocab_report r;
    CLLM_TRY(cllm_sft_prepare_checkpoint(&ms->ck, ms->tok, &ms->t, how, &r));
    printf("init: %s: vocabulary %d%s", init, r.vocab_old,
           r.had_template ? ", chat template from its config.json" : "");
    if (r.added)
        printf("; %d template token%s added (ids %u-%u, rows initialised: %s)", r.added,
               r.added == 1 ? "" : "s", r.tok_vocab_old, r.tok_vocab_new - 1,
               cllm_sft_token_init_name(how));
    if (r.vocab_new != r.vocab_old)
        printf("; vocab_size %d -> %d (wte rows %d -> %d padded)", r.vocab_old, r.vocab_new,
               r.vp_old, r.vp_new);
    printf("\n");
fail:
    return st;
}

static cllm_status load_resume(model_side *ms, const char *run) {
    char *dir = cllm_checkpoint_latest(run), *cfg = NULL, *tok = NULL, *p = NULL;
    if (!dir) return cllm_fail_context(CLLM_ERR_IO, "cannot resume");
    size_t len;
    cllm_status st = CLLM_OK;
    p = cllm_path_join(dir, "config.json");
    CLLM_TRY(cllm_read_file(p, &cfg, &len));
    free(p);
    p = cllm_path_join(dir, "tokenizer.json");
    CLLM_TRY(cllm_read_file(p, &tok, &len));
    CLLM_TRY(cllm_gpt_config_parse(cfg, dir, &ms->ck.cfg));
    CLLM_TRY(cllm_tokenizer_from_json(&ms->tok, tok, len, dir));
    CLLM_TRY(cllm_chat_template_load(&ms->t, cfg, ms->tok, dir));
    ms->ck.config_json = cfg;
    ms->ck.tokenizer_json = tok;
    cfg = tok = NULL;
fail:
    free(p);
    free(cfg);
    free(tok);
    free(dir);
    return st;
}

/* The peak lr recorded in a checkpoint's state.json (its options), or 0. */
static double recorded_lr(const cllm_checkpoint *ck) {
    cJSON *s = ck->state_json ? cJSON_Parse(ck->state_json) : NULL;
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(s, "options"),
                *lr = cJSON_GetObjectItemCaseSensitive(o, "lr");
    double v = cJSON_IsNumber(lr) && lr->valuedouble > 0 ? lr->valuedouble : 0;
    cJSON_Delete(s);
    return v;
}

/* --eval-only: what --init does on the data, before any training: the assistant-token loss,
 * replies, the category check. Nothing is written. */
static int eval_only(const cllm_train_opts *o, const sft_flags *f) {
    if (!f->init) return usage("--eval-only needs --init CKPT (the model to measure)");
    if (!f->val_data && !f->data) return usage("--eval-only needs --val-data or --data FILE.jsonl");
    if (f->resume || f->lora_rank) return usage("--eval-only trains nothing: no --resume, --lora-rank");
    cllm_status st = CLLM_OK;
    model_side ms = {0};
    cllm_sft_set all = {0}, rest = {0}, eval = {0};
    cllm_runtime *rt = NULL;
    cllm_gpt *m = NULL;
    sample_row *rows = NULL;
    int n_rows = 0;
    cllm_sft_token_init how;
    cllm_sft_token_init_parse(f->token_init, &how);
    CLLM_TRY(load_init(&ms, f->init, how));
    const cllm_gpt_config *cfg = &ms.ck.cfg;
    int T = o->seq;
    if (f->seen_seq && T > cfg->n_positions) {
        st = cllm_fail(CLLM_ERR_USAGE, "--seq %d exceeds the context of the model (n_positions %d)",
                       T, cfg->n_positions);
        goto fail;
    }
    cllm_sft_overflow ov;
    cllm_sft_overflow_parse(f->overflow, &ov);
    const char *path = f->val_data ? f->val_data : f->data;
    CLLM_TRY(read_set(&all, path, &ms.t, ms.tok, (f->seen_seq ? T : cfg->n_positions) + 1, ov,
                      f->strict));
    if (!f->seen_seq) T = longest_row(&all, cfg->n_positions);
    if (!f->val_data && f->seen_val_fraction) {
        CLLM_TRY(cllm_sft_split(&rest, &eval, &all, f->val_fraction, (uint64_t)f->seed));
        cllm_sft_set_free(&all);
    } else {
        eval = all;
        memset(&all, 0, sizeof all);
    }
    print_set_notes(&eval, T + 1);
    cllm_runtime_opts ro = cllm_runtime_opts_default();
    ro.device_spec = f->dev;
    ro.platform_spec = f->plat;
    CLLM_TRY(cllm_runtime_init(&rt, &ro));
    cllm_gpt_opts go = {.max_batch = o->batch, .max_seq = T};
    CLLM_TRY(cllm_gpt_init(&m, rt, cfg, &go));
    CLLM_TRY(cllm_gpt_set_params(m, ms.ck.params));
    double loss;
    uint64_t targets;
    CLLM_TRY(cllm_sft_eval_loss(m, &eval, o->batch, T, &loss, &targets));
    printf("eval: %s: %d conversations, %llu assistant targets: loss %.6f (perplexity %.3f)\n",
           eval.path, eval.n, (unsigned long long)targets, loss, exp(loss));
    n_rows = eval.n < f->samples ? eval.n : f->samples;
    rows = n_rows ? cllm_calloc((size_t)n_rows, sizeof *rows) : NULL;
    for (int i = 0; rows && i < n_rows; i++) {
        CLLM_TRY(sample_prompt(&eval, i, ms.tok, &rows[i]));
        CLLM_TRY(reply(m, ms.tok, &ms.t, &eval, i, f->sample_tokens, f->sample_penalty,
                           &rows[i].after));
        printf("  [%d]%s%s%s\n", i + 1, rows[i].category ? " (" : "",
               rows[i].category ? rows[i].category : "", rows[i].category ? ")" : "");
        print_flat("prompt", rows[i].prompt);
        print_flat("reference", rows[i].reference);
        print_flat("reply", rows[i].after);
    }
    if (f->category_check) {
        cllm_sft_category_opts co = {.max_items = f->category_items,
                                     .n_wrong = f->category_wrong,
                                     .seed = (uint64_t)f->seed,
                                     .B = o->batch,
                                     .T = T};
        cllm_sft_category_report cr;
        CLLM_TRY(cllm_sft_category_check(m, ms.tok, &ms.t, &eval, &co, &cr));
        print_category("of --init", &cr);
    }
fail:
    free_rows(rows, n_rows);
    cllm_gpt_free(m);
    cllm_runtime_free(rt);
    cllm_sft_set_free(&all);
    cllm_sft_set_free(&rest);
    cllm_sft_set_free(&eval);
    cllm_checkpoint_clear(&ms.ck);
    cllm_tokenizer_free(ms.tok);
    return cli_report(st);
}

static const char *saved_str(const cJSON *a, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(a, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int cmd_sft(int argc, char **argv) {
    cllm_train_opts o = sft_defaults();
    sft_flags f = {.seed = (long long)o.seed,
                   .overflow = "truncate",
                   .token_init = "subword",
                   .epochs = 3,
                   .samples = 3,
                   .sample_tokens = 64,
                   .sample_penalty = 1.3f,
                   .lora_alpha = 16,
                   .lora_targets = "all-linear",
                   .lf = {.schedule = "cosine"}};
    int rc = parse(argc, argv, &o, &f);
    if (rc >= 0) return rc;
    setvbuf(stdout, NULL, _IOLBF, 0); /* a log file sees each line as it comes, as on a terminal */
    if (f.eval_only) return eval_only(&o, &f);
    if (!f.out) return usage("--out RUN is required");

    cllm_status st = CLLM_OK;
    cllm_runtime *rt = NULL;
    cllm_trainer *tr = NULL;
    cllm_batch_source *train_src = NULL, *val_src = NULL;
    cllm_sft_set all = {0}, train = {0}, val = {0};
    model_side ms = {0};
    char *saved_args = NULL, *args_json = NULL, *cmd = NULL, *extra = NULL, *report = NULL;
    cJSON *sa = NULL, *args = NULL, *rep = NULL;
    sample_row *rows = NULL;
    int n_rows = 0;
    cllm_sft_category_report cat_before = {0}, cat_after = {0};
    bool have_cat_before = false;

    /* ---- the base the flags override, and the model side */
    cllm_train_opts base = sft_defaults();
    if (f.resume) {
        if (f.init) return usage("--init does not go with --resume (the run's checkpoint has it)");
        st = cllm_train_state_read(f.out, &base, &saved_args, NULL, NULL);
        if (st != CLLM_OK) return cli_report(st);
        sa = saved_args ? cJSON_Parse(saved_args) : NULL;
        const char *ov = saved_str(sa, "overflow");
        if (f.seen_overflow && ov && strcmp(ov, f.overflow) != 0) {
            rc = usage("--overflow %s: the run was trained with --overflow %s", f.overflow, ov);
            goto done;
        }
        if (ov) f.overflow = ov;
        const cJSON *strict = cJSON_GetObjectItemCaseSensitive(sa, "strict");
        if (cJSON_IsTrue(strict)) f.strict = true;
        CLLM_TRY(load_resume(&ms, f.out));
    } else {
        if (!f.init) return usage("--init CKPT is required (the pretrained model)");
        if (!f.data) return usage("--data FILE.jsonl is required");
        cllm_sft_token_init how;
        cllm_sft_token_init_parse(f.token_init, &how);
        CLLM_TRY(load_init(&ms, f.init, how));
        double lr = recorded_lr(&ms.ck);
        if (f.lora_rank)
            base.lr = lr > 0 ? lr : SFT_LORA_FALLBACK_LR;
        else if (lr > 0)
            base.lr = lr / 10;
    }
    cllm_lora_config lora = {0};
    if (f.lora_rank) {
        lora = (cllm_lora_config){.rank = f.lora_rank, .alpha = f.lora_alpha};
        CLLM_TRY(cllm_lora_parse_targets(f.lora_targets, &lora.targets));
        CLLM_TRY(cllm_lora_config_check(&ms.ck.cfg, &lora));
    }
    if (f.val_data && f.seen_val_fraction) {
        rc = usage("give --val-data FILE or --val-fraction F, not both");
        goto done;
    }

    /* ---- the flags over the base */
    sft_flags g = f;
    g.seed = (long long)base.seed;
    g.lf = (cli_loop_flags){.schedule = cllm_schedule_kind_name(base.schedule)};
    parse(argc, argv, &base, &g);
    o = base;
    if (g.seen_seed) o.seed = (uint64_t)g.seed;
    if ((rc = cli_loop_flags_apply(SFT_CMD, &g.lf, &o)) >= 0) goto done;
    rc = -1;
    const cllm_gpt_config *cfg = &ms.ck.cfg;
    const char *data = f.data ? f.data : saved_str(sa, "data");
    /* validation may change on resume (the training data may not); unless given, the saved */
    const char *val_data = f.val_data;
    double val_fraction = f.seen_val_fraction ? f.val_fraction : 0;
    if (f.resume && !f.val_data && !f.seen_val_fraction) {
        const cJSON *vf = cJSON_GetObjectItemCaseSensitive(sa, "val_fraction");
        val_data = saved_str(sa, "val_data");
        if (cJSON_IsNumber(vf)) val_fraction = vf->valuedouble;
    }
    if (!data) {
        rc = usage("%s's state names no training data: pass --data FILE.jsonl", f.out);
        goto done;
    }
    cllm_sft_overflow ov;
    cllm_sft_overflow_parse(f.overflow, &ov);

    /* ---- the data: the row length from the longest conversation unless given */
    if (!f.resume && !g.seen_seq) {
        CLLM_TRY(read_set(&all, data, &ms.t, ms.tok, cfg->n_positions + 1, ov, f.strict));
        o.seq = longest_row(&all, cfg->n_positions);
    } else {
        if (o.seq > cfg->n_positions) {
            rc = usage("--seq %d exceeds the context of the model (n_positions %d)", o.seq,
                       cfg->n_positions);
            goto done;
        }
        CLLM_TRY(read_set(&all, data, &ms.t, ms.tok, o.seq + 1, ov, f.strict));
    }
    const int T = o.seq;
    if (val_fraction > 0) {
        CLLM_TRY(cllm_sft_split(&train, &val, &all, val_fraction, o.seed));
        cllm_sft_set_free(&all);
    } else {
        train = all;
        memset(&all, 0, sizeof all);
        if (val_data) CLLM_TRY(read_set(&val, val_data, &ms.t, ms.tok, T + 1, ov, f.strict));
    }
    print_set_notes(&train, T + 1);
    if (val.n)
        print_set_notes(&val, T + 1);
    else
        printf("data: no validation (give --val-data FILE or --val-fraction F to measure the "
               "assistant-token loss)\n");
    if (f.category_check && val.n_categories < 2) {
        rc = usage("--category-check needs validation records of at least two categories (a "
                   "\"category\" field, as cllm data make-sft writes); %s has %d",
                   val.n ? val.path : "the validation data", val.n_categories);
        goto done;
    }

    /* ---- data-dependent defaults (a resumed run keeps its saved options) */
    const int per_step = o.batch * o.grad_accum;
    const int steps_per_epoch = (train.n + per_step - 1) / per_step;
    if (!f.resume) {
        if (!g.seen_steps) {
            double s = ceil(f.epochs * train.n / per_step);
            o.steps = s < 1 ? 1 : s > 2e9 ? 2000000000 : (int)s;
        }
        if (!g.lf.seen_warmup) o.warmup = (int)lround(0.05 * o.steps);
        int every = steps_per_epoch < o.steps ? steps_per_epoch : o.steps;
        if (!g.lf.seen_eval_every) o.eval_every = val.n ? every : 0;
        if (!g.lf.seen_ckpt_every) o.ckpt_every = every;
    }
    if (!g.lf.seen_eval_batches && val.n) {
        cllm_batch_source *probe = NULL;
        CLLM_TRY(cllm_sft_source_init(&probe, &val, o.batch, T, false, false, 0));
        uint64_t vb = probe->batches(probe->self);
        cllm_batch_source_free(probe);
        o.eval_batches = vb > 2000000000 ? 2000000000 : (int)vb;
    }
    CLLM_TRY(cllm_train_opts_validate(&o));

    /* ---- sources, the record of the run, the trainer */
    CLLM_TRY(cllm_sft_source_init(&train_src, &train, o.batch, T, true, true, o.seed));
    if (val.n && o.eval_every > 0)
        CLLM_TRY(cllm_sft_source_init(&val_src, &val, o.batch, T, false, false, 0));
    args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "kind", "sft");
    cJSON_AddStringToObject(args, "data", data);
    if (val_data) cJSON_AddStringToObject(args, "val_data", val_data);
    if (val_fraction > 0) cJSON_AddNumberToObject(args, "val_fraction", val_fraction);
    cJSON_AddStringToObject(args, "overflow", f.overflow);
    cJSON_AddBoolToObject(args, "strict", f.strict);
    const char *init_saved = saved_str(sa, "init");
    if (f.init || init_saved) cJSON_AddStringToObject(args, "init", f.init ? f.init : init_saved);
    if (!f.resume) cJSON_AddStringToObject(args, "new_token_init", f.token_init);
    args_json = cJSON_PrintUnformatted(args);
    cmd = cli_command_line(argc, argv);
    if (!args_json || !cmd) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    CLLM_TRY(cllm_chat_template_write_config(&ms.t, "{}", &extra));

    cllm_runtime_opts ro = cllm_runtime_opts_default();
    ro.device_spec = f.dev;
    ro.platform_spec = f.plat;
    CLLM_TRY(cllm_runtime_init(&rt, &ro));
    const cllm_train_setup s = {.run_dir = f.out,
                                .cfg = *cfg,
                                .model_source = f.init ? f.init : f.out,
                                .init_params = ms.ck.params,
                                .lora = lora,
                                .tokenizer_json = ms.ck.tokenizer_json,
                                .config_extra_json = extra,
                                .train = train_src,
                                .val = val_src,
                                .opts = o,
                                .resume = f.resume,
                                .args_json = args_json,
                                .command_line = cmd,
                                .stop = &g_stop,
                                .stop_at = g.lf.stop_at,
                                .time_limit_s = g.lf.time_limit,
                                .log = stdout,
                                .tty = isatty(STDOUT_FILENO)};
    CLLM_TRY(cllm_trainer_init(&tr, rt, &s));
    free(ms.ck.params); /* uploaded */
    ms.ck.params = NULL;
    cllm_gpt *m = cllm_trainer_model(tr);
    const int step0 = cllm_trainer_step(tr);

    /* ---- before: replies and the category check */
    n_rows = val.n < f.samples ? val.n : f.samples;
    rows = n_rows ? cllm_calloc((size_t)n_rows, sizeof *rows) : NULL;
    if (n_rows && !rows) {
        st = CLLM_ERR_NOMEM;
        goto fail;
    }
    for (int i = 0; i < n_rows; i++) {
        CLLM_TRY(sample_prompt(&val, i, ms.tok, &rows[i]));
        CLLM_TRY(reply(m, ms.tok, &ms.t, &val, i, f.sample_tokens, f.sample_penalty,
                           &rows[i].before));
    }
    cllm_sft_category_opts co = {.max_items = f.category_items,
                                 .n_wrong = f.category_wrong,
                                 .seed = o.seed,
                                 .B = o.batch,
                                 .T = T};
    if (f.category_check) {
        CLLM_TRY(cllm_sft_category_check(m, ms.tok, &ms.t, &val, &co, &cat_before));
        have_cat_before = true; /* printed with the one after training */
    }

    /* ---- training */
    cli_catch_stop(&g_stop, SFT_CMD);
    st = cllm_trainer_run(tr);
    bool interrupted = st == CLLM_ERR_INTERRUPTED;
    if (interrupted) {
        printf("%s\n", cllm_last_error());
        st = CLLM_OK;
    }
    if (st != CLLM_OK) goto fail;
    const int step1 = cllm_trainer_step(tr);
    if (interrupted) goto done_ok; /* the user wants out: no second round of replies */

    /* ---- after */
    for (int i = 0; i < n_rows; i++)
        CLLM_TRY(reply(m, ms.tok, &ms.t, &val, i, f.sample_tokens, f.sample_penalty,
                           &rows[i].after));
    if (n_rows) {
        printf("replies to validation prompts (greedy, repetition penalty %g, at most %d tokens), "
               "at step %d and at step %d:\n",
               (double)f.sample_penalty, f.sample_tokens, step0, step1);
        for (int i = 0; i < n_rows; i++) {
            printf("  [%d]%s%s%s\n", i + 1, rows[i].category ? " (" : "",
                   rows[i].category ? rows[i].category : "", rows[i].category ? ")" : "");
            print_flat("prompt", rows[i].prompt);
            print_flat("reference", rows[i].reference);
            char lb[32], la[32];
            snprintf(lb, sizeof lb, "step %d", step0);
            snprintf(la, sizeof la, "step %d", step1);
            print_flat(lb, rows[i].before);
            print_flat(la, rows[i].after);
        }
    }
    if (f.category_check) {
        CLLM_TRY(cllm_sft_category_check(m, ms.tok, &ms.t, &val, &co, &cat_after));
        char when[48];
        snprintf(when, sizeof when, "at step %d", step0);
        print_category(when, &cat_before);
        snprintf(when, sizeof when, "at step %d", step1);
        print_category(when, &cat_after);
    }
    /* RUN/sft_report.json: what the run measured */
    rep = cJSON_CreateObject();
    cJSON_AddNumberToObject(rep, "step_before", step0);
    cJSON_AddNumberToObject(rep, "sample_repetition_penalty", f.sample_penalty);
    {
        const cllm_lora_config *lc = cllm_gpt_get_lora(m);
        cllm_gpt_opts go = {.max_batch = o.batch, .max_seq = T, .training = true, .lora = *lc};
        cJSON_AddNumberToObject(rep, "device_memory_bytes",
                                (double)cllm_gpt_memory_required(cfg, &go));
        if (lc->rank) {
            go.lora.rank = 0;
            char targets[96];
            cllm_lora_targets_text(lc->targets, targets, sizeof targets);
            cJSON *l = cJSON_CreateObject();
            cJSON_AddNumberToObject(l, "rank", lc->rank);
            cJSON_AddNumberToObject(l, "alpha", lc->alpha);
            cJSON_AddStringToObject(l, "targets", targets);
            cJSON_AddNumberToObject(l, "trainable", (double)cllm_lora_numel(cfg, lc));
            cJSON_AddNumberToObject(l, "full_finetune_device_memory_bytes",
                                    (double)cllm_gpt_memory_required(cfg, &go));
            cJSON_AddItemToObject(rep, "lora", l);
        }
    }
    cJSON_AddNumberToObject(rep, "step", step1);
    double vb = val_before(f.out), va = cllm_trainer_last_val_loss(tr);
    if (isfinite(vb)) cJSON_AddNumberToObject(rep, "val_loss_step0", vb);
    if (isfinite(va)) cJSON_AddNumberToObject(rep, "val_loss", va);
    if (isfinite(vb) && isfinite(va))
        printf("assistant-token validation loss: %.4f at step 0 -> %.4f at step %d\n", vb, va,
               step1);
    if (f.category_check) {
        cJSON *c = cJSON_CreateObject();
        if (have_cat_before) cJSON_AddItemToObject(c, "before", category_json(&cat_before));
        cJSON_AddItemToObject(c, "after", category_json(&cat_after));
        cJSON_AddItemToObject(rep, "category_check", c);
    }
    cJSON *sm = cJSON_CreateArray();
    for (int i = 0; i < n_rows; i++) {
        cJSON *r = cJSON_CreateObject();
        if (rows[i].category) cJSON_AddStringToObject(r, "category", rows[i].category);
        cJSON_AddStringToObject(r, "prompt", rows[i].prompt);
        cJSON_AddStringToObject(r, "reference", rows[i].reference);
        cJSON_AddStringToObject(r, "before", rows[i].before);
        cJSON_AddStringToObject(r, "after", rows[i].after);
        cJSON_AddItemToArray(sm, r);
    }
    cJSON_AddItemToObject(rep, "samples", sm);
    report = cJSON_Print(rep);
    if (!report) {
        st = CLLM_ERR_NOMEM;
        goto fail;
    }
    {
        char *p = cllm_path_join(f.out, "sft_report.json");
        st = p ? cllm_write_file_atomic(p, report, strlen(report)) : CLLM_ERR_NOMEM;
        if (st == CLLM_OK) printf("report: %s\n", p);
        free(p);
        if (st != CLLM_OK) goto fail;
    }
done_ok:
fail:
    rc = cli_report(st);
done:
    free_rows(rows, n_rows);
    cllm_trainer_free(tr);
    cllm_batch_source_free(train_src);
    cllm_batch_source_free(val_src);
    cllm_runtime_free(rt);
    cllm_sft_set_free(&all);
    cllm_sft_set_free(&train);
    cllm_sft_set_free(&val);
    cllm_checkpoint_clear(&ms.ck);
    cllm_tokenizer_free(ms.tok);
    cJSON_Delete(sa);
    cJSON_Delete(args);
    cJSON_Delete(rep);
    free(saved_args);
    free(args_json);
    free(cmd);
    free(extra);
    free(report);
    return rc;
}
