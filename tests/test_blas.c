/* host/blas.c against a plain-C double-precision GEMM, on every path a product can take
 * (CLBlast as it is, its indirect path forced with the built-in parameters of this device
 * applied, and cl/gemm.cl variants with tiles that do and do not divide the sizes): every transpose combination, offsets, leading dimensions larger than the matrix,
 * beta accumulation, strided batches, odd sizes and GPT-like sizes, then the products
 * through the table in effect (cllm_blas_sgemm). */
#include "blas.h"
#include "testutil.h"
#include "tune.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Row-major reference: C = alpha * op(A) op(B) + beta * C. */
static void ref_gemm(int ta, int tb, size_t M, size_t N, size_t K, float alpha, const float *A,
                     size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc) {
    for (size_t i = 0; i < M; i++)
        for (size_t j = 0; j < N; j++) {
            double s = 0;
            for (size_t k = 0; k < K; k++) {
                double a = ta ? A[k * lda + i] : A[i * lda + k];
                double b = tb ? B[j * ldb + k] : B[k * ldb + j];
                s += a * b;
            }
            C[i * ldc + j] = (float)(alpha * s + beta * C[i * ldc + j]);
        }
}

/* One product by `choice` (NULL: through the table, as the ops call it) that may skip what
 * `tri` says with diagonal offset d: op(A) gets the zeros LOWER_A / UPPER_A promise, and with
 * LOWER_C only C[i, j] for j <= i + d is compared (the rest must be finite). */
static void run_tri_case(cllm_runtime *rt, test_rng *rng, const cllm_gemm_choice *choice,
                         const char *label, cllm_blas_tri tri, int d, int ta, int tb, size_t M,
                         size_t N, size_t K, size_t batch, float alpha, float beta) {
    /* Storage shapes of op(A) = A^T when ta: A is stored (K, M). Pad the leading dims. */
    size_t arows = ta ? K : M, acols = ta ? M : K, brows = tb ? N : K, bcols = tb ? K : N;
    size_t lda = acols + 3, ldb = bcols + 1, ldc = N + 2;
    size_t a_off = 5, b_off = 7, c_off = 11;
    size_t a_stride = arows * lda + 4, b_stride = brows * ldb + 2, c_stride = M * ldc + 1;
    size_t na = a_off + batch * a_stride, nb = b_off + batch * b_stride,
           nc = c_off + batch * c_stride;
    float *A = malloc(na * 4), *B = malloc(nb * 4), *C = malloc(nc * 4), *R = malloc(nc * 4);
    test_fill_normal(rng, A, na, 1.0f);
    test_fill_normal(rng, B, nb, 1.0f);
    test_fill_normal(rng, C, nc, 1.0f);
    for (size_t b = 0; b < batch && tri != CLLM_BLAS_FULL && tri != CLLM_BLAS_LOWER_C; b++)
        for (size_t i = 0; i < M; i++)
            for (size_t k = 0; k < K; k++) {
                const long long diff = (long long)k - (long long)i - d;
                if (tri == CLLM_BLAS_LOWER_A ? diff > 0 : diff < 0)
                    A[a_off + b * a_stride + (ta ? k * lda + i : i * lda + k)] = 0.0f;
            }
    for (size_t i = 0; i < nc; i++)
        R[i] = C[i];
    for (size_t b = 0; b < batch; b++)
        ref_gemm(ta, tb, M, N, K, alpha, A + a_off + b * a_stride, lda, B + b_off + b * b_stride,
                 ldb, beta, R + c_off + b * c_stride, ldc);
    cl_mem dA, dB, dC;
    CHECK_OK(cllm_rt_alloc(rt, na * 4, &dA));
    CHECK_OK(cllm_rt_alloc(rt, nb * 4, &dB));
    CHECK_OK(cllm_rt_alloc(rt, nc * 4, &dC));
    CHECK_OK(cllm_rt_write(rt, dA, 0, A, na * 4));
    CHECK_OK(cllm_rt_write(rt, dB, 0, B, nb * 4));
    CHECK_OK(cllm_rt_write(rt, dC, 0, C, nc * 4));
    cllm_gemm_shape sh = {ta, tb, M, N, K, batch};
    if (choice)
        CHECK_OK(cllm_blas_sgemm_with_tri(rt, choice, tri, d, &sh, alpha, dA, a_off, lda, a_stride,
                                          dB, b_off, ldb, b_stride, beta, dC, c_off, ldc,
                                          c_stride));
    else if (tri != CLLM_BLAS_FULL)
        CHECK_OK(cllm_blas_sgemm_batched_tri(rt, tri, d, ta, tb, M, N, K, alpha, dA, a_off, lda,
                                             a_stride, dB, b_off, ldb, b_stride, beta, dC, c_off,
                                             ldc, c_stride, batch));
    else if (batch == 1)
        CHECK_OK(cllm_blas_sgemm(rt, ta, tb, M, N, K, alpha, dA, a_off, lda, dB, b_off, ldb, beta,
                                 dC, c_off, ldc));
    else
        CHECK_OK(cllm_blas_sgemm_batched(rt, ta, tb, M, N, K, alpha, dA, a_off, lda, a_stride, dB,
                                         b_off, ldb, b_stride, beta, dC, c_off, ldc, c_stride,
                                         batch));
    CHECK_OK(cllm_rt_read(rt, dC, 0, C, nc * 4));
    char what[192];
    snprintf(what, sizeof what, "%s: gemm ta=%d tb=%d M=%zu N=%zu K=%zu batch=%zu tri=%d d=%d",
             label, ta, tb, M, N, K, batch, (int)tri, d);
    size_t not_finite = 0;
    if (tri == CLLM_BLAS_LOWER_C) /* the unwanted part: anything finite, compared as equal */
        for (size_t b = 0; b < batch; b++)
            for (size_t i = 0; i < M; i++)
                for (size_t j = i + (size_t)d + 1; j < N; j++) {
                    float *g = &C[c_off + b * c_stride + i * ldc + j];
                    not_finite += !isfinite(*g);
                    *g = R[c_off + b * c_stride + i * ldc + j];
                }
    CHECK_MSG(not_finite == 0, "%s: %zu values above the diagonal are not finite", what,
              not_finite);
    /* fp32 sums of K products of N(0,1) values: error grows like sqrt(K) * eps * |terms|; the
     * absolute bound 1e-5 K covers it with margin. Also every element outside the matrices
     * (padding, gaps between batch items) must be untouched, which the comparison of the
     * whole buffer checks. */
    CHECK_ALLCLOSE(what, C, R, nc, 1e-5 * (double)K, 1e-4);
    clReleaseMemObject(dA);
    clReleaseMemObject(dB);
    clReleaseMemObject(dC);
    free(A);
    free(B);
    free(C);
    free(R);
}

