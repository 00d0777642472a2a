/* cl/gemm.cl — cllm's own matrix products, written for CPU-like devices (PoCL): register-blocked
 * micro-kernels in the style of a CPU BLAS, one work-item per output tile, explicit vectors.
 * host/blas.c launches them (or CLBlast, whichever `cllm tune` measured faster).
 *
 *   C (M, N) = alpha * op(A) (M, K) @ B (K, N) + beta * C          row-major, batched
 *
 * gemm_nn reads A as stored (M, K); gemm_tn reads A stored (K, M) (op = transpose). B is
 * always (K, N) as stored: a transposed B is first rearranged by gemm_transpose (host/blas.c).
 * When beta == 0, C is not read (BLAS semantics: it may hold anything, NaN included).
 * Causal attention's products pass `tri` (host/blas.h, cllm_blas_tri): tiles wholly above the
 * diagonal are skipped, or each tile's k range is cut to where a triangular op(A) is not 0.
 *
 * Variants are -D defines (searched by `cllm tune`, defaults below):
 *   VW  vector width in floats (4, 8, 16: PoCL maps float16 onto one AVX-512 register)
 *   MR  rows of C per work-item,  NV  vectors of VW columns per row: a tile of MR x NV*VW,
 *       held in MR*NV vector registers while one loop over k does MR*NV FMAs per k
 * and the tile order is an argument, gm: tiles are numbered in groups of gm tile rows, column
 * by column inside a group, so that gm row panels of A stay in cache while B's column panels
 * stream (it costs a division per work-item, and a program per value would cost a build).
 *
 * One work-item: one MR x NR tile of one matrix of the batch (global id 0 = tile number,
 * global id 1 = batch index); work-groups are of any size (the host uses 1 on a CPU, where
 * PoCL otherwise tries to vectorise across work-items). Edge tiles are shifted inwards to
 * stay whole (they overlap their neighbour and write only their own part), so every tile runs
 * the vector loop; only a matrix narrower than the tile (M < MR or N < NR) takes the masked
 * path.
 */

#ifndef VW
#define VW 16
#endif
#ifndef MR
#define MR 8
#endif
#ifndef NV
#define NV 2
#endif
#define NR (NV * VW)

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define vec CAT(float, VW)
#define VLOAD CAT(vload, VW)
#define VSTORE CAT(vstore, VW)

/* A vector of cnt (< VW) floats from p, zeros after. */
static vec load_part(__global const float *p, int cnt) {
    float t[VW];
    for (int l = 0; l < VW; l++)
        t[l] = l < cnt ? p[l] : 0.0f;
    return VLOAD(0, t);
}

/* Tile (ti, tj) of tile number id, in groups of gm tile rows (see the header). */
static void tile_of(uint id, uint tiles_m, uint tiles_n, uint gm, uint *ti, uint *tj) {
    const uint group = id / (gm * tiles_n), first = group * gm;
    const uint size = min(tiles_m - first, gm), r = id - group * gm * tiles_n;
    *ti = first + r % size;
    *tj = r / size;
}

/* acc (MR, NV) = sum over k in [k_lo, k_hi) of A[row i, k] * B[k, cols]: the micro-kernel.
 * A_AT(i, k) reads op(A)[i0 + i, k]; LOAD_B(v) reads B[k, j0 + v*VW ..]; b is at row k_lo
 * and advances with k. */
#define GEMM_LOOP(A_AT, LOAD_B)                                                                    \
    for (int k = k_lo; k < k_hi; k++) {                                                            \
        vec bv[NV];                                                                                \
        _Pragma("unroll") for (int v = 0; v < NV; v++) bv[v] = LOAD_B(v);                          \
        _Pragma("unroll") for (int i = 0; i < MR; i++) {                                           \
            const vec av = (vec)(A_AT(i, k));                                                      \
            _Pragma("unroll") for (int v = 0; v < NV; v++) acc[i][v] = fma(av, bv[v], acc[i][v]);  \
        }                                                                                          \
        b += ldb;                                                                                  \
    }

