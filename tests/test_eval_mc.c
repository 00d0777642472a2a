/* Multiple-choice data sets and scoring. The contexts/choices/gold of real-format HellaSwag,
 * ARC and MMLU records are compared with what lm-evaluation-harness itself builds
 * (tests/fixtures/mc/expected.json, written by tools/gen_mc_fixtures.py with the lm_eval
 * package); scoring is checked on crafted cases whose answers are worked out by hand. */
#include "cllm/eval.h"
#include "cllm/util.h"
#include "testutil.h"

#include <cjson/cJSON.h>

#include <stdlib.h>
#include <string.h>

static void write_file(const char *path, const char *text) {
    CHECK_OK(cllm_write_file_atomic(path, text, strlen(text)));
}

static void compare_set(const char *file, const char *task_name, const cJSON *want) {
    char *rel = cllm_strdup_printf("mc/%s", file);
    char *path = test_fixture(rel);
    cllm_mc_task task;
    CHECK_OK(cllm_mc_task_parse(&task, task_name));
    cllm_mc_set set;
    cllm_status st = cllm_mc_load(&set, path, task, true, 0);
    CHECK_MSG(st == CLLM_OK, "%s as %s: %s", file, task_name, cllm_last_error());
    if (st == CLLM_OK) {
        CHECK_MSG(set.n == cJSON_GetArraySize(want), "%s: %d items, lm-eval %d", file, set.n,
                  cJSON_GetArraySize(want));
        for (int i = 0; i < set.n && i < cJSON_GetArraySize(want); i++) {
            const cJSON *w = cJSON_GetArrayItem(want, i);
            const cllm_mc_item *it = &set.items[i];
            const char *ctx = cJSON_GetObjectItem(w, "context")->valuestring;
            CHECK_MSG(!strcmp(it->context, ctx), "%s %s #%d context\n  got  '%s'\n  want '%s'",
                      file, task_name, i, it->context, ctx);
            CHECK_MSG(it->gold == cJSON_GetObjectItem(w, "gold")->valueint, "%s #%d gold %d",
                      file, i, it->gold);
            const cJSON *ch = cJSON_GetObjectItem(w, "choices"), *co = cJSON_GetObjectItem(w, "continuations");
            CHECK_MSG(it->n_choices == cJSON_GetArraySize(ch), "%s #%d: %d choices", file, i,
                      it->n_choices);
            for (int c = 0; c < it->n_choices && c < cJSON_GetArraySize(ch); c++) {
                const char *wc = cJSON_GetArrayItem(ch, c)->valuestring;
                const char *wk = cJSON_GetArrayItem(co, c)->valuestring;
                CHECK_MSG(!strcmp(it->choices[c], wc), "%s #%d choice %d: '%s' vs '%s'", file, i,
                          c, it->choices[c], wc);
                CHECK_MSG(!strcmp(it->continuations[c], wk),
                          "%s #%d continuation %d: '%s' vs '%s'", file, i, c,
                          it->continuations[c], wk);
            }
            CHECK(it->line == i + 1);
        }
        cllm_mc_set_free(&set);
    }
    /* AUTO picks the same task for the file (MMLU records read as the continuation form). */
    if (task != CLLM_MC_MMLU_LETTERS) {
        CHECK_OK(cllm_mc_load(&set, path, CLLM_MC_AUTO, true, 2));
        CHECK_MSG(set.task == task && set.n == 2, "%s: auto detected %s", file,
                  cllm_mc_task_name(set.task));
        cllm_mc_set_free(&set);
    }
    free(path);
    free(rel);
}

static void test_lm_eval_fixtures(void) {
    char *path = test_fixture("mc/expected.json");
    char *text = NULL;
    CHECK_OK(cllm_read_file(path, &text, NULL));
    cJSON *fx = text ? cJSON_Parse(text) : NULL;
    CHECK(fx != NULL);
    int n = 0;
    const cJSON *f, *t;
    if (fx)
        cJSON_ArrayForEach(f, cJSON_GetObjectItem(fx, "files")) cJSON_ArrayForEach(t, f) {
            compare_set(f->string, t->string, t);
            n++;
        }
    CHECK(n == 4);
    cJSON_Delete(fx);
    free(text);
    free(path);
}

