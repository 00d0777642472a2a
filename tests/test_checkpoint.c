/* Checkpoints: bit-exact round trips, the Hugging Face layout checked element by element,
 * loading the PyTorch fixtures as Hugging Face directories (with and without the
 * "transformer." prefix, F16/BF16, lm_head and mask buffers), refusals with clear messages,
 * keep-N pruning, `latest` fallbacks, stale temporary directories, writers killed with SIGKILL
 * at random points, export directories, and llm.c model files. */
#include "testutil.h"

#include "cllm/checkpoint.h"
#include "cllm/llmc.h"
#include "cllm/safetensors.h"
#include "cllm/util.h"

#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static cllm_gpt_config make_cfg(int V, int T, int C, int NH, int L) {
    cllm_gpt_config c = {.vocab_size = V, .n_positions = T, .n_embd = C, .n_layer = L,
                         .n_head = NH, .layer_norm_epsilon = 1e-5f, .initializer_range = 0.02f};
    return c;
}

static size_t total_of(const cllm_gpt_config *c) {
    cllm_gpt_layout lay;
    cllm_gpt_layout_compute(c, &lay);
    return lay.total;
}

/* Random parameters in cllm's layout, wte padding rows zero. */
static float *random_params(const cllm_gpt_config *c, uint64_t seed) {
    size_t n = total_of(c);
    float *p = malloc(n * sizeof *p);
    test_rng r = {seed};
    test_fill_normal(&r, p, n, 0.5f);
    memset(p + (size_t)c->vocab_size * c->n_embd, 0,
           (size_t)(cllm_gpt_padded_vocab(c) - c->vocab_size) * c->n_embd * sizeof *p);
    return p;
}

static bool same(const float *a, const float *b, size_t n) {
    return a && b && memcmp(a, b, n * sizeof *a) == 0;
}

static bool err_has(const char *needle) {
    bool ok = strstr(cllm_last_error(), needle) != NULL;
    if (!ok) fprintf(stderr, "  error was: %s\n  expected to contain: %s\n", cllm_last_error(), needle);
    return ok;
}

static char *path2(const char *a, const char *b) { return cllm_path_join(a, b); }

static bool exists(const char *dir, const char *name) {
    char *p = path2(dir, name);
    bool ok = cllm_is_dir(p) || cllm_is_file(p);
    free(p);
    return ok;
}

/* Entries of `dir` whose name contains `needle`. */
static int count_entries(const char *dir, const char *needle) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (strstr(e->d_name, needle)) n++;
    if (d) closedir(d);
    return n;
}

/* ------------------------------------------------------------------ round trip + layout */

