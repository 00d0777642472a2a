/* cllm train: pretraining from token shards, a thin front end over cllm/train.h. Options come
 * from, in rising priority: built-in defaults, the model config's "training" section (or, with
 * --resume, the options the run was saved with), then the flags. */
#include "args.h"
#include "commands.h"
#include "train_flags.h"

#include "cllm/checkpoint.h"
#include "cllm/tokenizer.h"
#include "cllm/train.h"
#include "cllm/util.h"
#include "data_internal.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t g_stop;

/* What the flags set besides cllm_train_opts. */
typedef struct {
    const char *model, *init, *data, *out, *dev, *plat, *order, *sample_prompt;
    long long seed;
    bool resume;
    bool seen_seed, seen_order, seen_seq;
    cli_loop_flags lf;
} train_flags;

static const char SUMMARY[] =
    "Pretrain a GPT model on token shards (cllm data prepare's train_*.bin / val_*.bin, or\n"
    "llm.c's): AdamW with warmup and a cosine (or linear, constant) schedule, gradient\n"
    "accumulation, global-norm clipping, validation loss and perplexity, crash-safe\n"
    "checkpoints and exact resume. Options take their defaults from the model config's\n"
    "\"training\" section, then from the flags; with --resume from the options the run was\n"
    "saved with (--batch, --seq and --seed cannot change; --steps, --lr, ... can).\n"
    "\n"
    "RUN receives config.json (Hugging Face GPT-2), train_args.json (effective options),\n"
    "command.txt (every command line that ran it), metrics.jsonl (one object per step: step,\n"
    "loss, lr, grad_norm, tokens_per_s, tokens, time_s, val_loss and val_ppl when measured)\n"
    "and step_NNNNNNNN/ checkpoints (model.safetensors, config.json, tokenizer.json,\n"
    "optimizer.safetensors, state.json) with RUN/latest naming the newest.\n"
    "Ctrl-C finishes the current step, writes a checkpoint and exits 0; --resume continues.";

static const char EPILOG[] =
    "examples:\n"
    "  cllm tokenizer train --input /usr/share/games/fortunes/{computers,cookie,definitions,"
    "fortunes,\\\n      literature,people,platitudes,science,wisdom} --vocab-size 4096 -o "
    "tok.json\n"
    "  cllm data prepare /usr/share/games/fortunes --doc-separator % --tokenizer tok.json --out "
    "data/fortunes\n"
    "  cllm train --model models/gpt-nano.json --data data/fortunes --out runs/nano --steps 2000\n"
    "  cllm train --model models/gpt-nano.json --data data/fortunes --out runs/nano \\\n"
    "      --steps 2000 --sample-every 200 --sample-prompt 'The computer'\n"
    "  cllm train --out runs/nano --resume                    # after Ctrl-C or a crash\n"
    "  cllm train --out runs/nano --resume --steps 4000       # train further\n"
    "  cllm train --init runs/nano --data data/other --out runs/nano-other --lr 1e-4\n"
    "exit codes: 0 done (or stopped by Ctrl-C with a checkpoint), 1 runtime error, 2 usage error";

/* Parse argv into `o` and `f` (called twice: once for --model/--resume, once over the base
 * options they select). */
