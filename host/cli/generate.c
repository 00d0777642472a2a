/* cllm generate and cllm chat: text from a checkpoint through the key/value cache
 * (cllm/generate.h), streamed to stdout, with the chat template of fine-tuned checkpoints
 * (cllm/chat.h). Both share the sampling flags, the model set-up and the statistics line. */
#include "args.h"
#include "commands.h"

#include "cllm/chat.h"
#include "cllm/generate.h"
#include "cllm/model.h"
#include "cllm/util.h"
#include "data_internal.h" /* cllm_utf8_repair */

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------- shared flags */

typedef struct {
    const char *ckpt, *dev, *plat, *context_full, *system;
    int max_tokens, top_k, context;
    float temperature, top_p, min_p, rep;
    long long seed;
    bool greedy, no_cache, quiet, ignore_eot;
    cli_strlist stops;
} gen_flags;

static gen_flags gen_flags_default(int max_tokens) {
    gen_flags f = {.context_full = "slide",
                   .max_tokens = max_tokens,
                   .temperature = 1.0f,
                   .top_p = 1.0f,
                   .rep = 1.0f,
                   .seed = 1337};
    return f;
}

/* The options generate and chat share (the sampler's ranges are checked by
 * cllm_gen_opts_validate, one place for both commands and the library). */
#define GEN_CKPT_OPT(f)                                                                            \
    {                                                                                              \
        "ckpt", 'c', CLI_STR, &(f).ckpt, "PATH",                                                   \
            "checkpoint: a run directory (its latest step), a step directory or a Hugging Face "   \
            "GPT-2 "                                                                               \
            "directory, with a tokenizer.json",                                                    \
            .required = true                                                                       \
    }

#define GEN_COMMON_OPTS(f)                                                                         \
    {"max-tokens", 'n',      CLI_INT, &(f).max_tokens, "N", "new tokens at most (per sample)",     \
     .lo = 1,      .hi = 1e9},                                                                     \
        {"temperature",    't', CLI_FLOAT,                                                         \
         &(f).temperature, "T", "divide the logits by T (>= 0; 0 = greedy)"},                      \
        {"top-k", 'k', CLI_INT, &(f).top_k, "K", "keep the K most likely tokens (0 = off)"},       \
        {"top-p",                                                                                  \
         'p',                                                                                      \
         CLI_FLOAT,                                                                                \
         &(f).top_p,                                                                               \
         "P",                                                                                      \
         "nucleus: keep the most likely tokens whose mass reaches P, in (0, 1] (1 = off)"},        \
        {"min-p",   0,                                                                             \
         CLI_FLOAT, &(f).min_p,                                                                    \
         "P",       "drop tokens less likely than P x the most likely one, in [0, 1) (0 = off)"},  \
        {"repetition-penalty",                                                                     \
         0,                                                                                        \
         CLI_FLOAT,                                                                                \
         &(f).rep,                                                                                 \
         "R",                                                                                      \
         "CTRL's penalty on tokens already in the context, > 0 (1 = off)"},                        \
        {"seed",    's', CLI_I64,                                                                  \
         &(f).seed, "S", "RNG seed: the same seed gives the same text on the same device"},        \
        {"greedy",    0,    CLI_FLAG,                                                              \
         &(f).greedy, NULL,                                                                     \
         "always take the most likely token (after --repetition-penalty, as Hugging Face's "     \
         "greedy search; the other sampling flags are ignored)"},                                \
        {"stop",   0,                                                                              \
         CLI_STRS, &(f).stops,                                                                     \
         "STR",    "end a sample at STR, cut just before it (\\n \\t \\r \\\\ are decoded)"},      \
        {"ignore-eot", 0, CLI_FLAG, &(f).ignore_eot, NULL, "do not stop at <|endoftext|>"},        \
        {"context", 0,                                                                             \
         CLI_INT,   &(f).context,                                                                  \
         "N",       "context window in tokens (0 = the model's n_positions)",                      \
         .lo = 0,   .hi = 1 << 30},                                                                \
        {"context-full",                                                                           \
         0,                                                                                        \
         CLI_CHOICE,                                                                               \
         &(f).context_full,                                                                        \
         NULL,                                                                                     \
         "when the window is full: slide (drop the oldest half and go on, and say so) or "         \
         "stop",                                                                                   \
         .choices = "slide|stop"},                                                                 \
        {"no-cache",                                                                               \
         0,                                                                                        \
         CLI_FLAG,                                                                                 \
         &(f).no_cache,                                                                            \
         NULL,                                                                                     \
         "recompute the whole forward for every token (no key/value cache; for comparison)"},      \
        {"quiet", 'q', CLI_FLAG, &(f).quiet, NULL, "no statistics on stderr"},                     \
        CLI_DEVICE_OPTS(&(f).dev, &(f).plat)