static void test_round_trip(void) {
    char *run = test_tmpdir("ckpt_rt");
    cllm_gpt_config c = make_cfg(203, 19, 24, 3, 2);
    size_t n = total_of(&c);
    float *p = random_params(&c, 1), *m = random_params(&c, 2), *v = random_params(&c, 3);
    for (size_t i = 0; i < n; i++) v[i] = v[i] * v[i];
    char *config = cllm_gpt_config_to_json(&c);
    /* a caller's extra key (a chat template) must survive */
    char *config2 = cllm_strdup_printf("{\"chat_template\": \"<|user|>\\n{x}\",%s", config + 1);
    cllm_checkpoint ck = {.cfg = c, .params = p, .adam_m = m, .adam_v = v,
                          .config_json = config2,
                          .state_json = "{\"step\": 5, \"rng\": [1, 2], \"cursor\": 1234}",
                          .tokenizer_json = "{\"model\": {\"type\": \"BPE\"}}"};
    char *dir = NULL;
    CHECK_OK(cllm_checkpoint_save(run, 5, &ck, 0, &dir));
    char *want_dir = path2(run, "step_00000005");
    CHECK(dir && !strcmp(dir, want_dir));
    char *latest = NULL, *lp = path2(run, "latest");
    CHECK_OK(cllm_read_file(lp, &latest, NULL));
    CHECK(latest && !strcmp(latest, "step_00000005\n"));
    const char *paths[] = {run, want_dir};
    for (int k = 0; k < 2; k++) {
        cllm_checkpoint in = {0};
        CHECK_OK(cllm_checkpoint_load(paths[k], true, &in));
        CHECK(!memcmp(&in.cfg, &c, sizeof c));
        CHECK(same(in.params, p, n) && same(in.adam_m, m, n) && same(in.adam_v, v, n));
        CHECK(in.config_json && strstr(in.config_json, "chat_template"));
        CHECK(in.state_json && strstr(in.state_json, "\"cursor\": 1234"));
        CHECK(in.tokenizer_json && strstr(in.tokenizer_json, "BPE"));
        cllm_checkpoint_clear(&in);
        CHECK(in.params == NULL && in.config_json == NULL);
    }
    cllm_checkpoint in = {0};
    CHECK_OK(cllm_checkpoint_load(run, false, &in));
    CHECK(in.adam_m == NULL && in.adam_v == NULL && same(in.params, p, n));
    cllm_checkpoint_clear(&in);
    cllm_checkpoint_clear(NULL);

    /* The files, read independently of the loader: HF names, HF shapes, (in, out) Conv1D. */
    char *mp = path2(want_dir, "model.safetensors"), *op = path2(want_dir, "optimizer.safetensors");
    cllm_safetensors *st = NULL;
    CHECK_OK(cllm_safetensors_open(&st, mp));
    if (st) {
        const int C = 24, L = 2, V = 203;
        CHECK(cllm_safetensors_count(st) == 2 + 12 * L + 2);
        CHECK(!strcmp(cllm_safetensors_metadata(st, "format"), "pt"));
        CHECK(cllm_safetensors_find(st, "lm_head.weight") == NULL);
        const cllm_st_tensor *w = cllm_safetensors_find(st, "transformer.wte.weight");
        CHECK(w && w->dtype == CLLM_ST_F32 && w->shape[0] == V && w->shape[1] == C);
        cllm_gpt_layout lay;
        cllm_gpt_layout_compute(&c, &lay);
        /* h.1.attn.c_attn.weight is (C, 3C): element [i][o] = cllm qkvw[1][o][i] */
        const cllm_st_tensor *a = cllm_safetensors_find(st, "transformer.h.1.attn.c_attn.weight");
        CHECK(a && a->ndim == 2 && a->shape[0] == C && a->shape[1] == 3 * C);
        float *buf = malloc((size_t)C * 4 * C * sizeof *buf);
        if (a && cllm_safetensors_read_f32(st, a, buf) == CLLM_OK) {
            int bad = 0;
            for (int i = 0; i < C; i++)
                for (int o = 0; o < 3 * C; o++)
                    bad += buf[i * 3 * C + o] !=
                           p[lay.offset[CLLM_P_QKVW] + (size_t)3 * C * C + (size_t)o * C + i];
            CHECK_MSG(bad == 0, "%d c_attn elements misplaced", bad);
        }
        /* h.0.mlp.c_proj.weight is (4C, C): element [i][o] = cllm fcprojw[0][o][i] */
        const cllm_st_tensor *f = cllm_safetensors_find(st, "transformer.h.0.mlp.c_proj.weight");
        CHECK(f && f->shape[0] == 4 * C && f->shape[1] == C);
        if (f && cllm_safetensors_read_f32(st, f, buf) == CLLM_OK) {
            int bad = 0;
            for (int i = 0; i < 4 * C; i++)
                for (int o = 0; o < C; o++)
                    bad += buf[i * C + o] != p[lay.offset[CLLM_P_FCPROJW] + (size_t)o * 4 * C + i];
            CHECK_MSG(bad == 0, "%d c_proj elements misplaced", bad);
        }
        const cllm_st_tensor *b = cllm_safetensors_find(st, "transformer.h.1.ln_2.bias");
        if (b && cllm_safetensors_read_f32(st, b, buf) == CLLM_OK)
            CHECK(same(buf, p + lay.offset[CLLM_P_LN2B] + C, (size_t)C));
        free(buf);
        cllm_safetensors_free(st);
    }
    CHECK_OK(cllm_safetensors_open(&st, op));
    if (st) {
        CHECK(cllm_safetensors_find(st, "exp_avg.h.0.ln_1.weight") != NULL);
        CHECK(cllm_safetensors_find(st, "exp_avg_sq.ln_f.bias") != NULL);
        CHECK(cllm_safetensors_count(st) == 2 * (2 + 12 * 2 + 2));
        cllm_safetensors_free(st);
    }

    /* Bad input to save: nothing written. */
    cllm_checkpoint badck = ck;
    badck.config_json = "{\"vocab_size\": 203, \"n_positions\": 19, \"n_embd\": 24, \"n_layer\": 3,"
                        " \"n_head\": 3}";
    CHECK(cllm_checkpoint_save(run, 6, &badck, 0, NULL) == CLLM_ERR_USAGE);
    CHECK(err_has("\"n_layer\": 3 but the model has 2"));
    badck = ck;
    badck.state_json = "[1]";
    CHECK(cllm_checkpoint_save(run, 6, &badck, 0, NULL) == CLLM_ERR_USAGE);
    badck = ck;
    badck.adam_v = NULL;
    CHECK(cllm_checkpoint_save(run, 6, &badck, 0, NULL) == CLLM_ERR_USAGE);
    badck = ck;
    float keep = p[100];
    p[100] = NAN;
    CHECK(cllm_checkpoint_save(run, 6, &badck, 0, NULL) == CLLM_ERR_NUMERIC);
    CHECK(err_has("non-finite"));
    p[100] = keep;
    CHECK(!exists(run, "step_00000006") && count_entries(run, ".tmp") == 0);
    free(latest);
    CHECK_OK(cllm_read_file(lp, &latest, NULL));
    CHECK(latest && !strcmp(latest, "step_00000005\n"));

    free(latest);
    free(lp);
    free(mp);
    free(op);
    free(dir);
    free(want_dir);
    free(config);
    free(config2);
    free(p);
    free(m);
    free(v);
    free(run);
}

/* ------------------------------------------------------------------ fixtures as HF dirs */

typedef struct {
    cllm_safetensors *st;
    cllm_gpt_config cfg;
    char *config_json;
} fixture;

static bool open_fixture(fixture *fx, const char *name) {
    memset(fx, 0, sizeof *fx);
    char *path = test_fixture(name);
    if (!path) return false;
    cllm_status s = cllm_safetensors_open(&fx->st, path);
    CHECK_OK(s);
    free(path);
    if (s != CLLM_OK) return false;
    const char *cj = cllm_safetensors_metadata(fx->st, "config");
    CHECK(cj != NULL);
    if (!cj) return false;
    fx->config_json = strdup(cj);
    CHECK_OK(cllm_gpt_config_parse(cj, name, &fx->cfg));
    return true;
}

static void close_fixture(fixture *fx) {
    cllm_safetensors_free(fx->st);
    free(fx->config_json);
}

