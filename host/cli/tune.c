/* cllm tune: per-device GEMM autotuning (host/tune.c), cached beside the program cache. */
#include "args.h"
#include "commands.h"

#include "cllm/tune.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void progress_line(const char *line, void *user) {
    (void)user;
    fprintf(stderr, "%s\n", line);
}

/* Seconds the products of one step take at the rates measured (0 when a rate is missing). */
static double step_seconds(const cllm_tune_report *r, bool before) {
    double s = 0;
    for (int i = 0; i < r->n_shapes; i++) {
        const cllm_tune_shape_result *x = &r->shapes[i];
        const double g = before ? x->before_gflops : x->gflops;
        if (g <= 0) return 0;
        s += x->calls * 2.0 * x->M * x->N * x->K * x->batch / (g * 1e9);
    }
    return s;
}

static void print_json(const cllm_tune_report *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "device", r->device);
    cJSON_AddStringToObject(o, "cache_path", r->cache_path);
    cJSON_AddBoolToObject(o, "saved", r->saved);
    cJSON_AddNumberToObject(o, "seconds", r->seconds);
    cJSON_AddBoolToObject(o, "budget_hit", r->budget_hit);
    cJSON_AddStringToObject(o, "metric", r->cpu_time ? "cpu" : "wall");
    cJSON_AddNumberToObject(o, "tried", r->tried);
    cJSON_AddNumberToObject(o, "rejected", r->rejected);
    cJSON_AddStringToObject(o, "clblast_params", r->clblast_params);
    cJSON_AddNumberToObject(o, "step_gemm_s_before", step_seconds(r, true));
    cJSON_AddNumberToObject(o, "step_gemm_s_after", step_seconds(r, false));
    cJSON *arr = cJSON_AddArrayToObject(o, "shapes");
    for (int i = 0; i < r->n_shapes; i++) {
        const cllm_tune_shape_result *x = &r->shapes[i];
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "op", x->op);
        cJSON_AddNumberToObject(s, "m", (double)x->M);
        cJSON_AddNumberToObject(s, "n", (double)x->N);
        cJSON_AddNumberToObject(s, "k", (double)x->K);
        cJSON_AddNumberToObject(s, "batch", (double)x->batch);
        cJSON_AddNumberToObject(s, "calls", x->calls);
        cJSON_AddNumberToObject(s, "tuned_m", (double)x->tuned_M);
        cJSON_AddStringToObject(s, "before", x->before);
        cJSON_AddNumberToObject(s, "before_gflops", x->before_gflops);
        cJSON_AddNumberToObject(s, "clblast_default_gflops", x->clblast_default_gflops);
        cJSON_AddNumberToObject(s, "clblast_gflops", x->clblast_gflops);
        cJSON_AddNumberToObject(s, "cllm_gflops", x->cllm_gflops);
        cJSON_AddStringToObject(s, "chosen", x->chosen);
        cJSON_AddNumberToObject(s, "gflops", x->gflops);
        cJSON_AddNumberToObject(s, "tried", x->tried);
        cJSON_AddNumberToObject(s, "rejected", x->rejected);
        cJSON_AddItemToArray(arr, s);
    }
    char *text = cJSON_Print(o);
    if (text) printf("%s\n", text);
    free(text);
    cJSON_Delete(o);
}

static void print_text(const cllm_tune_report *r, double budget) {
    printf("cllm tune on %s: %d shapes, %d candidates timed (%d wrong or failed, never chosen), "
           "%.0f s%s\n",
           r->device, r->n_shapes, r->tried, r->rejected, r->seconds,
           r->budget_hit ? " (the budget ran out: rerun with a larger --budget to search more)"
                         : "");
    (void)budget;
    printf("%-2s %6s %6s %6s %5s %5s  %8s %8s %8s %8s  %s\n", "op", "M", "N", "K", "batch",
           "calls", "before", "CLBlast", "tuned", "cllm", "chosen (GFLOP/s)");
    for (int i = 0; i < r->n_shapes; i++) {
        const cllm_tune_shape_result *x = &r->shapes[i];
        printf("%-2s %6zu %6zu %6zu %5zu %5d  %8.1f %8.1f %8.1f %8.1f  %s (%.1f)%s\n", x->op, x->M,
               x->N, x->K, x->batch, x->calls, x->before_gflops, x->clblast_default_gflops,
               x->clblast_gflops, x->cllm_gflops, x->chosen, x->gflops,
               x->tuned_M != x->M ? " [timed on fewer rows]" : "");
    }
    printf("columns: GFLOP/s (%s) of the choice in effect before, of CLBlast as it is, of CLBlast "
           "with the tuned parameters, of the best cl/gemm.cl variant (0: not measured)\n",
           r->cpu_time ? "from processor time per compute unit" : "wall-clock");
    const double b = step_seconds(r, true), a = step_seconds(r, false);
    if (a > 0 && b > 0)
        printf("these products, as often as a step makes them: %.2f ms before, %.2f ms after "
               "(%.2fx)\n",
               1e3 * b, 1e3 * a, b / a);
    if (r->clblast_params[0]) printf("CLBlast parameters: %s\n", r->clblast_params);
    printf("%s %s\n", r->saved ? "wrote" : "not written (--no-save):", r->cache_path);
}

