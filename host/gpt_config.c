/* GPT config (Hugging Face GPT-2 keys), validation, parameter layout and the mapping to
 * Hugging Face tensor names. No OpenCL here. */
#include "cllm/gpt.h"
#include "cllm/util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Limits beyond which a config is refused as absurd: they keep every size arithmetic in
 * range and every single tensor well under what any OpenCL device can allocate. */
#define MAX_VOCAB (1 << 22)
#define MAX_POSITIONS (1 << 16)
#define MAX_EMBD (1 << 15)
#define MAX_LAYER 1024
#define MAX_HEAD 1024

static cllm_status get_int(const cJSON *root, const char *key, const char *source, int *dst,
                           bool required) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) {
        if (required)
            return cllm_fail(CLLM_ERR_FORMAT, "%s: missing key \"%s\" (a positive integer)", source,
                             key);
        return CLLM_OK;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
        fabs(v->valuedouble) > 2147483647.0)
        return cllm_fail(CLLM_ERR_FORMAT, "%s: \"%s\" must be an integer", source, key);
    *dst = (int)v->valuedouble;
    return CLLM_OK;
}

static cllm_status get_float(const cJSON *root, const char *key, const char *source, float *dst) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) return CLLM_OK;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return cllm_fail(CLLM_ERR_FORMAT, "%s: \"%s\" must be a number", source, key);
    *dst = (float)v->valuedouble;
    return CLLM_OK;
}

cllm_status cllm_gpt_config_validate(const cllm_gpt_config *c, const char *source) {
    static const struct {
        const char *key;
        size_t off;
        int max;
    } ints[] = {
        {"vocab_size", offsetof(cllm_gpt_config, vocab_size), MAX_VOCAB},
        {"n_positions", offsetof(cllm_gpt_config, n_positions), MAX_POSITIONS},
        {"n_embd", offsetof(cllm_gpt_config, n_embd), MAX_EMBD},
        {"n_layer", offsetof(cllm_gpt_config, n_layer), MAX_LAYER},
        {"n_head", offsetof(cllm_gpt_config, n_head), MAX_HEAD},
    };
    if (!source) source = "config";
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
        int v = *(const int *)((const char *)c + ints[i].off);
        if (v <= 0)
            return cllm_fail(CLLM_ERR_FORMAT, "%s: \"%s\" must be positive, got %d", source,
                             ints[i].key, v);
        if (v > ints[i].max)
            return cllm_fail(CLLM_ERR_FORMAT, "%s: \"%s\" = %d is larger than cllm supports (%d)",
                             source, ints[i].key, v, ints[i].max);
    }
    if (c->n_embd % c->n_head != 0)
        return cllm_fail(CLLM_ERR_FORMAT,
                         "%s: \"n_embd\" (%d) must be divisible by \"n_head\" (%d)", source,
                         c->n_embd, c->n_head);
    if (!(c->layer_norm_epsilon > 0 && c->layer_norm_epsilon < 1))
        return cllm_fail(CLLM_ERR_FORMAT, "%s: \"layer_norm_epsilon\" must be in (0, 1), got %g",
                         source, (double)c->layer_norm_epsilon);
    if (!(c->initializer_range > 0 && c->initializer_range < 10))
        return cllm_fail(CLLM_ERR_FORMAT, "%s: \"initializer_range\" must be in (0, 10), got %g",
                         source, (double)c->initializer_range);
    /* A parameter count that overflows what we index with 32-bit offsets in kernels. */
    double params = (double)cllm_gpt_num_params(c);
    if (params > 4.0e9)
        return cllm_fail(CLLM_ERR_FORMAT, "%s: %.3g parameters is larger than cllm supports (4e9)",
                         source, params);
    return CLLM_OK;
}

