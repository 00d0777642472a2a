/* The training loop (cllm/train.h): accumulation, schedule, clipping, AdamW, validation, the
 * overflow guard, metrics.jsonl, checkpoints with the whole training state, exact resume.
 *
 * Shapes: B = opts.batch, T = opts.seq, k = opts.grad_accum; a step reads k micro-batches of
 * (B, T) inputs and targets. The device model is built for (B, T); validation batches may be
 * smaller in B.
 */
#include "cllm/train.h"

#include "cllm/checkpoint.h"
#include "cllm/lora.h"
#include "cllm/generate.h"
#include "cllm/sample.h"
#include "cllm/tokenizer.h"
#include "cllm/util.h"
#include "data_internal.h"
#include "train_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct cllm_trainer {
    cllm_runtime *rt;
    cllm_train_setup s; /* the caller's setup; its strings are replaced by our copies below */
    cllm_train_opts o;
    cllm_gpt_config cfg;
    cllm_gpt *m;
    FILE *log;
    char *run, *model_source, *config_json, *tokenizer_json, *args_json, *resumed_from;
    cllm_tokenizer *tok; /* the stored tokenizer, parsed (NULL: none) */
    uint32_t *prompt;    /* (n_prompt) the samples' prompt */
    int n_prompt;
    /* the training state (state.json) */
    int step, adam_step, skips;
    uint64_t tokens;
    double time_base; /* time_s of the checkpoint resumed from */
    cllm_rng rng;
    /* this session */
    int start_step;
    double t_start;
    bool nothing_to_do;          /* resumed at or past opts.steps */
    uint32_t *in, *tg;           /* (k, B, T) each: the micro-batches of one step */
    int *valid;                  /* (k) valid targets of each */
    float *h_params, *h_m, *h_v; /* host copies for checkpoints: the weights (layout.total), and
                                    the moments of what is trained (the weights, or the adapters) */
    size_t n_params;
    cllm_lora_config lora; /* rank > 0: only these adapters are trained */
    float *h_lora;         /* (n_lora) host copy of the adapters */
    size_t n_lora;
    FILE *metrics, *samples;
    char *metrics_path, *samples_path;
    char *last_ckpt;
    int last_ckpt_step;
    double last_val;
    bool progress_open; /* a tty progress line is on screen */
};

/* ---------------------------------------------------------------- small helpers */

