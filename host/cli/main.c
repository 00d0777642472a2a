/* cllm: one binary, git-style subcommands. Exit codes: 0 success, 1 runtime error, 2 usage. */
#include "cllm/common.h"
#include "commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} command;

static const command commands[] = {
#define CMD(name, fn, summary) {name, fn, summary},
#include "commands.def"
#undef CMD
};

#define N_COMMANDS ((int)(sizeof commands / sizeof commands[0]))

static void usage(FILE *f) {
    fprintf(f,
            "usage: cllm <command> [options]\n\n"
            "cllm builds small GPT-style language models end to end on any OpenCL device.\n\n"
            "commands:\n");
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'cllm <command> --help' describes a command; 'cllm --version' prints the "
               "version.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *c = argv[1];
    if (!strcmp(c, "-h") || !strcmp(c, "--help") || !strcmp(c, "help")) {
        if (argc >= 3 && strcmp(c, "help") == 0) {
            for (int i = 0; i < N_COMMANDS; i++)
                if (!strcmp(commands[i].name, argv[2])) {
                    char name[64];
                    snprintf(name, sizeof name, "cllm %s", commands[i].name);
                    char *args[] = {name, "--help", NULL};
                    return commands[i].fn(2, args);
                }
            fprintf(stderr, "cllm: no command '%s' (see 'cllm --help')\n", argv[2]);
            return 2;
        }
        usage(stdout);
        return 0;
    }
    if (!strcmp(c, "--version") || !strcmp(c, "version")) {
        printf("cllm %s\n", CLLM_VERSION_STRING);
        return 0;
    }
    for (int i = 0; i < N_COMMANDS; i++) {
        if (strcmp(commands[i].name, c) != 0) continue;
        char name[64];
        snprintf(name, sizeof name, "cllm %s", commands[i].name);
        argv[1] = name;
        return commands[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "cllm: '%s' is not a command; commands:", c);
    for (int i = 0; i < N_COMMANDS; i++) fprintf(stderr, " %s", commands[i].name);
    fprintf(stderr, " (see 'cllm --help')\n");
    return 2;
}