static void test_text_helpers(void) {
    char *s = cllm_mc_capitalize("hELLO wORLD");
    CHECK(s && !strcmp(s, "Hello world"));
    free(s);
    s = cllm_mc_capitalize("\xc3\xa9LODIE \xc3\x87" "A \xc4\xb0"); /* éLODIE ÇA İ */
    CHECK(s && !strcmp(s, "\xc3\x89lodie \xc3\xa7" "a i\xcc\x87"));
    free(s);
    s = cllm_mc_capitalize("");
    CHECK(s && !strcmp(s, ""));
    free(s);
    /* preprocess: 3 spaces -> 2 (one pass), a bracket across a newline stays. */
    s = cllm_mc_hellaswag_preprocess("  a   b [x] c [title] d [y\nz] e  ");
    CHECK_MSG(s && !strcmp(s, "a  b c. d [y\nz] e"), "got '%s'", s);
    free(s);
}

static void test_other_forms(void) {
    cllm_mc_item it;
    /* HellaSwag with only `ctx` (as llm.c's copy has): activity_label + ": " + ctx. */
    const char *hs = "{\"activity_label\":\"Fun\",\"ctx\":\"A man [title] smiles.\","
                     "\"endings\":[\"a\",\"b\"],\"label\":1}";
    CHECK_OK(cllm_mc_parse_record(&it, hs, strlen(hs), CLLM_MC_HELLASWAG));
    CHECK(it.context && !strcmp(it.context, "Fun: A man. smiles.") && it.gold == 1);
    cllm_mc_item_free(&it);
    /* Generic: trailing whitespace of the context moves to every continuation. */
    const char *g = "{\"context\":\"Q: 2+2?\\nA:\\n\",\"choices\":[\"4\",\"5\"],\"label\":\"0\","
                    "\"id\":\"x1\"}";
    CHECK_OK(cllm_mc_parse_record(&it, g, strlen(g), CLLM_MC_GENERIC));
    CHECK(!strcmp(it.context, "Q: 2+2?\nA:") && !strcmp(it.continuations[1], "\n 5") &&
          !strcmp(it.choices[1], "5") && !strcmp(it.id, "x1"));
    cllm_mc_item_free(&it);
    /* ARC with bare strings and a letter / digit key. */
    const char *a = "{\"question\":\"Q?\",\"choices\":[\"x\",\"y\",\"z\"],\"answerKey\":\"B\"}";
    CHECK_OK(cllm_mc_parse_record(&it, a, strlen(a), CLLM_MC_ARC));
    CHECK(it.gold == 1 && !strcmp(it.context, "Question: Q?\nAnswer:"));
    cllm_mc_item_free(&it);
    a = "{\"question\":\"Q?\",\"choices\":[\"x\",\"y\",\"z\"],\"answerKey\":3}";
    CHECK_OK(cllm_mc_parse_record(&it, a, strlen(a), CLLM_MC_ARC));
    CHECK(it.gold == 2);
    cllm_mc_item_free(&it);
    /* MMLU with a letter answer and no subject. */
    const char *m = "{\"question\":\" Q \",\"choices\":[\"p\",\"q\"],\"answer\":\"B\"}";
    CHECK_OK(cllm_mc_parse_record(&it, m, strlen(m), CLLM_MC_MMLU_LETTERS));
    CHECK(it.gold == 1 && !strcmp(it.context, "Q\nA. p\nB. q\nAnswer:") &&
          !strcmp(it.continuations[0], " A"));
    cllm_mc_item_free(&it);
    cllm_mc_task t;
    CHECK(cllm_mc_detect(&t, "{\"foo\":1}", 9) == CLLM_ERR_FORMAT &&
          strstr(cllm_last_error(), "cannot tell the format"));
    CHECK(cllm_mc_task_parse(&t, "winogrande") == CLLM_ERR_USAGE &&
          strstr(cllm_last_error(), CLLM_MC_TASK_CHOICES));
}

