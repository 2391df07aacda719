/* fuzz.h - what every fuzz target shares.
 *
 * A target is one function, LLVMFuzzerTestOneInput, that feeds its input to
 * a parser or loader ragd exposes to untrusted data. It is linked two ways:
 * with libFuzzer (clang -fsanitize=fuzzer, scripts/fuzz.sh) to search for
 * inputs that crash, hang or trip a sanitizer; and with replay_main.c, an
 * ordinary main that runs the committed seeds and every input a search
 * has found (tests/fuzz/seeds/<target>/), which ctest runs on every build.
 * A target returns 0 whatever the input; a bug shows as a crash, a
 * sanitizer report or FUZZ_CHECK failing (an invariant the code promises,
 * such as "a failed load says why"). */
#ifndef RAGD_TESTS_FUZZ_H
#define RAGD_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant of the code under test: a violation is a bug, so it aborts
 * (libFuzzer keeps the input as a crash). */
#define FUZZ_CHECK(cond, ...)                                                                                   \
    do {                                                                                                       \
        if (!(cond)) {                                                                                         \
            fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed: ", __FILE__, __LINE__, #cond);                      \
            fprintf(stderr, __VA_ARGS__);                                                                      \
            fputc('\n', stderr);                                                                               \
            abort();                                                                                           \
        }                                                                                                      \
    } while (0)

/* Writes data to this process's own scratch file named NAME (loaders that
 * take a path: GGUF and safetensors are mapped, tokenizer.json read) and
 * returns its path, valid until the next call; the file is rewritten, not
 * appended. The directory is made once per process under $TMPDIR. */
const char *fuzz_file(const char *name, const uint8_t *data, size_t size);

/* The directory fuzz_file writes into (for loaders that take a directory). */
const char *fuzz_dir(void);

/* model_runs.c: a loader's outcome (FUZZ_VERBOSE=1 prints it; a failure
 * must say why), and the models loaded from PATH (a GGUF file or a model
 * directory) and, when one loads, run once on a few tokens or texts. */
void fuzz_outcome(const char *who, rg_status st, const rg_err *e);
void fuzz_run_decoder(const char *path, int f32_activations, int f32_cache);
void fuzz_run_lm_reranker(const char *path);
void fuzz_run_encoders(const char *path); /* the embedder and the cross-encoder */

#endif
