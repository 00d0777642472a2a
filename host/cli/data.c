/* cllm data: a family of subcommands on corpora and the data sets made from them, dispatched
 * from the table in data_commands.def. */
#include "args.h"
#include "commands.h"
#include "data_commands.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} data_command;

static const data_command data_commands[] = {
#define DATA_CMD(name, fn, summary) {name, fn, summary},
#include "data_commands.def"
#undef DATA_CMD
};

#define N_DATA_COMMANDS ((int)(sizeof data_commands / sizeof data_commands[0]))

static void usage(FILE *f) {
    fprintf(f, "usage: cllm data <subcommand> [options]\n\nsubcommands:\n");
    for (int i = 0; i < N_DATA_COMMANDS; i++)
        fprintf(f, "  %-12s %s\n", data_commands[i].name, data_commands[i].summary);
    fprintf(f, "\n'cllm data <subcommand> --help' describes one.\n");
}

int cmd_data(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *c = argv[1];
    if (!strcmp(c, "-h") || !strcmp(c, "--help") || !strcmp(c, "help")) {
        usage(stdout);
        return 0;
    }
    for (int i = 0; i < N_DATA_COMMANDS; i++) {
        if (strcmp(data_commands[i].name, c) != 0) continue;
        char name[64];
        snprintf(name, sizeof name, "cllm data %s", c);
        argv[1] = name;
        return data_commands[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "cllm data: '%s' is not a subcommand; subcommands:", c);
    for (int i = 0; i < N_DATA_COMMANDS; i++) fprintf(stderr, " %s", data_commands[i].name);
    fprintf(stderr, " (see 'cllm data --help')\n");
    return 2;
}
