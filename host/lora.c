/* LoRA adapters on the host (cllm/lora.h): target names, layout, PEFT's initialisation, the
 * merge, and PEFT-format files. No OpenCL here. */
#include "cllm/lora.h"

#include "cllm/safetensors.h"
#include "cllm/util.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PEFT_PREFIX "base_model.model.transformer."
#define PEFT_PREFIX_BARE "base_model.model." /* a PEFT model around GPT2Model, not the LM head */
#define M_PREFIX "exp_avg."
#define V_PREFIX "exp_avg_sq."

static const char *const MODULES[CLLM_LORA_TARGETS] = {"attn.c_attn", "attn.c_proj", "mlp.c_fc",
                                                       "mlp.c_proj"};
/* The shortest target_modules name that selects exactly one target. */
static const char *const SHORT[CLLM_LORA_TARGETS] = {"c_attn", "attn.c_proj", "c_fc", "mlp.c_proj"};
static const char ACCEPTED[] = "c_attn, attn.c_proj, c_fc, mlp.c_proj, c_proj (both "
                               "projections), all-linear";

const char *cllm_lora_module(int target) {
    return target >= 0 && target < CLLM_LORA_TARGETS ? MODULES[target] : "?";
}

/* PEFT's rule for a list entry: the module's path ends with ".<name>" (or is <name>). Paths
 * are "transformer.h.<l>.<module>", so a name that would pick single layers ("h.0.attn.c_attn")
 * is not matched here, and is refused as unknown. */
static unsigned match_name(const char *name, size_t n) {
    if ((n == 10 && !strncmp(name, "all-linear", n)) || (n == 3 && !strncmp(name, "all", n)))
        return CLLM_LORA_ALL;
    unsigned bits = 0;
    for (int t = 0; t < CLLM_LORA_TARGETS; t++) {
        size_t m = strlen(MODULES[t]);
        if (n == m ? !strncmp(MODULES[t], name, n)
                   : n < m && MODULES[t][m - n - 1] == '.' && !strncmp(MODULES[t] + m - n, name, n))
            bits |= CLLM_LORA_BIT(t);
    }
    return bits;
}

cllm_status cllm_lora_parse_targets(const char *list, unsigned *targets) {
    *targets = 0;
    const char *p = list ? list : "";
    while (*p) {
        while (*p == ',' || isspace((unsigned char)*p))
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        size_t n = (size_t)(e - p);
        while (n > 0 && isspace((unsigned char)p[n - 1]))
            n--;
        if (n) {
            unsigned bits = match_name(p, n);
            if (!bits)
                return cllm_fail(CLLM_ERR_USAGE,
                                 "LoRA target \"%.*s\" is not a projection of "
                                 "GPT-2; accepted: %s",
                                 (int)n, p, ACCEPTED);
            *targets |= bits;
        }
        p = e;
    }
    if (!*targets)
        return cllm_fail(CLLM_ERR_USAGE, "LoRA targets: none given; accepted: %s", ACCEPTED);
    return CLLM_OK;
}

void cllm_lora_targets_text(unsigned targets, char *buf, size_t cap) {
    size_t u = 0;
    if (cap) buf[0] = 0;
    for (int t = 0; t < CLLM_LORA_TARGETS && u < cap; t++)
        if (targets & CLLM_LORA_BIT(t))
            u += (size_t)snprintf(buf + u, cap - u, "%s%s", u ? "," : "", SHORT[t]);
}

void cllm_lora_dims(const cllm_gpt_config *cfg, int target, int *in, int *out) {
    const int C = cfg->n_embd;
    static const int in_mult[CLLM_LORA_TARGETS] = {1, 1, 1, 4},
                     out_mult[CLLM_LORA_TARGETS] = {3, 1, 4, 1};
    *in = in_mult[target] * C;
    *out = out_mult[target] * C;
}