static void fmt_duration(double s, char *out, size_t cap) {
    if (!isfinite(s) || s < 0) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(out, cap, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60)
        snprintf(out, cap, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(out, cap, "%lds", t);
}

static double now_s(const cllm_trainer *t) {
    return t->time_base + (cllm_now() - t->t_start);
}

/* A line of the log that stays (ends a tty progress line first). */
static void log_line(cllm_trainer *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_line(cllm_trainer *t, const char *fmt, ...) {
    if (t->progress_open) {
        fputs("\r\033[K", t->log);
        t->progress_open = false;
    }
    va_list ap;
    va_start(ap, fmt);
    vfprintf(t->log, fmt, ap);
    va_end(ap);
    fputc('\n', t->log);
    fflush(t->log);
}

static int count_valid(const uint32_t *tg, size_t n) {
    int v = 0;
    for (size_t i = 0; i < n; i++)
        v += tg[i] != CLLM_IGNORE_TARGET;
    return v;
}

static cllm_status write_text_file(const char *dir, const char *name, const char *text) {
    char *p = cllm_path_join(dir, name);
    if (!p) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    cllm_status st = cllm_write_file_atomic(p, text, strlen(text));
    free(p);
    return st;
}

/* config.json: the model's Hugging Face keys plus the keys of `extra` (a JSON object). */
static cllm_status build_config_json(const cllm_gpt_config *cfg, const char *base,
                                     const char *extra, char **out) {
    *out = NULL;
    char *gen = base ? NULL : cllm_gpt_config_to_json(cfg);
    cJSON *root = cJSON_Parse(base ? base : gen), *ex = NULL;
    free(gen);
    cllm_status st = CLLM_OK;
    if (!cJSON_IsObject(root)) {
        st = cllm_fail(CLLM_ERR_FORMAT, "config.json is not a JSON object");
        goto done;
    }
    if (extra) {
        ex = cJSON_Parse(extra);
        if (!cJSON_IsObject(ex)) {
            st = cllm_fail(CLLM_ERR_USAGE, "config_extra_json is not a JSON object");
            goto done;
        }
        for (cJSON *it = ex->child; it; it = it->next) {
            cJSON *dup = cJSON_Duplicate(it, 1);
            if (!dup) {
                st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
                goto done;
            }
            if (cJSON_GetObjectItemCaseSensitive(root, it->string))
                cJSON_ReplaceItemInObjectCaseSensitive(root, it->string, dup);
            else
                cJSON_AddItemToObject(root, it->string, dup);
        }
    }
    char *s = cJSON_Print(root);
    *out = s ? cllm_strdup_printf("%s\n", s) : NULL;
    free(s);
    if (!*out) st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
done:
    cJSON_Delete(root);
    cJSON_Delete(ex);
    return st;
}

/* Keep only the lines of a JSONL log whose "step" is at most `step` (those written after the
 * checkpoint a resume starts from go, and so does a line a crash cut short). */
static cllm_status truncate_jsonl(const char *path, int step, int *dropped) {
    *dropped = 0;
    if (!cllm_is_file(path)) return CLLM_OK;
    char *text = NULL, *kept = NULL;
    size_t len = 0, n = 0;
    cllm_status st = cllm_read_file(path, &text, &len);
    if (st != CLLM_OK) return st;
    kept = cllm_malloc(len + 1);
    if (!kept) {
        free(text);
        return CLLM_ERR_NOMEM;
    }
    for (char *line = text; line < text + len;) {
        char *nl = memchr(line, '\n', (size_t)(text + len - line));
        if (!nl) { /* a last line without its newline: cut short by a crash */
            (*dropped)++;
            break;
        }
        *nl = 0;
        cJSON *o = cJSON_Parse(line);
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "step");
        if (cJSON_IsNumber(s) && s->valuedouble <= step) {
            size_t l = (size_t)(nl - line);
            memcpy(kept + n, line, l);
            kept[n + l] = '\n';
            n += l + 1;
        } else if (*line) {
            (*dropped)++;
        }
        cJSON_Delete(o);
        line = nl + 1;
    }
    if (*dropped) st = cllm_write_file_atomic(path, kept, n);
    free(kept);
    free(text);
    return st;
}

/* ---------------------------------------------------------------- state.json */

static char *state_json(cllm_trainer *t) {
    cJSON *o = cJSON_CreateObject(), *rng = cJSON_CreateArray();
    cJSON_AddStringToObject(o, "format", "cllm-train-state");
    cJSON_AddNumberToObject(o, "version", 1);
    cJSON_AddNumberToObject(o, "step", t->step);
    cJSON_AddNumberToObject(o, "adam_step", t->adam_step);
    cJSON_AddNumberToObject(o, "skips_in_row", t->skips);
    cJSON_AddItemToObject(o, "tokens", cllm_json_u64(t->tokens));
    cJSON_AddNumberToObject(o, "time_s", now_s(t));
    for (int i = 0; i < 4; i++) {
        char b[24];
        snprintf(b, sizeof b, "%llu", (unsigned long long)t->rng.s[i]);
        cJSON_AddItemToArray(rng, cJSON_CreateString(b));
    }
    cJSON_AddItemToObject(o, "rng", rng);
    cllm_schedule sc = {t->o.schedule, t->o.lr, cllm_train_min_lr(&t->o), t->o.warmup, t->o.steps};
    cJSON *sj = cJSON_CreateObject();
    cJSON_AddStringToObject(sj, "kind", cllm_schedule_kind_name(sc.kind));
    cJSON_AddNumberToObject(sj, "lr", sc.lr);
    cJSON_AddNumberToObject(sj, "min_lr", sc.min_lr);
    cJSON_AddNumberToObject(sj, "warmup", (double)sc.warmup);
    cJSON_AddNumberToObject(sj, "total", (double)sc.total);
    cJSON_AddNumberToObject(sj, "next_lr", cllm_schedule_lr(&sc, t->step + 1));
    cJSON_AddItemToObject(o, "schedule", sj);
    char *opts = cllm_train_opts_to_json(&t->o);
    cJSON_AddItemToObject(o, "options", cJSON_Parse(opts));
    free(opts);
    char *pos = t->s.train->get_position ? t->s.train->get_position(t->s.train->self) : NULL;
    if (pos) cJSON_AddItemToObject(o, "data", cJSON_Parse(pos));
    free(pos);
    if (t->args_json) cJSON_AddItemToObject(o, "args", cJSON_Parse(t->args_json));
    if (isfinite(t->last_val)) cJSON_AddNumberToObject(o, "val_loss", t->last_val);
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    return s;
}

/* Restore the state of a resumed run from its state.json text. */
static cllm_status restore_state(cllm_trainer *t, const char *text, const char *path) {
    cJSON *o = cJSON_Parse(text);
    cllm_status st = CLLM_OK;
    const cJSON *step = cJSON_GetObjectItemCaseSensitive(o, "step"),
                *adam = cJSON_GetObjectItemCaseSensitive(o, "adam_step"),
                *skips = cJSON_GetObjectItemCaseSensitive(o, "skips_in_row"),
                *time = cJSON_GetObjectItemCaseSensitive(o, "time_s"),
                *rng = cJSON_GetObjectItemCaseSensitive(o, "rng"),
                *opts = cJSON_GetObjectItemCaseSensitive(o, "options"),
                *data = cJSON_GetObjectItemCaseSensitive(o, "data");
    uint64_t tokens = 0;
    if (!cJSON_IsNumber(step) || !cJSON_IsNumber(adam) || !cJSON_IsNumber(time) ||
        !CLLM_JSON_U64(o, "tokens", &tokens) || cJSON_GetArraySize(rng) != 4 ||
        !cJSON_IsObject(opts) || step->valuedouble < 0 || adam->valuedouble < 0 ||
        adam->valuedouble > step->valuedouble) {
        st = cllm_fail(CLLM_ERR_FORMAT,
                       "%s: not a cllm training state (step, adam_step, tokens, time_s, rng, "
                       "options)",
                       path);
        goto done;
    }
    for (int i = 0; i < 4; i++)
        if (!cllm_json_as_u64(cJSON_GetArrayItem(rng, i), &t->rng.s[i])) {
            st = cllm_fail(CLLM_ERR_FORMAT, "%s: \"rng\" must hold four uint64 values", path);
            goto done;
        }
    /* What the data order depends on cannot change. */
    cllm_train_opts saved = cllm_train_opts_default();
    char *os = cJSON_PrintUnformatted(opts);
    st = os ? cllm_train_opts_apply_json(&saved, os, path) : CLLM_ERR_NOMEM;
    free(os);
    if (st != CLLM_OK) goto done;
    const char *what = saved.batch != t->o.batch ? "--batch"
                       : saved.seq != t->o.seq   ? "--seq"
                       : saved.seed != t->o.seed ? "--seed"
                                                 : NULL;
    if (what) {
        st = cllm_fail(CLLM_ERR_USAGE,
                       "%s: the run was trained with batch %d, seq %d, seed %llu; a resumed run "
                       "keeps them (%s differs)",
                       path, saved.batch, saved.seq, (unsigned long long)saved.seed, what);
        goto done;
    }
    t->step = (int)step->valuedouble;
    t->adam_step = (int)adam->valuedouble;
    t->skips = cJSON_IsNumber(skips) ? (int)skips->valuedouble : 0;
    t->tokens = tokens;
    t->time_base = time->valuedouble;
    const cJSON *vl = cJSON_GetObjectItemCaseSensitive(o, "val_loss");
    if (cJSON_IsNumber(vl)) t->last_val = vl->valuedouble;
    if (t->s.train->set_position) {
        if (!cJSON_IsObject(data)) {
            st = cllm_fail(CLLM_ERR_FORMAT, "%s: no \"data\" position to resume the batches from",
                           path);
            goto done;
        }
        char *ds = cJSON_PrintUnformatted(data);
        st = ds ? t->s.train->set_position(t->s.train->self, ds) : CLLM_ERR_NOMEM;
        free(ds);
        if (st != CLLM_OK) st = cllm_fail_context(st, "resuming %s", path);
    }
done:
    cJSON_Delete(o);
    return st;
}

/* ---------------------------------------------------------------- init */

static char *dup_or_null(const char *s) {
    return s ? strdup(s) : NULL;
}

/* The checkpoint a resume starts from: weights, moments, config, tokenizer, state. */
static cllm_status load_resume(cllm_trainer *t, cllm_checkpoint *ck) {
    char *dir = cllm_checkpoint_latest(t->run);
    if (!dir) return cllm_fail_context(CLLM_ERR_IO, "cannot resume");
    cllm_status st = cllm_checkpoint_load(dir, true, ck);
    if (st != CLLM_OK) {
        st = cllm_fail_context(st, "cannot resume from %s", dir);
        free(dir);
        return st;
    }
    t->resumed_from = dir;
    const bool lora = ck->lora.rank > 0;
    if (!ck->state_json || !(lora ? ck->lora_m != NULL : ck->adam_m != NULL))
        return cllm_fail(CLLM_ERR_FORMAT,
                         "cannot resume from %s: it has no %s (not a training checkpoint; start a "
                         "new run from its weights with --init)",
                         dir,
                         !ck->state_json ? "state.json"
                         : lora          ? CLLM_LORA_OPTIMIZER_FILE
                                         : "optimizer.safetensors");
    if (t->s.lora.rank > 0 &&
        (!lora || t->s.lora.rank != ck->lora.rank || t->s.lora.alpha != ck->lora.alpha ||
         t->s.lora.targets != ck->lora.targets))
        return cllm_fail(CLLM_ERR_USAGE,
                         "cannot resume %s with LoRA rank %d: the run trained %s", t->run,
                         t->s.lora.rank, lora ? "adapters of another rank, alpha or targets"
                                              : "all the weights");
    t->lora = ck->lora; /* a resumed run trains what it trained */
    return CLLM_OK;
}

static cllm_status check_sources(cllm_trainer *t) {
    const cllm_batch_source *tr = t->s.train, *va = t->s.val;
    if (!tr || !tr->next)
        return cllm_fail(CLLM_ERR_USAGE, "training needs a batch source with next()");
    if (tr->batch != t->o.batch || tr->seq != t->o.seq)
        return cllm_fail(CLLM_ERR_USAGE,
                         "the batch source %s makes %d x %d micro-batches, the options say "
                         "batch %d x seq %d",
                         tr->name ? tr->name : "", tr->batch, tr->seq, t->o.batch, t->o.seq);
    if (va && (!va->next || !va->rewind || !va->batches || va->seq != t->o.seq || va->batch < 1 ||
               va->batch > t->o.batch))
        return cllm_fail(CLLM_ERR_USAGE,
                         "the validation source %s needs next, rewind and batches, seq %d and a "
                         "batch of at most %d",
                         va->name ? va->name : "", t->o.seq, t->o.batch);
    if (t->o.seq > t->cfg.n_positions)
        return cllm_fail(CLLM_ERR_USAGE, "--seq %d exceeds the context of %s (n_positions %d)",
                         t->o.seq, t->model_source, t->cfg.n_positions);
    const cllm_batch_source *both[2] = {tr, va};
    for (int i = 0; i < 2; i++) {
        if (!both[i] || !both[i]->max_token) continue;
        uint32_t mx = both[i]->max_token(both[i]->self);
        if (mx >= (uint32_t)t->cfg.vocab_size)
            return cllm_fail(CLLM_ERR_USAGE,
                             "%s holds token id %u but %s has vocab_size %d: prepare the data "
                             "with a tokenizer of at most %d tokens, or use a model with a "
                             "larger vocabulary",
                             both[i]->name ? both[i]->name : "the data", mx, t->model_source,
                             t->cfg.vocab_size, t->cfg.vocab_size);
    }
    if (t->tokenizer_json) {
        cllm_status st = cllm_tokenizer_from_json(&t->tok, t->tokenizer_json,
                                                  strlen(t->tokenizer_json), "the tokenizer");
        if (st != CLLM_OK) return st;
        uint32_t n = cllm_tokenizer_vocab_size(t->tok);
        if (n > (uint32_t)t->cfg.vocab_size)
            return cllm_fail(CLLM_ERR_USAGE,
                             "the tokenizer has %u tokens but %s has vocab_size %d: use a model "
                             "with vocab_size >= %u or a smaller tokenizer",
                             n, t->model_source, t->cfg.vocab_size, n);
    }
    if (t->o.sample_every > 0) {
        if (!t->tok)
            return cllm_fail(CLLM_ERR_USAGE, "--sample-every needs a tokenizer, and the run has "
                                             "none (the data directory has no tokenizer.json)");
        const char *p = t->s.sample_prompt ? t->s.sample_prompt : "";
        cllm_tokens ids = {0};
        cllm_status st = cllm_tokenizer_encode(t->tok, p, strlen(p), "all", &ids);
        if (st != CLLM_OK) return cllm_fail_context(st, "the sample prompt");
        t->prompt = ids.ids;
        t->n_prompt = (int)ids.n;
    }
    return CLLM_OK;
}

/* RUN/config.json, train_args.json, command.txt, and metrics.jsonl cut back to the step. */
static cllm_status prepare_run_dir(cllm_trainer *t) {
    cllm_status st = cllm_mkdirs(t->run);
    if (st != CLLM_OK) return st;
    CLLM_TRY(write_text_file(t->run, "config.json", t->config_json));
    {
        cJSON *a = cJSON_CreateObject();
        char *opts = cllm_train_opts_to_json(&t->o);
        cJSON_AddItemToObject(a, "options", cJSON_Parse(opts));
        free(opts);
        cJSON_AddNumberToObject(a, "min_lr_effective", cllm_train_min_lr(&t->o));
        cJSON_AddStringToObject(a, "model", t->model_source);
        {
            /* where this session runs (a resume rewrites the file: the latest session's) */
            const cllm_device_info *d = cllm_runtime_device(t->rt);
            cJSON *dev = cJSON_AddObjectToObject(a, "device");
            cJSON_AddStringToObject(dev, "name", d->name);
            cJSON_AddStringToObject(dev, "type", cllm_device_type_name(d->type));
            cJSON_AddStringToObject(dev, "platform", d->platform_name);
            cJSON_AddNumberToObject(dev, "compute_units", d->compute_units);
        }
        if (t->resumed_from) cJSON_AddStringToObject(a, "resumed_from", t->resumed_from);
        if (t->args_json) cJSON_AddItemToObject(a, "args", cJSON_Parse(t->args_json));
        if (t->s.command_line) cJSON_AddStringToObject(a, "command", t->s.command_line);
        char *txt = cJSON_Print(a);
        cJSON_Delete(a);
        char *line = txt ? cllm_strdup_printf("%s\n", txt) : NULL;
        free(txt);
        st = line ? write_text_file(t->run, "train_args.json", line) : CLLM_ERR_NOMEM;
        free(line);
        if (st != CLLM_OK) goto fail;
    }
    if (t->s.command_line) {
        char *p = cllm_path_join(t->run, "command.txt");
        FILE *f = p ? fopen(p, t->resumed_from ? "a" : "w") : NULL;
        if (!f) {
            st = cllm_fail(CLLM_ERR_IO, "%s: cannot write: %s", p ? p : "command.txt",
                           strerror(errno));
            free(p);
            goto fail;
        }
        fprintf(f, "%s\n", t->s.command_line);
        fclose(f);
        free(p);
    }
    t->metrics_path = cllm_path_join(t->run, "metrics.jsonl");
    if (!t->metrics_path) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    if (t->resumed_from) {
        int dropped = 0;
        CLLM_TRY(truncate_jsonl(t->metrics_path, t->step, &dropped));
        if (dropped)
            log_line(t, "metrics.jsonl: dropped %d line%s written after step %d", dropped,
                     dropped == 1 ? "" : "s", t->step);
    }
    t->metrics = fopen(t->metrics_path, t->resumed_from ? "a" : "w");
    if (!t->metrics)
        return cllm_fail(CLLM_ERR_IO, "%s: cannot open: %s", t->metrics_path, strerror(errno));
    t->samples_path = cllm_path_join(t->run, "samples.jsonl");
    if (!t->samples_path) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    if (t->resumed_from) {
        int dropped = 0;
        CLLM_TRY(truncate_jsonl(t->samples_path, t->step, &dropped));
    } else if (cllm_is_file(t->samples_path)) {
        remove(t->samples_path); /* a fresh run: no samples of an earlier one */
    }
    if (t->o.sample_every > 0) {
        t->samples = fopen(t->samples_path, "a");
        if (!t->samples)
            return cllm_fail(CLLM_ERR_IO, "%s: cannot open: %s", t->samples_path, strerror(errno));
    }
fail:
    return st;
}

cllm_status cllm_trainer_init(cllm_trainer **out, cllm_runtime *rt, const cllm_train_setup *s) {
    *out = NULL;
    cllm_status st = CLLM_OK;
    cllm_checkpoint ck = {0};
    if (!s->run_dir || !*s->run_dir)
        return cllm_fail(CLLM_ERR_USAGE, "training needs a run directory");
    if (!(s->time_limit_s >= 0) || !isfinite(s->time_limit_s))
        return cllm_fail(CLLM_ERR_USAGE, "--time-limit must be a number of seconds >= 0");
    st = cllm_train_opts_validate(&s->opts);
    if (st != CLLM_OK) return st;
    cllm_trainer *t = cllm_calloc(1, sizeof *t);
    if (!t) return CLLM_ERR_NOMEM;
    t->rt = rt;
    t->s = *s;
    t->o = s->opts;
    t->log = s->log ? s->log : stdout;
    t->last_val = NAN;
    t->last_ckpt_step = -1;
    t->run = strdup(s->run_dir);
    t->args_json = dup_or_null(s->args_json);
    if (!t->run || (s->args_json && !t->args_json)) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (t->args_json) {
        cJSON *a = cJSON_Parse(t->args_json);
        bool ok = cJSON_IsObject(a);
        cJSON_Delete(a);
        if (!ok) {
            st = cllm_fail(CLLM_ERR_USAGE, "args_json is not a JSON object");
            goto fail;
        }
    }
    cllm_rng_seed(&t->rng, t->o.seed);
    if (s->resume) {
        CLLM_TRY(load_resume(t, &ck));
        t->cfg = ck.cfg;
        t->model_source = strdup(t->resumed_from);
        CLLM_TRY(build_config_json(&t->cfg, ck.config_json, s->config_extra_json, &t->config_json));
        t->tokenizer_json = dup_or_null(ck.tokenizer_json ? ck.tokenizer_json : s->tokenizer_json);
        CLLM_TRY(check_sources(t));
        CLLM_TRY(restore_state(t, ck.state_json, t->resumed_from));
        if (t->step >= t->o.steps) t->nothing_to_do = true;
    } else {
        char *existing = cllm_is_dir(t->run) ? cllm_checkpoint_latest(t->run) : NULL;
        if (existing) {
            st = cllm_fail(CLLM_ERR_USAGE,
                           "%s already holds checkpoints (latest: %s): continue it with --resume, "
                           "or train into a new run directory",
                           t->run, existing);
            free(existing);
            goto fail;
        }
        cllm_clear_error();
        if (cllm_is_file(t->run)) {
            st = cllm_fail(CLLM_ERR_USAGE, "%s is a file, not a run directory", t->run);
            goto fail;
        }
        t->cfg = s->cfg;
        t->model_source = strdup(s->model_source ? s->model_source : "the model config");
        CLLM_TRY(cllm_gpt_config_validate(&t->cfg, t->model_source));
        t->lora = s->lora;
        if (t->lora.rank) CLLM_TRY(cllm_lora_config_check(&t->cfg, &t->lora));
        CLLM_TRY(build_config_json(&t->cfg, NULL, s->config_extra_json, &t->config_json));
        t->tokenizer_json = dup_or_null(s->tokenizer_json);
        CLLM_TRY(check_sources(t));
    }
    if (!t->model_source) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    cllm_gpt_opts go = {.max_batch = t->o.batch,
                        .max_seq = t->o.seq,
                        .training = true,
                        .kv_cache = t->o.sample_every > 0,
                        .lora = t->lora};
    CLLM_TRY(cllm_gpt_init(&t->m, rt, &t->cfg, &go));
    if (s->resume) {
        CLLM_TRY(cllm_gpt_set_params(t->m, ck.params));
        if (t->lora.rank) {
            CLLM_TRY(cllm_gpt_lora_set_params(t->m, ck.lora_params));
            CLLM_TRY(cllm_gpt_lora_set_adam(t->m, ck.lora_m, ck.lora_v));
        } else {
            CLLM_TRY(cllm_gpt_set_adam(t->m, ck.adam_m, ck.adam_v));
        }
    } else {
        if (s->init_params)
            CLLM_TRY(cllm_gpt_set_params(t->m, s->init_params));
        else
            CLLM_TRY(cllm_gpt_init_weights(t->m, t->o.seed));
        if (t->lora.rank && s->init_lora)
            CLLM_TRY(cllm_gpt_lora_set_params(t->m, s->init_lora));
        else if (t->lora.rank)
            CLLM_TRY(cllm_gpt_lora_init_weights(t->m, t->o.seed));
    }
    cllm_checkpoint_clear(&ck);
    cllm_gpt_layout lay;
    cllm_gpt_layout_compute(&t->cfg, &lay);
    t->n_params = lay.total;
    t->n_lora = cllm_lora_numel(&t->cfg, &t->lora);
    const size_t n_moments = t->lora.rank ? t->n_lora : t->n_params;
    const size_t micro = (size_t)t->o.batch * t->o.seq, all = micro * (size_t)t->o.grad_accum;
    t->in = cllm_malloc(all * sizeof *t->in);
    t->tg = cllm_malloc(all * sizeof *t->tg);
    t->valid = cllm_calloc((size_t)t->o.grad_accum, sizeof *t->valid);
    t->h_params = cllm_malloc(t->n_params * sizeof(float));
    t->h_m = cllm_malloc(n_moments * sizeof(float));
    t->h_v = cllm_malloc(n_moments * sizeof(float));
    t->h_lora = t->n_lora ? cllm_malloc(t->n_lora * sizeof(float)) : NULL;
    if (!t->in || !t->tg || !t->valid || !t->h_params || !t->h_m || !t->h_v ||
        (t->n_lora && !t->h_lora)) {
        st = CLLM_ERR_NOMEM;
        goto fail;
    }
    t->start_step = t->step;
    if (!t->nothing_to_do) CLLM_TRY(prepare_run_dir(t));
    *out = t;
    return CLLM_OK;
fail:
    cllm_checkpoint_clear(&ck);
    cllm_trainer_free(t);
    return st;
}

void cllm_trainer_free(cllm_trainer *t) {
    if (!t) return;
    if (t->metrics) fclose(t->metrics);
    if (t->samples) fclose(t->samples);
    cllm_gpt_free(t->m);
    cllm_tokenizer_free(t->tok);
    free(t->prompt);
    free(t->samples_path);
    free(t->run);
    free(t->model_source);
    free(t->config_json);
    free(t->tokenizer_json);
    free(t->args_json);
    free(t->resumed_from);
    free(t->in);
    free(t->tg);
    free(t->valid);
    free(t->h_params);
    free(t->h_m);
    free(t->h_v);
    free(t->h_lora);
    free(t->metrics_path);
    free(t->last_ckpt);
    free(t);
}

int cllm_trainer_step(const cllm_trainer *t) {
    return t->step;
}
const char *cllm_trainer_last_checkpoint(const cllm_trainer *t) {
    return t->last_ckpt;
}
double cllm_trainer_last_val_loss(const cllm_trainer *t) {
    return t->last_val;
}
cllm_gpt *cllm_trainer_model(cllm_trainer *t) {
    return t->m;
}

/* ---------------------------------------------------------------- the loop's pieces */

static bool stopping(const cllm_trainer *t) {
    return t->s.stop && *t->s.stop;
}

/* Mean loss over up to eval_batches validation batches, weighted by their valid targets.
 * *done is false when a stop request cut it short (no value then). */
static cllm_status evaluate(cllm_trainer *t, double *loss, bool *done) {
    cllm_batch_source *v = t->s.val;
    cllm_status st = CLLM_OK;
    *done = false;
    *loss = NAN;
    uint64_t n = v->batches(v->self);
    if (n > (uint64_t)t->o.eval_batches) n = (uint64_t)t->o.eval_batches;
    v->rewind(v->self);
    double sum = 0, count = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (stopping(t)) return CLLM_OK;
        CLLM_TRY(v->next(v->self, t->in, t->tg, v->batch, v->seq));
        int valid = count_valid(t->tg, (size_t)v->batch * v->seq);
        if (!valid) continue;
        float l;
        CLLM_TRY(cllm_gpt_forward(t->m, t->in, t->tg, v->batch, v->seq));
        CLLM_TRY(cllm_gpt_get_loss(t->m, &l));
        sum += (double)l * valid;
        count += valid;
    }
    *loss = count ? sum / count : NAN;
    *done = count > 0;
fail:
    return st;
}

