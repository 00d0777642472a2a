/* The GPT device model (cllm/gpt.h): arenas, GPT-2 initialisation, forward, backward,
 * gradient clipping and AdamW, all enqueued on the runtime's queue without synchronising.
 *
 * Shape legend (cllm/gpt.h): B batch, T sequence, C n_embd, L n_layer, NH n_head, hs = C/NH,
 * V vocab, Vp padded vocab, BT = B*T rows. The activation arena is laid out for the largest
 * batch and sequence (opts) and used partially for smaller ones.
 *
 * Four arenas, one device buffer each: params, grads, AdamW m and v (same layout), and the
 * activations. With training, every layer keeps what its backward needs (llm.c's set); without
 * it, one layer's worth is reused by every layer.
 *
 * LoRA (opts.lora.rank > 0) adds the adapter arena (cllm/lora.h layout) and, with training,
 * its gradients and moments, and then allocates no gradients or moments for the base: every
 * G() view is empty and the ops skip what would write there. The adapters' helpers are in
 * their own section below the forward; the passes call them after each targeted projection.
 */
#include "cllm/gpt.h"

#include "cllm/lora.h"
#include "ops/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Element offsets into the activation arena. Per-layer tensors (marked L) repeat every
 * `*_stride` elements when training, and exist once otherwise. */
typedef struct {
    size_t tokens, targets;         /* (B*T) uint32 */
    size_t encoded;                 /* (B*T, C) */
    size_t ln1, ln1_mean, ln1_rstd; /* L (B*T, C), L (B*T), L (B*T) */
    size_t qkvr;                    /* L (3, B, NH, T, hs) */
    size_t att;                     /* L (B, NH, T, T); per layer also with keep_attention */
    size_t atty;                    /* L (B*T, C) attention output, heads concatenated */
    size_t res2;                    /* L (B*T, C) residual after attention */
    size_t ln2, ln2_mean, ln2_rstd; /* L */
    size_t fch, fch_gelu;           /* L (B*T, 4C) */
    size_t res3;                    /* L (B*T, C) residual after the MLP */
    size_t qkv;                     /* (B*T, 3C) scratch */
    size_t y;                       /* (B, NH, T, hs) scratch */
    size_t lnf, lnf_mean, lnf_rstd; /* (B*T, C), (B*T), (B*T) */
    size_t logits;                  /* (B*T, Vp); dlogits in place after the backward */
    size_t losses, lse;             /* (B*T) */
    size_t loss;                    /* (1) */
    size_t kcache, vcache;          /* with kv_cache: L (B*NH, maxT, hs) each */
    /* training only: backward scratch */
    size_t dres;   /* (B*T, C) gradient of the residual stream */
    size_t dc;     /* (B*T, C) */
    size_t d4c;    /* (B*T, 4C) */
    size_t dqkv;   /* (B*T, 3C) */
    size_t dqkvr;  /* (3, B, NH, T, hs) */
    size_t datt;   /* (B, NH, T, T) */
    size_t dy;     /* (B, NH, T, hs) */
    size_t colsum; /* (CLLM_OPS_COLSUM_CHUNKS, 4C) */
    size_t norm;   /* (CLLM_OPS_NORM_SCRATCH) */
    /* LoRA: u = x A^T of every targeted projection, L (n targets, B*T, r); du (B*T, r) */
    size_t lora_u, lora_du;
    size_t total;
    /* strides of the per-layer tensors (0 without training: shared by all layers) */
    size_t s_bt, s_btc, s_bt4c, s_qkvr, s_att, s_kv, s_lu;
} act_layout;

struct cllm_gpt {
    cllm_runtime *rt;
    cllm_gpt_config cfg;
    cllm_gpt_opts opts;
    cllm_gpt_layout lay;
    act_layout act;
    int Vp;
    cl_mem params, grads, mom, var, acts; /* grads, mom, var: NULL under LoRA (frozen base) */
    cllm_lora_config lora;                /* rank 0: no adapters (or merged) */
    size_t lora_n;                        /* adapter floats */
    cl_mem lparams, lgrads, lmom, lvar;   /* the adapter arena, and with training its gradients
                                             and AdamW moments */
    /* the last forward */
    int B, T;
    int n_valid;            /* targets not ignored */
    bool have_forward;      /* a forward has run */
    bool have_targets;      /* ... with targets: losses exist */
    bool logits_valid;      /* the logits are still there (a backward turns them into dlogits) */
    bool logits_last;       /* ... for the last position of each row only, (B, Vp) */
    int att_rows, att_cols; /* the softmax of the last forward: (B*NH, att_rows, att_cols) */
    int cache_len, cache_B; /* positions the key/value cache holds, for a batch of cache_B */
    uint32_t *staging;      /* (2, max B*T) host copy of inputs and targets being uploaded */
    cl_event upload_done;   /* the last upload from staging */
};

/* ---------------------------------------------------------------- sizes */

static size_t align16(size_t n) {
    return (n + 15) & ~(size_t)15;
}

static void act_layout_compute(const cllm_gpt_config *cfg, const cllm_gpt_opts *o, act_layout *a) {
    const size_t BT = (size_t)o->max_batch * o->max_seq, C = (size_t)cfg->n_embd,
                 NH = (size_t)cfg->n_head, T = (size_t)o->max_seq,
                 Vp = (size_t)cllm_gpt_padded_vocab(cfg);
    const size_t L = o->training ? (size_t)cfg->n_layer : 1;
    const size_t Latt = o->training || o->keep_attention ? (size_t)cfg->n_layer : 1;
    const size_t natt = (size_t)o->max_batch * NH * T * T;
    size_t off = 0;
#define TAKE(field, n)                                                                             \
    do {                                                                                           \
        a->field = off;                                                                            \
        off += align16(n);                                                                         \
    } while (0)
    memset(a, 0, sizeof *a);
    TAKE(tokens, BT);
    TAKE(targets, BT);
    TAKE(encoded, BT * C);
    TAKE(ln1, L * BT * C);
    TAKE(ln1_mean, L * BT);
    TAKE(ln1_rstd, L * BT);
    TAKE(qkvr, L * 3 * BT * C);
    TAKE(att, Latt * natt);
    TAKE(atty, L * BT * C);
    TAKE(res2, L * BT * C);
    TAKE(ln2, L * BT * C);
    TAKE(ln2_mean, L * BT);
    TAKE(ln2_rstd, L * BT);
    TAKE(fch, L * BT * 4 * C);
    TAKE(fch_gelu, L * BT * 4 * C);
    TAKE(res3, L * BT * C);
    TAKE(qkv, BT * 3 * C);
    TAKE(y, BT * C);
    TAKE(lnf, BT * C);
    TAKE(lnf_mean, BT);
    TAKE(lnf_rstd, BT);
    TAKE(logits, BT * Vp);
    TAKE(losses, BT);
    TAKE(lse, BT);
    TAKE(loss, 1);
    if (o->kv_cache) {
        TAKE(kcache, (size_t)cfg->n_layer * BT * C);
        TAKE(vcache, (size_t)cfg->n_layer * BT * C);
        a->s_kv = BT * C;
    }
    if (o->training) {
        TAKE(dres, BT * C);
        TAKE(dc, BT * C);
        TAKE(d4c, BT * 4 * C);
        TAKE(dqkv, BT * 3 * C);
        TAKE(dqkvr, 3 * BT * C);
        TAKE(datt, natt);
        TAKE(dy, BT * C);
        TAKE(colsum, CLLM_OPS_COLSUM_CHUNKS * 4 * C);
        TAKE(norm, CLLM_OPS_NORM_SCRATCH);
    }
    if (o->lora.rank > 0) {
        size_t nt = 0;
        for (int t = 0; t < CLLM_LORA_TARGETS; t++)
            nt += (o->lora.targets & CLLM_LORA_BIT(t)) != 0;
        a->s_lu = o->training ? nt * BT * (size_t)o->lora.rank : 0;
        TAKE(lora_u, L * nt * BT * (size_t)o->lora.rank);
        if (o->training) TAKE(lora_du, BT * (size_t)o->lora.rank);
    }
#undef TAKE
    a->total = off;
    if (o->training) {
        a->s_bt = BT;
        a->s_btc = BT * C;
        a->s_bt4c = BT * 4 * C;
        a->s_qkvr = 3 * BT * C;
    }
    if (Latt > 1) a->s_att = natt;
}

