/* GELU, tanh approximation (cl/gelu.cl): the reference derivative against finite differences,
 * then the device's forward and backward (also in place) against the reference, over a range
 * that covers both tails. */
#include "ops/ops.h"
#include "ref_ops.h"

typedef struct {
    double *x, *w;
    size_t n;
} gelu_case;

static double gelu_loss(void *p) {
    gelu_case *c = p;
    double s = 0;
    for (size_t i = 0; i < c->n; i++)
        s += ref_gelu(c->x[i]) * c->w[i];
    return s;
}

int main(void) {
    cllm_runtime *rt = test_runtime();
    test_rng rng = {13};
    static const size_t sizes[] = {1, 1000, 4099};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        size_t n = sizes[s];
        gelu_case c = {ref_random(&rng, n, 3.0), ref_random(&rng, n, 1.0), n};
        if (n > 2) c.x[0] = -12.0, c.x[1] = 9.5, c.x[2] = 0.0;
        double *g = ref_alloc(n), *out = ref_alloc(n), *dx = ref_alloc(n);
        for (size_t i = 0; i < n; i++) {
            g[i] = ref_gelu_grad(c.x[i]) * c.w[i];
            out[i] = ref_gelu(c.x[i]);
            dx[i] = g[i];
        }
        ref_fd_check("gelu", gelu_loss, &c, c.x, g, n, 500, 1e-5, 1e-6);
        float *fx = ref_floats(c.x, n), *fw = ref_floats(c.w, n), *got = malloc(n * 4),
              *ref = ref_floats(out, n);
        cl_mem x = dev_upload(rt, fx, n, 3), o = dev_upload(rt, NULL, n, 1),
               dout = dev_upload(rt, fw, n, 2), din = dev_upload(rt, NULL, n, 4);
        CHECK_OK(cllm_op_gelu_forward(rt, (cllm_view){o, 1}, (cllm_view){x, 3}, n));
        CHECK_OK(cllm_op_gelu_backward(rt, (cllm_view){din, 4}, (cllm_view){x, 3},
                                       (cllm_view){dout, 2}, n));
        dev_download(rt, got, o, n, 1);
        CHECK_ALLCLOSE("gelu forward", got, ref, n, 1e-6, 1e-5);
        dev_download(rt, got, din, n, 4);
        ref_to_float(ref, dx, n);
        CHECK_ALLCLOSE("gelu backward", got, ref, n, 1e-6, 1e-5);
        /* in place: dinp is dout */
        CHECK_OK(cllm_op_gelu_backward(rt, (cllm_view){dout, 2}, (cllm_view){x, 3},
                                       (cllm_view){dout, 2}, n));
        dev_download(rt, got, dout, n, 2);
        CHECK_ALLCLOSE("gelu backward in place", got, ref, n, 1e-6, 1e-5);
        clReleaseMemObject(x);
        clReleaseMemObject(o);
        clReleaseMemObject(dout);
        clReleaseMemObject(din);
        free(c.x), free(c.w), free(g), free(out), free(dx), free(fx), free(fw), free(got),
            free(ref);
    }
    cllm_runtime_free(rt);
    return test_exit();
}
