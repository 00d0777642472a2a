/* LoRA adapters on the device model (host/gpt.c, host/ops/lora.c) and their files
 * (host/lora.c, host/checkpoint.c), against the double-precision reference of tests/ref_gpt.h
 * (PEFT's formula, its adapter gradients checked by finite differences first) and against
 * PyTorch (tests/fixtures/lora_tiny, tools/gen_lora_fixture.py): logits, losses with ignored
 * targets, adapter gradients, AdamW steps that leave the base bitwise unchanged, B = 0 giving
 * exactly the base model, merging (device and host), generation through the cache with
 * adapters, saving and loading bitwise, memory, and the errors.
 * Sizes are awkward on purpose: V = 101 (Vp = 128), n_head = 3, T = 9 and 5, rank 3 and 1.
 */
#include "ref_gpt.h"

#include "cllm/checkpoint.h"
#include "cllm/gpt.h"
#include "cllm/lora.h"
#include "cllm/model.h"
#include "cllm/safetensors.h"
#include "cllm/util.h"

static const cllm_gpt_config CFG = {.vocab_size = 101,
                                    .n_positions = 13,
                                    .n_embd = 30,
                                    .n_layer = 2,
                                    .n_head = 3,
                                    .layer_norm_epsilon = 1e-5f,
                                    .initializer_range = 0.02f};

/* Adapters as PEFT initialises A, with B drawn N(0, 0.3) (a trained adapter) so that every
 * gradient is exercised. */
static void random_adapters(test_rng *rng, const cllm_lora_config *lc, double *ad) {
    size_t n = cllm_lora_numel(&CFG, lc);
    float *f = malloc(n * sizeof *f);
    cllm_lora_init_host(&CFG, lc, test_rng_u64(rng), f);
    for (int i = 0; i < cllm_lora_tensor_count(&CFG, lc); i++) {
        cllm_lora_tensor_info t;
        cllm_lora_tensor(&CFG, lc, i, &t);
        for (size_t k = 0; t.is_b && k < (size_t)t.shape[0] * t.shape[1]; k++)
            f[t.offset + k] = (float)(0.3 * test_rng_normal(rng));
    }
    ref_to_double(ad, f, n);
    free(f);
}

static void random_ids(test_rng *rng, uint32_t *ids, size_t n, int ignore_every) {
    for (size_t i = 0; i < n; i++) {
        ids[i] = (uint32_t)(test_rng_u64(rng) % (uint64_t)CFG.vocab_size);
        if (ignore_every && i % (size_t)ignore_every == 2) ids[i] = CLLM_IGNORE_TARGET;
    }
}

/* Per adapter tensor: |got - ref| <= tol * ||ref||_2 + 1e-7 (as test_gpt's check_grads). */
static void check_adapters(const char *what, const cllm_gpt_config *cfg, const cllm_lora_config *lc,
                           const float *got, const double *ref, double tol) {
    for (int i = 0; i < cllm_lora_tensor_count(cfg, lc); i++) {
        cllm_lora_tensor_info t;
        cllm_lora_tensor(cfg, lc, i, &t);
        size_t n = (size_t)t.shape[0] * t.shape[1], wi = 0;
        double norm = 0, worst = 0;
        for (size_t k = 0; k < n; k++)
            norm += ref[t.offset + k] * ref[t.offset + k];
        norm = sqrt(norm);
        for (size_t k = 0; k < n; k++) {
            double d = fabs(got[t.offset + k] - ref[t.offset + k]);
            if (d > worst) worst = d, wi = k;
        }
        CHECK_MSG(worst <= tol * norm + 1e-7,
                  "%s: %s [%zu]: got %.8g, reference %.8g (|d| %.3g > %.1g * norm %.4g)", what,
                  t.name, wi, got[t.offset + wi], ref[t.offset + wi], worst, tol, norm);
    }
}

typedef struct {
    ref_gpt *r;
    const double *p;
    const uint32_t *tok, *tg;
} fd_ctx;

static double fd_loss(void *x) {
    fd_ctx *c = x;
    return ref_gpt_forward(c->r, c->p, c->tok, c->tg);
}

/* Logits at every position of the last forward, (B, T, V). */
static float *all_logits(cllm_gpt *m, int B, int T) {
    const int V = cllm_gpt_get_config(m)->vocab_size;
    float *lg = malloc((size_t)B * T * V * sizeof *lg);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            CHECK_OK(cllm_gpt_get_logits(m, b, t, lg + ((size_t)b * T + t) * V));
    return lg;
}

static float *ref_logits(const ref_gpt *r) {
    const int V = r->cfg.vocab_size, N = r->B * r->T;
    float *lg = malloc((size_t)N * V * sizeof *lg);
    for (int i = 0; i < N; i++)
        ref_to_float(lg + (size_t)i * V, r->logits + (size_t)i * r->Vp, V);
    return lg;
}

static cllm_gpt *make_model(cllm_runtime *rt, const cllm_gpt_config *cfg, int B, int T,
                            bool training, bool kv, const cllm_lora_config *lc) {
    cllm_gpt_opts o = {.max_batch = B, .max_seq = T, .training = training, .kv_cache = kv};
    if (lc) o.lora = *lc;
    cllm_gpt *m = NULL;
    CHECK_OK(cllm_gpt_init(&m, rt, cfg, &o));
    if (!m) exit(test_exit());
    return m;
}

/* ---------------------------------------------------------------- against the reference */

typedef struct {
    int rank;
    float alpha;
    unsigned targets;
    int B, T; /* of the forward; the model is made for 3 x 9 */
} lora_case;