size_t cllm_gpt_memory_required(const cllm_gpt_config *cfg, const cllm_gpt_opts *opts) {
    cllm_gpt_layout lay;
    act_layout a;
    cllm_gpt_layout_compute(cfg, &lay);
    act_layout_compute(cfg, opts, &a);
    /* training: parameters, gradients, m and v of what is trained (the adapters under LoRA) */
    const bool lora = opts->lora.rank > 0;
    const size_t nl = cllm_lora_numel(cfg, &opts->lora), copies = opts->training ? 4 : 1;
    return (lay.total * (opts->training && !lora ? 4 : 1) + (lora ? nl * copies : 0) + a.total) *
           sizeof(float);
}

static double mib(size_t bytes) {
    return bytes / 1048576.0;
}

/* Refuse sizes the device cannot hold, naming the arena, the limit, and a batch that fits. */
static cllm_status check_fits(const cllm_runtime *rt, const cllm_gpt_config *cfg,
                              const cllm_gpt_opts *o) {
    const cllm_device_info *dev = cllm_runtime_device(rt);
    cllm_gpt_layout lay;
    act_layout a;
    cllm_gpt_layout_compute(cfg, &lay);
    act_layout_compute(cfg, o, &a);
    size_t pbytes = lay.total * sizeof(float), abytes = a.total * sizeof(float);
    size_t lbytes = cllm_lora_numel(cfg, &o->lora) * sizeof(float);
    size_t total = cllm_gpt_memory_required(cfg, o);
    const char *what = NULL;
    size_t need = 0, limit = 0;
    if (pbytes > dev->max_alloc || lay.total > CLLM_OPS_MAX_ELEMS || lbytes > dev->max_alloc ||
        lbytes / sizeof(float) > CLLM_OPS_MAX_ELEMS) {
        if (pbytes <= dev->max_alloc && lay.total <= CLLM_OPS_MAX_ELEMS)
            return cllm_fail(CLLM_ERR_TOO_LARGE,
                             "LoRA rank %d: the adapters need a %.1f MiB buffer, more than the "
                             "largest allocation of %.1f MiB on %s: use a smaller rank",
                             o->lora.rank, mib(lbytes), mib(dev->max_alloc), dev->name);
        return cllm_fail(CLLM_ERR_TOO_LARGE,
                         "the model's %zu parameters need a %.1f MiB buffer, more than the "
                         "largest allocation of %.1f MiB on %s: use a smaller model",
                         cllm_gpt_num_params(cfg), mib(pbytes), mib(dev->max_alloc), dev->name);
    }
    if (abytes > dev->max_alloc || a.total > CLLM_OPS_MAX_ELEMS) {
        what = "the activations need one buffer of";
        need = abytes;
        limit = dev->max_alloc < (uint64_t)CLLM_OPS_MAX_ELEMS * 4
                    ? dev->max_alloc
                    : (uint64_t)CLLM_OPS_MAX_ELEMS * 4;
    } else if (total > dev->global_mem) {
        what = o->lora.rank > 0 && o->training
                   ? "parameters, adapters with their gradients and optimizer state, and "
                     "activations need"
                   : "parameters, gradients, optimizer state and activations need";
        need = total;
        limit = dev->global_mem;
    }
    if (!what) return CLLM_OK;
    /* The largest batch at this sequence length that would fit, for the suggestion. */
    int fit = 0;
    for (int b = o->max_batch - 1; b >= 1 && !fit; b--) {
        cllm_gpt_opts t = *o;
        t.max_batch = b;
        act_layout_compute(cfg, &t, &a);
        size_t ab = a.total * sizeof(float);
        if (ab <= dev->max_alloc && a.total <= CLLM_OPS_MAX_ELEMS &&
            cllm_gpt_memory_required(cfg, &t) <= dev->global_mem)
            fit = b;
    }
    char hint[96];
    if (fit)
        snprintf(hint, sizeof hint, "batch %d fits at sequence %d", fit, o->max_seq);
    else
        snprintf(hint, sizeof hint, "use a shorter sequence");
    return cllm_fail(
        CLLM_ERR_TOO_LARGE,
        "batch %d x sequence %d%s: %s %.1f MiB, more than the %.1f MiB %s on %s; "
        "use a smaller batch or sequence (%s)",
        o->max_batch, o->max_seq, o->training ? " (training)" : "", what, mib(need), mib(limit),
        limit == dev->global_mem ? "of device memory" : "largest allocation", dev->name, hint);
}

/* ---------------------------------------------------------------- life cycle */

