/* Launch geometry shared by the ops. */
#include "ops.h"

size_t cllm_ops_ew_local(const cllm_runtime *rt) {
    /* PoCL's CPU device vectorises across a work-group's items and reaches full bandwidth only
     * with large groups (DESIGN.md, known facts); GPUs prefer a few hundred. */
    size_t want = rt->info.type == CLLM_DEVICE_CPU ? 1024 : 256;
    return want < rt->info.max_work_group ? want : rt->info.max_work_group;
}

size_t cllm_ops_row_local(const cllm_runtime *rt, size_t width) {
    size_t cap = rt->info.type == CLLM_DEVICE_CPU ? 64 : 256;
    if (cap > rt->info.max_work_group) cap = rt->info.max_work_group;
    size_t n = 1;
    while (n * 2 <= cap && n < width)
        n *= 2;
    return n;
}

cllm_status cllm_ops_launch_ew(cllm_runtime *rt, cl_kernel k, size_t n) {
    size_t local = cllm_ops_ew_local(rt);
    return cllm_rt_launch(rt, k, 1, &n, &local);
}

cllm_status cllm_ops_launch_rows(cllm_runtime *rt, cl_kernel k, size_t rows, size_t local) {
    size_t global = rows * local;
    return cllm_rt_launch(rt, k, 1, &global, &local);
}
