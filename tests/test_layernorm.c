/* LayerNorm (cl/layernorm.cl): the double reference's backward against finite differences, then
 * the device's forward (out, mean, rstd) and backward (dinp written and accumulated, dw, db
 * accumulated) against the reference, at sizes that are not multiples of the work-group size. */
#include "ops/ops.h"
#include "ref_ops.h"

typedef struct {
    double *out, *mean, *rstd, *inp, *w, *b, *dout;
    int N, C;
} ln_case;

/* The scalar whose gradient the backward computes: sum(out * dout). */
static double ln_loss(void *p) {
    ln_case *c = p;
    ref_layernorm_forward(c->out, c->mean, c->rstd, c->inp, c->w, c->b, c->N, c->C, 1e-5);
    double s = 0;
    for (size_t i = 0; i < (size_t)c->N * c->C; i++)
        s += c->out[i] * c->dout[i];
    return s;
}

static void run_case(cllm_runtime *rt, test_rng *rng, int N, int C) {
    size_t NC = (size_t)N * C;
    ln_case c = {ref_alloc(NC),
                 ref_alloc(N),
                 ref_alloc(N),
                 ref_random(rng, NC, 2.0),
                 ref_random(rng, C, 1.0),
                 ref_random(rng, C, 1.0),
                 ref_random(rng, NC, 1.0),
                 N,
                 C};
    for (size_t i = 0; i < NC; i++)
        c.inp[i] += 0.5; /* a non-zero mean */
    double *dinp = ref_alloc(NC), *dw = ref_alloc(C), *db = ref_alloc(C);
    ln_loss(&c);
    ref_layernorm_backward(dinp, dw, db, c.dout, c.inp, c.mean, c.rstd, c.w, N, C);
    char what[96];
    snprintf(what, sizeof what, "layernorm N=%d C=%d dinp", N, C);
    ref_fd_check(what, ln_loss, &c, c.inp, dinp, NC, 200, 1e-4, 1e-6);
    snprintf(what, sizeof what, "layernorm N=%d C=%d dw", N, C);
    ref_fd_check(what, ln_loss, &c, c.w, dw, C, 200, 1e-4, 1e-6);
    snprintf(what, sizeof what, "layernorm N=%d C=%d db", N, C);
    ref_fd_check(what, ln_loss, &c, c.b, db, C, 200, 1e-4, 1e-6);
    ln_loss(&c); /* restore out/mean/rstd at the unperturbed point */

    /* Device: accumulate onto non-zero initial gradients to check the += semantics. */
    double *g0 = ref_random(rng, NC, 1.0), *gw0 = ref_random(rng, C, 1.0),
           *gb0 = ref_random(rng, C, 1.0);
    float *f_inp = ref_floats(c.inp, NC), *f_w = ref_floats(c.w, C), *f_b = ref_floats(c.b, C),
          *f_dout = ref_floats(c.dout, NC), *f_g0 = ref_floats(g0, NC), *f_gw0 = ref_floats(gw0, C),
          *f_gb0 = ref_floats(gb0, C);
    cl_mem inp = dev_upload(rt, f_inp, NC, 3), w = dev_upload(rt, f_w, C, 1),
           b = dev_upload(rt, f_b, C, 2), out = dev_upload(rt, NULL, NC, 5),
           mean = dev_upload(rt, NULL, N, 1), rstd = dev_upload(rt, NULL, N, 2),
           dout = dev_upload(rt, f_dout, NC, 4), dinp_w = dev_upload(rt, f_g0, NC, 1),
           dinp_a = dev_upload(rt, f_g0, NC, 2), dw_d = dev_upload(rt, f_gw0, C, 3),
           db_d = dev_upload(rt, f_gb0, C, 1),
           scratch = dev_upload(rt, NULL, 2 * CLLM_OPS_COLSUM_CHUNKS * (size_t)C, 7);
    cllm_view vinp = {inp, 3}, vmean = {mean, 1}, vrstd = {rstd, 2}, vw = {w, 1};
    CHECK_OK(cllm_op_layernorm_forward(rt, (cllm_view){out, 5}, vmean, vrstd, vinp, vw,
                                       (cllm_view){b, 2}, N, C, 1e-5f));
    CHECK_OK(cllm_op_layernorm_backward(rt, (cllm_view){dinp_w, 1}, (cllm_view){dw_d, 3},
                                        (cllm_view){db_d, 1}, (cllm_view){scratch, 7},
                                        (cllm_view){dout, 4}, vinp, vmean, vrstd, vw, N, C, false));
    CHECK_OK(cllm_op_layernorm_backward(rt, (cllm_view){dinp_a, 2}, (cllm_view){dw_d, 3},
                                        (cllm_view){db_d, 1}, (cllm_view){scratch, 7},
                                        (cllm_view){dout, 4}, vinp, vmean, vrstd, vw, N, C, true));
    float *got = malloc(NC * sizeof(float)), *ref = malloc(NC * sizeof(float));
    dev_download(rt, got, out, NC, 5);
    ref_to_float(ref, c.out, NC);
    snprintf(what, sizeof what, "layernorm forward N=%d C=%d", N, C);
    CHECK_ALLCLOSE(what, got, ref, NC, 1e-5, 1e-4);
    dev_download(rt, got, mean, N, 1);
    ref_to_float(ref, c.mean, N);
    CHECK_ALLCLOSE("layernorm mean", got, ref, N, 1e-5, 1e-4);
    dev_download(rt, got, rstd, N, 2);
    ref_to_float(ref, c.rstd, N);
    CHECK_ALLCLOSE("layernorm rstd", got, ref, N, 1e-5, 1e-4);
    dev_download(rt, got, dinp_w, NC, 1);
    ref_to_float(ref, dinp, NC);
    snprintf(what, sizeof what, "layernorm dinp N=%d C=%d", N, C);
    CHECK_ALLCLOSE(what, got, ref, NC, 1e-5, 1e-4);
    dev_download(rt, got, dinp_a, NC, 2);
    for (size_t i = 0; i < NC; i++)
        ref[i] = (float)(dinp[i] + g0[i]);
    CHECK_ALLCLOSE("layernorm dinp accumulated", got, ref, NC, 1e-5, 1e-4);
    /* dw, db were accumulated twice onto their initial values. Sums over N rows. */
    dev_download(rt, got, dw_d, C, 3);
    for (int i = 0; i < C; i++)
        ref[i] = (float)(gw0[i] + 2 * dw[i]);
    CHECK_ALLCLOSE("layernorm dw", got, ref, C, 1e-5 * N, 1e-4);
    dev_download(rt, got, db_d, C, 1);
    for (int i = 0; i < C; i++)
        ref[i] = (float)(gb0[i] + 2 * db[i]);
    CHECK_ALLCLOSE("layernorm db", got, ref, C, 1e-5 * N, 1e-4);

    cl_mem all[] = {inp, w, b, out, mean, rstd, dout, dinp_w, dinp_a, dw_d, db_d, scratch};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        clReleaseMemObject(all[i]);
    double *d[] = {c.out, c.mean, c.rstd, c.inp, c.w, c.b, c.dout, dinp, dw, db, g0, gw0, gb0};
    for (size_t i = 0; i < sizeof d / sizeof *d; i++)
        free(d[i]);
    float *f[] = {f_inp, f_w, f_b, f_dout, f_g0, f_gw0, f_gb0, got, ref};
    for (size_t i = 0; i < sizeof f / sizeof *f; i++)
        free(f[i]);
}

int main(void) {
    /* Twice: the device's own work-group size for row kernels (1 on a CPU), then 8 work-items
     * sharing each row as on a GPU (CLLM_ROW_LOCAL), so that both code paths are checked. */
    for (int pass = 0; pass < 2; pass++) {
        if (pass) setenv("CLLM_ROW_LOCAL", "8", 1);
        cllm_runtime *rt = test_runtime();
        test_rng rng = {7};
        static const int cases[][2] = {{1, 1}, {5, 3}, {37, 75}, {70, 200}, {33, 129}};
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
            run_case(rt, &rng, cases[i][0], cases[i][1]);
        cllm_runtime_free(rt);
    }
    return test_exit();
}
