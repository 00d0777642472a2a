/* The training loop (cllm/train.h) on tiny models:
 *  - exact resume: 2N steps at once and N steps + resume for N more give the same per-step
 *    losses, learning rates, gradient norms, validation losses and bitwise the same weights and
 *    AdamW moments (pretraining shards with a cosine schedule, gradient accumulation; and a
 *    batch source of the test's own with ignored targets and a JSON position);
 *  - writers killed with SIGKILL while saving checkpoints: the previous checkpoint loads, the run
 *    resumes, and ends bitwise where an uninterrupted run ends;
 *  - gradient accumulation weights micro-batches by their valid targets: the step's loss and
 *    gradient norm equal one forward over all micro-batches at once;
 *  - the overflow guard: non-finite steps are skipped and logged, a run of them stops training,
 *    and no checkpoint with non-finite weights is written;
 *  - refusals before anything is written: a sequence beyond the context, token ids or a
 *    tokenizer beyond the vocabulary, a fresh run over checkpoints, a resume with another batch
 *    or changed data, a resume without a checkpoint.
 */
#include "testutil.h"

#include "cllm/checkpoint.h"
#include "cllm/tokenizer.h"
#include "cllm/train.h"
#include "cllm/util.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------------ fixtures */

static cllm_gpt_config make_cfg(int V, int T, int C, int L, int NH) {
    cllm_gpt_config c = {.vocab_size = V,
                         .n_positions = T,
                         .n_embd = C,
                         .n_layer = L,
                         .n_head = NH,
                         .layer_norm_epsilon = 1e-5f,
                         .initializer_range = 0.02f};
    return c;
}

/* Shards of a noisy affine sequence (learnable, not trivial): next = (5 x + 3) mod V, or a
 * random id one time in four. */
static void write_data(const char *dir, size_t n_train, size_t n_val, int V, uint64_t seed) {
    test_rng r = {seed};
    size_t n = n_train > n_val ? n_train : n_val;
    uint32_t *t = malloc(n * sizeof *t);
    const char *names[2] = {"train_000.bin", "val_000.bin"};
    size_t sizes[2] = {n_train, n_val};
    for (int s = 0; s < 2; s++) {
        uint32_t x = (uint32_t)(test_rng_u64(&r) % (uint64_t)V);
        for (size_t i = 0; i < sizes[s]; i++) {
            t[i] = x;
            x = test_rng_uniform(&r) < 0.25 ? (uint32_t)(test_rng_u64(&r) % (uint64_t)V)
                                            : (5 * x + 3) % (uint32_t)V;
        }
        char *p = cllm_path_join(dir, names[s]);
        CHECK_OK(cllm_shard_write(p, t, sizes[s], (uint32_t)V));
        free(p);
    }
    free(t);
}

static cllm_train_opts tiny_opts(void) {
    cllm_train_opts o = cllm_train_opts_default();
    o.steps = 8;
    o.batch = 4;
    o.seq = 16;
    o.grad_accum = 2;
    o.lr = 1e-2;
    o.warmup = 2;
    o.eval_every = 4;
    o.eval_batches = 2;
    o.ckpt_every = 4;
    o.keep = 0;
    o.seed = 42;
    return o;
}

static FILE *quiet_log(void) {
    static FILE *f;
    if (!f) f = fopen("/dev/null", "w");
    return f;
}

typedef struct {
    const char *run, *data;
    cllm_gpt_config cfg;
    cllm_train_opts o;
    bool resume;
    int stop_at;
    const float *init;
    const char *tokenizer_json;
    cllm_batch_source *train; /* NULL: pretraining shards from data */
    char *ckpt;               /* out: the last checkpoint written (malloc'd) */
} run_spec;

