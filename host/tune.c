/* `cllm tune`: measure the paths of cllm's matrix products on this device (cl/gemm.cl variants,
 * CLBlast's direct and indirect GEMM with parameters searched in CLBlast's own spaces) on the
 * shapes a training step uses, check every candidate against a reference before timing it,
 * and write the winners to the device's tune cache (host/tune_cache.c).
 *
 * Stages, each stopped by the time budget:
 *   0  the baseline: CLBlast as it is (both paths) and the table in effect before
 *   1  cl/gemm.cl: a grid of register tiles (mr x nv vectors) on every shape, then per shape
 *      the tile order (gm) and K slicing (kc) of its best tiles, then neighbours
 *   2  CLBlast's Xgemm (indirect path) and XgemmDirect, each candidate's parameters applied
 *      with CLBlastOverrideParameters and timed on every shape; then (not --quick) the copy,
 *      pad and transpose kernels the indirect path runs
 *   3  a play-off of each shape's best cl/gemm.cl variants, timed in turns, and the choice
 */
#define _POSIX_C_SOURCE 200809L
#include "tune.h"

#include "cllm/gpt.h"
#include "cllm/tune.h"
#include "cllm/util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define MAX_MEAS 160
#define MAX_SHAPES 64
#define GUARD 32 /* floats before and after C that no product may touch */
#define OFFSET 32 /* operands start 32 floats into their buffers, as arena views do */
#define BAD_RESULT -1.0
#define FAILED -2.0

cllm_tune_opts cllm_tune_opts_default(void) {
    cllm_tune_opts o;
    memset(&o, 0, sizeof o);
    o.search_cllm = true;
    o.search_clblast = true;
    o.save = true;
    return o;
}

/* ---------------------------------------------------------------- shapes */

typedef struct {
    cllm_gemm_choice c;
    double t; /* best seconds; BAD_RESULT or FAILED */
} measured;

typedef struct {
    cllm_gemm_shape key; /* the product as the model makes it */
    cllm_gemm_shape s;   /* as timed (fewer rows when very large) */
    int calls;
    size_t lda, ldb, ldc, as, bs, cs, na, nb, nc;
    cl_mem A, B, C;
    float *c0;     /* C before each check: guards, then values */
    float *got;    /* C read back */
    size_t *rows;  /* checked rows, as batch * M + i */
    size_t n_rows;
    double *ref, *tol; /* (n_rows, N) */
    measured meas[MAX_MEAS];
    int n_meas;
    double t_default;          /* CLBlast as it is, faster path */
    double t_direct, t_indirect; /* CLBlast with the parameters chosen so far */
    double t_before;
    cllm_gemm_choice before;
    int tried, rejected;
} tshape;

typedef struct {
    cllm_runtime *rt;
    const cllm_tune_opts *o;
    double t0, budget;
    bool budget_hit;
    tshape *sh;
    int n;
    int tried, rejected;
} tuner;

static void say(const tuner *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const tuner *t, const char *fmt, ...) {
    if (!t->o->progress) return;
    char line[512];
    int n = snprintf(line, sizeof line, "[%4.0f s] ", cllm_now() - t->t0);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    t->o->progress(line, t->o->user);
}

/* Processor time of this process (every thread: PoCL's workers run here). */
static double process_seconds(void) {
    struct rusage u;
    if (getrusage(RUSAGE_SELF, &u) != 0) return 0;
    return (double)u.ru_utime.tv_sec + u.ru_utime.tv_usec * 1e-6 + (double)u.ru_stime.tv_sec +
           u.ru_stime.tv_usec * 1e-6;
}

static bool over_budget(tuner *t) {
    if (cllm_now() - t->t0 > t->budget) t->budget_hit = true;
    return t->budget_hit;
}

static const char *op_name(int ta, int tb) {
    static const char *const names[4] = {"nn", "nt", "tn", "tt"};
    return names[ta * 2 + tb];
}

static void add_shape(tshape *list, int *n, int cap, cllm_gemm_shape s, int calls) {
    for (int i = 0; i < *n; i++)
        if (!memcmp(&list[i].key, &s, sizeof s)) {
            list[i].calls += calls;
            return;
        }
    if (*n < cap) {
        memset(&list[*n], 0, sizeof list[*n]);
        list[*n].key = s;
        list[*n].calls = calls;
        (*n)++;
    }
}

/* The products of one training step of cfg at B x T (host/gpt.c, host/ops/): the linear
 * layers forward (nt), their input gradients (nn) and weight gradients (tn), the LM head, and
 * attention's strided batches over B*NH heads. */
static void model_shapes(const cllm_gpt_config *cfg, int B, int T, tshape *list, int *n) {
    const size_t C = (size_t)cfg->n_embd, L = (size_t)cfg->n_layer, BT = (size_t)B * T,
                 Vp = (size_t)cllm_gpt_padded_vocab(cfg), hs = C / (size_t)cfg->n_head,
                 nb = (size_t)B * cfg->n_head, Tz = (size_t)T;
    const int l = (int)L;
    const size_t lin[4][2] = {{C, 3 * C}, {C, C}, {C, 4 * C}, {4 * C, C}}; /* IC, OC */
    for (int i = 0; i < 4; i++) {
        const size_t IC = lin[i][0], OC = lin[i][1];
        add_shape(list, n, MAX_SHAPES, (cllm_gemm_shape){0, 1, BT, OC, IC, 1}, l);
        add_shape(list, n, MAX_SHAPES, (cllm_gemm_shape){0, 0, BT, IC, OC, 1}, l);
        add_shape(list, n, MAX_SHAPES, (cllm_gemm_shape){1, 0, OC, IC, BT, 1}, l);
    }
    add_shape(list, n, MAX_SHAPES, (cllm_gemm_shape){0, 1, BT, Vp, C, 1}, 1);
    add_shape(list, n, MAX_SHAPES, (cllm_gemm_shape){0, 0, BT, C, Vp, 1}, 1);
    add_shape(list, n, MAX_SHAPES, (cllm_gemm_shape){1, 0, Vp, C, BT, 1}, 1);
    add_shape(list, n, MAX_SHAPES, (cllm_gemm_shape){0, 1, Tz, Tz, hs, nb}, 2 * l);
    add_shape(list, n, MAX_SHAPES, (cllm_gemm_shape){0, 0, Tz, hs, Tz, nb}, 2 * l);
    add_shape(list, n, MAX_SHAPES, (cllm_gemm_shape){1, 0, Tz, hs, Tz, nb}, 2 * l);
}

