/* cllm report: a training run's report.md with its pictures (cllm/report.h). */
#include "args.h"
#include "commands.h"

#include "cllm/report.h"
#include "cllm/runtime.h"

#include <stdio.h>

int cmd_report(int argc, char **argv) {
    const char *out = NULL, *sft = NULL, *eval = NULL, *text = NULL, *dev = NULL, *plat = NULL;
    bool no_sft = false, no_attention = false;
    const cli_opt opts[] = {
        {"out", 'o', CLI_STR, &out, "FILE",
         "the Markdown file (default: RUN/report.md); its images go into the directory beside "
         "it named after it (RUN/report/)"},
        {"sft", 0, CLI_STR, &sft, "DIR",
         "the fine-tuned run to include (default: the run beside RUN whose --init was RUN)"},
        {"no-sft", 0, CLI_FLAG, &no_sft, NULL, "include no fine-tuned run"},
        {"eval", 0, CLI_STR, &eval, "FILE",
         "the evaluation to include: what 'cllm eval --json' printed (default: RUN/eval.json)"},
        {"attention-text", 0, CLI_STR, &text, "TEXT",
         "what the attention maps read (default: the first held-out document's first 20 "
         "tokens)"},
        {"no-attention", 0, CLI_FLAG, &no_attention, NULL,
         "draw no attention maps (they run the model on the device)"},
        CLI_DEVICE_OPTS(&dev, &plat),
    };
    const cli_spec spec = {
        "cllm report",
        "RUN [--out FILE] [options]",
        "Write a report of a training run as Markdown that renders on GitHub (tables, images\n"
        "linked relatively): the model and its parameters; the data (the data directory's\n"
        "stats.json: documents, tokens, what curation removed); the training options, the loss\n"
        "curves (loss.png) and the validation loss and perplexity; the evaluation (RUN/eval.json:\n"
        "perplexity, multiple-choice accuracies against chance, BLEU/ROUGE); samples drawn\n"
        "during training; a fine-tuned run made from RUN (its loss, the category check, replies\n"
        "before and after); the final checkpoint's attention maps; the device and the wall time.\n"
        "Every number is read from the run's files; a part whose files are missing is left out\n"
        "with a line saying which file would hold it.",
        opts,
        CLI_COUNT(opts),
        "examples:\n"
        "  cllm report runs/nano                              # runs/nano/report.md\n"
        "  cllm eval --ckpt runs/nano --data data/fortunes --mc mc.jsonl --json > "
        "runs/nano/eval.json\n"
        "  cllm report runs/nano --sft runs/nano-sft --out docs/nano.md\n"
        "exit codes: 0 written, 1 runtime error (no such run, a malformed file), 2 usage error",
        1,
        1};
    cli_strlist pos = {0};
    int rc = cli_parse(&spec, argc, argv, &pos);
    if (rc >= 0) {
        cli_strlist_free(&pos);
        return rc;
    }
    if (no_sft && sft) {
        cli_strlist_free(&pos);
        return cli_usage_error(&spec, "--sft and --no-sft do not go together");
    }
    cllm_status st = CLLM_OK;
    cllm_runtime *rt = NULL;
    cllm_report_result res = {0};
    if (!no_attention) {
        cllm_runtime_opts ro = cllm_runtime_opts_default();
        ro.device_spec = dev;
        ro.platform_spec = plat;
        ro.quiet = true;
        st = cllm_runtime_init(&rt, &ro);
        if (st != CLLM_OK) goto fail;
    }
    cllm_report_opts o = {.run = pos.items[0],
                          .out = out,
                          .sft = no_sft ? "" : sft,
                          .eval = eval,
                          .attention_text = text,
                          .rt = rt,
                          .log = stdout};
    st = cllm_report_write(&o, &res);
    if (st == CLLM_OK) {
        printf("wrote %s", res.path);
        if (res.sft) printf(" (with the fine-tuned run %s)", res.sft);
        if (res.n_omitted)
            printf("; %d part%s left out, each with a line saying why", res.n_omitted,
                   res.n_omitted == 1 ? "" : "s");
        printf("\n");
    }
fail:
    rc = cli_report(st);
    cllm_report_result_free(&res);
    cllm_runtime_free(rt);
    cli_strlist_free(&pos);
    return rc;
}