/* One session of training; returns cllm_trainer_init's or _run's status. */
static cllm_status run_session(cllm_runtime *rt, run_spec *r) {
    cllm_batch_source *tr = r->train, *va = NULL;
    cllm_trainer *t = NULL;
    cllm_status st = CLLM_OK;
    if (!tr) {
        cllm_loader_opts lo = {.dir = r->data,
                               .split = "train",
                               .B = r->o.batch,
                               .T = r->o.seq,
                               .shuffle = true,
                               .seed = r->o.seed,
                               .world = 1};
        CLLM_TRY(cllm_pretrain_source_init(&tr, &lo));
        lo.split = "val";
        lo.shuffle = false;
        CLLM_TRY(cllm_pretrain_source_init(&va, &lo));
    }
    cllm_train_setup s = {.run_dir = r->run,
                          .cfg = r->cfg,
                          .model_source = "test config",
                          .init_params = r->init,
                          .tokenizer_json = r->tokenizer_json,
                          .train = tr,
                          .val = va,
                          .opts = r->o,
                          .resume = r->resume,
                          .args_json = "{\"test\": true}",
                          .command_line = "test_train",
                          .stop_at = r->stop_at,
                          .log = quiet_log()};
    CLLM_TRY(cllm_trainer_init(&t, rt, &s));
    st = cllm_trainer_run(t);
    free(r->ckpt);
    r->ckpt = cllm_trainer_last_checkpoint(t) ? strdup(cllm_trainer_last_checkpoint(t)) : NULL;
fail:
    cllm_trainer_free(t);
    if (!r->train) cllm_batch_source_free(tr);
    cllm_batch_source_free(va);
    return st;
}

static char *read_text(const char *path) {
    char *t = NULL;
    if (cllm_read_file(path, &t, NULL) != CLLM_OK) return NULL;
    return t;
}

static bool same_file(const char *a, const char *b) {
    char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    bool ok = cllm_read_file(a, &x, &nx) == CLLM_OK && cllm_read_file(b, &y, &ny) == CLLM_OK &&
              nx == ny && memcmp(x, y, nx) == 0;
    free(x);
    free(y);
    return ok;
}

static char *path3(const char *a, const char *b, const char *c) {
    return cllm_strdup_printf("%s/%s/%s", a, b, c);
}

/* metrics.jsonl of two runs agree on every field but the timings. */
static void check_same_metrics(const char *run_a, const char *run_b, int expect_lines) {
    char *pa = cllm_path_join(run_a, "metrics.jsonl"), *pb = cllm_path_join(run_b, "metrics.jsonl");
    char *a = read_text(pa), *b = read_text(pb);
    CHECK(a && b);
    int lines = 0;
    static const char *keys[] = {"step",   "loss",     "lr",      "grad_norm",
                                 "tokens", "val_loss", "val_ppl", "skipped"};
    for (char *la = a, *lb = b; a && b && *la && *lb; lines++) {
        char *ea = strchr(la, '\n'), *eb = strchr(lb, '\n');
        if (!ea || !eb) break;
        *ea = *eb = 0;
        cJSON *ja = cJSON_Parse(la), *jb = cJSON_Parse(lb);
        CHECK_MSG(ja && jb, "line %d does not parse", lines + 1);
        for (size_t k = 0; ja && jb && k < sizeof keys / sizeof *keys; k++) {
            const cJSON *x = cJSON_GetObjectItemCaseSensitive(ja, keys[k]),
                        *y = cJSON_GetObjectItemCaseSensitive(jb, keys[k]);
            bool same = (!x && !y) || (x && y && x->type == y->type &&
                                       (!cJSON_IsNumber(x) || x->valuedouble == y->valuedouble));
            CHECK_MSG(same, "metrics line %d, \"%s\": %s vs %s", lines + 1, keys[k],
                      x ? cJSON_PrintUnformatted(x) : "absent",
                      y ? cJSON_PrintUnformatted(y) : "absent");
        }
        cJSON_Delete(ja);
        cJSON_Delete(jb);
        la = ea + 1;
        lb = eb + 1;
    }
    CHECK_MSG(lines == expect_lines, "%d metrics lines compared, expected %d", lines, expect_lines);
    free(a);
    free(b);
    free(pa);
    free(pb);
}

