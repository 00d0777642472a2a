/* cllm demo and cllm report end to end, through the binary: a shortened demo (a tiny model,
 * three fortune files, a half-minute budget) produces every artefact — the benchmark, the
 * tokenizer, the shards, the run with its checkpoints and metrics, eval.json, report.md and its
 * PNGs, which decode (libpng) to the sizes the report command stated — the model learns (the
 * validation loss falls well below ln V), and the report's numbers are those of the run's
 * files, read here independently. Then the refusals: a missing run, a directory that is not a
 * run, a DIR holding a demo without --force, a DIR that is not a demo even with --force (left
 * untouched), --force replacing only the demo's own files, a missing corpus. Skipped when the
 * fortunes package is not installed. */
#include "testutil.h"

#include "cllm/png.h"
#include "cllm/util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define FORTUNES "/usr/share/games/fortunes"

static const char *g_bin;
static char *g_tmp;

/* Run `cllm ARGS` through the shell; stdout and stderr go to files under g_tmp, whose
 * contents come back in *out / *err (malloc'd; may be NULL). Returns the exit code. */
static int run(char **out, char **err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int run(char **out, char **err, const char *fmt, ...) {
    char args[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    char *o = cllm_path_join(g_tmp, "stdout.txt"), *e = cllm_path_join(g_tmp, "stderr.txt");
    char *cmd = cllm_strdup_printf("'%s' %s >'%s' 2>'%s'", g_bin, args, o, e);
    int st = system(cmd);
    int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    size_t len;
    if (out) {
        *out = NULL;
        cllm_read_file(o, out, &len);
    }
    if (err) {
        *err = NULL;
        cllm_read_file(e, err, &len);
    }
    free(cmd);
    free(o);
    free(e);
    return rc;
}

static char *slurp(const char *dir, const char *name) {
    char *p = cllm_path_join(dir, name), *text = NULL;
    size_t len;
    if (cllm_read_file(p, &text, &len) != CLLM_OK) text = NULL;
    free(p);
    return text;
}

static cJSON *load_json(const char *dir, const char *name) {
    char *t = slurp(dir, name);
    cJSON *o = t ? cJSON_Parse(t) : NULL;
    free(t);
    return o;
}

static double num(const cJSON *o, const char *a, const char *b) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);
    if (b) v = cJSON_GetObjectItemCaseSensitive(v, b);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static bool contains(const char *hay, const char *needle) {
    return hay && needle && strstr(hay, needle) != NULL;
}

#define CHECK_HAS(text, ...)                                                                       \
    do {                                                                                           \
        char want_[512];                                                                           \
        snprintf(want_, sizeof want_, __VA_ARGS__);                                                \
        CHECK_MSG(contains(text, want_), "the report lacks \"%s\"", want_);                        \
    } while (0)

/* 1234567 -> "1,234,567" (the report's integers), written here on its own. */
static const char *commas(char *buf, long long v) {
    char d[32];
    snprintf(d, sizeof d, "%lld", v);
    size_t n = strlen(d), j = 0;
    for (size_t i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0) buf[j++] = ',';
        buf[j++] = d[i];
    }
    buf[j] = 0;
    return buf;
}

/* Every "wrote PATH (WxH)" line of `out`: the PNG decodes to that size. Returns the count. */
static int check_pngs(const char *out) {
    int n = 0;
    for (const char *l = out; l && (l = strstr(l, "wrote ")); l++) {
        char path[1024];
        int w, h;
        if (sscanf(l, "wrote %1023s (%dx%d)", path, &w, &h) != 3) continue;
        if (strlen(path) < 4 || strcmp(path + strlen(path) - 4, ".png")) continue;
        uint8_t *px = NULL;
        int gw = 0, gh = 0;
        CHECK_OK(cllm_png_read(path, &px, &gw, &gh));
        CHECK_MSG(gw == w && gh == h, "%s is %dx%d, stated %dx%d", path, gw, gh, w, h);
        /* a picture, not a blank page: more than two colours */
        uint32_t c0 = px ? *(uint32_t *)px : 0, c1 = c0;
        int colours = 1;
        for (long i = 0; px && i < (long)gw * gh && colours < 3; i++) {
            uint32_t c = ((uint32_t *)px)[i];
            if (c != c0 && (colours == 1 || c != c1)) {
                if (colours == 1) c1 = c;
                colours++;
            }
        }
        CHECK_MSG(colours >= 3, "%s is blank", path);
        free(px);
        n++;
    }
    return n;
}

