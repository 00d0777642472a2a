#include "testutil.h"

#include "cllm/util.h"

#include <stdlib.h>
#include <string.h>

int test_failures = 0;
int test_checks = 0;

bool test_close(double got, double ref, double atol, double rtol) {
    if (isnan(got) || isnan(ref)) return isnan(got) && isnan(ref);
    return fabs(got - ref) <= atol + rtol * fabs(ref);
}

bool test_allclose(const char *what, const float *got, const float *ref, size_t n, double atol,
                   double rtol) {
    size_t bad = 0, worst = 0;
    double worst_excess = -1;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)ref[i]);
        double lim = atol + rtol * fabs((double)ref[i]);
        if (!(d <= lim)) {
            bad++;
            double ex = isnan(d) ? INFINITY : d - lim;
            if (ex > worst_excess) {
                worst_excess = ex;
                worst = i;
            }
        }
    }
    if (bad)
        fprintf(stderr, "  %s: %zu of %zu elements differ; worst [%zu]: got %.9g, ref %.9g\n", what,
                bad, n, worst, (double)got[worst], (double)ref[worst]);
    return bad == 0;
}

int test_exit(void) {
    if (test_failures) {
        fprintf(stderr, "FAILED: %d of %d checks\n", test_failures, test_checks);
        return 1;
    }
    printf("ok: %d checks\n", test_checks);
    return 0;
}

uint64_t test_rng_u64(test_rng *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double test_rng_uniform(test_rng *r) {
    return (double)(test_rng_u64(r) >> 11) * 0x1.0p-53;
}

double test_rng_normal(test_rng *r) {
    double u1 = test_rng_uniform(r), u2 = test_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void test_fill_normal(test_rng *r, float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(scale * test_rng_normal(r));
}

cllm_runtime *test_runtime(void) {
    cllm_runtime_opts o = cllm_runtime_opts_default();
    o.quiet = true;
    cllm_runtime *rt = NULL;
    cllm_status st = cllm_runtime_init(&rt, &o);
    if (st == CLLM_ERR_NO_DEVICE && strstr(cllm_last_error(), "no OpenCL platform")) {
        fprintf(stderr, "skipped: %s\n", cllm_last_error());
        exit(77);
    }
    if (st != CLLM_OK) {
        fprintf(stderr, "cannot open the OpenCL runtime: %s\n", cllm_last_error());
        exit(1);
    }
    return rt;
}

char *test_tmpdir(const char *name) {
    const char *base = getenv("CLLM_TEST_TMP");
    char *path = cllm_strdup_printf("%s/%s", base && *base ? base : "/tmp/cllm-test", name);
    if (!path) exit(1);
    cllm_remove_tree(path);
    if (cllm_mkdirs(path) != CLLM_OK) {
        fprintf(stderr, "cannot create %s: %s\n", path, cllm_last_error());
        exit(1);
    }
    return path;
}

char *test_fixture(const char *name) {
    const char *dir = getenv("CLLM_FIXTURES");
#ifdef CLLM_FIXTURES_DIR
    if (!dir || !*dir) dir = CLLM_FIXTURES_DIR; /* run by hand, outside ctest */
#endif
    if (!dir || !*dir) return NULL;
    return cllm_path_join(dir, name);
}

const char *test_shared_data(void) {
    const char *dir = getenv("CLLM_SHARED_DATA");
    if (dir && *dir && cllm_is_dir(dir)) return dir;
    return NULL;
}

cllm_tokenizer *test_tokenizer(const char *text, uint32_t vocab) {
    cllm_text doc = {text, strlen(text)};
    cllm_bpe_train_opts o = cllm_bpe_train_opts_default();
    o.vocab_size = vocab;
    o.min_frequency = 1;
    o.threads = 1;
    cllm_tokenizer *tok = NULL;
    if (cllm_tokenizer_train(&tok, &doc, 1, &o) != CLLM_OK) {
        fprintf(stderr, "training a test tokenizer: %s\n", cllm_last_error());
        exit(1);
    }
    return tok;
}

cllm_tokenizer *test_bpe_tokenizer(uint32_t vocab) {
    static const char base[] = "Be brief. Hello there! Tell me a fortune about cats. The cat sat "
                               "on the mat. What is it? It is a cat. hi hi hello, bye bye.";
    char text[8192];
    size_t n = (size_t)snprintf(text, sizeof text, "%s", base);
    test_rng r = {11};
    while (n + 12 < sizeof text) {
        text[n++] = ' ';
        for (int k = 2 + (int)(test_rng_u64(&r) % 6); k > 0; k--)
            text[n++] = (char)('a' + test_rng_u64(&r) % 26);
    }
    text[n] = 0;
    cllm_tokenizer *tok = test_tokenizer(text, vocab);
    if (cllm_tokenizer_vocab_size(tok) != vocab) {
        fprintf(stderr, "test_bpe_tokenizer: %u tokens, want %u\n", cllm_tokenizer_vocab_size(tok),
                vocab);
        exit(1);
    }
    return tok;
}