static void check_same_checkpoint(const char *run_a, const char *run_b, const char *step) {
    const char *files[] = {"model.safetensors", "optimizer.safetensors", "config.json"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char *x = path3(run_a, step, files[i]), *y = path3(run_b, step, files[i]);
        CHECK_MSG(same_file(x, y), "%s and %s differ", x, y);
        free(x);
        free(y);
    }
}

static int count_entries(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    if (d) closedir(d);
    return n;
}

/* ------------------------------------------------------------------ exact resume */

/* A byte-level BPE tokenizer of at most 300 tokens, for samples. */
static char *small_tokenizer(void) {
    const char *text = "the quick brown fox jumps over the lazy dog, the quick brown fox again "
                       "and again and again, the dog sleeps";
    cllm_text doc = {text, strlen(text)};
    cllm_bpe_train_opts bo = cllm_bpe_train_opts_default();
    bo.vocab_size = 300;
    bo.min_frequency = 1;
    cllm_tokenizer *tok = NULL;
    CHECK_OK(cllm_tokenizer_train(&tok, &doc, 1, &bo));
    char *j = tok ? cllm_tokenizer_to_json(tok) : NULL;
    cllm_tokenizer_free(tok);
    return j;
}

static void test_exact_resume(cllm_runtime *rt) {
    char *data = test_tmpdir("train_data"), *a = test_tmpdir("train_a"),
         *b = test_tmpdir("train_b");
    write_data(data, 6000, 600, 300, 7);
    cllm_gpt_config cfg = make_cfg(300, 32, 32, 2, 2);
    char *tok = small_tokenizer();
    cllm_train_opts o = tiny_opts();
    o.sample_every = 3; /* samples at 3, 6 and 8: on both sides of the resume */
    o.sample_tokens = 6;
    run_spec ra = {.run = a, .data = data, .cfg = cfg, .o = o, .tokenizer_json = tok};
    CHECK_OK(run_session(rt, &ra));
    /* the same run in two sessions: stopped after step 4 (its checkpoint), then resumed */
    run_spec rb = {.run = b, .data = data, .cfg = cfg, .o = o, .stop_at = 4, .tokenizer_json = tok};
    CHECK_OK(run_session(rt, &rb));
    CHECK(cllm_checkpoint_latest(b) && strstr(rb.ckpt, "step_00000004"));
    rb.resume = true;
    rb.stop_at = 0;
    CHECK_OK(run_session(rt, &rb));
    check_same_metrics(a, b, 1 + 8);
    check_same_checkpoint(a, b, "step_00000008");
    check_same_checkpoint(a, b, "step_00000004");
    char *pa = cllm_path_join(a, "samples.jsonl"), *pb = cllm_path_join(b, "samples.jsonl"),
         *sj = read_text(pa);
    int n_samples = 0;
    for (char *q = sj; q && (q = strchr(q, '\n')); q++)
        n_samples++;
    CHECK_MSG(n_samples == 3 && same_file(pa, pb), "samples.jsonl: %d lines, or they differ",
              n_samples);
    /* state.json: the same but for the wall time */
    char *sa = path3(a, "step_00000008", "state.json"),
         *sb = path3(b, "step_00000008", "state.json");
    char *ta = read_text(sa), *tb = read_text(sb);
    cJSON *ja = cJSON_Parse(ta), *jb = cJSON_Parse(tb);
    cJSON_DeleteItemFromObject(ja, "time_s");
    cJSON_DeleteItemFromObject(jb, "time_s");
    CHECK_MSG(cJSON_Compare(ja, jb, true), "state.json differs:\n%s\n%s", ta, tb);
    /* command.txt has both sessions; metrics continue the time count */
    char *cp = cllm_path_join(b, "command.txt"), *cmd = read_text(cp);
    CHECK(cmd && !strcmp(cmd, "test_train\ntest_train\n"));
    printf("exact resume: 8 steps == 4 + resume 4 (losses, lr, grad norms, val losses, samples, "
           "weights, AdamW moments, state)\n");
    free(pa);
    free(pb);
    free(sj);
    free(tok);
    cJSON_Delete(ja);
    cJSON_Delete(jb);
    free(ta);
    free(tb);
    free(sa);
    free(sb);
    free(cp);
    free(cmd);
    free(ra.ckpt);
    free(rb.ckpt);
    free(data);
    free(a);
    free(b);
}

