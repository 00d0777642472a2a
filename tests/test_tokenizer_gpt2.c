/* GPT-2's own files (../shared/data/gpt2): cllm's ids equal tiktoken's `gpt2` encoding on the
 * vectors tools/tokenizer_vectors.py generated (prose, code, whitespace runs, contractions,
 * digits, CJK, emoji, combining marks, control characters, random code points, specials), by
 * every encode path (single, batch, parallel); decode gives the text back; a tokenizer.json
 * written by cllm from GPT-2's files loads back to the same ids. Skips (77) without the data. */
#include "testutil.h"

#include "cllm/tokenizer.h"
#include "cllm/util.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *name, *text, *allowed;
    size_t len;
    uint32_t *ids;
    size_t n_ids;
} vec;

static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static vec *load_vectors(const char *path, size_t *count) {
    char *data;
    size_t len;
    if (cllm_read_file(path, &data, &len) != CLLM_OK) {
        fprintf(stderr, "%s\n", cllm_last_error());
        exit(1);
    }
    size_t cap = 1024, n = 0;
    vec *v = calloc(cap, sizeof *v);
    for (char *line = data; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        cJSON *o = cJSON_Parse(line);
        if (!o) {
            fprintf(stderr, "%s: bad line %zu\n", path, n + 1);
            exit(1);
        }
        if (n == cap) v = realloc(v, (cap *= 2) * sizeof *v);
        vec *x = &v[n++];
        memset(x, 0, sizeof *x);
        x->name = strdup(cJSON_GetObjectItem(o, "name")->valuestring);
        x->allowed = strdup(cJSON_GetObjectItem(o, "allowed")->valuestring);
        const cJSON *t = cJSON_GetObjectItem(o, "text"), *h = cJSON_GetObjectItem(o, "hex");
        if (t) {
            x->text = strdup(t->valuestring);
            x->len = strlen(x->text);
        } else {
            const char *hs = h->valuestring;
            x->len = strlen(hs) / 2;
            x->text = malloc(x->len + 1);
            for (size_t i = 0; i < x->len; i++)
                x->text[i] = (char)(hexval(hs[2 * i]) * 16 + hexval(hs[2 * i + 1]));
        }
        const cJSON *ids = cJSON_GetObjectItem(o, "ids");
        x->n_ids = (size_t)cJSON_GetArraySize(ids);
        x->ids = malloc((x->n_ids + 1) * sizeof *x->ids);
        size_t k = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, ids) x->ids[k++] = (uint32_t)e->valuedouble;
        cJSON_Delete(o);
        line = nl ? nl + 1 : NULL;
    }
    free(data);
    *count = n;
    return v;
}

static bool same_ids(const uint32_t *a, size_t na, const uint32_t *b, size_t nb, const char *what,
                     const char *name) {
    if (na == nb && (na == 0 || !memcmp(a, b, na * sizeof *a))) return true;
    size_t i = 0;
    while (i < na && i < nb && a[i] == b[i]) i++;
    fprintf(stderr, "%s %s: %zu vs %zu ids, first difference at %zu (%d vs %d)\n", what, name,
            na, nb, i, i < na ? (int)a[i] : -1, i < nb ? (int)b[i] : -1);
    return false;
}