typedef enum { PLAIN, PREFIXED, AS_F16, AS_BF16 } hf_style;

typedef struct {
    float **data; /* per entry, float32 values (converted by the fill) */
    cllm_st_dtype dtype;
} hf_fill;

static cllm_status fill_conv(void *user, int i, void *dst, size_t bytes) {
    hf_fill *h = user;
    size_t es = cllm_st_dtype_size(h->dtype), n = bytes / es;
    unsigned char *d = dst;
    for (size_t k = 0; k < n; k++) {
        uint32_t u;
        float f = h->data[i][k];
        if (h->dtype == CLLM_ST_F32)
            memcpy(&u, &f, 4);
        else if (h->dtype == CLLM_ST_F16)
            u = cllm_f32_to_f16(f);
        else
            u = cllm_f32_to_bf16(f);
        for (size_t b = 0; b < es; b++) d[k * es + b] = (unsigned char)(u >> (8 * b));
    }
    return CLLM_OK;
}

/* Write the fixture's initial weights as a Hugging Face directory. `drop`: a tensor to leave
 * out; `extra_*`: more tensors (HF name, float data) such as lm_head or mask buffers. */
static void write_hf_dir(const fixture *fx, const char *dir, hf_style style, const char *drop,
                         const char *config_json) {
    cllm_mkdirs(dir);
    int n = cllm_gpt_hf_tensor_count(&fx->cfg);
    cllm_st_entry *e = calloc((size_t)n + 4, sizeof *e);
    float **data = calloc((size_t)n + 4, sizeof *data);
    char(*names)[96] = calloc((size_t)n + 4, 96);
    int k = 0;
    cllm_st_dtype dt = style == AS_F16 ? CLLM_ST_F16 : style == AS_BF16 ? CLLM_ST_BF16 : CLLM_ST_F32;
    for (int i = 0; i < n; i++) {
        cllm_gpt_hf_tensor_info t;
        cllm_gpt_hf_tensor(&fx->cfg, i, &t);
        if (drop && !strcmp(drop, t.name)) continue;
        const cllm_st_tensor *src = cllm_safetensors_find(fx->st, t.name);
        data[k] = malloc(src->numel * sizeof(float));
        cllm_safetensors_read_f32(fx->st, src, data[k]);
        snprintf(names[k], 96, "%s%s", style == PREFIXED ? "transformer." : "", t.name);
        e[k] = (cllm_st_entry){names[k], dt, src->ndim, {src->shape[0], src->shape[1]}, NULL};
        k++;
    }
    if (style == PREFIXED) { /* as older GPT-2 files: mask buffers, and the tied head */
        const cllm_st_tensor *w = cllm_safetensors_find(fx->st, "wte.weight");
        data[k] = malloc(w->numel * sizeof(float));
        cllm_safetensors_read_f32(fx->st, w, data[k]);
        snprintf(names[k], 96, "lm_head.weight");
        e[k] = (cllm_st_entry){names[k], CLLM_ST_F32, 2, {w->shape[0], w->shape[1]}, NULL};
        k++;
        int T = fx->cfg.n_positions;
        data[k] = calloc((size_t)T * T, sizeof(float));
        snprintf(names[k], 96, "transformer.h.0.attn.bias");
        e[k] = (cllm_st_entry){names[k], CLLM_ST_F32, 4, {1, 1, T, T}, NULL};
        k++;
    }
    hf_fill hf = {data, dt};
    const cllm_st_meta meta[] = {{"format", "pt"}};
    char *mp = path2(dir, "model.safetensors"), *cp = path2(dir, "config.json");
    CHECK_OK(cllm_safetensors_save(mp, e, k, meta, 1, fill_conv, &hf));
    const char *cj = config_json ? config_json : fx->config_json;
    CHECK_OK(cllm_write_file_atomic(cp, cj, strlen(cj)));
    for (int i = 0; i < k; i++) free(data[i]);
    free(data);
    free(names);
    free(e);
    free(mp);
    free(cp);
}

/* binary16 by its formula: independent of the library's conversion. */
static float f16_value(uint16_t h) {
    int s = h >> 15, ex = (h >> 10) & 31, m = h & 1023;
    double v = ex == 0 ? ldexp(m, -24) : ldexp(1024 + m, ex - 25);
    return (float)(s ? -v : v);
}

/* Every fixture tensor must sit in the loaded params where the layout says (the layer table is
 * restated here on purpose, so that a mistake in gpt_config.c cannot hide), transposed by
 * explicit index arithmetic; `round` maps the stored float to what the file held. */
