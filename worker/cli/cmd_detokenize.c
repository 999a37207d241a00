/* cmd_detokenize.c: the 'detokenize' subcommand (not yet implemented). */
#include <stdio.h>

#include "cli/commands.h"

int cmd_detokenize(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "worker-orcd detokenize: not implemented yet\n");
    return 1;
}