/* ------------------------------------------------------------------ a source of our own */

/* SFT-like batches: token ids from a hash of (position, row, column), targets the next id of a
 * fixed rule, and a share of targets ignored that differs between micro-batches (3/4 on even
 * positions, 1/4 on odd ones), so accumulation has unequal micro-batches to weight. */
typedef struct {
    uint64_t pos;
    int V;
    int restores;
} own_src;

static uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static cllm_status own_next(void *self, uint32_t *in, uint32_t *tg, int B, int T) {
    own_src *s = self;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            uint64_t h = mix(s->pos * 1000003u + (uint64_t)b * 1009u + (uint64_t)t);
            uint32_t x = (uint32_t)(h % (uint64_t)s->V);
            in[b * T + t] = x;
            bool ignore = (h >> 40) % 4 < (s->pos % 2 == 0 ? 3u : 1u);
            tg[b * T + t] = ignore ? CLLM_IGNORE_TARGET : (x * 7 + 3) % (uint32_t)s->V;
        }
    s->pos++;
    return CLLM_OK;
}

static char *own_get(void *self) {
    return cllm_strdup_printf("{\"pos\": %llu}", (unsigned long long)((own_src *)self)->pos);
}

static cllm_status own_set(void *self, const char *json) {
    own_src *s = self;
    cJSON *o = cJSON_Parse(json);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "pos");
    cllm_status st = CLLM_OK;
    if (!cJSON_IsNumber(p))
        st = cllm_fail(CLLM_ERR_FORMAT, "own source: no pos in %s", json);
    else
        s->pos = (uint64_t)p->valuedouble, s->restores++;
    cJSON_Delete(o);
    return st;
}

static uint32_t own_max(void *self) {
    return (uint32_t)((own_src *)self)->V - 1;
}

static cllm_batch_source own_source(own_src *s, int B, int T) {
    return (cllm_batch_source){.self = s,
                               .batch = B,
                               .seq = T,
                               .name = "own source",
                               .next = own_next,
                               .get_position = own_get,
                               .set_position = own_set,
                               .max_token = own_max};
}

static void test_own_source(cllm_runtime *rt) {
    char *a = test_tmpdir("train_own_a"), *b = test_tmpdir("train_own_b");
    cllm_gpt_config cfg = make_cfg(61, 16, 32, 2, 2);
    cllm_train_opts o = tiny_opts();
    o.seq = 12;
    o.eval_every = 0;
    o.steps = 6;
    o.ckpt_every = 3;
    own_src sa = {.V = 61}, sb = {.V = 61};
    cllm_batch_source srca = own_source(&sa, o.batch, o.seq),
                      srcb = own_source(&sb, o.batch, o.seq);
    run_spec ra = {.run = a, .cfg = cfg, .o = o, .train = &srca};
    CHECK_OK(run_session(rt, &ra));
    run_spec rb = {.run = b, .cfg = cfg, .o = o, .train = &srcb, .stop_at = 3};
    CHECK_OK(run_session(rt, &rb));
    own_src sc = {.V = 61}; /* a new process would start from scratch: set_position restores */
    cllm_batch_source srcc = own_source(&sc, o.batch, o.seq);
    rb.train = &srcc;
    rb.resume = true;
    rb.stop_at = 0;
    CHECK_OK(run_session(rt, &rb));
    CHECK(sc.restores == 1 && sc.pos == sa.pos && sa.pos == 12);
    check_same_metrics(a, b, 6);
    check_same_checkpoint(a, b, "step_00000006");
    /* the position went into state.json as the source wrote it */
    char *sp = path3(b, "step_00000003", "state.json"), *st = read_text(sp);
    cJSON *j = cJSON_Parse(st);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "data");
    CHECK(d && cJSON_GetObjectItemCaseSensitive(d, "pos") &&
          cJSON_GetObjectItemCaseSensitive(d, "pos")->valuedouble == 6);
    cJSON_Delete(j);
    free(st);
    free(sp);
    free(ra.ckpt);
    free(rb.ckpt);
    free(a);
    free(b);
}

