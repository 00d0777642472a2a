/* SFT data (cllm/sft.h), no device: chat JSONL read through the template into rows whose
 * targets are checked token by token against ids built here piece by piece (system turns,
 * multi-turn, prompt/response pairs, padding); every kind of malformed record refused with
 * FILE:LINE under strict and skipped and counted otherwise; overflow truncate / drop counted;
 * the validation split; the batcher's epochs, shuffle and position round trip (and refusal of
 * changed data); the checkpoint grown for the template (within the padding rows and beyond,
 * every old tensor kept, new rows initialised as documented, config.json and tokenizer.json
 * updated, saved and loaded back). */
#include "testutil.h"

#include "cllm/sft.h"
#include "cllm/util.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static char *write_file(const char *dir, const char *name, const char *text) {
    char *p = cllm_path_join(dir, name);
    CHECK_OK(cllm_write_file_atomic(p, text, strlen(text)));
    return p;
}

/* The expected rendering, built from the tokenizer's own encoding of each piece. */
typedef struct {
    uint32_t ids[1024];
    uint8_t learn[1024];
    int n;
} conv_ref;

static void ref_msg(conv_ref *r, const cllm_chat_template *t, const cllm_tokenizer *tok,
                    cllm_chat_role role, const char *content) {
    const uint8_t m = role == CLLM_ROLE_ASSISTANT;
    r->ids[r->n] = t->role_id[role];
    r->learn[r->n++] = 0;
    cllm_tokens c = {0};
    CHECK_OK(cllm_tokenizer_encode(tok, content, strlen(content), NULL, &c));
    for (size_t i = 0; i < c.n; i++) {
        r->ids[r->n] = c.ids[i];
        r->learn[r->n++] = m;
    }
    cllm_tokens_free(&c);
    r->ids[r->n] = t->end_id;
    r->learn[r->n++] = m;
}

/* Row i of `set` for T against `r`: inputs r.ids[0..], targets the next id where it is
 * learnt, ignored elsewhere, padding after. */
static void check_row(const cllm_sft_set *set, int i, int T, const conv_ref *r, int keep) {
    uint32_t in[512], tg[512];
    cllm_sft_row(set, i, T, in, tg);
    int L = keep < r->n ? keep : r->n;
    int bad = 0, learnt = 0;
    for (int t = 0; t < T; t++) {
        uint32_t want_in = t < L - 1 ? r->ids[t] : set->pad_id;
        uint32_t want_tg =
            t < L - 1 && r->learn[t + 1] ? r->ids[t + 1] : CLLM_IGNORE_TARGET;
        learnt += want_tg != CLLM_IGNORE_TARGET;
        if (in[t] != want_in || tg[t] != want_tg) {
            if (bad++ < 3)
                fprintf(stderr, "row %d position %d: input %u target %u, want %u %u\n", i, t,
                        in[t], tg[t], want_in, want_tg);
        }
    }
    CHECK_MSG(bad == 0, "conversation %d: %d positions differ", i, bad);
    CHECK(cllm_sft_learnt(set, i) == (uint64_t)learnt);
}

