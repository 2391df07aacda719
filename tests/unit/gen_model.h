/* gen_model.h - where the generator tests find their model: $RAGD_GEN_MODEL,
 * else SmolLM2-135M-Instruct.Q4_1.gguf under $RAGD_MODELS or ./models (what
 * `make models` installs). */
#ifndef RAGD_TESTS_GEN_MODEL_H
#define RAGD_TESTS_GEN_MODEL_H

#include <stdio.h>
#include <stdlib.h>

static inline void gen_model_path(char *out, size_t size)
{
    const char *env = getenv("RAGD_GEN_MODEL");
    const char *base = getenv("RAGD_MODELS");
    if (env && *env)
        snprintf(out, size, "%s", env);
    else
        snprintf(out, size, "%s/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf",
                 base && *base ? base : "models");
}

#endif
