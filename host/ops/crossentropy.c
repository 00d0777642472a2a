/* Softmax + cross-entropy, fused (cl/crossentropy.cl). */
#include "ops.h"

cllm_status cllm_op_crossentropy_forward(cllm_runtime *rt, cllm_view loss, cllm_view losses,
                                         cllm_view lse, cllm_view logits, cllm_view targets, int N,
                                         int V, int Vp, int count) {
    cl_kernel kf, km;
    cllm_status st = cllm_rt_kernel(rt, "crossentropy.cl", NULL, "crossentropy_forward", &kf);
    if (st == CLLM_OK) st = cllm_rt_kernel(rt, "crossentropy.cl", NULL, "crossentropy_mean", &km);
    if (st != CLLM_OK) return st;
    size_t local = cllm_ops_row_local(rt, (size_t)V);
    cl_uint so = (cl_uint)losses.off, eo = (cl_uint)lse.off, lo = (cl_uint)logits.off,
            to = (cl_uint)targets.off, v = (cl_uint)V, vp = (cl_uint)Vp, n = (cl_uint)N,
            xo = (cl_uint)loss.off;
    st = cllm_rt_args(kf, 11, CLLM_ARG(losses.mem), CLLM_ARG(so), CLLM_ARG(lse.mem), CLLM_ARG(eo),
                      CLLM_ARG(logits.mem), CLLM_ARG(lo), CLLM_ARG(targets.mem), CLLM_ARG(to),
                      CLLM_ARG(v), CLLM_ARG(vp), CLLM_ARG_LOCAL(local * sizeof(float)));
    if (st != CLLM_OK) return st;
    st = cllm_ops_launch_rows(rt, kf, (size_t)N, local);
    if (st != CLLM_OK) return st;
    size_t ml = cllm_ops_row_local(rt, (size_t)N);
    float cnt = (float)count;
    st = cllm_rt_args(km, 7, CLLM_ARG(loss.mem), CLLM_ARG(xo), CLLM_ARG(losses.mem), CLLM_ARG(so),
                      CLLM_ARG(n), CLLM_ARG(cnt), CLLM_ARG_LOCAL(ml * sizeof(float)));
    if (st != CLLM_OK) return st;
    return cllm_ops_launch_rows(rt, km, 1, ml);
}

cllm_status cllm_op_crossentropy_backward(cllm_runtime *rt, cllm_view logits, cllm_view lse,
                                          cllm_view targets, int N, int V, int Vp, float dloss) {
    cl_kernel k;
    cllm_status st = cllm_rt_kernel(rt, "crossentropy.cl", NULL, "crossentropy_backward", &k);
    if (st != CLLM_OK) return st;
    cl_uint lo = (cl_uint)logits.off, eo = (cl_uint)lse.off, to = (cl_uint)targets.off,
            v = (cl_uint)V, vp = (cl_uint)Vp;
    st = cllm_rt_args(k, 9, CLLM_ARG(logits.mem), CLLM_ARG(lo), CLLM_ARG(lse.mem), CLLM_ARG(eo),
                      CLLM_ARG(targets.mem), CLLM_ARG(to), CLLM_ARG(v), CLLM_ARG(vp),
                      CLLM_ARG(dloss));
    if (st != CLLM_OK) return st;
    return cllm_ops_launch_rows(rt, k, (size_t)N, cllm_ops_row_local(rt, (size_t)V));
}
