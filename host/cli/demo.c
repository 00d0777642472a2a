/* cllm demo: the whole mission in one command, on a corpus Debian ships (fortunes): a
 * held-out benchmark, a tokenizer, token shards, pretraining within a time budget, evaluation,
 * a chat set, fine-tuning, and the report. Each stage is the cllm command of the same name run
 * in this process (its own code, its own output), printed first as the command line that does
 * the same by hand; the demo only chooses the arguments and the time each stage gets. */
#include "args.h"
#include "commands.h"
#include "data_commands.h"
#include "train_flags.h"

#include "cllm/gpt.h"
#include "cllm/metrics.h"
#include "cllm/train.h"
#include "cllm/util.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEMO_CMD "cllm demo"
#define FORTUNES "/usr/share/games/fortunes"
#define DEMO_RECORD "demo.json"

/* models/gpt-nano.json, embedded at build time (cmake/embed_file.cmake) */
extern const char cllm_demo_model_json[];
extern const unsigned long cllm_demo_model_json_len;

/* What of the budget each stage may use up to, counted from the start: pretraining ends by
 * PRETRAIN_END of it, fine-tuning by SFT_END; the evaluation, the chat set and the report fit
 * in between (they take seconds to a minute, sized by their item counts). */
#define PRETRAIN_END_PCT 70
#define SFT_END_PCT 92
#define PRETRAIN_END (PRETRAIN_END_PCT / 100.0)
#define SFT_END (SFT_END_PCT / 100.0)
#define STR_(x) #x
#define STR(x) STR_(x)
/* Steps timed before the pretraining length is chosen (inside the warmup). */
#define CALIBRATION_STEPS 10
/* Validation during training: batches per measurement and measurements per run (the
 * evaluation stage scores the whole held-out split at the end). */
#define VAL_BATCHES 3
#define VAL_POINTS 11
#define SFT_VAL_POINTS 7 /* validations of the fine-tuning, the first at step 0 */
/* ... each over the same first SFT_VAL_BATCHES batches of the held-out chat set (128
 * conversations at the demo's batch of 8: a steadier curve than 24, for a second or two) */
#define SFT_VAL_BATCHES 16
/* Samples drawn during pretraining, and their length. */
#define SAMPLES 3
#define SAMPLE_TOKENS 48
/* Fine-tuning: rows of SFT_SEQ tokens (the chat set's fortunes are at most SFT_MAX_CHARS
 * characters, ~100 tokens with the template), at most SFT_EPOCHS passes over the chat set;
 * the category check scores held-out answers under their own and CHECK_WRONG other
 * categories, before and after: as many as fit in CHECK_SHARE of the fine-tuning's time,
 * CHECK_MIN to CHECK_MAX of them. */
#define SFT_SEQ 128
#define SFT_MAX_CHARS 300
#define SFT_VAL_FRACTION 0.05
#define SFT_EPOCHS 2
#define CHECK_MIN 64
#define CHECK_MAX 512
#define CHECK_SHARE 0.10
#define CHECK_WRONG 3

/* The names the demo owns in its directory: --force removes these and nothing else. */
static const char *const OWNED[] = {DEMO_RECORD, "data",      "pretrain",     "sft",
                                    "report",    "report.md", "gpt-nano.json"};

/* ---------------------------------------------------------------- argument vectors */

typedef struct {
    char **v;
    int n, cap;
    bool oom;
} argvec;

/* Append one word, formatted (a->oom records a failed allocation; the stage then fails). */
static void av_vadd(argvec *a, const char *fmt, va_list ap) {
    if (a->n + 2 > a->cap) {
        int cap = a->cap ? 2 * a->cap : 32;
        char **v = realloc(a->v, (size_t)cap * sizeof *v);
        if (!v) {
            a->oom = true;
            return;
        }
        a->v = v;
        a->cap = cap;
    }
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0 || !s) {
        a->oom = true;
        return;
    }
    a->v[a->n++] = s;
    a->v[a->n] = NULL;
}