static void check_case(cllm_runtime *rt, const lora_case *c, const double *p, const float *fp) {
    char what[96];
    snprintf(what, sizeof what, "rank %d targets 0x%x B=%d T=%d", c->rank, c->targets, c->B, c->T);
    test_rng rng = {1000u + (uint64_t)c->rank * 7 + c->targets};
    cllm_lora_config lc = {.rank = c->rank, .alpha = c->alpha, .targets = c->targets};
    const size_t n = cllm_lora_numel(&CFG, &lc), N = (size_t)c->B * c->T;
    double *ad = ref_alloc(n), *gad = ref_alloc(n),
           *gbase = ref_alloc(cllm_lora_numel(&CFG, &lc) + 1);
    cllm_gpt_layout lay;
    cllm_gpt_layout_compute(&CFG, &lay);
    double *g = ref_alloc(lay.total);
    random_adapters(&rng, &lc, ad);
    uint32_t tok[27], tg[27];
    random_ids(&rng, tok, N, 0);
    random_ids(&rng, tg, N, 4);

    /* the reference's adapter gradients against finite differences of its loss */
    ref_gpt r;
    ref_gpt_init(&r, &CFG, c->B, c->T);
    ref_gpt_set_lora(&r, &lc, ad, gad);
    double loss = ref_gpt_forward(&r, p, tok, tg);
    ref_gpt_backward(&r, g, p, tok, tg, 1.0);
    fd_ctx fc = {&r, p, tok, tg};
    char fw[128];
    snprintf(fw, sizeof fw, "reference LoRA adapters (%s)", what);
    /* step 1e-5: with scale 8 the curvature makes 1e-4 steps truncate above 1e-6 */
    ref_fd_check(fw, fd_loss, &fc, ad, gad, n, 60, 1e-5, 1e-6);

    /* the device: logits, losses, adapter gradients */
    cllm_gpt *m = make_model(rt, &CFG, 3, 9, true, false, &lc);
    float *fad = ref_floats(ad, n), *fg = malloc(n * sizeof *fg);
    CHECK_OK(cllm_gpt_set_params(m, fp));
    CHECK_OK(cllm_gpt_lora_set_params(m, fad));
    CHECK_OK(cllm_gpt_zero_grad(m));
    CHECK_OK(cllm_gpt_forward(m, tok, tg, c->B, c->T));
    ref_gpt_forward(&r, p, tok, tg); /* the FD check left the last forward perturbed */
    float *lg = all_logits(m, c->B, c->T), *rl = ref_logits(&r), dl = 0;
    CHECK_ALLCLOSE(what, lg, rl, N * CFG.vocab_size, 1e-5, 1e-5);
    CHECK_OK(cllm_gpt_get_loss(m, &dl));
    CHECK_MSG(test_close(dl, loss, 1e-6, 1e-5), "%s: loss %.8g, reference %.8g", what, dl, loss);
    float tl[27], rtl[27];
    CHECK_OK(cllm_gpt_get_token_losses(m, tl));
    ref_to_float(rtl, r.losses, N);
    CHECK_ALLCLOSE(what, tl, rtl, N, 1e-5, 1e-5);
    CHECK_OK(cllm_gpt_backward(m, 1.0f));
    CHECK_OK(cllm_gpt_lora_get_grads(m, fg));
    check_adapters(what, &CFG, &lc, fg, gad, 1e-4);

    /* accumulation: a second micro-step with scale 0.5 adds half of its gradient */
    CHECK_OK(cllm_gpt_forward(m, tok, tg, c->B, c->T));
    CHECK_OK(cllm_gpt_backward(m, 0.5f));
    CHECK_OK(cllm_gpt_lora_get_grads(m, fg));
    for (size_t i = 0; i < n; i++)
        gbase[i] = 1.5 * gad[i];
    check_adapters("accumulated", &CFG, &lc, fg, gbase, 1e-4);
    cllm_gpt_free(m);
    ref_gpt_free(&r);
    free(ad), free(gad), free(gbase), free(g), free(fad), free(fg), free(lg), free(rl);
}

/* ---------------------------------------------------------------- PyTorch fixture */

static float *fx_read(cllm_safetensors *st, const char *name, size_t want) {
    const cllm_st_tensor *t = cllm_safetensors_find(st, name);
    CHECK_MSG(t && t->numel == want, "fixture tensor %s missing or of %zu elements", name,
              t ? t->numel : 0);
    if (!t || t->numel != want) return NULL;
    float *f = malloc(want * sizeof *f);
    CHECK_OK(cllm_safetensors_read_f32(st, t, f));
    return f;
}

static double meta_num(cllm_safetensors *st, const char *key) {
    const char *v = cllm_safetensors_metadata(st, key);
    CHECK_MSG(v != NULL, "fixture metadata %s missing", key);
    return v ? atof(v) : 0;
}

/* The fixture's adapters (named by PEFT) as a cllm adapter array, from tensors prefix + name. */
static float *fx_adapters(cllm_safetensors *st, const cllm_gpt_config *cfg,
                          const cllm_lora_config *lc, const char *prefix) {
    float *a = calloc(cllm_lora_numel(cfg, lc), sizeof *a);
    for (int i = 0; i < cllm_lora_tensor_count(cfg, lc); i++) {
        cllm_lora_tensor_info t;
        cllm_lora_tensor(cfg, lc, i, &t);
        char name[160];
        snprintf(name, sizeof name, "%s%s", prefix, t.name);
        float *x = fx_read(st, name, (size_t)t.shape[0] * t.shape[1]);
        if (x) memcpy(a + t.offset, x, (size_t)t.shape[0] * t.shape[1] * sizeof *x);
        free(x);
    }
    return a;
}

