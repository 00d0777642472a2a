/* Tokenizer benchmarks (bench/tokenizer_bench.py runs them beside the peers).
 *
 *   bench_tokenizer pretok FILE [REPS]          cllm's pre-tokenizer vs PCRE2-JIT running
 *                                               GPT-2's regex on the same text (same cuts?)
 *   bench_tokenizer encode TOK FILE [THREADS] [REPS]
 *                                               encoding MB/s on 1 thread and on THREADS
 *
 * Times are the best of REPS runs (default 5): the machine is shared and noisy.
 */
#include "cllm/tokenizer.h"
#include "cllm/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef CLLM_HAVE_PCRE2
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#endif

static bool count_piece(const char *p, size_t n, void *user) {
    (void)p;
    (void)n;
    (*(size_t *)user)++;
    return true;
}

#ifdef CLLM_HAVE_PCRE2
typedef struct {
    size_t *ends;
    size_t n, cap;
    const char *base;
} cuts;

static bool record_piece(const char *p, size_t n, void *user) {
    cuts *c = user;
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 1 << 16;
        c->ends = realloc(c->ends, c->cap * sizeof *c->ends);
    }
    c->ends[c->n++] = (size_t)(p + n - c->base);
    return true;
}
#endif

static int bench_pretok(const char *path, int reps) {
    char *text;
    size_t len;
    if (cllm_read_file(path, &text, &len) != CLLM_OK) {
        fprintf(stderr, "%s\n", cllm_last_error());
        return 1;
    }
    double best = 1e30;
    size_t pieces = 0;
    for (int r = 0; r < reps; r++) {
        pieces = 0;
        double t0 = cllm_now();
        cllm_pretokenize(text, len, count_piece, &pieces);
        double dt = cllm_now() - t0;
        if (dt < best) best = dt;
    }
    printf("pretok cllm:  %8.1f MB/s  (%zu pieces, best of %d)\n", len / best / 1e6, pieces, reps);
#ifdef CLLM_HAVE_PCRE2
    /* GPT-2's regex; \s spelt out as Unicode White_Space, the set cllm (and tiktoken) use */
    const char *pat = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\t-\\r\\x{85}\\p{Z}\\p{L}\\p{N}]+"
                      "|[\\t-\\r\\x{85}\\p{Z}]+(?![^\\t-\\r\\x{85}\\p{Z}])|[\\t-\\r\\x{85}\\p{Z}]+";
    int err;
    PCRE2_SIZE eoff;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &eoff,
                                   NULL);
    if (!re || pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) != 0) {
        fprintf(stderr, "pcre2: cannot compile the pattern\n");
        return 1;
    }
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    cuts mine = {.base = text};
    cllm_pretokenize(text, len, record_piece, &mine);
    size_t pn = 0, same = 0;
    double pbest = 1e30;
    for (int r = 0; r < reps; r++) {
        pn = 0;
        same = 0;
        size_t k = 0;
        double t0 = cllm_now();
        PCRE2_SIZE at = 0;
        while (at < len) {
            int rc = pcre2_jit_match(re, (PCRE2_SPTR)text, len, at, 0, md, NULL);
            if (rc < 0) break;
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            if (ov[1] == ov[0]) break;
            pn++;
            /* the regex skips nothing GPT-2's cuts cover; compare the ends */
            while (k < mine.n && mine.ends[k] < ov[1]) k++;
            same += k < mine.n && mine.ends[k] == ov[1];
            at = ov[1];
        }
        double dt = cllm_now() - t0;
        if (dt < pbest) pbest = dt;
    }
    printf("pretok pcre2: %8.1f MB/s  (%zu pieces, %zu cut at the same place; JIT, best of %d)\n",
           len / pbest / 1e6, pn, same, reps);
    printf("ratio: cllm's scanner is %.2fx PCRE2-JIT\n", pbest / best);
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    free(mine.ends);
#else
    printf("pretok pcre2: not built (no libpcre2-dev)\n");
#endif
    free(text);
    return 0;
}

static int bench_encode(const char *tpath, const char *path, int threads, int reps) {
    cllm_tokenizer *tok = NULL;
    char *text = NULL;
    size_t len;
    if (cllm_tokenizer_load(&tok, tpath) != CLLM_OK || cllm_read_file(path, &text, &len) != CLLM_OK) {
        fprintf(stderr, "%s\n", cllm_last_error());
        cllm_tokenizer_free(tok);
        return 1;
    }
    double best1 = 1e30, bestn = 1e30;
    size_t n1 = 0, nn = 0;
    for (int r = 0; r < reps; r++) {
        cllm_tokens ids = {0};
        double t0 = cllm_now();
        cllm_tokenizer_encode(tok, text, len, NULL, &ids);
        double dt = cllm_now() - t0;
        if (dt < best1) best1 = dt;
        n1 = ids.n;
        cllm_tokens_free(&ids);
        t0 = cllm_now();
        cllm_tokenizer_encode_parallel(tok, text, len, NULL, threads, &ids);
        dt = cllm_now() - t0;
        if (dt < bestn) bestn = dt;
        nn = ids.n;
        cllm_tokens_free(&ids);
    }
    printf("encode 1 thread:  %8.2f MB/s  (%zu bytes -> %zu tokens, best of %d)\n",
           len / best1 / 1e6, len, n1, reps);
    printf("encode %d threads: %8.2f MB/s  (%zu tokens)\n", threads, len / bestn / 1e6, nn);
    free(text);
    cllm_tokenizer_free(tok);
    return n1 == nn ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "pretok"))
        return bench_pretok(argv[2], argc > 3 ? atoi(argv[3]) : 5);
    if (argc >= 4 && !strcmp(argv[1], "encode"))
        return bench_encode(argv[2], argv[3], argc > 4 ? atoi(argv[4]) : 2,
                            argc > 5 ? atoi(argv[5]) : 5);
    fprintf(stderr, "usage: bench_tokenizer pretok FILE [REPS] | encode TOK FILE [THREADS] [REPS]\n");
    return 2;
}
