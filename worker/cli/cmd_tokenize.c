/* cmd_tokenize.c: the 'tokenize' subcommand (not yet implemented). */
#include <stdio.h>

#include "cli/commands.h"

int cmd_tokenize(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "worker-orcd tokenize: not implemented yet\n");
    return 1;
}