/* C[i0s + i, j0s + cols] = alpha * acc + beta * C for rows in [i_lo, M) and columns in
 * [j_lo, N): the part of a shifted tile that is its own. */
static void store_tile(__global float *c, uint ldc, vec acc[MR][NV], uint i0s, uint j0s, uint i_lo,
                       uint j_lo, uint M, uint N, float alpha, float beta) {
    _Pragma("unroll") for (int i = 0; i < MR; i++) {
        const uint row = i0s + i;
        if (row < i_lo || row >= M) continue;
        __global float *cr = c + (size_t)row * ldc;
        _Pragma("unroll") for (int v = 0; v < NV; v++) {
            const uint col = j0s + v * VW;
            vec r = alpha * acc[i][v];
            if (col >= j_lo && col + VW <= N) {
                if (beta != 0.0f) r += beta * VLOAD(0, cr + col);
                VSTORE(r, 0, cr + col);
            } else {
                float t[VW];
                VSTORE(r, 0, t);
                for (int l = 0; l < VW; l++) {
                    const uint cc = col + l;
                    if (cc < j_lo || cc >= N) continue;
                    cr[cc] = beta != 0.0f ? t[l] + beta * cr[cc] : t[l];
                }
            }
        }
    }
}

/* The kernel body, for A read by A_ROW (NN: rows of A are rows of op(A)) or columns (TN). */
#define GEMM_KERNEL(NAME, A_AT_FAST, A_AT_SLOW)                                                    \
    __kernel void NAME(__global float *C, const ulong c_off, const uint ldc, const ulong c_stride,  \
                       __global const float *A, const ulong a_off, const uint lda,                 \
                       const ulong a_stride, __global const float *B, const ulong b_off,           \
                       const uint ldb, const ulong b_stride, const uint M, const uint N,           \
                       const uint K, const float alpha, const float beta, const uint gm,           \
                       const uint tri, const int shift) {                                          \
        const uint tiles_m = (M + MR - 1) / MR, tiles_n = (N + NR - 1) / NR;                       \
        const uint id = get_global_id(0), bi = get_global_id(1);                                    \
        if (id >= tiles_m * tiles_n) return;                                                       \
        uint ti, tj;                                                                               \
        tile_of(id, tiles_m, tiles_n, max(gm, 1u), &ti, &tj);                                      \
        const uint i0 = ti * MR, j0 = tj * NR;                                                     \
        __global const float *a = A + a_off + bi * a_stride;                                       \
        __global const float *b = B + b_off + bi * b_stride;                                       \
        __global float *c = C + c_off + bi * c_stride;                                             \
        vec acc[MR][NV];                                                                           \
        _Pragma("unroll") for (int i = 0; i < MR; i++)                                             \
            _Pragma("unroll") for (int v = 0; v < NV; v++) acc[i][v] = (vec)(0.0f);                \
        if (M >= MR && N >= NR) {                                                                  \
            const uint i0s = min(i0, M - MR), j0s = min(j0, N - NR);                               \
            __global const float *ar = a + (A_TRANS ? i0s : (size_t)i0s * lda);                    \
            K_RANGE(i0s + MR - 1)                                                                  \
            b += j0s + (size_t)k_lo * ldb;                                                         \
            GEMM_LOOP(A_AT_FAST, FULL_B)                                                           \
            store_tile(c, ldc, acc, i0s, j0s, i0, j0, M, N, alpha, beta);                          \
        } else {                                                                                   \
            /* narrower than a tile: rows clamped to M - 1 (computed, not stored), columns       \
             * past N masked */                                                                    \
            const uint i0s = M >= MR ? min(i0, M - MR) : 0, j0s = N >= NR ? min(j0, N - NR) : 0;   \
            K_RANGE(min(i0s + MR - 1, M - 1))                                                      \
            b += j0s + (size_t)k_lo * ldb;                                                         \
            GEMM_LOOP(A_AT_SLOW, PART_B)                                                           \
            store_tile(c, ldc, acc, i0s, j0s, i0, j0, M, N, alpha, beta);                          \
        }                                                                                          \
    }

