/* cl/encoder.cl — token + position embedding, forward and backward.
 * Buffers are (base pointer, element offset) pairs. Token ids are uint32 in a buffer that may
 * be the float activation arena itself (4-byte elements either way).
 *
 * Shapes: tok (B*T), wte (Vp, C), wpe (maxT, C), out/dout (B*T, C).
 * Work-items take 16 consecutive channels (global id 0 = channel / 16).
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

/* out[bt, c] = wte[tok[bt], c] + wpe[pos + bt % T, c]; global id 1 = bt. */
__kernel void encoder_forward(__global float *out, const uint out_off, __global const uint *tok,
                              const uint tok_off, __global const float *wte, const uint wte_off,
                              __global const float *wpe, const uint wpe_off, const uint BT,
                              const uint T, const uint C, const uint pos) {
    const uint c = get_global_id(0) * 16, bt = get_global_id(1);
    if (c >= C || bt >= BT) return;
    const uint cnt = C - c;
    store16(load16(wte + wte_off + tok[tok_off + bt] * C + c, cnt) +
                load16(wpe + wpe_off + (pos + bt % T) * C + c, cnt),
            out + out_off + bt * C + c, cnt);
}

/* dwte[tok[bt], c] += dout[bt, c] for every bt in order. A work-item owns 16 channels of every
 * row: rows that share a token are summed in a fixed order, so the result is deterministic
 * without atomics. */
__kernel void encoder_backward_wte(__global float *dwte, const uint dwte_off,
                                   __global const float *dout, const uint dout_off,
                                   __global const uint *tok, const uint tok_off, const uint BT,
                                   const uint C) {
    const uint c = get_global_id(0) * 16;
    if (c >= C) return;
    const uint cnt = C - c;
    for (uint bt = 0; bt < BT; bt++) {
        __global float *d = dwte + dwte_off + tok[tok_off + bt] * C + c;
        store16(load16(d, cnt) + load16(dout + dout_off + bt * C + c, cnt), d, cnt);
    }
}

/* dwpe[t, c] += sum_b dout[b, t, c]; global id 0 indexes 16 elements of the (T, C) block. */
__kernel void encoder_backward_wpe(__global float *dwpe, const uint dwpe_off,
                                   __global const float *dout, const uint dout_off, const uint B,
                                   const uint T, const uint C) {
    const uint i = get_global_id(0) * 16, n = T * C;
    if (i >= n) return;
    const uint cnt = n - i;
    float16 s = (float16)(0.0f);
    for (uint b = 0; b < B; b++)
        s += load16(dout + dout_off + b * n + i, cnt);
    store16(load16(dwpe + dwpe_off + i, cnt) + s, dwpe + dwpe_off + i, cnt);
}
