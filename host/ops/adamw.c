/* AdamW over a whole parameter buffer in one kernel (cl/adamw.cl). */
#include "ops.h"

#include <math.h>

cllm_status cllm_op_adamw(cllm_runtime *rt, cllm_view p, cllm_view g, cllm_view m, cllm_view v,
                          size_t n, const cllm_adamw_spec *s) {
    cl_kernel k;
    cllm_status st = cllm_rt_kernel(rt, "adamw.cl", NULL, "adamw_step", &k);
    if (st != CLLM_OK) return st;
    /* What torch.optim.AdamW computes in Python (double) before touching the tensors. */
    const double lr = s->lr, t = s->step;
    float beta1 = s->beta1, beta2 = s->beta2, eps = s->eps;
    float omb1 = (float)(1.0 - (double)s->beta1), omb2 = (float)(1.0 - (double)s->beta2);
    float decay_factor = (float)(1.0 - lr * (double)s->weight_decay);
    float step_size = (float)(lr / (1.0 - pow((double)s->beta1, t)));
    float bc2_sqrt = (float)sqrt(1.0 - pow((double)s->beta2, t));
    cl_uint16 decay;
    for (int i = 0; i < 8; i++) {
        decay.s[2 * i] = i < s->n_decay ? (cl_uint)s->decay_lo[i] : 0;
        decay.s[2 * i + 1] = i < s->n_decay ? (cl_uint)s->decay_hi[i] : 0;
    }
    cl_uint po = (cl_uint)p.off, go = (cl_uint)g.off, mo = (cl_uint)m.off, vo = (cl_uint)v.off,
            nn = (cl_uint)n;
    st = cllm_rt_args(k, 18, CLLM_ARG(p.mem), CLLM_ARG(po), CLLM_ARG(g.mem), CLLM_ARG(go),
                      CLLM_ARG(m.mem), CLLM_ARG(mo), CLLM_ARG(v.mem), CLLM_ARG(vo), CLLM_ARG(nn),
                      CLLM_ARG(beta1), CLLM_ARG(omb1), CLLM_ARG(beta2), CLLM_ARG(omb2),
                      CLLM_ARG(eps), CLLM_ARG(decay_factor), CLLM_ARG(step_size),
                      CLLM_ARG(bc2_sqrt), CLLM_ARG(decay));
    if (st != CLLM_OK) return st;
    return cllm_ops_launch_vec(rt, k, n);
}
