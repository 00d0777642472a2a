/* Causal multi-head self-attention (cl/attention.cl + strided-batched GEMMs): the reference
 * backward against finite differences, then the device's output, kept softmax (zeros above the
 * diagonal) and dqkv against the reference; odd T, n_head = 3, head sizes not powers of two;
 * and the same positions computed in two calls through a key/value cache. */
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

/* With a key/value cache: positions 0 .. P-1 in one call, then P .. T-1 in a second one that
 * attends to the cached keys and values (cache rows Tmax = T + 3); the outputs and softmax
 * rows of each call must be the reference's rows for those positions. */
static void run_cached(cllm_runtime *rt, const att_case *c, const float *f_qkv, int P) {
    const int B = c->B, T = c->T, C = c->C, NH = c->NH, hs = C / NH, Tmax = T + 3;
    const size_t BH = (size_t)B * NH, cache = BH * Tmax * hs;
    cl_mem kv = dev_upload(rt, NULL, 2 * cache, 3), q = dev_upload(rt, NULL, BH * T * hs, 1),
           att = dev_upload(rt, NULL, BH * T * T, 2), y = dev_upload(rt, NULL, BH * T * hs, 4);
    int pos = 0;
    for (int call = 0; call < 2; call++) {
        const int n = call ? T - P : P;
        size_t n3 = (size_t)B * n * 3 * C, no = (size_t)B * n * C, na = BH * n * (pos + n);
        size_t big = na > no ? na : no;
        float *chunk = malloc(n3 * 4), *got = malloc(big * 4), *ref = malloc(big * 4);
        for (int b = 0; b < B; b++)
            memcpy(chunk + (size_t)b * n * 3 * C, f_qkv + ((size_t)b * T + pos) * 3 * C,
                   (size_t)n * 3 * C * 4);
        cl_mem dq = dev_upload(rt, chunk, n3, 2), out = dev_upload(rt, NULL, no, 1);
        cllm_attention_acts a = {{q, 1}, {kv, 3}, {kv, 3 + cache}, {att, 2}, {y, 4}, Tmax, pos};
        CHECK_OK(
            cllm_op_attention_forward(rt, (cllm_view){out, 1}, a, (cllm_view){dq, 2}, B, n, C, NH));
        dev_download(rt, got, out, no, 1);
        for (int b = 0; b < B; b++)
            ref_to_float(ref + (size_t)b * n * C, c->out + ((size_t)b * T + pos) * C,
                         (size_t)n * C);
        char what[128];
        snprintf(what, sizeof what, "cached attention T=%d C=%d: positions %d..%d", T, C, pos,
                 pos + n - 1);
        CHECK_ALLCLOSE(what, got, ref, no, 1e-5, 1e-4);
        dev_download(rt, got, att, na, 2);
        for (size_t bh = 0; bh < BH; bh++)
            for (int i = 0; i < n; i++)
                ref_to_float(ref + (bh * n + i) * (pos + n), c->att + (bh * T + pos + i) * T,
                             (size_t)(pos + n));
        CHECK_ALLCLOSE("cached attention softmax", got, ref, na, 1e-6, 1e-4);
        clReleaseMemObject(dq);
        clReleaseMemObject(out);
        free(chunk), free(got), free(ref);
        pos += n;
    }
    clReleaseMemObject(kv), clReleaseMemObject(q), clReleaseMemObject(att), clReleaseMemObject(y);
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
    cllm_attention_acts a = {
        {acts, 2}, {acts, 2 + NC}, {acts, 2 + 2 * NC}, {acts, 2 + N3}, {acts, 2 + N3 + NA}, T, 0};
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
    if (T > 1) run_cached(rt, &c, f_qkv, T / 2);
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
        /* heads of 32 over 64 positions: GEMM sizes where tuned BLAS kernels take over */
        run_case(rt, &rng, 2, 64, 96, 3);
        cllm_runtime_free(rt);
    }
    return test_exit();
}
