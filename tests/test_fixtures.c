/* The PyTorch GPT fixtures (tools/gen_gpt_fixtures.py) read with cllm's safetensors reader and
 * checked for self-consistency: every documented tensor present with the shape the config
 * implies, token ids in range, the loss recomputed from the logits (double precision), the
 * first gradient norm recomputed from the gradients, the learning-rate schedule recomputed,
 * and the position rows that see no gradient decayed exactly as AdamW's weight decay says. */
#include "testutil.h"

#include "cllm/gpt.h"
#include "cllm/safetensors.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const cllm_st_tensor *need(cllm_safetensors *st, const char *name, cllm_st_dtype dt,
                                  int ndim, const int64_t *shape) {
    const cllm_st_tensor *t = cllm_safetensors_find(st, name);
    CHECK_MSG(t != NULL, "%s missing", name);
    if (!t) return NULL;
    bool ok = t->dtype == dt && t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    CHECK_MSG(ok, "%s: wrong dtype or shape", name);
    return ok ? t : NULL;
}

static float *read_f(cllm_safetensors *st, const cllm_st_tensor *t) {
    if (!t) return NULL;
    float *f = malloc(t->numel * sizeof *f + 4);
    CHECK_OK(cllm_safetensors_read_f32(st, t, f));
    return f;
}

static int meta_int(cllm_safetensors *st, const char *key) {
    const char *v = cllm_safetensors_metadata(st, key);
    CHECK_MSG(v != NULL, "metadata %s missing", key);
    return v ? atoi(v) : 0;
}

static double meta_num(cllm_safetensors *st, const char *key) {
    const char *v = cllm_safetensors_metadata(st, key);
    CHECK_MSG(v != NULL, "metadata %s missing", key);
    return v ? atof(v) : 0;
}

/* Mean cross-entropy over targets != -1, in double. */
static double ref_loss(const float *logits, const int32_t *targets, int BT, int V) {
    double sum = 0;
    int n = 0;
    for (int i = 0; i < BT; i++) {
        if (targets[i] == -1) continue;
        const float *l = logits + (size_t)i * V;
        double mx = l[0], z = 0;
        for (int v = 1; v < V; v++) mx = l[v] > mx ? l[v] : mx;
        for (int v = 0; v < V; v++) z += exp(l[v] - mx);
        sum += mx + log(z) - l[targets[i]];
        n++;
    }
    return sum / n;
}