static bool parse_size(const char **p, size_t *out) {
    char *end;
    unsigned long long v = strtoull(*p, &end, 10);
    if (end == *p || v == 0 || v > 2147483647ull) return false;
    *out = (size_t)v;
    *p = end;
    return true;
}

/* "op:MxNxK[xBATCH],..." */
static cllm_status parse_shapes(const char *spec, tshape *list, int *n) {
    const char *p = spec;
    while (*p) {
        cllm_gemm_shape s = {0, 0, 0, 0, 0, 1};
        int code = -1;
        for (int i = 0; i < 4; i++)
            if (!strncmp(p, op_name(i / 2, i % 2), 2) && p[2] == ':') code = i;
        const char *item = p;
        bool ok = code >= 0;
        if (ok) {
            s.ta = code / 2;
            s.tb = code % 2;
            p += 3;
            ok = parse_size(&p, &s.M) && *p++ == 'x' && parse_size(&p, &s.N) && *p++ == 'x' &&
                 parse_size(&p, &s.K);
            if (ok && *p == 'x') {
                p++;
                ok = parse_size(&p, &s.batch);
            }
            ok = ok && (*p == ',' || *p == 0);
        }
        if (!ok) {
            const char *comma = strchr(item, ',');
            int len = comma ? (int)(comma - item) : (int)strlen(item);
            return cllm_fail(CLLM_ERR_USAGE,
                             "--shapes: '%.*s' is not op:MxNxK[xBATCH] with op nn, nt, tn or tt "
                             "(e.g. nt:2048x1152x384 or nt:256x256x64x48)",
                             len, item);
        }
        if (*n >= MAX_SHAPES)
            return cllm_fail(CLLM_ERR_USAGE, "--shapes: at most %d shapes", MAX_SHAPES);
        add_shape(list, n, MAX_SHAPES, s, 1);
        if (*p == ',') p++;
    }
    if (*n == 0) return cllm_fail(CLLM_ERR_USAGE, "--shapes: no shape given");
    return CLLM_OK;
}

/* ---------------------------------------------------------------- operands and references */

static float uniform(uint64_t *x) {
    *x = *x * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((*x >> 40) & 0xFFFFFF) / 8388608.0f - 1.0f; /* [-1, 1) */
}

#define ALPHA 0.75f
#define BETA 0.5f

/* Device operands (random, tight leading dimensions, at an offset) and the reference values of
 * the checked rows: all rows when that is cheap, else the first and last 16 and 32 spread
 * between, of the first and the last matrix of the batch. */
static cllm_status setup_shape(tuner *t, tshape *x, uint64_t seed) {
    cllm_status st = CLLM_OK;
    float *ha = NULL, *hb = NULL;
    x->s = x->key;
    /* very large products are timed on fewer rows: at most 2^25 floats per operand */
    const size_t cap = (size_t)1 << 25, per_row = (x->s.N > x->s.K ? x->s.N : x->s.K) * x->s.batch;
    if (x->s.M * per_row > cap) {
        size_t m = cap / per_row;
        m = m >= 256 ? m / 64 * 64 : (x->s.M < 256 ? x->s.M : 256);
        if (m < x->s.M) x->s.M = m;
    }
    const cllm_gemm_shape *s = &x->s;
    x->lda = s->ta ? s->M : s->K;
    x->ldb = s->tb ? s->K : s->N;
    x->ldc = s->N;
    x->as = s->M * s->K;
    x->bs = s->K * s->N;
    x->cs = s->M * s->N;
    x->na = OFFSET + s->batch * x->as;
    x->nb = OFFSET + s->batch * x->bs;
    x->nc = OFFSET + s->batch * x->cs + GUARD;
    if (x->nb * sizeof(float) > t->rt->info.max_alloc ||
        x->na * sizeof(float) > t->rt->info.max_alloc)
        return cllm_fail(CLLM_ERR_TOO_LARGE,
                         "the product %s %zux%zux%zu (batch %zu) has an operand larger than the "
                         "device's largest allocation",
                         op_name(s->ta, s->tb), s->M, s->N, s->K, s->batch);
    ha = malloc(x->na * sizeof *ha);
    hb = malloc(x->nb * sizeof *hb);
    x->c0 = malloc(x->nc * sizeof *x->c0);
    x->got = malloc(x->nc * sizeof *x->got);
    const size_t total_rows = s->batch * s->M;
    x->rows = malloc(total_rows * sizeof *x->rows);
    if (!ha || !hb || !x->c0 || !x->got || !x->rows) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    uint64_t r = seed;
    for (size_t i = 0; i < x->na; i++)
        ha[i] = uniform(&r);
    for (size_t i = 0; i < x->nb; i++)
        hb[i] = uniform(&r);
    for (size_t i = 0; i < x->nc; i++)
        x->c0[i] = uniform(&r);
    /* which rows */
    x->n_rows = 0;
    if ((double)s->M * s->N * s->K * s->batch <= (double)(1 << 27)) {
        for (size_t i = 0; i < total_rows; i++)
            x->rows[x->n_rows++] = i;
    } else {
        const size_t bs[2] = {0, s->batch - 1};
        for (int q = 0; q < (s->batch > 1 ? 2 : 1); q++)
            for (size_t i = 0; i < s->M; i++) {
                bool take = i < 16 || i + 16 >= s->M || i % (s->M / 32 + 1) == 7;
                if (take) x->rows[x->n_rows++] = bs[q] * s->M + i;
            }
    }
    x->ref = malloc(x->n_rows * s->N * sizeof *x->ref);
    x->tol = malloc(x->n_rows * s->N * sizeof *x->tol);
    if (!x->ref || !x->tol) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    /* fp32 sums of K products: error well within 16 sqrt(K) eps of the sum of |terms| */
    const double tol_rel = 16.0 * sqrt((double)s->K) * 5.96e-8;
    for (size_t q = 0; q < x->n_rows; q++) {
        const size_t b = x->rows[q] / s->M, i = x->rows[q] % s->M;
        const float *a = ha + OFFSET + b * x->as, *bb = hb + OFFSET + b * x->bs;
        const float *c = x->c0 + OFFSET + b * x->cs + i * x->ldc;
        for (size_t j = 0; j < s->N; j++) {
            double acc = 0, mag = 0;
            for (size_t k = 0; k < s->K; k++) {
                const double p = (double)(s->ta ? a[k * x->lda + i] : a[i * x->lda + k]) *
                                 (s->tb ? bb[j * x->ldb + k] : bb[k * x->ldb + j]);
                acc += p;
                mag += fabs(p);
            }
            x->ref[q * s->N + j] = ALPHA * acc + BETA * (double)c[j];
            x->tol[q * s->N + j] =
                tol_rel * (ALPHA * mag + BETA * fabs((double)c[j])) + 1e-6;
        }
    }
    CLLM_TRY(cllm_rt_alloc(t->rt, x->na * sizeof(float), &x->A));
    CLLM_TRY(cllm_rt_alloc(t->rt, x->nb * sizeof(float), &x->B));
    CLLM_TRY(cllm_rt_alloc(t->rt, x->nc * sizeof(float), &x->C));
    CLLM_TRY(cllm_rt_write(t->rt, x->A, 0, ha, x->na * sizeof(float)));
    CLLM_TRY(cllm_rt_write(t->rt, x->B, 0, hb, x->nb * sizeof(float)));
fail:
    free(ha);
    free(hb);
    return st;
}

