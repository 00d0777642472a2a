/* host/gemv.h — internal: products with few rows on the device (cl/gemv.cl), for generation's
 * one-token steps. A GEMM library tiles for large M: at M = 1 CLBlast reaches 0.1-0.3 GFLOP/s
 * on PoCL, and the LM head of a 4096-token vocabulary alone took 8 ms per token; the tuned
 * table's paths (host/blas.c: cl/gemm.cl tiles or CLBlast) measured 3-20x slower than these
 * kernels at 1-8 rows, so the ops call them directly. They stream B once and keep A's rows in
 * cache. Same conventions as host/blas.h
 * (row-major, BLAS argument order, element offsets and leading dimensions, nothing
 * synchronises); A is never transposed.
 *
 *   C (M, N) = alpha * A (M, K) @ op(B) + beta * C,  op(B) = B^T (B stored (N, K)) or B (K, N)
 *
 * The ops use them when M <= CLLM_GEMV_MAX_ROWS (host/ops/linear.c, host/ops/attention.c). */
#ifndef CLLM_GEMV_H
#define CLLM_GEMV_H

#include "blas.h"

#define CLLM_GEMV_MAX_ROWS 8

/* `batch` products; matrix z of A starts at a_off + z * a_stride (likewise B, C). M must be
 * 1 .. CLLM_GEMV_MAX_ROWS. */
cllm_status cllm_gemv_batched(cllm_runtime *rt, cllm_blas_trans tb, size_t M, size_t N, size_t K,
                              float alpha, cl_mem A, size_t a_off, size_t lda, size_t a_stride,
                              cl_mem B, size_t b_off, size_t ldb, size_t b_stride, float beta,
                              cl_mem C, size_t c_off, size_t ldc, size_t c_stride, size_t batch);

#endif
