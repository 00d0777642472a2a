/* cllm eval: perplexity of token shards or a text file, multiple-choice benchmarks scored as
 * lm-evaluation-harness scores them, and greedy generations scored with corpus BLEU and ROUGE,
 * reported as a table or one JSON object. The scoring is
 * cllm/eval.h, the model half cllm/eval_model.h; this file reads the inputs, runs them and
 * reports. */
#include "args.h"
#include "commands.h"

#include "cllm/data.h"
#include "cllm/eval.h"
#include "cllm/eval_model.h"
#include "cllm/model.h"
#include "cllm/util.h"
#include "data_internal.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------- inputs */

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The shards of `split` in `dir` (the loader's naming rule), in name order. */
static cllm_status list_split(const char *dir, const char *split, char ***names, int *n) {
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return cllm_fail(CLLM_ERR_IO, "--data %s: cannot open: %s", dir, strerror(errno));
    char **v = NULL;
    int cnt = 0;
    cllm_status st = CLLM_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!cllm_shard_name_in_split(e->d_name, split)) continue;
        char **nv = realloc(v, (size_t)(cnt + 1) * sizeof *nv);
        if (!nv || !(nv[cnt] = cllm_path_join(dir, e->d_name))) {
            if (nv) v = nv;
            st = cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
            break;
        }
        v = nv;
        cnt++;
    }
    closedir(d);
    if (st == CLLM_OK && cnt == 0)
        st = cllm_fail(CLLM_ERR_FORMAT,
                       "--data %s has no %s shards (files like %s_000.bin; --split picks another "
                       "split, 'cllm data prepare' writes them)",
                       dir, split, split);
    if (st != CLLM_OK) {
        for (int i = 0; i < cnt; i++)
            free(v[i]);
        free(v);
        return st;
    }
    qsort(v, (size_t)cnt, sizeof *v, cmp_str);
    *names = v;
    *n = cnt;
    return CLLM_OK;
}

typedef struct {
    char **paths;
    int n_shards;
    uint32_t *tokens;
    size_t n;
    size_t *ends; /* (n_shards) end of each shard in tokens */
} shard_stream;

static void shard_stream_free(shard_stream *s) {
    for (int i = 0; i < s->n_shards; i++)
        free(s->paths[i]);
    free(s->paths);
    free(s->tokens);
    free(s->ends);
    memset(s, 0, sizeof *s);
}

/* Every shard of the split, concatenated in name order (one stream: a document may continue
 * from one shard into the next, as data prepare writes them). */
static cllm_status read_shards(shard_stream *s, const char *dir, const char *split) {
    memset(s, 0, sizeof *s);
    cllm_status st = list_split(dir, split, &s->paths, &s->n_shards);
    if (st != CLLM_OK) return st;
    s->ends = calloc((size_t)s->n_shards, sizeof *s->ends);
    if (!s->ends) return cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
    for (int i = 0; i < s->n_shards; i++) {
        uint32_t *t = NULL;
        size_t n = 0;
        CLLM_TRY(cllm_shard_read(s->paths[i], &t, &n));
        uint32_t *all = realloc(s->tokens, (s->n + n + 1) * sizeof *all);
        if (!all) {
            free(t);
            st = cllm_fail(CLLM_ERR_NOMEM, "out of host memory (%zu tokens)", s->n + n);
            goto fail;
        }
        s->tokens = all;
        memcpy(s->tokens + s->n, t, n * sizeof *t);
        free(t);
        s->n += n;
        s->ends[i] = s->n;
    }
    return CLLM_OK;
fail:
    return st;
}

/* Every token must be one the model and its tokenizer know; the first that is not is named
 * with its shard and offset. */
