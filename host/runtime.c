/* OpenCL platforms and devices, device selection, program build and on-disk binary cache,
 * kernel lookup and launch helpers. The only file that creates contexts, queues and programs.
 */
#define _POSIX_C_SOURCE 200809L
#include "runtime_cl.h"

#include "cl_sources.h"
#include "cllm/util.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct cllm_program_entry {
    char *file;
    char *options;
    cl_program program;
    cllm_program_entry *next;
};

struct cllm_kernel_entry {
    cl_program program;
    char *name;
    cl_kernel kernel;
    cllm_kernel_entry *next;
};

/* Options every program is built with. CL1.2 is what every vendor still supports; no fast
 * math (STYLE.md habit 9). */
#define BASE_BUILD_OPTIONS "-cl-std=CL1.2"

const char *cllm_device_type_name(cllm_device_type t) {
    switch (t) {
    case CLLM_DEVICE_CPU:
        return "cpu";
    case CLLM_DEVICE_GPU:
        return "gpu";
    case CLLM_DEVICE_ACCELERATOR:
        return "accelerator";
    default:
        return "other";
    }
}

int cllm_kernel_file_count(void) { return cllm_cl_source_count; }

const char *cllm_kernel_file_name(int i) {
    return i >= 0 && i < cllm_cl_source_count ? cllm_cl_sources[i].name : NULL;
}

/* ---------------------------------------------------------------- enumeration */

static void platform_str(cl_platform_id p, cl_platform_info what, char *dst, size_t cap) {
    dst[0] = 0;
    if (clGetPlatformInfo(p, what, cap, dst, NULL) != CL_SUCCESS) dst[0] = 0;
    dst[cap - 1] = 0;
}

static void device_str(cl_device_id d, cl_device_info what, char *dst, size_t cap) {
    dst[0] = 0;
    if (clGetDeviceInfo(d, what, cap, dst, NULL) != CL_SUCCESS) dst[0] = 0;
    dst[cap - 1] = 0;
}

static bool has_extension(cl_device_id d, const char *ext) {
    size_t n = 0;
    if (clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, 0, NULL, &n) != CL_SUCCESS || n == 0) return false;
    char *s = malloc(n + 1);
    if (!s) return false;
    bool found = false;
    if (clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, n, s, NULL) == CL_SUCCESS) {
        s[n] = 0;
        size_t el = strlen(ext);
        for (char *p = strstr(s, ext); p; p = strstr(p + 1, ext))
            if ((p == s || p[-1] == ' ') && (p[el] == 0 || p[el] == ' ')) found = true;
    }
    free(s);
    return found;
}