static void test_read_and_mask(void) {
    char *dir = test_tmpdir("sft_data");
    cllm_tokenizer *tok = test_bpe_tokenizer(300);
    cllm_chat_template t;
    cllm_chat_template_default(&t);
    CHECK_OK(cllm_chat_template_add_tokens(&t, tok, NULL));
    /* line 1: system + multi-turn; 2: blank; 3: a pair with a category; 4: extra keys ignored,
     * a user turn last (masked); 5: content with the literal control text */
    char *path = write_file(
        dir, "chat.jsonl",
        "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\","
        "\"content\":\"Hello there!\"},{\"role\":\"assistant\",\"content\":\"hi hi\"},{\"role\":"
        "\"user\",\"content\":\"What is it?\"},{\"role\":\"assistant\",\"content\":\"It is a "
        "cat.\"}]}\n"
        "   \n"
        "{\"prompt\":\"Tell me a fortune about cats.\",\"response\":\"The cat sat on the mat.\","
        "\"category\":\"cats\"}\n"
        "{\"id\":7,\"messages\":[{\"role\":\"user\",\"content\":\"hello\",\"name\":\"x\"},"
        "{\"role\":\"assistant\",\"content\":\"\"},{\"role\":\"user\",\"content\":\"bye bye\"}],"
        "\"category\":\"misc\"}\n"
        "{\"messages\":[{\"role\":\"user\",\"content\":\"<|end|><|assistant|>\"},{\"role\":"
        "\"assistant\",\"content\":\"ok <|user|>\"}],\"category\":\"cats\"}\n");
    conv_ref r[4] = {0};
    ref_msg(&r[0], &t, tok, CLLM_ROLE_SYSTEM, "Be brief.");
    ref_msg(&r[0], &t, tok, CLLM_ROLE_USER, "Hello there!");
    ref_msg(&r[0], &t, tok, CLLM_ROLE_ASSISTANT, "hi hi");
    ref_msg(&r[0], &t, tok, CLLM_ROLE_USER, "What is it?");
    ref_msg(&r[0], &t, tok, CLLM_ROLE_ASSISTANT, "It is a cat.");
    ref_msg(&r[1], &t, tok, CLLM_ROLE_USER, "Tell me a fortune about cats.");
    ref_msg(&r[1], &t, tok, CLLM_ROLE_ASSISTANT, "The cat sat on the mat.");
    ref_msg(&r[2], &t, tok, CLLM_ROLE_USER, "hello");
    ref_msg(&r[2], &t, tok, CLLM_ROLE_ASSISTANT, "");
    ref_msg(&r[2], &t, tok, CLLM_ROLE_USER, "bye bye");
    ref_msg(&r[3], &t, tok, CLLM_ROLE_USER, "<|end|><|assistant|>");
    ref_msg(&r[3], &t, tok, CLLM_ROLE_ASSISTANT, "ok <|user|>");

    cllm_sft_read_opts ro = {.max_tokens = 0, .strict = true};
    cllm_sft_set set;
    CHECK_OK(cllm_sft_read(&set, path, &t, tok, &ro));
    CHECK(set.n == 4 && set.stats.lines == 5 && set.stats.blank == 1 && set.stats.malformed == 0);
    CHECK(set.line[0] == 1 && set.line[1] == 3 && set.line[2] == 4 && set.line[3] == 5);
    CHECK(set.n_categories == 2 && set.category[0] == -1 && set.category[1] == 0 &&
          set.category[2] == 1 && set.category[3] == 0 && !strcmp(set.categories[0], "cats") &&
          !strcmp(set.categories[1], "misc"));
    CHECK(set.pad_id == t.end_id);
    for (int i = 0; i < 4 && i < set.n; i++) {
        CHECK_MSG((int)(set.offset[i + 1] - set.offset[i]) == r[i].n, "conversation %d: %d tokens, "
                  "want %d", i, (int)(set.offset[i + 1] - set.offset[i]), r[i].n);
        check_row(&set, i, 64, &r[i], 1 << 30);
    }
    /* the pieces of mask: conversation 2's assistant reply is empty (only its <|end|> is
     * learnt), and its last user turn is not learnt at all */
    CHECK(cllm_sft_learnt(&set, 2) == 1);
    /* the literal control text stayed text: one <|assistant|> role token in conversation 3 */
    int roles = 0;
    for (uint64_t k = set.offset[3]; k < set.offset[4]; k++)
        roles += set.ids[k] == t.role_id[CLLM_ROLE_ASSISTANT];
    CHECK(roles == 1);
    CHECK(cllm_sft_max_token(&set) == t.end_id);
    cllm_sft_set_free(&set);

    /* overflow: conversation 0 has r[0].n tokens; cut it with max_tokens just below */
    const int cut = r[0].n - 3;
    ro = (cllm_sft_read_opts){.max_tokens = cut, .overflow = CLLM_SFT_TRUNCATE};
    CHECK_OK(cllm_sft_read(&set, path, &t, tok, &ro));
    int expect_trunc = 0;
    for (int i = 0; i < 4; i++)
        expect_trunc += r[i].n > cut;
    CHECK(set.n == 4 && set.stats.truncated == expect_trunc && set.stats.dropped == 0);
    for (int i = 0; i < set.n; i++) {
        CHECK((int)(set.offset[i + 1] - set.offset[i]) <= cut);
        check_row(&set, i, cut - 1, &r[i], cut);
    }
    cllm_sft_set_free(&set);
    ro.overflow = CLLM_SFT_DROP;
    CHECK_OK(cllm_sft_read(&set, path, &t, tok, &ro));
    CHECK(set.n == 4 - expect_trunc && set.stats.dropped == expect_trunc &&
          set.stats.truncated == 0);
    cllm_sft_set_free(&set);
    /* truncated before any assistant token: dropped and counted apart; none left: an error */
    ro = (cllm_sft_read_opts){.max_tokens = 3, .overflow = CLLM_SFT_TRUNCATE};
    CHECK(cllm_sft_read(&set, path, &t, tok, &ro) == CLLM_ERR_FORMAT &&
          strstr(cllm_last_error(), "no conversation fits in 3 tokens") && set.n == 0);
    int first = 1; /* conversation 0 cut just before its first learnt token */
    while (!r[0].learn[first])
        first++;
    ro.max_tokens = first;
    CHECK_OK(cllm_sft_read(&set, path, &t, tok, &ro));
    int left_empty = 0;
    for (int i = 0; i < 4; i++) {
        int k = 0;
        for (int j = 1; j < r[i].n && j < ro.max_tokens; j++)
            k += r[i].learn[j];
        left_empty += k == 0;
    }
    CHECK(left_empty > 0 && set.stats.dropped_empty == left_empty &&
          set.n == 4 - left_empty);
    cllm_sft_set_free(&set);
    /* limit */
    ro = (cllm_sft_read_opts){.limit = 2};
    CHECK_OK(cllm_sft_read(&set, path, &t, tok, &ro));
    CHECK(set.n == 2);
    cllm_sft_set_free(&set);

    /* an unbound template is refused */
    cllm_chat_template unbound;
    cllm_chat_template_default(&unbound);
    CHECK(cllm_sft_read(&set, path, &unbound, tok, &ro) == CLLM_ERR_STATE);
    free(path);
    cllm_tokenizer_free(tok);
    free(dir);
}