static cllm_status check_shard_tokens(const shard_stream *s, int vocab, uint32_t tok_vocab) {
    for (int i = 0; i < s->n_shards; i++)
        for (size_t j = i ? s->ends[i - 1] : 0; j < s->ends[i]; j++) {
            uint32_t t = s->tokens[j];
            if (t >= (uint32_t)vocab || t >= tok_vocab)
                return cllm_fail(CLLM_ERR_FORMAT,
                                 "%s: token %zu is id %u, beyond the %s (%s %u): the shard was "
                                 "made with another tokenizer",
                                 s->paths[i], j - (i ? s->ends[i - 1] : 0), t,
                                 t >= (uint32_t)vocab ? "model's vocabulary" : "tokenizer",
                                 t >= (uint32_t)vocab ? "vocab_size" : "tokens",
                                 t >= (uint32_t)vocab ? (uint32_t)vocab : tok_vocab);
        }
    return CLLM_OK;
}

/* The tokenizer for --data: the checkpoint's, else the data directory's tokenizer.json; when
 * both exist they must agree on every id they share. *own is set when it was loaded here. */
static cllm_status data_tokenizer(const cllm_model *mdl, const char *dir,
                                  const cllm_tokenizer **tok, cllm_tokenizer **own) {
    *tok = mdl->tok;
    *own = NULL;
    char *p = cllm_path_join(dir, "tokenizer.json");
    if (!p) return cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
    cllm_status st = CLLM_OK;
    if (!cllm_is_file(p)) {
        if (!mdl->tok) st = cllm_model_require_tokenizer(mdl);
        free(p);
        return st;
    }
    cllm_tokenizer *dt = NULL;
    st = cllm_tokenizer_load(&dt, p);
    if (st == CLLM_OK && mdl->tok) {
        uint32_t a = cllm_tokenizer_vocab_size(mdl->tok), b = cllm_tokenizer_vocab_size(dt);
        for (uint32_t id = 0; id < (a < b ? a : b); id++) {
            size_t la = 0, lb = 0;
            const char *x = cllm_tokenizer_token_bytes(mdl->tok, id, &la);
            const char *y = cllm_tokenizer_token_bytes(dt, id, &lb);
            if ((!x) != (!y) || la != lb || (x && memcmp(x, y, la))) {
                st = cllm_fail(CLLM_ERR_FORMAT,
                               "%s differs from the checkpoint's tokenizer (token %u): the "
                               "shards are not in the model's tokens",
                               p, id);
                break;
            }
        }
    }
    if (st == CLLM_OK && !mdl->tok) {
        *tok = *own = dt;
        dt = NULL;
    }
    cllm_tokenizer_free(dt);
    free(p);
    return st;
}

/* ---------------------------------------------------------------- progress */

/* On a terminal one line rewritten in place; otherwise (a log) a plain line every 10 s, and
 * a last one when any was printed: short runs print nothing. */
typedef struct {
    int mode; /* 0 quiet, 1 terminal, 2 plain lines */
    const char *what;
    const char *unit;
    double t0, last;
    bool printed;
} progress;

static void progress_line(progress *p, uint64_t done, uint64_t total, bool final) {
    if (!p->mode) return;
    double now = cllm_now();
    if (p->last == 0) p->last = p->t0;
    double every = p->mode == 1 ? 0.25 : 10.0;
    if (!(final && (p->mode == 1 || p->printed)) && now - p->last < every) return;
    p->last = now;
    p->printed = true;
    double el = now - p->t0, rate = el > 0 ? (double)done / el : 0;
    double eta = rate > 0 ? (double)(total - done) / rate : 0;
    fprintf(stderr, "%seval: %s %3.0f%% (%llu of %llu %s), %.1f %s/s, ETA %.0f s%s",
            p->mode == 1 ? "\r" : "", p->what, total ? 100.0 * (double)done / (double)total : 100.0,
            (unsigned long long)done, (unsigned long long)total, p->unit, rate, p->unit, eta,
            p->mode == 1 && !final ? "   " : "\n");
    fflush(stderr);
}

static void ppl_progress(void *user, uint64_t done, uint64_t total) {
    progress_line(user, done, total, done == total);
}

typedef struct {
    cllm_mc_scorer *sc;
    progress pr;
    int done, total;
} mc_run;

