/* The tune table and its cache (host/tune_cache.c, host/blas.c): a table written for this device
 * reads back equal and is what a new runtime uses; lookups take the exact entry, else the
 * nearest within a factor of 4 per size, else the fallback; a corrupt or foreign cache is
 * ignored with one warning naming it (the built-in table or CLBlast is used instead and
 * products stay right); CLLM_TUNE=0 and CLLM_TUNE=builtin choose what is read; the built-in
 * table of this device (when it has one) computes correctly through cllm_blas_sgemm. */
#define _POSIX_C_SOURCE 200809L
#include "blas.h"
#include "testutil.h"
#include "tune.h"

#include "cllm/util.h"

#include <stdlib.h>
#include <string.h>

static char warnings[8192];

static void capture(cllm_log_level level, const char *msg, void *user) {
    (void)user;
    if (level < CLLM_LOG_WARN) return;
    size_t used = strlen(warnings);
    snprintf(warnings + used, sizeof warnings - used, "%s\n", msg);
}

static cllm_runtime *runtime_in(const char *cache_dir) {
    cllm_runtime_opts o = cllm_runtime_opts_default();
    o.quiet = true;
    o.cache_dir = cache_dir;
    cllm_runtime *rt = NULL;
    cllm_status st = cllm_runtime_init(&rt, &o);
    if (st != CLLM_OK) {
        fprintf(stderr, "runtime: %s\n", cllm_last_error());
        exit(st == CLLM_ERR_NO_DEVICE ? 77 : 1);
    }
    return rt;
}

static cllm_tune_table sample_table(void) {
    cllm_tune_table t;
    memset(&t, 0, sizeof t);
    strcpy(t.origin, "cache");
    t.n_entries = 4;
    t.entries = calloc(4, sizeof *t.entries);
    t.entries[0] = (cllm_tune_entry){{0, 1, 2048, 1152, 384, 1},
                                     {CLLM_GEMM_CLLM, {16, 14, 2, 16, 0}},
                                     201.5};
    t.entries[1] = (cllm_tune_entry){{1, 0, 1536, 384, 2048, 1},
                                     {CLLM_GEMM_CLLM, {8, 6, 3, 4, 256}},
                                     150.25};
    t.entries[2] = (cllm_tune_entry){{0, 0, 256, 64, 256, 48}, {CLLM_GEMM_CLBLAST}, 40};
    t.entries[3] = (cllm_tune_entry){{1, 1, 7, 9, 11, 1}, {CLLM_GEMM_CLBLAST_DIRECT}, 0};
    t.fallback = (cllm_gemm_choice){CLLM_GEMM_CLLM, {16, 8, 2, 8, 128}};
    cllm_tune_pocl_xgemm(&t.clblast[0]);
    strcpy(t.clblast[1].kernel, "GemmRoutine");
    cllm_clblast_params_set(&t.clblast[1], "XGEMM_MIN_INDIRECT_SIZE", 384);
    t.n_clblast = 2;
    return t;
}

static bool same_choice(cllm_gemm_choice a, cllm_gemm_choice b) {
    return a.path == b.path && (a.path != CLLM_GEMM_CLLM || !memcmp(&a.k, &b.k, sizeof a.k));
}

static void check_equal(const cllm_tune_table *a, const cllm_tune_table *b) {
    CHECK(a->n_entries == b->n_entries);
    for (int i = 0; i < a->n_entries && i < b->n_entries; i++) {
        CHECK_MSG(!memcmp(&a->entries[i].shape, &b->entries[i].shape, sizeof a->entries[i].shape),
                  "entry %d shape", i);
        CHECK_MSG(same_choice(a->entries[i].choice, b->entries[i].choice), "entry %d choice", i);
        CHECK_MSG(test_close(a->entries[i].gflops, b->entries[i].gflops, 0.051, 0),
                  "entry %d gflops %g vs %g", i, a->entries[i].gflops, b->entries[i].gflops);
    }
    CHECK(same_choice(a->fallback, b->fallback));
    CHECK(a->n_clblast == b->n_clblast);
    for (int i = 0; i < a->n_clblast && i < b->n_clblast; i++) {
        CHECK(!strcmp(a->clblast[i].kernel, b->clblast[i].kernel));
        CHECK(a->clblast[i].n == b->clblast[i].n);
        for (int j = 0; j < a->clblast[i].n && j < b->clblast[i].n; j++) {
            CHECK(!strcmp(a->clblast[i].name[j], b->clblast[i].name[j]));
            CHECK(a->clblast[i].value[j] == b->clblast[i].value[j]);
        }
    }
}