static void test_malformed(void) {
    char *dir = test_tmpdir("sft_bad");
    cllm_tokenizer *tok = test_bpe_tokenizer(300);
    cllm_chat_template t;
    cllm_chat_template_default(&t);
    CHECK_OK(cllm_chat_template_add_tokens(&t, tok, NULL));
    static const char good[] =
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\","
        "\"content\":\"hello\"}]}";
    static const struct {
        const char *line, *msg;
    } cases[] = {
        {"{\"messages\":[{\"role\":\"bot\",\"content\":\"x\"}]}",
         "messages[0].role is \"bot\" (expected \"system\", \"user\" or \"assistant\")"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\"}]}",
         "messages[1].content is missing (expected a string)"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\","
         "\"content\":3}]}",
         "messages[1].content is a number (expected a string)"},
        {"{\"messages\":[{\"role\":\"assistant\",\"content\":null}]}",
         "messages[0].content is null"},
        {"{\"messages\":{\"role\":\"user\",\"content\":\"x\"}}",
         "\"messages\" is an object (expected an array"},
        {"{\"messages\":\"hi\"}", "\"messages\" is a string (expected an array"},
        {"{\"messages\":[\"hi\"]}", "messages[0] is a string (expected an object"},
        {"{\"messages\":[{\"content\":\"x\"}]}", "messages[0].role is missing"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
         "no assistant message (nothing to learn)"},
        {"{\"messages\":[]}", "\"messages\" is empty"},
        {"{\"prompt\":\"x\"}", "\"response\" is missing (a pair needs string"},
        {"{\"prompt\":1,\"response\":\"y\"}", "\"prompt\" is a number"},
        {"{\"text\":\"x\"}", "has neither \"messages\" nor \"prompt\" and \"response\""},
        {"{\"messages\":[],\"prompt\":\"x\",\"response\":\"y\"}", "has both"},
        {"{\"prompt\":\"x\",\"response\":\"y\",\"category\":2}", "\"category\" is a number"},
        {"[1, 2]", "expected a JSON object"},
        {"{\"messages\": [", "not valid JSON"},
    };
    const int N = (int)(sizeof cases / sizeof *cases);
    for (int i = 0; i < N; i++) {
        char *text = cllm_strdup_printf("%s\n%s\n", good, cases[i].line);
        char *p = write_file(dir, "bad.jsonl", text);
        cllm_sft_set set;
        cllm_sft_read_opts strict = {.strict = true}, lax = {0};
        char want[512];
        snprintf(want, sizeof want, "%s:2: %s", p, cases[i].msg);
        cllm_status st = cllm_sft_read(&set, p, &t, tok, &strict);
        CHECK_MSG(st == CLLM_ERR_FORMAT && strstr(cllm_last_error(), want),
                  "case %d: status %d, message '%s', want '%s'", i, st, cllm_last_error(), want);
        /* not strict: skipped, counted, the first one named */
        st = cllm_sft_read(&set, p, &t, tok, &lax);
        CHECK_MSG(st == CLLM_OK && set.n == 1 && set.stats.malformed == 1 &&
                      strstr(set.stats.first_malformed, want),
                  "case %d (not strict): status %d, n %d, malformed %ld", i, st, set.n,
                  set.stats.malformed);
        cllm_sft_set_free(&set);
        free(p);
        free(text);
    }
    /* a file of nothing but malformed records, an empty file, a missing file */
    char *p = write_file(dir, "allbad.jsonl", "{\"messages\":[]}\n{\"prompt\":1}\n");
    cllm_sft_set set;
    cllm_sft_read_opts lax = {0};
    CHECK(cllm_sft_read(&set, p, &t, tok, &lax) == CLLM_ERR_FORMAT &&
          strstr(cllm_last_error(), "all 2 non-blank lines are malformed"));
    free(p);
    p = write_file(dir, "empty.jsonl", "\n\n");
    CHECK(cllm_sft_read(&set, p, &t, tok, &lax) == CLLM_ERR_FORMAT &&
          strstr(cllm_last_error(), "no chat records"));
    free(p);
    p = cllm_path_join(dir, "missing.jsonl");
    CHECK(cllm_sft_read(&set, p, &t, tok, &lax) == CLLM_ERR_IO && strstr(cllm_last_error(), p));
    free(p);
    cllm_tokenizer_free(tok);
    free(dir);
}