static void check_fixture(const char *file) {
    char *path = test_fixture(file);
    if (!path) return;
    cllm_safetensors *st = NULL;
    CHECK_OK(cllm_safetensors_open(&st, path));
    free(path);
    if (!st) return;
    const char *fmt = cllm_safetensors_metadata(st, "format");
    CHECK(fmt && !strcmp(fmt, "cllm-gpt-fixture/1"));
    cllm_gpt_config cfg;
    const char *cj = cllm_safetensors_metadata(st, "config");
    CHECK_OK(cllm_gpt_config_parse(cj ? cj : "", file, &cfg));
    CHECK(meta_int(st, "vocab_size") == cfg.vocab_size && meta_int(st, "n_embd") == cfg.n_embd &&
          meta_int(st, "n_layer") == cfg.n_layer && meta_int(st, "n_head") == cfg.n_head &&
          meta_int(st, "n_positions") == cfg.n_positions);
    const int B = meta_int(st, "B"), T = meta_int(st, "T"), V = cfg.vocab_size, C = cfg.n_embd;
    const int steps = meta_int(st, "steps");
    CHECK(B > 0 && T > 0 && T <= cfg.n_positions && steps == 10);

    /* parameters, gradients, final parameters: every HF tensor, HF shapes */
    static const char *prefix[] = {"", "grad.", "grad_masked.", "final."};
    int n = cllm_gpt_hf_tensor_count(&cfg);
    CHECK(cllm_safetensors_count(st) == 4 * n + 9); /* + ids (3), logits and losses (3), train.* (3) */
    double sumsq = 0;
    for (int i = 0; i < n; i++) {
        cllm_gpt_hf_tensor_info t;
        cllm_gpt_hf_tensor(&cfg, i, &t);
        for (int p = 0; p < 4; p++) {
            char name[96];
            snprintf(name, sizeof name, "%s%s", prefix[p], t.name);
            const cllm_st_tensor *x = need(st, name, CLLM_ST_F32, t.ndim, t.shape);
            float *f = read_f(st, x);
            int nonfinite = 0;
            for (size_t k = 0; f && k < x->numel; k++) {
                nonfinite += !isfinite(f[k]);
                if (p == 1) sumsq += (double)f[k] * f[k];
            }
            CHECK_MSG(nonfinite == 0, "%s has non-finite values", name);
            free(f);
        }
    }

    /* token ids */
    const int64_t bt[2] = {B, T}, btv[3] = {B, T, V}, one[1] = {1}, ten[1] = {steps};
    const cllm_st_tensor *ti = need(st, "inputs", CLLM_ST_I32, 2, bt),
                         *tt = need(st, "targets", CLLM_ST_I32, 2, bt),
                         *tm = need(st, "targets_masked", CLLM_ST_I32, 2, bt);
    int32_t *in = calloc((size_t)B * T, 4), *tg = calloc((size_t)B * T, 4),
            *mk = calloc((size_t)B * T, 4);
    if (ti && tt && tm) {
        CHECK_OK(cllm_safetensors_read_i32(st, ti, in));
        CHECK_OK(cllm_safetensors_read_i32(st, tt, tg));
        CHECK_OK(cllm_safetensors_read_i32(st, tm, mk));
    }
    int bad = 0, masked = 0;
    for (int i = 0; i < B * T; i++) {
        bad += in[i] < 0 || in[i] >= V || tg[i] < 0 || tg[i] >= V;
        bad += mk[i] != -1 && mk[i] != tg[i];
        masked += mk[i] == -1;
        if (i % T != T - 1) bad += tg[i] != in[i + 1]; /* targets are the next tokens */
    }
    CHECK_MSG(bad == 0, "%d inconsistent token ids", bad);
    CHECK(masked > 0 && masked < B * T);

    /* losses from the logits */
    float *logits = read_f(st, need(st, "logits", CLLM_ST_F32, 3, btv));
    float *loss = read_f(st, need(st, "loss", CLLM_ST_F32, 1, one));
    float *lossm = read_f(st, need(st, "loss_masked", CLLM_ST_F32, 1, one));
    if (logits && loss && lossm) {
        double l = ref_loss(logits, tg, B * T, V), lm = ref_loss(logits, mk, B * T, V);
        CHECK_MSG(test_close(loss[0], l, 1e-5, 1e-5), "loss %.7f, from logits %.7f", loss[0], l);
        CHECK_MSG(test_close(lossm[0], lm, 1e-5, 1e-5), "masked loss %.7f, from logits %.7f",
                  lossm[0], lm);
        CHECK(fabs(l - lm) > 1e-7); /* the mask changes the loss */
    }

    /* training record */
    float *lr = read_f(st, need(st, "train.lr", CLLM_ST_F32, 1, ten));
    float *tl = read_f(st, need(st, "train.loss", CLLM_ST_F32, 1, ten));
    float *gn = read_f(st, need(st, "train.grad_norm", CLLM_ST_F32, 1, ten));
    if (lr && tl && gn && loss) {
        CHECK_MSG(fabsf(tl[0] - loss[0]) <= 1e-6f, "first training loss %.7f vs loss %.7f", tl[0],
                  loss[0]);
        CHECK(tl[steps - 1] < tl[0]);
        CHECK_MSG(test_close(gn[0], sqrt(sumsq), 1e-6, 1e-5), "grad norm %.7f, from grads %.7f",
                  gn[0], sqrt(sumsq));
        for (int s = 1; s <= steps; s++) { /* warm-up 3 steps to 1e-3, cosine to 1e-4 */
            double want = s <= 3 ? 1e-3 * s / 3
                                 : 1e-4 + 0.5 * (1e-3 - 1e-4) * (1 + cos(M_PI * (s - 3) / 7.0));
            CHECK_MSG(lr[s - 1] == (float)want, "lr[%d] = %g, schedule %g", s, lr[s - 1], want);
        }
        /* wpe rows >= T get no gradient: AdamW only decays them, by (1 - lr * wd) per step */
        double wd = meta_num(st, "weight_decay"), decay = 1;
        for (int s = 0; s < steps; s++) decay *= 1 - (double)lr[s] * wd;
        float *w0 = read_f(st, cllm_safetensors_find(st, "wpe.weight"));
        float *w1 = read_f(st, cllm_safetensors_find(st, "final.wpe.weight"));
        float *g = read_f(st, cllm_safetensors_find(st, "grad.wpe.weight"));
        int rows = 0;
        for (int r = T; r < cfg.n_positions; r++, rows++)
            for (int c = 0; c < C; c++) {
                size_t k = (size_t)r * C + c;
                CHECK(g[k] == 0.0f);
                CHECK_MSG(test_close(w1[k], w0[k] * decay, 1e-9, 1e-6), "wpe[%d][%d]", r, c);
            }
        if (T < cfg.n_positions) CHECK(rows > 0);
        free(w0);
        free(w1);
        free(g);
    }
    printf("%s: V %d T %d C %d NH %d L %d B %d, loss %.6f, masked %.6f, %d masked targets\n", file,
           V, T, C, cfg.n_head, cfg.n_layer, B, loss ? loss[0] : 0.0, lossm ? lossm[0] : 0.0,
           masked);
    free(in);
    free(tg);
    free(mk);
    free(logits);
    free(loss);
    free(lossm);
    free(lr);
    free(tl);
    free(gn);
    cllm_safetensors_free(st);
}

int main(void) {
    check_fixture("gpt_tiny.safetensors");
    check_fixture("gpt_small.safetensors");
    return test_exit();
}
