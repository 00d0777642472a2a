/* LoRA adapters on a linear layer: two skinny GEMMs forward, four backward, one to merge; all
 * through host/blas.c on views of the adapter arena (no copies). */
#include "ops.h"

#include "blas.h"

cllm_status cllm_op_lora_forward(cllm_runtime *rt, cllm_view out, cllm_view u, cllm_view inp,
                                 cllm_view a, cllm_view b, int N, int IC, int OC, int r, float s) {
    /* u (N, r) = inp (N, IC) @ a^T (IC, r); as the linear layers, a generation step's few rows
     * go through host/gemv.h (cllm_op_matmul_nt) */
    cllm_status st = cllm_op_matmul_nt(rt, u, inp, (size_t)IC, a, N, IC, r, 1.0f, 0.0f);
    if (st != CLLM_OK) return st;
    /* out (N, OC) += s * u (N, r) @ b^T (r, OC) */
    return cllm_op_matmul_nt(rt, out, u, (size_t)r, b, N, r, OC, s, 1.0f);
}

cllm_status cllm_op_lora_backward(cllm_runtime *rt, cllm_view dinp, cllm_view da, cllm_view db,
                                  cllm_view du, cllm_view dout, cllm_view inp, cllm_view u,
                                  cllm_view a, cllm_view b, int N, int IC, int OC, int r, float s) {
    /* db (OC, r) += s * dout^T (OC, N) @ u (N, r) */
    cllm_status st = cllm_blas_sgemm(rt, CLLM_BLAS_T, CLLM_BLAS_N, (size_t)OC, (size_t)r, (size_t)N,
                                     s, dout.mem, dout.off, (size_t)OC, u.mem, u.off, (size_t)r,
                                     1.0f, db.mem, db.off, (size_t)r);
    /* du (N, r) = s * dout (N, OC) @ b (OC, r) */
    if (st == CLLM_OK)
        st = cllm_blas_sgemm(rt, CLLM_BLAS_N, CLLM_BLAS_N, (size_t)N, (size_t)r, (size_t)OC, s,
                             dout.mem, dout.off, (size_t)OC, b.mem, b.off, (size_t)r, 0.0f, du.mem,
                             du.off, (size_t)r);
    /* da (r, IC) += du^T (r, N) @ inp (N, IC) */
    if (st == CLLM_OK)
        st = cllm_blas_sgemm(rt, CLLM_BLAS_T, CLLM_BLAS_N, (size_t)r, (size_t)IC, (size_t)N, 1.0f,
                             du.mem, du.off, (size_t)r, inp.mem, inp.off, (size_t)IC, 1.0f, da.mem,
                             da.off, (size_t)IC);
    /* dinp (N, IC) += du (N, r) @ a (r, IC) */
    if (st == CLLM_OK && dinp.mem)
        st = cllm_blas_sgemm(rt, CLLM_BLAS_N, CLLM_BLAS_N, (size_t)N, (size_t)IC, (size_t)r, 1.0f,
                             du.mem, du.off, (size_t)r, a.mem, a.off, (size_t)IC, 1.0f, dinp.mem,
                             dinp.off, (size_t)IC);
    return st;
}

cllm_status cllm_op_lora_merge(cllm_runtime *rt, cllm_view w, cllm_view a, cllm_view b, int IC,
                               int OC, int r, float s) {
    /* w (OC, IC) += s * b (OC, r) @ a (r, IC) */
    return cllm_blas_sgemm(rt, CLLM_BLAS_N, CLLM_BLAS_N, (size_t)OC, (size_t)IC, (size_t)r, s,
                           b.mem, b.off, (size_t)r, a.mem, a.off, (size_t)IC, 1.0f, w.mem, w.off,
                           (size_t)IC);
}
