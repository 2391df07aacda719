/* test_quant_model.c - the generator's default GGUF (SmolLM2-135M-Instruct,
 * Q4_1 with a Q8_0 embedding and F32 norms) through ragd's reader, its
 * dequantization and the quantized products.
 *
 * tests/fixtures/quant_model_golden.txt (scripts/gen_quant_golden.py, from
 * the `gguf` Python package) records the file's sha256, its tensor types
 * and, for a few tensors, the sha256 of their whole float32 dequantization:
 * ragd must load every tensor validated, see the same types, and dequantize
 * those tensors to the same bits. quant_matvec on the real Q4_1 and Q8_0
 * matrices must then stay within the 8-bit activation bound of the exact
 * product.
 *
 * The model comes from `make models`; $RAGD_GEN_GGUF names another copy.
 * Without it the test fails saying where it looked (as test_decoder does):
 * `make test` installs it, so a skip would hide a broken install. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "common/err.h"
#include "common/sha256.h"
#include "model/gguf.h"
#include "model/quant.h"

#define FIXTURE "tests/fixtures/quant_model_golden.txt"
#define MODEL_FILE "SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf"

static int model_path(char *out, size_t cap)
{
    const char *env = getenv("RAGD_GEN_GGUF");
    if (env && *env) {
        snprintf(out, cap, "%s", env);
        return access(out, R_OK) == 0;
    }
    const char *base = getenv("RAGD_MODELS");
    snprintf(out, cap, "%s/%s", base && *base ? base : "models", MODEL_FILE);
    return access(out, R_OK) == 0;
}

static void file_sha256(const char *path, char hex[65])
{
    hex[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (!f)
        return;
    rg_sha256 s;
    sha256_init(&s);
    unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        sha256_update(&s, buf, n);
    fclose(f);
    uint8_t d[32];
    sha256_final(&s, d);
    sha256_to_hex(d, hex);
}

/* quant_matvec on rows [0, rows) of a real matrix against the exact product
 * of its dequantized rows with x. */
static void check_matvec(const gguf_tensor *t, size_t rows)
{
    size_t cols = (size_t)t->dims[0];
    float *wf = malloc(rows * cols * sizeof(float));
    float *x = malloc(cols * sizeof(float));
    float *y = malloc((size_t)t->dims[1] * sizeof(float));
    rg_err e;
    CHECK_OK(dequantize_row(t->type, t->data, wf, rows * cols, &e), e);
    for (size_t c = 0; c < cols; c++) /* a deterministic, activation-like vector */
        x[c] = (float)(sin(0.37 * (double)c) * (c % 13 == 0 ? 6.0 : 1.0));
    CHECK_OK(quant_matvec(t->type, t->data, (size_t)t->dims[1], cols, x, y, 0, rows, &e), e);
    size_t bad = 0;
    double worst = 0;
    for (size_t r = 0; r < rows; r++) {
        double s = 0, b = 0, mag = 0;
        for (size_t c0 = 0; c0 < cols; c0 += 32) {
            double amax = 0, wsum = 0;
            for (size_t c = c0; c < c0 + 32; c++) {
                s += (double)wf[r * cols + c] * x[c];
                mag += fabs((double)wf[r * cols + c] * x[c]);
                amax = fmax(amax, fabs((double)x[c]));
                wsum += fabs((double)wf[r * cols + c]);
            }
            b += amax / 254.0 * wsum;
        }
        double bound = b * (1 + 1e-5) + 2e-6 * mag;
        double err = fabs((double)y[r] - s);
        if (!(err <= bound))
            bad++;
        if (err / bound > worst)
            worst = err / bound;
    }
    CHECK_MSG(bad == 0, "%s: %zu of %zu rows outside the 8-bit activation bound", t->name, bad, rows);
    printf("%s (%s %lldx%lld): matvec worst error %.3f of the bound over %zu rows\n", t->name,
           ggml_type_name(t->type), (long long)t->dims[1], (long long)t->dims[0], worst, rows);
    free(wf);
    free(x);
    free(y);
}

