/* host/ops/ops.h — internal: the GPT's device ops. Each function enqueues the kernels (cl/<op>.cl)
 * and CLBlast GEMMs (through host/blas.c) of one op, forward or backward, on the runtime's
 * queue; nothing synchronises and nothing is copied. Tensors are views (buffer + element
 * offset) into arenas; shapes are in the comments, with the legend of cllm/gpt.h (B, T, C, NH,
 * hs, V, Vp) and N = rows (B*T), IC/OC = a linear layer's input/output features.
 *
 * Gradients of parameters are always accumulated (+=), so that micro-steps add up; gradients
 * of activations are written unless an `accumulate` flag says otherwise.
 */
#ifndef CLLM_OPS_H
#define CLLM_OPS_H

#include "runtime_cl.h"

#include <stdbool.h>

/* A tensor view: `off` elements (float or uint32) into `mem`. */
typedef struct {
    cl_mem mem;
    size_t off;
} cllm_view;

static inline cllm_view cllm_view_at(cllm_view v, size_t elems) {
    v.off += elems;
    return v;
}

/* Largest element offset + extent the kernels can address (they index with 32-bit uints). */
#define CLLM_OPS_MAX_ELEMS 0xFFFFFFFFu

/* Column sums over row chunks need (CLLM_OPS_COLSUM_CHUNKS, width) floats of scratch. */
#define CLLM_OPS_COLSUM_CHUNKS 32
/* Gradient-norm partial sums: floats of scratch for cllm_op_clip_norm (partials + 2). */
#define CLLM_OPS_NORM_GROUPS 256
#define CLLM_OPS_NORM_SCRATCH (CLLM_OPS_NORM_GROUPS + 2)

/* ---- encoder (cl/encoder.cl) */
/* out (B*T, C) = wte[tokens] + wpe[pos + t]; tokens (B*T) uint32 < Vp */
cllm_status cllm_op_encoder_forward(cllm_runtime *rt, cllm_view out, cllm_view tokens,
                                    cllm_view wte, cllm_view wpe, int B, int T, int C, int pos);
/* dwte (Vp, C) += scatter of dout (B*T, C) by token; dwpe (T, C) += sum over b */
cllm_status cllm_op_encoder_backward(cllm_runtime *rt, cllm_view dwte, cllm_view dwpe,
                                     cllm_view dout, cllm_view tokens, int B, int T, int C);

/* ---- LayerNorm (cl/layernorm.cl) */
/* out (N, C), mean (N), rstd (N) from inp (N, C), w (C), b (C) */
cllm_status cllm_op_layernorm_forward(cllm_runtime *rt, cllm_view out, cllm_view mean,
                                      cllm_view rstd, cllm_view inp, cllm_view w, cllm_view b,
                                      int N, int C, float eps);
/* dinp (N, C) (= or += when accumulate), dw (C) +=, db (C) +=, from dout (N, C) and the
 * forward's inp, mean, rstd, w. dw.mem and db.mem NULL: no parameter gradients (frozen).
 * scratch: 2 * CLLM_OPS_COLSUM_CHUNKS * C floats. */
cllm_status cllm_op_layernorm_backward(cllm_runtime *rt, cllm_view dinp, cllm_view dw, cllm_view db,
                                       cllm_view scratch, cllm_view dout, cllm_view inp,
                                       cllm_view mean, cllm_view rstd, cllm_view w, int N, int C,
                                       bool accumulate);

/* ---- GELU (cl/gelu.cl) */
/* out (n) = gelu(inp (n)) */
cllm_status cllm_op_gelu_forward(cllm_runtime *rt, cllm_view out, cllm_view inp, size_t n);
/* dinp (n) = gelu'(inp) * dout; dinp may be dout (in place) */
cllm_status cllm_op_gelu_backward(cllm_runtime *rt, cllm_view dinp, cllm_view inp, cllm_view dout,
                                  size_t n);

/* ---- bias and column sums (cl/bias.cl) */
/* out (N, OC) = bias (OC) broadcast, or res (N, OC) + bias when res.mem is non-NULL */
cllm_status cllm_op_bias_forward(cllm_runtime *rt, cllm_view out, cllm_view res, cllm_view bias,
                                 int N, int OC);
