/* tests/testutil.h — checks, tolerances, a seeded RNG and runtime/tmp helpers for the ctest
 * executables. A test returns test_exit(): 0 if every CHECK held, 1 otherwise. Device tests
 * get their runtime from test_runtime(), which exits 77 (skipped) only when no OpenCL
 * platform exists at all.
 */
#ifndef CLLM_TESTUTIL_H
#define CLLM_TESTUTIL_H

#include "cllm/common.h"
#include "cllm/runtime.h"
#include "cllm/tokenizer.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

extern int test_failures;
extern int test_checks;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        test_checks++;                                                                             \
        if (!(cond)) {                                                                             \
            test_failures++;                                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        test_checks++;                                                                             \
        if (!(cond)) {                                                                             \
            test_failures++;                                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
        }                                                                                          \
    } while (0)

/* A cllm call that must succeed; prints the recorded error if not. */
#define CHECK_OK(expr)                                                                             \
    do {                                                                                           \
        cllm_status s_ = (expr);                                                                   \
        test_checks++;                                                                             \
        if (s_ != CLLM_OK) {                                                                       \
            test_failures++;                                                                       \
            fprintf(stderr, "%s:%d: %s returned %s: %s\n", __FILE__, __LINE__, #expr,              \
                    cllm_status_name(s_), cllm_last_error());                                      \
        }                                                                                          \
    } while (0)

/* fp32 tolerance of STYLE.md: |got - ref| <= atol + rtol * |ref|. */
bool test_close(double got, double ref, double atol, double rtol);
/* Compare arrays; reports the worst element. Returns true if all close. */
bool test_allclose(const char *what, const float *got, const float *ref, size_t n, double atol,
                   double rtol);
#define CHECK_ALLCLOSE(what, got, ref, n, atol, rtol)                                              \
    do {                                                                                           \
        test_checks++;                                                                             \
        if (!test_allclose(what, got, ref, n, atol, rtol)) {                                       \
            test_failures++;                                                                       \
            fprintf(stderr, "%s:%d: arrays differ: %s\n", __FILE__, __LINE__, what);               \
        }                                                                                          \
    } while (0)

int test_exit(void);

/* Seeded RNG (splitmix64). */
typedef struct {
    uint64_t s;
} test_rng;
uint64_t test_rng_u64(test_rng *r);
double test_rng_uniform(test_rng *r); /* [0, 1) */
double test_rng_normal(test_rng *r);
void test_fill_normal(test_rng *r, float *x, size_t n, float scale);

/* The runtime for device tests (CLLM_DEVICE / CLLM_PLATFORM honoured); exits 77 if no OpenCL
 * platform exists, 1 on any other failure. */
cllm_runtime *test_runtime(void);
/* A byte-level BPE tokenizer trained on `text` (every pair seen once may merge) with at most
 * `vocab` tokens, on one thread; exits 1 if training fails. */
cllm_tokenizer *test_tokenizer(const char *text, uint32_t vocab);
/* One of exactly `vocab` tokens learnt from a few English sentences and seeded random words
 * (enough pairs to merge for any vocab up to ~1500); exits 1 if it cannot. */
cllm_tokenizer *test_bpe_tokenizer(uint32_t vocab);
/* A fresh, empty directory $CLLM_TEST_TMP/<name> (malloc'd path). */
char *test_tmpdir(const char *name);
/* Path of a file under tests/fixtures (malloc'd), or NULL if CLLM_FIXTURES is unset. */
char *test_fixture(const char *name);
/* Directory ../shared/data when present, else NULL (tests that need it skip). */
const char *test_shared_data(void);

#endif
