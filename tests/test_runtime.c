/* Runtime: enumeration, SPEC parsing (on synthetic lists and on the real device), a trivial
 * kernel, the program cache (cold, warm, corrupt entry, disabled). */
#include "runtime_cl.h"
#include "testutil.h"

#include "cllm/util.h"

#include <stdlib.h>
#include <string.h>

static cllm_device_info fake(int index, int platform, const char *pname, const char *name,
                             cllm_device_type type) {
    cllm_device_info d;
    memset(&d, 0, sizeof d);
    d.index = index;
    d.platform_index = platform;
    snprintf(d.platform_name, sizeof d.platform_name, "%s", pname);
    snprintf(d.name, sizeof d.name, "%s", name);
    d.type = type;
    return d;
}

static void test_select_synthetic(void) {
    cllm_device_info devs[] = {
        fake(0, 0, "Portable Computing Language", "pthread-skylake-avx512", CLLM_DEVICE_CPU),
        fake(1, 1, "NVIDIA CUDA", "NVIDIA H100 80GB HBM3", CLLM_DEVICE_GPU),
        fake(2, 1, "NVIDIA CUDA", "NVIDIA RTX 4090", CLLM_DEVICE_GPU),
        fake(3, 2, "Intel(R) FPGA Emulation Platform", "Intel FPGA Emulation", CLLM_DEVICE_ACCELERATOR),
    };
    const int n = 4;
    static const struct {
        const char *dev, *plat;
        int want; /* -1: must fail */
    } cases[] = {
        {NULL, NULL, 1},        /* default: first GPU */
        {"", "", 1},            /* empty = default */
        {"0", NULL, 0},         /* index */
        {"3", NULL, 3},
        {"4", NULL, -1},        /* out of range */
        {"cpu", NULL, 0},       /* type */
        {"GPU", NULL, 1},       /* type, case-insensitive */
        {"accelerator", NULL, 3},
        {"rtx 4090", NULL, 2},  /* device name substring (all digits would be an index) */
        {"h100", NULL, 1},
        {"portable", NULL, 0},  /* platform name substring via --device */
        {"fpga", NULL, 3},
        {NULL, "pocl", -1},     /* "pocl" is not in the platform name */
        {NULL, "portable", 0},  /* platform filter, default device on it */
        {NULL, "2", 3},         /* platform index */
        {"gpu", "portable", -1},/* no GPU on that platform */
        {"rtx", "nvidia", 2},
        {"radeon", NULL, -1},
        {NULL, "7", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int chosen = -7;
        cllm_status st = cllm_device_select(devs, n, cases[i].dev, cases[i].plat, &chosen);
        if (cases[i].want < 0) {
            CHECK_MSG(st == CLLM_ERR_NO_DEVICE, "case %zu (%s/%s) should fail", i,
                      cases[i].dev ? cases[i].dev : "-", cases[i].plat ? cases[i].plat : "-");
            /* The message names what exists. */
            CHECK(strstr(cllm_last_error(), "NVIDIA RTX 4090") != NULL);
            CHECK(strstr(cllm_last_error(), "pthread-skylake-avx512") != NULL);
        } else {
            CHECK_MSG(st == CLLM_OK && chosen == cases[i].want, "case %zu (%s/%s): got %d want %d",
                      i, cases[i].dev ? cases[i].dev : "-", cases[i].plat ? cases[i].plat : "-",
                      chosen, cases[i].want);
        }
    }
    /* No GPU at all: default is the first device. */
    int chosen = -1;
    CHECK_OK(cllm_device_select(devs, 1, NULL, NULL, &chosen));
    CHECK(chosen == 0);
}

static void test_enumerate(void) {
    cllm_device_info *d = NULL;
    int n = 0;
    cllm_status st = cllm_devices_list(&d, &n);
    if (st == CLLM_ERR_NO_DEVICE) {
        fprintf(stderr, "skipped: %s\n", cllm_last_error());
        exit(77);
    }
    CHECK_OK(st);
    CHECK(n >= 1);
    for (int i = 0; i < n; i++) {
        CHECK(d[i].index == i);
        CHECK(d[i].name[0] != 0);
        CHECK(d[i].compute_units > 0);
        CHECK(d[i].global_mem > 0 && d[i].max_alloc > 0 && d[i].max_alloc <= d[i].global_mem);
        CHECK(strncmp(d[i].opencl_c_version, "OpenCL C", 8) == 0);
    }
    /* Real SPECs: index, name substring, and a SPEC that matches nothing. */
    int chosen = -1;
    CHECK_OK(cllm_device_select(d, n, "0", NULL, &chosen));
    CHECK(chosen == 0);
    char sub[8];
    snprintf(sub, sizeof sub, "%s", d[0].name + 1);
    for (char *p = sub; *p; p++) *p = (char)((*p >= 'a' && *p <= 'z') ? *p - 32 : *p);
    CHECK_OK(cllm_device_select(d, n, sub, NULL, &chosen));
    CHECK(strstr(cllm_last_error(), "") != NULL);
    CHECK(cllm_device_select(d, n, "no-such-device-xyz", NULL, &chosen) == CLLM_ERR_NO_DEVICE);
    CHECK(strstr(cllm_last_error(), "no-such-device-xyz") != NULL);
    CHECK(strstr(cllm_last_error(), d[0].name) != NULL);
    free(d);
}

/* out = a + b on the device, for n not a multiple of the work-group size. */
static void check_trivial_kernel(cllm_runtime *rt) {
    const unsigned n = 1000 + 3;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *out = malloc(n * sizeof *out);
    for (unsigned i = 0; i < n; i++) {
        a[i] = (float)i * 0.5f;
        b[i] = 3.0f - (float)i;
        out[i] = -1;
    }
    cl_mem da = NULL, db = NULL, dout = NULL;
    cl_kernel k = NULL;
    CHECK_OK(cllm_rt_alloc(rt, n * 4, &da));
    CHECK_OK(cllm_rt_alloc(rt, n * 4, &db));
    CHECK_OK(cllm_rt_alloc(rt, n * 4, &dout));
    CHECK_OK(cllm_rt_write(rt, da, 0, a, n * 4));
    CHECK_OK(cllm_rt_write(rt, db, 0, b, n * 4));
    CHECK_OK(cllm_rt_kernel(rt, "util.cl", NULL, "add_f32", &k));
    if (k) {
        CHECK_OK(cllm_rt_args(k, 4, sizeof(cl_mem), &dout, sizeof(cl_mem), &da, sizeof(cl_mem),
                              &db, sizeof(cl_uint), &n));
        size_t g = n, l = 64;
        CHECK_OK(cllm_rt_launch(rt, k, 1, &g, &l));
        CHECK_OK(cllm_rt_read(rt, dout, 0, out, n * 4));
        int bad = 0;
        for (unsigned i = 0; i < n; i++) bad += out[i] != a[i] + b[i];
        CHECK(bad == 0);
    }
    clReleaseMemObject(da);
    clReleaseMemObject(db);
    clReleaseMemObject(dout);
    free(a);
    free(b);
    free(out);
}

static cllm_runtime *open_with_cache(const char *dir, int cache) {
    cllm_runtime_opts o = cllm_runtime_opts_default();
    o.cache_dir = dir;
    o.cache = cache;
    o.quiet = true;
    cllm_runtime *rt = NULL;
    CHECK_OK(cllm_runtime_init(&rt, &o));
    if (!rt) exit(test_exit());
    return rt;
}

/* The single cache entry in `dir` (malloc'd path), or NULL. */
static char *only_entry(const char *dir) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "ls %s/*.bin 2>/dev/null", dir);
    FILE *p = popen(cmd, "r");
    char line[1024] = {0};
    int count = 0;
    while (p && fgets(line + 0, sizeof line, p)) count++;
    if (p) pclose(p);
    if (count != 1) return NULL;
    line[strcspn(line, "\n")] = 0;
    return strdup(line);
}