static void fill_info(cllm_device_info *di, cl_platform_id p, cl_device_id d) {
    platform_str(p, CL_PLATFORM_NAME, di->platform_name, sizeof di->platform_name);
    platform_str(p, CL_PLATFORM_VENDOR, di->platform_vendor, sizeof di->platform_vendor);
    platform_str(p, CL_PLATFORM_VERSION, di->platform_version, sizeof di->platform_version);
    device_str(d, CL_DEVICE_NAME, di->name, sizeof di->name);
    device_str(d, CL_DEVICE_VENDOR, di->vendor, sizeof di->vendor);
    device_str(d, CL_DEVICE_VERSION, di->device_version, sizeof di->device_version);
    device_str(d, CL_DRIVER_VERSION, di->driver_version, sizeof di->driver_version);
    device_str(d, CL_DEVICE_OPENCL_C_VERSION, di->opencl_c_version, sizeof di->opencl_c_version);
    cl_device_type t = 0;
    clGetDeviceInfo(d, CL_DEVICE_TYPE, sizeof t, &t, NULL);
    di->type = (t & CL_DEVICE_TYPE_GPU)           ? CLLM_DEVICE_GPU
               : (t & CL_DEVICE_TYPE_CPU)         ? CLLM_DEVICE_CPU
               : (t & CL_DEVICE_TYPE_ACCELERATOR) ? CLLM_DEVICE_ACCELERATOR
                                                  : CLLM_DEVICE_OTHER;
    cl_uint cu = 0, align_bits = 0;
    cl_ulong gm = 0, ma = 0, lm = 0;
    size_t wg = 0;
    clGetDeviceInfo(d, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cu, &cu, NULL);
    clGetDeviceInfo(d, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof gm, &gm, NULL);
    clGetDeviceInfo(d, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof ma, &ma, NULL);
    clGetDeviceInfo(d, CL_DEVICE_LOCAL_MEM_SIZE, sizeof lm, &lm, NULL);
    clGetDeviceInfo(d, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof wg, &wg, NULL);
    clGetDeviceInfo(d, CL_DEVICE_MEM_BASE_ADDR_ALIGN, sizeof align_bits, &align_bits, NULL);
    di->compute_units = cu;
    di->global_mem = gm;
    di->max_alloc = ma;
    di->local_mem = lm;
    di->max_work_group = wg;
    di->mem_base_align = align_bits / 8;
    cl_device_fp_config dfp = 0;
    clGetDeviceInfo(d, CL_DEVICE_DOUBLE_FP_CONFIG, sizeof dfp, &dfp, NULL);
    di->fp64 = dfp != 0 || has_extension(d, "cl_khr_fp64");
    di->fp16 = has_extension(d, "cl_khr_fp16");
}

/* Platforms and devices in `cllm devices` order. The id arrays are optional. */
static cllm_status enumerate(cllm_device_info **out, int *n_out, cl_platform_id **pids,
                             cl_device_id **dids) {
    *out = NULL;
    *n_out = 0;
    cl_uint np = 0;
    cl_int err = clGetPlatformIDs(0, NULL, &np);
    if (err == -1001 /* CL_PLATFORM_NOT_FOUND_KHR */ || (err == CL_SUCCESS && np == 0))
        return cllm_fail(CLLM_ERR_NO_DEVICE,
                         "no OpenCL platform found: install a driver (an ICD), e.g. "
                         "'apt-get install pocl-opencl-icd' for the CPU, or your GPU vendor's");
    if (err != CL_SUCCESS)
        return cllm_fail(err, "clGetPlatformIDs: %s", cllm_status_name(err));
    cl_platform_id *plats = calloc(np, sizeof *plats);
    if (!plats) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    clGetPlatformIDs(np, plats, NULL);
    int cap = 16, n = 0;
    cllm_device_info *infos = calloc((size_t)cap, sizeof *infos);
    cl_platform_id *pl = calloc((size_t)cap, sizeof *pl);
    cl_device_id *dl = calloc((size_t)cap, sizeof *dl);
    cllm_status st = CLLM_OK;
    if (!infos || !pl || !dl) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (cl_uint p = 0; p < np; p++) {
        cl_uint nd = 0;
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 0, NULL, &nd) != CL_SUCCESS || nd == 0)
            continue;
        cl_device_id *devs = calloc(nd, sizeof *devs);
        if (!devs) {
            st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
            goto fail;
        }
        clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, nd, devs, NULL);
        for (cl_uint d = 0; d < nd; d++) {
            if (n == cap) {
                cap *= 2;
                void *a = realloc(infos, (size_t)cap * sizeof *infos);
                if (a) infos = a;
                void *b = realloc(pl, (size_t)cap * sizeof *pl);
                if (b) pl = b;
                void *c = realloc(dl, (size_t)cap * sizeof *dl);
                if (c) dl = c;
                if (!a || !b || !c) {
                    free(devs);
                    st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
                    goto fail;
                }
            }
            memset(&infos[n], 0, sizeof infos[n]);
            fill_info(&infos[n], plats[p], devs[d]);
            infos[n].index = n;
            infos[n].platform_index = (int)p;
            infos[n].index_in_platform = (int)d;
            pl[n] = plats[p];
            dl[n] = devs[d];
            n++;
        }
        free(devs);
    }
    free(plats);
    plats = NULL;
    if (n == 0) {
        st = cllm_fail(CLLM_ERR_NO_DEVICE, "OpenCL platforms exist but offer no device");
        goto fail;
    }
    *out = infos;
    *n_out = n;
    if (pids) *pids = pl; else free(pl);
    if (dids) *dids = dl; else free(dl);
    return CLLM_OK;
