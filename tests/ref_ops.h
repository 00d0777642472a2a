/* tests/ref_ops.h — plain-C double-precision references of the GPT's ops (llm.c's formulas),
 * a finite-difference gradient checker, and device-buffer helpers for the op tests.
 * Header-only (static inline) so that every tests/test_*.c stays one translation unit.
 *
 * Shapes as in cllm/gpt.h: N rows (= B*T), C channels, OC/IC a linear layer's features.
 * Every backward accumulates (+=) into its outputs, so callers zero them first.
 */
#ifndef CLLM_TEST_REF_OPS_H
#define CLLM_TEST_REF_OPS_H

#include "runtime_cl.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define REF_IGNORE 0xFFFFFFFFu

static inline double *ref_alloc(size_t n) {
    double *p = calloc(n ? n : 1, sizeof(double));
    if (!p) abort();
    return p;
}

static inline void ref_to_double(double *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i];
}

static inline void ref_to_float(float *dst, const double *src, size_t n) {
    for (size_t i = 0; i < n; i++)
        dst[i] = (float)src[i];
}

/* ---------------------------------------------------------------- ops */

/* out (N, C) = wte[tok] + wpe[t], N = B*T */
static inline void ref_encoder_forward(double *out, const uint32_t *tok, const double *wte,
                                       const double *wpe, int B, int T, int C) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int c = 0; c < C; c++)
                out[((size_t)b * T + t) * C + c] =
                    wte[(size_t)tok[b * T + t] * C + c] + wpe[(size_t)t * C + c];
}

static inline void ref_encoder_backward(double *dwte, double *dwpe, const double *dout,
                                        const uint32_t *tok, int B, int T, int C) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int c = 0; c < C; c++) {
                double g = dout[((size_t)b * T + t) * C + c];
                dwte[(size_t)tok[b * T + t] * C + c] += g;
                dwpe[(size_t)t * C + c] += g;
            }
}

/* out (N, C), mean (N), rstd (N) */
static inline void ref_layernorm_forward(double *out, double *mean, double *rstd, const double *inp,
                                         const double *w, const double *b, int N, int C,
                                         double eps) {
    for (int i = 0; i < N; i++) {
        const double *x = inp + (size_t)i * C;
        double m = 0, v = 0;
        for (int c = 0; c < C; c++)
            m += x[c];
        m /= C;
        for (int c = 0; c < C; c++)
            v += (x[c] - m) * (x[c] - m);
        v /= C;
        double r = 1.0 / sqrt(v + eps);
        for (int c = 0; c < C; c++)
            out[(size_t)i * C + c] = (x[c] - m) * r * w[c] + b[c];
        if (mean) mean[i] = m;
        if (rstd) rstd[i] = r;
    }
}

static inline void ref_layernorm_backward(double *dinp, double *dw, double *db, const double *dout,
                                          const double *inp, const double *mean, const double *rstd,
                                          const double *w, int N, int C) {
    for (int i = 0; i < N; i++) {
        const double *x = inp + (size_t)i * C, *dy = dout + (size_t)i * C;
        double m = mean[i], r = rstd[i], s1 = 0, s2 = 0;
        for (int c = 0; c < C; c++) {
            double norm = (x[c] - m) * r, dn = dy[c] * w[c];
            s1 += dn;
            s2 += dn * norm;
            dw[c] += dy[c] * norm;
            db[c] += dy[c];
        }
        s1 /= C;
        s2 /= C;
        for (int c = 0; c < C; c++) {
            double norm = (x[c] - m) * r;
            dinp[(size_t)i * C + c] += (dy[c] * w[c] - s1 - norm * s2) * r;
        }
    }
}

#define REF_GELU_S 0.79788456080286535588 /* sqrt(2/pi) */
static inline double ref_gelu(double x) {
    return 0.5 * x * (1.0 + tanh(REF_GELU_S * (x + 0.044715 * x * x * x)));
}
static inline double ref_gelu_grad(double x) {
    double th = tanh(REF_GELU_S * (x + 0.044715 * x * x * x));
    return 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * REF_GELU_S * (1.0 + 3 * 0.044715 * x * x);
}

/* out (N, OC) = inp (N, IC) @ w^T (w (OC, IC)) + b (OC, may be NULL) */
static inline void ref_linear_forward(double *out, const double *inp, const double *w,
                                      const double *b, int N, int IC, int OC) {
    for (int i = 0; i < N; i++)
        for (int o = 0; o < OC; o++) {
            double s = b ? b[o] : 0.0;
            for (int k = 0; k < IC; k++)
                s += inp[(size_t)i * IC + k] * w[(size_t)o * IC + k];
            out[(size_t)i * OC + o] = s;
        }
}

