/* cl/adamw.cl — one AdamW step over a whole parameter buffer, computing what
 * torch.optim.AdamW (single-tensor path) computes, in the same order:
 *   p *= 1 - lr * wd                          (decayed elements only)
 *   m = beta1 m + (1 - beta1) g
 *   v = beta2 v + (1 - beta2) g g
 *   p -= step_size * m / (sqrt(v) / bc2_sqrt + eps),  step_size = lr / (1 - beta1^t),
 *                                                     bc2_sqrt = sqrt(1 - beta2^t)
 * Scalars that depend only on the step are computed on the host in double, as Python does.
 * Weight decay applies to elements inside the ranges [decay.s0, decay.s1), [decay.s2, decay.s3),
 * ... (up to 8; empty ranges are lo == hi). One work-item per element.
 */

static int in_ranges(uint i, uint16 r) {
    return (i >= r.s0 && i < r.s1) | (i >= r.s2 && i < r.s3) | (i >= r.s4 && i < r.s5) |
           (i >= r.s6 && i < r.s7) | (i >= r.s8 && i < r.s9) | (i >= r.sa && i < r.sb) |
           (i >= r.sc && i < r.sd) | (i >= r.se && i < r.sf);
}

__kernel void adamw_step(__global float *p, const uint p_off, __global const float *g,
                         const uint g_off, __global float *m, const uint m_off, __global float *v,
                         const uint v_off, const uint n, const float beta1,
                         const float one_minus_beta1, const float beta2,
                         const float one_minus_beta2, const float eps, const float decay_factor,
                         const float step_size, const float bc2_sqrt, const uint16 decay) {
    const uint i = get_global_id(0);
    if (i >= n) return;
    const float grad = g[g_off + i];
    float param = p[p_off + i];
    if (in_ranges(i, decay)) param *= decay_factor;
    const float mom = m[m_off + i] * beta1 + one_minus_beta1 * grad;
    const float var = v[v_off + i] * beta2 + one_minus_beta2 * grad * grad;
    m[m_off + i] = mom;
    v[v_off + i] = var;
    p[p_off + i] = param - step_size * (mom / (sqrt(var) / bc2_sqrt + eps));
}
