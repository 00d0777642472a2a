/* Global gradient norm and clipping on the device (cl/norm.cl) against a double-precision sum,
 * with the clip factor of torch.nn.utils.clip_grad_norm_: min(1, max_norm / (norm + 1e-6)). */
#include "ops/ops.h"
#include "ref_ops.h"

static void run_case(cllm_runtime *rt, test_rng *rng, size_t n, double scale, float max_norm) {
    double *x = ref_random(rng, n, scale);
    double ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += x[i] * x[i];
    double norm = sqrt(ss);
    double coef = max_norm > 0 ? fmin(1.0, max_norm / (norm + 1e-6)) : 1.0;
    float *fx = ref_floats(x, n), *got = malloc(n * 4), *ref = malloc(n * 4), out[2];
    cl_mem dx = dev_upload(rt, fx, n, 3), scr = dev_upload(rt, NULL, CLLM_OPS_NORM_SCRATCH, 2);
    CHECK_OK(cllm_op_clip_norm(rt, (cllm_view){dx, 3}, n, (cllm_view){scr, 2}, max_norm));
    dev_download(rt, out, scr, 2, 2 + CLLM_OPS_NORM_GROUPS);
    CHECK_MSG(test_close(out[0], norm, 1e-7, 1e-5), "n=%zu: norm %.8g, reference %.8g", n, out[0],
              norm);
    CHECK_MSG(test_close(out[1], coef, 1e-7, 1e-5), "n=%zu: clip factor %.8g, reference %.8g", n,
              out[1], coef);
    dev_download(rt, got, dx, n, 3);
    for (size_t i = 0; i < n; i++)
        ref[i] = (float)(x[i] * coef);
    char what[64];
    snprintf(what, sizeof what, "clipped n=%zu max_norm=%g", n, max_norm);
    CHECK_ALLCLOSE(what, got, ref, n, 1e-7, 1e-5);
    clReleaseMemObject(dx);
    clReleaseMemObject(scr);
    free(x), free(fx), free(got), free(ref);
}

int main(void) {
    /* Twice: the device's own work-group size for row kernels (1 on a CPU), then 8 work-items
     * sharing each row as on a GPU (CLLM_ROW_LOCAL), so that both code paths are checked. */
    for (int pass = 0; pass < 2; pass++) {
        if (pass) setenv("CLLM_ROW_LOCAL", "8", 1);
        cllm_runtime *rt = test_runtime();
        test_rng rng = {29};
        run_case(rt, &rng, 1, 1.0, 0.5f);
        run_case(rt, &rng, 255, 1.0, 0.0f);      /* fewer elements than groups; no clipping asked */
        run_case(rt, &rng, 100003, 0.01, 1.0f);  /* norm ~3.2 > 1: scaled down */
        run_case(rt, &rng, 100003, 0.001, 1.0f); /* norm ~0.32 < 1: factor 1 */
        run_case(rt, &rng, 1000001, 1.0, 5.0f);
        cllm_runtime_free(rt);
    }
    return test_exit();
}