cllm_status cllm_gpt_config_parse(const char *text, const char *source, cllm_gpt_config *cfg) {
    if (!source) source = "config";
    cJSON *root = cJSON_Parse(text);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return cllm_fail(CLLM_ERR_FORMAT, "%s: not a JSON object", source);
    }
    cllm_gpt_config c = {0};
    c.layer_norm_epsilon = 1e-5f;
    c.initializer_range = 0.02f;
    cllm_status st = CLLM_OK;
    CLLM_TRY(get_int(root, "vocab_size", source, &c.vocab_size, true));
    /* Old GPT-2 configs carry n_ctx beside n_positions; n_positions wins. */
    CLLM_TRY(get_int(root, "n_ctx", source, &c.n_positions, false));
    CLLM_TRY(get_int(root, "n_positions", source, &c.n_positions, c.n_positions == 0));
    CLLM_TRY(get_int(root, "n_embd", source, &c.n_embd, true));
    CLLM_TRY(get_int(root, "n_layer", source, &c.n_layer, true));
    CLLM_TRY(get_int(root, "n_head", source, &c.n_head, true));
    CLLM_TRY(get_float(root, "layer_norm_epsilon", source, &c.layer_norm_epsilon));
    CLLM_TRY(get_float(root, "initializer_range", source, &c.initializer_range));
    const cJSON *inner = cJSON_GetObjectItemCaseSensitive(root, "n_inner");
    if (inner && !cJSON_IsNull(inner) &&
        !(cJSON_IsNumber(inner) && inner->valuedouble == 4.0 * c.n_embd)) {
        st = cllm_fail(CLLM_ERR_FORMAT,
                       "%s: \"n_inner\" must be null or 4 * n_embd (cllm's MLP is 4x)", source);
        goto fail;
    }
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "activation_function");
    if (act && !(cJSON_IsString(act) && (!strcmp(act->valuestring, "gelu_new") ||
                                         !strcmp(act->valuestring, "gelu_pytorch_tanh")))) {
        st = cllm_fail(CLLM_ERR_FORMAT,
                       "%s: \"activation_function\" must be \"gelu_new\" (GELU, tanh "
                       "approximation), as GPT-2 uses",
                       source);
        goto fail;
    }
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(root, "tie_word_embeddings");
    if (tie && cJSON_IsFalse(tie)) {
        st = cllm_fail(CLLM_ERR_FORMAT,
                       "%s: \"tie_word_embeddings\": false is not supported (the LM head is the "
                       "token embedding)",
                       source);
        goto fail;
    }
    CLLM_TRY(cllm_gpt_config_validate(&c, source));
    *cfg = c;
fail:
    cJSON_Delete(root);
    return st;
}

cllm_status cllm_gpt_config_load(const char *path, cllm_gpt_config *cfg) {
    char *text = NULL;
    cllm_status st = cllm_read_file(path, &text, NULL);
    if (st != CLLM_OK) return st;
    st = cllm_gpt_config_parse(text, path, cfg);
    free(text);
    return st;
}