static void free_shape(tshape *x) {
    if (x->A) clReleaseMemObject(x->A);
    if (x->B) clReleaseMemObject(x->B);
    if (x->C) clReleaseMemObject(x->C);
    free(x->c0);
    free(x->got);
    free(x->rows);
    free(x->ref);
    free(x->tol);
}

static cllm_status run_once(tuner *t, tshape *x, const cllm_gemm_choice *c) {
    return cllm_blas_sgemm_with(t->rt, c, &x->s, ALPHA, x->A, OFFSET, x->lda, x->as, x->B, OFFSET,
                                x->ldb, x->bs, BETA, x->C, OFFSET, x->ldc, x->cs);
}

/* Whether C equals the reference at the checked rows and nothing outside the matrices moved. */
static bool result_ok(const tshape *x) {
    for (size_t i = 0; i < OFFSET; i++)
        if (x->got[i] != x->c0[i]) return false;
    for (size_t i = x->nc - GUARD; i < x->nc; i++)
        if (x->got[i] != x->c0[i]) return false;
    const size_t N = x->s.N;
    for (size_t q = 0; q < x->n_rows; q++) {
        const size_t b = x->rows[q] / x->s.M, i = x->rows[q] % x->s.M;
        const float *g = x->got + OFFSET + b * x->cs + i * x->ldc;
        for (size_t j = 0; j < N; j++) {
            const double d = fabs((double)g[j] - x->ref[q * N + j]);
            if (!(d <= x->tol[q * N + j])) return false; /* NaN fails too */
        }
    }
    return true;
}

static void describe_choice(const cllm_gemm_choice *c, char *buf, size_t cap) {
    if (c->path == CLLM_GEMM_CLLM)
        snprintf(buf, cap, "cllm vw=%d mr=%d nv=%d gm=%d kc=%d", c->k.vw, c->k.mr, c->k.nv,
                 c->k.gm, c->k.kc);
    else
        snprintf(buf, cap, "%s", cllm_gemm_path_name(c->path));
}

/* Check `c` on x, then time it: the best of `reps` runs (fewer when a run takes `give_up`
 * seconds or more). BAD_RESULT when the result is wrong, FAILED when it does not run. */
static double measure(tuner *t, tshape *x, const cllm_gemm_choice *c, int reps, double give_up) {
    cllm_runtime *rt = t->rt;
    x->tried++;
    t->tried++;
    char what[96];
    describe_choice(c, what, sizeof what);
    cllm_status st = cllm_rt_write(rt, x->C, 0, x->c0, x->nc * sizeof(float));
    if (st == CLLM_OK) st = run_once(t, x, c);
    if (st == CLLM_OK) st = cllm_rt_read(rt, x->C, 0, x->got, x->nc * sizeof(float));
    if (st != CLLM_OK) {
        say(t, "  %s on %s %zux%zux%zux%zu failed: %s", what, op_name(x->s.ta, x->s.tb), x->s.M,
            x->s.N, x->s.K, x->s.batch, cllm_last_error());
        x->rejected++;
        t->rejected++;
        return FAILED;
    }
    if (!result_ok(x)) {
        say(t, "  %s on %s %zux%zux%zux%zu: wrong result, rejected", what,
            op_name(x->s.ta, x->s.tb), x->s.M, x->s.N, x->s.K, x->s.batch);
        x->rejected++;
        t->rejected++;
        return BAD_RESULT;
    }
    /* --metric cpu: processor time per compute unit, unless the product has too few tiles to
     * keep every unit busy (then wall-clock time, which shows the idle units) */
    bool cpu = t->o->cpu_time;
    if (cpu && c->path == CLLM_GEMM_CLLM) {
        const size_t nr = (size_t)c->k.nv * c->k.vw;
        const size_t tiles = (x->s.M + c->k.mr - 1) / c->k.mr * ((x->s.N + nr - 1) / nr) * x->s.batch;
        cpu = tiles >= 4 * (size_t)rt->info.compute_units;
    }
    const double units = rt->info.compute_units > 0 ? rt->info.compute_units : 1;
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        if (cllm_runtime_finish(rt) != CLLM_OK) return FAILED;
        const double t0 = cllm_now(), c0 = process_seconds();
        if (run_once(t, x, c) != CLLM_OK || cllm_runtime_finish(rt) != CLLM_OK) return FAILED;
        const double dt = cpu ? (process_seconds() - c0) / units : cllm_now() - t0;
        if (dt < best) best = dt;
        if (dt >= give_up) break;
    }
    return best;
}

static double gflops(const cllm_gemm_shape *s, double seconds) {
    return seconds > 0 ? 2.0 * s->M * s->N * s->K * s->batch / seconds / 1e9 : 0;
}

static int reps_for(const tuner *t) { return t->o->quick ? 1 : 3; }

static double best_cllm(const tshape *x, int *index) {
    double best = 1e30;
    for (int i = 0; i < x->n_meas; i++)
        if (x->meas[i].c.path == CLLM_GEMM_CLLM && x->meas[i].t > 0 && x->meas[i].t < best) {
            best = x->meas[i].t;
            if (index) *index = i;
        }
    return best;
}

static double shape_best(const tshape *x) {
    double b = best_cllm(x, NULL);
    if (x->t_direct > 0 && x->t_direct < b) b = x->t_direct;
    if (x->t_indirect > 0 && x->t_indirect < b) b = x->t_indirect;
    return b;
}

/* Measure a cl/gemm.cl variant on x unless it was (memoised). */
static double try_variant(tuner *t, tshape *x, cllm_gemm_kernel k) {
    if (k.kc > 0 && (size_t)k.kc >= x->s.K) k.kc = 0;
    cllm_gemm_choice c = {CLLM_GEMM_CLLM, k};
    for (int i = 0; i < x->n_meas; i++)
        if (!memcmp(&x->meas[i].c, &c, sizeof c)) return x->meas[i].t;
    if (x->n_meas >= MAX_MEAS || over_budget(t)) return FAILED;
    double best = shape_best(x);
    double s = measure(t, x, &c, reps_for(t), best < 1e29 ? 3 * best : 1e30);
    x->meas[x->n_meas++] = (measured){c, s};
    return s;
}