static int parse(int argc, char **argv, cllm_train_opts *o, train_flags *f) {
    const cli_opt opts[] = {
        {"model", 'm', CLI_STR, &f->model, "FILE", "model config (JSON, Hugging Face GPT-2 keys)"},
        {"init", 0, CLI_STR, &f->init, "CKPT",
         "start from a checkpoint's weights (a run, step or Hugging Face directory) with a "
         "fresh optimizer"},
        {"data", 'd', CLI_STR, &f->data, "DIR",
         "directory of train_*.bin and val_*.bin shards (its tokenizer.json is stored)"},
        {"out", 'o', CLI_STR, &f->out, "RUN", "run directory", .required = true},
        {"resume", 0, CLI_FLAG, &f->resume, NULL,
         "continue RUN from its latest checkpoint, everything restored"},
        {"steps", 'n', CLI_INT, &o->steps, "N", "optimizer steps in the whole run", .lo = 1,
         .hi = 2e9},
        {"batch", 'b', CLI_INT, &o->batch, "B", "sequences per micro-batch", .lo = 1,
         .hi = 1 << 20},
        {"seq", 't', CLI_INT, &o->seq, "T",
         "tokens per sequence (at most n_positions; the default is cut to it)", .lo = 1,
         .hi = 1 << 16, .seen = &f->seen_seq},
        CLI_LOOP_OPTS(o, &f->lf, false),
        {"seed", 0, CLI_I64, &f->seed, "N", "seed of the weights, the data order and the samples",
         .lo = 0, .hi = 9.2e18, .seen = &f->seen_seed},
        {"data-order", 0, CLI_CHOICE, &f->order, NULL,
         "shuffled: each epoch a permutation of the windows drawn from (seed, epoch)",
         .choices = "shuffled|sequential", .seen = &f->seen_order},
        {"sample-every", 0, CLI_INT, &o->sample_every, "N",
         "print a generated sample every N steps and at the end, also to RUN/samples.jsonl "
         "(0 = off)",
         .lo = 0, .hi = 2e9},
        {"sample-tokens", 0, CLI_INT, &o->sample_tokens, "N", "new tokens per sample", .lo = 1,
         .hi = 1 << 20},
        {"sample-prompt", 0, CLI_STR, &f->sample_prompt, "TEXT",
         "what samples continue (default: <|endoftext|>, a new document)"},
        CLI_DEVICE_OPTS(&f->dev, &f->plat),
    };
    const cli_spec spec = {"cllm train",
                           "--model FILE | --init CKPT --data DIR --out RUN [options]\n"
                           "       cllm train --out RUN --resume [options]",
                           SUMMARY,
                           opts,
                           CLI_COUNT(opts),
                           EPILOG,
                           0,
                           0};
    return cli_parse(&spec, argc, argv, NULL);
}

#define usage(...) cli_usage_cmd("cllm train", __VA_ARGS__)

static bool has_split(const char *dir, const char *split) {
    DIR *d = opendir(dir);
    if (!d) return false;
    struct dirent *e;
    bool found = false;
    while (!found && (e = readdir(d)) != NULL)
        found = cllm_shard_name_in_split(e->d_name, split);
    closedir(d);
    return found;
}

/* The validation source: the val split in order, in batches of at most B (a small split gets
 * one smaller batch rather than none). *val stays NULL when DIR has no val shards. */
static cllm_status open_val(cllm_batch_source **val, const char *dir, int B, int T) {
    *val = NULL;
    if (!has_split(dir, "val")) {
        fprintf(stderr, "cllm train: %s has no val_*.bin shards: no validation\n", dir);
        return CLLM_OK;
    }
    cllm_loader_opts lo = {.dir = dir, .split = "val", .B = 1, .T = T, .world = 1};
    cllm_loader *l = NULL;
    cllm_status st = cllm_loader_init(&l, &lo);
    if (st != CLLM_OK) {
        if (st != CLLM_ERR_USAGE) return st;
        fprintf(stderr,
                "cllm train: %s: the val split is shorter than one sequence of %d+1 tokens: "
                "no validation\n",
                dir, T);
        return CLLM_OK;
    }
    uint64_t windows = cllm_loader_num_windows(l);
    cllm_loader_free(l);
    lo.B = windows < (uint64_t)B ? (int)windows : B;
    return cllm_pretrain_source_init(val, &lo);
}

/* The tokenizer to store: the data's tokenizer.json, else the --init checkpoint's. A data
 * tokenizer that differs from the checkpoint's is worth a warning: the ids may not mean the
 * same. *json may stay NULL (llm.c shards without a tokenizer). */
