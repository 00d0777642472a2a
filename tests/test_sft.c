/* SFT on the device (cllm/sft.h with cllm/gpt.h): the vocabulary grown for the chat template
 * keeps every old token's logits for a prompt of old tokens (new rows in the padding, and Vp
 * grown); the loss of an SFT row is the mean of the assistant positions' own token losses
 * (from a forward with every target); a masked-out part of a conversation (a trailing user
 * turn) leaves the loss and every gradient bitwise unchanged when it changes, while the same
 * change does move the loss without the mask, and changing an assistant token moves it too. */
#include "testutil.h"

#include "cllm/gpt.h"
#include "cllm/sft.h"
#include "cllm/util.h"

#include <stdlib.h>
#include <string.h>

static void make_ckpt(cllm_checkpoint *ck, int V, int T) {
    memset(ck, 0, sizeof *ck);
    ck->cfg = (cllm_gpt_config){.vocab_size = V,
                                .n_positions = T,
                                .n_embd = 24,
                                .n_layer = 2,
                                .n_head = 3,
                                .layer_norm_epsilon = 1e-5f,
                                .initializer_range = 0.02f};
    cllm_gpt_layout lay;
    cllm_gpt_layout_compute(&ck->cfg, &lay);
    ck->params = calloc(lay.total, sizeof(float));
    test_rng r = {3};
    test_fill_normal(&r, ck->params, lay.total, 0.2f);
    memset(ck->params + (size_t)V * 24, 0,
           (lay.numel[CLLM_P_WTE] - (size_t)V * 24) * sizeof(float));
    /* LayerNorm gains near 1, as in a trained model */
    for (int p = 0; p < CLLM_P_COUNT; p++)
        if (p == CLLM_P_LN1W || p == CLLM_P_LN2W || p == CLLM_P_LNFW)
            for (size_t i = 0; i < lay.numel[p]; i++)
                ck->params[lay.offset[p] + i] += 1.0f;
}

/* All logits (T, V) of a prompt under the checkpoint's weights. */
static float *logits_of(cllm_runtime *rt, const cllm_checkpoint *ck, const uint32_t *ids, int T) {
    cllm_gpt_opts o = {.max_batch = 1, .max_seq = T};
    cllm_gpt *m = NULL;
    const int V = ck->cfg.vocab_size;
    float *out = malloc((size_t)T * V * sizeof *out);
    CHECK_OK(cllm_gpt_init(&m, rt, &ck->cfg, &o));
    if (!m) exit(1);
    CHECK_OK(cllm_gpt_set_params(m, ck->params));
    CHECK_OK(cllm_gpt_forward(m, ids, NULL, 1, T));
    for (int t = 0; t < T; t++)
        CHECK_OK(cllm_gpt_get_logits(m, 0, t, out + (size_t)t * V));
    cllm_gpt_free(m);
    return out;
}

static void test_old_logits(cllm_runtime *rt) {
    enum { T = 20 };
    for (int pass = 0; pass < 2; pass++) {
        /* 0: V 300, the four new rows fit in Vp 384; 1: V 384 = Vp, which grows to 512 */
        const uint32_t V = pass == 0 ? 300 : 384;
        cllm_tokenizer *tok = test_bpe_tokenizer(V);
        cllm_checkpoint ck;
        make_ckpt(&ck, (int)V, T);
        cllm_tokens p = {0};
        static const char prompt[] = "Tell me a fortune about cats. It is a cat, hi";
        CHECK_OK(cllm_tokenizer_encode(tok, prompt, strlen(prompt), NULL, &p));
        CHECK(p.n >= T);
        float *before = logits_of(rt, &ck, p.ids, T);
        cllm_chat_template t;
        cllm_sft_vocab_report rep;
        CHECK_OK(cllm_sft_prepare_checkpoint(&ck, tok, &t, CLLM_SFT_INIT_SUBWORD, &rep));
        CHECK(rep.vocab_new == (int)V + 4 && (pass == 0) == (rep.vp_new == rep.vp_old));
        float *after = logits_of(rt, &ck, p.ids, T);
        const int V1 = ck.cfg.vocab_size;
        float *old_part = malloc((size_t)T * V * sizeof *old_part);
        for (int i = 0; i < T; i++)
            memcpy(old_part + (size_t)i * V, after + (size_t)i * V1, V * sizeof *old_part);
        /* the same weights for the old rows and the same inputs: the same numbers; only the
         * GEMM's N grows (by 4 rows, or to a new Vp), so rounding may differ where the BLAS
         * tiles N differently: fp32 tolerance (STYLE.md) */
        CHECK_ALLCLOSE("old tokens' logits after growth", old_part, before, (size_t)T * V, 1e-5,
                       1e-4);
        size_t same = 0;
        for (size_t i = 0; i < (size_t)T * V; i++)
            same += old_part[i] == before[i];
        printf("vocabulary %u -> %d (Vp %d -> %d): %zu of %zu old logits bitwise equal\n", V, V1,
               rep.vp_old, rep.vp_new, same, (size_t)T * V);
        free(old_part);
        free(before);
        free(after);
        cllm_tokens_free(&p);
        cllm_checkpoint_clear(&ck);
        cllm_tokenizer_free(tok);
    }
}