static void test_malformed(void) {
    char *dir = test_tmpdir("eval_mc");
    char *p = cllm_path_join(dir, "bad.jsonl");
    write_file(p,
               "{\"context\":\"ok\",\"choices\":[\"a\",\"b\"],\"label\":0}\n"   /* 1 ok */
               "{\"context\":\"x\",\"choices\":[\"a\",\"b\"],\"label\":5}\n"    /* 2 range */
               "{\"context\":\"x\",\"choices\":[\"a\"],\"label\":0}\n"          /* 3 one */
               "   \n"                                                           /* 4 blank */
               "{\"context\":\"x\",\"choices\":[\"a\",\"\"],\"label\":0}\n"     /* 5 empty */
               "{\"context\":\"x\",\"choices\":[\"a\",\"b\"]\n"                  /* 6 json */
               "{\"context\":\"\xff\",\"choices\":[\"a\",\"b\"],\"label\":0}\n" /* 7 utf8 */
               "[1,2]\n"                                                          /* 8 array */
               "{\"context\":\"x\",\"choices\":[\"a\",2],\"label\":0}\n"        /* 9 type */
               "{\"context\":\"ok2\",\"choices\":[\"a\",\"b\"],\"label\":1} x\n" /* 10 trail */
               "{\"context\":\"ok3\",\"choices\":[\"a\",\"b\"],\"label\":1}");  /* 11 ok, no \n */
    cllm_mc_set set;
    CHECK_OK(cllm_mc_load(&set, p, CLLM_MC_AUTO, false, 0));
    CHECK_MSG(set.n == 2 && set.stats.skipped == 8 && set.stats.blank == 1 && set.stats.lines == 11,
              "n %d skipped %ld blank %ld lines %ld", set.n, set.stats.skipped, set.stats.blank, set.stats.lines);
    CHECK(set.n == 2 && set.items[1].line == 11 && set.task == CLLM_MC_GENERIC);
    CHECK(set.stats.first_skipped_line == 2 && strstr(set.stats.first_skip_reason, "bad.jsonl:2: ") &&
          strstr(set.stats.first_skip_reason, "out of range"));
    cllm_mc_set_free(&set);
    static const struct {
        int line;
        const char *msg;
    } cases[] = {
        {2, "the answer index 5 is out of range (2 choices)"},
        {3, "'choices' has 1 entry (at least 2 choices needed)"},
        {5, "choice 1 is empty"},
        {6, "not valid JSON"},
        {7, "invalid UTF-8"},
        {8, "expected a JSON object"},
        {9, "'choices'[1] must be a string"},
        {10, "text after the JSON object"},
    };
    /* strict: each bad line in turn is the first error, named with file:line. */
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        char *data = NULL;
        size_t len;
        CHECK_OK(cllm_read_file(p, &data, &len));
        /* keep line 1, then the bad line alone */
        char *nl = strchr(data, '\n');
        const char *line = data;
        for (int l = 1; l < cases[k].line; l++) line = strchr(line, '\n') + 1;
        const char *end = strchr(line, '\n');
        char *q = cllm_path_join(dir, "one.jsonl");
        char *text = cllm_strdup_printf("%.*s\n%.*s\n", (int)(nl - data), data,
                                        (int)(end - line), line);
        write_file(q, text);
        cllm_status st = cllm_mc_load(&set, q, CLLM_MC_GENERIC, true, 0);
        char want[64];
        snprintf(want, sizeof want, "one.jsonl:2: ");
        CHECK_MSG(st == CLLM_ERR_FORMAT && strstr(cllm_last_error(), want) &&
                      strstr(cllm_last_error(), cases[k].msg),
                  "line %d: got '%s'", cases[k].line, cllm_last_error());
        free(text);
        free(q);
        free(data);
    }
    /* Nothing usable: an error, not an empty set. */
    char *e = cllm_path_join(dir, "empty.jsonl");
    write_file(e, "\n  \n");
    CHECK(cllm_mc_load(&set, e, CLLM_MC_AUTO, false, 0) == CLLM_ERR_FORMAT &&
          strstr(cllm_last_error(), "no multiple-choice items"));
    CHECK(cllm_mc_load(&set, "/nonexistent/x.jsonl", CLLM_MC_AUTO, false, 0) == CLLM_ERR_IO);
    cllm_mc_set_free(NULL);
    free(e);
    free(p);
    free(dir);
}

/* A set of three hand-made items and the accuracies each normalisation must give. */
static const char *SCORE_JSONL =
    /* item 0: gold 0 = the long choice. raw sums prefer "short" (-6 > -9); per character the
     * long one wins (-9/18 = -0.5 > -6/5 = -1.2). */
    "{\"context\":\"c0\",\"choices\":[\"a long answer text\",\"short\"],\"label\":0}\n"
    /* item 1: gold 1 = "ééééé" (5 chars, 10 bytes, 5 tokens, -5.5) vs "abcdef" (6 chars,
     * 6 bytes, 3 tokens, -6.3): sum -5.5 > -6.3 (ééééé); per char -1.1 < -1.05 (abcdef); per
     * byte -0.55 > -1.05 (ééééé); per token -1.1 > -2.1 (ééééé). */
    "{\"context\":\"c1\",\"choices\":[\"abcdef\",\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"],"
    "\"label\":1}\n"
    /* item 2: a tie between choices 0 and 2 goes to the first (numpy.argmax). gold 2. */
    "{\"context\":\"c2\",\"choices\":[\"xx\",\"yy\",\"zz\"],\"label\":2}\n";