/* The step's loss and gradient with accumulation over unequal micro-batches equal one forward
 * and backward over all of them at once (the mean over every valid target of the step). */
static void test_accumulation_weighting(cllm_runtime *rt) {
    char *a = test_tmpdir("train_accum");
    cllm_gpt_config cfg = make_cfg(61, 16, 32, 2, 2);
    cllm_train_opts o = tiny_opts();
    o.seq = 12;
    o.eval_every = 0;
    o.steps = 1;
    o.grad_accum = 2;
    own_src s = {.V = 61};
    cllm_batch_source src = own_source(&s, o.batch, o.seq);
    run_spec r = {.run = a, .cfg = cfg, .o = o, .train = &src};
    CHECK_OK(run_session(rt, &r));
    char *mp = cllm_path_join(a, "metrics.jsonl"), *m = read_text(mp);
    cJSON *j = m ? cJSON_Parse(m) : NULL;
    double loss = cJSON_GetObjectItemCaseSensitive(j, "loss")->valuedouble,
           norm = cJSON_GetObjectItemCaseSensitive(j, "grad_norm")->valuedouble;
    /* the reference: both micro-batches as one batch of 2B rows, same initial weights */
    own_src s2 = {.V = 61};
    const int B = o.batch, T = o.seq;
    uint32_t in[2 * 4 * 12], tg[2 * 4 * 12];
    own_next(&s2, in, tg, B, T);
    own_next(&s2, in + B * T, tg + B * T, B, T);
    int valid0 = 0, valid1 = 0;
    for (int i = 0; i < B * T; i++) {
        valid0 += tg[i] != CLLM_IGNORE_TARGET;
        valid1 += tg[B * T + i] != CLLM_IGNORE_TARGET;
    }
    CHECK(valid0 * 2 < valid1); /* the two really differ */
    cllm_gpt_opts go = {.max_batch = 2 * B, .max_seq = T, .training = true};
    cllm_gpt *g = NULL;
    float ref_loss = 0, ref_norm = 0;
    CHECK_OK(cllm_gpt_init(&g, rt, &cfg, &go));
    CHECK_OK(cllm_gpt_init_weights(g, o.seed));
    CHECK_OK(cllm_gpt_zero_grad(g));
    CHECK_OK(cllm_gpt_forward(g, in, tg, 2 * B, T));
    CHECK_OK(cllm_gpt_backward(g, 1.0f));
    CHECK_OK(cllm_gpt_get_loss(g, &ref_loss));
    CHECK_OK(cllm_gpt_clip_grad_norm(g, 0, &ref_norm));
    /* float sums in another order: the fp32 tolerance */
    CHECK_MSG(test_close(loss, ref_loss, 1e-5, 1e-4), "loss %.9g, one batch %.9g", loss,
              (double)ref_loss);
    CHECK_MSG(test_close(norm, ref_norm, 1e-5, 1e-4), "grad norm %.9g, one batch %.9g", norm,
              (double)ref_norm);
    /* the unweighted mean of the two micro-batch means would be measurably different */
    printf("accumulation: loss %.6f grad norm %.6f == one batch %.6f / %.6f (valid targets %d, "
           "%d)\n",
           loss, norm, (double)ref_loss, (double)ref_norm, valid0, valid1);
    cllm_gpt_free(g);
    cJSON_Delete(j);
    free(m);
    free(mp);
    free(r.ckpt);
    free(a);
}

/* ------------------------------------------------------------------ the overflow guard */