/* A random model of vocabulary 300 with a 300-token tokenizer, grown for the template. */
static void prepared(int T, cllm_tokenizer **tok, cllm_checkpoint *ck, cllm_chat_template *t) {
    *tok = test_bpe_tokenizer(300);
    make_ckpt(ck, 300, T);
    cllm_sft_vocab_report rep;
    CHECK_OK(cllm_sft_prepare_checkpoint(ck, *tok, t, CLLM_SFT_INIT_SUBWORD, &rep));
}

/* One SFT row through forward and backward: its loss and all gradients. */
typedef struct {
    cllm_gpt *m;
    size_t n;
    int T;
} fb;

static float run_row(fb *f, const uint32_t *in, const uint32_t *tg, float *grads) {
    float loss = -1;
    CHECK_OK(cllm_gpt_zero_grad(f->m));
    CHECK_OK(cllm_gpt_forward(f->m, in, tg, 1, f->T));
    CHECK_OK(cllm_gpt_backward(f->m, 1.0f));
    CHECK_OK(cllm_gpt_get_loss(f->m, &loss));
    if (grads) CHECK_OK(cllm_gpt_get_grads(f->m, grads));
    return loss;
}

static cllm_sft_set read_one(const char *dir, const char *name, const char *line,
                             const cllm_chat_template *t, const cllm_tokenizer *tok, int T) {
    char *p = cllm_path_join(dir, name);
    CHECK_OK(cllm_write_file_atomic(p, line, strlen(line)));
    cllm_sft_read_opts ro = {.max_tokens = T + 1, .strict = true};
    cllm_sft_set s;
    CHECK_OK(cllm_sft_read(&s, p, t, tok, &ro));
    free(p);
    if (s.n != 1) exit(1);
    return s;
}

