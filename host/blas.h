/* host/blas.h — internal: matrix products on the device. The only door to CLBlast (STYLE.md
 * habit 2): ops call these, never CLBlast directly.
 *
 * Row-major, BLAS argument order: C(M,N) = alpha * op(A)(M,K) @ op(B)(K,N) + beta * C.
 * Buffers are (cl_mem, element offset, leading dimension), so views into arenas need no copies.
 * Nothing here synchronises: work is only enqueued on the runtime's queue.
 *
 * Each product takes one of several paths: CLBlast (its direct single-kernel GEMM or its
 * indirect Xgemm with pre/post-processing kernels, each with parameters CLBlast's database
 * has or cllm overrides), or cllm's own kernels (cl/gemm.cl, for CPU-like devices). Which one,
 * per shape, comes from the tune table (host/tune.c): the device's tune cache written by
 * `cllm tune`, else a built-in table for devices measured by the developers, else CLBlast as it
 * is. CLLM_TUNE=0 in the environment uses CLBlast as it is (no cache, no built-in table);
 * CLLM_TUNE=builtin ignores the cache. The table is read at the first product of a runtime.
 * A cllm-kernel variant is checked against a host reference the first time it is used; one
 * that computes wrongly is dropped (with a warning) for CLBlast.
 */
#ifndef CLLM_BLAS_H
#define CLLM_BLAS_H

#include "runtime_cl.h"

#include <stdbool.h>

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

/* What a product of causal attention may skip, with diagonal offset d (the query rows of a
 * call start at key position d with a key/value cache; 0 in training). cl/gemm.cl skips the
 * work; CLBlast computes the whole product, which satisfies every one of them. */
typedef enum {
    CLLM_BLAS_FULL = 0,
    CLLM_BLAS_LOWER_C = 1, /* only C[i, j] for j <= i + d is wanted: the rest may hold anything
                              finite (scores before the causal softmax) */
    CLLM_BLAS_LOWER_A = 2, /* op(A)[i, k] is 0 for k > i + d (att @ v, dpreatt @ k) */
    CLLM_BLAS_UPPER_A = 3, /* op(A)[i, k] is 0 for k < i + d (att^T @ dy, dpreatt^T @ q) */
} cllm_blas_tri;

/* cllm_blas_sgemm_batched for products that may skip what `tri` says. */
cllm_status cllm_blas_sgemm_batched_tri(cllm_runtime *rt, cllm_blas_tri tri, int d,
                                        cllm_blas_trans ta, cllm_blas_trans tb, size_t M, size_t N,
                                        size_t K, float alpha, cl_mem A, size_t a_off, size_t lda,
                                        size_t a_stride, cl_mem B, size_t b_off, size_t ldb,
                                        size_t b_stride, float beta, cl_mem C, size_t c_off,
                                        size_t ldc, size_t c_stride, size_t batch);

/* ---------------------------------------------------------------- paths and the tune table */

typedef enum {
    CLLM_GEMM_CLBLAST = 0,      /* CLBlast choosing direct or indirect itself (its threshold) */
    CLLM_GEMM_CLBLAST_DIRECT,   /* CLBlast's XgemmDirect: one kernel, any layout */
    CLLM_GEMM_CLBLAST_INDIRECT, /* CLBlast's Xgemm after copy/pad/transpose kernels */
    CLLM_GEMM_CLLM,             /* cl/gemm.cl */
    CLLM_GEMM_PATHS
} cllm_gemm_path;

/* "clblast", "clblast-direct", "clblast-indirect", "cllm"; NULL for an invalid value. */
const char *cllm_gemm_path_name(cllm_gemm_path p);
/* The path named `name`; false if none is. */
bool cllm_gemm_path_parse(const char *name, cllm_gemm_path *p);

/* A cl/gemm.cl variant: its -D defines vw, mr, nv and its arguments gm, the tile order (see
 * the file's header), and kc, the depth of the slices of K that the host launches one after
 * another (0: all of K at once), so that a tile's panels of A and B stay in cache when K is
 * long. */
typedef struct {
    int vw, mr, nv, gm, kc;
} cllm_gemm_kernel;

/* Whether a variant is within the ranges cl/gemm.cl accepts (vw 1, 2, 4, 8, 16; mr 1..32;
 * nv 1..8; gm 1..4096; kc 0 or 16..65536). */