static const cllm_mc_choice_score SCORES[3][3] = {
    {{-9.0, 4, false}, {-6.0, 2, true}},
    {{-6.3, 3, false}, {-5.5, 5, true}},
    {{-2.0, 1, true}, {-3.0, 1, false}, {-2.0, 1, false}},
};
/* expected predictions [item][metric: acc, acc_norm, acc_bytes, acc_token] */
static const int PRED[3][4] = {{1, 0, 0, 0}, {1, 0, 1, 1}, {0, 0, 0, 0}};

static cllm_status fake_model(void *user, const cllm_mc_item *it, cllm_mc_choice_score *sc) {
    int *calls = user;
    int i = it->context[1] - '0';
    for (int c = 0; c < it->n_choices; c++) sc[c] = SCORES[i][c];
    (*calls)++;
    return CLLM_OK;
}

static void test_scoring(void) {
    char *dir = test_tmpdir("eval_mc_score");
    char *p = cllm_path_join(dir, "s.jsonl");
    write_file(p, SCORE_JSONL);
    cllm_mc_set set;
    CHECK_OK(cllm_mc_load(&set, p, CLLM_MC_AUTO, true, 0));
    CHECK(set.n == 3);
    cllm_mc_results res;
    CHECK_OK(cllm_mc_results_init(&res, &set));
    for (int i = 0; i < set.n; i++) CHECK_OK(cllm_mc_results_set(&res, &set, i, SCORES[i]));
    cllm_mc_results_summarize(&res);
    for (int i = 0; i < 3; i++)
        for (int m = 0; m < 4; m++)
            CHECK_MSG(res.items[i].pred[m] == PRED[i][m], "item %d %s: pred %d, want %d", i,
                      cllm_mc_metric_name((cllm_mc_metric)m), res.items[i].pred[m], PRED[i][m]);
    /* acc and acc_norm disagree on item 0. Correct per item: acc 0,0,1; acc_norm 1,0,0;
     * acc_bytes 1,1,0; acc_token 1,1,0. Mean of k ones in 3: k/3; stderr (lm-eval's
     * sample-stddev / sqrt(n)) is 1/3 for k = 1 and k = 2. */
    const double want[4] = {1.0 / 3, 1.0 / 3, 2.0 / 3, 2.0 / 3};
    for (int m = 0; m < 4; m++) {
        CHECK_MSG(fabs(res.mean[m] - want[m]) < 1e-15, "%s mean %g",
                  cllm_mc_metric_name((cllm_mc_metric)m), res.mean[m]);
        CHECK_MSG(fabs(res.stderr_[m] - 1.0 / 3) < 1e-15, "%s stderr %g",
                  cllm_mc_metric_name((cllm_mc_metric)m), res.stderr_[m]);
    }
    CHECK(res.items[1].chars[1] == 5 && res.items[1].bytes[1] == 10);

    /* The --log-samples line carries what is needed to recheck by hand. */
    char *line = cllm_mc_sample_json(&set, &res, 0);
    cJSON *o = line ? cJSON_Parse(line) : NULL;
    CHECK(o != NULL);
    if (o) {
        const cJSON *c1 = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "choices"), 1);
        CHECK(cJSON_GetObjectItem(c1, "loglik")->valuedouble == -6.0);
        CHECK(cJSON_GetObjectItem(c1, "chars")->valueint == 5);
        CHECK(cJSON_GetObjectItem(c1, "tokens")->valueint == 2);
        CHECK(!strcmp(cJSON_GetObjectItem(c1, "continuation")->valuestring, " short"));
        CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "pred"), "acc")->valueint == 1);
        CHECK(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "correct"), "acc_norm")));
        CHECK(cJSON_GetObjectItem(o, "line")->valueint == 1 &&
              cJSON_GetObjectItem(o, "gold")->valueint == 0);
    }
    cJSON_Delete(o);
    free(line);

    /* Bad scores are refused. */
    cllm_mc_choice_score bad[2] = {{NAN, 1, false}, {-1, 1, false}};
    CHECK(cllm_mc_results_set(&res, &set, 0, bad) == CLLM_ERR_NUMERIC);
    cllm_mc_choice_score bad2[2] = {{-1, 0, false}, {-1, 1, false}};
    CHECK(cllm_mc_results_set(&res, &set, 0, bad2) == CLLM_ERR_USAGE);
    CHECK(cllm_mc_results_set(&res, &set, 3, SCORES[0]) == CLLM_ERR_USAGE);

    /* The callback loop gives the same numbers and writes one sample line per item. */
    cllm_mc_results r2;
    int calls = 0;
    char *sp = cllm_path_join(dir, "samples.jsonl");
    FILE *sf = fopen(sp, "w");
    CHECK_OK(cllm_mc_evaluate(&r2, &set, fake_model, &calls, sf));
    fclose(sf);
    CHECK(calls == 3 && r2.n_done == 3);
    for (int m = 0; m < 4; m++) CHECK(r2.mean[m] == res.mean[m] && r2.stderr_[m] == res.stderr_[m]);
    char *samples = NULL;
    size_t slen = 0;
    CHECK_OK(cllm_read_file(sp, &samples, &slen));
    int lines = 0;
    for (size_t k = 0; k < slen; k++) lines += samples[k] == '\n';
    CHECK(lines == 3);
    free(samples);

    /* The report: one JSON object and a table. */
    cllm_eval_report *rep;
    CHECK_OK(cllm_eval_report_init(&rep));
    CHECK_OK(cllm_eval_report_add_mc(rep, "mine", &set, &r2));
    CHECK(cllm_eval_report_add_mc(rep, "mine", &set, &r2) == CLLM_ERR_USAGE);
    CHECK_OK(cllm_eval_report_add_value(rep, "perplexity", "loss", 2.5));
    CHECK_OK(cllm_eval_report_add_value(rep, "perplexity", "ppl", NAN));
    CHECK_OK(cllm_eval_report_add_string(rep, "model", "ckpt", "run/latest"));
    char *js = cllm_eval_report_json(rep, false);
    cJSON *j = js ? cJSON_Parse(js) : NULL;
    CHECK(j != NULL);
    if (j) {
        const cJSON *mine = cJSON_GetObjectItem(j, "mine");
        CHECK(fabs(cJSON_GetObjectItem(mine, "acc_bytes")->valuedouble - 2.0 / 3) < 1e-15);
        CHECK(fabs(cJSON_GetObjectItem(mine, "acc_stderr")->valuedouble - 1.0 / 3) < 1e-15);
        CHECK(cJSON_GetObjectItem(mine, "n")->valueint == 3);
        CHECK(!strcmp(cJSON_GetObjectItem(mine, "task")->valuestring, "generic"));
        CHECK(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "perplexity"), "ppl")));
    }
    cJSON_Delete(j);
    free(js);
    char *tp = cllm_path_join(dir, "table.txt");
    FILE *tf = fopen(tp, "w");
    cllm_eval_report_print(rep, tf);
    fclose(tf);
    char *table = NULL;
    CHECK_OK(cllm_read_file(tp, &table, NULL));
    CHECK(table && strstr(table, "acc_norm     0.3333 ±   0.3333") && strstr(table, "loss"));
    if (table && !strstr(table, "acc_norm     0.3333 ±   0.3333")) fputs(table, stderr);
    free(table);
    cllm_eval_report_free(rep);
    cllm_eval_report_free(NULL);

    /* One item: no standard error (lm-eval would divide by zero). */
    cllm_mc_results r1;
    CHECK_OK(cllm_mc_results_init(&r1, &set));
    CHECK_OK(cllm_mc_results_set(&r1, &set, 2, SCORES[2]));
    cllm_mc_results_summarize(&r1);
    CHECK(r1.n_done == 1 && r1.mean[0] == 0.0 && isnan(r1.stderr_[0]));
    cllm_mc_results_free(&r1);

    cllm_mc_results_free(&res);
    cllm_mc_results_free(&r2);
    cllm_mc_set_free(&set);
    free(tp);
    free(sp);
    free(p);
    free(dir);
}

