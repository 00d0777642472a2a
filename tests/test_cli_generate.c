/* cllm generate and cllm chat through the binary, on checkpoints this test writes (a tiny
 * random model; a tiny trained tokenizer; one with the chat template, one without, one with
 * no tokenizer): the tokens printed equal the library's greedy decoding in-process, cache or
 * not; seeds, temperature 0, stop strings, several samples, --json; a prompt longer than the
 * window handled as documented; every bad flag is one line and exit 2; chat over piped stdin
 * gives exactly the replies of the documented conversation, turn after turn. */
#include "testutil.h"

#include "cllm/chat.h"
#include "cllm/generate.h"
#include "cllm/model.h"
#include "cllm/util.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define NPOS 64

static const char *bin;
static char *tmp;
static char *out_path, *err_path;
static char *out_text, *err_text;
static size_t out_len, err_len;

/* Run the shell command (printf format), capturing stdout and stderr; returns the exit code. */
__attribute__((format(printf, 1, 2))) static int run(const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char *full = cllm_strdup_printf("%s >'%s' 2>'%s'", cmd, out_path, err_path);
    int rc = system(full);
    free(full);
    free(out_text);
    free(err_text);
    out_text = err_text = NULL;
    if (cllm_read_file(out_path, &out_text, &out_len) != CLLM_OK)
        out_text = strdup(""), out_len = 0;
    if (cllm_read_file(err_path, &err_text, &err_len) != CLLM_OK)
        err_text = strdup(""), err_len = 0;
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

/* Newlines in s[0 .. n) (generated text may hold NUL bytes). */
static int count_lines(const char *s, size_t n) {
    int k = 0;
    for (size_t i = 0; i < n; i++)
        k += s[i] == '\n';
    return k;
}
#define lines_of(s) count_lines(s, s == out_text ? out_len : err_len)

static cllm_tokenizer *make_tokenizer(void) {
    return test_tokenizer("the cat sat on the mat; the cat ate the rat. the mat sat flat. "
                          "hello there, said the cat. tell me about the rat and the mat.",
                          300);
}

/* Writes the three checkpoints; returns the vocabulary size. */
static int make_checkpoints(const char *chat_dir, const char *plain_dir, const char *notok_dir) {
    cllm_tokenizer *tok = make_tokenizer();
    cllm_chat_template t;
    cllm_chat_template_default(&t);
    CHECK_OK(cllm_chat_template_add_tokens(&t, tok, NULL));
    const int V = (int)cllm_tokenizer_vocab_size(tok);
    cllm_gpt_config cfg = {.vocab_size = V,
                           .n_positions = NPOS,
                           .n_embd = 32,
                           .n_layer = 2,
                           .n_head = 4,
                           .layer_norm_epsilon = 1e-5f,
                           .initializer_range = 0.02f};
    cllm_gpt_layout lay;
    cllm_gpt_layout_compute(&cfg, &lay);
    float *p = malloc(lay.total * sizeof *p);
    test_rng r = {21};
    test_fill_normal(&r, p, lay.total, 0.35f);
    memset(p + (size_t)V * cfg.n_embd, 0,
           (size_t)(cllm_gpt_padded_vocab(&cfg) - V) * cfg.n_embd * sizeof *p);
    char *tj = cllm_tokenizer_to_json(tok), *base = cllm_gpt_config_to_json(&cfg), *with = NULL;
    CHECK_OK(cllm_chat_template_write_config(&t, base, &with));
    cllm_checkpoint ck = {.cfg = cfg, .params = p, .config_json = with, .tokenizer_json = tj};
    CHECK_OK(cllm_checkpoint_save(chat_dir, 5, &ck, 0, NULL));
    ck.config_json = NULL;
    CHECK_OK(cllm_checkpoint_save(plain_dir, 5, &ck, 0, NULL));
    ck.tokenizer_json = NULL;
    CHECK_OK(cllm_checkpoint_save(notok_dir, 5, &ck, 0, NULL));
    free(tj);
    free(base);
    free(with);
    free(p);
    cllm_tokenizer_free(tok);
    return V;
}

/* tokens of samples[k] in the JSON on stdout; NULL-terminated list of counts */
static int json_tokens(int k, uint32_t *tokens, int cap, char *text, size_t text_cap) {
    cJSON *j = cJSON_Parse(out_text);
    const cJSON *s = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "samples"), k);
    const cJSON *t = cJSON_GetObjectItem(s, "tokens");
    int n = -1;
    if (cJSON_IsArray(t)) {
        n = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, t) if (n < cap) tokens[n++] = (uint32_t)e->valuedouble;
        const cJSON *lp = cJSON_GetObjectItem(s, "logprobs");
        if (cJSON_GetArraySize(lp) != n) n = -2;
        const cJSON *tx = cJSON_GetObjectItem(s, "text");
        if (text && cJSON_IsString(tx)) snprintf(text, text_cap, "%s", tx->valuestring);
    }
    cJSON_Delete(j);
    return n;
}