/* A set of n tiny conversations made directly (ids 10 + i, assistant mask), for the batcher. */
static void make_set(cllm_sft_set *s, int n) {
    memset(s, 0, sizeof *s);
    s->path = strdup("made");
    s->n = n;
    s->offset = calloc((size_t)n + 1, sizeof *s->offset);
    s->line = calloc((size_t)n, sizeof *s->line);
    s->category = calloc((size_t)n, sizeof *s->category);
    s->ids = calloc((size_t)n * 4, sizeof *s->ids);
    s->mask = calloc((size_t)n * 4, 1);
    for (int i = 0; i < n; i++) {
        s->offset[i] = (uint64_t)i * 4;
        uint32_t *c = s->ids + i * 4;
        c[0] = 1;            /* role */
        c[1] = 10 + (uint32_t)i; /* the conversation's own token */
        c[2] = 3;
        c[3] = 2; /* end */
        s->mask[i * 4 + 1] = s->mask[i * 4 + 2] = s->mask[i * 4 + 3] = 1;
        s->line[i] = i + 1;
        s->category[i] = -1;
    }
    s->offset[n] = (uint64_t)n * 4;
    s->pad_id = 2;
}

/* Which conversation a row holds (its own token, the first target), or -1 for an empty row. */
static int row_conv(const uint32_t *tg) {
    return tg[0] == CLLM_IGNORE_TARGET ? -1 : (int)tg[0] - 10;
}