cllm_status cllm_gpt_init(cllm_gpt **out, cllm_runtime *rt, const cllm_gpt_config *cfg,
                          const cllm_gpt_opts *opts) {
    *out = NULL;
    cllm_status st = cllm_gpt_config_validate(cfg, "model config");
    if (st != CLLM_OK) return st;
    if (opts->max_batch < 1 || opts->max_batch > 1 << 20)
        return cllm_fail(CLLM_ERR_USAGE, "batch size %d: must be between 1 and %d", opts->max_batch,
                         1 << 20);
    if (opts->max_seq < 1 || opts->max_seq > cfg->n_positions)
        return cllm_fail(CLLM_ERR_USAGE,
                         "sequence length %d: must be between 1 and the model's n_positions (%d)",
                         opts->max_seq, cfg->n_positions);
    if (opts->lora.rank != 0) {
        st = cllm_lora_config_check(cfg, &opts->lora);
        if (st != CLLM_OK) return st;
    }
    st = check_fits(rt, cfg, opts);
    if (st != CLLM_OK) return st;
    cllm_gpt *m = calloc(1, sizeof *m);
    if (!m) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    m->rt = rt;
    m->cfg = *cfg;
    m->opts = *opts;
    m->Vp = cllm_gpt_padded_vocab(cfg);
    cllm_gpt_layout_compute(cfg, &m->lay);
    act_layout_compute(cfg, opts, &m->act);
    size_t pbytes = m->lay.total * sizeof(float);
    m->staging = malloc(2 * (size_t)opts->max_batch * opts->max_seq * sizeof(uint32_t));
    if (!m->staging) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    CLLM_TRY(cllm_rt_alloc(rt, pbytes, &m->params));
    CLLM_TRY(cllm_rt_fill_zero(rt, m->params, 0, pbytes));
    if (opts->lora.rank > 0) {
        m->lora = opts->lora;
        m->lora_n = cllm_lora_numel(cfg, &opts->lora);
        const size_t lb = m->lora_n * sizeof(float);
        cl_mem *bufs[] = {&m->lparams, &m->lgrads, &m->lmom, &m->lvar};
        for (int i = 0; i < (opts->training ? 4 : 1); i++) {
            CLLM_TRY(cllm_rt_alloc(rt, lb, bufs[i]));
            CLLM_TRY(cllm_rt_fill_zero(rt, *bufs[i], 0, lb));
        }
    } else if (opts->training) {
        CLLM_TRY(cllm_rt_alloc(rt, pbytes, &m->grads));
        CLLM_TRY(cllm_rt_alloc(rt, pbytes, &m->mom));
        CLLM_TRY(cllm_rt_alloc(rt, pbytes, &m->var));
        CLLM_TRY(cllm_rt_fill_zero(rt, m->grads, 0, pbytes));
        CLLM_TRY(cllm_rt_fill_zero(rt, m->mom, 0, pbytes));
        CLLM_TRY(cllm_rt_fill_zero(rt, m->var, 0, pbytes));
    }
    CLLM_TRY(cllm_rt_alloc(rt, m->act.total * sizeof(float), &m->acts));
    CLLM_TRY(cllm_rt_fill_zero(rt, m->acts, 0, m->act.total * sizeof(float)));
    *out = m;
    return CLLM_OK;
fail:
    cllm_gpt_free(m);
    return st;
}

void cllm_gpt_free(cllm_gpt *m) {
    if (!m) return;
    if (m->rt) clFinish(m->rt->queue);
    if (m->upload_done) clReleaseEvent(m->upload_done);
    cl_mem bufs[] = {m->params,  m->grads,  m->mom,  m->var, m->acts,
                     m->lparams, m->lgrads, m->lmom, m->lvar};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        if (bufs[i]) clReleaseMemObject(bufs[i]);
    free(m->staging);
    free(m);
}

const cllm_gpt_config *cllm_gpt_get_config(const cllm_gpt *m) {
    return &m->cfg;
}

const cllm_gpt_opts *cllm_gpt_get_opts(const cllm_gpt *m) {
    return &m->opts;
}

/* ---------------------------------------------------------------- parameters */

