/* host/cli/commands.h — one function per subcommand (see commands.def). */
#ifndef CLLM_CLI_COMMANDS_H
#define CLLM_CLI_COMMANDS_H

#define CMD(name, fn, summary) int fn(int argc, char **argv);
#include "commands.def"
#undef CMD

#endif