int main(void)
{
    char path[1024];
    if (!model_path(path, sizeof path)) {
        fprintf(stderr,
                "test_quant_model: %s is not installed (run `make models` or set RAGD_GEN_GGUF)\n", path);
        return 1;
    }
    FILE *fx = fopen(FIXTURE, "r");
    CHECK_MSG(fx != NULL, "cannot open %s (run from the repository root)", FIXTURE);
    if (!fx)
        return check_finish("test_quant_model");
    gguf_file *g = NULL;
    rg_err e;
    rg_status st = gguf_open(path, &g, &e);
    CHECK_OK(st, e);
    if (st) {
        fclose(fx);
        return check_finish("test_quant_model");
    }
    /* every tensor is validated by gguf_open; all of them dequantize */
    size_t counts[GGML_TYPE_COUNT] = {0};
    size_t refused = 0;
    for (size_t i = 0; i < gguf_tensor_count(g); i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        counts[t->type]++;
        refused += !dequantize_supported(t->type) || (t->n_dims >= 2 && !quant_matvec_supported(t->type));
    }
    CHECK_MSG(refused == 0, "%zu tensors of types ragd cannot dequantize or multiply", refused);

    char *line = NULL;
    size_t cap = 0;
    int tensors_checked = 0;
    while (getline(&line, &cap, fx) > 0) {
        char a[128], b[128], sha[80];
        unsigned long long n = 0;
        line[strcspn(line, "\n")] = '\0';
        if (sscanf(line, "file %79s", sha) == 1) {
            char hex[65];
            file_sha256(path, hex);
            CHECK_MSG(strcmp(hex, sha) == 0, "%s is not the file the fixture was made from (sha256 %s, want %s)", path,
                      hex, sha);
        } else if (sscanf(line, "tensors %llu", &n) == 1) {
            CHECK_MSG(gguf_tensor_count(g) == n, "%zu tensors, want %llu", gguf_tensor_count(g), n);
        } else if (sscanf(line, "type %127s %llu", a, &n) == 2) {
            size_t have = 0;
            for (uint32_t t = 0; t < GGML_TYPE_COUNT; t++)
                if (ggml_type_name(t) && strcmp(ggml_type_name(t), a) == 0)
                    have = counts[t];
            CHECK_MSG(have == n, "%zu tensors of type %s, want %llu", have, a, n);
        } else if (sscanf(line, "tensor %127s %127s %llu %79s", a, b, &n, sha) == 4) {
            const gguf_tensor *t = gguf_tensor_find(g, a);
            CHECK_MSG(t != NULL, "tensor %s missing", a);
            if (!t)
                continue;
            CHECK_MSG(strcmp(ggml_type_name(t->type), b) == 0 && (unsigned long long)t->n_elems == n,
                      "%s: %s x %lld, want %s x %llu", a, ggml_type_name(t->type), (long long)t->n_elems, b, n);
            float *v = malloc((size_t)t->n_elems * sizeof(float));
            CHECK_OK(gguf_tensor_to_f32(t, v, &e), e);
            char hex[65];
            sha256_hex(v, (size_t)t->n_elems * sizeof(float), hex); /* little-endian host */
            CHECK_MSG(strcmp(hex, sha) == 0, "%s: dequantized values differ from the gguf package's", a);
            free(v);
            tensors_checked++;
        }
    }
    free(line);
    fclose(fx);
    CHECK_MSG(tensors_checked >= 5, "only %d tensors in the fixture", tensors_checked);
    printf("test_quant_model: %zu tensors loaded, %d dequantized bit for bit as the gguf package does\n",
           gguf_tensor_count(g), tensors_checked);

    check_matvec(gguf_tensor_find(g, "blk.0.attn_q.weight"), 576);
    check_matvec(gguf_tensor_find(g, "blk.0.ffn_down.weight"), 576);
    check_matvec(gguf_tensor_find(g, "token_embd.weight"), 4096);
    gguf_close(g);
    return check_finish("test_quant_model");
}