static void run_case(cllm_runtime *rt, test_rng *rng, const cllm_gemm_choice *choice,
                     const char *label, int ta, int tb, size_t M, size_t N, size_t K,
                     size_t batch, float alpha, float beta) {
    run_tri_case(rt, rng, choice, label, CLLM_BLAS_FULL, 0, ta, tb, M, N, K, batch, alpha, beta);
}

/* Attention's products with what they may skip (host/ops/attention.c), at sizes past and under
 * a tile, with and without a diagonal offset (a key/value cache), with and without K slices. */
static void tri_cases(cllm_runtime *rt, test_rng *rng, const cllm_gemm_choice *c,
                      const char *label) {
    for (int d = 0; d <= 5; d += 5) {
        run_tri_case(rt, rng, c, label, CLLM_BLAS_LOWER_C, d, 0, 1, 67, 67 + d, 24, 3, 0.2f, 0.0f);
        run_tri_case(rt, rng, c, label, CLLM_BLAS_LOWER_C, d, 0, 1, 3, 3 + d, 24, 2, 0.2f, 0.0f);
        run_tri_case(rt, rng, c, label, CLLM_BLAS_LOWER_A, d, 0, 0, 67, 24, 67 + d, 3, 1.0f, 0.0f);
        run_tri_case(rt, rng, c, label, CLLM_BLAS_LOWER_A, d, 1, 0, 70, 40, 70 + d, 2, 0.5f, 1.0f);
    }
    run_tri_case(rt, rng, c, label, CLLM_BLAS_UPPER_A, 0, 1, 0, 67, 24, 67, 3, 1.0f, 0.0f);
    run_tri_case(rt, rng, c, label, CLLM_BLAS_UPPER_A, 0, 0, 0, 70, 40, 70, 2, 0.5f, 1.0f);
    run_tri_case(rt, rng, c, label, CLLM_BLAS_UPPER_A, -3, 1, 0, 5, 24, 67, 2, 1.0f, 0.0f);
}

/* Small and odd sizes, every op combination, plain and batched. */
static void small_cases(cllm_runtime *rt, test_rng *rng, const cllm_gemm_choice *c,
                        const char *label) {
    static const size_t shapes[][3] = {{1, 1, 1},     {7, 13, 5},   {33, 17, 65},
                                       {64, 96, 48},  {2, 150, 9},  {150, 3, 9}};
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
                run_case(rt, rng, c, label, ta, tb, shapes[s][0], shapes[s][1], shapes[s][2], 1,
                         1.0f, 0.0f);
                run_case(rt, rng, c, label, ta, tb, shapes[s][0], shapes[s][1], shapes[s][2], 3,
                         0.5f, 1.0f);
            }
}

