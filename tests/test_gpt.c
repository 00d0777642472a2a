/* The device GPT (host/gpt.c) against the double-precision reference of tests/ref_gpt.h, whose
 * backward is first checked by finite differences on the loss: logits, per-token and mean
 * losses (with ignored targets), every parameter gradient, gradient accumulation, clipping, and
 * several AdamW steps; batches smaller than the model's maximum; the model without training;
 * GPT-2 initialisation; attention capture; generation through the key/value cache; and the
 * errors (bad tokens, wrong state, too large for the device).
 * Sizes are awkward on purpose: V = 101 (Vp = 128), n_head = 3, T = 9 and 5.
 */
#include "ref_gpt.h"

#include "cllm/gpt.h"

static const cllm_gpt_config CFG = {.vocab_size = 101,
                                    .n_positions = 13,
                                    .n_embd = 30,
                                    .n_layer = 2,
                                    .n_head = 3,
                                    .layer_norm_epsilon = 1e-5f,
                                    .initializer_range = 0.02f};

static void random_ids(test_rng *rng, uint32_t *ids, size_t n, int ignore_every) {
    for (size_t i = 0; i < n; i++) {
        ids[i] = (uint32_t)(test_rng_u64(rng) % (uint64_t)CFG.vocab_size);
        if (ignore_every && i % (size_t)ignore_every == 3) ids[i] = CLLM_IGNORE_TARGET;
    }
}

