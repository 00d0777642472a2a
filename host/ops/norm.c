/* Global L2 norm and clipping on the device (cl/norm.cl). */
#include "ops.h"

cllm_status cllm_op_clip_norm(cllm_runtime *rt, cllm_view x, size_t n, cllm_view scratch,
                              float max_norm) {
    cl_kernel kp, kf, ks;
    cllm_status st = cllm_rt_kernel(rt, "norm.cl", NULL, "norm_sumsq_partial", &kp);
    if (st == CLLM_OK) st = cllm_rt_kernel(rt, "norm.cl", NULL, "norm_finalize", &kf);
    if (st == CLLM_OK) st = cllm_rt_kernel(rt, "norm.cl", NULL, "norm_scale", &ks);
    if (st != CLLM_OK) return st;
    size_t local = cllm_ops_row_local(rt, 1u << 20);
    cl_uint xo = (cl_uint)x.off, nn = (cl_uint)n, po = (cl_uint)scratch.off,
            ng = CLLM_OPS_NORM_GROUPS, oo = (cl_uint)(scratch.off + CLLM_OPS_NORM_GROUPS),
            co = oo + 1;
    st = cllm_rt_args(kp, 6, CLLM_ARG(scratch.mem), CLLM_ARG(po), CLLM_ARG(x.mem), CLLM_ARG(xo),
                      CLLM_ARG(nn), CLLM_ARG_LOCAL(local * sizeof(float)));
    if (st != CLLM_OK) return st;
    st = cllm_ops_launch_rows(rt, kp, CLLM_OPS_NORM_GROUPS, local);
    if (st != CLLM_OK) return st;
    st = cllm_rt_args(kf, 7, CLLM_ARG(scratch.mem), CLLM_ARG(oo), CLLM_ARG(scratch.mem),
                      CLLM_ARG(po), CLLM_ARG(ng), CLLM_ARG(max_norm),
                      CLLM_ARG_LOCAL(local * sizeof(float)));
    if (st != CLLM_OK) return st;
    st = cllm_ops_launch_rows(rt, kf, 1, local);
    if (st != CLLM_OK || !(max_norm > 0.0f)) return st;
    st = cllm_rt_args(ks, 5, CLLM_ARG(x.mem), CLLM_ARG(xo), CLLM_ARG(nn), CLLM_ARG(scratch.mem),
                      CLLM_ARG(co));
    if (st != CLLM_OK) return st;
    return cllm_ops_launch_vec(rt, ks, n);
}