static int compare_to_fixture(const fixture *fx, const float *params, int round) {
    cllm_gpt_layout lay;
    cllm_gpt_layout_compute(&fx->cfg, &lay);
    const int C = fx->cfg.n_embd, L = fx->cfg.n_layer;
    int bad = 0;
    static const struct {
        const char *suffix;
        int param, rows, cols; /* cllm (rows, cols) in units of C; 0 cols = 1-D */
        bool conv;
    } per[] = {{"ln_1.weight", CLLM_P_LN1W, 1, 0, false},
               {"ln_1.bias", CLLM_P_LN1B, 1, 0, false},
               {"attn.c_attn.weight", CLLM_P_QKVW, 3, 1, true},
               {"attn.c_attn.bias", CLLM_P_QKVB, 3, 0, false},
               {"attn.c_proj.weight", CLLM_P_ATTPROJW, 1, 1, true},
               {"attn.c_proj.bias", CLLM_P_ATTPROJB, 1, 0, false},
               {"ln_2.weight", CLLM_P_LN2W, 1, 0, false},
               {"ln_2.bias", CLLM_P_LN2B, 1, 0, false},
               {"mlp.c_fc.weight", CLLM_P_FCW, 4, 1, true},
               {"mlp.c_fc.bias", CLLM_P_FCB, 4, 0, false},
               {"mlp.c_proj.weight", CLLM_P_FCPROJW, 1, 4, true},
               {"mlp.c_proj.bias", CLLM_P_FCPROJB, 1, 0, false}};
    float *buf = malloc((size_t)4 * C * C * sizeof *buf + (size_t)fx->cfg.vocab_size * C * 4);
#define ROUNDED(x) (round == 1 ? f16_value(cllm_f32_to_f16(x)) : round == 2 ? cllm_bf16_to_f32(cllm_f32_to_bf16(x)) : (x))
    for (int l = 0; l < L; l++)
        for (size_t k = 0; k < sizeof per / sizeof *per; k++) {
            char name[64];
            snprintf(name, sizeof name, "h.%d.%s", l, per[k].suffix);
            const cllm_st_tensor *t = cllm_safetensors_find(fx->st, name);
            cllm_safetensors_read_f32(fx->st, t, buf);
            int rows = per[k].rows * C, cols = per[k].cols ? per[k].cols * C : 1;
            const float *dst = params + lay.offset[per[k].param] + (size_t)l * rows * cols;
            for (int r = 0; r < rows; r++)
                for (int cc = 0; cc < cols; cc++) {
                    float want = per[k].conv ? buf[cc * rows + r] : buf[r * cols + cc];
                    bad += dst[r * cols + cc] != ROUNDED(want);
                }
        }
    const char *flat[] = {"wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias"};
    const int fp[] = {CLLM_P_WTE, CLLM_P_WPE, CLLM_P_LNFW, CLLM_P_LNFB};
    for (int k = 0; k < 4; k++) {
        const cllm_st_tensor *t = cllm_safetensors_find(fx->st, flat[k]);
        cllm_safetensors_read_f32(fx->st, t, buf);
        for (size_t i = 0; i < t->numel; i++) bad += params[lay.offset[fp[k]] + i] != ROUNDED(buf[i]);
    }
#undef ROUNDED
    /* wte's padding rows are zero */
    for (size_t i = (size_t)fx->cfg.vocab_size * C; i < lay.numel[CLLM_P_WTE]; i++)
        bad += params[i] != 0.0f;
    free(buf);
    return bad;
}

static void test_fixture_dirs(void) {
    const char *names[] = {"gpt_tiny.safetensors", "gpt_small.safetensors"};
    for (int f = 0; f < 2; f++) {
        fixture fx;
        if (!open_fixture(&fx, names[f])) continue;
        char *base = test_tmpdir(f == 0 ? "ckpt_fx_tiny" : "ckpt_fx_small");
        size_t n = total_of(&fx.cfg);
        static const hf_style styles[] = {PLAIN, PREFIXED, AS_F16, AS_BF16};
        static const char *sub[] = {"plain", "prefixed", "f16", "bf16"};
        float *plain = NULL;
        for (int s = 0; s < 4; s++) {
            char *dir = path2(base, sub[s]);
            write_hf_dir(&fx, dir, styles[s], NULL, NULL);
            cllm_checkpoint ck = {0};
            CHECK_OK(cllm_checkpoint_load(dir, true, &ck));
            if (ck.params) {
                int bad = compare_to_fixture(&fx, ck.params, s == 2 ? 1 : s == 3 ? 2 : 0);
                CHECK_MSG(bad == 0, "%s/%s: %d values differ from the fixture", names[f], sub[s],
                          bad);
                CHECK(ck.adam_m == NULL && ck.state_json == NULL && ck.tokenizer_json == NULL);
                if (s == 0) {
                    plain = ck.params;
                    ck.params = NULL;
                } else if (s == 1) {
                    CHECK(same(ck.params, plain, n));
                }
            }
            cllm_checkpoint_clear(&ck);
            free(dir);
        }
        /* the model file named directly */
        char *file = cllm_strdup_printf("%s/plain/model.safetensors", base);
        cllm_checkpoint ck = {0};
        CHECK_OK(cllm_checkpoint_load(file, false, &ck));
        CHECK(same(ck.params, plain, n));
        /* a cllm checkpoint made from it round-trips exactly */
        char *run = path2(base, "run");
        CHECK_OK(cllm_checkpoint_save(run, 0, &ck, 1, NULL));
        cllm_checkpoint again = {0};
        CHECK_OK(cllm_checkpoint_load(run, false, &again));
        CHECK(same(again.params, plain, n));
        CHECK(again.config_json && !strcmp(again.config_json, ck.config_json));
        cllm_checkpoint_clear(&again);
        /* and exported as F32 it is the same model again; as F16 each value rounds once */
        char *exp = path2(base, "export"), *exp16 = path2(base, "export16");
        CHECK_OK(cllm_checkpoint_write_hf(exp, &ck, CLLM_ST_F32, false));
        CHECK_OK(cllm_checkpoint_load(exp, false, &again));
        CHECK(same(again.params, plain, n));
        cllm_checkpoint_clear(&again);
        CHECK_OK(cllm_checkpoint_write_hf(exp16, &ck, CLLM_ST_F16, false));
        CHECK_OK(cllm_checkpoint_load(exp16, false, &again));
        if (again.params) CHECK(compare_to_fixture(&fx, again.params, 1) == 0);
        CHECK(again.config_json && strstr(again.config_json, "\"torch_dtype\":\t\"float16\""));
        cllm_checkpoint_clear(&again);
        /* an existing directory is refused, or replaced with overwrite */
        CHECK(cllm_checkpoint_write_hf(exp, &ck, CLLM_ST_F32, false) == CLLM_ERR_USAGE);
        CHECK(err_has("already exists"));
        CHECK_OK(cllm_checkpoint_write_hf(exp, &ck, CLLM_ST_BF16, true));
        CHECK_OK(cllm_checkpoint_load(exp, false, &again));
        if (again.params) CHECK(compare_to_fixture(&fx, again.params, 2) == 0);
        cllm_checkpoint_clear(&again);
        CHECK(count_entries(base, ".tmp.") == 0 && count_entries(base, ".old.") == 0);
        cllm_checkpoint_clear(&ck);
        free(exp);
        free(exp16);
        free(run);
        free(file);
        free(plain);
        free(base);
        close_fixture(&fx);
    }
}

