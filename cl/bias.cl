/* cl/bias.cl — bias broadcast (the forward of a linear layer's bias, optionally fused with the
 * residual add) and column sums (the bias gradient and other reductions over rows).
 *
 * Shapes: out/res/dout (N, OC) row-major, bias (OC), part (nchunk, OC).
 * Work-items take 16 consecutive columns (global id 0 = column / 16) of one row or row chunk
 * (global id 1).
 */

/* Each work-item handles 16 consecutive floats as one vector (PoCL maps float16 onto AVX-512;
 * GPUs split it). The last, partial vector of a range goes through a private array. */
static float16 load16(__global const float *p, uint cnt) {
    if (cnt >= 16) return vload16(0, p);
    float t[16];
    for (uint k = 0; k < 16; k++)
        t[k] = k < cnt ? p[k] : 0.0f;
    return vload16(0, t);
}

static void store16(float16 v, __global float *p, uint cnt) {
    if (cnt >= 16) {
        vstore16(v, 0, p);
        return;
    }
    float t[16];
    vstore16(v, 0, t);
    for (uint k = 0; k < cnt; k++)
        p[k] = t[k];
}

/* out[r, o] = bias[o]. Used before a GEMM with beta = 1. */
__kernel void bias_broadcast(__global float *out, const uint out_off, __global const float *bias,
                             const uint bias_off, const uint N, const uint OC) {
    const uint o = get_global_id(0) * 16, r = get_global_id(1);
    if (o >= OC || r >= N) return;
    store16(load16(bias + bias_off + o, OC - o), out + out_off + r * OC + o, OC - o);
}

/* out[r, o] = res[r, o] + bias[o]: the residual add fused with the bias of the projection that
 * the following GEMM (beta = 1) accumulates into out. */
__kernel void residual_bias(__global float *out, const uint out_off, __global const float *res,
                            const uint res_off, __global const float *bias, const uint bias_off,
                            const uint N, const uint OC) {
    const uint o = get_global_id(0) * 16, r = get_global_id(1);
    if (o >= OC || r >= N) return;
    const uint cnt = OC - o;
    store16(load16(res + res_off + r * OC + o, cnt) + load16(bias + bias_off + o, cnt),
            out + out_off + r * OC + o, cnt);
}

/* part[k, o] = sum of x[r, o] over the rows r of chunk k (rows k*rows_per_chunk ...). */
__kernel void colsum_partial(__global float *part, const uint part_off, __global const float *x,
                             const uint x_off, const uint N, const uint OC,
                             const uint rows_per_chunk) {
    const uint o = get_global_id(0) * 16, k = get_global_id(1);
    const uint r0 = k * rows_per_chunk;
    if (o >= OC || r0 >= N) return; /* r0 >= N: a chunk past the last (k >= nchunk) */
    const uint cnt = OC - o, r1 = min(N, r0 + rows_per_chunk);
    float16 s = (float16)(0.0f);
    for (uint r = r0; r < r1; r++)
        s += load16(x + x_off + r * OC + o, cnt);
    store16(s, part + part_off + k * OC + o, cnt);
}

/* dst[o] += sum_k part[k, o], k < nchunk, in chunk order (deterministic). One work-item per o. */
__kernel void colsum_finalize(__global float *dst, const uint dst_off, __global const float *part,
                              const uint part_off, const uint OC, const uint nchunk) {
    const uint o = get_global_id(0);
    if (o >= OC) return;
    float s = 0.0f;
    for (uint k = 0; k < nchunk; k++)
        s += part[part_off + k * OC + o];
    dst[dst_off + o] += s;
}