/* A --stop value with \n, \t, \r and \\ decoded (any other backslash stays as it is);
 * malloc'd. */
static char *unescape(const char *s) {
    static const char from[] = "ntr\\", to[] = "\n\t\r\\";
    char *out = malloc(strlen(s) + 1), *o = out;
    if (!out) return NULL;
    for (; *s; s++) {
        const char *esc = s[0] == '\\' && s[1] ? strchr(from, s[1]) : NULL;
        if (!esc) {
            *o++ = *s;
            continue;
        }
        *o++ = to[esc - from];
        s++;
    }
    *o = '\0';
    return out;
}

/* Sampling options from the flags; usage errors print one line and return 2, else -1. */
static int gen_opts_from_flags(const cli_spec *spec, gen_flags *f, cllm_gen_opts *o,
                               char ***stops_out) {
    *o = cllm_gen_opts_default();
    o->max_tokens = f->max_tokens;
    o->sampler.temperature = f->temperature;
    o->sampler.top_k = f->top_k;
    o->sampler.top_p = f->top_p;
    o->sampler.min_p = f->min_p;
    o->sampler.repetition_penalty = f->rep;
    o->sampler.greedy = f->greedy;
    o->seed = (uint64_t)f->seed;
    o->ignore_eot = f->ignore_eot;
    o->context_full =
        !strcmp(f->context_full, "stop") ? CLLM_GEN_CONTEXT_STOP : CLLM_GEN_CONTEXT_SLIDE;
    if (cllm_gen_opts_validate(o) != CLLM_OK) return cli_usage_error(spec, "%s", cllm_last_error());
    char **stops = calloc((size_t)f->stops.n + 1, sizeof *stops);
    if (!stops) return cli_usage_error(spec, "out of memory");
    for (int i = 0; i < f->stops.n; i++) {
        if (!f->stops.items[i][0]) {
            free(stops);
            return cli_usage_error(spec, "--stop needs a non-empty string");
        }
        if (!(stops[i] = unescape(f->stops.items[i]))) {
            for (int j = 0; j < i; j++)
                free(stops[j]);
            free(stops);
            return cli_usage_error(spec, "out of memory");
        }
    }
    o->stops = (const char *const *)stops;
    o->n_stops = f->stops.n;
    *stops_out = stops;
    return -1;
}

static void free_stops(char **stops, int n) {
    for (int i = 0; stops && i < n; i++)
        free(stops[i]);
    free(stops);
}

/* Runtime and model (rows = samples generated together), with the tokenizer required. */
static cllm_status open_model(const gen_flags *f, int rows, cllm_runtime **rt, cllm_model **mdl) {
    cllm_status st = CLLM_OK;
    cllm_runtime_opts ro = cllm_runtime_opts_default();
    ro.device_spec = f->dev;
    ro.platform_spec = f->plat;
    ro.quiet = f->quiet;
    CLLM_TRY(cllm_runtime_init(rt, &ro));
    cllm_gpt_opts go = {.max_batch = rows, .max_seq = f->context, .kv_cache = !f->no_cache};
    CLLM_TRY(cllm_model_load(mdl, *rt, f->ckpt, &go, NULL));
    CLLM_TRY(cllm_model_require_tokenizer(*mdl));
fail:
    return st;
}

static double rate(double n, double s) {
    return s > 0 ? n / s : 0;
}

/* Warnings about the window: always shown (they change what the model saw). */
static void warn_context(const char *cmd, const cllm_gen_result *r, int n_ctx,
                         const cllm_gen_opts *o) {
    if (r->prompt_dropped)
        fprintf(stderr,
                "%s: the prompt did not fit the context of %d tokens: its first %d tokens%s were "
                "dropped\n",
                cmd, n_ctx, r->prompt_dropped, o->n_keep ? " after the kept ones" : "");
    if (r->slides)
        fprintf(stderr,
                "%s: the context of %d tokens filled up %d time%s: each time the newest %d "
                "tokens%s were kept and re-encoded (--context-full slide)\n",
                cmd, n_ctx, r->slides, r->slides == 1 ? "" : "s", (n_ctx - r->n_keep) / 2,
                r->n_keep ? " and the kept prefix" : "");
}