static void test_lookup(void) {
    cllm_tune_table t = sample_table();
    cllm_gemm_shape exact = {0, 1, 2048, 1152, 384, 1}, near = {0, 1, 1024, 1536, 300, 1},
                    far = {0, 1, 2048, 1152, 64, 1}, batched = {0, 1, 2048, 1152, 384, 2},
                    other_op = {0, 0, 2048, 1152, 384, 1}, att = {0, 0, 128, 32, 128, 16};
    CHECK(same_choice(cllm_tune_table_lookup(&t, &exact), t.entries[0].choice));
    CHECK(same_choice(cllm_tune_table_lookup(&t, &near), t.entries[0].choice));
    CHECK(same_choice(cllm_tune_table_lookup(&t, &far), t.fallback)); /* K 6x smaller */
    CHECK(same_choice(cllm_tune_table_lookup(&t, &batched), t.fallback));
    CHECK(same_choice(cllm_tune_table_lookup(&t, &other_op), t.fallback));
    CHECK(same_choice(cllm_tune_table_lookup(&t, &att), t.entries[2].choice));
    cllm_tune_table_clear(&t);
    CHECK(t.entries == NULL && t.n_entries == 0);
}

static void write_text(const char *path, const char *text) {
    CHECK_OK(cllm_write_file_atomic(path, text, strlen(text)));
}

