/* cl/attention.cl — the non-GEMM parts of causal multi-head self-attention, forward and
 * backward. The products q k^T, att v and their gradients are strided-batched GEMMs over the
 * B*NH heads (host/ops/attention.c); these kernels rearrange q, k, v into per-head matrices
 * and apply the causal softmax.
 *
 * Shapes: qkv (B, T, 3, NH, hs) = (B, T, 3C), the fused projection's output
 *         q, k, v per head (B NH, T, hs) (k, v: (B NH, Tmax, hs) with a key/value cache)
 *         preatt/att/datt (B, NH, T, T), rows r = (b NH + h) T + t
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
static float hmax16(float16 v) {
    float8 a = fmax(v.lo, v.hi);
    float4 b = fmax(a.lo, a.hi);
    float2 c = fmax(b.lo, b.hi);
    return fmax(c.lo, c.hi);
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

/* Copies n floats from src to dst (a head's slice), 16 at a time. */
static void copy_segment(__global float *dst, __global const float *src, uint n) {
    for (uint k = 0; k < n; k += 16)
        store16(load16(src + k, n - k), dst + k, n - k);
}

/* Between the fused projection qkv (B, n, 3, NH, hs) and per-head matrices: q (B NH, n, hs), and
 * k, v (B NH, Tmax, hs) whose rows pos .. pos + n - 1 are these n positions (a key/value cache;
 * in training Tmax = n and pos = 0). split = 1 copies qkv into q, k, v; split = 0 copies back
 * (the gradients). Work-item (t, z) copies one head's hs floats, z = (s B + b) NH + h. */
__kernel void attention_qkv_permute(__global float *qkv, const uint qkv_off, __global float *q,
                                    const uint q_off, __global float *k, const uint k_off,
                                    __global float *v, const uint v_off, const uint B, const uint n,
                                    const uint NH, const uint hs, const uint Tmax, const uint pos,
                                    const uint split) {
    const uint t = get_global_id(0), z = get_global_id(1);
    if (t >= n || z >= 3 * B * NH) return;
    const uint bh = z % (B * NH), s = z / (B * NH), b = bh / NH, h = bh % NH, C = NH * hs;
    __global float *r = s == 0   ? q + q_off + (bh * n + t) * hs
                        : s == 1 ? k + k_off + (bh * Tmax + pos + t) * hs
                                 : v + v_off + (bh * Tmax + pos + t) * hs;
    __global float *x = qkv + qkv_off + ((b * n + t) * 3 + s) * C + h * hs;
    if (split)
        copy_segment(r, x, hs);
    else
        copy_segment(x, r, hs);
}

/* out (A, Y, X, Z) = inp (A, X, Y, Z): swaps the two middle axes, e.g. heads to rows,
 * (B, NH, T, hs) -> (B, T, NH, hs), and back. Work-item (x, a Y + y) copies Z floats. */
__kernel void attention_swap_middle(__global float *out, const uint out_off,
                                    __global const float *inp, const uint inp_off, const uint A,
                                    const uint X, const uint Y, const uint Z) {
    const uint x = get_global_id(0), ay = get_global_id(1);
    if (x >= X || ay >= A * Y) return;
    const uint a = ay / Y, y = ay % Y;
    copy_segment(out + out_off + (ay * X + x) * Z, inp + inp_off + ((a * X + x) * Y + y) * Z, Z);
}

/* att[r, j] = softmax_j(preatt[r, j]) over the keys j <= t, 0 for j > t, where row r is query
 * i = r % Tq at position t = pos + i and rows hold Tk keys (training: Tq = Tk = T, pos = 0).
 * preatt is already scaled by 1/sqrt(hs). One work-group per row; att may be the same view as
 * preatt (each work-item rewrites only the elements it reads last). */
__kernel void attention_softmax_forward(__global float *att, const uint att_off,
                                        __global const float *preatt, const uint preatt_off,
                                        const uint Tq, const uint Tk, const uint pos,
                                        __local float *scratch) {
    const uint row = get_group_id(0);
    const uint t = pos + row % Tq, n = t + 1;
    __global const float *x = preatt + preatt_off + row * Tk;
    __global float *y = att + att_off + row * Tk;
    float16 m16 = (float16)(-INFINITY);
    VEC_LOOP(j, n) m16 = fmax(m16, vload16(0, x + j));
    float mx = hmax16(m16);
    TAIL_LOOP(j, n) mx = fmax(mx, x[j]);
    mx = wg_max(mx, scratch);
    float16 s16 = (float16)(0.0f);
    VEC_LOOP(j, n) s16 += exp(vload16(0, x + j) - mx);
    float s = hsum16(s16);
    TAIL_LOOP(j, n) s += exp(x[j] - mx);
    const float inv = 1.0f / wg_sum(s, scratch);
    const int16 lane = (int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    VEC_LOOP(j, Tk) {
        const float16 e = exp(vload16(0, x + j) - mx) * inv;
        vstore16(select((float16)(0.0f), e, lane + (int)j <= (int)t), 0, y + j);
    }
    TAIL_LOOP(j, Tk) y[j] = j <= t ? exp(x[j] - mx) * inv : 0.0f;
}

/* dpreatt[r, j] = att[r, j] (datt[r, j] - sum_k att[r, k] datt[r, k]): the gradient w.r.t. the
 * scaled scores. att is exactly 0 beyond the diagonal, so no mask is needed. One work-group per
 * row; dpreatt may be the same view as datt (the sum is complete before anything is written). */
__kernel void attention_softmax_backward(__global float *dpreatt, const uint dpreatt_off,
                                         __global const float *datt, const uint datt_off,
                                         __global const float *att, const uint att_off,
                                         const uint T, __local float *scratch) {
    const uint row = get_group_id(0);
    __global const float *a = att + att_off + row * T;
    __global const float *da = datt + datt_off + row * T;
    __global float *dp = dpreatt + dpreatt_off + row * T;
    float16 s16 = (float16)(0.0f);
    VEC_LOOP(j, T) s16 += vload16(0, a + j) * vload16(0, da + j);
    float s = hsum16(s16);
    TAIL_LOOP(j, T) s += a[j] * da[j];
    s = wg_sum(s, scratch);
    VEC_LOOP(j, T) vstore16(vload16(0, a + j) * (vload16(0, da + j) - s), 0, dp + j);
    TAIL_LOOP(j, T) dp[j] = a[j] * (da[j] - s);
}