static void test_mask_gradients(cllm_runtime *rt) {
    enum { T = 80 };
    cllm_tokenizer *tok;
    cllm_checkpoint ck;
    cllm_chat_template t;
    prepared(T, &tok, &ck, &t);
    char *dir = test_tmpdir("sft_mask");
    /* a, and b = a with its trailing user turn changed (text and length): nothing after the
     * last assistant token is learnt, and causal attention keeps it out of what is */
    static const char head[] =
        "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\","
        "\"content\":\"Hello there!\"},{\"role\":\"assistant\",\"content\":\"hi hi\"},{\"role\":"
        "\"user\",\"content\":\"What is it?\"},{\"role\":\"assistant\",\"content\":\"It is a "
        "cat.\"},{\"role\":\"user\",\"content\":\"";
    char la[512], lb[512], lc[512];
    snprintf(la, sizeof la, "%sbye bye\"}]}\n", head);
    snprintf(lb, sizeof lb, "%sThe cat sat on the mat\"}]}\n", head);
    /* c = a with one assistant word changed */
    snprintf(lc, sizeof lc, "%sbye bye\"}]}\n", head);
    char *cat = strstr(lc, "a cat.");
    memcpy(cat, "a mat.", 6);
    cllm_sft_set a = read_one(dir, "a.jsonl", la, &t, tok, T),
                 b = read_one(dir, "b.jsonl", lb, &t, tok, T),
                 c = read_one(dir, "c.jsonl", lc, &t, tok, T);
    CHECK_MSG(a.offset[1] != b.offset[1] && a.offset[1] <= T && b.offset[1] <= T,
              "lengths %d, %d for T %d", (int)a.offset[1], (int)b.offset[1], T);

    cllm_gpt_opts o = {.max_batch = 1, .max_seq = T, .training = true};
    fb f = {.T = T};
    CHECK_OK(cllm_gpt_init(&f.m, rt, &ck.cfg, &o));
    if (!f.m) exit(1);
    CHECK_OK(cllm_gpt_set_params(f.m, ck.params));
    cllm_gpt_layout lay;
    cllm_gpt_layout_compute(&ck.cfg, &lay);
    f.n = lay.total;
    float *ga = malloc(f.n * sizeof *ga), *gb = malloc(f.n * sizeof *gb);
    uint32_t in[T], tg[T], full[T];

    cllm_sft_row(&a, 0, T, in, tg);
    float loss_a = run_row(&f, in, tg, ga);
    cllm_sft_row(&b, 0, T, in, tg);
    float loss_b = run_row(&f, in, tg, gb);
    CHECK_MSG(loss_a == loss_b, "loss %.9g vs %.9g", loss_a, loss_b);
    CHECK_MSG(!memcmp(ga, gb, f.n * sizeof *ga), "gradients differ when a masked turn changes");
    size_t nonzero = 0;
    for (size_t i = 0; i < f.n; i++)
        nonzero += ga[i] != 0;
    CHECK(nonzero > f.n / 2); /* there is a gradient to compare */
    cllm_sft_row(&c, 0, T, in, tg);
    float loss_c = run_row(&f, in, tg, NULL);
    CHECK_MSG(loss_c != loss_a, "changing an assistant token must change the loss");

    /* without the mask (every next token a target) the trailing turn does count */
    cllm_sft_row(&a, 0, T, in, tg);
    const int La = (int)a.offset[1];
    for (int i = 0; i < T; i++)
        full[i] = i < La - 1 ? a.ids[i + 1] : CLLM_IGNORE_TARGET;
    float full_a = run_row(&f, in, full, NULL);
    float *tl = malloc(T * sizeof *tl);
    CHECK_OK(cllm_gpt_get_token_losses(f.m, tl));
    /* the masked loss is the mean of the assistant positions' token losses */
    double sum = 0;
    int cnt = 0;
    for (int i = 0; i < La - 1; i++)
        if (a.mask[i + 1]) {
            sum += tl[i];
            cnt++;
        }
    CHECK(cnt == (int)cllm_sft_learnt(&a, 0));
    CHECK_MSG(test_close(loss_a, sum / cnt, 1e-5, 1e-4), "masked loss %.7g, mean of assistant "
              "token losses %.7g", loss_a, sum / cnt);
    cllm_sft_row(&b, 0, T, in, tg);
    const int Lb = (int)b.offset[1];
    for (int i = 0; i < T; i++)
        full[i] = i < Lb - 1 ? b.ids[i + 1] : CLLM_IGNORE_TARGET;
    float full_b = run_row(&f, in, full, NULL);
    CHECK(full_a != full_b);
    printf("masked loss %.6f (= mean of %d assistant token losses %.6f); unmasked %.6f vs %.6f\n",
           loss_a, cnt, sum / cnt, full_a, full_b);

    free(tl);
    free(ga);
    free(gb);
    cllm_gpt_free(f.m);
    cllm_sft_set_free(&a);
    cllm_sft_set_free(&b);
    cllm_sft_set_free(&c);
    cllm_checkpoint_clear(&ck);
    cllm_tokenizer_free(tok);
    free(dir);
}

/* The mean assistant-token loss of one record (a JSONL line) alone, B = 1. */
static double record_loss(cllm_gpt *m, const char *dir, const char *line,
                          const cllm_chat_template *t, const cllm_tokenizer *tok, int T) {
    cllm_sft_set s = read_one(dir, "one.jsonl", line, t, tok, T);
    uint32_t in[128], tg[128];
    float tl[128];
    cllm_sft_row(&s, 0, T, in, tg);
    CHECK_OK(cllm_gpt_forward(m, in, tg, 1, T));
    CHECK_OK(cllm_gpt_get_token_losses(m, tl));
    double sum = 0;
    int n = 0;
    for (int i = 0; i < T; i++)
        if (tg[i] != CLLM_IGNORE_TARGET) {
            sum += tl[i];
            n++;
        }
    cllm_sft_set_free(&s);
    return sum / n;
}

/* The category check's numbers against each variant scored alone: own = the record as it is,
 * wrong = the record with its category's name replaced (as whole words, in user and system
 * messages only); records with no category or not naming it are left out. */