static bool all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return false;
    return true;
}

static cllm_status save_checkpoint(cllm_trainer *t) {
    double t0 = cllm_now();
    cllm_status st = CLLM_OK;
    char *state = NULL, *dir = NULL;
    CLLM_TRY(cllm_gpt_get_params(t->m, t->h_params));
    if (!all_finite(t->h_params, t->n_params)) {
        st = cllm_fail(CLLM_ERR_NUMERIC,
                       "step %d: the weights hold non-finite values; not saving them (the last "
                       "checkpoint is %s)",
                       t->step, t->last_ckpt ? t->last_ckpt : "none");
        goto fail;
    }
    if (t->lora.rank) {
        CLLM_TRY(cllm_gpt_lora_get_params(t->m, t->h_lora));
        if (!all_finite(t->h_lora, t->n_lora)) {
            st = cllm_fail(CLLM_ERR_NUMERIC,
                           "step %d: the LoRA adapters hold non-finite values; not saving them "
                           "(the last checkpoint is %s)",
                           t->step, t->last_ckpt ? t->last_ckpt : "none");
            goto fail;
        }
        CLLM_TRY(cllm_gpt_lora_get_adam(t->m, t->h_m, t->h_v));
    } else {
        CLLM_TRY(cllm_gpt_get_adam(t->m, t->h_m, t->h_v));
    }
    state = state_json(t);
    if (!state) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    /* metrics up to this step are on disk before the checkpoint that a resume keeps them for */
    if (t->metrics && (fflush(t->metrics) != 0 || fsync(fileno(t->metrics)) != 0)) {
        st = cllm_fail(CLLM_ERR_IO, "%s: %s", t->metrics_path, strerror(errno));
        goto fail;
    }
    const bool lora = t->lora.rank > 0;
    cllm_checkpoint ck = {.cfg = t->cfg,
                          .params = t->h_params,
                          .adam_m = lora ? NULL : t->h_m,
                          .adam_v = lora ? NULL : t->h_v,
                          .config_json = t->config_json,
                          .state_json = state,
                          .tokenizer_json = t->tokenizer_json,
                          .lora = t->lora,
                          .lora_params = lora ? t->h_lora : NULL,
                          .lora_m = lora ? t->h_m : NULL,
                          .lora_v = lora ? t->h_v : NULL};
    CLLM_TRY(cllm_checkpoint_save(t->run, t->step, &ck, t->o.keep, &dir));
    free(t->last_ckpt);
    t->last_ckpt = dir;
    dir = NULL;
    t->last_ckpt_step = t->step;
    log_line(t, "step %d/%d | saved %s (%.2f s)", t->step, t->o.steps, t->last_ckpt,
             cllm_now() - t0);
fail:
    free(state);
    free(dir);
    return st;
}