static void test_cache(void) {
    char *dir = test_tmpdir("runtime-cache");
    /* Cold: built from source and stored. */
    cllm_runtime *rt = open_with_cache(dir, 1);
    CHECK(strcmp(cllm_runtime_cache_dir(rt), dir) == 0);
    CHECK_OK(cllm_runtime_prepare(rt, "util.cl", NULL));
    cllm_runtime_stats s = cllm_runtime_get_stats(rt);
    CHECK(s.programs_built == 1 && s.programs_cached == 0);
    check_trivial_kernel(rt);
    cllm_runtime_free(rt);
    char *entry = only_entry(dir);
    CHECK_MSG(entry != NULL, "expected exactly one cache entry in %s", dir);
    if (!entry) return;

    /* Warm: loaded from the cache, and it computes the same. */
    rt = open_with_cache(dir, 1);
    check_trivial_kernel(rt);
    s = cllm_runtime_get_stats(rt);
    CHECK(s.programs_built == 0 && s.programs_cached == 1 && s.cache_rejected == 0);
    /* Other build options are another program (and another entry). */
    CHECK_OK(cllm_runtime_prepare(rt, "util.cl", "-DVARIANT=1"));
    s = cllm_runtime_get_stats(rt);
    CHECK(s.programs_built == 1);
    cllm_runtime_free(rt);

    /* Corrupt the first entry in three ways: each is rejected, rebuilt, and then fine. */
    for (int how = 0; how < 3; how++) {
        char *data = NULL;
        size_t len = 0;
        CHECK_OK(cllm_read_file(entry, &data, &len));
        if (how == 0) data[len / 2] ^= 0x5a;                   /* flipped byte */
        if (how == 1) len = len / 3;                           /* truncated */
        if (how == 2) memcpy(data, "GARBAGE!", 8);             /* wrong magic */
        CHECK_OK(cllm_write_file_atomic(entry, data, len));
        free(data);
        rt = open_with_cache(dir, 1);
        check_trivial_kernel(rt);
        s = cllm_runtime_get_stats(rt);
        CHECK_MSG(s.cache_rejected == 1 && s.programs_built == 1 && s.programs_cached == 0,
                  "corruption %d: rejected %d built %d cached %d", how, s.cache_rejected,
                  s.programs_built, s.programs_cached);
        cllm_runtime_free(rt);
        rt = open_with_cache(dir, 1);
        CHECK_OK(cllm_runtime_prepare(rt, "util.cl", NULL));
        s = cllm_runtime_get_stats(rt);
        CHECK(s.programs_cached == 1 && s.programs_built == 0);
        cllm_runtime_free(rt);
    }

    /* Disabled: always built, nothing written. */
    char *dir2 = test_tmpdir("runtime-nocache");
    rt = open_with_cache(dir2, 0);
    CHECK(strcmp(cllm_runtime_cache_dir(rt), "") == 0);
    CHECK_OK(cllm_runtime_prepare(rt, "util.cl", NULL));
    s = cllm_runtime_get_stats(rt);
    CHECK(s.programs_built == 1);
    cllm_runtime_free(rt);
    char *none = only_entry(dir2);
    CHECK(none == NULL);
    free(entry);
    free(dir);
    free(dir2);
}