cllm_status cllm_lora_config_check(const cllm_gpt_config *cfg, const cllm_lora_config *lc) {
    if (!lc->targets || (lc->targets & ~CLLM_LORA_ALL))
        return cllm_fail(CLLM_ERR_USAGE, "LoRA targets: %s; accepted: %s",
                         lc->targets ? "unknown target bits" : "none selected", ACCEPTED);
    int limit = 0, lt = 0;
    for (int t = 0; t < CLLM_LORA_TARGETS; t++) {
        if (!(lc->targets & CLLM_LORA_BIT(t))) continue;
        int in, out;
        cllm_lora_dims(cfg, t, &in, &out);
        int w = in < out ? in : out;
        if (!limit || w < limit) limit = w, lt = t;
    }
    if (lc->rank < 1 || lc->rank > limit)
        return cllm_fail(CLLM_ERR_USAGE,
                         "LoRA rank %d: must be between 1 and %d (the narrowest targeted "
                         "projection, %s, has %d features on one side)",
                         lc->rank, limit, MODULES[lt], limit);
    if (!(lc->alpha > 0.0f) || isinf(lc->alpha))
        return cllm_fail(CLLM_ERR_USAGE,
                         "LoRA alpha %g: must be a positive number (the scale is alpha / rank)",
                         (double)lc->alpha);
    if (lc->init != CLLM_LORA_INIT_KAIMING && lc->init != CLLM_LORA_INIT_GAUSSIAN)
        return cllm_fail(CLLM_ERR_USAGE, "LoRA init %d: must be kaiming or gaussian",
                         (int)lc->init);
    return CLLM_OK;
}

float cllm_lora_scale(const cllm_lora_config *lc) {
    return lc->rank > 0 ? lc->alpha / (float)lc->rank : 0.0f;
}

/* ---------------------------------------------------------------- layout */

/* Floats of one layer's adapters, and where target t's start inside a layer. */
static size_t layer_numel(const cllm_gpt_config *cfg, const cllm_lora_config *lc, int upto) {
    size_t n = 0;
    for (int t = 0; t < upto; t++) {
        if (!(lc->targets & CLLM_LORA_BIT(t))) continue;
        int in, out;
        cllm_lora_dims(cfg, t, &in, &out);
        n += (size_t)lc->rank * ((size_t)in + (size_t)out);
    }
    return n;
}

size_t cllm_lora_numel(const cllm_gpt_config *cfg, const cllm_lora_config *lc) {
    if (lc->rank <= 0) return 0;
    return (size_t)cfg->n_layer * layer_numel(cfg, lc, CLLM_LORA_TARGETS);
}

void cllm_lora_offsets(const cllm_gpt_config *cfg, const cllm_lora_config *lc, int l, int t,
                       size_t *a_off, size_t *b_off) {
    int in, out;
    cllm_lora_dims(cfg, t, &in, &out);
    *a_off = (size_t)l * layer_numel(cfg, lc, CLLM_LORA_TARGETS) + layer_numel(cfg, lc, t);
    *b_off = *a_off + (size_t)lc->rank * in;
}

static int n_targets(unsigned targets) {
    int n = 0;
    for (int t = 0; t < CLLM_LORA_TARGETS; t++)
        n += (targets & CLLM_LORA_BIT(t)) != 0;
    return n;
}

int cllm_lora_tensor_count(const cllm_gpt_config *cfg, const cllm_lora_config *lc) {
    return lc->rank > 0 ? 2 * cfg->n_layer * n_targets(lc->targets) : 0;
}

void cllm_lora_tensor(const cllm_gpt_config *cfg, const cllm_lora_config *lc, int i,
                      cllm_lora_tensor_info *ti) {
    memset(ti, 0, sizeof *ti);
    int per = 2 * n_targets(lc->targets), k = (i % per) / 2, t = 0;
    for (int seen = -1; t < CLLM_LORA_TARGETS; t++)
        if ((lc->targets & CLLM_LORA_BIT(t)) && ++seen == k) break;
    ti->layer = i / per;
    ti->target = t;
    ti->is_b = i % 2;
    int in, out;
    cllm_lora_dims(cfg, t, &in, &out);
    size_t a, b;
    cllm_lora_offsets(cfg, lc, ti->layer, t, &a, &b);
    ti->offset = ti->is_b ? b : a;
    ti->shape[0] = ti->is_b ? out : lc->rank;
    ti->shape[1] = ti->is_b ? lc->rank : in;
    snprintf(ti->name, sizeof ti->name, PEFT_PREFIX "h.%d.%s.lora_%c.weight", ti->layer, MODULES[t],
             ti->is_b ? 'B' : 'A');
}

