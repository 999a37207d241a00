/* commands.h: the worker-orcd subcommands, one file each (cmd_NAME.c). Each returns the process
 * exit status: 0 success, 1 failure (the message already printed to stderr), 2 usage error. */
#ifndef WORKER_CLI_COMMANDS_H
#define WORKER_CLI_COMMANDS_H

int cmd_inspect(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_synth(int argc, char **argv);

#endif