/* dbias (OC) += column sums of dout (N, OC). scratch: CLLM_OPS_COLSUM_CHUNKS * OC floats. */
cllm_status cllm_op_bias_backward(cllm_runtime *rt, cllm_view dbias, cllm_view scratch,
                                  cllm_view dout, int N, int OC);

/* ---- linear layer (host/ops/linear.c: bias kernels + CLBlast) */
/* out (N, OC) = [res (N, OC) +] inp (N, IC) @ w^T + b, w (OC, IC), b (OC). res.mem may be NULL;
 * res may not be out. The residual and bias are written first, then one GEMM over all N rows
 * accumulates (beta = 1). */
cllm_status cllm_op_linear_forward(cllm_runtime *rt, cllm_view out, cllm_view res, cllm_view inp,
                                   cllm_view w, cllm_view b, int N, int IC, int OC);
/* out (N, OC) = alpha * inp (N, IC) @ w^T + beta * out, the input's rows lda apart: the
 * product of a linear layer (and of LoRA's adapters; the LM head over the last position of
 * each sequence reads rows n*C apart), through host/gemv.h for a few rows, else host/blas.c. */
cllm_status cllm_op_matmul_nt(cllm_runtime *rt, cllm_view out, cllm_view inp, size_t lda,
                              cllm_view w, int N, int IC, int OC, float alpha, float beta);
/* dinp (N, IC) = dout @ w (written, or added when accumulate); dw (OC, IC) += dout^T @ inp;
 * db (OC) += column sums of dout. dinp.mem, dw.mem, db.mem may each be NULL (not wanted: a
 * frozen weight under LoRA has no dw, db). scratch: CLLM_OPS_COLSUM_CHUNKS * OC floats. */
cllm_status cllm_op_linear_backward(cllm_runtime *rt, cllm_view dinp, cllm_view dw, cllm_view db,
                                    cllm_view scratch, cllm_view dout, cllm_view inp, cllm_view w,
                                    int N, int IC, int OC, bool accumulate);

/* ---- LoRA adapters on a linear layer (host/ops/lora.c: GEMMs only). r = rank, s = scale
 * (alpha / r); a (r, IC) and b (OC, r) are views into the adapter arena. */
/* u (N, r) = inp (N, IC) @ a^T, kept for the backward; out (N, OC) += s * u @ b^T */
cllm_status cllm_op_lora_forward(cllm_runtime *rt, cllm_view out, cllm_view u, cllm_view inp,
                                 cllm_view a, cllm_view b, int N, int IC, int OC, int r, float s);
/* From dout (N, OC) and the forward's inp, u: db (OC, r) += s * dout^T @ u; du (N, r) =
 * s * dout @ b (scratch); da (r, IC) += du^T @ inp; dinp (N, IC) += du @ a (skipped when
 * dinp.mem is NULL). */
cllm_status cllm_op_lora_backward(cllm_runtime *rt, cllm_view dinp, cllm_view da, cllm_view db,
                                  cllm_view du, cllm_view dout, cllm_view inp, cllm_view u,
                                  cllm_view a, cllm_view b, int N, int IC, int OC, int r, float s);
/* w (OC, IC) += s * b (OC, r) @ a (r, IC): the adapter folded into the weight. */
cllm_status cllm_op_lora_merge(cllm_runtime *rt, cllm_view w, cllm_view a, cllm_view b, int IC,
                               int OC, int r, float s);

/* ---- causal self-attention (cl/attention.cl + batched GEMMs) */
/* Where one layer's attention keeps its per-head tensors. n = the positions of this call.
 * Training (and a plain forward): k, v hold just these n positions (Tmax = n, pos = 0). With a
 * key/value cache: k, v hold Tmax positions per head, rows 0 .. pos-1 from earlier calls, and
 * this call attends to (and adds) rows pos .. pos+n-1. */
typedef struct {
    cllm_view q;    /* (B*NH, n, hs)                                    (kept for the backward) */
    cllm_view k, v; /* (B*NH, Tmax, hs)                                 (kept for the backward) */
    cllm_view att;  /* (B*NH, n, pos + n) softmax                       (kept for the backward) */
    cllm_view y;    /* (B*NH, n, hs) att @ v                            (scratch) */
    int Tmax, pos;
} cllm_attention_acts;
/* out (B, n, C) = attention of qkv (B, n, 3C) over positions 0 .. pos+n-1; fills acts. out may
 * not alias qkv. */