/* ---------------------------------------------------------------- values */

/* splitmix64: the same numbers on every host. */
static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static double rng_uniform(uint64_t *s) { /* [0, 1) */
    return (rng_next(s) >> 11) * 0x1.0p-53;
}

void cllm_lora_init_host(const cllm_gpt_config *cfg, const cllm_lora_config *lc, uint64_t seed,
                         float *adapters) {
    memset(adapters, 0, cllm_lora_numel(cfg, lc) * sizeof *adapters);
    uint64_t s = seed;
    for (int i = 0; i < cllm_lora_tensor_count(cfg, lc); i += 2) { /* the A of each pair */
        cllm_lora_tensor_info t;
        cllm_lora_tensor(cfg, lc, i, &t);
        float *a = adapters + t.offset;
        size_t n = (size_t)t.shape[0] * t.shape[1];
        if (lc->init == CLLM_LORA_INIT_GAUSSIAN) {
            /* nn.init.normal_(lora_A, std=1/r), by Box-Muller */
            for (size_t k = 0; k < n; k++) {
                double u1 = 1.0 - rng_uniform(&s), u2 = rng_uniform(&s);
                a[k] = (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2) / lc->rank);
            }
        } else {
            /* kaiming_uniform_(lora_A, a=sqrt(5)): gain sqrt(2 / (1 + 5)), bound
             * gain * sqrt(3 / fan_in) = 1 / sqrt(fan_in), fan_in = in */
            double bound = 1.0 / sqrt((double)t.shape[1]);
            for (size_t k = 0; k < n; k++)
                a[k] = (float)(bound * (2.0 * rng_uniform(&s) - 1.0));
        }
    }
}

/* Where target t's weight of layer l is in cllm's parameter layout: (out, in) row-major. */
static size_t weight_offset(const cllm_gpt_config *cfg, int l, int t) {
    static const int param[CLLM_LORA_TARGETS] = {CLLM_P_QKVW, CLLM_P_ATTPROJW, CLLM_P_FCW,
                                                 CLLM_P_FCPROJW};
    cllm_gpt_layout lay;
    cllm_gpt_layout_compute(cfg, &lay);
    int in, out;
    cllm_lora_dims(cfg, t, &in, &out);
    return lay.offset[param[t]] + (size_t)l * in * out;
}

void cllm_lora_merge(const cllm_gpt_config *cfg, const cllm_lora_config *lc, float *params,
                     const float *adapters) {
    const int r = lc->rank;
    const double scale = (double)cllm_lora_scale(lc);
    double *acc = malloc((size_t)4 * cfg->n_embd * sizeof *acc);
    if (!acc) abort(); /* 4 C doubles: a few KiB */
    for (int l = 0; l < cfg->n_layer; l++)
        for (int t = 0; t < CLLM_LORA_TARGETS; t++) {
            if (!(lc->targets & CLLM_LORA_BIT(t))) continue;
            int in, out;
            cllm_lora_dims(cfg, t, &in, &out);
            size_t ao, bo;
            cllm_lora_offsets(cfg, lc, l, t, &ao, &bo);
            const float *A = adapters + ao, *B = adapters + bo;
            float *W = params + weight_offset(cfg, l, t);
            for (int o = 0; o < out; o++) {
                /* row o of B A: sum over k of B[o][k] A[k][:] */
                for (int i = 0; i < in; i++)
                    acc[i] = 0;
                for (int k = 0; k < r; k++) {
                    double bk = B[(size_t)o * r + k];
                    const float *ak = A + (size_t)k * in;
                    for (int i = 0; i < in; i++)
                        acc[i] += bk * ak[i];
                }
                float *w = W + (size_t)o * in;
                for (int i = 0; i < in; i++)
                    w[i] = (float)(w[i] + scale * acc[i]);
            }
        }
    free(acc);
}

/* ---------------------------------------------------------------- files */

