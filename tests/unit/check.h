/* check.h - the minimal assertion kit of ragd's C unit tests.
 * CHECK records a failure and goes on; main returns check_finish(). */
#ifndef RAGD_TESTS_CHECK_H
#define RAGD_TESTS_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failures;
static int check_count;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        check_count++;                                                               \
        if (!(cond)) {                                                               \
            check_failures++;                                                        \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                            \
    } while (0)

#define CHECK_MSG(cond, ...)                                                         \
    do {                                                                             \
        check_count++;                                                               \
        if (!(cond)) {                                                               \
            check_failures++;                                                        \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                            \
            fputc('\n', stderr);                                                     \
        }                                                                            \
    } while (0)

#define CHECK_STR(a, b) CHECK_MSG(strcmp((a), (b)) == 0, "\"%s\" != \"%s\"", (a), (b))
#define CHECK_OK(st, err) CHECK_MSG((st) == RG_OK, "status %d: %s", (int)(st), (err).msg)

/* Which fixture records a test of the CUDA code visits: every one on a
 * GPU; under cudasim (RAGD_CUDASIM=1: tests/cudasim runs the CUDA sources
 * on the CPU, some 10^4 times slower than a GPU) every k-th, so that every
 * kernel and path still runs on real data within CI's minutes. */
static inline size_t cudasim_stride(size_t k)
{
    const char *sim = getenv("RAGD_CUDASIM");
    return sim && sim[0] == '1' && k > 1 ? k : 1;
}

static inline int check_finish(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, check_count, check_failures);
    return check_failures ? 1 : 0;
}

#endif