/* A JSON string of arbitrary bytes: invalid UTF-8 becomes U+FFFD (the token ids are exact). */
static cJSON *json_text(const char *s, size_t n) {
    char *ok = cllm_utf8_repair(s, n, NULL);
    cJSON *j = ok ? cJSON_CreateString(ok) : NULL;
    free(ok);
    return j;
}

/* ---------------------------------------------------------------- cllm generate */

/* Streams sample 0's text to stdout as it is released. */
static int stream_sample0(const cllm_gen_event *ev, void *user) {
    (void)user;
    if (ev->sample == 0 && ev->n_new) {
        fwrite(ev->text + ev->len - ev->n_new, 1, ev->n_new, stdout);
        fflush(stdout);
    }
    return 0;
}

static char *gen_json(const cllm_model *mdl, const cllm_runtime *rt, const char *prompt,
                      size_t prompt_len, const cllm_tokens *ids, const cllm_gen_opts *o,
                      const cllm_gen_result *r, int n_ctx, bool cache) {
    cJSON *j = cJSON_CreateObject(), *s, *arr;
    cJSON_AddStringToObject(j, "model", mdl->path);
    cJSON_AddStringToObject(j, "device", cllm_runtime_device(rt)->name);
    cJSON_AddItemToObject(j, "prompt", json_text(prompt, prompt_len));
    cJSON_AddItemToObject(j, "prompt_tokens", arr = cJSON_CreateArray());
    for (size_t i = 0; i < ids->n; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateNumber(ids->ids[i]));
    cJSON_AddNumberToObject(j, "prompt_dropped", r->prompt_dropped);
    cJSON_AddNumberToObject(j, "context", n_ctx);
    cJSON_AddNumberToObject(j, "slides", r->slides);
    cJSON_AddItemToObject(j, "samples", arr = cJSON_CreateArray());
    for (int b = 0; b < r->n_samples; b++) {
        const cllm_gen_sample *sm = &r->samples[b];
        cJSON *t = cJSON_CreateArray(), *lp = cJSON_CreateArray();
        for (int i = 0; i < sm->n_tokens; i++) {
            cJSON_AddItemToArray(t, cJSON_CreateNumber(sm->tokens[i]));
            cJSON_AddItemToArray(lp, cJSON_CreateNumber(sm->logprobs[i]));
        }
        cJSON_AddItemToArray(arr, s = cJSON_CreateObject());
        cJSON_AddItemToObject(s, "text", json_text(sm->text, sm->len));
        cJSON_AddItemToObject(s, "tokens", t);
        cJSON_AddItemToObject(s, "logprobs", lp);
        cJSON_AddStringToObject(s, "finish_reason", cllm_gen_finish_name(sm->finish));
        if (sm->stop_index >= 0)
            cJSON_AddStringToObject(s, "stop", o->stops[sm->stop_index]);
        else
            cJSON_AddNullToObject(s, "stop");
    }
    cJSON_AddItemToObject(j, "timing", s = cJSON_CreateObject());
    cJSON_AddNumberToObject(s, "prompt_positions", r->prompt_positions);
    cJSON_AddNumberToObject(s, "prompt_s", r->prompt_s);
    cJSON_AddNumberToObject(s, "prompt_tokens_per_s", rate(r->prompt_positions, r->prompt_s));
    cJSON_AddNumberToObject(s, "generated_tokens", r->generated);
    cJSON_AddNumberToObject(s, "generate_s", r->gen_s);
    cJSON_AddNumberToObject(s, "tokens_per_s", rate(r->generated, r->gen_s));
    cJSON_AddBoolToObject(s, "cache", cache);
    cJSON_AddItemToObject(j, "sampler", s = cJSON_CreateObject());
    cJSON_AddBoolToObject(s, "greedy", o->sampler.greedy || o->sampler.temperature == 0);
    cJSON_AddNumberToObject(s, "temperature", o->sampler.temperature);
    cJSON_AddNumberToObject(s, "top_k", o->sampler.top_k);
    cJSON_AddNumberToObject(s, "top_p", o->sampler.top_p);
    cJSON_AddNumberToObject(s, "min_p", o->sampler.min_p);
    cJSON_AddNumberToObject(s, "repetition_penalty", o->sampler.repetition_penalty);
    cJSON_AddNumberToObject(s, "seed", (double)o->seed);
    char *out = cJSON_Print(j);
    cJSON_Delete(j);
    return out;
}

