/* tests/ref_gpt.h — a compact llm.c-style GPT-2 forward and backward on the CPU in double
 * precision, composed of the references in ref_ops.h, over cllm's parameter layout (cllm/gpt.h).
 * The independent reference of the device model for tests/test_gpt.c; with ref_gpt_set_lora,
 * also of LoRA adapters (PEFT's formula y = x W^T + b + scale * (x A^T) B^T on the targeted
 * projections, cllm/lora.h's adapter layout) for tests/test_lora.c.
 */
#ifndef CLLM_TEST_REF_GPT_H
#define CLLM_TEST_REF_GPT_H

#include "cllm/gpt.h"
#include "cllm/lora.h"
#include "ref_ops.h"

typedef struct {
    cllm_gpt_config cfg;
    cllm_gpt_layout lay;
    int B, T, Vp;
    /* activations, per layer where marked L (shapes as in host/gpt.c) */
    double *encoded;                   /* (BT, C) */
    double *ln1, *ln1_mean, *ln1_rstd; /* L */
    double *qkv, *att, *atty, *res2;   /* L (BT, 3C), L (B, NH, T, T), L (BT, C), L */
    double *ln2, *ln2_mean, *ln2_rstd; /* L */
    double *fch, *fch_gelu, *res3;     /* L (BT, 4C), L, L (BT, C) */
    double *lnf, *lnf_mean, *lnf_rstd; /* (BT, C), (BT), (BT) */
    double *logits, *losses;           /* (BT, Vp), (BT) */
    double loss;
    /* LoRA (ref_gpt_set_lora; rank 0: none): adapters in cllm/lora.h's layout, and where the
     * backward accumulates their gradients */
    cllm_lora_config lora;
    const double *ad;
    double *gad;
} ref_gpt;

static inline void ref_gpt_set_lora(ref_gpt *r, const cllm_lora_config *lc, const double *ad,
                                    double *gad) {
    r->lora = *lc;
    r->ad = ad;
    r->gad = gad;
}

/* u (N, rank) = inp (N, in) @ A^T for layer l's `target`; returns NULL when it has no adapter,
 * else u (malloc'd) and A, B, in, out, scale. */
static inline double *ref_lora_u(const ref_gpt *r, int l, int target, const double *inp, int N,
                                 size_t *ao, size_t *bo, int *in, int *out) {
    if (r->lora.rank <= 0 || !(r->lora.targets & CLLM_LORA_BIT(target))) return NULL;
    cllm_lora_dims(&r->cfg, target, in, out);
    cllm_lora_offsets(&r->cfg, &r->lora, l, target, ao, bo);
    const int R = r->lora.rank;
    double *u = ref_alloc((size_t)N * R);
    ref_linear_forward(u, inp, r->ad + *ao, NULL, N, *in, R);
    return u;
}

static inline double ref_lora_scale(const ref_gpt *r) {
    return (double)r->lora.alpha / r->lora.rank;
}

/* out (N, out) += scale * u @ B^T */
static inline void ref_lora_forward(const ref_gpt *r, int l, int target, double *out,
                                    const double *inp, int N) {
    size_t ao, bo;
    int in, oc, R = r->lora.rank;
    double *u = ref_lora_u(r, l, target, inp, N, &ao, &bo, &in, &oc);
    if (!u) return;
    const double *Bm = r->ad + bo, s = ref_lora_scale(r);
    for (int i = 0; i < N; i++)
        for (int o = 0; o < oc; o++) {
            double acc = 0;
            for (int k = 0; k < R; k++)
                acc += u[(size_t)i * R + k] * Bm[(size_t)o * R + k];
            out[(size_t)i * oc + o] += s * acc;
        }
    free(u);
}

/* From dout (N, out): dB += s dout^T u, du = s dout B, dA += du^T inp, dinp += du A. */
static inline void ref_lora_backward(const ref_gpt *r, int l, int target, double *dinp,
                                     const double *dout, const double *inp, int N) {
    size_t ao, bo;
    int in, oc, R = r->lora.rank;
    double *u = ref_lora_u(r, l, target, inp, N, &ao, &bo, &in, &oc);
    if (!u) return;
    const double *Am = r->ad + ao, *Bm = r->ad + bo, s = ref_lora_scale(r);
    double *du = ref_alloc((size_t)N * R), *dA = r->gad + ao, *dB = r->gad + bo;
    for (int i = 0; i < N; i++)
        for (int o = 0; o < oc; o++) {
            double g = s * dout[(size_t)i * oc + o];
            for (int k = 0; k < R; k++) {
                dB[(size_t)o * R + k] += g * u[(size_t)i * R + k];
                du[(size_t)i * R + k] += g * Bm[(size_t)o * R + k];
            }
        }
    for (int i = 0; i < N; i++)
        for (int k = 0; k < R; k++)
            for (int c = 0; c < in; c++) {
                dA[(size_t)k * in + c] += du[(size_t)i * R + k] * inp[(size_t)i * in + c];
                if (dinp)
                    dinp[(size_t)i * in + c] += du[(size_t)i * R + k] * Am[(size_t)k * in + c];
            }
    free(u);
    free(du);
}

