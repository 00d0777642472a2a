/* Linear layers: out = [res +] inp @ w^T + b as a bias/residual kernel then one GEMM over all
 * rows; the backward as two GEMMs and a column sum. Every product goes through host/blas.c,
 * but for a few rows (a generation step), which go through host/gemv.h. */
#include "ops.h"

#include "blas.h"
#include "gemv.h"

cllm_status cllm_op_linear_forward(cllm_runtime *rt, cllm_view out, cllm_view res, cllm_view inp,
                                   cllm_view w, cllm_view b, int N, int IC, int OC) {
    float beta = 0.0f;
    if (b.mem) {
        cllm_status st = cllm_op_bias_forward(rt, out, res, b, N, OC);
        if (st != CLLM_OK) return st;
        beta = 1.0f;
    } else if (res.mem) {
        cl_int err = clEnqueueCopyBuffer(rt->queue, res.mem, out.mem, res.off * sizeof(float),
                                         out.off * sizeof(float), (size_t)N * OC * sizeof(float), 0,
                                         NULL, NULL);
        if (err != CL_SUCCESS)
            return cllm_fail(err, "copying the residual (%d x %d): %s", N, OC,
                             cllm_status_name(err));
        beta = 1.0f;
    }
    return cllm_op_matmul_nt(rt, out, inp, (size_t)IC, w, N, IC, OC, 1.0f, beta);
}

cllm_status cllm_op_matmul_nt(cllm_runtime *rt, cllm_view out, cllm_view inp, size_t lda,
                              cllm_view w, int N, int IC, int OC, float alpha, float beta) {
    /* out (N, OC) = alpha * inp (N, IC) @ w^T (IC, OC) + beta * out; a few rows (a generation
     * step) through cl/gemv.cl, which GEMM tiling serves badly (host/gemv.h) */
    if (N <= CLLM_GEMV_MAX_ROWS)
        return cllm_gemv_batched(rt, CLLM_BLAS_T, (size_t)N, (size_t)OC, (size_t)IC, alpha, inp.mem,
                                 inp.off, lda, 0, w.mem, w.off, (size_t)IC, 0, beta, out.mem,
                                 out.off, (size_t)OC, 0, 1);
    return cllm_blas_sgemm(rt, CLLM_BLAS_N, CLLM_BLAS_T, (size_t)N, (size_t)OC, (size_t)IC, alpha,
                           inp.mem, inp.off, lda, w.mem, w.off, (size_t)IC, beta, out.mem, out.off,
                           (size_t)OC);
}

cllm_status cllm_op_linear_backward(cllm_runtime *rt, cllm_view dinp, cllm_view dw, cllm_view db,
                                    cllm_view scratch, cllm_view dout, cllm_view inp, cllm_view w,
                                    int N, int IC, int OC, bool accumulate) {
    cllm_status st = CLLM_OK;
    if (dinp.mem) {
        /* dinp (N, IC) = dout (N, OC) @ w (OC, IC) */
        st = cllm_blas_sgemm(rt, CLLM_BLAS_N, CLLM_BLAS_N, (size_t)N, (size_t)IC, (size_t)OC, 1.0f,
                             dout.mem, dout.off, (size_t)OC, w.mem, w.off, (size_t)IC,
                             accumulate ? 1.0f : 0.0f, dinp.mem, dinp.off, (size_t)IC);
        if (st != CLLM_OK) return st;
    }
    /* dw (OC, IC) += dout^T (OC, N) @ inp (N, IC) */
    if (dw.mem)
        st = cllm_blas_sgemm(rt, CLLM_BLAS_T, CLLM_BLAS_N, (size_t)OC, (size_t)IC, (size_t)N, 1.0f,
                             dout.mem, dout.off, (size_t)OC, inp.mem, inp.off, (size_t)IC, 1.0f,
                             dw.mem, dw.off, (size_t)IC);
    if (st != CLLM_OK || !db.mem) return st;
    return cllm_op_bias_backward(rt, db, scratch, dout, N, OC);
}
