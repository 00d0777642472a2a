/* cl/adamw.cl — one AdamW step over a whole parameter buffer, computing what
 * torch.optim.AdamW (single-tensor path) computes, in the same order:
 *   p *= 1 - lr * wd                          (decayed elements only)
 *   m = beta1 m + (1 - beta1) g
 *   v = beta2 v + (1 - beta2) g g
 *   p -= step_size * m / (sqrt(v) / bc2_sqrt + eps),  step_size = lr / (1 - beta1^t),
 *                                                     bc2_sqrt = sqrt(1 - beta2^t)
 * Scalars that depend only on the step are computed on the host in double, as Python does.
 * Weight decay applies to elements inside the ranges [decay.s0, decay.s1), [decay.s2, decay.s3),
 * ... (up to 8; empty ranges are lo == hi). One work-item per 16 elements.
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

static int16 in_range(uint16 i, uint lo, uint hi) {
    return (i >= lo) & (i < hi);
}

static int16 in_ranges(uint16 i, uint16 r) {
    return in_range(i, r.s0, r.s1) | in_range(i, r.s2, r.s3) | in_range(i, r.s4, r.s5) |
           in_range(i, r.s6, r.s7) | in_range(i, r.s8, r.s9) | in_range(i, r.sa, r.sb) |
           in_range(i, r.sc, r.sd) | in_range(i, r.se, r.sf);
}

__kernel void adamw_step(__global float *p, const uint p_off, __global const float *g,
                         const uint g_off, __global float *m, const uint m_off, __global float *v,
                         const uint v_off, const uint n, const float beta1,
                         const float one_minus_beta1, const float beta2,
                         const float one_minus_beta2, const float eps, const float decay_factor,
                         const float step_size, const float bc2_sqrt, const uint16 decay) {
    const uint i = get_global_id(0) * 16;
    if (i >= n) return;
    const uint cnt = n - i;
    const uint16 idx = i + (uint16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const float16 grad = load16(g + g_off + i, cnt);
    float16 param = load16(p + p_off + i, cnt);
    param = select(param, param * decay_factor, in_ranges(idx, decay));
    const float16 mom = load16(m + m_off + i, cnt) * beta1 + one_minus_beta1 * grad;
    const float16 var = load16(v + v_off + i, cnt) * beta2 + one_minus_beta2 * grad * grad;
    store16(mom, m + m_off + i, cnt);
    store16(var, v + v_off + i, cnt);
    store16(param - step_size * (mom / (sqrt(var) / bc2_sqrt + eps)), p + p_off + i, cnt);
}
