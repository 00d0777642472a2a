/* cllm/report.h — a training run's report: RUN/report.md (GitHub-flavoured Markdown) and the
 * PNGs beside it, made only from what the run's files say. What `cllm report` writes and
 * `cllm demo` ends with.
 *
 *     cllm_report_opts o = {.run = "runs/nano", .rt = rt};   // rt: for the attention maps
 *     cllm_report_result r = {0};
 *     CLLM_TRY(cllm_report_write(&o, &r));      // runs/nano/report.md and the PNGs in
 * runs/nano/report/ printf("%s\n", r.path); cllm_report_result_free(&r);
 *
 * What it reads, all optional but the first:
 *   RUN/config.json, train_args.json, metrics.jsonl   the model, the options, the curves
 *                                                     (a RUN without them is an error)
 *   RUN/latest: its state.json                           the final step and tokens
 *   RUN/samples.jsonl                                 samples drawn during training
 *   the data directory train_args.json names: stats.json   documents, tokens, what was removed
 *   RUN/eval.json (or opts.eval)                      `cllm eval --json`: perplexity, multiple
 *                                                     choice (chance from the set's own file)
 *   an SFT run fine-tuned from RUN (opts.sft, or found beside RUN: a sibling directory whose
 *   train_args.json has "kind": "sft" and "init" naming RUN): its curves, sft_report.json
 *   (replies before and after, the category check)
 *   the demo record beside RUN (RUN/../demo.json naming RUN): the stages' wall times
 * and draws: the loss curves (cllm/metrics.h), the SFT run's, and the final checkpoint's
 * attention maps over a short text (cllm/attnmap.h; needs opts.rt). A part whose files are
 * missing is left out with a line in the report saying which file and how to make it.
 *
 * Images go into a directory beside the Markdown file named after it without ".md"
 * (RUN/report.md -> RUN/report/), linked relatively, so the directory can be moved or pushed
 * to GitHub as it is. Every file is written atomically; a failed report leaves an existing
 * report.md as it was.
 */
#ifndef CLLM_REPORT_H
#define CLLM_REPORT_H

#include "cllm/common.h"
#include "cllm/runtime.h"

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const char *run;            /* the run directory (required) */
    const char *out;            /* the Markdown file (NULL: RUN/report.md) */
    const char *sft;            /* the SFT run to include (NULL: found beside RUN; "": none) */
    const char *eval;           /* `cllm eval --json` output (NULL: RUN/eval.json if present) */
    const char *attention_text; /* what the attention maps look at (NULL: the beginning of
                                   the first validation document, else a fixed sentence) */
    cllm_runtime *rt;           /* the device for the attention maps (NULL: none, said so) */
    FILE *log;                  /* a line per image written (NULL: nothing) */
} cllm_report_opts;

#define CLLM_REPORT_MAX_IMAGES 8

typedef struct {
    char *path; /* the Markdown file written */
    int n_images;
    struct {
        char *path;        /* the PNG written */
        int width, height; /* its size in pixels */
    } images[CLLM_REPORT_MAX_IMAGES];
    int n_omitted; /* optional parts left out (each has a line in the report) */
    char *sft;     /* the SFT run included, or NULL */
} cllm_report_result;

/* Write the report. A RUN that does not exist, or holds no metrics.jsonl / config.json, is
 * CLLM_ERR_IO / CLLM_ERR_FORMAT naming it; a malformed file it reads is CLLM_ERR_FORMAT naming
 * the file. `res` may be NULL. */
cllm_status cllm_report_write(const cllm_report_opts *o, cllm_report_result *res);
void cllm_report_result_free(cllm_report_result *res);

#ifdef __cplusplus
}
#endif
#endif