/* splitmix64 and Box-Muller: the same normals on every host and device. */
static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static double rng_normal(uint64_t *s) {
    double u1 = ((rng_next(s) >> 11) + 1.0) * 0x1.0p-53; /* (0, 1] */
    double u2 = (rng_next(s) >> 11) * 0x1.0p-53;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

cllm_status cllm_gpt_init_weights(cllm_gpt *m, uint64_t seed) {
    const cllm_gpt_config *c = &m->cfg;
    float *p = calloc(m->lay.total, sizeof(float));
    if (!p) return cllm_fail(CLLM_ERR_NOMEM, "out of memory (%zu parameters)", m->lay.total);
    const double std = c->initializer_range;
    const double proj_std = std / sqrt(2.0 * c->n_layer);
    uint64_t s = seed;
    for (int i = 0; i < CLLM_P_COUNT; i++) {
        float *t = p + m->lay.offset[i];
        size_t n = m->lay.numel[i];
        switch (i) {
        case CLLM_P_WTE: /* the padding rows stay zero */
            n = (size_t)c->vocab_size * c->n_embd;
            /* fall through */
        case CLLM_P_WPE:
        case CLLM_P_QKVW:
        case CLLM_P_FCW:
            for (size_t k = 0; k < n; k++)
                t[k] = (float)(std * rng_normal(&s));
            break;
        case CLLM_P_ATTPROJW:
        case CLLM_P_FCPROJW:
            for (size_t k = 0; k < n; k++)
                t[k] = (float)(proj_std * rng_normal(&s));
            break;
        case CLLM_P_LN1W:
        case CLLM_P_LN2W:
        case CLLM_P_LNFW:
            for (size_t k = 0; k < n; k++)
                t[k] = 1.0f;
            break;
        default: /* biases and LayerNorm shifts */
            break;
        }
    }
    cllm_status st = cllm_gpt_set_params(m, p);
    free(p);
    return st;
}

cllm_status cllm_gpt_set_params(cllm_gpt *m, const float *params) {
    cllm_status st = cllm_rt_write(m->rt, m->params, 0, params, m->lay.total * sizeof(float));
    if (st != CLLM_OK) return st;
    /* Keep the padding rows of wte at zero whatever the caller had there. */
    size_t pad = (size_t)(m->Vp - m->cfg.vocab_size) * m->cfg.n_embd;
    size_t off = m->lay.offset[CLLM_P_WTE] + (size_t)m->cfg.vocab_size * m->cfg.n_embd;
    return cllm_rt_fill_zero(m->rt, m->params, off * sizeof(float), pad * sizeof(float));
}

cllm_status cllm_gpt_get_params(cllm_gpt *m, float *params) {
    return cllm_rt_read(m->rt, m->params, 0, params, m->lay.total * sizeof(float));
}

static cllm_status need_training(const cllm_gpt *m, const char *what) {
    if (m->opts.training && (m->grads || m->lgrads)) return CLLM_OK;
    if (m->opts.training)
        return cllm_fail(CLLM_ERR_STATE,
                         "%s: the model's LoRA adapters were merged into its weights, which are "
                         "frozen: nothing is left to train",
                         what);
    return cllm_fail(CLLM_ERR_STATE,
                     "%s: the model was created without training (no gradients "
                     "or optimizer state)",
                     what);
}

/* Calls on the base's gradients or moments, which a LoRA model does not have. */
static cllm_status need_base_training(const cllm_gpt *m, const char *what) {
    cllm_status st = need_training(m, what);
    if (st != CLLM_OK || m->grads) return st;
    return cllm_fail(CLLM_ERR_STATE,
                     "%s: the base weights are frozen under LoRA (rank %d) and have no gradients "
                     "or optimizer state; use the cllm_gpt_lora_* calls for the adapters",
                     what, m->lora.rank);
}

cllm_status cllm_gpt_get_grads(cllm_gpt *m, float *grads) {
    cllm_status st = need_base_training(m, "reading gradients");
    if (st != CLLM_OK) return st;
    return cllm_rt_read(m->rt, m->grads, 0, grads, m->lay.total * sizeof(float));
}

cllm_status cllm_gpt_set_adam(cllm_gpt *m, const float *mom, const float *var) {
    cllm_status st = need_base_training(m, "setting the optimizer state");
    if (st != CLLM_OK) return st;
    st = cllm_rt_write(m->rt, m->mom, 0, mom, m->lay.total * sizeof(float));
    if (st != CLLM_OK) return st;
    return cllm_rt_write(m->rt, m->var, 0, var, m->lay.total * sizeof(float));
}

cllm_status cllm_gpt_get_adam(cllm_gpt *m, float *mom, float *var) {
    cllm_status st = need_base_training(m, "reading the optimizer state");
    if (st != CLLM_OK) return st;
    st = cllm_rt_read(m->rt, m->mom, 0, mom, m->lay.total * sizeof(float));
    if (st != CLLM_OK) return st;
    return cllm_rt_read(m->rt, m->var, 0, var, m->lay.total * sizeof(float));
}

/* ---------------------------------------------------------------- forward */

static cllm_view P(const cllm_gpt *m, int which, size_t elems) {
    return (cllm_view){m->params, m->lay.offset[which] + elems};
}
/* Empty (NULL) under LoRA: the ops then compute no gradient for the frozen tensor. */
static cllm_view G(const cllm_gpt *m, int which, size_t elems) {
    if (!m->grads) return (cllm_view){NULL, 0};
    return (cllm_view){m->grads, m->lay.offset[which] + elems};
}
static cllm_view A(const cllm_gpt *m, size_t off) {
    return (cllm_view){m->acts, off};
}

/* ---------------------------------------------------------------- LoRA on the projections */

static bool has_lora(const cllm_gpt *m, int target) {
    return m->lora.rank > 0 && (m->lora.targets & CLLM_LORA_BIT(target));
}

/* Layer l's u = x A^T for `target`: (B*T, r) in its slot of the activation arena. */
static cllm_view lora_u(const cllm_gpt *m, int l, int target) {
    size_t slot = 0;
    for (int t = 0; t < target; t++)
        slot += (m->lora.targets & CLLM_LORA_BIT(t)) != 0;
    const size_t BT = (size_t)m->opts.max_batch * m->opts.max_seq;
    return A(m, m->act.lora_u + l * m->act.s_lu + slot * BT * (size_t)m->lora.rank);
}

/* out (N, out) += scale * (inp A^T) B^T after layer l's projection `target`, if it has one. */
static cllm_status lora_forward(cllm_gpt *m, int l, int target, cllm_view out, cllm_view inp,
                                int N) {
    if (!has_lora(m, target)) return CLLM_OK;
    int in, oc;
    size_t ao, bo;
    cllm_lora_dims(&m->cfg, target, &in, &oc);
    cllm_lora_offsets(&m->cfg, &m->lora, l, target, &ao, &bo);
    return cllm_op_lora_forward(m->rt, out, lora_u(m, l, target), inp, (cllm_view){m->lparams, ao},
                                (cllm_view){m->lparams, bo}, N, in, oc, m->lora.rank,
                                cllm_lora_scale(&m->lora));
}

/* The adapter's gradients from dout (N, out), and its share of dinp (N, in) added (dinp.mem
 * NULL: not wanted). */
static cllm_status lora_backward(cllm_gpt *m, int l, int target, cllm_view dinp, cllm_view dout,
                                 cllm_view inp, int N) {
    if (!has_lora(m, target)) return CLLM_OK;
    int in, oc;
    size_t ao, bo;
    cllm_lora_dims(&m->cfg, target, &in, &oc);
    cllm_lora_offsets(&m->cfg, &m->lora, l, target, &ao, &bo);
    return cllm_op_lora_backward(
        m->rt, dinp, (cllm_view){m->lgrads, ao}, (cllm_view){m->lgrads, bo}, A(m, m->act.lora_du),
        dout, inp, lora_u(m, l, target), (cllm_view){m->lparams, ao}, (cllm_view){m->lparams, bo},
        N, in, oc, m->lora.rank, cllm_lora_scale(&m->lora));
}

/* Layer l's attention tensors for a forward over B x T without a cache: q, k, v in its qkvr
 * (3, B*NH, T, hs), the softmax in its att. */
static cllm_attention_acts layer_attention(const cllm_gpt *m, int l, int B, int T) {
    const act_layout *a = &m->act;
    size_t part = (size_t)B * T * m->cfg.n_embd, q = a->qkvr + l * a->s_qkvr;
    cllm_attention_acts at = {
        A(m, q), A(m, q + part), A(m, q + 2 * part), A(m, a->att + l * a->s_att), A(m, a->y), T, 0};
    return at;
}

/* Copy inputs (and targets) into the staging area and enqueue a non-blocking upload: the host
 * waits only for the previous upload from the same area, never for the device's compute. */
static cllm_status upload_ids(cllm_gpt *m, const uint32_t *inputs, const uint32_t *targets,
                              size_t n) {
    cllm_status st = CLLM_OK;
    if (m->upload_done) {
        CLLM_CL_TRY(clWaitForEvents(1, &m->upload_done));
        clReleaseEvent(m->upload_done);
        m->upload_done = NULL;
    }
    memcpy(m->staging, inputs, n * sizeof(uint32_t));
    size_t count = n;
    if (targets) {
        /* tokens and targets are adjacent in the arena only when n == max B*T; upload apart */
        memcpy(m->staging + n, targets, n * sizeof(uint32_t));
        CLLM_CL_TRY(clEnqueueWriteBuffer(m->rt->queue, m->acts, CL_FALSE,
                                         m->act.targets * sizeof(float), n * sizeof(uint32_t),
                                         m->staging + n, 0, NULL, NULL));
    }
    CLLM_CL_TRY(clEnqueueWriteBuffer(m->rt->queue, m->acts, CL_FALSE, m->act.tokens * sizeof(float),
                                     count * sizeof(uint32_t), m->staging, 0, NULL,
                                     &m->upload_done));
fail:
    return st;
}

static cllm_status check_ids(const cllm_gpt *m, const uint32_t *ids, size_t n, int T,
                             const char *what, bool allow_ignore, int *n_valid) {
    int valid = 0;
    for (size_t i = 0; i < n; i++) {
        if (allow_ignore && ids[i] == CLLM_IGNORE_TARGET) continue;
        if (ids[i] >= (uint32_t)m->cfg.vocab_size)
            return cllm_fail(CLLM_ERR_USAGE,
                             "%s[%zu][%zu] = %u is not a token of this model (vocab_size %d)%s",
                             what, i / (size_t)T, i % (size_t)T, ids[i], m->cfg.vocab_size,
                             allow_ignore ? " nor CLLM_IGNORE_TARGET" : "");
        valid++;
    }
    if (n_valid) *n_valid = valid;
    return CLLM_OK;
}

/* The forward pass over tokens already uploaded: B sequences of n positions starting at `pos`.
 * Without `cached`, attention sees just these positions (pos = 0, every layer keeps q, k, v for
 * the backward); with it, keys and values go to and come from the key/value cache. */
static cllm_status forward_body(cllm_gpt *m, int B, int n, int pos, bool cached, bool targets,
                                int n_valid, bool last_only) {
    cllm_runtime *rt = m->rt;
    const cllm_gpt_config *c = &m->cfg;
    const int C = c->n_embd, L = c->n_layer, NH = c->n_head, V = c->vocab_size, Vp = m->Vp;
    const act_layout *a = &m->act;
    const int N = B * n;
    const cllm_view none = {NULL, 0};
    cllm_status st = CLLM_OK;
    m->have_forward = m->have_targets = m->logits_valid = false;
    CLLM_TRY(cllm_op_encoder_forward(rt, A(m, a->encoded), A(m, a->tokens), P(m, CLLM_P_WTE, 0),
                                     P(m, CLLM_P_WPE, 0), B, n, C, pos));
    for (int l = 0; l < L; l++) {
        const size_t lc = (size_t)l * C, l3 = lc * 3, l4 = lc * 4;
        cllm_view residual = l == 0 ? A(m, a->encoded) : A(m, a->res3 + (size_t)(l - 1) * a->s_btc);
        cllm_view ln1 = A(m, a->ln1 + l * a->s_btc), ln1_mean = A(m, a->ln1_mean + l * a->s_bt),
                  ln1_rstd = A(m, a->ln1_rstd + l * a->s_bt), atty = A(m, a->atty + l * a->s_btc),
                  res2 = A(m, a->res2 + l * a->s_btc), ln2 = A(m, a->ln2 + l * a->s_btc),
                  ln2_mean = A(m, a->ln2_mean + l * a->s_bt),
                  ln2_rstd = A(m, a->ln2_rstd + l * a->s_bt), fch = A(m, a->fch + l * a->s_bt4c),
                  fch_gelu = A(m, a->fch_gelu + l * a->s_bt4c), res3 = A(m, a->res3 + l * a->s_btc);
        cllm_attention_acts at = layer_attention(m, l, B, n);
        if (cached) {
            at.k = A(m, a->kcache + l * a->s_kv);
            at.v = A(m, a->vcache + l * a->s_kv);
            at.Tmax = m->opts.max_seq;
            at.pos = pos;
        }
        CLLM_TRY(cllm_op_layernorm_forward(rt, ln1, ln1_mean, ln1_rstd, residual,
                                           P(m, CLLM_P_LN1W, lc), P(m, CLLM_P_LN1B, lc), N, C,
                                           c->layer_norm_epsilon));
        CLLM_TRY(cllm_op_linear_forward(rt, A(m, a->qkv), none, ln1, P(m, CLLM_P_QKVW, l3 * C),
                                        P(m, CLLM_P_QKVB, l3), N, C, 3 * C));
        CLLM_TRY(lora_forward(m, l, CLLM_LORA_QKV, A(m, a->qkv), ln1, N));
        CLLM_TRY(cllm_op_attention_forward(rt, atty, at, A(m, a->qkv), B, n, C, NH));
        CLLM_TRY(cllm_op_linear_forward(rt, res2, residual, atty, P(m, CLLM_P_ATTPROJW, lc * C),
                                        P(m, CLLM_P_ATTPROJB, lc), N, C, C));
        CLLM_TRY(lora_forward(m, l, CLLM_LORA_ATTPROJ, res2, atty, N));
        CLLM_TRY(cllm_op_layernorm_forward(rt, ln2, ln2_mean, ln2_rstd, res2, P(m, CLLM_P_LN2W, lc),
                                           P(m, CLLM_P_LN2B, lc), N, C, c->layer_norm_epsilon));
        CLLM_TRY(cllm_op_linear_forward(rt, fch, none, ln2, P(m, CLLM_P_FCW, l4 * C),
                                        P(m, CLLM_P_FCB, l4), N, C, 4 * C));
        CLLM_TRY(lora_forward(m, l, CLLM_LORA_FC, fch, ln2, N));
        CLLM_TRY(cllm_op_gelu_forward(rt, fch_gelu, fch, (size_t)N * 4 * C));
        /* Without training res3 is a single buffer that also holds this layer's input: the
         * residual is read into res2 above, so overwriting it here is safe. */
        CLLM_TRY(cllm_op_linear_forward(rt, res3, res2, fch_gelu, P(m, CLLM_P_FCPROJW, l4 * C),
                                        P(m, CLLM_P_FCPROJB, lc), N, 4 * C, C));
        CLLM_TRY(lora_forward(m, l, CLLM_LORA_FCPROJ, res3, fch_gelu, N));
    }
    cllm_view last = A(m, a->res3 + (size_t)(L - 1) * a->s_btc);
    CLLM_TRY(cllm_op_layernorm_forward(rt, A(m, a->lnf), A(m, a->lnf_mean), A(m, a->lnf_rstd), last,
                                       P(m, CLLM_P_LNFW, 0), P(m, CLLM_P_LNFB, 0), N, C,
                                       c->layer_norm_epsilon));
    /* logits (N, Vp) = lnf (N, C) @ wte^T: the LM head tied to the token embedding; with
     * last_only (B, Vp) from the last row of each sequence: lnf rows n-1, 2n-1, ... (stride
     * n*C), the largest product of a prompt pass saved but for one row per sequence */
    if (last_only)
        CLLM_TRY(cllm_op_matmul_nt(rt, A(m, a->logits), A(m, a->lnf + (size_t)(n - 1) * C),
                                   (size_t)n * C, P(m, CLLM_P_WTE, 0), B, C, Vp, 1.0f, 0.0f));
    else
        CLLM_TRY(cllm_op_linear_forward(rt, A(m, a->logits), none, A(m, a->lnf),
                                        P(m, CLLM_P_WTE, 0), none, N, C, Vp));
    if (targets)
        CLLM_TRY(cllm_op_crossentropy_forward(rt, A(m, a->loss), A(m, a->losses), A(m, a->lse),
                                              A(m, a->logits), A(m, a->targets), N, V, Vp,
                                              n_valid));
    m->B = B;
    m->T = n;
    m->n_valid = n_valid;
    m->att_rows = n;
    m->att_cols = pos + n;
    m->have_forward = true;
    m->have_targets = targets;
    m->logits_valid = true;
    m->logits_last = last_only;
fail:
    return st;
}

cllm_status cllm_gpt_forward(cllm_gpt *m, const uint32_t *inputs, const uint32_t *targets, int B,
                             int T) {
    if (B < 1 || B > m->opts.max_batch || T < 1 || T > m->opts.max_seq)
        return cllm_fail(CLLM_ERR_USAGE,
                         "forward over batch %d x sequence %d: the model was created for at most "
                         "%d x %d",
                         B, T, m->opts.max_batch, m->opts.max_seq);
    const size_t BT = (size_t)B * T;
    int n_valid = 0;
    cllm_status st = check_ids(m, inputs, BT, T, "inputs", false, NULL);
    if (st == CLLM_OK && targets) st = check_ids(m, targets, BT, T, "targets", true, &n_valid);
    if (st == CLLM_OK) st = upload_ids(m, inputs, targets, BT);
    if (st == CLLM_OK) st = forward_body(m, B, T, 0, false, targets != NULL, n_valid, false);
    return st;
}

static cllm_status forward_cached(cllm_gpt *m, const uint32_t *tokens, int B, int n, int pos,
                                  bool last_only) {
    if (!m->opts.kv_cache)
        return cllm_fail(CLLM_ERR_STATE, "cached forward: the model was created without a "
                                         "key/value cache (opts.kv_cache)");
    if (B < 1 || B > m->opts.max_batch || n < 1 || pos < 0 || pos + n > m->opts.max_seq)
        return cllm_fail(CLLM_ERR_USAGE,
                         "cached forward of batch %d x %d positions from position %d: the model "
                         "holds at most batch %d x %d positions",
                         B, n, pos, m->opts.max_batch, m->opts.max_seq);
    if (pos > m->cache_len || (pos > 0 && B != m->cache_B))
        return cllm_fail(CLLM_ERR_STATE,
                         "cached forward from position %d for batch %d: the cache holds %d "
                         "positions for batch %d",
                         pos, B, m->cache_len, m->cache_B);
    cllm_status st = check_ids(m, tokens, (size_t)B * n, n, "tokens", false, NULL);
    if (st == CLLM_OK) st = upload_ids(m, tokens, NULL, (size_t)B * n);
    if (st == CLLM_OK) st = forward_body(m, B, n, pos, true, false, 0, last_only);
    /* On failure the cache may hold part of this call: only what came before is trusted. */
    m->cache_B = B;
    m->cache_len = st == CLLM_OK ? pos + n : pos;
    return st;
}

cllm_status cllm_gpt_cache_broadcast(cllm_gpt *m, int B, int n_pos) {
    if (!m->opts.kv_cache)
        return cllm_fail(CLLM_ERR_STATE, "cache broadcast: the model was created without a "
                                         "key/value cache (opts.kv_cache)");
    if (B < 1 || B > m->opts.max_batch || n_pos < 1)
        return cllm_fail(CLLM_ERR_USAGE,
                         "cache broadcast of %d positions to batch %d: the model holds at most "
                         "batch %d",
                         n_pos, B, m->opts.max_batch);
    if (n_pos > m->cache_len)
        return cllm_fail(CLLM_ERR_STATE,
                         "cache broadcast of %d positions: the cache holds %d positions", n_pos,
                         m->cache_len);
    /* Per layer the cache is (max_batch*NH, maxT, hs): row b's heads are NH blocks of maxT*hs
     * floats, so one rectangle per layer, tensor and destination row: x = the n_pos*hs floats
     * of a head, y = the NH heads. (One rectangle over all layers would be shorter, but its
     * bounding range overlaps the source's, which OpenCL refuses within one buffer.) */
    const act_layout *a = &m->act;
    const size_t hs = (size_t)m->cfg.n_embd / m->cfg.n_head, NH = (size_t)m->cfg.n_head,
                 Tm = (size_t)m->opts.max_seq, f = sizeof(float);
    const size_t region[3] = {(size_t)n_pos * hs * f, NH, 1};
    const size_t row_pitch = Tm * hs * f;
    cllm_status st = CLLM_OK;
    for (int t = 0; t < 2; t++)
        for (int l = 0; l < m->cfg.n_layer; l++) {
            size_t base = ((t == 0 ? a->kcache : a->vcache) + (size_t)l * a->s_kv) * f;
            for (int b = 1; b < B; b++) {
                /* origins as (byte in row, row): PoCL's overlap check wants x < row_pitch */
                const size_t src[3] = {base % row_pitch, base / row_pitch, 0},
                             dst[3] = {base % row_pitch, base / row_pitch + (size_t)b * NH, 0};
                CLLM_CL_TRY(clEnqueueCopyBufferRect(m->rt->queue, m->acts, m->acts, src, dst,
                                                    region, row_pitch, 0, row_pitch, 0, 0, NULL,
                                                    NULL));
            }
        }
    m->cache_B = B;
    m->cache_len = n_pos;
fail:
    return st;
}

cllm_status cllm_gpt_forward_cached(cllm_gpt *m, const uint32_t *tokens, int B, int n, int pos) {
    return forward_cached(m, tokens, B, n, pos, false);
}

cllm_status cllm_gpt_forward_cached_last(cllm_gpt *m, const uint32_t *tokens, int B, int n,
                                         int pos) {
    return forward_cached(m, tokens, B, n, pos, true);
}

cllm_status cllm_gpt_get_attention(cllm_gpt *m, int layer, int b, int h, float *att) {
    if (!m->have_forward) return cllm_fail(CLLM_ERR_STATE, "no attention: no forward pass has run");
    const int L = m->cfg.n_layer;
    if (layer < 0 || layer >= L || b < 0 || b >= m->B || h < 0 || h >= m->cfg.n_head)
        return cllm_fail(CLLM_ERR_USAGE,
                         "attention of layer %d, batch row %d, head %d: the model has %d layers "
                         "and %d heads, the last forward %d rows",
                         layer, b, h, L, m->cfg.n_head, m->B);
    if (m->act.s_att == 0 && layer != L - 1)
        return cllm_fail(CLLM_ERR_STATE,
                         "attention of layer %d: only the last layer's is kept (create the model "
                         "with keep_attention or training)",
                         layer);
    size_t block = (size_t)m->att_rows * m->att_cols;
    size_t off =
        m->act.att + (size_t)layer * m->act.s_att + ((size_t)b * m->cfg.n_head + h) * block;
    return cllm_rt_read(m->rt, m->acts, off * sizeof(float), att, block * sizeof(float));
}

cllm_status cllm_gpt_get_loss(cllm_gpt *m, float *loss) {
    if (!m->have_targets)
        return cllm_fail(CLLM_ERR_STATE, "no loss: the last forward pass had no targets");
    return cllm_rt_read(m->rt, m->acts, m->act.loss * sizeof(float), loss, sizeof(float));
}

cllm_status cllm_gpt_get_token_losses(cllm_gpt *m, float *losses) {
    if (!m->have_targets)
        return cllm_fail(CLLM_ERR_STATE, "no losses: the last forward pass had no targets");
    return cllm_rt_read(m->rt, m->acts, m->act.losses * sizeof(float), losses,
                        (size_t)m->B * m->T * sizeof(float));
}

cllm_status cllm_gpt_get_logits(cllm_gpt *m, int b, int t, float *logits) {
    if (!m->logits_valid)
        return cllm_fail(CLLM_ERR_STATE, m->have_forward
                                             ? "no logits: the backward pass has replaced them "
                                               "with their gradients"
                                             : "no logits: no forward pass has run");
    if (b < 0 || b >= m->B || t < 0 || t >= m->T)
        return cllm_fail(CLLM_ERR_USAGE, "logits at (%d, %d): the last forward was %d x %d", b, t,
                         m->B, m->T);
    if (m->logits_last && t != m->T - 1)
        return cllm_fail(CLLM_ERR_STATE,
                         "logits at (%d, %d): the last forward computed only position %d's", b, t,
                         m->T - 1);
    size_t row = m->logits_last ? (size_t)b : (size_t)b * m->T + t;
    return cllm_rt_read(m->rt, m->acts, (m->act.logits + row * m->Vp) * sizeof(float), logits,
                        (size_t)m->cfg.vocab_size * sizeof(float));
}

/* ---------------------------------------------------------------- backward */

cllm_status cllm_gpt_zero_grad(cllm_gpt *m) {
    cllm_status st = need_training(m, "zeroing gradients");
    if (st != CLLM_OK) return st;
    if (!m->grads) return cllm_rt_fill_zero(m->rt, m->lgrads, 0, m->lora_n * sizeof(float));
    return cllm_rt_fill_zero(m->rt, m->grads, 0, m->lay.total * sizeof(float));
}

cllm_status cllm_gpt_backward(cllm_gpt *m, float scale) {
    cllm_status st = need_training(m, "backward pass");
    if (st != CLLM_OK) return st;
    if (!m->have_targets || !m->logits_valid)
        return cllm_fail(CLLM_ERR_STATE, !m->have_targets
                                             ? "backward pass: the last forward pass had no "
                                               "targets"
                                             : "backward pass: already done for this forward pass");
    cllm_runtime *rt = m->rt;
    const cllm_gpt_config *c = &m->cfg;
    const int C = c->n_embd, L = c->n_layer, NH = c->n_head, V = c->vocab_size, Vp = m->Vp;
    const int B = m->B, T = m->T, N = B * T;
    const act_layout *a = &m->act;
    const cllm_view dres = A(m, a->dres), dc = A(m, a->dc), d4c = A(m, a->d4c),
                    dqkv = A(m, a->dqkv), colsum = A(m, a->colsum), none = {NULL, 0};
    const float dloss = m->n_valid ? scale / (float)m->n_valid : 0.0f;
    /* Under LoRA the base is frozen (G() views are empty): gradients still flow through every
     * weight to the inputs, except below layer 0's qkv projection, where only the embeddings
     * and LayerNorm 1 of layer 0 would receive them. */
    const bool frozen = m->grads == NULL;

    m->logits_valid = false;
    CLLM_TRY(cllm_op_crossentropy_backward(rt, A(m, a->logits), A(m, a->lse), A(m, a->targets), N,
                                           V, Vp, dloss));
    /* LM head: dlnf = dlogits @ wte, dwte += dlogits^T @ lnf */
    CLLM_TRY(cllm_op_linear_backward(rt, dc, G(m, CLLM_P_WTE, 0), none, colsum, A(m, a->logits),
                                     A(m, a->lnf), P(m, CLLM_P_WTE, 0), N, C, Vp, false));
    cllm_view last = A(m, a->res3 + (size_t)(L - 1) * a->s_btc);
    CLLM_TRY(cllm_op_layernorm_backward(rt, dres, G(m, CLLM_P_LNFW, 0), G(m, CLLM_P_LNFB, 0),
                                        colsum, dc, last, A(m, a->lnf_mean), A(m, a->lnf_rstd),
                                        P(m, CLLM_P_LNFW, 0), N, C, false));
    for (int l = L - 1; l >= 0; l--) {
        const size_t lc = (size_t)l * C, l3 = lc * 3, l4 = lc * 4;
        cllm_view residual = l == 0 ? A(m, a->encoded) : A(m, a->res3 + (size_t)(l - 1) * a->s_btc);
        cllm_view ln1 = A(m, a->ln1 + l * a->s_btc), ln1_mean = A(m, a->ln1_mean + l * a->s_bt),
                  ln1_rstd = A(m, a->ln1_rstd + l * a->s_bt), atty = A(m, a->atty + l * a->s_btc),
                  res2 = A(m, a->res2 + l * a->s_btc), ln2 = A(m, a->ln2 + l * a->s_btc),
                  ln2_mean = A(m, a->ln2_mean + l * a->s_bt),
                  ln2_rstd = A(m, a->ln2_rstd + l * a->s_bt), fch = A(m, a->fch + l * a->s_bt4c),
                  fch_gelu = A(m, a->fch_gelu + l * a->s_bt4c);
        cllm_attention_acts at = layer_attention(m, l, B, T);
        cllm_attention_grads ag = {A(m, a->dqkvr), A(m, a->datt), A(m, a->dy)};
        /* dres holds d(res3): the MLP branch, then its LayerNorm adds into dres = d(res2) */
        CLLM_TRY(cllm_op_linear_backward(rt, d4c, G(m, CLLM_P_FCPROJW, l4 * C),
                                         G(m, CLLM_P_FCPROJB, lc), colsum, dres, fch_gelu,
                                         P(m, CLLM_P_FCPROJW, l4 * C), N, 4 * C, C, false));
        CLLM_TRY(lora_backward(m, l, CLLM_LORA_FCPROJ, d4c, dres, fch_gelu, N));
        CLLM_TRY(cllm_op_gelu_backward(rt, d4c, fch, d4c, (size_t)N * 4 * C));
        CLLM_TRY(cllm_op_linear_backward(rt, dc, G(m, CLLM_P_FCW, l4 * C), G(m, CLLM_P_FCB, l4),
                                         colsum, d4c, ln2, P(m, CLLM_P_FCW, l4 * C), N, C, 4 * C,
                                         false));
        CLLM_TRY(lora_backward(m, l, CLLM_LORA_FC, dc, d4c, ln2, N));
        CLLM_TRY(cllm_op_layernorm_backward(rt, dres, G(m, CLLM_P_LN2W, lc), G(m, CLLM_P_LN2B, lc),
                                            colsum, dc, res2, ln2_mean, ln2_rstd,
                                            P(m, CLLM_P_LN2W, lc), N, C, true));
        /* the attention branch, then LayerNorm 1 adds into dres = d(residual) */
        CLLM_TRY(cllm_op_linear_backward(rt, dc, G(m, CLLM_P_ATTPROJW, lc * C),
                                         G(m, CLLM_P_ATTPROJB, lc), colsum, dres, atty,
                                         P(m, CLLM_P_ATTPROJW, lc * C), N, C, C, false));
        CLLM_TRY(lora_backward(m, l, CLLM_LORA_ATTPROJ, dc, dres, atty, N));
        CLLM_TRY(cllm_op_attention_backward(rt, dqkv, ag, dc, at, B, T, C, NH));
        const bool stop = frozen && l == 0; /* nothing below needs d(ln1) */
        CLLM_TRY(cllm_op_linear_backward(rt, stop ? none : dc, G(m, CLLM_P_QKVW, l3 * C),
                                         G(m, CLLM_P_QKVB, l3), colsum, dqkv, ln1,
                                         P(m, CLLM_P_QKVW, l3 * C), N, C, 3 * C, false));
        CLLM_TRY(lora_backward(m, l, CLLM_LORA_QKV, stop ? none : dc, dqkv, ln1, N));
        if (!stop)
            CLLM_TRY(cllm_op_layernorm_backward(
                rt, dres, G(m, CLLM_P_LN1W, lc), G(m, CLLM_P_LN1B, lc), colsum, dc, residual,
                ln1_mean, ln1_rstd, P(m, CLLM_P_LN1W, lc), N, C, true));
    }
    if (!frozen)
        CLLM_TRY(cllm_op_encoder_backward(rt, G(m, CLLM_P_WTE, 0), G(m, CLLM_P_WPE, 0), dres,
                                          A(m, a->tokens), B, T, C));
    return CLLM_OK;
fail:
    return st;
}

/* ---------------------------------------------------------------- optimizer */

cllm_status cllm_gpt_clip_grad_norm(cllm_gpt *m, float max_norm, float *norm) {
    cllm_status st = need_training(m, "gradient clipping");
    if (st != CLLM_OK) return st;
    if (!(max_norm >= 0.0f) || isinf(max_norm))
        return cllm_fail(CLLM_ERR_USAGE, "gradient clipping: max norm %g must be finite and >= 0",
                         max_norm);
    cllm_view scratch = A(m, m->act.norm);
    /* the norm of what is trained: all gradients, or the adapters' alone under LoRA */
    st = m->grads
             ? cllm_op_clip_norm(m->rt, (cllm_view){m->grads, 0}, m->lay.total, scratch, max_norm)
             : cllm_op_clip_norm(m->rt, (cllm_view){m->lgrads, 0}, m->lora_n, scratch, max_norm);
    if (st != CLLM_OK || !norm) return st;
    return cllm_rt_read(m->rt, m->acts, (m->act.norm + CLLM_OPS_NORM_GROUPS) * sizeof(float), norm,
                        sizeof(float));
}

cllm_status cllm_gpt_adamw_step(cllm_gpt *m, const cllm_adamw_params *hp, int step) {
    cllm_status st = need_training(m, "optimizer step");
    if (st != CLLM_OK) return st;
    if (!(hp->lr >= 0.0f) || !(hp->beta1 >= 0.0f && hp->beta1 < 1.0f) ||
        !(hp->beta2 >= 0.0f && hp->beta2 < 1.0f) || !(hp->eps > 0.0f) ||
        !(hp->weight_decay >= 0.0f) || step < 1)
        return cllm_fail(CLLM_ERR_USAGE,
                         "AdamW: lr %g, betas (%g, %g), eps %g, weight decay %g, step %d: need "
                         "lr >= 0, 0 <= beta < 1, eps > 0, weight decay >= 0, step >= 1",
                         hp->lr, hp->beta1, hp->beta2, hp->eps, hp->weight_decay, step);
    cllm_adamw_spec s = {.lr = hp->lr,
                         .beta1 = hp->beta1,
                         .beta2 = hp->beta2,
                         .eps = hp->eps,
                         .weight_decay = hp->weight_decay,
                         .step = step};
    if (!m->grads) { /* LoRA: every adapter matrix decays */
        s.decay_lo[0] = 0;
        s.decay_hi[0] = m->lora_n;
        s.n_decay = 1;
        return cllm_op_adamw(m->rt, (cllm_view){m->lparams, 0}, (cllm_view){m->lgrads, 0},
                             (cllm_view){m->lmom, 0}, (cllm_view){m->lvar, 0}, m->lora_n, &s);
    }
    /* Decayed tensors as ranges of the layout, merging neighbours (wte and wpe are one). */
    for (int i = 0; i < CLLM_P_COUNT; i++) {
        if (!cllm_gpt_param_decays(i)) continue;
        size_t lo = m->lay.offset[i], hi = lo + m->lay.numel[i];
        if (s.n_decay && s.decay_hi[s.n_decay - 1] == lo) {
            s.decay_hi[s.n_decay - 1] = hi;
        } else {
            s.decay_lo[s.n_decay] = lo;
            s.decay_hi[s.n_decay] = hi;
            s.n_decay++;
        }
    }
    return cllm_op_adamw(m->rt, (cllm_view){m->params, 0}, (cllm_view){m->grads, 0},
                         (cllm_view){m->mom, 0}, (cllm_view){m->var, 0}, m->lay.total, &s);
}

/* ---------------------------------------------------------------- LoRA: state and merge */

const cllm_lora_config *cllm_gpt_get_lora(const cllm_gpt *m) {
    return &m->lora;
}

static cllm_status need_lora(const cllm_gpt *m, const char *what, bool training) {
    if (m->lora.rank == 0)
        return cllm_fail(CLLM_ERR_STATE,
                         "%s: the model has no LoRA adapters (created with opts.lora.rank 0, or "
                         "they were merged)",
                         what);
    if (training && !m->lgrads)
        return cllm_fail(CLLM_ERR_STATE,
                         "%s: the model was created without training (no adapter gradients or "
                         "optimizer state)",
                         what);
    return CLLM_OK;
}

cllm_status cllm_gpt_lora_init_weights(cllm_gpt *m, uint64_t seed) {
    cllm_status st = need_lora(m, "initialising the LoRA adapters", false);
    if (st != CLLM_OK) return st;
    float *a = malloc(m->lora_n * sizeof *a);
    if (!a) return cllm_fail(CLLM_ERR_NOMEM, "out of memory (%zu adapter values)", m->lora_n);
    cllm_lora_init_host(&m->cfg, &m->lora, seed, a);
    st = cllm_gpt_lora_set_params(m, a);
    free(a);
    return st;
}

cllm_status cllm_gpt_lora_set_params(cllm_gpt *m, const float *adapters) {
    cllm_status st = need_lora(m, "setting the LoRA adapters", false);
    if (st != CLLM_OK) return st;
    return cllm_rt_write(m->rt, m->lparams, 0, adapters, m->lora_n * sizeof(float));
}

cllm_status cllm_gpt_lora_get_params(cllm_gpt *m, float *adapters) {
    cllm_status st = need_lora(m, "reading the LoRA adapters", false);
    if (st != CLLM_OK) return st;
    return cllm_rt_read(m->rt, m->lparams, 0, adapters, m->lora_n * sizeof(float));
}

cllm_status cllm_gpt_lora_get_grads(cllm_gpt *m, float *grads) {
    cllm_status st = need_lora(m, "reading the LoRA gradients", true);
    if (st != CLLM_OK) return st;
    return cllm_rt_read(m->rt, m->lgrads, 0, grads, m->lora_n * sizeof(float));
}

cllm_status cllm_gpt_lora_set_adam(cllm_gpt *m, const float *mom, const float *var) {
    cllm_status st = need_lora(m, "setting the LoRA optimizer state", true);
    if (st == CLLM_OK) st = cllm_rt_write(m->rt, m->lmom, 0, mom, m->lora_n * sizeof(float));
    if (st == CLLM_OK) st = cllm_rt_write(m->rt, m->lvar, 0, var, m->lora_n * sizeof(float));
    return st;
}

cllm_status cllm_gpt_lora_get_adam(cllm_gpt *m, float *mom, float *var) {
    cllm_status st = need_lora(m, "reading the LoRA optimizer state", true);
    if (st == CLLM_OK) st = cllm_rt_read(m->rt, m->lmom, 0, mom, m->lora_n * sizeof(float));
    if (st == CLLM_OK) st = cllm_rt_read(m->rt, m->lvar, 0, var, m->lora_n * sizeof(float));
    return st;
}

cllm_status cllm_gpt_lora_merge(cllm_gpt *m) {
    cllm_status st = need_lora(m, "merging the LoRA adapters", false);
    if (st != CLLM_OK) return st;
    static const int weight[CLLM_LORA_TARGETS] = {CLLM_P_QKVW, CLLM_P_ATTPROJW, CLLM_P_FCW,
                                                  CLLM_P_FCPROJW};
    for (int l = 0; l < m->cfg.n_layer; l++)
        for (int t = 0; t < CLLM_LORA_TARGETS; t++) {
            if (!has_lora(m, t)) continue;
            int in, oc;
            size_t ao, bo;
            cllm_lora_dims(&m->cfg, t, &in, &oc);
            cllm_lora_offsets(&m->cfg, &m->lora, l, t, &ao, &bo);
            CLLM_TRY(cllm_op_lora_merge(m->rt, P(m, weight[t], (size_t)l * in * oc),
                                        (cllm_view){m->lparams, ao}, (cllm_view){m->lparams, bo},
                                        in, oc, m->lora.rank, cllm_lora_scale(&m->lora)));
        }
    /* The merged weights are all there is now: release the adapters (after the GEMMs). */
    CLLM_CL_TRY(clFinish(m->rt->queue));
    cl_mem *bufs[] = {&m->lparams, &m->lgrads, &m->lmom, &m->lvar};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) {
        if (*bufs[i]) clReleaseMemObject(*bufs[i]);
        *bufs[i] = NULL;
    }
    memset(&m->lora, 0, sizeof m->lora);
    m->lora_n = 0;
fail:
    return st;
}
