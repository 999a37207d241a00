/* cmd_bench.c: the 'bench' subcommand (not yet implemented). */
#include <stdio.h>

#include "cli/commands.h"

int cmd_bench(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "worker-orcd bench: not implemented yet\n");
    return 1;
}