/* |got - ref| <= tol * ||ref||_2 + 1e-7 elementwise, per parameter tensor. */
static void check_grads(const char *what, const cllm_gpt_layout *lay, const float *got,
                        const double *ref, double tol) {
    static const char *names[CLLM_P_COUNT] = {
        "wte",  "wpe",  "ln1w", "ln1b", "qkvw",    "qkvb",    "attprojw", "attprojb",
        "ln2w", "ln2b", "fcw",  "fcb",  "fcprojw", "fcprojb", "lnfw",     "lnfb"};
    for (int t = 0; t < CLLM_P_COUNT; t++) {
        double norm = 0, worst = 0;
        size_t wi = 0, o = lay->offset[t];
        for (size_t i = 0; i < lay->numel[t]; i++)
            norm += ref[o + i] * ref[o + i];
        norm = sqrt(norm);
        for (size_t i = 0; i < lay->numel[t]; i++) {
            double d = fabs(got[o + i] - ref[o + i]);
            if (d > worst) worst = d, wi = i;
        }
        CHECK_MSG(
            worst <= tol * norm + 1e-7,
            "%s: gradient of %s [%zu]: got %.8g, reference %.8g (|d| %.3g > %.1g * norm %.4g)",
            what, names[t], wi, got[o + wi], ref[o + wi], worst, tol, norm);
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

/* Forward with targets on device and reference, compare logits and losses. */
static void compare_forward(cllm_gpt *m, ref_gpt *r, const double *p, const uint32_t *tok,
                            const uint32_t *tg, const char *what) {
    int B = r->B, T = r->T, V = CFG.vocab_size;
    CHECK_OK(cllm_gpt_forward(m, tok, tg, B, T));
    double ref_loss = ref_gpt_forward(r, p, tok, tg);
    float *lg = malloc((size_t)V * sizeof(float)), *rl = malloc((size_t)V * sizeof(float));
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            CHECK_OK(cllm_gpt_get_logits(m, b, t, lg));
            ref_to_float(rl, r->logits + ((size_t)b * T + t) * r->Vp, V);
            char w[96];
            snprintf(w, sizeof w, "%s: logits at (%d, %d)", what, b, t);
            CHECK_ALLCLOSE(w, lg, rl, V, 1e-5, 1e-5);
        }
    if (tg) {
        float loss = 0, *tl = malloc((size_t)B * T * sizeof(float)),
              *rtl = malloc((size_t)B * T * sizeof(float));
        CHECK_OK(cllm_gpt_get_loss(m, &loss));
        CHECK_MSG(test_close(loss, ref_loss, 1e-6, 1e-5), "%s: loss %.8g, reference %.8g", what,
                  loss, ref_loss);
        CHECK_OK(cllm_gpt_get_token_losses(m, tl));
        ref_to_float(rtl, r->losses, (size_t)B * T);
        CHECK_ALLCLOSE(what, tl, rtl, (size_t)B * T, 1e-5, 1e-5);
        free(tl), free(rtl);
    }
    free(lg), free(rl);
}

int main(void) {
    cllm_runtime *rt = test_runtime();
    test_rng rng = {37};
    cllm_gpt_layout lay;
    cllm_gpt_layout_compute(&CFG, &lay);
    const size_t P = lay.total;
    const int B = 3, T = 9;
    double *p = ref_alloc(P), *g = ref_alloc(P), *g2 = ref_alloc(P);
    float *fp = malloc(P * sizeof(float)), *fg = malloc(P * sizeof(float));
    ref_gpt_random_params(&rng, &CFG, p);
    ref_to_float(fp, p, P);
    uint32_t tok[27], tg[27], tok2[27], tg2[27];
    random_ids(&rng, tok, 27, 0);
    random_ids(&rng, tg, 27, 5);
    random_ids(&rng, tok2, 27, 0);
    random_ids(&rng, tg2, 27, 0);

    /* 1. The reference's backward against finite differences of its loss, every tensor. */
    ref_gpt r;
    ref_gpt_init(&r, &CFG, B, T);
    ref_gpt_forward(&r, p, tok, tg);
    ref_gpt_backward(&r, g, p, tok, tg, 1.0);
    fd_ctx fc = {&r, p, tok, tg};
    for (int t = 0; t < CLLM_P_COUNT; t++) {
        char w[64];
        snprintf(w, sizeof w, "reference GPT, tensor %d", t);
        ref_fd_check(w, fd_loss, &fc, p + lay.offset[t], g + lay.offset[t], lay.numel[t], 12, 1e-4,
                     1e-6);
    }

    /* 2. Device forward and backward against the reference. */
    cllm_gpt *m = NULL;
    cllm_gpt_opts opts = {.max_batch = B, .max_seq = T, .training = true};
    CHECK_OK(cllm_gpt_init(&m, rt, &CFG, &opts));
    if (!m) return test_exit();
    CHECK_OK(cllm_gpt_set_params(m, fp));
    CHECK_OK(cllm_gpt_zero_grad(m));
    compare_forward(m, &r, p, tok, tg, "forward B=3 T=9");
    CHECK_OK(cllm_gpt_backward(m, 1.0f));
    CHECK_OK(cllm_gpt_get_grads(m, fg));
    check_grads("backward", &lay, fg, g, 1e-4);

    /* 3. Accumulation: a second micro-step with scale 0.5 adds half of its gradient. */
    ref_gpt_forward(&r, p, tok2, tg2);
    memcpy(g2, g, P * sizeof(double));
    ref_gpt_backward(&r, g2, p, tok2, tg2, 0.5);
    CHECK_OK(cllm_gpt_forward(m, tok2, tg2, B, T));
    CHECK_OK(cllm_gpt_backward(m, 0.5f));
    CHECK_OK(cllm_gpt_get_grads(m, fg));
    check_grads("accumulated", &lay, fg, g2, 1e-4);

    /* 4. Clipping: the norm, and the gradients scaled to max_norm. */
    double norm = 0;
    for (size_t i = 0; i < P; i++)
        norm += g2[i] * g2[i];
    norm = sqrt(norm);
    float got_norm = 0;
    CHECK_OK(cllm_gpt_clip_grad_norm(m, (float)(norm / 3), &got_norm));
    CHECK_MSG(test_close(got_norm, norm, 1e-7, 1e-5), "grad norm %.8g, reference %.8g", got_norm,
              norm);
    for (size_t i = 0; i < P; i++)
        g2[i] *= (norm / 3) / (norm + 1e-6);
    CHECK_OK(cllm_gpt_get_grads(m, fg));
    check_grads("clipped", &lay, fg, g2, 1e-4);

    /* 5. A smaller batch and sequence than the model was made for. */
    ref_gpt r2;
    ref_gpt_init(&r2, &CFG, 2, 5);
    compare_forward(m, &r2, p, tok2, tg, "forward B=2 T=5");
    memset(g, 0, P * sizeof(double));
    ref_gpt_backward(&r2, g, p, tok2, tg, 1.0);
    CHECK_OK(cllm_gpt_zero_grad(m));
    CHECK_OK(cllm_gpt_backward(m, 1.0f));
    CHECK_OK(cllm_gpt_get_grads(m, fg));
    check_grads("backward B=2 T=5", &lay, fg, g, 1e-4);

    /* 6. Six training steps (clipping, AdamW) against the reference: losses and weights. */
    cllm_adamw_params hp = {
        .lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
    double *mo = ref_alloc(P), *va = ref_alloc(P), *pp = ref_alloc(P);
    memcpy(pp, p, P * sizeof(double));
    CHECK_OK(cllm_gpt_set_params(m, fp));
    for (int step = 1; step <= 6; step++) {
        const uint32_t *it = step % 2 ? tok : tok2, *tt = step % 2 ? tg : tg2;
        double loss = ref_gpt_forward(&r, pp, it, tt);
        memset(g, 0, P * sizeof(double));
        ref_gpt_backward(&r, g, pp, it, tt, 1.0);
        double n2 = 0;
        for (size_t i = 0; i < P; i++)
            n2 += g[i] * g[i];
        double coef = fmin(1.0, 1.0 / (sqrt(n2) + 1e-6));
        for (size_t i = 0; i < P; i++)
            g[i] *= coef;
        ref_gpt_adamw(&lay, pp, g, mo, va, &hp, step);

        float dl = 0;
        CHECK_OK(cllm_gpt_zero_grad(m));
        CHECK_OK(cllm_gpt_forward(m, it, tt, B, T));
        CHECK_OK(cllm_gpt_backward(m, 1.0f));
        CHECK_OK(cllm_gpt_clip_grad_norm(m, 1.0f, NULL));
        CHECK_OK(cllm_gpt_adamw_step(m, &hp, step));
        CHECK_OK(cllm_gpt_get_loss(m, &dl));
        CHECK_MSG(test_close(dl, loss, 1e-6, 1e-5), "step %d: loss %.8g, reference %.8g", step, dl,
                  loss);
    }
    CHECK_OK(cllm_gpt_get_params(m, fp));
    float *rp = ref_floats(pp, P);
    /* The key part of qkvb has an exactly zero gradient (adding q.b_k to every score of a row
     * leaves the softmax unchanged), so device and reference each hold rounding noise there,
     * which Adam's normalisation turns into steps of up to lr. Those are compared separately:
     * each may have moved at most lr per step (plus decay) from the other. */
    size_t nk = 0;
    for (int l = 0; l < CFG.n_layer; l++)
        for (int i = 0; i < CFG.n_embd; i++) {
            size_t k = lay.offset[CLLM_P_QKVB] + (size_t)l * 3 * CFG.n_embd + CFG.n_embd + i;
            nk += fabsf(fp[k] - rp[k]) <= 2 * 6 * hp.lr + 1e-5f;
            fp[k] = rp[k];
        }
    CHECK_MSG(nk == (size_t)CFG.n_layer * CFG.n_embd, "key biases moved more than lr per step");
    CHECK_ALLCLOSE("parameters after 6 AdamW steps", fp, rp, P, 1e-5, 1e-4);
    float *fm = malloc(P * sizeof(float)), *fv = malloc(P * sizeof(float));
    CHECK_OK(cllm_gpt_get_adam(m, fm, fv));
    ref_to_float(rp, mo, P);
    CHECK_ALLCLOSE("AdamW m after 6 steps", fm, rp, P, 1e-7, 1e-3);
    CHECK_OK(cllm_gpt_set_adam(m, fm, fv)); /* round trip */

    /* 7. Wrong state and bad input: one clear error each, nothing crashes. */
    CHECK(cllm_gpt_get_logits(m, 0, 0, fm) == CLLM_ERR_STATE); /* the backward consumed them */
    CHECK_OK(cllm_gpt_forward(m, tok, tg, B, T));
    CHECK_OK(cllm_gpt_backward(m, 1.0f));
    CHECK(cllm_gpt_backward(m, 1.0f) == CLLM_ERR_STATE);
    CHECK_OK(cllm_gpt_forward(m, tok, NULL, B, T));
    CHECK(cllm_gpt_get_loss(m, fm) == CLLM_ERR_STATE);
    CHECK(cllm_gpt_backward(m, 1.0f) == CLLM_ERR_STATE);
    CHECK(cllm_gpt_get_logits(m, B, 0, fm) == CLLM_ERR_USAGE);
    CHECK(cllm_gpt_forward(m, tok, tg, B + 1, T) == CLLM_ERR_USAGE);
    CHECK(cllm_gpt_forward(m, tok, tg, B, T + 1) == CLLM_ERR_USAGE);
    uint32_t bad[27];
    memcpy(bad, tok, sizeof bad);
    bad[13] = (uint32_t)CFG.vocab_size;
    CHECK(cllm_gpt_forward(m, bad, tg, B, T) == CLLM_ERR_USAGE);
    CHECK(strstr(cllm_last_error(), "inputs[1][4] = 101") != NULL);
    bad[13] = CLLM_IGNORE_TARGET; /* ignore is for targets only */
    CHECK(cllm_gpt_forward(m, bad, tg, B, T) == CLLM_ERR_USAGE);
    cllm_adamw_params bad_hp = hp;
    bad_hp.beta2 = 1.0f;
    CHECK(cllm_gpt_adamw_step(m, &bad_hp, 1) == CLLM_ERR_USAGE);
    CHECK(cllm_gpt_adamw_step(m, &hp, 0) == CLLM_ERR_USAGE);
    CHECK(cllm_gpt_clip_grad_norm(m, -1.0f, NULL) == CLLM_ERR_USAGE);

    /* 8. Without training: the same logits and losses; no gradients. */
    cllm_gpt *mi = NULL;
    cllm_gpt_opts io = {.max_batch = B, .max_seq = T, .training = false, .keep_attention = true};
    CHECK_OK(cllm_gpt_init(&mi, rt, &CFG, &io));
    if (mi) {
        ref_to_float(fp, p, P);
        CHECK_OK(cllm_gpt_set_params(mi, fp));
        compare_forward(mi, &r, p, tok, tg, "inference-only model");
        CHECK(cllm_gpt_backward(mi, 1.0f) == CLLM_ERR_STATE);
        float *a0 = malloc((size_t)T * T * sizeof(float)),
              *r0 = malloc((size_t)T * T * sizeof(float));
        CHECK_OK(cllm_gpt_get_attention(mi, 0, 1, 2, a0)); /* kept: keep_attention */
        ref_to_float(r0, r.att + ((size_t)1 * CFG.n_head + 2) * T * T, (size_t)T * T);
        CHECK_ALLCLOSE("attention of layer 0 kept without training", a0, r0, (size_t)T * T, 1e-6,
                       1e-4);
        free(a0), free(r0);
        CHECK(cllm_gpt_get_grads(mi, fg) == CLLM_ERR_STATE);
        CHECK(cllm_gpt_memory_required(&CFG, &io) < cllm_gpt_memory_required(&CFG, &opts));
    }
    cllm_gpt_free(mi);

    /* 9. GPT-2 initialisation: deterministic, the right spreads, zeros and ones. */
    CHECK_OK(cllm_gpt_init_weights(m, 1234));
    CHECK_OK(cllm_gpt_get_params(m, fp));
    CHECK_OK(cllm_gpt_init_weights(m, 1234));
    CHECK_OK(cllm_gpt_get_params(m, fg));
    CHECK(memcmp(fp, fg, P * sizeof(float)) == 0);
    for (int t = 0; t < CLLM_P_COUNT; t++) {
        size_t n = t == CLLM_P_WTE ? (size_t)CFG.vocab_size * CFG.n_embd : lay.numel[t];
        double s = 0, s2 = 0;
        for (size_t i = 0; i < n; i++)
            s += fp[lay.offset[t] + i], s2 += fp[lay.offset[t] + i] * fp[lay.offset[t] + i];
        double mean = s / n, sd = sqrt(s2 / n - mean * mean);
        bool proj = t == CLLM_P_ATTPROJW || t == CLLM_P_FCPROJW;
        if (cllm_gpt_param_decays(t)) {
            double want = proj ? 0.02 / sqrt(2.0 * CFG.n_layer) : 0.02;
            CHECK_MSG(fabs(sd - want) < 0.1 * want && fabs(mean) < 0.1 * want,
                      "init of tensor %d: mean %.4g sd %.4g, want 0 and %.4g", t, mean, sd, want);
        } else {
            double want = t == CLLM_P_LN1W || t == CLLM_P_LN2W || t == CLLM_P_LNFW ? 1.0 : 0.0;
            CHECK_MSG(mean == want && sd == 0, "init of tensor %d: mean %g sd %g, want %g", t, mean,
                      sd, want);
        }
    }
    for (size_t i = (size_t)CFG.vocab_size * CFG.n_embd; i < lay.numel[CLLM_P_WTE]; i++)
        if (fp[i] != 0) {
            CHECK_MSG(false, "wte padding element %zu is %g", i, fp[i]);
            break;
        }
    cllm_gpt_free(m);
    cllm_gpt_free(NULL);

    /* 10. The softmax of every layer and head, kept by the training model. */
    ref_gpt_forward(&r, p, tok, tg);
    ref_to_float(fp, p, P);
    CHECK_OK(cllm_gpt_init(&m, rt, &CFG, &opts));
    CHECK_OK(cllm_gpt_set_params(m, fp));
    CHECK_OK(cllm_gpt_forward(m, tok, tg, B, T));
    float *att = malloc((size_t)T * T * sizeof(float)),
          *ratt = malloc((size_t)T * T * sizeof(float));
    for (int l = 0; l < CFG.n_layer; l++)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < CFG.n_head; h++) {
                CHECK_OK(cllm_gpt_get_attention(m, l, b, h, att));
                ref_to_float(ratt, r.att + (((size_t)l * B + b) * CFG.n_head + h) * T * T,
                             (size_t)T * T);
                CHECK_ALLCLOSE("attention capture", att, ratt, (size_t)T * T, 1e-6, 1e-4);
            }
    CHECK(cllm_gpt_get_attention(m, CFG.n_layer, 0, 0, att) == CLLM_ERR_USAGE);
    CHECK(cllm_gpt_get_attention(m, 0, 0, CFG.n_head, att) == CLLM_ERR_USAGE);
    CHECK(cllm_gpt_forward_cached(m, tok, B, 1, 0) == CLLM_ERR_STATE); /* no kv_cache */
    cllm_gpt_free(m);

    /* 11. Generation with the key/value cache: a prompt of 4, then one token at a time, then two
     * at once, must give the logits of the full forward at each new position; without
     * keep_attention only the last layer's softmax is kept. */
    cllm_gpt_opts go = {.max_batch = B, .max_seq = T, .training = false, .kv_cache = true};
    CHECK_OK(cllm_gpt_init(&m, rt, &CFG, &go));
    CHECK_OK(cllm_gpt_set_params(m, fp));
    const int chunks[][2] = {{0, 4}, {4, 1}, {5, 1}, {6, 2}, {8, 1}};
    float *lg = malloc((size_t)CFG.vocab_size * sizeof(float)),
          *rl = malloc((size_t)CFG.vocab_size * sizeof(float));
    uint32_t part[27];
    for (size_t c = 0; c < sizeof chunks / sizeof *chunks; c++) {
        int pos = chunks[c][0], n = chunks[c][1];
        for (int b = 0; b < B; b++)
            memcpy(part + b * n, tok + b * T + pos, (size_t)n * sizeof(uint32_t));
        CHECK_OK(cllm_gpt_forward_cached(m, part, B, n, pos));
        for (int b = 0; b < B; b++)
            for (int i = 0; i < n; i++) {
                CHECK_OK(cllm_gpt_get_logits(m, b, i, lg));
                ref_to_float(rl, r.logits + ((size_t)b * T + pos + i) * r.Vp, CFG.vocab_size);
                char w[64];
                snprintf(w, sizeof w, "cached logits at (%d, %d)", b, pos + i);
                CHECK_ALLCLOSE(w, lg, rl, CFG.vocab_size, 1e-5, 1e-5);
            }
        /* last layer, last batch row, head 1: rows pos .. pos+n-1 of the full softmax */
        CHECK_OK(cllm_gpt_get_attention(m, CFG.n_layer - 1, B - 1, 1, att));
        for (int i = 0; i < n; i++)
            ref_to_float(
                ratt + (size_t)i * (pos + n),
                r.att +
                    ((((size_t)(CFG.n_layer - 1) * B + B - 1) * CFG.n_head + 1) * T + pos + i) * T,
                (size_t)(pos + n));
        CHECK_ALLCLOSE("cached attention capture", att, ratt, (size_t)n * (pos + n), 1e-6, 1e-4);
    }
    CHECK(cllm_gpt_get_attention(m, 0, 0, 0, att) == CLLM_ERR_STATE);       /* not kept */
    CHECK(cllm_gpt_forward_cached(m, part, B, 2, 8) == CLLM_ERR_USAGE);     /* beyond max_seq */
    CHECK(cllm_gpt_forward_cached(m, part, B - 1, 1, 3) == CLLM_ERR_STATE); /* other batch */
    CHECK_OK(cllm_gpt_forward_cached(m, part, B, 1, 3)); /* back to an earlier position */
    CHECK(cllm_gpt_forward_cached(m, part, B, 1, 5) == CLLM_ERR_STATE); /* now a gap */
    CHECK_OK(cllm_gpt_forward_cached(m, part, 1, 2, 0));                /* a new batch */
    CHECK(cllm_gpt_backward(m, 1.0f) == CLLM_ERR_STATE);
    cllm_gpt_free(m);
    free(att), free(ratt), free(lg), free(rl);

    /* 12. Too large for the device: refused before allocating, with a suggestion. */
    cllm_gpt_opts big = {.max_batch = 1 << 20, .max_seq = 13, .training = true};
    cllm_gpt *mb = NULL;
    CHECK(cllm_gpt_init(&mb, rt, &CFG, &big) == CLLM_ERR_TOO_LARGE && mb == NULL);
    CHECK_MSG(strstr(cllm_last_error(), "smaller batch") != NULL, "message: %s", cllm_last_error());
    cllm_gpt_opts longer = {.max_batch = 1, .max_seq = 14, .training = true};
    CHECK(cllm_gpt_init(&mb, rt, &CFG, &longer) == CLLM_ERR_USAGE);

    ref_gpt_free(&r);
    ref_gpt_free(&r2);
    free(p), free(g), free(g2), free(fp), free(fg), free(mo), free(va), free(pp), free(rp);
    free(fm), free(fv);
    cllm_runtime_free(rt);
    return test_exit();
}
