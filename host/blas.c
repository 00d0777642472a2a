/* Matrix products through CLBlast: the one file that calls it. */
#include "blas.h"

#include <clblast_c.h>

static cllm_status blas_status(CLBlastStatusCode s, const char *what, size_t M, size_t N,
                               size_t K, size_t batch) {
    if (s == CLBlastSuccess) return CLLM_OK;
    /* CLBlast passes OpenCL's codes through unchanged; its own are <= -1000. */
    if (s > -1000)
        return cllm_fail((cllm_status)s, "%s (M=%zu N=%zu K=%zu batch=%zu): %s", what, M, N, K,
                         batch, cllm_status_name((cllm_status)s));
    return cllm_fail(CLLM_ERR_BLAS, "%s (M=%zu N=%zu K=%zu batch=%zu): CLBlast error %d", what, M,
                     N, K, batch, (int)s);
}

cllm_status cllm_blas_sgemm(cllm_runtime *rt, cllm_blas_trans ta, cllm_blas_trans tb, size_t M,
                            size_t N, size_t K, float alpha, cl_mem A, size_t a_off, size_t lda,
                            cl_mem B, size_t b_off, size_t ldb, float beta, cl_mem C, size_t c_off,
                            size_t ldc) {
    if (M == 0 || N == 0) return CLLM_OK;
    CLBlastStatusCode s = CLBlastSgemm(
        CLBlastLayoutRowMajor, ta ? CLBlastTransposeYes : CLBlastTransposeNo,
        tb ? CLBlastTransposeYes : CLBlastTransposeNo, M, N, K, alpha, A, a_off, lda, B, b_off,
        ldb, beta, C, c_off, ldc, &rt->queue, NULL);
    return blas_status(s, "sgemm", M, N, K, 1);
}

cllm_status cllm_blas_sgemm_batched(cllm_runtime *rt, cllm_blas_trans ta, cllm_blas_trans tb,
                                    size_t M, size_t N, size_t K, float alpha, cl_mem A,
                                    size_t a_off, size_t lda, size_t a_stride, cl_mem B,
                                    size_t b_off, size_t ldb, size_t b_stride, float beta,
                                    cl_mem C, size_t c_off, size_t ldc, size_t c_stride,
                                    size_t batch) {
    if (M == 0 || N == 0 || batch == 0) return CLLM_OK;
    CLBlastStatusCode s = CLBlastSgemmStridedBatched(
        CLBlastLayoutRowMajor, ta ? CLBlastTransposeYes : CLBlastTransposeNo,
        tb ? CLBlastTransposeYes : CLBlastTransposeNo, M, N, K, alpha, A, a_off, lda, a_stride, B,
        b_off, ldb, b_stride, beta, C, c_off, ldc, c_stride, batch, &rt->queue, NULL);
    return blas_status(s, "sgemm_batched", M, N, K, batch);
}