/* ---------------------------------------------------------------- stage 1: cl/gemm.cl */

static int default_vw(const tuner *t) {
    cllm_tune_table b;
    int vw = 8;
    if (cllm_tune_builtin(&t->rt->info, &b)) vw = b.fallback.k.vw;
    cllm_tune_table_clear(&b);
    return vw;
}

static void stage_cllm(tuner *t) {
    const int vw = default_vw(t), scale = vw >= 16 ? 1 : 16 / vw;
    /* register tiles mr x nv (in vectors of 16 floats; more vectors when narrower) */
    static const int grid[][2] = {{8, 2},  {14, 2}, {4, 4}, {6, 2}, {4, 3}, {6, 3}, {6, 4}, {8, 1},
                                  {8, 3},  {10, 2}, {12, 2}, {12, 1}, {16, 1}, {4, 2}, {10, 1},
                                  {14, 1}};
    const int n_grid = t->o->quick ? 4 : (int)(sizeof grid / sizeof *grid);
    say(t, "stage 1: cl/gemm.cl register tiles (%d) on %d shapes", n_grid, t->n);
    for (int g = 0; g < n_grid && !over_budget(t); g++) {
        for (int i = 0; i < t->n && !over_budget(t); i++) {
            const tshape *x = &t->sh[i];
            cllm_gemm_kernel k = {vw, grid[g][0], grid[g][1] * scale, 16, x->s.K > 512 ? 256 : 0};
            try_variant(t, &t->sh[i], k);
        }
        say(t, "  tile %dx%d done (%.0f s)", grid[g][0], grid[g][1] * scale * vw,
            cllm_now() - t->t0);
    }
    say(t, "stage 1b: tile order and K slices per shape");
    for (int i = 0; i < t->n && !over_budget(t); i++) {
        tshape *x = &t->sh[i];
        int bi = -1;
        if (best_cllm(x, &bi) > 1e29) continue;
        cllm_gemm_kernel best = x->meas[bi].c.k;
        static const int gms[] = {1, 4, 64, 16};
        for (int g = 0; g < 4 && !t->o->quick; g++) {
            cllm_gemm_kernel k = best;
            k.gm = gms[g];
            try_variant(t, x, k);
        }
        best_cllm(x, &bi);
        best = x->meas[bi].c.k;
        static const int kcs[] = {0, 128, 256, 512, 1024};
        for (int q = 0; q < 5; q++) {
            cllm_gemm_kernel k = best;
            k.kc = kcs[q];
            if (kcs[q] == 0 || (size_t)kcs[q] < x->s.K) try_variant(t, x, k);
        }
        if (t->o->quick) continue;
        best_cllm(x, &bi);
        best = x->meas[bi].c.k;
        const int nb[][2] = {{best.mr - 2, best.nv}, {best.mr + 2, best.nv}, {best.mr, best.nv + 1}};
        for (int q = 0; q < 3; q++) {
            cllm_gemm_kernel k = best;
            k.mr = nb[q][0];
            k.nv = nb[q][1];
            if (k.mr >= 1 && k.mr * k.nv <= 30 / scale) try_variant(t, x, k);
        }
        if (vw == 16 && best.nv * 2 <= 8) {
            cllm_gemm_kernel k = best;
            k.vw = 8;
            k.nv = best.nv * 2;
            try_variant(t, x, k);
        }
    }
}

/* ---------------------------------------------------------------- stage 2: CLBlast */

typedef struct {
    const char *name;
    int n;
    const size_t *values;
} param_space;

/* A CLBlast kernel's search space: parameter value lists and validity (CLBlast's own tuner's
 * constraints, plus the device's work-group and local-memory limits). */
typedef struct {
    const char *kernel;
    param_space p[16];
    int n;
    bool (*valid)(const cllm_clblast_params *, const cllm_device_info *);
} kernel_space;

static size_t pv(const cllm_clblast_params *p, const char *name) {
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->name[i], name)) return p->value[i];
    return 0;
}

#define MULT(a, b) ((b) != 0 && (a) % (b) == 0)

static bool xgemm_valid(const cllm_clblast_params *p, const cllm_device_info *d) {
    size_t MWG = pv(p, "MWG"), NWG = pv(p, "NWG"), KWG = pv(p, "KWG"), MDIMC = pv(p, "MDIMC"),
           NDIMC = pv(p, "NDIMC"), MDIMA = pv(p, "MDIMA"), NDIMB = pv(p, "NDIMB"),
           KWI = pv(p, "KWI"), VWM = pv(p, "VWM"), VWN = pv(p, "VWN"), SA = pv(p, "SA"),
           SB = pv(p, "SB");
    return MULT(KWG, KWI) && MULT(MWG, MDIMC * VWM) && MULT(NWG, NDIMC * VWN) &&
           MULT(MWG, MDIMA * VWM) && MULT(NWG, NDIMB * VWN) && MDIMA && NDIMB &&
           MULT(KWG, (MDIMC * NDIMC) / MDIMA) && MULT(KWG, (MDIMC * NDIMC) / NDIMB) &&
           MDIMC * NDIMC <= d->max_work_group &&
           (SA * KWG * MWG + SB * KWG * NWG) * sizeof(float) <= d->local_mem;
}

static bool direct_valid(const cllm_clblast_params *p, const cllm_device_info *d) {
    size_t WGD = pv(p, "WGD"), MDIMCD = pv(p, "MDIMCD"), NDIMCD = pv(p, "NDIMCD"),
           MDIMAD = pv(p, "MDIMAD"), NDIMBD = pv(p, "NDIMBD"), KWID = pv(p, "KWID"),
           VWMD = pv(p, "VWMD"), VWND = pv(p, "VWND"), PADA = pv(p, "PADA"), PADB = pv(p, "PADB");
    return MULT(WGD, KWID) && MULT(WGD, MDIMCD * VWMD) && MULT(WGD, NDIMCD * VWND) &&
           MULT(WGD, MDIMAD * VWMD) && MULT(WGD, NDIMBD * VWND) && MDIMAD && NDIMBD &&
           MULT(WGD, (MDIMCD * NDIMCD) / MDIMAD) && MULT(WGD, (MDIMCD * NDIMCD) / NDIMBD) &&
           MDIMCD * NDIMCD <= d->max_work_group &&
           (WGD * (WGD + PADA) + WGD * (WGD + PADB)) * sizeof(float) <= d->local_mem;
}

