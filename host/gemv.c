/* Products with few rows (host/gemv.h): launches cl/gemv.cl, one program per row count. */
#include "gemv.h"

#include "ops/ops.h" /* CLLM_ARG, CLLM_OPS_MAX_ELEMS */

#include <stdio.h>

cllm_status cllm_gemv_batched(cllm_runtime *rt, cllm_blas_trans tb, size_t M, size_t N, size_t K,
                              float alpha, cl_mem A, size_t a_off, size_t lda, size_t a_stride,
                              cl_mem B, size_t b_off, size_t ldb, size_t b_stride, float beta,
                              cl_mem C, size_t c_off, size_t ldc, size_t c_stride, size_t batch) {
    if (N == 0 || batch == 0) return CLLM_OK;
    if (M < 1 || M > CLLM_GEMV_MAX_ROWS)
        return cllm_fail(CLLM_ERR_USAGE, "gemv: %zu rows (1 to %d)", M, CLLM_GEMV_MAX_ROWS);
    /* the kernels index with 32-bit uints: the last element of each operand must fit */
    size_t a_end = a_off + (batch - 1) * a_stride + (M - 1) * lda + K,
           b_end = b_off + (batch - 1) * b_stride + (tb ? (N - 1) * ldb + K : (K - 1) * ldb + N),
           c_end = c_off + (batch - 1) * c_stride + (M - 1) * ldc + N;
    if (a_end > CLLM_OPS_MAX_ELEMS || b_end > CLLM_OPS_MAX_ELEMS || c_end > CLLM_OPS_MAX_ELEMS)
        return cllm_fail(CLLM_ERR_TOO_LARGE, "gemv: operands beyond 2^32 elements");
    char opt[32];
    snprintf(opt, sizeof opt, "-DROWS=%d", M == 1 ? 1 : M == 2 ? 2 : M <= 4 ? 4 : 8);
    cl_kernel k;
    cllm_status st = cllm_rt_kernel(rt, "gemv.cl", opt, tb ? "gemv_nt" : "gemv_nn", &k);
    if (st != CLLM_OK) return st;
    cl_uint co = (cl_uint)c_off, lc = (cl_uint)ldc, cs = (cl_uint)c_stride, ao = (cl_uint)a_off,
            la = (cl_uint)lda, as = (cl_uint)a_stride, bo = (cl_uint)b_off, lb = (cl_uint)ldb,
            bs = (cl_uint)b_stride, m = (cl_uint)M, n = (cl_uint)N, kk = (cl_uint)K;
    st = cllm_rt_args(k, 17, CLLM_ARG(C), CLLM_ARG(co), CLLM_ARG(lc), CLLM_ARG(cs), CLLM_ARG(A),
                      CLLM_ARG(ao), CLLM_ARG(la), CLLM_ARG(as), CLLM_ARG(B), CLLM_ARG(bo),
                      CLLM_ARG(lb), CLLM_ARG(bs), CLLM_ARG(m), CLLM_ARG(n), CLLM_ARG(kk),
                      CLLM_ARG(alpha), CLLM_ARG(beta));
    if (st != CLLM_OK) return st;
    /* gemv_nt: a work-item per column, in groups of 64 (left to the driver, PoCL sometimes
     * made one group of all columns: one thread); gemv_nn: a work-item per 16 columns */
    size_t global[2] = {tb ? N : (N + 15) / 16, batch}, local[2] = {64, 1};
    return cllm_rt_launch(rt, k, 2, global, tb && N > 64 ? local : NULL);
}
