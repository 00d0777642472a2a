/* Token + position embedding (cl/encoder.cl): the reference backward against finite differences,
 * then the device's forward and backward (dwte scattered with repeated tokens, dwpe summed over
 * the batch, both accumulated) against the reference. */
#include "ops/ops.h"
#include "ref_ops.h"

typedef struct {
    double *out, *wte, *wpe, *dout;
    uint32_t *tok;
    int B, T, C;
} enc_case;

static double enc_loss(void *p) {
    enc_case *c = p;
    ref_encoder_forward(c->out, c->tok, c->wte, c->wpe, c->B, c->T, c->C);
    double s = 0;
    for (size_t i = 0; i < (size_t)c->B * c->T * c->C; i++)
        s += c->out[i] * c->dout[i];
    return s;
}

static void run_case(cllm_runtime *rt, test_rng *rng, int B, int T, int C, int V, int maxT) {
    size_t N = (size_t)B * T, NC = N * C, VC = (size_t)V * C, PC = (size_t)maxT * C;
    enc_case c = {ref_alloc(NC),
                  ref_random(rng, VC, 1.0),
                  ref_random(rng, PC, 1.0),
                  ref_random(rng, NC, 1.0),
                  malloc(N * sizeof(uint32_t)),
                  B,
                  T,
                  C};
    /* Few distinct tokens, so that rows collide in dwte. */
    for (size_t i = 0; i < N; i++)
        c.tok[i] = (uint32_t)(test_rng_u64(rng) % (uint64_t)(V < 5 ? V : 5));
    c.tok[N - 1] = (uint32_t)(V - 1);
    double *dwte = ref_alloc(VC), *dwpe = ref_alloc(PC);
    enc_loss(&c);
    ref_encoder_backward(dwte, dwpe, c.dout, c.tok, B, T, C);
    ref_fd_check("encoder dwte", enc_loss, &c, c.wte, dwte, VC, 300, 1e-4, 1e-6);
    ref_fd_check("encoder dwpe", enc_loss, &c, c.wpe, dwpe, PC, 300, 1e-4, 1e-6);
    enc_loss(&c);

    double *g_wte = ref_random(rng, VC, 1.0), *g_wpe = ref_random(rng, PC, 1.0);
    float *f_wte = ref_floats(c.wte, VC), *f_wpe = ref_floats(c.wpe, PC),
          *f_dout = ref_floats(c.dout, NC), *f_gwte = ref_floats(g_wte, VC),
          *f_gwpe = ref_floats(g_wpe, PC);
    cl_mem wte = dev_upload(rt, f_wte, VC, 1), wpe = dev_upload(rt, f_wpe, PC, 2),
           out = dev_upload(rt, NULL, NC, 3), dout = dev_upload(rt, f_dout, NC, 4),
           dwte_d = dev_upload(rt, f_gwte, VC, 5), dwpe_d = dev_upload(rt, f_gwpe, PC, 6),
           tok = dev_upload(rt, (const float *)c.tok, N, 7); /* 4-byte ids, like the arena */
    CHECK_OK(cllm_op_encoder_forward(rt, (cllm_view){out, 3}, (cllm_view){tok, 7},
                                     (cllm_view){wte, 1}, (cllm_view){wpe, 2}, B, T, C, 0));
    CHECK_OK(cllm_op_encoder_backward(rt, (cllm_view){dwte_d, 5}, (cllm_view){dwpe_d, 6},
                                      (cllm_view){dout, 4}, (cllm_view){tok, 7}, B, T, C));
    float *got = malloc((NC + VC + PC) * sizeof(float)),
          *ref = malloc((NC + VC + PC) * sizeof(float));
    dev_download(rt, got, out, NC, 3);
    ref_to_float(ref, c.out, NC);
    CHECK_ALLCLOSE("encoder forward", got, ref, NC, 1e-6, 1e-6);
    /* positions shifted (as a cached forward does): wpe rows pos .. pos + T - 1 */
    int pos = maxT - T;
    double *shifted = ref_alloc(NC);
    ref_encoder_forward(shifted, c.tok, c.wte, c.wpe + (size_t)pos * C, B, T, C);
    CHECK_OK(cllm_op_encoder_forward(rt, (cllm_view){out, 3}, (cllm_view){tok, 7},
                                     (cllm_view){wte, 1}, (cllm_view){wpe, 2}, B, T, C, pos));
    dev_download(rt, got, out, NC, 3);
    ref_to_float(ref, shifted, NC);
    CHECK_ALLCLOSE("encoder forward at an offset", got, ref, NC, 1e-6, 1e-6);
    free(shifted);
    dev_download(rt, got, dwte_d, VC, 5);
    for (size_t i = 0; i < VC; i++)
        ref[i] = (float)(g_wte[i] + dwte[i]);
    CHECK_ALLCLOSE("encoder dwte", got, ref, VC, 1e-5 * (double)N, 1e-4);
    dev_download(rt, got, dwpe_d, PC, 6);
    for (size_t i = 0; i < PC; i++)
        ref[i] = (float)(g_wpe[i] + dwpe[i]);
    CHECK_ALLCLOSE("encoder dwpe", got, ref, PC, 1e-5 * B, 1e-4);

    cl_mem all[] = {wte, wpe, out, dout, dwte_d, dwpe_d, tok};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        clReleaseMemObject(all[i]);
    double *d[] = {c.out, c.wte, c.wpe, c.dout, dwte, dwpe, g_wte, g_wpe};
    for (size_t i = 0; i < sizeof d / sizeof *d; i++)
        free(d[i]);
    float *f[] = {f_wte, f_wpe, f_dout, f_gwte, f_gwpe, got, ref};
    for (size_t i = 0; i < sizeof f / sizeof *f; i++)
        free(f[i]);
    free(c.tok);
}

int main(void) {
    cllm_runtime *rt = test_runtime();
    test_rng rng = {11};
    run_case(rt, &rng, 1, 1, 1, 1, 1);
    run_case(rt, &rng, 3, 7, 5, 9, 10);
    run_case(rt, &rng, 2, 37, 67, 131, 40);
    run_case(rt, &rng, 5, 13, 130, 17, 13);
    cllm_runtime_free(rt);
    return test_exit();
}