static bool copy_valid(const cllm_clblast_params *p, const cllm_device_info *d) {
    return pv(p, "COPY_DIMX") * pv(p, "COPY_DIMY") <= d->max_work_group;
}
static bool pad_valid(const cllm_clblast_params *p, const cllm_device_info *d) {
    return pv(p, "PAD_DIMX") * pv(p, "PAD_DIMY") <= d->max_work_group;
}
static bool transpose_valid(const cllm_clblast_params *p, const cllm_device_info *d) {
    size_t dim = pv(p, "TRA_DIM"), w = pv(p, "TRA_WPT");
    return dim * dim <= d->max_work_group &&
           dim * w * (dim * w + pv(p, "TRA_PAD")) * sizeof(float) <= d->local_mem;
}
static bool padtranspose_valid(const cllm_clblast_params *p, const cllm_device_info *d) {
    size_t tile = pv(p, "PADTRA_TILE"), w = pv(p, "PADTRA_WPT");
    return tile * tile <= d->max_work_group &&
           tile * w * (tile * w + pv(p, "PADTRA_PAD")) * sizeof(float) <= d->local_mem;
}

static const size_t V0[] = {0}, V1[] = {1}, V01[] = {0, 1}, V2[] = {2},
                    V124[] = {1, 2, 4}, V1248[] = {1, 2, 4, 8},
                    V81632[] = {8, 16, 32}, V1632[] = {16, 32}, V28[] = {2, 8},
                    V163264128[] = {16, 32, 64, 128},
                    V8163264[] = {8, 16, 32, 64}, V12481[] = {1, 2, 4, 8, 16},
                    V4_64[] = {4, 8, 16, 32, 64};
#define PS(name, arr) {name, (int)(sizeof arr / sizeof *arr), arr}

static const kernel_space SPACES[] = {
    {"Xgemm",
     {PS("GEMMK", V0), PS("KREG", V1), PS("MWG", V163264128), PS("NWG", V163264128),
      PS("KWG", V1632), PS("MDIMC", V81632), PS("NDIMC", V81632), PS("MDIMA", V81632),
      PS("NDIMB", V81632), PS("KWI", V2), PS("VWM", V1248), PS("VWN", V1248), PS("STRM", V0),
      PS("STRN", V0), PS("SA", V01), PS("SB", V01)},
     16,
     xgemm_valid},
    {"XgemmDirect",
     {PS("WGD", V8163264), PS("MDIMCD", V81632), PS("NDIMCD", V81632), PS("MDIMAD", V81632),
      PS("NDIMBD", V81632), PS("KWID", V28), PS("VWMD", V1248), PS("VWND", V1248),
      PS("PADA", V1), PS("PADB", V1)},
     10,
     direct_valid},
    {"Padtranspose",
     {PS("PADTRA_TILE", V8163264), PS("PADTRA_WPT", V12481), PS("PADTRA_PAD", V01)},
     3,
     padtranspose_valid},
    {"Pad",
     {PS("PAD_DIMX", V81632), PS("PAD_DIMY", V81632), PS("PAD_WPTX", V124),
      PS("PAD_WPTY", V124)},
     4,
     pad_valid},
    {"Transpose",
     {PS("TRA_DIM", V4_64), PS("TRA_WPT", V12481), PS("TRA_PAD", V01), PS("TRA_SHUFFLE", V01)},
     4,
     transpose_valid},
    {"Copy",
     {PS("COPY_DIMX", V81632), PS("COPY_DIMY", V81632), PS("COPY_WPT", V1248),
      PS("COPY_VW", V1248)},
     4,
     copy_valid},
};
#define N_SPACES ((int)(sizeof SPACES / sizeof *SPACES))

/* Up to `want` valid parameter sets of a space in a seeded random order (the same every run),
 * after `first` when that is valid. Returns how many were written. */
static int sample_space(const kernel_space *ks, const cllm_device_info *d,
                        const cllm_clblast_params *first, cllm_clblast_params *out, int want) {
    size_t total = 1;
    for (int i = 0; i < ks->n; i++)
        total *= (size_t)ks->p[i].n;
    int n = 0;
    if (first && first->n > 0 && ks->valid(first, d) && n < want) out[n++] = *first;
    uint64_t r = 0x5eed5eedull;
    for (size_t tries = 0; tries < 20 * total && n < want; tries++) {
        cllm_clblast_params p;
        memset(&p, 0, sizeof p);
        strcpy(p.kernel, ks->kernel);
        for (int i = 0; i < ks->n; i++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            cllm_clblast_params_set(&p, ks->p[i].name, ks->p[i].values[(r >> 33) % ks->p[i].n]);
        }
        if (!ks->valid(&p, d)) continue;
        bool dup = false;
        for (int j = 0; j < n && !dup; j++)
            dup = !memcmp(&out[j], &p, sizeof p);
        if (!dup) out[n++] = p;
    }
    return n;
}

static void params_string(const cllm_clblast_params *p, char *buf, size_t cap) {
    size_t used = (size_t)snprintf(buf, cap, "%s:", p->kernel);
    for (int i = 0; i < p->n && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, " %s=%zu", p->name[i], p->value[i]);
}

typedef struct {
    cllm_clblast_params chosen[CLLM_TUNE_MAX_CLBLAST]; /* overrides that won */
    int n_chosen;
    bool dirty; /* a kernel was overridden but CLBlast's own parameters won: later timings of
                   the indirect path would not be CLBlast's, so the helpers are not searched */
} clblast_search;

/* Time `path` on every shape with the parameters in effect; the step-weighted total (1e30 when
 * a shape's result is wrong). times[i] receives each shape's time. */
static double time_path(tuner *t, cllm_gemm_path path, double *times) {
    const cllm_gemm_choice c = {path};
    double total = 0;
    for (int i = 0; i < t->n; i++) {
        tshape *x = &t->sh[i];
        double best = shape_best(x);
        times[i] = measure(t, x, &c, reps_for(t), best < 1e29 ? 3 * best : 1e30);
        total += times[i] > 0 ? x->calls * times[i] : 1e30;
    }
    return total;
}

/* Search one CLBlast kernel: CLBlast's own parameters (when `incumbent` is NULL they are what
 * `base` holds) against `n` candidates, on `path`. */
