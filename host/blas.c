/* Matrix products: the one file that calls CLBlast, and the dispatcher between CLBlast's paths
 * and cllm's own kernels (cl/gemm.cl) by the tune table (host/tune_cache.c). */
#include "blas.h"

#include "ops/ops.h" /* CLLM_ARG */
#include "tune.h"
#include "cllm/util.h"

#include <clblast_c.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- names and the table */

static const char *const PATH_NAMES[CLLM_GEMM_PATHS] = {"clblast", "clblast-direct",
                                                        "clblast-indirect", "cllm"};

const char *cllm_gemm_path_name(cllm_gemm_path p) {
    return (int)p >= 0 && p < CLLM_GEMM_PATHS ? PATH_NAMES[p] : NULL;
}

bool cllm_gemm_path_parse(const char *name, cllm_gemm_path *p) {
    for (int i = 0; i < CLLM_GEMM_PATHS; i++)
        if (!strcmp(name, PATH_NAMES[i])) {
            *p = (cllm_gemm_path)i;
            return true;
        }
    return false;
}

bool cllm_gemm_kernel_valid(const cllm_gemm_kernel *k) {
    bool vw_ok = k->vw == 1 || k->vw == 2 || k->vw == 4 || k->vw == 8 || k->vw == 16;
    return vw_ok && k->mr >= 1 && k->mr <= 32 && k->nv >= 1 && k->nv <= 8 && k->gm >= 1 &&
           k->gm <= 4096 && (k->kc == 0 || (k->kc >= 16 && k->kc <= 65536));
}

/* The build options (gm and kc are arguments, not defines). */
void cllm_gemm_kernel_options(const cllm_gemm_kernel *k, char *buf, size_t cap) {
    snprintf(buf, cap, "-DVW=%d -DMR=%d -DNV=%d", k->vw, k->mr, k->nv);
}

void cllm_tune_table_clear(cllm_tune_table *t) {
    free(t->entries);
    memset(t, 0, sizeof *t);
}

cllm_status cllm_tune_table_copy(cllm_tune_table *dst, const cllm_tune_table *src) {
    *dst = *src;
    dst->entries = NULL;
    if (src->n_entries > 0) {
        dst->entries = malloc((size_t)src->n_entries * sizeof *dst->entries);
        if (!dst->entries) {
            dst->n_entries = 0;
            return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
        }
        memcpy(dst->entries, src->entries, (size_t)src->n_entries * sizeof *dst->entries);
    }
    return CLLM_OK;
}

/* |log(a / b)|, or -1 when the ratio exceeds 4 either way. */
static double size_distance(size_t a, size_t b) {
    double d = fabs(log((double)a / (double)b));
    return d > log(4.0) + 1e-9 ? -1 : d;
}

cllm_gemm_choice cllm_tune_table_lookup(const cllm_tune_table *t, const cllm_gemm_shape *s) {
    const cllm_tune_entry *best = NULL;
    double best_d = 1e30;
    for (int i = 0; i < t->n_entries; i++) {
        const cllm_tune_entry *e = &t->entries[i];
        if (e->shape.ta != s->ta || e->shape.tb != s->tb || (e->shape.batch > 1) != (s->batch > 1))
            continue;
        double dm = size_distance(s->M, e->shape.M), dn = size_distance(s->N, e->shape.N),
               dk = size_distance(s->K, e->shape.K);
        if (dm < 0 || dn < 0 || dk < 0) continue;
        double d = dm + dn + dk;
        if (d < best_d) best_d = d, best = e;
    }
    return best ? best->choice : t->fallback;
}

/* ---------------------------------------------------------------- per-runtime state */

#define MAX_VERIFIED 64
#define MAX_PROFILED 128

/* CLLM_BLAS_PROFILE=1: time of every product by shape and path (printed when freed). */
typedef struct {
    cllm_gemm_shape shape;
    cllm_gemm_path path;
    int calls;
    double seconds;
} profile_row;

