/* cl/util.cl — small utility kernels over float buffers: fill, scale, axpy, add.
 * Buffers are passed as (base pointer, element offset) so that views into arenas need no
 * sub-buffers. One work-item handles one element; any work-group size works.
 */

/* x[off + i] = value, i < n */
__kernel void fill_f32(__global float *x, const uint off, const uint n, const float value) {
    const uint i = get_global_id(0);
    if (i < n) x[off + i] = value;
}

/* x[off + i] *= alpha, i < n */
__kernel void scale_f32(__global float *x, const uint off, const uint n, const float alpha) {
    const uint i = get_global_id(0);
    if (i < n) x[off + i] *= alpha;
}

/* y[yoff + i] += alpha * x[xoff + i], i < n */
__kernel void axpy_f32(__global float *y, const uint yoff, __global const float *x,
                       const uint xoff, const uint n, const float alpha) {
    const uint i = get_global_id(0);
    if (i < n) y[yoff + i] += alpha * x[xoff + i];
}

/* out[i] = a[i] + b[i], i < n (all offsets 0) */
__kernel void add_f32(__global float *out, __global const float *a, __global const float *b,
                      const uint n) {
    const uint i = get_global_id(0);
    if (i < n) out[i] = a[i] + b[i];
}