/* The library's greedy continuation, in-process. */
static int lib_greedy(cllm_model *m, const uint32_t *prompt, int n, int steps, uint32_t *out,
                      char **text, size_t *len) {
    cllm_gen_opts o = cllm_gen_opts_default();
    o.sampler.greedy = true;
    o.max_tokens = steps;
    o.ignore_eot = true;
    cllm_gen_result r = {0};
    if (cllm_generate(m->gpt, m->tok, prompt, n, &o, &r) != CLLM_OK) return -1;
    int k = r.samples[0].n_tokens;
    memcpy(out, r.samples[0].tokens, (size_t)k * sizeof *out);
    if (text) {
        *text = r.samples[0].text;
        *len = r.samples[0].len;
        r.samples[0].text = NULL;
    }
    cllm_gen_result_free(&r);
    return k;
}

static void test_generate_cli(cllm_model *plain, const char *chat_dir, const char *plain_dir,
                              const char *notok_dir) {
    const char *G = "generate";
    CHECK(run("%s %s --help", bin, G) == 0 && strstr(out_text, "--top-p") &&
          strstr(out_text, "examples:") && strstr(out_text, "--context-full"));
    /* bad flags: one line, exit 2 */
    static const char *bad[] = {
        "--temperature -1",
        "--top-p 0",
        "--top-p 1.5",
        "--min-p 1",
        "--top-k -1",
        "--max-tokens 0",
        "--repetition-penalty 0",
        "--num-samples 0",
        "--temperature abc",
        "--prompt a --prompt-file b",
        "--system x",
        "--stop ''",
        "--context-full maybe",
        "--bogus",
        "--keep 63",
        "--context 65",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = run("%s %s --ckpt '%s' --prompt 'the' %s", bin, G, plain_dir, bad[i]);
        CHECK_MSG(rc == 2 && lines_of(err_text) == 1 && out_len == 0, "'%s': exit %d, stderr '%s'",
                  bad[i], rc, err_text);
    }
    CHECK(run("%s %s --ckpt '%s' --prompt x --top-p 1.5", bin, G, plain_dir) == 2 &&
          strstr(err_text, "--top-p must be in (0, 1]"));
    CHECK(run("%s %s --ckpt '%s' --prompt x --temperature -0.5", bin, G, plain_dir) == 2 &&
          strstr(err_text, "--temperature must be >= 0"));
    /* no tokenizer, no chat template, no checkpoint: runtime errors naming what is missing */
    CHECK(run("%s %s --ckpt '%s' --prompt x", bin, G, notok_dir) == 1 &&
          strstr(err_text, "no tokenizer.json") && lines_of(err_text) == 1);
    CHECK(run("%s %s --ckpt '%s' --prompt x --chat", bin, G, plain_dir) == 1 &&
          strstr(err_text, "no chat template") && strstr(err_text, "cllm sft"));
    CHECK(run("%s %s --ckpt '%s/nonexistent' --prompt x", bin, G, tmp) == 1 &&
          lines_of(err_text) == 1);

    /* greedy: the tokens of the library, with and without the cache; text = JSON text */
    cllm_tokens p = {0};
    CHECK_OK(cllm_tokenizer_encode(plain->tok, "the cat", 7, NULL, &p));
    uint32_t ref[64], got[64];
    char *ref_text = NULL;
    size_t ref_len = 0;
    int nref = lib_greedy(plain, p.ids, (int)p.n, 30, ref, &ref_text, &ref_len);
    CHECK(nref == 30);
    char jtext[4096] = "";
    CHECK(run("%s %s --ckpt '%s' --prompt 'the cat' --greedy --max-tokens 30 --ignore-eot "
              "--json",
              bin, G, plain_dir) == 0);
    CHECK(json_tokens(0, got, 64, jtext, sizeof jtext) == 30 &&
          !memcmp(got, ref, sizeof *ref * 30));
    CHECK(run("%s %s --ckpt '%s' --prompt 'the cat' --greedy --max-tokens 30 --ignore-eot "
              "--json --no-cache",
              bin, G, plain_dir) == 0);
    CHECK(json_tokens(0, got, 64, NULL, 0) == 30 && !memcmp(got, ref, sizeof *ref * 30));
    CHECK(run("%s %s --ckpt '%s' --prompt 'the cat' --greedy --max-tokens 30 --ignore-eot", bin, G,
              plain_dir) == 0);
    CHECK_MSG(
        out_len == ref_len + 1 && !memcmp(out_text, ref_text, ref_len) && out_text[ref_len] == '\n',
        "the printed text (%zu bytes) is not the library's (%zu) plus a newline", out_len, ref_len);
    CHECK(strstr(err_text, "generated 30 tokens") && strstr(err_text, "tokens/s"));
    char *greedy_out = strdup(out_text);
    CHECK(run("%s %s --ckpt '%s' --prompt 'the cat' --temperature 0 --top-k 5 --seed 99 "
              "--max-tokens 30 --ignore-eot --quiet",
              bin, G, plain_dir) == 0 &&
          !strcmp(out_text, greedy_out) && err_len == 0);
    free(greedy_out);

    /* a stop string cuts exactly (one inside the greedy text, spanning tokens) */
    if (ref_len > 12) {
        char stop[8];
        memcpy(stop, ref_text + 7, 4);
        stop[4] = 0;
        if (strlen(stop) == 4 && !strchr(stop, '\'') && !strchr(stop, '\\')) {
            size_t cut = (size_t)((char *)memmem(ref_text, ref_len, stop, 4) - ref_text);
            CHECK(run("%s %s --ckpt '%s' --prompt 'the cat' --greedy --max-tokens 30 --ignore-eot "
                      "--stop '%s' --stop zzzz",
                      bin, G, plain_dir, stop) == 0);
            CHECK_MSG(out_len == cut + 1 && !memcmp(out_text, ref_text, cut),
                      "--stop '%s': printed %zu bytes, want %zu + newline", stop, out_len, cut);
            CHECK(run("%s %s --ckpt '%s' --prompt 'the cat' --greedy --max-tokens 30 "
                      "--ignore-eot --stop '%s' --json",
                      bin, G, plain_dir, stop) == 0 &&
                  strstr(out_text, "\"finish_reason\":\t\"stop\"") &&
                  strstr(out_text, "\"stop\":\t\""));
        }
    }
    /* a newline stop: \n is decoded */
    int nrc = run("%s %s --ckpt '%s' --prompt 'the cat' --max-tokens 200 --ignore-eot --seed 3 "
                  "--temperature 2 --stop '\\n' --quiet",
                  bin, G, plain_dir);
    CHECK_MSG(nrc == 0 && lines_of(out_text) == 1 &&
                  memchr(out_text, '\n', out_len) == out_text + out_len - 1,
              "exit %d, %d lines in %zu bytes", nrc, lines_of(out_text), out_len);

    /* seeds: the same seed gives the same text, another seed another text */
    CHECK(run("%s %s --ckpt '%s' --prompt 'the' --seed 5 --max-tokens 40 --ignore-eot --quiet", bin,
              G, plain_dir) == 0);
    char *a = strdup(out_text);
    CHECK(run("%s %s --ckpt '%s' --prompt 'the' --seed 5 --max-tokens 40 --ignore-eot --quiet", bin,
              G, plain_dir) == 0 &&
          !strcmp(a, out_text));
    CHECK(run("%s %s --ckpt '%s' --prompt 'the' --seed 6 --max-tokens 40 --ignore-eot --quiet", bin,
              G, plain_dir) == 0 &&
          strcmp(a, out_text) != 0);
    free(a);
    /* several samples: sample k is what seed S + k gives alone */
    CHECK(run("%s %s --ckpt '%s' --prompt 'the' --seed 5 --max-tokens 20 --ignore-eot "
              "--num-samples 3 --json",
              bin, G, plain_dir) == 0);
    uint32_t s1[64], alone[64];
    int n1 = json_tokens(1, s1, 64, NULL, 0);
    CHECK(n1 == 20 && json_tokens(3, s1 + 32, 32, NULL, 0) == -1);
    CHECK(run("%s %s --ckpt '%s' --prompt 'the' --seed 6 --max-tokens 20 --ignore-eot --json", bin,
              G, plain_dir) == 0);
    CHECK(json_tokens(0, alone, 64, NULL, 0) == 20 && !memcmp(alone, s1, 20 * sizeof *s1));
    CHECK(run("%s %s --ckpt '%s' --prompt 'the' --seed 5 --max-tokens 20 --ignore-eot "
              "--num-samples 3",
              bin, G, plain_dir) == 0 &&
          strstr(out_text, "--- sample 1/3 ---\n") && strstr(out_text, "--- sample 3/3 ---\n"));
    /* --json: timing and the sampler */
    CHECK(run("%s %s --ckpt '%s' --prompt 'the' --max-tokens 5 --json --top-k 7", bin, G,
              plain_dir) == 0);
    cJSON *j = cJSON_Parse(out_text);
    const cJSON *tm = cJSON_GetObjectItem(j, "timing");
    CHECK(cJSON_IsNumber(cJSON_GetObjectItem(tm, "tokens_per_s")) &&
          cJSON_IsNumber(cJSON_GetObjectItem(tm, "prompt_tokens_per_s")) &&
          cJSON_GetObjectItem(tm, "prompt_positions")->valueint == 1 &&
          cJSON_GetObjectItem(cJSON_GetObjectItem(j, "sampler"), "top_k")->valueint == 7 &&
          cJSON_GetArraySize(cJSON_GetObjectItem(j, "prompt_tokens")) == 1);
    cJSON_Delete(j);
    /* from a file and from stdin */
    char *pf = cllm_path_join(tmp, "prompt.txt");
    CHECK_OK(cllm_write_file_atomic(pf, "the cat", 7));
    CHECK(run("%s %s --ckpt '%s' --prompt-file '%s' --greedy --max-tokens 30 --ignore-eot --quiet",
              bin, G, plain_dir, pf) == 0 &&
          out_len == ref_len + 1 && !memcmp(out_text, ref_text, ref_len));
    CHECK(run("printf 'the cat' | %s %s --ckpt '%s' --prompt-file - --greedy --max-tokens 30 "
              "--ignore-eot --quiet",
              bin, G, plain_dir) == 0 &&
          out_len == ref_len + 1 && !memcmp(out_text, ref_text, ref_len));

    /* a prompt longer than the window: slide drops its oldest tokens (and says so); stop
     * refuses it */
    char long_prompt[2048] = "";
    for (int i = 0; i < 30; i++)
        strcat(long_prompt, "the cat sat. ");
    cllm_tokens lp = {0};
    CHECK_OK(cllm_tokenizer_encode(plain->tok, long_prompt, strlen(long_prompt), NULL, &lp));
    CHECK(lp.n > NPOS);
    CHECK(run("%s %s --ckpt '%s' --prompt '%s' --greedy --max-tokens 10 --ignore-eot --json", bin,
              G, plain_dir, long_prompt) == 0);
    int nl = json_tokens(0, got, 64, NULL, 0);
    nref = lib_greedy(plain, lp.ids + lp.n - NPOS, NPOS, 10, ref, NULL, NULL);
    CHECK(nl == 10 && nref == 10 && !memcmp(got, ref, 10 * sizeof *ref));
    char want[128];
    snprintf(want, sizeof want, "its first %zu tokens were dropped", lp.n - NPOS);
    CHECK_MSG(strstr(err_text, want), "stderr: %s", err_text);
    CHECK(run("%s %s --ckpt '%s' --prompt '%s' --max-tokens 10 --context-full stop", bin, G,
              plain_dir, long_prompt) == 2 &&
          strstr(err_text, "the prompt is") && lines_of(err_text) == 1);
    /* the window fills during generation: slide says so; stop ends at the window */
    CHECK(run("%s %s --ckpt '%s' --prompt 'the cat' --max-tokens 100 --ignore-eot", bin, G,
              plain_dir) == 0 &&
          strstr(err_text, "filled up") && strstr(err_text, "re-encoded"));
    CHECK(run("%s %s --ckpt '%s' --prompt 'the cat' --max-tokens 100 --ignore-eot --json "
              "--context-full stop --quiet",
              bin, G, plain_dir) == 0 &&
          json_tokens(0, got, 64, NULL, 0) == NPOS - (int)p.n + 1 &&
          strstr(out_text, "\"finish_reason\":\t\"context\""));
    CHECK(run("%s %s --ckpt '%s' --prompt 'the cat' --max-tokens 30 --context 16 --quiet --json",
              bin, G, plain_dir) == 0 &&
          strstr(out_text, "\"context\":\t16"));
    cllm_tokens_free(&lp);
    cllm_tokens_free(&p);
    free(pf);
    free(ref_text);
    (void)chat_dir;
}