static inline void ref_gpt_init(ref_gpt *r, const cllm_gpt_config *cfg, int B, int T) {
    memset(r, 0, sizeof *r);
    r->cfg = *cfg;
    cllm_gpt_layout_compute(cfg, &r->lay);
    r->B = B;
    r->T = T;
    r->Vp = cllm_gpt_padded_vocab(cfg);
    size_t BT = (size_t)B * T, C = cfg->n_embd, L = cfg->n_layer, NH = cfg->n_head;
    r->encoded = ref_alloc(BT * C);
    r->ln1 = ref_alloc(L * BT * C);
    r->ln1_mean = ref_alloc(L * BT);
    r->ln1_rstd = ref_alloc(L * BT);
    r->qkv = ref_alloc(L * BT * 3 * C);
    r->att = ref_alloc(L * B * NH * T * T);
    r->atty = ref_alloc(L * BT * C);
    r->res2 = ref_alloc(L * BT * C);
    r->ln2 = ref_alloc(L * BT * C);
    r->ln2_mean = ref_alloc(L * BT);
    r->ln2_rstd = ref_alloc(L * BT);
    r->fch = ref_alloc(L * BT * 4 * C);
    r->fch_gelu = ref_alloc(L * BT * 4 * C);
    r->res3 = ref_alloc(L * BT * C);
    r->lnf = ref_alloc(BT * C);
    r->lnf_mean = ref_alloc(BT);
    r->lnf_rstd = ref_alloc(BT);
    r->logits = ref_alloc(BT * r->Vp);
    r->losses = ref_alloc(BT);
}

static inline void ref_gpt_free(ref_gpt *r) {
    double *all[] = {r->encoded,  r->ln1,      r->ln1_mean, r->ln1_rstd, r->qkv,
                     r->att,      r->atty,     r->res2,     r->ln2,      r->ln2_mean,
                     r->ln2_rstd, r->fch,      r->fch_gelu, r->res3,     r->lnf,
                     r->lnf_mean, r->lnf_rstd, r->logits,   r->losses};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        free(all[i]);
}

/* Parameters with some spread for the tests (GPT-2's init makes every softmax nearly uniform,
 * which would let mistakes hide): weights N(0, 0.2), biases and shifts N(0, 0.1), LayerNorm gains
 * 1 + N(0, 0.1), each rounded to float; wte's padding rows zero. */
static inline void ref_gpt_random_params(test_rng *rng, const cllm_gpt_config *cfg, double *p) {
    cllm_gpt_layout lay;
    cllm_gpt_layout_compute(cfg, &lay);
    for (int t = 0; t < CLLM_P_COUNT; t++) {
        bool gain = t == CLLM_P_LN1W || t == CLLM_P_LN2W || t == CLLM_P_LNFW;
        double sd = cllm_gpt_param_decays(t) ? 0.2 : 0.1;
        for (size_t i = 0; i < lay.numel[t]; i++)
            p[lay.offset[t] + i] = (float)((gain ? 1.0 : 0.0) + sd * test_rng_normal(rng));
    }
    for (size_t i = (size_t)cfg->vocab_size * cfg->n_embd; i < lay.numel[CLLM_P_WTE]; i++)
        p[lay.offset[CLLM_P_WTE] + i] = 0;
}