static void search_kernel(tuner *t, clblast_search *cs, const kernel_space *ks, cllm_gemm_path path,
                          const double *base, int n_cand, const cllm_clblast_params *seed_set) {
    cllm_clblast_params *cands = calloc((size_t)n_cand + 1, sizeof *cands);
    double *times = calloc((size_t)t->n, sizeof *times), *best_times = calloc((size_t)t->n, sizeof *best_times);
    if (!cands || !times || !best_times) goto done;
    int n = sample_space(ks, &t->rt->info, seed_set, cands, n_cand);
    double best = 0;
    for (int i = 0; i < t->n; i++) {
        best_times[i] = base[i];
        best += base[i] > 0 ? t->sh[i].calls * base[i] : 1e30;
    }
    int best_i = -1;
    bool overridden = false;
    say(t, "stage 2: CLBlast %s, %d candidates (%s path)", ks->kernel, n, cllm_gemm_path_name(path));
    for (int c = 0; c < n && !over_budget(t); c++) {
        char desc[512];
        params_string(&cands[c], desc, sizeof desc);
        if (cllm_blas_clblast_override(t->rt, &cands[c]) != CLLM_OK) {
            say(t, "  %s: %s", desc, cllm_last_error());
            continue;
        }
        overridden = true;
        double total = time_path(t, path, times);
        say(t, "  %s: %s", desc, total < 1e29 ? "ok" : "wrong or failed on a shape");
        if (total < best) {
            best = total;
            best_i = c;
            memcpy(best_times, times, (size_t)t->n * sizeof *times);
        }
    }
    if (best_i >= 0) {
        cllm_blas_clblast_override(t->rt, &cands[best_i]);
        if (cs->n_chosen < CLLM_TUNE_MAX_CLBLAST) cs->chosen[cs->n_chosen++] = cands[best_i];
    } else if (overridden) {
        cs->dirty = true;
    }
    for (int i = 0; i < t->n; i++) {
        double *slot = path == CLLM_GEMM_CLBLAST_DIRECT ? &t->sh[i].t_direct : &t->sh[i].t_indirect;
        *slot = best_times[i];
    }
done:
    free(cands);
    free(times);
    free(best_times);
}

static void stage_clblast(tuner *t, clblast_search *cs, bool fresh) {
    double *direct = calloc((size_t)t->n, sizeof *direct),
           *indirect = calloc((size_t)t->n, sizeof *indirect);
    if (!direct || !indirect) goto done;
    for (int i = 0; i < t->n; i++) {
        direct[i] = fresh ? t->sh[i].t_direct : FAILED;
        indirect[i] = fresh ? t->sh[i].t_indirect : FAILED;
    }
    /* CLBlast's parameters for PoCL's CPU (DESIGN.md) lead the Xgemm candidates */
    cllm_clblast_params pocl;
    cllm_tune_pocl_xgemm(&pocl);
    const bool quick = t->o->quick;
    search_kernel(t, cs, &SPACES[0], CLLM_GEMM_CLBLAST_INDIRECT, indirect, quick ? 1 : 24, &pocl);
    search_kernel(t, cs, &SPACES[1], CLLM_GEMM_CLBLAST_DIRECT, direct, quick ? 0 : 16, NULL);
    for (int k = 2; k < N_SPACES && !quick && !cs->dirty && !over_budget(t); k++) {
        for (int i = 0; i < t->n; i++)
            indirect[i] = t->sh[i].t_indirect;
        search_kernel(t, cs, &SPACES[k], CLLM_GEMM_CLBLAST_INDIRECT, indirect, 6, NULL);
    }
done:
    free(direct);
    free(indirect);
}

/* ---------------------------------------------------------------- stage 3 and the table */

/* The best cl/gemm.cl variants of each shape timed again in turns (noise on a shared machine
 * favours whichever ran in a quiet moment). */
static void playoff(tuner *t) {
    say(t, "stage 3: play-off of each shape's best variants");
    for (int i = 0; i < t->n && !over_budget(t); i++) {
        tshape *x = &t->sh[i];
        int top[3] = {-1, -1, -1};
        for (int q = 0; q < 3; q++) {
            double b = 1e30;
            for (int j = 0; j < x->n_meas; j++) {
                if (x->meas[j].c.path != CLLM_GEMM_CLLM || x->meas[j].t <= 0 || j == top[0] ||
                    j == top[1])
                    continue;
                if (x->meas[j].t < b) b = x->meas[j].t, top[q] = j;
            }
        }
        for (int round = 0; round < 2; round++)
            for (int q = 0; q < 3; q++) {
                if (top[q] < 0) continue;
                double s = measure(t, x, &x->meas[top[q]].c, 2, 1e30);
                if (s > 0 && round == 0) x->meas[top[q]].t = s;
                if (s > 0 && s < x->meas[top[q]].t) x->meas[top[q]].t = s;
            }
    }
}

static double path_time(const tshape *x, unsigned long long threshold) {
    const unsigned long long mnk = (unsigned long long)x->s.M * x->s.N * x->s.K;
    const double t = mnk < threshold * threshold * threshold ? x->t_direct : x->t_indirect;
    return t > 0 ? t : 1e30;
}

/* The new table. CLBlast takes its direct path below M*N*K = T^3 and its indirect one above
 * (XGEMM_MIN_INDIRECT_SIZE = T); switching that parameter per product costs milliseconds, so
 * one T is chosen for all: the one that makes the step's products fastest, each product then
 * taking CLBlast or the best cl/gemm.cl variant, whichever is faster. */
