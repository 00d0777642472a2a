/* host/blas.h — internal: matrix products on the device. The only door to CLBlast (STYLE.md
 * habit 2): ops call these, never CLBlast directly.
 *
 * Row-major, BLAS argument order: C(M,N) = alpha * op(A)(M,K) @ op(B)(K,N) + beta * C.
 * Buffers are (cl_mem, element offset, leading dimension), so views into arenas need no copies.
 * Nothing here synchronises: work is only enqueued on the runtime's queue.
 */
#ifndef CLLM_BLAS_H
#define CLLM_BLAS_H

#include "runtime_cl.h"

typedef enum { CLLM_BLAS_N = 0, CLLM_BLAS_T = 1 } cllm_blas_trans;

cllm_status cllm_blas_sgemm(cllm_runtime *rt, cllm_blas_trans ta, cllm_blas_trans tb, size_t M,
                            size_t N, size_t K, float alpha, cl_mem A, size_t a_off, size_t lda,
                            cl_mem B, size_t b_off, size_t ldb, float beta, cl_mem C, size_t c_off,
                            size_t ldc);

/* `batch` independent products; matrix i of A starts at a_off + i * a_stride (likewise B, C). */
cllm_status cllm_blas_sgemm_batched(cllm_runtime *rt, cllm_blas_trans ta, cllm_blas_trans tb,
                                    size_t M, size_t N, size_t K, float alpha, cl_mem A,
                                    size_t a_off, size_t lda, size_t a_stride, cl_mem B,
                                    size_t b_off, size_t ldb, size_t b_stride, float beta,
                                    cl_mem C, size_t c_off, size_t ldc, size_t c_stride,
                                    size_t batch);

#endif