bool cllm_lora_present(const char *dir) {
    char *p = cllm_path_join(dir, CLLM_LORA_CONFIG_FILE);
    bool ok = p && cllm_is_file(p);
    free(p);
    return ok;
}

static bool all_finite(const float *x, size_t n) {
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        bad |= !isfinite(x[i]);
    return !bad;
}

typedef struct {
    const cllm_gpt_config *cfg;
    const cllm_lora_config *lc;
    const float *src[2]; /* entries [0, n) from src[0], [n, 2n) from src[1] */
    int n;
} fill_ctx;

/* Entry `index`'s floats, little-endian. */
static cllm_status fill_le(void *user, int index, void *dst, size_t bytes) {
    const fill_ctx *c = user;
    cllm_lora_tensor_info t;
    cllm_lora_tensor(c->cfg, c->lc, index % c->n, &t);
    size_t n = (size_t)t.shape[0] * t.shape[1];
    if (bytes != n * 4) return cllm_fail(CLLM_ERR_STATE, "tensor %s: size mismatch", t.name);
    const float *src = c->src[index / c->n] + t.offset;
    unsigned char *d = dst;
    for (size_t k = 0; k < n; k++) {
        uint32_t u;
        memcpy(&u, &src[k], 4);
        for (int b = 0; b < 4; b++)
            d[4 * k + (size_t)b] = (unsigned char)(u >> (8 * b));
    }
    return CLLM_OK;
}

/* Write the adapter tensors of src0 (named prefix0 + name) and src1 (prefix1 + name). */
static cllm_status write_tensors(const char *path, const cllm_gpt_config *cfg,
                                 const cllm_lora_config *lc, const float *src0, const char *prefix0,
                                 const float *src1, const char *prefix1, const cllm_st_meta *meta,
                                 int n_meta) {
    const size_t numel = cllm_lora_numel(cfg, lc);
    if (!all_finite(src0, numel) || (src1 && !all_finite(src1, numel)))
        return cllm_fail(CLLM_ERR_NUMERIC,
                         "%s: the LoRA adapters hold non-finite values (NaN or "
                         "Inf): refusing to save diverged adapters",
                         path);
    int n = cllm_lora_tensor_count(cfg, lc), total = src1 ? 2 * n : n;
    cllm_st_entry *e = calloc((size_t)total, sizeof *e);
    char(*names)[128] = calloc((size_t)total, 128);
    cllm_status st = CLLM_OK;
    if (!e || !names) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < total; i++) {
        cllm_lora_tensor_info t;
        cllm_lora_tensor(cfg, lc, i % n, &t);
        snprintf(names[i], 128, "%s%s", i < n ? prefix0 : prefix1, t.name);
        e[i].name = names[i];
        e[i].dtype = CLLM_ST_F32;
        e[i].ndim = 2;
        e[i].shape[0] = t.shape[0];
        e[i].shape[1] = t.shape[1];
    }
    fill_ctx fc = {cfg, lc, {src0, src1}, n};
    st = cllm_safetensors_save(path, e, total, meta, n_meta, fill_le, &fc);
fail:
    free(names);
    free(e);
    return st;
}

/* adapter_config.json as PEFT's LoraConfig.save_pretrained writes it (the keys every PEFT
 * release since 0.6 reads; newer keys such as use_dora are left at their defaults). */
