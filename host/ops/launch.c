/* Launch geometry shared by the ops. */
#include "ops.h"

#include <stdlib.h>

size_t cllm_ops_row_local(const cllm_runtime *rt, size_t width) {
    /* CLLM_ROW_LOCAL=n forces the size (a power of two): the tests run both paths. */
    const char *force = getenv("CLLM_ROW_LOCAL");
    if (force && *force) {
        size_t n = 1, want = strtoul(force, NULL, 10);
        while (n * 2 <= want && n * 2 <= rt->info.max_work_group)
            n *= 2;
        return n;
    }
    /* Row kernels vectorise within a work-item (16 floats per vector); on a CPU one work-item
     * per row is fastest (measured on PoCL: 18x faster than 64 work-items without vectors),
     * on a GPU a group of up to 256 shares the row's vectors. */
    if (rt->info.type == CLLM_DEVICE_CPU) return 1;
    size_t cap = rt->info.max_work_group < 256 ? rt->info.max_work_group : 256;
    size_t n = 1;
    while (n * 2 <= cap && n * 16 < width)
        n *= 2;
    return n;
}

cllm_status cllm_ops_launch_rows(cllm_runtime *rt, cl_kernel k, size_t rows, size_t local) {
    size_t global = rows * local;
    return cllm_rt_launch(rt, k, 1, &global, &local);
}

cllm_status cllm_ops_launch_vec(cllm_runtime *rt, cl_kernel k, size_t n) {
    size_t global = (n + 15) / 16, local = 64;
    return cllm_rt_launch(rt, k, 1, &global, global < local ? NULL : &local);
}

cllm_status cllm_ops_launch_vec2(cllm_runtime *rt, cl_kernel k, size_t width, size_t rows) {
    size_t global[2] = {(width + 15) / 16, rows}, local[2] = {1, 16};
    return cllm_rt_launch(rt, k, 2, global, rows < 16 ? NULL : local);
}
