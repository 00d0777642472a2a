/* GELU, tanh approximation (cl/gelu.cl). */
#include "ops.h"

cllm_status cllm_op_gelu_forward(cllm_runtime *rt, cllm_view out, cllm_view inp, size_t n) {
    cl_kernel k;
    cllm_status st = cllm_rt_kernel(rt, "gelu.cl", NULL, "gelu_forward", &k);
    if (st != CLLM_OK) return st;
    cl_uint oo = (cl_uint)out.off, io = (cl_uint)inp.off, nn = (cl_uint)n;
    st = cllm_rt_args(k, 5, CLLM_ARG(out.mem), CLLM_ARG(oo), CLLM_ARG(inp.mem), CLLM_ARG(io),
                      CLLM_ARG(nn));
    if (st != CLLM_OK) return st;
    return cllm_ops_launch_vec(rt, k, n);
}

cllm_status cllm_op_gelu_backward(cllm_runtime *rt, cllm_view dinp, cllm_view inp, cllm_view dout,
                                  size_t n) {
    cl_kernel k;
    cllm_status st = cllm_rt_kernel(rt, "gelu.cl", NULL, "gelu_backward", &k);
    if (st != CLLM_OK) return st;
    cl_uint d = (cl_uint)dinp.off, io = (cl_uint)inp.off, g = (cl_uint)dout.off, nn = (cl_uint)n;
    st = cllm_rt_args(k, 7, CLLM_ARG(dinp.mem), CLLM_ARG(d), CLLM_ARG(inp.mem), CLLM_ARG(io),
                      CLLM_ARG(dout.mem), CLLM_ARG(g), CLLM_ARG(nn));
    if (st != CLLM_OK) return st;
    return cllm_ops_launch_vec(rt, k, n);
}