typedef struct {
    cllm_tune_table table;
    cl_mem scratch; /* B^T for the cllm kernels */
    size_t scratch_bytes;
    int routine; /* GemmRoutine override in effect: -1 none, 0 indirect always, 1 direct */
    struct {
        cllm_gemm_kernel k;
        bool ok;
    } verified[MAX_VERIFIED];
    int n_verified;
    bool profile;
    profile_row prof[MAX_PROFILED];
    int n_prof;
} blas_state;

static void profile_print(const blas_state *s) {
    double total = 0;
    for (int i = 0; i < s->n_prof; i++)
        total += s->prof[i].seconds;
    fprintf(stderr, "CLLM_BLAS_PROFILE: %d shapes, %.3f s in products (synchronised)\n", s->n_prof,
            total);
    fprintf(stderr, "  %-2s %6s %6s %6s %5s  %-16s %6s %9s %8s\n", "op", "M", "N", "K", "batch",
            "path", "calls", "seconds", "GFLOP/s");
    for (int i = 0; i < s->n_prof; i++) {
        const profile_row *r = &s->prof[i];
        double flops = 2.0 * r->shape.M * r->shape.N * r->shape.K * r->shape.batch * r->calls;
        fprintf(stderr, "  %c%c %6zu %6zu %6zu %5zu  %-16s %6d %9.4f %8.1f\n",
                r->shape.ta ? 't' : 'n', r->shape.tb ? 't' : 'n', r->shape.M, r->shape.N,
                r->shape.K, r->shape.batch, cllm_gemm_path_name(r->path), r->calls, r->seconds,
                flops / r->seconds / 1e9);
    }
}

static void profile_add(blas_state *s, const cllm_gemm_shape *sh, cllm_gemm_path path,
                        double seconds) {
    for (int i = 0; i < s->n_prof; i++)
        if (!memcmp(&s->prof[i].shape, sh, sizeof *sh) && s->prof[i].path == path) {
            s->prof[i].calls++;
            s->prof[i].seconds += seconds;
            return;
        }
    if (s->n_prof < MAX_PROFILED) s->prof[s->n_prof++] = (profile_row){*sh, path, 1, seconds};
}

static void state_free(void *p) {
    blas_state *s = p;
    if (!s) return;
    if (s->profile) profile_print(s);
    if (s->scratch) clReleaseMemObject(s->scratch);
    cllm_tune_table_clear(&s->table);
    free(s);
}

static cllm_status apply_clblast(cllm_runtime *rt, cllm_tune_table *t, bool warn) {
    int kept = 0;
    for (int i = 0; i < t->n_clblast; i++) {
        cllm_status st = cllm_blas_clblast_override(rt, &t->clblast[i]);
        if (st != CLLM_OK) {
            if (!warn) return st;
            cllm_log(CLLM_LOG_WARN, "tuned CLBlast parameters not applied: %s", cllm_last_error());
            continue;
        }
        t->clblast[kept++] = t->clblast[i];
    }
    t->n_clblast = kept;
    return CLLM_OK;
}

/* The runtime's state, created empty (no table) when it has none yet. */
static cllm_status new_state(cllm_runtime *rt, blas_state **out) {
    blas_state *s = calloc(1, sizeof *s);
    if (!s) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    s->routine = -1;
    const char *prof = getenv("CLLM_BLAS_PROFILE");
    s->profile = prof && *prof && strcmp(prof, "0") != 0;
    strcpy(s->table.origin, "none");
    rt->blas = s;
    rt->blas_free = state_free;
    *out = s;
    return CLLM_OK;
}

/* The state, with its table loaded and applied on first use. */
static cllm_status get_state(cllm_runtime *rt, blas_state **out) {
    if (rt->blas) {
        *out = rt->blas;
        return CLLM_OK;
    }
    blas_state *s = NULL;
    cllm_status st = new_state(rt, &s);
    if (st != CLLM_OK) return st;
    st = cllm_tune_table_for(rt, &s->table);
    if (st != CLLM_OK) return st;
    st = apply_clblast(rt, &s->table, true);
    if (st != CLLM_OK) return st;
    *out = s;
    return CLLM_OK;
}

