/* cllm/runtime.h — OpenCL platforms and devices, device selection, the program cache.
 *
 * Tutorial.
 *   List what exists:
 *       cllm_device_info *devs; int n;
 *       if (cllm_devices_list(&devs, &n) == CLLM_OK) { ... free(devs); }
 *   Open one (SPECs as in DESIGN.md: an index from `cllm devices`, a type gpu|cpu|accelerator,
 *   or a case-insensitive substring of the device or platform name; NULL reads CLLM_DEVICE /
 *   CLLM_PLATFORM and defaults to the first GPU, else the first device):
 *       cllm_runtime *rt;
 *       cllm_runtime_opts o = cllm_runtime_opts_default();
 *       o.device_spec = "cpu";
 *       st = cllm_runtime_init(&rt, &o);
 *       ...
 *       cllm_runtime_free(rt);
 *   Kernels (cl/ *.cl, embedded at build time, or read from CLLM_KERNEL_DIR) are compiled the
 *   first time a kernel of that file is asked for, and the program binary is cached on disk
 *   (CLLM_CACHE=0 disables). Host code that launches kernels includes host/runtime_cl.h,
 *   the internal header that exposes the OpenCL handles; this public header needs no CL/cl.h.
 */
#ifndef CLLM_RUNTIME_H
#define CLLM_RUNTIME_H

#include "cllm/common.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    CLLM_DEVICE_CPU = 1,
    CLLM_DEVICE_GPU = 2,
    CLLM_DEVICE_ACCELERATOR = 4,
    CLLM_DEVICE_OTHER = 8,
} cllm_device_type;

typedef struct {
    int index;          /* position in `cllm devices` (all platforms, in order) */
    int platform_index; /* position of its platform */
    int index_in_platform;
    char platform_name[128];
    char platform_vendor[128];
    char platform_version[128];
    char name[256];
    char vendor[128];
    char device_version[128];   /* "OpenCL 3.0 ..." */
    char driver_version[128];
    char opencl_c_version[128]; /* "OpenCL C 1.2 ..." */
    cllm_device_type type;
    unsigned compute_units;
    uint64_t global_mem;     /* bytes */
    uint64_t max_alloc;      /* bytes, largest single buffer */
    uint64_t local_mem;      /* bytes */
    size_t max_work_group;   /* work-items */
    unsigned mem_base_align; /* bytes; sub-buffer origin alignment */
    bool fp16;
    bool fp64;
} cllm_device_info;

const char *cllm_device_type_name(cllm_device_type t);

/* Every device of every platform. *devs is malloc'd (caller frees). No platform at all is
 * CLLM_ERR_NO_DEVICE with a message saying how to install one. */
cllm_status cllm_devices_list(cllm_device_info **devs, int *n);

/* Pick a device from a list by SPECs (either may be NULL or ""). Returns the position in
 * `devs` via *chosen, or CLLM_ERR_NO_DEVICE with a message listing what exists. */
cllm_status cllm_device_select(const cllm_device_info *devs, int n, const char *device_spec,
                               const char *platform_spec, int *chosen);

typedef struct {
    const char *device_spec;   /* NULL: $CLLM_DEVICE, then the default */
    const char *platform_spec; /* NULL: $CLLM_PLATFORM */
    const char *kernel_dir;    /* NULL: $CLLM_KERNEL_DIR, then the embedded sources */
    const char *cache_dir;     /* NULL: $XDG_CACHE_HOME/cllm, else ~/.cache/cllm */
    int cache;                 /* -1: $CLLM_CACHE (default on); 0: off; 1: on */
    bool profiling;            /* create the queue with profiling enabled */
    bool quiet;                /* do not log cache misses / build times */
} cllm_runtime_opts;

cllm_runtime_opts cllm_runtime_opts_default(void);

typedef struct cllm_runtime cllm_runtime;

cllm_status cllm_runtime_init(cllm_runtime **rt, const cllm_runtime_opts *opts);
void cllm_runtime_free(cllm_runtime *rt);

const cllm_device_info *cllm_runtime_device(const cllm_runtime *rt);
/* Wait for all queued work. */
cllm_status cllm_runtime_finish(cllm_runtime *rt);
/* Build or load (from the cache) the program of one kernel file now, e.g. "layernorm.cl",
 * with extra build options (may be NULL). Normally this happens on first use. */
cllm_status cllm_runtime_prepare(cllm_runtime *rt, const char *file, const char *options);

typedef struct {
    int programs_built;  /* compiled from source */
    int programs_cached; /* loaded from the on-disk cache */
    int cache_rejected;  /* cache entries found unusable (corrupt, stale) and rebuilt */
    double build_seconds;
} cllm_runtime_stats;

cllm_runtime_stats cllm_runtime_get_stats(const cllm_runtime *rt);
/* Directory of the program cache ("" when caching is off). */
const char *cllm_runtime_cache_dir(const cllm_runtime *rt);

/* Names of the embedded kernel files, for `cllm devices --kernels` and tests. */
int cllm_kernel_file_count(void);
const char *cllm_kernel_file_name(int i);

#ifdef __cplusplus
}
#endif
#endif
