/* Linear layers (host/ops/linear.c: cl/bias.cl kernels + CLBlast): out = [res +] inp @ w^T + b
 * and its backward (dinp written or accumulated, dw and db accumulated), against the double
 * reference, whose backward is first checked by finite differences. */
#include "ops/ops.h"
#include "ref_ops.h"

typedef struct {
    double *out, *inp, *w, *b, *dout;
    int N, IC, OC;
} lin_case;

static double lin_loss(void *p) {
    lin_case *c = p;
    ref_linear_forward(c->out, c->inp, c->w, c->b, c->N, c->IC, c->OC);
    double s = 0;
    for (size_t i = 0; i < (size_t)c->N * c->OC; i++)
        s += c->out[i] * c->dout[i];
    return s;
}

static void run_case(cllm_runtime *rt, test_rng *rng, int N, int IC, int OC, bool residual,
                     bool bias, size_t fd_points) {
    size_t NI = (size_t)N * IC, NO = (size_t)N * OC, W = (size_t)OC * IC;
    lin_case c = {ref_alloc(NO),
                  ref_random(rng, NI, 1.0),
                  ref_random(rng, W, 0.3),
                  ref_random(rng, OC, 1.0),
                  ref_random(rng, NO, 1.0),
                  N,
                  IC,
                  OC};
    double *res = ref_random(rng, NO, 1.0);
    double *dinp = ref_alloc(NI), *dw = ref_alloc(W), *db = ref_alloc(OC);
    lin_loss(&c);
    ref_linear_backward(dinp, dw, db, c.dout, c.inp, c.w, N, IC, OC);
    ref_fd_check("linear dinp", lin_loss, &c, c.inp, dinp, NI, fd_points, 1e-4, 1e-6);
    ref_fd_check("linear dw", lin_loss, &c, c.w, dw, W, fd_points, 1e-4, 1e-6);
    ref_fd_check("linear db", lin_loss, &c, c.b, db, OC, fd_points, 1e-4, 1e-6);
    if (!bias) {
        free(c.b);
        c.b = NULL;
    }
    lin_loss(&c);
    if (residual)
        for (size_t i = 0; i < NO; i++)
            c.out[i] += res[i];

    double *g0 = ref_random(rng, NI, 1.0), *gw0 = ref_random(rng, W, 1.0),
           *gb0 = ref_random(rng, OC, 1.0);
    float *f_inp = ref_floats(c.inp, NI), *f_w = ref_floats(c.w, W), *f_res = ref_floats(res, NO),
          *f_dout = ref_floats(c.dout, NO), *f_g0 = ref_floats(g0, NI), *f_gw0 = ref_floats(gw0, W),
          *f_gb0 = ref_floats(gb0, OC), *f_b = bias ? ref_floats(c.b, OC) : NULL;
    cl_mem inp = dev_upload(rt, f_inp, NI, 3), w = dev_upload(rt, f_w, W, 1),
           b = bias ? dev_upload(rt, f_b, OC, 2) : NULL, rs = dev_upload(rt, f_res, NO, 5),
           out = dev_upload(rt, NULL, NO, 4), dout = dev_upload(rt, f_dout, NO, 6),
           din = dev_upload(rt, f_g0, NI, 1), dw_d = dev_upload(rt, f_gw0, W, 2),
           db_d = dev_upload(rt, f_gb0, OC, 3),
           scratch = dev_upload(rt, NULL, CLLM_OPS_COLSUM_CHUNKS * (size_t)OC, 1);
    cllm_view vres = {residual ? rs : NULL, 5};
    CHECK_OK(cllm_op_linear_forward(rt, (cllm_view){out, 4}, vres, (cllm_view){inp, 3},
                                    (cllm_view){w, 1}, (cllm_view){b, 2}, N, IC, OC));
    CHECK_OK(cllm_op_linear_backward(rt, (cllm_view){din, 1}, (cllm_view){dw_d, 2},
                                     (cllm_view){bias ? db_d : NULL, 3}, (cllm_view){scratch, 1},
                                     (cllm_view){dout, 6}, (cllm_view){inp, 3}, (cllm_view){w, 1},
                                     N, IC, OC, residual /* accumulate in one of the variants */));
    size_t mx = NO > W ? NO : W;
    mx = mx > NI ? mx : NI;
    float *got = malloc(mx * 4), *ref = malloc(mx * 4);
    char what[128];
    snprintf(what, sizeof what, "linear forward N=%d IC=%d OC=%d res=%d bias=%d", N, IC, OC,
             residual, bias);
    dev_download(rt, got, out, NO, 4);
    ref_to_float(ref, c.out, NO);
    CHECK_ALLCLOSE(what, got, ref, NO, 1e-5 * IC, 1e-4);
    dev_download(rt, got, din, NI, 1);
    for (size_t i = 0; i < NI; i++)
        ref[i] = (float)(dinp[i] + (residual ? g0[i] : 0.0));
    CHECK_ALLCLOSE("linear dinp", got, ref, NI, 1e-5 * OC, 1e-4);
    dev_download(rt, got, dw_d, W, 2);
    for (size_t i = 0; i < W; i++)
        ref[i] = (float)(dw[i] + gw0[i]);
    CHECK_ALLCLOSE("linear dw", got, ref, W, 1e-5 * N, 1e-4);
    dev_download(rt, got, db_d, OC, 3);
    for (int i = 0; i < OC; i++)
        ref[i] = (float)(gb0[i] + (bias ? db[i] : 0.0));
    CHECK_ALLCLOSE("linear db", got, ref, OC, 1e-5 * N, 1e-4);

    cl_mem all[] = {inp, w, b, rs, out, dout, din, dw_d, db_d, scratch};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        if (all[i]) clReleaseMemObject(all[i]);
    double *d[] = {c.out, c.inp, c.w, c.b, c.dout, res, dinp, dw, db, g0, gw0, gb0};
    for (size_t i = 0; i < sizeof d / sizeof *d; i++)
        free(d[i]);
    float *f[] = {f_inp, f_w, f_res, f_dout, f_g0, f_gw0, f_gb0, f_b, got, ref};
    for (size_t i = 0; i < sizeof f / sizeof *f; i++)
        free(f[i]);
}

int main(void) {
    cllm_runtime *rt = test_runtime();
    test_rng rng = {17};
    run_case(rt, &rng, 1, 1, 1, false, true, 100);
    run_case(rt, &rng, 37, 19, 57, false, true, 100);
    /* a few rows, as in a generation step: the forward goes through cl/gemv.cl */
    run_case(rt, &rng, 3, 40, 33, true, true, 100);
    run_case(rt, &rng, 8, 130, 17, false, false, 100);
    run_case(rt, &rng, 37, 19, 57, true, true, 100);
    run_case(rt, &rng, 70, 33, 99, true, false, 100);
    run_case(rt, &rng, 65, 48, 200, false, true, 100);
    /* a GPT-sized product (rows of B*T, 4x MLP) where tuned BLAS kernels take over */
    run_case(rt, &rng, 257, 128, 512, true, true, 8);
    cllm_runtime_free(rt);
    return test_exit();
}
