/* cllm_model_load: a saved checkpoint comes back on the device with its exact parameters and
 * its tokenizer; the refusals (a context longer than the model's, a tokenizer larger than the
 * vocabulary, a missing tokenizer) name what is wrong. */
#include "testutil.h"

#include "cllm/model.h"
#include "cllm/util.h"

#include <stdlib.h>
#include <string.h>

static cllm_tokenizer *tiny_tokenizer(uint32_t vocab) {
    static const char text[] = "the cat sat on the mat; the cat ate the rat. the mat sat flat.";
    cllm_text doc = {text, sizeof text - 1};
    cllm_bpe_train_opts o = cllm_bpe_train_opts_default();
    o.vocab_size = vocab;
    o.min_frequency = 1;
    o.threads = 1;
    cllm_tokenizer *tok = NULL;
    CHECK_OK(cllm_tokenizer_train(&tok, &doc, 1, &o));
    return tok;
}

int main(void) {
    cllm_runtime *rt = test_runtime();
    cllm_gpt_config cfg = {.vocab_size = 270, .n_positions = 24, .n_embd = 24, .n_layer = 2,
                           .n_head = 3, .layer_norm_epsilon = 1e-5f, .initializer_range = 0.02f};
    cllm_gpt_layout lay;
    cllm_gpt_layout_compute(&cfg, &lay);
    float *p = malloc(lay.total * sizeof *p), *back = malloc(lay.total * sizeof *back);
    test_rng r = {7};
    test_fill_normal(&r, p, lay.total, 0.3f);
    memset(p + (size_t)cfg.vocab_size * cfg.n_embd, 0,
           (size_t)(cllm_gpt_padded_vocab(&cfg) - cfg.vocab_size) * cfg.n_embd * sizeof *p);

    cllm_tokenizer *tok = tiny_tokenizer(265);
    char *tj = tok ? cllm_tokenizer_to_json(tok) : NULL;
    char *dir = test_tmpdir("model");
    char *nodir = test_tmpdir("model_notok");
    char *bigdir = test_tmpdir("model_bigtok");
    cllm_checkpoint ck = {.cfg = cfg, .params = p, .tokenizer_json = tj};
    CHECK_OK(cllm_checkpoint_save(dir, 3, &ck, 0, NULL));
    ck.tokenizer_json = NULL;
    CHECK_OK(cllm_checkpoint_save(nodir, 1, &ck, 0, NULL));

    /* the run directory resolves to its newest step; parameters are bit-exact; tokenizer kept */
    cllm_gpt_opts o = {0};
    cllm_model *m = NULL;
    CHECK_OK(cllm_model_load(&m, rt, dir, &o, NULL));
    if (m) {
        CHECK(strstr(m->path, "step_00000003") != NULL);
        CHECK(m->ck.params == NULL);
        CHECK(m->tok && cllm_tokenizer_vocab_size(m->tok) == cllm_tokenizer_vocab_size(tok));
        CHECK_OK(cllm_model_require_tokenizer(m));
        CHECK_OK(cllm_gpt_get_params(m->gpt, back));
        CHECK(memcmp(back, p, lay.total * sizeof *p) == 0);
        /* max_seq 0 means the whole context: a forward over n_positions tokens runs */
        uint32_t in[24] = {0};
        CHECK_OK(cllm_gpt_forward(m->gpt, in, NULL, 1, 24));
    }
    cllm_model_free(m);

    cllm_model_load_opts keep = {.keep_host_params = true};
    m = NULL;
    CHECK_OK(cllm_model_load(&m, rt, dir, &o, &keep));
    CHECK(m && m->ck.params && memcmp(m->ck.params, p, lay.total * sizeof *p) == 0);
    cllm_model_free(m);

    /* refusals */
    cllm_gpt_opts too_long = {.max_seq = 25};
    m = NULL;
    CHECK(cllm_model_load(&m, rt, dir, &too_long, NULL) == CLLM_ERR_USAGE && m == NULL);
    CHECK(strstr(cllm_last_error(), "n_positions 24") != NULL);

    CHECK_OK(cllm_model_load(&m, rt, nodir, &o, NULL));
    CHECK(m && m->tok == NULL);
    if (m) CHECK(cllm_model_require_tokenizer(m) == CLLM_ERR_FORMAT);
    CHECK(strstr(cllm_last_error(), "no tokenizer.json") != NULL);
    cllm_model_free(m);

    cllm_tokenizer *big = tiny_tokenizer(300);
    char *bj = big ? cllm_tokenizer_to_json(big) : NULL;
    if (big && cllm_tokenizer_vocab_size(big) > (uint32_t)cfg.vocab_size) {
        ck.tokenizer_json = bj;
        CHECK_OK(cllm_checkpoint_save(bigdir, 1, &ck, 0, NULL));
        m = NULL;
        CHECK(cllm_model_load(&m, rt, bigdir, &o, NULL) == CLLM_ERR_FORMAT && m == NULL);
        CHECK(strstr(cllm_last_error(), "vocab_size is 270") != NULL);
    } else {
        CHECK_MSG(false, "the 300-token tokenizer came out with %u tokens",
                  big ? cllm_tokenizer_vocab_size(big) : 0);
    }
    CHECK(cllm_model_load(&m, rt, "/nonexistent/run", &o, NULL) != CLLM_OK && m == NULL);

    cllm_model_free(NULL);
    free(bj);
    cllm_tokenizer_free(big);
    free(tj);
    cllm_tokenizer_free(tok);
    free(dir);
    free(nodir);
    free(bigdir);
    free(p);
    free(back);
    cllm_runtime_free(rt);
    return test_exit();
}
