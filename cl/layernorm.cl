/* cl/layernorm.cl — LayerNorm over the last dimension, forward and backward.
 *   out = (x - mean) * rstd * w + b,  rstd = 1 / sqrt(var + eps)  (biased variance, as PyTorch)
 * Shapes: inp/out/dout/dinp (N, C), mean/rstd (N), w/b (C), part (2, nchunk, C).
 * Row kernels: one work-group per row, a power-of-two work-group size, `scratch` = local
 * memory of one float per work-item.
 */

/* Sum of x over the work-group; every work-item receives it. */
static float wg_sum(float x, __local float *scratch) {
    const uint lid = get_local_id(0);
    scratch[lid] = x;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = get_local_size(0) / 2; s > 0; s >>= 1) {
        if (lid < s) scratch[lid] += scratch[lid + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float r = scratch[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
}

/* One work-group per row: mean and variance in two passes (the row stays in cache). */
__kernel void layernorm_forward(__global float *out, const uint out_off, __global float *mean,
                                const uint mean_off, __global float *rstd, const uint rstd_off,
                                __global const float *inp, const uint inp_off,
                                __global const float *w, const uint w_off, __global const float *b,
                                const uint b_off, const uint C, const float eps,
                                __local float *scratch) {
    const uint row = get_group_id(0), lid = get_local_id(0), nl = get_local_size(0);
    __global const float *x = inp + inp_off + row * C;
    __global float *o = out + out_off + row * C;
    float s = 0.0f;
    for (uint c = lid; c < C; c += nl)
        s += x[c];
    const float m = wg_sum(s, scratch) / (float)C;
    float v = 0.0f;
    for (uint c = lid; c < C; c += nl) {
        const float d = x[c] - m;
        v += d * d;
    }
    const float r = 1.0f / sqrt(wg_sum(v, scratch) / (float)C + eps);
    for (uint c = lid; c < C; c += nl)
        o[c] = (x[c] - m) * r * w[w_off + c] + b[b_off + c];
    if (lid == 0) {
        mean[mean_off + row] = m;
        rstd[rstd_off + row] = r;
    }
}

/* dinp = rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)), dnorm = dout * w, written
 * (accumulate = 0) or added (accumulate = 1) to dinp. One work-group per row. */
__kernel void layernorm_backward_input(__global float *dinp, const uint dinp_off,
                                       __global const float *dout, const uint dout_off,
                                       __global const float *inp, const uint inp_off,
                                       __global const float *mean, const uint mean_off,
                                       __global const float *rstd, const uint rstd_off,
                                       __global const float *w, const uint w_off, const uint C,
                                       const uint accumulate, __local float *scratch) {
    const uint row = get_group_id(0), lid = get_local_id(0), nl = get_local_size(0);
    __global const float *x = inp + inp_off + row * C;
    __global const float *dy = dout + dout_off + row * C;
    __global float *dx = dinp + dinp_off + row * C;
    const float m = mean[mean_off + row], r = rstd[rstd_off + row];
    float s1 = 0.0f, s2 = 0.0f;
    for (uint c = lid; c < C; c += nl) {
        const float dn = dy[c] * w[w_off + c];
        s1 += dn;
        s2 += dn * (x[c] - m) * r;
    }
    const float dn_mean = wg_sum(s1, scratch) / (float)C;
    const float dnn_mean = wg_sum(s2, scratch) / (float)C;
    for (uint c = lid; c < C; c += nl) {
        const float norm = (x[c] - m) * r;
        const float g = (dy[c] * w[w_off + c] - dn_mean - norm * dnn_mean) * r;
        dx[c] = accumulate ? dx[c] + g : g;
    }
}

/* Partial sums over chunks of rows for the parameter gradients:
 *   part[0, k, c] = sum dout * norm,  part[1, k, c] = sum dout   (rows of chunk k)
 * Work-item (c, k) = (global id 0, global id 1); finished by colsum_finalize (cl/bias.cl). */
__kernel void layernorm_backward_params_partial(__global float *part, const uint part_off,
                                                __global const float *dout, const uint dout_off,
                                                __global const float *inp, const uint inp_off,
                                                __global const float *mean, const uint mean_off,
                                                __global const float *rstd, const uint rstd_off,
                                                const uint N, const uint C,
                                                const uint rows_per_chunk, const uint nchunk) {
    const uint c = get_global_id(0), k = get_global_id(1);
    if (c >= C) return;
    const uint r0 = k * rows_per_chunk;
    const uint r1 = min(N, r0 + rows_per_chunk);
    float sw = 0.0f, sb = 0.0f;
    for (uint r = r0; r < r1; r++) {
        const float dy = dout[dout_off + r * C + c];
        const float norm = (inp[inp_off + r * C + c] - mean[mean_off + r]) * rstd[rstd_off + r];
        sw += dy * norm;
        sb += dy;
    }
    part[part_off + k * C + c] = sw;
    part[part_off + (nchunk + k) * C + c] = sb;
}