static cllm_status pick_tokenizer(const char *data, const char *ck_tok, const char *init,
                                  char **json) {
    *json = NULL;
    char *p = cllm_path_join(data, "tokenizer.json");
    cllm_status st = CLLM_OK;
    if (p && cllm_is_file(p)) {
        cllm_tokenizer *tok = NULL;
        st = cllm_tokenizer_load(&tok, p);
        if (st == CLLM_OK) *json = cllm_tokenizer_to_json(tok);
        cllm_tokenizer_free(tok);
        if (st == CLLM_OK && !*json) st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        if (st == CLLM_OK && ck_tok) {
            cllm_tokenizer *other = NULL;
            char *norm = NULL;
            if (cllm_tokenizer_from_json(&other, ck_tok, strlen(ck_tok), init) == CLLM_OK)
                norm = cllm_tokenizer_to_json(other);
            if (!norm || strcmp(norm, *json) != 0)
                fprintf(stderr,
                        "cllm train: warning: %s differs from the tokenizer of %s; storing "
                        "the data's\n",
                        p, init);
            free(norm);
            cllm_tokenizer_free(other);
        }
    } else if (ck_tok) {
        *json = strdup(ck_tok);
    } else {
        fprintf(stderr,
                "cllm train: warning: %s has no tokenizer.json; the checkpoints will have "
                "none\n",
                data);
    }
    free(p);
    return st;
}

