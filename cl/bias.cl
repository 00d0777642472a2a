/* cl/bias.cl — bias broadcast (the forward of a linear layer's bias, optionally fused with the
 * residual add) and column sums (the bias gradient and other reductions over rows).
 *
 * Shapes: out/res/dout (N, OC) row-major, bias (OC), part (nchunk, OC).
 */

/* out[r, o] = bias[o]. One work-item per element. Used before a GEMM with beta = 1. */
__kernel void bias_broadcast(__global float *out, const uint out_off, __global const float *bias,
                             const uint bias_off, const uint N, const uint OC) {
    const uint i = get_global_id(0);
    if (i >= N * OC) return;
    out[out_off + i] = bias[bias_off + i % OC];
}

/* out[r, o] = res[r, o] + bias[o]: the residual add fused with the bias of the projection that
 * the following GEMM (beta = 1) accumulates into out. One work-item per element. */
__kernel void residual_bias(__global float *out, const uint out_off, __global const float *res,
                            const uint res_off, __global const float *bias, const uint bias_off,
                            const uint N, const uint OC) {
    const uint i = get_global_id(0);
    if (i >= N * OC) return;
    out[out_off + i] = res[res_off + i] + bias[bias_off + i % OC];
}

/* part[k, o] = sum of x[r, o] over the rows r of chunk k (rows k*rows_per_chunk ...).
 * Work-item (o, k) = (global id 0, global id 1); neighbouring work-items read neighbouring
 * columns, so every row is read contiguously. */
__kernel void colsum_partial(__global float *part, const uint part_off, __global const float *x,
                             const uint x_off, const uint N, const uint OC,
                             const uint rows_per_chunk) {
    const uint o = get_global_id(0), k = get_global_id(1);
    if (o >= OC) return;
    const uint r0 = k * rows_per_chunk;
    const uint r1 = min(N, r0 + rows_per_chunk);
    float s = 0.0f;
    for (uint r = r0; r < r1; r++)
        s += x[x_off + r * OC + o];
    part[part_off + k * OC + o] = s;
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