int cmd_generate(int argc, char **argv) {
    gen_flags f = gen_flags_default(256);
    const char *prompt = NULL, *prompt_file = NULL, *allowed = "none";
    int num_samples = 1, keep = 0;
    bool json = false, chat = false;
    const cli_opt opts[] = {
        GEN_CKPT_OPT(f),
        {"prompt", 'P', CLI_STR, &prompt, "TEXT", "the text to continue"},
        {"prompt-file", 'f', CLI_STR, &prompt_file, "FILE",
         "read the prompt from FILE (- = stdin)"},
        GEN_COMMON_OPTS(f),
        {"num-samples", 0, CLI_INT, &num_samples, "N",
         "samples drawn together, as N rows of one batch (sample k uses seed S + k)", .lo = 1,
         .hi = 4096},
        {"keep", 0, CLI_INT, &keep, "N",
         "prompt tokens that a slide of the window never drops (with --chat: the system "
         "message)",
         .lo = 0, .hi = 1 << 30},
        {"allowed-special", 0, CLI_STR, &allowed, "all|none|TOK,...",
         "special tokens recognised in the prompt's text (as cllm tokenizer encode)"},
        {"chat", 0, CLI_FLAG, &chat, NULL,
         "render the prompt as a user message with the checkpoint's chat template and stop at "
         "<|end|> (needs a checkpoint fine-tuned with cllm sft)"},
        {"system", 0, CLI_STR, &f.system, "TEXT", "with --chat: a system message first"},
        {"json", 0, CLI_FLAG, &json, NULL,
         "print one JSON object (texts, tokens, log-probabilities, timing) instead of text"},
    };
    const cli_spec spec = {
        "cllm generate",
        "--ckpt PATH [--prompt TEXT | --prompt-file FILE] [options]",
        "Continue a prompt with a trained model, streaming the text to stdout as it is produced\n"
        "(each sample ends with a newline). The prompt goes through the model in one batched\n"
        "pass that fills a key/value cache on the device; each new token then costs one\n"
        "position. Sampling applies the repetition penalty, temperature, top-k, top-p and min-p\n"
        "in that order (Hugging Face's), from a seeded RNG. A sample ends at --max-tokens, at\n"
        "<|endoftext|>, or at a --stop string (the text is cut just before it; no byte of it is\n"
        "ever printed). Without a prompt the model starts from <|endoftext|>. When the context\n"
        "window fills up, --context-full slide (the default) keeps the --keep first tokens and\n"
        "the newest half of the rest, re-encodes them and goes on, and says so on stderr; stop\n"
        "ends the samples instead. A prompt longer than the window loses its oldest tokens\n"
        "(slide, with a warning) or is refused (stop). Prompt and generated tokens/s go to\n"
        "stderr (--quiet hides them).",
        opts,
        CLI_COUNT(opts),
        "examples:\n"
        "  cllm generate --ckpt runs/nano --prompt 'The meaning of life' --max-tokens 100\n"
        "  cllm generate --ckpt runs/nano --prompt 'Q:' --greedy --stop '\\n' --json\n"
        "  cllm generate --ckpt runs/nano --top-k 40 --top-p 0.95 --temperature 0.8 "
        "--num-samples 4 --seed 7\n"
        "  cllm generate --ckpt runs/nano-sft --chat --prompt 'Tell me a fortune about cats.'\n"
        "exit codes: 0 success, 1 runtime error (unreadable checkpoint, no tokenizer, no "
        "device),\n2 usage error (bad flag value, a prompt longer than the window with "
        "--context-full stop)."};
    int rc = cli_parse(&spec, argc, argv, NULL);
    if (rc >= 0) {
        cli_strlist_free(&f.stops);
        return rc;
    }
    cllm_gen_opts o;
    char **stops = NULL;
    char *text = NULL, *out = NULL;
    size_t text_len = 0;
    cllm_runtime *rt = NULL;
    cllm_model *mdl = NULL;
    cllm_tokens ids = {0};
    cllm_gen_result res = {0};
    cllm_gen *g = NULL;
    uint32_t chat_stops[CLLM_ROLE_COUNT + 1];
    cllm_status st = CLLM_OK;
    if (prompt && prompt_file) {
        rc = cli_usage_error(&spec, "give --prompt or --prompt-file, not both");
        goto done;
    }
    if (f.system && !chat) {
        rc = cli_usage_error(&spec, "--system needs --chat");
        goto done;
    }
    if ((rc = gen_opts_from_flags(&spec, &f, &o, &stops)) >= 0) goto done;
    o.num_samples = num_samples;
    if (prompt_file) {
        if (!strcmp(prompt_file, "-")) {
            size_t cap = 0;
            FILE *mem = open_memstream(&text, &cap);
            char buf[65536];
            size_t k;
            while (mem && (k = fread(buf, 1, sizeof buf, stdin)) > 0)
                fwrite(buf, 1, k, mem);
            if (mem) fclose(mem);
            text_len = text ? strlen(text) : 0;
            if (!text) st = cllm_fail(CLLM_ERR_NOMEM, "out of memory reading stdin");
        } else {
            st = cllm_read_file(prompt_file, &text, &text_len);
        }
        if (st != CLLM_OK) goto fail;
    } else {
        text = strdup(prompt ? prompt : "");
        text_len = strlen(text);
    }
    CLLM_TRY(open_model(&f, num_samples, &rt, &mdl));
    if (chat) {
        cllm_chat_template t;
        CLLM_TRY(cllm_chat_template_load(&t, mdl->ck.config_json, mdl->tok, mdl->path));
        cllm_chat_message msgs[2];
        int n = 0;
        if (f.system) msgs[n++] = (cllm_chat_message){CLLM_ROLE_SYSTEM, f.system, strlen(f.system)};
        msgs[n++] = (cllm_chat_message){CLLM_ROLE_USER, text, text_len};
        if (f.system) {
            CLLM_TRY(cllm_chat_render(&t, mdl->tok, msgs, 1, false, &ids, NULL));
            keep = (int)ids.n;
            CLLM_TRY(cllm_chat_render(&t, mdl->tok, msgs + 1, 1, true, &ids, NULL));
        } else {
            CLLM_TRY(cllm_chat_render(&t, mdl->tok, msgs, 1, true, &ids, NULL));
        }
        cllm_chat_template_ids(&t, chat_stops);
        o.stop_tokens = chat_stops;
        o.n_stop_tokens = CLLM_ROLE_COUNT + 1;
    } else {
        CLLM_TRY(cllm_tokenizer_encode(mdl->tok, text, text_len, allowed, &ids));
    }
    cllm_gen_setup su = {.n_ctx = f.context, .no_cache = f.no_cache};
    CLLM_TRY(cllm_gen_init(&g, mdl->gpt, mdl->tok, &su));
    const int n_ctx = cllm_gen_n_ctx(g);
    if (keep >= n_ctx - 1) {
        rc = cli_usage_error(&spec, "--keep %d leaves no room in a context of %d tokens", keep,
                             n_ctx);
        goto done;
    }
    o.n_keep = keep;
    CLLM_TRY(cllm_gen_append(g, ids.ids, (int)ids.n));
    if (!json) {
        o.on_token = stream_sample0;
        if (num_samples > 1) printf("--- sample 1/%d ---\n", num_samples);
        fflush(stdout);
    }
    CLLM_TRY(cllm_gen_run(g, &o, &res));
    if (json) {
        out = gen_json(mdl, rt, text, text_len, &ids, &o, &res, n_ctx, !f.no_cache);
        if (!out) {
            st = cllm_fail(CLLM_ERR_NOMEM, "out of memory (JSON)");
            goto fail;
        }
        printf("%s\n", out);
    } else {
        for (int b = 0; b < res.n_samples; b++) {
            if (b > 0) {
                printf("--- sample %d/%d ---\n", b + 1, num_samples);
                fwrite(res.samples[b].text, 1, res.samples[b].len, stdout);
            }
            printf("\n");
        }
    }
    fflush(stdout);
    warn_context("cllm generate", &res, n_ctx, &o);
    if (!f.quiet) {
        const char *fin = cllm_gen_finish_name(res.samples[0].finish);
        fprintf(stderr,
                "cllm generate: prompt %d tokens in %.3f s (%.1f tokens/s), generated %d tokens "
                "in %.3f s (%.1f tokens/s)%s%s, %s on %s; sample 1 stopped: %s\n",
                res.prompt_positions, res.prompt_s, rate(res.prompt_positions, res.prompt_s),
                res.generated, res.gen_s, rate(res.generated, res.gen_s),
                num_samples > 1 ? " over all samples" : "", f.no_cache ? " without the cache" : "",
                mdl->path, cllm_runtime_device(rt)->name,
                !strcmp(fin, "token") ? (chat ? "end of turn" : "<|endoftext|>") : fin);
    }
fail:
    if (st != CLLM_OK) rc = cli_report(st);
done:
    if (rc < 0) rc = 0;
    free(out);
    cllm_gen_result_free(&res);
    cllm_gen_free(g);
    cllm_tokens_free(&ids);
    cllm_model_free(mdl);
    cllm_runtime_free(rt);
    free(text);
    free_stops(stops, f.stops.n);
    cli_strlist_free(&f.stops);
    return rc;
}