fail:
    free(plats);
    free(infos);
    free(pl);
    free(dl);
    return st;
}

cllm_status cllm_devices_list(cllm_device_info **devs, int *n) {
    return enumerate(devs, n, NULL, NULL);
}

/* ---------------------------------------------------------------- selection */

static bool all_digits(const char *s) {
    if (!*s) return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s)) return false;
    return true;
}

static bool contains_ci(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0) return true;
    return n == 0;
}

static void describe_devices(const cllm_device_info *devs, int n, char *buf, size_t cap) {
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < n && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%d: %s (%s, platform %d: %s)",
                                 i ? "; " : "", devs[i].index, devs[i].name,
                                 cllm_device_type_name(devs[i].type), devs[i].platform_index,
                                 devs[i].platform_name);
}

cllm_status cllm_device_select(const cllm_device_info *devs, int n, const char *device_spec,
                               const char *platform_spec, int *chosen) {
    char list[768];
    describe_devices(devs, n, list, sizeof list);
    bool *ok = calloc((size_t)n, sizeof *ok);
    if (!ok) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    int n_ok = 0;
    for (int i = 0; i < n; i++) {
        bool m = true;
        if (platform_spec && *platform_spec) {
            if (all_digits(platform_spec))
                m = devs[i].platform_index == atoi(platform_spec);
            else
                m = contains_ci(devs[i].platform_name, platform_spec) ||
                    contains_ci(devs[i].platform_vendor, platform_spec);
        }
        ok[i] = m;
        n_ok += m;
    }
    cllm_status st = CLLM_OK;
    if (n_ok == 0) {
        st = cllm_fail(CLLM_ERR_NO_DEVICE,
                       "no OpenCL platform matches --platform '%s' (an index, or part of a "
                       "platform name); devices: %s",
                       platform_spec, list);
        goto done;
    }
    int pick = -1;
    if (device_spec && *device_spec) {
        cllm_device_type want = 0;
        if (!strcasecmp(device_spec, "gpu")) want = CLLM_DEVICE_GPU;
        if (!strcasecmp(device_spec, "cpu")) want = CLLM_DEVICE_CPU;
        if (!strcasecmp(device_spec, "accelerator")) want = CLLM_DEVICE_ACCELERATOR;
        for (int i = 0; i < n && pick < 0; i++) {
            if (!ok[i]) continue;
            if (all_digits(device_spec)) {
                if (devs[i].index == atoi(device_spec)) pick = i;
            } else if (want) {
                if (devs[i].type == want) pick = i;
            } else if (contains_ci(devs[i].name, device_spec) ||
                       contains_ci(devs[i].platform_name, device_spec)) {
                pick = i;
            }
        }
        if (pick < 0) {
            st = cllm_fail(CLLM_ERR_NO_DEVICE,
                           "no OpenCL device matches --device '%s'%s%s%s (an index, gpu, cpu, "
                           "accelerator, or part of a device or platform name); devices: %s",
                           device_spec, platform_spec && *platform_spec ? " on platform '" : "",
                           platform_spec && *platform_spec ? platform_spec : "",
                           platform_spec && *platform_spec ? "'" : "", list);
            goto done;
        }
    } else {
        for (int i = 0; i < n && pick < 0; i++)
            if (ok[i] && devs[i].type == CLLM_DEVICE_GPU) pick = i;
        for (int i = 0; i < n && pick < 0; i++)
            if (ok[i]) pick = i;
    }
    *chosen = pick;
done:
    free(ok);
    return st;
}