/* Forward over tokens (B, T); with targets, returns the mean loss over non-ignored targets. */
static inline double ref_gpt_forward(ref_gpt *r, const double *p, const uint32_t *tok,
                                     const uint32_t *targets) {
    const cllm_gpt_config *c = &r->cfg;
    const int B = r->B, T = r->T, C = c->n_embd, NH = c->n_head, N = B * T;
    const size_t BT = (size_t)N;
    const size_t *o = r->lay.offset;
    const double eps = c->layer_norm_epsilon;
    ref_encoder_forward(r->encoded, tok, p + o[CLLM_P_WTE], p + o[CLLM_P_WPE], B, T, C);
    for (int l = 0; l < c->n_layer; l++) {
        size_t lc = (size_t)l * C;
        const double *res = l == 0 ? r->encoded : r->res3 + (l - 1) * BT * C;
        double *ln1 = r->ln1 + l * BT * C, *qkv = r->qkv + l * BT * 3 * C,
               *att = r->att + (size_t)l * B * NH * T * T, *atty = r->atty + l * BT * C,
               *res2 = r->res2 + l * BT * C, *ln2 = r->ln2 + l * BT * C,
               *fch = r->fch + l * BT * 4 * C, *fcg = r->fch_gelu + l * BT * 4 * C,
               *res3 = r->res3 + l * BT * C;
        ref_layernorm_forward(ln1, r->ln1_mean + l * BT, r->ln1_rstd + l * BT, res,
                              p + o[CLLM_P_LN1W] + lc, p + o[CLLM_P_LN1B] + lc, N, C, eps);
        ref_linear_forward(qkv, ln1, p + o[CLLM_P_QKVW] + lc * 3 * C, p + o[CLLM_P_QKVB] + 3 * lc,
                           N, C, 3 * C);
        ref_lora_forward(r, l, CLLM_LORA_QKV, qkv, ln1, N);
        ref_attention_forward(atty, att, qkv, B, T, C, NH);
        ref_linear_forward(res2, atty, p + o[CLLM_P_ATTPROJW] + lc * C, p + o[CLLM_P_ATTPROJB] + lc,
                           N, C, C);
        ref_lora_forward(r, l, CLLM_LORA_ATTPROJ, res2, atty, N);
        for (size_t i = 0; i < BT * C; i++)
            res2[i] += res[i];
        ref_layernorm_forward(ln2, r->ln2_mean + l * BT, r->ln2_rstd + l * BT, res2,
                              p + o[CLLM_P_LN2W] + lc, p + o[CLLM_P_LN2B] + lc, N, C, eps);
        ref_linear_forward(fch, ln2, p + o[CLLM_P_FCW] + lc * 4 * C, p + o[CLLM_P_FCB] + 4 * lc, N,
                           C, 4 * C);
        ref_lora_forward(r, l, CLLM_LORA_FC, fch, ln2, N);
        for (size_t i = 0; i < BT * 4 * C; i++)
            fcg[i] = ref_gelu(fch[i]);
        ref_linear_forward(res3, fcg, p + o[CLLM_P_FCPROJW] + lc * 4 * C,
                           p + o[CLLM_P_FCPROJB] + lc, N, 4 * C, C);
        ref_lora_forward(r, l, CLLM_LORA_FCPROJ, res3, fcg, N);
        for (size_t i = 0; i < BT * C; i++)
            res3[i] += res2[i];
    }
    ref_layernorm_forward(r->lnf, r->lnf_mean, r->lnf_rstd, r->res3 + (c->n_layer - 1) * BT * C,
                          p + o[CLLM_P_LNFW], p + o[CLLM_P_LNFB], N, C, eps);
    ref_linear_forward(r->logits, r->lnf, p + o[CLLM_P_WTE], NULL, N, C, r->Vp);
    r->loss = targets
                  ? ref_crossentropy_forward(r->losses, r->logits, targets, N, c->vocab_size, r->Vp)
                  : 0.0;
    return r->loss;
}

