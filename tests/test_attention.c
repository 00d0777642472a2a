/* Causal multi-head self-attention (cl/attention.cl + strided-batched GEMMs): the reference
 * backward against finite differences, then the device's output, kept softmax (zeros above the
 * diagonal) and dqkv against the reference; odd T, n_head = 3, head sizes not powers of two. */
#include "ops/ops.h"
#include "ref_ops.h"

typedef struct {
    double *out, *att, *qkv, *dout;
    int B, T, C, NH;
} att_case;

static double att_loss(void *p) {
    att_case *c = p;
    ref_attention_forward(c->out, c->att, c->qkv, c->B, c->T, c->C, c->NH);
    double s = 0;
    for (size_t i = 0; i < (size_t)c->B * c->T * c->C; i++)
        s += c->out[i] * c->dout[i];
    return s;
}

static void run_case(cllm_runtime *rt, test_rng *rng, int B, int T, int C, int NH) {
    size_t NC = (size_t)B * T * C, N3 = 3 * NC, NA = (size_t)B * NH * T * T;
    att_case c = {ref_alloc(NC),
                  ref_alloc(NA),
                  ref_random(rng, N3, 1.0),
                  ref_random(rng, NC, 1.0),
                  B,
                  T,
                  C,
                  NH};
    double *dqkv = ref_alloc(N3);
    att_loss(&c);
    ref_attention_backward(dqkv, c.dout, c.qkv, c.att, B, T, C, NH);
    char what[128];
    snprintf(what, sizeof what, "attention B=%d T=%d C=%d NH=%d dqkv", B, T, C, NH);
    ref_fd_check(what, att_loss, &c, c.qkv, dqkv, N3, 300, 1e-4, 1e-6);
    att_loss(&c);

    float *f_qkv = ref_floats(c.qkv, N3), *f_dout = ref_floats(c.dout, NC);
    cl_mem qkv = dev_upload(rt, f_qkv, N3, 3), out = dev_upload(rt, NULL, NC, 1),
           acts = dev_upload(rt, NULL, N3 + NA + NC, 2), dout = dev_upload(rt, f_dout, NC, 4),
           grads = dev_upload(rt, NULL, N3 + NA + NC, 5), dq = dev_upload(rt, NULL, N3, 6);
    cllm_attention_acts a = {{acts, 2}, {acts, 2 + N3}, {acts, 2 + N3 + NA}};
    cllm_attention_grads g = {{grads, 5}, {grads, 5 + N3}, {grads, 5 + N3 + NA}};
    CHECK_OK(
        cllm_op_attention_forward(rt, (cllm_view){out, 1}, a, (cllm_view){qkv, 3}, B, T, C, NH));
    CHECK_OK(cllm_op_attention_backward(rt, (cllm_view){dq, 6}, g, (cllm_view){dout, 4}, a, B, T, C,
                                        NH));
    size_t mx = N3 > NA ? N3 : NA;
    float *got = malloc(mx * 4), *ref = malloc(mx * 4);
    dev_download(rt, got, out, NC, 1);
    ref_to_float(ref, c.out, NC);
    snprintf(what, sizeof what, "attention forward B=%d T=%d C=%d NH=%d", B, T, C, NH);
    CHECK_ALLCLOSE(what, got, ref, NC, 1e-5, 1e-4);
    dev_download(rt, got, acts, NA, 2 + N3);
    ref_to_float(ref, c.att, NA);
    CHECK_ALLCLOSE("attention softmax", got, ref, NA, 1e-6, 1e-4);
    dev_download(rt, got, dq, N3, 6);
    ref_to_float(ref, dqkv, N3);
    snprintf(what, sizeof what, "attention dqkv B=%d T=%d C=%d NH=%d", B, T, C, NH);
    CHECK_ALLCLOSE(what, got, ref, N3, 1e-5, 1e-4);

    cl_mem all[] = {qkv, out, acts, dout, grads, dq};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        clReleaseMemObject(all[i]);
    free(c.out), free(c.att), free(c.qkv), free(c.dout), free(dqkv);
    free(f_qkv), free(f_dout), free(got), free(ref);
}

int main(void) {
    /* Twice: the device's own work-group size for row kernels (1 on a CPU), then 8 work-items
     * sharing each row as on a GPU (CLLM_ROW_LOCAL), so that both code paths are checked. */
    for (int pass = 0; pass < 2; pass++) {
        if (pass) setenv("CLLM_ROW_LOCAL", "8", 1);
        cllm_runtime *rt = test_runtime();
        test_rng rng = {19};
        run_case(rt, &rng, 1, 1, 3, 3);
        run_case(rt, &rng, 2, 7, 12, 3);
        run_case(rt, &rng, 3, 37, 15, 3);
        run_case(rt, &rng, 2, 70, 64, 2);
        cllm_runtime_free(rt);
    }
    return test_exit();
}