/* ---------------------------------------------------------------- runtime */

cllm_runtime_opts cllm_runtime_opts_default(void) {
    cllm_runtime_opts o;
    memset(&o, 0, sizeof o);
    o.cache = -1;
    return o;
}

char *cllm_rt_default_cache_dir(void) {
    const char *xdg = getenv("XDG_CACHE_HOME");
    if (xdg && *xdg) return cllm_path_join(xdg, "cllm");
    const char *home = getenv("HOME");
    if (home && *home) return cllm_strdup_printf("%s/.cache/cllm", home);
    return NULL;
}

/* PoCL's CPU device: see DESIGN.md ("known facts") and the note in README on
 * POCL_WORK_GROUP_METHOD. Applied before the ICD loader first loads PoCL, and only when the
 * user has not chosen for themselves. */
static void pocl_defaults(void) {
    const char *wg = getenv("CLLM_POCL_WORK_GROUP_METHOD");
    if (wg && *wg && !getenv("POCL_WORK_GROUP_METHOD")) setenv("POCL_WORK_GROUP_METHOD", wg, 0);
}

cllm_status cllm_runtime_init(cllm_runtime **out, const cllm_runtime_opts *opts_in) {
    cllm_runtime_opts opts = opts_in ? *opts_in : cllm_runtime_opts_default();
    *out = NULL;
    pocl_defaults();
    cllm_device_info *devs = NULL;
    cl_platform_id *pids = NULL;
    cl_device_id *dids = NULL;
    int n = 0, pick = -1;
    cllm_status st = enumerate(&devs, &n, &pids, &dids);
    if (st != CLLM_OK) return st;
    const char *dspec = opts.device_spec ? opts.device_spec : getenv("CLLM_DEVICE");
    const char *pspec = opts.platform_spec ? opts.platform_spec : getenv("CLLM_PLATFORM");
    cllm_runtime *rt = NULL;
    CLLM_TRY(cllm_device_select(devs, n, dspec, pspec, &pick));
    rt = calloc(1, sizeof *rt);
    if (!rt) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    rt->platform = pids[pick];
    rt->device = dids[pick];
    rt->info = devs[pick];
    rt->quiet = opts.quiet;
    cl_int err = CL_SUCCESS;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)rt->platform, 0};
    rt->ctx = clCreateContext(props, 1, &rt->device, NULL, NULL, &err);
    CLLM_CL_TRY(err);
    rt->queue = clCreateCommandQueue(rt->ctx, rt->device,
                                     opts.profiling ? CL_QUEUE_PROFILING_ENABLE : 0, &err);
    CLLM_CL_TRY(err);

    const char *kdir = opts.kernel_dir ? opts.kernel_dir : getenv("CLLM_KERNEL_DIR");
    if (kdir && *kdir) {
        if (!cllm_is_dir(kdir)) {
            st = cllm_fail(CLLM_ERR_USAGE, "CLLM_KERNEL_DIR=%s: not a directory", kdir);
            goto fail;
        }
        rt->kernel_dir = strdup(kdir);
    }
    int cache = opts.cache;
    if (cache < 0) {
        const char *c = getenv("CLLM_CACHE");
        cache = !(c && (!strcmp(c, "0") || !strcasecmp(c, "off") || !strcasecmp(c, "no")));
    }
    if (cache) rt->cache_dir = opts.cache_dir ? strdup(opts.cache_dir) : cllm_rt_default_cache_dir();
    free(devs);
    free(pids);
    free(dids);
    *out = rt;
    return CLLM_OK;
fail:
    free(devs);
    free(pids);
    free(dids);
    cllm_runtime_free(rt);
    return st;
}