/* ---------------------------------------------------------------- cllm chat */

/* The conversation as token lists, one per message (role token, content, <|end|>), so that
 * dropping the oldest messages and re-rendering never re-encodes a reply the model sampled. */
typedef struct {
    cllm_tokens *msg;
    int n, cap;
    int n_system; /* 1 when msg[0] is the system message (never dropped) */
} conversation;

static cllm_status conv_push(conversation *c, const uint32_t *ids, size_t n) {
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 16;
        cllm_tokens *m = realloc(c->msg, (size_t)cap * sizeof *m);
        if (!m) return cllm_fail(CLLM_ERR_NOMEM, "out of memory (conversation)");
        c->msg = m;
        c->cap = cap;
    }
    c->msg[c->n] = (cllm_tokens){0};
    c->n++;
    return cllm_tokens_push(&c->msg[c->n - 1], ids, n);
}

static size_t conv_tokens(const conversation *c, int from) {
    size_t n = 0;
    for (int i = from; i < c->n; i++)
        n += c->msg[i].n;
    return n;
}

static void conv_drop(conversation *c, int i) {
    cllm_tokens_free(&c->msg[i]);
    memmove(c->msg + i, c->msg + i + 1, (size_t)(c->n - i - 1) * sizeof *c->msg);
    c->n--;
}