/* The replies `cllm chat --greedy --max-tokens N` must print for these user lines: the
 * documented conversation rebuilt here with the template and a fresh greedy generation per
 * turn over the whole context (no cache), each reply closed by <|end|>. */
static char *expected_chat(cllm_model *m, const char *system, const char *const *lines, int n,
                           int max_tokens) {
    cllm_chat_template t;
    CHECK_OK(cllm_chat_template_load(&t, m->ck.config_json, m->tok, "chat"));
    uint32_t stops[4];
    cllm_chat_template_ids(&t, stops);
    cllm_tokens ctx = {0};
    if (system) {
        cllm_chat_message sm = {CLLM_ROLE_SYSTEM, system, strlen(system)};
        CHECK_OK(cllm_chat_render(&t, m->tok, &sm, 1, false, &ctx, NULL));
    }
    char *all = calloc(1, 1);
    size_t all_n = 0;
    for (int i = 0; i < n; i++) {
        cllm_chat_message um = {CLLM_ROLE_USER, lines[i], strlen(lines[i])};
        CHECK_OK(cllm_chat_render(&t, m->tok, &um, 1, true, &ctx, NULL));
        cllm_gen_opts o = cllm_gen_opts_default();
        o.sampler.greedy = true;
        o.max_tokens = max_tokens;
        o.stop_tokens = stops;
        o.n_stop_tokens = 4;
        cllm_gen_result r = {0};
        cllm_gen *g = NULL;
        cllm_gen_setup su = {.no_cache = true};
        CHECK_OK(cllm_gen_init(&g, m->gpt, m->tok, &su));
        CHECK_OK(cllm_gen_append(g, ctx.ids, (int)ctx.n));
        CHECK_OK(cllm_gen_run(g, &o, &r));
        cllm_gen_free(g);
        if (r.n_samples != 1) break;
        const cllm_gen_sample *s = &r.samples[0];
        CHECK_OK(cllm_tokens_push(&ctx, s->tokens,
                                  (size_t)(s->n_tokens - (s->finish == CLLM_GEN_FINISH_TOKEN))));
        CHECK_OK(cllm_tokens_push(&ctx, &t.end_id, 1));
        all = realloc(all, all_n + s->len + 2);
        memcpy(all + all_n, s->text, s->len);
        all_n += s->len;
        all[all_n++] = '\n';
        all[all_n] = 0;
        cllm_gen_result_free(&r);
    }
    cllm_tokens_free(&ctx);
    return all;
}