static void test_errors(cllm_runtime *rt) {
    cl_kernel k = NULL;
    CHECK(cllm_rt_kernel(rt, "no_such_file.cl", NULL, "x", &k) == CLLM_ERR_USAGE);
    CHECK(strstr(cllm_last_error(), "no_such_file.cl") != NULL);
    CHECK(cllm_rt_kernel(rt, "util.cl", NULL, "no_such_kernel", &k) == CL_INVALID_KERNEL_NAME);
    CHECK(strstr(cllm_last_error(), "no_such_kernel") != NULL);
    CHECK(strcmp(cllm_status_name(CL_OUT_OF_RESOURCES), "CL_OUT_OF_RESOURCES") == 0);
    CHECK(strcmp(cllm_status_name(CLLM_ERR_FORMAT), "CLLM_ERR_FORMAT") == 0);
    cl_mem m = NULL;
    const cllm_device_info *d = cllm_runtime_device(rt);
    CHECK(cllm_rt_alloc(rt, (size_t)d->max_alloc + 4096, &m) == CLLM_ERR_TOO_LARGE);
    CHECK(strstr(cllm_last_error(), "largest allocation") != NULL);
}

int main(void) {
    test_select_synthetic();
    test_enumerate();
    cllm_runtime *rt = test_runtime();
    check_trivial_kernel(rt);
    test_errors(rt);
    cllm_runtime_free(rt);
    test_cache();
    return test_exit();
}