static void progress(cllm_trainer *t, double loss, double lr, double norm, double tps,
                     bool skipped) {
    bool last = t->step == t->o.steps;
    int done = t->step - t->start_step;
    if (!t->s.tty && t->step % t->o.log_every != 0 && done != 1 && !last && !skipped) return;
    double el = cllm_now() - t->t_start;
    char eta[32], tot[32];
    fmt_duration(done > 0 ? el / done * (t->o.steps - t->step) : 0, eta, sizeof eta);
    fmt_duration(now_s(t), tot, sizeof tot);
    char line[256];
    snprintf(line, sizeof line,
             "step %d/%d | loss %.4f | lr %.3e | norm %.3f | %.0f tok/s | %s | ETA %s%s", t->step,
             t->o.steps, loss, lr, norm, tps, tot, eta, skipped ? " | SKIPPED (non-finite)" : "");
    if (t->s.tty && !skipped) {
        fprintf(t->log, "\r\033[K%s", line);
        fflush(t->log);
        t->progress_open = true;
    } else {
        log_line(t, "%s", line);
    }
}

/* One JSON number, or null when it is not finite (JSON has no NaN). */
static int put_num(char *b, size_t cap, const char *key, double v, const char *fmt) {
    if (!isfinite(v)) return snprintf(b, cap, ",\"%s\":null", key);
    char num[40];
    snprintf(num, sizeof num, fmt, v);
    return snprintf(b, cap, ",\"%s\":%s", key, num);
}