cllm_status cllm_blas_table(cllm_runtime *rt, const cllm_tune_table **t) {
    blas_state *s = NULL;
    cllm_status st = get_state(rt, &s);
    if (st != CLLM_OK) return st;
    *t = &s->table;
    return CLLM_OK;
}

cllm_status cllm_blas_set_table(cllm_runtime *rt, const cllm_tune_table *t) {
    blas_state *s = rt->blas;
    cllm_status st = s ? CLLM_OK : new_state(rt, &s); /* nothing applied before this table */
    if (st != CLLM_OK) return st;
    cllm_tune_table copy;
    st = cllm_tune_table_copy(&copy, t);
    if (st != CLLM_OK) return st;
    st = apply_clblast(rt, &copy, false);
    if (st != CLLM_OK) {
        cllm_tune_table_clear(&copy);
        return st;
    }
    cllm_tune_table_clear(&s->table);
    s->table = copy;
    return CLLM_OK;
}

/* ---------------------------------------------------------------- CLBlast */

static cllm_status blas_status(CLBlastStatusCode s, const char *what, const cllm_gemm_shape *sh) {
    if (s == CLBlastSuccess) return CLLM_OK;
    /* CLBlast passes OpenCL's codes through unchanged; its own are <= -1000. */
    if (s > -1000)
        return cllm_fail((cllm_status)s, "%s (M=%zu N=%zu K=%zu batch=%zu): %s", what, sh->M,
                         sh->N, sh->K, sh->batch, cllm_status_name((cllm_status)s));
    return cllm_fail(CLLM_ERR_BLAS, "%s (M=%zu N=%zu K=%zu batch=%zu): CLBlast error %d", what,
                     sh->M, sh->N, sh->K, sh->batch, (int)s);
}

cllm_status cllm_blas_clblast_override(cllm_runtime *rt, const cllm_clblast_params *p) {
    const char *names[CLLM_CLBLAST_MAX_PARAMS];
    for (int i = 0; i < p->n; i++)
        names[i] = p->name[i];
    CLBlastStatusCode s = CLBlastOverrideParameters(rt->device, p->kernel, CLBlastPrecisionSingle,
                                                    (size_t)p->n, names, p->value);
    if (s != CLBlastSuccess)
        return cllm_fail(CLLM_ERR_BLAS,
                         "CLBlast refused parameters for its kernel '%s' (CLBlast error %d%s)",
                         p->kernel, (int)s,
                         s == CLBlastMissingOverrideParameter ? ": a parameter is missing"
                         : s == CLBlastInvalidOverrideKernel  ? ": no such kernel"
                                                              : "");
    if (!strcmp(p->kernel, "GemmRoutine") && rt->blas) ((blas_state *)rt->blas)->routine = -2;
    return CLLM_OK;
}

/* CLBlast picks its direct kernel when M*N*K < XGEMM_MIN_INDIRECT_SIZE^3; overriding that one
 * parameter before a call forces either path. 1 << 20 cubed exceeds any product's size. */
static cllm_status force_routine(cllm_runtime *rt, blas_state *s, int direct) {
    if (s->routine == direct) return CLLM_OK;
    cllm_clblast_params p = {.kernel = "GemmRoutine", .n = 1};
    strcpy(p.name[0], "XGEMM_MIN_INDIRECT_SIZE");
    p.value[0] = direct ? (size_t)1 << 20 : 0;
    cllm_status st = cllm_blas_clblast_override(rt, &p);
    if (st != CLLM_OK) return st;
    s->routine = direct;
    return CLLM_OK;
}

/* The threshold CLBlast 1.5's database gives devices it has no entry for (DESIGN.md: direct
 * below 896^3); what "CLBlast's own choice" means once cllm has overridden it. */
#define CLBLAST_DEFAULT_MIN_INDIRECT 896ull

