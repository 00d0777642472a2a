/* What cllm train and cllm sft share on the command line (train_flags.h). */
#include "train_flags.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_loop_flags_apply(const char *cmd, const cli_loop_flags *lf, cllm_train_opts *o) {
    if (lf->seen_schedule) cllm_schedule_kind_parse(lf->schedule, &o->schedule);
    if (lf->min_lr) {
        char *end;
        double v = strtod(lf->min_lr, &end);
        if (!*lf->min_lr || *end || !(v >= 0 && v <= 10)) {
            fprintf(stderr, "%s: --min-lr expects a number in [0, 10], got '%s' (see '%s --help')\n",
                    cmd, lf->min_lr, cmd);
            return 2;
        }
        o->min_lr = v;
    }
    return -1;
}

char *cli_command_line(int argc, char **argv) {
    size_t cap = 16;
    for (int i = 0; i < argc; i++)
        cap += 4 * strlen(argv[i]) + 3;
    char *s = malloc(cap), *p = s;
    if (!s) return NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        bool plain = *a && i > 0;
        for (const char *c = a; *c && plain; c++)
            plain = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=./:,+@%",
                           *c) != NULL;
        if (i) *p++ = ' ';
        if (i == 0 || plain) {
            p += sprintf(p, "%s", a);
            continue;
        }
        *p++ = '\'';
        for (const char *c = a; *c; c++) {
            if (*c == '\'') {
                memcpy(p, "'\\''", 4);
                p += 4;
            } else {
                *p++ = *c;
            }
        }
        *p++ = '\'';
    }
    *p = 0;
    return s;
}

static volatile sig_atomic_t *g_flag;
static char g_msg[160];
static size_t g_msg_len;

static void on_signal(int sig) {
    (void)sig;
    *g_flag = 1;
    ssize_t w = write(STDERR_FILENO, g_msg, g_msg_len);
    (void)w;
}

void cli_catch_stop(volatile sig_atomic_t *flag, const char *cmd) {
    g_flag = flag;
    snprintf(g_msg, sizeof g_msg,
             "\n%s: stopping after this step and saving a checkpoint (press Ctrl-C again to quit "
             "without saving)\n",
             cmd);
    g_msg_len = strlen(g_msg);
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND; /* a second Ctrl-C quits at once */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}