static cllm_status write_metrics(cllm_trainer *t, bool have_step, double loss, double lr,
                                 double norm, double tps, bool skipped, double val) {
    char b[512];
    size_t n = (size_t)snprintf(b, sizeof b, "{\"step\":%d", t->step);
    if (have_step) {
        n += (size_t)put_num(b + n, sizeof b - n, "loss", loss, "%.9g");
        n += (size_t)put_num(b + n, sizeof b - n, "lr", lr, "%.9g");
        n += (size_t)put_num(b + n, sizeof b - n, "grad_norm", norm, "%.9g");
        n += (size_t)put_num(b + n, sizeof b - n, "tokens_per_s", tps, "%.1f");
    }
    n += (size_t)snprintf(b + n, sizeof b - n, ",\"tokens\":%llu", (unsigned long long)t->tokens);
    n += (size_t)put_num(b + n, sizeof b - n, "time_s", now_s(t), "%.3f");
    if (isfinite(val)) {
        n += (size_t)put_num(b + n, sizeof b - n, "val_loss", val, "%.9g");
        n += (size_t)put_num(b + n, sizeof b - n, "val_ppl", exp(val), "%.9g");
    }
    if (skipped) n += (size_t)snprintf(b + n, sizeof b - n, ",\"skipped\":true");
    snprintf(b + n, sizeof b - n, "}\n");
    if (fputs(b, t->metrics) < 0 || fflush(t->metrics) != 0)
        return cllm_fail(CLLM_ERR_IO, "%s: cannot write: %s", t->metrics_path, strerror(errno));
    return CLLM_OK;
}

