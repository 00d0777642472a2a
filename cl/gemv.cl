/* cl/gemv.cl — products with few rows (ROWS, 1..8): generation's one-token steps, where a
 * GEMM library's tiling for large M leaves most of a tile empty (CLBlast reaches 0.1-0.3
 * GFLOP/s at M = 1 on PoCL). These stream B once and keep the ROWS rows of A in cache.
 *
 *   gemv_nt: C (M, N) = alpha * A (M, K) @ B^T,  B stored (N, K)   (linear layers, q k^T)
 *   gemv_nn: C (M, N) = alpha * A (M, K) @ B,    B stored (K, N)   (att v)
 *   + beta * C; when beta == 0, C is not read (it may hold anything, NaN included).
 *
 * Row-major; every matrix at an element offset with a leading dimension, and batch z of a
 * strided batch at offset + z * stride (global id 1 = z). ROWS (1, 2, 4 or 8) is a -D define
 * (host/gemv.c builds one program per value, the smallest >= M), so the loops over rows unroll
 * into ROWS vector accumulators; rows M .. ROWS-1 are skipped.
 *
 * gemv_nt: one work-item computes column o (all ROWS rows) of one batch matrix: a dot product
 *          of length K per row, 16 floats at a time (float16: one AVX-512 register on PoCL).
 * gemv_nn: one work-item computes 16 consecutive columns (all ROWS rows) of one batch matrix,
 *          accumulating row k of B times A[r, k] for k = 0 .. K-1.
 */

#ifndef ROWS
#define ROWS 1
#endif

/* over the rows this program holds, skipping those beyond M (uniform across work-items) */
#define FOR_ROWS(r) for (uint r = 0; r < ROWS; r++) if (ROWS == 1 || r < M)

static float hsum16(float16 v) {
    float8 a = v.lo + v.hi;
    float4 b = a.lo + a.hi;
    float2 c = b.lo + b.hi;
    return c.x + c.y;
}

__kernel void gemv_nt(__global float *C, const uint c_off, const uint ldc, const uint c_stride,
                      __global const float *A, const uint a_off, const uint lda,
                      const uint a_stride, __global const float *B, const uint b_off,
                      const uint ldb, const uint b_stride, const uint M, const uint N,
                      const uint K, const float alpha, const float beta) {
    const uint o = get_global_id(0), z = get_global_id(1);
    if (o >= N) return;
    __global const float *a = A + a_off + z * a_stride;
    __global const float *b = B + b_off + z * b_stride + o * ldb;
    float16 acc[ROWS];
    float tail[ROWS];
    for (uint r = 0; r < ROWS; r++) {
        acc[r] = (float16)(0.0f);
        tail[r] = 0.0f;
    }
    uint k = 0;
    for (; k + 16 <= K; k += 16) {
        const float16 bv = vload16(0, b + k);
        FOR_ROWS(r) acc[r] = fma(vload16(0, a + r * lda + k), bv, acc[r]);
    }
    for (; k < K; k++)
        FOR_ROWS(r) tail[r] = fma(a[r * lda + k], b[k], tail[r]);
    __global float *c = C + c_off + z * c_stride + o;
    FOR_ROWS(r) {
        const float v = alpha * (hsum16(acc[r]) + tail[r]);
        c[r * ldc] = beta == 0.0f ? v : v + beta * c[r * ldc];
    }
}

__kernel void gemv_nn(__global float *C, const uint c_off, const uint ldc, const uint c_stride,
                      __global const float *A, const uint a_off, const uint lda,
                      const uint a_stride, __global const float *B, const uint b_off,
                      const uint ldb, const uint b_stride, const uint M, const uint N,
                      const uint K, const float alpha, const float beta) {
    const uint j = get_global_id(0) * 16, z = get_global_id(1);
    if (j >= N) return;
    __global const float *a = A + a_off + z * a_stride;
    __global const float *b = B + b_off + z * b_stride + j;
    __global float *c = C + c_off + z * c_stride + j;
    const uint cnt = N - j;
    float16 acc[ROWS];
    for (uint r = 0; r < ROWS; r++)
        acc[r] = (float16)(0.0f);
    if (cnt >= 16) {
        for (uint k = 0; k < K; k++) {
            const float16 bv = vload16(0, b + k * ldb);
            FOR_ROWS(r) acc[r] = fma((float16)(a[r * lda + k]), bv, acc[r]);
        }
        FOR_ROWS(r) {
            float16 v = alpha * acc[r];
            if (beta != 0.0f) v += beta * vload16(0, c + r * ldc);
            vstore16(v, 0, c + r * ldc);
        }
        return;
    }
    /* the last, partial group of columns */
    float t[16];
    for (uint k = 0; k < K; k++) {
        for (uint l = 0; l < 16; l++)
            t[l] = l < cnt ? b[k * ldb + l] : 0.0f;
        const float16 bv = vload16(0, t);
        FOR_ROWS(r) acc[r] = fma((float16)(a[r * lda + k]), bv, acc[r]);
    }
    FOR_ROWS(r) {
        vstore16(alpha * acc[r], 0, t);
        for (uint l = 0; l < cnt; l++)
            c[r * ldc + l] = beta == 0.0f ? t[l] : t[l] + beta * c[r * ldc + l];
    }
}