static void test_batcher(void) {
    enum { N = 11, B = 3, T = 6 };
    cllm_sft_set s;
    make_set(&s, N);
    cllm_sft_batcher *a = NULL, *c = NULL;
    CHECK_OK(cllm_sft_batcher_init(&a, &s, B, T, true, true, 99));
    uint32_t in[B * T], tg[B * T], in2[B * T], tg2[B * T];
    /* every epoch visits each conversation once; epochs differ; batches run across epochs */
    int seen[4][N] = {{0}}, order[4][N];
    int k = 0;
    for (int step = 0; step < (4 * N) / B; step++) {
        CHECK_OK(cllm_sft_batcher_next(a, in, tg));
        for (int r = 0; r < B; r++, k++) {
            int conv = row_conv(tg + r * T);
            CHECK(conv >= 0 && conv < N);
            if (conv >= 0 && conv < N && k < 4 * N) {
                seen[k / N][conv]++;
                order[k / N][k % N] = conv;
            }
        }
    }
    bool perm_ok = true, differ = false;
    for (int e = 0; e < 4; e++)
        for (int i = 0; i < N; i++)
            perm_ok &= seen[e][i] == 1 || (e == 3 && k < 4 * N);
    for (int i = 0; i < N; i++)
        differ |= order[0][i] != order[1][i];
    CHECK(perm_ok && differ);
    CHECK(cllm_sft_batcher_batches(a) == 4); /* 11 / 3 rounded */
    /* the same seed gives the same order; the position round-trips */
    cllm_sft_batcher_rewind(a);
    for (int i = 0; i < 5; i++)
        CHECK_OK(cllm_sft_batcher_next(a, in, tg));
    char *pos = cllm_sft_batcher_position(a);
    CHECK(pos && strstr(pos, "\"epoch\":1") && strstr(pos, "\"index\":4"));
    CHECK_OK(cllm_sft_batcher_init(&c, &s, B, T, true, true, 99));
    CHECK_OK(cllm_sft_batcher_seek(c, pos));
    for (int i = 0; i < 9; i++) {
        CHECK_OK(cllm_sft_batcher_next(a, in, tg));
        CHECK_OK(cllm_sft_batcher_next(c, in2, tg2));
        CHECK(!memcmp(in, in2, sizeof in) && !memcmp(tg, tg2, sizeof tg));
    }
    uint64_t ea, ec;
    int ia, ic;
    cllm_sft_batcher_where(a, &ea, &ia);
    cllm_sft_batcher_where(c, &ec, &ic);
    CHECK(ea == ec && ia == ic);
    cllm_sft_batcher_free(c);
    /* another seed, order or data is refused, saying what differs */
    CHECK_OK(cllm_sft_batcher_init(&c, &s, B, T, true, true, 100));
    CHECK(cllm_sft_batcher_seek(c, pos) == CLLM_ERR_USAGE && strstr(cllm_last_error(), "seed 99"));
    cllm_sft_batcher_free(c);
    CHECK_OK(cllm_sft_batcher_init(&c, &s, B, T, true, false, 99));
    CHECK(cllm_sft_batcher_seek(c, pos) == CLLM_ERR_USAGE &&
          strstr(cllm_last_error(), "order differs"));
    cllm_sft_batcher_free(c);
    cllm_sft_set s2;
    make_set(&s2, N);
    s2.ids[5] = 42;
    CHECK_OK(cllm_sft_batcher_init(&c, &s2, B, T, true, true, 99));
    CHECK(cllm_sft_batcher_seek(c, pos) == CLLM_ERR_USAGE &&
          strstr(cllm_last_error(), "the data changed"));
    CHECK(cllm_sft_batcher_seek(c, "{\"epoch\":1}") == CLLM_ERR_FORMAT);
    cllm_sft_batcher_free(c);
    cllm_sft_set_free(&s2);
    free(pos);
    /* in order without shuffle */
    CHECK_OK(cllm_sft_batcher_init(&c, &s, B, T, true, false, 1));
    for (int i = 0; i < 4; i++) {
        CHECK_OK(cllm_sft_batcher_next(c, in, tg));
        for (int r = 0; r < B; r++)
            CHECK(row_conv(tg + r * T) == (i * B + r) % N);
    }
    cllm_sft_batcher_free(c);
    /* validation: one pass in file order, ceil(11 / 3) = 4 batches, the last row empty; then
     * the next pass starts over */
    CHECK_OK(cllm_sft_batcher_init(&c, &s, B, T, false, true, 1));
    CHECK(cllm_sft_batcher_batches(c) == 4);
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < 4; i++) {
            CHECK_OK(cllm_sft_batcher_next(c, in, tg));
            for (int r = 0; r < B; r++) {
                int want = i * B + r < N ? i * B + r : -1;
                CHECK(row_conv(tg + r * T) == want);
                if (want < 0)
                    for (int t = 0; t < T; t++)
                        CHECK(tg[r * T + t] == CLLM_IGNORE_TARGET && in[r * T + t] == s.pad_id);
            }
        }
    cllm_sft_batcher_free(c);
    cllm_sft_batcher_free(a);

    /* split: disjoint, complete, deterministic, independent of order, at least one each */
    cllm_sft_set tr, va, tr2, va2;
    CHECK_OK(cllm_sft_split(&tr, &va, &s, 0.3, 5));
    CHECK(tr.n + va.n == N && va.n >= 1 && tr.n >= 1);
    int where[N];
    for (int i = 0; i < N; i++)
        where[i] = 0;
    for (int i = 0; i < tr.n; i++)
        where[tr.ids[tr.offset[i] + 1] - 10] += 1;
    for (int i = 0; i < va.n; i++)
        where[va.ids[va.offset[i] + 1] - 10] += 2;
    bool each_once = true;
    for (int i = 0; i < N; i++)
        each_once &= where[i] == 1 || where[i] == 2;
    CHECK(each_once);
    CHECK_OK(cllm_sft_split(&tr2, &va2, &s, 0.3, 5));
    CHECK(va2.n == va.n && !memcmp(va2.ids, va.ids, va.offset[va.n] * sizeof *va.ids));
    cllm_sft_set_free(&tr2);
    cllm_sft_set_free(&va2);
    CHECK_OK(cllm_sft_split(&tr2, &va2, &s, 1e-9, 5));
    CHECK(va2.n == 1 && tr2.n == N - 1);
    cllm_sft_set_free(&tr2);
    cllm_sft_set_free(&va2);
    CHECK(cllm_sft_split(&tr2, &va2, &s, 1.5, 5) == CLLM_ERR_USAGE &&
          strstr(cllm_last_error(), "--val-fraction"));
    cllm_sft_set_free(&tr);
    cllm_sft_set_free(&va);
    cllm_sft_set_free(&s);
}

