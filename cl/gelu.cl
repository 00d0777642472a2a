/* cl/gelu.cl — GELU with the tanh approximation (Hugging Face "gelu_new"), forward and backward:
 *   gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
 * One work-item per 16 elements; any work-group size works.
 */
#define GELU_S 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_K 0.044715f

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

/* tanh, exactly +-1 where the correctly rounded float result is (|u| > 9.01). OpenCL allows
 * tanh a few ulp of error and PoCL returns 0.99999994 there; 1 - tanh^2 then becomes 1.2e-7
 * instead of 0, which the GELU derivative multiplies by up to ~100 for large |x|. */
static float16 tanh_sat(float16 u) {
    return select(tanh(u), sign(u), fabs(u) > 9.1f);
}

/* out[i] = gelu(inp[i]), i < n */
__kernel void gelu_forward(__global float *out, const uint out_off, __global const float *inp,
                           const uint inp_off, const uint n) {
    const uint i = get_global_id(0) * 16;
    if (i >= n) return;
    const uint cnt = n - i;
    const float16 x = load16(inp + inp_off + i, cnt);
    store16(0.5f * x * (1.0f + tanh_sat(GELU_S * (x + GELU_K * x * x * x))), out + out_off + i,
            cnt);
}

/* dinp[i] = gelu'(inp[i]) * dout[i]; dinp may be the same view as dout (in place). */
__kernel void gelu_backward(__global float *dinp, const uint dinp_off, __global const float *inp,
                            const uint inp_off, __global const float *dout, const uint dout_off,
                            const uint n) {
    const uint i = get_global_id(0) * 16;
    if (i >= n) return;
    const uint cnt = n - i;
    const float16 x = load16(inp + inp_off + i, cnt);
    const float16 th = tanh_sat(GELU_S * (x + GELU_K * x * x * x));
    const float16 sech2 = 1.0f - th * th;
    const float16 grad =
        0.5f * (1.0f + th) + 0.5f * x * sech2 * GELU_S * (1.0f + 3.0f * GELU_K * x * x);
    store16(grad * load16(dout + dout_off + i, cnt), dinp + dinp_off + i, cnt);
}