static cllm_status build_table(tuner *t, const cllm_tune_table *before, const clblast_search *cs,
                               cllm_tune_table *out) {
    memset(out, 0, sizeof *out);
    strcpy(out->origin, "cache");
    out->entries = calloc((size_t)t->n, sizeof *out->entries);
    if (!out->entries) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    double cl_best[MAX_SHAPES], weight[MAX_SHAPES] = {0};
    int cl_index[MAX_SHAPES];
    for (int i = 0; i < t->n; i++) {
        cl_index[i] = -1;
        cl_best[i] = best_cllm(&t->sh[i], &cl_index[i]);
    }
    unsigned long long best_T = 0;
    double best_cost = 1e300;
    for (int c = -1; c <= t->n; c++) {
        unsigned long long T = 0;
        if (c == t->n) T = 1ull << 20;
        if (c >= 0 && c < t->n)
            T = (unsigned long long)ceil(
                    cbrt((double)t->sh[c].s.M * t->sh[c].s.N * (double)t->sh[c].s.K)) + 1;
        double cost = 0;
        for (int i = 0; i < t->n; i++)
            cost += t->sh[i].calls * fmin(cl_best[i], path_time(&t->sh[i], T));
        if (cost < best_cost) best_cost = cost, best_T = T;
    }
    bool uses_clblast = false;
    for (int i = 0; i < t->n; i++) {
        tshape *x = &t->sh[i];
        cllm_tune_entry *e = &out->entries[out->n_entries++];
        e->shape = x->key;
        double b = cl_best[i];
        if (cl_index[i] >= 0) e->choice = x->meas[cl_index[i]].c;
        const double tc = path_time(x, best_T);
        if (tc < b) {
            b = tc;
            e->choice = (cllm_gemm_choice){CLLM_GEMM_CLBLAST};
            uses_clblast = true;
        }
        if (b > 1e29) { /* nothing else ran correctly: what was there if it did, else CLBlast */
            e->choice = x->t_before > 0 ? x->before : (cllm_gemm_choice){CLLM_GEMM_CLBLAST};
            b = x->t_before > 0 ? x->t_before : 1e30;
        }
        e->gflops = b < 1e29 ? gflops(&x->s, b) : 0;
        weight[i] = b < 1e29 ? x->calls * b : 0;
    }
    /* the fallback: the choice that carries the most time */
    double wmax = -1;
    out->fallback = (cllm_gemm_choice){CLLM_GEMM_CLBLAST};
    for (int i = 0; i < t->n; i++) {
        double w = 0;
        for (int j = 0; j < t->n; j++)
            if (!memcmp(&out->entries[j].choice, &out->entries[i].choice, sizeof(cllm_gemm_choice)))
                w += weight[j];
        if (w > wmax) wmax = w, out->fallback = out->entries[i].choice;
    }
    if (out->fallback.path == CLLM_GEMM_CLBLAST) uses_clblast = true;
    const cllm_clblast_params *src = t->o->search_clblast ? cs->chosen : before->clblast;
    const int n_src = t->o->search_clblast ? cs->n_chosen : before->n_clblast;
    for (int i = 0; i < n_src && out->n_clblast < CLLM_TUNE_MAX_CLBLAST; i++)
        if (strcmp(src[i].kernel, "GemmRoutine") != 0) out->clblast[out->n_clblast++] = src[i];
    if (uses_clblast && t->o->search_clblast && out->n_clblast < CLLM_TUNE_MAX_CLBLAST) {
        cllm_clblast_params *g = &out->clblast[out->n_clblast++];
        memset(g, 0, sizeof *g);
        strcpy(g->kernel, "GemmRoutine");
        cllm_clblast_params_set(g, "XGEMM_MIN_INDIRECT_SIZE", (size_t)best_T);
    }
    return CLLM_OK;
}

/* ---------------------------------------------------------------- the run */

static cllm_status collect_shapes(const cllm_tune_opts *o, tshape *list, int *n) {
    *n = 0;
    if (o->shapes && *o->shapes) return parse_shapes(o->shapes, list, n);
    cllm_gpt_config cfg;
    if (o->model) {
        cllm_status st = cllm_gpt_config_load(o->model, &cfg);
        if (st != CLLM_OK) return st;
    } else {
        /* models/gpt-mini.json */
        memset(&cfg, 0, sizeof cfg);
        cfg.vocab_size = 8192;
        cfg.n_positions = 256;
        cfg.n_embd = 384;
        cfg.n_layer = 6;
        cfg.n_head = 6;
    }
    int T = o->seq > 0 ? o->seq : (cfg.n_positions < 256 ? cfg.n_positions : 256);
    int B = o->batch > 0 ? o->batch : 8;
    if (T > cfg.n_positions)
        return cllm_fail(CLLM_ERR_USAGE, "--seq %d exceeds the model's n_positions (%d)", T,
                         cfg.n_positions);
    model_shapes(&cfg, B, T, list, n);
    return CLLM_OK;
}

static void fill_report(const tuner *t, const cllm_tune_table *table, cllm_tune_report *rep) {
    for (int i = 0; i < t->n; i++) {
        const tshape *x = &t->sh[i];
        cllm_tune_shape_result *r = &rep->shapes[i];
        snprintf(r->op, sizeof r->op, "%s", op_name(x->key.ta, x->key.tb));
        r->M = x->key.M;
        r->N = x->key.N;
        r->K = x->key.K;
        r->batch = x->key.batch;
        r->calls = x->calls;
        r->tuned_M = x->s.M;
        describe_choice(&x->before, r->before, sizeof r->before);
        r->before_gflops = gflops(&x->s, x->t_before);
        r->clblast_default_gflops = gflops(&x->s, x->t_default);
        double c = 1e30;
        if (x->t_direct > 0) c = x->t_direct;
        if (x->t_indirect > 0 && x->t_indirect < c) c = x->t_indirect;
        r->clblast_gflops = c < 1e29 ? gflops(&x->s, c) : 0;
        double k = best_cllm(x, NULL);
        r->cllm_gflops = k < 1e29 ? gflops(&x->s, k) : 0;
        describe_choice(&table->entries[i].choice, r->chosen, sizeof r->chosen);
        r->gflops = table->entries[i].gflops;
        r->tried = x->tried;
        r->rejected = x->rejected;
    }
    size_t used = 0;
    rep->clblast_params[0] = 0;
    for (int i = 0; i < table->n_clblast && used < sizeof rep->clblast_params; i++) {
        char buf[512];
        params_string(&table->clblast[i], buf, sizeof buf);
        used += (size_t)snprintf(rep->clblast_params + used, sizeof rep->clblast_params - used,
                                 "%s%s", i ? "; " : "", buf);
    }
}