char *cllm_gpt_config_to_json(const cllm_gpt_config *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON *arch = cJSON_CreateArray();
    cJSON_AddItemToArray(arch, cJSON_CreateString("GPT2LMHeadModel"));
    cJSON_AddItemToObject(o, "architectures", arch);
    cJSON_AddStringToObject(o, "model_type", "gpt2");
    cJSON_AddNumberToObject(o, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(o, "n_positions", c->n_positions);
    cJSON_AddNumberToObject(o, "n_ctx", c->n_positions);
    cJSON_AddNumberToObject(o, "n_embd", c->n_embd);
    cJSON_AddNumberToObject(o, "n_layer", c->n_layer);
    cJSON_AddNumberToObject(o, "n_head", c->n_head);
    cJSON_AddNullToObject(o, "n_inner");
    cJSON_AddStringToObject(o, "activation_function", "gelu_new");
    cJSON_AddNumberToObject(o, "layer_norm_epsilon", c->layer_norm_epsilon);
    cJSON_AddNumberToObject(o, "initializer_range", c->initializer_range);
    cJSON_AddNumberToObject(o, "resid_pdrop", 0.0);
    cJSON_AddNumberToObject(o, "embd_pdrop", 0.0);
    cJSON_AddNumberToObject(o, "attn_pdrop", 0.0);
    cJSON_AddBoolToObject(o, "scale_attn_weights", 1);
    cJSON_AddBoolToObject(o, "tie_word_embeddings", 1);
    cJSON_AddNumberToObject(o, "bos_token_id", c->vocab_size > 50256 ? 50256 : 0);
    cJSON_AddNumberToObject(o, "eos_token_id", c->vocab_size > 50256 ? 50256 : 0);
    cJSON_AddStringToObject(o, "torch_dtype", "float32");
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    return s;
}

int cllm_gpt_padded_vocab(const cllm_gpt_config *c) { return (c->vocab_size + 127) / 128 * 128; }

void cllm_gpt_layout_compute(const cllm_gpt_config *c, cllm_gpt_layout *lay) {
    size_t V = (size_t)cllm_gpt_padded_vocab(c), C = (size_t)c->n_embd, L = (size_t)c->n_layer,
           T = (size_t)c->n_positions;
    size_t n[CLLM_P_COUNT] = {
        V * C,         T * C,     L * C,         L * C,     L * 3 * C * C, L * 3 * C,
        L * C * C,     L * C,     L * C,         L * C,     L * 4 * C * C, L * 4 * C,
        L * C * 4 * C, L * C,     C,             C,
    };
    size_t off = 0;
    for (int i = 0; i < CLLM_P_COUNT; i++) {
        lay->offset[i] = off;
        lay->numel[i] = n[i];
        off += n[i];
    }
    lay->total = off;
}

size_t cllm_gpt_num_params(const cllm_gpt_config *c) {
    cllm_gpt_layout lay;
    cllm_gpt_layout_compute(c, &lay);
    return lay.total - (size_t)(cllm_gpt_padded_vocab(c) - c->vocab_size) * (size_t)c->n_embd;
}

bool cllm_gpt_param_decays(int which) {
    switch (which) {
    case CLLM_P_WTE:
    case CLLM_P_WPE:
    case CLLM_P_QKVW:
    case CLLM_P_ATTPROJW:
    case CLLM_P_FCW:
    case CLLM_P_FCPROJW:
        return true;
    default:
        return false;
    }
}

int cllm_gpt_hf_tensor_count(const cllm_gpt_config *c) { return 2 + 12 * c->n_layer + 2; }

void cllm_gpt_hf_tensor(const cllm_gpt_config *c, int i, cllm_gpt_hf_tensor_info *t) {
    /* Per layer, in Hugging Face's order. `param` is the cllm tensor, `rows`x`cols` one layer's
     * slice in cllm's (out, in) orientation; Conv1D weights are transposed in HF. */
    static const struct {
        const char *suffix;
        int param;
        int rows_mult, cols_mult; /* in units of C; 0 = 1 */
        bool transposed;
    } per_layer[12] = {
        {"ln_1.weight", CLLM_P_LN1W, 1, 0, false},
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
        {"mlp.c_proj.bias", CLLM_P_FCPROJB, 1, 0, false},
    };
    cllm_gpt_layout lay;
    cllm_gpt_layout_compute(c, &lay);
    const int C = c->n_embd;
    memset(t, 0, sizeof *t);
    int last = cllm_gpt_hf_tensor_count(c) - 2;
    if (i == 0 || i == 1) {
        int p = i == 0 ? CLLM_P_WTE : CLLM_P_WPE;
        snprintf(t->name, sizeof t->name, "%s", i == 0 ? "wte.weight" : "wpe.weight");
        t->ndim = 2;
        t->rows = i == 0 ? c->vocab_size : c->n_positions;
        t->cols = C;
        t->offset = lay.offset[p];
        t->decay = true;
    } else if (i >= last) {
        int p = i == last ? CLLM_P_LNFW : CLLM_P_LNFB;
        snprintf(t->name, sizeof t->name, "%s", i == last ? "ln_f.weight" : "ln_f.bias");
        t->ndim = 1;
        t->rows = C;
        t->cols = 1;
        t->offset = lay.offset[p];
    } else {
        int k = (i - 2) % 12, l = (i - 2) / 12;
        snprintf(t->name, sizeof t->name, "h.%d.%s", l, per_layer[k].suffix);
        t->rows = per_layer[k].rows_mult * C;
        t->cols = per_layer[k].cols_mult ? per_layer[k].cols_mult * C : 1;
        t->ndim = per_layer[k].cols_mult ? 2 : 1;
        t->offset = lay.offset[per_layer[k].param] + (size_t)l * (size_t)t->rows * (size_t)t->cols;
        t->transposed = per_layer[k].transposed;
        t->decay = cllm_gpt_param_decays(per_layer[k].param);
    }
    if (t->ndim == 1) {
        t->shape[0] = t->rows;
    } else if (t->transposed) {
        t->shape[0] = t->cols;
        t->shape[1] = t->rows;
    } else {
        t->shape[0] = t->rows;
        t->shape[1] = t->cols;
    }
}