static inline void ref_linear_backward(double *dinp, double *dw, double *db, const double *dout,
                                       const double *inp, const double *w, int N, int IC, int OC) {
    for (int i = 0; i < N; i++)
        for (int o = 0; o < OC; o++) {
            double g = dout[(size_t)i * OC + o];
            if (db) db[o] += g;
            for (int k = 0; k < IC; k++) {
                if (dinp) dinp[(size_t)i * IC + k] += g * w[(size_t)o * IC + k];
                dw[(size_t)o * IC + k] += g * inp[(size_t)i * IC + k];
            }
        }
}

/* Causal attention: out (B, T, C) from qkv (B, T, 3C); att (B, NH, T, T) softmax kept. */
static inline void ref_attention_forward(double *out, double *att, const double *qkv, int B, int T,
                                         int C, int NH) {
    int hs = C / NH;
    double scale = 1.0 / sqrt((double)hs);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const double *q = qkv + ((size_t)b * T + t) * 3 * C + h * hs;
                double *a = att + (((size_t)b * NH + h) * T + t) * T;
                double mx = -INFINITY;
                for (int j = 0; j <= t; j++) {
                    const double *k = qkv + ((size_t)b * T + j) * 3 * C + C + h * hs;
                    double s = 0;
                    for (int d = 0; d < hs; d++)
                        s += q[d] * k[d];
                    a[j] = s * scale;
                    if (a[j] > mx) mx = a[j];
                }
                double sum = 0;
                for (int j = 0; j <= t; j++)
                    sum += (a[j] = exp(a[j] - mx));
                for (int j = 0; j < T; j++)
                    a[j] = j <= t ? a[j] / sum : 0.0;
                double *o = out + ((size_t)b * T + t) * C + h * hs;
                for (int d = 0; d < hs; d++) {
                    double s = 0;
                    for (int j = 0; j <= t; j++)
                        s += a[j] * qkv[((size_t)b * T + j) * 3 * C + 2 * C + h * hs + d];
                    o[d] = s;
                }
            }
}

static inline void ref_attention_backward(double *dqkv, const double *dout, const double *qkv,
                                          const double *att, int B, int T, int C, int NH) {
    int hs = C / NH;
    double scale = 1.0 / sqrt((double)hs);
    double *da = ref_alloc((size_t)T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const double *a = att + (((size_t)b * NH + h) * T + t) * T;
                const double *dy = dout + ((size_t)b * T + t) * C + h * hs;
                double dot = 0;
                for (int j = 0; j <= t; j++) {
                    const double *v = qkv + ((size_t)b * T + j) * 3 * C + 2 * C + h * hs;
                    double *dv = dqkv + ((size_t)b * T + j) * 3 * C + 2 * C + h * hs;
                    da[j] = 0;
                    for (int d = 0; d < hs; d++) {
                        da[j] += dy[d] * v[d];
                        dv[d] += a[j] * dy[d];
                    }
                    dot += a[j] * da[j];
                }
                const double *q = qkv + ((size_t)b * T + t) * 3 * C + h * hs;
                double *dq = dqkv + ((size_t)b * T + t) * 3 * C + h * hs;
                for (int j = 0; j <= t; j++) {
                    double dp = a[j] * (da[j] - dot) * scale;
                    const double *k = qkv + ((size_t)b * T + j) * 3 * C + C + h * hs;
                    double *dk = dqkv + ((size_t)b * T + j) * 3 * C + C + h * hs;
                    for (int d = 0; d < hs; d++) {
                        dq[d] += dp * k[d];
                        dk[d] += dp * q[d];
                    }
                }
            }
    free(da);
}

/* losses (N) = -log softmax(logits[i, :V])[target]; 0 where ignored. logits (N, Vp). Returns
 * the mean over non-ignored targets (0 if none). */
static inline double ref_crossentropy_forward(double *losses, const double *logits,
                                              const uint32_t *targets, int N, int V, int Vp) {
    double sum = 0;
    int count = 0;
    for (int i = 0; i < N; i++) {
        const double *x = logits + (size_t)i * Vp;
        double mx = -INFINITY, s = 0;
        for (int v = 0; v < V; v++)
            mx = x[v] > mx ? x[v] : mx;
        for (int v = 0; v < V; v++)
            s += exp(x[v] - mx);
        double l = targets[i] == REF_IGNORE ? 0.0 : mx + log(s) - x[targets[i]];
        if (losses) losses[i] = l;
        if (targets[i] != REF_IGNORE) {
            sum += l;
            count++;
        }
    }
    return count ? sum / count : 0.0;
}