cllm_status cllm_tune_run(cllm_runtime *rt, const cllm_tune_opts *o, cllm_tune_report *rep) {
    memset(rep, 0, sizeof *rep);
    tuner t = {rt, o, cllm_now(), o->budget_s > 0 ? o->budget_s : (o->quick ? 90 : 600)};
    cllm_tune_table before, none, table;
    memset(&before, 0, sizeof before);
    memset(&table, 0, sizeof table);
    clblast_search cs;
    memset(&cs, 0, sizeof cs);
    char *path = NULL;
    cllm_status st = CLLM_OK;
    t.sh = calloc(MAX_SHAPES, sizeof *t.sh);
    if (!t.sh) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    CLLM_TRY(collect_shapes(o, t.sh, &t.n));
    snprintf(rep->device, sizeof rep->device, "%s", rt->info.name);
    path = cllm_tune_cache_path(rt);
    if (!path) {
        st = CLLM_ERR_USAGE;
        goto fail;
    }
    snprintf(rep->cache_path, sizeof rep->cache_path, "%s", path);
    for (int i = 0; i < t.n; i++)
        CLLM_TRY(setup_shape(&t, &t.sh[i], 0x1234567ull + 977 * (uint64_t)i));

    /* stage 0: the table in effect before and CLBlast as it is, which is only measurable
     * before anything overrode its parameters: so first the before table's cl/gemm.cl
     * choices (they do not depend on CLBlast), then CLBlast's two paths (stopping early when
     * a run takes three times the best so far), then the before table's CLBlast parameters
     * and its CLBlast choices. */
    CLLM_TRY(cllm_tune_table_for(rt, &before));
    const bool fresh = rt->blas == NULL;
    memset(&none, 0, sizeof none);
    strcpy(none.origin, "none");
    none.fallback.path = CLLM_GEMM_CLBLAST;
    if (fresh) CLLM_TRY(cllm_blas_set_table(rt, &none));
    say(&t, "stage 0: %d shapes; the baseline (CLBlast as it is, and the '%s' table)", t.n,
        before.origin);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) CLLM_TRY(cllm_blas_set_table(rt, &before));
        for (int i = 0; i < t.n; i++) {
            tshape *x = &t.sh[i];
            if (pass == 0) {
                x->t_direct = x->t_indirect = x->t_before = FAILED;
                x->before = cllm_tune_table_lookup(&before, &x->key);
                if (x->before.path == CLLM_GEMM_CLLM && (size_t)x->before.k.kc >= x->s.K)
                    x->before.k.kc = 0;
            }
            if ((x->before.path == CLLM_GEMM_CLLM) == (pass == 0)) {
                x->t_before = measure(&t, x, &x->before, reps_for(&t), 1e30);
                if (x->before.path == CLLM_GEMM_CLLM && x->t_before > 0 && x->n_meas < MAX_MEAS)
                    x->meas[x->n_meas++] = (measured){x->before, x->t_before};
            }
            if (pass == 0 && fresh && o->search_clblast && !over_budget(&t)) {
                const cllm_gemm_choice d = {CLLM_GEMM_CLBLAST_DIRECT},
                                       in = {CLLM_GEMM_CLBLAST_INDIRECT};
                double b = shape_best(x);
                x->t_indirect = measure(&t, x, &in, reps_for(&t), b < 1e29 ? 3 * b : 1e30);
                b = shape_best(x);
                x->t_direct = measure(&t, x, &d, reps_for(&t), b < 1e29 ? 3 * b : 1e30);
                x->t_default = x->t_direct > 0 && (x->t_indirect <= 0 || x->t_direct < x->t_indirect)
                                   ? x->t_direct
                                   : x->t_indirect;
            }
            if (pass == 1)
                say(&t, "  %s %zux%zux%zux%zu: CLBlast as it is %.1f GFLOP/s, before (%s) %.1f "
                        "GFLOP/s",
                    op_name(x->s.ta, x->s.tb), x->s.M, x->s.N, x->s.K, x->s.batch,
                    gflops(&x->s, x->t_default), before.origin, gflops(&x->s, x->t_before));
        }
    }
    if (!fresh) {
        /* CLBlast's own parameters are gone in this process: its paths are timed afresh with
         * the ones in effect */
        for (int i = 0; i < t.n; i++)
            t.sh[i].t_direct = t.sh[i].t_indirect = FAILED;
    }
    if (o->search_cllm) stage_cllm(&t);
    if (o->search_clblast) stage_clblast(&t, &cs, fresh);
    if (o->search_cllm && !o->quick) playoff(&t);

    CLLM_TRY(build_table(&t, &before, &cs, &table));
    rep->n_shapes = t.n;
    rep->shapes = calloc((size_t)t.n, sizeof *rep->shapes);
    if (!rep->shapes) {
        st = cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    fill_report(&t, &table, rep);
    rep->tried = t.tried;
    rep->rejected = t.rejected;
    rep->budget_hit = t.budget_hit;
    rep->cpu_time = o->cpu_time;
    CLLM_TRY(cllm_blas_set_table(rt, &table));
    if (o->save) {
        CLLM_TRY(cllm_tune_cache_save(rt, path, &table));
        rep->saved = true;
    }
    rep->seconds = cllm_now() - t.t0;
fail:
    for (int i = 0; i < t.n; i++)
        free_shape(&t.sh[i]);
    free(t.sh);
    free(path);
    cllm_tune_table_clear(&before);
    cllm_tune_table_clear(&table);
    if (st != CLLM_OK) cllm_tune_report_free(rep);
    return st;
}

void cllm_tune_report_free(cllm_tune_report *rep) {
    if (!rep) return;
    free(rep->shapes);
    rep->shapes = NULL;
    rep->n_shapes = 0;
}

/* ---------------------------------------------------------------- --show */

cllm_status cllm_tune_describe(cllm_runtime *rt, char **json) {
    const cllm_tune_table *t = NULL;
    cllm_status st = cllm_blas_table(rt, &t);
    if (st != CLLM_OK) return st;
    cJSON *o = cJSON_CreateObject();
    if (!o) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    cJSON_AddStringToObject(o, "device", rt->info.name);
    cJSON_AddStringToObject(o, "origin", t->origin);
    char *path = cllm_tune_cache_path(rt);
    cJSON_AddStringToObject(o, "cache_path", path ? path : "");
    free(path);
    cJSON *cl = cJSON_AddArrayToObject(o, "clblast");
    for (int i = 0; i < t->n_clblast; i++) {
        char buf[512];
        params_string(&t->clblast[i], buf, sizeof buf);
        cJSON_AddItemToArray(cl, cJSON_CreateString(buf));
    }
    char buf[96];
    describe_choice(&t->fallback, buf, sizeof buf);
    cJSON_AddStringToObject(o, "fallback", buf);
    cJSON *arr = cJSON_AddArrayToObject(o, "gemm");
    for (int i = 0; i < t->n_entries; i++) {
        const cllm_tune_entry *e = &t->entries[i];
        cJSON *x = cJSON_CreateObject();
        char shape[96];
        snprintf(shape, sizeof shape, "%s:%zux%zux%zux%zu", op_name(e->shape.ta, e->shape.tb),
                 e->shape.M, e->shape.N, e->shape.K, e->shape.batch);
        cJSON_AddStringToObject(x, "shape", shape);
        describe_choice(&e->choice, buf, sizeof buf);
        cJSON_AddStringToObject(x, "choice", buf);
        cJSON_AddNumberToObject(x, "gflops", e->gflops);
        cJSON_AddItemToArray(arr, x);
    }
    *json = cJSON_Print(o);
    cJSON_Delete(o);
    return *json ? CLLM_OK : cllm_fail(CLLM_ERR_NOMEM, "out of memory");
}