static cllm_status mc_item(void *user, const cllm_mc_item *item, cllm_mc_choice_score *scores) {
    mc_run *r = user;
    cllm_status st = cllm_mc_scorer_loglik(r->sc, item, scores);
    if (st != CLLM_OK) return st;
    r->done++;
    progress_line(&r->pr, (uint64_t)r->done, (uint64_t)r->total, r->done == r->total);
    return CLLM_OK;
}

/* ---------------------------------------------------------------- the command */

/* A report section name for an --mc or --gen file: its base name without .jsonl, made unique. */
static void section_name(char *out, size_t n, const char *path, char names[][96], int k) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t len = strlen(b);
    if (len > 6 && !strcmp(b + len - 6, ".jsonl")) len -= 6;
    if (len > 80) len = 80;
    snprintf(out, n, "%.*s", (int)len, b);
    for (int dup = 2;; dup++) {
        bool taken = !strcmp(out, "model") || !strcmp(out, "perplexity");
        for (int i = 0; i < k && !taken; i++)
            taken = !strcmp(names[i], out);
        if (!taken) return;
        snprintf(out, n, "%.*s_%d", (int)len, b, dup);
    }
}

/* --stop: \n, \t, \r and \\ stand for a newline, a tab, a carriage return and a backslash
 * (so that a shell can pass them); anything else is taken as it is. Decoded in place. */
static void unescape(char *s) {
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (r[0] == '\\' && r[1]) {
            char c = r[1] == 'n'    ? '\n'
                     : r[1] == 't'  ? '\t'
                     : r[1] == 'r'  ? '\r'
                     : r[1] == '\\' ? '\\'
                                    : 0;
            if (c) {
                *w++ = c;
                r++;
                continue;
            }
        }
        *w++ = *r;
    }
    *w = 0;
}

/* Each --mc's task: the --task that follows it (before the next --mc), else a --task given
 * before the first --mc, else auto. */
static int pair_tasks(const cli_spec *spec, const cli_strlist *mc, const cli_strlist *task,
                      cllm_mc_task *tasks) {
    cllm_mc_task dflt = CLLM_MC_AUTO;
    bool dflt_set = false;
    bool *set = calloc((size_t)(mc->n ? mc->n : 1), sizeof *set);
    if (!set) return cli_report(cllm_fail(CLLM_ERR_NOMEM, "out of host memory"));
    int rc = -1;
    for (int k = 0; k < mc->n; k++)
        tasks[k] = CLLM_MC_AUTO;
    for (int j = 0; j < task->n && rc < 0; j++) {
        cllm_mc_task t;
        if (cllm_mc_task_parse(&t, task->items[j]) != CLLM_OK) {
            rc = cli_usage_error(spec, "--task %s: %s", task->items[j], cllm_last_error());
            break;
        }
        int owner = -1;
        for (int k = 0; k < mc->n; k++)
            if (mc->argi[k] < task->argi[j]) owner = k;
        if (owner < 0 ? dflt_set : set[owner])
            rc = cli_usage_error(spec,
                                 "two --task options for %s (give one --task after each "
                                 "--mc it applies to)",
                                 owner < 0 ? "every --mc" : mc->items[owner]);
        else if (owner < 0)
            dflt = t, dflt_set = true;
        else
            tasks[owner] = t, set[owner] = true;
    }
    if (task->n && !mc->n && rc < 0) rc = cli_usage_error(spec, "--task needs an --mc FILE");
    for (int k = 0; k < mc->n && rc < 0; k++)
        if (!set[k]) tasks[k] = dflt;
    free(set);
    return rc;
}

