/* Causal multi-head self-attention: rearrangement and softmax kernels (cl/attention.cl) around
 * strided-batched GEMMs over the B*NH heads (host/blas.c; with a few query rows, as in a
 * generation step, the products of host/gemv.h). The softmax masks the scores above the
 * diagonal and writes att exactly 0 there, so each GEMM says what it may skip (cllm_blas_tri:
 * the scores above the diagonal are not wanted; att and dpreatt are triangular): cl/gemm.cl
 * then does about half the work, CLBlast the whole product. */
#include "ops.h"

#include "blas.h"
#include "gemv.h"

#include <math.h>

/* qkv (B, n, 3C) <-> q (B*NH, n, hs), k and v (B*NH, Tmax, hs) at rows pos ..; split = 1 reads
 * qkv, 0 writes it. */
static cllm_status qkv_permute(cllm_runtime *rt, cllm_view qkv, cllm_view q, cllm_view k,
                               cllm_view v, int B, int n, int C, int NH, int Tmax, int pos,
                               cl_uint split) {
    cl_kernel kern;
    cllm_status st = cllm_rt_kernel(rt, "attention.cl", NULL, "attention_qkv_permute", &kern);
    if (st != CLLM_OK) return st;
    cl_uint xo = (cl_uint)qkv.off, qo = (cl_uint)q.off, ko = (cl_uint)k.off, vo = (cl_uint)v.off,
            b = (cl_uint)B, nn = (cl_uint)n, nh = (cl_uint)NH, hs = (cl_uint)(C / NH),
            tm = (cl_uint)Tmax, p = (cl_uint)pos;
    st = cllm_rt_args(kern, 15, CLLM_ARG(qkv.mem), CLLM_ARG(xo), CLLM_ARG(q.mem), CLLM_ARG(qo),
                      CLLM_ARG(k.mem), CLLM_ARG(ko), CLLM_ARG(v.mem), CLLM_ARG(vo), CLLM_ARG(b),
                      CLLM_ARG(nn), CLLM_ARG(nh), CLLM_ARG(hs), CLLM_ARG(tm), CLLM_ARG(p),
                      CLLM_ARG(split));
    if (st != CLLM_OK) return st;
    size_t global[2] = {(size_t)n, (size_t)3 * B * NH};
    return cllm_rt_launch(rt, kern, 2, global, NULL);
}

/* out (A, Y, X, Z) = inp (A, X, Y, Z) */
static cllm_status swap_middle(cllm_runtime *rt, cllm_view out, cllm_view inp, int A, int X, int Y,
                               int Z) {
    cl_kernel k;
    cllm_status st = cllm_rt_kernel(rt, "attention.cl", NULL, "attention_swap_middle", &k);
    if (st != CLLM_OK) return st;
    cl_uint oo = (cl_uint)out.off, io = (cl_uint)inp.off, a = (cl_uint)A, x = (cl_uint)X,
            y = (cl_uint)Y, z = (cl_uint)Z;
    st = cllm_rt_args(k, 8, CLLM_ARG(out.mem), CLLM_ARG(oo), CLLM_ARG(inp.mem), CLLM_ARG(io),
                      CLLM_ARG(a), CLLM_ARG(x), CLLM_ARG(y), CLLM_ARG(z));
    if (st != CLLM_OK) return st;
    size_t global[2] = {(size_t)X, (size_t)A * Y};
    return cllm_rt_launch(rt, k, 2, global, NULL);
}

/* att (rows, Tk) = causal softmax of preatt (rows, Tk), row r = query pos + r % Tq; one
 * work-group per row. */
static cllm_status softmax_forward(cllm_runtime *rt, cllm_view att, cllm_view preatt, int rows,
                                   int Tq, int Tk, int pos) {
    cl_kernel k;
    cllm_status st = cllm_rt_kernel(rt, "attention.cl", NULL, "attention_softmax_forward", &k);
    if (st != CLLM_OK) return st;
    size_t local = cllm_ops_row_local(rt, (size_t)Tk);
    cl_uint ao = (cl_uint)att.off, po = (cl_uint)preatt.off, tq = (cl_uint)Tq, tk = (cl_uint)Tk,
            p = (cl_uint)pos;
    st = cllm_rt_args(k, 8, CLLM_ARG(att.mem), CLLM_ARG(ao), CLLM_ARG(preatt.mem), CLLM_ARG(po),
                      CLLM_ARG(tq), CLLM_ARG(tk), CLLM_ARG(p),
                      CLLM_ARG_LOCAL(local * sizeof(float)));
    if (st != CLLM_OK) return st;
    return cllm_ops_launch_rows(rt, k, (size_t)rows, local);
}

