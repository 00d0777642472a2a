/* cl/crossentropy.cl — softmax fused with the cross-entropy loss, forward and backward.
 * The forward keeps only the log-sum-exp of each row; the backward turns the logits into
 * dlogits in place, so the probabilities are never stored.
 *
 * Shapes: logits/dlogits (N, Vp) (only the first V columns are real), targets (N) uint32
 * (0xFFFFFFFF = ignored), losses/lse (N), loss (1).
 * Row kernels: one work-group per row, any power-of-two size (1 on a CPU), `scratch` = local
 * memory of one float per work-item.
 */
#define IGNORE_TARGET 0xFFFFFFFFu

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

/* lse[i] = log sum_v exp(logits[i, v]) over v < V; losses[i] = lse[i] - logits[i, target[i]],
 * or 0 when the target is ignored. One work-group per row. */
__kernel void crossentropy_forward(__global float *losses, const uint losses_off,
                                   __global float *lse, const uint lse_off,
                                   __global const float *logits, const uint logits_off,
                                   __global const uint *targets, const uint targets_off,
                                   const uint V, const uint Vp, __local float *scratch) {
    const uint row = get_group_id(0);
    __global const float *x = logits + logits_off + row * Vp;
    float16 m16 = (float16)(-INFINITY);
    VEC_LOOP(v, V) m16 = fmax(m16, vload16(0, x + v));
    float mx = hmax16(m16);
    TAIL_LOOP(v, V) mx = fmax(mx, x[v]);
    mx = wg_max(mx, scratch);
    float16 s16 = (float16)(0.0f);
    VEC_LOOP(v, V) s16 += exp(vload16(0, x + v) - mx);
    float s = hsum16(s16);
    TAIL_LOOP(v, V) s += exp(x[v] - mx);
    s = wg_sum(s, scratch);
    if (get_local_id(0) == 0) {
        const float l = mx + log(s);
        const uint tg = targets[targets_off + row];
        lse[lse_off + row] = l;
        losses[losses_off + row] = tg == IGNORE_TARGET ? 0.0f : l - x[tg];
    }
}

/* dlogits[i, v] = (exp(logits[i, v] - lse[i]) - [v == target[i]]) * dloss for v < V, 0 for the
 * padding columns and for rows whose target is ignored. In place over the logits. One
 * work-group per row. */
__kernel void crossentropy_backward(__global float *logits, const uint logits_off,
                                    __global const float *lse, const uint lse_off,
                                    __global const uint *targets, const uint targets_off,
                                    const uint V, const uint Vp, const float dloss) {
    const uint row = get_group_id(0);
    __global float *x = logits + logits_off + row * Vp;
    const uint tg = targets[targets_off + row];
    const float l = lse[lse_off + row];
    const float d = tg == IGNORE_TARGET ? 0.0f : dloss;
    VEC_LOOP(v, V) vstore16(exp(vload16(0, x + v) - l) * d, 0, x + v);
    TAIL_LOOP(v, V) x[v] = exp(x[v] - l) * d;
    for (uint v = V + get_local_id(0); v < Vp; v += get_local_size(0))
        x[v] = 0.0f;
    barrier(CLK_GLOBAL_MEM_FENCE);
    if (get_local_id(0) == 0 && tg != IGNORE_TARGET) x[tg] -= dloss;
}

/* loss[0] = sum_i losses[i] / count. One work-group (any power-of-two size). */
__kernel void crossentropy_mean(__global float *loss, const uint loss_off,
                                __global const float *losses, const uint losses_off, const uint N,
                                const float count, __local float *scratch) {
    const uint lid = get_local_id(0), nl = get_local_size(0);
    float s = 0.0f;
    for (uint i = lid; i < N; i += nl)
        s += losses[losses_off + i];
    s = wg_sum(s, scratch);
    if (lid == 0) loss[loss_off] = count > 0.0f ? s / count : 0.0f;
}