void cllm_runtime_free(cllm_runtime *rt) {
    if (!rt) return;
    if (rt->queue) clFinish(rt->queue);
    if (rt->blas && rt->blas_free) rt->blas_free(rt->blas);
    for (cllm_kernel_entry *k = rt->kernels, *next; k; k = next) {
        next = k->next;
        clReleaseKernel(k->kernel);
        free(k->name);
        free(k);
    }
    for (cllm_program_entry *p = rt->programs, *next; p; p = next) {
        next = p->next;
        clReleaseProgram(p->program);
        free(p->file);
        free(p->options);
        free(p);
    }
    if (rt->queue) clReleaseCommandQueue(rt->queue);
    if (rt->ctx) clReleaseContext(rt->ctx);
    free(rt->kernel_dir);
    free(rt->cache_dir);
    free(rt);
}

const cllm_device_info *cllm_runtime_device(const cllm_runtime *rt) { return &rt->info; }

cllm_runtime_stats cllm_runtime_get_stats(const cllm_runtime *rt) { return rt->stats; }

const char *cllm_runtime_cache_dir(const cllm_runtime *rt) {
    return rt->cache_dir ? rt->cache_dir : "";
}

cllm_status cllm_runtime_finish(cllm_runtime *rt) {
    cllm_status st = CLLM_OK;
    CLLM_CL_TRY(clFinish(rt->queue));
fail:
    return st;
}

/* ---------------------------------------------------------------- programs and cache */

/* Source text of cl/<file>: from CLLM_KERNEL_DIR when set, else embedded. *owned is set when
 * the caller must free the text. */
static cllm_status get_source(cllm_runtime *rt, const char *file, const char **text, char **owned) {
    *owned = NULL;
    if (rt->kernel_dir) {
        char *path = cllm_path_join(rt->kernel_dir, file);
        if (!path) return CLLM_ERR_NOMEM;
        cllm_status st = cllm_read_file(path, owned, NULL);
        free(path);
        if (st != CLLM_OK) return cllm_fail_context(st, "CLLM_KERNEL_DIR");
        *text = *owned;
        return CLLM_OK;
    }
    for (int i = 0; i < cllm_cl_source_count; i++)
        if (!strcmp(cllm_cl_sources[i].name, file)) {
            *text = cllm_cl_sources[i].text;
            return CLLM_OK;
        }
    return cllm_fail(CLLM_ERR_USAGE, "no kernel file cl/%s is built into this binary", file);
}

#define CACHE_MAGIC "CLLMPRG1"

typedef struct {
    char magic[8];
    uint64_t key[2];
    uint64_t size;
    uint64_t checksum;
} cache_header;

/* Two 64-bit hashes of NUL-separated fields, the second of them starting from `seed`. */
static void hash_fields(const char *const *parts, size_t n, uint64_t seed, uint64_t key[2]) {
    uint64_t a = CLLM_FNV_SEED, b = seed;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(parts[i]) + 1; /* the NUL separates fields */
        a = cllm_hash64(parts[i], len, a);
        b = cllm_hash64(parts[i], len, b * 31 + i);
    }
    key[0] = a;
    key[1] = b;
}

void cllm_rt_device_key(const cllm_runtime *rt, uint64_t key[2]) {
    const char *parts[] = {rt->info.name,           rt->info.vendor,
                           rt->info.device_version, rt->info.driver_version,
                           rt->info.platform_name,  rt->info.platform_version};
    hash_fields(parts, sizeof parts / sizeof *parts, 0x84222325cbf29ce4ull, key);
}

static void cache_key(const cllm_runtime *rt, const char *src, const char *opts, uint64_t key[2]) {
    const char *parts[] = {src,
                           opts,
                           rt->info.name,
                           rt->info.vendor,
                           rt->info.device_version,
                           rt->info.driver_version,
                           rt->info.platform_name,
                           rt->info.platform_version};
    hash_fields(parts, sizeof parts / sizeof *parts, 0x84222325cbf29ce4ull, key);
}

static char *cache_path(const cllm_runtime *rt, const uint64_t key[2]) {
    return cllm_strdup_printf("%s/%016llx%016llx.bin", rt->cache_dir, (unsigned long long)key[0],
                              (unsigned long long)key[1]);
}

