/* cl/crossentropy.cl — softmax fused with the cross-entropy loss, forward and backward.
 * The forward keeps only the log-sum-exp of each row; the backward turns the logits into
 * dlogits in place, so the probabilities are never stored.
 *
 * Shapes: logits/dlogits (N, Vp) (only the first V columns are real), targets (N) uint32
 * (0xFFFFFFFF = ignored), losses/lse (N), loss (1).
 */
#define IGNORE_TARGET 0xFFFFFFFFu

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
    const uint row = get_group_id(0), lid = get_local_id(0), nl = get_local_size(0);
    __global const float *x = logits + logits_off + row * Vp;
    float mx = -INFINITY;
    for (uint v = lid; v < V; v += nl)
        mx = fmax(mx, x[v]);
    mx = wg_max(mx, scratch);
    float s = 0.0f;
    for (uint v = lid; v < V; v += nl)
        s += exp(x[v] - mx);
    s = wg_sum(s, scratch);
    if (lid == 0) {
        const float l = mx + log(s);
        const uint tg = targets[targets_off + row];
        lse[lse_off + row] = l;
        losses[losses_off + row] = tg == IGNORE_TARGET ? 0.0f : l - x[tg];
    }
}

/* dlogits[i, v] = (exp(logits[i, v] - lse[i]) - [v == target[i]]) * dloss for v < V, 0 for the
 * padding columns and for rows whose target is ignored. In place over the logits. One
 * work-item per element. */
__kernel void crossentropy_backward(__global float *logits, const uint logits_off,
                                    __global const float *lse, const uint lse_off,
                                    __global const uint *targets, const uint targets_off,
                                    const uint N, const uint V, const uint Vp, const float dloss) {
    const uint i = get_global_id(0);
    if (i >= N * Vp) return;
    const uint row = i / Vp, v = i - row * Vp;
    const uint tg = targets[targets_off + row];
    float g = 0.0f;
    if (v < V && tg != IGNORE_TARGET) {
        const float p = exp(logits[logits_off + i] - lse[lse_off + row]);
        g = (p - (v == tg ? 1.0f : 0.0f)) * dloss;
    }
    logits[logits_off + i] = g;
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
