/* cmd_logits.c: the 'logits' subcommand (not yet implemented). */
#include <stdio.h>

#include "cli/commands.h"

int cmd_logits(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "worker-orcd logits: not implemented yet\n");
    return 1;
}