/* ------------------------------------------------------------------ refusals */

static void expect_load_fails(const char *dir, cllm_status want, const char *needle) {
    cllm_checkpoint ck = {0};
    cllm_status s = cllm_checkpoint_load(dir, true, &ck);
    CHECK_MSG(s == want, "%s: got %s, want %s", dir, cllm_status_name(s), cllm_status_name(want));
    CHECK_MSG(strstr(cllm_last_error(), needle) != NULL, "%s: message '%s' lacks '%s'", dir,
              cllm_last_error(), needle);
    CHECK(!strchr(cllm_last_error(), '\n'));
    CHECK(ck.params == NULL && ck.config_json == NULL);
}

static void test_refusals(void) {
    fixture fx;
    if (!open_fixture(&fx, "gpt_tiny.safetensors")) return;
    char *base = test_tmpdir("ckpt_bad");
    char *d;
    d = path2(base, "missing");
    write_hf_dir(&fx, d, PLAIN, "h.1.mlp.c_fc.bias", NULL);
    expect_load_fails(d, CLLM_ERR_FORMAT, "tensor \"h.1.mlp.c_fc.bias\" is missing");
    free(d);

    /* config says 3 layers: h.2.* missing; config says 1 layer: h.1.* unexpected */
    char *c3 = strdup(fx.config_json), *c1 = strdup(fx.config_json);
    char *q = strstr(c3, "\"n_layer\": 2");
    CHECK(q != NULL);
    if (q) q[11] = '3';
    q = strstr(c1, "\"n_layer\": 2");
    if (q) q[11] = '1';
    d = path2(base, "layers3");
    write_hf_dir(&fx, d, PLAIN, NULL, c3);
    expect_load_fails(d, CLLM_ERR_FORMAT, "tensor \"h.2.ln_1.weight\" is missing");
    free(d);
    d = path2(base, "layers1");
    write_hf_dir(&fx, d, PLAIN, NULL, c1);
    expect_load_fails(d, CLLM_ERR_FORMAT, "unexpected tensor \"h.1.ln_1.weight\"");
    free(d);
    /* n_embd that disagrees with the shapes */
    char *ce = strdup(fx.config_json);
    q = strstr(ce, "\"n_embd\": 24");
    CHECK(q != NULL);
    if (q) memcpy(q + 10, "48", 2);
    d = path2(base, "embd");
    write_hf_dir(&fx, d, PLAIN, NULL, ce);
    expect_load_fails(d, CLLM_ERR_FORMAT,
                      "tensor \"wte.weight\" has shape [203, 24] but config.json (vocab_size 203, "
                      "n_positions 19, n_embd 48) needs [203, 48]");
    free(d);

    /* a truncated model file; a model file with a NaN; an untied lm_head; integer weights */
    d = path2(base, "trunc");
    write_hf_dir(&fx, d, PLAIN, NULL, NULL);
    char *mp = path2(d, "model.safetensors"), *raw = NULL;
    size_t len = 0;
    cllm_read_file(mp, &raw, &len);
    cllm_write_file_atomic(mp, raw, len - 5);
    expect_load_fails(d, CLLM_ERR_FORMAT, "model.safetensors: tensor");
    CHECK(err_has("file truncated?"));
    free(mp);
    free(d);
    d = path2(base, "nan");
    write_hf_dir(&fx, d, PLAIN, NULL, NULL);
    mp = path2(d, "model.safetensors");
    free(raw);
    cllm_read_file(mp, &raw, &len);
    memcpy(raw + len - 4, "\x00\x00\xc0\x7f", 4); /* last float of the file: ln_f.bias */
    cllm_write_file_atomic(mp, raw, len);
    expect_load_fails(d, CLLM_ERR_NUMERIC, "\"ln_f.bias\" holds non-finite values");
    free(mp);
    free(d);
    {
        d = path2(base, "untied");
        cllm_mkdirs(d);
        int n = cllm_gpt_hf_tensor_count(&fx.cfg);
        cllm_st_entry *e = calloc((size_t)n + 1, sizeof *e);
        void **bufs = calloc((size_t)n + 1, sizeof *bufs);
        for (int i = 0; i < n; i++) {
            const cllm_st_tensor *t = cllm_safetensors_tensor(fx.st, i);
            bufs[i] = malloc(t->end - t->begin);
            cllm_safetensors_read_raw(fx.st, t, bufs[i]);
            e[i] = (cllm_st_entry){t->name, t->dtype, t->ndim, {t->shape[0], t->shape[1]}, bufs[i]};
        }
        const cllm_st_tensor *w = cllm_safetensors_find(fx.st, "wte.weight");
        float *head = malloc(w->end - w->begin);
        cllm_safetensors_read_f32(fx.st, w, head);
        head[7] += 1.0f;
        e[n] = (cllm_st_entry){"lm_head.weight", CLLM_ST_F32, 2, {w->shape[0], w->shape[1]}, head};
        mp = path2(d, "model.safetensors");
        CHECK_OK(cllm_safetensors_save(mp, e, n + 1, NULL, 0, NULL, NULL));
        char *cp = path2(d, "config.json");
        cllm_write_file_atomic(cp, fx.config_json, strlen(fx.config_json));
        expect_load_fails(d, CLLM_ERR_UNSUPPORTED, "\"lm_head.weight\" differs from wte.weight");
        /* the same file with an integer dtype for one weight */
        int32_t *ints = calloc(w->numel, sizeof *ints);
        e[0] = (cllm_st_entry){"wte.weight", CLLM_ST_I32, 2, {w->shape[0], w->shape[1]}, ints};
        CHECK_OK(cllm_safetensors_save(mp, e, n, NULL, 0, NULL, NULL));
        expect_load_fails(d, CLLM_ERR_FORMAT, "\"wte.weight\" has dtype I32");
        free(ints);
        free(cp);
        free(mp);
        free(head);
        for (int i = 0; i < n; i++) free(bufs[i]);
        free(bufs);
        free(e);
        free(d);
    }
    /* a bad config.json; no config.json; pytorch_model.bin only; an empty directory; a missing
     * path; a file that is not safetensors */
    d = path2(base, "badconfig");
    write_hf_dir(&fx, d, PLAIN, NULL, "{\"vocab_size\": 203}");
    expect_load_fails(d, CLLM_ERR_FORMAT, "config.json: missing key \"n_positions\"");
    char *cp = path2(d, "config.json");
    unlink(cp);
    expect_load_fails(d, CLLM_ERR_FORMAT, "no config.json beside the weights");
    free(cp);
    free(d);
    d = path2(base, "torch");
    cllm_mkdirs(d);
    char *pt = path2(d, "pytorch_model.bin");
    cllm_write_file_atomic(pt, "PK", 2);
    expect_load_fails(d, CLLM_ERR_UNSUPPORTED, "has pytorch_model.bin but no model.safetensors");
    expect_load_fails(pt, CLLM_ERR_FORMAT, "not a checkpoint");
    free(pt);
    free(d);
    d = path2(base, "empty");
    cllm_mkdirs(d);
    expect_load_fails(d, CLLM_ERR_FORMAT, "not a checkpoint");
    free(d);
    d = path2(base, "nonexistent");
    expect_load_fails(d, CLLM_ERR_IO, "no such checkpoint");
    free(d);
    free(raw);
    free(c3);
    free(c1);
    free(ce);
    free(base);
    close_fixture(&fx);
}