static void test_chat_cli(cllm_model *chatm, const char *chat_dir, const char *plain_dir) {
    CHECK(run("%s chat --help", bin) == 0 && strstr(out_text, "--system") &&
          strstr(out_text, "cllm sft"));
    CHECK(run("echo hi | %s chat --ckpt '%s' --greedy", bin, plain_dir) == 1 &&
          strstr(err_text, "no chat template") && strstr(err_text, "cllm sft") &&
          lines_of(err_text) == 1);
    CHECK(run("echo hi | %s chat --ckpt '%s' --top-p 2", bin, chat_dir) == 2 &&
          lines_of(err_text) == 1);
    /* piped stdin: one user turn per line (blank lines skipped); exactly the replies of the
     * documented conversation */
    static const char *const lines[] = {"hello there", "tell me about the cat <|end|>",
                                        "and the rat?"},
                             *const short_lines[] = {"hello there", "the rat?", "and the mat"};
    char *want = expected_chat(chatm, NULL, lines, 3, 8);
    CHECK(run("printf 'hello there\\n\\ntell me about the cat <|end|>\\r\\nand the rat?\\n' | %s "
              "chat --ckpt '%s' --greedy --max-tokens 8",
              bin, chat_dir) == 0);
    CHECK_MSG(!strcmp(out_text, want), "chat printed\n%s\nwant\n%s", out_text, want);
    CHECK(strstr(err_text, "3 turns") && strstr(err_text, "tokens/s"));
    free(want);
    /* the first turn is what generate --chat gives */
    char *one = expected_chat(chatm, "Be brief.", lines, 1, 8);
    CHECK(run("%s generate --ckpt '%s' --chat --system 'Be brief.' --prompt 'hello there' "
              "--greedy --max-tokens 8 --quiet",
              bin, chat_dir) == 0 &&
          !strcmp(out_text, one));
    free(one);
    /* (short turns: this conversation fits the window, nothing is dropped) */
    want = expected_chat(chatm, "Be brief.", short_lines, 3, 8);
    CHECK(run("printf 'hello there\\nthe rat?\\nand the mat\\n' | %s chat "
              "--ckpt '%s' --system 'Be brief.' --greedy --max-tokens 8 --quiet",
              bin, chat_dir) == 0 &&
          !strcmp(out_text, want) && err_len == 0);
    free(want);
    /* a small window: the oldest messages are dropped, whole, and said so */
    CHECK(run("printf 'hello there\\ntell me about the cat\\nand the rat?\\nthe mat\\n' | %s chat "
              "--ckpt '%s' --greedy --max-tokens 6 --context 24",
              bin, chat_dir) == 0 &&
          lines_of(out_text) >= 4 && strstr(err_text, "dropped") && strstr(err_text, "4 turns"));
    /* a message too long for the window under --context-full stop is skipped, not fatal */
    char longline[1024] = "";
    for (int i = 0; i < 40; i++)
        strcat(longline, "the cat sat. ");
    CHECK(
        run("printf 'hello there\\n%s\\nthe rat?\\n' | %s chat --ckpt '%s' --greedy --max-tokens 4 "
            "--context-full stop",
            longline, bin, chat_dir) == 0 &&
        lines_of(out_text) >= 2 && strstr(err_text, "skipped") && strstr(err_text, "2 turns"));
    /* with the cache or without, the same replies */
    CHECK(run("printf 'hello there\\nand the rat?\\n' | %s chat --ckpt '%s' --seed 4 "
              "--max-tokens 8 --quiet",
              bin, chat_dir) == 0);
    char *cached = strdup(out_text);
    CHECK(run("printf 'hello there\\nand the rat?\\n' | %s chat --ckpt '%s' --seed 4 "
              "--max-tokens 8 --quiet --no-cache",
              bin, chat_dir) == 0 &&
          !strcmp(out_text, cached));
    free(cached);
}