static void test_category_check(cllm_runtime *rt) {
    enum { T = 100 };
    cllm_tokenizer *tok;
    cllm_checkpoint ck;
    cllm_chat_template t;
    prepared(T, &tok, &ck, &t);
    char *dir = test_tmpdir("sft_category");
    /* answers a, b, c of categories cats, mats, hats; "hats" is not named in its request */
    static const char *fmt = "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief about "
                             "%s.\"},{\"role\":\"user\",\"content\":\"Tell me a fortune about "
                             "%s, %scats.\"},{\"role\":\"assistant\",\"content\":\"%s\"}],"
                             "\"category\":\"%s\"}\n";
    static const char *cats[] = {"cats", "mats", "hats"};
    static const char *answers[] = {"The cat sat on the mat.", "It is a cat.", "hi hi hello"};
    char file[4096] = "", line[512];
    for (int i = 0; i < 3; i++) {
        const char *named = i == 2 ? "pets" : cats[i];
        snprintf(line, sizeof line, fmt, named, named, "not ", answers[i], cats[i]);
        strcat(file, line);
    }
    strcat(file, "{\"prompt\":\"Tell me about cats.\",\"response\":\"bye bye\"}\n");
    char *path = cllm_path_join(dir, "val.jsonl");
    CHECK_OK(cllm_write_file_atomic(path, file, strlen(file)));
    cllm_sft_read_opts ro = {.max_tokens = T + 1, .strict = true};
    cllm_sft_set set;
    CHECK_OK(cllm_sft_read(&set, path, &t, tok, &ro));
    cllm_gpt_opts o = {.max_batch = 2, .max_seq = T};
    cllm_gpt *m = NULL;
    CHECK_OK(cllm_gpt_init(&m, rt, &ck.cfg, &o));
    if (!m) exit(1);
    CHECK_OK(cllm_gpt_set_params(m, ck.params));
    cllm_sft_category_opts co = {.B = 2, .T = T, .seed = 1};
    cllm_sft_category_report r;
    CHECK_OK(cllm_sft_category_check(m, tok, &t, &set, &co, &r));
    CHECK_MSG(r.items == 2 && r.skipped == 2 && r.categories == 3 && r.wrong_per_item == 2,
              "items %d skipped %d categories %d wrong %d", r.items, r.skipped, r.categories,
              r.wrong_per_item);
    /* by hand: each answer under each name; "not cats" stays (only whole words change, and
     * the own name "cats" in record 0 is replaced everywhere it stands alone) */
    double own = 0, wrong = 0, gap2 = 0, l[2][3];
    int lower = 0, top = 0;
    for (int i = 0; i < 2; i++) {
        for (int k = 0; k < 3; k++) {
            const char *use = cats[k];
            char rep_not[16];
            snprintf(rep_not, sizeof rep_not, "not %s", i == 0 ? use : "cats");
            snprintf(line, sizeof line, fmt, use, use, "", answers[i], cats[i]);
            /* the request's "not cats." : a whole word "cats" is replaced only for record 0 */
            char *p = strstr(line, ", cats.");
            char fixed[512];
            snprintf(fixed, sizeof fixed, "%.*s, %s.%s", (int)(p - line), line, rep_not,
                     p + strlen(", cats."));
            l[i][k] = record_loss(m, dir, fixed, &t, tok, T);
        }
        const int own_k = i;
        double w = 0, best = 1e30;
        for (int k = 0; k < 3; k++)
            if (k != own_k) {
                w += l[i][k] / 2;
                if (l[i][k] < best) best = l[i][k];
            }
        own += l[i][own_k] / 2;
        wrong += w / 2;
        gap2 += (w - l[i][own_k]) / 2;
        lower += l[i][own_k] < w;
        top += l[i][own_k] < best;
    }
    CHECK_MSG(test_close(r.own, own, 1e-5, 1e-4) && test_close(r.wrong, wrong, 1e-5, 1e-4) &&
                  test_close(r.gap, gap2, 1e-5, 1e-4),
              "own %.7g vs %.7g, wrong %.7g vs %.7g", r.own, own, r.wrong, wrong);
    CHECK(r.lower == lower / 2.0 && r.top1 == top / 2.0 && r.chance == 1.0 / 3);
    printf("category check: own %.4f, wrong %.4f, gap %.4f +- %.4f\n", r.own, r.wrong, r.gap,
           r.gap_se);
    /* one wrong category drawn per answer */
    co.n_wrong = 1;
    CHECK_OK(cllm_sft_category_check(m, tok, &t, &set, &co, &r));
    CHECK(r.items == 2 && r.wrong_per_item == 1 && r.chance == 0.5 && test_close(r.own, own, 1e-5, 1e-4));
    cllm_gpt_free(m);
    cllm_sft_set_free(&set);
    cllm_checkpoint_clear(&ck);
    cllm_tokenizer_free(tok);
    free(path);
    free(dir);
}

int main(void) {
    cllm_runtime *rt = test_runtime();
    test_old_logits(rt);
    test_mask_gradients(rt);
    test_category_check(rt);
    cllm_runtime_free(rt);
    return test_exit();
}
