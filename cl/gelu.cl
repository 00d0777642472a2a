/* cl/gelu.cl — GELU with the tanh approximation (Hugging Face "gelu_new"), forward and backward:
 *   gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
 * One work-item per element; any work-group size works.
 */
#define GELU_S 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_K 0.044715f

/* tanh, exactly +-1 where the correctly rounded float result is (|u| > 9.01). OpenCL allows
 * tanh a few ulp of error and PoCL returns 0.99999994 there; 1 - tanh^2 then becomes 1.2e-7
 * instead of 0, which the GELU derivative multiplies by up to ~100 for large |x|. */
static float tanh_sat(float u) {
    return fabs(u) > 9.1f ? copysign(1.0f, u) : tanh(u);
}

/* out[i] = gelu(inp[i]), i < n */
__kernel void gelu_forward(__global float *out, const uint out_off, __global const float *inp,
                           const uint inp_off, const uint n) {
    const uint i = get_global_id(0);
    if (i >= n) return;
    const float x = inp[inp_off + i];
    out[out_off + i] = 0.5f * x * (1.0f + tanh_sat(GELU_S * (x + GELU_K * x * x * x)));
}

/* dinp[i] = gelu'(inp[i]) * dout[i]; dinp may be the same view as dout (in place). */
__kernel void gelu_backward(__global float *dinp, const uint dinp_off, __global const float *inp,
                            const uint inp_off, __global const float *dout, const uint dout_off,
                            const uint n) {
    const uint i = get_global_id(0);
    if (i >= n) return;
    const float x = inp[inp_off + i];
    const float th = tanh_sat(GELU_S * (x + GELU_K * x * x * x));
    const float sech2 = 1.0f - th * th;
    const float grad =
        0.5f * (1.0f + th) + 0.5f * x * sech2 * GELU_S * (1.0f + 3.0f * GELU_K * x * x);
    dinp[dinp_off + i] = grad * dout[dout_off + i];
}
