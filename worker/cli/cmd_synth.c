/* cmd_synth.c: the 'synth' subcommand (not yet implemented). */
#include <stdio.h>

#include "cli/commands.h"

int cmd_synth(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "worker-orcd synth: not implemented yet\n");
    return 1;
}