static cllm_status clblast_gemm(cllm_runtime *rt, blas_state *s, cllm_gemm_path path,
                                const cllm_gemm_shape *sh, float alpha, cl_mem A, size_t a_off,
                                size_t lda, size_t a_stride, cl_mem B, size_t b_off, size_t ldb,
                                size_t b_stride, float beta, cl_mem C, size_t c_off, size_t ldc,
                                size_t c_stride) {
    cllm_status st = CLLM_OK;
    if (path == CLLM_GEMM_CLBLAST && s->routine >= 0) {
        /* the routine parameter was overridden: restore CLBlast's rule by hand */
        const unsigned long long t = CLBLAST_DEFAULT_MIN_INDIRECT;
        path = (unsigned long long)sh->M * sh->N * sh->K < t * t * t ? CLLM_GEMM_CLBLAST_DIRECT
                                                                     : CLLM_GEMM_CLBLAST_INDIRECT;
    }
    if (path != CLLM_GEMM_CLBLAST) st = force_routine(rt, s, path == CLLM_GEMM_CLBLAST_DIRECT);
    if (st != CLLM_OK) return st;
    const CLBlastTranspose ta = sh->ta ? CLBlastTransposeYes : CLBlastTransposeNo,
                           tb = sh->tb ? CLBlastTransposeYes : CLBlastTransposeNo;
    CLBlastStatusCode r;
    if (sh->batch == 1)
        r = CLBlastSgemm(CLBlastLayoutRowMajor, ta, tb, sh->M, sh->N, sh->K, alpha, A, a_off, lda,
                         B, b_off, ldb, beta, C, c_off, ldc, &rt->queue, NULL);
    else
        r = CLBlastSgemmStridedBatched(CLBlastLayoutRowMajor, ta, tb, sh->M, sh->N, sh->K, alpha, A,
                                       a_off, lda, a_stride, B, b_off, ldb, b_stride, beta, C,
                                       c_off, ldc, c_stride, sh->batch, &rt->queue, NULL);
    return blas_status(r, sh->batch == 1 ? "sgemm" : "sgemm_batched", sh);
}

/* ---------------------------------------------------------------- cllm's kernels */

static cllm_status ensure_scratch(cllm_runtime *rt, blas_state *s, size_t bytes) {
    if (bytes <= s->scratch_bytes) return CLLM_OK;
    size_t want = (bytes + ((size_t)1 << 20) - 1) & ~(((size_t)1 << 20) - 1);
    if (want > rt->info.max_alloc) want = bytes;
    cl_mem m;
    cllm_status st = cllm_rt_alloc(rt, want, &m);
    if (st != CLLM_OK) return st;
    /* a buffer still used by queued kernels is freed when they finish (OpenCL's rule) */
    if (s->scratch) clReleaseMemObject(s->scratch);
    s->scratch = m;
    s->scratch_bytes = want;
    return CLLM_OK;
}

