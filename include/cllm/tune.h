/* cllm/tune.h — per-device GEMM autotuning: what `cllm tune` runs.
 *
 * Tutorial.
 *   Every matrix product of cllm takes one of several paths (CLBlast's direct or indirect
 *   GEMM, with parameters CLBlast's database has or cllm overrides, or cllm's own kernels in
 *   cl/gemm.cl). The tuner measures them on the products a model's training step makes, checks
 *   every candidate's result against a reference before timing it (a wrong configuration is
 *   never chosen), and writes the winners into the device's tune cache, which every later
 *   runtime on that device applies at its first product:
 *
 *       cllm_tune_opts o = cllm_tune_opts_default();
 *       o.model = "models/gpt-mini.json";            // or o.shapes = "nt:2048x1152x384,..."
 *       cllm_tune_report rep;
 *       st = cllm_tune_run(rt, &o, &rep);            // minutes; o.quick for a short search
 *       ... rep.shapes[i].gflops, rep.cache_path ...
 *       cllm_tune_report_free(&rep);
 *
 *   The cache is $XDG_CACHE_HOME/cllm/tune-<device key>.json (beside the program cache, keyed
 *   by device, driver and platform). CLLM_TUNE=0 ignores it (and the built-in table);
 *   CLLM_TUNE=builtin ignores only the cache.
 */
#ifndef CLLM_TUNE_H
#define CLLM_TUNE_H

#include "cllm/runtime.h"

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const char *model;  /* a model config: the shapes of its training step; NULL: see shapes */
    int batch, seq;     /* with model: rows = batch * seq (0: 8 and min(256, n_positions)) */
    const char *shapes; /* "op:MxNxK[xBATCH],..." with op nn|nt|tn|tt (e.g. nt:2048x1152x384,
                           nt:256x256x64x48); NULL with no model: gpt-mini's step at 8 x 256 */
    bool quick;         /* a few candidates, one timed run each */
    double budget_s;    /* stop searching after this long (0: 600, quick 90) */
    bool search_cllm;   /* cl/gemm.cl variants */
    bool search_clblast; /* CLBlast's Xgemm, XgemmDirect and (not quick) copy/pad/transpose */
    bool save;          /* write the tune cache */
    bool cpu_time;      /* rank by processor time per compute unit instead of wall-clock time:
                           for CPU devices whose driver computes in this process (PoCL) on a
                           machine that other work shares */
    /* progress lines (one per stage and candidate), or NULL */
    void (*progress)(const char *line, void *user);
    void *user;
} cllm_tune_opts;

cllm_tune_opts cllm_tune_opts_default(void); /* both searches, save, gpt-mini's shapes */

typedef struct {
    char op[3]; /* "nn", "nt", "tn", "tt" */
    size_t M, N, K, batch;
    int calls;          /* times per training step (1 for given shapes) */
    size_t tuned_M;     /* rows it was timed with (fewer than M for products too large) */
    char before[96];    /* the choice in effect before tuning, and its rate */
    double before_gflops;
    double clblast_default_gflops; /* CLBlast as it is, the faster of its two paths */
    double clblast_gflops;         /* CLBlast with the tuned parameters, the faster path */
    double cllm_gflops;            /* the fastest cl/gemm.cl variant */
    char chosen[96];               /* the winner ("cllm vw=16 mr=14 nv=2 gm=16 kc=256", ...) */
    double gflops;
    int tried, rejected; /* candidates timed; candidates whose results were wrong */
} cllm_tune_shape_result;

typedef struct {
    char device[256];
    char cache_path[1024];
    bool saved;
    double seconds;
    bool budget_hit; /* the budget ran out before every candidate was tried */
    char clblast_params[2048]; /* the CLBlast parameters in the new table ("Xgemm: MWG=64 ...; ...") */
    int n_shapes;
    cllm_tune_shape_result *shapes;
    int tried, rejected;
    bool cpu_time; /* rates are from processor time per compute unit (--metric cpu) */
} cllm_tune_report;

/* Tune the products and (with o->save) write the tune cache; the runtime uses the new table
 * right away. Usage errors (a bad shape list, an unreadable model) are CLLM_ERR_USAGE /
 * the loader's code, with the message naming them. */
cllm_status cllm_tune_run(cllm_runtime *rt, const cllm_tune_opts *o, cllm_tune_report *rep);
void cllm_tune_report_free(cllm_tune_report *rep);

/* What the runtime's products use now, as JSON text (malloc'd): where the table came from
 * ("cache" with its path, "builtin", "none"), its CLBlast parameters and entries. */
cllm_status cllm_tune_describe(cllm_runtime *rt, char **json);

#ifdef __cplusplus
}
#endif
#endif