/* ------------------------------------------------------------------ runs: keep, latest, stale */

static void fill_pattern(float *p, size_t n, long long step, const cllm_gpt_config *c) {
    for (size_t i = 0; i < n; i++) p[i] = (float)step + (float)(i % 1021) * 1e-3f;
    memset(p + (size_t)c->vocab_size * c->n_embd, 0,
           (size_t)(cllm_gpt_padded_vocab(c) - c->vocab_size) * c->n_embd * sizeof *p);
}

/* The checkpoint at `dir` holds step `step`'s pattern (params, m = 2p, v = 3p, state). */
static bool holds_step(const char *dir, long long step, const cllm_gpt_config *c) {
    size_t n = total_of(c);
    float *want = malloc(n * sizeof *want);
    fill_pattern(want, n, step, c);
    cllm_checkpoint ck = {0};
    bool ok = cllm_checkpoint_load(dir, true, &ck) == CLLM_OK && same(ck.params, want, n) &&
              ck.adam_m && ck.adam_v;
    for (size_t i = 0; ok && i < n; i++)
        ok = ck.adam_m[i] == 2 * want[i] && ck.adam_v[i] == 3 * want[i];
    char tag[64];
    snprintf(tag, sizeof tag, "\"step\": %lld}", step);
    ok = ok && ck.state_json && strstr(ck.state_json, tag);
    if (!ok) fprintf(stderr, "  %s does not hold step %lld: %s\n", dir, step, cllm_last_error());
    cllm_checkpoint_clear(&ck);
    free(want);
    return ok;
}

static cllm_status save_step(const char *run, long long step, const cllm_gpt_config *c, int keep) {
    size_t n = total_of(c);
    float *p = malloc(n * sizeof *p), *m = malloc(n * sizeof *m), *v = malloc(n * sizeof *v);
    fill_pattern(p, n, step, c);
    for (size_t i = 0; i < n; i++) {
        m[i] = 2 * p[i];
        v[i] = 3 * p[i];
    }
    char *state = cllm_strdup_printf("{\"step\": %lld}", step);
    cllm_checkpoint ck = {.cfg = *c, .params = p, .adam_m = m, .adam_v = v, .state_json = state};
    cllm_status s = cllm_checkpoint_save(run, step, &ck, keep, NULL);
    free(state);
    free(p);
    free(m);
    free(v);
    return s;
}