static char *config_json(const cllm_lora_config *lc, const char *base_model) {
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    cJSON_AddItemToObject(j, "alpha_pattern", cJSON_CreateObject());
    cJSON_AddNullToObject(j, "auto_mapping");
    if (base_model)
        cJSON_AddStringToObject(j, "base_model_name_or_path", base_model);
    else
        cJSON_AddNullToObject(j, "base_model_name_or_path");
    cJSON_AddStringToObject(j, "bias", "none");
    cJSON_AddBoolToObject(j, "fan_in_fan_out", 1);
    cJSON_AddBoolToObject(j, "inference_mode", 1);
    if (lc->init == CLLM_LORA_INIT_GAUSSIAN)
        cJSON_AddStringToObject(j, "init_lora_weights", "gaussian");
    else
        cJSON_AddBoolToObject(j, "init_lora_weights", 1);
    cJSON_AddNullToObject(j, "layers_pattern");
    cJSON_AddNullToObject(j, "layers_to_transform");
    cJSON_AddNumberToObject(j, "lora_alpha", (double)lc->alpha);
    cJSON_AddNumberToObject(j, "lora_dropout", 0.0);
    cJSON_AddNullToObject(j, "modules_to_save");
    cJSON_AddStringToObject(j, "peft_type", "LORA");
    cJSON_AddNumberToObject(j, "r", lc->rank);
    cJSON_AddItemToObject(j, "rank_pattern", cJSON_CreateObject());
    cJSON_AddNullToObject(j, "revision");
    cJSON *tm = cJSON_AddArrayToObject(j, "target_modules");
    for (int t = 0; tm && t < CLLM_LORA_TARGETS; t++)
        if (lc->targets & CLLM_LORA_BIT(t)) cJSON_AddItemToArray(tm, cJSON_CreateString(SHORT[t]));
    cJSON_AddStringToObject(j, "task_type", "CAUSAL_LM");
    char *s = cJSON_Print(j), *out = s ? cllm_strdup_printf("%s\n", s) : NULL;
    free(s);
    cJSON_Delete(j);
    return out;
}

cllm_status cllm_lora_save(const char *dir, const cllm_gpt_config *cfg, const cllm_lora_config *lc,
                           const float *adapters, const char *base_model) {
    cllm_status st = cllm_lora_config_check(cfg, lc);
    if (st != CLLM_OK) return st;
    static const cllm_st_meta meta[] = {{"format", "pt"}, {"producer", "cllm"}};
    char *mp = cllm_path_join(dir, CLLM_LORA_MODEL_FILE),
         *cp = cllm_path_join(dir, CLLM_LORA_CONFIG_FILE);
    char *text = config_json(lc, base_model);
    if (!mp || !cp || !text) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    CLLM_TRY(write_tensors(mp, cfg, lc, adapters, "", NULL, NULL, meta, 2));
    CLLM_TRY(cllm_write_file_atomic(cp, text, strlen(text)));
fail:
    free(mp);
    free(cp);
    free(text);
    return st;
}

cllm_status cllm_lora_save_optimizer(const char *dir, const cllm_gpt_config *cfg,
                                     const cllm_lora_config *lc, const float *mom,
                                     const float *var) {
    static const cllm_st_meta meta[] = {
        {"format", "cllm-adamw"},
        {"contents", "AdamW moments of the LoRA adapters: m as exp_avg.<adapter name>, v as "
                     "exp_avg_sq.<adapter name>; PEFT's names and shapes"}};
    cllm_status st = cllm_lora_config_check(cfg, lc);
    if (st != CLLM_OK) return st;
    char *p = cllm_path_join(dir, CLLM_LORA_OPTIMIZER_FILE);
    st = p ? write_tensors(p, cfg, lc, mom, M_PREFIX, var, V_PREFIX, meta, 2) : CLLM_ERR_NOMEM;
    free(p);
    return st;
}

/* ---- reading */

