/* cli.h - the ragd command line: one function per command. */
#ifndef RAGD_API_CLI_H
#define RAGD_API_CLI_H

#include <stddef.h>

#include "model/backend.h"

/* Walks argv for options; each command describes what it accepts. */
typedef struct rg_cli_opt {
    const char *long_name; /* "--collection" */
    const char *short_name; /* "-k" or NULL */
    int takes_value;
    const char *value; /* filled in */
    int present;
} rg_cli_opt;

/* Parses argv[first..argc) into opts; non-option words go to positional
 * (up to max_pos). --help / -h prints help to stdout. Returns 0 to go on,
 * 1 when help was printed (exit 0), -1 after printing an error (exit 2). */
int cli_parse(int argc, char **argv, int first, rg_cli_opt *opts, size_t n_opts, const char **positional,
              size_t max_pos, size_t *n_pos, const char *help);
const rg_cli_opt *cli_opt(const rg_cli_opt *opts, size_t n, const char *long_name);
/* The data directory: --data, else $RAGD_DATA, else ./data. */
const char *cli_data_dir(const rg_cli_opt *opts, size_t n);
/* The model device: --device, else $RAGD_DEVICE, else auto (cpu|cuda|auto).
 * Returns 0 or -1 after printing an error. */
int cli_device(const rg_cli_opt *opts, size_t n, rg_device *device);
/* Parses a positive size option; returns 0 or -1 after printing an error. */
int cli_size(const rg_cli_opt *o, size_t min, size_t max, size_t *out);

struct rg_store;
/* Opens <data>/ragd.db; with create = 0 a missing data directory is an
 * error. Returns 0 or -1 after printing why. */
int cli_open_store(const char *data_dir, int create, struct rg_store **out);

int cli_serve(int argc, char **argv);
int cli_ingest(int argc, char **argv);
int cli_ls(int argc, char **argv);
int cli_rm(int argc, char **argv);
int cli_search(int argc, char **argv);
int cli_chat(int argc, char **argv);

struct rg_gen_opts;
/* The generator `serve` and `chat` use by default:
 * $RAGD_MODELS/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf, else
 * under ./models. */
void cli_default_gen_model(char *out, size_t size);
/* --gen-model PATH|none: *path gets the model (NULL for none; the default
 * when installed, else NULL after a note when warn is set). Returns 0 or -1
 * after printing an error (a named model that does not exist). */
int cli_gen_model(const rg_cli_opt *opts, size_t n, char *buf, size_t size, int warn, const char **path);
/* --chat-template, --kv-cache-mb, --gen-max-seqs, --gen-queue into o.
 * Returns 0 or -1 after printing an error. */
int cli_gen_opts(const rg_cli_opt *opts, size_t n, struct rg_gen_opts *o);

#endif
