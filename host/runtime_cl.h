/* host/runtime_cl.h — internal: the OpenCL handles behind cllm_runtime, kernel lookup,
 * launch helpers and the CLLM_CL_TRY error macro. Only host code that talks to OpenCL
 * includes this (ops, blas, tensor/arena); public headers never do.
 */
#ifndef CLLM_RUNTIME_CL_H
#define CLLM_RUNTIME_CL_H

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#ifndef CL_USE_DEPRECATED_OPENCL_1_2_APIS
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#endif
#include <CL/cl.h>

#include "cllm/runtime.h"

typedef struct cllm_program_entry cllm_program_entry;
typedef struct cllm_kernel_entry cllm_kernel_entry;

struct cllm_runtime {
    cl_platform_id platform;
    cl_device_id device;
    cl_context ctx;
    cl_command_queue queue;
    cllm_device_info info;
    char *kernel_dir; /* NULL: embedded sources */
    char *cache_dir;  /* NULL: no cache */
    bool quiet;
    cllm_runtime_stats stats;
    cllm_program_entry *programs; /* linked list: one per (file, options) */
    cllm_kernel_entry *kernels;   /* linked list: one per (program, kernel name) */
    void *blas;                   /* owned by host/blas.c (tuning state); may be NULL */
    void (*blas_free)(void *);
};

/* Record an OpenCL failure (file, line, expression, error name) and jump to `fail:`.
 * The enclosing function must have `cllm_status st` and a `fail:` label. */
#define CLLM_CL_TRY(expr)                                                                      \
    do {                                                                                       \
        cl_int cl_err_ = (expr);                                                               \
        if (cl_err_ != CL_SUCCESS) {                                                           \
            st = cllm_fail(cl_err_, "%s:%d: %s: %s", __FILE__, __LINE__, #expr,                \
                           cllm_status_name(cl_err_));                                         \
            goto fail;                                                                         \
        }                                                                                      \
    } while (0)

/* The kernel `name` from cl/`file` built with `options` (NULL = none); built or loaded from the
 * cache on first use, then memoised. The kernel object is owned by the runtime. */
cllm_status cllm_rt_kernel(cllm_runtime *rt, const char *file, const char *options,
                           const char *name, cl_kernel *kernel);

/* Set kernel arguments in order: cllm_rt_args(k, n, sizeof(a), &a, sizeof(b), &b, ...). */
cllm_status cllm_rt_args(cl_kernel k, int n, ...);

/* Enqueue a 1-, 2- or 3-D launch. `global` is rounded up to a multiple of `local` (local may
 * be NULL for the driver's choice). No synchronisation. */
cllm_status cllm_rt_launch(cllm_runtime *rt, cl_kernel k, cl_uint dims, const size_t *global,
                           const size_t *local);

/* A hash of what identifies the device and its driver (device name, vendor and version, driver
 * version, platform name and version): the device part of the program cache's key, also the
 * key of the tune cache (host/tune_cache.c). */
void cllm_rt_device_key(const cllm_runtime *rt, uint64_t key[2]);
/* $XDG_CACHE_HOME/cllm, else ~/.cache/cllm (malloc'd; NULL when neither variable is set). */
char *cllm_rt_default_cache_dir(void);

/* Device buffers (reads/writes are blocking: for tests, loading and checkpointing only). */
cllm_status cllm_rt_alloc(cllm_runtime *rt, size_t bytes, cl_mem *mem);
cllm_status cllm_rt_write(cllm_runtime *rt, cl_mem mem, size_t offset, const void *src,
                          size_t bytes);
cllm_status cllm_rt_read(cllm_runtime *rt, cl_mem mem, size_t offset, void *dst, size_t bytes);
cllm_status cllm_rt_fill_zero(cllm_runtime *rt, cl_mem mem, size_t offset, size_t bytes);

#endif
