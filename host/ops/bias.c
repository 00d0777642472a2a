/* Bias broadcast (optionally fused with the residual add) and column sums (cl/bias.cl). */
#include "ops.h"

cllm_status cllm_op_bias_forward(cllm_runtime *rt, cllm_view out, cllm_view res, cllm_view bias,
                                 int N, int OC) {
    cl_kernel k;
    cl_uint oo = (cl_uint)out.off, ro = (cl_uint)res.off, bo = (cl_uint)bias.off, n = (cl_uint)N,
            oc = (cl_uint)OC;
    cllm_status st;
    if (res.mem) {
        st = cllm_rt_kernel(rt, "bias.cl", NULL, "residual_bias", &k);
        if (st == CLLM_OK)
            st =
                cllm_rt_args(k, 8, CLLM_ARG(out.mem), CLLM_ARG(oo), CLLM_ARG(res.mem), CLLM_ARG(ro),
                             CLLM_ARG(bias.mem), CLLM_ARG(bo), CLLM_ARG(n), CLLM_ARG(oc));
    } else {
        st = cllm_rt_kernel(rt, "bias.cl", NULL, "bias_broadcast", &k);
        if (st == CLLM_OK)
            st = cllm_rt_args(k, 6, CLLM_ARG(out.mem), CLLM_ARG(oo), CLLM_ARG(bias.mem),
                              CLLM_ARG(bo), CLLM_ARG(n), CLLM_ARG(oc));
    }
    if (st != CLLM_OK) return st;
    return cllm_ops_launch_vec2(rt, k, (size_t)OC, (size_t)N);
}

/* Rows per chunk so that at most CLLM_OPS_COLSUM_CHUNKS chunks cover N rows. */
static cl_uint colsum_rows_per_chunk(int N, cl_uint *nchunk) {
    cl_uint per = (cl_uint)((N + CLLM_OPS_COLSUM_CHUNKS - 1) / CLLM_OPS_COLSUM_CHUNKS);
    if (per == 0) per = 1;
    *nchunk = (cl_uint)((N + (int)per - 1) / (int)per);
    return per;
}

/* dst (OC) += sum over k < nchunk of part (nchunk, OC). */
static cllm_status colsum_finalize(cllm_runtime *rt, cllm_view dst, cllm_view part, int OC,
                                   cl_uint nchunk) {
    cl_kernel k;
    cllm_status st = cllm_rt_kernel(rt, "bias.cl", NULL, "colsum_finalize", &k);
    if (st != CLLM_OK) return st;
    cl_uint d = (cl_uint)dst.off, p = (cl_uint)part.off, oc = (cl_uint)OC;
    st = cllm_rt_args(k, 6, CLLM_ARG(dst.mem), CLLM_ARG(d), CLLM_ARG(part.mem), CLLM_ARG(p),
                      CLLM_ARG(oc), CLLM_ARG(nchunk));
    if (st != CLLM_OK) return st;
    size_t local = 64, global = (size_t)OC;
    return cllm_rt_launch(rt, k, 1, &global, &local);
}

cllm_status cllm_op_bias_backward(cllm_runtime *rt, cllm_view dbias, cllm_view scratch,
                                  cllm_view dout, int N, int OC) {
    if (N <= 0) return CLLM_OK;
    cl_kernel k;
    cllm_status st = cllm_rt_kernel(rt, "bias.cl", NULL, "colsum_partial", &k);
    if (st != CLLM_OK) return st;
    cl_uint nchunk, per = colsum_rows_per_chunk(N, &nchunk);
    cl_uint po = (cl_uint)scratch.off, xo = (cl_uint)dout.off, n = (cl_uint)N, oc = (cl_uint)OC;
    st = cllm_rt_args(k, 7, CLLM_ARG(scratch.mem), CLLM_ARG(po), CLLM_ARG(dout.mem), CLLM_ARG(xo),
                      CLLM_ARG(n), CLLM_ARG(oc), CLLM_ARG(per));
    if (st != CLLM_OK) return st;
    st = cllm_ops_launch_vec2(rt, k, (size_t)OC, nchunk);
    if (st != CLLM_OK) return st;
    return colsum_finalize(rt, dbias, scratch, OC, nchunk);
}

void cllm_ops_colsum_chunks(int N, cl_uint *nchunk, cl_uint *rows_per_chunk) {
    *rows_per_chunk = colsum_rows_per_chunk(N, nchunk);
}

cllm_status cllm_ops_colsum_finalize(cllm_runtime *rt, cllm_view dst, cllm_view part, int OC,
                                     cl_uint nchunk) {
    return colsum_finalize(rt, dst, part, OC, nchunk);
}