static void test_guard(cllm_runtime *rt) {
    char *data = test_tmpdir("train_guard_data"), *a = test_tmpdir("train_guard");
    write_data(data, 3000, 600, 101, 9);
    cllm_gpt_config cfg = make_cfg(101, 32, 32, 2, 2);
    cllm_gpt_layout lay;
    cllm_gpt_layout_compute(&cfg, &lay);
    /* finite weights but one NaN in the final LayerNorm: every loss is NaN */
    cllm_gpt_opts go = {.max_batch = 1, .max_seq = 32};
    cllm_gpt *g = NULL;
    float *p = malloc(lay.total * sizeof *p);
    CHECK_OK(cllm_gpt_init(&g, rt, &cfg, &go));
    CHECK_OK(cllm_gpt_init_weights(g, 3));
    CHECK_OK(cllm_gpt_get_params(g, p));
    cllm_gpt_free(g);
    p[lay.offset[CLLM_P_LNFW] + 5] = NAN;
    cllm_train_opts o = tiny_opts();
    o.max_skips = 3;
    o.steps = 20;
    run_spec r = {.run = a, .data = data, .cfg = cfg, .o = o, .init = p};
    cllm_status st = run_session(rt, &r);
    CHECK_MSG(st == CLLM_ERR_NUMERIC && strstr(cllm_last_error(), "3 non-finite"), "%s: %s",
              cllm_status_name(st), cllm_last_error());
    char *mp = cllm_path_join(a, "metrics.jsonl"), *m = read_text(mp);
    int skipped = 0, lines = 0;
    for (char *q = m; q && (q = strstr(q, "\"step\"")); q++, lines++)
        ;
    for (char *q = m; q && (q = strstr(q, "\"skipped\":true")); q++)
        skipped++;
    /* step 0 has no validation line: its loss is NaN too, so none is written */
    CHECK_MSG(skipped == 3 && lines == 3 && strstr(m, "\"loss\":null"), "metrics:\n%s", m);
    CHECK(count_entries(a, "step_") == 0);
    /* non-finite weights at a checkpoint are refused, never written */
    char *b = test_tmpdir("train_guard_b");
    r.run = b;
    r.o.steps = 2;
    r.o.max_skips = 10;
    st = run_session(rt, &r);
    CHECK_MSG(st == CLLM_ERR_NUMERIC && strstr(cllm_last_error(), "non-finite values"), "%s: %s",
              cllm_status_name(st), cllm_last_error());
    CHECK(count_entries(b, "step_") == 0 && count_entries(b, ".tmp") == 0);
    printf("guard: %d non-finite steps skipped, then stopped; no checkpoint written\n", skipped);
    free(m);
    free(mp);
    free(p);
    free(r.ckpt);
    free(data);
    free(a);
    free(b);
}

/* ------------------------------------------------------------------ refusals */

static void expect_refusal(cllm_runtime *rt, run_spec *r, cllm_status want, const char *text) {
    cllm_status st = run_session(rt, r);
    CHECK_MSG(st == want && strstr(cllm_last_error(), text), "got %s: '%s', expected %s with '%s'",
              cllm_status_name(st), cllm_last_error(), cllm_status_name(want), text);
}