static cllm_status validate_now(cllm_trainer *t, double *val) {
    bool done;
    double t0 = cllm_now();
    cllm_status st = evaluate(t, val, &done);
    if (st != CLLM_OK || !done) return st;
    t->last_val = *val;
    log_line(t, "step %d/%d | val_loss %.4f | val_ppl %.2f | %.1f s", t->step, t->o.steps, *val,
             exp(*val), cllm_now() - t0);
    return CLLM_OK;
}

/* text as valid UTF-8 without control codes but newline and tab (U+FFFD in their place), for
 * the log and JSON: a sample is any bytes its tokens decode to. */
static char *printable(const char *text, size_t len) {
    char *out = cllm_malloc(3 * len + 1);
    size_t n = 0;
    if (!out) return NULL;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int k = cllm_utf8_decode((const unsigned char *)text + i, len - i, &cp);
        if (k < 0) {
            n += cllm_utf8_encode(0xFFFD, out + n);
            i += (size_t)-k;
        } else if (cp < 0x20 && cp != '\n' && cp != '\t') {
            n += cllm_utf8_encode(0xFFFD, out + n); /* no control codes to a terminal */
            i += (size_t)k;
        } else {
            memcpy(out + n, text + i, (size_t)k);
            n += (size_t)k;
            i += (size_t)k;
        }
    }
    out[n] = 0;
    return out;
}

/* A sample of sample_tokens new tokens after the prompt, to the log and samples.jsonl. The
 * seed comes from the run's RNG, which state.json keeps. */