/* Every prefix of every fixture record, and records with bytes flipped, parse or fail cleanly
 * under every task (the sanitizer build checks for memory errors). */
static void test_robustness(void) {
    const char *files[] = {"mc/hellaswag.jsonl", "mc/arc.jsonl", "mc/mmlu.jsonl"};
    test_rng rng = {42};
    long ok = 0, bad = 0;
    for (int f = 0; f < 3; f++) {
        char *path = test_fixture(files[f]), *data = NULL;
        size_t len = 0;
        CHECK_OK(cllm_read_file(path, &data, &len));
        for (char *line = data; line && *line;) {
            char *nl = strchr(line, '\n');
            size_t n = nl ? (size_t)(nl - line) : strlen(line);
            char *buf = malloc(n + 1);
            for (int task = CLLM_MC_HELLASWAG; task <= CLLM_MC_GENERIC; task++) {
                for (size_t k = 0; k <= n; k++) {
                    memcpy(buf, line, k);
                    cllm_mc_item it;
                    if (cllm_mc_parse_record(&it, buf, k, (cllm_mc_task)task) == CLLM_OK) {
                        ok++;
                        cllm_mc_item_free(&it);
                    } else {
                        bad++;
                    }
                }
                for (int trial = 0; trial < 200; trial++) {
                    memcpy(buf, line, n);
                    for (int flips = 0; flips < 3; flips++)
                        buf[test_rng_u64(&rng) % n] = (char)(test_rng_u64(&rng) & 0xff);
                    cllm_mc_item it;
                    if (cllm_mc_parse_record(&it, buf, n, (cllm_mc_task)task) == CLLM_OK) {
                        ok++;
                        cllm_mc_item_free(&it);
                    } else {
                        bad++;
                    }
                }
            }
            free(buf);
            line = nl ? nl + 1 : NULL;
        }
        free(data);
        free(path);
    }
    CHECK(ok > 0 && bad > 0);
}