int cmd_tune(int argc, char **argv) {
    const char *model = NULL, *shapes = NULL, *search = "all", *metric = "wall", *dev = NULL,
               *plat = NULL;
    int batch = 0, seq = 0;
    double budget = 0;
    bool quick = false, json = false, no_save = false, show = false;
    const cli_opt opts[] = {
        {"model", 'm', CLI_STR, &model, "FILE",
         "tune the products of this model's training step (default: gpt-mini's)"},
        {"batch", 'b', CLI_INT, &batch, "N", "sequences per step with --model (default 8)",
         .lo = 1, .hi = 1 << 20, .no_default = true},
        {"seq", 't', CLI_INT, &seq, "N",
         "tokens per sequence with --model (default min(256, n_positions))", .lo = 1,
         .hi = 1 << 20, .no_default = true},
        {"shapes", 0, CLI_STR, &shapes, "LIST",
         "tune these products instead: op:MxNxK[xBATCH],... with op nn|nt|tn|tt (A and B "
         "transposed or not), e.g. nt:2048x1152x384,nt:256x256x64x48"},
        {"quick", 0, CLI_FLAG, &quick, NULL,
         "a short search: a few candidates each, one timed run (default budget 90 s)"},
        {"budget", 0, CLI_DOUBLE, &budget, "SECONDS",
         "stop searching after this long (default 600; 90 with --quick)", .lo = 1, .hi = 1e7,
         .no_default = true},
        {"search", 0, CLI_CHOICE, &search, "WHAT",
         "what to search: cl/gemm.cl variants, CLBlast's parameters, or both", .choices =
         "all|cllm|clblast"},
        {"metric", 0, CLI_CHOICE, &metric, "WHAT",
         "rank candidates by wall-clock time, or (CPU devices computing in this process, such as "
         "PoCL, on a machine other work shares) by processor time per compute unit",
         .choices = "wall|cpu"},
        {"json", 0, CLI_FLAG, &json, NULL, "print the results as one JSON object"},
        {"no-save", 0, CLI_FLAG, &no_save, NULL, "measure and report, but leave the cache alone"},
        {"show", 0, CLI_FLAG, &show, NULL,
         "print the table the device's products use now (cache, built-in or none) and exit"},
        CLI_DEVICE_OPTS(&dev, &plat),
    };
    const cli_spec spec = {
        "cllm tune",
        "[options]",
        "Find the fastest way to run cllm's matrix products on a device and remember it. For "
        "every product of a training step (or the --shapes given) it times cl/gemm.cl's "
        "register-blocked kernels over tile sizes, tile orders and K slices, and CLBlast's "
        "direct and indirect GEMM with parameters from CLBlast's own search spaces (Xgemm, "
        "XgemmDirect, and the copy, pad and transpose kernels of the indirect path), checks "
        "each candidate's result against a double-precision reference before timing it (a "
        "wrong configuration is never chosen), and writes the winners to the device's tune "
        "cache beside the program cache ($XDG_CACHE_HOME/cllm/tune-<device key>.json). Every "
        "later run on that device applies it at its first product. Without a cache, devices "
        "measured by cllm's developers use a built-in table and others CLBlast as it is; "
        "CLLM_TUNE=0 ignores both, CLLM_TUNE=builtin ignores the cache.",
        opts,
        CLI_COUNT(opts),
        "Tuning takes minutes and runs only when asked; timings are best-of-N, so a quiet "
        "machine tunes best.\n"
        "examples:\n"
        "  cllm tune --model models/gpt-mini.json --batch 8 --seq 256\n"
        "  cllm tune --quick --shapes nt:512x384x128,nn:256x64x256x16\n"
        "  cllm tune --show"};
    int rc = cli_parse(&spec, argc, argv, NULL);
    if (rc >= 0) return rc;
    if (shapes && model)
        return cli_usage_error(&spec, "--shapes and --model are alternatives; give one");
    if ((batch || seq) && !model)
        return cli_usage_error(&spec, "--batch and --seq go with --model");

    cllm_runtime *rt = NULL;
    cllm_runtime_opts ro = cllm_runtime_opts_default();
    ro.device_spec = dev;
    ro.platform_spec = plat;
    ro.quiet = true;
    cllm_status st = cllm_runtime_init(&rt, &ro);
    if (st != CLLM_OK) return cli_report(st);
    if (show) {
        char *text = NULL;
        st = cllm_tune_describe(rt, &text);
        if (st == CLLM_OK) printf("%s\n", text);
        free(text);
        cllm_runtime_free(rt);
        return cli_report(st);
    }
    cllm_tune_opts o = cllm_tune_opts_default();
    o.model = model;
    o.batch = batch;
    o.seq = seq;
    o.shapes = shapes;
    o.quick = quick;
    o.budget_s = budget;
    o.search_cllm = strcmp(search, "clblast") != 0;
    o.search_clblast = strcmp(search, "cllm") != 0;
    o.save = !no_save;
    o.cpu_time = !strcmp(metric, "cpu");
    o.progress = progress_line;
    cllm_tune_report rep;
    st = cllm_tune_run(rt, &o, &rep);
    if (st == CLLM_OK) {
        if (json)
            print_json(&rep);
        else
            print_text(&rep, budget);
    }
    cllm_tune_report_free(&rep);
    cllm_runtime_free(rt);
    return cli_report(st);
}