static void test_refusals(cllm_runtime *rt) {
    char *data = test_tmpdir("train_ref_data"), *a = test_tmpdir("train_ref");
    write_data(data, 3000, 600, 101, 11);
    cllm_gpt_config cfg = make_cfg(101, 32, 32, 2, 2);
    cllm_train_opts o = tiny_opts();
    o.steps = 4;
    char *fresh = cllm_path_join(a, "fresh");
    run_spec r = {.run = fresh, .data = data, .cfg = cfg, .o = o};
    /* nothing is created by a refused run */
    r.o.seq = 33;
    r.o.batch = 4;
    expect_refusal(rt, &r, CLLM_ERR_USAGE, "--seq 33 exceeds the context");
    r.o = o;
    r.cfg = make_cfg(64, 32, 32, 2, 2);
    expect_refusal(rt, &r, CLLM_ERR_USAGE, "holds token id 100 but test config has vocab_size 64");
    r.cfg = cfg;
    /* a tokenizer of more than 256 tokens for a model of 101 */
    char *tj = small_tokenizer();
    r.tokenizer_json = tj;
    expect_refusal(rt, &r, CLLM_ERR_USAGE, "but test config has vocab_size 101");
    r.tokenizer_json = NULL;
    CHECK(!cllm_is_dir(fresh));
    /* resume without a checkpoint */
    r.resume = true;
    expect_refusal(rt, &r, CLLM_ERR_IO, "cannot resume: ");
    r.resume = false;
    /* a real run, then: a fresh run over it, a resume with another batch, changed data */
    CHECK_OK(run_session(rt, &r));
    char *mp = cllm_path_join(fresh, "metrics.jsonl"), *before = read_text(mp);
    expect_refusal(rt, &r, CLLM_ERR_USAGE, "already holds checkpoints");
    r.resume = true;
    r.o.steps = 8;
    r.o.batch = 2;
    expect_refusal(rt, &r, CLLM_ERR_USAGE, "--batch differs");
    r.o.batch = o.batch;
    write_data(data, 3100, 600, 101, 11);
    expect_refusal(rt, &r, CLLM_ERR_USAGE, "changed since the checkpoint");
    char *after = read_text(mp);
    CHECK_MSG(before && after && !strcmp(before, after), "metrics.jsonl changed by refused runs");
    CHECK(count_entries(fresh, "step_") == 1);
    /* a finished run resumed with the same --steps has nothing to do and changes nothing */
    write_data(data, 3000, 600, 101, 11);
    r.o.steps = 4;
    CHECK_OK(run_session(rt, &r));
    free(after);
    after = read_text(mp);
    CHECK(before && after && !strcmp(before, after));
    printf("refusals: seq > context, ids > vocab, tokenizer > vocab, no checkpoint, fresh over a "
           "run, other batch, changed data\n");
    free(tj);
    free(before);
    free(after);
    free(mp);
    free(fresh);
    free(r.ckpt);
    free(data);
    free(a);
}

/* ------------------------------------------------------------------ SIGKILL while saving */

/* Training in a child process (the parent holds no OpenCL state across fork): ckpt_every = 1,
 * so most of its time is spent writing checkpoints. */
static void child_train(const char *run, const char *data, const cllm_gpt_config *cfg,
                        const cllm_train_opts *o, bool resume, int stop_at) {
    cllm_runtime_opts ro = cllm_runtime_opts_default();
    ro.quiet = true;
    cllm_runtime *rt = NULL;
    if (cllm_runtime_init(&rt, &ro) != CLLM_OK) _exit(77);
    run_spec r = {
        .run = run, .data = data, .cfg = *cfg, .o = *o, .resume = resume, .stop_at = stop_at};
    _exit(run_session(rt, &r) == CLLM_OK ? 0 : 3);
}

static bool complete_checkpoint(const char *dir) {
    cllm_checkpoint ck = {0};
    bool ok = cllm_checkpoint_load(dir, true, &ck) == CLLM_OK && ck.adam_m && ck.state_json;
    cllm_checkpoint_clear(&ck);
    return ok;
}