static cllm_status sample_now(cllm_trainer *t) {
    cllm_gen_opts go = cllm_gen_opts_default();
    go.max_tokens = t->o.sample_tokens;
    go.seed = cllm_rng_next(&t->rng);
    cllm_gen_result r = {0};
    char *prompt = NULL, *text = NULL;
    cJSON *o = NULL;
    char *line = NULL;
    cllm_status st = CLLM_OK;
    CLLM_TRY(cllm_generate(t->m, t->tok, t->prompt, t->n_prompt, &go, &r));
    const char *p = t->s.sample_prompt ? t->s.sample_prompt : "";
    prompt = printable(p, strlen(p));
    text = printable(r.samples[0].text, r.samples[0].len);
    if (!prompt || !text) {
        st = CLLM_ERR_NOMEM;
        goto fail;
    }
    log_line(t, "step %d/%d | sample, %d tokens (%s) in %.2f s:\n%s%s\n", t->step, t->o.steps,
             r.samples[0].n_tokens, cllm_gen_finish_name(r.samples[0].finish), r.prompt_s + r.gen_s,
             prompt, text);
    o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "step", t->step);
    cJSON_AddStringToObject(o, "prompt", prompt);
    cJSON_AddStringToObject(o, "text", text);
    cJSON_AddNumberToObject(o, "tokens", r.samples[0].n_tokens);
    cJSON_AddStringToObject(o, "finish", cllm_gen_finish_name(r.samples[0].finish));
    line = cJSON_PrintUnformatted(o);
    if (!line || fprintf(t->samples, "%s\n", line) < 0 || fflush(t->samples) != 0)
        st = cllm_fail(CLLM_ERR_IO, "%s: cannot write: %s", t->samples_path, strerror(errno));
fail:
    cllm_gen_result_free(&r);
    cJSON_Delete(o);
    free(line);
    free(prompt);
    free(text);
    return st;
}

/* The effective configuration, once at the start. */
static void print_setup(cllm_trainer *t) {
    const cllm_gpt_config *c = &t->cfg;
    const cllm_train_opts *o = &t->o;
    cllm_gpt_opts go = {.max_batch = o->batch,
                        .max_seq = o->seq,
                        .training = true,
                        .kv_cache = o->sample_every > 0,
                        .lora = t->lora};
    log_line(t,
             "model: %s, %.2f M parameters (%d layers, %d wide, %d heads, vocabulary %d, context "
             "%d); %.1f MiB on %s",
             t->model_source, cllm_gpt_num_params(c) / 1e6, c->n_layer, c->n_embd, c->n_head,
             c->vocab_size, c->n_positions, cllm_gpt_memory_required(c, &go) / 1048576.0,
             cllm_runtime_device(t->rt)->name);
    if (t->lora.rank) {
        cllm_gpt_opts full = go;
        full.lora.rank = 0;
        char targets[96];
        cllm_lora_targets_text(t->lora.targets, targets, sizeof targets);
        log_line(t,
                 "LoRA: rank %d, alpha %g on %s: %zu trainable values (%.2f%% of the model), the "
                 "rest frozen; %.1f MiB on the device where training every weight takes %.1f MiB",
                 t->lora.rank, (double)t->lora.alpha, targets, t->n_lora,
                 100.0 * (double)t->n_lora / (double)cllm_gpt_num_params(c),
                 cllm_gpt_memory_required(c, &go) / 1048576.0,
                 cllm_gpt_memory_required(c, &full) / 1048576.0);
    }
    const cllm_batch_source *src[2] = {t->s.train, t->s.val};
    for (int i = 0; i < 2; i++)
        if (src[i])
            log_line(t, "%s: %s%s%s", i ? "val" : "train", src[i]->name ? src[i]->name : "",
                     src[i]->describe ? ": " : "",
                     src[i]->describe ? src[i]->describe(src[i]->self) : "");
    const long long per_step = (long long)o->batch * o->seq * o->grad_accum;
    char epochs[64] = "";
    if (t->s.train->batches) {
        uint64_t bpe = t->s.train->batches(t->s.train->self);
        if (bpe)
            snprintf(epochs, sizeof epochs, ", %.2f epochs",
                     (double)o->steps * o->grad_accum / (double)bpe);
    }
    log_line(t,
             "steps %d | batch %d x seq %d x grad_accum %d = %lld tokens per step (%.3g M in the "
             "run%s)",
             o->steps, o->batch, o->seq, o->grad_accum, per_step, per_step * (double)o->steps / 1e6,
             epochs);
    log_line(
        t,
        "lr %g -> %g %s, warmup %d | AdamW betas (%g, %g), eps %g, weight_decay %g | clip %g%s "
        "| seed %llu",
        o->lr, cllm_train_min_lr(o), cllm_schedule_kind_name(o->schedule), o->warmup, o->beta1,
        o->beta2, o->eps, o->weight_decay, o->clip, o->clip > 0 ? "" : " (off)",
        (unsigned long long)o->seed);
    char ev[96], ck[64];
    if (t->s.val && o->eval_every) {
        uint64_t vb = t->s.val->batches(t->s.val->self);
        if (vb <= (uint64_t)o->eval_batches)
            snprintf(ev, sizeof ev, "every %d steps, %llu batch%s of %d (all of val)",
                     o->eval_every, (unsigned long long)vb, vb == 1 ? "" : "es", t->s.val->batch);
        else
            snprintf(ev, sizeof ev, "every %d steps, %d batches of %d", o->eval_every,
                     o->eval_batches, t->s.val->batch);
    } else
        snprintf(ev, sizeof ev, "off");
    if (o->ckpt_every)
        snprintf(ck, sizeof ck, "every %d steps and at the end", o->ckpt_every);
    else
        snprintf(ck, sizeof ck, "at the end");
    log_line(t, "validation %s | checkpoints %s, keep %d%s | stop after %d non-finite steps", ev,
             ck, o->keep, o->keep ? "" : " (all)", o->max_skips);
    if (o->sample_every > 0)
        log_line(t, "samples every %d steps: %d tokens at temperature 1 after %s%s%s",
                 o->sample_every, o->sample_tokens, t->n_prompt ? "\"" : "<|endoftext|>",
                 t->n_prompt ? t->s.sample_prompt : "", t->n_prompt ? "\"" : "");
    if (t->resumed_from)
        log_line(t, "run: %s, resumed from %s at step %d (%llu tokens trained so far)", t->run,
                 t->resumed_from, t->step, (unsigned long long)t->tokens);
    else
        log_line(t, "run: %s", t->run);
}

/* ---------------------------------------------------------------- the loop */