static cllm_status cllm_kernel_gemm(cllm_runtime *rt, blas_state *s, const cllm_gemm_kernel *kp,
                                    cllm_blas_tri tri, int d, const cllm_gemm_shape *sh,
                                    float alpha, cl_mem A, size_t a_off,
                                    size_t lda, size_t a_stride, cl_mem B, size_t b_off,
                                    size_t ldb, size_t b_stride, float beta, cl_mem C,
                                    size_t c_off, size_t ldc, size_t c_stride) {
    char opts[96];
    cllm_gemm_kernel_options(kp, opts, sizeof opts);
    cl_kernel k;
    cllm_status st;
    if (sh->tb) {
        /* B is stored (N, K): rearrange it into (K, N) per matrix, in the scratch buffer */
        const size_t per = sh->K * sh->N;
        st = ensure_scratch(rt, s, per * sh->batch * sizeof(float));
        if (st != CLLM_OK) return st;
        st = cllm_rt_kernel(rt, "gemm.cl", opts, "gemm_transpose", &k);
        if (st != CLLM_OK) return st;
        cl_ulong oo = 0, os = per, io = b_off, is = b_stride;
        cl_uint ldo = (cl_uint)sh->N, ldi = (cl_uint)ldb, rows = (cl_uint)sh->N,
                cols = (cl_uint)sh->K;
        st = cllm_rt_args(k, 10, CLLM_ARG(s->scratch), CLLM_ARG(oo), CLLM_ARG(ldo), CLLM_ARG(os),
                          CLLM_ARG(B), CLLM_ARG(io), CLLM_ARG(ldi), CLLM_ARG(is), CLLM_ARG(rows),
                          CLLM_ARG(cols));
        if (st != CLLM_OK) return st;
        size_t global[3] = {(sh->K + 15) / 16, (sh->N + 15) / 16, sh->batch};
        size_t local[3] = {1, 1, 1};
        st = cllm_rt_launch(rt, k, 3, global, rt->info.type == CLLM_DEVICE_CPU ? local : NULL);
        if (st != CLLM_OK) return st;
        B = s->scratch;
        b_off = 0;
        ldb = sh->N;
        b_stride = per;
    }
    st = cllm_rt_kernel(rt, "gemm.cl", opts, sh->ta ? "gemm_tn" : "gemm_nn", &k);
    if (st != CLLM_OK) return st;
    const size_t nr = (size_t)kp->nv * kp->vw;
    const size_t tiles = ((sh->M + kp->mr - 1) / kp->mr) * ((sh->N + nr - 1) / nr);
    /* K in slices of kc: C = alpha A B + beta C, then C += alpha A B per further slice */
    const size_t kc = kp->kc > 0 && (size_t)kp->kc < sh->K ? (size_t)kp->kc : sh->K;
    for (size_t k0 = 0; k0 < sh->K || k0 == 0; k0 += kc) {
        const size_t kn = sh->K - k0 < kc ? sh->K - k0 : kc;
        const float bt = k0 == 0 ? beta : 1.0f;
        cl_ulong co = c_off, cs = c_stride, ao = a_off + (sh->ta ? k0 * lda : k0), as = a_stride,
                 bo = b_off + k0 * ldb, bs = b_stride;
        cl_uint lc = (cl_uint)ldc, la = (cl_uint)lda, lb = (cl_uint)ldb, m = (cl_uint)sh->M,
                n = (cl_uint)sh->N, kk = (cl_uint)kn, gm = (cl_uint)kp->gm, tr = (cl_uint)tri;
        /* the kernel sees k from the slice's start: the diagonal moves by k0 (not for LOWER_C,
         * whose skip depends on C's indices only) */
        cl_int shift = tri == CLLM_BLAS_LOWER_C ? (cl_int)d : (cl_int)((long long)d - (long long)k0);
        st = cllm_rt_args(k, 20, CLLM_ARG(C), CLLM_ARG(co), CLLM_ARG(lc), CLLM_ARG(cs), CLLM_ARG(A),
                          CLLM_ARG(ao), CLLM_ARG(la), CLLM_ARG(as), CLLM_ARG(B), CLLM_ARG(bo),
                          CLLM_ARG(lb), CLLM_ARG(bs), CLLM_ARG(m), CLLM_ARG(n), CLLM_ARG(kk),
                          CLLM_ARG(alpha), CLLM_ARG(bt), CLLM_ARG(gm), CLLM_ARG(tr),
                          CLLM_ARG(shift));
        if (st != CLLM_OK) return st;
        /* One work-item per group on a CPU: PoCL would otherwise try to vectorise across
         * work-items a body that is already vectors. */
        size_t global[2] = {tiles, sh->batch}, local[2] = {1, 1};
        st = cllm_rt_launch(rt, k, 2, global, rt->info.type == CLLM_DEVICE_CPU ? local : NULL);
        if (st != CLLM_OK || sh->K == 0) return st;
    }
    return CLLM_OK;
}

