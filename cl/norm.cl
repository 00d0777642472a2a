/* cl/norm.cl — the global L2 norm of a buffer and clipping to a maximum norm, entirely on the
 * device (torch.nn.utils.clip_grad_norm_): partial sums of squares per work-group, one
 * work-group finishing the norm and the clip coefficient, then a scale by that coefficient read
 * from device memory, so that nothing is read back.
 */

/* Rows are processed 16 floats at a time with explicit vectors (vload16), then a scalar tail:
 * PoCL's CPU device turns these into AVX-512 directly, whereas a loop inside a work-item defeats
 * its vectorisation across work-items (and scalar exp costs ~20x more). Work-item `lid` of `nl`
 * takes vectors lid, lid + nl, ... and then tail elements likewise. */
#define VEC_LOOP(i, n)                                                                             \
    for (uint i = get_local_id(0) * 16; i + 16 <= (n); i += get_local_size(0) * 16)
#define TAIL_LOOP(i, n)                                                                            \
    for (uint i = (n) / 16 * 16 + get_local_id(0); i < (n); i += get_local_size(0))

static float hsum16(float16 v) {
    float8 a = v.lo + v.hi;
    float4 b = a.lo + a.hi;
    float2 c = b.lo + b.hi;
    return c.lo + c.hi;
}
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
    /* slices are whole vectors of 16 so that the vector loads are the bulk of the work */
    const uint chunk = ((n + ng - 1) / ng + 15) / 16 * 16;
    const uint i0 = min(n, g * chunk), len = min(n, i0 + chunk) - i0;
    __global const float *xs = x + x_off + i0;
    float16 s16 = (float16)(0.0f);
    VEC_LOOP(i, len) {
        const float16 v = vload16(0, xs + i);
        s16 += v * v;
    }
    float s = hsum16(s16);
    TAIL_LOOP(i, len) s += xs[i] * xs[i];
    s = wg_sum(s, scratch);
    if (get_local_id(0) == 0) part[part_off + g] = s;
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

/* x[i] *= coef[0], i < n; the factor is read from device memory. 16 elements per work-item. */
__kernel void norm_scale(__global float *x, const uint x_off, const uint n,
                         __global const float *coef, const uint coef_off) {
    const uint i = get_global_id(0) * 16;
    if (i >= n) return;
    store16(load16(x + x_off + i, n - i) * coef[coef_off], x + x_off + i, n - i);
}