int cmd_train(int argc, char **argv) {
    cllm_train_opts o = cllm_train_opts_default();
    train_flags f = {.seed = (long long)o.seed, .order = "shuffled", .lf = {.schedule = "cosine"}};
    int rc = parse(argc, argv, &o, &f);
    if (rc >= 0) return rc;

    cllm_status st = CLLM_OK;
    cllm_runtime *rt = NULL;
    cllm_trainer *tr = NULL;
    cllm_batch_source *train = NULL, *val = NULL;
    cllm_checkpoint init = {0};
    cllm_gpt_config cfg = {0};
    char *args_json = NULL, *saved_args = NULL, *tok_json = NULL, *cmd = NULL, *data_saved = NULL,
         *prompt_saved = NULL, *model_saved = NULL, *init_saved = NULL;
    const char *model_source = NULL;
    cJSON *args = NULL;

    /* the base the flags override */
    cllm_train_opts base = cllm_train_opts_default();
    const char *order = "shuffled";
    if (f.resume) {
        if (f.model || f.init)
            return usage("--%s does not go with --resume (the run's checkpoint has the model)",
                         f.model ? "model" : "init");
        st = cllm_train_state_read(f.out, &base, &saved_args, NULL, NULL);
        if (st != CLLM_OK) return cli_report(st);
        cJSON *sa = saved_args ? cJSON_Parse(saved_args) : NULL;
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(sa, "data"),
                    *od = cJSON_GetObjectItemCaseSensitive(sa, "data_order");
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(sa, "sample_prompt");
        if (cJSON_IsString(d)) data_saved = strdup(d->valuestring);
        if (cJSON_IsString(sp)) prompt_saved = strdup(sp->valuestring);
        /* where the model came from stays in the record across sessions */
        const cJSON *sm = cJSON_GetObjectItemCaseSensitive(sa, "model"),
                    *si = cJSON_GetObjectItemCaseSensitive(sa, "init");
        if (cJSON_IsString(sm)) model_saved = strdup(sm->valuestring);
        if (cJSON_IsString(si)) init_saved = strdup(si->valuestring);
        if (cJSON_IsString(od) && !strcmp(od->valuestring, "sequential")) order = "sequential";
        cJSON_Delete(sa);
        if (f.seen_order && strcmp(f.order, order) != 0) {
            free(saved_args);
            free(data_saved);
            free(prompt_saved);
            free(model_saved);
            free(init_saved);
            return usage("--data-order %s: the run was trained with --data-order %s", f.order,
                         order);
        }
    } else {
        if (!f.model == !f.init) return usage("give one of --model FILE or --init CKPT");
        if (!f.data) return usage("--data DIR is required");
        if (f.model) {
            st = cllm_gpt_config_load(f.model, &cfg);
            if (st == CLLM_OK) st = cllm_train_opts_apply_config(&base, f.model);
            if (st != CLLM_OK) return cli_report(st);
            model_source = f.model;
        } else {
            st = cllm_checkpoint_load(f.init, false, &init);
            if (st != CLLM_OK) return cli_report(st);
            cfg = init.cfg;
            model_source = f.init;
        }
    }
    /* the flags over the base */
    train_flags g = {.seed = (long long)base.seed,
                     .lf = {.schedule = cllm_schedule_kind_name(base.schedule)},
                     .order = order};
    parse(argc, argv, &base, &g);
    o = base;
    if (g.seen_seed) o.seed = (uint64_t)g.seed;
    if ((rc = cli_loop_flags_apply("cllm train", &g.lf, &o)) >= 0) goto done;
    rc = -1;
    /* the built-in sequence length is a default, not a demand: a smaller model gets its own */
    if (!f.resume && !g.seen_seq && o.seq == cllm_train_opts_default().seq &&
        o.seq > cfg.n_positions)
        o.seq = cfg.n_positions;
    order = g.order;
    const char *data = f.data ? f.data : data_saved;
    const char *prompt = g.sample_prompt ? g.sample_prompt : prompt_saved;
    if (!data) {
        rc = usage("%s's state names no data directory: pass --data DIR", f.out);
        goto done;
    }
    CLLM_TRY(cllm_train_opts_validate(&o));

    cllm_loader_opts lo = {.dir = data,
                           .split = "train",
                           .B = o.batch,
                           .T = o.seq,
                           .shuffle = !strcmp(order, "shuffled"),
                           .seed = o.seed,
                           .world = 1};
    CLLM_TRY(cllm_pretrain_source_init(&train, &lo));
    if (o.eval_every > 0) CLLM_TRY(open_val(&val, data, o.batch, o.seq));
    CLLM_TRY(pick_tokenizer(data, init.tokenizer_json, f.init, &tok_json));

    args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "data", data);
    cJSON_AddStringToObject(args, "data_order", order);
    if (f.model || model_saved) cJSON_AddStringToObject(args, "model", f.model ? f.model : model_saved);
    if (f.init || init_saved) cJSON_AddStringToObject(args, "init", f.init ? f.init : init_saved);
    if (prompt) cJSON_AddStringToObject(args, "sample_prompt", prompt);
    args_json = cJSON_PrintUnformatted(args);
    cmd = cli_command_line(argc, argv);
    if (!args_json || !cmd) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        goto fail;
    }

    cllm_runtime_opts ro = cllm_runtime_opts_default();
    ro.device_spec = f.dev;
    ro.platform_spec = f.plat;
    CLLM_TRY(cllm_runtime_init(&rt, &ro));
    const cllm_train_setup s = {.run_dir = f.out,
                                .cfg = cfg,
                                .model_source = model_source,
                                .init_params = init.params,
                                .tokenizer_json = tok_json,
                                .train = train,
                                .val = val,
                                .opts = o,
                                .resume = f.resume,
                                .args_json = args_json,
                                .command_line = cmd,
                                .stop = &g_stop,
                                .stop_at = g.lf.stop_at,
                                .time_limit_s = g.lf.time_limit,
                                .sample_prompt = prompt,
                                .log = stdout,
                                .tty = isatty(STDOUT_FILENO)};
    CLLM_TRY(cllm_trainer_init(&tr, rt, &s));
    free(init.params); /* uploaded */
    init.params = NULL;
    cli_catch_stop(&g_stop, "cllm train");
    st = cllm_trainer_run(tr);
    if (st == CLLM_ERR_INTERRUPTED) {
        printf("%s\n", cllm_last_error());
        st = CLLM_OK;
    }
fail:
    rc = cli_report(st);
done:
    cllm_trainer_free(tr);
    cllm_batch_source_free(train);
    cllm_batch_source_free(val);
    cllm_runtime_free(rt);
    cllm_checkpoint_clear(&init);
    cJSON_Delete(args);
    free(args_json);
    free(saved_args);
    free(data_saved);
    free(prompt_saved);
    free(model_saved);
    free(init_saved);
    free(tok_json);
    free(cmd);
    return rc;
}