/* Host reference for the first-use check: C = alpha op(A) op(B) + beta C, row-major. */
static void ref_gemm(const cllm_gemm_shape *sh, float alpha, const float *A, size_t lda,
                     const float *B, size_t ldb, float beta, float *C, size_t ldc) {
    for (size_t i = 0; i < sh->M; i++)
        for (size_t j = 0; j < sh->N; j++) {
            double acc = 0;
            for (size_t k = 0; k < sh->K; k++)
                acc += (double)(sh->ta ? A[k * lda + i] : A[i * lda + k]) *
                       (sh->tb ? B[j * ldb + k] : B[k * ldb + j]);
            C[i * ldc + j] = (float)(alpha * acc + beta * C[i * ldc + j]);
        }
}

/* Run one small product of every kind through a variant and compare with the host: sizes past
 * a tile (edge tiles shifted) and below it (the masked path), batched, with offsets. */
static cllm_status check_variant(cllm_runtime *rt, blas_state *s, const cllm_gemm_kernel *kp,
                                 bool *ok) {
    const size_t nr = (size_t)kp->nv * kp->vw;
    /* past a tile both ways (K past one slice when the variant slices K), below it both
     * ways, and below it one way only */
    const size_t mm = 2 * (size_t)kp->mr + 3, nn = 2 * nr + 5;
    const size_t sizes[4][3] = {
        {mm, nn, kp->kc ? kp->kc + 3u : 19}, {1, 3, 5}, {1, nn, 7}, {mm, 3, 6}};
    cllm_status st = CLLM_OK;
    *ok = true;
    for (int z = 0; z < 4 && *ok; z++)
        for (int ta = 0; ta < 2 && *ok; ta++)
            for (int tb = 0; tb < 2 && *ok; tb++) {
                cllm_gemm_shape sh = {ta, tb, sizes[z][0], sizes[z][1], sizes[z][2], 2};
                const size_t lda = (ta ? sh.M : sh.K) + 1, ldb = (tb ? sh.K : sh.N) + 2,
                             ldc = sh.N + 3;
                const size_t as = (ta ? sh.K : sh.M) * lda + 1,
                             bs = (tb ? sh.N : sh.K) * ldb + 2, cs = sh.M * ldc + 3, off = 7;
                const size_t na = off + 2 * as, nb = off + 2 * bs, nc = off + 2 * cs;
                float *h = malloc((na + nb + 2 * nc) * sizeof *h);
                cl_mem d[3] = {NULL, NULL, NULL};
                if (!h) return cllm_fail(CLLM_ERR_NOMEM, "out of memory");
                float *ha = h, *hb = ha + na, *hc = hb + nb, *ref = hc + nc;
                uint64_t x = 0x9e3779b97f4a7c15ull;
                for (size_t i = 0; i < na + nb + nc; i++) {
                    x = x * 6364136223846793005ull + 1442695040888963407ull;
                    h[i] = (float)((x >> 40) % 2001) / 1000.0f - 1.0f;
                }
                memcpy(ref, hc, nc * sizeof *ref);
                for (size_t b = 0; b < 2; b++)
                    ref_gemm(&sh, 0.75f, ha + off + b * as, lda, hb + off + b * bs, ldb, 0.5f,
                             ref + off + b * cs, ldc);
                const size_t n[3] = {na, nb, nc};
                const float *src[3] = {ha, hb, hc};
                for (int i = 0; i < 3; i++) {
                    CLLM_TRY(cllm_rt_alloc(rt, n[i] * sizeof(float), &d[i]));
                    CLLM_TRY(cllm_rt_write(rt, d[i], 0, src[i], n[i] * sizeof(float)));
                }
                CLLM_TRY(cllm_kernel_gemm(rt, s, kp, CLLM_BLAS_FULL, 0, &sh, 0.75f, d[0], off, lda,
                                          as, d[1], off, ldb, bs, 0.5f, d[2], off, ldc, cs));
                CLLM_TRY(cllm_rt_read(rt, d[2], 0, hc, nc * sizeof(float)));
                for (size_t i = 0; i < nc && *ok; i++)
                    if (!(fabsf(hc[i] - ref[i]) <= 1e-5f * (float)sh.K + 1e-4f * fabsf(ref[i])))
                        *ok = false;
            fail:
                for (int i = 0; i < 3; i++)
                    if (d[i]) clReleaseMemObject(d[i]);
                free(h);
                if (st != CLLM_OK) return st;
            }
    return CLLM_OK;
}