static long long latest_step(const char *run) {
    char *d = cllm_checkpoint_latest(run);
    if (!d) return -1;
    const char *b = strrchr(d, '/');
    long long s = b ? atoll(b + 6) : -1;
    free(d);
    return s;
}

static void test_runs(void) {
    char *run = test_tmpdir("ckpt_keep");
    cllm_gpt_config c = make_cfg(67, 9, 12, 2, 1);
    CHECK(cllm_checkpoint_latest(run) == NULL && err_has("no checkpoint"));
    for (int s = 1; s <= 6; s++) CHECK_OK(save_step(run, s * 10, &c, 3));
    CHECK(count_entries(run, "step_") == 3);
    CHECK(exists(run, "step_00000040") && exists(run, "step_00000050") &&
          exists(run, "step_00000060"));
    CHECK(latest_step(run) == 60);
    CHECK(holds_step(run, 60, &c));
    /* re-saving a step replaces it */
    CHECK_OK(save_step(run, 60, &c, 3));
    CHECK(holds_step(run, 60, &c) && count_entries(run, "step_") == 3);
    /* resumed from step 40: saving 45 keeps 45 and 40 (keep 2), never the higher 50, 60 */
    CHECK_OK(save_step(run, 45, &c, 2));
    CHECK(latest_step(run) == 45 && holds_step(run, 45, &c));
    CHECK(exists(run, "step_00000040") && exists(run, "step_00000050") &&
          exists(run, "step_00000060") && count_entries(run, "step_") == 4);
    /* keep <= 0 keeps everything */
    CHECK_OK(save_step(run, 70, &c, 0));
    CHECK(count_entries(run, "step_") == 5);
    CHECK(count_entries(run, ".old.") == 0 && count_entries(run, ".tmp.") == 0);

    /* `latest` fallbacks: garbage, a missing directory, an incomplete one, no file at all */
    char *lp = path2(run, "latest");
    cllm_write_file_atomic(lp, "garbage\n", 8);
    CHECK(latest_step(run) == 70);
    cllm_write_file_atomic(lp, "step_00000099\n", 14);
    CHECK(latest_step(run) == 70);
    char *inc = path2(run, "step_00000080");
    cllm_mkdirs(inc);
    char *incc = path2(inc, "config.json");
    cllm_write_file_atomic(incc, "{}", 2);
    cllm_write_file_atomic(lp, "step_00000080\n", 14);
    CHECK(latest_step(run) == 70);
    unlink(lp);
    CHECK(latest_step(run) == 70);
    CHECK(holds_step(run, 70, &c));

    /* A writer killed mid-save leaves .tmp.step_* behind: ignored, then cleaned by the next
     * save (its pid is gone). A temporary of a live process (our parent) is left alone. */
    char *stale = cllm_strdup_printf("%s/.tmp.step_00000090.%d", run, 0x3ffffe);
    char *live = cllm_strdup_printf("%s/.tmp.step_00000091.%ld", run, (long)getppid());
    cllm_mkdirs(stale);
    cllm_mkdirs(live);
    char *sm = path2(stale, "model.safetensors"), *sc = path2(stale, "config.json");
    cllm_write_file_atomic(sm, "junk", 4);
    cllm_write_file_atomic(sc, "{}", 2);
    CHECK(latest_step(run) == 70);
    CHECK_OK(save_step(run, 75, &c, 0));
    CHECK(!cllm_is_dir(stale) && cllm_is_dir(live));
    cllm_remove_tree(live);
    CHECK(latest_step(run) == 75);
    free(sm);
    free(sc);
    free(stale);
    free(live);
    free(incc);
    free(inc);
    free(lp);
    free(run);
}

/* ------------------------------------------------------------------ SIGKILL mid-save */

static void test_killed_writers(void) {
    char *run = test_tmpdir("ckpt_kill");
    /* ~1.4 M parameters: 5.6 MB of model, 11 MB of optimizer state per save */
    cllm_gpt_config c = make_cfg(4000, 256, 128, 4, 4);
    double t0 = cllm_now();
    CHECK_OK(save_step(run, 0, &c, 2));
    double save_s = cllm_now() - t0;
    test_rng r = {(uint64_t)time(NULL)};
    long long next = 1;
    int rounds = 12, kills_mid = 0;
    for (int round = 0; round < rounds; round++) {
        pid_t pid = fork();
        if (pid == 0) {
            for (long long s = next;; s++)
                if (save_step(run, s, &c, 2) != CLLM_OK) _exit(3);
        }
        /* kill somewhere in the first few saves */
        useconds_t us = (useconds_t)(test_rng_uniform(&r) * 2.5 * save_s * 1e6);
        usleep(us);
        kill(pid, SIGKILL);
        int status = 0;
        waitpid(pid, &status, 0);
        CHECK_MSG(WIFSIGNALED(status), "writer exited on its own (status %d)", status);
        kills_mid += count_entries(run, ".tmp.") > 0 || count_entries(run, ".old.") > 0;
        long long l = latest_step(run);
        CHECK_MSG(l >= next - 1, "round %d: latest is step %lld, expected >= %lld", round, l,
                  next - 1);
        CHECK(holds_step(run, l, &c));
        /* every step directory present is complete and consistent */
        DIR *d = opendir(run);
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            if (strncmp(e->d_name, "step_", 5)) continue;
            char *sd = path2(run, e->d_name);
            CHECK_MSG(holds_step(sd, atoll(e->d_name + 5), &c), "%s", sd);
            free(sd);
        }
        if (d) closedir(d);
        next = l + 1;
    }
    /* the next save cleans every leftover of the killed writers */
    CHECK_OK(save_step(run, next, &c, 2));
    CHECK(count_entries(run, ".tmp.") == 0 && count_entries(run, ".old.") == 0);
    CHECK(count_entries(run, "step_") == 2 && latest_step(run) == next);
    printf("killed writers: %d rounds, %d left temporaries behind, %lld saves completed, one save "
           "%.3f s\n",
           rounds, kills_mid, next, save_s);
    free(run);
}