/* GPT-like sizes, none a multiple of the usual tiles: a linear layer over 257 rows (forward
 * nt, backward nn and tn) and attention-like batches (head size 24 over 67 positions). */
static void gpt_cases(cllm_runtime *rt, test_rng *rng, const cllm_gemm_choice *c,
                      const char *label) {
    run_case(rt, rng, c, label, 0, 1, 257, 200, 72, 1, 1.0f, 1.0f);
    run_case(rt, rng, c, label, 0, 0, 257, 72, 200, 1, 1.0f, 0.0f);
    run_case(rt, rng, c, label, 1, 0, 200, 72, 257, 1, 1.0f, 1.0f);
    run_case(rt, rng, c, label, 0, 1, 67, 67, 24, 5, 0.2f, 0.0f);
    run_case(rt, rng, c, label, 0, 0, 67, 24, 67, 5, 1.0f, 0.0f);
    run_case(rt, rng, c, label, 1, 0, 67, 24, 67, 5, 0.2f, 0.0f);
    run_case(rt, rng, c, label, 1, 1, 67, 24, 67, 2, 1.0f, 1.0f);
}

int main(void) {
    cllm_runtime *rt = test_runtime();
    test_rng rng = {42};
    const cllm_tune_table *in_effect = NULL;
    CHECK_OK(cllm_blas_table(rt, &in_effect));

    /* CLBlast's own choice first, before anything overrides its parameters. */
    const cllm_gemm_choice clblast = {CLLM_GEMM_CLBLAST};
    small_cases(rt, &rng, &clblast, "clblast");

    /* The built-in table of this device when it has one (its CLBlast parameters applied),
     * CLBlast's direct and indirect paths forced, and cl/gemm.cl variants: the built-in
     * table's own and ones whose tiles exceed or do not divide the sizes. */
    cllm_tune_table builtin;
    if (cllm_tune_builtin(cllm_runtime_device(rt), &builtin)) {
        CHECK_OK(cllm_blas_set_table(rt, &builtin));
        /* each variant of the table once (a variant is a program build: the suite's time) */
        for (int i = 0; i < builtin.n_entries; i++) {
            const cllm_gemm_choice *c = &builtin.entries[i].choice;
            bool seen = false;
            for (int j = 0; j < i && !seen; j++)
                seen = !memcmp(c, &builtin.entries[j].choice, sizeof *c);
            if (seen) continue;
            char label[64];
            snprintf(label, sizeof label, "builtin entry %d", i);
            gpt_cases(rt, &rng, c, label);
            tri_cases(rt, &rng, c, label);
        }
        cllm_tune_table_clear(&builtin);
    }
    /* CLBlast's indirect path forced (direct below 896^3 is what it takes by itself above) */
    const cllm_gemm_choice indirect = {CLLM_GEMM_CLBLAST_INDIRECT};
    small_cases(rt, &rng, &indirect, "clblast-indirect");
    gpt_cases(rt, &rng, &indirect, "clblast-indirect");
    tri_cases(rt, &rng, &indirect, "clblast-indirect");
    /* vector widths 8, 4 and 2, one-row tiles, tile orders, K slices past and within K */
    static const cllm_gemm_kernel variants[] = {
        {8, 5, 3, 1, 0}, {4, 3, 1, 4096, 16}, {16, 1, 1, 2, 0}, {2, 7, 4, 3, 64}};
    for (size_t v = 0; v < sizeof variants / sizeof *variants; v++) {
        cllm_gemm_choice c = {CLLM_GEMM_CLLM, variants[v]};
        char label[64];
        snprintf(label, sizeof label, "cllm vw=%d mr=%d nv=%d gm=%d kc=%d", c.k.vw, c.k.mr,
                 c.k.nv, c.k.gm, c.k.kc);
        small_cases(rt, &rng, &c, label);
        gpt_cases(rt, &rng, &c, label);
        tri_cases(rt, &rng, &c, label);
    }

    /* Through the table in effect (the tune cache, the built-in table or CLBlast). */
    small_cases(rt, &rng, NULL, "table");
    gpt_cases(rt, &rng, NULL, "table");
    tri_cases(rt, &rng, NULL, "table");
    cllm_runtime_free(rt);
    return test_exit();
}