/* Whether a variant computes correctly here (checked once per runtime). */
static bool variant_ok(cllm_runtime *rt, blas_state *s, const cllm_gemm_kernel *kp) {
    for (int i = 0; i < s->n_verified; i++)
        if (!memcmp(&s->verified[i].k, kp, sizeof *kp)) return s->verified[i].ok;
    bool ok = false;
    cllm_status st = check_variant(rt, s, kp, &ok);
    char opts[96];
    cllm_gemm_kernel_options(kp, opts, sizeof opts);
    if (st != CLLM_OK)
        cllm_log(CLLM_LOG_WARN, "cl/gemm.cl (%s) cannot run here (%s); using CLBlast instead",
                 opts, cllm_last_error());
    else if (!ok)
        cllm_log(CLLM_LOG_WARN,
                 "cl/gemm.cl (%s) computes wrong results on %s; using CLBlast instead (rerun "
                 "'cllm tune')",
                 opts, rt->info.name);
    if (s->n_verified < MAX_VERIFIED) {
        s->verified[s->n_verified].k = *kp;
        s->verified[s->n_verified].ok = ok && st == CLLM_OK;
        s->n_verified++;
    }
    return ok && st == CLLM_OK;
}

/* ---------------------------------------------------------------- products */

static cllm_status gemm_by(cllm_runtime *rt, blas_state *s, const cllm_gemm_choice *c,
                           cllm_blas_tri tri, int d, const cllm_gemm_shape *sh, float alpha,
                           cl_mem A, size_t a_off,
                           size_t lda, size_t a_stride, cl_mem B, size_t b_off, size_t ldb,
                           size_t b_stride, float beta, cl_mem C, size_t c_off, size_t ldc,
                           size_t c_stride) {
    if (c->path == CLLM_GEMM_CLLM) {
        if (!cllm_gemm_kernel_valid(&c->k))
            return cllm_fail(CLLM_ERR_USAGE, "invalid cl/gemm.cl variant vw=%d mr=%d nv=%d gm=%d",
                             c->k.vw, c->k.mr, c->k.nv, c->k.gm);
        return cllm_kernel_gemm(rt, s, &c->k, tri, d, sh, alpha, A, a_off, lda, a_stride, B,
                                b_off, ldb, b_stride, beta, C, c_off, ldc, c_stride);
    }
    return clblast_gemm(rt, s, c->path, sh, alpha, A, a_off, lda, a_stride, B, b_off, ldb,
                        b_stride, beta, C, c_off, ldc, c_stride);
}

cllm_status cllm_blas_sgemm_with(cllm_runtime *rt, const cllm_gemm_choice *choice,
                                 const cllm_gemm_shape *s, float alpha, cl_mem A, size_t a_off,
                                 size_t lda, size_t a_stride, cl_mem B, size_t b_off, size_t ldb,
                                 size_t b_stride, float beta, cl_mem C, size_t c_off, size_t ldc,
                                 size_t c_stride) {
    return cllm_blas_sgemm_with_tri(rt, choice, CLLM_BLAS_FULL, 0, s, alpha, A, a_off, lda,
                                    a_stride, B, b_off, ldb, b_stride, beta, C, c_off, ldc,
                                    c_stride);
}

cllm_status cllm_blas_sgemm_with_tri(cllm_runtime *rt, const cllm_gemm_choice *choice,
                                     cllm_blas_tri tri, int d, const cllm_gemm_shape *s,
                                     float alpha, cl_mem A, size_t a_off, size_t lda,
                                     size_t a_stride, cl_mem B, size_t b_off, size_t ldb,
                                     size_t b_stride, float beta, cl_mem C, size_t c_off,
                                     size_t ldc, size_t c_stride) {
    if (s->M == 0 || s->N == 0 || s->batch == 0) return CLLM_OK;
    blas_state *bs = NULL;
    cllm_status st = get_state(rt, &bs);
    if (st != CLLM_OK) return st;
    return gemm_by(rt, bs, choice, tri, d, s, alpha, A, a_off, lda, a_stride, B, b_off, ldb,
                   b_stride, beta, C, c_off, ldc, c_stride);
}

