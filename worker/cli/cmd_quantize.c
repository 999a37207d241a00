/* cmd_quantize.c: the 'quantize' subcommand (not yet implemented). */
#include <stdio.h>

#include "cli/commands.h"

int cmd_quantize(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "worker-orcd quantize: not implemented yet\n");
    return 1;
}
