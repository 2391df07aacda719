#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/cli.h"

int cli_parse(int argc, char **argv, int first, rg_cli_opt *opts, size_t n_opts, const char **positional,
              size_t max_pos, size_t *n_pos, const char *help)
{
    for (int i = first; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(help, stdout);
            return 1;
        }
    *n_pos = 0;
    int only_positional = 0;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (!only_positional && strcmp(a, "--") == 0) {
            only_positional = 1;
            continue;
        }
        if (!only_positional && a[0] == '-' && a[1] != '\0') {
            const char *eq = strchr(a, '=');
            size_t name_len = eq ? (size_t)(eq - a) : strlen(a);
            rg_cli_opt *o = NULL;
            for (size_t j = 0; j < n_opts; j++)
                if ((strlen(opts[j].long_name) == name_len && strncmp(opts[j].long_name, a, name_len) == 0) ||
                    (opts[j].short_name && strcmp(opts[j].short_name, a) == 0))
                    o = &opts[j];
            if (!o) {
                fprintf(stderr, "ragd: unknown option %s (see --help)\n", a);
                return -1;
            }
            o->present = 1;
            if (o->takes_value) {
                if (eq)
                    o->value = eq + 1;
                else if (i + 1 < argc)
                    o->value = argv[++i];
                else {
                    fprintf(stderr, "ragd: option %s needs a value\n", o->long_name);
                    return -1;
                }
            } else if (eq) {
                fprintf(stderr, "ragd: option %s takes no value\n", o->long_name);
                return -1;
            }
            continue;
        }
        if (*n_pos == max_pos) {
            fprintf(stderr, "ragd: too many arguments (at '%s')\n", a);
            return -1;
        }
        positional[(*n_pos)++] = a;
    }
    return 0;
}

const rg_cli_opt *cli_opt(const rg_cli_opt *opts, size_t n, const char *long_name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(opts[i].long_name, long_name) == 0)
            return opts[i].present ? &opts[i] : NULL;
    return NULL;
}

const char *cli_data_dir(const rg_cli_opt *opts, size_t n)
{
    const rg_cli_opt *o = cli_opt(opts, n, "--data");
    if (o)
        return o->value;
    const char *env = getenv("RAGD_DATA");
    return env && *env ? env : "./data";
}

int cli_device(const rg_cli_opt *opts, size_t n, rg_device *device)
{
    const rg_cli_opt *o = cli_opt(opts, n, "--device");
    const char *env = getenv("RAGD_DEVICE");
    const char *v = o ? o->value : env && *env ? env : "auto";
    rg_err e;
    if (backend_device_parse(v, device, &e) != RG_OK) {
        fprintf(stderr, "ragd: %s: %s\n", o ? "--device" : "RAGD_DEVICE", e.msg);
        return -1;
    }
    return 0;
}

int cli_size(const rg_cli_opt *o, size_t min, size_t max, size_t *out)
{
    if (!o)
        return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(o->value, &end, 10);
    if (errno || end == o->value || *end || v < min || v > max || o->value[0] == '-') {
        fprintf(stderr, "ragd: %s must be an integer in %zu..%zu\n", o->long_name, min, max);
        return -1;
    }
    *out = (size_t)v;
    return 0;
}
