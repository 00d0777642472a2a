/* cl/attention.cl — the non-GEMM parts of causal multi-head self-attention, forward and
 * backward. The products q k^T, att v and their gradients are strided-batched GEMMs over the
 * B*NH heads (host/ops/attention.c); these kernels rearrange q, k, v into per-head matrices
 * and apply the causal softmax.
 *
 * Shapes: qkv (B, T, 3, NH, hs) = (B, T, 3C), the fused projection's output
 *         qkvr (3, B, NH, T, hs), per-head q, k, v
 *         preatt/att/datt (B, NH, T, T), rows r = (b NH + h) T + t
 */

/* Sum and max over the work-group (power-of-two size); every work-item receives the result. */
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

static float wg_max(float x, __local float *scratch) {
    const uint lid = get_local_id(0);
    scratch[lid] = x;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = get_local_size(0) / 2; s > 0; s >>= 1) {
        if (lid < s) scratch[lid] = fmax(scratch[lid], scratch[lid + s]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float r = scratch[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
}

/* qkvr[s, b, h, t, d] = qkv[b, t, s, h, d] (split = 1), or the inverse qkv = qkvr (split = 0,
 * for the gradients). One work-item per element, indexed in qkvr order. */
__kernel void attention_qkv_permute(__global float *qkv, const uint qkv_off, __global float *qkvr,
                                    const uint qkvr_off, const uint B, const uint T, const uint NH,
                                    const uint hs, const uint split) {
    const uint i = get_global_id(0);
    const uint C = NH * hs;
    if (i >= 3 * B * T * C) return;
    const uint d = i % hs;
    uint r = i / hs;
    const uint t = r % T;
    r /= T;
    const uint h = r % NH;
    r /= NH;
    const uint b = r % B, s = r / B;
    const uint j = ((b * T + t) * 3 + s) * C + h * hs + d;
    if (split)
        qkvr[qkvr_off + i] = qkv[qkv_off + j];
    else
        qkv[qkv_off + j] = qkvr[qkvr_off + i];
}

/* out (A, Y, X, Z) = inp (A, X, Y, Z): swaps the two middle axes. Heads to rows,
 * (B, NH, T, hs) -> (B, T, NH, hs), and back. One work-item per element, in out order. */
__kernel void attention_swap_middle(__global float *out, const uint out_off,
                                    __global const float *inp, const uint inp_off, const uint A,
                                    const uint X, const uint Y, const uint Z) {
    const uint i = get_global_id(0);
    if (i >= A * X * Y * Z) return;
    const uint z = i % Z;
    uint r = i / Z;
    const uint x = r % X;
    r /= X;
    const uint y = r % Y, a = r / Y;
    out[out_off + i] = inp[inp_off + ((a * X + x) * Y + y) * Z + z];
}

/* att[r, j] = softmax_j(preatt[r, j]) over j <= t (r's position), 0 for j > t. preatt is
 * already scaled by 1/sqrt(hs). One work-group per row r; att may be the same view as preatt. */
__kernel void attention_softmax_forward(__global float *att, const uint att_off,
                                        __global const float *preatt, const uint preatt_off,
                                        const uint T, __local float *scratch) {
    const uint row = get_group_id(0), lid = get_local_id(0), nl = get_local_size(0);
    const uint t = row % T;
    __global const float *x = preatt + preatt_off + row * T;
    __global float *y = att + att_off + row * T;
    float mx = -INFINITY;
    for (uint j = lid; j <= t; j += nl)
        mx = fmax(mx, x[j]);
    mx = wg_max(mx, scratch);
    float s = 0.0f;
    for (uint j = lid; j <= t; j += nl)
        s += exp(x[j] - mx);
    const float inv = 1.0f / wg_sum(s, scratch);
    for (uint j = lid; j < T; j += nl)
        y[j] = j <= t ? exp(x[j] - mx) * inv : 0.0f;
}

/* dpreatt[r, j] = att[r, j] (datt[r, j] - sum_k att[r, k] datt[r, k]) for j <= t, 0 beyond
 * (the gradient w.r.t. the scaled scores). One work-group per row; dpreatt may be the same view
 * as datt (every work-item reads its own elements before writing them). */
__kernel void attention_softmax_backward(__global float *dpreatt, const uint dpreatt_off,
                                         __global const float *datt, const uint datt_off,
                                         __global const float *att, const uint att_off,
                                         const uint T, __local float *scratch) {
    const uint row = get_group_id(0), lid = get_local_id(0), nl = get_local_size(0);
    const uint t = row % T;
    __global const float *a = att + att_off + row * T;
    __global const float *da = datt + datt_off + row * T;
    __global float *dp = dpreatt + dpreatt_off + row * T;
    float s = 0.0f;
    for (uint j = lid; j <= t; j += nl)
        s += a[j] * da[j];
    s = wg_sum(s, scratch);
    for (uint j = lid; j < T; j += nl)
        dp[j] = j <= t ? a[j] * (da[j] - s) : 0.0f;
}