/* Every path encodes every vector to tiktoken's ids and decodes back to the text. */
static void check_all(const cllm_tokenizer *tok, const vec *v, size_t n, const char *what) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        cllm_tokens ids = {0};
        CHECK_OK(cllm_tokenizer_encode(tok, v[i].text, v[i].len, v[i].allowed, &ids));
        if (!same_ids(ids.ids, ids.n, v[i].ids, v[i].n_ids, what, v[i].name)) bad++;
        char *back = NULL;
        size_t blen = 0;
        CHECK_OK(cllm_tokenizer_decode(tok, ids.ids, ids.n, &back, &blen));
        CHECK_MSG(blen == v[i].len && !memcmp(back, v[i].text, blen), "%s: decode %s", what,
                  v[i].name);
        free(back);
        cllm_tokens_free(&ids);
        cllm_tokens par = {0};
        CHECK_OK(cllm_tokenizer_encode_parallel(tok, v[i].text, v[i].len, v[i].allowed, 3, &par));
        if (!same_ids(par.ids, par.n, v[i].ids, v[i].n_ids, "parallel", v[i].name)) bad++;
        cllm_tokens_free(&par);
    }
    CHECK_MSG(bad == 0, "%s: %zu of %zu vectors differ from tiktoken", what, bad, n);

    /* batch: all vectors with no specials allowed, as one call on 3 threads */
    cllm_text *docs = calloc(n, sizeof *docs);
    cllm_tokens *outs = calloc(n, sizeof *outs);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i].allowed, "none")) docs[m++] = (cllm_text){v[i].text, v[i].len};
    CHECK_OK(cllm_tokenizer_encode_batch(tok, docs, m, "none", 3, outs));
    size_t k = 0, bad_batch = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i].allowed, "none") != 0) continue;
        if (!same_ids(outs[k].ids, outs[k].n, v[i].ids, v[i].n_ids, "batch", v[i].name))
            bad_batch++;
        cllm_tokens_free(&outs[k++]);
    }
    CHECK_MSG(bad_batch == 0, "%s: batch encode differs on %zu vectors", what, bad_batch);
    free(docs);
    free(outs);

    /* one long text: all the texts joined, encoded in parallel equals the parts' ids joined
     * only where the cut points agree, so compare against the single-thread encoding */
    size_t total = 0;
    for (size_t i = 0; i < n; i++) total += v[i].len + 1;
    char *all = malloc(total + 1);
    size_t pos = 0;
    for (int rep = 0; rep < 1; rep++)
        for (size_t i = 0; i < n; i++) {
            memcpy(all + pos, v[i].text, v[i].len);
            pos += v[i].len;
            all[pos++] = '\n';
        }
    cllm_tokens one = {0}, par = {0};
    CHECK_OK(cllm_tokenizer_encode(tok, all, pos, "all", &one));
    CHECK_OK(cllm_tokenizer_encode_parallel(tok, all, pos, "all", 2, &par));
    CHECK(same_ids(par.ids, par.n, one.ids, one.n, "parallel", "joined text"));
    cllm_tokens_free(&one);
    cllm_tokens_free(&par);
    free(all);
}

int main(void) {
    const char *shared = test_shared_data();
    char *dir = shared ? cllm_path_join(shared, "gpt2") : NULL;
    if (!dir || !cllm_is_dir(dir)) {
        fprintf(stderr, "skipped: no ../shared/data/gpt2\n");
        free(dir);
        return 77;
    }
    char *fx = test_fixture("tokenizer_gpt2_vectors.jsonl");
    size_t n;
    vec *v = load_vectors(fx, &n);
    CHECK(n > 500);

    cllm_tokenizer *tok = NULL;
    CHECK_OK(cllm_tokenizer_load(&tok, dir));
    if (!tok) return test_exit();
    CHECK(cllm_tokenizer_vocab_size(tok) == 50257);
    CHECK(cllm_tokenizer_merge_count(tok) == 50000);
    CHECK(cllm_tokenizer_eot(tok) == 50256);
    CHECK(cllm_tokenizer_token_id(tok, "<|endoftext|>") == 50256);
    CHECK(cllm_tokenizer_token_id(tok, " the") == 262); /* encoder.json: "Ġthe": 262 */
    CHECK(cllm_tokenizer_token_id(tok, "no such token at all") == -1);
    check_all(tok, v, n, "gpt2 files");

    /* written as tokenizer.json and read back: the same ids */
    char *json = cllm_tokenizer_to_json(tok);
    CHECK(json != NULL);
    cllm_tokenizer *tok2 = NULL;
    CHECK_OK(cllm_tokenizer_from_json(&tok2, json, strlen(json), "roundtrip"));
    if (tok2) {
        CHECK(cllm_tokenizer_vocab_size(tok2) == 50257);
        CHECK(cllm_tokenizer_eot(tok2) == 50256);
        char *json2 = cllm_tokenizer_to_json(tok2);
        CHECK(json2 && !strcmp(json, json2));
        free(json2);
        check_all(tok2, v, n, "tokenizer.json from gpt2");
    }
    free(json);
    cllm_tokenizer_free(tok2);
    cllm_tokenizer_free(tok);
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
        free(v[i].text);
        free(v[i].allowed);
        free(v[i].ids);
    }
    free(v);
    free(fx);
    free(dir);
    return test_exit();
}