static void conv_free(conversation *c) {
    for (int i = 0; i < c->n; i++)
        cllm_tokens_free(&c->msg[i]);
    free(c->msg);
    memset(c, 0, sizeof *c);
}

int cmd_chat(int argc, char **argv) {
    gen_flags f = gen_flags_default(256);
    const cli_opt opts[] = {
        GEN_CKPT_OPT(f),
        {"system", 0, CLI_STR, &f.system, "TEXT",
         "a system message at the start of the conversation (never dropped)"},
        GEN_COMMON_OPTS(f),
    };
    const cli_spec spec = {
        "cllm chat",
        "--ckpt PATH [--system TEXT] [options]",
        "Talk with a model fine-tuned for chat (cllm sft): each line read from stdin is one user\n"
        "message; the reply streams to stdout, followed by a newline. The conversation is\n"
        "rendered with the checkpoint's chat template (config.json's \"chat_template\":\n"
        "<|user|>message<|end|><|assistant|>reply<|end|>...) and kept in the key/value cache, so\n"
        "each turn feeds only its new tokens. A reply ends at <|end|> (or any other template\n"
        "token, or <|endoftext|>), at --max-tokens (then <|end|> is added to the conversation),\n"
        "or at a --stop string. When a turn would not leave room for a reply of --max-tokens\n"
        "(at most half the window), the oldest messages after the system message are dropped,\n"
        "whole, and the rest re-encoded in one pass (said on stderr); a reply that still fills\n"
        "the window slides it (--context-full slide) or ends (stop; a message too long to fit\n"
        "at all is then skipped). On a terminal, '> ' prompts on stderr, /reset starts over and\n"
        "/quit (or Ctrl-D) ends; with piped stdin every line is a message, so a conversation\n"
        "can be scripted. Turn k samples with seed S + k. At the end, the prompt and generated\n"
        "tokens/s go to stderr (--quiet hides them). A checkpoint without a chat template is\n"
        "refused: fine-tune it with cllm sft first, or use cllm generate.",
        opts,
        CLI_COUNT(opts),
        "examples:\n"
        "  cllm chat --ckpt runs/nano-sft\n"
        "  printf 'Tell me a fortune about cats.\\nAnother one?\\n' | cllm chat --ckpt "
        "runs/nano-sft --greedy\n"
        "  cllm chat --ckpt runs/nano-sft --system 'Answer briefly.' --temperature 0.7 --top-p "
        "0.9"};
    int rc = cli_parse(&spec, argc, argv, NULL);
    if (rc >= 0) {
        cli_strlist_free(&f.stops);
        return rc;
    }
    cllm_gen_opts o;
    char **stops = NULL, *line = NULL;
    size_t line_cap = 0;
    cllm_runtime *rt = NULL;
    cllm_model *mdl = NULL;
    cllm_gen *g = NULL;
    cllm_tokens ctx = {0}, turn = {0};
    conversation conv = {0};
    cllm_chat_template t;
    uint32_t stop_ids[CLLM_ROLE_COUNT + 1];
    cllm_status st = CLLM_OK;
    const bool tty = isatty(STDIN_FILENO);
    long turns = 0, fed = 0, generated = 0;
    double prompt_s = 0, gen_s = 0;
    if ((rc = gen_opts_from_flags(&spec, &f, &o, &stops)) >= 0) goto done;
    CLLM_TRY(open_model(&f, 1, &rt, &mdl));
    CLLM_TRY(cllm_chat_template_load(&t, mdl->ck.config_json, mdl->tok, mdl->path));
    cllm_chat_template_ids(&t, stop_ids);
    o.stop_tokens = stop_ids;
    o.n_stop_tokens = CLLM_ROLE_COUNT + 1;
    o.on_token = stream_sample0;
    cllm_gen_setup su = {.n_ctx = f.context, .no_cache = f.no_cache};
    CLLM_TRY(cllm_gen_init(&g, mdl->gpt, mdl->tok, &su));
    const int n_ctx = cllm_gen_n_ctx(g);
    const size_t room = (size_t)(f.max_tokens < n_ctx / 2 ? f.max_tokens : n_ctx / 2);
    if (f.system) {
        cllm_chat_message m = {CLLM_ROLE_SYSTEM, f.system, strlen(f.system)};
        CLLM_TRY(cllm_chat_render(&t, mdl->tok, &m, 1, false, &turn, NULL));
        if (turn.n + 1 + room > (size_t)n_ctx) {
            st = cllm_fail(CLLM_ERR_USAGE,
                           "--system is %zu tokens: with a reply of %zu it does not fit the "
                           "context of %d tokens",
                           turn.n, room, n_ctx);
            goto fail;
        }
        CLLM_TRY(conv_push(&conv, turn.ids, turn.n));
        conv.n_system = 1;
    }
    if (tty)
        fprintf(stderr,
                "cllm chat: %s, context %d tokens. Type a message and Enter; /reset starts over, "
                "/quit or Ctrl-D ends.\n> ",
                mdl->path, n_ctx);
    ssize_t got;
    while ((got = getline(&line, &line_cap, stdin)) >= 0) {
        size_t len = (size_t)got;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        if (tty && (!strncmp(line, "/quit", 5) || !strncmp(line, "/exit", 5))) break;
        if (tty && !strncmp(line, "/reset", 6)) {
            while (conv.n > conv.n_system)
                conv_drop(&conv, conv.n - 1);
            fprintf(stderr, "(conversation reset)\n> ");
            continue;
        }
        if (len == 0) {
            if (tty) fprintf(stderr, "> ");
            continue;
        }
        /* the user's message, then make room for a reply by dropping the oldest messages */
        turn.n = 0;
        cllm_chat_message m = {CLLM_ROLE_USER, line, len};
        CLLM_TRY(cllm_chat_render(&t, mdl->tok, &m, 1, false, &turn, NULL));
        CLLM_TRY(conv_push(&conv, turn.ids, turn.n));
        int dropped = 0;
        size_t dropped_tokens = 0;
        while (conv.n - 1 > conv.n_system && conv_tokens(&conv, 0) + 1 + room > (size_t)n_ctx) {
            dropped_tokens += conv.msg[conv.n_system].n;
            conv_drop(&conv, conv.n_system);
            dropped++;
        }
        if (dropped)
            fprintf(stderr,
                    "cllm chat: the context of %d tokens is full: the oldest %d message%s (%zu "
                    "tokens) %s dropped\n",
                    n_ctx, dropped, dropped == 1 ? "" : "s", dropped_tokens,
                    dropped == 1 ? "was" : "were");
        ctx.n = 0;
        for (int i = 0; i < conv.n; i++)
            CLLM_TRY(cllm_tokens_push(&ctx, conv.msg[i].ids, conv.msg[i].n));
        CLLM_TRY(cllm_tokens_push(&ctx, &t.role_id[CLLM_ROLE_ASSISTANT], 1));
        if (ctx.n > (size_t)n_ctx && o.context_full == CLLM_GEN_CONTEXT_STOP) {
            /* refused like generate's too-long prompt, but the conversation goes on */
            fprintf(stderr,
                    "cllm chat: the message does not fit the context of %d tokens (%zu with the "
                    "system message; --context-full stop): skipped\n",
                    n_ctx, ctx.n);
            conv_drop(&conv, conv.n - 1);
            if (tty) fprintf(stderr, "> ");
            continue;
        }
        /* the cache keeps what the context shares with the previous turn: only the new
         * tokens (and whatever a drop moved) are fed */
        CLLM_TRY(cllm_gen_set_context(g, ctx.ids, (int)ctx.n));
        o.n_keep = conv.n_system ? (int)conv.msg[0].n : 0;
        o.seed = (uint64_t)f.seed + (uint64_t)turns;
        cllm_gen_result r = {0};
        CLLM_TRY(cllm_gen_run(g, &o, &r));
        printf("\n");
        fflush(stdout);
        warn_context("cllm chat", &r, n_ctx, &o);
        /* the reply joins the conversation as the model produced it, closed by <|end|>; cut
         * at a stop string it is the text that was shown, encoded again */
        const cllm_gen_sample *s = &r.samples[0];
        turn.n = 0;
        CLLM_TRY(cllm_tokens_push(&turn, &t.role_id[CLLM_ROLE_ASSISTANT], 1));
        if (s->finish == CLLM_GEN_FINISH_STOP || s->finish == CLLM_GEN_FINISH_CALLBACK) {
            CLLM_TRY(cllm_tokenizer_encode(mdl->tok, s->text, s->len, "none", &turn));
        } else {
            int n = s->n_tokens - (s->finish == CLLM_GEN_FINISH_TOKEN);
            CLLM_TRY(cllm_tokens_push(&turn, s->tokens, (size_t)n));
        }
        CLLM_TRY(cllm_tokens_push(&turn, &t.end_id, 1));
        CLLM_TRY(conv_push(&conv, turn.ids, turn.n));
        turns++;
        fed += r.prompt_positions;
        generated += r.generated;
        prompt_s += r.prompt_s;
        gen_s += r.gen_s;
        cllm_gen_result_free(&r);
        if (tty) fprintf(stderr, "> ");
    }
    if (tty) fprintf(stderr, "\n");
    if (!f.quiet && turns > 0)
        fprintf(stderr,
                "cllm chat: %ld turn%s; prompts: %ld new tokens fed in %.3f s (%.1f tokens/s), "
                "replies: %ld tokens in %.3f s (%.1f tokens/s)%s\n",
                turns, turns == 1 ? "" : "s", fed, prompt_s, rate((double)fed, prompt_s), generated,
                gen_s, rate((double)generated, gen_s), f.no_cache ? ", without the cache" : "");
fail:
    if (st != CLLM_OK) rc = cli_report(st);
done:
    if (rc < 0) rc = 0;
    free(line);
    conv_free(&conv);
    cllm_tokens_free(&ctx);
    cllm_tokens_free(&turn);
    cllm_gen_free(g);
    cllm_model_free(mdl);
    cllm_runtime_free(rt);
    free_stops(stops, f.stops.n);
    cli_strlist_free(&f.stops);
    return rc;
}