/* The request layout against lm-eval's slicing, written out by hand:
 * inp = (ctx + cont)[-(T + 1):][:-1], continuation predicted at the last len(cont) positions. */
static void test_window(void) {
    const uint32_t ctx[6] = {10, 11, 12, 13, 14, 15}, cont[3] = {20, 21, 22};
    uint32_t in[16];
    int n_in, first;
    CHECK_OK(cllm_mc_window(in, &n_in, &first, ctx, 6, cont, 3, 16, 99));
    const uint32_t w1[8] = {10, 11, 12, 13, 14, 15, 20, 21}; /* everything fits */
    CHECK(n_in == 8 && first == 5 && !memcmp(in, w1, sizeof w1));
    CHECK_OK(cllm_mc_window(in, &n_in, &first, ctx, 6, cont, 3, 5, 99));
    const uint32_t w3[5] = {13, 14, 15, 20, 21}; /* the last 6 are 13 .. 22; drop the last */
    CHECK(n_in == 5 && first == 2 && !memcmp(in, w3, sizeof w3));
    CHECK_OK(cllm_mc_window(in, &n_in, &first, ctx, 0, cont, 3, 8, 99)); /* empty context */
    const uint32_t w4[3] = {99, 20, 21};
    CHECK(n_in == 3 && first == 0 && !memcmp(in, w4, sizeof w4));
    CHECK_OK(cllm_mc_window(in, &n_in, &first, ctx, 6, cont, 3, 3, 99)); /* no context left */
    const uint32_t w5[3] = {15, 20, 21};
    CHECK(n_in == 3 && first == 0 && !memcmp(in, w5, sizeof w5));
    CHECK(cllm_mc_window(in, &n_in, &first, ctx, 6, cont, 3, 2, 99) == CLLM_ERR_TOO_LARGE);

    /* log-softmax in double against a long-double reference */
    float logits[7] = {1.5f, -2.0f, 30.0f, 29.5f, 0.0f, -100.0f, 3.25f};
    long double m = 30.0L, s = 0;
    for (int v = 0; v < 7; v++) s += expl((long double)logits[v] - m);
    for (uint32_t t = 0; t < 7; t++) {
        double lp;
        bool am;
        CHECK_OK(cllm_mc_token_logprob(&lp, &am, logits, 7, t));
        double ref = (double)((long double)logits[t] - m - logl(s));
        CHECK_MSG(fabs(lp - ref) <= 1e-12 * fmax(1, fabs(ref)), "token %u: %.17g vs %.17g", t, lp,
                  ref);
        CHECK(am == (t == 2));
    }
    double lp;
    CHECK(cllm_mc_token_logprob(&lp, NULL, logits, 7, 7) == CLLM_ERR_USAGE);
}

int main(void) {
    test_window();
    test_robustness();
    test_lm_eval_fixtures();
    test_text_helpers();
    test_other_forms();
    test_malformed();
    test_scoring();
    return test_exit();
}