/* dpreatt (rows, T) from datt and att (rows, T); dpreatt may be datt. */
static cllm_status softmax_backward(cllm_runtime *rt, cllm_view dpreatt, cllm_view datt,
                                    cllm_view att, int rows, int T) {
    cl_kernel k;
    cllm_status st = cllm_rt_kernel(rt, "attention.cl", NULL, "attention_softmax_backward", &k);
    if (st != CLLM_OK) return st;
    size_t local = cllm_ops_row_local(rt, (size_t)T);
    cl_uint po = (cl_uint)dpreatt.off, go = (cl_uint)datt.off, ao = (cl_uint)att.off,
            t = (cl_uint)T;
    st = cllm_rt_args(k, 8, CLLM_ARG(dpreatt.mem), CLLM_ARG(po), CLLM_ARG(datt.mem), CLLM_ARG(go),
                      CLLM_ARG(att.mem), CLLM_ARG(ao), CLLM_ARG(t),
                      CLLM_ARG_LOCAL(local * sizeof(float)));
    if (st != CLLM_OK) return st;
    return cllm_ops_launch_rows(rt, k, (size_t)rows, local);
}

cllm_status cllm_op_attention_forward(cllm_runtime *rt, cllm_view out, cllm_attention_acts a,
                                      cllm_view qkv, int B, int n, int C, int NH) {
    const size_t hs = (size_t)(C / NH), nb = (size_t)B * NH, nz = (size_t)n,
                 Tk = (size_t)a.pos + nz, Tm = (size_t)a.Tmax;
    const float scale = (float)(1.0 / sqrt((double)hs));
    cllm_status st = qkv_permute(rt, qkv, a.q, a.k, a.v, B, n, C, NH, a.Tmax, a.pos, 1);
    if (st != CLLM_OK) return st;
    /* att (n, Tk) = scale * q (n, hs) @ k^T (hs, Tk), per head; a few query rows (a
     * generation step) through cl/gemv.cl, which GEMM tiling serves badly (host/gemv.h) */
    const bool few = nz <= CLLM_GEMV_MAX_ROWS;
    if (few)
        st = cllm_gemv_batched(rt, CLLM_BLAS_T, nz, Tk, hs, scale, a.q.mem, a.q.off, hs, nz * hs,
                               a.k.mem, a.k.off, hs, Tm * hs, 0.0f, a.att.mem, a.att.off, Tk,
                               nz * Tk, nb);
    else
        st = cllm_blas_sgemm_batched_tri(rt, CLLM_BLAS_LOWER_C, a.pos, CLLM_BLAS_N, CLLM_BLAS_T, nz,
                                         Tk, hs, scale, a.q.mem, a.q.off, hs, nz * hs, a.k.mem,
                                         a.k.off, hs, Tm * hs, 0.0f, a.att.mem, a.att.off, Tk,
                                         nz * Tk, nb);
    if (st != CLLM_OK) return st;
    st = softmax_forward(rt, a.att, a.att, (int)(nb * nz), n, (int)Tk, a.pos);
    if (st != CLLM_OK) return st;
    /* y (n, hs) = att (n, Tk) @ v (Tk, hs), per head */
    if (few)
        st = cllm_gemv_batched(rt, CLLM_BLAS_N, nz, hs, Tk, 1.0f, a.att.mem, a.att.off, Tk, nz * Tk,
                               a.v.mem, a.v.off, hs, Tm * hs, 0.0f, a.y.mem, a.y.off, hs, nz * hs,
                               nb);
    else
        st = cllm_blas_sgemm_batched_tri(rt, CLLM_BLAS_LOWER_A, a.pos, CLLM_BLAS_N, CLLM_BLAS_N, nz,
                                         hs, Tk, 1.0f, a.att.mem, a.att.off, Tk, nz * Tk, a.v.mem,
                                         a.v.off, hs, Tm * hs, 0.0f, a.y.mem, a.y.off, hs, nz * hs,
                                         nb);
    if (st != CLLM_OK) return st;
    /* (B, NH, n, hs) -> (B, n, NH, hs) */
    return swap_middle(rt, out, a.y, B, NH, n, (int)hs);
}