/* Returns the number of kills that hit a save (a temporary step directory was present). */
static int kill_rounds(const char *run, const char *data, const cllm_gpt_config *cfg,
                       const cllm_train_opts *o, int rounds) {
    int mid_save = 0;
    test_rng r = {(uint64_t)getpid()};
    for (int round = 0; round < rounds; round++) {
        char *prev = cllm_checkpoint_latest(run);
        cllm_clear_error();
        long long from = prev ? atoll(strrchr(prev, '_') + 1) : -1;
        pid_t pid = fork();
        if (pid == 0) child_train(run, data, cfg, o, prev != NULL, 0);
        /* let 1-3 saves complete, wait for the next to begin, kill within its first
         * milliseconds */
        long long want = from + 1 + (long long)(test_rng_u64(&r) % 3);
        double t0 = cllm_now();
        for (;;) {
            char *l = cllm_checkpoint_latest(run);
            long long at = l ? atoll(strrchr(l, '_') + 1) : -1;
            free(l);
            if ((at >= want && count_entries(run, ".tmp.step_") > 0) || cllm_now() - t0 > 60) break;
            int status;
            if (waitpid(pid, &status, WNOHANG) == pid) {
                if (WIFEXITED(status) && WEXITSTATUS(status) == 77) exit(77); /* no OpenCL */
                CHECK_MSG(0, "round %d: the trainer exited (status %d) before a save", round,
                          status);
                return mid_save;
            }
            usleep(200);
        }
        usleep((useconds_t)(test_rng_uniform(&r) * 3000));
        kill(pid, SIGKILL);
        int status = 0;
        waitpid(pid, &status, 0);
        CHECK_MSG(WIFSIGNALED(status), "round %d: trainer exited on its own (%d)", round, status);
        mid_save += count_entries(run, ".tmp.step_") > 0;
        char *latest = cllm_checkpoint_latest(run);
        long long now = latest ? atoll(strrchr(latest, '_') + 1) : -1;
        CHECK_MSG(now > from, "round %d: no progress (latest step %lld, before %lld)", round, now,
                  from);
        free(prev);
        CHECK_MSG(latest && complete_checkpoint(latest), "round %d: latest %s does not load", round,
                  latest ? latest : "(none)");
        /* every step directory present is complete */
        DIR *d = opendir(run);
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            if (strncmp(e->d_name, "step_", 5)) continue;
            char *sd = cllm_path_join(run, e->d_name);
            CHECK_MSG(complete_checkpoint(sd), "round %d: %s is incomplete", round, sd);
            free(sd);
        }
        if (d) closedir(d);
        free(latest);
    }
    return mid_save;
}

static void test_killed(void) {
    char *data = test_tmpdir("train_kill_data"), *a = test_tmpdir("train_kill"),
         *ref = test_tmpdir("train_kill_ref");
    /* ~0.9 M parameters: 3.7 MB of weights and 7.4 MB of AdamW moments per save */
    cllm_gpt_config cfg = make_cfg(1000, 16, 128, 4, 4);
    write_data(data, 20000, 600, 1000, 13);
    cllm_train_opts o = tiny_opts();
    o.batch = 2;
    o.seq = 8;
    o.grad_accum = 1;
    o.steps = 60;
    o.ckpt_every = 1;
    o.keep = 2;
    o.eval_every = 10;
    /* A first session that ends by itself after step 2: it also builds the kernels and fills
     * the program caches, which a killed process might never get to write. */
    pid_t pid = fork();
    if (pid == 0) child_train(a, data, &cfg, &o, false, 2);
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77) exit(77); /* no OpenCL platform */
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "first session: status %d", status);
    int rounds = 6, mid = kill_rounds(a, data, &cfg, &o, rounds);
    CHECK_MSG(mid >= 1, "no kill landed inside a save (%d rounds)", rounds);
    /* resume to the end here, and run the same training uninterrupted */
    cllm_runtime *rt = test_runtime();
    run_spec r = {.run = a, .data = data, .cfg = cfg, .o = o, .resume = true};
    r.o.ckpt_every = 20;
    CHECK_OK(run_session(rt, &r));
    run_spec rr = {.run = ref, .data = data, .cfg = cfg, .o = o};
    rr.o.ckpt_every = 20;
    CHECK_OK(run_session(rt, &rr));
    check_same_checkpoint(a, ref, "step_00000060");
    check_same_metrics(a, ref, 1 + 60);
    CHECK(count_entries(a, ".tmp.") == 0);
    printf("killed: %d SIGKILLs during training with a checkpoint every step, %d inside a save; "
           "every checkpoint left loads; resumed, the run ends bitwise as an uninterrupted one\n",
           rounds, mid);
    free(r.ckpt);
    free(rr.ckpt);
    cllm_runtime_free(rt);
    free(data);
    free(a);
    free(ref);
}

int main(void) {
    /* first, while this process holds no OpenCL state to fork */
    test_killed();
    cllm_runtime *rt = test_runtime();
    test_exact_resume(rt);
    test_own_source(rt);
    test_accumulation_weighting(rt);
    test_guard(rt);
    test_refusals(rt);
    cllm_runtime_free(rt);
    return test_exit();
}
