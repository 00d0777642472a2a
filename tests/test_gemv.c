/* host/gemv.c (cl/gemv.cl) against a plain-C double-precision product: both orientations of
 * B, every row count 1..8, sizes that are not multiples of 16 (the vector width), offsets,
 * padded leading dimensions, strided batches, alpha, beta = 0 over a C full of NaN (it must
 * not be read) and beta accumulation. */
#include "gemv.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>

static void ref_gemv(int tb, size_t M, size_t N, size_t K, float alpha, const float *A,
                     size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc) {
    for (size_t i = 0; i < M; i++)
        for (size_t j = 0; j < N; j++) {
            double s = 0;
            for (size_t k = 0; k < K; k++)
                s += (double)A[i * lda + k] * (tb ? B[j * ldb + k] : B[k * ldb + j]);
            double c = beta == 0 ? 0 : beta * (double)C[i * ldc + j];
            C[i * ldc + j] = (float)(alpha * s + c);
        }
}

static void run_case(cllm_runtime *rt, test_rng *rng, int tb, size_t M, size_t N, size_t K,
                     size_t batch, float alpha, float beta) {
    size_t brows = tb ? N : K, bcols = tb ? K : N;
    size_t lda = K + 3, ldb = bcols + 5, ldc = N + 2, a_off = 5, b_off = 7, c_off = 11;
    size_t a_stride = M * lda + 4, b_stride = brows * ldb + 2, c_stride = M * ldc + 1;
    size_t na = a_off + batch * a_stride, nb = b_off + batch * b_stride, nc = c_off + batch * c_stride;
    float *A = malloc(na * 4), *B = malloc(nb * 4), *C = malloc(nc * 4), *R = malloc(nc * 4);
    test_fill_normal(rng, A, na, 1.0f);
    test_fill_normal(rng, B, nb, 1.0f);
    test_fill_normal(rng, C, nc, 1.0f);
    for (size_t b = 0; b < batch; b++)
        for (size_t i = 0; beta == 0 && i < M; i++)
            for (size_t j = 0; j < N; j++) C[c_off + b * c_stride + i * ldc + j] = NAN;
    for (size_t i = 0; i < nc; i++) R[i] = C[i];
    for (size_t b = 0; b < batch; b++)
        ref_gemv(tb, M, N, K, alpha, A + a_off + b * a_stride, lda, B + b_off + b * b_stride, ldb,
                 beta, R + c_off + b * c_stride, ldc);
    cl_mem dA, dB, dC;
    CHECK_OK(cllm_rt_alloc(rt, na * 4, &dA));
    CHECK_OK(cllm_rt_alloc(rt, nb * 4, &dB));
    CHECK_OK(cllm_rt_alloc(rt, nc * 4, &dC));
    CHECK_OK(cllm_rt_write(rt, dA, 0, A, na * 4));
    CHECK_OK(cllm_rt_write(rt, dB, 0, B, nb * 4));
    CHECK_OK(cllm_rt_write(rt, dC, 0, C, nc * 4));
    CHECK_OK(cllm_gemv_batched(rt, tb ? CLLM_BLAS_T : CLLM_BLAS_N, M, N, K, alpha, dA, a_off, lda,
                               a_stride, dB, b_off, ldb, b_stride, beta, dC, c_off, ldc, c_stride,
                               batch));
    CHECK_OK(cllm_rt_read(rt, dC, 0, C, nc * 4));
    char what[128];
    snprintf(what, sizeof what, "gemv tb=%d M=%zu N=%zu K=%zu batch=%zu beta=%g", tb, M, N, K,
             batch, (double)beta);
    /* fp32 sums of K products of N(0,1) values (as tests/test_blas.c) */
    CHECK_ALLCLOSE(what, C, R, nc, 1e-5 * (double)K, 1e-4);
    clReleaseMemObject(dA);
    clReleaseMemObject(dB);
    clReleaseMemObject(dC);
    free(A);
    free(B);
    free(C);
    free(R);
}

int main(void) {
    cllm_runtime *rt = test_runtime();
    test_rng rng = {7};
    static const size_t shapes[][2] = {{1, 1}, {13, 5}, {17, 16}, {40, 33}, {130, 129}, {31, 64}};
    for (int tb = 0; tb < 2; tb++)
        for (size_t M = 1; M <= CLLM_GEMV_MAX_ROWS; M++)
            for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
                run_case(rt, &rng, tb, M, shapes[s][0], shapes[s][1], 1, 1.0f, 0.0f);
                run_case(rt, &rng, tb, M, shapes[s][0], shapes[s][1], 3, 0.5f, 1.0f);
            }
    /* out of range */
    CHECK(cllm_gemv_batched(rt, CLLM_BLAS_T, 9, 4, 4, 1, NULL, 0, 4, 0, NULL, 0, 4, 0, 0, NULL, 0,
                            4, 0, 1) == CLLM_ERR_USAGE);
    cllm_runtime_free(rt);
    return test_exit();
}
