/* cl/norm.cl — the global L2 norm of a buffer and clipping to a maximum norm, entirely on the
 * device (torch.nn.utils.clip_grad_norm_): partial sums of squares per work-group, one
 * work-group finishing the norm and the clip coefficient, then a scale by that coefficient read
 * from device memory, so that nothing is read back.
 */

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

/* part[g] = sum of x[i]^2 over work-group g's contiguous slice of ceil(n / groups) elements. */
__kernel void norm_sumsq_partial(__global float *part, const uint part_off, __global const float *x,
                                 const uint x_off, const uint n, __local float *scratch) {
    const uint g = get_group_id(0), ng = get_num_groups(0);
    const uint lid = get_local_id(0), nl = get_local_size(0);
    const uint chunk = (n + ng - 1) / ng;
    const uint i0 = g * chunk, i1 = min(n, i0 + chunk);
    float s = 0.0f;
    for (uint i = i0 + lid; i < i1; i += nl) {
        const float v = x[x_off + i];
        s += v * v;
    }
    s = wg_sum(s, scratch);
    if (lid == 0) part[part_off + g] = s;
}

/* out[0] = sqrt(sum_g part[g]); out[1] = min(1, max_norm / (norm + 1e-6)) when max_norm > 0,
 * else 1 (the factor clip_grad_norm_ multiplies by). One work-group. */
__kernel void norm_finalize(__global float *out, const uint out_off, __global const float *part,
                            const uint part_off, const uint ngroups, const float max_norm,
                            __local float *scratch) {
    const uint lid = get_local_id(0), nl = get_local_size(0);
    float s = 0.0f;
    for (uint g = lid; g < ngroups; g += nl)
        s += part[part_off + g];
    s = wg_sum(s, scratch);
    if (lid == 0) {
        const float norm = sqrt(s);
        out[out_off] = norm;
        out[out_off + 1] = max_norm > 0.0f ? fmin(1.0f, max_norm / (norm + 1e-6f)) : 1.0f;
    }
}

/* x[i] *= coef[0], i < n; the factor is read from device memory. */
__kernel void norm_scale(__global float *x, const uint x_off, const uint n,
                         __global const float *coef, const uint coef_off) {
    const uint i = get_global_id(0);
    if (i < n) x[x_off + i] *= coef[coef_off];
}
