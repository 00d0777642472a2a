/* AdamW over a whole buffer (cl/adamw.cl) against the update rule torch.optim.AdamW documents,
 * in double: bias correction, eps outside the square root, decoupled weight decay only inside
 * the decayed ranges; several steps with changing gradients. */
#include "ops/ops.h"
#include "ref_ops.h"

static void ref_adamw(double *p, const double *g, double *m, double *v, size_t n,
                      const cllm_adamw_spec *s) {
    double bc1 = 1 - pow(s->beta1, s->step), bc2 = 1 - pow(s->beta2, s->step);
    for (size_t i = 0; i < n; i++) {
        bool decay = false;
        for (int r = 0; r < s->n_decay; r++)
            decay |= i >= s->decay_lo[r] && i < s->decay_hi[r];
        if (decay) p[i] *= 1 - (double)s->lr * s->weight_decay;
        m[i] = s->beta1 * m[i] + (1 - (double)s->beta1) * g[i];
        v[i] = s->beta2 * v[i] + (1 - (double)s->beta2) * g[i] * g[i];
        p[i] -= s->lr / bc1 * m[i] / (sqrt(v[i]) / sqrt(bc2) + s->eps);
    }
}

int main(void) {
    cllm_runtime *rt = test_runtime();
    test_rng rng = {31};
    size_t n = 10007;
    cllm_adamw_spec s = {.lr = 1e-2f,
                         .beta1 = 0.9f,
                         .beta2 = 0.95f,
                         .eps = 1e-8f,
                         .weight_decay = 0.1f,
                         .n_decay = 3,
                         .decay_lo = {0, 3001, 9000},
                         .decay_hi = {1000, 5003, 9001}};
    double *p = ref_random(&rng, n, 1.0), *m = ref_alloc(n), *v = ref_alloc(n);
    float *fp = ref_floats(p, n), *got = malloc(n * 4), *ref = malloc(n * 4);
    cl_mem dp = dev_upload(rt, fp, n, 1), dg = dev_upload(rt, NULL, n, 2),
           dm = dev_upload(rt, NULL, n, 3), dv = dev_upload(rt, NULL, n, 4);
    for (int step = 1; step <= 4; step++) {
        double *g = ref_random(&rng, n, step == 3 ? 1e-3 : 1.0);
        for (size_t i = 0; i < n; i += 97)
            g[i] = 0; /* zero gradients: decay alone moves p */
        float *fg = ref_floats(g, n);
        CHECK_OK(cllm_rt_write(rt, dg, 2 * sizeof(float), fg, n * sizeof(float)));
        s.step = step;
        ref_adamw(p, g, m, v, n, &s);
        CHECK_OK(cllm_op_adamw(rt, (cllm_view){dp, 1}, (cllm_view){dg, 2}, (cllm_view){dm, 3},
                               (cllm_view){dv, 4}, n, &s));
        char what[64];
        dev_download(rt, got, dp, n, 1);
        ref_to_float(ref, p, n);
        snprintf(what, sizeof what, "adamw params, step %d", step);
        CHECK_ALLCLOSE(what, got, ref, n, 1e-6, 1e-5);
        dev_download(rt, got, dm, n, 3);
        ref_to_float(ref, m, n);
        snprintf(what, sizeof what, "adamw m, step %d", step);
        CHECK_ALLCLOSE(what, got, ref, n, 1e-7, 1e-5);
        dev_download(rt, got, dv, n, 4);
        ref_to_float(ref, v, n);
        snprintf(what, sizeof what, "adamw v, step %d", step);
        CHECK_ALLCLOSE(what, got, ref, n, 1e-9, 1e-5);
        free(g), free(fg);
    }
    clReleaseMemObject(dp), clReleaseMemObject(dg), clReleaseMemObject(dm), clReleaseMemObject(dv);
    free(p), free(m), free(v), free(fp), free(got), free(ref);
    cllm_runtime_free(rt);
    return test_exit();
}