/* dlogits (N, Vp) += d(dloss_scale * sum_i losses[i]) */
static inline void ref_crossentropy_backward(double *dlogits, const double *logits,
                                             const uint32_t *targets, int N, int V, int Vp,
                                             double dloss) {
    for (int i = 0; i < N; i++) {
        if (targets[i] == REF_IGNORE) continue;
        const double *x = logits + (size_t)i * Vp;
        double mx = -INFINITY, s = 0;
        for (int v = 0; v < V; v++)
            mx = x[v] > mx ? x[v] : mx;
        for (int v = 0; v < V; v++)
            s += exp(x[v] - mx);
        for (int v = 0; v < V; v++)
            dlogits[(size_t)i * Vp + v] +=
                (exp(x[v] - mx) / s - (v == (int)targets[i] ? 1.0 : 0.0)) * dloss;
    }
}

/* ---------------------------------------------------------------- finite differences */

/* Checks grad (n) against central differences of loss(ctx) w.r.t. x (n), perturbing x in place
 * (restored after). With n > max_points, a seeded sample of max_points indices is checked.
 * Returns the worst (|fd - grad| - noise) / (|fd| + |grad| + 1e-4 max|grad|), where noise =
 * 1e-14 |loss| / h bounds the rounding in a difference of two double sums of many terms: tiny
 * components, dominated by that noise, must not fail a check that means "relative to the
 * gradient's scale" (a wrong formula is off by O(|grad|), far above both). */
static inline double ref_fd_check(const char *what, double (*loss)(void *), void *ctx, double *x,
                                  const double *grad, size_t n, size_t max_points, double h,
                                  double tol) {
    test_rng rng = {0xfdfdULL + n};
    double gmax = 0;
    for (size_t i = 0; i < n; i++)
        gmax = fabs(grad[i]) > gmax ? fabs(grad[i]) : gmax;
    double worst = 0;
    size_t worst_i = 0;
    double worst_fd = 0;
    size_t points = n < max_points ? n : max_points;
    for (size_t p = 0; p < points; p++) {
        size_t i = n <= max_points ? p : (size_t)(test_rng_u64(&rng) % n);
        double x0 = x[i];
        x[i] = x0 + h;
        double lp = loss(ctx);
        x[i] = x0 - h;
        double lm = loss(ctx);
        x[i] = x0;
        double fd = (lp - lm) / (2 * h);
        double noise = 1e-14 * (fabs(lp) + fabs(lm)) / (2 * h);
        double diff = fabs(fd - grad[i]) - noise;
        double err = (diff > 0 ? diff : 0) / (fabs(fd) + fabs(grad[i]) + 1e-4 * gmax + 1e-30);
        if (err > worst) {
            worst = err;
            worst_i = i;
            worst_fd = fd;
        }
    }
    test_checks++;
    if (worst > tol) {
        test_failures++;
        fprintf(stderr,
                "finite differences of %s: element %zu: analytic %.10g, numeric %.10g "
                "(relative error %.3g > %.3g)\n",
                what, worst_i, grad[worst_i], worst_fd, worst, tol);
    }
    return worst;
}

/* ---------------------------------------------------------------- device helpers */

/* A device buffer holding `pad` garbage floats, then n values (so offsets are exercised). */
static inline cl_mem dev_upload(cllm_runtime *rt, const float *x, size_t n, size_t pad) {
    cl_mem m = NULL;
    float *tmp = malloc((n + pad + 1) * sizeof(float));
    if (!tmp) abort();
    for (size_t i = 0; i < pad; i++)
        tmp[i] = 12345.0f;
    if (x)
        memcpy(tmp + pad, x, n * sizeof(float));
    else
        memset(tmp + pad, 0, n * sizeof(float));
    tmp[n + pad] = -54321.0f;
    if (cllm_rt_alloc(rt, (n + pad + 1) * sizeof(float), &m) != CLLM_OK ||
        cllm_rt_write(rt, m, 0, tmp, (n + pad + 1) * sizeof(float)) != CLLM_OK) {
        fprintf(stderr, "device upload failed: %s\n", cllm_last_error());
        exit(1);
    }
    free(tmp);
    return m;
}

static inline void dev_download(cllm_runtime *rt, float *x, cl_mem m, size_t n, size_t pad) {
    if (cllm_rt_read(rt, m, pad * sizeof(float), x, n * sizeof(float)) != CLLM_OK) {
        fprintf(stderr, "device read failed: %s\n", cllm_last_error());
        exit(1);
    }
}

/* float copy of a double array, and n random floats N(0, scale) */
static inline float *ref_floats(const double *x, size_t n) {
    float *f = malloc((n ? n : 1) * sizeof(float));
    if (!f) abort();
    ref_to_float(f, x, n);
    return f;
}

static inline double *ref_random(test_rng *rng, size_t n, double scale) {
    double *x = ref_alloc(n);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(test_rng_normal(rng) * scale);
    return x;
}

#endif