/* One optimizer step: k micro-batches, the guard, AdamW. */
static cllm_status train_step(cllm_trainer *t, double *loss, double *lr, double *norm_out,
                              bool *skipped) {
    const int B = t->o.batch, T = t->o.seq, k = t->o.grad_accum;
    const size_t micro = (size_t)B * T;
    cllm_batch_source *src = t->s.train;
    cllm_status st = CLLM_OK;
    int *valid = t->valid;
    double total = 0;
    for (int i = 0; i < k; i++) {
        CLLM_TRY(src->next(src->self, t->in + i * micro, t->tg + i * micro, B, T));
        valid[i] = count_valid(t->tg + i * micro, micro);
        total += valid[i];
    }
    CLLM_TRY(cllm_gpt_zero_grad(t->m));
    double sum = 0;
    for (int i = 0; i < k; i++) {
        if (!valid[i]) continue; /* nothing to learn from: no loss, no gradient */
        float l;
        CLLM_TRY(cllm_gpt_forward(t->m, t->in + i * micro, t->tg + i * micro, B, T));
        /* gradient of the step's mean over all its valid targets */
        CLLM_TRY(cllm_gpt_backward(t->m, (float)(valid[i] / total)));
        CLLM_TRY(cllm_gpt_get_loss(t->m, &l));
        sum += (double)l * valid[i];
    }
    float norm = 0;
    CLLM_TRY(cllm_gpt_clip_grad_norm(t->m, (float)t->o.clip, &norm));
    *loss = total ? (double)(float)(sum / total) : NAN;
    *norm_out = norm;
    cllm_schedule sc = {t->o.schedule, t->o.lr, cllm_train_min_lr(&t->o), t->o.warmup, t->o.steps};
    *lr = cllm_schedule_lr(&sc, t->step + 1);
    *skipped = !total || !isfinite(*loss) || !isfinite(norm);
    if (!*skipped) {
        cllm_adamw_params hp = {.lr = (float)*lr,
                                .beta1 = (float)t->o.beta1,
                                .beta2 = (float)t->o.beta2,
                                .eps = (float)t->o.eps,
                                .weight_decay = (float)t->o.weight_decay};
        CLLM_TRY(cllm_gpt_adamw_step(t->m, &hp, t->adam_step + 1));
        t->adam_step++;
    }
    t->step++;
    t->tokens += (uint64_t)micro * (uint64_t)k;
fail:
    return st;
}

cllm_status cllm_trainer_run(cllm_trainer *t) {
    cllm_status st = CLLM_OK;
    if (t->nothing_to_do) {
        log_line(t,
                 "%s is at step %d already (--steps %d): nothing to do; pass a larger --steps "
                 "to train further",
                 t->resumed_from, t->step, t->o.steps);
        return CLLM_OK;
    }
    t->t_start = cllm_now();
    print_setup(t);
    const bool eval_on = t->s.val && t->o.eval_every > 0;
    if (eval_on && t->step == 0) {
        double val;
        CLLM_TRY(validate_now(t, &val));
        if (isfinite(t->last_val)) CLLM_TRY(write_metrics(t, false, 0, 0, 0, 0, false, val));
    }
    int first_skip = 0;
    int end = t->s.stop_at > 0 && t->s.stop_at < t->o.steps ? t->s.stop_at : t->o.steps;
    bool timed_out = false;
    while (t->step < end && !stopping(t)) {
        double loss, lr, norm, t0 = cllm_now();
        bool skipped;
        CLLM_TRY(train_step(t, &loss, &lr, &norm, &skipped));
        double tps = (double)t->o.batch * t->o.seq * t->o.grad_accum / (cllm_now() - t0);
        if (skipped) {
            if (t->skips++ == 0) first_skip = t->step;
        } else {
            t->skips = 0;
        }
        progress(t, loss, lr, norm, tps, skipped);
        /* out of time: this step ends the session as stop_at would, with a validation */
        if (t->s.time_limit_s > 0 && t->step < end &&
            cllm_now() - t->t_start >= t->s.time_limit_s) {
            end = t->step;
            timed_out = true;
        }
        double val = NAN;
        bool last = t->step == t->o.steps;
        if (eval_on && !stopping(t) &&
            (t->step % t->o.eval_every == 0 || last || timed_out))
            CLLM_TRY(validate_now(t, &val));
        CLLM_TRY(write_metrics(t, true, loss, lr, norm, tps, skipped, val));
        if (t->samples && !stopping(t) &&
            (t->step % t->o.sample_every == 0 || last || timed_out))
            CLLM_TRY(sample_now(t));
        if (t->skips >= t->o.max_skips) {
            st = cllm_fail(CLLM_ERR_NUMERIC,
                           "steps %d-%d: %d non-finite losses or gradient norms in a row; "
                           "stopping without saving (last checkpoint: %s); lower --lr or set "
                           "--clip",
                           first_skip ? first_skip : t->step, t->step, t->skips,
                           t->last_ckpt ? t->last_ckpt : "none");
            goto fail;
        }
        if (last || t->step == end || stopping(t) ||
            (t->o.ckpt_every && t->step % t->o.ckpt_every == 0))
            CLLM_TRY(save_checkpoint(t));
    }
    if (stopping(t) && t->step < end) {
        if (t->last_ckpt_step != t->step) CLLM_TRY(save_checkpoint(t));
        return cllm_fail(CLLM_ERR_INTERRUPTED,
                         "interrupted at step %d/%d: saved %s; continue with "
                         "--resume",
                         t->step, t->o.steps, t->last_ckpt);
    }
    {
        double el = cllm_now() - t->t_start;
        char d[32];
        fmt_duration(el, d, sizeof d);
        long long tok =
            (long long)(t->step - t->start_step) * t->o.batch * t->o.seq * t->o.grad_accum;
        char val[48] = "";
        if (isfinite(t->last_val)) snprintf(val, sizeof val, ", val_loss %.4f", t->last_val);
        char part[128] = "";
        if (timed_out)
            snprintf(part, sizeof part,
                     " of %d (the time limit of %g s was reached; continue with --resume)",
                     t->o.steps, t->s.time_limit_s);
        else if (t->step < t->o.steps)
            snprintf(part, sizeof part, " of %d (stopped as asked; continue with --resume)",
                     t->o.steps);
        log_line(t,
                 "done: step %d%s, %lld tokens in %s (%.0f tokens/s including validation and "
                 "checkpoints)%s; %s",
                 t->step, part, tok, d, tok / el, val, t->last_ckpt ? t->last_ckpt : "");
    }
fail:
    if (t->progress_open) {
        fputc('\n', t->log);
        t->progress_open = false;
    }
    return st;
}
