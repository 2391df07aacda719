/* fuzz_safetensors.c - a .safetensors file from outside: the header's JSON,
 * dtypes, shapes and offsets (model/safetensors.c), then every tensor read
 * back as float32. Seeds: scripts/gen_fuzz_seeds.py. */
#include "tests/fuzz/fuzz.h"

#include "model/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("model.safetensors", data, size);
    rg_safetensors *st = NULL;
    rg_err e = {0};
    rg_status s = safetensors_open(path, &st, &e);
    FUZZ_CHECK(s == RG_OK || e.msg[0], "safetensors_open failed (status %d) without a message", (int)s);
    if (s != RG_OK)
        return 0;
    size_t n = safetensors_count(st);
    for (size_t i = 0; i < n; i++) {
        const rg_st_tensor *t = safetensors_at(st, i);
        FUZZ_CHECK(t != NULL, "tensor %zu of %zu missing", i, n);
        FUZZ_CHECK(safetensors_find(st, t->name) != NULL, "tensor %s not found by name", t->name);
        size_t elems = t->nelem;
        FUZZ_CHECK(t->nbytes == elems * safetensors_dtype_size(t->dtype), "%s: %zu bytes for %zu elements", t->name,
                   t->nbytes, elems);
        if (elems > (1 << 16))
            continue;
        float *f = malloc((elems ? elems : 1) * sizeof *f);
        if (f && tensor_to_f32(t, f, elems, &e) != RG_OK)
            FUZZ_CHECK(e.msg[0], "tensor_to_f32 failed without a message");
        free(f);
    }
    FUZZ_CHECK(safetensors_at(st, n) == NULL, "a tensor past the end");
    safetensors_close(st);
    return 0;
}