static cllm_status gemm_auto(cllm_runtime *rt, cllm_blas_tri tri, int d, const cllm_gemm_shape *sh,
                             float alpha, cl_mem A, size_t a_off, size_t lda, size_t a_stride,
                             cl_mem B, size_t b_off,
                             size_t ldb, size_t b_stride, float beta, cl_mem C, size_t c_off,
                             size_t ldc, size_t c_stride) {
    if (sh->M == 0 || sh->N == 0 || sh->batch == 0) return CLLM_OK;
    blas_state *s = NULL;
    cllm_status st = get_state(rt, &s);
    if (st != CLLM_OK) return st;
    cllm_gemm_choice c = cllm_tune_table_lookup(&s->table, sh);
    if (c.path == CLLM_GEMM_CLLM && (!cllm_gemm_kernel_valid(&c.k) || !variant_ok(rt, s, &c.k)))
        c.path = CLLM_GEMM_CLBLAST;
    double t0 = 0;
    if (s->profile) {
        CLLM_TRY(cllm_runtime_finish(rt));
        t0 = cllm_now();
    }
    CLLM_TRY(gemm_by(rt, s, &c, tri, d, sh, alpha, A, a_off, lda, a_stride, B, b_off, ldb,
                     b_stride, beta, C, c_off, ldc, c_stride));
    if (s->profile) {
        CLLM_TRY(cllm_runtime_finish(rt));
        profile_add(s, sh, c.path, cllm_now() - t0);
    }
fail:
    return st;
}

cllm_status cllm_blas_sgemm(cllm_runtime *rt, cllm_blas_trans ta, cllm_blas_trans tb, size_t M,
                            size_t N, size_t K, float alpha, cl_mem A, size_t a_off, size_t lda,
                            cl_mem B, size_t b_off, size_t ldb, float beta, cl_mem C, size_t c_off,
                            size_t ldc) {
    const cllm_gemm_shape sh = {(int)ta, (int)tb, M, N, K, 1};
    return gemm_auto(rt, CLLM_BLAS_FULL, 0, &sh, alpha, A, a_off, lda, 0, B, b_off, ldb, 0, beta,
                     C, c_off, ldc, 0);
}

cllm_status cllm_blas_sgemm_batched(cllm_runtime *rt, cllm_blas_trans ta, cllm_blas_trans tb,
                                    size_t M, size_t N, size_t K, float alpha, cl_mem A,
                                    size_t a_off, size_t lda, size_t a_stride, cl_mem B,
                                    size_t b_off, size_t ldb, size_t b_stride, float beta,
                                    cl_mem C, size_t c_off, size_t ldc, size_t c_stride,
                                    size_t batch) {
    return cllm_blas_sgemm_batched_tri(rt, CLLM_BLAS_FULL, 0, ta, tb, M, N, K, alpha, A, a_off,
                                       lda, a_stride, B, b_off, ldb, b_stride, beta, C, c_off, ldc,
                                       c_stride, batch);
}

cllm_status cllm_blas_sgemm_batched_tri(cllm_runtime *rt, cllm_blas_tri tri, int d,
                                        cllm_blas_trans ta, cllm_blas_trans tb, size_t M, size_t N,
                                        size_t K, float alpha, cl_mem A, size_t a_off, size_t lda,
                                        size_t a_stride, cl_mem B, size_t b_off, size_t ldb,
                                        size_t b_stride, float beta, cl_mem C, size_t c_off,
                                        size_t ldc, size_t c_stride, size_t batch) {
    const cllm_gemm_shape sh = {(int)ta, (int)tb, M, N, K, batch};
    return gemm_auto(rt, tri, d, &sh, alpha, A, a_off, lda, a_stride, B, b_off, ldb, b_stride,
                     beta, C, c_off, ldc, c_stride);
}
