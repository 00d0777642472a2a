/* Token + position embedding (cl/encoder.cl). */
#include "ops.h"

cllm_status cllm_op_encoder_forward(cllm_runtime *rt, cllm_view out, cllm_view tokens,
                                    cllm_view wte, cllm_view wpe, int B, int T, int C, int pos) {
    cl_kernel k;
    cllm_status st = cllm_rt_kernel(rt, "encoder.cl", NULL, "encoder_forward", &k);
    if (st != CLLM_OK) return st;
    cl_uint oo = (cl_uint)out.off, to = (cl_uint)tokens.off, eo = (cl_uint)wte.off,
            po = (cl_uint)wpe.off, bt = (cl_uint)(B * T), t = (cl_uint)T, c = (cl_uint)C,
            p = (cl_uint)pos;
    st = cllm_rt_args(k, 12, CLLM_ARG(out.mem), CLLM_ARG(oo), CLLM_ARG(tokens.mem), CLLM_ARG(to),
                      CLLM_ARG(wte.mem), CLLM_ARG(eo), CLLM_ARG(wpe.mem), CLLM_ARG(po),
                      CLLM_ARG(bt), CLLM_ARG(t), CLLM_ARG(c), CLLM_ARG(p));
    if (st != CLLM_OK) return st;
    return cllm_ops_launch_vec2(rt, k, (size_t)C, (size_t)B * T);
}

cllm_status cllm_op_encoder_backward(cllm_runtime *rt, cllm_view dwte, cllm_view dwpe,
                                     cllm_view dout, cllm_view tokens, int B, int T, int C) {
    cl_kernel kw, kp;
    cllm_status st = cllm_rt_kernel(rt, "encoder.cl", NULL, "encoder_backward_wte", &kw);
    if (st == CLLM_OK) st = cllm_rt_kernel(rt, "encoder.cl", NULL, "encoder_backward_wpe", &kp);
    if (st != CLLM_OK) return st;
    cl_uint wo = (cl_uint)dwte.off, po = (cl_uint)dwpe.off, go = (cl_uint)dout.off,
            to = (cl_uint)tokens.off, b = (cl_uint)B, t = (cl_uint)T, bt = (cl_uint)(B * T),
            c = (cl_uint)C;
    st = cllm_rt_args(kw, 8, CLLM_ARG(dwte.mem), CLLM_ARG(wo), CLLM_ARG(dout.mem), CLLM_ARG(go),
                      CLLM_ARG(tokens.mem), CLLM_ARG(to), CLLM_ARG(bt), CLLM_ARG(c));
    if (st != CLLM_OK) return st;
    /* One work-item per 16 channels, each over every row: single-item groups so that every
     * core gets some. */
    size_t global = ((size_t)C + 15) / 16, local = 1;
    st = cllm_rt_launch(rt, kw, 1, &global, &local);
    if (st != CLLM_OK) return st;
    st = cllm_rt_args(kp, 7, CLLM_ARG(dwpe.mem), CLLM_ARG(po), CLLM_ARG(dout.mem), CLLM_ARG(go),
                      CLLM_ARG(b), CLLM_ARG(t), CLLM_ARG(c));
    if (st != CLLM_OK) return st;
    return cllm_ops_launch_vec(rt, kp, (size_t)T * C);
}