int cmd_eval(int argc, char **argv) {
    const char *ckpt = NULL, *data = NULL, *split = "val", *text = NULL, *samples_path = NULL;
    const char *dev = NULL, *plat = NULL;
    cli_strlist mc = {0}, task = {0}, gen = {0}, stop = {0};
    int stride = 0, limit = 0, batch = 8, max_tokens = 256;
    bool json = false, strict = false, quiet = false, batch_seen = false, max_seen = false;
    const cli_opt opts[] = {
        {"ckpt", 'c', CLI_STR, &ckpt, "PATH",
         "checkpoint: a run directory (its latest step), a step directory, or a Hugging Face "
         "GPT-2 directory",
         .required = true},
        {"data", 'd', CLI_STR, &data, "DIR",
         "perplexity of the token shards of --split in DIR (what cllm data prepare wrote)"},
        {"split", 0, CLI_STR, &split, "NAME", "which shards of --data: NAME_*.bin"},
        {"text", 0, CLI_STR, &text, "FILE",
         "perplexity of a text file, tokenized with the checkpoint's tokenizer"},
        {"stride", 0, CLI_INT, &stride, "S",
         "perplexity: each window after the first scores S new tokens with the context before "
         "them (1..context; 0 = the context: disjoint windows)",
         .lo = 0, .hi = 1 << 24},
        {"mc", 0, CLI_STRS, &mc, "FILE", "multiple-choice benchmark (JSONL)"},
        {"task", 0, CLI_STRS, &task, "TASK",
         "how the --mc before it is read: " CLLM_MC_TASK_CHOICES " (default auto; a --task "
         "before every --mc applies to all)"},
        {"gen", 0, CLI_STRS, &gen, "FILE",
         "generation set: JSONL {\"prompt\", \"reference\"}; greedy continuations scored with "
         "corpus BLEU (sacreBLEU) and ROUGE-1/2/L (rouge-score)"},
        {"max-tokens", 0, CLI_INT, &max_tokens, "N",
         "--gen: tokens generated at most (256, or half the context when that is less; the "
         "prompt keeps its last context - N tokens)",
         .lo = 1, .hi = 1 << 24, .seen = &max_seen},
        {"stop", 0, CLI_STRS, &stop, "STR",
         "--gen: end a continuation before this string (\\n, \\t, \\r, \\\\ are escapes); "
         "<|endoftext|> always ends one"},
        {"json", 0, CLI_FLAG, &json, NULL, "print one JSON object of all metrics"},
        {"log-samples", 0, CLI_STR, &samples_path, "FILE",
         "write one JSON line per item: for --mc every choice's log-likelihood, token, "
         "character and byte lengths and the predictions; for --gen the output, the reference "
         "and its sentence BLEU and ROUGE"},
        {"limit", 'n', CLI_INT, &limit, "N",
         "only the first N items of each --mc and --gen (0 = all)", .lo = 0, .hi = 2147483647.0},
        {"batch", 'b', CLI_INT, &batch, "B",
         "rows per forward: perplexity windows, or continuations of one item (halved until the "
         "model fits the device unless given)",
         .lo = 1, .hi = 4096, .seen = &batch_seen},
        {"strict", 0, CLI_FLAG, &strict, NULL,
         "a malformed --mc line is an error (default: skipped, counted and reported)"},
        {"quiet", 'q', CLI_FLAG, &quiet, NULL,
         "no progress (on a terminal a line in place, else a line every 10 s)"},
        CLI_DEVICE_OPTS(&dev, &plat),
    };
    const cli_spec spec = {
        "cllm eval",
        "--ckpt PATH [--data DIR | --text FILE] [--mc FILE [--task TASK]]... [options]",
        "Evaluate a model. Perplexity: every token of the stream (shards concatenated in name\n"
        "order, or the text's tokens) after an end-of-text put in front is scored once, with up\n"
        "to a full context of history (--stride); end-of-text tokens inside the stream are\n"
        "scored too. Reports the mean loss (nats/token), perplexity, bits per byte (total nats\n"
        "/ ln 2 / bytes of text the scored tokens decode to; end-of-text decodes to none) and,\n"
        "for --text, lm-evaluation-harness's word_perplexity.\n"
        "Multiple choice: each choice scored as lm-evaluation-harness scores it (the summed\n"
        "log-likelihood of \" \" + choice after the context; contexts longer than the window cut\n"
        "on the left); acc, acc_norm (per character), acc_bytes, acc_token (per token), each\n"
        "with its standard error. Each item's context runs once; its choices continue from it\n"
        "--batch at a time. Formats: HellaSwag, ARC, MMLU, and {\"context\", \"choices\", "
        "\"label\"}\n"
        "(what 'cllm data make-mc' writes).\n"
        "Generation: each prompt's greedy continuation, as lm-evaluation-harness's generate_until\n"
        "makes it (the prompt cut on the left to fit, up to --max-tokens, ending at\n"
        "<|endoftext|> or a --stop string), scored with sacreBLEU's corpus BLEU and\n"
        "rouge-score's ROUGE-1/2/L F1 (mean over prompts).",
        opts,
        CLI_COUNT(opts),
        "examples:\n"
        "  cllm eval --ckpt runs/nano --data data/fortunes              # val_*.bin perplexity\n"
        "  cllm eval --ckpt runs/nano --text notes.txt --stride 128\n"
        "  cllm eval --ckpt runs/nano --mc fortunes-mc.jsonl --log-samples samples.jsonl\n"
        "  cllm eval --ckpt runs/gpt2 --mc hellaswag_val.jsonl --task hellaswag \\\n"
        "      --mc arc_easy.jsonl --task arc --limit 500 --json\n"
        "  cllm eval --ckpt runs/nano --gen prompts.jsonl --max-tokens 32 --stop '\\n'",
        0,
        0};
    int rc = cli_parse(&spec, argc, argv, NULL);
    cllm_mc_task *tasks = NULL;
    cllm_mc_set *sets = NULL;
    cllm_gen_set *gsets = NULL;
    char **outputs = NULL;
    char(*names)[96] = NULL;
    shard_stream shards = {0};
    char *text_buf = NULL, *samples_buf = NULL;
    size_t text_len = 0, samples_len = 0;
    FILE *samples = NULL;
    cllm_atomic_file samples_file = {.fd = -1};
    cllm_runtime *rt = NULL;
    cllm_model *mdl = NULL;
    cllm_tokenizer *own_tok = NULL;
    cllm_mc_scorer *scorer = NULL;
    cllm_eval_report *rep = NULL;
    cllm_tokens ids = {0};
    cllm_status st = CLLM_OK;
    int n_sets = 0, n_gsets = 0;
    if (rc >= 0) goto done;
    rc = -1;
    if (data && text)
        rc = cli_usage_error(&spec, "--data and --text: give one of them");
    else if (!data && !text && !mc.n && !gen.n)
        rc = cli_usage_error(&spec, "nothing to evaluate: give --data DIR, --text FILE, --mc FILE "
                                    "or --gen FILE");
    else if (stride && !data && !text)
        rc = cli_usage_error(&spec, "--stride applies to perplexity (--data or --text)");
    else if (samples_path && !mc.n && !gen.n)
        rc = cli_usage_error(&spec, "--log-samples writes items of --mc or --gen sets");
    else if ((max_seen || stop.n) && !gen.n)
        rc = cli_usage_error(&spec, "--%s applies to --gen", max_seen ? "max-tokens" : "stop");
    if (rc >= 0) goto done;
    if (!(tasks = calloc((size_t)(mc.n + 1), sizeof *tasks)) ||
        !(sets = calloc((size_t)(mc.n + 1), sizeof *sets)) ||
        !(gsets = calloc((size_t)(gen.n + 1), sizeof *gsets)) ||
        !(names = calloc((size_t)(mc.n + gen.n + 1), sizeof *names))) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
        goto fail;
    }
    if ((rc = pair_tasks(&spec, &mc, &task, tasks)) >= 0) goto done;

    /* Everything that can be wrong with the inputs is found before the device starts. */
    for (; n_sets < mc.n; n_sets++) {
        CLLM_TRY(cllm_mc_load(&sets[n_sets], mc.items[n_sets], tasks[n_sets], strict, limit));
        section_name(names[n_sets], sizeof names[n_sets], mc.items[n_sets], names, n_sets);
    }
    for (; n_gsets < gen.n; n_gsets++) {
        CLLM_TRY(cllm_gen_load(&gsets[n_gsets], gen.items[n_gsets], strict, limit));
        section_name(names[n_sets + n_gsets], sizeof *names, gen.items[n_gsets], names,
                     n_sets + n_gsets);
    }
    for (int k = 0; k < stop.n; k++)
        unescape((char *)stop.items[k]);
    if (data) CLLM_TRY(read_shards(&shards, data, split));
    if (text) {
        CLLM_TRY(cllm_read_file(text, &text_buf, &text_len));
        if (text_len == 0) {
            st = cllm_fail(CLLM_ERR_FORMAT, "--text %s is empty: nothing to score", text);
            goto fail;
        }
    }
    if (samples_path) {
        CLLM_TRY(cllm_atomic_begin(&samples_file, samples_path));
        if (!(samples = open_memstream(&samples_buf, &samples_len))) {
            st = cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
            goto fail;
        }
    }

    cllm_runtime_opts ro = cllm_runtime_opts_default();
    ro.device_spec = dev;
    ro.platform_spec = plat;
    ro.quiet = true;
    CLLM_TRY(cllm_runtime_init(&rt, &ro));
    for (;;) {
        cllm_gpt_opts go = {.max_batch = batch, .kv_cache = mc.n > 0 || gen.n > 0};
        st = cllm_model_load(&mdl, rt, ckpt, &go, NULL);
        if (st != CLLM_ERR_TOO_LARGE || batch_seen || batch == 1) break;
        batch /= 2;
    }
    if (st != CLLM_OK) goto fail;
    const cllm_gpt_config *cfg = cllm_gpt_get_config(mdl->gpt);
    if (stride > cfg->n_positions) {
        st = cllm_fail(CLLM_ERR_USAGE, "--stride %d exceeds the model's context (%d tokens)",
                       stride, cfg->n_positions);
        goto fail;
    }
    if (text || mc.n || gen.n) CLLM_TRY(cllm_model_require_tokenizer(mdl));
    if (gen.n && !max_seen && max_tokens > cfg->n_positions / 2) max_tokens = cfg->n_positions / 2;
    if (gen.n && max_tokens >= cfg->n_positions) {
        st = cllm_fail(CLLM_ERR_USAGE,
                       "--max-tokens %d leaves no room for a prompt in the model's context (%d "
                       "tokens)",
                       max_tokens, cfg->n_positions);
        goto fail;
    }

    CLLM_TRY(cllm_eval_report_init(&rep));
    CLLM_TRY(cllm_eval_report_add_string(rep, "model", "ckpt", mdl->path));
    CLLM_TRY(
        cllm_eval_report_add_value(rep, "model", "parameters", (double)cllm_gpt_num_params(cfg)));
    CLLM_TRY(cllm_eval_report_add_value(rep, "model", "context", cfg->n_positions));
    CLLM_TRY(cllm_eval_report_add_value(rep, "model", "vocab_size", cfg->vocab_size));
    CLLM_TRY(cllm_eval_report_add_string(rep, "model", "device", cllm_runtime_device(rt)->name));
    CLLM_TRY(cllm_eval_report_add_value(rep, "model", "batch", batch));
    const int show = quiet ? 0 : isatty(STDERR_FILENO) ? 1 : 2;

    if (data || text) {
        const cllm_tokenizer *tok = mdl->tok;
        const uint32_t *stream;
        size_t n;
        if (data) {
            CLLM_TRY(data_tokenizer(mdl, data, &tok, &own_tok));
            CLLM_TRY(check_shard_tokens(&shards, cfg->vocab_size, cllm_tokenizer_vocab_size(tok)));
            stream = shards.tokens;
            n = shards.n;
        } else {
            CLLM_TRY(cllm_tokenizer_encode_parallel(tok, text_buf, text_len, NULL, 0, &ids));
            stream = ids.ids;
            n = ids.n;
        }
        progress pr = {show, "perplexity", "tokens", cllm_now(), 0};
        cllm_ppl_opts po = {
            .batch = batch, .stride = stride, .progress = ppl_progress, .progress_user = &pr};
        cllm_ppl_result r;
        st = cllm_eval_perplexity(&r, mdl->gpt, tok, stream, n, &po);
        if (st != CLLM_OK) {
            if (data) cllm_fail_context(st, "--data %s", data);
            goto fail;
        }
        const char *sec = "perplexity";
        char *src = data ? cllm_strdup_printf("%s (%s, %d shard%s)", data, split, shards.n_shards,
                                              shards.n_shards == 1 ? "" : "s")
                         : strdup(text);
        st = src ? cllm_eval_report_add_string(rep, sec, "source", src)
                 : cllm_fail(CLLM_ERR_NOMEM, "out of host memory");
        free(src);
        if (st != CLLM_OK) goto fail;
        CLLM_TRY(cllm_eval_report_add_value(rep, sec, "loss", r.loss));
        CLLM_TRY(cllm_eval_report_add_value(rep, sec, "perplexity", r.perplexity));
        CLLM_TRY(cllm_eval_report_add_value(rep, sec, "bits_per_byte", r.bits_per_byte));
        CLLM_TRY(cllm_eval_report_add_value(rep, sec, "byte_perplexity", r.byte_perplexity));
        if (text) {
            uint64_t words = cllm_eval_count_words(text_buf, text_len);
            CLLM_TRY(cllm_eval_report_add_value(rep, sec, "word_perplexity",
                                                exp(r.nats / (double)words)));
            CLLM_TRY(cllm_eval_report_add_value(rep, sec, "words", (double)words));
        }
        CLLM_TRY(cllm_eval_report_add_value(rep, sec, "tokens", (double)r.tokens));
        CLLM_TRY(cllm_eval_report_add_value(rep, sec, "eot_tokens", (double)r.special));
        CLLM_TRY(cllm_eval_report_add_value(rep, sec, "bytes", (double)r.bytes));
        CLLM_TRY(cllm_eval_report_add_value(rep, sec, "nats", r.nats));
        CLLM_TRY(cllm_eval_report_add_value(rep, sec, "window", r.T));
        CLLM_TRY(cllm_eval_report_add_value(rep, sec, "stride", r.stride));
        CLLM_TRY(cllm_eval_report_add_value(rep, sec, "windows", (double)r.windows));
        CLLM_TRY(cllm_eval_report_add_value(rep, sec, "seconds", r.seconds));
        CLLM_TRY(cllm_eval_report_add_value(rep, sec, "tokens_per_s",
                                            r.seconds > 0 ? (double)r.tokens / r.seconds : NAN));
    }

    if (mc.n) CLLM_TRY(cllm_mc_scorer_init(&scorer, mdl->gpt, mdl->tok, batch, 0));
    for (int k = 0; k < n_sets; k++) {
        mc_run run = {scorer, {show, names[k], "items", cllm_now(), 0}, 0, sets[k].n};
        cllm_mc_results res;
        cllm_mc_scorer_stats_reset(scorer);
        st = cllm_mc_evaluate(&res, &sets[k], mc_item, &run, samples);
        if (st != CLLM_OK) {
            cllm_fail_context(st, "%s", sets[k].path);
            goto fail;
        }
        cllm_mc_scorer_stats ss;
        cllm_mc_scorer_stats_get(scorer, &ss);
        st = cllm_eval_report_add_mc(rep, names[k], &sets[k], &res);
        cllm_mc_results_free(&res);
        if (st != CLLM_OK) goto fail;
        CLLM_TRY(cllm_eval_report_add_value(rep, names[k], "truncated", (double)ss.truncated));
        CLLM_TRY(cllm_eval_report_add_value(rep, names[k], "tokens", (double)ss.tokens));
        CLLM_TRY(cllm_eval_report_add_value(rep, names[k], "seconds", ss.seconds));
        CLLM_TRY(cllm_eval_report_add_value(rep, names[k], "items_per_s",
                                            ss.seconds > 0 ? (double)ss.items / ss.seconds : NAN));
        CLLM_TRY(
            cllm_eval_report_add_value(rep, names[k], "positions_per_s",
                                       ss.seconds > 0 ? (double)ss.positions / ss.seconds : NAN));
    }

    for (int k = 0; k < n_gsets; k++) {
        const char *name = names[n_sets + k];
        progress pr = {show, name, "prompts", cllm_now(), 0};
        cllm_eval_gen_opts eo = {.max_tokens = max_tokens,
                                 .stops = stop.items,
                                 .n_stops = stop.n,
                                 .progress = ppl_progress,
                                 .progress_user = &pr};
        cllm_eval_gen_stats gst;
        cllm_gen_results gr;
        st = cllm_eval_generate(&outputs, &gst, mdl->gpt, mdl->tok, &gsets[k], &eo);
        if (st == CLLM_OK) st = cllm_gen_score(&gr, &gsets[k], (const char *const *)outputs);
        for (int i = 0; st == CLLM_OK && samples && i < gsets[k].n; i++) {
            char *line = cllm_gen_sample_json(&gsets[k], i, outputs[i]);
            if (!line)
                st = CLLM_ERR_NOMEM;
            else
                fprintf(samples, "%s\n", line);
            free(line);
        }
        cllm_eval_gen_outputs_free(outputs, gsets[k].n);
        outputs = NULL;
        if (st != CLLM_OK) {
            cllm_fail_context(st, "%s", gsets[k].path);
            goto fail;
        }
        CLLM_TRY(cllm_eval_report_add_gen(rep, name, &gsets[k], &gr));
        CLLM_TRY(cllm_eval_report_add_value(rep, name, "max_tokens", max_tokens));
        CLLM_TRY(cllm_eval_report_add_value(rep, name, "generated_tokens", (double)gst.tokens));
        CLLM_TRY(cllm_eval_report_add_value(rep, name, "stopped", (double)gst.stopped));
        CLLM_TRY(cllm_eval_report_add_value(rep, name, "truncated", (double)gst.truncated));
        CLLM_TRY(cllm_eval_report_add_value(rep, name, "seconds", gst.seconds));
        CLLM_TRY(cllm_eval_report_add_value(
            rep, name, "tokens_per_s", gst.seconds > 0 ? (double)gst.tokens / gst.seconds : NAN));
    }

    if (samples) {
        if (fclose(samples) != 0) {
            samples = NULL;
            st = cllm_fail(CLLM_ERR_NOMEM, "out of host memory (samples)");
            goto fail;
        }
        samples = NULL;
        CLLM_TRY(cllm_atomic_write(&samples_file, samples_buf, samples_len));
        CLLM_TRY(cllm_atomic_commit(&samples_file));
    }
    if (json) {
        char *s = cllm_eval_report_json(rep, true);
        if (!s) {
            st = CLLM_ERR_NOMEM;
            goto fail;
        }
        puts(s);
        free(s);
    } else {
        cllm_eval_report_print(rep, stdout);
        if (samples_path) printf("samples: %s\n", samples_path);
    }
    rc = 0;
    goto done;
fail:
    rc = cli_report(st);
done:
    if (samples) fclose(samples);
    cllm_atomic_abort(&samples_file);
    free(samples_buf);
    cllm_eval_report_free(rep);
    cllm_mc_scorer_free(scorer);
    cllm_tokenizer_free(own_tok);
    cllm_model_free(mdl);
    cllm_runtime_free(rt);
    cllm_tokens_free(&ids);
    free(text_buf);
    shard_stream_free(&shards);
    for (int k = 0; k < n_sets; k++)
        cllm_mc_set_free(&sets[k]);
    for (int k = 0; k < n_gsets; k++)
        cllm_gen_set_free(&gsets[k]);
    free(sets);
    free(gsets);
    free(tasks);
    free(names);
    cli_strlist_free(&mc);
    cli_strlist_free(&task);
    cli_strlist_free(&gen);
    cli_strlist_free(&stop);
    return rc;
}