cllm_status cllm_op_attention_backward(cllm_runtime *rt, cllm_view dqkv, cllm_attention_grads g,
                                       cllm_view dout, cllm_attention_acts acts, int B, int T,
                                       int C, int NH) {
    const size_t hs = (size_t)(C / NH), nb = (size_t)B * NH, Tz = (size_t)T;
    const size_t part = nb * Tz * hs;
    const float scale = (float)(1.0 / sqrt((double)hs));
    if (acts.pos != 0 || acts.Tmax != T)
        return cllm_fail(CLLM_ERR_STATE, "attention backward after a cached forward");
    cllm_view q = acts.q, kk = acts.k, v = acts.v;
    cllm_view dq = g.dqkvr, dk = cllm_view_at(g.dqkvr, part), dv = cllm_view_at(g.dqkvr, 2 * part);
    /* dy (B, NH, T, hs) from dout (B, T, NH, hs) */
    cllm_status st = swap_middle(rt, g.dy, dout, B, T, NH, (int)hs);
    if (st != CLLM_OK) return st;
    /* datt (T, T) = dy (T, hs) @ v^T (hs, T) */
    st = cllm_blas_sgemm_batched_tri(rt, CLLM_BLAS_LOWER_C, 0, CLLM_BLAS_N, CLLM_BLAS_T, Tz, Tz, hs,
                                     1.0f, g.dy.mem, g.dy.off, hs, Tz * hs, v.mem, v.off, hs,
                                     Tz * hs, 0.0f, g.datt.mem, g.datt.off, Tz, Tz * Tz, nb);
    if (st != CLLM_OK) return st;
    /* dv (T, hs) = att^T (T, T) @ dy (T, hs) */
    st = cllm_blas_sgemm_batched_tri(rt, CLLM_BLAS_UPPER_A, 0, CLLM_BLAS_T, CLLM_BLAS_N, Tz, hs, Tz,
                                     1.0f, acts.att.mem, acts.att.off, Tz, Tz * Tz, g.dy.mem,
                                     g.dy.off, hs, Tz * hs, 0.0f, dv.mem, dv.off, hs, Tz * hs, nb);
    if (st != CLLM_OK) return st;
    /* dpreatt, in place over datt */
    st = softmax_backward(rt, g.datt, g.datt, acts.att, (int)(nb * Tz), T);
    if (st != CLLM_OK) return st;
    /* dq (T, hs) = scale * dpreatt (T, T) @ k (T, hs) */
    st = cllm_blas_sgemm_batched_tri(rt, CLLM_BLAS_LOWER_A, 0, CLLM_BLAS_N, CLLM_BLAS_N, Tz, hs, Tz,
                                     scale, g.datt.mem, g.datt.off, Tz, Tz * Tz, kk.mem, kk.off, hs,
                                     Tz * hs, 0.0f, dq.mem, dq.off, hs, Tz * hs, nb);
    if (st != CLLM_OK) return st;
    /* dk (T, hs) = scale * dpreatt^T (T, T) @ q (T, hs) */
    st = cllm_blas_sgemm_batched_tri(rt, CLLM_BLAS_UPPER_A, 0, CLLM_BLAS_T, CLLM_BLAS_N, Tz, hs, Tz,
                                     scale, g.datt.mem, g.datt.off, Tz, Tz * Tz, q.mem, q.off, hs,
                                     Tz * hs, 0.0f, dk.mem, dk.off, hs, Tz * hs, nb);
    if (st != CLLM_OK) return st;
    return qkv_permute(rt, dqkv, dq, dk, dv, B, T, C, NH, T, 0, 0);
}