/* grads (layout.total) += d(scale * mean loss)/d(params) at the last forward. */
static inline void ref_gpt_backward(ref_gpt *r, double *g, const double *p, const uint32_t *tok,
                                    const uint32_t *targets, double scale) {
    const cllm_gpt_config *c = &r->cfg;
    const int B = r->B, T = r->T, C = c->n_embd, NH = c->n_head, N = B * T;
    const size_t BT = (size_t)N;
    const size_t *o = r->lay.offset;
    int count = 0;
    for (size_t i = 0; i < BT; i++)
        count += targets[i] != REF_IGNORE;
    double *dlogits = ref_alloc(BT * r->Vp), *dres = ref_alloc(BT * C), *dc = ref_alloc(BT * C),
           *d4c = ref_alloc(BT * 4 * C), *dqkv = ref_alloc(BT * 3 * C), *dln = ref_alloc(BT * C);
    ref_crossentropy_backward(dlogits, r->logits, targets, N, c->vocab_size, r->Vp,
                              count ? scale / count : 0.0);
    ref_linear_backward(dc, g + o[CLLM_P_WTE], NULL, dlogits, r->lnf, p + o[CLLM_P_WTE], N, C,
                        r->Vp);
    ref_layernorm_backward(dres, g + o[CLLM_P_LNFW], g + o[CLLM_P_LNFB], dc,
                           r->res3 + (c->n_layer - 1) * BT * C, r->lnf_mean, r->lnf_rstd,
                           p + o[CLLM_P_LNFW], N, C);
    for (int l = c->n_layer - 1; l >= 0; l--) {
        size_t lc = (size_t)l * C;
        const double *res = l == 0 ? r->encoded : r->res3 + (l - 1) * BT * C;
        memset(d4c, 0, BT * 4 * C * sizeof(double));
        ref_linear_backward(d4c, g + o[CLLM_P_FCPROJW] + lc * 4 * C, g + o[CLLM_P_FCPROJB] + lc,
                            dres, r->fch_gelu + l * BT * 4 * C, p + o[CLLM_P_FCPROJW] + lc * 4 * C,
                            N, 4 * C, C);
        ref_lora_backward(r, l, CLLM_LORA_FCPROJ, d4c, dres, r->fch_gelu + l * BT * 4 * C, N);
        for (size_t i = 0; i < BT * 4 * C; i++)
            d4c[i] *= ref_gelu_grad(r->fch[l * BT * 4 * C + i]);
        memset(dln, 0, BT * C * sizeof(double));
        ref_linear_backward(dln, g + o[CLLM_P_FCW] + lc * 4 * C, g + o[CLLM_P_FCB] + 4 * lc, d4c,
                            r->ln2 + l * BT * C, p + o[CLLM_P_FCW] + lc * 4 * C, N, C, 4 * C);
        ref_lora_backward(r, l, CLLM_LORA_FC, dln, d4c, r->ln2 + l * BT * C, N);
        ref_layernorm_backward(dres, g + o[CLLM_P_LN2W] + lc, g + o[CLLM_P_LN2B] + lc, dln,
                               r->res2 + l * BT * C, r->ln2_mean + l * BT, r->ln2_rstd + l * BT,
                               p + o[CLLM_P_LN2W] + lc, N, C);
        memset(dc, 0, BT * C * sizeof(double));
        ref_linear_backward(dc, g + o[CLLM_P_ATTPROJW] + lc * C, g + o[CLLM_P_ATTPROJB] + lc, dres,
                            r->atty + l * BT * C, p + o[CLLM_P_ATTPROJW] + lc * C, N, C, C);
        ref_lora_backward(r, l, CLLM_LORA_ATTPROJ, dc, dres, r->atty + l * BT * C, N);
        memset(dqkv, 0, BT * 3 * C * sizeof(double));
        ref_attention_backward(dqkv, dc, r->qkv + l * BT * 3 * C,
                               r->att + (size_t)l * B * NH * T * T, B, T, C, NH);
        memset(dln, 0, BT * C * sizeof(double));
        ref_linear_backward(dln, g + o[CLLM_P_QKVW] + lc * 3 * C, g + o[CLLM_P_QKVB] + 3 * lc, dqkv,
                            r->ln1 + l * BT * C, p + o[CLLM_P_QKVW] + lc * 3 * C, N, C, 3 * C);
        ref_lora_backward(r, l, CLLM_LORA_QKV, dln, dqkv, r->ln1 + l * BT * C, N);
        ref_layernorm_backward(dres, g + o[CLLM_P_LN1W] + lc, g + o[CLLM_P_LN1B] + lc, dln, res,
                               r->ln1_mean + l * BT, r->ln1_rstd + l * BT, p + o[CLLM_P_LN1W] + lc,
                               N, C);
    }
    ref_encoder_backward(g + o[CLLM_P_WTE], g + o[CLLM_P_WPE], dres, tok, B, T, C);
    free(dlogits), free(dres), free(dc), free(d4c), free(dqkv), free(dln);
}

/* torch.optim.AdamW's update in double; decay where cllm_gpt_param_decays(). */
static inline void ref_gpt_adamw(const cllm_gpt_layout *lay, double *p, const double *g, double *m,
                                 double *v, const cllm_adamw_params *hp, int step) {
    double bc1 = 1 - pow(hp->beta1, step), bc2 = 1 - pow(hp->beta2, step);
    for (int t = 0; t < CLLM_P_COUNT; t++)
        for (size_t i = lay->offset[t]; i < lay->offset[t] + lay->numel[t]; i++) {
            if (cllm_gpt_param_decays(t)) p[i] *= 1 - (double)hp->lr * hp->weight_decay;
            m[i] = hp->beta1 * m[i] + (1 - (double)hp->beta1) * g[i];
            v[i] = hp->beta2 * v[i] + (1 - (double)hp->beta2) * g[i] * g[i];
            p[i] -= hp->lr / bc1 * m[i] / (sqrt(v[i]) / sqrt(bc2) + hp->eps);
        }
}

#endif