int main(void) {
    bin = getenv("CLLM_BIN");
    if (!bin) {
        fprintf(stderr, "skipped: CLLM_BIN is not set\n");
        return 77;
    }
    cllm_runtime *rt = test_runtime();
    tmp = test_tmpdir("cli_generate");
    out_path = cllm_path_join(tmp, "stdout");
    err_path = cllm_path_join(tmp, "stderr");
    char *chat_dir = cllm_path_join(tmp, "chat"), *plain_dir = cllm_path_join(tmp, "plain"),
         *notok_dir = cllm_path_join(tmp, "notok");
    make_checkpoints(chat_dir, plain_dir, notok_dir);
    cllm_gpt_opts go = {.max_batch = 1, .kv_cache = true};
    cllm_model *plain = NULL, *chatm = NULL;
    CHECK_OK(cllm_model_load(&plain, rt, plain_dir, &go, NULL));
    CHECK_OK(cllm_model_load(&chatm, rt, chat_dir, &go, NULL));
    if (plain && chatm) {
        test_generate_cli(plain, chat_dir, plain_dir, notok_dir);
        test_chat_cli(chatm, chat_dir, plain_dir);
    }
    cllm_model_free(plain);
    cllm_model_free(chatm);
    free(out_text);
    free(err_text);
    free(out_path);
    free(err_path);
    free(chat_dir);
    free(plain_dir);
    free(notok_dir);
    free(tmp);
    cllm_runtime_free(rt);
    return test_exit();
}