cllm_status cllm_op_attention_forward(cllm_runtime *rt, cllm_view out, cllm_attention_acts acts,
                                      cllm_view qkv, int B, int n, int C, int NH);
typedef struct {
    cllm_view dqkvr; /* (3, B*NH, T, hs): dq, dk, dv */
    cllm_view datt;  /* (B*NH, T, T) */
    cllm_view dy;    /* (B*NH, T, hs) */
} cllm_attention_grads;
/* dqkv (B, T, 3C) from dout (B, T, C) and the forward's acts (which must be a cache-less
 * forward: Tmax = T, pos = 0); scratch in g. */
cllm_status cllm_op_attention_backward(cllm_runtime *rt, cllm_view dqkv, cllm_attention_grads g,
                                       cllm_view dout, cllm_attention_acts acts, int B, int T,
                                       int C, int NH);

/* ---- softmax + cross-entropy (cl/crossentropy.cl) */
/* losses (N), lse (N) from logits (N, Vp) over the first V columns and targets (N) uint32
 * (CLLM_IGNORE_TARGET: loss 0); loss (1) = sum(losses) / count (0 when count is 0). */
cllm_status cllm_op_crossentropy_forward(cllm_runtime *rt, cllm_view loss, cllm_view losses,
                                         cllm_view lse, cllm_view logits, cllm_view targets, int N,
                                         int V, int Vp, int count);
/* logits (N, Vp) become dlogits = (softmax - onehot) * dloss, in place; 0 beyond V and on
 * ignored rows. */
cllm_status cllm_op_crossentropy_backward(cllm_runtime *rt, cllm_view logits, cllm_view lse,
                                          cllm_view targets, int N, int V, int Vp, float dloss);

/* ---- global norm and clipping (cl/norm.cl) */
/* scratch (CLLM_OPS_NORM_SCRATCH): scratch[GROUPS] receives the L2 norm of x (n), and when
 * max_norm > 0, x is scaled by min(1, max_norm / (norm + 1e-6)) (torch's clip_grad_norm_). */
cllm_status cllm_op_clip_norm(cllm_runtime *rt, cllm_view x, size_t n, cllm_view scratch,
                              float max_norm);

/* ---- AdamW (cl/adamw.cl) */
typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
    int step; /* 1-based */
    /* weight decay applies to [decay_lo[i], decay_hi[i]) (element indices), i < n_decay <= 8 */
    size_t decay_lo[8], decay_hi[8];
    int n_decay;
} cllm_adamw_spec;
/* One AdamW step over p, m, v (n) with gradients g (n). */
cllm_status cllm_op_adamw(cllm_runtime *rt, cllm_view p, cllm_view g, cllm_view m, cllm_view v,
                          size_t n, const cllm_adamw_spec *spec);

/* ---- launch helpers shared by the ops (host/ops/launch.c) */
/* Power-of-two work-group size for a kernel that reduces rows of `width` elements with one
 * work-group per row (1 on a CPU; the environment variable CLLM_ROW_LOCAL forces a size). */
size_t cllm_ops_row_local(const cllm_runtime *rt, size_t width);
/* Enqueue a kernel whose work-items take 16 consecutive elements each: of n elements (1-D), or
 * of `width` columns across and `rows` rows down (2-D: global id 0 = column / 16, 1 = row). */
cllm_status cllm_ops_launch_vec(cllm_runtime *rt, cl_kernel k, size_t n);
cllm_status cllm_ops_launch_vec2(cllm_runtime *rt, cl_kernel k, size_t width, size_t rows);
/* Enqueue `rows` work-groups of `local` work-items (one per row). */
cllm_status cllm_ops_launch_rows(cllm_runtime *rt, cl_kernel k, size_t rows, size_t local);

/* Column sums in chunks of rows (host/ops/bias.c): the chunking of N rows, and
 * dst (OC) += sum over k < nchunk of part (nchunk, OC). */
void cllm_ops_colsum_chunks(int N, cl_uint *nchunk, cl_uint *rows_per_chunk);
cllm_status cllm_ops_colsum_finalize(cllm_runtime *rt, cllm_view dst, cllm_view part, int OC,
                                     cl_uint nchunk);

#define CLLM_ARG(x) sizeof(x), (const void *)&(x)
#define CLLM_ARG_LOCAL(bytes) (size_t)(bytes), (const void *)NULL

#endif