/* The k a tile needs, [k_lo, k_hi), by `tri` (host/blas.h, cllm_blas_tri), for a tile whose last
 * row is I_MAX: 1 only C[i, j] for j <= i + shift is wanted (a tile wholly above that stays 0);
 * 2 op(A)[i, k] is 0 for k > i + shift; 3 op(A)[i, k] is 0 for k < i + shift (shift includes
 * the start of the host's K slice). */
#define K_RANGE(I_MAX)                                                                             \
    int k_lo = 0, k_hi = (int)K;                                                                   \
    if (tri == 1 && (int)j0s > (int)(I_MAX) + shift) k_hi = 0;                                      \
    if (tri == 2) k_hi = clamp((int)(I_MAX) + 1 + shift, 0, (int)K);                                \
    if (tri == 3) k_lo = clamp((int)i0s + shift, 0, (int)K);

#define FULL_B(v) VLOAD(v, b)
#define PART_B(v) load_part(b + (v) * VW, (int)min((uint)VW, N - min(N, j0s + (v) * VW)))

/* op(A)[i0s + i, k]: A (M, K) row-major (nn) or A (K, M) row-major (tn); `ar` points at row or
 * column i0s. Signed int offsets: with unsigned ones (which may wrap) LLVM recomputes every
 * address in the loop, which halved the speed on PoCL. The slow path clamps rows at M - 1. */
#define NN_FAST(i, k) ar[(i) * (int)lda + (k)]
#define NN_SLOW(i, k) a[(size_t)min(i0s + (i), M - 1) * lda + (k)]
#define TN_FAST(i, k) ar[(k) * (int)lda + (i)]
#define TN_SLOW(i, k) a[(size_t)(k) * lda + min(i0s + (i), M - 1)]

#define A_TRANS 0
GEMM_KERNEL(gemm_nn, NN_FAST, NN_SLOW)
#undef A_TRANS
#define A_TRANS 1
GEMM_KERNEL(gemm_tn, TN_FAST, TN_SLOW)
#undef A_TRANS

/* out (cols, rows) = in (rows, cols)^T, per matrix of a batch: how a transposed B becomes the
 * (K, N) operand of the kernels above. One work-item: a 16 x 16 block (global id 0 = block
 * column, 1 = block row, 2 = batch index). */
__kernel void gemm_transpose(__global float *out, const ulong o_off, const uint ldo,
                             const ulong o_stride, __global const float *in, const ulong i_off,
                             const uint ldi, const ulong i_stride, const uint rows,
                             const uint cols) {
    const uint c0 = get_global_id(0) * 16, r0 = get_global_id(1) * 16, bi = get_global_id(2);
    if (c0 >= cols || r0 >= rows) return;
    __global const float *src = in + i_off + bi * i_stride;
    __global float *dst = out + o_off + bi * o_stride;
    const uint nr = min(16u, rows - r0), nc = min(16u, cols - c0);
    float t[16][16];
    if (nr == 16 && nc == 16) {
        _Pragma("unroll") for (int r = 0; r < 16; r++)
            vstore16(vload16(0, src + (size_t)(r0 + r) * ldi + c0), 0, t[r]);
        _Pragma("unroll") for (int c = 0; c < 16; c++) {
            float16 v = (float16)(t[0][c], t[1][c], t[2][c], t[3][c], t[4][c], t[5][c], t[6][c],
                                  t[7][c], t[8][c], t[9][c], t[10][c], t[11][c], t[12][c],
                                  t[13][c], t[14][c], t[15][c]);
            vstore16(v, 0, dst + (size_t)(c0 + c) * ldo + r0);
        }
        return;
    }
    for (uint r = 0; r < nr; r++)
        for (uint c = 0; c < nc; c++)
            dst[(size_t)(c0 + c) * ldo + r0 + r] = src[(size_t)(r0 + r) * ldi + c0 + c];
}