/* adapter_config.json -> lc, refusing what cllm cannot apply exactly. */
static cllm_status parse_config(const char *path, const char *text, cllm_lora_config *lc,
                                char **base_model) {
    cJSON *j = cJSON_Parse(text);
    cllm_status st = CLLM_OK;
    memset(lc, 0, sizeof *lc);
    if (!cJSON_IsObject(j)) {
        st = cllm_fail(CLLM_ERR_FORMAT, "%s: not a JSON object", path);
        goto fail;
    }
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(j, "peft_type");
    if (!cJSON_IsString(pt) || strcmp(pt->valuestring, "LORA")) {
        st = cllm_fail(CLLM_ERR_FORMAT,
                       "%s: \"peft_type\" is %s; cllm reads LoRA adapters "
                       "(\"LORA\")",
                       path, cJSON_IsString(pt) ? pt->valuestring : "missing");
        goto fail;
    }
    /* PEFT's defaults where a key is absent: r 8, lora_alpha 8 */
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "r"),
                *alpha = cJSON_GetObjectItemCaseSensitive(j, "lora_alpha");
    if ((r && (!cJSON_IsNumber(r) || r->valuedouble != floor(r->valuedouble) ||
               r->valuedouble < 1 || r->valuedouble > 1e6)) ||
        (alpha && !cJSON_IsNumber(alpha))) {
        st = cllm_fail(CLLM_ERR_FORMAT, "%s: \"%s\" must be %s", path,
                       r && !cJSON_IsNumber(alpha) ? "r" : "lora_alpha",
                       "a positive number (r an integer)");
        goto fail;
    }
    lc->rank = r ? (int)r->valuedouble : 8;
    lc->alpha = alpha ? (float)alpha->valuedouble : 8.0f;
    /* Features whose files would be read differently: refuse, naming the key. */
    static const char *const must_be_false[] = {"use_dora", "use_rslora"};
    for (size_t i = 0; i < sizeof must_be_false / sizeof *must_be_false; i++)
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, must_be_false[i]))) {
            st = cllm_fail(CLLM_ERR_UNSUPPORTED,
                           "%s: \"%s\": true is not supported (cllm applies "
                           "plain LoRA)",
                           path, must_be_false[i]);
            goto fail;
        }
    static const char *const must_be_empty[] = {"layers_to_transform", "layers_pattern",
                                                "modules_to_save",     "rank_pattern",
                                                "alpha_pattern",       "layer_replication"};
    for (size_t i = 0; i < sizeof must_be_empty / sizeof *must_be_empty; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, must_be_empty[i]);
        bool empty = !v || cJSON_IsNull(v) ||
                     ((cJSON_IsObject(v) || cJSON_IsArray(v)) && !v->child) ||
                     (cJSON_IsString(v) && !*v->valuestring);
        if (!empty) {
            st = cllm_fail(CLLM_ERR_UNSUPPORTED,
                           "%s: \"%s\" is set; cllm supports one rank and alpha on every layer "
                           "and adapters only (no extra trained modules)",
                           path, must_be_empty[i]);
            goto fail;
        }
    }
    const cJSON *bias = cJSON_GetObjectItemCaseSensitive(j, "bias");
    if (bias && !cJSON_IsNull(bias) &&
        !(cJSON_IsString(bias) && !strcmp(bias->valuestring, "none"))) {
        st = cllm_fail(CLLM_ERR_UNSUPPORTED,
                       "%s: \"bias\" must be \"none\" (trained biases are "
                       "not supported)",
                       path);
        goto fail;
    }
    const cJSON *tm = cJSON_GetObjectItemCaseSensitive(j, "target_modules");
    if (!tm || cJSON_IsNull(tm)) {
        lc->targets = CLLM_LORA_BIT(CLLM_LORA_QKV); /* PEFT's default for gpt2: ["c_attn"] */
    } else if (cJSON_IsString(tm)) {
        lc->targets = !strcmp(tm->valuestring, "all-linear") ? CLLM_LORA_ALL : 0;
        if (!lc->targets) {
            st = cllm_fail(CLLM_ERR_UNSUPPORTED,
                           "%s: \"target_modules\" is the regular expression \"%.60s\"; cllm "
                           "reads a list of module names (%s) or \"all-linear\"",
                           path, tm->valuestring, ACCEPTED);
            goto fail;
        }
    } else if (cJSON_IsArray(tm)) {
        for (const cJSON *e = tm->child; e; e = e->next) {
            unsigned bits =
                cJSON_IsString(e) ? match_name(e->valuestring, strlen(e->valuestring)) : 0;
            if (!bits) {
                st = cllm_fail(CLLM_ERR_UNSUPPORTED,
                               "%s: \"target_modules\" entry %s%.60s%s: cllm puts adapters only "
                               "on %s",
                               path, cJSON_IsString(e) ? "\"" : "",
                               cJSON_IsString(e) ? e->valuestring : "(not a string)",
                               cJSON_IsString(e) ? "\"" : "", ACCEPTED);
                goto fail;
            }
            lc->targets |= bits;
        }
    }
    if (!lc->targets) {
        st = cllm_fail(CLLM_ERR_FORMAT, "%s: \"target_modules\" names no module", path);
        goto fail;
    }
    const cJSON *init = cJSON_GetObjectItemCaseSensitive(j, "init_lora_weights");
    lc->init = cJSON_IsString(init) && !strcmp(init->valuestring, "gaussian")
                   ? CLLM_LORA_INIT_GAUSSIAN
                   : CLLM_LORA_INIT_KAIMING;
    if (base_model) {
        const cJSON *bm = cJSON_GetObjectItemCaseSensitive(j, "base_model_name_or_path");
        *base_model = cJSON_IsString(bm) ? strdup(bm->valuestring) : NULL;
    }
