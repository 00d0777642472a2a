/* Softmax + cross-entropy (cl/crossentropy.cl): the reference backward against finite
 * differences; the device's per-token losses, mean over non-ignored targets, and in-place
 * dlogits (zero on padding columns and ignored rows) against the reference. V is not a multiple
 * of 64 and Vp > V. */
#include "ops/ops.h"
#include "ref_ops.h"

typedef struct {
    double *logits;
    uint32_t *targets;
    int N, V, Vp;
} ce_case;

static double ce_loss(void *p) {
    ce_case *c = p;
    return ref_crossentropy_forward(NULL, c->logits, c->targets, c->N, c->V, c->Vp);
}

static void run_case(cllm_runtime *rt, test_rng *rng, int N, int V, int Vp, int ignored,
                     double spread) {
    size_t NV = (size_t)N * Vp;
    ce_case c = {ref_random(rng, NV, spread), malloc(N * sizeof(uint32_t)), N, V, Vp};
    for (int i = 0; i < N; i++)
        c.targets[i] = (uint32_t)(test_rng_u64(rng) % (uint64_t)V);
    for (int i = 0; i < ignored && i < N; i++)
        c.targets[(i * 7) % N] = REF_IGNORE;
    c.targets[N - 1] = (uint32_t)(V - 1);
    for (size_t i = 0; i < NV; i++)
        if ((int)(i % Vp) >= V) c.logits[i] = 1e3; /* padding: must not count */
    int count = 0;
    for (int i = 0; i < N; i++)
        count += c.targets[i] != REF_IGNORE;
    double *losses = ref_alloc(N), *dl = ref_alloc(NV);
    double mean = ref_crossentropy_forward(losses, c.logits, c.targets, N, V, Vp);
    double dloss = count ? 0.7 / count : 0.0; /* backward(scale = 0.7) of the mean */
    ref_crossentropy_backward(dl, c.logits, c.targets, N, V, Vp, dloss);
    double *dmean = ref_alloc(NV);
    for (size_t i = 0; i < NV; i++)
        dmean[i] = dl[i] / 0.7;
    ref_fd_check("crossentropy dlogits", ce_loss, &c, c.logits, dmean, NV, 300, 1e-4, 1e-6);

    float *f_logits = ref_floats(c.logits, NV);
    cl_mem lg = dev_upload(rt, f_logits, NV, 3),
           tg = dev_upload(rt, (const float *)c.targets, N, 2), ls = dev_upload(rt, NULL, N, 1),
           lse = dev_upload(rt, NULL, N, 4), loss = dev_upload(rt, NULL, 1, 5);
    CHECK_OK(cllm_op_crossentropy_forward(rt, (cllm_view){loss, 5}, (cllm_view){ls, 1},
                                          (cllm_view){lse, 4}, (cllm_view){lg, 3},
                                          (cllm_view){tg, 2}, N, V, Vp, count));
    CHECK_OK(cllm_op_crossentropy_backward(rt, (cllm_view){lg, 3}, (cllm_view){lse, 4},
                                           (cllm_view){tg, 2}, N, V, Vp, (float)dloss));
    float *got = malloc(NV * 4), *ref = malloc(NV * 4), l;
    dev_download(rt, got, ls, N, 1);
    ref_to_float(ref, losses, N);
    char what[96];
    snprintf(what, sizeof what, "crossentropy losses N=%d V=%d Vp=%d", N, V, Vp);
    CHECK_ALLCLOSE(what, got, ref, N, 1e-5, 1e-5);
    dev_download(rt, &l, loss, 1, 5);
    CHECK_MSG(test_close(l, mean, 1e-6, 1e-5), "mean loss %.8g, reference %.8g", l, mean);
    dev_download(rt, got, lg, NV, 3);
    ref_to_float(ref, dl, NV);
    CHECK_ALLCLOSE("crossentropy dlogits", got, ref, NV, 1e-7, 1e-4);
    clReleaseMemObject(lg), clReleaseMemObject(tg), clReleaseMemObject(ls);
    clReleaseMemObject(lse), clReleaseMemObject(loss);
    free(c.logits), free(c.targets), free(losses), free(dl), free(dmean), free(f_logits);
    free(got), free(ref);
}

int main(void) {
    /* Twice: the device's own work-group size for row kernels (1 on a CPU), then 8 work-items
     * sharing each row as on a GPU (CLLM_ROW_LOCAL), so that both code paths are checked. */
    for (int pass = 0; pass < 2; pass++) {
        if (pass) setenv("CLLM_ROW_LOCAL", "8", 1);
        cllm_runtime *rt = test_runtime();
        test_rng rng = {23};
        run_case(rt, &rng, 1, 1, 1, 0, 1.0);
        run_case(rt, &rng, 5, 7, 9, 0, 1.0);
        run_case(rt, &rng, 37, 203, 256, 4, 3.0);
        run_case(rt, &rng, 19, 1000, 1024, 1, 30.0); /* large logits: needs the max shift */
        run_case(rt, &rng, 6, 50, 128, 6, 1.0);      /* every target ignored: loss 0, no gradient */
        cllm_runtime_free(rt);
    }
    return test_exit();
}
