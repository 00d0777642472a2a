/* cl/encoder.cl — token + position embedding, forward and backward.
 * Buffers are (base pointer, element offset) pairs. Token ids are uint32 in a buffer that may
 * be the float activation arena itself (4-byte elements either way).
 *
 * Shapes: tok (B*T), wte (Vp, C), wpe (maxT, C), out/dout (B*T, C).
 */

/* out[bt, c] = wte[tok[bt], c] + wpe[bt % T, c]. One work-item per element of out. */
__kernel void encoder_forward(__global float *out, const uint out_off, __global const uint *tok,
                              const uint tok_off, __global const float *wte, const uint wte_off,
                              __global const float *wpe, const uint wpe_off, const uint BT,
                              const uint T, const uint C) {
    const uint i = get_global_id(0);
    if (i >= BT * C) return;
    const uint bt = i / C, c = i - bt * C, t = bt % T;
    out[out_off + i] = wte[wte_off + tok[tok_off + bt] * C + c] + wpe[wpe_off + t * C + c];
}

/* dwte[tok[bt], c] += dout[bt, c] for every bt in order. One work-item per channel c: rows that
 * share a token are summed in a fixed order, so the result is deterministic without atomics. */
__kernel void encoder_backward_wte(__global float *dwte, const uint dwte_off,
                                   __global const float *dout, const uint dout_off,
                                   __global const uint *tok, const uint tok_off, const uint BT,
                                   const uint C) {
    const uint c = get_global_id(0);
    if (c >= C) return;
    for (uint bt = 0; bt < BT; bt++)
        dwte[dwte_off + tok[tok_off + bt] * C + c] += dout[dout_off + bt * C + c];
}

/* dwpe[t, c] += sum_b dout[b, t, c]. One work-item per (t, c) of the first T positions. */
__kernel void encoder_backward_wpe(__global float *dwpe, const uint dwpe_off,
                                   __global const float *dout, const uint dout_off, const uint B,
                                   const uint T, const uint C) {
    const uint i = get_global_id(0);
    if (i >= T * C) return;
    float s = 0.0f;
    for (uint b = 0; b < B; b++)
        s += dout[dout_off + b * T * C + i];
    dwpe[dwpe_off + i] += s;
}
