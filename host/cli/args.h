/* host/cli/args.h — declarative option parsing shared by every subcommand, so that all of
 * them accept `--name value`, `--name=value`, `-x value`, `--` and `--help` alike, reject what
 * they do not know with one line and exit code 2, and print their defaults in --help.
 *
 *     int steps = 100; const char *out = NULL; bool resume = false;
 *     const cli_opt opts[] = {
 *         {"steps", 0, CLI_INT, &steps, "N", "optimizer steps", .lo = 1, .hi = 1e9},
 *         {"out", 'o', CLI_STR, &out, "DIR", "run directory", .required = true},
 *         {"resume", 0, CLI_FLAG, &resume, NULL, "continue from RUN/latest"},
 *     };
 *     const cli_spec spec = {"cllm train", "--out DIR [options]", "Pretrain a model.",
 *                            opts, CLI_COUNT(opts)};
 *     int rc = cli_parse(&spec, argc, argv, NULL);
 *     if (rc >= 0) return rc;   // --help printed (0) or usage error printed (2)
 */
#ifndef CLLM_CLI_ARGS_H
#define CLLM_CLI_ARGS_H

#include "cllm/common.h"

#include <stdbool.h>

typedef enum {
    CLI_FLAG,   /* bool*                          */
    CLI_INT,    /* int*                           */
    CLI_I64,    /* long long*                     */
    CLI_DOUBLE, /* double*                        */
    CLI_FLOAT,  /* float*                         */
    CLI_STR,    /* const char** (points into argv) */
    CLI_STRS,   /* cli_strlist*, option repeatable */
    CLI_CHOICE, /* const char**, one of .choices ("a|b|c") */
} cli_kind;

typedef struct {
    const char **items;
    int *argi; /* (n) where each item's option stood in argv, for options whose relative
                  order matters (eval pairs each --task with the --mc before it) */
    int n;
} cli_strlist;

typedef struct {
    const char *name; /* long name without dashes */
    char short_name;  /* 0 for none */
    cli_kind kind;
    void *dst;
    const char *metavar;
    const char *help;
    const char *choices; /* CLI_CHOICE: "cosine|linear|constant" */
    double lo, hi;       /* numeric range checked when lo < hi */
    bool required;
    bool *seen; /* set to true when the option was given (may be NULL) */
    bool no_default; /* --help prints no "(default: ...)": it depends on other inputs, and the
                        help text says how */
} cli_opt;

typedef struct {
    const char *cmd;     /* "cllm train" */
    const char *usage;   /* "--model FILE --data DIR --out RUN [options]" */
    const char *summary; /* one paragraph */
    const cli_opt *opts;
    int n_opts;
    const char *epilog; /* examples, notes; may be NULL */
    int min_pos;        /* positional arguments accepted: min_pos..max_pos (-1 = any) */
    int max_pos;
} cli_spec;

#define CLI_COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Parse argv[1..]. Returns -1 when the command should run, 0 after printing --help, 2 after
 * printing a usage error. Positional arguments go to *pos (may be NULL if none accepted). */
int cli_parse(const cli_spec *spec, int argc, char **argv, cli_strlist *pos);
void cli_print_help(const cli_spec *spec);
void cli_strlist_free(cli_strlist *l);
/* Append s (found at argv[argi]); -1 when out of memory. */
int cli_strlist_push(cli_strlist *l, const char *s, int argi);

/* Print "cllm: <last error>" to stderr and return the exit code for `st`: 2 for
 * CLLM_ERR_USAGE, 1 otherwise (0 for CLLM_OK). */
int cli_report(cllm_status st);
/* A usage error from the command itself: prints "<cmd>: <msg> (see '<cmd> --help')", returns 2 */
int cli_usage_error(const cli_spec *spec, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same for a command named `cmd` ("cllm train"), outside cli_parse's spec. */
int cli_usage_cmd(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* --device/--platform, shared by every command that computes. */
#define CLI_DEVICE_OPTS(devp, platp)                                                           \
    {"device", 0, CLI_STR, (devp), "SPEC",                                                     \
     "OpenCL device: index, gpu|cpu|accelerator, or name substring (env CLLM_DEVICE)"},        \
    {                                                                                          \
        "platform", 0, CLI_STR, (platp), "SPEC",                                               \
            "OpenCL platform: index or name substring (env CLLM_PLATFORM)"                     \
    }

#endif