bool cllm_gemm_kernel_valid(const cllm_gemm_kernel *k);

typedef struct {
    cllm_gemm_path path;
    cllm_gemm_kernel k; /* for CLLM_GEMM_CLLM */
} cllm_gemm_choice;

/* A product's shape: op flags, sizes, and batch (1 = a plain GEMM). */
typedef struct {
    int ta, tb;
    size_t M, N, K, batch;
} cllm_gemm_shape;

/* One CLBlast kernel's parameters (CLBlastOverrideParameters), e.g. "Xgemm" {MWG: 64, ...}. */
#define CLLM_CLBLAST_MAX_PARAMS 24
typedef struct {
    char kernel[24];
    int n;
    char name[CLLM_CLBLAST_MAX_PARAMS][24];
    size_t value[CLLM_CLBLAST_MAX_PARAMS];
} cllm_clblast_params;

typedef struct {
    cllm_gemm_shape shape;
    cllm_gemm_choice choice;
    double gflops; /* measured when tuned (0: not measured) */
} cllm_tune_entry;

#define CLLM_TUNE_MAX_CLBLAST 8

/* What the products of one device use. A shape is looked up by its op flags and batchedness:
 * an exact entry, else the nearest entry (sizes within a factor of 4 each), else `fallback`. */
typedef struct {
    char origin[16];                                     /* "cache", "builtin", "none" */
    cllm_clblast_params clblast[CLLM_TUNE_MAX_CLBLAST]; /* applied at start */
    int n_clblast;
    cllm_gemm_choice fallback;
    cllm_tune_entry *entries; /* malloc'd */
    int n_entries;
} cllm_tune_table;

void cllm_tune_table_clear(cllm_tune_table *t); /* frees entries, zeroes the table */
/* Deep copy (dst is overwritten, not freed first). */
cllm_status cllm_tune_table_copy(cllm_tune_table *dst, const cllm_tune_table *src);
/* The choice for a shape (see above). */
cllm_gemm_choice cllm_tune_table_lookup(const cllm_tune_table *t, const cllm_gemm_shape *s);

/* The table in effect for this runtime (loaded on first use: cache, built-in or none). */
cllm_status cllm_blas_table(cllm_runtime *rt, const cllm_tune_table **t);
/* Replace the table in effect (copied) and apply its CLBlast parameters. For the tuner and
 * tests. Called before any product of the runtime, nothing else is applied first (so CLBlast
 * keeps its own parameters for what the table does not override). */
cllm_status cllm_blas_set_table(cllm_runtime *rt, const cllm_tune_table *t);

/* Apply one CLBlast kernel's parameters to the device now (they stay for the process). */
cllm_status cllm_blas_clblast_override(cllm_runtime *rt, const cllm_clblast_params *p);

/* One product (batch >= 1) by an explicit path, bypassing the table: for the tuner and tests.
 * A cllm-kernel variant is not checked first here (the caller verifies). */
cllm_status cllm_blas_sgemm_with(cllm_runtime *rt, const cllm_gemm_choice *choice,
                                 const cllm_gemm_shape *s, float alpha, cl_mem A, size_t a_off,
                                 size_t lda, size_t a_stride, cl_mem B, size_t b_off, size_t ldb,
                                 size_t b_stride, float beta, cl_mem C, size_t c_off, size_t ldc,
                                 size_t c_stride);

/* The same for a product that may skip what `tri` says (cllm_blas_sgemm_batched_tri). */
cllm_status cllm_blas_sgemm_with_tri(cllm_runtime *rt, const cllm_gemm_choice *choice,
                                     cllm_blas_tri tri, int d, const cllm_gemm_shape *s,
                                     float alpha, cl_mem A, size_t a_off, size_t lda,
                                     size_t a_stride, cl_mem B, size_t b_off, size_t ldb,
                                     size_t b_stride, float beta, cl_mem C, size_t c_off,
                                     size_t ldc, size_t c_stride);

/* The build options of a cl/gemm.cl variant ("-DVW=16 -DMR=8 -DNV=2"), into buf. */
void cllm_gemm_kernel_options(const cllm_gemm_kernel *k, char *buf, size_t cap);

#endif