/* Replace the first `from` in the file by `to`. */
static void edit_file(const char *src, const char *dst, const char *from, const char *to) {
    char *text = NULL;
    size_t len = 0;
    CHECK_OK(cllm_read_file(src, &text, &len));
    char *at = text ? strstr(text, from) : NULL;
    CHECK_MSG(at != NULL, "'%s' not in the cache file", from);
    if (!at) {
        free(text);
        return;
    }
    char *out = cllm_strdup_printf("%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    write_text(dst, out);
    free(out);
    free(text);
}

/* A new runtime on `dir` reads the cache at `path` (copied from `good` and damaged by
 * from -> to, or replaced by `text`): one warning naming the file, and the table used is not
 * the cache's. */
static void check_rejected(const char *dir, const char *path, const char *good, const char *from,
                           const char *to, const char *text, const char *why) {
    if (text)
        write_text(path, text);
    else
        edit_file(good, path, from, to);
    warnings[0] = 0;
    cllm_runtime *rt = runtime_in(dir);
    const cllm_tune_table *t = NULL;
    CHECK_OK(cllm_blas_table(rt, &t));
    CHECK_MSG(t && strcmp(t->origin, "cache") != 0, "%s: a bad cache was used", why);
    CHECK_MSG(strstr(warnings, path) && strstr(warnings, "cllm tune"),
              "%s: no warning naming the file: '%s'", why, warnings);
    CHECK_MSG(strstr(warnings, why) != NULL, "warning lacks '%s': '%s'", why, warnings);
    cllm_runtime_free(rt);
}

int main(void) {
    test_lookup();
    char *dir = test_tmpdir("tune_cache");
    cllm_log_set(capture, NULL, CLLM_LOG_WARN);

    /* round trip, and what a new runtime uses */
    cllm_runtime *rt = runtime_in(dir);
    char *path = cllm_tune_cache_path(rt);
    CHECK(path && strstr(path, dir) == path && strstr(path, "/tune-"));
    cllm_tune_table t = sample_table(), back;
    CHECK_OK(cllm_tune_cache_save(rt, path, &t));
    CHECK_OK(cllm_tune_cache_load(rt, path, &back));
    check_equal(&t, &back);
    CHECK(!strcmp(back.origin, "cache"));
    cllm_tune_table_clear(&back);
    cllm_runtime_free(rt);
    rt = runtime_in(dir);
    const cllm_tune_table *in_use = NULL;
    warnings[0] = 0;
    CHECK_OK(cllm_blas_table(rt, &in_use));
    CHECK(in_use && !strcmp(in_use->origin, "cache"));
    if (in_use) check_equal(&t, in_use);
    CHECK_MSG(warnings[0] == 0, "warnings with a good cache: %s", warnings);
    cllm_runtime_free(rt);

    /* CLLM_TUNE=0: nothing applied; =builtin: the built-in table (or none) despite the cache */
    setenv("CLLM_TUNE", "0", 1);
    rt = runtime_in(dir);
    CHECK_OK(cllm_blas_table(rt, &in_use));
    CHECK(in_use && !strcmp(in_use->origin, "none") && in_use->n_entries == 0 &&
          in_use->n_clblast == 0 && in_use->fallback.path == CLLM_GEMM_CLBLAST);
    cllm_runtime_free(rt);
    setenv("CLLM_TUNE", "builtin", 1);
    rt = runtime_in(dir);
    CHECK_OK(cllm_blas_table(rt, &in_use));
    cllm_tune_table bt;
    const bool has_builtin = cllm_tune_builtin(cllm_runtime_device(rt), &bt);
    CHECK(in_use && !strcmp(in_use->origin, has_builtin ? "builtin" : "none"));
    if (has_builtin) check_equal(&bt, in_use);
    cllm_tune_table_clear(&bt);
    cllm_runtime_free(rt);
    unsetenv("CLLM_TUNE");

    /* damaged or foreign caches: ignored with a warning */
    char *good = cllm_strdup_printf("%s/good.json", dir);
    CHECK_OK(cllm_tune_cache_save(rt = runtime_in(dir), good, &t));
    cllm_runtime_free(rt);
    check_rejected(dir, path, good, NULL, NULL, "{\"format\": \"cllm-tune\", \"versi",
                   "not valid JSON");
    check_rejected(dir, path, good, NULL, NULL, "", "not valid JSON");
    check_rejected(dir, path, good, NULL, NULL, "[1, 2, 3]\n", "not a cllm tune cache");
    check_rejected(dir, path, good, "\"version\":\t1", "\"version\":\t2", NULL, "'version'");
    check_rejected(dir, path, good, "\"driver_version\":\t\"", "\"driver_version\":\t\"x", NULL,
                   "another device");
    check_rejected(dir, path, good, "\"gemm_cl\":\t\"", "\"gemm_cl\":\t\"0", NULL,
                   "another version of cl/gemm.cl");
    check_rejected(dir, path, good, "\"path\":\t\"cllm\"", "\"path\":\t\"fast\"", NULL,
                   "'path'");
    check_rejected(dir, path, good, "\"vw\":\t16", "\"vw\":\t3", NULL, "out of range");
    check_rejected(dir, path, good, "\"mr\":\t14", "\"mr\":\t\"14\"", NULL, "'mr'");
    check_rejected(dir, path, good, "\"m\":\t2048", "\"m\":\t-1", NULL, "'m'");
    check_rejected(dir, path, good, "\"op\":\t\"nt\"", "\"op\":\t\"xx\"", NULL, "'op'");
    check_rejected(dir, path, good, "\"MWG\":\t64", "\"mwg\":\t64", NULL, "malformed");

    /* after a rejected cache, products through the table still compute correctly: the
     * built-in table (when there is one) or CLBlast. C = A B for A (37, 29), B (29, 41). */
    rt = runtime_in(dir);
    float A[37 * 29], B[29 * 41], C[37 * 41], R[37 * 41];
    test_rng rng = {7};
    test_fill_normal(&rng, A, 37 * 29, 1.0f);
    test_fill_normal(&rng, B, 29 * 41, 1.0f);
    for (int i = 0; i < 37; i++)
        for (int j = 0; j < 41; j++) {
            double s = 0;
            for (int k = 0; k < 29; k++)
                s += (double)A[i * 29 + k] * B[k * 41 + j];
            R[i * 41 + j] = (float)s;
        }
    cl_mem dA, dB, dC;
    CHECK_OK(cllm_rt_alloc(rt, sizeof A, &dA));
    CHECK_OK(cllm_rt_alloc(rt, sizeof B, &dB));
    CHECK_OK(cllm_rt_alloc(rt, sizeof C, &dC));
    CHECK_OK(cllm_rt_write(rt, dA, 0, A, sizeof A));
    CHECK_OK(cllm_rt_write(rt, dB, 0, B, sizeof B));
    CHECK_OK(cllm_blas_sgemm(rt, CLLM_BLAS_N, CLLM_BLAS_N, 37, 41, 29, 1.0f, dA, 0, 29, dB, 0, 41,
                             0.0f, dC, 0, 41));
    CHECK_OK(cllm_rt_read(rt, dC, 0, C, sizeof C));
    CHECK_ALLCLOSE("product after a rejected cache", C, R, 37 * 41, 1e-5 * 29, 1e-4);
    clReleaseMemObject(dA);
    clReleaseMemObject(dB);
    clReleaseMemObject(dC);
    cllm_runtime_free(rt);

    cllm_tune_table_clear(&t);
    cllm_log_set(NULL, NULL, CLLM_LOG_INFO);
    free(good);
    free(path);
    free(dir);
    return test_exit();
}