static void av_add(argvec *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void av_add(argvec *a, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    av_vadd(a, fmt, ap);
    va_end(ap);
}

/* Append an option and its value, the value formatted. */
static void av_opt(argvec *a, const char *flag, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void av_opt(argvec *a, const char *flag, const char *fmt, ...) {
    av_add(a, "%s", flag);
    va_list ap;
    va_start(ap, fmt);
    av_vadd(a, fmt, ap);
    va_end(ap);
}

/* Append each string argument, up to a NULL, as one word. */
static void av_words(argvec *a, ...) {
    va_list ap;
    va_start(ap, a);
    for (const char *w; (w = va_arg(ap, const char *)) != NULL;)
        av_add(a, "%s", w);
    va_end(ap);
}

static void av_free(argvec *a) {
    for (int i = 0; i < a->n; i++)
        free(a->v[i]);
    free(a->v);
    memset(a, 0, sizeof *a);
}

/* ---------------------------------------------------------------- the demo's state */

typedef struct {
    char *dir;         /* DIR, absolute */
    double t0, budget; /* start (cllm_now) and seconds in all */
    const char *dev, *plat;
    cJSON *rec; /* demo.json */
    int stage, n_stages;
    bool interrupted;
} demo;

static double elapsed(const demo *d) {
    return cllm_now() - d->t0;
}

static char *in_dir(const demo *d, const char *rel) {
    return cllm_path_join(d->dir, rel);
}

static cllm_status save_record(demo *d) {
    char *p = in_dir(d, DEMO_RECORD);
    char *txt = cJSON_Print(d->rec);
    cllm_status st = p && txt ? cllm_write_file_atomic(p, txt, strlen(txt))
                              : cllm_fail(CLLM_ERR_NOMEM, "out of memory");
    free(p);
    free(txt);
    return st;
}

/* Ctrl-C (SIGINT) or SIGTERM between stages: a handler that only notes it and lets the
 * current stage finish. It is installed with SA_RESETHAND, as cllm train's and cllm sft's own
 * (which finish the step, save a checkpoint and return 0) are, so after a stage the
 * disposition tells whether a signal came during it: SIG_DFL again means one did. */
static void on_signal(int sig) {
    static const char msg[] = "\ncllm demo: stopping after this stage (press Ctrl-C again to "
                              "quit at once)\n";
    (void)sig;
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
}

static void arm_signals(void) {
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static bool signal_came(void) {
    struct sigaction a, b;
    sigaction(SIGINT, NULL, &a);
    sigaction(SIGTERM, NULL, &b);
    return a.sa_handler == SIG_DFL || b.sa_handler == SIG_DFL;
}

static void stage_banner(demo *d, const char *title, const char *what) {
    char left[64] = "";
    double rest = d->budget - elapsed(d);
    if (rest > 0)
        snprintf(left, sizeof left, "%.0f s of the budget left", rest);
    else
        snprintf(left, sizeof left, "over the budget by %.0f s", -rest);
    printf("\n== [%d/%d] %s (%s) ==\n%s\n", ++d->stage, d->n_stages, title, left, what);
    fflush(stdout);
}

/* Run one cllm command in this process as the binary would (fn with argv[0] = "cllm NAME"),
 * printing its command line first, recording it in demo.json. With stdout_path the command's
 * standard output goes to that file (written whole, then renamed into place). Returns the
 * command's exit code; d->interrupted says whether a signal came meanwhile. */
static int run_stage(demo *d, const char *name, int (*fn)(int, char **), argvec *a,
                     const char *stdout_path) {
    if (a->oom) {
        fprintf(stderr, "cllm demo: out of memory\n");
        return 1;
    }
    char *line = cli_command_line(a->n, a->v);
    printf("$ %s%s%s\n", line ? line : "", stdout_path ? " > " : "",
           stdout_path ? stdout_path : "");
    fflush(stdout);
    int saved = -1, fd = -1, rc;
    char *tmp = NULL;
    if (stdout_path) {
        tmp = cllm_strdup_printf("%s.tmp.%d", stdout_path, (int)getpid());
        fd = tmp ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644) : -1;
        saved = fd >= 0 ? dup(STDOUT_FILENO) : -1;
        if (fd < 0 || saved < 0 || dup2(fd, STDOUT_FILENO) < 0) {
            fprintf(stderr, "cllm demo: cannot write %s: %s\n", stdout_path, strerror(errno));
            if (fd >= 0) close(fd);
            if (saved >= 0) close(saved);
            free(tmp);
            free(line);
            return 1;
        }
    }
    arm_signals();
    double t = cllm_now();
    char **argv = malloc(((size_t)a->n + 1) * sizeof *argv); /* fn may rewrite argv[1] */
    if (!argv) {
        rc = 1;
    } else {
        memcpy(argv, a->v, ((size_t)a->n + 1) * sizeof *argv);
        rc = fn(a->n, argv);
        free(argv);
    }
    double secs = cllm_now() - t;
    d->interrupted = signal_came();
    if (stdout_path) {
        fflush(stdout);
        bool ok = fsync(STDOUT_FILENO) == 0 || errno == EINVAL;
        dup2(saved, STDOUT_FILENO);
        close(saved);
        close(fd);
        if (rc == 0 && ok && rename(tmp, stdout_path) != 0) ok = false;
        if (rc == 0 && !ok) {
            fprintf(stderr, "cllm demo: cannot write %s: %s\n", stdout_path, strerror(errno));
            rc = 1;
        }
        if (rc != 0) unlink(tmp);
        free(tmp);
    }
    cJSON *stages = cJSON_GetObjectItemCaseSensitive(d->rec, "stages");
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "name", name);
    cJSON_AddStringToObject(s, "command", line ? line : "");
    if (stdout_path) cJSON_AddStringToObject(s, "stdout", stdout_path);
    cJSON_AddNumberToObject(s, "seconds", secs);
    cJSON_AddNumberToObject(s, "exit_code", rc);
    if (d->interrupted) cJSON_AddBoolToObject(s, "interrupted", true);
    cJSON_AddItemToArray(stages, s);
    if (save_record(d) != CLLM_OK) fprintf(stderr, "cllm demo: %s\n", cllm_last_error());
    free(line);
    fflush(stdout);
    return rc;
}

/* A stage: run it (run_stage), free its arguments, and say what comes next: -1 to go on, or
 * the exit code to stop with (after_stage). */
static int after_stage(demo *d, const char *name, int rc);
static int stage(demo *d, const char *name, int (*fn)(int, char **), argvec *a,
                 const char *stdout_path) {
    int rc = run_stage(d, name, fn, a, stdout_path);
    av_free(a);
    return after_stage(d, name, rc);
}

/* ---------------------------------------------------------------- the directory */

static bool owned(const char *name) {
    for (size_t i = 0; i < sizeof OWNED / sizeof *OWNED; i++)
        if (!strcmp(name, OWNED[i])) return true;
    return false;
}

/* DIR must be new, empty, or (with --force) a previous demo's, whose own files are removed.
 * Anything else is refused before anything is written. Returns an exit code or -1. */
static int prepare_dir(const char *dir, bool force) {
    if (!cllm_is_dir(dir)) {
        struct stat sb;
        if (stat(dir, &sb) == 0) {
            fprintf(stderr,
                    "cllm demo: --out %s exists and is not a directory; choose another "
                    "--out\n",
                    dir);
            return 2;
        }
        cllm_status st = cllm_mkdirs(dir);
        return st == CLLM_OK ? -1 : cli_report(st);
    }
    char *rec = cllm_path_join(dir, DEMO_RECORD);
    bool is_demo = rec && cllm_is_file(rec);
    free(rec);
    DIR *dh = opendir(dir);
    if (!dh) {
        fprintf(stderr, "cllm demo: %s: cannot open: %s\n", dir, strerror(errno));
        return 1;
    }
    struct dirent *e;
    const char *foreign = NULL;
    char first[256] = "";
    bool any = false;
    while ((e = readdir(dh)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        any = true;
        if (!owned(e->d_name) && !foreign) {
            snprintf(first, sizeof first, "%s", e->d_name);
            foreign = first;
        }
    }
    closedir(dh);
    if (!any) return -1;
    if (!is_demo) {
        fprintf(stderr,
                "cllm demo: %s is not empty and holds no demo (no %s; it has '%s'); nothing "
                "was touched: choose another --out\n",
                dir, DEMO_RECORD, first[0] ? first : "files");
        return 2;
    }
    if (!force) {
        fprintf(stderr,
                "cllm demo: %s holds a previous demo (%s/%s); pass --force to replace it, or "
                "choose another --out\n",
                dir, dir, DEMO_RECORD);
        return 2;
    }
    for (size_t i = 0; i < sizeof OWNED / sizeof *OWNED; i++) {
        char *p = cllm_path_join(dir, OWNED[i]);
        struct stat sb;
        cllm_status st = CLLM_OK;
        if (p && lstat(p, &sb) == 0) st = cllm_remove_tree(p);
        free(p);
        if (st != CLLM_OK) return cli_report(st);
    }
    if (foreign) printf("%s: kept what the demo did not make ('%s', ...)\n", dir, foreign);
    return -1;
}

/* ---------------------------------------------------------------- reading results */

static cJSON *read_json(const char *path) {
    char *text = NULL;
    size_t len;
    cJSON *o = NULL;
    if (path && cllm_read_file(path, &text, &len) == CLLM_OK) o = cJSON_ParseWithLength(text, len);
    cllm_clear_error();
    free(text);
    return o;
}

static double jnum(const cJSON *o, const char *a, const char *b) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);
    if (b) v = cJSON_GetObjectItemCaseSensitive(v, b);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* Lines of a file (records of a JSONL file), 0 when it cannot be read. */
static long count_lines(const char *path) {
    char *text = NULL;
    size_t len;
    long n = 0;
    if (cllm_read_file(path, &text, &len) == CLLM_OK)
        for (size_t i = 0; i < len; i++)
            n += text[i] == '\n';
    cllm_clear_error();
    free(text);
    return n;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Seconds per training step of a run so far: the median time between consecutive steps over
 * the last `last` steps (0: all after the first, which also compiles kernels), validation
 * included where it ran. The machine's load moves, so the recent steps say more about the
 * next ones. NaN when fewer than two steps are logged. */
static double seconds_per_step(const char *run, size_t last) {
    cllm_metrics m = {0};
    double r = NAN;
    if (cllm_metrics_load(&m, run) == CLLM_OK && m.n > 2) {
        double *dt = malloc(m.n * sizeof *dt);
        size_t n = 0;
        for (size_t i = 1; dt && i < m.n; i++)
            if (m.points[i - 1].step >= 1 && isfinite(m.points[i].time_s) &&
                isfinite(m.points[i - 1].time_s))
                dt[n++] = m.points[i].time_s - m.points[i - 1].time_s;
        double *from = dt;
        if (last && n > last) {
            from = dt + (n - last);
            n = last;
        }
        if (n) {
            qsort(from, n, sizeof *from, cmp_double);
            r = n % 2 ? from[n / 2] : 0.5 * (from[n / 2 - 1] + from[n / 2]);
        }
        free(dt);
    }
    cllm_clear_error();
    cllm_metrics_clear(&m);
    return r;
}

static void add_device(argvec *a, const demo *d) {
    if (d->dev) {
        av_add(a, "--device");
        av_add(a, "%s", d->dev);
    }
    if (d->plat) {
        av_add(a, "--platform");
        av_add(a, "%s", d->plat);
    }
}

/* The result of a stage: go on (-1), or the exit code to stop with. */
static int after_stage(demo *d, const char *name, int rc) {
    if (d->interrupted) {
        printf("\ncllm demo: interrupted during %s; what it made so far is in %s (the runs "
               "are resumable: see their command.txt). 'cllm demo --out %s --force' starts "
               "over.\n",
               name, d->dir, d->dir);
        cJSON_ReplaceItemInObjectCaseSensitive(d->rec, "status", cJSON_CreateString("interrupted"));
        save_record(d);
        return 1;
    }
    if (rc != 0) {
        fprintf(stderr, "cllm demo: the %s stage failed (exit code %d; its message is above)\n",
                name, rc);
        cJSON_ReplaceItemInObjectCaseSensitive(d->rec, "status", cJSON_CreateString("failed"));
        save_record(d);
        return rc;
    }
    return -1;
}

/* The evaluation's headline numbers. */
static void print_eval(const cJSON *ev, const char *run) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(ev, "mc");
    printf("perplexity of the held-out split: %.2f (loss %.4f over %.0f tokens)\n",
           jnum(ev, "perplexity", "perplexity"), jnum(ev, "perplexity", "loss"),
           jnum(ev, "perplexity", "tokens"));
    printf("multiple choice, %.0f held-out fortunes, 4 choices: acc_norm %.3f +- %.3f, acc %.3f "
           "+- %.3f (chance 0.250); every item in %s/eval_samples.jsonl\n",
           jnum(m, "n", NULL), jnum(m, "acc_norm", NULL), jnum(m, "acc_norm_stderr", NULL),
           jnum(m, "acc", NULL), jnum(m, "acc_stderr", NULL), run);
}

/* What the demo measured, from the runs' files. */
static void print_results(const char *run, const char *sft_run, const cJSON *ev, int vocab) {
    cllm_metrics m = {0};
    if (cllm_metrics_load(&m, run) == CLLM_OK) {
        double first = NAN, last = NAN, step = NAN;
        for (size_t i = 0; i < m.n; i++)
            if (isfinite(m.points[i].val_loss)) {
                if (!isfinite(first)) first = m.points[i].val_loss;
                last = m.points[i].val_loss;
                step = m.points[i].step;
            }
        printf("  pretraining: validation loss %.3f -> %.3f after %.0f steps (ln %d = %.3f: a "
               "model that knows nothing)\n",
               first, last, step, vocab, log((double)vocab));
    }
    cllm_clear_error();
    cllm_metrics_clear(&m);
    const cJSON *mc = cJSON_GetObjectItemCaseSensitive(ev, "mc");
    double a = jnum(mc, "acc_norm", NULL), se = jnum(mc, "acc_norm_stderr", NULL);
    printf("  multiple choice: acc_norm %.3f +- %.3f against chance 0.250 (%+.1f standard "
           "errors)\n",
           a, se, se > 0 ? (a - 0.25) / se : NAN);
    char *p = cllm_path_join(sft_run, "sft_report.json");
    cJSON *r = read_json(p);
    free(p);
    const cJSON *after = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(r, "category_check"), "after");
    if (r)
        printf("  fine-tuning: assistant-token validation loss %.3f -> %.3f; held-out answers fit "
               "their own category's request better for %.1f%% (chance 50%%), gap %.4f +- %.4f "
               "nats per token\n",
               jnum(r, "val_loss_step0", NULL), jnum(r, "val_loss", NULL),
               100 * jnum(after, "own_lower", NULL), jnum(after, "gap", NULL),
               jnum(after, "gap_se", NULL));
    cJSON_Delete(r);
}