static void check_fixture(cllm_runtime *rt) {
    char *dir = test_fixture("lora_tiny"),
         *rp = dir ? cllm_path_join(dir, "reference.safetensors") : NULL;
    cllm_checkpoint ck = {0};
    cllm_safetensors *st = NULL;
    if (!rp) return;
    CHECK_OK(cllm_checkpoint_load(dir, false, &ck)); /* HF GPT-2 dir + PEFT adapter beside it */
    CHECK_OK(cllm_safetensors_open(&st, rp));
    if (!st || !ck.params) goto out;
    CHECK(!strcmp(cllm_safetensors_metadata(st, "format"), "cllm-lora-fixture/1"));
    const int B = (int)meta_num(st, "B"), T = (int)meta_num(st, "T"), V = ck.cfg.vocab_size;
    /* PEFT's target_modules ["c_attn", "c_proj", "c_fc"]: "c_proj" is both projections */
    CHECK(ck.lora.rank == (int)meta_num(st, "r") &&
          ck.lora.alpha == (float)meta_num(st, "lora_alpha") && ck.lora.targets == CLLM_LORA_ALL);
    {
        cllm_lora_config again;
        float *ad = NULL;
        char *bm = NULL;
        CHECK_OK(cllm_lora_load(dir, &ck.cfg, &again, &ad, &bm));
        CHECK(bm && !strcmp(bm, "hf_tiny_lora_base") && ad &&
              !memcmp(ad, ck.lora_params, cllm_lora_numel(&ck.cfg, &again) * sizeof *ad));
        free(ad), free(bm);
    }
    const size_t N = (size_t)B * T, n = cllm_lora_numel(&ck.cfg, &ck.lora);
    const cllm_st_tensor *ti = cllm_safetensors_find(st, "inputs"),
                         *tt = cllm_safetensors_find(st, "targets");
    int32_t *in32 = malloc(N * sizeof *in32), *tg32 = malloc(N * sizeof *tg32);
    uint32_t *tok = malloc(N * sizeof *tok), *tg = malloc(N * sizeof *tg);
    CHECK_OK(cllm_safetensors_read_i32(st, ti, in32));
    CHECK_OK(cllm_safetensors_read_i32(st, tt, tg32));
    for (size_t i = 0; i < N; i++) {
        tok[i] = (uint32_t)in32[i];
        tg[i] = tg32[i] < 0 ? CLLM_IGNORE_TARGET : (uint32_t)tg32[i];
    }
    cllm_gpt *m = make_model(rt, &ck.cfg, B, T, true, false, &ck.lora);
    CHECK_OK(cllm_gpt_set_params(m, ck.params));
    CHECK_OK(cllm_gpt_lora_set_params(m, ck.lora_params));
    CHECK_OK(cllm_gpt_zero_grad(m));
    CHECK_OK(cllm_gpt_forward(m, tok, tg, B, T));
    float *lg = all_logits(m, B, T), *rl = fx_read(st, "logits", N * V),
          *rloss = fx_read(st, "loss", 1);
    float loss = 0;
    if (rl) CHECK_ALLCLOSE("PyTorch LoRA logits", lg, rl, N * V, 1e-5, 1e-4);
    CHECK_OK(cllm_gpt_get_loss(m, &loss));
    if (rloss)
        CHECK_MSG(test_close(loss, rloss[0], 1e-6, 1e-5), "PyTorch LoRA loss %.8g, cllm %.8g",
                  rloss[0], loss);
    CHECK_OK(cllm_gpt_backward(m, 1.0f));
    float *fg = malloc(n * sizeof *fg), *rg = fx_adapters(st, &ck.cfg, &ck.lora, "grad.");
    double *rgd = ref_alloc(n);
    ref_to_double(rgd, rg, n);
    CHECK_OK(cllm_gpt_lora_get_grads(m, fg));
    check_adapters("PyTorch LoRA gradients", &ck.cfg, &ck.lora, fg, rgd, 1e-4);

    /* the training steps: clipping over the adapters, torch.optim.AdamW over them alone */
    const int steps = (int)meta_num(st, "steps");
    cllm_adamw_params hp = {.lr = (float)meta_num(st, "lr"),
                            .beta1 = (float)meta_num(st, "beta1"),
                            .beta2 = (float)meta_num(st, "beta2"),
                            .eps = (float)meta_num(st, "eps"),
                            .weight_decay = (float)meta_num(st, "weight_decay")};
    float max_norm = (float)meta_num(st, "max_norm"),
          *tl = fx_read(st, "train.loss", (size_t)steps),
          *tn = fx_read(st, "train.grad_norm", (size_t)steps);
    for (int s = 1; s <= steps && tl && tn; s++) {
        float norm = 0;
        CHECK_OK(cllm_gpt_zero_grad(m));
        CHECK_OK(cllm_gpt_forward(m, tok, tg, B, T));
        CHECK_OK(cllm_gpt_backward(m, 1.0f));
        CHECK_OK(cllm_gpt_clip_grad_norm(m, max_norm, &norm));
        CHECK_OK(cllm_gpt_adamw_step(m, &hp, s));
        CHECK_OK(cllm_gpt_get_loss(m, &loss));
        CHECK_MSG(
            test_close(loss, tl[s - 1], 1e-6, 1e-5) && test_close(norm, tn[s - 1], 1e-7, 1e-4),
            "step %d: loss %.8g norm %.8g, PyTorch %.8g %.8g", s, loss, norm, tl[s - 1], tn[s - 1]);
    }
    float *fin = fx_adapters(st, &ck.cfg, &ck.lora, "final.");
    CHECK_OK(cllm_gpt_lora_get_params(m, fg));
    CHECK_ALLCLOSE("adapters after the PyTorch AdamW steps", fg, fin, n, 1e-5, 1e-4);

    /* PEFT's merge (W += transpose(B A) * scaling in HF's (in, out) layout) = cllm's */
    cllm_gpt_layout fl;
    cllm_gpt_layout_compute(&ck.cfg, &fl);
    float *merged = malloc(fl.total * sizeof *merged), *mp = malloc(fl.total * sizeof *mp);
    memcpy(mp, ck.params, fl.total * sizeof *mp);
    cllm_lora_merge(&ck.cfg, &ck.lora, mp, ck.lora_params);
    for (int i = 0; i < cllm_gpt_hf_tensor_count(&ck.cfg); i++) {
        cllm_gpt_hf_tensor_info h;
        cllm_gpt_hf_tensor(&ck.cfg, i, &h);
        char name[96];
        snprintf(name, sizeof name, "merged.%s", h.name);
        if (!cllm_safetensors_find(st, name)) continue;
        float *x = fx_read(st, name, (size_t)h.rows * h.cols);
        for (int a = 0; x && a < h.rows; a++) /* HF (cols, rows) -> cllm (rows, cols) */
            for (int b = 0; b < h.cols; b++)
                merged[(size_t)a * h.cols + b] = x[(size_t)b * h.rows + a];
        if (x) CHECK_ALLCLOSE(name, mp + h.offset, merged, (size_t)h.rows * h.cols, 1e-7, 1e-6);
        free(x);
    }
    free(merged), free(mp);
    cllm_gpt_free(m);
    free(in32), free(tg32), free(tok), free(tg), free(lg), free(rl), free(rloss), free(fg),
        free(rg);
    free(rgd), free(tl), free(tn), free(fin);
out:
    cllm_safetensors_free(st);
    cllm_checkpoint_clear(&ck);
    free(dir), free(rp);
}