fail:
    cJSON_Delete(j);
    return st;
}

/* name (after `prefix`) is adapter tensor t's: PEFT's name, or the same without
 * "transformer." (a PEFT model around GPT2Model). */
static bool is_name_of(const char *name, const char *prefix, const cllm_lora_tensor_info *t) {
    size_t pl = strlen(prefix), bl = strlen(PEFT_PREFIX_BARE);
    if (strncmp(name, prefix, pl)) return false;
    name += pl;
    return !strcmp(name, t->name) || (!strncmp(name, PEFT_PREFIX_BARE, bl) &&
                                      !strcmp(name + bl, t->name + strlen(PEFT_PREFIX)));
}

/* Read every adapter tensor of `lc`, for each of the `np` prefixes (prefix[k] + name into
 * dst[k]), from `path`; the file must hold exactly these tensors. */
static cllm_status read_tensors(const char *path, const cllm_gpt_config *cfg,
                                const cllm_lora_config *lc, const char *const *prefix,
                                float *const *dst, int np) {
    cllm_safetensors *sf = NULL;
    cllm_status st = cllm_safetensors_open(&sf, path);
    if (st != CLLM_OK) return st;
    const int n = cllm_lora_tensor_count(cfg, lc), count = cllm_safetensors_count(sf);
    /* Every tensor of the file must be one cllm applies: another layer, module, DoRA's
     * magnitude or an embedding adapter means the adapters do not fit this model. */
    for (int i = 0; i < count; i++) {
        const char *nm = cllm_safetensors_tensor(sf, i)->name;
        bool known = false;
        for (int k = 0; k < n * np && !known; k++) {
            cllm_lora_tensor_info t;
            cllm_lora_tensor(cfg, lc, k % n, &t);
            known = is_name_of(nm, prefix[k / n], &t);
        }
        if (!known) {
            char tt[80];
            cllm_lora_targets_text(lc->targets, tt, sizeof tt);
            st = cllm_fail(CLLM_ERR_FORMAT,
                           "%s: unexpected tensor \"%s\" (the model has %d layers; the adapter "
                           "config targets %s at rank %d)",
                           path, nm, cfg->n_layer, tt, lc->rank);
            goto fail;
        }
    }
    for (int k = 0; k < n * np; k++) {
        cllm_lora_tensor_info t;
        cllm_lora_tensor(cfg, lc, k % n, &t);
        const cllm_st_tensor *x = NULL;
        for (int i = 0; i < count && !x; i++)
            if (is_name_of(cllm_safetensors_tensor(sf, i)->name, prefix[k / n], &t))
                x = cllm_safetensors_tensor(sf, i);
        if (!x) {
            st = cllm_fail(CLLM_ERR_FORMAT,
                           "%s: tensor \"%s%s\" is missing (the adapter config says rank %d on "
                           "%s; the model has %d layers)",
                           path, prefix[k / n], t.name, lc->rank, MODULES[t.target], cfg->n_layer);
            goto fail;
        }
        if (x->ndim != 2 || x->shape[0] != t.shape[0] || x->shape[1] != t.shape[1]) {
            char got[64] = "[";
            for (int d = 0; d < x->ndim; d++)
                snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "",
                         (long long)x->shape[d]);
            st = cllm_fail(CLLM_ERR_FORMAT,
                           "%s: tensor \"%s\" has shape %s] but the model (n_embd %d) with rank "
                           "%d needs [%lld, %lld]",
                           path, x->name, got, cfg->n_embd, lc->rank, (long long)t.shape[0],
                           (long long)t.shape[1]);
            goto fail;
        }
        float *d = dst[k / n] + t.offset;
        CLLM_TRY(cllm_safetensors_read_f32(sf, x, d));
        if (!all_finite(d, x->numel)) {
            st = cllm_fail(CLLM_ERR_NUMERIC,
                           "%s: tensor \"%s\" holds non-finite values (NaN or "
                           "Inf)",
                           path, x->name);
            goto fail;
        }
    }
    if (count != n * np) /* e.g. the same tensor under both prefixes */
        st = cllm_fail(CLLM_ERR_FORMAT, "%s: %d tensors, expected %d", path, count, n * np);