/* Try the cache; returns a built program or NULL (a bad entry is counted as rejected). */
static cl_program cache_load(cllm_runtime *rt, const uint64_t key[2], const char *opts) {
    char *path = cache_path(rt, key);
    if (!path) return NULL;
    char *data = NULL;
    size_t len = 0;
    cl_program prog = NULL;
    if (!cllm_is_file(path) || cllm_read_file(path, &data, &len) != CLLM_OK) goto done;
    cache_header h;
    if (len < sizeof h) goto reject;
    memcpy(&h, data, sizeof h);
    if (memcmp(h.magic, CACHE_MAGIC, 8) != 0 || h.key[0] != key[0] || h.key[1] != key[1] ||
        h.size != len - sizeof h ||
        h.checksum != cllm_hash64(data + sizeof h, (size_t)h.size, CLLM_FNV_SEED))
        goto reject;
    const unsigned char *bin = (const unsigned char *)data + sizeof h;
    size_t bin_size = (size_t)h.size;
    cl_int bin_status = CL_SUCCESS, err = CL_SUCCESS;
    prog = clCreateProgramWithBinary(rt->ctx, 1, &rt->device, &bin_size, &bin, &bin_status, &err);
    if (err != CL_SUCCESS || bin_status != CL_SUCCESS) {
        if (prog) clReleaseProgram(prog);
        prog = NULL;
        goto reject;
    }
    if (clBuildProgram(prog, 1, &rt->device, opts, NULL, NULL) != CL_SUCCESS) {
        clReleaseProgram(prog);
        prog = NULL;
        goto reject;
    }
    goto done;
reject:
    rt->stats.cache_rejected++;
    if (!rt->quiet) cllm_log(CLLM_LOG_DEBUG, "program cache entry %s unusable; rebuilding", path);
done:
    free(data);
    free(path);
    return prog;
}

static void cache_store(cllm_runtime *rt, const uint64_t key[2], cl_program prog) {
    size_t size = 0;
    if (clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof size, &size, NULL) != CL_SUCCESS ||
        size == 0)
        return;
    unsigned char *buf = malloc(sizeof(cache_header) + size);
    if (!buf) return;
    unsigned char *bin = buf + sizeof(cache_header);
    if (clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof bin, &bin, NULL) == CL_SUCCESS) {
        cache_header h;
        memcpy(h.magic, CACHE_MAGIC, 8);
        h.key[0] = key[0];
        h.key[1] = key[1];
        h.size = size;
        h.checksum = cllm_hash64(bin, size, CLLM_FNV_SEED);
        memcpy(buf, &h, sizeof h);
        char *path = cache_path(rt, key);
        if (path && (cllm_mkdirs(rt->cache_dir) != CLLM_OK ||
                     cllm_write_file_atomic(path, buf, sizeof h + size) != CLLM_OK))
            cllm_log(CLLM_LOG_WARN, "cannot write the program cache (%s); continuing without it",
                     cllm_last_error());
        free(path);
    }
    free(buf);
}

static cllm_status build_from_source(cllm_runtime *rt, const char *file, const char *src,
                                     const char *opts, cl_program *out) {
    cllm_status st = CLLM_OK;
    cl_int err = CL_SUCCESS;
    size_t len = strlen(src);
    cl_program prog = clCreateProgramWithSource(rt->ctx, 1, &src, &len, &err);
    CLLM_CL_TRY(err);
    double t0 = cllm_now();
    err = clBuildProgram(prog, 1, &rt->device, opts, NULL, NULL);
    rt->stats.build_seconds += cllm_now() - t0;
    if (err != CL_SUCCESS) {
        size_t log_len = 0;
        clGetProgramBuildInfo(prog, rt->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &log_len);
        char *log = malloc(log_len + 1);
        if (log) {
            clGetProgramBuildInfo(prog, rt->device, CL_PROGRAM_BUILD_LOG, log_len, log, NULL);
            log[log_len] = 0;
        }
        cllm_log(CLLM_LOG_ERROR, "build log of cl/%s on %s (options: %s):\n%s", file,
                 rt->info.name, opts, log ? log : "(no log)");
        free(log);
        clReleaseProgram(prog);
        return cllm_fail(CLLM_ERR_BUILD,
                         "cl/%s%s%s failed to build (%s) on %s with options '%s'; the device's "
                         "build log is printed above",
                         file, rt->kernel_dir ? " from CLLM_KERNEL_DIR=" : "",
                         rt->kernel_dir ? rt->kernel_dir : "", cllm_status_name(err),
                         rt->info.name, opts);
    }
    rt->stats.programs_built++;
    *out = prog;
    return CLLM_OK;
fail:
    return st;
}

