/* host/cli/data_commands.h — one function per `cllm data` subcommand (data_commands.def). */
#ifndef CLLM_CLI_DATA_COMMANDS_H
#define CLLM_CLI_DATA_COMMANDS_H

#define DATA_CMD(name, fn, summary) int fn(int argc, char **argv);
#include "data_commands.def"
#undef DATA_CMD

#endif
