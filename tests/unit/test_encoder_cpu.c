/* test_encoder_cpu.c - the CPU forward pass's threading: encoder_embed
 * called from several threads at once on one encoder (the pool serves one
 * call, the others run alone on their own threads) gives exactly the
 * vectors of serial calls, a text's vector is the same alone or in a padded
 * batch, and a sequence's hidden states (encoder_forward, which computes
 * padded positions too) do not depend on the padding or the other
 * sequences of its batch. Accuracy against
 * sentence-transformers is test_encoder's job. Needs the default model. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/fs.h"
#include "model/encoder.h"

static const char *TEXTS[] = {
    "The quick brown fox jumps over the lazy dog.",
    "Retrieval-augmented generation grounds a language model's answer in documents it retrieves first.",
    "SQLite keeps the chunks; FAISS keeps their vectors.",
    "short",
    "A much longer text that goes on for a while, so that batches mix lengths and padding: it talks about "
    "embeddings, tokenizers, attention heads, layer norms, GELU activations and the residual stream of a "
    "small BERT model that runs on two CPU cores, one sentence after another, until it is long enough.",
    "Ünïcödé and punctuation -- (brackets), [more]; 12345 numbers!",
};
#define NTEXT (sizeof TEXTS / sizeof *TEXTS)
#define NCALLER 3
#define ROUNDS 4

typedef struct caller {
    const rg_encoder *enc;
    const float *want, *want_single;
    int ok;
} caller;

/* Whole batches (row tiles) and single short texts (few rows: the pool
 * splits products by columns, a caller running alone does not), all
 * bit-identical to the serial results. */
static void *caller_main(void *arg)
{
    caller *c = arg;
    size_t dim = encoder_dim(c->enc);
    float *out = malloc(NTEXT * dim * sizeof *out);
    rg_err e = {0};
    c->ok = 1;
    for (int r = 0; r < ROUNDS; r++) {
        c->ok &= encoder_embed(c->enc, TEXTS, NULL, NTEXT, out, NULL, &e) == RG_OK;
        c->ok &= memcmp(out, c->want, NTEXT * dim * sizeof *out) == 0;
        for (size_t i = 0; i < NTEXT; i++) {
            c->ok &= encoder_embed(c->enc, &TEXTS[i], NULL, 1, out, NULL, &e) == RG_OK;
            c->ok &= memcmp(out, c->want_single + i * dim, dim * sizeof *out) == 0;
        }
    }
    free(out);
    return NULL;
}

static void test_concurrent(rg_encoder *enc)
{
    size_t dim = encoder_dim(enc);
    float *want = malloc(NTEXT * dim * sizeof *want);
    rg_err e = {0};
    float *want_single = malloc(NTEXT * dim * sizeof *want_single);
    rg_status st = encoder_embed(enc, TEXTS, NULL, NTEXT, want, NULL, &e);
    CHECK_OK(st, e);
    for (size_t i = 0; i < NTEXT; i++) {
        st = encoder_embed(enc, &TEXTS[i], NULL, 1, want_single + i * dim, NULL, &e);
        CHECK_OK(st, e);
        /* Padding is skipped, not computed and masked: a text's vector is
         * the same bits alone as beside longer texts. */
        CHECK_MSG(memcmp(want + i * dim, want_single + i * dim, dim * sizeof *want) == 0,
                  "text %zu: embedded alone differs from embedded in a padded batch", i);
    }
    caller cs[NCALLER];
    pthread_t th[NCALLER];
    for (int i = 0; i < NCALLER; i++) {
        cs[i] = (caller){enc, want, want_single, 0};
        CHECK(pthread_create(&th[i], NULL, caller_main, &cs[i]) == 0);
    }
    for (int i = 0; i < NCALLER; i++) {
        pthread_join(th[i], NULL);
        CHECK_MSG(cs[i].ok, "caller %d: concurrent encoder_embed differs from the serial result", i);
    }
    free(want), free(want_single);
}

/* Sequence 0 ([CLS] a b c [SEP]) alone, then in a batch of 3 padded to 9
 * tokens beside longer sequences: its real rows must agree. */
static void test_padding(rg_encoder *enc)
{
    size_t H = encoder_dim(enc), T = 9;
    int32_t alone_ids[5] = {101, 7592, 2088, 999, 102}, alone_mask[5] = {1, 1, 1, 1, 1};
    float *alone = malloc(5 * H * sizeof *alone), *batch = malloc(3 * T * H * sizeof *batch);
    int32_t ids[27] = {0}, mask[27] = {0};
    for (size_t t = 0; t < 5; t++)
        ids[t] = alone_ids[t], mask[t] = 1;
    for (size_t b = 1; b < 3; b++)
        for (size_t t = 0; t < T - 2 * (2 - b); t++)
            ids[b * T + t] = (int32_t)(1000 + 37 * b + t), mask[b * T + t] = 1;
    rg_err e = {0};
    CHECK_OK(encoder_forward(enc, alone_ids, NULL, alone_mask, 1, 5, alone, &e), e);
    CHECK_OK(encoder_forward(enc, ids, NULL, mask, 3, T, batch, &e), e);
    double worst = 0;
    for (size_t i = 0; i < 5 * H; i++) {
        double d = fabs(alone[i] - batch[i]);
        worst = d > worst ? d : worst;
    }
    CHECK_MSG(worst < 1e-5, "sequence alone vs padded in a batch: max difference %g", worst);
    int finite = 1;
    for (size_t i = 0; i < 3 * T * H; i++)
        finite &= isfinite(batch[i]);
    CHECK_MSG(finite, "padded positions produced non-finite values");
    free(alone), free(batch);
}

int main(void)
{
    char model_dir[1024];
    const char *base = getenv("RAGD_MODELS");
    snprintf(model_dir, sizeof model_dir, "%s/all-MiniLM-L6-v2", base && *base ? base : "models");
    char cfg[1100];
    snprintf(cfg, sizeof cfg, "%s/config.json", model_dir);
    if (!fs_is_file(cfg)) {
        fprintf(stderr, "test_encoder_cpu: the default model is not installed at %s (run `make models`)\n",
                model_dir);
        return 1;
    }
    rg_encoder *enc = NULL;
    rg_err e = {0};
    rg_status st = encoder_load(model_dir, &enc, &e);
    CHECK_OK(st, e);
    if (st != RG_OK)
        return check_finish("test_encoder_cpu");
    test_concurrent(enc);
    test_padding(enc);
    encoder_free(enc);
    return check_finish("test_encoder_cpu");
}
