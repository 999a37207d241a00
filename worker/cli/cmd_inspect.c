/* cmd_inspect.c: the 'inspect' subcommand (not yet implemented). */
#include <stdio.h>

#include "cli/commands.h"

int cmd_inspect(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "worker-orcd inspect: not implemented yet\n");
    return 1;
}
