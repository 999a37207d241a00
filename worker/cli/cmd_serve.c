/* cmd_serve.c: the 'serve' subcommand (not yet implemented). */
#include <stdio.h>

#include "cli/commands.h"

int cmd_serve(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "worker-orcd serve: not implemented yet\n");
    return 1;
}
