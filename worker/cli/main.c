/* main.c: worker-orcd's entry point; dispatches to one subcommand. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} command;

static const command commands[] = {
    {"serve", cmd_serve, "run as a worker: dial the controller and serve requests"},
    {"run", cmd_run, "generate text from a prompt or chat message"},
    {"logits", cmd_logits, "write the logits of a token sequence"},
    {"bench", cmd_bench, "measure prompt and decode throughput"},
    {"inspect", cmd_inspect, "print a GGUF file's metadata, tensors and model config"},
    {"tokenize", cmd_tokenize, "print token ids for UTF-8 text on stdin"},
    {"detokenize", cmd_detokenize, "print the bytes of token ids on stdin"},
    {"quantize", cmd_quantize, "convert a GGUF model to another block type"},
    {"synth", cmd_synth, "write a qwen2 model with deterministic random weights"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: worker-orcd COMMAND [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-11s %s\n", commands[i].name, commands[i].help);
    fprintf(out, "\n'worker-orcd COMMAND --help' describes a command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "worker-orcd: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
