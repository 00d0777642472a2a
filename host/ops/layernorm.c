/* LayerNorm (cl/layernorm.cl). */
#include "ops.h"

cllm_status cllm_op_layernorm_forward(cllm_runtime *rt, cllm_view out, cllm_view mean,
                                      cllm_view rstd, cllm_view inp, cllm_view w, cllm_view b,
                                      int N, int C, float eps) {
    cl_kernel k;
    cllm_status st = cllm_rt_kernel(rt, "layernorm.cl", NULL, "layernorm_forward", &k);
    if (st != CLLM_OK) return st;
    size_t local = cllm_ops_row_local(rt, (size_t)C);
    cl_uint oo = (cl_uint)out.off, mo = (cl_uint)mean.off, ro = (cl_uint)rstd.off,
            io = (cl_uint)inp.off, wo = (cl_uint)w.off, bo = (cl_uint)b.off, c = (cl_uint)C;
    st = cllm_rt_args(k, 15, CLLM_ARG(out.mem), CLLM_ARG(oo), CLLM_ARG(mean.mem), CLLM_ARG(mo),
                      CLLM_ARG(rstd.mem), CLLM_ARG(ro), CLLM_ARG(inp.mem), CLLM_ARG(io),
                      CLLM_ARG(w.mem), CLLM_ARG(wo), CLLM_ARG(b.mem), CLLM_ARG(bo), CLLM_ARG(c),
                      CLLM_ARG(eps), CLLM_ARG_LOCAL(local * sizeof(float)));
    if (st != CLLM_OK) return st;
    return cllm_ops_launch_rows(rt, k, (size_t)N, local);
}

cllm_status cllm_op_layernorm_backward(cllm_runtime *rt, cllm_view dinp, cllm_view dw, cllm_view db,
                                       cllm_view scratch, cllm_view dout, cllm_view inp,
                                       cllm_view mean, cllm_view rstd, cllm_view w, int N, int C,
                                       bool accumulate) {
    if (N <= 0) return CLLM_OK;
    cl_kernel ki, kp;
    cllm_status st = cllm_rt_kernel(rt, "layernorm.cl", NULL, "layernorm_backward_input", &ki);
    if (st == CLLM_OK)
        st = cllm_rt_kernel(rt, "layernorm.cl", NULL, "layernorm_backward_params_partial", &kp);
    if (st != CLLM_OK) return st;
    size_t local = cllm_ops_row_local(rt, (size_t)C);
    cl_uint dio = (cl_uint)dinp.off, go = (cl_uint)dout.off, io = (cl_uint)inp.off,
            mo = (cl_uint)mean.off, ro = (cl_uint)rstd.off, wo = (cl_uint)w.off, c = (cl_uint)C,
            n = (cl_uint)N, acc = accumulate ? 1u : 0u, so = (cl_uint)scratch.off;
    st = cllm_rt_args(ki, 15, CLLM_ARG(dinp.mem), CLLM_ARG(dio), CLLM_ARG(dout.mem), CLLM_ARG(go),
                      CLLM_ARG(inp.mem), CLLM_ARG(io), CLLM_ARG(mean.mem), CLLM_ARG(mo),
                      CLLM_ARG(rstd.mem), CLLM_ARG(ro), CLLM_ARG(w.mem), CLLM_ARG(wo), CLLM_ARG(c),
                      CLLM_ARG(acc), CLLM_ARG_LOCAL(local * sizeof(float)));
    if (st != CLLM_OK) return st;
    st = cllm_ops_launch_rows(rt, ki, (size_t)N, local);
    if (st != CLLM_OK || (!dw.mem && !db.mem)) return st;

    cl_uint nchunk, per;
    cllm_ops_colsum_chunks(N, &nchunk, &per);
    st = cllm_rt_args(kp, 14, CLLM_ARG(scratch.mem), CLLM_ARG(so), CLLM_ARG(dout.mem), CLLM_ARG(go),
                      CLLM_ARG(inp.mem), CLLM_ARG(io), CLLM_ARG(mean.mem), CLLM_ARG(mo),
                      CLLM_ARG(rstd.mem), CLLM_ARG(ro), CLLM_ARG(n), CLLM_ARG(c), CLLM_ARG(per),
                      CLLM_ARG(nchunk));
    if (st != CLLM_OK) return st;
    st = cllm_ops_launch_vec2(rt, kp, (size_t)C, nchunk);
    if (st != CLLM_OK) return st;
    if (dw.mem) st = cllm_ops_colsum_finalize(rt, dw, scratch, C, nchunk);
    if (st != CLLM_OK || !db.mem) return st;
    return cllm_ops_colsum_finalize(rt, db, cllm_view_at(scratch, (size_t)nchunk * C), C, nchunk);
}