fail:
    cllm_safetensors_free(sf);
    return st;
}

cllm_status cllm_lora_load(const char *dir, const cllm_gpt_config *cfg, cllm_lora_config *lc,
                           float **adapters, char **base_model) {
    *adapters = NULL;
    if (base_model) *base_model = NULL;
    memset(lc, 0, sizeof *lc);
    char *cp = cllm_path_join(dir, CLLM_LORA_CONFIG_FILE),
         *mp = cllm_path_join(dir, CLLM_LORA_MODEL_FILE), *text = NULL, *bin = NULL;
    float *a = NULL;
    cllm_status st = CLLM_OK;
    if (!cp || !mp) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (!cllm_is_file(cp)) {
        st = cllm_fail(CLLM_ERR_FORMAT, "%s: no %s (not a LoRA adapter directory)", dir,
                       CLLM_LORA_CONFIG_FILE);
        goto fail;
    }
    if (!cllm_is_file(mp)) {
        bin = cllm_path_join(dir, "adapter_model.bin");
        st = bin && cllm_is_file(bin)
                 ? cllm_fail(CLLM_ERR_UNSUPPORTED,
                             "%s: has adapter_model.bin but no %s; cllm reads safetensors "
                             "(PeftModel.save_pretrained(dir, safe_serialization=True))",
                             dir, CLLM_LORA_MODEL_FILE)
                 : cllm_fail(CLLM_ERR_FORMAT, "%s: %s is there but %s is not", dir,
                             CLLM_LORA_CONFIG_FILE, CLLM_LORA_MODEL_FILE);
        goto fail;
    }
    CLLM_TRY(cllm_read_file(cp, &text, NULL));
    CLLM_TRY(parse_config(cp, text, lc, base_model));
    st = cllm_lora_config_check(cfg, lc);
    if (st != CLLM_OK) {
        st = cllm_fail_context(CLLM_ERR_FORMAT, "%s does not fit the model", cp);
        goto fail;
    }
    a = malloc(cllm_lora_numel(cfg, lc) * sizeof *a);
    if (!a) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory for the LoRA adapters");
        goto fail;
    }
    const char *const none[] = {""};
    CLLM_TRY(read_tensors(mp, cfg, lc, none, &a, 1));
    *adapters = a;
    a = NULL;
fail:
    if (st != CLLM_OK && base_model) {
        free(*base_model);
        *base_model = NULL;
    }
    if (st != CLLM_OK) memset(lc, 0, sizeof *lc);
    free(a);
    free(cp);
    free(mp);
    free(bin);
    free(text);
    return st;
}

cllm_status cllm_lora_load_optimizer(const char *dir, const cllm_gpt_config *cfg,
                                     const cllm_lora_config *lc, float **mom, float **var) {
    *mom = *var = NULL;
    char *p = cllm_path_join(dir, CLLM_LORA_OPTIMIZER_FILE);
    const size_t n = cllm_lora_numel(cfg, lc);
    float *m = malloc(n * sizeof *m + 1), *v = malloc(n * sizeof *v + 1);
    cllm_status st = CLLM_OK;
    if (!p || !m || !v) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    const char *const prefixes[] = {M_PREFIX, V_PREFIX};
    float *const dst[] = {m, v};
    CLLM_TRY(read_tensors(p, cfg, lc, prefixes, dst, 2));
    *mom = m;
    *var = v;
    m = v = NULL;
fail:
    free(p);
    free(m);
    free(v);
    return st;
}