/* ------------------------------------------------------------------ llm.c files */

static uint32_t word_at(const char *raw, size_t i) {
    uint32_t u;
    memcpy(&u, raw + 4 * i, 4);
    return u;
}

static void test_llmc(void) {
    char *dir = test_tmpdir("ckpt_llmc");
    cllm_gpt_config c = make_cfg(203, 19, 24, 3, 2);
    size_t n = total_of(&c);
    float *p = random_params(&c, 9);
    char *path = path2(dir, "model.bin"), *raw = NULL;
    CHECK_OK(cllm_llmc_save(path, &c, p, false));
    size_t len = 0;
    CHECK_OK(cllm_read_file(path, &raw, &len));
    /* header and placement, independently of the reader */
    CHECK(len == 1024 + n * 4);
    const uint32_t hdr[8] = {20240326, 3, 19, 203, 2, 3, 24, 256};
    for (int i = 0; i < 8; i++) CHECK_MSG(word_at(raw, (size_t)i) == hdr[i], "header[%d]", i);
    float f;
    uint32_t u = word_at(raw, 256 + 256 * 24); /* wpe[0][0] after Vp = 256 rows of wte */
    memcpy(&f, &u, 4);
    cllm_gpt_layout lay;
    cllm_gpt_layout_compute(&c, &lay);
    CHECK(f == p[lay.offset[CLLM_P_WPE]]);
    cllm_gpt_config c2;
    float *q = NULL;
    CHECK_OK(cllm_llmc_load(path, &c2, &q));
    CHECK(!memcmp(&c2, &c, sizeof c) && same(q, p, n));
    free(q);
    /* bfloat16 (version 5) */
    CHECK_OK(cllm_llmc_save(path, &c, p, true));
    CHECK_OK(cllm_llmc_load(path, &c2, &q));
    int bad = 0;
    for (size_t i = 0; q && i < n; i++) bad += q[i] != cllm_bf16_to_f32(cllm_f32_to_bf16(p[i]));
    CHECK(q && bad == 0);
    free(q);
    /* version 1: float32 without padding (Vp = V) */
    {
        size_t rest = n - lay.numel[CLLM_P_WTE], vc = (size_t)203 * 24;
        char *v1 = calloc(1, 1024 + (vc + rest) * 4);
        int32_t h1[7] = {20240326, 1, 19, 203, 2, 3, 24};
        memcpy(v1, h1, sizeof h1);
        memcpy(v1 + 1024, p, vc * 4);
        memcpy(v1 + 1024 + vc * 4, p + lay.offset[CLLM_P_WPE], rest * 4);
        CHECK_OK(cllm_write_file_atomic(path, v1, 1024 + (vc + rest) * 4));
        CHECK_OK(cllm_llmc_load(path, &c2, &q));
        CHECK(same(q, p, n));
        free(q);
        /* truncated, bad magic, unknown version, absurd sizes */
        CHECK_OK(cllm_write_file_atomic(path, v1, 1024 + (vc + rest) * 4 - 4));
        CHECK(cllm_llmc_load(path, &c2, &q) == CLLM_ERR_FORMAT && err_has("(truncated?)"));
        CHECK(err_has("model.bin"));
        h1[0] = 0x04034b50; /* "PK\3\4": a zip, as pytorch_model.bin is */
        memcpy(v1, h1, sizeof h1);
        CHECK_OK(cllm_write_file_atomic(path, v1, 1024 + (vc + rest) * 4));
        CHECK(cllm_llmc_load(path, &c2, &q) == CLLM_ERR_FORMAT && err_has("bad magic"));
        h1[0] = 20240326;
        h1[1] = 2;
        memcpy(v1, h1, sizeof h1);
        CHECK_OK(cllm_write_file_atomic(path, v1, 1024 + (vc + rest) * 4));
        CHECK(cllm_llmc_load(path, &c2, &q) == CLLM_ERR_FORMAT && err_has("version 2"));
        h1[1] = 3;
        h1[6] = 25; /* C not divisible by NH */
        memcpy(v1, h1, sizeof h1);
        CHECK_OK(cllm_write_file_atomic(path, v1, 100 + 1024));
        CHECK(cllm_llmc_load(path, &c2, &q) == CLLM_ERR_FORMAT && err_has("divisible"));
        CHECK_OK(cllm_write_file_atomic(path, v1, 100));
        CHECK(cllm_llmc_load(path, &c2, &q) == CLLM_ERR_FORMAT && err_has("1024-byte header"));
        CHECK(q == NULL);
        free(v1);
    }
    cllm_gpt_config ce = c;
    ce.layer_norm_epsilon = 1e-6f;
    CHECK(cllm_llmc_save(path, &ce, p, false) == CLLM_ERR_UNSUPPORTED);
    free(raw);
    free(path);
    free(p);
    free(dir);
}

int main(void) {
    test_round_trip();
    test_fixture_dirs();
    test_refusals();
    test_runs();
    test_killed_writers();
    test_llmc();
    return test_exit();
}
