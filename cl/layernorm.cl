/* cl/layernorm.cl — LayerNorm over the last dimension, forward and backward.
 *   out = (x - mean) * rstd * w + b,  rstd = 1 / sqrt(var + eps)  (biased variance, as PyTorch)
 * Shapes: inp/out/dout/dinp (N, C), mean/rstd (N), w/b (C), part (2, nchunk, C).
 * Row kernels: one work-group per row, a power-of-two work-group size, `scratch` = local
 * memory of one float per work-item.
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
    const uint row = get_group_id(0);
    __global const float *x = inp + inp_off + row * C;
    __global const float *wr = w + w_off, *br = b + b_off;
    __global float *o = out + out_off + row * C;
    float16 s16 = (float16)(0.0f);
    VEC_LOOP(c, C) s16 += vload16(0, x + c);
    float s = hsum16(s16);
    TAIL_LOOP(c, C) s += x[c];
    const float m = wg_sum(s, scratch) / (float)C;
    float16 v16 = (float16)(0.0f);
    VEC_LOOP(c, C) {
        const float16 d = vload16(0, x + c) - m;
        v16 += d * d;
    }
    float v = hsum16(v16);
    TAIL_LOOP(c, C) {
        const float d = x[c] - m;
        v += d * d;
    }
    const float r = 1.0f / sqrt(wg_sum(v, scratch) / (float)C + eps);
    VEC_LOOP(c, C)
    vstore16((vload16(0, x + c) - m) * r * vload16(0, wr + c) + vload16(0, br + c), 0, o + c);
    TAIL_LOOP(c, C) o[c] = (x[c] - m) * r * wr[c] + br[c];
    if (get_local_id(0) == 0) {
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
    const uint row = get_group_id(0);
    __global const float *x = inp + inp_off + row * C;
    __global const float *dy = dout + dout_off + row * C;
    __global const float *wr = w + w_off;
    __global float *dx = dinp + dinp_off + row * C;
    const float m = mean[mean_off + row], r = rstd[rstd_off + row];
    float16 a16 = (float16)(0.0f), b16 = (float16)(0.0f);
    VEC_LOOP(c, C) {
        const float16 dn = vload16(0, dy + c) * vload16(0, wr + c);
        a16 += dn;
        b16 += dn * (vload16(0, x + c) - m) * r;
    }
    float s1 = hsum16(a16), s2 = hsum16(b16);
    TAIL_LOOP(c, C) {
        const float dn = dy[c] * wr[c];
        s1 += dn;
        s2 += dn * (x[c] - m) * r;
    }
    const float dn_mean = wg_sum(s1, scratch) / (float)C;
    const float dnn_mean = wg_sum(s2, scratch) / (float)C;
    VEC_LOOP(c, C) {
        const float16 norm = (vload16(0, x + c) - m) * r;
        const float16 g = (vload16(0, dy + c) * vload16(0, wr + c) - dn_mean - norm * dnn_mean) * r;
        vstore16(accumulate ? vload16(0, dx + c) + g : g, 0, dx + c);
    }
    TAIL_LOOP(c, C) {
        const float norm = (x[c] - m) * r;
        const float g = (dy[c] * wr[c] - dn_mean - norm * dnn_mean) * r;
        dx[c] = accumulate ? dx[c] + g : g;
    }
}

/* Partial sums over chunks of rows for the parameter gradients:
 *   part[0, k, c] = sum dout * norm,  part[1, k, c] = sum dout   (rows of chunk k)
 * Work-item (c / 16, k) takes 16 channels; finished by colsum_finalize (cl/bias.cl). */
__kernel void layernorm_backward_params_partial(__global float *part, const uint part_off,
                                                __global const float *dout, const uint dout_off,
                                                __global const float *inp, const uint inp_off,
                                                __global const float *mean, const uint mean_off,
                                                __global const float *rstd, const uint rstd_off,
                                                const uint N, const uint C,
                                                const uint rows_per_chunk, const uint nchunk) {
    const uint c = get_global_id(0) * 16, k = get_global_id(1);
    const uint r0 = k * rows_per_chunk;
    if (c >= C || r0 >= N) return;
    const uint cnt = C - c, r1 = min(N, r0 + rows_per_chunk);
    float16 sw = (float16)(0.0f), sb = (float16)(0.0f);
    for (uint r = r0; r < r1; r++) {
        const float16 dy = load16(dout + dout_off + r * C + c, cnt);
        const float16 norm =
            (load16(inp + inp_off + r * C + c, cnt) - mean[mean_off + r]) * rstd[rstd_off + r];
        sw += dy * norm;
        sb += dy;
    }
    store16(sw, part + part_off + k * C + c, cnt);
    store16(sb, part + part_off + (nchunk + k) * C + c, cnt);
}
