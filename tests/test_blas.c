/* host/blas.c against a plain-C double-precision GEMM: every transpose combination, offsets,
 * leading dimensions larger than the matrix, beta accumulation, strided batches, odd sizes. */
#include "blas.h"
#include "testutil.h"

#include <stdlib.h>

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

static void run_case(cllm_runtime *rt, test_rng *rng, int ta, int tb, size_t M, size_t N, size_t K,
                     size_t batch, float alpha, float beta) {
    /* Storage shapes of op(A) = A^T when ta: A is stored (K, M). Pad the leading dims. */
    size_t arows = ta ? K : M, acols = ta ? M : K, brows = tb ? N : K, bcols = tb ? K : N;
    size_t lda = acols + 3, ldb = bcols + 1, ldc = N + 2;
    size_t a_off = 5, b_off = 7, c_off = 11;
    size_t a_stride = arows * lda + 4, b_stride = brows * ldb + 2, c_stride = M * ldc + 1;
    size_t na = a_off + batch * a_stride, nb = b_off + batch * b_stride, nc = c_off + batch * c_stride;
    float *A = malloc(na * 4), *B = malloc(nb * 4), *C = malloc(nc * 4), *R = malloc(nc * 4);
    test_fill_normal(rng, A, na, 1.0f);
    test_fill_normal(rng, B, nb, 1.0f);
    test_fill_normal(rng, C, nc, 1.0f);
    for (size_t i = 0; i < nc; i++) R[i] = C[i];
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
    if (batch == 1)
        CHECK_OK(cllm_blas_sgemm(rt, ta, tb, M, N, K, alpha, dA, a_off, lda, dB, b_off, ldb, beta,
                                 dC, c_off, ldc));
    else
        CHECK_OK(cllm_blas_sgemm_batched(rt, ta, tb, M, N, K, alpha, dA, a_off, lda, a_stride, dB,
                                         b_off, ldb, b_stride, beta, dC, c_off, ldc, c_stride,
                                         batch));
    CHECK_OK(cllm_rt_read(rt, dC, 0, C, nc * 4));
    char what[128];
    snprintf(what, sizeof what, "gemm ta=%d tb=%d M=%zu N=%zu K=%zu batch=%zu", ta, tb, M, N, K,
             batch);
    /* fp32 sums of K products of N(0,1) values: error grows like sqrt(K) * eps * |terms|. */
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
    test_rng rng = {42};
    static const size_t shapes[][3] = {{1, 1, 1}, {7, 13, 5}, {33, 17, 65}, {64, 96, 48}};
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
                run_case(rt, &rng, ta, tb, shapes[s][0], shapes[s][1], shapes[s][2], 1, 1.0f, 0.0f);
                run_case(rt, &rng, ta, tb, shapes[s][0], shapes[s][1], shapes[s][2], 3, 0.5f, 1.0f);
            }
    cllm_runtime_free(rt);
    return test_exit();
}