/* ---------------------------------------------------------------- main */

int main(void) {
    cllm_runtime *rt = test_runtime();
    test_rng rng = {41};
    cllm_gpt_layout lay;
    cllm_gpt_layout_compute(&CFG, &lay);
    const size_t P = lay.total;
    const int B = 3, T = 9, V = CFG.vocab_size;
    double *p = ref_alloc(P);
    float *fp = malloc(P * sizeof *fp), *fp2 = malloc(P * sizeof *fp2);
    ref_gpt_random_params(&rng, &CFG, p);
    ref_to_float(fp, p, P);

    /* 1-2. Reference against finite differences, device against reference. */
    const lora_case cases[] = {
        {3, 5.0f, CLLM_LORA_ALL, 3, 9},
        {1, 2.0f, CLLM_LORA_BIT(CLLM_LORA_QKV) | CLLM_LORA_BIT(CLLM_LORA_FCPROJ), 2, 5},
        {2, 16.0f, CLLM_LORA_BIT(CLLM_LORA_ATTPROJ) | CLLM_LORA_BIT(CLLM_LORA_FC), 3, 9},
        /* 5 rows: the forward's products (adapters included) go through cl/gemv.cl */
        {2, 4.0f, CLLM_LORA_ALL, 1, 5},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        check_case(rt, &cases[i], p, fp);

    /* 3. B = 0 at init: exactly (bitwise) the base model's logits; A as PEFT draws it. */
    cllm_lora_config lc = {.rank = 3, .alpha = 5.0f, .targets = CLLM_LORA_ALL};
    const size_t n = cllm_lora_numel(&CFG, &lc);
    uint32_t tok[27], tg[27];
    random_ids(&rng, tok, 27, 0);
    random_ids(&rng, tg, 27, 5);
    cllm_gpt *base = make_model(rt, &CFG, B, T, false, false, NULL);
    CHECK_OK(cllm_gpt_set_params(base, fp));
    CHECK_OK(cllm_gpt_forward(base, tok, tg, B, T));
    float *lbase = all_logits(base, B, T);
    cllm_gpt *m = make_model(rt, &CFG, B, T, true, false, &lc);
    CHECK_OK(cllm_gpt_set_params(m, fp));
    CHECK_OK(cllm_gpt_lora_init_weights(m, 7));
    CHECK_OK(cllm_gpt_forward(m, tok, tg, B, T));
    float *l0 = all_logits(m, B, T);
    CHECK_MSG(!memcmp(l0, lbase, (size_t)B * T * V * sizeof *l0),
              "B = 0: the logits differ from the base model's");
    float *a0 = malloc(n * sizeof *a0), *a1 = malloc(n * sizeof *a1);
    CHECK_OK(cllm_gpt_lora_get_params(m, a0));
    for (int i = 0; i < cllm_lora_tensor_count(&CFG, &lc); i++) {
        cllm_lora_tensor_info t;
        cllm_lora_tensor(&CFG, &lc, i, &t);
        size_t cnt = (size_t)t.shape[0] * t.shape[1];
        double mx = 0, s2 = 0, bound = 1.0 / sqrt((double)t.shape[1]);
        for (size_t k = 0; k < cnt; k++)
            mx = fmax(mx, fabs(a0[t.offset + k])), s2 += a0[t.offset + k] * a0[t.offset + k];
        if (t.is_b)
            CHECK_MSG(mx == 0, "%s starts at %g, not 0", t.name, mx);
        else /* U(-b, b): sd b / sqrt(3); 90..360 draws */
            CHECK_MSG(mx <= bound && mx > 0.8 * bound &&
                          fabs(sqrt(s2 / cnt) - bound / sqrt(3)) < 0.2 * bound,
                      "%s: max |a| %g, sd %g; kaiming-uniform bound %g", t.name, mx, sqrt(s2 / cnt),
                      bound);
    }
    cllm_lora_config lg = lc;
    lg.init = CLLM_LORA_INIT_GAUSSIAN;
    cllm_lora_init_host(&CFG, &lg, 9, a1);
    double s2 = 0;
    size_t na = 0;
    for (int i = 0; i < cllm_lora_tensor_count(&CFG, &lg); i += 2) {
        cllm_lora_tensor_info t;
        cllm_lora_tensor(&CFG, &lg, i, &t);
        for (size_t k = 0; k < (size_t)t.shape[0] * t.shape[1]; k++, na++)
            s2 += a1[t.offset + k] * a1[t.offset + k];
    }
    CHECK_MSG(fabs(sqrt(s2 / na) - 1.0 / 3) < 0.05 / 3, "gaussian init: sd %g, want 1/r",
              sqrt(s2 / na));

    /* 4. AdamW steps on the adapters: the base bitwise unchanged, the adapters as the reference
     * moves them (clipping over the adapters, decay on every adapter matrix). */
    double *ad = ref_alloc(n), *gad = ref_alloc(n), *mo = ref_alloc(n), *va = ref_alloc(n),
           *g = ref_alloc(P);
    ref_to_double(ad, a0, n);
    ref_gpt r;
    ref_gpt_init(&r, &CFG, B, T);
    ref_gpt_set_lora(&r, &lc, ad, gad);
    cllm_adamw_params hp = {
        .lr = 2e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
    for (int step = 1; step <= 5; step++) {
        double loss = ref_gpt_forward(&r, p, tok, tg), n2 = 0;
        memset(gad, 0, n * sizeof *gad);
        ref_gpt_backward(&r, g, p, tok, tg, 1.0);
        for (size_t i = 0; i < n; i++)
            n2 += gad[i] * gad[i];
        double coef = fmin(1.0, 0.5 / (sqrt(n2) + 1e-6)), bc1 = 1 - pow(hp.beta1, step),
               bc2 = 1 - pow(hp.beta2, step);
        for (size_t i = 0; i < n; i++) {
            double gi = gad[i] * coef;
            ad[i] *= 1 - (double)hp.lr * hp.weight_decay;
            mo[i] = hp.beta1 * mo[i] + (1 - (double)hp.beta1) * gi;
            va[i] = hp.beta2 * va[i] + (1 - (double)hp.beta2) * gi * gi;
            ad[i] -= hp.lr / bc1 * mo[i] / (sqrt(va[i]) / sqrt(bc2) + hp.eps);
        }
        float dl = 0, norm = 0;
        CHECK_OK(cllm_gpt_zero_grad(m));
        CHECK_OK(cllm_gpt_forward(m, tok, tg, B, T));
        CHECK_OK(cllm_gpt_backward(m, 1.0f));
        CHECK_OK(cllm_gpt_clip_grad_norm(m, 0.5f, &norm));
        CHECK_OK(cllm_gpt_adamw_step(m, &hp, step));
        CHECK_OK(cllm_gpt_get_loss(m, &dl));
        CHECK_MSG(test_close(dl, loss, 1e-6, 1e-5) && test_close(norm, sqrt(n2), 1e-7, 1e-4),
                  "step %d: loss %.8g norm %.8g, reference %.8g %.8g", step, dl, norm, loss,
                  sqrt(n2));
    }
    CHECK_OK(cllm_gpt_get_params(m, fp2));
    CHECK_MSG(!memcmp(fp, fp2, P * sizeof *fp), "AdamW steps under LoRA changed base parameters");
    CHECK_OK(cllm_gpt_lora_get_params(m, a1));
    float *rad = ref_floats(ad, n);
    CHECK_ALLCLOSE("adapters after 5 AdamW steps", a1, rad, n, 1e-5, 1e-4);
    size_t moved = 0;
    for (size_t i = 0; i < n; i++)
        moved += a1[i] != a0[i];
    CHECK_MSG(moved == n, "only %zu of %zu adapter values moved", moved, n);
    float *fm = malloc(n * sizeof *fm), *fv = malloc(n * sizeof *fv);
    CHECK_OK(cllm_gpt_lora_get_adam(m, fm, fv));
    float *rmo = ref_floats(mo, n);
    CHECK_ALLCLOSE("adapter AdamW m after 5 steps", fm, rmo, n, 1e-7, 1e-3);
    /* the base-only calls are refused, one line each */
    CHECK(cllm_gpt_get_grads(m, fp2) == CLLM_ERR_STATE &&
          strstr(cllm_last_error(), "frozen under LoRA"));
    CHECK(cllm_gpt_get_adam(m, fp2, fp2) == CLLM_ERR_STATE);
    CHECK(cllm_gpt_set_adam(m, fp2, fp2) == CLLM_ERR_STATE);
    CHECK(cllm_gpt_get_lora(m)->rank == 3);

    /* 5. Exact resume: moments and adapters restored into a fresh model give the same step. */
    cllm_gpt *m2 = make_model(rt, &CFG, B, T, true, false, &lc);
    CHECK_OK(cllm_gpt_set_params(m2, fp));
    CHECK_OK(cllm_gpt_lora_set_params(m2, a1));
    CHECK_OK(cllm_gpt_lora_set_adam(m2, fm, fv));
    cllm_gpt *pair[2] = {m, m2};
    float *after[2] = {malloc(n * sizeof(float)), malloc(n * sizeof(float))};
    for (int k = 0; k < 2; k++) {
        CHECK_OK(cllm_gpt_zero_grad(pair[k]));
        CHECK_OK(cllm_gpt_forward(pair[k], tok, tg, B, T));
        CHECK_OK(cllm_gpt_backward(pair[k], 1.0f));
        CHECK_OK(cllm_gpt_clip_grad_norm(pair[k], 0.5f, NULL));
        CHECK_OK(cllm_gpt_adamw_step(pair[k], &hp, 6));
        CHECK_OK(cllm_gpt_lora_get_params(pair[k], after[k]));
    }
    CHECK_MSG(!memcmp(after[0], after[1], n * sizeof(float)), "a restored LoRA step differs");
    cllm_gpt_free(m2);
    free(after[0]), free(after[1]);

    /* 6. Merging: the same logits as the unmerged model, fp32 tolerance (|d| <= 1e-5 + 1e-4
     * |ref|: x (W + s B A)^T and x W^T + s (x A^T) B^T differ only in rounding). */
    CHECK_OK(cllm_gpt_lora_get_params(m, a1));
    CHECK_OK(cllm_gpt_forward(m, tok, tg, B, T));
    float *lun = all_logits(m, B, T), *lmerged;
    memcpy(fp2, fp, P * sizeof *fp);
    cllm_lora_merge(&CFG, &lc, fp2, a1); /* on the host */
    CHECK_OK(cllm_gpt_set_params(base, fp2));
    CHECK_OK(cllm_gpt_forward(base, tok, tg, B, T));
    lmerged = all_logits(base, B, T);
    CHECK_ALLCLOSE("host-merged logits vs unmerged", lmerged, lun, (size_t)B * T * V, 1e-5, 1e-4);
    free(lmerged);
    CHECK_OK(cllm_gpt_lora_merge(m)); /* on the device */
    CHECK(cllm_gpt_get_lora(m)->rank == 0);
    CHECK_OK(cllm_gpt_forward(m, tok, tg, B, T));
    lmerged = all_logits(m, B, T);
    CHECK_ALLCLOSE("device-merged logits vs unmerged", lmerged, lun, (size_t)B * T * V, 1e-5, 1e-4);
    float *dev_merged = malloc(P * sizeof *dev_merged);
    CHECK_OK(cllm_gpt_get_params(m, dev_merged));
    CHECK_ALLCLOSE("device- vs host-merged weights", dev_merged, fp2, P, 1e-6, 1e-5);
    CHECK(cllm_gpt_backward(m, 1.0f) == CLLM_ERR_STATE && strstr(cllm_last_error(), "merged"));
    CHECK(cllm_gpt_lora_get_params(m, a0) == CLLM_ERR_STATE);
    CHECK(cllm_gpt_lora_merge(m) == CLLM_ERR_STATE);
    free(lmerged), free(dev_merged);
    cllm_gpt_free(m);

    /* 7. Inference with adapters: training model's logits, also through the key/value cache. */
    cllm_gpt *mi = make_model(rt, &CFG, B, T, false, true, &lc);
    CHECK_OK(cllm_gpt_set_params(mi, fp));
    CHECK_OK(cllm_gpt_lora_set_params(mi, a1));
    CHECK_OK(cllm_gpt_forward(mi, tok, NULL, B, T));
    float *linf = all_logits(mi, B, T);
    CHECK_ALLCLOSE("inference model with adapters", linf, lun, (size_t)B * T * V, 1e-6, 1e-5);
    CHECK(cllm_gpt_lora_get_grads(mi, a0) == CLLM_ERR_STATE);
    CHECK(cllm_gpt_backward(mi, 1.0f) == CLLM_ERR_STATE);
    uint32_t part[27];
    float *lc1 = malloc((size_t)V * sizeof *lc1);
    for (int pos = 0; pos < T; pos += pos ? 1 : 5) {
        int cnt = pos ? 1 : 5;
        for (int b = 0; b < B; b++)
            memcpy(part + b * cnt, tok + b * T + pos, (size_t)cnt * sizeof *tok);
        CHECK_OK(cllm_gpt_forward_cached(mi, part, B, cnt, pos));
        for (int b = 0; b < B; b++)
            for (int i = 0; i < cnt; i++) {
                CHECK_OK(cllm_gpt_get_logits(mi, b, i, lc1));
                CHECK_ALLCLOSE("cached logits with adapters", lc1,
                               lun + ((size_t)b * T + pos + i) * V, (size_t)V, 1e-5, 1e-4);
            }
    }
    free(lc1), free(linf);
    cllm_gpt_free(mi);

    /* 8. Files: adapters and their moments save and load bitwise, as PEFT names them. */
    char *dir = test_tmpdir("lora_files");
    cllm_lora_config back;
    float *la = NULL, *lm = NULL, *lv = NULL;
    char *bm = NULL;
    CHECK_OK(cllm_lora_save(dir, &CFG, &lc, a1, "runs/base"));
    CHECK_OK(cllm_lora_save_optimizer(dir, &CFG, &lc, fm, fv));
    CHECK_OK(cllm_lora_load(dir, &CFG, &back, &la, &bm));
    CHECK(back.rank == lc.rank && back.alpha == lc.alpha && back.targets == lc.targets && bm &&
          !strcmp(bm, "runs/base"));
    CHECK(la && !memcmp(la, a1, n * sizeof *la));
    CHECK_OK(cllm_lora_load_optimizer(dir, &CFG, &back, &lm, &lv));
    CHECK(lm && lv && !memcmp(lm, fm, n * sizeof *lm) && !memcmp(lv, fv, n * sizeof *lv));
    free(la), free(lm), free(lv), free(bm);
    char *ap = cllm_path_join(dir, CLLM_LORA_MODEL_FILE),
         *cp = cllm_path_join(dir, CLLM_LORA_CONFIG_FILE), *text = NULL;
    cllm_safetensors *sf = NULL;
    CHECK_OK(cllm_safetensors_open(&sf, ap));
    if (sf) {
        const cllm_st_tensor *t =
            cllm_safetensors_find(sf, "base_model.model.transformer.h.1.mlp.c_proj.lora_B.weight");
        CHECK(t && t->dtype == CLLM_ST_F32 && t->ndim == 2 && t->shape[0] == 30 &&
              t->shape[1] == 3);
        t = cllm_safetensors_find(sf, "base_model.model.transformer.h.0.mlp.c_proj.lora_A.weight");
        CHECK(t && t->shape[0] == 3 && t->shape[1] == 120);
        CHECK(cllm_safetensors_count(sf) == 16);
        const char *fmt = cllm_safetensors_metadata(sf, "format");
        CHECK(fmt && !strcmp(fmt, "pt"));
    }
    cllm_safetensors_free(sf);
    CHECK_OK(cllm_read_file(cp, &text, NULL));
    CHECK(text && strstr(text, "\"peft_type\":\t\"LORA\"") && strstr(text, "\"r\":\t3") &&
          strstr(text, "\"lora_alpha\":\t5") && strstr(text, "\"fan_in_fan_out\":\ttrue") &&
          strstr(text, "\"c_attn\", \"attn.c_proj\", \"c_fc\", \"mlp.c_proj\""));

    /* ... and inside a checkpoint beside the base model, which still loads as the base alone */
    char *run = test_tmpdir("lora_run");
    cllm_checkpoint ck = {.cfg = CFG,
                          .params = fp,
                          .lora = lc,
                          .lora_params = a1,
                          .lora_m = fm,
                          .lora_v = fv,
                          .state_json = "{\"step\": 5}"};
    char *step = NULL;
    CHECK_OK(cllm_checkpoint_save(run, 5, &ck, 0, &step));
    cllm_checkpoint in = {0};
    CHECK_OK(cllm_checkpoint_load(run, true, &in));
    CHECK(in.params && !memcmp(in.params, fp, P * sizeof *fp) && in.adam_m == NULL);
    CHECK(in.lora.rank == 3 && in.lora_params && !memcmp(in.lora_params, a1, n * sizeof *a1));
    CHECK(in.lora_m && !memcmp(in.lora_m, fm, n * sizeof *fm) &&
          !memcmp(in.lora_v, fv, n * sizeof *fv));
    cllm_checkpoint_clear(&in);
    /* the adapters' base is the step directory's own model (absolute path) */
    CHECK_OK(cllm_lora_load(step, &CFG, &back, &la, &bm));
    char *real = realpath(step, NULL);
    CHECK_MSG(bm && real && !strcmp(bm, real), "base_model_name_or_path %s, step %s", bm, real);
    free(real), free(la), free(bm);
    la = NULL, bm = NULL;
    char *opt = cllm_path_join(step, "optimizer.safetensors");
    CHECK(!cllm_is_file(opt)); /* the frozen base has no moments */
    free(opt);

    /* ... and onto the device: merged for a plain model, as adapters for a LoRA one */
    cllm_model *mdl = NULL;
    cllm_gpt_opts mo_plain = {.max_batch = 1},
                  mo_lora = {.max_batch = 1, .training = true, .lora = lc};
    cllm_model_load_opts mlo = {.want_optimizer = true, .lora_seed = 7};
    CHECK_OK(cllm_model_load(&mdl, rt, run, &mo_plain, NULL));
    if (mdl) {
        CHECK(mdl->merged_lora.rank == 3 && cllm_gpt_get_lora(mdl->gpt)->rank == 0);
        memcpy(fp2, fp, P * sizeof *fp);
        cllm_lora_merge(&CFG, &lc, fp2, a1);
        float *got = malloc(P * sizeof *got);
        CHECK_OK(cllm_gpt_get_params(mdl->gpt, got));
        CHECK_MSG(!memcmp(got, fp2, P * sizeof *got), "cllm_model_load did not merge the adapters");
        free(got);
    }
    cllm_model_free(mdl);
    CHECK_OK(cllm_model_load(&mdl, rt, run, &mo_lora, &mlo));
    if (mdl) {
        float *got = malloc(n * sizeof *got), *gm = malloc(n * sizeof *gm),
              *gv = malloc(n * sizeof *gv);
        CHECK_OK(cllm_gpt_lora_get_params(mdl->gpt, got));
        CHECK_OK(cllm_gpt_lora_get_adam(mdl->gpt, gm, gv));
        CHECK(!memcmp(got, a1, n * sizeof *got) && !memcmp(gm, fm, n * sizeof *gm) &&
              !memcmp(gv, fv, n * sizeof *gv));
        free(got), free(gm), free(gv);
    }
    cllm_model_free(mdl);
    mo_lora.lora.rank = 2;
    CHECK(cllm_model_load(&mdl, rt, run, &mo_lora, &mlo) == CLLM_ERR_USAGE && mdl == NULL);
    CHECK_MSG(strstr(cllm_last_error(), "has LoRA adapters of rank 3, alpha 5 on "
                                        "c_attn,attn.c_proj,c_fc,mlp.c_proj, not the rank 2"),
              "message: %s", cllm_last_error());
    /* a checkpoint without adapters: fresh ones, as PEFT initialises them */
    char *run0 = test_tmpdir("lora_run0");
    cllm_checkpoint ck0 = {.cfg = CFG, .params = fp};
    CHECK_OK(cllm_checkpoint_save(run0, 0, &ck0, 0, NULL));
    mo_lora.lora.rank = 3;
    CHECK_OK(cllm_model_load(&mdl, rt, run0, &mo_lora, &mlo));
    if (mdl) {
        float *got = malloc(n * sizeof *got), *want = malloc(n * sizeof *want);
        CHECK_OK(cllm_gpt_lora_get_params(mdl->gpt, got));
        cllm_lora_init_host(&CFG, &lc, 7, want);
        CHECK(!memcmp(got, want, n * sizeof *got));
        free(got), free(want);
    }
    cllm_model_free(mdl);
    free(run0);

    /* 9. Bad input: one clear line each. */
    cllm_gpt_opts bo = {.max_batch = B, .max_seq = T, .training = true, .lora = lc};
    cllm_gpt *mb = NULL;
    const struct {
        int rank;
        float alpha;
        unsigned targets;
        const char *msg;
    } bad[] = {{-1, 8, CLLM_LORA_ALL, "LoRA rank -1: must be between 1 and 30"},
               {31, 8, CLLM_LORA_ALL, "LoRA rank 31"},
               {4, 0, CLLM_LORA_ALL, "LoRA alpha 0"},
               {4, NAN, CLLM_LORA_ALL, "LoRA alpha nan"},
               {4, 8, 0, "LoRA targets: none selected"},
               {4, 8, 0x10, "unknown target bits"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        bo.lora = (cllm_lora_config){
            .rank = bad[i].rank, .alpha = bad[i].alpha, .targets = bad[i].targets};
        CHECK(cllm_gpt_init(&mb, rt, &CFG, &bo) == CLLM_ERR_USAGE && mb == NULL);
        CHECK_MSG(strstr(cllm_last_error(), bad[i].msg) && !strchr(cllm_last_error(), '\n'),
                  "message: %s", cllm_last_error());
    }
    unsigned tb = 0;
    CHECK_OK(cllm_lora_parse_targets("c_attn, c_proj", &tb));
    CHECK(tb == (CLLM_LORA_BIT(CLLM_LORA_QKV) | CLLM_LORA_BIT(CLLM_LORA_ATTPROJ) |
                 CLLM_LORA_BIT(CLLM_LORA_FCPROJ)));
    CHECK_OK(cllm_lora_parse_targets("mlp.c_proj,c_fc", &tb));
    CHECK(tb == (CLLM_LORA_BIT(CLLM_LORA_FC) | CLLM_LORA_BIT(CLLM_LORA_FCPROJ)));
    CHECK_OK(cllm_lora_parse_targets("all-linear", &tb));
    CHECK(tb == CLLM_LORA_ALL);
    CHECK(cllm_lora_parse_targets("c_attn,q_proj", &tb) == CLLM_ERR_USAGE &&
          strstr(cllm_last_error(),
                 "LoRA target \"q_proj\" is not a projection of GPT-2; accepted:"));
    CHECK(cllm_lora_parse_targets("proj", &tb) == CLLM_ERR_USAGE); /* suffixes end at a dot */
    CHECK(cllm_lora_parse_targets(" , ", &tb) == CLLM_ERR_USAGE);
    char tt[80];
    cllm_lora_targets_text(CLLM_LORA_BIT(CLLM_LORA_ATTPROJ) | CLLM_LORA_BIT(CLLM_LORA_FC), tt,
                           sizeof tt);
    CHECK(!strcmp(tt, "attn.c_proj,c_fc"));

    /* adapters that do not fit the model: other width, fewer layers, a corrupt config */
    cllm_gpt_config wide = CFG, deep = CFG;
    wide.n_embd = 36;
    deep.n_layer = 3;
    CHECK(cllm_lora_load(dir, &wide, &back, &la, NULL) == CLLM_ERR_FORMAT && la == NULL);
    CHECK_MSG(strstr(cllm_last_error(), "has shape [3, 30] but the model (n_embd 36) with rank 3 "
                                        "needs [3, 36]"),
              "message: %s", cllm_last_error());
    CHECK(cllm_lora_load(dir, &deep, &back, &la, NULL) == CLLM_ERR_FORMAT);
    CHECK_MSG(strstr(cllm_last_error(), "h.2.attn.c_attn.lora_A.weight\" is missing"),
              "message: %s", cllm_last_error());
    cllm_gpt_config shallow = CFG;
    shallow.n_layer = 1;
    CHECK(cllm_lora_load(dir, &shallow, &back, &la, NULL) == CLLM_ERR_FORMAT);
    CHECK_MSG(strstr(cllm_last_error(), "unexpected tensor \"base_model.model.transformer.h.1."),
              "message: %s", cllm_last_error());
    const struct {
        const char *json, *msg;
        cllm_status st;
    } cfgs[] = {
        {"{\"peft_type\": \"IA3\"}", "\"peft_type\" is IA3", CLLM_ERR_FORMAT},
        {"[1]", "not a JSON object", CLLM_ERR_FORMAT},
        {"{\"peft_type\": \"LORA\", \"r\": 3, \"lora_alpha\": 5, \"target_modules\": [\"c_attn\", "
         "\"lm_head\"]}",
         "entry \"lm_head\"", CLLM_ERR_UNSUPPORTED},
        {"{\"peft_type\": \"LORA\", \"r\": 3, \"target_modules\": \".*c_attn\"}",
         "regular expression", CLLM_ERR_UNSUPPORTED},
        {"{\"peft_type\": \"LORA\", \"r\": 3, \"target_modules\": [\"c_attn\"], \"use_dora\": "
         "true}",
         "\"use_dora\": true is not supported", CLLM_ERR_UNSUPPORTED},
        {"{\"peft_type\": \"LORA\", \"r\": 3, \"target_modules\": [\"c_attn\"], "
         "\"layers_to_transform\": [0]}",
         "\"layers_to_transform\" is set", CLLM_ERR_UNSUPPORTED},
        {"{\"peft_type\": \"LORA\", \"r\": 0, \"target_modules\": [\"c_attn\"]}", "\"r\" must be",
         CLLM_ERR_FORMAT},
        {"{\"peft_type\": \"LORA\", \"r\": 3, \"target_modules\": [\"c_attn\"]}",
         "unexpected tensor", CLLM_ERR_FORMAT}, /* the file holds all four projections */
        {"{\"peft_type\": \"LORA\", \"r\": 40, \"lora_alpha\": 5, \"target_modules\": [\"c_attn\", "
         "\"c_proj\", \"c_fc\"]}",
         "does not fit the model: LoRA rank 40: must be between 1 and 30", CLLM_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof cfgs / sizeof *cfgs; i++) {
        CHECK_OK(cllm_write_file_atomic(cp, cfgs[i].json, strlen(cfgs[i].json)));
        cllm_status st = cllm_lora_load(dir, &CFG, &back, &la, NULL);
        CHECK_MSG(st == cfgs[i].st && la == NULL && strstr(cllm_last_error(), cfgs[i].msg) &&
                      !strchr(cllm_last_error(), '\n'),
                  "config %zu: %s (%s)", i, cllm_last_error(), cllm_status_name(st));
    }
    /* a truncated adapter file: the safetensors reader names it */
    CHECK_OK(cllm_write_file_atomic(cp, text, strlen(text)));
    char *raw = NULL;
    size_t rlen = 0;
    CHECK_OK(cllm_read_file(ap, &raw, &rlen));
    CHECK_OK(cllm_write_file_atomic(ap, raw, rlen - 7));
    CHECK(cllm_lora_load(dir, &CFG, &back, &la, NULL) == CLLM_ERR_FORMAT &&
          strstr(cllm_last_error(), ap));
    free(raw);
    /* a NaN is refused when saving, before anything is written */
    a1[5] = NAN;
    CHECK(cllm_lora_save(dir, &CFG, &lc, a1, NULL) == CLLM_ERR_NUMERIC);
    CHECK(cllm_lora_load(dir, &CFG, &back, &la, NULL) ==
          CLLM_ERR_FORMAT); /* still the truncated one */

    /* 10. Memory: LoRA keeps no gradients or moments for the base. */
    cllm_gpt_opts full = {.max_batch = B, .max_seq = T, .training = true}, lo = full;
    lo.lora = lc;
    cllm_gpt_opts inf = {.max_batch = B, .max_seq = T};
    size_t mfull = cllm_gpt_memory_required(&CFG, &full),
           mlora = cllm_gpt_memory_required(&CFG, &lo);
    /* full: 4 copies of the parameters; LoRA: 1, plus 4 of the adapters and their u, du */
    const size_t saved = mfull - mlora, lora_acts = (size_t)CFG.n_layer * 4 * 27 * 3 + 27 * 3 + 32;
    CHECK_MSG(mfull > mlora && saved <= (3 * P - 4 * n) * sizeof(float) &&
                  saved >= (3 * P - 4 * n - lora_acts) * sizeof(float),
              "LoRA saves %zu of %zu bytes; the base's gradients and moments are %zu", saved, mfull,
              3 * P * sizeof(float));
    CHECK(mlora > cllm_gpt_memory_required(&CFG, &inf));

    /* 11. PyTorch: a PEFT-format adapter on a Hugging Face directory, run on the device. */
    check_fixture(rt);

    cllm_gpt_free(base);
    ref_gpt_free(&r);
    free(p), free(fp), free(fp2), free(lbase), free(l0), free(a0), free(a1), free(ad), free(gad);
    free(mo), free(va), free(g), free(rad), free(fm), free(fv), free(rmo), free(lun), free(dir);
    free(ap), free(cp), free(text), free(run), free(step);
    cllm_runtime_free(rt);
    return test_exit();
}