/* Every image link of a Markdown file resolves, relative to the file, to a PNG. */
static int check_links(const char *md, const char *dir) {
    int n = 0;
    for (const char *l = md; l && (l = strstr(l, "](")); l += 2) {
        const char *end = strchr(l + 2, ')');
        if (!end || end - l > 512) continue;
        char rel[512];
        snprintf(rel, sizeof rel, "%.*s", (int)(end - l - 2), l + 2);
        if (strlen(rel) < 4 || strcmp(rel + strlen(rel) - 4, ".png")) continue;
        CHECK_MSG(rel[0] != '/', "image link %s is not relative", rel);
        char *p = cllm_path_join(dir, rel);
        uint8_t *px = NULL;
        int w, h;
        CHECK_OK(cllm_png_read(p, &px, &w, &h));
        free(px);
        free(p);
        n++;
    }
    return n;
}

static void write_text(const char *path, const char *text) {
    CHECK_OK(cllm_write_file_atomic(path, text, strlen(text)));
}

int main(void) {
    if (!cllm_is_dir(FORTUNES)) {
        fprintf(stderr, "skipped: %s is not installed (Debian package fortunes)\n", FORTUNES);
        return 77;
    }
    g_bin = getenv("CLLM_BIN");
    if (!g_bin) {
        fprintf(stderr, "CLLM_BIN is not set (run through ctest)\n");
        return 1;
    }
    g_tmp = test_tmpdir("demo");
    char *out = NULL, *err = NULL, buf[64];
    int rc0 = run(&out, &err, "devices");
    if (rc0 != 0 && contains(err, "no OpenCL platform")) {
        fprintf(stderr, "skipped: no OpenCL platform\n");
        return 77;
    }

    /* a small corpus and a tiny model */
    char *corpus = cllm_path_join(g_tmp, "corpus"), *tiny = cllm_path_join(g_tmp, "tiny.json");
    CHECK_OK(cllm_mkdirs(corpus));
    const char *files[] = {"computers", "science", "wisdom"};
    for (int i = 0; i < 3; i++) {
        char *src = cllm_path_join(FORTUNES, files[i]), *dst = cllm_path_join(corpus, files[i]);
        char *text = NULL;
        size_t len;
        CHECK_OK(cllm_read_file(src, &text, &len));
        if (text) CHECK_OK(cllm_write_file_atomic(dst, text, len));
        free(text);
        free(src);
        free(dst);
    }
    write_text(tiny, "{\"model_type\": \"gpt2\", \"vocab_size\": 512, \"n_positions\": 64, "
                     "\"n_embd\": 32, \"n_layer\": 2, \"n_head\": 2, \"training\": {\"batch\": 8, "
                     "\"seq\": 64, \"lr\": 3e-3, \"warmup\": 10}}");

    /* A cold kernel cache costs minutes on the first training step (PoCL compiling CLBlast's
     * GEMMs), which a half-minute budget cannot absorb: one step of the same model first. */
    free(out);
    free(err);
    rc0 = run(&out, &err, "bench train --model '%s' --batch 8 --seq 64 --steps 1 --warmup 0", tiny);
    CHECK_MSG(rc0 == 0, "cllm bench train exited %d: %s", rc0, err ? err : "");

    /* ---- the demo, shortened */
    char *dir = cllm_path_join(g_tmp, "demo");
    double t0 = cllm_now();
    int rc =
        run(&out, &err, "demo --out '%s' --minutes 0.4 --model '%s' --corpus '%s' --mc-items 40",
            dir, tiny, corpus);
    double secs = cllm_now() - t0;
    CHECK_MSG(rc == 0, "cllm demo exited %d: %s", rc, err ? err : "");
    printf("demo: %.1f s (a budget of 24 s)\n", secs);
    CHECK_MSG(contains(out, "The report: ") && contains(out, "report.md"),
              "the demo does not say where the report is");
    int stated = check_pngs(out);
    CHECK_MSG(stated == 4, "the report command stated %d PNGs (2 loss curves, 2 attention maps)",
              stated);

    cJSON *rec = load_json(dir, "demo.json");
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(rec, "status");
    CHECK(cJSON_IsString(status) && !strcmp(status->valuestring, "done"));
    const cJSON *stages = cJSON_GetObjectItemCaseSensitive(rec, "stages");
    CHECK(cJSON_GetArraySize(stages) >= 8);
    const cJSON *s;
    cJSON_ArrayForEach(s, stages) {
        CHECK(num(s, "exit_code", NULL) == 0);
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(s, "command");
        CHECK(cJSON_IsString(c) && !strncmp(c->valuestring, "cllm ", 5));
    }
    /* every artefact */
    const char *artefacts[] = {"data/mc.jsonl",
                               "data/pretrain.txt",
                               "data/tokenizer.json",
                               "data/pretrain/train_000.bin",
                               "data/pretrain/val_000.bin",
                               "data/pretrain/stats.json",
                               "pretrain/metrics.jsonl",
                               "pretrain/samples.jsonl",
                               "pretrain/config.json",
                               "pretrain/train_args.json",
                               "pretrain/latest",
                               "pretrain/eval.json",
                               "pretrain/eval_samples.jsonl",
                               "report.md",
                               "report/loss.png",
                               "report/attention.png",
                               "data/sft.jsonl",
                               "data/sft-val.jsonl",
                               "sft/metrics.jsonl",
                               "sft/sft_report.json",
                               "sft/latest",
                               "report/sft_loss.png"};
    for (size_t i = 0; i < sizeof artefacts / sizeof *artefacts; i++) {
        char *p = cllm_path_join(dir, artefacts[i]);
        CHECK_MSG(cllm_is_file(p), "the demo made no %s", artefacts[i]);
        free(p);
    }
    char *run_dir = cllm_path_join(dir, "pretrain");
    char *latest = slurp(run_dir, "latest");
    if (latest) latest[strcspn(latest, "\n")] = 0;
    char *ckpt = latest ? cllm_path_join(run_dir, latest) : NULL;
    char *mst = ckpt ? cllm_path_join(ckpt, "model.safetensors") : NULL;
    CHECK_MSG(mst && cllm_is_file(mst), "the latest checkpoint has no model.safetensors");

    /* ---- the report's numbers, from the run's files */
    char *md = slurp(dir, "report.md");
    CHECK(md != NULL);
    CHECK_MSG(check_links(md, dir) == 4, "report.md does not link its 4 images");
    /* parameters from config.json: V C + P C + L (12 C^2 + 13 C) + 2 C */
    cJSON *cfg = load_json(run_dir, "config.json");
    long long V = (long long)num(cfg, "vocab_size", NULL),
              P = (long long)num(cfg, "n_positions", NULL), C = (long long)num(cfg, "n_embd", NULL),
              L = (long long)num(cfg, "n_layer", NULL);
    long long params = V * C + P * C + L * (12 * C * C + 13 * C) + 2 * C;
    CHECK(params == 43904);
    CHECK_HAS(md, "| %lld | %d | %lld | %lld | %s | %s |", L, (int)num(cfg, "n_head", NULL), C, P,
              commas(buf, V), commas((char[32]){0}, params));
    /* validation: the first and last val_loss of metrics.jsonl, read line by line */
    char *metrics = slurp(run_dir, "metrics.jsonl");
    double v_first = NAN, v_last = NAN, s_first = NAN, s_last = NAN;
    for (char *l = metrics; l && *l;) {
        char *nl = strchr(l, '\n');
        cJSON *o = cJSON_ParseWithLength(l, nl ? (size_t)(nl - l) : strlen(l));
        double v = num(o, "val_loss", NULL);
        if (isfinite(v)) {
            if (!isfinite(v_first)) v_first = v, s_first = num(o, "step", NULL);
            v_last = v, s_last = num(o, "step", NULL);
        }
        cJSON_Delete(o);
        l = nl ? nl + 1 : NULL;
    }
    CHECK(s_first == 0);
    CHECK_HAS(md, "%.3f at step 0 → **%.3f** at step %s", v_first, v_last,
              commas(buf, (long long)s_last));
    printf("validation loss %.3f -> %.3f (ln V = %.3f) at step %.0f\n", v_first, v_last,
           log((double)V), s_last);
    CHECK_MSG(v_last < log((double)V) - 1.0, "the model did not learn: val loss %.3f, ln V %.3f",
              v_last, log((double)V));
    /* the final step and tokens, from the checkpoint's state.json */
    cJSON *state = ckpt ? load_json(ckpt, "state.json") : NULL;
    CHECK_HAS(md, "trained for %s steps on %s tokens",
              commas(buf, (long long)num(state, "step", NULL)),
              commas((char[32]){0}, (long long)num(state, "tokens", NULL)));
    CHECK(num(state, "step", NULL) == s_last);
    /* the planned steps, and when the time limit ended the run short of them, both counts */
    cJSON *targs = load_json(run_dir, "train_args.json");
    double planned = num(cJSON_GetObjectItemCaseSensitive(targs, "options"), "steps", NULL);
    if (num(state, "step", NULL) < planned) {
        CHECK_HAS(md, "%s steps (planned) of", commas(buf, (long long)planned));
        CHECK_HAS(md, "It stopped at step %s of %s",
                  commas(buf, (long long)num(state, "step", NULL)),
                  commas((char[32]){0}, (long long)planned));
    } else {
        CHECK_HAS(md, "%s steps of", commas(buf, (long long)planned));
    }
    cJSON_Delete(targs);
    /* the evaluation */
    cJSON *ev = load_json(run_dir, "eval.json");
    CHECK_HAS(md, "| %s | %.4f | %.2f | %.4f |",
              commas(buf, (long long)num(ev, "perplexity", "tokens")),
              num(ev, "perplexity", "loss"), num(ev, "perplexity", "perplexity"),
              num(ev, "perplexity", "bits_per_byte"));
    CHECK_HAS(md, "| `mc` (generic) | %.0f | %.3f ± %.3f | %.3f ± %.3f | 0.250 |",
              num(ev, "mc", "n"), num(ev, "mc", "acc"), num(ev, "mc", "acc_stderr"),
              num(ev, "mc", "acc_norm"), num(ev, "mc", "acc_norm_stderr"));
    CHECK(num(ev, "mc", "n") == 40);
    /* the data */
    cJSON *stats = load_json(dir, "data/pretrain/stats.json");
    const cJSON *train = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(stats, "splits"), "train");
    CHECK_HAS(md, "| train | %s | %s | %s |", commas(buf, (long long)num(train, "documents", NULL)),
              commas((char[32]){0}, (long long)num(train, "bytes", NULL)),
              commas((char[32]){0}, (long long)num(train, "tokens", NULL)));
    CHECK_HAS(md, "%s documents (%.2f MB) read",
              commas(buf, (long long)num(stats, "documents_in", NULL)),
              num(stats, "bytes_in", NULL) / 1e6);
    /* the chat set's held-out answers were kept out of pretraining, and the report says so */
    double held = num(cJSON_GetObjectItemCaseSensitive(stats, "removed"), "held_out", "documents");
    CHECK_MSG(held > 0, "no held-out chat answer was removed from the pretraining data");
    CHECK(contains(md, "Their answers were kept out of pretraining too"));
    CHECK_HAS(md, "`: %s documents removed), so the model meets them here",
              commas(buf, (long long)held));
    /* samples: the last sample's text appears verbatim */
    char *samples = slurp(run_dir, "samples.jsonl");
    if (samples) {
        char *lastl = NULL;
        for (char *l = samples; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l))
            if (*l != '\n') lastl = l;
        char *nl = lastl ? strchr(lastl, '\n') : NULL;
        cJSON *o =
            lastl ? cJSON_ParseWithLength(lastl, nl ? (size_t)(nl - lastl) : strlen(lastl)) : NULL;
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "text");
        bool plain = cJSON_IsString(t);
        for (const char *c = plain ? t->valuestring : ""; *c; c++)
            if ((unsigned char)*c < 0x20 && *c != '\n' && *c != '\t') plain = false;
        if (plain) CHECK_MSG(contains(md, t->valuestring), "the last sample is not in the report");
        cJSON_Delete(o);
    }
    /* the fine-tuning: sft_report.json's losses and category check */
    char *sft_dir = cllm_path_join(dir, "sft");
    cJSON *sr = load_json(sft_dir, "sft_report.json");
    CHECK(sr != NULL);
    CHECK_HAS(md, "(assistant tokens): %.4f before fine-tuning, %.4f after %s steps",
              num(sr, "val_loss_step0", NULL), num(sr, "val_loss", NULL),
              commas(buf, (long long)num(sr, "step", NULL)));
    const cJSON *cc = cJSON_GetObjectItemCaseSensitive(sr, "category_check");
    const cJSON *ca = cJSON_GetObjectItemCaseSensitive(cc, "after");
    CHECK_HAS(md, "| after | %s | %.4f | %.4f | %.4f ± %.4f | %.1f%% |",
              commas(buf, (long long)num(ca, "items", NULL)), num(ca, "own_loss", NULL),
              num(ca, "wrong_loss", NULL), num(ca, "gap", NULL), num(ca, "gap_se", NULL),
              100 * num(ca, "own_lower", NULL));
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(sr, "samples")) == 3);
    CHECK(contains(md, "**Replies before and after**"));
    cJSON_Delete(sr);
    free(sft_dir);
    CHECK(contains(md, "## Attention") && contains(md, "report/attention.png"));
    CHECK(contains(md, "The demo's stages"));

    /* ---- a report of a copy without eval.json and samples: those parts are left out, said */
    char *copy = cllm_path_join(g_tmp, "copy");
    char *cmd = cllm_strdup_printf("cp -r '%s' '%s' && rm '%s/eval.json' '%s/samples.jsonl'",
                                   run_dir, copy, copy, copy);
    CHECK(system(cmd) == 0);
    free(cmd);
    free(out);
    free(err);
    rc = run(&out, &err, "report '%s' --no-attention", copy);
    CHECK_MSG(rc == 0, "cllm report of the copy exited %d: %s", rc, err ? err : "");
    char *md2 = slurp(copy, "report.md");
    CHECK(contains(md2, "*Not included: evaluation results:"));
    CHECK(contains(md2, "*Not included: samples:"));
    CHECK(contains(md2, "*Not included: the attention maps:"));
    CHECK(check_pngs(out) == 1); /* the loss curve */
    CHECK(check_links(md2, copy) == 1);
    free(md2);

    /* the SFT run is found beside its base run without --sft */
    free(out);
    free(err);
    char *auto_md = cllm_path_join(g_tmp, "auto.md");
    rc = run(&out, &err, "report '%s' --no-attention --out '%s'", run_dir, auto_md);
    CHECK_MSG(rc == 0 && contains(out, "with the fine-tuned run") && contains(out, "/sft"),
              "the SFT run beside the run was not found: %d %s", rc, out ? out : "");
    char *amd = slurp(g_tmp, "auto.md");
    CHECK(contains(amd, "## Fine-tuning: `demo/sft`"));
    CHECK(check_links(amd, g_tmp) == 2);
    free(amd);
    free(auto_md);

    /* data prepared without --held-out: the report says the answers may be in it */
    {
        char *sp = cllm_strdup_printf("%s/data/pretrain/stats.json", dir);
        char *orig = NULL;
        size_t olen = 0;
        CHECK_OK(cllm_read_file(sp, &orig, &olen));
        cJSON *sj = orig ? cJSON_Parse(orig) : NULL;
        cJSON *opt = cJSON_GetObjectItemCaseSensitive(sj, "options");
        CHECK(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(opt, "held_out")));
        cJSON_ReplaceItemInObjectCaseSensitive(opt, "held_out", cJSON_CreateArray());
        char *t = cJSON_Print(sj);
        write_text(sp, t);
        free(out);
        free(err);
        char *nmd = cllm_path_join(g_tmp, "no-held-out.md");
        rc = run(&out, &err, "report '%s' --no-attention --out '%s'", run_dir, nmd);
        CHECK_MSG(rc == 0, "cllm report exited %d: %s", rc, err ? err : "");
        char *m3 = slurp(g_tmp, "no-held-out.md");
        CHECK(contains(m3, "Their answers may also be in the pretraining data"));
        CHECK(!contains(m3, "kept out of pretraining too"));
        write_text(sp, orig); /* as it was */
        free(m3);
        free(nmd);
        free(t);
        cJSON_Delete(sj);
        free(orig);
        free(sp);
    }

    /* ---- refusals */
    free(out);
    free(err);
    char *missing = cllm_path_join(g_tmp, "no-such-run");
    rc = run(&out, &err, "report '%s'", missing);
    CHECK_MSG(rc == 1 && contains(err, missing) && contains(err, "no such run directory"),
              "report of a missing run: exit %d, stderr %s", rc, err ? err : "");
    CHECK(err && strchr(err, '\n') == err + strlen(err) - 1); /* one line */
    free(out);
    free(err);
    rc = run(&out, &err, "report '%s'", corpus);
    CHECK_MSG(rc == 1 && contains(err, "not a training run"), "report of a non-run: %d %s", rc,
              err ? err : "");
    free(out);
    free(err);
    rc = run(&out, &err, "report '%s' --sft '%s' --no-attention", run_dir, missing);
    CHECK_MSG(rc == 1 && contains(err, missing), "report --sft missing: %d %s", rc, err ? err : "");
    free(out);
    free(err);
    rc = run(&out, &err, "report '%s' --sft x --no-sft", run_dir);
    CHECK(rc == 2);

    /* the demo's DIR again, without --force: refused, nothing touched */
    char *before = slurp(dir, "report.md"), *rec_before = slurp(dir, "demo.json");
    free(out);
    free(err);
    rc = run(&out, &err, "demo --out '%s' --model '%s' --corpus '%s'", dir, tiny, corpus);
    CHECK_MSG(rc == 2 && contains(err, "--force") && contains(err, "previous demo"),
              "demo into a demo: %d %s", rc, err ? err : "");
    char *after = slurp(dir, "report.md"), *rec_after = slurp(dir, "demo.json");
    CHECK(before && after && !strcmp(before, after));
    CHECK(rec_before && rec_after && !strcmp(rec_before, rec_after));
    /* a DIR that is not a demo: refused even with --force, left as it was */
    char *foreign = cllm_path_join(g_tmp, "foreign"), *note = cllm_path_join(foreign, "notes.txt");
    CHECK_OK(cllm_mkdirs(foreign));
    write_text(note, "mine");
    free(out);
    free(err);
    rc = run(&out, &err, "demo --out '%s' --force --model '%s' --corpus '%s'", foreign, tiny,
             corpus);
    CHECK_MSG(rc == 2 && contains(err, "holds no demo"), "demo into a foreign dir: %d %s", rc,
              err ? err : "");
    char *nt = slurp(foreign, "notes.txt");
    CHECK(nt && !strcmp(nt, "mine"));
    free(nt);
    /* --force over a demo: its own files go, the rest stays; here the new run stops at its
     * first stage (a corpus with no usable document) and says so */
    char *fake = cllm_path_join(g_tmp, "fake"), *empty = cllm_path_join(g_tmp, "empty");
    CHECK_OK(cllm_mkdirs(fake));
    CHECK_OK(cllm_mkdirs(empty));
    char *p1 = cllm_path_join(fake, "demo.json"), *p2 = cllm_path_join(fake, "report.md"),
         *p3 = cllm_path_join(fake, "mine.txt"), *p4 = cllm_path_join(empty, "nothing");
    write_text(p1, "{\"cllm_demo\": 1, \"status\": \"done\"}");
    write_text(p2, "old report");
    write_text(p3, "keep me");
    write_text(p4, "%\n%\n");
    free(out);
    free(err);
    rc = run(&out, &err, "demo --out '%s' --force --model '%s' --corpus '%s'", fake, tiny, empty);
    CHECK_MSG(rc != 0 && contains(err, "the benchmark stage failed"),
              "demo --force, failing stage: %d %s", rc, err ? err : "");
    CHECK(!cllm_is_file(p2));
    char *mine = slurp(fake, "mine.txt");
    CHECK(mine && !strcmp(mine, "keep me"));
    free(mine);
    cJSON *frec = load_json(fake, "demo.json");
    const cJSON *fst = cJSON_GetObjectItemCaseSensitive(frec, "status");
    CHECK(cJSON_IsString(fst) && !strcmp(fst->valuestring, "failed"));
    cJSON_Delete(frec);
    /* Ctrl-C (SIGINT) during pretraining: the step finishes, a checkpoint is saved, the demo
     * stops there (exit 1) and says so; demo.json says "interrupted" */
    char *intr = cllm_path_join(g_tmp, "intr");
    char *script = cllm_strdup_printf(
        "'%s' demo --out '%s' --minutes 2 --model '%s' --corpus '%s' --mc-items 40 "
        ">'%s/intr.out' 2>&1 & pid=$!; "
        "for i in $(seq 1 600); do "
        "  [ -f '%s/pretrain/metrics.jsonl' ] && [ $(wc -l < '%s/pretrain/metrics.jsonl') -ge 30 ] "
        "&& break; sleep 0.1; done; "
        "kill -INT $pid; wait $pid; echo $? > '%s/intr.rc'",
        g_bin, intr, tiny, corpus, g_tmp, intr, intr, g_tmp);
    CHECK(system(script) == 0);
    free(script);
    char *irc = slurp(g_tmp, "intr.rc"), *iout = slurp(g_tmp, "intr.out");
    CHECK_MSG(irc && atoi(irc) == 1, "an interrupted demo exited %s", irc ? irc : "?");
    CHECK_MSG(contains(iout, "interrupted during pretraining"), "the demo did not say it stopped");
    cJSON *irec = load_json(intr, "demo.json");
    const cJSON *ist = cJSON_GetObjectItemCaseSensitive(irec, "status");
    CHECK(cJSON_IsString(ist) && !strcmp(ist->valuestring, "interrupted"));
    char *ilatest = cllm_path_join(intr, "pretrain/latest"),
         *ieval = cllm_path_join(intr, "pretrain/eval.json");
    CHECK_MSG(cllm_is_file(ilatest), "the interrupted pretraining saved no checkpoint");
    CHECK_MSG(!cllm_is_file(ieval), "the demo went on to evaluate after Ctrl-C");
    cJSON_Delete(irec);
    free(ilatest);
    free(ieval);
    free(irc);
    free(iout);
    free(intr);

    /* a corpus that does not exist */
    free(out);
    free(err);
    rc = run(&out, &err, "demo --out '%s' --corpus '%s'", foreign, missing);
    CHECK(rc == 2 && contains(err, missing));

    free(out);
    free(err);
    free(before);
    free(after);
    free(rec_before);
    free(rec_after);
    free(foreign);
    free(note);
    free(fake);
    free(empty);
    free(p1);
    free(p2);
    free(p3);
    free(p4);
    free(missing);
    free(copy);
    free(samples);
    free(metrics);
    free(md);
    free(latest);
    free(ckpt);
    free(mst);
    free(run_dir);
    free(dir);
    free(corpus);
    free(tiny);
    cJSON_Delete(rec);
    cJSON_Delete(cfg);
    cJSON_Delete(state);
    cJSON_Delete(ev);
    cJSON_Delete(stats);
    free(g_tmp);
    return test_exit();
}
