/* ragd - a retrieval-augmented generation appliance. Command dispatch. */
#include <stdio.h>
#include <string.h>

#include "api/cli.h"
#include "model/backend.h"

#include <libxml/parser.h>

static void usage(FILE *f)
{
    fprintf(f,
            "ragd %s - a retrieval-augmented generation appliance\n\n"
            "usage: ragd COMMAND [options]\n\n"
            "commands:\n"
            "  serve     run the HTTP API and web UI\n"
            "  ingest    add files or directories to a collection\n"
            "  ls        list documents\n"
            "  rm        delete a document\n"
            "  search    search a collection from the terminal\n"
            "  chat      ask the generation model, one-shot or interactively\n\n"
            "options:\n"
            "  --version  print the version and the compute backends\n"
            "  --help     this text; 'ragd COMMAND --help' for a command\n\n"
            "environment: RAGD_DATA (data directory, default ./data), RAGD_API_KEY\n",
            RAGD_VERSION);
}

static int version(void)
{
    char cuda[256], cpu[256];
    backend_cuda_devices(cuda, sizeof cuda);
    backend_cpu_describe(cpu, sizeof cpu);
    printf("ragd %s\ncpu: %s\ncuda: %s\n", RAGD_VERSION, cpu, cuda);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    /* libxml2's global state must be set up before threads use it. */
    xmlInitParser();
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0)
        return version();
    if (strcmp(cmd, "serve") == 0)
        return cli_serve(argc, argv);
    if (strcmp(cmd, "ingest") == 0)
        return cli_ingest(argc, argv);
    if (strcmp(cmd, "ls") == 0)
        return cli_ls(argc, argv);
    if (strcmp(cmd, "rm") == 0)
        return cli_rm(argc, argv);
    if (strcmp(cmd, "search") == 0)
        return cli_search(argc, argv);
    if (strcmp(cmd, "chat") == 0)
        return cli_chat(argc, argv);
    fprintf(stderr, "ragd: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