static cllm_status get_program(cllm_runtime *rt, const char *file, const char *options,
                               cl_program *out) {
    const char *extra = options ? options : "";
    for (cllm_program_entry *p = rt->programs; p; p = p->next)
        if (!strcmp(p->file, file) && !strcmp(p->options, extra)) {
            *out = p->program;
            return CLLM_OK;
        }
    const char *src = NULL;
    char *owned = NULL;
    cllm_status st = get_source(rt, file, &src, &owned);
    if (st != CLLM_OK) return st;
    char *opts = cllm_strdup_printf("%s%s%s", BASE_BUILD_OPTIONS, *extra ? " " : "", extra);
    cllm_program_entry *e = calloc(1, sizeof *e);
    cl_program prog = NULL;
    if (!opts || !e) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    uint64_t key[2];
    cache_key(rt, src, opts, key);
    if (rt->cache_dir) prog = cache_load(rt, key, opts);
    if (prog) {
        rt->stats.programs_cached++;
    } else {
        CLLM_TRY(build_from_source(rt, file, src, opts, &prog));
        if (rt->cache_dir) cache_store(rt, key, prog);
    }
    e->file = strdup(file);
    e->options = strdup(extra);
    e->program = prog;
    e->next = rt->programs;
    rt->programs = e;
    *out = prog;
    free(opts);
    free(owned);
    return CLLM_OK;
fail:
    free(opts);
    free(owned);
    free(e);
    return st;
}

cllm_status cllm_runtime_prepare(cllm_runtime *rt, const char *file, const char *options) {
    cl_program p;
    return get_program(rt, file, options, &p);
}

cllm_status cllm_rt_kernel(cllm_runtime *rt, const char *file, const char *options,
                           const char *name, cl_kernel *kernel) {
    cl_program prog = NULL;
    cllm_status st = get_program(rt, file, options, &prog);
    if (st != CLLM_OK) return st;
    for (cllm_kernel_entry *k = rt->kernels; k; k = k->next)
        if (k->program == prog && !strcmp(k->name, name)) {
            *kernel = k->kernel;
            return CLLM_OK;
        }
    cl_int err = CL_SUCCESS;
    cl_kernel kern = clCreateKernel(prog, name, &err);
    if (err != CL_SUCCESS)
        return cllm_fail(err, "kernel '%s' in cl/%s: %s", name, file, cllm_status_name(err));
    cllm_kernel_entry *e = calloc(1, sizeof *e);
    if (!e || !(e->name = strdup(name))) {
        free(e);
        clReleaseKernel(kern);
        return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    }
    e->program = prog;
    e->kernel = kern;
    e->next = rt->kernels;
    rt->kernels = e;
    *kernel = kern;
    return CLLM_OK;
}

/* ---------------------------------------------------------------- launching and buffers */

