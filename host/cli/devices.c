/* cllm devices: list every OpenCL platform and device. */
#include "args.h"
#include "cllm/runtime.h"
#include "commands.h"

#include <cjson/cJSON.h>
#include "cllm/util.h"

#include <stdio.h>
#include <stdlib.h>

static void print_json(const cllm_device_info *d, int n, int chosen) {
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "index", d[i].index);
        cJSON_AddNumberToObject(o, "platform_index", d[i].platform_index);
        cJSON_AddStringToObject(o, "platform", d[i].platform_name);
        cJSON_AddStringToObject(o, "platform_vendor", d[i].platform_vendor);
        cJSON_AddStringToObject(o, "platform_version", d[i].platform_version);
        cJSON_AddStringToObject(o, "name", d[i].name);
        cJSON_AddStringToObject(o, "vendor", d[i].vendor);
        cJSON_AddStringToObject(o, "type", cllm_device_type_name(d[i].type));
        cJSON_AddNumberToObject(o, "compute_units", d[i].compute_units);
        cJSON_AddNumberToObject(o, "global_mem_bytes", (double)d[i].global_mem);
        cJSON_AddNumberToObject(o, "max_alloc_bytes", (double)d[i].max_alloc);
        cJSON_AddNumberToObject(o, "local_mem_bytes", (double)d[i].local_mem);
        cJSON_AddNumberToObject(o, "max_work_group_size", (double)d[i].max_work_group);
        cJSON_AddStringToObject(o, "device_version", d[i].device_version);
        cJSON_AddStringToObject(o, "driver_version", d[i].driver_version);
        cJSON_AddStringToObject(o, "opencl_c_version", d[i].opencl_c_version);
        cJSON_AddBoolToObject(o, "fp16", d[i].fp16);
        cJSON_AddBoolToObject(o, "fp64", d[i].fp64);
        cJSON_AddBoolToObject(o, "selected", i == chosen);
        cJSON_AddItemToArray(arr, o);
    }
    char *s = cJSON_Print(arr);
    if (s) printf("%s\n", s);
    free(s);
    cJSON_Delete(arr);
}

static void print_table(const cllm_device_info *d, int n, int chosen) {
    int last_platform = -1;
    for (int i = 0; i < n; i++) {
        if (d[i].platform_index != last_platform) {
            last_platform = d[i].platform_index;
            printf("platform %d: %s (%s, %s)\n", d[i].platform_index, d[i].platform_name,
                   d[i].platform_vendor, d[i].platform_version);
        }
        printf("  %c device %d: %s\n", i == chosen ? '*' : ' ', d[i].index, d[i].name);
        printf("      type %s, vendor %s, %u compute units\n", cllm_device_type_name(d[i].type),
               d[i].vendor, d[i].compute_units);
        printf("      global memory %.2f GiB, max allocation %.2f GiB, local memory %.0f KiB, "
               "max work-group %zu\n",
               d[i].global_mem / 1073741824.0, d[i].max_alloc / 1073741824.0,
               d[i].local_mem / 1024.0, d[i].max_work_group);
        printf("      %s, %s, driver %s, fp16 %s, fp64 %s\n", d[i].device_version,
               d[i].opencl_c_version, d[i].driver_version, d[i].fp16 ? "yes" : "no",
               d[i].fp64 ? "yes" : "no");
    }
    if (chosen >= 0) printf("(* = the device computing commands use with these settings)\n");
}

/* Open the selected device and build every kernel file on it, reporting the times (cold:
 * compiled; warm: loaded from the program cache). */
static int check_kernels(const char *dev, const char *plat) {
    cllm_runtime_opts o = cllm_runtime_opts_default();
    o.device_spec = dev;
    o.platform_spec = plat;
    cllm_runtime *rt = NULL;
    double t0 = cllm_now();
    cllm_status st = cllm_runtime_init(&rt, &o);
    if (st != CLLM_OK) return cli_report(st);
    double t_init = cllm_now() - t0;
    printf("checking kernels on %s (runtime opened in %.3f s)\n", cllm_runtime_device(rt)->name,
           t_init);
    for (int i = 0; i < cllm_kernel_file_count(); i++) {
        const char *f = cllm_kernel_file_name(i);
        cllm_runtime_stats before = cllm_runtime_get_stats(rt);
        double t = cllm_now();
        st = cllm_runtime_prepare(rt, f, NULL);
        if (st != CLLM_OK) {
            cllm_runtime_free(rt);
            return cli_report(st);
        }
        cllm_runtime_stats after = cllm_runtime_get_stats(rt);
        printf("  cl/%-20s %-8s %.3f s\n", f,
               after.programs_cached > before.programs_cached ? "cached" : "built",
               cllm_now() - t);
    }
    const char *cd = cllm_runtime_cache_dir(rt);
    printf("all %d kernel files build; total %.3f s; program cache: %s\n",
           cllm_kernel_file_count(), cllm_now() - t0, *cd ? cd : "off (CLLM_CACHE=0)");
    cllm_runtime_free(rt);
    return 0;
}

int cmd_devices(int argc, char **argv) {
    bool json = false, check = false;
    const char *dev = NULL, *plat = NULL;
    const cli_opt opts[] = {
        {"json", 0, CLI_FLAG, &json, NULL, "print JSON instead of a table"},
        {"check", 0, CLI_FLAG, &check, NULL,
         "build every kernel on the selected device and report build/cache times"},
        CLI_DEVICE_OPTS(&dev, &plat),
    };
    const cli_spec spec = {
        "cllm devices", "[--json] [--check] [--device SPEC] [--platform SPEC]",
        "List every OpenCL platform and device with index, type, name, vendor, compute units,\n"
        "memory, largest allocation, OpenCL C version and fp16/fp64 support. The device that\n"
        "computing commands would use (default: the first GPU, else the first device; or the\n"
        "one --device/--platform or CLLM_DEVICE/CLLM_PLATFORM select) is marked with '*'.",
        opts, CLI_COUNT(opts),
        "environment: CLLM_DEVICE, CLLM_PLATFORM (device choice), CLLM_KERNEL_DIR (load cl/*.cl\n"
        "from a directory instead of the built-in copies), CLLM_CACHE=0 (no program cache),\n"
        "XDG_CACHE_HOME (cache location: $XDG_CACHE_HOME/cllm, default ~/.cache/cllm),\n"
        "CLLM_POCL_WORK_GROUP_METHOD=loops (PoCL's work-group method, for a PoCL kernel that\n"
        "hangs; PoCL's own POCL_WORK_GROUP_METHOD wins; the default is faster here).",
        0, 0};
    int rc = cli_parse(&spec, argc, argv, NULL);
    if (rc >= 0) return rc;
    if (check) return check_kernels(dev, plat);
    cllm_device_info *d = NULL;
    int n = 0, chosen = -1;
    cllm_status st = cllm_devices_list(&d, &n);
    if (st != CLLM_OK) return cli_report(st);
    if (!dev) dev = getenv("CLLM_DEVICE");
    if (!plat) plat = getenv("CLLM_PLATFORM");
    st = cllm_device_select(d, n, dev, plat, &chosen);
    if (st != CLLM_OK) {
        free(d);
        return cli_report(st);
    }
    if (json)
        print_json(d, n, chosen);
    else
        print_table(d, n, chosen);
    free(d);
    return 0;
}
