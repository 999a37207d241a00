/* cmd_run.c: the 'run' subcommand (not yet implemented). */
#include <stdio.h>

#include "cli/commands.h"

int cmd_run(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "worker-orcd run: not implemented yet\n");
    return 1;
}
