/* Generation metrics against the real sacreBLEU and rouge-score: every value in
 * tests/fixtures/textmetrics.json was computed by those packages
 * (tools/gen_textmetric_fixtures.py); BLEU/ROUGE must agree to 1e-9. Also stop strings and
 * the generation data set loader. */
#include "cllm/eval.h"
#include "cllm/util.h"
#include "testutil.h"

#include <cjson/cJSON.h>

#include <stdlib.h>
#include <string.h>

static bool near(double got, double ref) { return fabs(got - ref) <= 1e-9 * fmax(1.0, fabs(ref)); }

static void check_bleu(const char *what, const cllm_bleu *b, const cJSON *ref) {
    CHECK_MSG(near(b->score, cJSON_GetObjectItem(ref, "score")->valuedouble), "%s: score %.17g vs %.17g",
              what, b->score, cJSON_GetObjectItem(ref, "score")->valuedouble);
    CHECK_MSG(near(b->bp, cJSON_GetObjectItem(ref, "bp")->valuedouble), "%s: bp", what);
    CHECK_MSG(near(b->ratio, cJSON_GetObjectItem(ref, "ratio")->valuedouble), "%s: ratio", what);
    CHECK_MSG(b->sys_len == (long long)cJSON_GetObjectItem(ref, "sys_len")->valuedouble &&
                  b->ref_len == (long long)cJSON_GetObjectItem(ref, "ref_len")->valuedouble,
              "%s: lengths %lld/%lld", what, b->sys_len, b->ref_len);
    for (int k = 0; k < 4; k++) {
        const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(ref, "counts"), k);
        const cJSON *t = cJSON_GetArrayItem(cJSON_GetObjectItem(ref, "totals"), k);
        const cJSON *p = cJSON_GetArrayItem(cJSON_GetObjectItem(ref, "precisions"), k);
        CHECK_MSG(b->counts[k] == (long long)c->valuedouble && b->totals[k] == (long long)t->valuedouble,
                  "%s: order %d counts %lld/%lld vs %g/%g", what, k + 1, b->counts[k], b->totals[k],
                  c->valuedouble, t->valuedouble);
        CHECK_MSG(near(b->precisions[k], p->valuedouble), "%s: precision %d %.17g vs %.17g", what,
                  k + 1, b->precisions[k], p->valuedouble);
    }
}

static void test_fixtures(void) {
    char *path = test_fixture("textmetrics.json");
    char *text = NULL;
    CHECK(path != NULL);
    if (!path) return;
    CHECK_OK(cllm_read_file(path, &text, NULL));
    cJSON *fx = cJSON_Parse(text);
    CHECK(fx != NULL);
    if (!fx) goto out;

    int n13 = 0, nrt = 0, np = 0, nc = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(fx, "tokenize_13a")) {
        const char *in = cJSON_GetArrayItem(e, 0)->valuestring;
        const char *want = cJSON_GetArrayItem(e, 1)->valuestring;
        char *got = cllm_bleu_tokenize_13a(in);
        CHECK_MSG(got && !strcmp(got, want), "13a('%s') = '%s', sacreBLEU: '%s'", in, got, want);
        free(got);
        n13++;
    }
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(fx, "rouge_tokenize")) {
        const char *in = cJSON_GetArrayItem(e, 0)->valuestring;
        char want[4096] = "";
        const cJSON *t;
        cJSON_ArrayForEach(t, cJSON_GetArrayItem(e, 1)) {
            if (want[0]) strcat(want, " ");
            strcat(want, t->valuestring);
        }
        char *got = cllm_rouge_tokenize(in);
        CHECK_MSG(got && !strcmp(got, want), "rouge tokens of '%s': '%s', rouge-score: '%s'", in,
                  got, want);
        free(got);
        nrt++;
    }
    const cJSON *pairs = cJSON_GetObjectItem(fx, "pairs");
    cJSON_ArrayForEach(e, pairs) {
        const char *hyp = cJSON_GetObjectItem(e, "hyp")->valuestring;
        const char *ref = cJSON_GetObjectItem(e, "ref")->valuestring;
        char what[96];
        snprintf(what, sizeof what, "sentence_bleu pair %d", np);
        cllm_bleu b;
        CHECK_OK(cllm_bleu_sentence(&b, hyp, ref));
        check_bleu(what, &b, cJSON_GetObjectItem(e, "sentence_bleu"));
        cllm_rouge r;
        CHECK_OK(cllm_rouge_pair(&r, ref, hyp));
        const cJSON *rr = cJSON_GetObjectItem(e, "rouge");
        const char *names[3] = {"rouge1", "rouge2", "rougeL"};
        const cllm_prf *got[3] = {&r.rouge1, &r.rouge2, &r.rougeL};
        for (int k = 0; k < 3; k++) {
            const cJSON *w = cJSON_GetObjectItem(rr, names[k]);
            double p = cJSON_GetArrayItem(w, 0)->valuedouble, rc = cJSON_GetArrayItem(w, 1)->valuedouble,
                   f = cJSON_GetArrayItem(w, 2)->valuedouble;
            CHECK_MSG(near(got[k]->precision, p) && near(got[k]->recall, rc) && near(got[k]->f1, f),
                      "pair %d %s: p/r/f %.17g/%.17g/%.17g, rouge-score %.17g/%.17g/%.17g", np,
                      names[k], got[k]->precision, got[k]->recall, got[k]->f1, p, rc, f);
        }
        np++;
    }
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(fx, "corpora")) {
        const cJSON *idx = cJSON_GetObjectItem(e, "pairs");
        int n = cJSON_GetArraySize(idx);
        const char **hyps = malloc((size_t)n * sizeof *hyps), **refs = malloc((size_t)n * sizeof *refs);
        for (int i = 0; i < n; i++) {
            const cJSON *p = cJSON_GetArrayItem(pairs, (int)cJSON_GetArrayItem(idx, i)->valuedouble);
            hyps[i] = cJSON_GetObjectItem(p, "hyp")->valuestring;
            refs[i] = cJSON_GetObjectItem(p, "ref")->valuestring;
        }
        cllm_bleu b;
        CHECK_OK(cllm_bleu_corpus(&b, hyps, refs, n));
        char what[96];
        snprintf(what, sizeof what, "corpus_bleu '%s'", cJSON_GetObjectItem(e, "name")->valuestring);
        check_bleu(what, &b, cJSON_GetObjectItem(e, "bleu"));
        free(hyps);
        free(refs);
        nc++;
    }
    CHECK(n13 >= 40 && nrt >= 40 && np >= 50 && nc >= 7);
    printf("compared %d 13a tokenizations, %d rouge tokenizations, %d pairs, %d corpora\n", n13,
           nrt, np, nc);
    cJSON_Delete(fx);
