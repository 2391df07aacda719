/* scratch_file.c - the per-process scratch directory of fuzz.h. */
#include "tests/fuzz/fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir_path[512];

static void remove_dir(void)
{
    /* at most the few names the targets use; then the directory */
    static const char *names[] = {"model.gguf", "model.safetensors", "tokenizer.json", "config.json"};
    char p[640];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(p, sizeof p, "%s/%s", dir_path, names[i]);
        unlink(p);
    }
    rmdir(dir_path);
}

const char *fuzz_dir(void)
{
    if (!dir_path[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir_path, sizeof dir_path, "%s/ragd-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir_path)) {
            perror("fuzz: mkdtemp");
            exit(2);
        }
        atexit(remove_dir);
    }
    return dir_path;
}

const char *fuzz_file(const char *name, const uint8_t *data, size_t size)
{
    static char path[640];
    snprintf(path, sizeof path, "%s/%s", fuzz_dir(), name);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror("fuzz: writing the input file");
        exit(2);
    }
    return path;
}