cllm_status cllm_rt_args(cl_kernel k, int n, ...) {
    va_list ap;
    va_start(ap, n);
    cllm_status st = CLLM_OK;
    for (int i = 0; i < n; i++) {
        size_t size = va_arg(ap, size_t);
        const void *val = va_arg(ap, const void *);
        cl_int err = clSetKernelArg(k, (cl_uint)i, size, val);
        if (err != CL_SUCCESS) {
            char name[128] = "?";
            clGetKernelInfo(k, CL_KERNEL_FUNCTION_NAME, sizeof name, name, NULL);
            name[sizeof name - 1] = 0;
            st = cllm_fail(err, "clSetKernelArg(%s, arg %d, %zu bytes): %s", name, i, size,
                           cllm_status_name(err));
            break;
        }
    }
    va_end(ap);
    return st;
}

cllm_status cllm_rt_launch(cllm_runtime *rt, cl_kernel k, cl_uint dims, const size_t *global,
                           const size_t *local) {
    size_t g[3];
    for (cl_uint i = 0; i < dims; i++) {
        g[i] = global[i];
        if (local && local[i]) g[i] = (global[i] + local[i] - 1) / local[i] * local[i];
        if (g[i] == 0) return CLLM_OK; /* nothing to do */
    }
    cl_int err = clEnqueueNDRangeKernel(rt->queue, k, dims, NULL, g, local, 0, NULL, NULL);
    if (err != CL_SUCCESS) {
        char name[128] = "?";
        clGetKernelInfo(k, CL_KERNEL_FUNCTION_NAME, sizeof name, name, NULL);
        name[sizeof name - 1] = 0;
        return cllm_fail(err, "launching kernel %s (global %zu, local %zu): %s", name, g[0],
                         local ? local[0] : 0, cllm_status_name(err));
    }
    return CLLM_OK;
}

cllm_status cllm_rt_alloc(cllm_runtime *rt, size_t bytes, cl_mem *mem) {
    if (bytes > rt->info.max_alloc)
        return cllm_fail(CLLM_ERR_TOO_LARGE,
                         "a %.1f MiB buffer exceeds the device's largest allocation (%.1f MiB) "
                         "on %s",
                         bytes / 1048576.0, rt->info.max_alloc / 1048576.0, rt->info.name);
    cl_int err = CL_SUCCESS;
    *mem = clCreateBuffer(rt->ctx, CL_MEM_READ_WRITE, bytes ? bytes : 4, NULL, &err);
    if (err != CL_SUCCESS)
        return cllm_fail(err, "allocating %.1f MiB on %s: %s", bytes / 1048576.0, rt->info.name,
                         cllm_status_name(err));
    return CLLM_OK;
}

cllm_status cllm_rt_write(cllm_runtime *rt, cl_mem mem, size_t offset, const void *src,
                          size_t bytes) {
    cllm_status st = CLLM_OK;
    if (bytes == 0) return CLLM_OK;
    CLLM_CL_TRY(clEnqueueWriteBuffer(rt->queue, mem, CL_TRUE, offset, bytes, src, 0, NULL, NULL));
fail:
    return st;
}

cllm_status cllm_rt_read(cllm_runtime *rt, cl_mem mem, size_t offset, void *dst, size_t bytes) {
    cllm_status st = CLLM_OK;
    if (bytes == 0) return CLLM_OK;
    CLLM_CL_TRY(clEnqueueReadBuffer(rt->queue, mem, CL_TRUE, offset, bytes, dst, 0, NULL, NULL));
fail:
    return st;
}

cllm_status cllm_rt_fill_zero(cllm_runtime *rt, cl_mem mem, size_t offset, size_t bytes) {
    cllm_status st = CLLM_OK;
    const float zero = 0.0f;
    if (bytes == 0) return CLLM_OK;
    if (bytes % 4 == 0 && offset % 4 == 0) {
        CLLM_CL_TRY(clEnqueueFillBuffer(rt->queue, mem, &zero, sizeof zero, offset, bytes, 0, NULL,
                                        NULL));
    } else {
        const unsigned char z = 0;
        CLLM_CL_TRY(clEnqueueFillBuffer(rt->queue, mem, &z, 1, offset, bytes, 0, NULL, NULL));
    }
fail:
    return st;
}