out:
    free(text);
    free(path);
}

static void test_stop(void) {
    const char *stops[] = {"\n\n", "", "User:", NULL};
    CHECK(cllm_gen_stop_at("hello world", stops, 4) == 11);
    CHECK(cllm_gen_stop_at("hello\n\nUser: hi", stops, 4) == 5);
    CHECK(cllm_gen_stop_at("a User: b\n\nc", stops, 4) == 2);
    CHECK(cllm_gen_stop_at("", stops, 4) == 0);
    CHECK(cllm_gen_stop_at("abc", NULL, 0) == 3);
}

static void write_file(const char *path, const char *text) {
    CHECK_OK(cllm_write_file_atomic(path, text, strlen(text)));
}

static void test_gen_set(void) {
    char *dir = test_tmpdir("eval_text");
    char *p = cllm_path_join(dir, "gen.jsonl");
    write_file(p, "{\"prompt\": \"Translate: chat\", \"reference\": \"cat\", \"id\": 7}\n"
                  "\n"
                  "{\"prompt\": \"Q\", \"reference\": 3}\n"
                  "{\"prompt\": \"Say hi\", \"reference\": \"hi there\"}\n"
                  "not json\n");
    cllm_gen_set gs;
    CHECK_OK(cllm_gen_load(&gs, p, false, 0));
    CHECK(gs.n == 2 && gs.stats.skipped == 2 && gs.stats.blank == 1 && gs.stats.lines == 5);
    CHECK(gs.stats.first_skipped_line == 3 && strstr(gs.stats.first_skip_reason, ":3: "));
    CHECK(gs.n == 2 && !strcmp(gs.items[0].id, "7") && gs.items[1].line == 4);
    const char *outs[2] = {"cat", "hi"};
    cllm_gen_results gr;
    CHECK_OK(cllm_gen_score(&gr, &gs, outs));
    /* rouge1 F1: 1 for "cat", 2*1*0.5/1.5 for "hi" vs "hi there"; mean of the two. */
    CHECK(gr.n == 2 && near(gr.rouge.rouge1.f1, (1.0 + 2.0 / 3.0) / 2));
    char *line = cllm_gen_sample_json(&gs, 1, "hi");
    CHECK(line && strstr(line, "\"output\":\"hi\"") && strstr(line, "\"line\":4"));
    free(line);
    cllm_gen_set_free(&gs);

    cllm_status st = cllm_gen_load(&gs, p, true, 0);
    CHECK(st == CLLM_ERR_FORMAT && strstr(cllm_last_error(), "gen.jsonl:3: ") &&
          strstr(cllm_last_error(), "'prompt' and 'reference' must be strings"));
    CHECK_OK(cllm_gen_load(&gs, p, true, 1)); /* the limit stops before the bad line */
    CHECK(gs.n == 1);
    cllm_gen_set_free(&gs);
    cllm_gen_set_free(NULL);
    free(p);
    free(dir);
}

/* Random bytes (invalid UTF-8 included) never break the tokenizers or the metrics. */
static void test_garbage(void) {
    test_rng rng = {7};
    char a[64], b[64];
    for (int trial = 0; trial < 2000; trial++) {
        int na = (int)(test_rng_u64(&rng) % 63), nb = (int)(test_rng_u64(&rng) % 63);
        for (int i = 0; i < na; i++) a[i] = (char)(1 + test_rng_u64(&rng) % 255);
        for (int i = 0; i < nb; i++) b[i] = (char)(1 + test_rng_u64(&rng) % 255);
        a[na] = b[nb] = 0;
        cllm_bleu bl;
        cllm_rouge r;
        CHECK_OK(cllm_bleu_sentence(&bl, a, b));
        CHECK_OK(cllm_rouge_pair(&r, a, b));
        CHECK(bl.score >= 0 && bl.score <= 100 && r.rougeL.f1 >= 0 && r.rougeL.f1 <= 1);
    }
}

int main(void) {
    test_garbage();
    test_fixtures();
    test_stop();
    test_gen_set();
    return test_exit();
}
