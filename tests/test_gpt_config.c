/* GPT config parsing and validation, the parameter layout, and the Hugging Face mapping. */
#include "testutil.h"

#include "cllm/gpt.h"
#include "cllm/util.h"

#include <stdlib.h>
#include <string.h>

static void test_shipped_models(void) {
    static const struct {
        const char *file;
        size_t min_params, max_params;
    } models[] = {
        {"models/gpt-nano.json", 1000000, 3000000},
        {"models/gpt-mini.json", 10000000, 20000000},
        {"models/gpt2-124m.json", 124439808, 124439808}, /* GPT-2 small, as published */
    };
    const char *src = getenv("CLLM_SOURCE_DIR");
    if (!src) return;
    for (size_t i = 0; i < sizeof models / sizeof *models; i++) {
        char *path = cllm_path_join(src, models[i].file);
        cllm_gpt_config c;
        CHECK_OK(cllm_gpt_config_load(path, &c));
        size_t n = cllm_gpt_num_params(&c);
        CHECK_MSG(n >= models[i].min_params && n <= models[i].max_params, "%s: %zu params",
                  models[i].file, n);
        free(path);
    }
}

static void test_errors(void) {
    static const struct {
        const char *json, *needle;
    } bad[] = {
        {"[1,2]", "not a JSON object"},
        {"{", "not a JSON object"},
        {"{\"n_positions\":8,\"n_embd\":8,\"n_layer\":1,\"n_head\":2}", "\"vocab_size\""},
        {"{\"vocab_size\":10,\"n_positions\":8,\"n_embd\":9,\"n_layer\":1,\"n_head\":2}",
         "divisible by \"n_head\""},
        {"{\"vocab_size\":10,\"n_positions\":8,\"n_embd\":8,\"n_layer\":0,\"n_head\":2}",
         "\"n_layer\" must be positive"},
        {"{\"vocab_size\":-5,\"n_positions\":8,\"n_embd\":8,\"n_layer\":1,\"n_head\":2}",
         "\"vocab_size\" must be positive"},
        {"{\"vocab_size\":10,\"n_positions\":8,\"n_embd\":8.5,\"n_layer\":1,\"n_head\":2}",
         "\"n_embd\" must be an integer"},
        {"{\"vocab_size\":10,\"n_positions\":8,\"n_embd\":\"8\",\"n_layer\":1,\"n_head\":2}",
         "\"n_embd\" must be an integer"},
        {"{\"vocab_size\":10,\"n_positions\":8,\"n_embd\":8,\"n_layer\":1,\"n_head\":2,"
         "\"n_inner\":16}",
         "\"n_inner\""},
        {"{\"vocab_size\":10,\"n_positions\":8,\"n_embd\":8,\"n_layer\":1,\"n_head\":2,"
         "\"activation_function\":\"relu\"}",
         "\"activation_function\""},
        {"{\"vocab_size\":10,\"n_positions\":8,\"n_embd\":8,\"n_layer\":1,\"n_head\":2,"
         "\"layer_norm_epsilon\":0}",
         "\"layer_norm_epsilon\""},
        {"{\"vocab_size\":10,\"n_positions\":8,\"n_embd\":32768,\"n_layer\":1000,\"n_head\":2}",
         "parameters is larger"},
        {"{\"vocab_size\":10,\"n_positions\":100000000,\"n_embd\":8,\"n_layer\":1,\"n_head\":2}",
         "\"n_positions\" = 100000000 is larger"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cllm_gpt_config c;
        cllm_status st = cllm_gpt_config_parse(bad[i].json, "x.json", &c);
        CHECK_MSG(st == CLLM_ERR_FORMAT, "case %zu accepted", i);
        CHECK_MSG(strstr(cllm_last_error(), bad[i].needle) != NULL &&
                      strncmp(cllm_last_error(), "x.json: ", 8) == 0,
                  "case %zu: message '%s' lacks '%s'", i, cllm_last_error(), bad[i].needle);
    }
}

static void test_layout_and_hf(void) {
    /* Awkward sizes: V not a multiple of 128, NH = 3. */
    cllm_gpt_config c = {.vocab_size = 203, .n_positions = 19, .n_embd = 24, .n_layer = 2,
                         .n_head = 3, .layer_norm_epsilon = 1e-5f, .initializer_range = 0.02f};
    CHECK_OK(cllm_gpt_config_validate(&c, "t"));
    CHECK(cllm_gpt_padded_vocab(&c) == 256);
    cllm_gpt_layout lay;
    cllm_gpt_layout_compute(&c, &lay);
    const size_t C = 24, L = 2;
    size_t expect = 256 * C + 19 * C + L * (2 * C + 3 * C * C + 3 * C + C * C + C + 2 * C +
                                            4 * C * C + 4 * C + 4 * C * C + C) + 2 * C;
    CHECK(lay.total == expect);
    CHECK(cllm_gpt_num_params(&c) == expect - (256 - 203) * C);
    /* Every element except wte's padding rows belongs to exactly one HF tensor. */
    unsigned char *hit = calloc(lay.total, 1);
    int n = cllm_gpt_hf_tensor_count(&c);
    CHECK(n == 2 + 12 * 2 + 2);
    size_t covered = 0;
    for (int i = 0; i < n; i++) {
        cllm_gpt_hf_tensor_info t;
        cllm_gpt_hf_tensor(&c, i, &t);
        size_t numel = (size_t)t.rows * (size_t)t.cols;
        size_t hf = t.ndim == 1 ? (size_t)t.shape[0] : (size_t)(t.shape[0] * t.shape[1]);
        CHECK(numel == hf);
        for (size_t k = 0; k < numel; k++) hit[t.offset + k]++;
        covered += numel;
    }
    int twice = 0;
    for (size_t k = 0; k < lay.total; k++) twice += hit[k] > 1;
    CHECK(twice == 0);
    CHECK(covered == cllm_gpt_num_params(&c));
    /* Spot checks against GPT2LMHeadModel's state dict. */
    cllm_gpt_hf_tensor_info t;
    cllm_gpt_hf_tensor(&c, 2 + 12 + 2, &t); /* layer 1's c_attn.weight */
    CHECK(strcmp(t.name, "h.1.attn.c_attn.weight") == 0);
    CHECK(t.transposed && t.shape[0] == 24 && t.shape[1] == 72 && t.rows == 72 && t.cols == 24);
    CHECK(t.offset == lay.offset[CLLM_P_QKVW] + 72 * 24);
    CHECK(t.decay);
    cllm_gpt_hf_tensor(&c, 2 + 10, &t);
    CHECK(strcmp(t.name, "h.0.mlp.c_proj.weight") == 0 && t.shape[0] == 96 && t.shape[1] == 24);
    cllm_gpt_hf_tensor(&c, 2 + 11, &t);
    CHECK(strcmp(t.name, "h.0.mlp.c_proj.bias") == 0 && t.ndim == 1 && !t.decay);
    cllm_gpt_hf_tensor(&c, 0, &t);
    CHECK(strcmp(t.name, "wte.weight") == 0 && t.shape[0] == 203 && t.shape[1] == 24);
    cllm_gpt_hf_tensor(&c, n - 1, &t);
    CHECK(strcmp(t.name, "ln_f.bias") == 0 && t.offset == lay.offset[CLLM_P_LNFB]);
    free(hit);

    /* config.json round-trips. */
    char *json = cllm_gpt_config_to_json(&c);
    cllm_gpt_config back;
    CHECK_OK(cllm_gpt_config_parse(json, "round-trip", &back));
    CHECK(memcmp(&back, &c, sizeof c) == 0);
    CHECK(strstr(json, "\"GPT2LMHeadModel\"") != NULL);
    free(json);
}

int main(void) {
    test_shipped_models();
    test_errors();
    test_layout_and_hf();
    return test_exit();
}