/* ---------------------------------------------------------------- the command */

static const char SUMMARY[] =
    "Run the whole mission on a corpus that Debian ships, the fortune cookies of the\n"
    "'fortunes' package (15,000 quotes in 43 categories, 2.5 MB), and end with a report:\n"
    "  1. a cloze multiple-choice benchmark from 500 fortunes, held out of training: the\n"
    "     start of a fortune and four next words, one its own (cllm data make-mc --rest)\n"
    "  2. a chat set: each fortune the answer to a request for a fortune of its category,\n"
    "     5% held out (cllm data make-sft)\n"
    "  3. a byte-level BPE tokenizer trained on the rest, its vocabulary the model's\n"
    "     (cllm tokenizer train)\n"
    "  4. cleaned, deduplicated token shards with a validation split, without the chat\n"
    "     set's held-out answers (cllm data prepare --held-out)\n"
    "  5. pretraining gpt-nano (models/gpt-nano.json, built in: 1.35 M parameters) for most\n"
    "     of the time budget: the first steps are timed, then the run is sized to end, its\n"
    "     learning rate decayed, by " STR(PRETRAIN_END_PCT) "% of the budget (cllm train,\n"
    "     --time-limit as a bound)\n"
    "  6. evaluation: perplexity of the held-out split and the multiple-choice benchmark\n"
    "     against chance (cllm eval --json > pretrain/eval.json)\n"
    "  7. fine-tuning to the chat template, sized to end by " STR(SFT_END_PCT) "% of the\n"
    "     budget, with replies before and after and the category check (cllm sft\n"
    "     --category-check)\n"
    "  8. the report: the loss curves, the numbers, "
                                           "samples, attention maps (cllm report)\n"
                                           "Each stage is the cllm command of the same name, run "
                                           "in this process and printed first\n"
                                           "as the command line that does the same by hand. DIR "
                                           "receives data/ (the benchmark, the\n"
                                           "tokenizer, the shards, the chat set), pretrain/ (the "
                                           "run: checkpoints, metrics.jsonl,\n"
                                           "samples.jsonl, eval.json), sft/ (the fine-tuned run, "
                                           "sft_report.json), report.md with\n"
                                           "report/*.png, and demo.json (the stages, their "
                                           "commands and wall times). A DIR holding a\n"
                                           "previous demo is refused unless --force, which "
                                           "replaces only what a demo makes there.\n"
                                           "Ctrl-C stops after the current stage (training saves a "
                                           "checkpoint first).\n"
                                           "About 10 minutes on a 2-core CPU with PoCL; the stages "
                                           "are sized by --minutes, and a\n"
                                           "faster device trains more steps in the same time.";