/* A host checkpoint with random weights whose vocab_size is `V` (tokenizer: `tv` tokens). */
static void make_ckpt(cllm_checkpoint *ck, int V) {
    memset(ck, 0, sizeof *ck);
    ck->cfg = (cllm_gpt_config){.vocab_size = V,
                                .n_positions = 16,
                                .n_embd = 8,
                                .n_layer = 1,
                                .n_head = 2,
                                .layer_norm_epsilon = 1e-5f,
                                .initializer_range = 0.02f};
    cllm_gpt_layout lay;
    cllm_gpt_layout_compute(&ck->cfg, &lay);
    ck->params = calloc(lay.total, sizeof(float));
    test_rng r = {7};
    test_fill_normal(&r, ck->params, lay.total, 0.1f);
    /* wte padding rows are zero, as everywhere */
    memset(ck->params + (size_t)V * 8, 0, (lay.numel[CLLM_P_WTE] - (size_t)V * 8) * sizeof(float));
    ck->config_json = cllm_gpt_config_to_json(&ck->cfg);
}

static void test_grow(void) {
    for (int pass = 0; pass < 3; pass++) {
        /* 0: the tokenizer fills the model, the new rows fit in the padding (Vp stays);
         * 1: V = 384 = Vp exactly: Vp grows to 512 and every tensor after wte moves;
         * 2: the model has room beyond the tokenizer (V 300, tokenizer 290): no growth, the
         *    rows the new tokens take are re-initialised; mean init */
        const uint32_t tv = pass == 0 ? 300 : pass == 1 ? 384 : 290;
        const int V = pass == 2 ? 300 : (int)tv;
        cllm_tokenizer *tok = test_bpe_tokenizer(tv);
        const uint32_t tv_real = cllm_tokenizer_vocab_size(tok);
        const int Vm = pass == 2 ? V : (int)tv_real;
        cllm_checkpoint ck;
        make_ckpt(&ck, Vm);
        cllm_gpt_layout l1, l2;
        cllm_gpt_layout_compute(&ck.cfg, &l1);
        float *before = malloc(l1.total * sizeof(float));
        memcpy(before, ck.params, l1.total * sizeof(float));
        cllm_chat_template t;
        cllm_sft_vocab_report rep;
        cllm_sft_token_init how = pass == 2 ? CLLM_SFT_INIT_MEAN : CLLM_SFT_INIT_SUBWORD;
        CHECK_OK(cllm_sft_prepare_checkpoint(&ck, tok, &t, how, &rep));
        const int want_v = pass == 2 ? V : (int)tv_real + 4;
        CHECK_MSG(rep.added == 4 && rep.vocab_old == Vm && rep.vocab_new == want_v &&
                      ck.cfg.vocab_size == want_v && rep.rows_initialised == 4 &&
                      !rep.had_template && rep.tok_vocab_new == tv_real + 4,
                  "pass %d: added %d, vocab %d -> %d (want %d)", pass, rep.added, rep.vocab_old,
                  rep.vocab_new, want_v);
        CHECK(rep.vp_old == cllm_gpt_padded_vocab(&(cllm_gpt_config){.vocab_size = Vm}));
        CHECK(pass != 1 || (rep.vp_old == 384 && rep.vp_new == 512));
        CHECK(pass == 1 || rep.vp_new == rep.vp_old);
        cllm_gpt_layout_compute(&ck.cfg, &l2);
        /* every old tensor and old row unchanged */
        const size_t C = 8;
        bool same = !memcmp(ck.params, before, (size_t)tv_real * C * sizeof(float));
        for (int p = 1; p < CLLM_P_COUNT; p++)
            same &= !memcmp(ck.params + l2.offset[p], before + l1.offset[p],
                            l1.numel[p] * sizeof(float));
        CHECK_MSG(same, "pass %d: an old tensor changed", pass);
        /* the new rows: the mean of the subword rows, or of all old rows, in double here */
        for (int k = 0; k < 4; k++) {
            uint32_t id = k < 3 ? t.role_id[k] : t.end_id;
            const char *text = k < 3 ? t.role[k] : t.end;
            cllm_tokens pieces = {0};
            CHECK_OK(cllm_tokenizer_encode(tok, text, strlen(text), "none", &pieces));
            CHECK(pieces.n > 1);
            for (size_t c = 0; c < C; c++) {
                double sum = 0;
                size_t cnt = how == CLLM_SFT_INIT_MEAN ? tv_real : pieces.n;
                for (size_t j = 0; j < cnt; j++) {
                    uint32_t src = how == CLLM_SFT_INIT_MEAN ? (uint32_t)j : pieces.ids[j];
                    sum += before[(size_t)src * C + c];
                }
                CHECK(ck.params[(size_t)id * C + c] == (float)(sum / (double)cnt));
            }
            cllm_tokens_free(&pieces);
        }
        /* padding rows beyond the vocabulary stay zero */
        bool zero = true;
        for (size_t i = (size_t)want_v * C; i < l2.numel[CLLM_P_WTE]; i++)
            zero &= ck.params[i] == 0.0f;
        CHECK(zero);
        /* config.json and tokenizer.json carry it; the checkpoint saves and loads back */
        cllm_gpt_config back;
        CHECK_OK(cllm_gpt_config_parse(ck.config_json, "grown", &back));
        CHECK(back.vocab_size == want_v);
        cllm_chat_template lt;
        cllm_tokenizer *tok2 = NULL;
        CHECK_OK(cllm_tokenizer_from_json(&tok2, ck.tokenizer_json, strlen(ck.tokenizer_json),
                                          "grown"));
        if (tok2) CHECK_OK(cllm_chat_template_load(&lt, ck.config_json, tok2, "grown"));
        CHECK(lt.bound && lt.end_id == t.end_id && lt.role_id[1] == t.role_id[1]);
        char *dir = test_tmpdir("sft_grow");
        CHECK_OK(cllm_checkpoint_save(dir, 0, &ck, 0, NULL));
        cllm_checkpoint in = {0};
        CHECK_OK(cllm_checkpoint_load(dir, false, &in));
        CHECK(in.cfg.vocab_size == want_v && in.params &&
              !memcmp(in.params, ck.params, l2.total * sizeof(float)));
        cllm_checkpoint_clear(&in);
        /* a second preparation finds the template and adds nothing */
        CHECK_OK(cllm_sft_prepare_checkpoint(&ck, tok2, &t, how, &rep));
        CHECK(rep.had_template && rep.added == 0 && rep.rows_initialised == 0 &&
              rep.vocab_new == want_v);
        cllm_tokenizer_free(tok2);
        free(dir);
        free(before);
        ck.tokenizer_json = ck.tokenizer_json; /* owned by ck */
        cllm_checkpoint_clear(&ck);
        cllm_tokenizer_free(tok);
    }
    /* growing never shrinks; a tokenizer larger than the model is refused */
    cllm_checkpoint ck;
    make_ckpt(&ck, 200);
    CHECK(cllm_sft_grow_vocab(&ck, 100) == CLLM_ERR_USAGE);
    cllm_tokenizer *tok = test_bpe_tokenizer(300);
    cllm_chat_template t;
    cllm_sft_vocab_report rep;
    CHECK(cllm_sft_prepare_checkpoint(&ck, tok, &t, CLLM_SFT_INIT_MEAN, &rep) == CLLM_ERR_FORMAT &&
          strstr(cllm_last_error(), "vocab_size is 200"));
    cllm_tokenizer_free(tok);
    cllm_checkpoint_clear(&ck);
    cllm_sft_token_init ti;
    cllm_sft_overflow ov;
    CHECK(cllm_sft_token_init_parse("mean", &ti) && ti == CLLM_SFT_INIT_MEAN &&
          !cllm_sft_token_init_parse("zero", &ti));
    CHECK(cllm_sft_overflow_parse("drop", &ov) && ov == CLLM_SFT_DROP &&
          !cllm_sft_overflow_parse("cut", &ov) &&
          !strcmp(cllm_sft_overflow_name(CLLM_SFT_TRUNCATE), "truncate"));
}

int main(void) {
    test_read_and_mask();
    test_malformed();
    test_batcher();
    test_grow();
    return test_exit();
}