static const char EPILOG[] =
    "examples:\n"
    "  cllm demo                                  # ./demo/report.md after about 10 minutes\n"
    "  cllm demo --out /tmp/demo --minutes 20 --device gpu\n"
    "  cllm demo --force                          # run it again over the previous one\n"
    "  cllm demo --minutes 0.5 --model tiny.json --corpus some-fortunes/ --mc-items 40 \\\n"
    "      --out /tmp/smoke                       # a seconds-long check (what the tests do)\n"
    "exit codes: 0 done, 1 a stage failed or was interrupted, 2 usage error (DIR refused)";

int cmd_demo(int argc, char **argv) {
    const char *out = "demo", *corpus = FORTUNES, *model = NULL, *dev = NULL, *plat = NULL;
    double minutes = 10;
    int mc_items = 500;
    bool force = false;
    const cli_opt opts[] = {
        {"out", 'o', CLI_STR, &out, "DIR", "where everything goes"},
        {"minutes", 'm', CLI_DOUBLE, &minutes, "N",
         "the time budget: pretraining ends by " STR(PRETRAIN_END_PCT) "% of it", .lo = 0.05,
         .hi = 10000},
        {"force", 'f', CLI_FLAG, &force, NULL, "replace a previous demo in DIR"},
        {"corpus", 0, CLI_STR, &corpus, "PATH",
         "fortune files ('%' between fortunes; a directory of them): another corpus, or a few "
         "files of it for a quick check"},
        {"model", 0, CLI_STR, &model, "FILE",
         "the model config (default: the built-in models/gpt-nano.json); a tiny one makes a "
         "quick check, as the tests do"},
        {"mc-items", 0, CLI_INT, &mc_items, "N", "multiple-choice items held out for evaluation",
         .lo = 4, .hi = 100000},
        CLI_DEVICE_OPTS(&dev, &plat),
    };
    const cli_spec spec = {DEMO_CMD,
                           "[--out DIR] [--minutes N] [--device SPEC] [--force]",
                           SUMMARY,
                           opts,
                           CLI_COUNT(opts),
                           EPILOG,
                           0,
                           0};
    int rc = cli_parse(&spec, argc, argv, NULL);
    if (rc >= 0) return rc;
    struct stat sb;
    if (stat(corpus, &sb) != 0) {
        if (!strcmp(corpus, FORTUNES))
            fprintf(stderr,
                    "cllm demo: the fortunes corpus is not installed (%s): scripts/setup "
                    "installs it (the Debian package 'fortunes')\n",
                    FORTUNES);
        else
            fprintf(stderr, "cllm demo: --corpus %s: %s\n", corpus, strerror(errno));
        return 2;
    }
    cllm_gpt_config cfg;
    cllm_status st = model ? cllm_gpt_config_load(model, &cfg)
                           : cllm_gpt_config_parse(cllm_demo_model_json,
                                                   "models/gpt-nano.json "
                                                   "(built in)",
                                                   &cfg);
    if (st != CLLM_OK) return cli_report(st);
    if ((rc = prepare_dir(out, force)) >= 0) return rc;

    demo d = {.t0 = cllm_now(), .budget = minutes * 60, .dev = dev, .plat = plat, .n_stages = 8};
    char real[PATH_MAX];
    char *data = NULL, *mc = NULL, *rest = NULL, *tok = NULL, *shards = NULL, *run = NULL,
         *model_path = NULL, *eval_json = NULL, *report_md = NULL, *corpus_abs = NULL,
         *sft_data = NULL, *sft_val = NULL, *sft_run = NULL;
    int pre_batch = 8, pre_seq = 128;
    double pre_lr = 3e-3;
    argvec a = {0};
    cJSON *ev = NULL;
    rc = 1;
    if (!realpath(out, real) || !(d.dir = strdup(real))) {
        fprintf(stderr, "cllm demo: %s: %s\n", out, strerror(errno));
        return 1;
    }
    corpus_abs = realpath(corpus, NULL);
    data = in_dir(&d, "data");
    mc = cllm_path_join(data, "mc.jsonl");
    rest = cllm_path_join(data, "pretrain.txt");
    tok = cllm_path_join(data, "tokenizer.json");
    shards = cllm_path_join(data, "pretrain");
    run = in_dir(&d, "pretrain");
    eval_json = cllm_path_join(run, "eval.json");
    report_md = in_dir(&d, "report.md");
    sft_data = cllm_path_join(data, "sft.jsonl");
    sft_val = cllm_path_join(data, "sft-val.jsonl");
    sft_run = in_dir(&d, "sft");
    model_path = model ? realpath(model, NULL) : in_dir(&d, "gpt-nano.json");
    if (!corpus_abs || !data || !mc || !rest || !tok || !shards || !run || !eval_json ||
        !report_md || !model_path || !sft_data || !sft_val || !sft_run) {
        fprintf(stderr, "cllm demo: out of memory\n");
        goto done;
    }
    if ((st = cllm_mkdirs(data)) != CLLM_OK ||
        (!model && (st = cllm_write_file_atomic(model_path, cllm_demo_model_json,
                                                cllm_demo_model_json_len)) != CLLM_OK)) {
        rc = cli_report(st);
        goto done;
    }
    d.rec = cJSON_CreateObject();
    cJSON_AddNumberToObject(d.rec, "cllm_demo", 1);
    cJSON_AddStringToObject(d.rec, "status", "running");
    cJSON_AddNumberToObject(d.rec, "minutes", minutes);
    cJSON_AddStringToObject(d.rec, "corpus", corpus_abs);
    cJSON_AddStringToObject(d.rec, "model", model_path);
    if (dev) cJSON_AddStringToObject(d.rec, "device", dev);
    cJSON *runs = cJSON_AddObjectToObject(d.rec, "runs");
    cJSON_AddStringToObject(runs, "pretrain", run);
    cJSON_AddStringToObject(runs, "sft", sft_run);
    cJSON_AddItemToObject(d.rec, "stages", cJSON_CreateArray());
    if ((st = save_record(&d)) != CLLM_OK) {
        rc = cli_report(st);
        goto done;
    }
    printf("cllm demo: %s -> %s, a budget of %.1f minutes; model %s (%.2f M parameters)\n",
           corpus_abs, d.dir, minutes, model ? model : "gpt-nano (built in)",
           cllm_gpt_num_params(&cfg) / 1e6);

    /* 1. the benchmark, held out of everything that follows */
    stage_banner(&d, "a multiple-choice benchmark from held-out fortunes",
                 "Each item: the start of a fortune and four next words, one of them its own; the "
                 "fortunes used are kept out of training.");
    av_words(&a, "cllm data", "make-mc", "--input", corpus_abs, "--doc-separator", "%", NULL);
    av_opt(&a, "--n", "%d", mc_items);
    /* one word to tell apart: a model trained for minutes shows its learning there first */
    av_words(&a, "--continuation-words", "1", "--out", mc, "--rest", rest, NULL);
    if ((rc = stage(&d, "benchmark", cmd_data, &a, NULL)) >= 0) goto done;

    /* 2. the chat set, made now so that its held-out answers stay out of pretraining */
    stage_banner(
        &d, "a chat set from the fortune categories",
        "Each fortune becomes the answer to a request for a fortune of its file's "
        "category (\"Tell me a fortune about computers.\"); 5% of each category held out, "
        "and kept out of pretraining too.");
    av_words(&a, "cllm data", "make-sft", "--input", corpus_abs, "--doc-separator", "%", NULL);
    av_opt(&a, "--max-chars", "%d", SFT_MAX_CHARS);
    av_opt(&a, "--val-fraction", "%g", SFT_VAL_FRACTION);
    av_words(&a, "--out", sft_data, "--val-out", sft_val, NULL);
    if ((rc = stage(&d, "chat set", cmd_data, &a, NULL)) >= 0) goto done;

    /* 3. the tokenizer, its vocabulary the model's */
    stage_banner(&d, "a tokenizer",
                 "Byte-level BPE (GPT-2's kind) learnt from the training text, with as many "
                 "tokens as the model's vocabulary.");
    av_words(&a, "cllm tokenizer", "train", "--input", rest, NULL);
    av_opt(&a, "--vocab-size", "%d", cfg.vocab_size);
    av_words(&a, "-o", tok, NULL);
    if ((rc = stage(&d, "tokenizer", cmd_tokenizer, &a, NULL)) >= 0) goto done;

    /* 4. the token shards, without the chat set's held-out answers */
    stage_banner(&d, "token shards",
                 "Cleaned, deduplicated, without the chat set's held-out answers, split into "
                 "training and validation (1% of the fortunes, never trained on), tokenized.");
    av_words(&a, "cllm data", "prepare", rest, "--doc-separator", "%", "--tokenizer", tok,
             "--val-fraction", "0.01", "--held-out", sft_val, "--out", shards, NULL);
    if ((rc = stage(&d, "data", cmd_data, &a, NULL)) >= 0) goto done;

    /* 5. pretraining: time the first steps, then size the run to end by PRETRAIN_END */
    {
        cllm_train_opts to = cllm_train_opts_default();
        if (model) {
            st = cllm_train_opts_apply_config(&to, model_path);
        } else {
            cJSON *c = cJSON_Parse(cllm_demo_model_json);
            char *tr = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(c, "training"));
            st = tr ? cllm_train_opts_apply_json(&to, tr, "models/gpt-nano.json") : CLLM_OK;
            free(tr);
            cJSON_Delete(c);
        }
        if (st != CLLM_OK) {
            rc = cli_report(st);
            goto done;
        }
        pre_batch = to.batch;
        pre_lr = to.lr;
        pre_seq = to.seq < cfg.n_positions ? to.seq : cfg.n_positions;
        const double end = PRETRAIN_END * d.budget;
        stage_banner(&d, "pretraining",
                     "The first steps are timed; then the run is sized to end, its learning "
                     "rate decayed, by " STR(PRETRAIN_END_PCT) "% of the budget.");
        const int C = CALIBRATION_STEPS;
        double limit = end - elapsed(&d);
        av_words(&a, "cllm train", "--model", model_path, "--data", shards, "--out", run, NULL);
        /* a first guess at the length, as if a step took a second; the resume below sets the
         * real one */
        int guess = (int)(limit > 10 * C ? limit : 10 * C);
        av_opt(&a, "--steps", "%d", guess);
        av_opt(&a, "--stop-at", "%d", C);
        av_opt(&a, "--eval-every", "%d", guess);
        av_opt(&a, "--eval-batches", "%d", VAL_BATCHES);
        add_device(&a, &d);
        if ((rc = stage(&d, "pretraining: the first steps, timed", cmd_train, &a, NULL)) >= 0)
            goto done;
        double spf = seconds_per_step(run, 0);
        if (!isfinite(spf) || spf <= 0) spf = 1;
        /* what else the run does: VAL_POINTS validations of VAL_BATCHES forwards (a forward
         * is about a third of a step) and SAMPLES samples (about SAMPLE_TOKENS / 32 steps
         * each, measured here); the rest of the time goes to steps, 0.95 of it, as the step
         * time moves with the machine's load (the time limit is the bound) */
        double rem = end - elapsed(&d);
        double extra = (VAL_POINTS * VAL_BATCHES / 3.0 + SAMPLES * SAMPLE_TOKENS / 32.0) * spf;
        double for_steps = 0.95 * rem - extra;
        int n = C + (for_steps > 0 ? (int)(for_steps / spf) : 0);
        if (n <= C) n = C + 1;
        int warmup = n / 10 < C ? C : n / 10;
        if (warmup > to.warmup) warmup = to.warmup;
        int every = (n + VAL_POINTS - 2) / (VAL_POINTS - 1);
        printf("%d steps took %.2f s each: %d steps in all fit in the %.0f s left for "
               "pretraining (validation every %d steps, warmup %d)\n",
               C, spf, n, rem, every, warmup);
        av_words(&a, "cllm train", "--out", run, "--resume", NULL);
        av_opt(&a, "--steps", "%d", n);
        av_opt(&a, "--warmup", "%d", warmup);
        av_opt(&a, "--eval-every", "%d", every);
        av_opt(&a, "--sample-every", "%d", n / SAMPLES > 0 ? n / SAMPLES : 1);
        av_opt(&a, "--sample-tokens", "%d", SAMPLE_TOKENS);
        av_opt(&a, "--time-limit", "%.0f", rem > 1 ? rem : 1);
        add_device(&a, &d);
        if ((rc = stage(&d, "pretraining", cmd_train, &a, NULL)) >= 0) goto done;
    }

    /* 6. evaluation */
    stage_banner(&d, "evaluation",
                 "Perplexity of the held-out fortunes, and the multiple-choice benchmark: "
                 "does the model pick the real continuation more often than chance?");
    av_words(&a, "cllm eval", "--ckpt", run, "--data", shards, "--mc", mc, NULL);
    av_opt(&a, "--log-samples", "%s/eval_samples.jsonl", run);
    av_add(&a, "--json");
    add_device(&a, &d);
    if ((rc = stage(&d, "evaluation", cmd_eval, &a, eval_json)) >= 0) goto done;
    ev = read_json(eval_json);
    print_eval(ev, run);

    /* 7. fine-tuning, sized like pretraining from its last steps' time */
    {
        stage_banner(&d, "fine-tuning (SFT)",
                     "The pretrained model learns the chat template: replies before and after, "
                     "and whether held-out answers fit their own category's request better.");
        const double spf = seconds_per_step(run, 50);
        const double row = spf > 0 && isfinite(spf) ? spf * SFT_SEQ / pre_seq : 1; /* a step */
        double rem = SFT_END * d.budget - elapsed(&d);
        /* the category check: an answer costs (1 + CHECK_WRONG) rows of a forward, a third of
         * a step's work per row of a batch */
        const double per_item = (1 + CHECK_WRONG) * row / 3 / pre_batch;
        int items = (int)(CHECK_SHARE * rem / (2 * per_item));
        if (items < CHECK_MIN) items = CHECK_MIN;
        if (items > CHECK_MAX) items = CHECK_MAX;
        /* before and after a category check and the replies; the validations along the way */
        const double fixed = 2 * items * per_item + SFT_VAL_POINTS * SFT_VAL_BATCHES * row / 3 +
                             2 * SAMPLES * SAMPLE_TOKENS / 32.0 * row;
        /* 0.85: a fine-tuning step costs a little more than a pretraining one (the grown
         * vocabulary, the padding) and the load moves; the time limit is the bound */
        int steps = (int)((0.85 * rem - fixed) / row);
        const long cap = ((long)SFT_EPOCHS * count_lines(sft_data) + pre_batch - 1) / pre_batch;
        if (cap > 0 && steps > cap) steps = (int)cap;
        if (steps < 10) steps = 10;
        double limit = rem - fixed;
        printf("%d steps fit in the %.0f s left for fine-tuning (at most %d passes over the chat "
               "set; about %.0f s go to the checks before and after, %d held-out answers)\n",
               steps, rem > 0 ? rem : 0, SFT_EPOCHS, fixed, items);
        av_words(&a, "cllm sft", "--init", run, "--data", sft_data, "--val-data", sft_val, "--out",
                 sft_run, NULL);
        /* a third of the pretraining rate (cllm sft's default, a tenth, suits longer runs).
         * Measured on the default demo's 2,430 steps, its held-out answers kept out of
         * pretraining: a tenth, a sixth and a third gave validation losses 4.519, 4.547,
         * 4.570 and own-request-likelier 84.8%, 87.1%, 90.2% (gap 0.116, 0.129, 0.146 +-
         * 0.007 nats): following the request, what this stage shows, gains most */
        av_opt(&a, "--lr", "%g", pre_lr / 3);
        av_opt(&a, "--batch", "%d", pre_batch);
        av_opt(&a, "--seq", "%d", SFT_SEQ < cfg.n_positions ? SFT_SEQ : cfg.n_positions);
        av_opt(&a, "--steps", "%d", steps);
        /* a few validations along the way, so the fine-tuning chart shows a curve, not a line
         * between two points (each costs SFT_VAL_BATCHES forwards) */
        av_opt(&a, "--eval-every", "%d", (steps + SFT_VAL_POINTS - 2) / (SFT_VAL_POINTS - 1));
        av_opt(&a, "--eval-batches", "%d", SFT_VAL_BATCHES);
        av_opt(&a, "--samples", "%d", SAMPLES);
        av_opt(&a, "--sample-tokens", "%d", SAMPLE_TOKENS);
        av_add(&a, "--category-check");
        av_opt(&a, "--category-items", "%d", items);
        av_opt(&a, "--category-wrong", "%d", CHECK_WRONG);
        av_opt(&a, "--time-limit", "%.0f", limit > 1 ? limit : 1);
        add_device(&a, &d);
        if ((rc = stage(&d, "fine-tuning", cmd_sft, &a, NULL)) >= 0) goto done;
    }

    /* 8. the report */
    stage_banner(&d, "the report", "Everything above in one page, with pictures.");
    av_words(&a, "cllm report", run, "--out", report_md, "--sft", sft_run, NULL);
    add_device(&a, &d);
    if ((rc = stage(&d, "report", cmd_report, &a, NULL)) >= 0) goto done;

    cJSON_ReplaceItemInObjectCaseSensitive(d.rec, "status", cJSON_CreateString("done"));
    cJSON_AddNumberToObject(d.rec, "seconds", elapsed(&d));
    cJSON_AddStringToObject(d.rec, "report", report_md);
    save_record(&d);
    printf("\ncllm demo: done in %.1f minutes (a budget of %.1f)\n", elapsed(&d) / 60, minutes);
    print_results(run, sft_run, ev, cfg.vocab_size);
    printf("The report: %s\n", report_md);
    rc = 0;
done:
    av_free(&a);
    cJSON_Delete(d.rec);
    cJSON_Delete(ev);
    free(d.dir);
    free(data);
    free(mc);
    free(rest);
    free(tok);
    free(shards);
    free(run);
    free(model_path);
    free(eval_json);
    free(report_md);
    free(corpus_abs);
    free(sft_data);
    free(sft_val);
    free(sft_run);
    return rc;
}
